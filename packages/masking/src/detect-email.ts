import { CHAR_CLASS, Cls } from './char-class.js';
import { chunkWords } from './output-writer.js';
import type { SpanList } from './span-list.js';

const LOCAL = new Uint8Array(256);
const DOMAIN = new Uint8Array(256);
/** Bytes a TLD may hold: letters, and non-ASCII bytes of an internationalised name. */
const TLD = new Uint8Array(256);
for (let b = 0; b < 256; b++) {
  const c = CHAR_CLASS[b]!;
  const alnum = (c & (Cls.Digit | Cls.Upper | Cls.Lower | Cls.High)) !== 0;
  DOMAIN[b] = alnum || b === 0x2d || b === 0x2e ? 1 : 0;
  LOCAL[b] = alnum || '._%+-'.includes(String.fromCharCode(b)) ? 1 : 0;
  TLD[b] = (c & (Cls.Upper | Cls.Lower | Cls.High)) !== 0 ? 1 : 0;
}

/** True when the four bytes packed in `x` (as `getInt32` reads them) may all be in a local part. */
function allLocal(x: number): boolean {
  return (
    (LOCAL[x >>> 24]! & LOCAL[(x >>> 16) & 0xff]! & LOCAL[(x >>> 8) & 0xff]! & LOCAL[x & 0xff]!) ===
    1
  );
}

/**
 * File extensions that are not top-level domains: `icon@2x.png` and `logo@3x.webp` are asset
 * names, not addresses. (Extensions that are real TLDs, like `.zip`, cannot be told apart.)
 */
const NOT_TLD_LIST =
  'png jpg jpeg gif svg webp bmp ico tif tiff heic pdf txt csv tsv xml json html htm css js mjs ts tsx jsx md yml yaml toml lock log ini cfg conf tmp bak'.split(
    ' ',
  );
const NOT_TLDS = new Set(NOT_TLD_LIST.map((ext) => letterCode(Buffer.from(ext), 0, ext.length)));
/**
 * Length, first and last letter of each entry of {@link NOT_TLDS} (see {@link tldHint}): real
 * TLDs (`com`, `org`, `io`) miss here and skip the set look-up.
 */
const NOT_TLD_HINT = new Uint8Array(8 * 32 * 32);
for (const ext of NOT_TLD_LIST) {
  NOT_TLD_HINT[tldHint(ext.length, ext.charCodeAt(0), ext.charCodeAt(ext.length - 1))] = 1;
}

/** A TLD's slot in {@link NOT_TLD_HINT}: letters are case-folded by their low five bits. */
function tldHint(length: number, first: number, last: number): number {
  return (((length << 5) | (first & 31)) << 5) | (last & 31);
}

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
  // The first `@`, found in one pass that also tracks where the run of local-part bytes before
  // it starts (what walking back from the `@` would find).
  let at = start;
  let run = start;
  const words = chunkWords.of(src);
  // Four bytes at a time while all are local-part bytes (an `@` is not one).
  while (at + 4 <= end && allLocal(words.getInt32(at))) at += 4;
  for (; at < end; at++) {
    const b = src[at]!;
    if (b === 0x40) break;
    if (LOCAL[b] === 0) run = at + 1;
  }
  if (at === end) return;
  for (;;) {
    let next = at + 1;
    let ls = run;
    while (ls < at && src[ls] === 0x2e) ls++;
    const localLength = at - ls;
    if (localLength >= 1 && localLength <= 64 && src[at - 1] !== 0x2e) {
      const j = domainEnd(src, at + 1, end);
      if (j >= 0) {
        spans.push(kind, ls, j);
        next = j;
      }
    }
    at = next;
    while (at < end && src[at] !== 0x40) at++;
    if (at === end) return;
    // A later local part may reach back before `next`, into what came before.
    run = at;
    while (run > start && LOCAL[src[run - 1]!] === 1) run--;
  }
}

/**
 * End of the valid domain that starts at `from`, or -1. One pass reads the run of domain bytes
 * and checks the labels as it goes; a run ending in a dot or hyphen (trimmed as the end of a
 * sentence) takes the general path.
 */
function domainEnd(src: Uint8Array, from: number, end: number): number {
  let j = from;
  let labelStart = from;
  let dots = 0;
  let ok = true;
  for (; j < end; j++) {
    const b = src[j]!;
    if (DOMAIN[b] === 0) break;
    if (b === 0x2e) {
      const length = j - labelStart;
      if (length === 0 || length > 63 || src[labelStart] === 0x2d || src[j - 1] === 0x2d) {
        ok = false;
      }
      dots++;
      labelStart = j + 1;
    }
  }
  const last = j > from ? src[j - 1] : 0;
  if (last === 0x2e || last === 0x2d) {
    while (j > from && (src[j - 1] === 0x2e || src[j - 1] === 0x2d)) j--;
    return validDomain(src, from, j) ? j : -1;
  }
  // The last label cannot be empty or end in a hyphen here.
  if (!ok || dots === 0 || j - labelStart > 63 || src[labelStart] === 0x2d) return -1;
  return validTld(src, labelStart, j) ? j : -1;
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
  return validTld(src, labelStart, end);
}

/** The TLD: letters (or non-ASCII bytes) only, 2–24 of them, or an IDN `xn--` label. */
function validTld(src: Uint8Array, labelStart: number, end: number): boolean {
  const tldLength = end - labelStart;
  if (tldLength < 2 || tldLength > 24) return false;
  let bits = 0;
  for (let i = labelStart; i < end; i++) {
    const b = src[i]!;
    bits |= b;
    if (TLD[b] === 0) {
      return (
        src[labelStart] === 0x78 && src[labelStart + 1] === 0x6e && src[labelStart + 2] === 0x2d
      );
    }
  }
  if (tldLength > 6) return true;
  // An ASCII TLD can only match an entry of its length, first and last letter.
  if (bits < 0x80 && NOT_TLD_HINT[tldHint(tldLength, src[labelStart]!, src[end - 1]!)] === 0) {
    return true;
  }
  return !NOT_TLDS.has(letterCode(src, labelStart, end));
}
