import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { analyzeStatement } from './analyze-statement.js';
import { loadSqlParser } from './load-sql-parser.js';
import { redactSql } from './redact-sql.js';
import { utf8Length } from './utf8-length.js';

beforeAll(async () => {
  await loadSqlParser();
});

/** Every literal a test plants starts with this, so any leak of one is easy to find. */
const MARK = 'sekrit';

/** Text a string literal may hold: any well-formed Unicode except NUL. */
const content = fc
  .string({ unit: 'binary', maxLength: 24 })
  .filter((s) => !s.includes('\0'))
  .map((s) => MARK + s);

/** One string literal, in each of the forms PostgreSQL's lexer knows. */
const stringLiteral = fc.oneof(
  content.map((s) => `'${s.replaceAll("'", "''")}'`),
  content.map((s) => `E'${s.replaceAll('\\', '\\\\').replaceAll("'", "\\'")}'`),
  content.map((s) => `U&'${s.replaceAll('\\', '\\\\').replaceAll("'", "''")}'`),
  content.filter((s) => !s.includes('$q$') && !s.endsWith('$')).map((s) => `$q$${s}$q$`),
  content.filter((s) => !s.includes('$$') && !s.endsWith('$')).map((s) => `$$${s}$$`),
);

/** Numbers of six digits or more, so no placeholder number can contain one. */
const numberLiteral = fc.oneof(
  fc.integer({ min: 100_000, max: 2 ** 31 - 1 }).map(String),
  fc
    .tuple(fc.integer({ min: 100_000, max: 10 ** 9 }), fc.integer({ min: 100_000, max: 10 ** 6 }))
    .map(([a, b]) => `${a}.${b}`),
  fc.integer({ min: 100_000, max: 10 ** 9 }).map((n) => `${n}e7`),
  fc.integer({ min: 0x100000, max: 0x7fffffff }).map((n) => `0x${n.toString(16)}`),
);

const literal = fc.oneof(stringLiteral, numberLiteral);

type Slot = 'any' | 'string';
interface Template {
  readonly slots: readonly Slot[];
  /** Builds the statement from one text per slot. */
  readonly build: (values: readonly string[]) => string;
  /** The highest `$n` the template itself holds. */
  readonly params: number;
}

const templates: readonly Template[] = [
  {
    slots: ['any', 'any'],
    params: 1,
    build: ([a, b]) => `SELECT * FROM t WHERE a = ${a} AND b IN (${b}, $1)`,
  },
  {
    slots: ['any', 'string'],
    params: 0,
    build: ([a, b]) => `INSERT INTO t (a, b) VALUES (${a}, ${b}) RETURNING id`,
  },
  { slots: ['any'], params: 2, build: ([a]) => `UPDATE t SET a = ${a} WHERE id = $2` },
  { slots: ['string'], params: 0, build: ([a]) => `COPY t FROM ${a}` },
  { slots: ['string'], params: 0, build: ([a]) => `CREATE ROLE r LOGIN PASSWORD ${a}` },
  { slots: ['string'], params: 0, build: ([a]) => `COMMENT ON TABLE t IS ${a}` },
  { slots: ['string'], params: 0, build: ([a]) => `NOTIFY ch, ${a}` },
  { slots: ['string'], params: 0, build: ([a]) => `SET application_name = ${a}` },
  { slots: ['string'], params: 0, build: ([a]) => `DO ${a}` },
  { slots: ['any'], params: 0, build: ([a]) => `PREPARE p AS SELECT ${a}` },
  { slots: ['any', 'any'], params: 0, build: ([a, b]) => `EXECUTE p(${a}, ${b})` },
  { slots: ['string'], params: 0, build: ([a]) => `SELECT * FROM t WHERE d > date ${a}` },
  {
    slots: ['any', 'any'],
    params: 0,
    build: ([a, b]) => `SELECT * FROM t WHERE a = ${a}; DELETE FROM u WHERE b = ${b}`,
  },
  {
    slots: ['any', 'string', 'any'],
    params: 0,
    build: ([a, b, c]) =>
      `WITH x AS (SELECT ${a} AS v) SELECT CASE WHEN v = ${b} THEN ${c} END FROM x`,
  },
];

const planted = fc
  .constantFrom(...templates)
  .chain((template) =>
    fc
      .tuple(...template.slots.map((slot) => (slot === 'string' ? stringLiteral : literal)))
      .map((values) => ({ template, values })),
  );

describe('redactedText', () => {
  it('holds the statement with each planted literal, and only it, replaced', () => {
    fc.assert(
      fc.property(planted, ({ template, values }) => {
        const sql = template.build(values);
        const result = analyzeStatement(sql);
        if (!result.ok) throw new Error(`${result.reason}: ${result.message} in ${sql}`);
        const placeholders = values.map((_, i) => `$${template.params + i + 1}`);
        expect(result.analysis.redactedText).toBe(template.build(placeholders));
        expect(result.analysis.redactedText).not.toContain(MARK);
        for (const value of values) expect(result.analysis.redactedText).not.toContain(value);
      }),
      { numRuns: 1500 },
    );
  });

  it('drops literals hidden in comments, which can carry anything', () => {
    fc.assert(
      fc.property(content, literal, (secret, lit) => {
        const comment = secret.replaceAll('*/', '').replaceAll('/*', '');
        const line = secret.replace(/[\n\r]/g, '');
        const sql = `SELECT ${lit} /* ${comment} */ FROM t -- ${line}\nWHERE x = 1`;
        const result = analyzeStatement(sql);
        if (!result.ok) throw new Error(`${result.reason}: ${result.message}`);
        expect(result.analysis.redactedText).toBe('SELECT $1 FROM t \nWHERE x = $2');
      }),
      { numRuns: 300 },
    );
  });
});

describe('redactSql', () => {
  it('keeps text without literals or comments as it is, but for outer whitespace', () => {
    expect(redactSql(' SELECT a.b, "c""d", e$1 FROM t1 ')).toBe('SELECT a.b, "c""d", e$1 FROM t1');
  });

  it('redacts to the end what it cannot see closed, rather than leak it', () => {
    expect(redactSql("SELECT 'never closed")).toBe('SELECT $1');
    expect(redactSql('SELECT $q$ never closed')).toBe('SELECT $1');
    expect(redactSql('SELECT 1 /* never closed')).toBe('SELECT $1');
  });
});

describe('utf8Length', () => {
  it('counts like TextEncoder, lone surrogates as U+FFFD', () => {
    fc.assert(
      fc.property(
        fc.string({ unit: fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c)) }),
        (s) => {
          expect(utf8Length(s)).toBe(new TextEncoder().encode(s).length);
        },
      ),
      { numRuns: 500 },
    );
    expect(utf8Length('a€😀')).toBe(1 + 3 + 4);
  });
});
