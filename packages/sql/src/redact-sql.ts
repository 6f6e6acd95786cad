import { lexSql, type SqlSpan } from './lex-sql.js';

/**
 * `sql` with every literal replaced by a `$n` placeholder and every comment removed.
 *
 * Literals are strings in all their forms (`'…'`, `E'…'`, `U&'…'`, `B'…'`, `X'…'`, dollar
 * quoted; a string continued on the next line is one) and numbers. Placeholders are numbered
 * after the highest `$n` parameter already in the text, so extended-protocol text keeps its
 * own parameters apart. Comments go because they can carry anything: query tags often hold
 * values. Whitespace at either end is trimmed. `spans` are {@link lexSql}'s, when the caller
 * has them already.
 */
export function redactSql(sql: string, spans: readonly SqlSpan[] = lexSql(sql)): string {
  let next = 1;
  for (const span of spans) {
    if (span.kind === 'parameter') {
      const n = Number(sql.slice(span.start + 1, span.end));
      if (Number.isSafeInteger(n) && n >= next) next = n + 1;
    }
  }
  let out = '';
  let copied = 0; // text before this index is already in `out`
  for (const span of spans) {
    if (span.kind === 'parameter' || span.kind === 'quoted-identifier') continue;
    out += sql.slice(copied, span.start);
    copied = span.end;
    if (span.kind !== 'comment') {
      out += `$${next++}`;
    } else if (out.length === 0 || isSpace(out.charCodeAt(out.length - 1))) {
      // `a /* c */ b` becomes `a b`, not `a  b`.
      while (sql.charCodeAt(copied) === 0x20 || sql.charCodeAt(copied) === 0x09) copied++;
    } else if (copied < sql.length && !isSpace(sql.charCodeAt(copied))) {
      out += ' '; // `a/**/b` must not become `ab`
    }
  }
  return (out + sql.slice(copied)).trim();
}

function isSpace(c: number): boolean {
  return c === 0x20 || (c >= 0x09 && c <= 0x0d);
}
