import { silentLogger, type Person } from '@portcullis/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PgliteStateDb } from '../state/pglite-state-db.js';
import type { AccessPolicy } from './access-rules.js';
import { GrantSessions } from './access-sessions.js';
import { AccessStore, type AccessChange } from './access-store.js';

const policy: AccessPolicy = {
  groups: ['dba'],
  count: 2,
  maxHours: 4,
  warnMinutes: 1,
  timeoutSeconds: 600,
};
const policyFor = (resource: string) => (resource === 'orders' ? policy : null);
const carol: Person = { subject: 'carol', email: 'carol@example.com', groups: [] };
const ada: Person = { subject: 'ada', email: 'ada@example.com', groups: ['dba'] };
const dan: Person = { subject: 'dan', email: 'dan@example.com', groups: ['dba'] };

let db: PgliteStateDb;
let store: AccessStore;
const changes: AccessChange[] = [];

beforeAll(async () => {
  db = await PgliteStateDb.open(null);
  store = await AccessStore.open(db, { logger: silentLogger });
  store.onChange((c) => changes.push(c));
});
afterAll(async () => {
  await store.close();
  await db.close();
});

async function ask(durationMs = 60_000, resource = 'orders') {
  const created = await store.createRequest({
    resource,
    requester: { subject: carol.subject, email: carol.email },
    durationMs,
    reason: 'incident 7',
    policy,
    maxPendingPerPerson: 3,
  });
  if (!created.ok) throw new Error(created.refusal.message);
  return created.request;
}

describe('AccessStore on the embedded state database', () => {
  it('migrates once: opening a second store on the same database applies nothing', async () => {
    const again = await AccessStore.open(db, { logger: silentLogger });
    await again.close();
    const rows = await db.query<{ version: number }>(
      `SELECT version FROM portcullis_migrations WHERE feature = 'access'`,
    );
    expect(rows.map((r) => r.version)).toEqual([1]);
  });

  it('files a request, refuses a second pending one, and grants after two approvals', async () => {
    const request = await ask();
    const twice = await store.createRequest({
      resource: 'orders',
      requester: { subject: 'carol', email: carol.email },
      durationMs: 60_000,
      reason: 'again',
      policy,
      maxPendingPerPerson: 3,
    });
    expect(twice).toMatchObject({ ok: false, refusal: { code: 'already_pending' } });
    expect((await store.pendingOn(['orders'])).map((r) => r.id)).toEqual([request.id]);

    expect(await store.decide(request.id, carol, 'approve', '', policyFor)).toMatchObject({
      ok: false,
      refusal: { code: 'requester' },
    });
    const first = await store.decide(request.id, ada, 'approve', '', policyFor);
    expect(first).toMatchObject({ ok: true, grant: null, request: { state: 'pending' } });
    expect(await store.decide(request.id, ada, 'approve', '', policyFor)).toMatchObject({
      ok: false,
      refusal: { code: 'already_approved' },
    });
    const second = await store.decide(request.id, dan, 'approve', 'go', policyFor);
    expect(second.ok && second.grant).toMatchObject({
      resource: 'orders',
      grantee: { subject: 'carol' },
    });
    const grant = second.ok ? second.grant! : null;
    expect(await store.activeGrant('carol', 'orders')).toEqual(grant);
    expect(await store.activeGrant('carol', 'other')).toBeNull();
    expect((await store.request(request.id))?.grantId).toBe(grant!.id);
    expect(await store.decide(request.id, dan, 'deny', 'late', policyFor)).toMatchObject({
      ok: false,
      refusal: { code: 'already_decided' },
    });
    expect(await store.decide('acr_nope', dan, 'deny', 'x', policyFor)).toMatchObject({
      ok: false,
      refusal: { code: 'not_found' },
    });
    await expect
      .poll(() => changes.some((c) => c.kind === 'grant' && c.id === grant!.id))
      .toBe(true);

    const ended = await store.endGrant(grant!.id, carol, 'done', policyFor);
    expect(ended).toMatchObject({ ok: true, grant: { revokedBy: { subject: 'carol' } } });
    expect(await store.activeGrant('carol', 'orders')).toBeNull();
    expect(await store.endGrant(grant!.id, ada, '', policyFor)).toMatchObject({
      ok: false,
      refusal: { code: 'grant_ended' },
    });
    await expect
      .poll(() => changes.some((c) => c.kind === 'revoke' && c.id === grant!.id))
      .toBe(true);
  });

  it('a denial ends the request at once', async () => {
    const request = await ask();
    const denied = await store.decide(request.id, dan, 'deny', 'not now', policyFor);
    expect(denied).toMatchObject({
      ok: true,
      request: { state: 'denied', deniedBy: { subject: 'dan' } },
    });
    expect(await store.pendingOn(['orders'])).toEqual([]);
  });

  it('warns a session under a grant and closes it when the grant ends', async () => {
    const request = await ask(1_500);
    await store.decide(request.id, ada, 'approve', '', policyFor);
    const decided = await store.decide(request.id, dan, 'approve', '', policyFor);
    const grant = decided.ok ? decided.grant! : null;
    const sessions = new GrantSessions(store, { logger: silentLogger, pollIntervalMs: 100 });
    const notices: string[] = [];
    const ended = new Promise<{ code: string; message: string; reason: string }>((resolve) => {
      sessions.watch(grant!, policy.warnMinutes, {
        notice: (m) => notices.push(m),
        end: (code, message, reason) => resolve({ code, message, reason }),
      });
    });
    // warnMinutes (1) is longer than the grant: the warning comes at once.
    expect(notices).toHaveLength(1);
    expect(notices[0]).toContain(
      `your access to orders granted by ada@example.com, dan@example.com ends at`,
    );
    expect(await ended).toMatchObject({ code: '57P01', reason: 'access-ended' });
    expect(sessions.size).toBe(0);
    sessions.close();
  });

  it('closes a session at once when its grant is revoked', async () => {
    const request = await ask(600_000);
    await store.decide(request.id, ada, 'approve', '', policyFor);
    const decided = await store.decide(request.id, dan, 'approve', '', policyFor);
    const grant = decided.ok ? decided.grant! : null;
    const sessions = new GrantSessions(store, { logger: silentLogger, pollIntervalMs: 60_000 });
    const ended = new Promise<{ message: string; reason: string }>((resolve) => {
      sessions.watch(grant!, policy.warnMinutes, {
        notice: () => undefined,
        end: (_code, message, reason) => resolve({ message, reason }),
      });
    });
    await store.endGrant(grant!.id, ada, 'incident over', policyFor);
    expect(await ended).toEqual({
      reason: 'access-revoked',
      message: `your access to orders was ended by ada@example.com: incident over (grant ${grant!.id})`,
    });
    sessions.close();
  });
});
