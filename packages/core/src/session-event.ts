import type { Agent, AuthMethod, Person } from './identity.js';
import type { PolicyAction } from './policy.js';

/** Bumped whenever a field changes meaning or is removed; adding optional fields keeps it. */
export const SESSION_EVENT_SCHEMA_VERSION = 1;

/** The kinds of session event this build records. */
export type SessionEventType =
  | 'session.start'
  | 'statement'
  | 'approval.requested'
  | ApprovalDecisionType
  | 'session.end'
  | 'auth.failed';

/** The events that settle a held statement (see {@link ApprovalDecision}). */
export type ApprovalDecisionType =
  'approval.granted' | 'approval.denied' | 'approval.expired' | 'approval.withdrawn';

/**
 * A refused login (`auth.failed`): why, as a fixed reason code, never the credential. The
 * event's person is the one the credential named when it could be read, else empty.
 */
export interface AuthFailure {
  /** `unknown-token`, `expired`, `bad-signature`, `no-access`, `delegation-revoked`, … */
  readonly reason: string;
  /** SQLSTATE sent to the client (28000, 28P01, 42501). */
  readonly code: string;
}

/** Where the client connected from and what it said about itself. */
export interface ClientInfo {
  readonly address: string;
  readonly port: number;
  /** `application_name` from the client's startup message, '' when absent. */
  readonly application: string;
  /** The user name the client sent; informational, the token decides who it is. */
  readonly user: string;
  readonly tls: boolean;
}

/** How a statement reached the server. */
export type StatementProtocol = 'simple' | 'extended' | 'function-call';

/** An error the upstream (or the gateway) returned for a statement. */
export interface StatementError {
  readonly code: string;
  readonly message: string;
}

/** One executed statement. */
export interface StatementRecord {
  /** Statement text; literals are redacted unless the deployment opted out. */
  readonly text: string;
  readonly protocol: StatementProtocol;
  /** Prepared statement name for the extended protocol ('' = unnamed). */
  readonly preparedName?: string;
  /** Number of bound parameters (extended protocol) or function arguments. */
  readonly params: number;
  /** The server's command tag, e.g. `SELECT 3`; '' when the statement failed. */
  readonly tag: string;
  readonly rows: number;
  /** Bytes of result data (DataRow and CopyData frames) returned to the client. */
  readonly bytes: number;
  readonly durationUs: number;
  readonly error: StatementError | null;
  /** Statement kind from the parser (`select`, `delete`, `multi`, …; `unparsable` when it failed). */
  readonly kind: string;
  /** Groups statements that differ only in literals ('' when unparsable). */
  readonly fingerprint: string;
  /** Tables read or written, as written in the statement (`schema.name` or `name`). */
  readonly tables: readonly string[];
  /** What the policy decided. */
  readonly verdict: PolicyAction;
  /** The deciding rule (`default` when none matched, `unparsable` when parsing failed). */
  readonly rule: string;
  /**
   * Values masked in the statement's results and the output columns they were in (names,
   * never values); present when masking applied to the result.
   */
  readonly masked?: { readonly values: number; readonly columns: readonly string[] };
}

/** A statement held for a human decision (the approvals flow picks it up). */
export interface ApprovalRequest {
  readonly text: string;
  readonly kind: string;
  readonly rule: string;
  readonly message: string;
  /** The request's id (what approvers name); absent where the statement was refused at once. */
  readonly id?: string;
}

/**
 * How a held statement was settled (`approval.granted|denied|expired|withdrawn`): by whom and
 * why; when is the event's time.
 */
export interface ApprovalDecision {
  /** The request's id, as in its `approval.requested` event. */
  readonly id: string;
  /** The people who approved (granted) or the one who denied; empty when expired or withdrawn. */
  readonly by: readonly { readonly subject: string; readonly email: string }[];
  /** The approver's or denier's reason; for expired and withdrawn, the gateway's. */
  readonly reason: string;
  /** How long the statement was held, in microseconds. */
  readonly waitedUs: number;
}

/** Totals of a finished session. */
export interface SessionSummary {
  /** Why it ended: `client-closed`, `upstream-lost`, `protocol-error`, `shutdown`, … */
  readonly reason: string;
  readonly statements: number;
  readonly rows: number;
  readonly bytesFromClient: number;
  readonly bytesToClient: number;
  readonly durationUs: number;
  readonly error: StatementError | null;
}

/** The time-boxed access grant a session was let in under (no standing access). */
export interface SessionGrant {
  /** `acg_…`, as the access API lists it. */
  readonly id: string;
  /** When the grant ends, in microseconds since the Unix epoch (the session is closed then). */
  readonly endsUs: number;
  /** The approvers who granted it. */
  readonly by: readonly { readonly subject: string; readonly email: string }[];
}

/**
 * One thing that happened in a session. Events of a session share `sessionId` and are numbered
 * by `seq` from 0 in the order they happened.
 */
export interface SessionEvent {
  readonly schema: number;
  /** UUID; the idempotency key downstream. */
  readonly id: string;
  readonly type: SessionEventType;
  /** Microseconds since the Unix epoch. */
  readonly timeUs: number;
  readonly sessionId: string;
  readonly seq: number;
  readonly person: Person;
  readonly agent: Agent | null;
  readonly authMethod: AuthMethod;
  readonly resource: string;
  readonly protocol: 'postgres';
  /** The role the gateway used upstream. */
  readonly upstreamUser: string;
  readonly client: ClientInfo;
  readonly statement?: StatementRecord;
  readonly approval?: ApprovalRequest;
  /** Present on `approval.granted|denied|expired|withdrawn`. */
  readonly approvalDecision?: ApprovalDecision;
  readonly summary?: SessionSummary;
  readonly authFailure?: AuthFailure;
  /** Present on `session.start` when the session runs under a time-boxed access grant. */
  readonly accessGrant?: SessionGrant;
}

/** Where events go. Implementations batch; `write` never blocks the data path. */
export interface EventSink {
  write(event: SessionEvent): void;
  /** Resolves once everything written so far is durable. */
  flush(): Promise<void>;
  close(): Promise<void>;
}
