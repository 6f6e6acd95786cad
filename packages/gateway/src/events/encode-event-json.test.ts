import { randomUUID } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { SessionEvent } from '@portcullis/core';
import { encodeEventJson } from './encode-event-json.js';

const text = fc.string({ unit: 'grapheme', maxLength: 30 });
const person = fc.record(
  { subject: text, email: text, name: text, groups: fc.array(text, { maxLength: 3 }) },
  { requiredKeys: ['subject', 'email', 'groups'] },
);
const client = fc.record({
  address: text,
  port: fc.nat(65535),
  application: text,
  user: text,
  tls: fc.boolean(),
});
const statement = fc.record({
  text,
  protocol: fc.constantFrom('simple' as const, 'extended' as const, 'function-call' as const),
  params: fc.nat(),
  tag: text,
  rows: fc.nat(),
  bytes: fc.nat(),
  durationUs: fc.nat(),
  error: fc.option(fc.record({ code: text, message: text }), { nil: null }),
  kind: text,
  fingerprint: text,
  tables: fc.array(text, { maxLength: 3 }),
  verdict: fc.constantFrom('allow' as const, 'block' as const, 'review' as const),
  rule: text,
});

const decider = fc.record({ subject: text, email: text });
/** Every optional part an event may carry: the encoder must not drop any of them. */
const parts = fc.record(
  {
    approval: fc.record(
      { text, kind: text, rule: text, message: text, id: text },
      { requiredKeys: ['text', 'kind', 'rule', 'message'] },
    ),
    approvalDecision: fc.record({
      id: text,
      by: fc.array(decider, { maxLength: 2 }),
      reason: text,
      waitedUs: fc.nat(),
    }),
    summary: fc.record({
      reason: text,
      statements: fc.nat(),
      rows: fc.nat(),
      bytesFromClient: fc.nat(),
      bytesToClient: fc.nat(),
      durationUs: fc.nat(),
      error: fc.constant(null),
    }),
    authFailure: fc.record({ reason: text, code: text }),
    accessGrant: fc.record({ id: text, endsUs: fc.nat(), by: fc.array(decider, { maxLength: 2 }) }),
  },
  { requiredKeys: [] },
);

describe('encodeEventJson', () => {
  it('parses back to what JSON.stringify gives, for any event, on first and repeated use', () => {
    fc.assert(
      fc.property(
        person,
        client,
        fc.option(statement, { nil: undefined }),
        fc.nat(),
        parts,
        (p, c, s, seq, extra) => {
          const event: SessionEvent = {
            schema: 1,
            id: randomUUID(),
            type: s === undefined ? 'session.start' : 'statement',
            timeUs: 1_796_000_000_000_000 + seq,
            sessionId: randomUUID(),
            seq,
            person: p,
            agent: seq % 2 === 0 ? null : { id: 'agent-1', name: 'Agent "one"' },
            authMethod: 'static-token',
            resource: 'app',
            protocol: 'postgres',
            upstreamUser: 'app_rw',
            client: c,
            ...(s === undefined ? {} : { statement: s }),
            ...extra,
          };
          const expected = JSON.parse(JSON.stringify(event)) as unknown;
          expect(JSON.parse(encodeEventJson(event))).toEqual(expected);
          expect(JSON.parse(encodeEventJson(event))).toEqual(expected); // cached fragment
        },
      ),
    );
  });
});
