const HEX = new TextEncoder().encode('0123456789abcdef');

/** Bytes {@link writeJsonString} needs at most for `length` input bytes. */
export function jsonStringMaxLength(length: number): number {
  return 2 + 6 * length;
}

/**
 * Writes `src[start, end)` (UTF-8 text) as a JSON string literal into `out` at `pos`: quotes,
 * backslashes and control characters escaped. Returns the end position.
 */
export function writeJsonString(
  src: Uint8Array,
  start: number,
  end: number,
  out: Uint8Array,
  pos: number,
): number {
  out[pos++] = 0x22;
  for (let i = start; i < end; i++) {
    const b = src[i]!;
    if (b === 0x22 || b === 0x5c) {
      out[pos++] = 0x5c;
      out[pos++] = b;
    } else if (b < 0x20 || b === 0x7f) {
      out[pos++] = 0x5c;
      out[pos++] = 0x75;
      out[pos++] = 0x30;
      out[pos++] = 0x30;
      out[pos++] = HEX[b >> 4]!;
      out[pos++] = HEX[b & 15]!;
    } else {
      out[pos++] = b;
    }
  }
  out[pos++] = 0x22;
  return pos;
}
