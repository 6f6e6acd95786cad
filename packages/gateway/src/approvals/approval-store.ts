import type { Agent, Person } from '@portcullis/core';
import type { StateDb, StateMigration, StateTx } from '../state/state-db.js';
import { migrateState } from '../state/state-migrations.js';
import type {
  ApprovalOutcome,
  ApprovalPolicy,
  Decider,
  PendingApproval,
} from './approval-broker.js';
import {
  capRefusal,
  decisionStep,
  type ApprovalLimits,
  type ApprovalState,
  type DecisionStep,
  type StoredApproval,
} from './approval-broker-rules.js';

/** NOTIFY channel: the payload is the id of a request that just settled. */
export const APPROVAL_CHANNEL = 'portcullis_approvals';

/** Settled requests are kept this long (for "already decided" and for operators), then deleted. */
const KEEP_SETTLED_DAYS = 30;

export const APPROVAL_MIGRATIONS: readonly StateMigration[] = [
  {
    version: 1,
    sql: `
      CREATE TABLE portcullis_approval_requests (
        id text PRIMARY KEY,
        resource text NOT NULL,
        session_id text NOT NULL,
        person_subject text NOT NULL,
        person jsonb NOT NULL,
        agent jsonb,
        statement_text text NOT NULL,
        statement_kind text NOT NULL,
        statement_tables jsonb NOT NULL,
        rule text NOT NULL,
        message text NOT NULL,
        policy jsonb NOT NULL,
        state text NOT NULL DEFAULT 'pending'
          CHECK (state IN ('pending', 'granted', 'denied', 'expired', 'withdrawn', 'failed')),
        approvals jsonb NOT NULL DEFAULT '[]',
        decided_by jsonb NOT NULL DEFAULT '[]',
        reason text,
        requested_at timestamptz NOT NULL,
        expires_at timestamptz NOT NULL,
        settled_at timestamptz,
        instance text NOT NULL
      );
      CREATE INDEX portcullis_approval_requests_pending
        ON portcullis_approval_requests (requested_at) WHERE state = 'pending';
      CREATE INDEX portcullis_approval_requests_person_pending
        ON portcullis_approval_requests (person_subject) WHERE state = 'pending';
      CREATE INDEX portcullis_approval_requests_session
        ON portcullis_approval_requests (session_id);
      CREATE INDEX portcullis_approval_requests_settled
        ON portcullis_approval_requests (settled_at) WHERE state <> 'pending';
    `,
  },
];

const COLUMNS = `id, resource, session_id, person, agent, statement_text, statement_kind,
  statement_tables, rule, message, policy, state, approvals, decided_by, reason, instance,
  (extract(epoch FROM requested_at) * 1000)::float8 AS requested_ms,
  (extract(epoch FROM expires_at) * 1000)::float8 AS expires_ms`;

interface Row extends Record<string, unknown> {
  id: string;
  resource: string;
  session_id: string;
  person: Person;
  agent: Agent | null;
  statement_text: string;
  statement_kind: string;
  statement_tables: string[];
  rule: string;
  message: string;
  policy: ApprovalPolicy;
  state: ApprovalState;
  approvals: Decider[];
  decided_by: Decider[];
  reason: string | null;
  instance: string;
  requested_ms: number;
  expires_ms: number;
}

function fromRow(row: Row): StoredApproval {
  return {
    id: row.id,
    subject: {
      sessionId: row.session_id,
      resource: row.resource,
      person: row.person,
      agent: row.agent,
      text: row.statement_text,
      kind: row.statement_kind,
      tables: row.statement_tables,
      rule: row.rule,
      message: row.message,
    },
    policy: row.policy,
    requestedAt: Number(row.requested_ms),
    expiresAt: Number(row.expires_ms),
    approvals: row.approvals,
    state: row.state,
    decidedBy: row.decided_by,
    reason: row.reason,
    instance: row.instance,
  };
}

/** A timestamp parameter from milliseconds since the epoch. */
const at = (n: number): string => `to_timestamp($${n}::float8 / 1000)`;

/** The answer to {@link ApprovalStore.decide}. */
export type StoreDecision =
  | Extract<DecisionStep, { ok: false }>
  | { readonly ok: false; readonly reason: 'unknown'; readonly message: string }
  | {
      readonly ok: true;
      readonly request: StoredApproval;
      readonly outcome: ApprovalOutcome | null;
    };

