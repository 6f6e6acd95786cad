import type { Person } from '@portcullis/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PgliteStateDb } from '../state/pglite-state-db.js';
import type { StateDb } from '../state/state-db.js';
import {
  ApprovalBroker,
  type ApprovalBrokerOptions,
  type ApprovalObserver,
  type ApprovalOutcome,
  type ApprovalPolicy,
  type ApprovalSubject,
} from './approval-broker.js';
import { ApprovalStore } from './approval-store.js';

const ada: Person = { subject: 'ada', email: 'ada@example.com', groups: ['approvers'] };
const bob: Person = { subject: 'bob', email: 'bob@example.com', groups: ['engineering'] };
const cy: Person = { subject: 'cy', email: 'cy@example.com', groups: ['approvers', 'dba'] };

const policy: ApprovalPolicy = {
  groups: ['approvers'],
  count: 1,
  timeoutSeconds: 60,
  allowSelfApproval: false,
};

let db: StateDb;
const brokers: ApprovalBroker[] = [];
let sessions = 0;

beforeAll(async () => {
  db = await PgliteStateDb.open(null);
});
afterAll(async () => {
  await Promise.all(brokers.map((b) => b.close('test over')));
  await db.close();
});

function broker(options: ApprovalBrokerOptions = {}): ApprovalBroker {
  const b = new ApprovalBroker({ db: () => Promise.resolve(db), pollIntervalMs: 50, ...options });
  brokers.push(b);
  return b;
}

function subject(person: Person, agent = false, sessionId = `s${++sessions}`): ApprovalSubject {
  return {
    sessionId,
    resource: 'shop',
    person,
    agent: agent ? { id: 'bot', name: 'Bot' } : null,
    text: 'DELETE FROM orders WHERE id = ?',
    kind: 'delete',
    tables: ['orders'],
    rule: 'hold-deletes',
    message: 'held',
  };
}

/** Holds a statement and waits until the request is in the store (or has failed). */
async function hold(b: ApprovalBroker, who: Person, p = policy, agent = false, sessionId?: string) {
  const outcomes: ApprovalOutcome[] = [];
  const held = b.request(subject(who, agent, sessionId), p, (o) => outcomes.push(o));
  await expect
    .poll(async () => outcomes.length > 0 || (await b.get(held.id)) !== undefined, {
      timeout: 5_000,
    })
    .toBe(true);
  return { held, outcomes };
}

