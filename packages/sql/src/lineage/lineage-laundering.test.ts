import fc from 'fast-check';
import { loadModule } from 'libpg-query';
import { beforeAll, describe, expect, it } from 'vitest';
import { fixtureCatalog } from './fixture-catalog.js';
import type { Derivation, LineageResult } from './lineage-result.js';
import { traceLineage } from './trace-lineage.js';

beforeAll(async () => {
  await loadModule();
});

function lineageOf(sql: string): LineageResult {
  const outcome = traceLineage(sql, fixtureCatalog());
  if (!outcome.ok) throw new Error(`refused: ${outcome.reason}`);
  return outcome.lineage;
}

function hasSource(sources: LineageResult['outputs'][number]['sources'], column: string): boolean {
  return sources.some(
    (s) => s.schema === 'public' && s.table === 'customers' && s.column === column,
  );
}

describe('laundering attempts are traced to the masked column', () => {
  // [statement, masked column, derivation of output 0]
  const attempts: readonly (readonly [string, string, Derivation])[] = [
    ['SELECT upper(email) FROM customers', 'email', 'transformed'],
    ['SELECT substr(card_number, 1, 6) FROM customers', 'card_number', 'transformed'],
    ["SELECT email || '' FROM customers", 'email', 'transformed'],
    ['SELECT email::varchar(5) FROM customers', 'email', 'transformed'],
    ['SELECT email::text FROM customers', 'email', 'direct'],
    [
      'SELECT (SELECT email FROM customers c2 WHERE c2.id = c.id) FROM customers c',
      'email',
      'direct',
    ],
    ['WITH x AS (SELECT email AS e FROM customers) SELECT e FROM x', 'email', 'direct'],
    ['SELECT * FROM (SELECT email FROM customers) s(alias)', 'email', 'direct'],
    ['SELECT email FROM customers UNION SELECT status FROM orders', 'email', 'direct'],
    ['SELECT status FROM orders UNION ALL SELECT email FROM customers', 'email', 'direct'],
    ['SELECT email FROM customer_contacts', 'email', 'direct'],
    ['SELECT address FROM contact_emails', 'email', 'direct'],
    ['SELECT row_to_json(c) FROM customers c', 'national_id', 'transformed'],
    ['SELECT c FROM customers c', 'card_number', 'transformed'],
    ['SELECT to_jsonb(c.*) FROM customers c', 'phone', 'transformed'],
    ['SELECT json_agg(email) FROM customers', 'email', 'transformed'],
    ['SELECT json_agg(c) FROM customers c', 'email', 'transformed'],
    ["SELECT string_agg(email, ',') FROM customers", 'email', 'transformed'],
    ['SELECT array_agg(email) FROM customers', 'email', 'transformed'],
    ['SELECT min(card_number) FROM customers', 'card_number', 'transformed'],
    ["SELECT format('%s', email) FROM customers", 'email', 'transformed'],
    ['SELECT md5(email) FROM customers', 'email', 'transformed'],
    ['SELECT count(email) FROM customers', 'email', 'aggregate-safe'],
    ["SELECT CASE WHEN email LIKE 'a%' THEN 1 END FROM customers", 'email', 'transformed'],
    ["SELECT count(CASE WHEN email LIKE 'a%' THEN 1 END) FROM customers", 'email', 'transformed'],
    ['SELECT (c).email FROM customers c', 'email', 'direct'],
    ['SELECT x.email FROM (SELECT (c).* FROM customers c) x', 'email', 'direct'],
    ['SELECT v FROM customers c, LATERAL (VALUES (c.email)) t(v)', 'email', 'direct'],
    ['SELECT u FROM customers c, unnest(ARRAY[c.email]) u', 'email', 'transformed'],
    ['SELECT lag(email) OVER (ORDER BY id) FROM customers', 'email', 'transformed'],
    ['SELECT ARRAY(SELECT email FROM customers)', 'email', 'transformed'],
    ['SELECT j.email FROM (customers JOIN orders USING (id)) j', 'email', 'direct'],
    ['SELECT id FROM customers FULL JOIN payments USING (id)', 'id', 'transformed'],
    [
      "WITH RECURSIVE r(n, v) AS (SELECT 1, '' UNION ALL SELECT n + 1, v || c.email FROM r JOIN customers c ON c.id = r.n) SELECT v FROM r",
      'email',
      'transformed',
    ],
    ['COPY (SELECT email FROM customers) TO STDOUT', 'email', 'direct'],
    ['UPDATE customers SET full_name = email RETURNING full_name', 'email', 'direct'],
    ['INSERT INTO orders (status) SELECT email FROM customers RETURNING status', 'email', 'direct'],
    ['WITH d AS (DELETE FROM customers RETURNING email) SELECT * FROM d', 'email', 'direct'],
  ];

  it.each(attempts)('%s', (sql, column, derivation) => {
    const [output] = lineageOf(sql).outputs;
    expect(output).toBeDefined();
    expect(hasSource(output?.sources ?? [], column)).toBe(true);
    expect(output?.derivation).toBe(derivation);
  });

  it('writes into a table the session can read back are reported', () => {
    for (const sql of [
      'CREATE TEMP TABLE t AS SELECT email FROM customers',
      'SELECT email INTO TEMP t FROM customers',
      'INSERT INTO orders (status) SELECT email FROM customers',
      'UPDATE customers SET full_name = email',
      'WITH u AS (UPDATE customers SET phone = email RETURNING 1) SELECT 1',
    ]) {
      const { writes } = lineageOf(sql);
      expect(
        writes.some((w) => hasSource(w.sources, 'email')),
        sql,
      ).toBe(true);
    }
  });

  it('predicates on a masked column are shaping uses', () => {
    for (const sql of [
      "SELECT id FROM customers WHERE email LIKE 'a%'",
      "SELECT count(*) FROM customers WHERE email = 'bob@example.com'",
      "SELECT count(*) FILTER (WHERE email LIKE 'a%') FROM customers",
      "SELECT id FROM customers c WHERE EXISTS (SELECT 1 FROM customers d WHERE d.id = c.id AND d.email LIKE 'a%')",
      "SELECT (SELECT 1 FROM customers d WHERE d.id = c.id AND d.email LIKE 'a%') FROM customers c",
      'SELECT id FROM customers ORDER BY email',
      'SELECT row_number() OVER (ORDER BY email) FROM customers',
      "DELETE FROM customers WHERE email = 'bob@example.com'",
      'SELECT l.source FROM customers JOIN crm.leads l USING (email)',
    ]) {
      const { shaping } = lineageOf(sql);
      expect(
        shaping.some((u) => hasSource([u.source], 'email')),
        sql,
      ).toBe(true);
    }
  });
});

