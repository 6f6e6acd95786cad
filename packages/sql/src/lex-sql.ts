/** A stretch of statement text the redactor acts on, in UTF-16 indices. */
export interface SqlSpan {
  readonly kind: 'string' | 'number' | 'comment' | 'parameter' | 'quoted-identifier';
  readonly start: number;
  readonly end: number;
}

/**
 * Finds the literals, comments and `$n` parameters in SQL text, following PostgreSQL's lexer
 * (scan.l, with `standard_conforming_strings = on`) for where tokens start and end: strings
 * in all their forms (`'…'`, `E'…'` with backslash escapes, `N'…'`, `B'…'`, `X'…'`, `U&'…'`,
 * continued on a new line), dollar-quoted strings, numbers, `--` and nested `/* … *\/`
 * comments. Identifiers and quoted identifiers are stepped over whole, so a `$` or a digit
 * inside one (`col$1`, `t2`) starts nothing and `e'x'` is only a string at a token's start.
 *
 * A quote or comment the text does not close runs to the end, so nothing after it escapes
 * redaction. This lexer is for redaction only; PostgreSQL's own lexer decides what parses.
 */
export function lexSql(sql: string): SqlSpan[] {
  const spans: SqlSpan[] = [];
  const n = sql.length;
  let i = 0;
  while (i < n) {
    const c = sql.charCodeAt(i);
    const next = sql.charCodeAt(i + 1);
    if (c === DASH && next === DASH) {
      const end = lineEnd(sql, i);
      spans.push({ kind: 'comment', start: i, end });
      i = end;
    } else if (c === SLASH && next === STAR) {
      const end = blockCommentEnd(sql, i);
      spans.push({ kind: 'comment', start: i, end });
      i = end;
    } else if (c === DQUOTE) {
      const end = quotedEnd(sql, i + 1, DQUOTE, false);
      spans.push({ kind: 'quoted-identifier', start: i, end });
      i = end;
    } else if (c === QUOTE) {
      i = pushString(spans, sql, i, i, false);
    } else if (isIdentStart(c)) {
      const lower = c | 0x20;
      if (next === QUOTE && (lower === E || lower === B || lower === X || lower === N)) {
        i = pushString(spans, sql, i, i + 1, lower === E);
      } else if (lower === U && next === AMP && sql.charCodeAt(i + 2) === QUOTE) {
        i = pushString(spans, sql, i, i + 2, false);
      } else if (lower === U && next === AMP && sql.charCodeAt(i + 2) === DQUOTE) {
        const end = quotedEnd(sql, i + 3, DQUOTE, false);
        spans.push({ kind: 'quoted-identifier', start: i, end });
        i = end;
      } else {
        i++;
        while (i < n && isIdentChar(sql.charCodeAt(i))) i++;
      }
    } else if (c === DOLLAR) {
      if (isDigit(next)) {
        let end = i + 2;
        while (end < n && isDigit(sql.charCodeAt(end))) end++;
        spans.push({ kind: 'parameter', start: i, end });
        i = end;
      } else {
        const tagEnd = dollarTagEnd(sql, i);
        if (tagEnd === -1) {
          i++;
        } else {
          const close = sql.indexOf(sql.slice(i, tagEnd), tagEnd);
          const end = close === -1 ? n : close + (tagEnd - i);
          spans.push({ kind: 'string', start: i, end });
          i = end;
        }
      }
    } else if (isDigit(c) || (c === DOT && isDigit(next))) {
      const end = numberEnd(sql, i);
      spans.push({ kind: 'number', start: i, end });
      i = end;
    } else {
      i++;
    }
  }
  return spans;
}

/**
 * The code tokens of `sql` outside the spans {@link lexSql} found, for the nesting estimate:
 * identifiers and keywords whole, each operator character and punctuation mark alone (never
 * fewer tokens than PostgreSQL's lexer makes of them). Null when the text holds anything but
 * plain constructs (standard `'…'` strings and their N/B/X forms, numbers, parameters, quoted
 * identifiers, `--` comments, no backslash anywhere): only for those are token boundaries so
 * simple that this lexer and PostgreSQL's cannot disagree, and the caller must then ask
 * PostgreSQL's lexer.
 */
export function plainCodeTokens(sql: string, spans: readonly SqlSpan[]): string[] | null {
  if (sql.includes('\\')) return null;
  const tokens: string[] = [];
  let from = 0;
  for (let k = 0; k <= spans.length; k++) {
    const span = spans[k];
    const to = span === undefined ? sql.length : span.start;
    for (let i = from; i < to;) {
      const c = sql.charCodeAt(i);
      if (isIdentStart(c)) {
        const start = i;
        while (i < to && isIdentChar(sql.charCodeAt(i))) i++;
        tokens.push(sql.slice(start, i));
      } else if (c === COLON && sql.charCodeAt(i + 1) === COLON) {
        tokens.push('::'); // always one token (a cast) to PostgreSQL
        i += 2;
      } else {
        if (c > 0x20) tokens.push(sql[i]!);
        i++;
      }
    }
    if (span === undefined) break;
    const first = sql.charCodeAt(span.start);
    const plain =
      span.kind === 'comment'
        ? sql.charCodeAt(span.start + 1) === DASH
        : span.kind === 'string' || span.kind === 'quoted-identifier'
          ? first === QUOTE || first === DQUOTE || sql.charCodeAt(span.start + 1) === QUOTE
          : true;
    if (!plain) return null; // E'…', U&'…', U&"…", dollar quotes, block comments
    from = span.end;
  }
  return tokens;
}

/**
 * Pushes the string that starts at `start` (its prefix, if any) and whose opening quote is at
 * `quote`, with any continuation on later lines, and returns where it ends.
 */
