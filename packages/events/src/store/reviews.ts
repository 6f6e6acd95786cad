/**
 * Every review report's SQL, in one place: the CLI (`portcullis review`) runs these against the
 * event store, and Grafana dashboards reuse the same text with the same `{name:Type}`
 * parameters. Each builder returns `{ sql, params }` and has a row type for what one row of its
 * result looks like in JSONEachRow (64-bit integers as numbers, times as
 * `YYYY-MM-DD hh:mm:ss.ffffff` UTC text).
 *
 * Reports on totals read the daily rollups (`person_resource_daily`, `agent_person_daily`), so
 * they count whole UTC days: every day the window touches. Reports that list events read
 * `events FINAL`, so a copy of an event that has not merged away yet is still listed once.
 */
import type { BoundQuery } from './chdb-event-store.js';
import { DDL_KINDS, WRITE_KINDS } from './schema.js';

/** A time window, `from` included, `to` excluded. */
export interface ReviewWindow {
  readonly from: Date;
  readonly to: Date;
}

/** A `Date` as DateTime64(6, 'UTC') parameter text. */
export function dateTimeParam(date: Date): string {
  const iso = date.toISOString(); // 2026-11-02T09:00:00.000Z
  return `${iso.slice(0, 10)} ${iso.slice(11, 23)}000`;
}

function windowParams(window: ReviewWindow): Record<string, string> {
  return { from: dateTimeParam(window.from), to: dateTimeParam(window.to) };
}

const EVENT_WINDOW = "time >= {from:DateTime64(6, 'UTC')} AND time < {to:DateTime64(6, 'UTC')}";
// Every UTC day the window touches: from's day on, up to the last day starting before `to`.
const DAY_WINDOW =
  "day >= toDate({from:DateTime64(6, 'UTC')}) AND toDateTime(day, 'UTC') < {to:DateTime64(6, 'UTC')}";
/**
 * Copies of one event share its time, so they share a monthly partition: FINAL need not merge
 * across partitions (a quarter to a third faster on a million events).
 */
const FINAL_SETTINGS = 'SETTINGS do_not_merge_across_partitions_select_final = 1';
const kinds = (list: readonly string[]): string => list.map((k) => `'${k}'`).join(', ');

/** One row of {@link activityByPersonAndResource}. */
export interface ActivityRow {
  readonly person_subject: string;
  readonly person_email: string;
  readonly resource: string;
  readonly active_days: number;
  readonly sessions: number;
  readonly statements: number;
  /** Statements an agent ran for the person. */
  readonly by_agent: number;
  readonly writes: number;
  readonly ddl: number;
  readonly blocked: number;
  readonly held: number;
  readonly errors: number;
  readonly masked_values: number;
  readonly rows: number;
  readonly last_seen: string;
}

/** Activity per person and resource over the days the window touches. */
export function activityByPersonAndResource(window: ReviewWindow): BoundQuery {
  return {
    sql: `SELECT
    person_subject,
    any(person_email) AS person_email,
    resource,
    toUInt64(uniqExact(day)) AS active_days,
    sum(sessions) AS sessions,
    sum(statements) AS statements,
    sum(by_agent) AS by_agent,
    sum(writes) AS writes,
    sum(ddl) AS ddl,
    sum(blocked) AS blocked,
    sum(held) AS held,
    sum(errors) AS errors,
    sum(masked_values) AS masked_values,
    sum(rows) AS rows,
    max(last_seen) AS last_seen
FROM person_resource_daily
WHERE ${DAY_WINDOW}
GROUP BY person_subject, resource
ORDER BY person_subject, resource`,
    params: windowParams(window),
  };
}

/** One row of {@link agentActivity}. */
export interface AgentActivityRow {
  readonly agent_id: string;
  readonly agent_name: string;
  readonly person_subject: string;
  readonly person_email: string;
  readonly active_days: number;
  readonly sessions: number;
  readonly statements: number;
  readonly writes: number;
  readonly ddl: number;
  readonly blocked: number;
  readonly held: number;
  /** Resources the agent used for this person, sorted. */
  readonly resources: readonly string[];
}

