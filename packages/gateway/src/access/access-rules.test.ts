import type { Person } from '@portcullis/core';
import { describe, expect, it } from 'vitest';
import {
  applyDecision,
  checkNewRequest,
  decideRefusal,
  endGrantRefusal,
  endedMessage,
  endingNotice,
  grantActive,
  grantEnd,
  isAccessRequestId,
  newRequest,
  pendingLimitRefusal,
  requestHint,
  revokeGrant,
  warnAt,
  type AccessPolicy,
  type NewRequestInput,
} from './access-rules.js';

const policy: AccessPolicy = {
  groups: ['dba'],
  count: 2,
  maxHours: 4,
  warnMinutes: 5,
  timeoutSeconds: 600,
};
const carol: Person = { subject: 'carol', email: 'carol@example.com', groups: ['contractors'] };
const ada: Person = { subject: 'ada', email: 'ada@example.com', groups: ['dba'] };
const dan: Person = { subject: 'dan', email: 'dan@example.com', groups: ['dba', 'ops'] };
const bob: Person = { subject: 'bob', email: 'bob@example.com', groups: ['engineering'] };
const T0 = Date.UTC(2030, 0, 1, 9, 0, 0);

const ask = (overrides: Partial<NewRequestInput> = {}): NewRequestInput => ({
  person: carol,
  agent: false,
  resource: 'orders',
  policy,
  standingAccess: false,
  minutes: 30,
  reason: 'incident 7',
  ...overrides,
});

const pending = () =>
  newRequest(
    { resource: 'orders', requester: carol, durationMs: 30 * 60_000, reason: 'incident 7', policy },
    T0,
    'acr_test',
  );

describe('who may ask, and for how long', () => {
  it('accepts a person without standing access, within maxHours, with a reason', () => {
    expect(checkNewRequest(ask({ reason: '  incident 7 ' }))).toEqual({
      ok: true,
      durationMs: 30 * 60_000,
      reason: 'incident 7',
    });
    expect(checkNewRequest(ask({ minutes: 1.5 }))).toMatchObject({ durationMs: 90_000 });
    expect(checkNewRequest(ask({ minutes: 240 }))).toMatchObject({ ok: true });
  });

  it('refuses agents, resources without requests, and people who already have access', () => {
    const code = (input: NewRequestInput) => {
      const checked = checkNewRequest(input);
      return checked.ok ? 'ok' : checked.refusal.code;
    };
    expect(code(ask({ agent: true }))).toBe('agent');
    expect(code(ask({ policy: null }))).toBe('not_requestable');
    expect(code(ask({ standingAccess: true }))).toBe('standing_access');
    const standing = checkNewRequest(ask({ standingAccess: true }));
    expect(!standing.ok && standing.refusal.message).toContain('already have standing access');
  });

  it('bounds the duration and requires a reason', () => {
    const code = (input: NewRequestInput) => {
      const checked = checkNewRequest(input);
      return checked.ok ? 'ok' : checked.refusal.code;
    };
    expect(code(ask({ minutes: 241 }))).toBe('too_long');
    expect(code(ask({ minutes: 0 }))).toBe('invalid_request');
    expect(code(ask({ minutes: -1 }))).toBe('invalid_request');
    expect(code(ask({ minutes: '30' }))).toBe('invalid_request');
    expect(code(ask({ minutes: Number.NaN }))).toBe('invalid_request');
    expect(code(ask({ minutes: 0.001 }))).toBe('invalid_request');
    expect(code(ask({ reason: '   ' }))).toBe('invalid_request');
    expect(code(ask({ reason: undefined }))).toBe('invalid_request');
    expect(code(ask({ reason: 'x'.repeat(1001) }))).toBe('invalid_request');
  });

  it('allows one pending request per person and resource, and a cap per person', () => {
    expect(pendingLimitRefusal('orders', ['orders'], 20)?.code).toBe('already_pending');
    expect(pendingLimitRefusal('orders', ['a', 'b'], 2)?.code).toBe('too_many_pending');
    expect(pendingLimitRefusal('orders', ['a'], 2)).toBeNull();
  });

  it('gives a new request its deadline and approval count', () => {
    const request = pending();
    expect(request).toMatchObject({
      state: 'pending',
      expiresAt: T0 + 600_000,
      approvalsNeeded: 2,
      approvals: [],
      grantId: null,
    });
    expect(isAccessRequestId(request.id)).toBe(true);
    expect(isAccessRequestId('apr_x')).toBe(false);
  });
});

