import type { LexToken } from './estimate-nesting.js';

/**
 * Rebuilds `text` with every literal token replaced by a `$n` placeholder and every comment
 * removed, from the tokens PostgreSQL's own lexer found in it (offsets in UTF-8 bytes).
 *
 * Literals are strings in all their forms (`'…'`, `E'…'`, `U&'…'`, `B'…'`, `X'…'`, dollar
 * quoted), and numbers. Placeholders are numbered after the highest `$n` parameter already in
 * the text, so extended-protocol text keeps its own parameters apart. Comments go because
 * they can carry anything (query tags often hold values). A string continued on the next line
 * (`'a'\n'b'`) becomes one placeholder.
 */
export function redactTokens(text: string, tokens: readonly LexToken[]): string {
  const index = utf16Index(text);
  let next = highestParameter(tokens) + 1;
  let out = '';
  let copied = 0; // text before this index is already in `out`
  let lastWasString = false;
  for (const token of tokens) {
    const kind = tokenKind(token);
    if (kind === 'other') {
      lastWasString = false;
      continue;
    }
    const start = index(token.start);
    const end = index(token.end);
    const gap = text.slice(copied, start);
    if (kind === 'comment') {
      out += gap;
      let after = end;
      if (out.length === 0 || isSpace(out.charCodeAt(out.length - 1))) {
        // `a /* c */ b` becomes `a b`, not `a  b`.
        while (text.charCodeAt(after) === 0x20 || text.charCodeAt(after) === 0x09) after++;
      } else if (after < text.length && !isSpace(text.charCodeAt(after))) {
        out += ' '; // `a/**/b` must not become `ab`
      }
      copied = after;
      lastWasString = false;
      continue;
    } else if (kind === 'string' && lastWasString && isBlank(gap)) {
      // A continuation of the previous string: already covered by its placeholder.
    } else {
      out += `${gap}$${next++}`;
    }
    copied = end;
    lastWasString = kind === 'string';
  }
  return (out + text.slice(copied)).trim();
}

type TokenKind = 'string' | 'number' | 'comment' | 'other';

function tokenKind(token: LexToken): TokenKind {
  const text = token.text;
  const c = text.charCodeAt(0);
  const next = text.charCodeAt(1);
  if (c === QUOTE) return 'string';
  if (c === DOLLAR) return isDigit(next) ? 'other' : 'string'; // `$1` is a parameter
  if (isDigit(c) || (c === DOT && isDigit(next))) return 'number';
  if ((c === DASH && next === DASH) || (c === SLASH && next === STAR)) return 'comment';
  if (next === QUOTE && STRING_PREFIXES.includes(text[0]!)) return 'string'; // E'', B'', X'', N''
  if ((c | 0x20) === 0x75 && next === AMP && text.charCodeAt(2) === QUOTE) return 'string'; // U&''
  return 'other';
}

const STRING_PREFIXES = 'eEbBxXnN';

function highestParameter(tokens: readonly LexToken[]): number {
  let max = 0;
  for (const token of tokens) {
    const text = token.text;
    if (text.charCodeAt(0) === DOLLAR && isDigit(text.charCodeAt(1))) {
      const n = Number(text.slice(1));
      if (Number.isSafeInteger(n) && n > max) max = n;
    }
  }
  return max;
}

/**
 * Maps UTF-8 byte offsets of `text` to UTF-16 indices. `text` must be well-formed (no lone
 * surrogates), so that its UTF-8 form is the one the lexer saw.
 */
function utf16Index(text: string): (byte: number) => number {
  // eslint-disable-next-line no-control-regex
  if (!/[^\u0000-\u007f]/.test(text)) return (byte) => byte;
  const map = new Uint32Array(utf8Length(text) + 1);
  let byte = 0;
  for (let i = 0; i < text.length; ) {
    const cp = text.codePointAt(i)!;
    const width = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
    for (let k = 0; k < width; k++) map[byte + k] = i;
    byte += width;
    i += cp > 0xffff ? 2 : 1;
  }
  map[byte] = text.length;
  return (b) => map[b] ?? text.length;
}

/** The UTF-8 length of a string, a lone surrogate counted as the 3 bytes of U+FFFD. */
export function utf8Length(text: string): number {
  let bytes = text.length;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff && isLowSurrogate(text.charCodeAt(i + 1))) {
      bytes += 2; // a pair: 4 bytes for 2 code units
      i++;
    } else if (c >= 0x800) {
      bytes += 2;
    } else if (c >= 0x80) {
      bytes += 1;
    }
  }
  return bytes;
}

function isLowSurrogate(c: number): boolean {
  return c >= 0xdc00 && c <= 0xdfff;
}

function isBlank(s: string): boolean {
  for (let i = 0; i < s.length; i++) if (!isSpace(s.charCodeAt(i))) return false;
  return true;
}

function isSpace(c: number): boolean {
  return c === 0x20 || (c >= 0x09 && c <= 0x0d);
}

function isDigit(c: number): boolean {
  return c >= 0x30 && c <= 0x39;
}

const QUOTE = 0x27;
const DOLLAR = 0x24;
const DOT = 0x2e;
const DASH = 0x2d;
const SLASH = 0x2f;
const STAR = 0x2a;
const AMP = 0x26;
