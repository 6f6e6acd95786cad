import { isAlnum, isDigit, isFourDigits, isWord } from './char-class.js';
import { chunkWords } from './output-writer.js';
import type { SpanList } from './span-list.js';

const MAX_GROUPS = 8;
// The current run of digit groups: byte range, digit count, whether the group was in
// parentheses and the separator before it (0: none). Module-level scratch, see detect-card.
// (A group's leading digits are read back from the text when a check needs them: storing them
// for every group cost more than the few reads.)
const gStart = new Int32Array(MAX_GROUPS);
const gEnd = new Int32Array(MAX_GROUPS);
const gDigits = new Int32Array(MAX_GROUPS);
const gParen = new Uint8Array(MAX_GROUPS);
const gSep = new Int32Array(MAX_GROUPS);

const SPACE = 0x20;
const PLUS = 0x2b;
const OPEN = 0x28;
const CLOSE = 0x29;

function isSeparator(b: number | undefined): boolean {
  return b === SPACE || b === 0x2d || b === 0x2e || b === 0x2f;
}

/**
 * Telephone numbers in the forms people write them, chosen to stay clear of dates, versions,
 * amounts and ids:
 *
 * - international: `+` and 8–15 digits (E.164), in groups split by spaces, dashes, dots or
 *   parentheses (`+1 (555) 123-4567`, `+44 20 7946 0958`, `+4915112345678`);
 * - North American: `NXX-XXX-XXXX` with spaces, dashes or dots, an optional leading `1` and an
 *   optional parenthesised area code (`(555) 123-4567`, `1-800-555-0199`); the exchange's first
 *   digit is not checked, as made-up numbers like `555-123-4567` fill real tables too;
 * - national with a trunk `0`: 10–12 digits in at least two groups of two or more digits,
 *   ending in a pair only when all groups after the first are pairs (`020 7946 0958`,
 *   `030 12345678`, `01 23 45 67 89`, `(02) 9876 5432`).
 *
 * One separator character throughout (a different one may follow the country code or a
 * parenthesised group). Digits written together without `+` are never taken (ids, amounts),
 * nor are 7-digit local numbers.
 */
export function detectPhone(
  src: Uint8Array,
  start: number,
  end: number,
  spans: SpanList,
  kind: number,
): void {
  let i = start;
  while (i < end) {
    const b = src[i]!;
    if (!isDigit(b) && b !== PLUS && b !== OPEN) {
      i++;
      continue;
    }
    if (!phoneStartsAt(src, start, i)) {
      // Glued to a word or another number: skip the digits so no match starts mid-way.
      i++;
      while (i < end && isDigit(src[i])) i++;
      continue;
    }
    const plus = b === PLUS;
    const groups = parseRun(src, plus ? i + 1 : i, end);
    if (groups === 0) {
      i++;
      continue;
    }
    const runEnd = gEnd[groups - 1]!;
    if (runEnd < end && isAlnum(src[runEnd])) {
      i = runEnd;
      continue;
    }
    // Phones one after another, split by spaces, are taken one by one; the first must start the run.
    let a = 0;
    while (a < groups) {
      const b2 = longestPhone(src, a, groups, plus && a === 0);
      if (b2 < 0) break;
      spans.push(kind, a === 0 && plus ? i : gStart[a]!, gEnd[b2]!);
      a = b2 + 1;
      if (a < groups && gSep[a] !== SPACE) break;
    }
    i = runEnd;
  }
}

/** The separators {@link isWholePhone} takes (the detector also splits on `/`, with other rules). */
function isPhoneSeparator(b: number): boolean {
  return b === SPACE || b === 0x2d || b === 0x2e;
}

/** Four digits in `x` once its low byte (a separator) is read as a digit. */
function threeDigitsThen(x: number): boolean {
  return isFourDigits((x & ~0xff) | 0x30);
}

/**
 * Whether {@link detectPhone} would find exactly the whole of `src[start, end)`, decided in a few
 * word tests for the North American shapes most phone columns hold: `NXX-NXX-XXXX` (or with
 * dots or spaces), `(NXX) NXX-XXXX` and `+1 NXX-NXX-XXXX`, with the separators the detector takes
 * for them; false: another shape (or an area code below 2), so ask detectPhone. A value whose
 * hint says phone usually is one, and the detector's parse branches on the shape, which changes
 * from row to row.
 */
export function isWholePhone(src: Uint8Array, start: number, end: number): boolean {
  const words = chunkWords.of(src);
  const length = end - start;
  if (length === 12) {
    // NXX-NXX-XXXX: one separator twice, an area code from 2.
    const x0 = words.getInt32(start);
    const x1 = words.getInt32(start + 4);
    const sep = x0 & 0xff;
    return (
      isPhoneSeparator(sep) &&
      (x1 & 0xff) === sep &&
      x0 >>> 24 >= 0x32 &&
      threeDigitsThen(x0) &&
      threeDigitsThen(x1) &&
      isFourDigits(words.getInt32(start + 8))
    );
  }
  if (length === 14) {
    // (NXX) NXX-XXXX: after the parenthesis and between the last groups any taken separator.
    const x0 = words.getInt32(start);
    const x1 = words.getInt32(start + 6);
    return (
      x0 >>> 24 === OPEN &&
      ((x0 >>> 16) & 0xff) >= 0x32 &&
      isFourDigits((x0 & 0xffffff) | 0x30000000) &&
      src[start + 4] === CLOSE &&
      isPhoneSeparator(src[start + 5]!) &&
      isPhoneSeparator(x1 & 0xff) &&
      threeDigitsThen(x1) &&
      isFourDigits(words.getInt32(start + 10))
    );
  }
  if (length === 15) {
    // +C NXX-NXX-XXXX: a one-digit country code other than 0, then one separator twice.
    const x0 = words.getInt32(start + 3);
    const x1 = words.getInt32(start + 7);
    const sep = x0 & 0xff;
    const country = src[start + 1]!;
    return (
      src[start] === PLUS &&
      country >= 0x31 &&
      country <= 0x39 &&
      isPhoneSeparator(src[start + 2]!) &&
      isPhoneSeparator(sep) &&
      (x1 & 0xff) === sep &&
      threeDigitsThen(x0) &&
      threeDigitsThen(x1) &&
      isFourDigits(words.getInt32(start + 11))
    );
  }
  return false;
}