describe('who may decide', () => {
  it('only approvers, never the requester, each once, before the deadline', () => {
    const request = pending();
    expect(decideRefusal(request, ada, policy, T0)).toBeNull();
    expect(decideRefusal(request, carol, policy, T0)?.code).toBe('requester');
    expect(decideRefusal(request, { ...carol, groups: ['dba'] }, policy, T0)?.code).toBe(
      'requester',
    );
    expect(decideRefusal(request, bob, policy, T0)?.code).toBe('not_approver');
    expect(decideRefusal(request, ada, null, T0)?.code).toBe('not_allowed');
    expect(decideRefusal(request, ada, policy, T0 + 600_000)?.code).toBe('expired');
    const once = applyDecision(request, who(ada), 'approve', '', T0).request;
    expect(decideRefusal(once, ada, policy, T0)?.code).toBe('already_approved');
  });

  it('needs N distinct approvals; the last one opens the grant for the duration', () => {
    const first = applyDecision(pending(), who(ada), 'approve', 'ok', T0 + 1000);
    expect(first.grant).toBeNull();
    expect(first.request).toMatchObject({ state: 'pending', approvals: [ada].map(who) });
    const second = applyDecision(first.request, who(dan), 'approve', 'fine', T0 + 2000, 'acg_test');
    expect(second.request).toMatchObject({
      state: 'approved',
      decidedAt: T0 + 2000,
      grantId: 'acg_test',
      decisionReason: 'fine',
    });
    expect(second.grant).toMatchObject({
      id: 'acg_test',
      requestId: 'acr_test',
      grantee: who(carol),
      approvers: [ada, dan].map(who),
      startsAt: T0 + 2000,
      endsAt: T0 + 2000 + 30 * 60_000,
      revokedAt: null,
    });
    expect(decideRefusal(second.request, bob, policy, T0)?.code).toBe('already_decided');
  });

  it('one denial ends the request, even after approvals', () => {
    const first = applyDecision(pending(), who(ada), 'approve', '', T0);
    const denied = applyDecision(first.request, who(dan), 'deny', 'not now', T0 + 10);
    expect(denied.grant).toBeNull();
    expect(denied.request).toMatchObject({
      state: 'denied',
      deniedBy: who(dan),
      decisionReason: 'not now',
    });
    expect(decideRefusal(denied.request, ada, policy, T0)?.code).toBe('already_decided');
  });
});

describe('grants', () => {
  const grant = () =>
    applyDecision(
      applyDecision(pending(), who(ada), 'approve', '', T0).request,
      dan,
      'approve',
      '',
      T0,
      'acg_test',
    ).grant!;

  it('are active in [approvedAt, approvedAt + duration)', () => {
    const g = grant();
    expect(grantActive(g, T0 - 1)).toBe(false);
    expect(grantActive(g, T0)).toBe(true);
    expect(grantActive(g, T0 + 30 * 60_000 - 1)).toBe(true);
    expect(grantActive(g, T0 + 30 * 60_000)).toBe(false);
    expect(warnAt(g, policy)).toBe(T0 + 25 * 60_000);
  });

  it('may be ended early by the grantee or an approver, once', () => {
    const g = grant();
    expect(endGrantRefusal(g, carol, policy, T0 + 1)).toBeNull();
    expect(endGrantRefusal(g, ada, policy, T0 + 1)).toBeNull();
    expect(endGrantRefusal(g, bob, policy, T0 + 1)?.code).toBe('not_allowed');
    expect(endGrantRefusal(g, carol, policy, T0 + 30 * 60_000)?.code).toBe('grant_ended');
    const revoked = revokeGrant(g, who(ada), 'done', T0 + 60_000);
    expect(grantActive(revoked, T0 + 60_001)).toBe(false);
    expect(grantEnd(revoked)).toBe(T0 + 60_000);
    expect(endGrantRefusal(revoked, carol, policy, T0 + 60_001)?.code).toBe('grant_ended');
  });

  it('tell sessions who granted them and why they end', () => {
    const g = grant();
    expect(endingNotice(g)).toBe(
      `your access to orders granted by ada@example.com, dan@example.com ends at ${new Date(T0 + 30 * 60_000).toISOString()} (grant acg_test)`,
    );
    expect(endedMessage(g, T0 + 30 * 60_000)).toEqual({
      reason: 'access-ended',
      message: `your access to orders ended at ${new Date(T0 + 30 * 60_000).toISOString()} (grant acg_test)`,
    });
    expect(endedMessage(revokeGrant(g, who(ada), 'incident over', T0 + 5), T0 + 6)).toEqual({
      reason: 'access-revoked',
      message: 'your access to orders was ended by ada@example.com: incident over (grant acg_test)',
    });
    expect(requestHint('orders')).toContain('portcullis request orders --for 1h --reason');
  });
});

function who(p: Person) {
  return { subject: p.subject, email: p.email };
}
