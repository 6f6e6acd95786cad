// A state database that goes away while a statement is held: the gateway fails closed. The held
// DELETE is refused (42501, saying the approval state database is unreachable) once the store
// has not answered for `state.unavailableAfterMs`, the session stays usable, nothing runs; new
// holds are refused at once until the store is back, and then the failure is on its record.
import { startPostgres, type PostgresServer } from '@portcullis/testkit';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { holdStatement } from './support/approval-holds.js';
import {
  createSharedDatabase,
  dropSharedDatabase,
  sharedResource,
  startGatewayFixture,
  superuserQuery,
  type GatewayFixture,
} from './support/gateway-fixture.js';

const DB = 'it_pg_approvals_state_down';
const UNAVAILABLE_AFTER_MS = 1_500;
let state: PostgresServer;
let gw: GatewayFixture;

async function orderCount(): Promise<number> {
  const { rows } = await superuserQuery('SELECT count(*)::int AS n FROM orders', DB);
  return (rows as { n: number }[])[0]!.n;
}

async function stateRow(id: string): Promise<{ state: string; reason: string } | undefined> {
  const client = new pg.Client({ connectionString: state.url('portcullis_state') });
  await client.connect();
  try {
    const { rows } = await client.query(
      'SELECT state, reason FROM portcullis_approval_requests WHERE id = $1',
      [id],
    );
    return rows[0] as { state: string; reason: string } | undefined;
  } finally {
    await client.end();
  }
}

beforeAll(async () => {
  state = await startPostgres({ maxConnections: 20 });
  await state.createDatabase('portcullis_state');
  await createSharedDatabase(DB);
  await superuserQuery(
    `CREATE TABLE orders (id int PRIMARY KEY);
     INSERT INTO orders SELECT generate_series(1, 5);
     GRANT ALL ON orders TO PUBLIC;`,
    DB,
  );
  gw = await startGatewayFixture({
    resources: {
      shop: sharedResource(DB, 'scram', {
        policy: {
          rules: [
            {
              name: 'deletes-need-approval',
              action: 'review',
              match: { kinds: ['delete'] },
              approvers: { groups: ['dba'] },
            },
          ],
        },
      }),
    },
    state: {
      url: { value: state.url('portcullis_state', state.roles.scram) },
      pollIntervalMs: 100,
      unavailableAfterMs: UNAVAILABLE_AFTER_MS,
    },
  });
}, 180_000);

afterAll(async () => {
  await gw?.dispose();
  await state?.stop();
  await dropSharedDatabase(DB);
});

describe('the state database goes away while a statement is held', () => {
  let failedId = '';
  let first: pg.Client;

  it('refuses the held statement with the reason and keeps the session usable', async () => {
    const client = await gw.connect('shop', { application_name: 'state-down' });
    first = client;
    const { id, result } = await holdStatement(client, 'DELETE FROM orders WHERE id = 1');
    failedId = id;
    expect(await stateRow(id)).toMatchObject({ state: 'pending' });
    const killedAt = Date.now();
    await state.kill();
    const err = await result.then(
      () => null,
      (e: unknown) => e as { code: string; message: string },
    );
    expect(err?.code).toBe('42501');
    expect(err?.message).toContain('it was not run because its approval could not be tracked');
    expect(err?.message).toContain('the approval state database is unreachable');
    expect(Date.now() - killedAt).toBeGreaterThanOrEqual(UNAVAILABLE_AFTER_MS - 200);
    expect((await client.query('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
    expect(await orderCount()).toBe(5);
  });

  it('refuses new holds at once while it is away', async () => {
    const client = await gw.connect('shop');
    // Never stored, so no NOTICE names an approval id.
    const notices: string[] = [];
    client.on('notice', (msg) => notices.push(msg.message ?? ''));
    await expect(client.query('DELETE FROM orders WHERE id = 2')).rejects.toMatchObject({
      code: '42501',
      message: expect.stringContaining('the approval state database is unreachable') as unknown,
    });
    expect(notices).toEqual([]);
    expect((await client.query('SELECT 2 AS two')).rows).toEqual([{ two: 2 }]);
    expect(await orderCount()).toBe(5);
  });

  it('holds again once it is back, and the failed request is recorded as failed', async () => {
    await state.start();
    await expect
      .poll(async () => (await stateRow(failedId))?.state, { timeout: 10_000 })
      .toBe('failed');
    const client = await gw.connect('shop');
    await expect
      .poll(
        async () => {
          const { id, result } = await holdStatement(client, 'DELETE FROM orders WHERE id = 3');
          const settled = await Promise.race([
            result.then(
              () => 'ran',
              () => 'refused',
            ),
            new Promise((r) => setTimeout(() => r('held'), 300)),
          ]);
          if (settled === 'held') {
            expect(await stateRow(id)).toMatchObject({ state: 'pending' });
            await client.end();
          }
          return settled;
        },
        { timeout: 15_000, interval: 200 },
      )
      .toBe('held');
    expect(await orderCount()).toBe(5);
    await first.end();
    const events = await gw.sessionEvents('state-down');
    expect(events.map((e) => e.type)).toContain('approval.withdrawn');
  });
});
