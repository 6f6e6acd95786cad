/** The UTF-8 length of a string, a lone surrogate counted as the 3 bytes of U+FFFD. */
export function utf8Length(text: string): number {
  let bytes = text.length;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff && isLowSurrogate(text.charCodeAt(i + 1))) {
      bytes += 2; // a pair: 4 bytes for 2 code units
      i++;
    } else if (c >= 0x800) {
      bytes += 2;
    } else if (c >= 0x80) {
      bytes += 1;
    }
  }
  return bytes;
}

function isLowSurrogate(c: number): boolean {
  return c >= 0xdc00 && c <= 0xdfff;
}
