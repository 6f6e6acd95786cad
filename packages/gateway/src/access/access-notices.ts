import {
  accessNotice,
  approvalCommands,
  type AccessNotice,
  type AccessRequestSummary,
} from '../approvals/approval-messages.js';
import type { AccessGrant, AccessPerson, AccessPolicy, AccessRequest } from './access-rules.js';

function summary(request: AccessRequest, policy: AccessPolicy): AccessRequestSummary {
  return {
    id: request.id,
    resource: request.resource,
    requester: { subject: request.requester.subject, email: request.requester.email },
    reason: request.reason,
    durationSeconds: Math.round(request.durationMs / 1000),
    approverGroups: policy.groups,
    approvalsNeeded: request.approvalsNeeded,
    requestedAt: request.requestedAt,
    expiresAt: request.expiresAt,
  };
}

/** The notice of a new request, for approvers. */
export function accessRequestedNotice(
  request: AccessRequest,
  policy: AccessPolicy,
  now: number,
): AccessNotice {
  return accessNotice('access.requested', summary(request, policy), {
    commands: approvalCommands(request.id),
    now,
  });
}

/**
 * The notice of a decision, or null while the request still waits for more approvals. A grant
 * that ends early is `access.revoked`, with who ended it and why.
 */
export function accessDecidedNotice(
  request: AccessRequest,
  policy: AccessPolicy,
  grant: AccessGrant | null,
  now: number,
): AccessNotice | null {
  const outcome = decisionOf(request, grant);
  if (outcome === null) return null;
  return accessNotice(`access.${outcome.kind}`, summary(request, policy), {
    commands: approvalCommands(request.id),
    outcome: {
      kind: outcome.kind,
      by: outcome.by.map((p) => ({ subject: p.subject, email: p.email })),
      reason: outcome.reason,
    },
    now,
  });
}

/** How a request (or its grant) ended, or null while it still waits. */
function decisionOf(
  request: AccessRequest,
  grant: AccessGrant | null,
): {
  kind: 'revoked' | 'granted' | 'denied' | 'expired';
  by: readonly AccessPerson[];
  reason: string;
} | null {
  if (grant !== null && grant.revokedAt !== null) {
    const by = grant.revokedBy === null ? [] : [grant.revokedBy];
    return { kind: 'revoked', by, reason: grant.revokeReason };
  }
  switch (request.state) {
    case 'approved':
      return { kind: 'granted', by: request.approvals, reason: request.decisionReason };
    case 'denied': {
      const by = request.deniedBy === null ? [] : [request.deniedBy];
      return { kind: 'denied', by, reason: request.decisionReason };
    }
    case 'expired':
      return { kind: 'expired', by: [], reason: 'no decision in time' };
    case 'pending':
      return null;
  }
}
