// Session events for the OCSF and Kafka sink tests: a person at a keyboard and an agent acting
// for a person, with an allowed, a failed, a blocked and a held statement.
import type { Agent, Person, SessionEvent, StatementRecord } from '@portcullis/core';

export const alice: Person = {
  subject: 'u-alice',
  email: 'alice@example.com',
  name: 'Alice Dba',
  groups: ['dba', 'eng'],
};
export const bob: Person = { subject: 'u-bob', email: 'bob@example.com', groups: ['analysts'] };
export const reportBot: Agent = { id: 'agent-report', name: 'report-bot' };

/** 2026-11-02T00:00:00Z in microseconds. */
export const T0_US = Date.UTC(2026, 10, 2) * 1000;

/** A deterministic UUID (v4 layout) for `n`. */
export function fixtureUuid(n: number): string {
  return `00000000-0000-4000-8000-${n.toString(16).padStart(12, '0')}`;
}

/** A statement record; fields not given take the values of a successful `SELECT`. */
export function statementRecord(over: Partial<StatementRecord> = {}): StatementRecord {
  return {
    text: 'SELECT id, total FROM orders WHERE customer_id = $1',
    protocol: 'extended',
    params: 1,
    tag: 'SELECT 3',
    rows: 3,
    bytes: 288,
    durationUs: 1_450,
    error: null,
    kind: 'select',
    fingerprint: 'a41f09c2d7e3b815',
    tables: ['orders'],
    verdict: 'allow',
    rule: 'default',
    ...over,
  };
}

/** One event of session `session` (a number), numbered `seq` in it. */
export function sessionEvent(
  session: number,
  seq: number,
  type: SessionEvent['type'],
  extra: Partial<SessionEvent> = {},
): SessionEvent {
  const agent = extra.agent === undefined ? null : extra.agent;
  const person = extra.person ?? alice;
  return {
    schema: 1,
    id: fixtureUuid(session * 100_000 + seq + 1),
    type,
    timeUs: T0_US + session * 60_000_000 + seq * 1_000_123,
    sessionId: fixtureUuid(0xabc0000000 + session),
    seq,
    person,
    agent,
    authMethod: 'static-token',
    resource: 'payments',
    protocol: 'postgres',
    upstreamUser: 'app_rw',
    client: {
      address: '10.0.0.7',
      port: 51_000 + session,
      application: agent === null ? 'psql' : agent.name,
      user: person.email,
      tls: true,
    },
    ...extra,
  };
}

/** A session with a start, `statements` statement events and an end. */
export function sessionOf(
  session: number,
  statements: number,
  extra: Partial<SessionEvent> = {},
): SessionEvent[] {
  const events = [sessionEvent(session, 0, 'session.start', extra)];
  for (let i = 1; i <= statements; i++) {
    events.push(
      sessionEvent(session, i, 'statement', {
        ...extra,
        statement: statementRecord({ tag: `SELECT ${i}`, rows: i }),
      }),
    );
  }
  events.push(
    sessionEvent(session, statements + 1, 'session.end', {
      ...extra,
      summary: {
        reason: 'client-closed',
        statements,
        rows: (statements * (statements + 1)) / 2,
        bytesFromClient: 1200,
        bytesToClient: 9000,
        durationUs: 12_345_678,
        error: null,
      },
    }),
  );
  return events;
}

/** One event of each kind the OCSF mapping distinguishes. */
export const ocsfCases = {
  start: sessionEvent(1, 0, 'session.start'),
  select: sessionEvent(1, 1, 'statement', { statement: statementRecord() }),
  insertByAgent: sessionEvent(2, 1, 'statement', {
    person: bob,
    agent: reportBot,
    statement: statementRecord({
      text: 'INSERT INTO audit_notes (body) VALUES ($1)',
      kind: 'insert',
      tag: 'INSERT 0 1',
      rows: 1,
      bytes: 0,
      tables: ['audit_notes'],
      fingerprint: '77aa01',
    }),
  }),
  failed: sessionEvent(1, 2, 'statement', {
    statement: statementRecord({
      text: 'SELECT * FROM nope',
      tag: '',
      rows: 0,
      bytes: 0,
      tables: ['nope'],
      error: { code: '42P01', message: 'relation "nope" does not exist' },
    }),
  }),
  blocked: sessionEvent(1, 3, 'statement', {
    statement: statementRecord({
      text: 'DROP TABLE orders',
      kind: 'drop',
      tag: '',
      rows: 0,
      bytes: 0,
      verdict: 'block',
      rule: 'no-ddl',
      error: { code: '42501', message: 'blocked by rule no-ddl' },
    }),
  }),
  masked: sessionEvent(1, 4, 'statement', {
    statement: statementRecord({
      text: 'SELECT email FROM customers',
      tables: ['public.customers', 'orders'],
      masked: { values: 3, columns: ['email'] },
    }),
  }),
  grant: sessionEvent(1, 5, 'statement', {
    statement: statementRecord({
      text: 'GRANT SELECT ON orders TO bi',
      kind: 'grant',
      tag: 'GRANT',
    }),
  }),
  held: sessionEvent(1, 6, 'approval.requested', {
    approval: {
      text: 'DELETE FROM orders WHERE id = $1',
      kind: 'delete',
      rule: 'deletes-need-approval',
      message: 'held until a reviewer approves',
    },
  }),
  granted: sessionEvent(1, 7, 'approval.granted', {
    approvalDecision: {
      id: 'apr_1',
      by: [{ subject: 'u-bob', email: 'bob@example.com' }],
      reason: 'ticket 7',
      waitedUs: 4_000_000,
    },
  }),
  denied: sessionEvent(1, 8, 'approval.denied', {
    approvalDecision: {
      id: 'apr_2',
      by: [{ subject: 'u-bob', email: 'bob@example.com' }],
      reason: 'not during the sale',
      waitedUs: 1_000_000,
    },
  }),
  granted_start: sessionEvent(3, 0, 'session.start', {
    accessGrant: {
      id: 'acg_1',
      endsUs: T0_US + 3_600_000_000,
      by: [{ subject: 'u-bob', email: 'bob@example.com' }],
    },
  }),
  refused: sessionEvent(1, 0, 'auth.failed', {
    authFailure: { reason: 'expired', code: '28P01' },
  }),
  end: sessionEvent(1, 9, 'session.end', {
    summary: {
      reason: 'upstream-lost',
      statements: 5,
      rows: 9,
      bytesFromClient: 800,
      bytesToClient: 2000,
      durationUs: 7_000_000,
      error: { code: '08006', message: 'upstream connection lost' },
    },
  }),
} as const satisfies Record<string, SessionEvent>;
