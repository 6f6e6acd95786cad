import { loadModule } from 'libpg-query';
import { beforeAll, describe, expect, it } from 'vitest';
import { fixtureCatalog, summarize, type LineageSummary } from './fixture-catalog.js';
import { traceLineage, traceLineageEach, type TraceLineageOptions } from './trace-lineage.js';

beforeAll(async () => {
  await loadModule();
});

type Expected = readonly (readonly [name: string, derivation: string, sources: string])[];

interface Case {
  readonly sql: string;
  readonly outputs: Expected;
  /** Sorted `clause:table.column` uses; empty when nothing shapes the rows. */
  readonly shaping?: string;
  readonly writes?: LineageSummary['writes'];
}

function traced(sql: string, options?: TraceLineageOptions): LineageSummary {
  const outcome = traceLineage(sql, fixtureCatalog(), options);
  if (!outcome.ok) throw new Error(`refused: ${outcome.reason}`);
  return summarize(outcome.lineage);
}

function refusal(sql: string, options?: TraceLineageOptions): string {
  const outcome = traceLineage(sql, fixtureCatalog(), options);
  if (outcome.ok) throw new Error(`traced: ${JSON.stringify(summarize(outcome.lineage))}`);
  return outcome.reason;
}

const CUSTOMER_COLUMNS = [
  'id',
  'full_name',
  'email',
  'phone',
  'card_number',
  'national_id',
  'created_at',
];
const ORDER_COLUMNS = ['id', 'customer_id', 'status', 'total_cents', 'placed_at'];
/** Every customers column, as a sorted source list (a whole-row reference). */
const ALL_CUSTOMERS = CUSTOMER_COLUMNS.map((c) => `customers.${c}`)
  .sort()
  .join(' ');

function direct(table: string, columns: readonly string[]): Expected {
  return columns.map((column) => [column, 'direct', `${table}.${column}`] as const);
}

function check(cases: Readonly<Record<string, Case>>): void {
  it.each(Object.entries(cases))('%s', (_name, { sql, outputs, shaping = '', writes = [] }) => {
    const summary = traced(sql);
    expect(summary.outputs).toEqual(outputs);
    expect(summary.shaping).toBe(shaping);
    expect(summary.writes).toEqual(writes);
  });
}

describe('columns and names', () => {
  check({
    'plain column': {
      sql: 'SELECT email FROM customers',
      outputs: [['email', 'direct', 'customers.email']],
    },
    'alias and qualified references': {
      sql: 'SELECT c.email AS contact, customers_email FROM (SELECT email AS customers_email FROM customers) s, customers c',
      outputs: [
        ['contact', 'direct', 'customers.email'],
        ['customers_email', 'direct', 'customers.email'],
      ],
    },
    'schema-qualified and table-qualified references': {
      sql: 'SELECT public.customers.email, customers.phone FROM customers',
      outputs: [
        ['email', 'direct', 'customers.email'],
        ['phone', 'direct', 'customers.phone'],
      ],
    },
    'constants, parameters and session values': {
      sql: "SELECT 1, 'a' AS b, $1, current_user, now()",
      outputs: [
        ['?column?', 'constant', ''],
        ['b', 'constant', ''],
        ['?column?', 'constant', ''],
        ['current_user', 'constant', ''],
        ['now', 'constant', ''],
      ],
    },
    'search_path resolution comes from the catalog': {
      sql: 'SELECT l.email, k.email, c.email FROM leads l, crm.customers k, customers c',
      outputs: [
        ['email', 'direct', 'crm.leads.email'],
        ['email', 'direct', 'crm.customers.email'],
        ['email', 'direct', 'customers.email'],
      ],
    },
    'schema-qualified reference tells same-named tables apart': {
      sql: 'SELECT crm.customers.email, public.customers.email FROM customers, crm.customers',
      outputs: [
        ['email', 'direct', 'crm.customers.email'],
        ['email', 'direct', 'customers.email'],
      ],
    },
    'foreign tables and other relations are their own sources': {
      sql: 'SELECT iban, last_value FROM ext_accounts, order_seq',
      outputs: [
        ['iban', 'direct', 'ext_accounts.iban'],
        ['last_value', 'direct', 'order_seq.last_value'],
      ],
    },
    'SELECT * in catalog order': {
      sql: 'SELECT * FROM customers',
      outputs: direct('customers', CUSTOMER_COLUMNS),
    },
    'TABLE is SELECT *': {
      sql: 'TABLE orders',
      outputs: direct('orders', ORDER_COLUMNS),
    },
    'table alias with column aliases renames but keeps the source': {
      sql: 'SELECT * FROM orders o(a, b)',
      outputs: [
        ['a', 'direct', 'orders.id'],
        ['b', 'direct', 'orders.customer_id'],
        ...direct('orders', ORDER_COLUMNS.slice(2)),
      ],
    },
    'rel.* next to a column': {
      sql: 'SELECT o.*, c.email FROM customers c JOIN orders o ON o.customer_id = c.id',
      outputs: [...direct('orders', ORDER_COLUMNS), ['email', 'direct', 'customers.email']],
      shaping: 'join:customers.id join:orders.customer_id',
    },
  });
});

