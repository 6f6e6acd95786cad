import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { Agent, Logger, Person } from '@portcullis/core';
import type { GatewayConfig } from '../config/load-config.js';
import { PgliteStateDb } from '../state/pglite-state-db.js';
import { StateDbUnavailable, type StateDb } from '../state/state-db.js';
import {
  mayDecide,
  outcomeOf,
  type ApprovalLimits,
  type StoredApproval,
} from './approval-broker-rules.js';
import { APPROVAL_CHANNEL, ApprovalStore } from './approval-store.js';

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
  /**
   * Resolves true once the request is in the state database (so any gateway's API can decide
   * it), false when it could not be stored (the hold then settles as `failed`). The client is
   * told the id only after this: an approver acting on it at once must find it.
   */
  readonly stored: Promise<boolean>;
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
  /**
   * The state database (opened on first use, closed by its owner). Default: a private
   * in-memory one, which the broker closes (tests, and API description checks).
   */
  readonly db?: () => Promise<StateDb>;
  readonly now?: () => number;
  readonly observers?: readonly ApprovalObserver[];
  /** How often held requests are checked in the store besides NOTIFY (`state.pollIntervalMs`). */
  readonly pollIntervalMs?: number;
  /** Held statements fail once the store has not answered this long (`state.unavailableAfterMs`). */
  readonly unavailableAfterMs?: number;
  readonly limits?: ApprovalLimits;
  /** Names this process in the requests it holds; default: host, pid and a random suffix. */
  readonly instance?: string;
  readonly logger?: Logger;
}

/** A statement this process holds. */
interface Hold {
  readonly request: PendingApproval;
  readonly onSettled: (outcome: ApprovalOutcome) => void;
  timer: NodeJS.Timeout | undefined;
  /** The insert committed: the request is in the store. */
  stored: boolean;
  /** The outcome this process gave it locally (to write to the store once it can). */
  outcome: ApprovalOutcome | null;
}

/** How long past its expiry a pending request whose holder is gone is left before it is swept. */
const SWEEP_GRACE_MS = 60_000;
const SWEEP_EVERY_MS = 60_000;
/** Local outcomes waiting to be written while the store is away; beyond this the oldest go. */
const MAX_UNSYNCED = 10_000;

/**
 * Statement approvals kept in the state database, so that every gateway process and instance
 * sharing it sees the same requests: any of them lists and decides any request, and the process
 * holding the statement (the session's) releases or refuses it.
 *
 * Each request ends exactly once: every change that settles it is conditional on it still being
 * pending. The holder hears of a decision by NOTIFY and, in case one is lost, by polling its own
 * requests every `pollIntervalMs`. It never runs a statement it cannot confirm: when the store
 * has not answered for `unavailableAfterMs`, its held statements fail (`failed`), and an expiry,
 * a withdrawal or such a failure that cannot be written is written once the store is back.
 *
 * `request` stays synchronous (the relay holds the statement at once); the insert completes in
 * the background, and the hold fails if it cannot be made.
 */
export class ApprovalBroker {
  readonly #holds = new Map<string, Hold>();
  readonly #unsynced = new Map<string, { request: PendingApproval; outcome: ApprovalOutcome }>();
  readonly #inserts = new Set<Promise<void>>();
  readonly #now: () => number;
  readonly #observers: readonly ApprovalObserver[];
  readonly #openDb: () => Promise<StateDb>;
  readonly #ownsDb: boolean;
  readonly #pollIntervalMs: number;
  readonly #unavailableAfterMs: number;
  readonly #limits: ApprovalLimits;
  readonly #instance: string;
  readonly #logger: Logger | undefined;
  #store: Promise<ApprovalStore> | null = null;
  #unlisten: (() => Promise<void>) | null = null;
  #listening: Promise<void> | null = null;
  #ticker: NodeJS.Timeout | null = null;
  #polling = false;
  #lastContact = 0;
  #lastSweep = 0;
  #closed = false;

  /**
   * A broker on the gateway's state database with the configured timings and limits, telling
   * `observer` (the approvers' webhooks, when configured) of its requests.
   */
  static forConfig(
    config: Pick<GatewayConfig, 'state' | 'approvals'>,
    db: () => Promise<StateDb>,
    observer: ApprovalObserver | null,
    logger: Logger,
  ): ApprovalBroker {
    return new ApprovalBroker({
      db,
      observers: observer === null ? [] : [observer],
      pollIntervalMs: config.state.pollIntervalMs,
      unavailableAfterMs: config.state.unavailableAfterMs,
      limits: config.approvals,
      logger,
    });
  }

