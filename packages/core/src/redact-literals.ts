/**
 * Replaces every literal in SQL text (strings in all their forms, dollar-quoted bodies and
 * numbers) with `?`, keeping identifiers, keywords, comments and `$n` parameters. This is a
 * lexical pass, not a parse: it follows PostgreSQL's lexer rules for where tokens start and
 * end, so text it cannot lex (an unterminated quote, quoted identifier or block comment) is
 * redacted to the end rather than leaked. Plain `'…'` strings are lexed as with
 * `standard_conforming_strings = on` (PostgreSQL's default): a backslash escapes nothing there.
 */
export function redactLiterals(sql: string): string {
  return redact(sql, false)!;
}

/**
 * The text with its literals replaced by `?`, when every literal in it is a plain number or a
 * plain `'…'` string and every quote and comment is closed; null otherwise. Two statements with
 * the same shape differ only in plain literal values, so what a parser derives from their
 * structure (kind, tables, functions, fingerprint) is the same — the key for caching analyses
 * of statements that inline their values. Prefixed strings (E'', U&'', B'', X''), dollar
 * quotes and unterminated text give null: there a lexer's reading is subtle enough that a
 * cache must not trust this one.
 */
export function literalShape(sql: string): string | null {
  return redact(sql, true);
}

function redact(sql: string, plainOnly: boolean): string | null {
  let out = '';
  let copyFrom = 0;
  let i = 0;
  const n = sql.length;
  const replace = (start: number, end: number): void => {
    out += sql.slice(copyFrom, start) + '?';
    copyFrom = end;
  };
  while (i < n) {
    const c = sql.charCodeAt(i);
    const next = sql.charCodeAt(i + 1);
    if (c === DASH && next === DASH) {
      // A line comment ends at the next CR or LF, whichever comes first.
      i += 2;
      while (i < n && sql.charCodeAt(i) !== LF && sql.charCodeAt(i) !== CR) i++;
    } else if (c === SLASH && next === STAR) {
      const end = skipBlockComment(sql, i);
      if (end === -1) {
        if (plainOnly) return null;
        replace(i, n);
        i = n;
      } else {
        i = end;
      }
    } else if (c === DQUOTE) {
      const end = skipQuoted(sql, i + 1, DQUOTE, false);
      if (end === -1) {
        if (plainOnly) return null;
        replace(i, n);
        i = n;
      } else {
        i = end;
      }
    } else if (c === QUOTE) {
      const end = skipQuoted(sql, i + 1, QUOTE, false);
      if (end === -1 && plainOnly) return null;
      replace(i, end === -1 ? n : end);
      i = end === -1 ? n : end;
    } else if (isIdentStart(c)) {
      const quoteAt = stringPrefixQuote(sql, i);
      if (quoteAt === -1) {
        // A whole identifier or keyword at once, so digits and `$` inside it (`t1`, `col$2`,
        // `a$$b`) are never mistaken for the start of a number or a dollar quote.
        i++;
        while (i < n && isIdentChar(sql.charCodeAt(i))) i++;
      } else {
        if (plainOnly) return null;
        const backslashes = (c | 0x20) === 0x65; // E'...' honours backslash escapes
        const end = skipQuoted(sql, quoteAt + 1, QUOTE, backslashes);
        replace(i, end === -1 ? n : end);
        i = end === -1 ? n : end;
      }
    } else if (c === DOLLAR) {
      if (isDigit(next)) {
        i += 2; // a `$n` parameter
        while (i < n && isDigit(sql.charCodeAt(i))) i++;
      } else {
        const tagEnd = dollarTagEnd(sql, i);
        if (tagEnd === -1) {
          i++;
        } else {
          if (plainOnly) return null;
          const close = sql.indexOf(sql.slice(i, tagEnd), tagEnd);
          const end = close === -1 ? n : close + (tagEnd - i);
          replace(i, end);
          i = end;
        }
      }
    } else if (isDigit(c) || (c === DOT && isDigit(next))) {
      const end = numberEnd(sql, i);
      replace(i, end);
      i = end;
    } else if (c === DOT && next === DOT) {
      i += 2; // `..`, as in `FOR i IN 1..10`
    } else {
      i++;
    }
  }
  return copyFrom === 0 ? sql : out + sql.slice(copyFrom);
}

const DASH = 0x2d;
const SLASH = 0x2f;
const STAR = 0x2a;
const QUOTE = 0x27;
const DQUOTE = 0x22;
const DOLLAR = 0x24;
const DOT = 0x2e;
const AMP = 0x26;
const BACKSLASH = 0x5c;
const LF = 0x0a;
const CR = 0x0d;
const UNDERSCORE = 0x5f;