describe('joins and SELECT *', () => {
  check({
    '* over a join: FROM items left to right': {
      sql: 'SELECT * FROM orders o, customers c',
      outputs: [...direct('orders', ORDER_COLUMNS), ...direct('customers', CUSTOMER_COLUMNS)],
    },
    'USING merges the column (left side for an inner join) and lists it first': {
      sql: 'SELECT * FROM customers JOIN payments USING (id)',
      outputs: [
        ['id', 'direct', 'customers.id'],
        ...direct('customers', CUSTOMER_COLUMNS.slice(1)),
        ...direct('payments', ['order_id', 'card_number', 'amount_cents']),
      ],
      shaping: 'join:customers.id join:payments.id',
    },
    'NATURAL merges every common column, in left order': {
      sql: 'SELECT * FROM customers NATURAL JOIN payments',
      outputs: [
        ['id', 'direct', 'customers.id'],
        ['card_number', 'direct', 'customers.card_number'],
        ...direct('customers', ['full_name', 'email', 'phone', 'national_id', 'created_at']),
        ...direct('payments', ['order_id', 'amount_cents']),
      ],
      shaping:
        'join:customers.card_number join:customers.id join:payments.card_number join:payments.id',
    },
    'RIGHT JOIN USING takes the right side': {
      sql: 'SELECT card_number FROM customers RIGHT JOIN payments USING (card_number)',
      outputs: [['card_number', 'direct', 'payments.card_number']],
      shaping: 'join:customers.card_number join:payments.card_number',
    },
    'FULL JOIN USING coalesces both sides': {
      sql: 'SELECT id FROM customers FULL JOIN payments USING (id)',
      outputs: [['id', 'transformed', 'customers.id payments.id']],
      shaping: 'join:customers.id join:payments.id',
    },
    'qualified reference reaches the unmerged column of a USING join': {
      sql: 'SELECT payments.card_number, card_number FROM customers JOIN payments USING (card_number)',
      outputs: [
        ['card_number', 'direct', 'payments.card_number'],
        ['card_number', 'direct', 'customers.card_number'],
      ],
      shaping: 'join:customers.card_number join:payments.card_number',
    },
    'join alias with column aliases': {
      sql: 'SELECT j.* FROM (customers JOIN payments USING (id)) AS j(a, b)',
      outputs: [
        ['a', 'direct', 'customers.id'],
        ['b', 'direct', 'customers.full_name'],
        ...direct('customers', CUSTOMER_COLUMNS.slice(2)),
        ...direct('payments', ['order_id', 'card_number', 'amount_cents']),
      ],
      shaping: 'join:customers.id join:payments.id',
    },
    'USING alias names only the merged columns': {
      sql: 'SELECT x.id FROM customers JOIN payments USING (id) AS x',
      outputs: [['id', 'direct', 'customers.id']],
      shaping: 'join:customers.id join:payments.id',
    },
    'nested joins': {
      sql: 'SELECT * FROM customers c LEFT JOIN (orders o JOIN payments p ON p.order_id = o.id) ON o.customer_id = c.id',
      outputs: [
        ...direct('customers', CUSTOMER_COLUMNS),
        ...direct('orders', ORDER_COLUMNS),
        ...direct('payments', ['id', 'order_id', 'card_number', 'amount_cents']),
      ],
      shaping: 'join:customers.id join:orders.customer_id join:orders.id join:payments.order_id',
    },
  });
});

