// ClickHouseSink against a real ClickHouse server (Debian's 18.16, from the testkit): spool →
// SinkRunner → sink, re-delivery, the server SIGKILLed mid-stream, and a poison row.
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { SessionEvent } from '@portcullis/core';
import {
  ClickHouseSink,
  ClickHouseSinkError,
  legacy18TableDdl,
  SinkRunner,
  Spool,
  type BatchSink,
  type DeadLetterEntry,
  type SpoolRecord,
} from '@portcullis/events';
import { startClickHouse, type ClickHouseServer } from '@portcullis/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

let server: ClickHouseServer;
let baseDir: string;
let dirs = 0;

beforeAll(async () => {
  server = await startClickHouse();
  baseDir = await mkdtemp(join(tmpdir(), 'portcullis-ch-sink-'));
});

afterAll(async () => {
  await server?.stop();
  if (baseDir) await rm(baseDir, { recursive: true, force: true });
});

function dir(name: string): string {
  return join(baseDir, `${name}-${++dirs}`);
}

/** A statement event; `n` makes its id, time and sequence number unique. */
function event(n: number, sessionId = 'session-a'): SessionEvent {
  return {
    schema: 1,
    id: `6d1f0c3e-8a2b-4c5d-9e7f-${n.toString(16).padStart(12, '0')}`,
    type: 'statement',
    timeUs: 1_793_000_000_000_000 + n * 1_357,
    sessionId,
    seq: n,
    person: { subject: 'u-7d41c9', email: 'alice@example.com', groups: ['dba', "o'neil\tteam"] },
    agent: n % 7 === 0 ? { id: 'agent-report', name: 'report-bot' } : null,
    authMethod: 'static-token',
    resource: 'payments',
    protocol: 'postgres',
    upstreamUser: 'app_ro',
    client: { address: '10.20.4.17', port: 50_123, application: 'psql', user: 'alice', tls: true },
    statement: {
      text: `SELECT * FROM orders\n\tWHERE id = $1 -- \\N ${n}`,
      protocol: 'simple',
      params: 0,
      tag: 'SELECT 1',
      rows: 1,
      bytes: 120,
      durationUs: 830,
      error: null,
      kind: 'select',
      fingerprint: 'a1b2c3d4',
      tables: ['orders'],
      verdict: 'allow',
      rule: 'default',
    },
  };
}

async function count(sql: string): Promise<number> {
  return Number((await server.query(sql)).trim());
}

