/**
 * The pure half of the event routes (`/v1/reviews/:report`, `/v1/events`,
 * `/v1/events/verify`): who may read, what the query parameters mean and how far they may
 * reach, and the limits added to every query the routes run.
 */
import type { Person } from '@portcullis/core';
import { reviews, type AccessGrant, type BoundQuery } from '@portcullis/events';
import type { GatewayConfig } from '../config/load-config.js';

/** The reports, as `GET /v1/reviews/:report` and `portcullis review <report>` name them. */
export type ReviewName = keyof typeof reviews;

export const REVIEW_NAMES = Object.keys(reviews) as ReviewName[];

/** Most events one `GET /v1/events` returns. */
export const MAX_EVENTS_LAST = 10_000;
/** Default of `last`, as `portcullis events` has it. */
export const DEFAULT_EVENTS_LAST = 50;
/** Default of `days`, as `portcullis review` has it. */
export const DEFAULT_REVIEW_DAYS = 30;
/** Most rows a review returns through the API (the gateway holds them in memory). */
export const MAX_REVIEW_ROWS = 100_000;
/** Most events one chain verification reads through the API (each is held while checked). */
export const MAX_VERIFY_EVENTS = 200_000;
/** Longest filter value taken (subjects, emails, session prefixes, types). */
const MAX_FILTER_CHARS = 256;

/** A refusal of a request: the HTTP status, a stable code and what to do. */
export interface Refusal {
  readonly status: 400 | 403;
  readonly code: string;
  readonly message: string;
}

type Parsed<T> = { readonly ok: true; readonly value: T } | ({ readonly ok: false } & Refusal);

function bad(message: string, code = 'invalid_request'): { ok: false } & Refusal {
  return { ok: false, status: 400, code, message };
}

/**
 * Whether `person` may read events through the API: a member of one of `readerGroups`. Null
 * when they may; otherwise the refusal, naming the configuration key to set.
 */
export function readerRefusal(person: Person, readerGroups: readonly string[]): Refusal | null {
  if (readerGroups.length === 0) {
    return {
      status: 403,
      code: 'readers_not_configured',
      message:
        'nobody may read events through the API: set events.readerGroups in the gateway configuration to the groups that may',
    };
  }
  if (person.groups.some((g) => readerGroups.includes(g))) return null;
  return {
    status: 403,
    code: 'not_a_reader',
    message: `only members of ${readerGroups.join(', ')} (events.readerGroups) may read events; ask to be added to one of them`,
  };
}

/** Rejects parameters the route does not take, so a misspelt one is not silently ignored. */
function unknownParams(query: URLSearchParams, known: readonly string[]): string | null {
  for (const name of query.keys()) {
    if (!known.includes(name)) {
      return `unknown query parameter ${name}; this endpoint takes ${known.join(', ')}`;
    }
  }
  return null;
}

/** A filter value: absent, or 1-256 characters. */
function filter(query: URLSearchParams, name: string): Parsed<string | undefined> {
  const values = query.getAll(name);
  if (values.length > 1) return bad(`give ${name} once`);
  const value = values[0];
  if (value === undefined) return { ok: true, value: undefined };
  if (value === '' || value.length > MAX_FILTER_CHARS) {
    return bad(`${name} must be 1-${MAX_FILTER_CHARS} characters`);
  }
  return { ok: true, value };
}

/** A whole number parameter in [1, max], or `fallback` when absent. */
function count(
  query: URLSearchParams,
  name: string,
  fallback: number,
  max: number,
  why: string,
): Parsed<number> {
  const text = query.get(name);
  if (text === null) return { ok: true, value: Math.min(fallback, max) };
  const n = /^\d{1,9}$/.test(text) ? Number(text) : NaN;
  if (!Number.isSafeInteger(n) || n < 1 || n > max) {
    return bad(`${name} must be a whole number from 1 to ${max} (${why})`);
  }
  return { ok: true, value: n };
}

/** A review request: which report, over how many days, for whom. */
export interface ReviewRequest {
  readonly report: ReviewName;
  readonly days: number;
  readonly person?: string;
}

/** Reads `GET /v1/reviews/:report?days=&person=`; `days` may reach back as far as retention. */
export function parseReviewRequest(
  report: string,
  query: URLSearchParams,
  retentionDays: number,
): Parsed<ReviewRequest> {
  if (!(REVIEW_NAMES as string[]).includes(report)) {
    return bad(
      `no review named ${report}; the reports are ${REVIEW_NAMES.join(', ')}`,
      'unknown_report',
    );
  }
  const unknown = unknownParams(query, ['days', 'person']);
  if (unknown !== null) return bad(unknown);
  const days = count(
    query,
    'days',
    DEFAULT_REVIEW_DAYS,
    retentionDays,
    'events are kept for events.store.retentionDays',
  );
  if (!days.ok) return days;
  const person = filter(query, 'person');
  if (!person.ok) return person;
  if (report === 'sessions' && person.value === undefined) {
    return bad('the sessions report needs person (a subject)');
  }
  return {
    ok: true,
    value: {
      report: report as ReviewName,
      days: days.value,
      ...(person.value === undefined ? {} : { person: person.value }),
    },
  };
}