describe('expressions', () => {
  check({
    'functions, operators and casts': {
      sql: 'SELECT upper(email), email || phone, email::text, email::varchar, email::varchar(5), id::bigint, CAST(phone AS text), email COLLATE "C" FROM customers',
      outputs: [
        ['upper', 'transformed', 'customers.email'],
        ['?column?', 'transformed', 'customers.email customers.phone'],
        ['email', 'direct', 'customers.email'],
        ['email', 'direct', 'customers.email'],
        ['email', 'transformed', 'customers.email'],
        ['id', 'transformed', 'customers.id'],
        ['phone', 'direct', 'customers.phone'],
        ['email', 'direct', 'customers.email'],
      ],
    },
    'CASE, COALESCE, NULLIF, GREATEST': {
      sql: "SELECT CASE WHEN id > 1 THEN 'x' ELSE email END, CASE WHEN id > 1 THEN 'x' END, coalesce(email, phone), nullif(email, ''), greatest(id, 0) FROM customers",
      outputs: [
        ['email', 'transformed', 'customers.email customers.id'],
        ['case', 'transformed', 'customers.id'],
        ['coalesce', 'transformed', 'customers.email customers.phone'],
        ['nullif', 'transformed', 'customers.email'],
        ['greatest', 'transformed', 'customers.id'],
      ],
    },
    'array and row constructors, subscripts, field selection': {
      sql: 'SELECT ARRAY[email, phone], ROW(id, email), (ARRAY[email])[1], (c).email FROM customers c',
      outputs: [
        ['array', 'transformed', 'customers.email customers.phone'],
        ['row', 'transformed', 'customers.email customers.id'],
        ['array', 'transformed', 'customers.email'],
        ['email', 'direct', 'customers.email'],
      ],
    },
    '(rel).* expands like rel.*': {
      sql: 'SELECT (o).* FROM orders o',
      outputs: direct('orders', ORDER_COLUMNS),
    },
    'whole-row references carry every column': {
      sql: 'SELECT c, customers, row_to_json(c.*) FROM customers c, customers',
      outputs: [
        ['c', 'transformed', ALL_CUSTOMERS],
        ['customers', 'transformed', ALL_CUSTOMERS],
        ['row_to_json', 'transformed', ALL_CUSTOMERS],
      ],
    },
    'correlated scalar subquery keeps the inner derivation and name': {
      sql: 'SELECT (SELECT o.status FROM orders o WHERE o.customer_id = c.id LIMIT 1) FROM customers c',
      outputs: [['status', 'direct', 'orders.status']],
      shaping: 'where:customers.id where:orders.customer_id',
    },
    'EXISTS, IN and ARRAY() in the select list': {
      sql: 'SELECT EXISTS (SELECT 1 FROM orders o WHERE o.customer_id = c.id), c.id IN (1, 2), ARRAY(SELECT status FROM orders), c.email = ANY (SELECT email FROM crm.leads) FROM customers c',
      outputs: [
        ['exists', 'constant', ''],
        ['?column?', 'transformed', 'customers.id'],
        ['array', 'transformed', 'orders.status'],
        ['?column?', 'transformed', 'crm.leads.email customers.email'],
      ],
      shaping: 'where:customers.id where:orders.customer_id',
    },
    'SQL-syntax functions': {
      sql: "SELECT extract(year FROM created_at), position('@' IN email), substring(email FROM 2), trim(phone), overlay(card_number PLACING 'x' FROM 1) FROM customers",
      outputs: [
        ['extract', 'transformed', 'customers.created_at'],
        ['position', 'transformed', 'customers.email'],
        ['substring', 'transformed', 'customers.email'],
        ['btrim', 'transformed', 'customers.phone'],
        ['overlay', 'transformed', 'customers.card_number'],
      ],
    },
    'JSON and XML constructors': {
      sql: "SELECT json_build_object('e', email), json_object('p': phone), xmlelement(name x, email) FROM customers",
      outputs: [
        ['json_build_object', 'transformed', 'customers.email'],
        ['json_object', 'transformed', 'customers.phone'],
        ['xmlelement', 'transformed', 'customers.email'],
      ],
    },
  });
});

describe('aggregates and window functions', () => {
  check({
    'count hides values': {
      sql: 'SELECT count(*), count(email), count(DISTINCT email), count(c.*) FROM customers c',
      outputs: [
        ['count', 'aggregate-safe', ''],
        ['count', 'aggregate-safe', 'customers.email'],
        ['count', 'aggregate-safe', 'customers.email'],
        ['count', 'aggregate-safe', ALL_CUSTOMERS],
      ],
    },
    'count over a computed value counts a predicate': {
      sql: 'SELECT count(lower(email)), count(*) + 1 FROM customers',
      outputs: [
        ['count', 'transformed', 'customers.email'],
        ['?column?', 'aggregate-safe', ''],
      ],
    },
    'value-returning aggregates are transformed': {
      sql: "SELECT min(email), max(phone), sum(id), string_agg(email, ','), array_agg(email), json_agg(email), bool_or(email LIKE 'a%') FROM customers",
      outputs: [
        ['min', 'transformed', 'customers.email'],
        ['max', 'transformed', 'customers.phone'],
        ['sum', 'transformed', 'customers.id'],
        ['string_agg', 'transformed', 'customers.email'],
        ['array_agg', 'transformed', 'customers.email'],
        ['json_agg', 'transformed', 'customers.email'],
        ['bool_or', 'transformed', 'customers.email'],
      ],
    },
    'GROUP BY and HAVING shape': {
      sql: 'SELECT status, count(*) FROM orders GROUP BY status HAVING sum(total_cents) > 100',
      outputs: [
        ['status', 'direct', 'orders.status'],
        ['count', 'aggregate-safe', ''],
      ],
      shaping: 'group-by:orders.status having:orders.total_cents',
    },
    'FILTER shapes like WHERE; aggregate ORDER BY shapes the order': {
      sql: "SELECT count(*) FILTER (WHERE email LIKE 'a%'), string_agg(full_name, ',' ORDER BY phone) FROM customers",
      outputs: [
        ['count', 'aggregate-safe', ''],
        ['string_agg', 'transformed', 'customers.full_name'],
      ],
      shaping: 'order-by:customers.phone where:customers.email',
    },
    'WITHIN GROUP orders the aggregated values themselves': {
      sql: 'SELECT percentile_disc(0.5) WITHIN GROUP (ORDER BY total_cents) FROM orders',
      outputs: [['percentile_disc', 'transformed', 'orders.total_cents']],
    },
    'GROUPING() and ROLLUP': {
      sql: 'SELECT status, grouping(status) FROM orders GROUP BY ROLLUP (status, customer_id)',
      outputs: [
        ['status', 'direct', 'orders.status'],
        ['grouping', 'aggregate-safe', 'orders.status'],
      ],
      shaping: 'group-by:orders.customer_id group-by:orders.status',
    },
    'window functions and named windows': {
      sql: 'SELECT row_number() OVER (PARTITION BY status ORDER BY placed_at), lag(total_cents) OVER w, count(id) OVER w FROM orders WINDOW w AS (ORDER BY customer_id)',
      outputs: [
        ['row_number', 'constant', ''],
        ['lag', 'transformed', 'orders.total_cents'],
        ['count', 'aggregate-safe', 'orders.id'],
      ],
      shaping: 'window:orders.customer_id window:orders.placed_at window:orders.status',
    },
  });
});

