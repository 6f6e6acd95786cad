import { describe, expect, it } from 'vitest';
import { accessDecidedNotice, accessRequestedNotice } from './access-notices.js';
import type { AccessRequest } from './access-rules.js';

const policy = { groups: ['dba'], count: 2, maxHours: 8, warnMinutes: 5, timeoutSeconds: 3600 };
const pending: AccessRequest = {
  id: 'acr_1',
  resource: 'shop',
  requester: { subject: 'carol', email: 'carol@example.com' },
  durationMs: 90 * 60_000,
  reason: 'incident 7',
  state: 'pending',
  requestedAt: Date.UTC(2026, 0, 1),
  expiresAt: Date.UTC(2026, 0, 2),
  approvals: [],
  approvalsNeeded: 2,
  decidedAt: null,
  deniedBy: null,
  decisionReason: '',
  grantId: null,
};

describe('access notices', () => {
  it('describes a new request with the commands that decide it', () => {
    expect(accessRequestedNotice(pending, policy, Date.UTC(2026, 0, 1))).toMatchObject({
      type: 'access.requested',
      access: { id: 'acr_1', durationSeconds: 5400, approverGroups: ['dba'], approvalsNeeded: 2 },
      commands: { approve: 'portcullis approve acr_1' },
      outcome: null,
    });
  });

  it('says nothing while approvals are still missing, and names an expiry', () => {
    const oneOfTwo = { ...pending, approvals: [{ subject: 'ada', email: 'ada@example.com' }] };
    expect(accessDecidedNotice(oneOfTwo, policy, null, 0)).toBeNull();
    expect(accessDecidedNotice({ ...pending, state: 'expired' }, policy, null, 0)).toMatchObject({
      type: 'access.expired',
      outcome: { kind: 'expired', by: [] },
    });
  });
});
