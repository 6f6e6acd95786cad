import { randomBytes } from 'node:crypto';
import type { Agent, Person } from '@portcullis/core';

/** Who may approve a held statement, how many must, and how long it waits (a `review` rule). */
export interface ApprovalPolicy {
  /** People in any of these groups may decide. */
  readonly groups: readonly string[];
  /** Approvals needed to release the statement (one denial refuses it). */
  readonly count: number;
  readonly timeoutSeconds: number;
  /** The session's person may decide on their own agent's statement. */
  readonly allowSelfApproval: boolean;
}

/** What is held: the statement and who asked, as approvers see it. */
export interface ApprovalSubject {
  readonly sessionId: string;
  readonly resource: string;
  /** The session's person (for an agent's session, the person it acts for). */
  readonly person: Person;
  /** The agent acting, or null when the person runs the statement themselves. */
  readonly agent: Agent | null;
  /** Statement text as recorded (literals redacted unless configured otherwise). */
  readonly text: string;
  readonly kind: string;
  readonly tables: readonly string[];
  readonly rule: string;
  readonly message: string;
}

/** A decider, as recorded. */
export interface Decider {
  readonly subject: string;
  readonly email: string;
}

/** How a request ended. */
export type ApprovalOutcome =
  | { readonly kind: 'granted'; readonly by: readonly Decider[]; readonly reason: string }
  | { readonly kind: 'denied'; readonly by: readonly Decider[]; readonly reason: string }
  | { readonly kind: 'expired'; readonly reason: string }
  | { readonly kind: 'withdrawn'; readonly reason: string }
  /** The gateway could not track the request (state database unreachable, a cap reached). */
  | { readonly kind: 'failed'; readonly reason: string };

/** A pending request, as listed to approvers. */
export interface PendingApproval {
  readonly id: string;
  readonly subject: ApprovalSubject;
  readonly policy: ApprovalPolicy;
  /** Milliseconds since the epoch. */
  readonly requestedAt: number;
  readonly expiresAt: number;
  /** Approvals given so far (fewer than `policy.count`). */
  readonly approvals: readonly Decider[];
}

/** The answer to {@link ApprovalBroker.decide}. */
export type DecideResult =
  | { readonly ok: true; readonly settled: boolean; readonly request: PendingApproval }
  | {
      readonly ok: false;
      readonly reason: 'unknown' | 'forbidden' | 'decided';
      readonly message: string;
    };

/** A request's handle for the side that holds the statement. */
export interface HeldApproval {
  readonly id: string;
  /** Ends the request without a decision (client gone or cancelled); no-op once settled. */
  withdraw(reason: string): void;
}

/**
 * Told when a request starts waiting and when it ends (notifications, metrics); called by the
 * gateway process that raised or settled it. Observers handle their own errors.
 */
export interface ApprovalObserver {
  requested(request: PendingApproval): void;
  settled(request: PendingApproval, outcome: ApprovalOutcome): void;
}

/** Options of an {@link ApprovalBroker}. */
export interface ApprovalBrokerOptions {
  readonly now?: () => number;
  readonly observers?: readonly ApprovalObserver[];
  /** Ids of settled requests remembered so a late decision gets "already decided". */
  readonly rememberSettled?: number;
}

interface Entry extends PendingApproval {
  readonly approvals: Decider[];
  readonly timer: NodeJS.Timeout;
  readonly onSettled: (outcome: ApprovalOutcome) => void;
}

/**
 * Pending statement approvals of one gateway process: ids are random and unguessable, each
 * request ends exactly once (granted, denied, expired or withdrawn) and tells its holder. It
 * keeps no state beyond this process (see the package README for what several processes need).
 */
export class ApprovalBroker {
  readonly #pending = new Map<string, Entry>();
  readonly #settled = new Map<string, ApprovalOutcome['kind']>();
  readonly #now: () => number;
  readonly #remember: number;
  readonly #observers: readonly ApprovalObserver[];

  constructor(options: ApprovalBrokerOptions = {}) {
    this.#now = options.now ?? Date.now;
    this.#remember = options.rememberSettled ?? 4096;
    this.#observers = options.observers ?? [];
  }

