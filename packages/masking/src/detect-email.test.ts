import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CHAR_CLASS, Cls } from './char-class.js';
import { detectEmail } from './detect-email.js';
import { SpanList } from './span-list.js';

// The straightforward form of the detector (separate passes for the `@`, the domain run and
// each label), kept as the oracle for the one-pass domain check.
const LOCAL = new Uint8Array(256);
const DOMAIN = new Uint8Array(256);
for (let b = 0; b < 256; b++) {
  const c = CHAR_CLASS[b]!;
  const alnum = (c & (Cls.Digit | Cls.Upper | Cls.Lower | Cls.High)) !== 0;
  DOMAIN[b] = alnum || b === 0x2d || b === 0x2e ? 1 : 0;
  LOCAL[b] = alnum || '._%+-'.includes(String.fromCharCode(b)) ? 1 : 0;
}
const NOT_TLDS = new Set(
  'png jpg jpeg gif svg webp bmp ico tif tiff heic pdf txt csv tsv xml json html htm css js mjs ts tsx jsx md yml yaml toml lock log ini cfg conf tmp bak'
    .split(' ')
    .map((ext) => letterCode(Buffer.from(ext), 0, ext.length)),
);

function letterCode(src: Uint8Array, start: number, end: number): number {
  if (end - start > 6) return -1;
  let code = 0;
  for (let i = start; i < end; i++) code = code * 32 + ((src[i]! | 0x20) - 0x60);
  return code;
}

function referenceEmails(src: Uint8Array, start: number, end: number): [number, number][] {
  const out: [number, number][] = [];
  let at = src.subarray(start, end).indexOf(0x40);
  at = at < 0 ? -1 : at + start;
  while (at >= 0) {
    let next = at + 1;
    let ls = at;
    while (ls > start && LOCAL[src[ls - 1]!] === 1) ls--;
    while (ls < at && src[ls] === 0x2e) ls++;
    const localLength = at - ls;
    if (localLength >= 1 && localLength <= 64 && src[at - 1] !== 0x2e) {
      let j = at + 1;
      while (j < end && DOMAIN[src[j]!] === 1) j++;
      while (j > at + 1 && (src[j - 1] === 0x2e || src[j - 1] === 0x2d)) j--;
      if (validDomain(src, at + 1, j)) {
        out.push([ls, j]);
        next = j;
      }
    }
    const found = next < end ? src.subarray(next, end).indexOf(0x40) : -1;
    at = found < 0 ? -1 : found + next;
  }
  return out;
}

function validDomain(src: Uint8Array, start: number, end: number): boolean {
  let labelStart = start;
  let dots = 0;
  for (let i = start; i <= end; i++) {
    if (i < end && src[i] !== 0x2e) continue;
    const length = i - labelStart;
    if (length === 0 || length > 63 || src[labelStart] === 0x2d || src[i - 1] === 0x2d) {
      return false;
    }
    if (i < end) {
      dots++;
      labelStart = i + 1;
    }
  }
  if (dots === 0) return false;
  const tldLength = end - labelStart;
  if (tldLength < 2 || tldLength > 24) return false;
  for (let i = labelStart; i < end; i++) {
    const c = CHAR_CLASS[src[i]!]!;
    if ((c & (Cls.Upper | Cls.Lower | Cls.High)) === 0) {
      return (
        src[labelStart] === 0x78 && src[labelStart + 1] === 0x6e && src[labelStart + 2] === 0x2d
      );
    }
  }
  return !NOT_TLDS.has(letterCode(src, labelStart, end));
}

function emails(src: Uint8Array, start: number, end: number): [number, number][] {
  const spans = new SpanList();
  detectEmail(src, start, end, spans, 3);
  const out: [number, number][] = [];
  for (let i = 0; i < spans.length; i++) out.push([spans.data[i * 3 + 1]!, spans.data[i * 3 + 2]!]);
  return out;
}

describe('detectEmail', () => {
  it.each([
    'a@example.com',
    'x a.b@mail.example.co.uk. y',
    'a@b.c-.',
    'a@b-.com',
    'a@-b.com',
    'a@b..com',
    'icon@2x.png',
    'ICON@2X.PNG',
    'a@b.xn--p1ai',
    'a@b.c0m',
    'a@b.\xc4\x85',
    'jürgen@bücher.example',
    'a@b.com@c.org',
  ])('agrees with the reference on %j', (text) => {
    const bytes = Buffer.from(text, text.includes('\xc4') ? 'latin1' : 'utf8');
    expect(emails(bytes, 0, bytes.length)).toEqual(referenceEmails(bytes, 0, bytes.length));
  });

  it('agrees with the reference on email-like text (property)', () => {
    const part = fc.constantFrom(
      'a',
      'Z',
      '0',
      '.',
      '-',
      '_',
      '+',
      '@',
      ' ',
      'com',
      'png',
      'js',
      'xn--',
      'example',
      '\u00fc',
      '\xc4',
    );
    const text = fc.array(part, { maxLength: 16 }).map((p) => Buffer.from(p.join(''), 'latin1'));
    fc.assert(
      fc.property(text, fc.nat(3), fc.nat(3), (bytes, cutStart, cutEnd) => {
        const start = Math.min(cutStart, bytes.length);
        const end = Math.max(start, bytes.length - cutEnd);
        expect(emails(bytes, start, end)).toEqual(referenceEmails(bytes, start, end));
      }),
      { numRuns: 3000 },
    );
  });
});
