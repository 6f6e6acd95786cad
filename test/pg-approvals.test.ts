// Statement holds end to end: a `review` rule with approvers holds a DELETE in a live session
// (the client gets a NOTICE naming the approval, nothing reaches PostgreSQL) until a person with
// a gateway credential approves it (it runs as submitted) or denies it (42501, the session goes
// on); a hold that nobody decides expires, a client that disconnects or cancels withdraws it, and nobody
// approves their own statement. Every outcome is on the session's event chain.
import { connect } from 'node:net';
import { startOidcProvider, type OidcProviderServer } from '@portcullis/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ALICE,
  dropSharedDatabase,
  superuserQuery,
  type GatewayFixture,
} from './support/gateway-fixture.js';
import { holdStatement, startHoldingShop } from './support/approval-holds.js';
import { apiCall, startFixtureApi, type FixtureApi } from './support/gateway-api.js';
import { personCredential } from './support/oidc-login.js';

const DB = 'it_pg_approvals';
let idp: OidcProviderServer;
let gw: GatewayFixture;
let api: FixtureApi;
/** Gateway credentials of ada and bob (both in `engineering`, the approver group). */
const credentials = new Map<string, string>();

beforeAll(async () => {
  idp = await startOidcProvider();
  gw = await startHoldingShop(idp, DB, 10);
  // The fixture's API has no approval routes; serve the gateway's broker on one of our own.
  api = await startFixtureApi(gw, { approvals: gw.gateway.approvals });
  for (const subject of ['ada', 'bob']) {
    credentials.set(subject, await personCredential(idp, api.base, subject));
  }
});

afterAll(async () => {
  api?.close();
  await gw?.dispose();
  await idp?.stop();
  await dropSharedDatabase(DB);
});

const call = (
  method: 'GET' | 'POST',
  path: string,
  bearer?: string,
  body?: Record<string, unknown>,
) => apiCall(api.base, method, path, bearer, body);

async function orderCount(): Promise<number> {
  const { rows } = await superuserQuery('SELECT count(*)::int AS n FROM orders', DB);
  return (rows as { n: number }[])[0]!.n;
}

