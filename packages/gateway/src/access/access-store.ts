import type { Logger, Person } from '@portcullis/core';
import type { StateDb, StateMigration, StateTx } from '../state/state-db.js';
import { migrateState } from '../state/state-migrations.js';
import {
  applyDecision,
  decideRefusal,
  endGrantRefusal,
  isOverdue,
  newRequest,
  pendingLimitRefusal,
  revokeGrant,
  type AccessGrant,
  type AccessPerson,
  type AccessPolicy,
  type AccessRefusal,
  type AccessRequest,
  type DecisionResult,
} from './access-rules.js';

/** Channel every gateway sharing the state database hears access changes on. */
export const ACCESS_CHANNEL = 'portcullis_access';

/** What a NOTIFY on {@link ACCESS_CHANNEL} says; listeners re-read what they care about. */
export interface AccessChange {
  readonly kind: 'request' | 'grant' | 'revoke';
  /** The request's or the grant's id. */
  readonly id: string;
  readonly resource: string;
  readonly subject: string;
}

/**
 * Times are epoch milliseconds in bigint columns (both PostgreSQL and PGlite read them the
 * same way); people are small JSON objects. One pending request per person and resource is a
 * partial unique index, so concurrent requests from two gateways cannot both be pending.
 */
const MIGRATIONS: readonly StateMigration[] = [
  {
    version: 1,
    sql: `
      CREATE TABLE access_requests (
        id text PRIMARY KEY,
        resource text NOT NULL,
        requester_subject text NOT NULL,
        requester_email text NOT NULL,
        duration_ms bigint NOT NULL,
        reason text NOT NULL,
        state text NOT NULL,
        requested_at bigint NOT NULL,
        expires_at bigint NOT NULL,
        approvals jsonb NOT NULL DEFAULT '[]',
        approvals_needed integer NOT NULL,
        decided_at bigint,
        denied_by jsonb,
        decision_reason text NOT NULL DEFAULT '',
        grant_id text
      );
      CREATE UNIQUE INDEX access_requests_one_pending
        ON access_requests (requester_subject, resource) WHERE state = 'pending';
      CREATE INDEX access_requests_pending ON access_requests (resource) WHERE state = 'pending';
      CREATE INDEX access_requests_by_requester ON access_requests (requester_subject, requested_at);
      CREATE TABLE access_grants (
        id text PRIMARY KEY,
        request_id text NOT NULL REFERENCES access_requests (id),
        resource text NOT NULL,
        grantee_subject text NOT NULL,
        grantee_email text NOT NULL,
        approvers jsonb NOT NULL,
        reason text NOT NULL,
        starts_at bigint NOT NULL,
        ends_at bigint NOT NULL,
        revoked_at bigint,
        revoked_by jsonb,
        revoke_reason text NOT NULL DEFAULT ''
      );
      CREATE INDEX access_grants_by_grantee ON access_grants (grantee_subject, resource, ends_at);
      CREATE INDEX access_grants_by_resource ON access_grants (resource, ends_at);
    `,
  },
];

type Row = Record<string, unknown>;

const REQUEST_COLUMNS = `id, resource, requester_subject, requester_email, duration_ms, reason, state,
  requested_at, expires_at, approvals, approvals_needed, decided_at, denied_by, decision_reason, grant_id`;
const GRANT_COLUMNS = `id, request_id, resource, grantee_subject, grantee_email, approvers, reason,
  starts_at, ends_at, revoked_at, revoked_by, revoke_reason`;

function json<T>(value: unknown): T {
  return (typeof value === 'string' ? JSON.parse(value) : value) as T;
}

function millis(value: unknown): number {
  return Number(value);
}

function orNull<T>(value: unknown, map: (v: unknown) => T): T | null {
  return value === null || value === undefined ? null : map(value);
}

function requestFrom(row: Row): AccessRequest {
  return {
    id: row['id'] as string,
    resource: row['resource'] as string,
    requester: {
      subject: row['requester_subject'] as string,
      email: row['requester_email'] as string,
    },
    durationMs: millis(row['duration_ms']),
    reason: row['reason'] as string,
    state: row['state'] as AccessRequest['state'],
    requestedAt: millis(row['requested_at']),
    expiresAt: millis(row['expires_at']),
    approvals: json<AccessPerson[]>(row['approvals']),
    approvalsNeeded: Number(row['approvals_needed']),
    decidedAt: orNull(row['decided_at'], millis),
    deniedBy: orNull(row['denied_by'], (v) => json<AccessPerson>(v)),
    decisionReason: row['decision_reason'] as string,
    grantId: (row['grant_id'] as string | null) ?? null,
  };
}

