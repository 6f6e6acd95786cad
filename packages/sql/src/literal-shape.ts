import { lexSql } from './lex-sql.js';

const QUOTE = 0x27;

/**
 * `sql` with each literal replaced by `?`, when every literal in it is a number or a plain,
 * closed `'…'` string; null otherwise (prefixed or dollar-quoted strings, backslashes anywhere).
 * Statements with the same shape differ only in plain literal values, so what the parser
 * derives from their structure is the same: the key of the analyzer's second cache. Comments
 * and quoted identifiers stay verbatim, so they keep shapes apart.
 */
export function literalShape(sql: string): string | null {
  if (sql.includes('\\')) return null;
  let out = '';
  let copied = 0;
  for (const span of lexSql(sql)) {
    if (span.kind === 'string') {
      if (!isPlainClosedString(sql, span.start, span.end)) return null;
    } else if (span.kind !== 'number') {
      continue;
    }
    out += `${sql.slice(copied, span.start)}?`;
    copied = span.end;
  }
  return out + sql.slice(copied);
}

/** `'…'` with only doubled quotes inside, closed exactly at `end` (one line, no prefix). */
function isPlainClosedString(sql: string, start: number, end: number): boolean {
  if (sql.charCodeAt(start) !== QUOTE) return false;
  let i = start + 1;
  while (i < end) {
    if (sql.charCodeAt(i) === QUOTE) {
      if (i + 1 === end) return true;
      if (sql.charCodeAt(i + 1) !== QUOTE) return false; // a continued string: not plain
      i += 2;
    } else {
      i++;
    }
  }
  return false; // unterminated
}
