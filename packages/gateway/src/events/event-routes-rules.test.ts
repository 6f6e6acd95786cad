import type { Person } from '@portcullis/core';
import { reviews } from '@portcullis/events';
import { describe, expect, it } from 'vitest';
import {
  MAX_EVENTS_LAST,
  parseEventsRequest,
  parseReviewRequest,
  parseVerifyRequest,
  queryFailure,
  readerRefusal,
  reviewQuery,
  staticGrants,
  withQueryLimits,
} from './event-routes-rules.js';

const q = (text: string): URLSearchParams => new URLSearchParams(text);
const ada: Person = { subject: 'ada', email: 'ada@example.com', groups: ['engineering', 'audit'] };

describe('readerRefusal', () => {
  it('names the key to set while nobody may read', () => {
    expect(readerRefusal(ada, [])).toMatchObject({
      status: 403,
      code: 'readers_not_configured',
      message: expect.stringContaining('events.readerGroups'),
    });
  });

  it('lets members of a reader group in and refuses others, naming the groups', () => {
    expect(readerRefusal(ada, ['audit'])).toBeNull();
    expect(readerRefusal({ ...ada, groups: ['engineering'] }, ['audit', 'security'])).toEqual({
      status: 403,
      code: 'not_a_reader',
      message:
        'only members of audit, security (events.readerGroups) may read events; ask to be added to one of them',
    });
  });
});

describe('parseReviewRequest', () => {
  it('takes the reports of portcullis review, 30 days by default', () => {
    expect(parseReviewRequest('activity', q(''), 365)).toEqual({
      ok: true,
      value: { report: 'activity', days: 30 },
    });
    expect(parseReviewRequest('writes', q('days=7&person=ada'), 365)).toEqual({
      ok: true,
      value: { report: 'writes', days: 7, person: 'ada' },
    });
    expect(parseReviewRequest('activity', q(''), 10)).toMatchObject({ value: { days: 10 } });
  });

  it('refuses unknown reports, days outside 1..retention, and a sessions report without person', () => {
    expect(parseReviewRequest('everything', q(''), 365)).toMatchObject({
      ok: false,
      status: 400,
      code: 'unknown_report',
      message:
        'no review named everything; the reports are activity, agents, writes, blocked, approvals, unused, sessions',
    });
    for (const days of ['0', '-1', '1.5', 'abc', '', '366', '99999999999']) {
      expect(parseReviewRequest('activity', q(`days=${days}`), 365)).toMatchObject({
        ok: false,
        status: 400,
        message:
          'days must be a whole number from 1 to 365 (events are kept for events.store.retentionDays)',
      });
    }
    expect(parseReviewRequest('sessions', q(''), 365)).toMatchObject({
      ok: false,
      message: 'the sessions report needs person (a subject)',
    });
    expect(parseReviewRequest('activity', q('day=7'), 365)).toMatchObject({
      ok: false,
      message: 'unknown query parameter day; this endpoint takes days, person',
    });
    expect(parseReviewRequest('writes', q(`person=${'x'.repeat(257)}`), 365)).toMatchObject({
      ok: false,
    });
    expect(parseReviewRequest('writes', q('person=a&person=b'), 365)).toMatchObject({ ok: false });
  });
});

describe('reviewQuery', () => {
  const now = new Date('2026-05-10T12:00:00Z');
  const window = { from: new Date('2026-05-03T12:00:00Z'), to: now };

  it('builds the same query as the review builders over the days before now', () => {
    expect(reviewQuery({ report: 'activity', days: 7 }, now, [])).toEqual(reviews.activity(window));
    expect(reviewQuery({ report: 'writes', days: 7, person: 'ada' }, now, [])).toEqual(
      reviews.writes(window, 'ada'),
    );
    expect(reviewQuery({ report: 'sessions', days: 7, person: 'ada' }, now, [])).toEqual(
      reviews.sessions('ada', window),
    );
    const grants = [{ person: 'ada', resource: 'shop' }];
    expect(reviewQuery({ report: 'unused', days: 7 }, now, grants)).toEqual(
      reviews.unused(grants, 7, now),
    );
  });
});