/**
 * Statement approval requests in the state database (SQL only; the rules are in
 * approval-broker-rules.ts). Every change that settles a request is `… WHERE state = 'pending'`
 * and NOTIFYs {@link APPROVAL_CHANNEL} in the same transaction, so exactly one outcome wins and
 * the process holding the statement hears of it.
 */
export class ApprovalStore {
  readonly db: StateDb;

  private constructor(db: StateDb) {
    this.db = db;
  }

  /** The store on `db`, its tables created or brought up to date. */
  static async open(db: StateDb): Promise<ApprovalStore> {
    await migrateState(db, 'approvals', APPROVAL_MIGRATIONS);
    return new ApprovalStore(db);
  }

  /**
   * Records a new pending request held by `instance`, unless a cap is reached: then nothing is
   * written and the refusal is returned. Counting and inserting happen under a per-person lock,
   * so gateways racing for a person's last slot cannot both take it.
   */
  async insert(
    request: PendingApproval,
    instance: string,
    limits: ApprovalLimits,
  ): Promise<string | null> {
    const { subject, policy } = request;
    return this.db.transaction(async (tx) => {
      await tx.query(`SELECT pg_advisory_xact_lock(hashtext($1), hashtext($2))`, [
        APPROVAL_CHANNEL,
        subject.person.subject,
      ]);
      const [counts] = await tx.query<{ person_pending: number; session_requests: number }>(
        `SELECT
           (SELECT count(*) FROM portcullis_approval_requests
             WHERE person_subject = $1 AND state = 'pending' AND expires_at > ${at(3)})::int
             AS person_pending,
           (SELECT count(*) FROM portcullis_approval_requests WHERE session_id = $2)::int
             AS session_requests`,
        [subject.person.subject, subject.sessionId, request.requestedAt],
      );
      const refusal = capRefusal(
        subject.person,
        {
          personPending: Number(counts?.person_pending ?? 0),
          sessionRequests: Number(counts?.session_requests ?? 0),
        },
        limits,
      );
      if (refusal !== null) return refusal;
      await tx.query(
        `INSERT INTO portcullis_approval_requests (id, resource, session_id, person_subject,
           person, agent, statement_text, statement_kind, statement_tables, rule, message, policy,
           requested_at, expires_at, instance)
         VALUES ($1, $2, $3, $4, $5::jsonb, $6::jsonb, $7, $8, $9::jsonb, $10, $11, $12::jsonb,
           ${at(13)}, ${at(14)}, $15)`,
        [
          request.id,
          subject.resource,
          subject.sessionId,
          subject.person.subject,
          JSON.stringify(subject.person),
          subject.agent === null ? null : JSON.stringify(subject.agent),
          subject.text,
          subject.kind,
          JSON.stringify(subject.tables),
          subject.rule,
          subject.message,
          JSON.stringify(policy),
          request.requestedAt,
          request.expiresAt,
          instance,
        ],
      );
      return null;
    });
  }

  /** A request by id, whatever its state. */
  async get(id: string): Promise<StoredApproval | undefined> {
    const rows = await this.db.query<Row>(
      `SELECT ${COLUMNS} FROM portcullis_approval_requests WHERE id = $1`,
      [id],
    );
    return rows[0] === undefined ? undefined : fromRow(rows[0]);
  }

  /** Unexpired pending requests on every gateway, oldest first. */
  async pending(now: number, limit = 1000): Promise<StoredApproval[]> {
    const rows = await this.db.query<Row>(
      `SELECT ${COLUMNS} FROM portcullis_approval_requests
       WHERE state = 'pending' AND expires_at > ${at(1)}
       ORDER BY requested_at, id LIMIT $2`,
      [now, limit],
    );
    return rows.map(fromRow);
  }

  /** Those of `ids` that are no longer pending. */
  async settledAmong(ids: readonly string[]): Promise<StoredApproval[]> {
    if (ids.length === 0) return [];
    const rows = await this.db.query<Row>(
      `SELECT ${COLUMNS} FROM portcullis_approval_requests
       WHERE id IN (SELECT jsonb_array_elements_text($1::jsonb)) AND state <> 'pending'`,
      [JSON.stringify(ids)],
    );
    return rows.map(fromRow);
  }