function grantFrom(row: Row): AccessGrant {
  return {
    id: row['id'] as string,
    requestId: row['request_id'] as string,
    resource: row['resource'] as string,
    grantee: { subject: row['grantee_subject'] as string, email: row['grantee_email'] as string },
    approvers: json<AccessPerson[]>(row['approvers']),
    reason: row['reason'] as string,
    startsAt: millis(row['starts_at']),
    endsAt: millis(row['ends_at']),
    revokedAt: orNull(row['revoked_at'], millis),
    revokedBy: orNull(row['revoked_by'], (v) => json<AccessPerson>(v)),
    revokeReason: row['revoke_reason'] as string,
  };
}

/** An overdue pending request reads as expired even before anyone wrote that down. */
function current(request: AccessRequest, now: number): AccessRequest {
  return isOverdue(request, now)
    ? { ...request, state: 'expired', decidedAt: request.expiresAt }
    : request;
}

function decider(person: Person): AccessPerson {
  return { subject: person.subject, email: person.email };
}

async function notifyIn(tx: StateTx, change: AccessChange): Promise<void> {
  // Inside the transaction: delivered at commit, never for a decision that rolled back.
  await tx.query('SELECT pg_notify($1, $2)', [ACCESS_CHANNEL, JSON.stringify(change)]);
}

/** The answer to a write: what changed, or why nothing did. */
export type AccessResult<T> =
  ({ readonly ok: true } & T) | { readonly ok: false; readonly refusal: AccessRefusal };

/** Options of {@link AccessStore.open}. */
export interface AccessStoreOptions {
  readonly logger: Logger;
  readonly now?: () => number;
}

/**
 * Access requests and grants in the gateway's state database. Decisions run in transactions
 * that lock the request (`SELECT … FOR UPDATE`), so approvals arriving at two gateways at once
 * are counted once and exactly one of them opens the grant; every change is NOTIFYed on
 * {@link ACCESS_CHANNEL} so all gateways learn of grants and revocations at once.
 */
export class AccessStore {
  readonly #db: StateDb;
  readonly #logger: Logger;
  readonly #now: () => number;
  readonly #listeners = new Set<(change: AccessChange) => void>();
  #unlisten: (() => Promise<void>) | null = null;
  #relisten: NodeJS.Timeout | null = null;
  #closed = false;

  private constructor(db: StateDb, options: AccessStoreOptions) {
    this.#db = db;
    this.#logger = options.logger;
    this.#now = options.now ?? Date.now;
  }

  /** Brings the tables up to date and subscribes to changes. */
  static async open(db: StateDb, options: AccessStoreOptions): Promise<AccessStore> {
    await migrateState(db, 'access', MIGRATIONS);
    const store = new AccessStore(db, options);
    await store.#listen();
    return store;
  }

  now(): number {
    return this.#now();
  }

