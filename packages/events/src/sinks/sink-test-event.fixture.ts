import type { SessionEvent } from '@portcullis/core';

/** The `n`-th statement event of one session, for the sink tests; `overrides` replace fields. */
export function sinkTestEvent(
  n: number,
  overrides: Partial<Record<string, unknown>> = {},
): SessionEvent {
  return {
    schema: 1,
    id: `0b8f4e2c-1d3a-4f6b-8c9d-${n.toString(16).padStart(12, '0')}`,
    type: 'statement',
    timeUs: 1_793_000_000_000_000 + n,
    sessionId: 's-1',
    seq: n,
    person: { subject: 'u-1', email: 'a@example.com', groups: ['dba'] },
    agent: null,
    authMethod: 'static-token',
    resource: 'payments',
    protocol: 'postgres',
    upstreamUser: 'app',
    client: { address: '10.0.0.1', port: 5000, application: 'psql', user: 'alice', tls: false },
    statement: {
      text: `SELECT ${n}`,
      protocol: 'simple',
      params: 0,
      tag: 'SELECT 1',
      rows: 1,
      bytes: 10,
      durationUs: 5,
      error: null,
      kind: 'select',
      fingerprint: 'f',
      tables: [],
      verdict: 'allow',
      rule: 'default',
    },
    ...overrides,
  } as SessionEvent;
}