  /**
   * Settles `id` with `outcome` if it is still pending. Returns the request and whether this
   * call settled it (`won`); when another outcome won first, the request as that one left it.
   */
  async settle(
    id: string,
    outcome: ApprovalOutcome,
    now: number,
  ): Promise<{ won: boolean; request: StoredApproval | undefined }> {
    return this.db.transaction(async (tx) => {
      const [won] = await settleRows(tx, `id = $5`, [
        outcome.kind,
        decidedBy(outcome),
        outcome.reason,
        now,
        id,
      ]);
      if (won !== undefined) return { won: true, request: won };
      const rows = await tx.query<Row>(
        `SELECT ${COLUMNS} FROM portcullis_approval_requests WHERE id = $1`,
        [id],
      );
      return { won: false, request: rows[0] === undefined ? undefined : fromRow(rows[0]) };
    });
  }

  /** `person`'s verdict on `id`, in one transaction with the request locked. */
  async decide(
    id: string,
    person: Person,
    verdict: 'approve' | 'deny',
    reason: string,
    now: number,
  ): Promise<StoreDecision> {
    return this.db.transaction(async (tx): Promise<StoreDecision> => {
      const rows = await tx.query<Row>(
        `SELECT ${COLUMNS} FROM portcullis_approval_requests WHERE id = $1 FOR UPDATE`,
        [id],
      );
      if (rows[0] === undefined) {
        return { ok: false, reason: 'unknown', message: `no approval request ${id}` };
      }
      const stored = fromRow(rows[0]);
      const step = decisionStep(stored, person, verdict, reason, now);
      if (!step.ok) return step;
      const { outcome } = step;
      if (outcome === null) {
        await tx.query(
          `UPDATE portcullis_approval_requests SET approvals = $2::jsonb WHERE id = $1`,
          [id, JSON.stringify(step.approvals)],
        );
        return { ok: true, request: { ...stored, approvals: step.approvals }, outcome: null };
      }
      const [settled] = await settleRows(tx, `id = $5`, [
        outcome.kind,
        decidedBy(outcome),
        outcome.reason,
        now,
        id,
        JSON.stringify(step.approvals),
      ]);
      return { ok: true, request: settled ?? stored, outcome };
    });
  }

  /**
   * Expires pending requests whose holder should have expired them `graceMs` ago (its gateway
   * process is gone), and deletes requests settled long ago. Returns those it expired.
   */
  async sweep(now: number, graceMs: number): Promise<StoredApproval[]> {
    const expired = await this.db.transaction((tx) =>
      settleRows(tx, `state = 'pending' AND expires_at < ${at(5)}`, [
        'expired',
        '[]',
        'no decision in time (the gateway process holding the statement is gone)',
        now,
        now - graceMs,
      ]),
    );
    await this.db.query(
      `DELETE FROM portcullis_approval_requests
       WHERE state <> 'pending' AND settled_at < ${at(1)}`,
      [now - KEEP_SETTLED_DAYS * 86_400_000],
    );
    return expired;
  }
}

function decidedBy(outcome: ApprovalOutcome): string {
  return JSON.stringify(outcome.kind === 'granted' || outcome.kind === 'denied' ? outcome.by : []);
}

/**
 * Settles the pending rows matching `where` ($1 state, $2 decided_by, $3 reason, $4 now; $6,
 * when given, the approvals) and NOTIFYs each id (delivered when the transaction commits).
 */
async function settleRows(
  tx: StateTx,
  where: string,
  params: readonly unknown[],
): Promise<StoredApproval[]> {
  const rows = await tx.query<Row>(
    `UPDATE portcullis_approval_requests
     SET state = $1, decided_by = $2::jsonb, reason = $3, settled_at = ${at(4)}
       ${params.length > 5 ? ', approvals = $6::jsonb' : ''}
     WHERE state = 'pending' AND ${where}
     RETURNING ${COLUMNS}`,
    params,
  );
  for (const row of rows) {
    await tx.query('SELECT pg_notify($1, $2)', [APPROVAL_CHANNEL, row.id]);
  }
  return rows.map(fromRow);
}
