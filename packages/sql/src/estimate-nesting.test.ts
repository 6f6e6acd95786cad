import fc from 'fast-check';
import { scanSync } from 'libpg-query';
import { beforeAll, describe, expect, it } from 'vitest';
import { analyzeStatement } from './analyze-statement.js';
import { estimateNesting, MAX_NESTING, nestingBound } from './estimate-nesting.js';
import { lexSql, plainCodeTokens } from './lex-sql.js';
import { loadSqlParser } from './load-sql-parser.js';

beforeAll(async () => {
  await loadSqlParser();
});

function estimate(sql: string): number {
  return estimateNesting(scanSync(sql).tokens.map((t) => t.text));
}

const rep = (s: string, n: number): string => s.repeat(n);

/** Statements that nest `n` levels deep, one way each: brackets, chains, set operations, … */
const deep: Record<string, (n: number) => string> = {
  'operator chain': (n) => `SELECT ${Array(n).fill('1').join(' + ')}`,
  concatenation: (n) => `SELECT ${Array(n).fill("'a'").join(' || ')}`,
  'cast chain': (n) => `SELECT 1${rep('::int', n)}`,
  'NOT chain': (n) => `SELECT ${rep('NOT ', n)}true`,
  'IS NULL chain': (n) => `SELECT a${rep(' IS NULL', n)}`,
  'COLLATE chain': (n) => `SELECT a${rep(' COLLATE "C"', n)}`,
  'AT TIME ZONE chain': (n) => `SELECT a${rep(" AT TIME ZONE 'UTC'", n)}`,
  'JSON operator chain': (n) => `SELECT a${rep("->'k'", n)}`,
  'nested calls': (n) => `SELECT ${rep('f(', n)}1${rep(')', n)}`,
  'nested aggregates': (n) => `SELECT ${rep('sum(', n)}x${rep(') OVER ()', n)}`,
  'scalar subqueries': (n) => `SELECT ${rep('(SELECT ', n)}1${rep(')', n)}`,
  'FROM subqueries': (n) => `SELECT * FROM ${rep('(SELECT * FROM ', n)}t${rep(') x', n)}`,
  'UNION chain': (n) => Array(n).fill('SELECT a, b FROM t WHERE a AND b').join(' UNION ALL '),
  'bracketed UNION': (n) => `${rep('(SELECT 1 UNION ', n)}SELECT 1${rep(')', n)}`,
  'JOIN chain': (n) => `SELECT * FROM a${rep(' JOIN a USING (x, y)', n)}`,
  'CASE in ELSE': (n) => `SELECT ${rep('CASE WHEN true THEN 1 ELSE ', n)}1${rep(' END', n)}`,
  'ARRAY nesting': (n) => `SELECT ${rep('ARRAY[', n)}1${rep(']', n)}`,
  'nested CTEs': (n) => `${rep('WITH a AS (', n)}SELECT 1${rep(') SELECT 1', n)}`,
  'UPDATE chain': (n) => `UPDATE t SET a = ${Array(n).fill('1').join(' - ')}`,
  // Not plain text, so PostgreSQL's lexer tokenizes these for the guard.
  'commented subqueries': (n) => `SELECT ${rep('(/* c */ SELECT ', n)}1${rep(')', n)}`,
  'chain after an E string': (n) => `SELECT E'\\n'${rep(" || 'a'", n)}`,
  'dollar-quoted chain': (n) => `SELECT $$($$${rep(' || $$)$$', n)}`,
};

/** The largest n whose statement the guard admits. */
function largestAdmitted(build: (n: number) => string): number {
  let lo = 1;
  let hi = 2 * MAX_NESTING;
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2);
    if (estimate(build(mid)) <= MAX_NESTING) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

