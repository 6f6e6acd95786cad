import type { Person } from '@portcullis/core';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  ApprovalBroker,
  type ApprovalOutcome,
  type ApprovalPolicy,
  type ApprovalSubject,
} from './approval-broker.js';

const ada: Person = { subject: 'ada', email: 'ada@example.com', groups: ['approvers'] };
const bob: Person = { subject: 'bob', email: 'bob@example.com', groups: ['engineering'] };
const cy: Person = { subject: 'cy', email: 'cy@example.com', groups: ['approvers', 'dba'] };

const policy: ApprovalPolicy = {
  groups: ['approvers'],
  count: 1,
  timeoutSeconds: 60,
  allowSelfApproval: false,
};

function subject(person: Person, agent = false): ApprovalSubject {
  return {
    sessionId: 's1',
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

function hold(broker: ApprovalBroker, who: Person, p = policy, agent = false) {
  const outcomes: ApprovalOutcome[] = [];
  const held = broker.request(subject(who, agent), p, (o) => outcomes.push(o));
  return { held, outcomes };
}

describe('ApprovalBroker', () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it('gives each request a random id and lists it to those who may decide', () => {
    const broker = new ApprovalBroker();
    const a = hold(broker, bob);
    const b = hold(broker, bob);
    expect(a.held.id).not.toBe(b.held.id);
    expect(a.held.id).toMatch(/^apr_[\w-]{22}$/);
    expect(broker.pendingFor(ada).map((p) => p.id)).toEqual([a.held.id, b.held.id]);
    expect(broker.pendingFor(bob)).toEqual([]);
  });

  it('grants on approval, once; a second decision is "decided", an unknown id "unknown"', () => {
    const broker = new ApprovalBroker();
    const { held, outcomes } = hold(broker, bob);
    expect(broker.decide(held.id, ada, 'approve', 'looks fine')).toMatchObject({
      ok: true,
      settled: true,
    });
    expect(outcomes).toEqual([
      { kind: 'granted', by: [{ subject: 'ada', email: 'ada@example.com' }], reason: 'looks fine' },
    ]);
    expect(broker.decide(held.id, cy, 'deny', 'no')).toMatchObject({
      ok: false,
      reason: 'decided',
    });
    expect(broker.decide('apr_nope', ada, 'approve', '')).toMatchObject({
      ok: false,
      reason: 'unknown',
    });
    expect(outcomes).toHaveLength(1);
    expect(broker.size).toBe(0);
  });

  it('denies with the reason', () => {
    const broker = new ApprovalBroker();
    const { held, outcomes } = hold(broker, bob);
    broker.decide(held.id, ada, 'deny', 'not during the sale');
    expect(outcomes).toEqual([
      {
        kind: 'denied',
        by: [{ subject: 'ada', email: 'ada@example.com' }],
        reason: 'not during the sale',
      },
    ]);
  });

  it('refuses the requester, people outside the groups, and an agent’s person unless allowed', () => {
    const broker = new ApprovalBroker();
    const own = hold(broker, ada);
    expect(broker.decide(own.held.id, ada, 'approve', '')).toMatchObject({
      ok: false,
      reason: 'forbidden',
    });
    expect(broker.decide(own.held.id, bob, 'approve', '')).toMatchObject({
      ok: false,
      reason: 'forbidden',
    });
    const agents = hold(broker, ada, policy, true);
    expect(broker.decide(agents.held.id, ada, 'approve', '')).toMatchObject({ ok: false });
    const allowed = hold(broker, ada, { ...policy, allowSelfApproval: true }, true);
    expect(broker.decide(allowed.held.id, ada, 'approve', '')).toMatchObject({ ok: true });
    expect(own.outcomes).toEqual([]);
    expect(allowed.outcomes).toMatchObject([{ kind: 'granted' }]);
  });

  it('needs `count` different approvers', () => {
    const broker = new ApprovalBroker();
    const { held, outcomes } = hold(broker, bob, { ...policy, count: 2 });
    expect(broker.decide(held.id, ada, 'approve', '')).toMatchObject({ ok: true, settled: false });
    expect(broker.decide(held.id, ada, 'approve', '')).toMatchObject({ reason: 'forbidden' });
    expect(broker.pendingFor(ada)).toEqual([]);
    expect(broker.pendingFor(cy)[0]!.approvals).toEqual([
      { subject: 'ada', email: 'ada@example.com' },
    ]);
    broker.decide(held.id, cy, 'approve', 'ok');
    expect(outcomes).toMatchObject([
      { kind: 'granted', by: [{ subject: 'ada' }, { subject: 'cy' }] },
    ]);
  });

  it('expires after the timeout and can be withdrawn; both end it once', () => {
    const broker = new ApprovalBroker();
    const late = hold(broker, bob);
    const gone = hold(broker, bob);
    gone.held.withdraw('client disconnected');
    gone.held.withdraw('again');
    vi.advanceTimersByTime(60_000);
    expect(late.outcomes).toEqual([{ kind: 'expired', reason: 'no decision within 60 seconds' }]);
    expect(gone.outcomes).toEqual([{ kind: 'withdrawn', reason: 'client disconnected' }]);
    expect(broker.decide(late.held.id, ada, 'approve', '')).toMatchObject({ reason: 'decided' });
  });
});