async function until(check: () => Promise<boolean> | boolean, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

function sinkFor(
  table: string,
  extra: Partial<ConstructorParameters<typeof ClickHouseSink>[0]> = {},
) {
  return new ClickHouseSink({
    url: server.url,
    table,
    schema: 'legacy18',
    deadLetterDir: dir('dead-letter'),
    requestTimeoutMs: 5_000,
    ...extra,
  });
}

describe('ClickHouseSink on ClickHouse 18.16', () => {
  it('the server is the Debian 18.16 release', () => {
    expect(server.version).toMatch(/^18\.16\./);
  });

  it('drains a spool into the table through SinkRunner; every event is queryable as written', async () => {
    const spool = await Spool.open({ dir: dir('spool'), batchDelayMs: 1 });
    const sink = sinkFor('events_all', { maxInsertRows: 1_000 });
    const runner = new SinkRunner(spool, sink, { retryDelayMs: 10 });
    await runner.start();
    const total = 5_000;
    for (let i = 0; i < total; i++) spool.append(JSON.stringify(event(i)));
    await spool.flush();
    await until(() => runner.stats.lagRecords === 0);
    expect(await count('SELECT count() FROM events_all')).toBe(total);
    expect(await count('SELECT uniqExact(id) FROM events_all')).toBe(total);
    // Inserts never span a multiple of maxInsertRows in sequence numbers.
    expect(sink.stats.inserts).toBeGreaterThanOrEqual(total / 1_000);

    const row = JSON.parse(
      await server.query(
        "SELECT toString(id) AS id, toUnixTimestamp(time) AS seconds, time_micros, person_groups, statement_text, agent_id, person_name FROM events_all WHERE toString(id) = '6d1f0c3e-8a2b-4c5d-9e7f-00000000002a' FORMAT JSONEachRow",
      ),
    ) as Record<string, unknown>;
    const expected = event(42);
    expect(row).toEqual({
      id: expected.id,
      seconds: Math.floor(expected.timeUs / 1e6),
      time_micros: expected.timeUs % 1e6,
      person_groups: ['dba', "o'neil\tteam"],
      statement_text: expected.statement!.text,
      agent_id: 'agent-report',
      person_name: null,
    });
    await runner.stop();
    await spool.close();
  });

  it('adds the columns a table made by an earlier version lacks, and stores who decided a held statement', async () => {
    // The table as the sink made it before approval decisions and refused logins had columns.
    const added = [
      'approval_id',
      'decision_by_subjects',
      'decision_by_emails',
      'decision_reason',
      'decision_waited_us',
      'auth_failure_reason',
      'auth_failure_code',
      'access_grant_id',
      'access_grant_ends_us',
      'access_grant_by_subjects',
      'access_grant_by_emails',
    ];
    const older = legacy18TableDdl('events_older')
      .split('\n')
      .filter((line) => !added.some((column) => line.trim().startsWith(`${column} `)))
      .join('\n');
    await server.query(older);
    const sink = sinkFor('events_older');
    const { statement: _granted, ...grantedBase } = event(7_001);
    const { statement: _refused, ...refusedBase } = event(7_002);
    const decided: SessionEvent = {
      ...grantedBase,
      type: 'approval.granted',
      approvalDecision: {
        id: 'apr_7001',
        by: [{ subject: 'u-bob', email: 'bob@example.com' }],
        reason: 'ticket 7',
        waitedUs: 2_500_000,
      },
    };
    const refused: SessionEvent = {
      ...refusedBase,
      type: 'auth.failed',
      authFailure: { reason: 'expired', code: '28P01' },
    };
    await sink.deliver(
      [decided, refused].map((e, i) => ({
        sequence: i + 1,
        payload: Buffer.from(JSON.stringify(e)),
      })),
    );
    const rows = (
      await server.query(
        'SELECT type, approval_id, decision_by_emails, decision_reason, decision_waited_us, auth_failure_reason, auth_failure_code FROM events_older ORDER BY seq FORMAT JSONEachRow',
      )
    )
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(rows).toEqual([
      {
        type: 'approval.granted',
        approval_id: 'apr_7001',
        decision_by_emails: ['bob@example.com'],
        decision_reason: 'ticket 7',
        decision_waited_us: '2500000',
        auth_failure_reason: null,
        auth_failure_code: '',
      },
      {
        type: 'auth.failed',
        approval_id: '',
        decision_by_emails: [],
        decision_reason: null,
        decision_waited_us: '0',
        auth_failure_reason: 'expired',
        auth_failure_code: '28P01',
      },
    ]);
    await sink.close();
  });

  it('a batch delivered again after a failure is stored twice but reads once (FINAL, argMax by id)', async () => {
    const spool = await Spool.open({ dir: dir('spool'), batchDelayMs: 1 });
    const sink = sinkFor('events_redelivered');
    // Stores the batch, then fails as if the answer was lost: the runner delivers it again.
    let failOnce = true;
    const flaky: BatchSink = {
      name: sink.name,
      async deliver(records: readonly SpoolRecord[]) {
        await sink.deliver(records);
        if (failOnce) {
          failOnce = false;
          throw new Error('simulated failure after the insert');
        }
      },
      close: () => sink.close(),
    };
    const runner = new SinkRunner(spool, flaky, { retryDelayMs: 10, maxRecords: 10_000 });
    const total = 2_000;
    for (let i = 0; i < total; i++) spool.append(JSON.stringify(event(i)));
    await spool.flush();
    await runner.start();
    await until(() => runner.stats.lagRecords === 0);
    expect(runner.stats.failures).toBe(1);
    const firstBatch = sink.stats.inserted - total;
    expect(firstBatch).toBeGreaterThan(0);

    // The duplicates are in the table...
    expect(await count('SELECT count() FROM events_redelivered')).toBe(total + firstBatch);
    // ...and every way of reading by id sees each event once.
    expect(await count('SELECT count() FROM events_redelivered FINAL')).toBe(total);
    expect(await count('SELECT uniqExact(id) FROM events_redelivered')).toBe(total);
    expect(
      await count(
        'SELECT count() FROM (SELECT id, argMax(seq, time_micros) AS seq FROM events_redelivered GROUP BY id)',
      ),
    ).toBe(total);
    expect(
      await count(
        'SELECT sum(rows) FROM (SELECT id, argMax(rows, time_micros) AS rows FROM events_redelivered GROUP BY id)',
      ),
    ).toBe(total);
    // A merge collapses them for good.
    await server.query('OPTIMIZE TABLE events_redelivered FINAL');
    expect(await count('SELECT count() FROM events_redelivered')).toBe(total);
    await runner.stop();
    await spool.close();
  });

  it('with skipStoredIds a re-delivered batch is not written again at all', async () => {
    const sink = sinkFor('events_skip', { skipStoredIds: true });
    const records = Array.from({ length: 300 }, (_, i) => ({
      sequence: i + 1,
      payload: Buffer.from(JSON.stringify(event(i))),
    }));
    await sink.deliver(records);
    await sink.deliver(records);
    await sink.deliver(records.slice(100, 250));
    expect(await count('SELECT count() FROM events_skip')).toBe(300);
    expect(sink.stats.skippedStored).toBe(450);
    await sink.close();
  });

  it('survives the server being SIGKILLed mid-stream: every event present exactly once after dedup', async () => {
    const spool = await Spool.open({ dir: dir('spool'), batchDelayMs: 2 });
    const sink = sinkFor('events_crash', { maxInsertRows: 500 });
    const runner = new SinkRunner(spool, sink, { retryDelayMs: 20, maxRetryDelayMs: 200 });
    await runner.start();
    const total = 20_000;
    let appended = 0;
    const appendSome = async (upTo: number): Promise<void> => {
      while (appended < upTo) {
        for (let k = 0; k < 200 && appended < upTo; k++) {
          spool.append(JSON.stringify(event(appended, `s-${appended % 13}`)));
          appended++;
        }
        await new Promise((resolve) => setTimeout(resolve, 1));
      }
    };
    await appendSome(6_000);
    await until(() => sink.stats.inserted > 1_000);
    const writing = appendSome(12_000);
    await server.kill();
    await writing;
    await spool.flush();
    // Deliveries fail while it is down; events wait in the spool.
    await until(() => sink.stats.retried > 0);
    expect(runner.stats.lagRecords).toBeGreaterThan(0);
    await server.start();
    await appendSome(total);
    await spool.flush();
    await until(() => runner.stats.lagRecords === 0, 60_000);

    expect(await count('SELECT count() FROM events_crash FINAL')).toBe(total);
    expect(await count('SELECT uniqExact(id) FROM events_crash')).toBe(total);
    expect(await count('SELECT count() FROM events_crash')).toBeGreaterThanOrEqual(total);
    const failures = sink.stats.failures;
    expect(failures.network + failures.timeout + failures.server).toBeGreaterThan(0);
    expect(sink.stats.deadLettered).toBe(0);
    await runner.stop();
    await spool.close();
  });

  it('a poison row goes to the dead-letter file and the rest arrives', async () => {
    const spool = await Spool.open({ dir: dir('spool'), batchDelayMs: 1 });
    const deadLetterDir = dir('dead-letter');
    const sink = sinkFor('events_poison', { deadLetterDir });
    const runner = new SinkRunner(spool, sink, { retryDelayMs: 10 });
    const sequences: Record<string, number> = {};
    for (let i = 0; i < 1_000; i++) {
      if (i === 333) {
        // The table's id is a UUID: the server refuses this row (Code: 27, cannot parse input).
        sequences['badId'] = spool.append(JSON.stringify({ ...event(i), id: 'not-a-uuid' }));
      } else if (i === 500) {
        // seq is UInt32: a negative number is refused.
        sequences['negative'] = spool.append(JSON.stringify({ ...event(i), seq: -1 }));
      } else if (i === 777) {
        sequences['garbage'] = spool.append('{"this is": not JSON');
      } else {
        spool.append(JSON.stringify(event(i)));
      }
    }
    await spool.flush();
    await runner.start();
    await until(() => runner.stats.lagRecords === 0);
    expect(await count('SELECT count() FROM events_poison')).toBe(997);
    expect(runner.stats.failures).toBe(0);
    expect(sink.stats.deadLettered).toBe(3);
    expect(sink.stats.rejectedInserts).toBeGreaterThan(0);

    const lines = (await readFile(sink.deadLetters.path, 'utf8'))
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as DeadLetterEntry);
    const bySequence = new Map(lines.map((entry) => [entry.sequence, entry]));
    expect(lines).toHaveLength(3);
    expect(bySequence.get(sequences['badId']!)?.error).toMatchObject({
      reason: 'rejected',
      code: 27,
    });
    expect(JSON.parse(bySequence.get(sequences['badId']!)!.payload)).toMatchObject({
      id: 'not-a-uuid',
    });
    expect(bySequence.get(sequences['negative']!)?.error).toMatchObject({
      reason: 'rejected',
      code: expect.any(Number) as number,
    });
    expect(bySequence.get(sequences['garbage']!)?.error.reason).toBe('undecodable');
    expect(bySequence.get(sequences['garbage']!)?.payload).toBe('{"this is": not JSON');
    await runner.stop();
    await spool.close();
  });

  it('the test kit restarts the server on the same port and data', async () => {
    const { pid, httpPort } = server;
    const before = await count('SELECT count() FROM events_all');
    await server.restart();
    expect(server.pid).not.toBe(pid);
    expect(server.httpPort).toBe(httpPort);
    expect(await count('SELECT count() FROM events_all')).toBe(before);
  });

  it('the modern schema needs a newer server: 18.16 refuses its DDL, reported as not retriable', async () => {
    const sink = new ClickHouseSink({
      url: server.url,
      table: 'events',
      schema: 'modern',
      deadLetterDir: dir('dead-letter'),
    });
    const error = await sink.ensureTable().then(
      () => null,
      (err: unknown) => err,
    );
    expect(error).toBeInstanceOf(ClickHouseSinkError);
    expect((error as ClickHouseSinkError).code).toBe('PCL_ERR_EVENTS_WRITE');
    expect((error as ClickHouseSinkError).retriable).toBe(false);
    expect((error as ClickHouseSinkError).failure.kind).toBe('config');
    await sink.close();
  });
});
