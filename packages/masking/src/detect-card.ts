import { isFourDigits, numberEndsAt, numberStartsAt } from './char-class.js';
import { chunkWords } from './output-writer.js';
import type { SpanList } from './span-list.js';

const MAX_GROUPS = 8;
// Scratch of the current digit run: digit values, and per group its first digit index and its
// byte range. Module-level: detection is synchronous and never re-entered.
const DIGITS = 64;
const digits = new Uint8Array(DIGITS);
const digitWords = new DataView(digits.buffer);
const groupFirst = new Int32Array(MAX_GROUPS + 1);
const groupStart = new Int32Array(MAX_GROUPS);
const groupEnd = new Int32Array(MAX_GROUPS);

/**
 * Payment card numbers (PANs): 13–19 digits, written together or in groups split by single
 * spaces or by single dashes, that pass the Luhn check and whose leading digits and length fit a
 * card scheme as issued today (Visa 16/19, Mastercard 16, Amex 15, Discover, Diners 14–19, JCB,
 * UnionPay, Maestro 16–19). The scheme check rejects most Luhn-valid numbers that are not cards:
 * IMEIs, EAN-13 barcodes, epoch milliseconds, snowflake ids.
 */
export function detectCard(
  src: Uint8Array,
  start: number,
  end: number,
  spans: SpanList,
  kind: number,
): void {
  const words = chunkWords.of(src);
  let i = start;
  while (i < end) {
    // `(b - 0x30) >>> 0 > 9`: not a digit, in one unsigned compare.
    if ((src[i]! - 0x30) >>> 0 > 9) {
      i++;
      continue;
    }
    // Collect a run of digit groups joined by one consistent separator.
    let groups = 0;
    let count = 0;
    let sep = 0;
    let j = i;
    for (;;) {
      groupStart[groups] = j;
      groupFirst[groups] = count;
      while (j < end) {
        // Four digits at a time while they last: a card number is mostly runs of them.
        if (j + 4 <= end && count + 4 <= DIGITS) {
          const x = words.getInt32(j);
          if (isFourDigits(x)) {
            digitWords.setInt32(count, x - 0x30303030);
            count += 4;
            j += 4;
            continue;
          }
        }
        const d = (src[j]! - 0x30) >>> 0;
        if (d > 9) break;
        if (count < DIGITS) digits[count] = d;
        count++;
        j++;
      }
      groupEnd[groups] = j;
      groups++;
      if (groups < MAX_GROUPS && count <= 19 && j + 1 < end) {
        const b = src[j]!;
        if (
          (b === 0x20 || b === 0x2d) &&
          (sep === 0 || sep === b) &&
          (src[j + 1]! - 0x30) >>> 0 <= 9
        ) {
          sep = b;
          j++;
          continue;
        }
      }
      break;
    }
    groupFirst[groups] = count;
    const found = count >= 13 ? findCard(src, start, end, groups, spans, kind) : -1;
    i = found >= 0 ? found : j;
  }
}

/**
 * Whether {@link detectCard} would find exactly the whole of `src[start, end)`, decided in a few
 * word tests for the shapes most cards are written in: 16 digits, or four groups of four split by
 * one space or one dash each. 1: it would; 0: it would find nothing; -1: another shape, so ask
 * detectCard. (For these shapes the detector's one window is the whole value, so the answer is
 * the scheme and Luhn checks of its 16 digits.) A value whose hint says card usually is one, and
 * the detector's walk branches on the shape, which changes from row to row.
 */
