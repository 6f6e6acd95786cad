// Micro-benchmark of statement analysis (@portcullis/sql).
//
//   node --conditions=@portcullis/source --import tsx bench/sql-analysis.bench.ts
//
// Cases: a cold analysis (no cache) of a typical OLTP statement and of a five-table join with
// CTEs, a cached analysis of the same text (what the data path pays for a repeated
// statement), and a 1,000-row INSERT to show how cost grows with size. Baselines from the
// same run: libpg-query's bare parse of each text (the floor: the analysis parses, then walks
// the tree, fingerprints and redacts in JavaScript), a Map lookup of the text (the floor of a
// cache hit), and the straightforward pipeline of libpg-query's parse, scan, fingerprint and
// normalize, which this package avoids (see its README). Figures are medians of per-iteration
// times.
import { fingerprintSync, normalizeSync, parseSync, scanSync } from 'libpg-query';
import { Bench } from 'tinybench';
import { analyzeStatement, loadSqlParser, StatementAnalyzer } from '@portcullis/sql';
import { formatBenchTable } from './support/bench-table.js';

await loadSqlParser();

const oltp = 'UPDATE pgbench_accounts SET abalance = abalance + -4321 WHERE aid = 77123';

const join = `WITH recent AS (
    SELECT o.id, o.customer_id, o.total FROM orders o WHERE o.created_at > now() - interval '7 days'
  ), vip AS (
    SELECT customer_id FROM recent GROUP BY customer_id HAVING sum(total) > 1000
  )
  SELECT c.name, r.id, p.title, oi.qty * p.price AS amount, w.city
  FROM recent r
  JOIN vip v ON v.customer_id = r.customer_id
  JOIN customers c ON c.id = r.customer_id
  JOIN order_items oi ON oi.order_id = r.id
  JOIN products p ON p.id = oi.product_id
  LEFT JOIN warehouses w ON w.id = p.warehouse_id
  LEFT JOIN regions g ON g.id = c.region_id
  WHERE c.status = 'active' AND p.price > $1
  ORDER BY amount DESC LIMIT 50`;

const bulk = `INSERT INTO events (id, kind, payload, at) VALUES ${Array.from(
  { length: 1000 },
  (_, i) => `(${i}, 'click', '{"x": ${i}}', '2024-01-01 00:00:00')`,
).join(', ')}`;

for (const text of [oltp, join, bulk]) {
  const result = analyzeStatement(text);
  if (!result.ok) throw new Error(`benchmark statement refused: ${result.message}`);
}

const analyzer = new StatementAnalyzer();
analyzer.analyze(oltp);
const textMap = new Map([[oltp, 1]]);

let sink = 0;
interface Case {
  readonly name: string;
  readonly fn: () => void;
}

const cases: Case[] = [
  { name: 'OLTP UPDATE: analyze, cold', fn: () => void (sink += +analyzeStatement(oltp).ok) },
  { name: 'OLTP UPDATE: analyze, cached', fn: () => void (sink += +analyzer.analyze(oltp).ok) },
  { name: 'OLTP UPDATE: Map.get (floor)', fn: () => void (sink += textMap.get(oltp)!) },
  { name: 'OLTP UPDATE: libpg-query parse', fn: () => void (sink += parse(oltp)) },
  { name: 'OLTP UPDATE: libpg-query all four', fn: () => void (sink += allFour(oltp)) },
  { name: 'join + CTEs: analyze, cold', fn: () => void (sink += +analyzeStatement(join).ok) },
  { name: 'join + CTEs: libpg-query parse', fn: () => void (sink += parse(join)) },
  { name: '1,000-row INSERT: analyze, cold', fn: () => void (sink += +analyzeStatement(bulk).ok) },
  { name: '1,000-row INSERT: libpg-query parse', fn: () => void (sink += parse(bulk)) },
];

/** The parse alone: the floor of a cold analysis. */
function parse(text: string): number {
  return parseSync(text).stmts?.length ?? 0;
}

/** The straightforward pipeline: parse, scan, fingerprint and normalize, all in the module. */
function allFour(text: string): number {
  const tokens = scanSync(text).tokens.length;
  return parse(text) + tokens + fingerprintSync(text).length + normalizeSync(text).length;
}

const bench = new Bench({ time: 1500, warmupTime: 300, throws: true });
for (const c of cases) bench.add(c.name, c.fn);
await bench.run();

const medianNs = new Map<string, number>();
for (const task of bench.tasks) {
  const result = task.result;
  if (result.state !== 'completed') throw new Error(`${task.name}: ${result.state}`);
  medianNs.set(task.name, result.latency.p50 * 1e6);
}

console.log(
  `texts: OLTP ${oltp.length} B, join ${join.length} B, INSERT ${(bulk.length / 1024).toFixed(0)} KiB; ` +
    `node ${process.version}, ${process.arch}`,
);
console.log(
  formatBenchTable(
    ['case', 'median µs', 'ops/s'],
    cases.map((c) => {
      const ns = medianNs.get(c.name)!;
      const us = ns / 1000;
      return [c.name, us < 1 ? us.toFixed(3) : us.toFixed(1), String(Math.round(1e9 / ns))];
    }),
  ),
);
if (sink === 0) console.log('(unreachable)');