  /** Holds a request until decided, expired or withdrawn; `onSettled` is called once. */
  request(
    subject: ApprovalSubject,
    policy: ApprovalPolicy,
    onSettled: (outcome: ApprovalOutcome) => void,
  ): HeldApproval {
    const id = `apr_${randomBytes(16).toString('base64url')}`;
    const requestedAt = this.#now();
    const expiresAt = requestedAt + policy.timeoutSeconds * 1000;
    const timer = setTimeout(
      () =>
        this.#settle(id, {
          kind: 'expired',
          reason: `no decision within ${policy.timeoutSeconds} seconds`,
        }),
      policy.timeoutSeconds * 1000,
    );
    timer.unref();
    this.#pending.set(id, {
      id,
      subject,
      policy,
      requestedAt,
      expiresAt,
      approvals: [],
      timer,
      onSettled,
    });
    const pending = view(this.#pending.get(id)!);
    for (const o of this.#observers) o.requested(pending);
    return { id, withdraw: (reason) => this.#settle(id, { kind: 'withdrawn', reason }) };
  }

  /** The pending requests `person` may decide, oldest first. */
  pendingFor(person: Person): PendingApproval[] {
    return [...this.#pending.values()]
      .filter((e) => mayDecide(e, person) === null)
      .map((e) => view(e));
  }

  /** A pending request by id, or undefined. */
  get(id: string): PendingApproval | undefined {
    const entry = this.#pending.get(id);
    return entry === undefined ? undefined : view(entry);
  }

  /** Number of requests pending. */
  get size(): number {
    return this.#pending.size;
  }

  /** `person` approves or denies request `id`. */
  decide(id: string, person: Person, verdict: 'approve' | 'deny', reason: string): DecideResult {
    const entry = this.#pending.get(id);
    if (entry === undefined) {
      return this.#settled.has(id)
        ? {
            ok: false,
            reason: 'decided',
            message: `approval ${id} is already ${this.#settled.get(id)}`,
          }
        : { ok: false, reason: 'unknown', message: `no approval request ${id}` };
    }
    const refusal = mayDecide(entry, person);
    if (refusal !== null) return { ok: false, reason: 'forbidden', message: refusal };
    const decider = { subject: person.subject, email: person.email };
    if (verdict === 'deny') {
      this.#settle(id, { kind: 'denied', by: [decider], reason });
      return { ok: true, settled: true, request: view(entry) };
    }
    entry.approvals.push(decider);
    if (entry.approvals.length < entry.policy.count) {
      return { ok: true, settled: false, request: view(entry) };
    }
    this.#settle(id, { kind: 'granted', by: [...entry.approvals], reason });
    return { ok: true, settled: true, request: view(entry) };
  }

  /** Withdraws every pending request (shutdown). */
  close(reason: string): void {
    for (const id of [...this.#pending.keys()]) this.#settle(id, { kind: 'withdrawn', reason });
  }

  #settle(id: string, outcome: ApprovalOutcome): void {
    const entry = this.#pending.get(id);
    if (entry === undefined) return;
    this.#pending.delete(id);
    clearTimeout(entry.timer);
    this.#settled.set(id, outcome.kind);
    if (this.#settled.size > this.#remember) {
      this.#settled.delete(this.#settled.keys().next().value!);
    }
    entry.onSettled(outcome);
    const settled = view(entry);
    for (const o of this.#observers) o.settled(settled, outcome);
  }
}

/** Why `person` may not decide `entry`, or null when they may. */
function mayDecide(entry: Entry, person: Person): string | null {
  const { subject, policy } = entry;
  if (person.subject === subject.person.subject) {
    if (subject.agent === null) return 'you cannot decide on your own statement';
    if (!policy.allowSelfApproval) {
      return "you cannot decide on your own agent's statement (the rule does not allow self-approval)";
    }
  }
  if (!person.groups.some((g) => policy.groups.includes(g))) {
    return `only members of ${policy.groups.join(', ')} may decide on this statement`;
  }
  if (entry.approvals.some((a) => a.subject === person.subject)) {
    return 'you have already approved this statement';
  }
  return null;
}

function view(entry: Entry): PendingApproval {
  const { id, subject, policy, requestedAt, expiresAt } = entry;
  return { id, subject, policy, requestedAt, expiresAt, approvals: [...entry.approvals] };
}