/**
 * The report's query over the `days` before `now`. `grants` (the access people were given)
 * feed the `unused` report.
 */
export function reviewQuery(
  request: ReviewRequest,
  now: Date,
  grants: readonly AccessGrant[],
): BoundQuery {
  const window = { from: new Date(now.getTime() - request.days * 86_400_000), to: now };
  switch (request.report) {
    case 'activity':
    case 'agents':
    case 'blocked':
    case 'approvals':
      return reviews[request.report](window);
    case 'writes':
      return reviews.writes(window, request.person ?? '');
    case 'sessions':
      return reviews.sessions(request.person ?? '', window);
    case 'unused':
      return reviews.unused(grants, request.days, now);
  }
}

/** Access from static tokens: each token's person × the resources it may use (all if unrestricted). */
export function staticGrants(config: Pick<GatewayConfig, 'tokens' | 'resources'>): AccessGrant[] {
  const grants: AccessGrant[] = [];
  for (const grant of Object.values(config.tokens)) {
    for (const resource of grant.resources ?? Object.keys(config.resources)) {
      grants.push({ person: grant.person.subject, resource });
    }
  }
  return grants;
}

/** `GET /v1/events` filters, as `portcullis events` takes them. */
export interface EventsRequest {
  readonly sessionPrefix?: string;
  readonly type?: string;
  readonly person?: string;
  readonly last: number;
}

/** Reads `GET /v1/events?session=&type=&person=&last=`. */
export function parseEventsRequest(query: URLSearchParams): Parsed<EventsRequest> {
  const unknown = unknownParams(query, ['session', 'type', 'person', 'last']);
  if (unknown !== null) return bad(unknown);
  const session = filter(query, 'session');
  if (!session.ok) return session;
  const type = filter(query, 'type');
  if (!type.ok) return type;
  const person = filter(query, 'person');
  if (!person.ok) return person;
  const last = count(
    query,
    'last',
    DEFAULT_EVENTS_LAST,
    MAX_EVENTS_LAST,
    'the most one request returns',
  );
  if (!last.ok) return last;
  return {
    ok: true,
    value: {
      ...(session.value === undefined ? {} : { sessionPrefix: session.value }),
      ...(type.value === undefined ? {} : { type: type.value }),
      ...(person.value === undefined ? {} : { person: person.value }),
      last: last.value,
    },
  };
}

/** `GET /v1/events/verify` scope: one session (prefix), and/or sessions with events since. */
export interface VerifyRequest {
  readonly sessionPrefix?: string;
  readonly since?: Date;
}

/** Reads `GET /v1/events/verify?since=&session=`; `since` is an ISO 8601 date or date-time. */
export function parseVerifyRequest(query: URLSearchParams): Parsed<VerifyRequest> {
  const unknown = unknownParams(query, ['since', 'session']);
  if (unknown !== null) return bad(unknown);
  const session = filter(query, 'session');
  if (!session.ok) return session;
  const sinceText = query.get('since');
  let since: Date | undefined;
  if (sinceText !== null) {
    since = new Date(sinceText);
    if (!/^\d{4}-\d{2}-\d{2}/.test(sinceText) || Number.isNaN(since.getTime())) {
      return bad('since must be an ISO 8601 date or date-time, e.g. 2026-05-01T00:00:00Z');
    }
  }
  return {
    ok: true,
    value: {
      ...(session.value === undefined ? {} : { sessionPrefix: session.value }),
      ...(since === undefined ? {} : { since }),
    },
  };
}

/** Bounds on one query: how long it may run, and how many rows it may return. */
export interface QueryLimits {
  readonly timeoutMs: number;
  readonly maxRows: number;
}

/**
 * `sql` with the engine's own limits appended: it stops the query past the time (the store is
 * shared with the sink, which waits meanwhile) and refuses results past the rows, rather than
 * the gateway holding them. Merged into a trailing `SETTINGS` clause when the query has one
 * (ClickHouse takes only one).
 */
export function withQueryLimits(sql: string, limits: QueryLimits): string {
  const settings = [
    `max_execution_time = ${Math.max(1, Math.ceil(limits.timeoutMs / 1000))}`,
    `max_result_rows = ${limits.maxRows}`,
    "result_overflow_mode = 'throw'",
  ].join(', ');
  const trimmed = sql.trimEnd();
  const lastLine = trimmed.slice(trimmed.lastIndexOf('\n') + 1);
  return /^SETTINGS\s/.test(lastLine)
    ? `${trimmed}, ${settings}`
    : `${trimmed}\nSETTINGS ${settings}`;
}

/** What a store failure means to the caller, from the engine's error code in its causes. */
export type QueryFailure = 'timeout' | 'too_many_rows' | 'closed' | 'other';

/** Classifies a store error by the text of it and its causes. */
export function queryFailure(causeText: string): QueryFailure {
  if (/TIMEOUT_EXCEEDED|Code: 159\b/.test(causeText)) return 'timeout';
  if (/TOO_MANY_ROWS|Code: 396\b/.test(causeText)) return 'too_many_rows';
  if (/event store is closed/i.test(causeText)) return 'closed';
  return 'other';
}
