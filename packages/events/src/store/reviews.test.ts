import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ChdbEventStore } from './chdb-event-store.js';
import type { SessionEvent } from '@portcullis/core';
import {
  DAY0_US,
  DAY_US,
  HOUR_US,
  fixtureEvents,
  fixtureUuid,
  reportBot,
  session,
} from './events.fixture.js';
import {
  activityByPersonAndResource,
  approvalDecisions,
  agentActivity,
  blockedAndHeld,
  sessionsOfPerson,
  unusedAccess,
  writesAndDdl,
  type ActivityRow,
  type AgentActivityRow,
  type ApprovalRow,
  type SessionEventRow,
  type StatementRow,
  type UnusedAccessRow,
} from './reviews.js';

const at = (us: number): Date => new Date(us / 1000);
const allDays = { from: at(DAY0_US), to: at(DAY0_US + 3 * DAY_US) };
const day1 = { from: at(DAY0_US + DAY_US), to: at(DAY0_US + 2 * DAY_US) };

// One store for the file (chDB binds one data directory per process), loaded with the fixture
// twice over: reviews must count each event once.
describe('reviews on the event store', { timeout: 60_000 }, () => {
  let dir: string;
  let store: ChdbEventStore;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'pcl-chdb-reviews-'));
    store = new ChdbEventStore({ dataDir: join(dir, 'data'), chainKey: 'k', retentionDays: 3650 });
    const events = fixtureEvents();
    await store.insert(events.slice(0, 20));
    await store.insert(events);
  }, 60_000);

  afterAll(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('activity per person and resource', async () => {
    const rows = await store.run<ActivityRow>(activityByPersonAndResource(allDays));
    const zero = {
      by_agent: 0,
      writes: 0,
      ddl: 0,
      blocked: 0,
      held: 0,
      errors: 0,
      masked_values: 0,
    };
    expect(rows).toEqual([
      {
        ...zero,
        person_subject: 'u-alice',
        person_email: 'alice@example.com',
        resource: 'orders-db',
        active_days: 2,
        sessions: 2,
        statements: 5,
        writes: 3,
        ddl: 1,
        errors: 1,
        rows: 5,
        last_seen: '2026-11-03 09:00:03.000000',
      },
      {
        ...zero,
        person_subject: 'u-bob',
        person_email: 'bob@example.com',
        resource: 'analytics',
        active_days: 3,
        sessions: 3,
        statements: 5,
        by_agent: 1,
        ddl: 2,
        blocked: 1,
        rows: 128,
        last_seen: '2026-11-04 10:00:03.000000',
      },
      {
        ...zero,
        person_subject: 'u-carol',
        person_email: 'carol@example.com',
        resource: 'billing-db',
        active_days: 1,
        sessions: 1,
        statements: 2,
        by_agent: 2,
        writes: 1,
        held: 1,
        masked_values: 5,
        rows: 5,
        last_seen: '2026-11-03 08:00:03.001000',
      },
      {
        ...zero,
        person_subject: 'u-carol',
        person_email: 'carol@example.com',
        resource: 'orders-db',
        active_days: 2,
        sessions: 2,
        statements: 3,
        by_agent: 3,
        masked_values: 28,
        rows: 24,
        last_seen: '2026-11-04 11:00:02.000000',
      },
    ]);
    const oneDay = await store.run<ActivityRow>(activityByPersonAndResource(day1));
    expect(oneDay.map((r) => [r.person_subject, r.resource, r.statements])).toEqual([
      ['u-alice', 'orders-db', 2],
      ['u-bob', 'analytics', 1],
      ['u-carol', 'billing-db', 2],
    ]);
  });

  it('what each agent did and for whom', async () => {
    expect(await store.run<AgentActivityRow>(agentActivity(allDays))).toEqual([
      {
        agent_id: 'agent-report',
        agent_name: 'report-bot',
        person_subject: 'u-carol',
        person_email: 'carol@example.com',
        active_days: 3,
        sessions: 3,
        statements: 5,
        writes: 1,
        ddl: 0,
        blocked: 0,
        held: 1,
        resources: ['billing-db', 'orders-db'],
      },
      {
        agent_id: 'agent-triage',
        agent_name: 'triage-bot',
        person_subject: 'u-bob',
        person_email: 'bob@example.com',
        active_days: 1,
        sessions: 1,
        statements: 1,
        writes: 0,
        ddl: 0,
        blocked: 0,
        held: 0,
        resources: ['analytics'],
      },
    ]);
  });

  const brief = (rows: readonly StatementRow[]): string[] =>
    rows.map(
      (r) =>
        `${r.time} ${r.person_subject} ${r.agent_name || '-'} ${r.resource} ${r.kind} ${r.verdict}/${r.rule} rows=${r.rows} ${r.error_code || 'ok'}: ${r.text}`,
    );

  it('writes and DDL by person', async () => {
    expect(brief(await store.run<StatementRow>(writesAndDdl(allDays)))).toEqual([
      '2026-11-02 09:00:02.000000 u-alice - orders-db update allow/default rows=1 ok: UPDATE orders SET status = $1 WHERE id = $2',
      '2026-11-02 09:00:03.000000 u-alice - orders-db alter allow/default rows=0 ok: ALTER TABLE orders ADD COLUMN note text',
      '2026-11-03 09:00:01.000000 u-alice - orders-db insert allow/default rows=1 ok: INSERT INTO orders VALUES ($1, $2)',
      '2026-11-03 09:00:02.000000 u-alice - orders-db insert allow/default rows=0 23505: INSERT INTO orders VALUES ($1, $2)',
      '2026-11-02 10:00:02.000000 u-bob - analytics drop block/no-drop rows=0 ok: DROP TABLE events',
      '2026-11-04 10:00:02.000000 u-bob - analytics create allow/default rows=0 ok: CREATE TABLE scratch (id int)',
      '2026-11-03 08:00:02.001000 u-carol report-bot billing-db delete review/review-deletes rows=0 ok: DELETE FROM invoices WHERE id = $1',
    ]);
    const carols = await store.run<StatementRow>(writesAndDdl(allDays, 'u-carol'));
    expect(carols.map((r) => [r.kind, r.tables, r.session_id.length])).toEqual([
      ['delete', ['invoices'], 36],
    ]);
  });

  it('blocked and held statements', async () => {
    expect(brief(await store.run<StatementRow>(blockedAndHeld(allDays)))).toEqual([
      '2026-11-02 10:00:02.000000 u-bob - analytics drop block/no-drop rows=0 ok: DROP TABLE events',
      '2026-11-03 08:00:02.001000 u-carol report-bot billing-db delete review/review-deletes rows=0 ok: DELETE FROM invoices WHERE id = $1',
    ]);
  });

  it('held statements with their outcome, who decided and why', async () => {
    const erin = { subject: 'u-erin', email: 'erin@example.com', groups: ['eng'] };
    const [start] = session(erin, reportBot, 'orders-db', DAY0_US + 2 * DAY_US + HOUR_US, []);
    let seq = 0;
    const next = (type: SessionEvent['type'], part: Partial<SessionEvent>): SessionEvent => ({
      ...start!,
      id: fixtureUuid(8_000_000 + ++seq),
      type,
      seq,
      timeUs: start!.timeUs + seq * 1_000_000,
      ...part,
    });
    const request = (id: string, text: string): Partial<SessionEvent> => ({
      approval: { id, text, kind: 'delete', rule: 'agent-deletes', message: 'held' },
    });
    await store.insert([
      start!,
      next('approval.requested', request('apr_a', 'DELETE FROM orders WHERE id = $1')),
      next('approval.granted', {
        approvalDecision: {
          id: 'apr_a',
          by: [
            { subject: 'u-bob', email: 'bob@example.com' },
            { subject: 'u-dave', email: 'dave@example.com' },
          ],
          reason: 'ticket 7',
          waitedUs: 1_250_000,
        },
      }),
      next('approval.requested', request('apr_b', 'DELETE FROM orders')),
      next('approval.denied', {
        approvalDecision: {
          id: 'apr_b',
          by: [{ subject: 'u-bob', email: 'bob@example.com' }],
          reason: 'no WHERE',
          waitedUs: 2_000_000,
        },
      }),
      next('approval.requested', request('apr_c', 'DELETE FROM orders WHERE id = $1')),
    ]);
    const rows = await store.run<ApprovalRow>(approvalDecisions(allDays));
    expect(
      rows.map((r) => [
        r.approval_id,
        r.person_subject,
        r.agent_name,
        r.outcome,
        r.decided_by,
        r.reason,
        r.waited_s,
      ]),
    ).toEqual([
      [
        'apr_a',
        'u-erin',
        'report-bot',
        'granted',
        ['bob@example.com', 'dave@example.com'],
        'ticket 7',
        1.25,
      ],
      ['apr_b', 'u-erin', 'report-bot', 'denied', ['bob@example.com'], 'no WHERE', 2],
      ['apr_c', 'u-erin', 'report-bot', 'pending', [], '', 0],
    ]);
    expect(rows[1]).toMatchObject({
      kind: 'delete',
      rule: 'agent-deletes',
      text: 'DELETE FROM orders',
    });
  });

  it('people whose access went unused', async () => {
    const grants = [
      { person: 'u-alice', resource: 'orders-db' },
      { person: 'u-alice', resource: 'billing-db' },
      { person: 'u-bob', resource: 'analytics' },
      { person: 'u-carol', resource: 'billing-db' },
      { person: 'u-dave', resource: 'orders-db' },
      { person: 'u-dave', resource: 'orders-db' },
    ];
    const now = at(DAY0_US + 4 * DAY_US);
    expect(await store.run<UnusedAccessRow>(unusedAccess(grants, 1, now))).toEqual([
      { person_subject: 'u-alice', resource: 'billing-db', last_seen: null },
      { person_subject: 'u-alice', resource: 'orders-db', last_seen: '2026-11-03 09:00:03.000000' },
      { person_subject: 'u-bob', resource: 'analytics', last_seen: '2026-11-04 10:00:03.000000' },
      {
        person_subject: 'u-carol',
        resource: 'billing-db',
        last_seen: '2026-11-03 08:00:03.001000',
      },
      { person_subject: 'u-dave', resource: 'orders-db', last_seen: null },
    ]);
    const busy = await store.run<UnusedAccessRow>(unusedAccess(grants, 2, now));
    expect(busy.map((r) => `${r.person_subject}@${r.resource}`)).toEqual([
      'u-alice@billing-db',
      'u-alice@orders-db',
      'u-carol@billing-db',
      'u-dave@orders-db',
    ]);
    const quiet = await store.run<UnusedAccessRow>(unusedAccess(grants, 30, now));
    expect(quiet.map((r) => `${r.person_subject}@${r.resource}`)).toEqual([
      'u-alice@billing-db',
      'u-dave@orders-db',
    ]);
  });

  it('sessions by a person, each with its events in order', async () => {
    const rows = await store.run<SessionEventRow>(sessionsOfPerson('u-carol', allDays));
    expect(
      rows.map((r) =>
        `${r.session_started.slice(0, 13)} ${r.resource} ${r.agent_name} #${r.seq} ${r.type} ${r.kind} ${r.verdict} ${r.rule} ${r.text}${r.end_reason}`.trim(),
      ),
    ).toEqual([
      '2026-11-02 11 orders-db report-bot #0 session.start',
      '2026-11-02 11 orders-db report-bot #1 statement select allow default SELECT * FROM customers WHERE id = $1',
      '2026-11-02 11 orders-db report-bot #2 statement select allow default SELECT * FROM orders WHERE id = $1',
      '2026-11-02 11 orders-db report-bot #3 session.end    client-closed',
      '2026-11-03 08 billing-db report-bot #0 session.start',
      '2026-11-03 08 billing-db report-bot #1 statement select allow default SELECT * FROM invoices WHERE id = $1',
      '2026-11-03 08 billing-db report-bot #2 approval.requested delete  review-deletes DELETE FROM invoices WHERE id = $1',
      '2026-11-03 08 billing-db report-bot #3 statement delete review review-deletes DELETE FROM invoices WHERE id = $1',
      '2026-11-03 08 billing-db report-bot #4 session.end    client-closed',
      '2026-11-04 11 orders-db report-bot #0 session.start',
      '2026-11-04 11 orders-db report-bot #1 statement select allow default SELECT * FROM customers WHERE id = $1',
      '2026-11-04 11 orders-db report-bot #2 session.end    client-closed',
    ]);
  });
});