/** What each agent did and for whom, over the days the window touches. */
export function agentActivity(window: ReviewWindow): BoundQuery {
  return {
    sql: `SELECT
    agent_id,
    any(agent_name) AS agent_name,
    person_subject,
    any(person_email) AS person_email,
    toUInt64(uniqExact(day)) AS active_days,
    sum(sessions) AS sessions,
    sum(statements) AS statements,
    sum(writes) AS writes,
    sum(ddl) AS ddl,
    sum(blocked) AS blocked,
    sum(held) AS held,
    arraySort(groupUniqArrayArray(resources)) AS resources
FROM agent_person_daily
WHERE ${DAY_WINDOW}
GROUP BY agent_id, person_subject
ORDER BY agent_id, person_subject`,
    params: windowParams(window),
  };
}

/** One statement as the listing reviews show it. */
export interface StatementRow {
  readonly time: string;
  readonly person_subject: string;
  readonly person_email: string;
  /** '' for a person at a keyboard. */
  readonly agent_name: string;
  readonly resource: string;
  readonly session_id: string;
  readonly seq: number;
  readonly kind: string;
  readonly text: string;
  readonly tables: readonly string[];
  readonly verdict: string;
  readonly rule: string;
  readonly rows: number;
  /** SQLSTATE or gateway code; '' when it succeeded. */
  readonly error_code: string;
}

const STATEMENT_COLUMNS = `time, person_subject, person_email, agent_name, resource, session_id, seq, kind,
    assumeNotNull(statement_text) AS text, tables, verdict, rule, rows, error_code`;

/** Writes and DDL, by one person (`person` '') or everyone, in time order. */
export function writesAndDdl(window: ReviewWindow, person = ''): BoundQuery {
  return {
    sql: `SELECT ${STATEMENT_COLUMNS}
FROM events FINAL
WHERE ${EVENT_WINDOW}
    AND type = 'statement'
    AND kind IN (${kinds([...WRITE_KINDS, ...DDL_KINDS])})
    AND ({person:String} = '' OR person_subject = {person:String})
ORDER BY person_subject, time, session_id, seq
${FINAL_SETTINGS}`,
    params: { ...windowParams(window), person },
  };
}

/** Statements the policy blocked or held for review, in time order. */
export function blockedAndHeld(window: ReviewWindow): BoundQuery {
  return {
    sql: `SELECT ${STATEMENT_COLUMNS}
FROM events FINAL
WHERE ${EVENT_WINDOW}
    AND type = 'statement'
    AND verdict IN ('block', 'review')
ORDER BY time, session_id, seq
${FINAL_SETTINGS}`,
    params: windowParams(window),
  };
}

/** One row of {@link approvalDecisions}. */
export interface ApprovalRow {
  readonly requested_at: string;
  readonly approval_id: string;
  readonly person_subject: string;
  readonly person_email: string;
  /** The agent that ran the statement for the person ('' when they ran it themselves). */
  readonly agent_name: string;
  readonly resource: string;
  readonly session_id: string;
  readonly kind: string;
  readonly rule: string;
  readonly text: string;
  /** `granted`, `denied`, `expired`, `withdrawn`, or `pending` while no decision is on record. */
  readonly outcome: string;
  readonly decided_by: readonly string[];
  readonly reason: string;
  readonly waited_s: number;
}

/**
 * Held statements and how each was settled: who asked (and for whom an agent acted), the
 * statement, the outcome, who decided and why, and how long it waited. A decision is matched to
 * its request by the approval id they share.
 */
export function approvalDecisions(window: ReviewWindow): BoundQuery {
  return {
    sql: `SELECT
    r.time AS requested_at,
    r.approval_id AS approval_id,
    r.person_subject AS person_subject,
    r.person_email AS person_email,
    r.agent_name AS agent_name,
    r.resource AS resource,
    r.session_id AS session_id,
    r.approval_kind AS kind,
    r.approval_rule AS rule,
    assumeNotNull(r.approval_text) AS text,
    if(d.outcome = '', 'pending', d.outcome) AS outcome,
    d.decided_by AS decided_by,
    d.reason AS reason,
    round(d.waited_us / 1e6, 3) AS waited_s
FROM
(
    SELECT time, approval_id, person_subject, person_email, agent_name, resource, session_id,
        approval_kind, approval_rule, approval_text
    FROM events FINAL
    WHERE ${EVENT_WINDOW} AND type = 'approval.requested' AND approval_id != ''
    ${FINAL_SETTINGS}
) AS r
LEFT JOIN
(
    SELECT approval_id, substring(type, 10) AS outcome, decision_by_emails AS decided_by,
        ifNull(decision_reason, '') AS reason, decision_waited_us AS waited_us
    FROM events FINAL
    WHERE time >= {from:DateTime64(6, 'UTC')} AND type IN
        ('approval.granted', 'approval.denied', 'approval.expired', 'approval.withdrawn')
    ${FINAL_SETTINGS}
) AS d USING (approval_id)
ORDER BY requested_at, approval_id`,
    params: windowParams(window),
  };
}

