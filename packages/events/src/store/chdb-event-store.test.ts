import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SessionEvent } from '@portcullis/core';
import { isPortcullisError } from '@portcullis/core';
import { ChdbEventStore } from './chdb-event-store.js';
import { DAY0_US, DAY_US, alice, bob, fixtureUuid, session } from './events.fixture.js';
import { verifyChain } from './hash-chain.js';
import { runMigrations } from './run-migrations.js';
import { eventStoreMigrations } from './schema.js';

const KEY = 'store test key';

// chDB binds one data directory per process, so this file shares one store (and directory).
describe('ChdbEventStore', { timeout: 60_000 }, () => {
  let dir: string;
  let store: ChdbEventStore;
  const open = (retentionDays = 3650): ChdbEventStore =>
    new ChdbEventStore({ dataDir: join(dir, 'data'), chainKey: KEY, retentionDays });

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'pcl-chdb-store-'));
    store = open();
    await store.open();
  }, 60_000);

  afterAll(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const count = async (sql: string, params: Record<string, unknown> = {}): Promise<number> => {
    const [row] = await store.query<{ n: number }>(sql, params);
    return Number(row?.n);
  };

  it('applies every migration once and records it', async () => {
    const rows = await store.query<{ version: number }>(
      'SELECT version FROM schema_migrations ORDER BY version',
    );
    expect(rows.map((r) => r.version)).toEqual([1, 2, 3]);
    const tables = await store.query<{ name: string }>(
      'SELECT name FROM system.tables WHERE database = currentDatabase() ORDER BY name',
    );
    expect(tables.map((t) => t.name)).toEqual([
      'agent_person_daily',
      'agent_person_daily_mv',
      'events',
      'person_resource_daily',
      'person_resource_daily_mv',
      'schema_migrations',
    ]);
  });

  it('reruns every migration statement without error, and skips recorded versions', async () => {
    const migrations = eventStoreMigrations({ retentionDays: 3650 });
    const target = {
      command: async (sql: string) => {
        await store.query(sql);
      },
      query: <T>(sql: string, params?: Record<string, unknown>) => store.query<T>(sql, params),
    };
    for (const statement of migrations.flatMap((m) => m.statements))
      await target.command(statement);
    expect(await runMigrations(target, migrations)).toEqual([]);
  });

  it('writes each event once however often it is inserted; rollups count it once', async () => {
    const events = session(bob, null, 'dedup-db', DAY0_US, [
      { text: 'DELETE FROM t', kind: 'delete', tables: ['t'], rows: 2 },
      { text: 'SELECT 1', kind: 'select', tables: [] },
    ]);
    expect(await store.insert(events.slice(0, 2))).toEqual({ inserted: 2, duplicates: 0 });
    // A retried batch overlapping the first, with a repeat inside it.
    expect(await store.insert([...events, events[3]!])).toEqual({ inserted: 2, duplicates: 3 });
    expect(await store.insert(events)).toEqual({ inserted: 0, duplicates: 4 });
    expect(await count("SELECT count() AS n FROM events WHERE resource = 'dedup-db'")).toBe(4);
    const [rollup] = await store.query<{ statements: number; writes: number; sessions: number }>(
      "SELECT sum(statements) AS statements, sum(writes) AS writes, sum(sessions) AS sessions FROM person_resource_daily WHERE resource = 'dedup-db'",
    );
    expect(rollup).toEqual({ statements: 2, writes: 1, sessions: 1 });
    // The chain ran on across the two inserts.
    expect(verifyChain(await store.readSession(events[0]!.sessionId), KEY)).toEqual([]);
  });

  it('reads back exactly the events it was given, chained', async () => {
    const events = session(alice, { id: 'a1', name: 'helper' }, 'roundtrip-db', DAY0_US, [
      {
        text: 'SELECT email FROM customers',
        kind: 'select',
        tables: ['public.customers'],
        rows: 3,
        masked: { values: 3, columns: ['email'] },
      },
      {
        text: 'INSERT INTO t VALUES ($1)',
        kind: 'insert',
        tables: ['t'],
        error: { code: '23505', message: 'duplicate key' },
      },
    ]);
    const withPrepared: SessionEvent[] = events.map((e) =>
      e.statement?.kind === 'insert'
        ? {
            ...e,
            statement: { ...e.statement, protocol: 'extended', preparedName: 'p1', params: 1 },
          }
        : e,
    );
    await store.insert(withPrepared);
    const back = await store.readSession(events[0]!.sessionId);
    expect(back.map((c) => c.event)).toEqual(withPrepared);
    expect(verifyChain(back, KEY)).toEqual([]);
  });

  it('keeps who decided a held statement, and why a login was refused, inside the chain', async () => {
    const [start] = session(bob, null, 'decisions-db', DAY0_US + 7_000, []);
    const base = start!;
    const events: SessionEvent[] = [
      base,
      {
        ...base,
        id: fixtureUuid(7_000_001),
        type: 'approval.requested',
        seq: 1,
        timeUs: base.timeUs + 1,
        approval: {
          text: 'DELETE FROM orders WHERE id = $1',
          kind: 'delete',
          rule: 'r',
          message: 'm',
          id: 'apr_x',
        },
      },
      {
        ...base,
        id: fixtureUuid(7_000_002),
        type: 'approval.granted',
        seq: 2,
        timeUs: base.timeUs + 2,
        approvalDecision: {
          id: 'apr_x',
          by: [
            { subject: 'u-ada', email: 'ada@example.com' },
            { subject: 'u-dan', email: 'dan@example.com' },
          ],
          reason: 'ticket 7',
          waitedUs: 1_500_000,
        },
      },
      {
        ...base,
        id: fixtureUuid(7_000_003),
        type: 'auth.failed',
        seq: 3,
        timeUs: base.timeUs + 3,
        authFailure: { reason: 'expired', code: '28P01' },
      },
    ];
    await store.insert(events);
    const back = await store.readSession(base.sessionId);
    expect(back.map((c) => c.event)).toEqual(events);
    expect(verifyChain(back, KEY)).toEqual([]);
    // Changing who approved breaks the chain.
    await store.query(
      "ALTER TABLE events UPDATE decision_by_emails = ['mallory@example.com', 'dan@example.com'] WHERE id = {id:UUID} SETTINGS mutations_sync = 1",
      { id: fixtureUuid(7_000_002) },
    );
    const altered = await store.readSession(base.sessionId);
    expect(verifyChain(altered, KEY)).toMatchObject([{ problem: 'altered', seq: 2 }]);
  });

  it("writes the same rows through chDB's insert call (insertVia: api)", async () => {
    const events = session(alice, null, 'api-db', DAY0_US, [
      { text: 'UPDATE t SET a = $1', kind: 'update', tables: ['t'], rows: 4 },
    ]);
    // A second connection to the same directory is allowed; only other directories wait.
    const api = new ChdbEventStore({
      dataDir: join(dir, 'data'),
      chainKey: KEY,
      retentionDays: 3650,
      insertVia: 'api',
    });
    try {
      expect(await api.insert([...events, events[0]!])).toEqual({ inserted: 3, duplicates: 1 });
      const back = await api.readSession(events[0]!.sessionId);
      expect(back.map((c) => c.event)).toEqual(events);
      expect(verifyChain(back, KEY)).toEqual([]);
    } finally {
      await api.close();
    }
  });

  it('shows an edited or deleted row in the chain', async () => {
    const events = session(bob, null, 'tamper-db', DAY0_US, [
      { text: 'DROP TABLE audit', kind: 'drop', tables: ['audit'] },
      { text: 'SELECT 1', kind: 'select', tables: [] },
    ]);
    await store.insert(events);
    const [, drop, select] = events;
    await store.query(
      "ALTER TABLE events UPDATE statement_text = 'SELECT 2' WHERE id = {id:UUID} SETTINGS mutations_sync = 2",
      { id: drop!.id },
    );
    await store.query('DELETE FROM events WHERE id = {id:UUID}', { id: select!.id });
    const issues = verifyChain(await store.readSession(events[0]!.sessionId), KEY);
    expect(issues.map((i) => `${i.problem}@${i.seq}`)).toEqual(['altered@1', 'removed@2']);
  });

  it('continues a chain from the table when the session is not cached (reopened store)', async () => {
    const events = session(alice, null, 'reopen-db', DAY0_US, [
      { text: 'SELECT 1', kind: 'select', tables: [] },
    ]);
    await store.insert(events.slice(0, 2));
    await store.close();
    store = open();
    await store.insert(events.slice(2));
    expect(verifyChain(await store.readSession(events[0]!.sessionId), KEY)).toEqual([]);
  });

  it('drops events older than the retention and applies a changed retention on open', async () => {
    const old = session(alice, null, 'ttl-db', DAY0_US - 400 * DAY_US, []);
    await store.insert(old);
    expect(await count("SELECT count() AS n FROM events WHERE resource = 'ttl-db'")).toBe(2);
    await store.close();
    store = open(365);
    await store.open();
    const [table] = await store.query<{ engine_full: string }>(
      "SELECT engine_full FROM system.tables WHERE database = currentDatabase() AND name = 'events'",
    );
    expect(table?.engine_full).toContain('toIntervalDay(365)');
    await store.query('OPTIMIZE TABLE events FINAL');
    expect(await count("SELECT count() AS n FROM events WHERE resource = 'ttl-db'")).toBe(0);
  });

  it('binds parameters as values, never as SQL', async () => {
    const sneaky = "x' OR 1 = 1 --";
    expect(
      await count('SELECT count() AS n FROM events WHERE person_subject = {p:String}', {
        p: sneaky,
      }),
    ).toBe(0);
  });

  it('wraps engine errors in typed errors with the cause', async () => {
    const err: unknown = await store.query('SELECT * FROM no_such_table').catch((e: unknown) => e);
    expect(isPortcullisError(err) && err.code).toBe('PCL_ERR_EVENTS_READ');
    expect((err as Error).cause).toBeInstanceOf(Error);
    const bad = {
      ...session(bob, null, 'x', DAY0_US, [])[0]!,
      id: fixtureUuid(1).replace('4', 'z'),
    };
    const writeErr: unknown = await store.insert([bad]).catch((e: unknown) => e);
    expect(isPortcullisError(writeErr) && writeErr.code).toBe('PCL_ERR_EVENTS_WRITE');
  });
});
