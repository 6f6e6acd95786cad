// Guardrails through the gateway against real PostgreSQL: statements judged by the real
// PostgreSQL parser and the resource's policy, refused with 42501 naming the rule, over the
// simple and extended protocol, pipelined and inside transactions, with the session usable
// afterwards and every decision recorded.
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RawPgClient } from './support/raw-pg-client.js';
import {
  ALICE,
  createSharedDatabase,
  dropSharedDatabase,
  queryError,
  sharedResource,
  startGatewayFixture,
  superuserQuery,
  type GatewayFixture,
  type ResourceInput,
} from './support/gateway-fixture.js';

const DB = 'it_pg_guardrails';
let gw: GatewayFixture;

const policy: NonNullable<ResourceInput['policy']> = {
  default: 'allow',
  unparsable: 'block',
  rules: [
    { name: 'no-drop-or-truncate', action: 'block', match: { flags: ['drop', 'truncate'] } },
    {
      name: 'no-unbounded-delete',
      action: 'block',
      match: { flags: ['delete-without-where', 'update-without-where'] },
      message: 'DELETE and UPDATE need a WHERE clause here',
    },
    { name: 'audit-log-needs-approval', action: 'review', match: { tablesWritten: ['audit_log'] } },
  ],
};

beforeAll(async () => {
  await createSharedDatabase(DB);
  await superuserQuery(
    `CREATE TABLE items (id int PRIMARY KEY, name text);
     INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 10) g;
     CREATE TABLE audit_log (id serial, note text);
     GRANT ALL ON ALL TABLES IN SCHEMA public TO PUBLIC;
     GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO PUBLIC;`,
    DB,
  );
  gw = await startGatewayFixture({
    resources: {
      shop: sharedResource(DB, 'scram', { policy }),
      open: sharedResource(DB, 'scram', { policy: { unparsable: 'allow' } }),
    },
  });
});

afterAll(async () => {
  await gw?.dispose();
  await dropSharedDatabase(DB);
});

async function itemCount(client: pg.Client): Promise<number> {
  const { rows } = await client.query<{ n: string }>('SELECT count(*) AS n FROM items');
  return Number(rows[0]!.n);
}

describe('simple protocol', () => {
  it('refuses DROP with 42501 naming the rule, and the session carries on', async () => {
    const client = await gw.connect('shop');
    const err = await queryError(client, 'DROP TABLE items');
    expect(err).toMatchObject({
      code: '42501',
      message: 'statement blocked by policy rule "no-drop-or-truncate"',
      hint: 'policy rule "no-drop-or-truncate" on resource "shop"',
    });
    expect(await itemCount(client)).toBe(10);
    await client.end();
  });

  it('refuses an unbounded DELETE with the rule message, allows a bounded one', async () => {
    const client = await gw.connect('shop');
    expect((await queryError(client, 'DELETE FROM items')).message).toBe(
      'DELETE and UPDATE need a WHERE clause here',
    );
    await client.query('BEGIN');
    const bounded = await client.query('DELETE FROM items WHERE id = 10');
    expect(bounded.rowCount).toBe(1);
    await client.query('ROLLBACK');
    expect(await itemCount(client)).toBe(10);
    await client.end();
  });

  it('refuses a multi-statement query that smuggles a DROP behind a SELECT, whole', async () => {
    const client = await gw.connect('shop');
    const err = await queryError(client, 'SELECT 1; DROP TABLE items');
    expect(err.code).toBe('42501');
    expect(await itemCount(client)).toBe(10);
    await client.end();
  });

  it('refuses text the parser rejects unless the policy allows it', async () => {
    const shop = await gw.connect('shop');
    const refused = await queryError(shop, 'SELEC 1');
    expect(refused).toMatchObject({ code: '42501' });
    expect(refused.message).toContain('could not be parsed');
    const open = await gw.connect('open');
    expect((await queryError(open, 'SELEC 1')).code).toBe('42601'); // the server's syntax error
    await shop.end();
    await open.end();
  });

  it('fails an open transaction like the refused statement failing would', async () => {
    const client = await gw.connect('shop');
    await client.query('BEGIN');
    await client.query("INSERT INTO items VALUES (100, 'inside')");
    expect((await queryError(client, 'TRUNCATE items')).code).toBe('42501');
    expect((await queryError(client, 'SELECT 1')).code).toBe('25P02'); // in failed transaction
    const end = await client.query('COMMIT');
    expect(end.command).toBe('ROLLBACK');
    expect(await itemCount(client)).toBe(10);
    await client.end();
  });

  it('judges a statement that arrives across many reads as a whole', async () => {
    const client = await gw.connect('shop');
    const padding = `/* ${'x'.repeat(300_000)} */`;
    expect((await queryError(client, `DROP TABLE items ${padding}`)).code).toBe('42501');
    const { rows } = await client.query(`SELECT 42 AS answer ${padding}`);
    expect(rows).toEqual([{ answer: 42 }]);
    await client.end();
  });
});

