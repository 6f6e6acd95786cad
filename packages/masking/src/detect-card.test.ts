import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isDigit, numberEndsAt, numberStartsAt } from './char-class.js';
import { expectSameAsReference, spansOf } from './detector-reference.fixture.js';
import type { SpanList } from './span-list.js';
import { detectCard, wholeCard } from './detect-card.js';

// The detector as it was before the one-compare digit tests and the table Luhn, kept as the
// oracle.

const MAX_GROUPS = 8;
// Scratch of the current digit run: digit values, and per group its first digit index and its
// byte range. Module-level: detection is synchronous and never re-entered.
const digits = new Uint8Array(64);
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
function referenceDetectCard(
  src: Uint8Array,
  start: number,
  end: number,
  spans: SpanList,
  kind: number,
): void {
  let i = start;
  while (i < end) {
    if (!isDigit(src[i])) {
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
      while (j < end && isDigit(src[j])) {
        if (count < digits.length) digits[count] = src[j]! - 0x30;
        count++;
        j++;
      }
      groupEnd[groups] = j;
      groups++;
      const b = src[j];
      if (
        groups < MAX_GROUPS &&
        count <= 19 &&
        j + 1 < end &&
        (b === 0x20 || b === 0x2d) &&
        (sep === 0 || sep === b) &&
        isDigit(src[j + 1])
      ) {
        sep = b;
        j++;
        continue;
      }
      break;
    }
    groupFirst[groups] = count;
    const found = count >= 13 ? findCard(src, start, end, groups, spans, kind) : -1;
    i = found >= 0 ? found : j;
  }
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
      if (n > 19 || first + n > digits.length) continue;
      if (!numberEndsAt(src, end, groupEnd[b]!)) continue;
      if (schemeFits(first, n) && luhn(first, n)) {
        spans.push(kind, groupStart[a]!, groupEnd[b]!);
        return groupEnd[b]!;
      }
    }
  }
  return -1;
}

function luhn(first: number, n: number): boolean {
  let sum = 0;
  for (let k = 0; k < n; k++) {
    let d = digits[first + n - 1 - k]!;
    if ((k & 1) === 1) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
  }
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

describe('detectCard', () => {
  it.each([
    '4111111111111111',
    '4111 1111 1111 1111',
    '4111-1111-1111-1111',
    '4111-1111 1111-1111',
    '3782 822463 10005',
    '5500 0000 0000 0004 and 4111111111111111',
    '2024-4111111111111111',
    '41111111111111111111111',
    '0411111111111111',
    '4111111111111112',
  ])('agrees with the reference on %j', (text) => {
    const bytes = Buffer.from(text);
    expect(spansOf(detectCard, bytes, 0, bytes.length)).toEqual(
      spansOf(referenceDetectCard, bytes, 0, bytes.length),
    );
  });

  it('agrees with the reference on Luhn-valid numbers of every length (property)', () => {
    const luhnValid = fc
      .tuple(
        fc.constantFrom(
          '4',
          '51',
          '55',
          '2221',
          '34',
          '37',
          '36',
          '3530',
          '6011',
          '62',
          '50',
          '67',
        ),
        fc.integer({ min: 13, max: 19 }),
        fc.array(fc.integer({ min: 0, max: 9 }), { minLength: 19, maxLength: 19 }),
      )
      .map(([prefix, length, fill]) => {
        const body = (prefix + fill.join('')).slice(0, length - 1);
        for (let check = 0; check <= 9; check++) {
          const n = body + check;
          if (referenceLuhnValid(n)) return n;
        }
        throw new Error('unreachable');
      });
    const text = fc
      .tuple(luhnValid, fc.constantFrom('', ' ', '-'), fc.integer({ min: 2, max: 6 }))
      .map(([n, sep, group]) =>
        Buffer.from(n.replace(new RegExp(`(\\d{${group}})(?=\\d)`, 'g'), `$1${sep}`)),
      );
    fc.assert(
      fc.property(text, (bytes) => {
        expect(spansOf(detectCard, bytes, 0, bytes.length)).toEqual(
          spansOf(referenceDetectCard, bytes, 0, bytes.length),
        );
      }),
      { numRuns: 2000 },
    );
  });

  it('decides whole values of the usual shapes as the detector does (property)', () => {
    const digitsOf = (n: number): fc.Arbitrary<string> =>
      fc
        .array(fc.integer({ min: 0, max: 9 }), { minLength: n, maxLength: n })
        .map((d) => d.join(''));
    const sixteen = fc.oneof(
      digitsOf(16),
      fc.constantFrom(
        '4111111111111111',
        '5500000000000004',
        '6011111111111117',
        '2221000000000009',
      ),
    );
    const separator = fc.constantFrom(' ', '-', '.', '/', '  ');
    const value = fc.oneof(
      sixteen,
      fc.tuple(sixteen, separator, separator, fc.boolean()).map(([n, sep, other, same]) => {
        const groups = n.match(/\d{4}/g)!;
        return `${groups[0]}${sep}${groups[1]}${sep}${groups[2]}${same ? sep : other}${groups[3]}`;
      }),
      fc.string({ unit: fc.constantFrom(...'0123456789 -x'), minLength: 15, maxLength: 20 }),
    );
    fc.assert(
      fc.property(value, (text) => {
        const bytes = Buffer.from(text);
        const found = spansOf(detectCard, bytes, 0, bytes.length, 4);
        const whole = wholeCard(bytes, 0, bytes.length);
        if (whole >= 0) expect(whole === 1).toBe(found.join() === `4,0,${bytes.length}`);
      }),
      { numRuns: 3000 },
    );
  });

  it('agrees with the reference on digit runs (property)', () => {
    const part = fc.oneof(
      fc.constantFrom(' ', '-', '.', '/', 'a', ':', '\u00e9'),
      fc.stringMatching(/^[0-9]{1,8}$/),
      fc.constantFrom('4111111111111111', '378282246310005', '6011111111111117'),
    );
    expectSameAsReference(detectCard, referenceDetectCard, part, { maxParts: 12, numRuns: 3000 });
  });
});

/** Luhn over a string of digits, the textbook way. */
function referenceLuhnValid(n: string): boolean {
  let sum = 0;
  for (let k = 0; k < n.length; k++) {
    let d = Number(n[n.length - 1 - k]);
    if (k % 2 === 1 && (d *= 2) > 9) d -= 9;
    sum += d;
  }
  return sum % 10 === 0;
}
