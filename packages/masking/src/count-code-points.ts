/**
 * Counts the UTF-8 code points in `src[start, end)`, or returns -1 when the bytes are not valid
 * UTF-8 (overlong forms, surrogates, code points above U+10FFFF and truncated sequences are all
 * invalid, as in the WHATWG decoder).
 */
export function countCodePoints(src: Uint8Array, start: number, end: number): number {
  let count = 0;
  let i = start;
  while (i < end) {
    const b = src[i]!;
    count++;
    if (b < 0x80) {
      i++;
      continue;
    }
    const need = sequenceLength(src, i, end);
    if (need === 0) return -1;
    i += need;
  }
  return count;
}

/**
 * Length of the valid UTF-8 sequence that starts at `src[i]` (a byte of 0x80 or more), or 0 when
 * the sequence is invalid or runs past `end`.
 */
export function sequenceLength(src: Uint8Array, i: number, end: number): number {
  const b = src[i]!;
  let need: number;
  let lo = 0x80;
  let hi = 0xbf;
  if (b >= 0xc2 && b <= 0xdf) need = 2;
  else if (b >= 0xe0 && b <= 0xef) {
    need = 3;
    if (b === 0xe0) lo = 0xa0;
    else if (b === 0xed) hi = 0x9f;
  } else if (b >= 0xf0 && b <= 0xf4) {
    need = 4;
    if (b === 0xf0) lo = 0x90;
    else if (b === 0xf4) hi = 0x8f;
  } else return 0;
  if (i + need > end) return 0;
  const c1 = src[i + 1]!;
  if (c1 < lo || c1 > hi) return 0;
  for (let k = 2; k < need; k++) {
    const c = src[i + k]!;
    if (c < 0x80 || c > 0xbf) return 0;
  }
  return need;
}
