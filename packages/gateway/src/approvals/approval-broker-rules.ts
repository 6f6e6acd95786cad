import type { Person } from '@portcullis/core';
import type { ApprovalOutcome, Decider, PendingApproval } from './approval-broker.js';

/** Where a request stands in the store. */
export type ApprovalState = 'pending' | ApprovalOutcome['kind'];

/** A request as the store keeps it. */
export interface StoredApproval extends PendingApproval {
  readonly state: ApprovalState;
  /** Who granted or denied it (empty otherwise). */
  readonly decidedBy: readonly Decider[];
  readonly reason: string | null;
  /** The gateway process holding the statement. */
  readonly instance: string;
}

/** The caps on open requests (`approvals.*` in the configuration). */
export interface ApprovalLimits {
  readonly maxPendingPerPerson: number;
  readonly maxRequestsPerSession: number;
}

/** Why `person` may not decide `request`, or null when they may. */
export function mayDecide(request: PendingApproval, person: Person): string | null {
  const { subject, policy } = request;
  if (person.subject === subject.person.subject) {
    if (subject.agent === null) return 'you cannot decide on your own statement';
    if (!policy.allowSelfApproval) {
      return "you cannot decide on your own agent's statement (the rule does not allow self-approval)";
    }
  }
  if (!person.groups.some((g) => policy.groups.includes(g))) {
    return `only members of ${policy.groups.join(', ')} may decide on this statement`;
  }
  if (request.approvals.some((a) => a.subject === person.subject)) {
    return 'you have already approved this statement';
  }
  return null;
}

/**
 * Why a new request may not be held (a cap reached), or null. `personPending` counts the
 * person's unexpired pending requests on every gateway; `sessionRequests` every request the
 * session has raised.
 */
export function capRefusal(
  person: Person,
  counts: { readonly personPending: number; readonly sessionRequests: number },
  limits: ApprovalLimits,
): string | null {
  if (counts.personPending >= limits.maxPendingPerPerson) {
    return `${person.email} already has ${counts.personPending} statements awaiting approval, the limit (approvals.maxPendingPerPerson)`;
  }
  if (counts.sessionRequests >= limits.maxRequestsPerSession) {
    return `this session has already asked for ${counts.sessionRequests} approvals, the limit (approvals.maxRequestsPerSession)`;
  }
  return null;
}

/** How a settled stored request ended, or null while it is pending. */
export function outcomeOf(stored: StoredApproval): ApprovalOutcome | null {
  const reason = stored.reason ?? '';
  switch (stored.state) {
    case 'pending':
      return null;
    case 'granted':
    case 'denied':
      return { kind: stored.state, by: stored.decidedBy, reason };
    default:
      return { kind: stored.state, reason };
  }
}

/** What a decision does to a pending request. */
export type DecisionStep =
  | { readonly ok: false; readonly reason: 'forbidden' | 'decided'; readonly message: string }
  | {
      readonly ok: true;
      /** The request's approvals after this decision. */
      readonly approvals: readonly Decider[];
      /** The outcome when this decision settles it, else null (more approvals needed). */
      readonly outcome: ApprovalOutcome | null;
    };

/** Applies `person`'s verdict to `stored` (already locked), at `now` (ms). */
export function decisionStep(
  stored: StoredApproval,
  person: Person,
  verdict: 'approve' | 'deny',
  reason: string,
  now: number,
): DecisionStep {
  if (stored.state !== 'pending') {
    return {
      ok: false,
      reason: 'decided',
      message: `approval ${stored.id} is already ${stored.state}`,
    };
  }
  if (stored.expiresAt <= now) {
    return { ok: false, reason: 'decided', message: `approval ${stored.id} has expired` };
  }
  const refusal = mayDecide(stored, person);
  if (refusal !== null) return { ok: false, reason: 'forbidden', message: refusal };
  const decider: Decider = { subject: person.subject, email: person.email };
  if (verdict === 'deny') {
    return {
      ok: true,
      approvals: stored.approvals,
      outcome: { kind: 'denied', by: [decider], reason },
    };
  }
  const approvals = [...stored.approvals, decider];
  return {
    ok: true,
    approvals,
    outcome:
      approvals.length >= stored.policy.count ? { kind: 'granted', by: approvals, reason } : null,
  };
}