describe('subqueries, CTEs, set operations, VALUES', () => {
  check({
    'derived table with column aliases': {
      sql: 'SELECT * FROM (SELECT email, phone FROM customers WHERE id > 5) s(e)',
      outputs: [
        ['e', 'direct', 'customers.email'],
        ['phone', 'direct', 'customers.phone'],
      ],
      shaping: 'where:customers.id',
    },
    'CTE with a column list, referenced twice': {
      sql: 'WITH x(a) AS (SELECT email FROM customers) SELECT x.a, y.a FROM x, x AS y',
      outputs: [
        ['a', 'direct', 'customers.email'],
        ['a', 'direct', 'customers.email'],
      ],
    },
    'a CTE shadows a table of the same name': {
      sql: 'WITH orders AS (SELECT email AS status FROM customers) SELECT status FROM orders',
      outputs: [['status', 'direct', 'customers.email']],
    },
    'without RECURSIVE a CTE sees only earlier siblings': {
      sql: 'WITH a AS (SELECT status FROM orders), orders AS (SELECT email AS status FROM customers) SELECT status FROM a',
      outputs: [['status', 'direct', 'orders.status']],
    },
    'recursive CTE: anchor and recursive term united until stable': {
      sql: 'WITH RECURSIVE r(id, v) AS (SELECT id, email FROM customers UNION ALL SELECT c.id, r.v || c.phone FROM r JOIN customers c ON c.id = r.id + 1) SELECT v FROM r',
      outputs: [['v', 'transformed', 'customers.email customers.phone']],
      shaping: 'join:customers.id',
    },
    'recursive counter stays constant': {
      sql: 'WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 3) SELECT * FROM r',
      outputs: [['n', 'constant', '']],
    },
    'SEARCH and CYCLE columns': {
      sql: 'WITH RECURSIVE r(n) AS (SELECT id FROM orders UNION ALL SELECT n + 1 FROM r) CYCLE n SET seen USING path SELECT * FROM r',
      outputs: [
        ['n', 'transformed', 'orders.id'],
        ['seen', 'transformed', 'orders.id'],
        ['path', 'transformed', 'orders.id'],
      ],
    },
    'LATERAL subquery and functions in FROM see earlier items': {
      sql: 'SELECT l.e, u, x FROM customers c, LATERAL (SELECT c.email AS e) l, upper(c.phone) u, unnest(ARRAY[c.card_number]) x',
      outputs: [
        ['e', 'direct', 'customers.email'],
        ['u', 'transformed', 'customers.phone'],
        ['x', 'transformed', 'customers.card_number'],
      ],
    },
    'set-returning functions name their columns': {
      sql: "SELECT * FROM generate_series(1, 3), json_each('{}') j, unnest(ARRAY[1], ARRAY['a']) WITH ORDINALITY AS u, jsonb_to_record('{}') AS r(a int, b text)",
      outputs: [
        ['generate_series', 'constant', ''],
        ['key', 'constant', ''],
        ['value', 'constant', ''],
        ['unnest', 'constant', ''],
        ['unnest', 'constant', ''],
        ['ordinality', 'constant', ''],
        ['a', 'constant', ''],
        ['b', 'constant', ''],
      ],
    },
    'UNION: output i is every branch output i, deduplicated by value': {
      sql: 'SELECT email AS contact, id FROM customers UNION SELECT status, 1 FROM orders',
      outputs: [
        ['contact', 'direct', 'customers.email orders.status'],
        ['id', 'direct', 'customers.id'],
      ],
      shaping: 'distinct:customers.email distinct:customers.id distinct:orders.status',
    },
    'UNION ALL with ORDER BY an output name and LIMIT': {
      sql: 'SELECT email AS e FROM customers UNION ALL SELECT upper(status) FROM orders ORDER BY e LIMIT 3',
      outputs: [['e', 'transformed', 'customers.email orders.status']],
      shaping: 'order-by:customers.email order-by:orders.status',
    },
    'INTERSECT and EXCEPT compare values': {
      sql: 'SELECT email FROM customers INTERSECT SELECT email FROM crm.leads EXCEPT SELECT email FROM crm.customers',
      outputs: [['email', 'direct', 'crm.customers.email crm.leads.email customers.email']],
      shaping: 'distinct:crm.customers.email distinct:crm.leads.email distinct:customers.email',
    },
    'VALUES lists are constant': {
      sql: "VALUES (1, 'a'), (2, 'b')",
      outputs: [
        ['column1', 'constant', ''],
        ['column2', 'constant', ''],
      ],
    },
    'VALUES in FROM with aliases, and a LATERAL VALUES over a column': {
      sql: 'SELECT v.x, w.y FROM customers c, (VALUES (1)) v(x), LATERAL (VALUES (c.email), (NULL)) w(y)',
      outputs: [
        ['x', 'constant', ''],
        ['y', 'direct', 'customers.email'],
      ],
    },
  });
});

