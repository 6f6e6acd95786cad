import { CHAR_CLASS, Cls, startsWithAscii } from './char-class.js';
import type { SpanList } from './span-list.js';

/** A vendor prefix and the fewest token characters that must follow it. */
interface Prefix {
  readonly text: string;
  readonly minRest: number;
}

/**
 * Prefixes of well-known secret formats (GitHub, GitLab, Stripe, Slack, OpenAI and Anthropic,
 * Google, npm, Hugging Face, Shopify, DigitalOcean, PyPI). Publishable keys (`pk_live_`) are
 * public by design and left out.
 */
const PREFIXES: readonly Prefix[] = [
  { text: 'github_pat_', minRest: 22 },
  { text: 'ghp_', minRest: 30 },
  { text: 'gho_', minRest: 30 },
  { text: 'ghu_', minRest: 30 },
  { text: 'ghs_', minRest: 30 },
  { text: 'ghr_', minRest: 30 },
  { text: 'glpat-', minRest: 20 },
  { text: 'sk_live_', minRest: 16 },
  { text: 'sk_test_', minRest: 16 },
  { text: 'rk_live_', minRest: 16 },
  { text: 'rk_test_', minRest: 16 },
  { text: 'whsec_', minRest: 24 },
  { text: 'xoxb-', minRest: 10 },
  { text: 'xoxp-', minRest: 10 },
  { text: 'xoxa-', minRest: 10 },
  { text: 'xoxr-', minRest: 10 },
  { text: 'xoxs-', minRest: 10 },
  { text: 'xoxe-', minRest: 10 },
  { text: 'xapp-', minRest: 10 },
  { text: 'sk-', minRest: 20 },
  { text: 'AIza', minRest: 30 },
  { text: 'npm_', minRest: 30 },
  { text: 'hf_', minRest: 30 },
  { text: 'shpat_', minRest: 32 },
  { text: 'shpss_', minRest: 32 },
  { text: 'dop_v1_', minRest: 40 },
  { text: 'pypi-', minRest: 50 },
];

/** Token runs shorter than this are never taken without a prefix. */
export const MIN_TOKEN_LENGTH = 20;
/** Longer runs are blobs (base64 images, certificates), not credentials. */
export const MAX_TOKEN_LENGTH = 256;

// Character counts of the current run, reused across calls.
const counts = new Int32Array(128);

/**
 * API tokens and other machine secrets, two ways:
 *
 * - a known vendor prefix followed by enough token characters that mix cases or letters and
 *   digits, in segments (between `/ - _ +`) of 6 characters or more on average (`ghp_…`,
 *   `sk_live_…`, `xoxb-…`, `AIza…`);
 * - a run of 20–256 token characters (letters, digits, `_ - + /`) that looks random: upper
 *   case, lower case and digits all present, not all hex, Shannon entropy of at least
 *   {@link entropyFloor}, segments between `/ - _ +` of 6 characters or more on average, and
 *   less than half of it in word-like letter runs (so camelCase identifiers, slugs and paths
 *   are not taken). A run right after `base64,` (a data URL), publishable keys (`pk_live_`) and
 *   the base64 inside PEM armour are skipped, and so are typed object ids (`ch_…`, `cus_…`).
 */
export function detectApiToken(
  src: Uint8Array,
  start: number,
  end: number,
  spans: SpanList,
  kind: number,
): void {
  let i = start;
  while (i < end) {
    if ((CHAR_CLASS[src[i]!]! & Cls.Token) === 0) {
      i++;
      continue;
    }
    const runStart = i;
    while (i < end && (CHAR_CLASS[src[i]!]! & Cls.Token) !== 0) i++;
    if (i - runStart < 10) continue;
    if (src[runStart] === 0x2d && startsWithAscii(src, runStart, end, '-----BEGIN')) {
      // PEM armour: private keys are the private-key detector's; the base64 of certificates
      // and public keys is public.
      i = armourEnd(src, i, end);
      continue;
    }
    if (i - runStart < 16) continue;
    if (hasPrefix(src, runStart, i) || looksRandom(src, start, runStart, i)) {
      spans.push(kind, runStart, i);
    }
  }
}

/** End of the `-----END …-----` line after `from`, or `end`. */
function armourEnd(src: Uint8Array, from: number, end: number): number {
  for (let i = from; i < end; i++) {
    if (src[i] === 0x2d && startsWithAscii(src, i, end, '-----END')) {
      let j = i + 8;
      while (j < end && src[j] !== 0x0a && !startsWithAscii(src, j, end, '-----')) j++;
      return Math.min(end, j + 5);
    }
  }
  return end;
}

