import type { SessionEvent, StatementError } from '@portcullis/core';
import type { ChainedEvent } from './hash-chain.js';

/**
 * One row of the `events` table as JSONEachRow writes it. Every field of a `SessionEvent` has a
 * column, so {@link rowToEvent} rebuilds the exact event the hash chain signed. Optional parts are
 * told apart by one nullable column each: `statement_text` (the statement), `approval_text` (the
 * approval request), `end_reason` (the session summary), `error_message` / `end_error_message`
 * (an error), `masked_values` (masking applied), `statement_prepared_name`, `person_name`,
 * `decision_reason` (an approval decision), `auth_failure_reason` (a refused login); an event
 * without an agent has `agent_id` '', one without an access grant `access_grant_id` ''.
 */
export interface EventRow {
  id: string;
  schema: number;
  type: string;
  /** DateTime64(6) as `seconds.micros` (JSONEachRow input). */
  time: string;
  session_id: string;
  seq: number;
  person_subject: string;
  person_email: string;
  person_name: string | null;
  person_groups: readonly string[];
  agent_id: string;
  agent_name: string;
  auth_method: string;
  resource: string;
  protocol: string;
  upstream_user: string;
  client_address: string;
  client_port: number;
  client_application: string;
  client_user: string;
  client_tls: number;
  statement_text: string | null;
  statement_protocol: string;
  statement_prepared_name: string | null;
  statement_params: number;
  statement_tag: string;
  kind: string;
  fingerprint: string;
  tables: readonly string[];
  verdict: string;
  rule: string;
  rows: number;
  bytes: number;
  duration_us: number;
  error_code: string;
  error_message: string | null;
  masked_values: number | null;
  masked_columns: readonly string[];
  approval_text: string | null;
  approval_kind: string;
  approval_rule: string;
  approval_message: string;
  end_reason: string | null;
  end_statements: number;
  end_rows: number;
  end_bytes_from_client: number;
  end_bytes_to_client: number;
  end_duration_us: number;
  end_error_code: string;
  end_error_message: string | null;
  /** The approval a request or decision is about ('' for other events). */
  approval_id: string;
  /** Who decided a held statement (subjects and emails, in the same order). */
  decision_by_subjects: readonly string[];
  decision_by_emails: readonly string[];
  /** Marks a decision event (`approval.granted|denied|expired|withdrawn`): null otherwise. */
  decision_reason: string | null;
  decision_waited_us: number;
  /** Marks a refused login (`auth.failed`): null otherwise. */
  auth_failure_reason: string | null;
  auth_failure_code: string;
  /** The access grant a session started under ('' for other events and standing access). */
  access_grant_id: string;
  access_grant_ends_us: number;
  access_grant_by_subjects: readonly string[];
  access_grant_by_emails: readonly string[];
  prev_hash: string;
  hash: string;
}

/** The columns {@link rowToEvent} needs, in a SELECT list (`time` as µs since the epoch). */
export const EVENT_ROW_SELECT =
  'toString(id) AS id, schema, type, toUnixTimestamp64Micro(time) AS time_us, session_id, seq, ' +
  'person_subject, person_email, person_name, person_groups, agent_id, agent_name, auth_method, ' +
  'resource, protocol, upstream_user, client_address, client_port, client_application, ' +
  'client_user, client_tls, statement_text, statement_protocol, statement_prepared_name, ' +
  'statement_params, statement_tag, kind, fingerprint, tables, verdict, rule, rows, bytes, ' +
  'duration_us, error_code, error_message, masked_values, masked_columns, approval_text, ' +
  'approval_kind, approval_rule, approval_message, end_reason, end_statements, end_rows, ' +
  'end_bytes_from_client, end_bytes_to_client, end_duration_us, end_error_code, ' +
  'end_error_message, approval_id, decision_by_subjects, decision_by_emails, decision_reason, ' +
  'decision_waited_us, auth_failure_reason, auth_failure_code, access_grant_id, ' +
  'access_grant_ends_us, access_grant_by_subjects, access_grant_by_emails, prev_hash, hash';

/** A row read back with {@link EVENT_ROW_SELECT}; 64-bit integers arrive as strings. */
export type StoredEventRow = Omit<EventRow, 'time'> & { time_us: number | string };

/** `timeUs` as DateTime64(6) text input: whole seconds, a dot, six digits of micros. */
export function formatTimeUs(timeUs: number): string {
  const seconds = Math.floor(timeUs / 1_000_000);
  const micros = timeUs - seconds * 1_000_000;
  return `${seconds}.${String(micros).padStart(6, '0')}`;
}

