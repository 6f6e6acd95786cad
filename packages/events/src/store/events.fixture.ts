import type { Agent, Person, PolicyAction, SessionEvent, StatementRecord } from '@portcullis/core';

/** A statement as the fixture describes it; the rest of the record is filled in. */
export interface FixtureStatement {
  readonly text: string;
  readonly kind: string;
  readonly tables: readonly string[];
  readonly verdict?: PolicyAction;
  readonly rule?: string;
  readonly rows?: number;
  readonly masked?: { readonly values: number; readonly columns: readonly string[] };
  readonly error?: { readonly code: string; readonly message: string };
}

export const alice: Person = {
  subject: 'u-alice',
  email: 'alice@example.com',
  name: 'Alice Dba',
  groups: ['dba', 'eng'],
};
export const bob: Person = { subject: 'u-bob', email: 'bob@example.com', groups: ['analysts'] };
export const carol: Person = {
  subject: 'u-carol',
  email: 'carol@example.com',
  name: 'Carol Support',
  groups: ['support'],
};
export const dave: Person = { subject: 'u-dave', email: 'dave@example.com', groups: ['eng'] };
export const reportBot: Agent = { id: 'agent-report', name: 'report-bot' };
export const triageBot: Agent = { id: 'agent-triage', name: 'triage-bot' };

/** 2026-11-02T00:00:00Z in microseconds. */
export const DAY0_US = Date.UTC(2026, 10, 2) * 1000;
export const HOUR_US = 3_600_000_000;
export const DAY_US = 24 * HOUR_US;

let counter = 0;
/** A deterministic UUID (v4 layout) numbered from 1. */
export function fixtureUuid(n: number): string {
  const hex = n.toString(16).padStart(12, '0');
  return `00000000-0000-4000-8000-${hex}`;
}

/** One session's events: start, each statement (plus its approval request when held), end. */
export function session(
  person: Person,
  agent: Agent | null,
  resource: string,
  startUs: number,
  statements: readonly FixtureStatement[],
): SessionEvent[] {
  const sessionId = fixtureUuid(1_000_000 + ++counter);
  const events: SessionEvent[] = [];
  let t = startUs;
  const base = (type: SessionEvent['type']): SessionEvent => ({
    schema: 1,
    id: fixtureUuid(++counter),
    type,
    timeUs: t,
    sessionId,
    seq: events.length,
    person,
    agent,
    authMethod: 'static-token',
    resource,
    protocol: 'postgres',
    upstreamUser: 'app_rw',
    client: {
      address: '10.0.0.7',
      port: 51_000 + counter,
      application: agent === null ? 'psql' : agent.name,
      user: person.email,
      tls: true,
    },
  });
  events.push(base('session.start'));
  let rowsTotal = 0;
  for (const s of statements) {
    t += 1_000_000;
    const verdict = s.verdict ?? 'allow';
    if (verdict === 'review') {
      events.push({
        ...base('approval.requested'),
        approval: {
          text: s.text,
          kind: s.kind,
          rule: s.rule ?? 'default',
          message: 'needs a second pair of eyes',
        },
      });
      t += 1000;
    }
    const rows = verdict === 'allow' ? (s.rows ?? 0) : 0;
    rowsTotal += rows;
    const statement: StatementRecord = {
      text: s.text,
      protocol: 'simple',
      params: 0,
      tag: verdict === 'allow' && s.error === undefined ? `${s.kind.toUpperCase()} ${rows}` : '',
      rows,
      bytes: rows * 40,
      durationUs: 1500,
      error: s.error ?? null,
      kind: s.kind,
      fingerprint: `fp-${s.kind}-${s.tables.join('.')}`,
      tables: s.tables,
      verdict,
      rule: s.rule ?? 'default',
      ...(s.masked === undefined ? {} : { masked: s.masked }),
    };
    events.push({ ...base('statement'), statement });
  }
  t += 1_000_000;
  events.push({
    ...base('session.end'),
    summary: {
      reason: 'client-closed',
      statements: statements.length,
      rows: rowsTotal,
      bytesFromClient: 100 * statements.length,
      bytesToClient: rowsTotal * 40,
      durationUs: t - startUs,
      error: null,
    },
  });
  return events;
}

const sel = (table: string, rows: number): FixtureStatement => ({
  text: `SELECT * FROM ${table} WHERE id = $1`,
  kind: 'select',
  tables: [table],
  rows,
});

/**
 * Three days of activity on three resources: Alice (a DBA) writes and changes schema on
 * orders-db, Bob reads analytics and is blocked once, report-bot acts for Carol on orders-db and
 * billing-db (masked results, one statement held for review), triage-bot acts for Bob once.
 * Dave has access but never connects.
 */
export function fixtureEvents(): SessionEvent[] {
  counter = 0;
  return [
    // Day 0
    ...session(alice, null, 'orders-db', DAY0_US + 9 * HOUR_US, [
      sel('orders', 3),
      {
        text: 'UPDATE orders SET status = $1 WHERE id = $2',
        kind: 'update',
        tables: ['orders'],
        rows: 1,
      },
      { text: 'ALTER TABLE orders ADD COLUMN note text', kind: 'alter', tables: ['orders'] },
    ]),
    ...session(bob, null, 'analytics', DAY0_US + 10 * HOUR_US, [
      sel('events', 120),
      {
        text: 'DROP TABLE events',
        kind: 'drop',
        tables: ['events'],
        verdict: 'block',
        rule: 'no-drop',
      },
    ]),
    ...session(carol, reportBot, 'orders-db', DAY0_US + 11 * HOUR_US, [
      { ...sel('customers', 10), masked: { values: 20, columns: ['email', 'phone'] } },
      sel('orders', 10),
    ]),
    // Day 1
    ...session(carol, reportBot, 'billing-db', DAY0_US + DAY_US + 8 * HOUR_US, [
      { ...sel('invoices', 5), masked: { values: 5, columns: ['card'] } },
      {
        text: 'DELETE FROM invoices WHERE id = $1',
        kind: 'delete',
        tables: ['invoices'],
        verdict: 'review',
        rule: 'review-deletes',
      },
    ]),
    ...session(alice, null, 'orders-db', DAY0_US + DAY_US + 9 * HOUR_US, [
      { text: 'INSERT INTO orders VALUES ($1, $2)', kind: 'insert', tables: ['orders'], rows: 1 },
      {
        text: 'INSERT INTO orders VALUES ($1, $2)',
        kind: 'insert',
        tables: ['orders'],
        error: { code: '23505', message: 'duplicate key value violates unique constraint' },
      },
    ]),
    ...session(bob, triageBot, 'analytics', DAY0_US + DAY_US + 15 * HOUR_US, [sel('events', 7)]),
    // Day 2
    ...session(bob, null, 'analytics', DAY0_US + 2 * DAY_US + 10 * HOUR_US, [
      sel('events', 1),
      { text: 'CREATE TABLE scratch (id int)', kind: 'create', tables: ['scratch'] },
    ]),
    ...session(carol, reportBot, 'orders-db', DAY0_US + 2 * DAY_US + 11 * HOUR_US, [
      { ...sel('customers', 4), masked: { values: 8, columns: ['email', 'phone'] } },
    ]),
  ];
}
