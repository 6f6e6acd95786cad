// Statement holds over the extended protocol (Parse/Bind/Execute/Sync, what pg uses with
// parameters): a `review` statement's Execute is held with its Parse and Bind, nothing of it
// reaches PostgreSQL until an approver approves it, each execution of a prepared statement is
// approved on its own, and a refusal fails the statement in its place in the pipeline (42501,
// or 57014 on a cancel) — inside a transaction block too — with the session going on.
import { startOidcProvider, type OidcProviderServer } from '@portcullis/testkit';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ALICE,
  dropSharedDatabase,
  superuserQuery,
  type GatewayFixture,
} from './support/gateway-fixture.js';
import { startHoldingShop } from './support/approval-holds.js';
import { apiCall, startFixtureApi, type FixtureApi } from './support/gateway-api.js';
import { personCredential } from './support/oidc-login.js';
import {
  RawPgClient,
  bindMessage,
  describeMessage,
  errorFields,
  executeMessage,
  parseMessage,
  sendCancelRequest,
  syncMessage,
  type PgMessage,
} from './support/raw-pg-client.js';

const DB = 'it_pg_approvals_extended';
let idp: OidcProviderServer;
let gw: GatewayFixture;
let api: FixtureApi;
/** Gateway credential of bob (in `engineering`, the approver group). */
let bob = '';

const BOB = { subject: 'bob', email: 'bob@example.com', name: 'Bob', groups: ['engineering'] };

beforeAll(async () => {
  idp = await startOidcProvider();
  gw = await startHoldingShop(idp, DB, 40);
  api = await startFixtureApi(gw, { approvals: gw.gateway.approvals });
  bob = await personCredential(idp, api.base, 'bob');
});

afterAll(async () => {
  api?.close();
  await gw?.dispose();
  await idp?.stop();
  await dropSharedDatabase(DB);
});

async function approve(id: string): Promise<void> {
  const { status, json } = await apiCall(api.base, 'POST', `/v1/approvals/${id}/approve`, bob, {});
  expect(status, JSON.stringify(json)).toBe(200);
}

async function deny(id: string, reason: string): Promise<void> {
  const decided = await gw.gateway.approvals!.decide(id, BOB, 'deny', reason);
  expect(decided.ok).toBe(true);
}

/** Sends `config` through pg (extended protocol) and resolves with the approval id of its hold. */
async function hold(
  client: pg.Client,
  config: pg.QueryConfig,
): Promise<{ id: string; result: Promise<pg.QueryResult> }> {
  const notice = new Promise<string>((resolve) =>
    client.once('notice', (msg) => resolve(msg.message ?? '')),
  );
  const result = client.query(config);
  result.catch(() => undefined);
  const message = await notice;
  const id = /approval (apr_[\w-]+)/.exec(message)?.[1];
  expect(id, message).toBeDefined();
  return { id: id!, result };
}

async function rejection(
  result: Promise<unknown>,
): Promise<{ code?: string; message: string; hint?: string }> {
  return result.then(
    () => {
      throw new Error('expected the statement to fail');
    },
    (err: unknown) => err as { code?: string; message: string; hint?: string },
  );
}

async function exists(id: number): Promise<boolean> {
  const { rows } = await superuserQuery(
    `SELECT count(*)::int AS n FROM orders WHERE id = ${id}`,
    DB,
  );
  return (rows as { n: number }[])[0]!.n === 1;
}

const deleteOrder = (id: number): pg.QueryConfig => ({
  text: 'DELETE FROM orders WHERE id = $1',
  values: [id],
});

async function rawSession(): Promise<RawPgClient> {
  const raw = await RawPgClient.connect(gw.port);
  await raw.login({ database: 'shop', password: ALICE.token });
  return raw;
}

/** Reads messages up to the next NoticeResponse and returns the approval id it names. */
async function noticeId(raw: RawPgClient): Promise<string> {
  const messages = await raw.readUntil('N');
  const notice = errorFields(messages.at(-1)!);
  const id = /approval (apr_[\w-]+)/.exec(notice.message)?.[1];
  expect(id, notice.message).toBeDefined();
  return id!;
}

const types = (messages: readonly PgMessage[]): string => messages.map((m) => m.type).join('');

