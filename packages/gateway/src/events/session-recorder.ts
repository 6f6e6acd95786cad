import { randomUUID } from 'node:crypto';
import {
  SESSION_EVENT_SCHEMA_VERSION,
  type ApprovalDecision,
  type ApprovalDecisionType,
  type ApprovalRequest,
  type AuthFailure,
  type ClientInfo,
  type EventSink,
  type SessionEvent,
  type SessionGrant,
  type SessionIdentity,
  type SessionSummary,
  type StatementRecord,
} from '@portcullis/core';

/** Microseconds since the Unix epoch, from the monotonic clock anchored at process start. */
export function nowUs(): number {
  return Math.round((performance.timeOrigin + performance.now()) * 1000);
}

/** The fixed facts of a session that every one of its events repeats. */
export interface SessionFacts {
  readonly identity: SessionIdentity;
  readonly resource: string;
  readonly upstreamUser: string;
  readonly client: ClientInfo;
  /** The session's id when chosen before recording starts (a fresh UUID otherwise). */
  readonly sessionId?: string;
}

/** Numbers and writes one session's events, in order, to a sink. */
export class SessionRecorder {
  readonly sessionId: string;
  readonly #sink: EventSink;
  readonly #facts: SessionFacts;
  #seq = 0;

  constructor(sink: EventSink, facts: SessionFacts) {
    this.#sink = sink;
    this.#facts = facts;
    this.sessionId = facts.sessionId ?? randomUUID();
  }

  /** Records `session.start`, with the access grant it runs under, if any. */
  start(accessGrant?: SessionGrant): void {
    this.#write('session.start', accessGrant === undefined ? {} : { accessGrant });
  }

  /** Records one executed statement. */
  statement(statement: StatementRecord): void {
    this.#write('statement', { statement });
  }

  /** Records `approval.requested` for a statement held for review. */
  approvalRequested(approval: ApprovalRequest): void {
    this.#write('approval.requested', { approval });
  }

  /** Records how a held statement was settled (`approval.granted|denied|expired|withdrawn`). */
  approvalDecided(type: ApprovalDecisionType, approvalDecision: ApprovalDecision): void {
    this.#write(type, { approvalDecision });
  }

  /** Records `session.end` with the session's totals. */
  end(summary: SessionSummary): void {
    this.#write('session.end', { summary });
  }

  /** Records `auth.failed`: the login was refused (the session ends there). */
  authFailed(authFailure: AuthFailure): void {
    this.#write('auth.failed', { authFailure });
  }

  #write(
    type: SessionEvent['type'],
    extra: Pick<
      SessionEvent,
      'statement' | 'approval' | 'approvalDecision' | 'summary' | 'authFailure' | 'accessGrant'
    >,
  ): void {
    const facts = this.#facts;
    this.#sink.write({
      schema: SESSION_EVENT_SCHEMA_VERSION,
      id: randomUUID(),
      type,
      timeUs: nowUs(),
      sessionId: this.sessionId,
      seq: this.#seq++,
      person: facts.identity.person,
      agent: facts.identity.agent,
      authMethod: facts.identity.authMethod,
      resource: facts.resource,
      protocol: 'postgres',
      upstreamUser: facts.upstreamUser,
      client: facts.client,
      ...extra,
    });
  }
}