describe('extended protocol', () => {
  it('refuses at Parse and never runs the statement, named and reused', async () => {
    const client = await gw.connect('shop');
    const statement = { name: 'wipe', text: 'TRUNCATE items' };
    expect((await queryError(client, statement)).code).toBe('42501');
    // pg re-uses the prepared name: the second time only Bind/Execute are sent.
    expect((await queryError(client, statement)).code).toBe('42501');
    const bound = { name: 'gone', text: 'DELETE FROM items', values: [] };
    expect((await queryError(client, bound)).code).toBe('42501');
    expect(await itemCount(client)).toBe(10);
    await client.end();
  });

  it('refuses a Bind of a refused statement even with parameters', async () => {
    const client = await gw.connect('shop');
    const err = await queryError(client, {
      text: 'UPDATE items SET name = $1',
      values: ['overwritten'],
    });
    expect(err.code).toBe('42501');
    const { rows } = await client.query('SELECT count(*)::int AS n FROM items WHERE name = $1', [
      'overwritten',
    ]);
    expect(rows[0].n).toBe(0);
    await client.end();
  });

  it('answers pipelined statements in order', async () => {
    const client = await gw.connect('shop');
    const results = await Promise.allSettled([
      client.query('SELECT $1::int AS n', [1]),
      client.query('DROP TABLE items'),
      client.query('SELECT $1::int AS n', [3]),
    ]);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    expect((results[2] as PromiseFulfilledResult<pg.QueryResult>).value.rows).toEqual([{ n: 3 }]);
    await client.end();
  });
});

describe('recording decisions', () => {
  it('records verdict, rule, kind and tables on the statement event, and review requests', async () => {
    const client = await gw.connect('shop');
    await queryError(client, 'DROP TABLE items');
    await client.query('SELECT name FROM items WHERE id = 1');
    const held = await queryError(client, "INSERT INTO audit_log (note) VALUES ('x')");
    expect(held.code).toBe('42501');
    expect(held.message).toContain('it needs an approval that cannot be waited for here');
    await client.end();
    const events = await gw.waitForEvents((all) =>
      all.some((e) => e.type === 'approval.requested'),
    );
    const statements = events.filter((e) => e.type === 'statement').map((e) => e.statement!);
    expect(statements).toContainEqual(
      expect.objectContaining({
        kind: 'drop',
        verdict: 'block',
        rule: 'no-drop-or-truncate',
        tables: ['items'],
        error: expect.objectContaining({ code: '42501' }),
      }),
    );
    expect(statements).toContainEqual(
      expect.objectContaining({ kind: 'select', verdict: 'allow', rule: 'default', rows: 1 }),
    );
    const approval = events.find((e) => e.type === 'approval.requested')!;
    expect(approval.approval).toMatchObject({ kind: 'insert', rule: 'audit-log-needs-approval' });
    expect(approval.approval!.text).not.toContain("'x'");
  });
});

describe('sessions the gateway cannot read', () => {
  it('refuses statements that would change how the server reads text, whatever the policy', async () => {
    const client = await gw.connect('open');
    for (const sql of [
      "SET client_encoding = 'LATIN1'",
      'SET standard_conforming_strings = off',
      "SELECT set_config('client_encoding', 'SQL_ASCII', false)",
    ]) {
      const err = await queryError(client, sql);
      expect(err.code, sql).toBe('42501');
      expect(err.hint, sql).toBe('policy rule "unsafe-lexer-setting" on resource "open"');
    }
    const { rows } = await client.query('SHOW client_encoding');
    expect(rows).toEqual([{ client_encoding: 'UTF8' }]);
    await client.end();
  });

  it('ends a session whose client_encoding still changes (through dynamic SQL)', async () => {
    const client = await gw.connect('shop');
    const ended = new Promise<Error & { code?: string }>((resolveError) =>
      // The FATAL comes first, then pg reports the closed connection: keep the first.
      client.on('error', resolveError),
    );
    await client.query("DO $$ BEGIN EXECUTE 'SET client_encoding = ''LATIN1'''; END $$");
    const err = await ended;
    expect(err.code).toBe('0A000');
    expect(err.message).toContain('client_encoding is LATIN1');
  });

  it('refuses a startup that asks for another client_encoding', async () => {
    const raw = await RawPgClient.connect(gw.port);
    const err = await raw
      .login({ database: 'shop', password: ALICE.token, params: { client_encoding: 'LATIN1' } })
      .then(
        () => null,
        (e: unknown) => e as Error & { fields: { code: string; message: string } },
      );
    expect(err?.fields.code).toBe('0A000');
    expect(err?.fields.message).toContain('client_encoding is LATIN1');
    raw.destroy();
  });
});
