import { CHAR_CLASS, Cls, indexOfByte } from './char-class.js';
import type { SpanList } from './span-list.js';

const LOCAL = new Uint8Array(256);
const DOMAIN = new Uint8Array(256);
for (let b = 0; b < 256; b++) {
  const c = CHAR_CLASS[b]!;
  const alnum = (c & (Cls.Digit | Cls.Upper | Cls.Lower | Cls.High)) !== 0;
  DOMAIN[b] = alnum || b === 0x2d || b === 0x2e ? 1 : 0;
  LOCAL[b] = alnum || '._%+-'.includes(String.fromCharCode(b)) ? 1 : 0;
}

/**
 * File extensions that are not top-level domains: `icon@2x.png` and `logo@3x.webp` are asset
 * names, not addresses. (Extensions that are real TLDs, like `.zip`, cannot be told apart.)
 */
const NOT_TLDS = new Set(
  'png jpg jpeg gif svg webp bmp ico tif tiff heic pdf txt csv tsv xml json html htm css js mjs ts tsx jsx md yml yaml toml lock log ini cfg conf tmp bak'
    .split(' ')
    .map((ext) => letterCode(Buffer.from(ext), 0, ext.length)),
);

/** Up to six ASCII letters, case-folded, packed five bits each (no string allocated per email). */
function letterCode(src: Uint8Array, start: number, end: number): number {
  if (end - start > 6) return -1;
  let code = 0;
  for (let i = start; i < end; i++) code = code * 32 + ((src[i]! | 0x20) - 0x60);
  return code;
}

/**
 * Email addresses: a local part of letters, digits and `._%+-` (1–64 bytes), `@`, and a domain
 * of at least two labels whose last one (the TLD) is 2–24 letters. Non-ASCII bytes count as
 * letters, so internationalised addresses are found too. A trailing dot or hyphen (end of a
 * sentence) is not part of the address.
 */
export function detectEmail(
  src: Uint8Array,
  start: number,
  end: number,
  spans: SpanList,
  kind: number,
): void {
  let at = indexOfByte(src, 0x40, start, end);
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
        spans.push(kind, ls, j);
        next = j;
      }
    }
    at = indexOfByte(src, 0x40, next, end);
  }
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
  // The TLD: letters (or non-ASCII bytes) only, 2–24 of them, or an IDN `xn--` label.
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
