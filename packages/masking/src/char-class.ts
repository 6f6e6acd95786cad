/** Bit flags of {@link CHAR_CLASS}: what kind of byte each of the 256 values is. */
export const enum Cls {
  Digit = 1,
  Upper = 2,
  Lower = 4,
  At = 8,
  Dot = 16,
  Colon = 32,
  Dash = 64,
  Plus = 128,
  Space = 256,
  High = 512,
  Underscore = 1024,
  Paren = 2048,
  Slash = 4096,
  /** Characters of API tokens: letters, digits, `_`, `-`, `+`, `/`. */
  Token = 8192,
  Hex = 16384,
}

/** Class bits of every byte value (one table look-up per byte in the detectors' prefilter). */
export const CHAR_CLASS = new Uint16Array(256);

function mark(chars: string, bits: number): void {
  for (const c of chars) CHAR_CLASS[c.charCodeAt(0)]! |= bits;
}

const DIGITS = '0123456789';
const UPPER = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ';
const LOWER = 'abcdefghijklmnopqrstuvwxyz';
mark(DIGITS, Cls.Digit | Cls.Token | Cls.Hex);
mark(UPPER, Cls.Upper | Cls.Token);
mark(LOWER, Cls.Lower | Cls.Token);
mark('abcdefABCDEF', Cls.Hex);
mark('@', Cls.At);
mark('.', Cls.Dot);
mark(':', Cls.Colon);
mark('-', Cls.Dash | Cls.Token);
mark('+', Cls.Plus | Cls.Token);
mark(' \t', Cls.Space);
mark('_', Cls.Underscore | Cls.Token);
mark('()', Cls.Paren);
mark('/', Cls.Slash | Cls.Token);
for (let b = 0x80; b < 0x100; b++) CHAR_CLASS[b] = Cls.High;

// Masks as plain module constants: the helpers below run per byte, and a `const enum` member
// read across modules (or with isolated modules) is a property load each time.
const WORD = Cls.Digit | Cls.Upper | Cls.Lower | Cls.Underscore;
const ALNUM = Cls.Digit | Cls.Upper | Cls.Lower;
const HEX = Cls.Hex;

/** True for ASCII digits. */
export function isDigit(b: number | undefined): boolean {
  return b !== undefined && b >= 0x30 && b <= 0x39;
}

/**
 * True when the four bytes packed in `x` (as a DataView's `getInt32` reads them) are all ASCII
 * digits: every high nibble is 3, and still 3 after adding 6 to each byte (no byte carries into
 * the next once the first test holds).
 */
export function isFourDigits(x: number): boolean {
  return (((x & 0xf0f0f0f0) ^ 0x30303030) | (((x + 0x06060606) & 0xf0f0f0f0) ^ 0x30303030)) === 0;
}

/** True for ASCII letters, digits and `_` (a regular expression's `\w`). */
export function isWord(b: number | undefined): boolean {
  return b !== undefined && (CHAR_CLASS[b]! & WORD) !== 0;
}

/** True for ASCII letters and digits. */
export function isAlnum(b: number | undefined): boolean {
  return b !== undefined && (CHAR_CLASS[b]! & ALNUM) !== 0;
}

/** True for hexadecimal digits. */
export function isHex(b: number | undefined): boolean {
  return b !== undefined && (CHAR_CLASS[b]! & HEX) !== 0;
}

/** True when `src[at…]` starts with the ASCII text `text`. */
export function startsWithAscii(src: Uint8Array, at: number, end: number, text: string): boolean {
  if (at < 0 || at + text.length > end) return false;
  for (let k = 0; k < text.length; k++) if (src[at + k] !== text.charCodeAt(k)) return false;
  return true;
}

/**
 * Index of `byte` in `src[from, end)`, or -1. (`Uint8Array#indexOf` cannot stop at `end`, and a
 * value is usually a small slice of a large chunk.)
 */
export function indexOfByte(src: Uint8Array, byte: number, from: number, end: number): number {
  for (let i = from; i < end; i++) if (src[i] === byte) return i;
  return -1;
}

/** Bytes that join the parts of one number (`1.5`, `2024-01`, `10/12`, `1,000`, `10:30`). */
function isJoiner(b: number | undefined): boolean {
  return b === 0x2e || b === 0x2d || b === 0x2f || b === 0x2c || b === 0x3a;
}

/**
 * True when a number may start at `src[at]`: the byte before is no word character, and no joiner
 * that follows a digit (so `2024-4111…` or `1.23` do not start a new number mid-way).
 */
export function numberStartsAt(src: Uint8Array, start: number, at: number): boolean {
  if (at === start) return true;
  const prev = src[at - 1];
  if (isWord(prev)) return false;
  return !(isJoiner(prev) && at - 2 >= start && isDigit(src[at - 2]));
}

/** True when a number may end before `src[at]` (mirror of {@link numberStartsAt}). */
export function numberEndsAt(src: Uint8Array, end: number, at: number): boolean {
  if (at === end) return true;
  const next = src[at];
  if (isWord(next)) return false;
  return !(isJoiner(next) && at + 1 < end && isDigit(src[at + 1]));
}