export function wholeCard(src: Uint8Array, start: number, end: number): number {
  const words = chunkWords.of(src);
  let x0: number;
  let x1: number;
  let x2: number;
  let x3: number;
  if (end - start === 16) {
    x0 = words.getInt32(start);
    x1 = words.getInt32(start + 4);
    x2 = words.getInt32(start + 8);
    x3 = words.getInt32(start + 12);
  } else if (end - start === 19) {
    const sep = src[start + 4]!;
    if ((sep !== 0x20 && sep !== 0x2d) || src[start + 9] !== sep || src[start + 14] !== sep) {
      return -1;
    }
    x0 = words.getInt32(start);
    x1 = words.getInt32(start + 5);
    x2 = words.getInt32(start + 10);
    x3 = words.getInt32(start + 15);
  } else {
    return -1;
  }
  if (!isFourDigits(x0) || !isFourDigits(x1) || !isFourDigits(x2) || !isFourDigits(x3)) return -1;
  digitWords.setInt32(0, x0 - 0x30303030);
  digitWords.setInt32(4, x1 - 0x30303030);
  digitWords.setInt32(8, x2 - 0x30303030);
  digitWords.setInt32(12, x3 - 0x30303030);
  return schemeFits(0, 16) && luhn(0, 16) ? 1 : 0;
}

/** Tries windows of whole groups, longest first; returns the end of the card found, else -1. */
function findCard(
  src: Uint8Array,
  start: number,
  end: number,
  groups: number,
  spans: SpanList,
  kind: number,
): number {
  for (let a = 0; a < groups; a++) {
    if (!numberStartsAt(src, start, groupStart[a]!)) continue;
    for (let b = groups - 1; b >= a; b--) {
      const first = groupFirst[a]!;
      const n = groupFirst[b + 1]! - first;
      if (n < 13) break;
      if (n > 19 || first + n > DIGITS) continue;
      if (!numberEndsAt(src, end, groupEnd[b]!)) continue;
      if (schemeFits(first, n) && luhn(first, n)) {
        spans.push(kind, groupStart[a]!, groupEnd[b]!);
        return groupEnd[b]!;
      }
    }
  }
  return -1;
}

/** A Luhn digit doubled, its digits summed. */
const DOUBLED = new Uint8Array([0, 2, 4, 6, 8, 1, 3, 5, 7, 9]);

/**
 * Two digits as `getUint16` reads them from {@link digits} (`first << 8 | second`): their Luhn
 * sum when the first is doubled and the second is not.
 */
const LUHN_PAIR = new Uint8Array(0x0a0a);
for (let a = 0; a < 10; a++) for (let b = 0; b < 10; b++) LUHN_PAIR[(a << 8) | b] = DOUBLED[a]! + b;

function luhn(first: number, n: number): boolean {
  // From the right: every second digit, starting with the second to last, is doubled. Four
  // digits per load, as two pairs; an odd digit left over at the front is not doubled.
  let sum = 0;
  let k = first + n;
  for (; k - 4 >= first; k -= 4) {
    const x = digitWords.getInt32(k - 4);
    sum += LUHN_PAIR[x >>> 16]! + LUHN_PAIR[x & 0xffff]!;
  }
  if (k - 2 >= first) {
    sum += LUHN_PAIR[digitWords.getUint16(k - 2)]!;
    k -= 2;
  }
  if (k > first) sum += digits[first]!;
  return sum % 10 === 0;
}

function schemeFits(first: number, n: number): boolean {
  const d0 = digits[first]!;
  const p2 = d0 * 10 + digits[first + 1]!;
  const p3 = p2 * 10 + digits[first + 2]!;
  const p4 = p3 * 10 + digits[first + 3]!;
  switch (d0) {
    case 2: // Mastercard 2-series
      return p4 >= 2221 && p4 <= 2720 && n === 16;
    case 3: // Amex; Diners; JCB
      if (p2 === 34 || p2 === 37) return n === 15;
      if ((p3 >= 300 && p3 <= 305) || p2 === 36 || p2 === 38 || p2 === 39) return n >= 14;
      return p4 >= 3528 && p4 <= 3589 && n >= 16;
    case 4: // Visa (13-digit Visa numbers are no longer issued; EAN-13 barcodes are)
      return n === 16 || n === 19;
    case 5: // Mastercard; Maestro (16–19 digits: shorter ones would catch EAN-13 barcodes)
      if (p2 >= 51 && p2 <= 55) return n === 16;
      return (p2 === 50 || p2 >= 56) && n >= 16;
    case 6: // Discover, UnionPay, Maestro
      return n >= 16;
    default:
      return false;
  }
}