  /** Calls `listener` for every change any gateway makes; returns the unsubscribe. */
  onChange(listener: (change: AccessChange) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  async #listen(): Promise<void> {
    this.#unlisten = await this.#db.listen(
      ACCESS_CHANNEL,
      (payload) => {
        let change: AccessChange;
        try {
          change = JSON.parse(payload) as AccessChange;
        } catch {
          return;
        }
        for (const listener of this.#listeners) listener(change);
      },
      (err) => {
        this.#unlisten = null;
        this.#logger.warn(
          { err },
          'access changes: the state database subscription broke; polling until it is back',
        );
        this.#scheduleRelisten();
      },
    );
  }

  #scheduleRelisten(): void {
    if (this.#closed || this.#relisten !== null) return;
    this.#relisten = setTimeout(() => {
      this.#relisten = null;
      if (this.#closed) return;
      this.#listen().catch(() => this.#scheduleRelisten());
    }, 2_000);
    this.#relisten.unref();
  }

  /**
   * Files a request checked by `checkNewRequest`; refused when the person already has one
   * pending for the resource or too many pending overall.
   */
  async createRequest(input: {
    readonly resource: string;
    readonly requester: AccessPerson;
    readonly durationMs: number;
    readonly reason: string;
    readonly policy: AccessPolicy;
    readonly maxPendingPerPerson: number;
  }): Promise<AccessResult<{ readonly request: AccessRequest }>> {
    const now = this.#now();
    try {
      return await this.#db.transaction(async (tx) => {
        // One person's requests are filed one at a time, on every gateway.
        await tx.query('SELECT pg_advisory_xact_lock(hashtext($1))', [
          `access:${input.requester.subject}`,
        ]);
        await tx.query(
          `UPDATE access_requests SET state = 'expired', decided_at = expires_at
             WHERE requester_subject = $1 AND state = 'pending' AND expires_at <= $2`,
          [input.requester.subject, now],
        );
        const pending = await tx.query<{ resource: string }>(
          `SELECT resource FROM access_requests WHERE requester_subject = $1 AND state = 'pending'`,
          [input.requester.subject],
        );
        const limit = pendingLimitRefusal(
          input.resource,
          pending.map((r) => r.resource),
          input.maxPendingPerPerson,
        );
        if (limit !== null) return { ok: false, refusal: limit } as const;
        const request = newRequest(input, now);
        await tx.query(
          `INSERT INTO access_requests (${REQUEST_COLUMNS})
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::jsonb, $11, NULL, NULL, '', NULL)`,
          [
            request.id,
            request.resource,
            request.requester.subject,
            request.requester.email,
            request.durationMs,
            request.reason,
            request.state,
            request.requestedAt,
            request.expiresAt,
            JSON.stringify(request.approvals),
            request.approvalsNeeded,
          ],
        );
        await notifyIn(tx, {
          kind: 'request',
          id: request.id,
          resource: request.resource,
          subject: request.requester.subject,
        });
        return { ok: true, request } as const;
      });
    } catch (err) {
      // The unique index caught a request filed at the same moment elsewhere.
      if ((err as { code?: unknown }).code === '23505') {
        return {
          ok: false,
          refusal: pendingLimitRefusal(input.resource, [input.resource], Infinity)!,
        };
      }
      throw err;
    }
  }

  /**
   * `person` approves or denies request `id` under the resource's current policy
   * (`policyFor`). The request row is locked for the decision, so concurrent deciders queue.
   */
  async decide(
    id: string,
    person: Person,
    verdict: 'approve' | 'deny',
    reason: string,
    policyFor: (resource: string) => AccessPolicy | null,
  ): Promise<AccessResult<DecisionResult>> {
    return this.#db.transaction(async (tx) => {
      const rows = await tx.query(
        `SELECT ${REQUEST_COLUMNS} FROM access_requests WHERE id = $1 FOR UPDATE`,
        [id],
      );
      if (rows.length === 0) {
        return {
          ok: false,
          refusal: { code: 'not_found', message: `no access request ${id}` },
        } as const;
      }
      const now = this.#now();
      const request = requestFrom(rows[0]!);
      const refusal = decideRefusal(request, person, policyFor(request.resource), now);
      if (refusal !== null) {
        if (isOverdue(request, now)) {
          await tx.query(
            `UPDATE access_requests SET state = 'expired', decided_at = expires_at WHERE id = $1`,
            [id],
          );
        }
        return { ok: false, refusal } as const;
      }
      const result = applyDecision(request, decider(person), verdict, reason, now);
      const updated = result.request;
      await tx.query(
        `UPDATE access_requests
            SET state = $2, approvals = $3::jsonb, decided_at = $4, denied_by = $5::jsonb,
                decision_reason = $6, grant_id = $7
          WHERE id = $1`,
        [
          id,
          updated.state,
          JSON.stringify(updated.approvals),
          updated.decidedAt,
          updated.deniedBy === null ? null : JSON.stringify(updated.deniedBy),
          updated.decisionReason,
          updated.grantId,
        ],
      );
      const grant = result.grant;
      if (grant !== null) {
        await tx.query(
          `INSERT INTO access_grants (${GRANT_COLUMNS})
             VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7, $8, $9, NULL, NULL, '')`,
          [
            grant.id,
            grant.requestId,
            grant.resource,
            grant.grantee.subject,
            grant.grantee.email,
            JSON.stringify(grant.approvers),
            grant.reason,
            grant.startsAt,
            grant.endsAt,
          ],
        );
      }
      await notifyIn(tx, {
        kind: grant === null ? 'request' : 'grant',
        id: grant?.id ?? id,
        resource: request.resource,
        subject: request.requester.subject,
      });
      return { ok: true, ...result } as const;
    });
  }

  /** A request by id (an overdue one reads as expired), or null. */
  async request(id: string): Promise<AccessRequest | null> {
    const rows = await this.#db.query(
      `SELECT ${REQUEST_COLUMNS} FROM access_requests WHERE id = $1`,
      [id],
    );
    return rows.length === 0 ? null : current(requestFrom(rows[0]!), this.#now());
  }

  /** The latest requests `subject` filed, newest first. */
  async requestsBy(subject: string, limit = 50): Promise<AccessRequest[]> {
    const rows = await this.#db.query(
      `SELECT ${REQUEST_COLUMNS} FROM access_requests WHERE requester_subject = $1
        ORDER BY requested_at DESC LIMIT $2`,
      [subject, limit],
    );
    const now = this.#now();
    return rows.map((r) => current(requestFrom(r), now));
  }

  /** Requests still waiting for a decision on `resources`, oldest first. */
  async pendingOn(resources: readonly string[]): Promise<AccessRequest[]> {
    if (resources.length === 0) return [];
    const rows = await this.#db.query(
      `SELECT ${REQUEST_COLUMNS} FROM access_requests
        WHERE state = 'pending' AND expires_at > $2
          AND resource IN (SELECT jsonb_array_elements_text($1::jsonb))
        ORDER BY requested_at`,
      [JSON.stringify(resources), this.#now()],
    );
    return rows.map(requestFrom);
  }

  /** The grant that lets `subject` use `resource` now (the one lasting longest), or null. */
  async activeGrant(subject: string, resource: string): Promise<AccessGrant | null> {
    const now = this.#now();
    const rows = await this.#db.query(
      `SELECT ${GRANT_COLUMNS} FROM access_grants
        WHERE grantee_subject = $1 AND resource = $2 AND revoked_at IS NULL
          AND starts_at <= $3 AND ends_at > $3
        ORDER BY ends_at DESC LIMIT 1`,
      [subject, resource, now],
    );
    return rows.length === 0 ? null : grantFrom(rows[0]!);
  }

  /** A grant by id, or null. */
  async grant(id: string): Promise<AccessGrant | null> {
    return (await this.grants([id]))[0] ?? null;
  }

  /** The grants with these ids (those that exist). */
  async grants(ids: readonly string[]): Promise<AccessGrant[]> {
    if (ids.length === 0) return [];
    const rows = await this.#db.query(
      `SELECT ${GRANT_COLUMNS} FROM access_grants
        WHERE id IN (SELECT jsonb_array_elements_text($1::jsonb))`,
      [JSON.stringify(ids)],
    );
    return rows.map(grantFrom);
  }

  /**
   * Grants of `subject` (when given) and/or on `resources`; running ones only unless
   * `includeEnded` (then the latest 100 as well). Newest first.
   */
  async listGrants(filter: {
    readonly subject?: string;
    readonly resources?: readonly string[];
    readonly includeEnded: boolean;
  }): Promise<AccessGrant[]> {
    const now = this.#now();
    const rows = await this.#db.query(
      `SELECT ${GRANT_COLUMNS} FROM access_grants
        WHERE ($1::text IS NULL OR grantee_subject = $1)
          AND ($2::jsonb IS NULL OR resource IN (SELECT jsonb_array_elements_text($2::jsonb)))
          AND ($3 OR (revoked_at IS NULL AND ends_at > $4))
        ORDER BY starts_at DESC LIMIT 100`,
      [
        filter.subject ?? null,
        filter.resources === undefined ? null : JSON.stringify(filter.resources),
        filter.includeEnded,
        now,
      ],
    );
    return rows.map(grantFrom);
  }

  /** `person` ends grant `id` before its time; sessions under it are closed by their gateways. */
  async endGrant(
    id: string,
    person: Person,
    reason: string,
    policyFor: (resource: string) => AccessPolicy | null,
  ): Promise<AccessResult<{ readonly grant: AccessGrant }>> {
    return this.#db.transaction(async (tx) => {
      const rows = await tx.query(
        `SELECT ${GRANT_COLUMNS} FROM access_grants WHERE id = $1 FOR UPDATE`,
        [id],
      );
      if (rows.length === 0) {
        return {
          ok: false,
          refusal: { code: 'not_found', message: `no access grant ${id}` },
        } as const;
      }
      const now = this.#now();
      const grant = grantFrom(rows[0]!);
      const refusal = endGrantRefusal(grant, person, policyFor(grant.resource), now);
      if (refusal !== null) return { ok: false, refusal } as const;
      const ended = revokeGrant(grant, decider(person), reason, now);
      await tx.query(
        `UPDATE access_grants SET revoked_at = $2, revoked_by = $3::jsonb, revoke_reason = $4
          WHERE id = $1`,
        [id, ended.revokedAt, JSON.stringify(ended.revokedBy), ended.revokeReason],
      );
      await notifyIn(tx, {
        kind: 'revoke',
        id,
        resource: grant.resource,
        subject: grant.grantee.subject,
      });
      return { ok: true, grant: ended } as const;
    });
  }

  /** Stops listening; the database itself belongs to whoever opened it. */
  async close(): Promise<void> {
    this.#closed = true;
    if (this.#relisten !== null) clearTimeout(this.#relisten);
    this.#listeners.clear();
    const unlisten = this.#unlisten;
    this.#unlisten = null;
    await unlisten?.().catch(() => undefined);
  }
}