/**
 * A short lower-case type and `_` before the random part (`ch_3Mml…`, `cus_Nffr…`, `evt_1N…`)
 * is an object id as payment and SaaS APIs hand them out; secrets of that shape carry one of
 * the vendor {@link PREFIXES}, which are checked first.
 */
function typedId(src: Uint8Array, start: number, end: number): boolean {
  let k = start;
  while (k < end && k - start <= 6 && (CHAR_CLASS[src[k]!]! & Cls.Lower) !== 0) k++;
  return k < end && k - start >= 2 && k - start <= 6 && src[k] === 0x5f;
}

/** Prefixes of keys that are public by design. */
const PUBLIC_PREFIXES = ['pk_live_', 'pk_test_'];

function hasPrefix(src: Uint8Array, start: number, end: number): boolean {
  for (const p of PREFIXES) {
    if (src[start] !== p.text.charCodeAt(0)) continue;
    if (end - start - p.text.length < p.minRest) continue;
    if (!startsWithAscii(src, start, end, p.text)) continue;
    let classes = 0;
    let separators = 0;
    for (let k = start + p.text.length; k < end; k++) {
      const c = CHAR_CLASS[src[k]!]!;
      classes |= c;
      if ((c & (Cls.Digit | Cls.Upper | Cls.Lower)) === 0) separators++;
    }
    const letters = classes & (Cls.Upper | Cls.Lower);
    const mixed =
      letters === (Cls.Upper | Cls.Lower) || (letters !== 0 && (classes & Cls.Digit) !== 0);
    // `sk-learn-tutorial-part-2` has a prefix too: short segments make it a slug.
    return mixed && end - start - p.text.length >= 6 * (separators + 1);
  }
  return false;
}

/**
 * The entropy a random run of `length` characters should at least show, in bits per character:
 * a string cannot show more than log2(length), and a random one falls a little short of that
 * because characters repeat.
 */
export function entropyFloor(length: number): number {
  return Math.min(4.2, Math.log2(length) - 0.9);
}

function looksRandom(src: Uint8Array, valueStart: number, start: number, end: number): boolean {
  const length = end - start;
  if (length < MIN_TOKEN_LENGTH || length > MAX_TOKEN_LENGTH) return false;
  if (start - 7 >= valueStart && startsWithAscii(src, start - 7, end, 'base64,')) return false;
  for (const p of PUBLIC_PREFIXES) if (startsWithAscii(src, start, end, p)) return false;
  if (typedId(src, start, end)) return false;
  let classes = 0;
  let hex = true;
  let separators = 0;
  for (let k = start; k < end; k++) {
    const c = CHAR_CLASS[src[k]!]!;
    classes |= c;
    if ((c & Cls.Hex) === 0 && src[k] !== 0x2d) hex = false;
    if ((c & (Cls.Digit | Cls.Upper | Cls.Lower)) === 0) separators++;
  }
  const all = Cls.Upper | Cls.Lower | Cls.Digit;
  if ((classes & all) !== all || hex) return false;
  // Short segments between `/ - _ +` are a path, slug or identifier, not a random string.
  if (length < 6 * (separators + 1)) return false;
  if (wordiness(src, start, end) * 2 >= length) return false;
  counts.fill(0);
  for (let k = start; k < end; k++) counts[src[k]!]!++;
  let entropy = 0;
  for (let c = 0; c < 128; c++) {
    const n = counts[c]!;
    if (n > 0) {
      const p = n / length;
      entropy -= p * Math.log2(p);
    }
  }
  return entropy >= entropyFloor(length);
}

const VOWELS = new Uint8Array(128);
for (const c of 'aeiouyAEIOUY') VOWELS[c.charCodeAt(0)] = 1;

/**
 * Letters in word-like runs: an optional capital then lower-case letters, at least four in all,
 * with a vowel (`User`, `profile`, `Settings`). Random text has few such runs.
 */
function wordiness(src: Uint8Array, start: number, end: number): number {
  let total = 0;
  let k = start;
  while (k < end) {
    const s = k;
    if ((CHAR_CLASS[src[k]!]! & (Cls.Upper | Cls.Lower)) === 0) {
      k++;
      continue;
    }
    let vowels = VOWELS[src[k]!]!;
    k++;
    while (k < end && (CHAR_CLASS[src[k]!]! & Cls.Lower) !== 0) vowels += VOWELS[src[k++]!]!;
    if (k - s >= 4 && vowels > 0) total += k - s;
  }
  return total;
}