function isDigit(c: number): boolean {
  return c >= 0x30 && c <= 0x39;
}

function isIdentStart(c: number): boolean {
  return (c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a) || c === 0x5f || c >= 0x80;
}

function isIdentChar(c: number): boolean {
  return isIdentStart(c) || isDigit(c) || c === DOLLAR;
}

function isHexDigit(c: number): boolean {
  const lower = c | 0x20;
  return isDigit(c) || (lower >= 0x61 && lower <= 0x66);
}

/** Index just past digits and `_` separators from `i`. */
function skipDigits(sql: string, i: number, hex: boolean): number {
  let j = i;
  for (;;) {
    const c = sql.charCodeAt(j);
    if (!(hex ? isHexDigit(c) : isDigit(c)) && c !== UNDERSCORE) return j;
    j++;
  }
}

/**
 * The end of the numeric literal at `i`: `0x1F`, `0o17`, `0b101`, `1_000`, `1.5`, `.5`, `1.`,
 * `1.5e-3`. An exponent marker not followed by digits is left out, as PostgreSQL's lexer does
 * (`1e'x'` is the number `1` and the string `e'x'`), and so is a `.` that starts `..`.
 */
function numberEnd(sql: string, i: number): number {
  const radix = sql.charCodeAt(i + 1) | 0x20;
  if (
    sql.charCodeAt(i) === 0x30 &&
    (radix === 0x78 || radix === 0x6f || radix === 0x62) && // 0x, 0o, 0b
    (isHexDigit(sql.charCodeAt(i + 2)) || sql.charCodeAt(i + 2) === UNDERSCORE)
  ) {
    return skipDigits(sql, i + 2, true);
  }
  let j = skipDigits(sql, i, false);
  if (sql.charCodeAt(j) === DOT && sql.charCodeAt(j + 1) !== DOT) j = skipDigits(sql, j + 1, false);
  if ((sql.charCodeAt(j) | 0x20) === 0x65) {
    let k = j + 1;
    const sign = sql.charCodeAt(k);
    if (sign === 0x2b || sign === DASH) k++;
    if (isDigit(sql.charCodeAt(k))) j = skipDigits(sql, k, false);
  }
  return j;
}

/**
 * For an E'..', B'..', X'..', N'..' or U&'..' string starting at `i`, the index of its opening
 * quote; -1 when `i` does not start one.
 */
function stringPrefixQuote(sql: string, i: number): number {
  const lower = sql.charCodeAt(i) | 0x20;
  const next = sql.charCodeAt(i + 1);
  if (lower === 0x75 && next === AMP) return sql.charCodeAt(i + 2) === QUOTE ? i + 2 : -1;
  const prefix = lower === 0x65 || lower === 0x62 || lower === 0x78 || lower === 0x6e;
  return prefix && next === QUOTE ? i + 1 : -1;
}

/** Returns the index just past the closing quote, or -1 when the text ends first. */
function skipQuoted(sql: string, from: number, quote: number, backslashes: boolean): number {
  let i = from;
  while (i < sql.length) {
    const c = sql.charCodeAt(i);
    if (backslashes && c === BACKSLASH) {
      i += 2;
    } else if (c === quote) {
      if (sql.charCodeAt(i + 1) === quote) i += 2;
      else return i + 1;
    } else {
      i++;
    }
  }
  return -1;
}

/** Returns the index just past the (nested) comment's end, or -1 when the text ends first. */
function skipBlockComment(sql: string, from: number): number {
  let depth = 0;
  let i = from;
  while (i < sql.length) {
    if (sql.charCodeAt(i) === SLASH && sql.charCodeAt(i + 1) === STAR) {
      depth++;
      i += 2;
    } else if (sql.charCodeAt(i) === STAR && sql.charCodeAt(i + 1) === SLASH) {
      depth--;
      i += 2;
      if (depth === 0) return i;
    } else {
      i++;
    }
  }
  return -1;
}

/** For `$tag$` or `$$` at `i`, the index just past the opening tag; -1 for `$1` or a lone `$`. */
function dollarTagEnd(sql: string, i: number): number {
  let j = i + 1;
  if (sql.charCodeAt(j) === DOLLAR) return j + 1;
  if (!isIdentStart(sql.charCodeAt(j))) return -1;
  while (j < sql.length && isIdentChar(sql.charCodeAt(j)) && sql.charCodeAt(j) !== DOLLAR) j++;
  return sql.charCodeAt(j) === DOLLAR ? j + 1 : -1;
}
