import {
  accessNotice,
  approvalCommands,
  type AccessNotice,
  type AccessNoticeType,
  type AccessRequestSummary,
} from '../approvals/approval-messages.js';
import type { AccessGrant, AccessPolicy, AccessRequest } from './access-rules.js';

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
  let type: AccessNoticeType;
  let outcome: { kind: string; by: { subject: string; email: string }[]; reason: string };
  if (grant !== null && grant.revokedAt !== null) {
    type = 'access.revoked';
    outcome = {
      kind: 'revoked',
      by: grant.revokedBy === null ? [] : [grant.revokedBy],
      reason: grant.revokeReason,
    };
  } else if (request.state === 'approved') {
    type = 'access.granted';
    outcome = { kind: 'granted', by: [...request.approvals], reason: request.decisionReason };
  } else if (request.state === 'denied') {
    type = 'access.denied';
    outcome = {
      kind: 'denied',
      by: request.deniedBy === null ? [] : [request.deniedBy],
      reason: request.decisionReason,
    };
  } else if (request.state === 'expired') {
    type = 'access.expired';
    outcome = { kind: 'expired', by: [], reason: 'no decision in time' };
  } else {
    return null;
  }
  return accessNotice(type, summary(request, policy), {
    commands: approvalCommands(request.id),
    outcome: {
      kind: outcome.kind,
      by: outcome.by.map((p) => ({ subject: p.subject, email: p.email })),
      reason: outcome.reason,
    },
    now,
  });
}