function phoneStartsAt(src: Uint8Array, start: number, at: number): boolean {
  if (at === start) return true;
  const prev = src[at - 1];
  if (isWord(prev) || prev === PLUS || prev === 0x2d || prev === 0x2e || prev === 0x2f)
    return false;
  // A digit after `12 ` continues a space-grouped number; a `+` or `(` starts a new one.
  return !(isDigit(src[at]) && prev === SPACE && at - 2 >= start && isDigit(src[at - 2]));
}

/** Reads digit groups from `at`; returns how many. */
function parseRun(src: Uint8Array, at: number, end: number): number {
  let groups = 0;
  let j = at;
  let sep = 0;
  while (groups < MAX_GROUPS) {
    if (j >= end) break;
    const groupStart = j;
    const open = src[j] === OPEN;
    if (open) j++;
    const digitsStart = j;
    while (j < end && (src[j]! - 0x30) >>> 0 <= 9) j++;
    if (j === digitsStart || (open && (j >= end || src[j] !== CLOSE))) break;
    const digits = j - digitsStart;
    if (open) j++;
    gStart[groups] = groupStart;
    gEnd[groups] = j;
    gDigits[groups] = digits;
    gParen[groups] = open ? 1 : 0;
    gSep[groups] = sep;
    groups++;
    if (j >= end) break;
    const b = src[j]!;
    // -1 past the end: neither a digit nor a parenthesis.
    const next = j + 1 < end ? src[j + 1]! : -1;
    if (isSeparator(b) && ((next - 0x30) >>> 0 <= 9 || next === OPEN)) {
      sep = b;
      j++;
    } else if (b === OPEN || (open && isDigit(b))) {
      sep = 0;
    } else break;
  }
  return groups;
}

/** The last group of the longest phone made of groups `a…`, or -1. */
function longestPhone(src: Uint8Array, a: number, groups: number, plus: boolean): number {
  for (let b = groups - 1; b >= a; b--) {
    if (b < groups - 1 && gSep[b + 1] !== SPACE) continue;
    if (consistent(a, b, plus) && isPhone(src, a, b, plus)) return b;
  }
  return -1;
}

/** One separator throughout, except after the country code or a parenthesised group. */
function consistent(a: number, b: number, plus: boolean): boolean {
  let sep = -1;
  for (let k = a + 1; k <= b; k++) {
    if (gParen[k - 1] === 1 || gParen[k] === 1 || (plus && k === a + 1)) continue;
    const s = gSep[k]!;
    if (s === 0) return false;
    if (sep === -1) sep = s;
    else if (s !== sep) return false;
  }
  return true;
}

/** Digit `n` (0 or 1, within its count) of group `k`, after its `(` if it has one. */
function digitOf(src: Uint8Array, k: number, n: number): number {
  return src[gStart[k]! + gParen[k]! + n]! - 0x30;
}

function isPhone(src: Uint8Array, a: number, b: number, plus: boolean): boolean {
  let digits = 0;
  for (let k = a; k <= b; k++) digits += gDigits[k]!;
  if (plus) return digits >= 8 && digits <= 15 && digitOf(src, a, 0) !== 0 && gParen[a] === 0;
  const groups = b - a + 1;
  // North American: [1] NXX NXX XXXX.
  let k = a;
  if (groups === 4 && gDigits[k] === 1 && digitOf(src, k, 0) === 1 && gParen[k] === 0) k++;
  if (
    b - k === 2 &&
    gDigits[k] === 3 &&
    gDigits[k + 1] === 3 &&
    gDigits[k + 2] === 4 &&
    digitOf(src, k, 0) >= 2 &&
    gParen[k + 1] === 0 &&
    gParen[k + 2] === 0 &&
    gSep[k + 1] !== 0x2f &&
    gSep[k + 2] !== 0x2f
  ) {
    return true;
  }
  // National with a trunk 0 (`00` is the international prefix, not a trunk).
  if (digitOf(src, a, 0) !== 0 || groups < 2 || digits < 10 || digits > 12) return false;
  if (gDigits[a]! > 1 && digitOf(src, a, 1) === 0) return false;
  if (gDigits[a]! < 2 || gDigits[a]! > 5) return false;
  for (let g = a; g <= b; g++) {
    if (gDigits[g]! < 2 || (g > a && gParen[g] === 1)) return false;
  }
  // A closing pair of digits belongs to pair-style numbers (`01 23 45 67 89`, `0470 12 34 56`):
  // after longer groups it is more likely the tail of an account or reference number.
  if (gDigits[b] === 2) {
    for (let g = a + 1; g < b; g++) if (gDigits[g] !== 2) return false;
  }
  return true;
}