describe('estimateNesting', () => {
  it('does not grow with flat lists', () => {
    const flat = [
      `SELECT 1 WHERE ${Array(5000).fill('a = 1').join(' AND ')}`,
      `SELECT 1 WHERE ${Array(5000).fill('(a = 1 AND b = 2)').join(' OR ')}`,
      `SELECT 1 WHERE a IN (${Array(5000).fill('1').join(', ')})`,
      `INSERT INTO t VALUES ${Array(5000).fill('(1, 2 + 3, 4)').join(', ')}`,
      `SELECT CASE ${Array(5000).fill('WHEN a = 1 THEN b + 1').join(' ')} END`,
      `SELECT a${rep('[1]', 5000)}, (a)${rep('.b', 5000)}`,
    ];
    for (const sql of flat) expect(estimate(sql)).toBeLessThan(10);
  });

  it('counts brackets, operators and chains, not what literals and comments hold', () => {
    expect(estimate("SELECT '((((((((((', $$[[[[[[$$ /* (((((( */ -- ((((((\n")).toBe(1);
    expect(estimate('SELECT ((((1))))')).toBe(1 + 4 * 2);
    expect(estimate('SELECT 1 + 2 + 3, 4')).toBe(1 + 2);
    expect(estimate('SELECT (SELECT 1)')).toBe(1 + 4);
    // Commas and AND end an operator chain, not a set operation.
    expect(estimate('SELECT a, b UNION SELECT a, b UNION SELECT 1 WHERE x AND y')).toBe(1 + 2);
  });

  it('closes a CASE at its END, not at an unrelated END', () => {
    expect(estimate('SELECT CASE WHEN a THEN 1 END + 1')).toBe(1 + 3);
    expect(estimate('BEGIN; SELECT 1; END')).toBe(1);
  });
});

describe('nestingBound', () => {
  it("is never below the estimate from PostgreSQL's tokens", () => {
    const piece = fc.constantFrom(
      '(',
      ')',
      '[',
      ']',
      'CASE',
      'END',
      'WHEN',
      'SELECT',
      'UNION',
      'JOIN',
      'COLLATE',
      'AT',
      'NOT',
      '+',
      '::',
      '->>',
      ',',
      'AND',
      ';',
      "'(('",
      '$$)[$$',
      '"x(y"',
      '/* ( */',
      '-- [\n',
      'x',
      '1',
      'sum',
      'ELSE',
      'IS',
      "e'+'",
      'u&"("',
    );
    const text = fc
      .array(fc.tuple(piece, fc.constantFrom('', ' ', '\n')), { maxLength: 120 })
      .map((parts) => parts.map(([p, sep]) => p + sep).join(''));
    fc.assert(
      fc.property(text, (sql) => {
        let tokens;
        try {
          tokens = scanSync(sql).tokens;
        } catch {
          return; // not lexable: the parser refuses it before any deep step
        }
        const exact = estimateNesting(tokens.map((t) => t.text));
        expect(nestingBound(sql, Infinity)).toBeGreaterThanOrEqual(exact);
        const spans = lexSql(sql);
        const plain = plainCodeTokens(sql, spans);
        if (plain !== null) expect(estimateNesting(plain)).toBeGreaterThanOrEqual(exact);
      }),
      { numRuns: 2000 },
    );
  });

  it('stops counting past the limit', () => {
    expect(nestingBound('('.repeat(10_000), 100)).toBeLessThan(110);
    expect(nestingBound('UPDATE pgbench_accounts SET a = a + 1 WHERE aid = 7', 2000)).toBe(
      1 + 8 * 3 + 3, // eight runs of letters (the underscore splits one), three operators
    );
  });
});

describe('the nesting guard with the real parser', () => {
  it.each(Object.entries(deep))('admits and analyzes %s up to the limit', (_, build) => {
    const n = largestAdmitted(build);
    const result = analyzeStatement(build(n));
    if (!result.ok) expect(result.reason).toBe('too-deep'); // only the parser's own stack limit
    expect(analyzeStatement(build(n + 1))).toMatchObject({ ok: false, reason: 'too-deep' });
  });

  it.each(Object.entries(deep))('refuses %s far beyond the limit', (_, build) => {
    expect(analyzeStatement(build(20_000), { maxStatementBytes: 10_000_000 })).toMatchObject({
      ok: false,
    });
  });

  it('admits what real statements need', () => {
    for (const sql of [
      deep['operator chain']!(1000),
      deep['nested calls']!(500),
      deep['scalar subqueries']!(250),
      deep['UNION chain']!(100),
      deep['JOIN chain']!(300),
    ]) {
      expect(analyzeStatement(sql).ok).toBe(true);
    }
  });

  it('analyzes big flat statements', () => {
    const rows = Array.from({ length: 2000 }, (_, i) => `(${i}, 'a (b, c) - d', '{"x": [${i}]}')`);
    const result = analyzeStatement(`INSERT INTO t VALUES ${rows.join(', ')}`);
    expect(result).toMatchObject({ ok: true, analysis: { kind: 'insert' } });
  });

  it('leaves the parser working after all of the above', () => {
    const result = analyzeStatement("SELECT a FROM s.t WHERE b = 'x'");
    expect(result).toMatchObject({
      ok: true,
      analysis: { kind: 'select', tablesRead: [{ schema: 's', name: 't' }], readOnly: true },
    });
  });
});