/** The `events` row of a chained event. */
export function eventToRow({ event, prevHash, hash }: ChainedEvent): EventRow {
  const s = event.statement;
  const a = event.approval;
  const e = event.summary;
  const d = event.approvalDecision;
  const f = event.authFailure;
  const g = event.accessGrant;
  return {
    id: event.id,
    schema: event.schema,
    type: event.type,
    time: formatTimeUs(event.timeUs),
    session_id: event.sessionId,
    seq: event.seq,
    person_subject: event.person.subject,
    person_email: event.person.email,
    person_name: event.person.name ?? null,
    person_groups: event.person.groups,
    agent_id: event.agent?.id ?? '',
    agent_name: event.agent?.name ?? '',
    auth_method: event.authMethod,
    resource: event.resource,
    protocol: event.protocol,
    upstream_user: event.upstreamUser,
    client_address: event.client.address,
    client_port: event.client.port,
    client_application: event.client.application,
    client_user: event.client.user,
    client_tls: event.client.tls ? 1 : 0,
    statement_text: s?.text ?? null,
    statement_protocol: s?.protocol ?? '',
    statement_prepared_name: s?.preparedName ?? null,
    statement_params: s?.params ?? 0,
    statement_tag: s?.tag ?? '',
    kind: s?.kind ?? '',
    fingerprint: s?.fingerprint ?? '',
    tables: s?.tables ?? [],
    verdict: s?.verdict ?? '',
    rule: s?.rule ?? '',
    rows: s?.rows ?? 0,
    bytes: s?.bytes ?? 0,
    duration_us: s?.durationUs ?? 0,
    error_code: s?.error?.code ?? '',
    error_message: s?.error?.message ?? null,
    masked_values: s?.masked?.values ?? null,
    masked_columns: s?.masked?.columns ?? [],
    approval_text: a?.text ?? null,
    approval_kind: a?.kind ?? '',
    approval_rule: a?.rule ?? '',
    approval_message: a?.message ?? '',
    end_reason: e?.reason ?? null,
    end_statements: e?.statements ?? 0,
    end_rows: e?.rows ?? 0,
    end_bytes_from_client: e?.bytesFromClient ?? 0,
    end_bytes_to_client: e?.bytesToClient ?? 0,
    end_duration_us: e?.durationUs ?? 0,
    end_error_code: e?.error?.code ?? '',
    end_error_message: e?.error?.message ?? null,
    approval_id: a?.id ?? d?.id ?? '',
    decision_by_subjects: d?.by.map((p) => p.subject) ?? [],
    decision_by_emails: d?.by.map((p) => p.email) ?? [],
    decision_reason: d?.reason ?? null,
    decision_waited_us: d?.waitedUs ?? 0,
    auth_failure_reason: f?.reason ?? null,
    auth_failure_code: f?.code ?? '',
    access_grant_id: g?.id ?? '',
    access_grant_ends_us: g?.endsUs ?? 0,
    access_grant_by_subjects: g?.by.map((p) => p.subject) ?? [],
    access_grant_by_emails: g?.by.map((p) => p.email) ?? [],
    prev_hash: prevHash,
    hash,
  };
}

function error(code: string, message: string | null): StatementError | null {
  return message === null ? null : { code, message };
}

/** The chained event a stored row holds: the inverse of {@link eventToRow}. */
export function rowToEvent(row: StoredEventRow): ChainedEvent {
  const person = {
    subject: row.person_subject,
    email: row.person_email,
    ...(row.person_name === null ? {} : { name: row.person_name }),
    groups: row.person_groups,
  };
  const event: SessionEvent = {
    schema: Number(row.schema),
    id: row.id,
    type: row.type as SessionEvent['type'],
    timeUs: Number(row.time_us),
    sessionId: row.session_id,
    seq: Number(row.seq),
    person,
    agent: row.agent_id === '' ? null : { id: row.agent_id, name: row.agent_name },
    authMethod: row.auth_method as SessionEvent['authMethod'],
    resource: row.resource,
    protocol: row.protocol as SessionEvent['protocol'],
    upstreamUser: row.upstream_user,
    client: {
      address: row.client_address,
      port: Number(row.client_port),
      application: row.client_application,
      user: row.client_user,
      tls: Number(row.client_tls) === 1,
    },
    ...(row.statement_text === null
      ? {}
      : {
          statement: {
            text: row.statement_text,
            protocol: row.statement_protocol as 'simple',
            ...(row.statement_prepared_name === null
              ? {}
              : { preparedName: row.statement_prepared_name }),
            params: Number(row.statement_params),
            tag: row.statement_tag,
            rows: Number(row.rows),
            bytes: Number(row.bytes),
            durationUs: Number(row.duration_us),
            error: error(row.error_code, row.error_message),
            kind: row.kind,
            fingerprint: row.fingerprint,
            tables: row.tables,
            verdict: row.verdict as 'allow',
            rule: row.rule,
            ...(row.masked_values === null
              ? {}
              : { masked: { values: Number(row.masked_values), columns: row.masked_columns } }),
          },
        }),
    ...(row.approval_text === null
      ? {}
      : {
          approval: {
            text: row.approval_text,
            kind: row.approval_kind,
            rule: row.approval_rule,
            message: row.approval_message,
            ...(row.approval_id === '' ? {} : { id: row.approval_id }),
          },
        }),
    ...(row.decision_reason === null
      ? {}
      : {
          approvalDecision: {
            id: row.approval_id,
            by: row.decision_by_subjects.map((subject, i) => ({
              subject,
              email: row.decision_by_emails[i] ?? '',
            })),
            reason: row.decision_reason,
            waitedUs: Number(row.decision_waited_us),
          },
        }),
    ...(row.auth_failure_reason === null
      ? {}
      : { authFailure: { reason: row.auth_failure_reason, code: row.auth_failure_code } }),
    ...(row.access_grant_id === ''
      ? {}
      : {
          accessGrant: {
            id: row.access_grant_id,
            endsUs: Number(row.access_grant_ends_us),
            by: row.access_grant_by_subjects.map((subject, i) => ({
              subject,
              email: row.access_grant_by_emails[i] ?? '',
            })),
          },
        }),
    ...(row.end_reason === null
      ? {}
      : {
          summary: {
            reason: row.end_reason,
            statements: Number(row.end_statements),
            rows: Number(row.end_rows),
            bytesFromClient: Number(row.end_bytes_from_client),
            bytesToClient: Number(row.end_bytes_to_client),
            durationUs: Number(row.end_duration_us),
            error: error(row.end_error_code, row.end_error_message),
          },
        }),
  };
  return { event, prevHash: row.prev_hash, hash: row.hash };
}

