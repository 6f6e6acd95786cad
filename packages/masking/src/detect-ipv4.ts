import { isDigit, isWord } from './char-class.js';
import type { SpanList } from './span-list.js';

/**
 * IPv4 addresses in dotted-quad form: four decimal octets 0–255 without leading zeros. Not when
 * glued to a word (`v1.2.3.4`) or part of a longer dotted number (OIDs, `1.2.3.4.5`). Like every
 * detector, it reads nothing outside `[start, end)`: a value's neighbours in a frame are not its
 * context.
 */
export function detectIpv4(
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
    const prev = i > start ? src[i - 1] : undefined;
    if (prev === undefined || (!isWord(prev) && prev !== 0x2e)) {
      const j = dottedQuad(src, i, end);
      if (j > 0 && quadEndsAt(src, end, j)) {
        spans.push(kind, i, j);
        i = j;
        continue;
      }
    }
    // Skip the rest of this digit run: no address starts inside it.
    i++;
    while (i < end && isDigit(src[i])) i++;
  }
}

/** Not followed by a word character or another `.digit` (a port after `:` is fine). */
function quadEndsAt(src: Uint8Array, end: number, at: number): boolean {
  if (at === end) return true;
  const next = src[at];
  return !isWord(next) && !(next === 0x2e && at + 1 < end && isDigit(src[at + 1]));
}

/**
 * End of the dotted quad starting at `at`, or -1. Exported for the IPv6 detector, which accepts
 * an embedded IPv4 tail (`::ffff:192.0.2.1`).
 */
export function dottedQuad(src: Uint8Array, at: number, end: number): number {
  let j = at;
  for (let part = 0; part < 4; part++) {
    if (part > 0) {
      if (j >= end || src[j] !== 0x2e) return -1;
      j++;
    }
    const s = j;
    let value = 0;
    while (j < end && j - s < 4 && isDigit(src[j])) value = value * 10 + src[j++]! - 0x30;
    const n = j - s;
    if (n === 0 || n > 3 || value > 255 || (n > 1 && src[s] === 0x30)) return -1;
  }
  return j;
}