describe('extended-protocol holds', () => {
  it('holds a parameterised DELETE until approved; it then runs as submitted', async () => {
    const client = await gw.connect('shop');
    const { id, result } = await hold(client, deleteOrder(1));
    await new Promise((r) => setTimeout(r, 200));
    expect(await exists(1)).toBe(true);
    const listed = await apiCall(api.base, 'GET', '/v1/approvals', bob);
    expect(listed.json['approvals']).toMatchObject([
      { id, rule: 'orders-deletes-need-approval', statement: { kind: 'delete' } },
    ]);
    await approve(id);
    expect((await result).rowCount).toBe(1);
    expect(await exists(1)).toBe(false);
    expect((await client.query('SELECT $1::int AS n', [7])).rows).toEqual([{ n: 7 }]);
  });

  it('denies with 42501 and the reason; the rows stay and the session goes on', async () => {
    const client = await gw.connect('shop');
    const { id, result } = await hold(client, deleteOrder(2));
    await deny(id, 'not during the sale');
    const err = await rejection(result);
    expect(err.code).toBe('42501');
    expect(err.message).toContain('denied by bob@example.com: not during the sale');
    expect(err.hint).toContain('orders-deletes-need-approval');
    expect(await exists(2)).toBe(true);
    expect((await client.query('SELECT $1::text AS t', ['ok'])).rows).toEqual([{ t: 'ok' }]);
    const { id: again, result: second } = await hold(client, deleteOrder(2));
    await approve(again);
    expect((await second).rowCount).toBe(1);
  });

  it('expires after the rule’s timeout with 42501', async () => {
    const client = await gw.connect('shop');
    const { result } = await hold(client, {
      text: 'DELETE FROM archive WHERE id = $1',
      values: [1],
    });
    const err = await rejection(result);
    expect(err.code).toBe('42501');
    expect(err.message).toContain('approval expired');
    expect((await client.query('SELECT count(*)::int AS n FROM archive')).rows).toEqual([{ n: 1 }]);
  });

  it('a CancelRequest withdraws it: 57014, the session goes on', async () => {
    const client = await gw.connect('shop');
    const { id, result } = await hold(client, deleteOrder(3));
    const { processID, secretKey } = client as unknown as { processID: number; secretKey: number };
    await sendCancelRequest(gw.port, processID, secretKey);
    const err = await rejection(result);
    expect(err.code).toBe('57014');
    expect((await client.query('SELECT $1::int AS n', [3])).rows).toEqual([{ n: 3 }]);
    const late = await apiCall(api.base, 'POST', `/v1/approvals/${id}/approve`, bob, {});
    expect(late.status).toBe(409);
    expect(await exists(3)).toBe(true);
  });

  it('inside BEGIN: a denial fails the transaction (COMMIT reports ROLLBACK)', async () => {
    const client = await gw.connect('shop');
    await client.query('BEGIN');
    await client.query('UPDATE orders SET item = $1 WHERE id = $2', ['changed', 4]);
    const { id, result } = await hold(client, deleteOrder(5));
    await deny(id, 'no');
    expect((await rejection(result)).code).toBe('42501');
    await expect(client.query('SELECT 1')).rejects.toMatchObject({ code: '25P02' });
    expect((await client.query('COMMIT')).command).toBe('ROLLBACK');
    const { rows } = await superuserQuery('SELECT item FROM orders WHERE id = 4', DB);
    expect(rows).toEqual([{ item: 'item 4' }]);
    expect(await exists(5)).toBe(true);
  });

  it('inside BEGIN: an approval runs it in the transaction, which then commits', async () => {
    const client = await gw.connect('shop');
    await client.query('BEGIN');
    const { id, result } = await hold(client, deleteOrder(6));
    await approve(id);
    expect((await result).rowCount).toBe(1);
    expect(await exists(6)).toBe(true); // not committed yet
    expect((await client.query('COMMIT')).command).toBe('COMMIT');
    expect(await exists(6)).toBe(false);
  });

  it('a named prepared statement executed twice needs two approvals', async () => {
    const client = await gw.connect('shop');
    const first = await hold(client, { name: 'del', ...deleteOrder(7) });
    await approve(first.id);
    expect((await first.result).rowCount).toBe(1);
    // Another statement in between replaces the unnamed statement upstream.
    expect((await client.query('SELECT $1::int AS n', [1])).rows).toEqual([{ n: 1 }]);
    const second = await hold(client, { name: 'del', ...deleteOrder(8) });
    expect(second.id).not.toBe(first.id);
    await new Promise((r) => setTimeout(r, 100));
    expect(await exists(8)).toBe(true);
    await approve(second.id);
    expect((await second.result).rowCount).toBe(1);
    expect(await exists(8)).toBe(false);
    const third = await hold(client, { name: 'del', ...deleteOrder(9) });
    await deny(third.id, 'enough');
    expect((await rejection(third.result)).code).toBe('42501');
    expect(await exists(9)).toBe(true);
    // SQL-level EXECUTE of the protocol-level statement cannot run it without an approval.
    await expect(client.query('EXECUTE del(9)')).rejects.toMatchObject({ code: '42501' });
    expect(await exists(9)).toBe(true);
  });

  it('an unnamed statement bound and executed twice in one batch needs two approvals', async () => {
    const raw = await rawSession();
    raw.write(
      parseMessage('', 'DELETE FROM orders WHERE id = $1'),
      bindMessage('', '', ['10']),
      executeMessage(''),
      bindMessage('', '', ['11']),
      executeMessage(''),
      syncMessage,
    );
    const first = await noticeId(raw);
    expect(await exists(10)).toBe(true);
    await approve(first);
    const second = await noticeId(raw);
    expect(second).not.toBe(first);
    // The first ran; the batch's implicit transaction commits at its Sync, behind the second.
    expect(await exists(10)).toBe(true);
    await approve(second);
    const done = await raw.collect();
    expect(done.tags).toEqual(['DELETE 1', 'DELETE 1']);
    expect(await exists(10)).toBe(false);
    expect(await exists(11)).toBe(false);
    raw.destroy();
  });

  it('frames pipelined behind a held statement wait and keep their order', async () => {
    const raw = await rawSession();
    raw.write(
      parseMessage('', 'SELECT 1 AS before'),
      bindMessage('', '', []),
      executeMessage(''),
      syncMessage,
      parseMessage('', 'DELETE FROM orders WHERE id = $1 RETURNING id'),
      bindMessage('', '', ['12']),
      describeMessage('P', ''),
      executeMessage(''),
      parseMessage('', 'SELECT count(*) AS left FROM orders WHERE id = 12'),
      bindMessage('', '', []),
      executeMessage(''),
      syncMessage,
      parseMessage('', 'SELECT 3 AS after'),
      bindMessage('', '', []),
      executeMessage(''),
      syncMessage,
    );
    const id = await noticeId(raw);
    const before = await raw.collect();
    expect(before.rows).toEqual([['1']]);
    await approve(id);
    const held = await raw.collect();
    expect(types(held.messages)).toBe('12TDC12DCZ');
    expect(held.rows).toEqual([['12'], ['0']]);
    const after = await raw.collect();
    expect(after.rows).toEqual([['3']]);
    raw.destroy();
  });

  it('a refusal skips the rest of its batch up to Sync and the next batch runs', async () => {
    const raw = await rawSession();
    raw.write(
      parseMessage('', 'DELETE FROM orders WHERE id = $1'),
      bindMessage('', '', ['13']),
      executeMessage(''),
      parseMessage('', 'DELETE FROM orders WHERE id = $1'),
      bindMessage('', '', ['14']),
      executeMessage(''),
      syncMessage,
      parseMessage('', 'SELECT 4 AS next'),
      bindMessage('', '', []),
      executeMessage(''),
      syncMessage,
    );
    const id = await noticeId(raw);
    await deny(id, 'no');
    const refused = await raw.collect();
    expect(types(refused.messages)).toBe('EZ');
    expect(refused.errors[0]).toMatchObject({ code: '42501' });
    expect(refused.status).toBe('I');
    const next = await raw.collect();
    expect(next.rows).toEqual([['4']]);
    expect(await exists(13)).toBe(true);
    expect(await exists(14)).toBe(true);
    raw.destroy();
  });

  it('records requests, decisions and the refused statements on the session’s events', async () => {
    const events = await gw.waitForEvents(
      (all) => all.filter((e) => e.type.startsWith('approval.')).length >= 24,
    );
    const requested = events.filter((e) => e.type === 'approval.requested');
    expect(requested.every((e) => e.approval?.id?.startsWith('apr_'))).toBe(true);
    const decided = events.filter((e) => e.approvalDecision !== undefined).map((e) => e.type);
    expect(decided).toContain('approval.granted');
    expect(decided).toContain('approval.denied');
    expect(decided).toContain('approval.expired');
    expect(decided).toContain('approval.withdrawn');
    const statements = events
      .filter((e) => e.statement?.kind === 'delete')
      .map((e) => e.statement!);
    expect(statements).toContainEqual(
      expect.objectContaining({ protocol: 'extended', verdict: 'review', tag: 'DELETE 1' }),
    );
    expect(statements).toContainEqual(
      expect.objectContaining({
        protocol: 'extended',
        verdict: 'review',
        error: expect.objectContaining({ code: '42501' }) as unknown,
      }),
    );
  });
});