function pushString(
  spans: SqlSpan[],
  sql: string,
  start: number,
  quote: number,
  backslashes: boolean,
): number {
  let end = quotedEnd(sql, quote + 1, QUOTE, backslashes);
  // `'a'` newline `'b'` is one string: whitespace holding a newline (and `--` comments)
  // between two quoted parts continues it.
  for (let next = continuation(sql, end); next !== -1; next = continuation(sql, end)) {
    end = quotedEnd(sql, next + 1, QUOTE, backslashes);
  }
  spans.push({ kind: 'string', start, end });
  return end;
}

/** The index of the quote that continues a string ending at `from`, or -1. */
function continuation(sql: string, from: number): number {
  let i = from;
  let newline = false;
  while (i < sql.length) {
    const c = sql.charCodeAt(i);
    if (c === LF || c === CR) {
      newline = true;
      i++;
    } else if (c === 0x20 || c === 0x09 || c === 0x0b || c === 0x0c) {
      i++;
    } else if (c === DASH && sql.charCodeAt(i + 1) === DASH) {
      i = lineEnd(sql, i);
    } else {
      break;
    }
  }
  return newline && sql.charCodeAt(i) === QUOTE ? i : -1;
}

/** Just past the closing quote (a doubled quote is content), or the text's end. */
function quotedEnd(sql: string, from: number, quote: number, backslashes: boolean): number {
  let i = from;
  while (i < sql.length) {
    const c = sql.charCodeAt(i);
    if (backslashes && c === BACKSLASH) {
      i += 2;
    } else if (c === quote) {
      if (sql.charCodeAt(i + 1) !== quote) return i + 1;
      i += 2;
    } else {
      i++;
    }
  }
  return sql.length;
}

/** The end of a `--` comment: the next CR or LF, which is not part of it. */
function lineEnd(sql: string, from: number): number {
  let i = from + 2;
  while (i < sql.length && sql.charCodeAt(i) !== LF && sql.charCodeAt(i) !== CR) i++;
  return i;
}

/** Just past a (nested) block comment's end, or the text's end. */
function blockCommentEnd(sql: string, from: number): number {
  let depth = 0;
  let i = from;
  while (i < sql.length) {
    const c = sql.charCodeAt(i);
    const next = sql.charCodeAt(i + 1);
    if (c === SLASH && next === STAR) {
      depth++;
      i += 2;
    } else if (c === STAR && next === SLASH) {
      i += 2;
      if (--depth === 0) return i;
    } else {
      i++;
    }
  }
  return sql.length;
}

/** For `$tag$` or `$$` at `i`, the index just past the opening tag; -1 for anything else. */
function dollarTagEnd(sql: string, i: number): number {
  let j = i + 1;
  if (sql.charCodeAt(j) === DOLLAR) return j + 1;
  if (!isIdentStart(sql.charCodeAt(j))) return -1;
  j++;
  while (j < sql.length && isIdentChar(sql.charCodeAt(j)) && sql.charCodeAt(j) !== DOLLAR) j++;
  return sql.charCodeAt(j) === DOLLAR ? j + 1 : -1;
}

/**
 * The end of the number at `i`: `0x1F`, `0o17`, `0b101`, `1_000`, `1.5`, `.5`, `1.`, `1.5e-3`.
 * An exponent marker without digits is left out, as PostgreSQL's lexer does, and so is a
 * `.` that starts `..`.
 */
function numberEnd(sql: string, i: number): number {
  const radix = sql.charCodeAt(i + 1) | 0x20;
  if (
    sql.charCodeAt(i) === 0x30 &&
    (radix === X || radix === 0x6f || radix === B) &&
    (isHexDigit(sql.charCodeAt(i + 2)) || sql.charCodeAt(i + 2) === UNDERSCORE)
  ) {
    return digitsEnd(sql, i + 2, true);
  }
  let j = digitsEnd(sql, i, false);
  if (sql.charCodeAt(j) === DOT && sql.charCodeAt(j + 1) !== DOT) j = digitsEnd(sql, j + 1, false);
  if ((sql.charCodeAt(j) | 0x20) === E) {
    let k = j + 1;
    const sign = sql.charCodeAt(k);
    if (sign === 0x2b || sign === DASH) k++;
    if (isDigit(sql.charCodeAt(k))) j = digitsEnd(sql, k, false);
  }
  return j;
}

function digitsEnd(sql: string, from: number, hex: boolean): number {
  let j = from;
  for (;;) {
    const c = sql.charCodeAt(j);
    if (!(hex ? isHexDigit(c) : isDigit(c)) && c !== UNDERSCORE) return j;
    j++;
  }
}

function isDigit(c: number): boolean {
  return c >= 0x30 && c <= 0x39;
}

function isHexDigit(c: number): boolean {
  const lower = c | 0x20;
  return isDigit(c) || (lower >= 0x61 && lower <= 0x66);
}

/** PostgreSQL's ident_start: a letter, `_`, or any byte of a multibyte character. */
function isIdentStart(c: number): boolean {
  return (c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a) || c === UNDERSCORE || c >= 0x80;
}

function isIdentChar(c: number): boolean {
  return isIdentStart(c) || isDigit(c) || c === DOLLAR;
}

const DASH = 0x2d;
const SLASH = 0x2f;
const STAR = 0x2a;
const QUOTE = 0x27;
const DQUOTE = 0x22;
const DOLLAR = 0x24;
const DOT = 0x2e;
const AMP = 0x26;
const COLON = 0x3a;
const BACKSLASH = 0x5c;
const UNDERSCORE = 0x5f;
const LF = 0x0a;
const CR = 0x0d;
// Lower-case letters, compared against `c | 0x20`.
const E = 0x65;
const B = 0x62;
const X = 0x78;
const N = 0x6e;
const U = 0x75;