describe('statement holds', () => {
  it('holds a DELETE until an approver approves it; it then runs as submitted', async () => {
    const client = await gw.connect('shop');
    const { id, result } = await holdStatement(client, 'DELETE FROM orders WHERE id = 1');
    await new Promise((r) => setTimeout(r, 200));
    expect(await orderCount()).toBe(10);

    const listed = await call('GET', '/v1/approvals', credentials.get('bob'));
    expect(listed.status).toBe(200);
    expect(listed.json['approvals']).toMatchObject([
      {
        id,
        resource: 'shop',
        rule: 'orders-deletes-need-approval',
        statement: { kind: 'delete', tables: ['orders'] },
        requester: { email: ALICE.email },
      },
    ]);
    const approved = await call('POST', `/v1/approvals/${id}/approve`, credentials.get('bob'), {
      reason: 'cleanup ticket 42',
    });
    expect(approved.status, JSON.stringify(approved.json)).toBe(200);
    expect(approved.json['state']).toBe('granted');
    expect((await result).rowCount).toBe(1);
    expect(await orderCount()).toBe(9);
    expect((await client.query('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);

    const again = await call('POST', `/v1/approvals/${id}/approve`, credentials.get('ada'));
    expect(again.status).toBe(409);
    const unknown = await call('POST', '/v1/approvals/apr_unknown/approve', credentials.get('ada'));
    expect(unknown.status).toBe(404);
    const anonymous = await call('GET', '/v1/approvals');
    expect(anonymous.status).toBe(401);
  });

  it('denies with 42501 and the reason; the session and its transaction behave as on a refusal', async () => {
    const client = await gw.connect('shop');
    await client.query('BEGIN');
    const { id, result } = await holdStatement(client, 'DELETE FROM orders WHERE id = 2');
    const denied = await call('POST', `/v1/approvals/${id}/deny`, credentials.get('ada'), {
      reason: 'not during the sale',
    });
    expect(denied.status).toBe(200);
    const err = await result.then(
      () => null,
      (e: unknown) => e as { code: string; message: string },
    );
    expect(err?.code).toBe('42501');
    expect(err?.message).toContain('denied by ada@example.com: not during the sale');
    await expect(client.query('SELECT 1')).rejects.toMatchObject({ code: '25P02' });
    await client.query('ROLLBACK');
    expect((await client.query('SELECT 2 AS two')).rows).toEqual([{ two: 2 }]);
    expect(await orderCount()).toBe(9);
  });

  it('refuses a denial without a reason and the requester deciding their own statement', async () => {
    const client = await gw.connect('shop', { password: credentials.get('ada')! });
    const { id, result } = await holdStatement(client, 'DELETE FROM orders WHERE id = 3');
    const own = await call('POST', `/v1/approvals/${id}/approve`, credentials.get('ada'));
    expect(own.status).toBe(403);
    expect((await call('GET', '/v1/approvals', credentials.get('ada'))).json['approvals']).toEqual(
      [],
    );
    const noReason = await call('POST', `/v1/approvals/${id}/deny`, credentials.get('bob'), {});
    expect(noReason.status).toBe(400);
    await call('POST', `/v1/approvals/${id}/approve`, credentials.get('bob'));
    expect((await result).rowCount).toBe(1);
  });

  it('expires after the rule’s timeout with 42501', async () => {
    const client = await gw.connect('shop');
    const { result } = await holdStatement(client, 'DELETE FROM archive');
    await expect(result).rejects.toMatchObject({
      code: '42501',
      message: expect.stringContaining('approval expired') as unknown,
    });
    expect((await client.query('SELECT count(*)::int AS n FROM archive')).rows).toEqual([{ n: 1 }]);
  });

  it('a client that disconnects withdraws its request', async () => {
    const client = await gw.connect('shop');
    const { id } = await holdStatement(client, 'DELETE FROM orders WHERE id = 4');
    await client.end().catch(() => undefined);
    await gw.waitForEvents((events) =>
      events.some((e) => e.type === 'approval.withdrawn' && e.approvalDecision?.id === id),
    );
    const late = await call('POST', `/v1/approvals/${id}/approve`, credentials.get('bob'));
    expect(late.status).toBe(409);
    expect(await orderCount()).toBe(8);
  });

  it('a CancelRequest withdraws the request: the statement fails with 57014, the session goes on', async () => {
    const client = await gw.connect('shop');
    const { id, result } = await holdStatement(client, 'DELETE FROM orders WHERE id = 5');
    const { processID, secretKey } = client as unknown as { processID: number; secretKey: number };
    const packet = Buffer.alloc(16);
    packet.writeInt32BE(16, 0);
    packet.writeInt32BE(80877102, 4);
    packet.writeInt32BE(processID, 8);
    packet.writeInt32BE(secretKey, 12);
    const socket = connect({ host: gw.host, port: gw.port });
    socket.end(packet);
    await expect(result).rejects.toMatchObject({ code: '57014' });
    expect((await client.query('SELECT 3 AS three')).rows).toEqual([{ three: 3 }]);
    const late = await call('POST', `/v1/approvals/${id}/approve`, credentials.get('bob'));
    expect(late.status).toBe(409);
    expect(await orderCount()).toBe(8);
  });

  it('records every request and decision on the session’s events', async () => {
    const events = await gw.waitForEvents(
      (all) => all.filter((e) => e.type.startsWith('approval.')).length >= 12,
    );
    const decisions = events.filter((e) => e.approvalDecision !== undefined);
    expect(decisions.map((e) => e.type).sort()).toEqual([
      'approval.denied',
      'approval.expired',
      'approval.granted',
      'approval.granted',
      'approval.withdrawn',
      'approval.withdrawn',
    ]);
    const granted = decisions.find((e) => e.type === 'approval.granted')!;
    expect(granted.approvalDecision).toMatchObject({
      by: [{ subject: 'bob', email: 'bob@example.com' }],
      reason: 'cleanup ticket 42',
    });
    const requested = events.filter((e) => e.type === 'approval.requested');
    expect(requested).toHaveLength(6);
    expect(requested.every((e) => e.approval?.id?.startsWith('apr_'))).toBe(true);
    const ran = events.find(
      (e) => e.statement?.kind === 'delete' && e.statement.tag === 'DELETE 1',
    );
    expect(ran?.statement?.verdict).toBe('review');
  });
});
