import fc from 'fast-check';
import { parseSync, scanSync } from 'libpg-query';
import { beforeAll, describe, expect, it } from 'vitest';
import { lexSql } from './lex-sql.js';
import { loadSqlParser } from './load-sql-parser.js';

beforeAll(async () => {
  await loadSqlParser();
});

/** Literal, comment and quoted-identifier spans as PostgreSQL's own lexer sees them (ASCII text: bytes = indices). */
function postgresSpans(sql: string): string[] {
  const spans: string[] = [];
  let previousString = -1;
  let national = -1; // PostgreSQL's lexer returns N'…' as a keyword and a string
  for (const token of scanSync(sql).tokens) {
    if (/^[nN]$/.test(token.text)) {
      national = token.start;
      continue;
    }
    const kind = classify(token.text);
    // Only a string right after the `N` is a national literal (`n/* c */` is a name, then a comment).
    const nationalString = kind === 'string' && national !== -1 && national + 1 === token.start;
    const start = nationalString ? national : token.start;
    national = -1;
    if (kind === null) {
      previousString = -1;
      continue;
    }
    // A string continued on the next line is one literal to this package.
    if (
      kind === 'string' &&
      previousString !== -1 &&
      /^\s*$/.test(sql.slice(previousString, token.start))
    ) {
      spans[spans.length - 1] = spans[spans.length - 1]!.replace(/-\d+$/, `-${token.end}`);
    } else {
      spans.push(`${kind}:${start}-${token.end}`);
    }
    previousString = kind === 'string' ? token.end : -1;
  }
  return spans;
}

function classify(text: string): string | null {
  if (text.startsWith('--') || text.startsWith('/*')) return 'comment';
  if (/^\$\d/.test(text)) return 'parameter';
  if (/^(?:"|[uU]&")/.test(text)) return 'quoted-identifier';
  if (/^(?:'|[eEbBxXnN]'|[uU]&'|\$)/.test(text)) return 'string';
  if (/^(?:\d|\.\d)/.test(text)) return 'number';
  return null;
}

function ourSpans(sql: string): string[] {
  return lexSql(sql).map((s) => `${s.kind}:${s.start}-${s.end}`);
}

/** Pieces of SQL text, valid or not, that stress where tokens start and end. */
const piece = fc.constantFrom(
  "'a''b'",
  "'it\\'",
  "E'it\\'s'",
  "e'\\\\'",
  "E'a''b'",
  "N'x'",
  "B'0101'",
  "X'ff'",
  "U&'d\\0061t'",
  'U&"d\\0061t"',
  '"q""uoted"',
  '"a--b"',
  '$$x$$',
  '$$$$',
  '$q$ $ $$ $q$',
  '$a$x$a$',
  'a$b',
  'col$1',
  '$1',
  '$12',
  '1',
  '1.5',
  '.5',
  '1e10',
  '1.5e-3',
  '0x1F',
  '0o17',
  '0b101',
  '1_000',
  'x1',
  '-- line',
  '/* c */',
  '/* a /* nested */ b */',
  '--x\n',
  '-',
  '--',
  '/',
  '*',
  '+',
  '::',
  '..',
  ',',
  ';',
  '(',
  ')',
  'SELECT',
  'FROM',
  'e',
  'E',
  'b',
  'u&',
  'U',
  'n',
  'x',
  'menu',
  'n/* c */',
  '\n',
  ' ',
  '\t',
  "'a'\n'b'",
  "'a' \n -- c\n 'b'",
  "E'x'\n'y'",
);

describe('lexSql', () => {
  it('finds literals, comments, parameters and quoted identifiers where PostgreSQL does', () => {
    const text = fc
      .array(fc.tuple(piece, fc.constantFrom('', ' ', '\n')), { maxLength: 30 })
      .map((parts) => parts.map(([p, sep]) => p + sep).join(''));
    let compared = 0;
    fc.assert(
      fc.property(text, (sql) => {
        let expected: string[];
        try {
          parseSync(sql); // only text PostgreSQL accepts reaches the redactor
          expected = postgresSpans(sql);
        } catch {
          return;
        }
        compared++;
        expect(ourSpans(sql)).toEqual(expected);
      }),
      { numRuns: 4000 },
    );
    expect(compared).toBeGreaterThan(50);
  });

  it('agrees with PostgreSQL on generated valid statements', () => {
    const item = fc.constantFrom(
      "'a''b'",
      "E'it\\'s'",
      "e'\\\\'",
      "N'x'",
      "B'0101'",
      "X'ff'",
      "U&'d\\0061t'",
      'U&"d\\0061t"',
      '"q""uoted"',
      '"a--b"',
      '$$x$$',
      '$q$ $ $$ $q$',
      'a$b',
      'col$1',
      '$1',
      '$12',
      '1',
      '1.5',
      '.5',
      '1e10',
      '1.5e-3',
      '0x1F',
      '0o17',
      '0b101',
      '1_000',
      'x1',
      '-1',
      "'a'\n'b'",
      "'a' \n -- c\n 'b'",
      "E'x'\n'y'",
      "'x'::text",
      '1+2',
      'a-b',
      "interval '1 day'",
    );
    const gap = fc.constantFrom(
      ' ',
      '\n',
      ' /* c */ ',
      '/* a /* nested */ b */',
      ' -- line\n',
      '\t',
    );
    const statement = fc
      .array(fc.tuple(item, gap), { minLength: 1, maxLength: 12 })
      .map((items) => `SELECT ${items.map(([i, g]) => i + g).join(', ')}`);
    let compared = 0;
    fc.assert(
      fc.property(statement, (sql) => {
        try {
          parseSync(sql);
        } catch {
          return;
        }
        compared++;
        expect(ourSpans(sql)).toEqual(postgresSpans(sql));
      }),
      { numRuns: 2000 },
    );
    expect(compared).toBeGreaterThan(1500);
  });

  it('steps over identifiers whole, so a prefix letter or `$` inside one starts nothing', () => {
    expect(ourSpans("SELECT tablE'x', e'y', col$1, t2")).toEqual(['string:12-15', 'string:17-21']);
  });
});
