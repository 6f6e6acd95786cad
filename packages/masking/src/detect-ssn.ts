import { isDigit, numberEndsAt, numberStartsAt } from './char-class.js';
import type { SpanList } from './span-list.js';

/**
 * US social security numbers written `AAA-GG-SSSS` or `AAA GG SSSS`, within the issued ranges:
 * area not 000, 666 or 900–999, group not 00, serial not 0000. Nine digits written together are
 * not taken: they are far more often order numbers or ids than SSNs (a column rule covers an
 * SSN column).
 */
export function detectSsn(
  src: Uint8Array,
  start: number,
  end: number,
  spans: SpanList,
  kind: number,
): void {
  for (let i = start; i + 11 <= end; i++) {
    // Cheapest test first: the separators at their fixed offsets.
    const sep = src[i + 3];
    if (
      (sep !== 0x2d && sep !== 0x20) ||
      src[i + 6] !== sep ||
      !isDigit(src[i]) ||
      !isDigit(src[i + 1]) ||
      !isDigit(src[i + 2]) ||
      !isDigit(src[i + 4]) ||
      !isDigit(src[i + 5]) ||
      !isDigit(src[i + 7]) ||
      !isDigit(src[i + 8]) ||
      !isDigit(src[i + 9]) ||
      !isDigit(src[i + 10]) ||
      !ssnStartsAt(src, start, i, sep) ||
      !ssnEndsAt(src, end, i + 11)
    ) {
      continue;
    }
    const area = (src[i]! - 0x30) * 100 + (src[i + 1]! - 0x30) * 10 + src[i + 2]! - 0x30;
    const group = (src[i + 4]! - 0x30) * 10 + src[i + 5]! - 0x30;
    const serial =
      (src[i + 7]! - 0x30) * 1000 +
      (src[i + 8]! - 0x30) * 100 +
      (src[i + 9]! - 0x30) * 10 +
      src[i + 10]! -
      0x30;
    if (area === 0 || area === 666 || area >= 900 || group === 0 || serial === 0) continue;
    spans.push(kind, i, i + 11);
    i += 10;
  }
}

/** Also refuses a space-joined digit group before a space-separated SSN (a longer number). */
function ssnStartsAt(src: Uint8Array, start: number, at: number, sep: number): boolean {
  if (!numberStartsAt(src, start, at)) return false;
  return !(sep === 0x20 && at - 2 >= start && src[at - 1] === 0x20 && isDigit(src[at - 2]));
}

/** Also refuses a following space-joined digit group (`123 45 6789 0`: a longer number). */
function ssnEndsAt(src: Uint8Array, end: number, at: number): boolean {
  if (!numberEndsAt(src, end, at)) return false;
  return !(at + 1 < end && src[at] === 0x20 && isDigit(src[at + 1]) && src[at - 5] === 0x20);
}
