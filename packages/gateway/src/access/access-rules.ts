import { randomBytes } from 'node:crypto';
import type { Person } from '@portcullis/core';

/**
 * Time-boxed access requests, as pure rules: who may ask for access to a resource, for how long,
 * who may decide, what a decision does to a request, and who may end a grant early. The store
 * (access-store.ts) applies them inside its transactions; nothing here does I/O.
 */

/** A resource's `accessRequests` settings (see PostgresResource.accessRequests). */
export interface AccessPolicy {
  /** People in any of these groups may decide. */
  readonly groups: readonly string[];
  /** Approvals a grant needs (one denial ends the request). */
  readonly count: number;
  readonly maxHours: number;
  readonly warnMinutes: number;
  readonly timeoutSeconds: number;
}

/** A person as recorded on a request or grant. */
export interface AccessPerson {
  readonly subject: string;
  readonly email: string;
}

export type AccessRequestState = 'pending' | 'approved' | 'denied' | 'expired';

/** A request for time-boxed access. Times are epoch milliseconds. */
export interface AccessRequest {
  /** `acr_…` */
  readonly id: string;
  readonly resource: string;
  readonly requester: AccessPerson;
  /** How long the grant lasts once approved. */
  readonly durationMs: number;
  readonly reason: string;
  readonly state: AccessRequestState;
  readonly requestedAt: number;
  /** A pending request not decided by then is expired. */
  readonly expiresAt: number;
  readonly approvals: readonly AccessPerson[];
  /** Approvals needed, fixed when the request was made. */
  readonly approvalsNeeded: number;
  /** When it was approved, denied or found expired; null while pending. */
  readonly decidedAt: number | null;
  /** The denier; null unless denied. */
  readonly deniedBy: AccessPerson | null;
  /** The last approver's or the denier's reason ('' when none was given). */
  readonly decisionReason: string;
  /** The grant an approval created; null otherwise. */
  readonly grantId: string | null;
}

/** Time-boxed access to one resource for one person: valid in [startsAt, endsAt). */
export interface AccessGrant {
  /** `acg_…` */
  readonly id: string;
  readonly requestId: string;
  readonly resource: string;
  readonly grantee: AccessPerson;
  readonly approvers: readonly AccessPerson[];
  /** The requester's reason. */
  readonly reason: string;
  readonly startsAt: number;
  readonly endsAt: number;
  /** When it was ended early; null while it runs its course. */
  readonly revokedAt: number | null;
  readonly revokedBy: AccessPerson | null;
  readonly revokeReason: string;
}

/** Why an access request or decision was refused: a stable code and a message for people. */
export interface AccessRefusal {
  readonly code:
    | 'invalid_request'
    | 'not_requestable'
    | 'agent'
    | 'standing_access'
    | 'too_long'
    | 'already_pending'
    | 'too_many_pending'
    | 'not_found'
    | 'requester'
    | 'not_approver'
    | 'already_approved'
    | 'already_decided'
    | 'expired'
    | 'not_allowed'
    | 'grant_ended';
  readonly message: string;
}

/** Longest reason accepted with a request or decision. */
export const MAX_ACCESS_REASON_CHARS = 1000;
/** Shortest grant: anything less could not be used. */
export const MIN_ACCESS_DURATION_MS = 1_000;

export function newAccessRequestId(): string {
  return `acr_${randomBytes(16).toString('base64url')}`;
}

export function newAccessGrantId(): string {
  return `acg_${randomBytes(16).toString('base64url')}`;
}

/** Whether `id` names an access request (so `portcullis approve` knows which API to call). */
export function isAccessRequestId(id: string): boolean {
  return id.startsWith('acr_');
}

function refusal(code: AccessRefusal['code'], message: string): AccessRefusal {
  return { code, message };
}

/** What a new request is checked against. */
export interface NewRequestInput {
  readonly person: Person;
  /** True when the caller is an agent (acting for someone or as itself). */
  readonly agent: boolean;
  readonly resource: string;
  /** The resource's settings; null when it takes no requests. */
  readonly policy: AccessPolicy | null;
  /** The person already may use the resource (identity.groupAccess or a static token). */
  readonly standingAccess: boolean;
  /** Requested length in minutes (fractions allowed: 1.5 = 90 s). */
  readonly minutes: unknown;
  readonly reason: unknown;
}

/** A checked new request: its duration and trimmed reason, or why it is refused. */
export type NewRequestCheck =
  | { readonly ok: true; readonly durationMs: number; readonly reason: string }
  | { readonly ok: false; readonly refusal: AccessRefusal };

/**
 * Who may ask and for how long: a person (agents never ask), for a resource that takes requests,
 * without standing access to it, for at most `maxHours`, with a reason. The per-person limits on
 * pending requests need the store's view and are checked there ({@link pendingLimitRefusal}).
 */