/** Access a person has been given on a resource (from the gateway's configuration). */
export interface AccessGrant {
  readonly person: string;
  readonly resource: string;
}

/** One row of {@link unusedAccess}. */
export interface UnusedAccessRow {
  readonly person_subject: string;
  readonly resource: string;
  /** The last event on the resource, or null when none is on record. */
  readonly last_seen: string | null;
}

/**
 * People whose access went unused: each grant with no event on its resource in the `days` days
 * before `now` (nor, then, since). Only as far back as the retention reaches: a grant unused
 * for longer than that shows `last_seen` null, like one never used.
 */
export function unusedAccess(grants: readonly AccessGrant[], days: number, now: Date): BoundQuery {
  if (!Number.isSafeInteger(days) || days < 1) throw new RangeError('days must be a whole number');
  return {
    sql: `SELECT
    g.1 AS person_subject,
    g.2 AS resource,
    used.last_seen AS last_seen
FROM (SELECT DISTINCT arrayJoin(arrayZip({people:Array(String)}, {resources:Array(String)})) AS g) AS grants
LEFT JOIN
(
    SELECT person_subject, resource, max(last_seen) AS last_seen
    FROM person_resource_daily
    GROUP BY person_subject, resource
) AS used ON used.person_subject = g.1 AND used.resource = g.2
WHERE used.last_seen IS NULL
    OR used.last_seen < {now:DateTime64(6, 'UTC')} - toIntervalDay({days:UInt32})
ORDER BY person_subject, resource
SETTINGS join_use_nulls = 1`,
    params: {
      people: grants.map((g) => g.person),
      resources: grants.map((g) => g.resource),
      days,
      now: dateTimeParam(now),
    },
  };
}

/** One event of {@link sessionsOfPerson}. */
export interface SessionEventRow {
  readonly session_id: string;
  readonly session_started: string;
  readonly resource: string;
  readonly agent_name: string;
  readonly seq: number;
  readonly time: string;
  readonly type: string;
  readonly kind: string;
  /** The statement's (or held statement's) text; '' for session start and end. */
  readonly text: string;
  readonly verdict: string;
  readonly rule: string;
  readonly rows: number;
  readonly error_code: string;
  /** Why the session ended, on its `session.end` row; '' elsewhere. */
  readonly end_reason: string;
}

/**
 * The sessions of one person that had events in the window, each with its events (start,
 * statements, approval requests, end) in order; sessions ordered by when they started.
 */
export function sessionsOfPerson(person: string, window: ReviewWindow): BoundQuery {
  return {
    sql: `SELECT
    session_id,
    min(time) OVER (PARTITION BY session_id) AS session_started,
    resource,
    agent_name,
    seq,
    time,
    type,
    if(type = 'approval.requested', approval_kind, kind) AS kind,
    coalesce(statement_text, approval_text, '') AS text,
    verdict,
    if(type = 'approval.requested', approval_rule, rule) AS rule,
    rows,
    error_code,
    ifNull(end_reason, '') AS end_reason
FROM events FINAL
WHERE person_subject = {person:String} AND ${EVENT_WINDOW}
ORDER BY session_started, session_id, seq
${FINAL_SETTINGS}`,
    params: { ...windowParams(window), person },
  };
}

/** Every review, by name (the CLI's `portcullis review <name>`; Grafana panel ids). */
export const reviews = {
  activity: activityByPersonAndResource,
  agents: agentActivity,
  writes: writesAndDdl,
  blocked: blockedAndHeld,
  approvals: approvalDecisions,
  unused: unusedAccess,
  sessions: sessionsOfPerson,
} as const;