describe('staticGrants', () => {
  it('pairs each static token person with its resources, or every resource', () => {
    expect(
      staticGrants({
        resources: { shop: {}, hr: {} } as never,
        tokens: {
          t1: { person: { ...ada, subject: 'ada' }, resources: ['shop'] },
          t2: { person: { ...ada, subject: 'bob' }, resources: null },
        },
      }),
    ).toEqual([
      { person: 'ada', resource: 'shop' },
      { person: 'bob', resource: 'shop' },
      { person: 'bob', resource: 'hr' },
    ]);
  });
});

describe('parseEventsRequest', () => {
  it('takes the filters of portcullis events, the last 50 by default', () => {
    expect(parseEventsRequest(q(''))).toEqual({ ok: true, value: { last: 50 } });
    expect(parseEventsRequest(q('session=ab12&type=statement&person=ada&last=10'))).toEqual({
      ok: true,
      value: { sessionPrefix: 'ab12', type: 'statement', person: 'ada', last: 10 },
    });
  });

  it(`caps last at ${MAX_EVENTS_LAST}`, () => {
    expect(parseEventsRequest(q('last=10000'))).toMatchObject({ value: { last: 10_000 } });
    expect(parseEventsRequest(q('last=10001'))).toMatchObject({ ok: false, status: 400 });
    expect(parseEventsRequest(q('last=0'))).toMatchObject({ ok: false, status: 400 });
  });
});

describe('parseVerifyRequest', () => {
  it('takes since as an ISO date or date-time, and a session prefix', () => {
    expect(parseVerifyRequest(q(''))).toEqual({ ok: true, value: {} });
    expect(parseVerifyRequest(q('since=2026-05-01T00:00:00.000Z&session=ab'))).toEqual({
      ok: true,
      value: { since: new Date('2026-05-01T00:00:00Z'), sessionPrefix: 'ab' },
    });
    expect(parseVerifyRequest(q('since=yesterday'))).toMatchObject({ ok: false, status: 400 });
    expect(parseVerifyRequest(q('since=2026-13-45'))).toMatchObject({ ok: false });
  });
});

describe('withQueryLimits', () => {
  const limits = { timeoutMs: 30_000, maxRows: 100 };
  const added = "max_execution_time = 30, max_result_rows = 100, result_overflow_mode = 'throw'";

  it('adds a SETTINGS clause to a query without one', () => {
    expect(withQueryLimits('SELECT 1\nFROM t\nORDER BY x', limits)).toBe(
      `SELECT 1\nFROM t\nORDER BY x\nSETTINGS ${added}`,
    );
  });

  it('merges into the trailing SETTINGS clause of every review that has one', () => {
    for (const bound of [
      reviews.writes({ from: new Date(0), to: new Date() }),
      reviews.unused([], 7, new Date()),
    ]) {
      const sql = withQueryLimits(bound.sql, limits);
      expect(sql.match(/\bSETTINGS\b/g)).toHaveLength(1);
      expect(sql.endsWith(`, ${added}`)).toBe(true);
    }
  });

  it('rounds the time up to whole seconds, at least one', () => {
    expect(withQueryLimits('SELECT 1', { timeoutMs: 200, maxRows: 1 })).toContain(
      'max_execution_time = 1,',
    );
  });
});

describe('queryFailure', () => {
  it("reads the engine's codes", () => {
    expect(queryFailure('Code: 159. DB::Exception: Timeout exceeded (TIMEOUT_EXCEEDED)')).toBe(
      'timeout',
    );
    expect(queryFailure('Code: 396. Limit for result exceeded (TOO_MANY_ROWS_OR_BYTES)')).toBe(
      'too_many_rows',
    );
    expect(queryFailure(' The event store is closed')).toBe('closed');
    expect(queryFailure('Code: 62. Syntax error')).toBe('other');
  });
});