  constructor(options: ApprovalBrokerOptions = {}) {
    this.#now = options.now ?? Date.now;
    this.#observers = options.observers ?? [];
    this.#ownsDb = options.db === undefined;
    this.#openDb = options.db ?? memoize(() => PgliteStateDb.open(null));
    this.#pollIntervalMs = options.pollIntervalMs ?? 1_000;
    this.#unavailableAfterMs = options.unavailableAfterMs ?? 10_000;
    this.#limits = options.limits ?? { maxPendingPerPerson: 20, maxRequestsPerSession: 100 };
    this.#instance =
      options.instance ?? `${hostname()}/${process.pid}/${randomBytes(3).toString('hex')}`;
    this.#logger = options.logger;
  }

  /** Holds a request until decided, expired, withdrawn or failed; `onSettled` is called once. */
  request(
    subject: ApprovalSubject,
    policy: ApprovalPolicy,
    onSettled: (outcome: ApprovalOutcome) => void,
  ): HeldApproval {
    const id = `apr_${randomBytes(16).toString('base64url')}`;
    const requestedAt = this.#now();
    const request: PendingApproval = {
      id,
      subject,
      policy,
      requestedAt,
      expiresAt: requestedAt + policy.timeoutSeconds * 1000,
      approvals: [],
    };
    const hold: Hold = { request, onSettled, timer: undefined, stored: false, outcome: null };
    if (this.#closed) {
      // Settled on a later tick: the relay records the hold only once request() returns.
      queueMicrotask(() => onSettled({ kind: 'failed', reason: 'the gateway is shutting down' }));
      return { id, stored: Promise.resolve(false), withdraw: () => {} };
    }
    // The unreachable clock starts with the first hold, not at the last contact before it.
    if (this.#holds.size === 0) this.#lastContact = Math.max(this.#lastContact, requestedAt);
    hold.timer = setTimeout(() => void this.#expire(hold), policy.timeoutSeconds * 1000);
    hold.timer.unref();
    this.#holds.set(id, hold);
    this.#tickWhileBusy();
    const inserting = this.#insert(hold);
    this.#inserts.add(inserting);
    void inserting.finally(() => this.#inserts.delete(inserting));
    return {
      id,
      stored: inserting.then(() => hold.stored),
      withdraw: (reason) => {
        this.#settleHere(hold, { kind: 'withdrawn', reason });
        void this.#sync();
      },
    };
  }

  /**
   * Opens the store (creating its tables) and subscribes to decisions ahead of the first hold.
   * Rejects when the state database cannot be reached; holds then try again.
   */
  async start(): Promise<void> {
    await this.#listen(await this.#openStore());
  }

  /** The pending requests on every gateway that `person` may decide, oldest first. */
  async pendingFor(person: Person): Promise<PendingApproval[]> {
    const store = await this.#storeAfterInserts();
    const pending = await store.pending(this.#now());
    this.#contact();
    return pending.filter((p) => mayDecide(p, person) === null).map(view);
  }

  /** A pending request by id (on any gateway), or undefined. */
  async get(id: string): Promise<PendingApproval | undefined> {
    const store = await this.#storeAfterInserts();
    const stored = await store.get(id);
    this.#contact();
    return stored?.state === 'pending' && stored.expiresAt > this.#now() ? view(stored) : undefined;
  }

  /** Number of statements this process holds. */
  get size(): number {
    return this.#holds.size;
  }

  /**
   * `person` approves or denies request `id` (held by any gateway), in one transaction.
   * Rejects with {@link StateDbUnavailable} when the store cannot be reached.
   */
  async decide(
    id: string,
    person: Person,
    verdict: 'approve' | 'deny',
    reason: string,
  ): Promise<DecideResult> {
    const store = await this.#storeAfterInserts();
    const result = await store.decide(id, person, verdict, reason, this.#now());
    this.#contact();
    if (!result.ok) return result;
    const request = view(result.request);
    if (result.outcome === null) return { ok: true, settled: false, request };
    this.#observe('settled', request, result.outcome);
    // Held here: no need to wait for our own NOTIFY.
    const hold = this.#holds.get(id);
    if (hold !== undefined) this.#finish(hold, result.outcome);
    return { ok: true, settled: true, request };
  }

  /**
   * Withdraws every statement held here (shutdown), writes that to the store as far as it can
   * within a few seconds, and stops listening.
   */
  async close(reason: string): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#ticker !== null) clearInterval(this.#ticker);
    this.#ticker = null;
    for (const hold of [...this.#holds.values()]) {
      this.#settleHere(hold, { kind: 'withdrawn', reason });
    }
    await withTimeout(
      (async () => {
        await Promise.allSettled([...this.#inserts]);
        await this.#sync();
      })(),
      3_000,
    );
    await this.#unlisten?.().catch(() => undefined);
    if (this.#ownsDb && this.#store !== null) {
      await this.#store.then((s) => s.db.close()).catch(() => undefined);
    }
  }

  /** The store, once this process's requests on their way to it are there (read your writes). */
  async #storeAfterInserts(): Promise<ApprovalStore> {
    await Promise.allSettled([...this.#inserts]);
    return this.#openStore();
  }

  /** The store, its tables migrated (once; again after a failure). */
  #openStore(): Promise<ApprovalStore> {
    if (this.#closed && this.#store === null) {
      return Promise.reject(new StateDbUnavailable('the approval broker is closed'));
    }
    if (this.#store === null) {
      const opening = this.#openDb().then((db) => ApprovalStore.open(db));
      this.#store = opening;
      opening.catch(() => {
        if (this.#store === opening) this.#store = null;
      });
    }
    return this.#store;
  }

  async #insert(hold: Hold): Promise<void> {
    const { request } = hold;
    try {
      const store = await this.#openStore();
      await this.#listen(store);
      const refusal = await store.insert(request, this.#instance, this.#limits);
      this.#contact();
      if (refusal !== null) {
        this.#finish(hold, { kind: 'failed', reason: refusal });
        return;
      }
    } catch (err) {
      this.#logger?.warn({ err, approval: request.id }, 'an approval request could not be stored');
      this.#finish(hold, { kind: 'failed', reason: trackingFailure(err) });
      return;
    }
    hold.stored = true;
    this.#observe('requested', request);
    // Withdrawn or expired while the insert was on its way: write that now.
    if (hold.outcome !== null) {
      this.#unsynced.set(request.id, { request, outcome: hold.outcome });
      await this.#sync();
    }
  }

  /** Subscribes to settle notifications once (again after the subscription was lost). */
  async #listen(store: ApprovalStore): Promise<void> {
    if (this.#listening === null) {
      const listening = store.db
        .listen(
          APPROVAL_CHANNEL,
          (id) => void this.#heard(id),
          (err) => {
            this.#logger?.warn({ err }, 'lost the approval notifications; polling until back');
            if (this.#listening === listening) this.#listening = null;
            this.#unlisten = null;
          },
        )
        .then((unlisten) => {
          this.#unlisten = unlisten;
        });
      this.#listening = listening;
      listening.catch(() => {
        if (this.#listening === listening) this.#listening = null;
      });
    }
    // A missing subscription only delays hearing of decisions (polling covers them).
    await this.#listening.catch(() => undefined);
  }

  /** A request settled somewhere: if it is held here, end the hold with the stored outcome. */
  async #heard(id: string): Promise<void> {
    const hold = this.#holds.get(id);
    if (hold === undefined || !hold.stored) return;
    try {
      const stored = await (await this.#openStore()).get(id);
      this.#contact();
      const outcome = stored === undefined ? null : outcomeOf(stored);
      if (outcome !== null) this.#finish(hold, outcome);
    } catch {
      // The next poll looks again.
    }
  }

  /**
   * The expiry timer: the store decides (a decision that just won there stands); when it cannot
   * be reached the statement expires here and the store is told later.
   */
  async #expire(hold: Hold): Promise<void> {
    const { policy, id } = hold.request;
    const expired: ApprovalOutcome = {
      kind: 'expired',
      reason: `no decision within ${policy.timeoutSeconds} seconds`,
    };
    if (!hold.stored) {
      this.#settleHere(hold, expired);
      return;
    }
    try {
      const { won, request } = await (await this.#openStore()).settle(id, expired, this.#now());
      this.#contact();
      if (won) this.#observe('settled', hold.request, expired);
      this.#finish(hold, (request === undefined ? null : outcomeOf(request)) ?? expired);
    } catch {
      this.#settleHere(hold, expired);
    }
  }

  /** Ends a hold with an outcome decided here, to be written to the store. */
  #settleHere(hold: Hold, outcome: ApprovalOutcome): void {
    if (!this.#finish(hold, outcome)) return;
    if (hold.stored) {
      this.#unsynced.set(hold.request.id, { request: hold.request, outcome });
      if (this.#unsynced.size > MAX_UNSYNCED) {
        const oldest = this.#unsynced.keys().next().value!;
        this.#unsynced.delete(oldest);
        this.#logger?.warn({ approval: oldest }, 'dropped an unwritten approval outcome');
      }
    }
  }

  /** Ends a hold (once): tells the relay. False when it had ended already. */
  #finish(hold: Hold, outcome: ApprovalOutcome): boolean {
    if (hold.outcome !== null) return false;
    hold.outcome = outcome;
    this.#holds.delete(hold.request.id);
    clearTimeout(hold.timer);
    try {
      hold.onSettled(outcome);
    } catch (err) {
      this.#logger?.error({ err, approval: hold.request.id }, 'ending a held statement failed');
    }
    return true;
  }

  /** Writes outcomes decided here; the observers hear of those that won. */
  async #sync(): Promise<void> {
    if (this.#unsynced.size === 0) return;
    let store: ApprovalStore;
    try {
      store = await this.#openStore();
    } catch {
      return;
    }
    for (const [id, { request, outcome }] of [...this.#unsynced]) {
      try {
        const { won } = await store.settle(id, outcome, this.#now());
        this.#contact();
        this.#unsynced.delete(id);
        if (won) this.#observe('settled', request, outcome);
      } catch (err) {
        if (err instanceof StateDbUnavailable) return;
        this.#unsynced.delete(id);
        this.#logger?.warn({ err, approval: id }, 'could not record how an approval ended');
      }
    }
  }

  /** Polls while statements are held or outcomes wait to be written. */
  #tickWhileBusy(): void {
    if (this.#ticker !== null || this.#closed) return;
    this.#ticker = setInterval(() => this.#tick(), this.#pollIntervalMs);
    this.#ticker.unref();
  }

  #tick(): void {
    if (this.#holds.size === 0 && this.#unsynced.size === 0) {
      clearInterval(this.#ticker!);
      this.#ticker = null;
      return;
    }
    const silentMs = this.#now() - this.#lastContact;
    if (this.#holds.size > 0 && silentMs >= this.#unavailableAfterMs) {
      const failed: ApprovalOutcome = {
        kind: 'failed',
        reason: `the approval state database is unreachable (no answer for ${Math.round(silentMs / 1000)} s); the statement was not run`,
      };
      this.#logger?.error(
        { held: this.#holds.size, silentMs },
        'the approval state database is unreachable; failing held statements',
      );
      for (const hold of [...this.#holds.values()]) this.#settleHere(hold, failed);
    }
    if (this.#polling) return;
    this.#polling = true;
    void this.#poll().finally(() => {
      this.#polling = false;
    });
  }

  async #poll(): Promise<void> {
    try {
      const store = await this.#openStore();
      if (this.#holds.size > 0) await this.#listen(store);
      const ids = [...this.#holds.values()].filter((h) => h.stored).map((h) => h.request.id);
      const settled = await store.settledAmong(ids);
      this.#contact();
      for (const stored of settled) {
        const hold = this.#holds.get(stored.id);
        const outcome = outcomeOf(stored);
        if (hold !== undefined && outcome !== null) this.#finish(hold, outcome);
      }
      await this.#sync();
      const now = this.#now();
      if (now - this.#lastSweep >= SWEEP_EVERY_MS) {
        this.#lastSweep = now;
        for (const swept of await store.sweep(now, SWEEP_GRACE_MS)) {
          this.#observe('settled', view(swept), outcomeOf(swept)!);
        }
      }
    } catch (err) {
      this.#logger?.debug({ err }, 'polling the approval store failed');
    }
  }

  #contact(): void {
    this.#lastContact = this.#now();
  }

  #observe(event: 'requested', request: PendingApproval): void;
  #observe(event: 'settled', request: PendingApproval, outcome: ApprovalOutcome): void;
  #observe(event: 'requested' | 'settled', request: PendingApproval, outcome?: ApprovalOutcome) {
    for (const o of this.#observers) {
      try {
        if (event === 'requested') o.requested(request);
        else o.settled(request, outcome!);
      } catch (err) {
        this.#logger?.warn({ err }, 'an approval observer failed');
      }
    }
  }
}

/** Why a request could not be held, for the client. */
function trackingFailure(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  return err instanceof StateDbUnavailable
    ? `the approval state database is unreachable: ${message}`
    : `the approval request could not be recorded: ${message}`;
}

function view(request: PendingApproval | StoredApproval): PendingApproval {
  const { id, subject, policy, requestedAt, expiresAt, approvals } = request;
  return { id, subject, policy, requestedAt, expiresAt, approvals: [...approvals] };
}

function memoize<T>(open: () => Promise<T>): () => Promise<T> {
  let value: Promise<T> | null = null;
  return () => (value ??= open());
}

async function withTimeout(work: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    work.catch(() => undefined),
    new Promise((resolve) => {
      timer = setTimeout(resolve, ms);
    }),
  ]);
  clearTimeout(timer);
}