describe('views', () => {
  check({
    'a view traces through its definition': {
      sql: 'SELECT email, full_name FROM customer_contacts',
      outputs: [
        ['email', 'direct', 'customers.email'],
        ['full_name', 'direct', 'customers.full_name'],
      ],
    },
    'a view over a view, with its WHERE as shaping': {
      sql: 'SELECT * FROM contact_emails',
      outputs: [
        ['address', 'direct', 'customers.email'],
        ['shout', 'transformed', 'customers.full_name'],
      ],
      shaping: 'where:customers.id',
    },
    'an aggregating view': {
      sql: 'SELECT * FROM public.order_summary s(cid)',
      outputs: [
        ['cid', 'direct', 'customers.id'],
        ['orders', 'aggregate-safe', 'orders.id'],
        ['spent', 'transformed', 'orders.total_cents'],
      ],
      shaping: 'group-by:customers.id join:customers.id join:orders.customer_id',
    },
    'a materialized view traces through its definition': {
      sql: 'SELECT email FROM mv_emails',
      outputs: [['email', 'direct', 'customers.email']],
    },
  });
});

describe('shaping', () => {
  check({
    'WHERE, ORDER BY position and LIMIT': {
      sql: "SELECT id, full_name FROM customers WHERE email LIKE 'a%' ORDER BY 2 LIMIT 10",
      outputs: direct('customers', ['id', 'full_name']),
      shaping: 'order-by:customers.full_name where:customers.email',
    },
    'ORDER BY prefers an output name': {
      sql: 'SELECT phone AS email FROM customers ORDER BY email',
      outputs: [['email', 'direct', 'customers.phone']],
      shaping: 'order-by:customers.phone',
    },
    'GROUP BY prefers an input column; falls back to an output name and position': {
      sql: 'SELECT upper(phone) AS email, national_id AS nid, card_number FROM customers GROUP BY email, phone, nid, 3',
      outputs: [
        ['email', 'transformed', 'customers.phone'],
        ['nid', 'direct', 'customers.national_id'],
        ['card_number', 'direct', 'customers.card_number'],
      ],
      shaping:
        'group-by:customers.card_number group-by:customers.email group-by:customers.national_id group-by:customers.phone',
    },
    'ORDER BY an expression over input columns': {
      sql: 'SELECT id FROM customers ORDER BY length(email) DESC, phone',
      outputs: [['id', 'direct', 'customers.id']],
      shaping: 'order-by:customers.email order-by:customers.phone',
    },
    'DISTINCT and DISTINCT ON': {
      sql: 'SELECT DISTINCT ON (phone) email, id FROM customers',
      outputs: direct('customers', ['email', 'id']),
      shaping: 'distinct:customers.phone',
    },
    'plain DISTINCT covers every output': {
      sql: 'SELECT DISTINCT email, id FROM customers',
      outputs: direct('customers', ['email', 'id']),
      shaping: 'distinct:customers.email distinct:customers.id',
    },
    'EXISTS and IN subqueries in WHERE': {
      sql: "SELECT id FROM customers c WHERE EXISTS (SELECT 1 FROM orders o WHERE o.customer_id = c.id AND o.status = 'x') AND c.email IN (SELECT email FROM crm.leads)",
      outputs: [['id', 'direct', 'customers.id']],
      shaping:
        'where:crm.leads.email where:customers.email where:customers.id where:orders.customer_id where:orders.status',
    },
    'LIMIT with a subquery': {
      sql: 'SELECT id FROM customers LIMIT (SELECT max(total_cents) FROM orders)',
      outputs: [['id', 'direct', 'customers.id']],
      shaping: 'limit:orders.total_cents',
    },
  });
});

