import { isDigit, isHex, isWord } from './char-class.js';
import { dottedQuad } from './detect-ipv4.js';
import type { SpanList } from './span-list.js';

const COLON = 0x3a;

/**
 * IPv6 addresses: eight groups of 1–4 hex digits, or fewer with one `::`, optionally ending in
 * a dotted IPv4 address. At least one decimal digit is required, which leaves out words like
 * `dead::beef`; clock times and MAC addresses have too few or too many groups and no `::`.
 */
export function detectIpv6(
  src: Uint8Array,
  start: number,
  end: number,
  spans: SpanList,
  kind: number,
): void {
  let i = start;
  while (i < end) {
    const b = src[i]!;
    if (!(isHex(b) || b === COLON) || (i > start && !canStart(src[i - 1]))) {
      i++;
      continue;
    }
    const j = address(src, i, end);
    if (j > 0) {
      spans.push(kind, i, j);
      i = j;
    } else {
      i++;
    }
  }
}

function canStart(prev: number | undefined): boolean {
  return !isWord(prev) && prev !== COLON && prev !== 0x2e;
}

/** End of the IPv6 address starting at `at`, or -1. */
function address(src: Uint8Array, at: number, end: number): number {
  let j = at;
  let groups = 0;
  let compressed = false;
  let decimal = false;
  if (src[j] === COLON) {
    if (j + 1 >= end || src[j + 1] !== COLON) return -1;
    compressed = true;
    j += 2;
  }
  for (;;) {
    const s = j;
    while (j < end && j - s < 5 && isHex(src[j])) {
      if (isDigit(src[j])) decimal = true;
      j++;
    }
    const n = j - s;
    if (n === 0) break;
    if (n > 4) return -1;
    if (j < end && src[j] === 0x2e && groups <= 6) {
      const quadEnd = dottedQuad(src, s, end);
      if (quadEnd < 0) return -1;
      j = quadEnd;
      groups += 2;
      decimal = true;
      break;
    }
    groups++;
    if (j + 1 >= end || src[j] !== COLON) break;
    if (src[j + 1] === COLON) {
      if (compressed) break;
      compressed = true;
      j += 2;
      continue;
    }
    if (!isHex(src[j + 1])) break;
    j++;
  }
  const valid = compressed ? groups >= 1 && groups <= 7 : groups === 8;
  if (!valid || !decimal) return -1;
  if (j < end && (isWord(src[j]) || src[j] === 0x2e)) return -1;
  return j;
}