/**
 * The event exactly as the table keeps it, with every object's keys in sorted order and no
 * `undefined` values, so `JSON.stringify` of the result is its canonical JSON (a test holds the
 * two equal). Fields `SessionEvent` does not declare are dropped, so a chain read back from the
 * table verifies. The store chains this form: it costs a fraction of the generic canonicalJson.
 */
export function normalizeEvent(e: SessionEvent): SessionEvent {
  const p = e.person;
  const c = e.client;
  const s = e.statement;
  const a = e.approval;
  const m = e.summary;
  const d = e.approvalDecision;
  const f = e.authFailure;
  const g = e.accessGrant;
  const err = (x: StatementError | null): StatementError | null =>
    x === null ? null : { code: x.code, message: x.message };
  // Keys below are written in sorted (UTF-16) order; keep them so when adding fields.
  return {
    ...(g === undefined
      ? {}
      : {
          accessGrant: {
            by: g.by.map((p) => ({ email: p.email, subject: p.subject })),
            endsUs: g.endsUs,
            id: g.id,
          },
        }),
    agent: e.agent === null ? null : { id: e.agent.id, name: e.agent.name },
    ...(a === undefined
      ? {}
      : {
          approval: {
            ...(a.id === undefined ? {} : { id: a.id }),
            kind: a.kind,
            message: a.message,
            rule: a.rule,
            text: a.text,
          },
        }),
    ...(d === undefined
      ? {}
      : {
          approvalDecision: {
            by: d.by.map((p) => ({ email: p.email, subject: p.subject })),
            id: d.id,
            reason: d.reason,
            waitedUs: d.waitedUs,
          },
        }),
    ...(f === undefined ? {} : { authFailure: { code: f.code, reason: f.reason } }),
    authMethod: e.authMethod,
    client: {
      address: c.address,
      application: c.application,
      port: c.port,
      tls: c.tls,
      user: c.user,
    },
    id: e.id,
    person: {
      email: p.email,
      groups: [...p.groups],
      ...(p.name === undefined ? {} : { name: p.name }),
      subject: p.subject,
    },
    protocol: e.protocol,
    resource: e.resource,
    schema: e.schema,
    seq: e.seq,
    sessionId: e.sessionId,
    ...(s === undefined
      ? {}
      : {
          statement: {
            bytes: s.bytes,
            durationUs: s.durationUs,
            error: err(s.error),
            fingerprint: s.fingerprint,
            kind: s.kind,
            ...(s.masked === undefined
              ? {}
              : { masked: { columns: [...s.masked.columns], values: s.masked.values } }),
            params: s.params,
            ...(s.preparedName === undefined ? {} : { preparedName: s.preparedName }),
            protocol: s.protocol,
            rows: s.rows,
            rule: s.rule,
            tables: [...s.tables],
            tag: s.tag,
            text: s.text,
            verdict: s.verdict,
          },
        }),
    ...(m === undefined
      ? {}
      : {
          summary: {
            bytesFromClient: m.bytesFromClient,
            bytesToClient: m.bytesToClient,
            durationUs: m.durationUs,
            error: err(m.error),
            reason: m.reason,
            rows: m.rows,
            statements: m.statements,
          },
        }),
    timeUs: e.timeUs,
    type: e.type,
    upstreamUser: e.upstreamUser,
  };
}

/** The `events` columns in the order {@link eventToRow} writes them (JSONCompactEachRow). */
export const EVENT_ROW_COLUMNS: readonly (keyof EventRow)[] = Object.keys(
  eventToRow({
    event: {
      schema: 1,
      id: '',
      type: 'session.start',
      timeUs: 0,
      sessionId: '',
      seq: 0,
      person: { subject: '', email: '', groups: [] },
      agent: null,
      authMethod: 'static-token',
      resource: '',
      protocol: 'postgres',
      upstreamUser: '',
      client: { address: '', port: 0, application: '', user: '', tls: false },
    },
    prevHash: '',
    hash: '',
  }),
) as (keyof EventRow)[];