describe('ApprovalBroker', () => {
  it('gives each request a random id and lists it to those who may decide', async () => {
    const b = broker();
    const x = await hold(b, bob);
    const y = await hold(b, bob);
    expect(x.held.id).not.toBe(y.held.id);
    expect(x.held.id).toMatch(/^apr_[\w-]{22}$/);
    const listed = (await b.pendingFor(ada)).map((p) => p.id);
    expect(listed.indexOf(x.held.id)).toBeLessThan(listed.indexOf(y.held.id));
    expect(listed.indexOf(x.held.id)).toBeGreaterThanOrEqual(0);
    expect(await b.pendingFor(bob)).toEqual([]);
    x.held.withdraw('done');
    y.held.withdraw('done');
  });

  it('grants on approval, once; a second decision is "decided", an unknown id "unknown"', async () => {
    const seen: string[] = [];
    const observer: ApprovalObserver = {
      requested: (r) => seen.push(`requested ${r.id}`),
      settled: (r, o) => seen.push(`${o.kind} ${r.id}`),
    };
    const b = broker({ observers: [observer] });
    const { held, outcomes } = await hold(b, bob);
    expect(await b.decide(held.id, ada, 'approve', 'looks fine')).toMatchObject({
      ok: true,
      settled: true,
    });
    expect(outcomes).toEqual([
      { kind: 'granted', by: [{ subject: 'ada', email: 'ada@example.com' }], reason: 'looks fine' },
    ]);
    expect(await b.decide(held.id, cy, 'deny', 'no')).toMatchObject({
      ok: false,
      reason: 'decided',
      message: `approval ${held.id} is already granted`,
    });
    expect(await b.decide('apr_nope', ada, 'approve', '')).toMatchObject({
      ok: false,
      reason: 'unknown',
    });
    expect(outcomes).toHaveLength(1);
    expect(seen).toEqual([`requested ${held.id}`, `granted ${held.id}`]);
    expect(b.size).toBe(0);
  });

  it('denies with the reason', async () => {
    const b = broker();
    const { held, outcomes } = await hold(b, bob);
    await b.decide(held.id, ada, 'deny', 'not during the sale');
    expect(outcomes).toEqual([
      {
        kind: 'denied',
        by: [{ subject: 'ada', email: 'ada@example.com' }],
        reason: 'not during the sale',
      },
    ]);
  });

  it('refuses the requester, people outside the groups, and an agent’s person unless allowed', async () => {
    const b = broker();
    const own = await hold(b, ada);
    expect(await b.decide(own.held.id, ada, 'approve', '')).toMatchObject({
      ok: false,
      reason: 'forbidden',
    });
    expect(await b.decide(own.held.id, bob, 'approve', '')).toMatchObject({
      ok: false,
      reason: 'forbidden',
    });
    const agents = await hold(b, ada, policy, true);
    expect(await b.decide(agents.held.id, ada, 'approve', '')).toMatchObject({ ok: false });
    const allowed = await hold(b, ada, { ...policy, allowSelfApproval: true }, true);
    expect(await b.decide(allowed.held.id, ada, 'approve', '')).toMatchObject({ ok: true });
    expect(own.outcomes).toEqual([]);
    expect(allowed.outcomes).toMatchObject([{ kind: 'granted' }]);
    own.held.withdraw('done');
    agents.held.withdraw('done');
  });

  it('needs `count` different approvers', async () => {
    const b = broker();
    const { held, outcomes } = await hold(b, bob, { ...policy, count: 2 });
    expect(await b.decide(held.id, ada, 'approve', '')).toMatchObject({
      ok: true,
      settled: false,
    });
    expect(await b.decide(held.id, ada, 'approve', '')).toMatchObject({ reason: 'forbidden' });
    expect((await b.pendingFor(ada)).map((p) => p.id)).not.toContain(held.id);
    expect((await b.pendingFor(cy)).find((p) => p.id === held.id)!.approvals).toEqual([
      { subject: 'ada', email: 'ada@example.com' },
    ]);
    await b.decide(held.id, cy, 'approve', 'ok');
    expect(outcomes).toMatchObject([
      { kind: 'granted', by: [{ subject: 'ada' }, { subject: 'cy' }] },
    ]);
  });

  it('expires after the timeout and can be withdrawn; both end it once, in the store too', async () => {
    const b = broker();
    const late = await hold(b, bob, { ...policy, timeoutSeconds: 0.3 });
    const gone = await hold(b, bob);
    gone.held.withdraw('client disconnected');
    gone.held.withdraw('again');
    await expect
      .poll(() => late.outcomes)
      .toEqual([{ kind: 'expired', reason: 'no decision within 0.3 seconds' }]);
    expect(gone.outcomes).toEqual([{ kind: 'withdrawn', reason: 'client disconnected' }]);
    expect(await b.decide(late.held.id, ada, 'approve', '')).toMatchObject({
      reason: 'decided',
      message: `approval ${late.held.id} is already expired`,
    });
    await expect
      .poll(async () => (await b.decide(gone.held.id, ada, 'approve', '')).ok === false)
      .toBe(true);
    expect(await b.decide(gone.held.id, ada, 'approve', '')).toMatchObject({
      message: `approval ${gone.held.id} is already withdrawn`,
    });
  });

  it('releases a statement held by one process when another decides it', async () => {
    const holder = broker();
    const api = broker();
    const { held, outcomes } = await hold(holder, bob);
    expect((await api.pendingFor(ada)).map((p) => p.id)).toContain(held.id);
    expect(await api.decide(held.id, ada, 'approve', 'fine')).toMatchObject({ settled: true });
    await expect.poll(() => outcomes).toMatchObject([{ kind: 'granted', reason: 'fine' }]);
  });

  it('finds a decision whose NOTIFY never came by polling its own requests', async () => {
    const holder = broker({ pollIntervalMs: 30 });
    const { held, outcomes } = await hold(holder, bob);
    // Decided behind the brokers' backs: no NOTIFY.
    await db.query(
      `UPDATE portcullis_approval_requests
       SET state = 'denied', reason = 'by hand', decided_by = $2::jsonb, settled_at = now()
       WHERE id = $1`,
      [held.id, JSON.stringify([{ subject: 'cy', email: 'cy@example.com' }])],
    );
    await expect
      .poll(() => outcomes)
      .toEqual([
        { kind: 'denied', by: [{ subject: 'cy', email: 'cy@example.com' }], reason: 'by hand' },
      ]);
  });

  it('lets exactly one outcome win: a settle after a decision finds the decision', async () => {
    const b = broker();
    const { held } = await hold(b, bob);
    await b.decide(held.id, ada, 'deny', 'no');
    const store = await ApprovalStore.open(db);
    const late = await store.settle(held.id, { kind: 'expired', reason: 'late' }, Date.now());
    expect(late).toMatchObject({ won: false, request: { state: 'denied', reason: 'no' } });
  });

  it('refuses a person’s requests beyond maxPendingPerPerson, on every process', async () => {
    const limits = { maxPendingPerPerson: 2, maxRequestsPerSession: 100 };
    const dan: Person = { subject: 'dan', email: 'dan@example.com', groups: [] };
    const one = broker({ limits });
    const two = broker({ limits });
    const a = await hold(one, dan);
    const b = await hold(two, dan);
    const c = await hold(two, dan);
    expect(c.outcomes).toEqual([
      {
        kind: 'failed',
        reason:
          'dan@example.com already has 2 statements awaiting approval, the limit (approvals.maxPendingPerPerson)',
      },
    ]);
    a.held.withdraw('done');
    await expect.poll(async () => (await hold(one, dan)).outcomes).toEqual([]);
    expect(b.outcomes).toEqual([]);
  });

  it('refuses a session’s requests beyond maxRequestsPerSession', async () => {
    const b = broker({ limits: { maxPendingPerPerson: 20, maxRequestsPerSession: 2 } });
    const first = await hold(b, bob, policy, false, 'busy-session');
    first.held.withdraw('done');
    await hold(b, bob, policy, false, 'busy-session');
    const third = await hold(b, bob, policy, false, 'busy-session');
    expect(third.outcomes).toEqual([
      {
        kind: 'failed',
        reason:
          'this session has already asked for 2 approvals, the limit (approvals.maxRequestsPerSession)',
      },
    ]);
  });

  it('fails holds (never runs them) when the state database is unreachable', async () => {
    const own = await PgliteStateDb.open(null);
    const b = new ApprovalBroker({
      db: () => Promise.resolve(own),
      pollIntervalMs: 20,
      unavailableAfterMs: 200,
    });
    const held = await hold(b, bob);
    await own.close();
    await expect.poll(() => held.outcomes).toHaveLength(1);
    expect(held.outcomes[0]).toMatchObject({
      kind: 'failed',
      reason: expect.stringMatching(/^the approval state database is unreachable/) as unknown,
    });
    const next = await hold(b, bob);
    expect(next.outcomes).toMatchObject([
      { kind: 'failed', reason: expect.stringContaining('unreachable') as unknown },
    ]);
    await b.close('test over');
  });

  it('withdraws what it holds on close and records that in the store', async () => {
    const b = new ApprovalBroker({ db: () => Promise.resolve(db) });
    const held = await hold(b, bob);
    await b.close('the gateway is shutting down');
    expect(held.outcomes).toEqual([{ kind: 'withdrawn', reason: 'the gateway is shutting down' }]);
    const store = await ApprovalStore.open(db);
    expect(await store.get(held.held.id)).toMatchObject({ state: 'withdrawn' });
  });
});
