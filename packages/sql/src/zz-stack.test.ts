import { it } from 'vitest';
import { scanSync, parseSync, fingerprintSync, loadModule } from 'libpg-query';
import { estimateNesting, MAX_NESTING } from './estimate-nesting.js';
function estimate(sql: string): number { return estimateNesting(scanSync(sql).tokens); }
const rep = (s: string, n: number): string => s.repeat(n);

/** Statements that nest `n` levels deep, one way each: brackets, chains, set operations, … */
const deep: Record<string, (n: number) => string> = {
  'operator chain': (n) => `SELECT ${Array(n).fill('1').join(' + ')}`,
  'concatenation': (n) => `SELECT ${Array(n).fill("'a'").join(' || ')}`,
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


it('seq', async () => {
  await loadModule();
  for (const [name, build] of Object.entries(deep)) {
    const n = largestAdmitted(build);
    const q = build(n);
    for (const [fname, f] of [['parse', parseSync], ['fp', fingerprintSync]] as const) {
      try { (f as (s: string) => unknown)(q); } catch (e) { console.log(name, n, fname, (e as Error).stack?.slice(0, 2500)); return; }
    }
    console.log(name, n, 'ok');
  }
});