export function checkNewRequest(input: NewRequestInput): NewRequestCheck {
  const no = (code: AccessRefusal['code'], message: string): NewRequestCheck => ({
    ok: false,
    refusal: refusal(code, message),
  });
  if (input.agent) return no('agent', 'only a person may ask for access, not an agent');
  if (input.policy === null) {
    return no(
      'not_requestable',
      `resource "${input.resource}" does not take access requests (no accessRequests in its configuration)`,
    );
  }
  if (input.standingAccess) {
    return no(
      'standing_access',
      `you already have standing access to "${input.resource}"; connect as usual`,
    );
  }
  const minutes = input.minutes;
  if (typeof minutes !== 'number' || !Number.isFinite(minutes) || minutes <= 0) {
    return no('invalid_request', 'minutes must be a positive number');
  }
  const durationMs = Math.round(minutes * 60_000);
  if (durationMs < MIN_ACCESS_DURATION_MS) {
    return no('invalid_request', 'access must last at least one second');
  }
  if (durationMs > input.policy.maxHours * 3_600_000) {
    return no(
      'too_long',
      `resource "${input.resource}" grants at most ${input.policy.maxHours} hour(s) at a time`,
    );
  }
  const reason = typeof input.reason === 'string' ? input.reason.trim() : '';
  if (reason === '') return no('invalid_request', 'say why you need access (reason)');
  if (reason.length > MAX_ACCESS_REASON_CHARS) {
    return no('invalid_request', `reason is longer than ${MAX_ACCESS_REASON_CHARS} characters`);
  }
  return { ok: true, durationMs, reason };
}

/**
 * At most one pending request per person and resource, and at most `maxPending` pending
 * requests per person (`approvals.maxPendingPerPerson`); `pendingResources` are the resources
 * of the person's requests still pending.
 */
export function pendingLimitRefusal(
  resource: string,
  pendingResources: readonly string[],
  maxPending: number,
): AccessRefusal | null {
  if (pendingResources.includes(resource)) {
    return refusal(
      'already_pending',
      `you already have a pending request for "${resource}"; wait for its decision`,
    );
  }
  if (pendingResources.length >= maxPending) {
    return refusal(
      'too_many_pending',
      `you have ${pendingResources.length} requests waiting for a decision (the limit is ${maxPending})`,
    );
  }
  return null;
}

/** A new pending request. */
export function newRequest(
  input: {
    readonly resource: string;
    readonly requester: AccessPerson;
    readonly durationMs: number;
    readonly reason: string;
    readonly policy: AccessPolicy;
  },
  now: number,
  id: string = newAccessRequestId(),
): AccessRequest {
  return {
    id,
    resource: input.resource,
    requester: input.requester,
    durationMs: input.durationMs,
    reason: input.reason,
    state: 'pending',
    requestedAt: now,
    expiresAt: now + input.policy.timeoutSeconds * 1000,
    approvals: [],
    approvalsNeeded: input.policy.count,
    decidedAt: null,
    deniedBy: null,
    decisionReason: '',
    grantId: null,
  };
}

/** A pending request whose decision time has passed. */
export function isOverdue(request: AccessRequest, now: number): boolean {
  return request.state === 'pending' && request.expiresAt <= now;
}

/**
 * Why `person` may not decide `request` now, or null: it is pending and not overdue, the person
 * is in one of the approver groups, is not the requester, and has not approved it already.
 * `policy` is the resource's current setting (null: it no longer takes requests).
 */
export function decideRefusal(
  request: AccessRequest,
  person: Person,
  policy: AccessPolicy | null,
  now: number,
): AccessRefusal | null {
  if (request.state !== 'pending') {
    return request.state === 'expired'
      ? refusal('expired', `access request ${request.id} expired without a decision`)
      : refusal('already_decided', `access request ${request.id} is already ${request.state}`);
  }
  if (isOverdue(request, now)) {
    return refusal('expired', `access request ${request.id} expired without a decision`);
  }
  if (person.subject === request.requester.subject) {
    return refusal('requester', 'you cannot decide on your own access request');
  }
  if (policy === null) {
    return refusal(
      'not_allowed',
      `resource "${request.resource}" no longer takes access requests; nobody may decide`,
    );
  }
  if (!person.groups.some((g) => policy.groups.includes(g))) {
    return refusal(
      'not_approver',
      `only members of ${policy.groups.join(', ')} may decide on access to "${request.resource}"`,
    );
  }
  if (request.approvals.some((a) => a.subject === person.subject)) {
    return refusal('already_approved', 'you have already approved this request');
  }
  return null;
}

/** What a decision did: the request as it is now, and the grant when it was the last approval. */
export interface DecisionResult {
  readonly request: AccessRequest;
  readonly grant: AccessGrant | null;
}