describe('statements other than SELECT', () => {
  check({
    'INSERT … RETURNING * returns the new row': {
      sql: 'INSERT INTO orders (id, status) SELECT id, email FROM customers RETURNING *',
      outputs: [
        ['id', 'direct', 'customers.id orders.id'],
        ['customer_id', 'direct', 'orders.customer_id'],
        ['status', 'direct', 'customers.email orders.status'],
        ['total_cents', 'direct', 'orders.total_cents'],
        ['placed_at', 'direct', 'orders.placed_at'],
      ],
      writes: [
        ['public.orders.id', 'direct', 'customers.id'],
        ['public.orders.status', 'direct', 'customers.email'],
      ],
    },
    'INSERT … VALUES writes nothing from the database': {
      sql: "INSERT INTO orders VALUES (1, 2, 'new') RETURNING status",
      outputs: [['status', 'direct', 'orders.status']],
    },
    'UPDATE … RETURNING: the new value is the SET expression': {
      sql: 'UPDATE customers SET phone = upper(email) WHERE id = 1 RETURNING phone, old.phone AS before',
      outputs: [
        ['phone', 'transformed', 'customers.email customers.phone'],
        ['before', 'direct', 'customers.phone'],
      ],
      shaping: 'where:customers.id',
      writes: [['public.customers.phone', 'transformed', 'customers.email']],
    },
    'UPDATE … FROM and multi-column SET': {
      sql: 'UPDATE orders o SET (status, total_cents) = (SELECT c.email, c.id FROM customers c WHERE c.id = o.customer_id) RETURNING o.status',
      outputs: [['status', 'direct', 'customers.email orders.status']],
      shaping: 'where:customers.id where:orders.customer_id',
      writes: [
        ['public.orders.status', 'direct', 'customers.email'],
        ['public.orders.total_cents', 'direct', 'customers.id'],
      ],
    },
    'DELETE … USING … RETURNING': {
      sql: 'DELETE FROM customers USING orders WHERE orders.customer_id = customers.id RETURNING customers.email, orders.status',
      outputs: [
        ['email', 'direct', 'customers.email'],
        ['status', 'direct', 'orders.status'],
      ],
      shaping: 'where:customers.id where:orders.customer_id',
    },
    'ON CONFLICT DO UPDATE through excluded': {
      sql: "INSERT INTO customers (id, full_name) VALUES (1, 'x') ON CONFLICT (id) DO UPDATE SET phone = customers.email || excluded.full_name RETURNING phone",
      outputs: [['phone', 'transformed', 'customers.email customers.full_name customers.phone']],
      writes: [['public.customers.phone', 'transformed', 'customers.email customers.full_name']],
    },
    'a data-modifying CTE runs even when unreferenced': {
      sql: 'WITH u AS (UPDATE customers SET full_name = email) SELECT 1',
      outputs: [['?column?', 'constant', '']],
      writes: [['public.customers.full_name', 'direct', 'customers.email']],
    },
    'a RETURNING CTE feeds the query': {
      sql: "WITH d AS (DELETE FROM orders WHERE status = 'x' RETURNING customer_id) SELECT * FROM d",
      outputs: [['customer_id', 'direct', 'orders.customer_id']],
      shaping: 'where:orders.status',
    },
    'COPY (query) TO STDOUT': {
      sql: 'COPY (SELECT email FROM customers) TO STDOUT',
      outputs: [['email', 'direct', 'customers.email']],
    },
    'COPY table (columns) TO STDOUT, through a view too': {
      sql: 'COPY customer_contacts (email, id) TO STDOUT',
      outputs: [
        ['email', 'direct', 'customers.email'],
        ['id', 'direct', 'customers.id'],
      ],
    },
    'COPY FROM returns nothing': { sql: 'COPY customers FROM STDIN', outputs: [] },
    'CREATE TABLE AS writes a new table': {
      sql: 'CREATE TEMP TABLE t (e) AS SELECT email FROM customers',
      outputs: [],
      writes: [['?.t.e', 'direct', 'customers.email']],
    },
    'SELECT INTO writes a new table': {
      sql: 'SELECT email, id INTO archive.t FROM customers',
      outputs: [],
      writes: [
        ['archive.t.email', 'direct', 'customers.email'],
        ['archive.t.id', 'direct', 'customers.id'],
      ],
    },
    'EXPLAIN ANALYZE runs the statement: its WHERE shapes': {
      sql: "EXPLAIN (ANALYZE, FORMAT JSON) SELECT id FROM customers WHERE email = 'a'",
      outputs: [['QUERY PLAN', 'constant', '']],
      shaping: 'where:customers.email',
    },
    'plain EXPLAIN runs nothing': {
      sql: 'EXPLAIN SELECT leak(email) FROM customers',
      outputs: [['QUERY PLAN', 'constant', '']],
    },
    SHOW: { sql: 'SHOW search_path', outputs: [['search_path', 'constant', '']] },
    'DECLARE CURSOR gives the lineage of the rows FETCH will return': {
      sql: 'DECLARE cur CURSOR FOR SELECT email FROM customers',
      outputs: [['email', 'direct', 'customers.email']],
    },
    'PREPARE gives the lineage of the rows EXECUTE will return': {
      sql: 'PREPARE p AS SELECT phone FROM customers WHERE id = $1',
      outputs: [['phone', 'direct', 'customers.phone']],
      shaping: 'where:customers.id',
    },
    'other statements return nothing': { sql: 'SET search_path = crm', outputs: [] },
    'an empty string returns nothing': { sql: '  -- nothing\n', outputs: [] },
  });
});

