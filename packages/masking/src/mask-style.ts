/**
 * How a value is masked. Plain data, so a plan can be sent to a worker as it is.
 *
 * - `redact`: the value becomes a fixed marker (default `****`); its length is hidden.
 * - `partial`: all but the last `keepLast` code points become `*`; separators in the masked
 *   part (space, `-`, `.`, `@`, `/`, `(`, `)`, `+`) are kept so the shape stays readable
 *   (`4111-1111-1111-1234` → `****-****-****-1234`). Never more than half of the code points
 *   are kept, so a short value is not shown whole.
 * - `hash`: a stable keyed pseudonym, `prefix` + the first `length` base32 characters of
 *   HMAC-SHA-256(key, value bytes). Equal values give equal pseudonyms (joins and counts still
 *   work); without the key nobody can confirm a guess.
 * - `null`: the value becomes SQL NULL.
 * - `fixed-format`: same shape, no content: `A–Z` → `X`, `a–z` → `x`, `0–9` → `0`, any
 *   non-ASCII code point → `x`, other ASCII (punctuation, spaces) kept. An email keeps its `@`
 *   and dots, a date its dashes. Constant replacement, not a pseudo-random one: it reveals the
 *   shape only, and costs one table look-up per byte.
 *
 * `partial` and `fixed-format` need code points, so a value that is not valid UTF-8 falls back
 * to the `redact` marker.
 */
export type MaskStyle =
  | { readonly kind: 'redact'; readonly marker?: string }
  | { readonly kind: 'partial'; readonly keepLast?: number; readonly keepSeparators?: boolean }
  | { readonly kind: 'hash'; readonly prefix?: string; readonly length?: number }
  | { readonly kind: 'null' }
  | { readonly kind: 'fixed-format' };

/** The names of the mask styles. */
export type MaskStyleKind = MaskStyle['kind'];

/**
 * What the plan does with one column: mask every value with a column rule's style, or run the
 * content detectors over it and mask only what they find.
 */
export type MaskAction = MaskStyle | { readonly kind: 'detect' };

/** The marker `redact` writes when none is configured. */
export const DEFAULT_REDACT_MARKER = '****';
/** How many trailing code points `partial` keeps when not configured. */
export const DEFAULT_PARTIAL_KEEP = 4;
/** Pseudonym prefix of `hash` when not configured. */
export const DEFAULT_HASH_PREFIX = 'h_';
/** Base32 characters of a `hash` pseudonym when not configured (80 bits). */
export const DEFAULT_HASH_LENGTH = 16;
