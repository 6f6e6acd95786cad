import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { SessionEvent, StatementError } from '@portcullis/core';
import { canonicalJson } from './canonical-json.js';
import { eventToRow, normalizeEvent, rowToEvent } from './event-row.js';
import { fixtureEvents } from './events.fixture.js';

const text = fc.string({ maxLength: 12 });
const count = fc.nat({ max: 2 ** 40 });
const error: fc.Arbitrary<StatementError | null> = fc.option(
  fc.record({ code: text, message: text }),
);
/** Any SessionEvent, optional parts present or not. */
const sessionEvent: fc.Arbitrary<SessionEvent> = fc
  .record(
    {
      schema: fc.nat({ max: 9 }),
      id: fc.uuid(),
      type: fc.constantFrom(
        'session.start',
        'statement',
        'approval.requested',
        'approval.granted',
        'approval.denied',
        'auth.failed',
        'session.end',
      ),
      timeUs: fc.integer({ min: 0, max: 4_102_444_800_000_000 }),
      sessionId: fc.uuid(),
      seq: fc.nat({ max: 100_000 }),
      person: fc.record(
        { subject: text, email: text, name: text, groups: fc.array(text, { maxLength: 3 }) },
        { requiredKeys: ['subject', 'email', 'groups'] },
      ),
      agent: fc.option(fc.record({ id: text.map((s) => `a${s}`), name: text })),
      authMethod: fc.constant('static-token'),
      resource: text,
      protocol: fc.constant('postgres'),
      upstreamUser: text,
      client: fc.record({
        address: text,
        port: fc.nat({ max: 65_535 }),
        application: text,
        user: text,
        tls: fc.boolean(),
      }),
      statement: fc.record(
        {
          text,
          protocol: fc.constantFrom('simple', 'extended', 'function-call'),
          preparedName: text,
          params: fc.nat({ max: 1000 }),
          tag: text,
          rows: count,
          bytes: count,
          durationUs: count,
          error,
          kind: text,
          fingerprint: text,
          tables: fc.array(text, { maxLength: 3 }),
          verdict: fc.constantFrom('allow', 'block', 'review'),
          rule: text,
          masked: fc.record({ values: fc.nat({ max: 10_000 }), columns: fc.array(text) }),
        },
        {
          requiredKeys: [
            ...['text', 'protocol', 'params', 'tag', 'rows', 'bytes', 'durationUs', 'error'],
            ...['kind', 'fingerprint', 'tables', 'verdict', 'rule'],
          ] as never[],
        },
      ),
      approval: fc.record(
        { text, kind: text, rule: text, message: text, id: text.map((t) => `apr_${t}`) },
        { requiredKeys: ['text', 'kind', 'rule', 'message'] },
      ),
      approvalDecision: fc.record({
        id: text.map((t) => `apr_${t}`),
        by: fc.array(fc.record({ subject: text, email: text }), { maxLength: 3 }),
        reason: text,
        waitedUs: count,
      }),
      authFailure: fc.record({ reason: text, code: text }),
      accessGrant: fc.record({
        id: text.map((t) => `acg_${t}`),
        endsUs: fc.integer({ min: 1, max: 4_102_444_800_000_000 }),
        by: fc.array(fc.record({ subject: text, email: text }), { maxLength: 3 }),
      }),
      summary: fc.record({
        reason: text,
        statements: count,
        rows: count,
        bytesFromClient: count,
        bytesToClient: count,
        durationUs: count,
        error,
      }),
    },
    {
      requiredKeys: [
        ...['schema', 'id', 'type', 'timeUs', 'sessionId', 'seq', 'person', 'agent'],
        ...['authMethod', 'resource', 'protocol', 'upstreamUser', 'client'],
      ] as never[],
    },
  )
  // An event is either a request (`approval`) or a decision (`approvalDecision`), never both:
  // the two share the `approval_id` column.
  .map(({ approval, ...rest }) =>
    rest.approvalDecision === undefined && approval !== undefined ? { ...rest, approval } : rest,
  ) as fc.Arbitrary<SessionEvent>;

/** What the table gives back for a row: time as µs, everything else as written. */
const stored = (event: SessionEvent): SessionEvent => {
  const { time: _time, ...row } = eventToRow({ event, prevHash: 'p', hash: 'h' });
  return rowToEvent({ ...row, time_us: event.timeUs }).event;
};

describe('event rows', () => {
  it('normalizeEvent is in canonical key order: JSON.stringify gives the canonical JSON', () => {
    fc.assert(
      fc.property(sessionEvent, (event) => {
        const normal = normalizeEvent(event);
        expect(JSON.stringify(normal)).toBe(canonicalJson(normal));
        expect(canonicalJson(normal)).toBe(canonicalJson(event));
      }),
    );
  });

  it('a row turns back into the same event', () => {
    fc.assert(
      fc.property(sessionEvent, (event) => {
        expect(canonicalJson(stored(event))).toBe(canonicalJson(event));
      }),
    );
    for (const event of fixtureEvents()) expect(stored(event)).toEqual(event);
  });

  it('drops fields the event type does not declare', () => {
    const [event] = fixtureEvents();
    const extra = { ...event!, person: { ...event!.person, token: 'secret' }, extra: 1 };
    expect(normalizeEvent(extra as SessionEvent)).toEqual(event);
  });
});