describe('refusals', () => {
  it.each([
    ['SELECT * FROM nope', 'unknown relation "nope"'],
    ['SELECT * FROM crm.orders', 'unknown relation "crm.orders"'],
    ['SELECT nope FROM customers', 'column "nope" does not exist'],
    ['SELECT id FROM customers, orders', 'column reference "id" is ambiguous'],
    ['SELECT t.a FROM (SELECT 1 AS a, 2 AS a) t', 'column reference "t.a" is ambiguous'],
    ['SELECT * FROM customers, customers', 'table name "customers" specified more than once'],
    [
      'SELECT customers.email FROM customers, crm.customers',
      'table reference "customers" is ambiguous',
    ],
    ['SELECT *', 'SELECT * with no tables specified'],
    [
      'SELECT c.id FROM (customers c JOIN orders o USING (id)) j',
      'no FROM item in scope matches "c.id"',
    ],
    ['SELECT public.customers.email FROM customers c', 'no FROM item in scope matches'],
    ['SELECT c.email.x FROM customers c', 'no FROM item in scope matches "c.email.x"'],
    ['SELECT c.nope FROM customers c', 'column "c.nope" does not exist'],
    ['SELECT * FROM customers JOIN orders USING (email)', 'does not exist in right table'],
    ['SELECT leak(email) FROM customers', 'function "leak" is not a built-in'],
    ['SELECT public.upper(email) FROM customers', 'function "public.upper" is not a built-in'],
    ["SELECT query_to_xml('select email from customers', true, true, '')", 'runs SQL text'],
    ["SELECT pg_notify('c', email) FROM customers", 'moves values outside the result set'],
    [
      "SELECT set_config('x.y', email, false) FROM customers",
      'moves values outside the result set',
    ],
    ['SELECT * FROM leak()', 'function "leak" is not a built-in'],
    [
      "SELECT * FROM json_populate_record(NULL::customers, '{}')",
      'returns a row type the tracer cannot see',
    ],
    ["SELECT * FROM json_to_record('{}')", 'returns a row type the tracer cannot see'],
    ["SELECT * FROM JSON_TABLE('[]', '$[*]' COLUMNS (a int PATH '$'))", 'JSON_TABLE'],
    ['SELECT * FROM hidden_view', 'no definition known for view "public.hidden_view"'],
    ['SELECT * FROM leaky_view', 'in view "public.leaky_view": function "public.leak"'],
    [
      'SELECT * FROM stale_view',
      'view "public.stale_view" defines 1 columns but the catalog lists 2',
    ],
    ['SELECT * FROM loop_a', 'views nest deeper than 16 levels'],
    ['WITH RECURSIVE r AS (SELECT * FROM r) SELECT * FROM r', 'refers to itself'],
    ['WITH x AS (SELECT 1), x AS (SELECT 2) SELECT * FROM x', 'specified more than once'],
    [
      'WITH RECURSIVE a(v) AS (SELECT 1 UNION SELECT v FROM b), b(v) AS (SELECT email FROM customers UNION SELECT v FROM a) SELECT * FROM a',
      'through another WITH query',
    ],
    ['SELECT * FROM (SELECT 1) s(a, b)', 'has 1 columns available but 2 column aliases'],
    ['SELECT 1 UNION SELECT 1, 2', 'same number of columns'],
    ['SELECT (c).* FROM (SELECT ROW(1, 2) AS c) s', 'needs its type'],
    [
      'MERGE INTO customers c USING crm.leads l ON l.id = c.id WHEN MATCHED THEN DO NOTHING',
      'MERGE',
    ],
    ['EXECUTE p', 'EXECUTE runs a prepared statement'],
    ['FETCH 10 FROM cur', 'FETCH returns rows of a cursor'],
    ['CALL p()', 'CALL runs a procedure'],
    ['DO $$ BEGIN END $$', 'DO runs procedural code'],
    ['CREATE TABLE t AS EXECUTE p', 'CREATE TABLE AS EXECUTE'],
    ['EXPLAIN ANALYZE SELECT leak(email) FROM customers', 'function "leak"'],
    ['SELECT 1; SELECT 2', '2 statements in one string'],
    ['SELEC 1', 'cannot parse the statement: syntax error'],
    ['SELECT 1 ORDER BY 2', 'position 2 is not in select list'],
  ])('%s', (sql, reason) => {
    expect(refusal(sql)).toContain(reason);
  });

  it('never quotes a literal in a reason', () => {
    expect(refusal("SELECT leak('4111 1111 1111 1111')")).not.toContain('4111');
    expect(refusal("SELECT 'x' '4111 1111 1111 1111'")).toBe(
      'cannot parse the statement: syntax error at character 12',
    );
    expect(refusal("SELECT '4111 1111")).not.toContain('4111');
  });
});