/**
 * Applies a decision that {@link decideRefusal} allowed: a denial ends the request; an approval
 * is counted, and the one that reaches `approvalsNeeded` approves it and opens a grant for
 * [now, now + duration).
 */
export function applyDecision(
  request: AccessRequest,
  decider: AccessPerson,
  verdict: 'approve' | 'deny',
  reason: string,
  now: number,
  grantId: string = newAccessGrantId(),
): DecisionResult {
  if (verdict === 'deny') {
    return {
      request: {
        ...request,
        state: 'denied',
        decidedAt: now,
        deniedBy: decider,
        decisionReason: reason,
      },
      grant: null,
    };
  }
  const approvals = [...request.approvals, decider];
  if (approvals.length < request.approvalsNeeded) {
    return { request: { ...request, approvals }, grant: null };
  }
  const grant: AccessGrant = {
    id: grantId,
    requestId: request.id,
    resource: request.resource,
    grantee: request.requester,
    approvers: approvals,
    reason: request.reason,
    startsAt: now,
    endsAt: now + request.durationMs,
    revokedAt: null,
    revokedBy: null,
    revokeReason: '',
  };
  return {
    request: {
      ...request,
      state: 'approved',
      approvals,
      decidedAt: now,
      decisionReason: reason,
      grantId: grant.id,
    },
    grant,
  };
}

/** Whether a grant lets its grantee in at `now`. */
export function grantActive(grant: AccessGrant, now: number): boolean {
  return grant.revokedAt === null && grant.startsAt <= now && now < grant.endsAt;
}

/** When a grant stops letting its grantee in: its end, or the moment it was ended early. */
export function grantEnd(grant: AccessGrant): number {
  return grant.revokedAt === null ? grant.endsAt : Math.min(grant.revokedAt, grant.endsAt);
}

/**
 * Why `person` may not end `grant` early, or null: the grantee may end their own, and approvers
 * of the resource (`policy`) may end anyone's; an ended grant cannot be ended again.
 */
export function endGrantRefusal(
  grant: AccessGrant,
  person: Person,
  policy: AccessPolicy | null,
  now: number,
): AccessRefusal | null {
  const grantee = person.subject === grant.grantee.subject;
  const approver = policy !== null && person.groups.some((g) => policy.groups.includes(g));
  if (!grantee && !approver) {
    return refusal(
      'not_allowed',
      'only the grantee or an approver of the resource may end this grant',
    );
  }
  if (!grantActive(grant, now)) {
    return refusal(
      'grant_ended',
      grant.revokedAt === null
        ? `grant ${grant.id} has already ended`
        : `grant ${grant.id} was already ended`,
    );
  }
  return null;
}

/** The grant ended early by `by` at `now`. */
export function revokeGrant(
  grant: AccessGrant,
  by: AccessPerson,
  reason: string,
  now: number,
): AccessGrant {
  return { ...grant, revokedAt: now, revokedBy: by, revokeReason: reason };
}

/** `a@x, b@y` for messages. */
export function peopleList(people: readonly AccessPerson[]): string {
  return people.map((p) => p.email || p.subject).join(', ');
}

/**
 * When a session under `grant` should be warned (`warnMinutes` before its end); at once when
 * the grant ends sooner than that.
 */
export function warnAt(grant: AccessGrant, policy: Pick<AccessPolicy, 'warnMinutes'>): number {
  return grantEnd(grant) - policy.warnMinutes * 60_000;
}

/** The NOTICE a session gets before its grant ends. */
export function endingNotice(grant: AccessGrant): string {
  return `your access to ${grant.resource} granted by ${peopleList(grant.approvers)} ends at ${new Date(grantEnd(grant)).toISOString()} (grant ${grant.id})`;
}

/** Why a session under `grant` was closed (the FATAL message and the session end's reason). */
export function endedMessage(
  grant: AccessGrant,
  now: number,
): { readonly message: string; readonly reason: 'access-ended' | 'access-revoked' } {
  if (grant.revokedAt !== null && grant.revokedAt < grant.endsAt && grant.revokedAt <= now) {
    const by =
      grant.revokedBy === null ? '' : ` by ${grant.revokedBy.email || grant.revokedBy.subject}`;
    const why = grant.revokeReason === '' ? '' : `: ${grant.revokeReason}`;
    return {
      message: `your access to ${grant.resource} was ended${by}${why} (grant ${grant.id})`,
      reason: 'access-revoked',
    };
  }
  return {
    message: `your access to ${grant.resource} ended at ${new Date(grant.endsAt).toISOString()} (grant ${grant.id})`,
    reason: 'access-ended',
  };
}

/** The hint a person without access gets when the resource takes requests. */
export function requestHint(resource: string): string {
  return `ask for time-boxed access: portcullis request ${resource} --for 1h --reason "…"`;
}
