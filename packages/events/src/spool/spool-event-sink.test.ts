import { afterEach, describe, expect, it } from 'vitest';
import type { SessionEvent } from '@portcullis/core';
import { Spool } from './spool.js';
import { SpoolEventSink } from './spool-event-sink.js';
import { drain, removeTempDirs, tempDir } from './spool-test-support.fixture.js';

afterEach(removeTempDirs);

function event(seq: number): SessionEvent {
  return {
    schema: 1,
    id: `00000000-0000-4000-8000-${String(seq).padStart(12, '0')}`,
    type: 'statement',
    timeUs: 1_790_000_000_000_000 + seq,
    sessionId: '00000000-0000-4000-8000-000000999999',
    seq,
    person: { subject: 'u-alice', email: 'alice@example.com', groups: ['dba'] },
    agent: null,
    authMethod: 'static-token',
    resource: 'orders-db',
    protocol: 'postgres',
    upstreamUser: 'app_rw',
    client: { address: '10.0.0.7', port: 51000, application: 'psql', user: 'alice', tls: true },
    statement: {
      text: 'SELECT * FROM orders WHERE id = $1',
      protocol: 'simple',
      params: 0,
      tag: 'SELECT 1',
      rows: 1,
      bytes: 120,
      durationUs: 800,
      error: null,
      kind: 'select',
      fingerprint: 'f1',
      tables: ['orders'],
      verdict: 'allow',
      rule: 'default',
    },
  };
}

describe('SpoolEventSink', () => {
  it('appends each event as one JSON document and flushes it durable', async () => {
    const dir = await tempDir();
    const spool = await Spool.open({ dir });
    const sink = new SpoolEventSink(spool);
    sink.write(event(0));
    sink.write(event(1));
    await sink.flush();
    expect(spool.durableSequence).toBe(2);
    const got = await drain(await spool.openReader('kafka'));
    expect(got.map(([, json]) => JSON.parse(json) as SessionEvent)).toEqual([event(0), event(1)]);
    await sink.close();
    expect(() => spool.append('x')).toThrow(/closed/);
  });

  it('uses the encoder it is given, and can leave the spool open on close', async () => {
    const spool = await Spool.open({ dir: await tempDir() });
    const sink = new SpoolEventSink(spool, {
      encode: (e) => `${e.type}#${e.seq}`,
      closeSpool: false,
    });
    sink.write(event(7));
    await sink.close();
    expect(spool.durableSequence).toBe(1);
    expect(await drain(await spool.openReader('a'))).toEqual([[1, 'statement#7']]);
    await spool.close();
  });
});
