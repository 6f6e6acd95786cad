// The shared state database on a real PostgreSQL server: statements and transactions through the
// pool, NOTIFY between two gateways' connections, a LISTEN connection that reports its loss,
// migrations that two gateways run at once, and an unreachable server reported as such.
import { PgStateDb, StateDbUnavailable, migrateState } from '@portcullis/gateway';
import { freePort } from '@portcullis/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createSharedDatabase,
  dropSharedDatabase,
  sharedPostgres,
  superuserQuery,
} from './support/gateway-fixture.js';

const DB = 'it_state_db';
let a: PgStateDb;
let b: PgStateDb;

function stateUrl(): string {
  const { host, port, roles } = sharedPostgres();
  const { user, password } = roles.scram;
  return `postgresql://${user}:${encodeURIComponent(password)}@${host}:${port}/${DB}`;
}

beforeAll(async () => {
  await createSharedDatabase(DB);
  a = new PgStateDb({ url: stateUrl(), poolSize: 2 });
  b = new PgStateDb({ url: stateUrl(), poolSize: 2 });
});

afterAll(async () => {
  await a?.close();
  await b?.close();
  await dropSharedDatabase(DB);
});

describe('PgStateDb', () => {
  it('runs statements and transactions; a failed transaction leaves nothing behind', async () => {
    await a.query('CREATE TABLE t (id int PRIMARY KEY)');
    await a.transaction(async (tx) => {
      await tx.query('INSERT INTO t VALUES ($1)', [1]);
    });
    await expect(
      b.transaction(async (tx) => {
        await tx.query('INSERT INTO t VALUES ($1)', [2]);
        await tx.query('INSERT INTO t VALUES ($1)', [1]);
      }),
    ).rejects.toMatchObject({ code: '23505' });
    expect(await b.query('SELECT id FROM t')).toEqual([{ id: 1 }]);
    // A SQL error is the statement's fault, not the database being away.
    await expect(a.query('SELECT nope FROM t')).rejects.not.toBeInstanceOf(StateDbUnavailable);
  });

  it('delivers a NOTIFY from one gateway to another’s LISTEN', async () => {
    const heard: string[] = [];
    const stop = await a.listen(
      'portcullis_test',
      (p) => heard.push(p),
      () => heard.push('lost'),
    );
    await b.notify('portcullis_test', 'hello');
    await expect.poll(() => heard).toEqual(['hello']);
    await stop();
  });

  it('migrates once when two gateways start together', async () => {
    const steps = [
      { version: 1, sql: 'CREATE TABLE things (id int)' },
      { version: 2, sql: 'ALTER TABLE things ADD COLUMN name text' },
    ];
    const results = await Promise.all([
      migrateState(a, 'things', steps),
      migrateState(b, 'things', steps),
    ]);
    expect(results.sort((x, y) => y.length - x.length)).toEqual([[1, 2], []]);
  });

  it('reports a lost LISTEN connection, and listens again afterwards', async () => {
    const lost: Error[] = [];
    await a.listen(
      'portcullis_lost',
      () => undefined,
      (err) => lost.push(err),
    );
    await superuserQuery(
      `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
       WHERE datname = '${DB}' AND application_name = 'portcullis-state-listen'`,
    );
    await expect.poll(() => lost.length).toBe(1);
    expect(lost[0]).toBeInstanceOf(StateDbUnavailable);
    const heard: string[] = [];
    await a.listen(
      'portcullis_lost',
      (p) => heard.push(p),
      () => undefined,
    );
    await b.notify('portcullis_lost', 'again');
    await expect.poll(() => heard).toEqual(['again']);
  });

  it('reports an unreachable server as StateDbUnavailable', async () => {
    const port = await freePort();
    const gone = new PgStateDb({
      url: `postgresql://nobody:x@127.0.0.1:${port}/none`,
      poolSize: 1,
      connectTimeoutMs: 1_000,
    });
    try {
      await expect(gone.query('SELECT 1')).rejects.toBeInstanceOf(StateDbUnavailable);
      await expect(gone.transaction(() => Promise.resolve())).rejects.toBeInstanceOf(
        StateDbUnavailable,
      );
      await expect(
        gone.listen(
          'x',
          () => undefined,
          () => undefined,
        ),
      ).rejects.toBeInstanceOf(StateDbUnavailable);
    } finally {
      await gone.close();
    }
  });
});
