import type { SessionEvent, StatementRecord } from '@portcullis/core';

/** The statement every sample event records: a realistic indexed lookup. */
export function sampleStatement(n: number): StatementRecord {
  return {
    text: 'SELECT id, total FROM orders WHERE customer_id = $1',
    protocol: 'extended',
    params: 1,
    tag: `SELECT ${n % 50}`,
    rows: n % 50,
    bytes: (n % 50) * 96,
    durationUs: 400 + (n % 900),
    error: null,
    kind: 'select',
    fingerprint: 'a41f09c2d7e3b815',
    tables: ['orders'],
    verdict: 'allow',
    rule: 'default',
  };
}

/** Options of {@link sampleStatementEvent}. */
export interface SampleEventOptions {
  /**
   * How events map onto sessions: `consecutive` puts runs of 64 in one session (seq 0–63, as a
   * busy session writes them); `interleaved` spreads them over 64 sessions round-robin.
   */
  readonly sessions?: 'consecutive' | 'interleaved';
}

/**
 * The `n`-th of a stream of ~730-byte statement events, the shape the gateway records, with
 * deterministic ids so benchmarks are repeatable; every tenth is an agent acting for the person.
 */
export function sampleStatementEvent(n: number, options: SampleEventOptions = {}): SessionEvent {
  const interleaved = options.sessions === 'interleaved';
  const session = interleaved ? n % 64 : n >> 6;
  return {
    schema: 1,
    id: `0b8f4e2c-1d3a-4f6b-8c9d-${n.toString(16).padStart(12, '0')}`,
    type: 'statement',
    timeUs: 1_793_000_000_000_000 + n * 137,
    sessionId: `7f3c2a10-55e1-4c1b-9a8e-${(0x10000000 + session).toString(16).padStart(12, '0')}`,
    seq: interleaved ? n >> 6 : n & 63,
    person: { subject: 'u-7d41c9', email: 'alice@example.com', groups: ['dba'] },
    agent: n % 10 === 0 ? { id: 'agent-report', name: 'report-bot' } : null,
    authMethod: 'static-token',
    resource: 'payments',
    protocol: 'postgres',
    upstreamUser: 'app_ro',
    client: {
      address: '10.20.4.17',
      port: 50_000 + (interleaved ? session : n % 10_000),
      application: 'psql',
      user: 'alice',
      tls: true,
    },
    statement: sampleStatement(n),
  };
}