/** Wrappers that keep a value flowing; each takes and returns a text expression. */
const EXPRESSION_WRAPPERS: readonly ((e: string) => string)[] = [
  (e) => `upper(${e})`,
  (e) => `lower(${e}::text)`,
  (e) => `md5(${e}::text)`,
  (e) => `substr(${e}::text, 1, 3)`,
  (e) => `coalesce(${e}::text, 'x')`,
  (e) => `concat(${e}, 'x')`,
  (e) => `format('%s', ${e})`,
  (e) => `(${e})::text`,
  (e) => `(${e})::varchar(4)`,
  (e) => `CASE WHEN ${e} IS NULL THEN 'n' ELSE ${e}::text END`,
  (e) => `(${e})::text || ''`,
  (e) => `array_to_string(ARRAY[${e}::text], ',')`,
  (e) => `row_to_json(ROW(${e}))::text`,
  (e) => `json_build_object('k', ${e})::text`,
  (e) => `(SELECT ${e})`,
  (e) => `greatest(${e}::text, '')`,
];

/** Wrappers over a query whose single output column is `v`. */
const QUERY_WRAPPERS: readonly ((q: string) => string)[] = [
  (q) => `SELECT v FROM (${q}) s`,
  (q) => `WITH w AS (${q}) SELECT v FROM w`,
  (q) => `SELECT (SELECT v FROM (${q}) s LIMIT 1) AS v`,
  (q) => `${q} UNION SELECT 'x'`,
  (q) => `SELECT 'x' AS v UNION ALL (${q})`,
  (q) => `SELECT * FROM (${q}) s(v)`,
  (q) => `SELECT s.v FROM (${q}) s, LATERAL (SELECT 1) l`,
  (q) => `SELECT v FROM (${q}) s JOIN orders o ON true`,
  (q) => `SELECT string_agg(v::text, ',') AS v FROM (${q}) s`,
  (q) => `SELECT min(v) AS v FROM (${q}) s GROUP BY v`,
  (q) => `SELECT x.v FROM (${q}) x JOIN (${q}) y USING (v)`,
  (q) => `WITH RECURSIVE r(v) AS (${q} UNION SELECT v FROM r) SELECT v FROM r`,
];

const COLUMNS = ['id', 'full_name', 'email', 'phone', 'card_number', 'national_id', 'created_at'];
const VIEW_COLUMNS = ['id', 'full_name', 'email'];

describe('property: a masked column always reaches the output it flows into', () => {
  it('through random compositions of functions, casts, CTEs, subqueries and unions', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...COLUMNS),
        fc.array(fc.nat(EXPRESSION_WRAPPERS.length - 1), { maxLength: 4 }),
        fc.array(fc.nat(QUERY_WRAPPERS.length - 1), { maxLength: 4 }),
        fc.boolean(),
        (column, expressionSteps, querySteps, viaView) => {
          // The view exposes only some columns; the others come from the table.
          const useView = viaView && VIEW_COLUMNS.includes(column);
          let expr = `${useView ? 'cc' : 'c'}.${column}`;
          for (const step of expressionSteps) expr = EXPRESSION_WRAPPERS[step]?.(expr) ?? expr;
          let query = `SELECT ${expr} AS v FROM ${useView ? 'customer_contacts cc' : 'customers c'}`;
          for (const step of querySteps) query = QUERY_WRAPPERS[step]?.(query) ?? query;
          const outcome = traceLineage(query, fixtureCatalog());
          if (!outcome.ok) throw new Error(`refused ${query}: ${outcome.reason}`);
          const [output] = outcome.lineage.outputs;
          expect(outcome.lineage.outputs).toHaveLength(1);
          expect(hasSource(output?.sources ?? [], column), query).toBe(true);
          expect(['direct', 'transformed'], query).toContain(output?.derivation);
        },
      ),
      { numRuns: 500 },
    );
  });

  it('never throws and never fails internally, whatever the text', () => {
    const fragments = fc.constantFrom(
      'SELECT',
      '*',
      'email',
      'c.email',
      'FROM',
      'customers c',
      'orders o',
      'JOIN',
      'USING (id)',
      'ON true',
      'WHERE',
      '(',
      ')',
      ',',
      'UNION',
      'WITH x AS',
      'x',
      'count(*)',
      'upper(email)',
      'GROUP BY 1',
      'ORDER BY 1',
      'LATERAL',
      'VALUES (1)',
      'AS v',
    );
    fc.assert(
      fc.property(fc.array(fragments, { maxLength: 14 }), (parts) => {
        const outcome = traceLineage(parts.join(' '), fixtureCatalog());
        if (!outcome.ok) expect(outcome.reason).not.toMatch(/^the tracer failed/);
      }),
      { numRuns: 2000 },
    );
  });
});
