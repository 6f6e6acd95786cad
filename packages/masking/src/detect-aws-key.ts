import { CHAR_CLASS, Cls, indexOfByte, isAlnum } from './char-class.js';
import type { SpanList } from './span-list.js';

/**
 * AWS access key ids: `AKIA` (long-term) or `ASIA` (temporary) and 16 upper-case letters or
 * digits, 20 characters standing alone. (The secret access key that goes with one is found by
 * the API-token detector.)
 */
export function detectAwsKey(
  src: Uint8Array,
  start: number,
  end: number,
  spans: SpanList,
  kind: number,
): void {
  let i = indexOfByte(src, 0x41, start, end);
  while (i >= 0 && i + 20 <= end) {
    let next = i + 1;
    const second = src[i + 1];
    if (
      (second === 0x4b || second === 0x53) &&
      src[i + 2] === 0x49 &&
      src[i + 3] === 0x41 &&
      (i === start || !isAlnum(src[i - 1])) &&
      (i + 20 === end || !isAlnum(src[i + 20]))
    ) {
      let ok = true;
      for (let k = i + 4; k < i + 20 && ok; k++) {
        ok = (CHAR_CLASS[src[k]!]! & (Cls.Upper | Cls.Digit)) !== 0;
      }
      if (ok) {
        spans.push(kind, i, i + 20);
        next = i + 20;
      }
    }
    i = indexOfByte(src, 0x41, next, end);
  }
}
