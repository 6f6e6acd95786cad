import { CHAR_CLASS, Cls, isAlnum, isDigit } from './char-class.js';
import type { SpanList } from './span-list.js';

/** IBAN length per country (ISO 13616 registry). */
const LENGTHS: Record<string, number> = {
  AD: 24,
  AE: 23,
  AL: 28,
  AT: 20,
  AZ: 28,
  BA: 20,
  BE: 16,
  BG: 22,
  BH: 22,
  BI: 27,
  BR: 29,
  BY: 28,
  CH: 21,
  CR: 22,
  CY: 28,
  CZ: 24,
  DE: 22,
  DJ: 27,
  DK: 18,
  DO: 28,
  EE: 20,
  EG: 29,
  ES: 24,
  FI: 18,
  FK: 18,
  FO: 18,
  FR: 27,
  GB: 22,
  GE: 22,
  GI: 23,
  GL: 18,
  GR: 27,
  GT: 28,
  HR: 21,
  HU: 28,
  IE: 22,
  IL: 23,
  IQ: 23,
  IS: 26,
  IT: 27,
  JO: 30,
  KW: 30,
  KZ: 20,
  LB: 28,
  LC: 32,
  LI: 21,
  LT: 20,
  LU: 20,
  LV: 21,
  LY: 25,
  MC: 27,
  MD: 24,
  ME: 22,
  MK: 19,
  MN: 20,
  MR: 27,
  MT: 31,
  MU: 30,
  NI: 28,
  NL: 18,
  NO: 15,
  OM: 23,
  PK: 24,
  PL: 28,
  PS: 29,
  PT: 25,
  QA: 29,
  RO: 24,
  RS: 22,
  RU: 33,
  SA: 24,
  SC: 31,
  SD: 18,
  SE: 24,
  SI: 19,
  SK: 24,
  SM: 27,
  SO: 23,
  ST: 25,
  SV: 28,
  TL: 23,
  TN: 24,
  TR: 26,
  UA: 29,
  VA: 22,
  VG: 24,
  XK: 20,
};

/** IBAN length by the two country letters packed as `(first - 65) * 26 + (second - 65)`. */
const LENGTH_BY_CODE = new Uint8Array(26 * 26);
for (const [code, length] of Object.entries(LENGTHS)) {
  LENGTH_BY_CODE[(code.charCodeAt(0) - 65) * 26 + code.charCodeAt(1) - 65] = length;
}

// The IBAN's characters (spaces removed), reused across calls.
const chars = new Uint8Array(34);

function isUpper(b: number | undefined): boolean {
  return b !== undefined && (CHAR_CLASS[b]! & Cls.Upper) !== 0;
}

/**
 * International bank account numbers: a country code with a registered IBAN length, two check
 * digits and the BBAN, written together or in groups of four split by single spaces, whose
 * mod-97 checksum is 1 (ISO 7064). Upper case only, as IBANs are printed.
 */
export function detectIban(
  src: Uint8Array,
  start: number,
  end: number,
  spans: SpanList,
  kind: number,
): void {
  for (let i = start; i + 15 <= end; i++) {
    const c0 = src[i]!;
    const c1 = src[i + 1]!;
    if (!isUpper(c0) || !isUpper(c1) || !isDigit(src[i + 2]) || !isDigit(src[i + 3])) continue;
    if (i > start && isAlnum(src[i - 1])) continue;
    const length = LENGTH_BY_CODE[(c0 - 65) * 26 + c1 - 65]!;
    if (length === 0) continue;
    let n = 0;
    let j = i;
    while (n < length && j < end) {
      const b = src[j]!;
      if (isUpper(b) || isDigit(b)) {
        chars[n++] = b;
        j++;
      } else if (b === 0x20 && n % 4 === 0 && n > 0 && j + 1 < end && isAlnum(src[j + 1])) {
        j++;
      } else break;
    }
    if (n < length || (j < end && isAlnum(src[j]))) continue;
    if (mod97(length) !== 1) continue;
    spans.push(kind, i, j);
    i = j - 1;
  }
}

/** ISO 7064 mod 97-10 over the rearranged IBAN (first four characters moved to the end). */
function mod97(length: number): number {
  let rem = 0;
  for (let k = 0; k < length; k++) {
    const b = chars[(k + 4) % length]!;
    rem = b <= 0x39 ? (rem * 10 + b - 0x30) % 97 : (rem * 100 + b - 55) % 97;
  }
  return rem;
}