describe('limits', () => {
  it('traces a long generated UNION ALL chain without deep recursion', () => {
    const sql = Array.from({ length: 2000 }, (_, i) =>
      i === 1500 ? 'SELECT phone FROM customers' : `SELECT 'x${i}'`,
    ).join(' UNION ALL ');
    expect(traced(sql).outputs).toEqual([['?column?', 'direct', 'customers.phone']]);
  });

  it('refuses nesting deeper than the stack allows', () => {
    const deep = `SELECT ${'upper('.repeat(1200)}email${')'.repeat(1200)} FROM customers`;
    expect(refusal(deep)).toBe('the statement nests too deeply');
  });
});

describe('options', () => {
  it('trusted functions are traced as transformed', () => {
    expect(
      traced('SELECT public.leak(email) FROM customers', { trustedFunctions: ['public.leak'] })
        .outputs,
    ).toEqual([['leak', 'transformed', 'customers.email']]);
    expect(
      traced('SELECT * FROM leaky_view', { trustedFunctions: ['public.leak'] }).outputs,
    ).toEqual([['v', 'transformed', 'customers.id']]);
  });

  it('maxViewDepth bounds view nesting', () => {
    expect(traced('SELECT * FROM customer_contacts', { maxViewDepth: 1 }).outputs).toHaveLength(3);
    expect(refusal('SELECT * FROM contact_emails', { maxViewDepth: 1 })).toBe(
      'in view "public.contact_emails": views nest deeper than 1 levels',
    );
  });
});

describe('result shape', () => {
  it('numbers outputs from zero and reports full sources', () => {
    const outcome = traceLineage(
      'SELECT id, crm.customers.email FROM crm.customers',
      fixtureCatalog(),
    );
    expect(outcome).toEqual({
      ok: true,
      lineage: {
        outputs: [
          {
            name: 'id',
            index: 0,
            sources: [{ schema: 'crm', table: 'customers', column: 'id' }],
            derivation: 'direct',
          },
          {
            name: 'email',
            index: 1,
            sources: [{ schema: 'crm', table: 'customers', column: 'email' }],
            derivation: 'direct',
          },
        ],
        shaping: [],
        writes: [],
        dependsOnLiterals: false,
      },
    });
  });

  it('marks positional ORDER BY and GROUP BY keys as depending on literals', () => {
    const positional = traceLineage(
      'SELECT id, email FROM crm.customers ORDER BY 2',
      fixtureCatalog(),
    );
    const named = traceLineage('SELECT id, email FROM crm.customers ORDER BY id', fixtureCatalog());
    expect(positional.ok && positional.lineage.dependsOnLiterals).toBe(true);
    expect(named.ok && named.lineage.dependsOnLiterals).toBe(false);
  });
});

describe('traceLineageEach', () => {
  it('traces every statement of a simple-protocol query, in order', () => {
    const outcome = traceLineageEach(
      'SET search_path = crm; SELECT email FROM crm.customers; SELECT 1 AS one',
      fixtureCatalog(),
    );
    expect(outcome.ok).toBe(true);
    if (!outcome.ok) return;
    expect(outcome.statements.map((s) => s.outputs.map((o) => o.name))).toEqual([
      [],
      ['email'],
      ['one'],
    ]);
  });

  it('refuses the whole text when one statement is refused, naming which', () => {
    const outcome = traceLineageEach('SELECT 1; SELECT * FROM nowhere', fixtureCatalog());
    expect(outcome.ok).toBe(false);
    if (outcome.ok) return;
    expect(outcome.reason).toMatch(/^statement 2: /);
  });

  it('yields no statements for empty text', () => {
    expect(traceLineageEach(' -- nothing', fixtureCatalog())).toEqual({ ok: true, statements: [] });
  });
});

describe('COPY TO STDOUT options', () => {
  it.each([
    ['COPY crm.customers TO STDOUT', { format: 'text', header: false }],
    [
      "COPY crm.customers TO STDOUT WITH (FORMAT csv, HEADER, DELIMITER ';', NULL 'n/a')",
      { format: 'csv', header: true, delimiter: ';', null: 'n/a' },
    ],
    [
      'COPY (SELECT email FROM crm.customers) TO STDOUT CSV HEADER',
      { format: 'csv', header: true },
    ],
    ['COPY crm.customers TO STDOUT (FORMAT binary)', { format: 'binary', header: false }],
  ])('%s', (sql, copy) => {
    const outcome = traceLineage(sql, fixtureCatalog());
    expect(outcome.ok && outcome.lineage.copy).toEqual(copy);
  });

  it('says nothing for COPY to a server file', () => {
    const outcome = traceLineage("COPY crm.customers TO '/tmp/x'", fixtureCatalog());
    expect(outcome.ok && outcome.lineage.copy).toBeUndefined();
  });
});
