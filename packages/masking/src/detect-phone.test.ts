import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isAlnum, isDigit, isWord } from './char-class.js';
import { expectSameAsReference, spansOf } from './detector-reference.fixture.js';
import type { SpanList } from './span-list.js';
import { detectPhone, isWholePhone } from './detect-phone.js';

// The detector as it was before the digit tests without `undefined` and the leading digits read
// back from the text, kept as the oracle.

const MAX_GROUPS = 8;
// The current run of digit groups: byte range, digit count, first digit, whether the group was
// in parentheses and the separator before it (0: none). Module-level scratch, see detect-card.
const gStart = new Int32Array(MAX_GROUPS);
const gEnd = new Int32Array(MAX_GROUPS);
const gDigits = new Int32Array(MAX_GROUPS);
const gFirst = new Int32Array(MAX_GROUPS);
const gSecond = new Int32Array(MAX_GROUPS);
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
function referenceDetectPhone(
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
      const b2 = longestPhone(a, groups, plus && a === 0);
      if (b2 < 0) break;
      spans.push(kind, a === 0 && plus ? i : gStart[a]!, gEnd[b2]!);
      a = b2 + 1;
      if (a < groups && gSep[a] !== SPACE) break;
    }
    i = runEnd;
  }
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
    while (j < end && isDigit(src[j])) j++;
    if (j === digitsStart || (open && (j >= end || src[j] !== CLOSE))) break;
    const digits = j - digitsStart;
    if (open) j++;
    gStart[groups] = groupStart;
    gEnd[groups] = j;
    gDigits[groups] = digits;
    gFirst[groups] = src[digitsStart]! - 0x30;
    gSecond[groups] = digits > 1 ? src[digitsStart + 1]! - 0x30 : -1;
    gParen[groups] = open ? 1 : 0;
    gSep[groups] = sep;
    groups++;
    if (j >= end) break;
    const b = src[j];
    const next = j + 1 < end ? src[j + 1] : undefined;
    if (isSeparator(b) && (isDigit(next) || next === OPEN)) {
      sep = b!;
      j++;
    } else if (b === OPEN || (open && isDigit(b))) {
      sep = 0;
    } else break;
  }
  return groups;
}

/** The last group of the longest phone made of groups `a…`, or -1. */
function longestPhone(a: number, groups: number, plus: boolean): number {
  for (let b = groups - 1; b >= a; b--) {
    if (b < groups - 1 && gSep[b + 1] !== SPACE) continue;
    if (consistent(a, b, plus) && isPhone(a, b, plus)) return b;
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

function isPhone(a: number, b: number, plus: boolean): boolean {
  let digits = 0;
  for (let k = a; k <= b; k++) digits += gDigits[k]!;
  if (plus) return digits >= 8 && digits <= 15 && gFirst[a] !== 0 && gParen[a] === 0;
  const groups = b - a + 1;
  // North American: [1] NXX NXX XXXX.
  let k = a;
  if (groups === 4 && gDigits[k] === 1 && gFirst[k] === 1 && gParen[k] === 0) k++;
  if (
    b - k === 2 &&
    gDigits[k] === 3 &&
    gDigits[k + 1] === 3 &&
    gDigits[k + 2] === 4 &&
    gFirst[k]! >= 2 &&
    gParen[k + 1] === 0 &&
    gParen[k + 2] === 0 &&
    gSep[k + 1] !== 0x2f &&
    gSep[k + 2] !== 0x2f
  ) {
    return true;
  }
  // National with a trunk 0 (`00` is the international prefix, not a trunk).
  if (gFirst[a] !== 0 || gSecond[a] === 0 || groups < 2 || digits < 10 || digits > 12) return false;
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

describe('detectPhone', () => {
  it.each([
    '(555) 555-1234',
    '+1 555-555-1234',
    '555.555.1234',
    '1-800-555-0199',
    '+44 20 7946 0958',
    '+4915112345678',
    '020 7946 0958',
    '01 23 45 67 89',
    '(02) 9876 5432',
    '0470 12 34 56',
    '00 44 20 7946 0958',
    '555-123-4567 555-987-6543',
    '2024-01-15 10:30',
    'call +1 (415) 555-0132 now',
  ])('agrees with the reference on %j', (text) => {
    const bytes = Buffer.from(text);
    expect(spansOf(detectPhone, bytes, 0, bytes.length)).toEqual(
      spansOf(referenceDetectPhone, bytes, 0, bytes.length),
    );
  });

  it.each(['555-123-4567', '555.123.4567', '555 123 4567', '(555) 123-4567', '+1 555-123-4567'])(
    'claims %j whole in word tests',
    (text) => {
      const bytes = Buffer.from(text);
      expect(isWholePhone(bytes, 0, bytes.length)).toBe(true);
      expect(spansOf(detectPhone, bytes, 0, bytes.length)).toEqual([7, 0, bytes.length]);
    },
  );

  it('claims a whole value only where the detector finds exactly it (property)', () => {
    const digit = fc.constantFrom(...'0123456789');
    const digits = (n: number): fc.Arbitrary<string> =>
      fc.array(digit, { minLength: n, maxLength: n }).map((d) => d.join(''));
    // Separators the shapes take half of the time, and often the same one twice.
    const sep = fc.oneof(fc.constantFrom(' ', '-', '.'), fc.constantFrom('/', '_', '(', ')', '+'));
    const twice = fc
      .tuple(sep, sep, fc.boolean())
      .map(([t, u, same]): [string, string] => [t, same ? t : u]);
    const shaped = fc.oneof(
      fc
        .tuple(digits(3), twice, digits(3), digits(4))
        .map(([a, [s, t], b, c]) => `${a}${s}${b}${t}${c}`),
      fc
        .tuple(fc.constantFrom('(', '[', '1'), digits(3), fc.constantFrom(')', ']', '1'), sep)
        .chain(([open, a, close, s]) =>
          fc
            .tuple(digits(3), sep, digits(4))
            .map(([b, t, c]) => `${open}${a}${close}${s}${b}${t}${c}`),
        ),
      fc
        .tuple(fc.constantFrom('+', '0', '-'), digit, sep, digits(3), twice, digits(3), digits(4))
        .map(([p, cc, s, a, [t, u], b, c]) => `${p}${cc}${s}${a}${t}${b}${u}${c}`),
    );
    fc.assert(
      fc.property(shaped, (text) => {
        const bytes = Buffer.from(text);
        if (isWholePhone(bytes, 0, bytes.length)) {
          expect(spansOf(detectPhone, bytes, 0, bytes.length)).toEqual([7, 0, bytes.length]);
        }
      }),
      { numRuns: 5000 },
    );
  });

  it('agrees with the reference on digit groups, separators and parentheses (property)', () => {
    const part = fc.oneof(
      fc.constantFrom(' ', '-', '.', '/', '(', ')', '+', 'a', ':', '\u00e9'),
      fc.stringMatching(/^[0-9]{1,5}$/),
      fc.constantFrom('0', '00', '1', '555', '(555)', '+1', '+44', '020'),
    );
    expectSameAsReference(detectPhone, referenceDetectPhone, part, { maxParts: 14, numRuns: 5000 });
  });
});
