// The gateway's event pipeline, end to end in one process.
//
//   node --conditions=@portcullis/source --import tsx bench/event-pipeline.bench.ts \
//     [--events 300000] [--runs 3] [--seconds 8] [--rates 1000,5000,20000]
//
// 1. Events/s into the spool through the sink the gateway's sessions write to: SpoolAdmission
//    (fail-closed admission) → SpoolEventSink with encodeEventJson → Spool, default spool
//    settings. Statement events of sessions of 64 events sharing their fixed facts (as a
//    SessionRecorder shares them, so encodeEventJson's per-session cache works as in the
//    gateway), appended in bursts of 1,000 with a turn of the event loop between bursts; the
//    clock stops when the last event is fsync'ed. Baselines in the same run: SpoolEventSink with
//    JSON.stringify (the events package's default encoder), and encodeEventJson alone (no spool).
//    Goal: ≥ 200k events/s.
// 2. Lag from a statement's completion (its event written to the sink) to its row being
//    queryable in the embedded store: the spool drained by a SinkRunner into a StoreSink over
//    ChdbEventStore with the gateway's BULK_BATCHES (so under a trickle one insert a second), as a
//    single-process gateway runs them; each event's lag is taken when the
//    store's insert of its batch has returned (the rows are then visible to queries). Events
//    arrive at a steady rate for --seconds per rate, after a warm-up that loads chDB.
//    Goal: p99 ≤ 2 s.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setImmediate as nextTurn } from 'node:timers/promises';
import type { ClientInfo, SessionEvent } from '@portcullis/core';
import {
  BULK_BATCHES,
  ChdbEventStore,
  SinkRunner,
  Spool,
  SpoolEventSink,
  type BatchSink,
} from '@portcullis/events';
import { encodeEventJson } from '../packages/gateway/src/events/encode-event-json.js';
import { SpoolAdmission } from '../packages/gateway/src/events/event-admission.js';
import { StoreSink } from '../packages/gateway/src/events/store-sink.js';
import { formatBenchTable, median } from './support/bench-table.js';
import { sampleStatement } from './support/sample-events.js';

const arg = (name: string, fallback: string): string => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1]! : fallback;
};
const EVENTS = Number(arg('events', '300000'));
const RUNS = Number(arg('runs', '3'));
const SECONDS = Number(arg('seconds', '8'));
const RATES = arg('rates', '1000,5000,20000').split(',').map(Number);
const BURST = 1000;
const SPOOL_GOAL = 200_000;
const LAG_GOAL_MS = 2000;

interface SessionFacts {
  readonly sessionId: string;
  readonly client: ClientInfo;
  readonly person: SessionEvent['person'];
  readonly agent: SessionEvent['agent'];
}

let counter = 0;
const hex = (n: number, width: number): string => n.toString(16).padStart(width, '0');

function newSession(n: number): SessionFacts {
  return {
    sessionId: `7f3c2a10-55e1-4c1b-9a8e-${hex(0x10000000 + n, 12)}`,
    client: {
      address: '10.20.4.17',
      port: 50_000 + (n % 10_000),
      application: 'psql',
      user: 'alice',
      tls: true,
    },
    person: { subject: `u-${hex(n % 300, 6)}`, email: 'alice@example.com', groups: ['dba'] },
    agent: n % 10 === 0 ? { id: 'agent-report', name: 'report-bot' } : null,
  };
}

/** Statement events as a recorder writes them: fresh id and time, facts shared per session. */
function makeEvents(count: number): SessionEvent[] {
  const events: SessionEvent[] = [];
  let facts = newSession(0);
  for (let i = 0; i < count; i++) {
    const seq = i % 64;
    if (seq === 0) facts = newSession(i >> 6);
    const n = counter++;
    events.push({
      schema: 1,
      id: `0b8f4e2c-1d3a-4f6b-8c9d-${hex(n, 12)}`,
      type: 'statement',
      timeUs: Date.now() * 1000,
      sessionId: facts.sessionId,
      seq,
      person: facts.person,
      agent: facts.agent,
      authMethod: 'static-token',
      resource: 'payments',
      protocol: 'postgres',
      upstreamUser: 'app_ro',
      client: facts.client,
      statement: sampleStatement(n),
    });
  }
  return events;
}

async function withDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'pcl-pipeline-bench-'));
  try {
    return await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

type Mode = 'gateway' | 'stringify' | 'encode-only';

/** Events/s for one run of part 1. */
async function spoolRun(mode: Mode, events: readonly SessionEvent[]): Promise<number> {
  if (mode === 'encode-only') {
    let bytes = 0;
    const started = performance.now();
    for (let sent = 0; sent < events.length;) {
      const end = Math.min(events.length, sent + BURST);
      for (; sent < end; sent++) bytes += encodeEventJson(events[sent]!).length;
      await nextTurn();
    }
    if (bytes === 0) throw new Error('nothing encoded');
    return events.length / ((performance.now() - started) / 1000);
  }
  return withDir(async (dir) => {
    const maxBytes = 8 * 1024 ** 3;
    const spool = await Spool.open({ dir, maxBytes });
    const inner = new SpoolEventSink(spool, {
      closeSpool: false,
      ...(mode === 'gateway' ? { encode: encodeEventJson } : {}),
    });
    const sink =
      mode === 'gateway'
        ? new SpoolAdmission(spool, inner, { maxBytes, whenFull: 'fail-closed' })
        : inner;
    const started = performance.now();
    for (let sent = 0; sent < events.length;) {
      const end = Math.min(events.length, sent + BURST);
      for (; sent < end; sent++) sink.write(events[sent]!);
      await nextTurn();
    }
    await spool.flush();
    const elapsed = performance.now() - started;
    await spool.close();
    return events.length / (elapsed / 1000);
  });
}

/** A StoreSink that notes when each delivered batch became queryable. */
class TimedStoreSink implements BatchSink {
  readonly name = 'store';
  readonly #inner: StoreSink;
  readonly #onStored: (count: number, at: number) => void;
  constructor(inner: StoreSink, onStored: (count: number, at: number) => void) {
    this.#inner = inner;
    this.#onStored = onStored;
  }
  async deliver(records: Parameters<BatchSink['deliver']>[0]): Promise<void> {
    await this.#inner.deliver(records);
    this.#onStored(records.length, performance.now());
  }
  close(): Promise<void> {
    return this.#inner.close();
  }
}

interface LagResult {
  readonly rate: number;
  readonly achieved: number;
  readonly p50: number;
  readonly p99: number;
  readonly max: number;
  readonly stored: number;
  readonly written: number;
}

/** Part 2: every rate against one store (chDB loads once). */
async function lagRuns(): Promise<LagResult[]> {
  return withDir(async (dir) => {
    const store = new ChdbEventStore({
      dataDir: join(dir, 'store'),
      chainKey: 'bench-chain-key-0123456789',
      retentionDays: 365,
    });
    const results: LagResult[] = [];
    const spool = await Spool.open({ dir: join(dir, 'spool'), maxBytes: 8 * 1024 ** 3 });
    const sink = new SpoolAdmission(
      spool,
      new SpoolEventSink(spool, { encode: encodeEventJson, closeSpool: false }),
      { maxBytes: 8 * 1024 ** 3, whenFull: 'fail-closed' },
    );
    let writtenAt: number[] = [];
    let storedCount = 0;
    let lags: number[] = [];
    const runner = new SinkRunner(
      spool,
      new TimedStoreSink(new StoreSink(store), (count, at) => {
        for (let i = 0; i < count; i++) {
          const t = writtenAt[storedCount + i];
          if (t !== undefined) lags.push(at - t);
        }
        storedCount += count;
      }),
      // As the gateway runs its store sink.
      BULK_BATCHES,
    );
    await runner.start();
    // Warm-up: load chDB, create the schema.
    for (const event of makeEvents(100)) {
      writtenAt.push(performance.now());
      sink.write(event);
    }
    while (storedCount < 100) await new Promise((r) => setTimeout(r, 20));
    for (const rate of RATES) {
      writtenAt = [];
      lags = [];
      storedCount = 0;
      const total = Math.round(rate * SECONDS);
      const events = makeEvents(total);
      const started = performance.now();
      let sent = 0;
      // Every 10 ms, write what the rate owes by now.
      while (sent < total) {
        const due = Math.min(total, Math.floor(((performance.now() - started) / 1000) * rate));
        for (; sent < due; sent++) {
          writtenAt.push(performance.now());
          sink.write(events[sent]!);
        }
        await new Promise((r) => setTimeout(r, 10));
      }
      const achieved = total / ((performance.now() - started) / 1000);
      const deadline = performance.now() + 120_000;
      while (storedCount < total && performance.now() < deadline) {
        await new Promise((r) => setTimeout(r, 20));
      }
      const sorted = [...lags].sort((a, b) => a - b);
      const pick = (q: number): number =>
        sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN;
      results.push({
        rate,
        achieved,
        p50: pick(0.5),
        p99: pick(0.99),
        max: sorted.at(-1) ?? NaN,
        stored: storedCount,
        written: total,
      });
    }
    await runner.stop();
    await spool.close();
    return results;
  });
}

const fmt = (n: number): string => Math.round(n).toLocaleString('en-US').replaceAll(',', '');

console.log(
  `Event pipeline: ${EVENTS} statement events, ${RUNS} runs (median), node ${process.version}\n`,
);
const events = makeEvents(EVENTS);
const avgBytes = events.slice(0, 1000).reduce((n, e) => n + encodeEventJson(e).length, 0) / 1000;
const modes: [Mode, string][] = [
  ['gateway', 'gateway sink: admission + SpoolEventSink(encodeEventJson) → spool'],
  ['stringify', 'baseline: SpoolEventSink(JSON.stringify) → spool'],
  ['encode-only', 'baseline: encodeEventJson only, no spool'],
];
const rows: string[][] = [];
for (const [mode, label] of modes) {
  const runs: number[] = [];
  for (let r = 0; r < RUNS; r++) runs.push(await spoolRun(mode, events));
  const m = median(runs);
  rows.push([
    label,
    fmt(m),
    mode === 'gateway' ? (m >= SPOOL_GOAL ? 'yes' : 'no') : '',
    `${fmt(Math.min(...runs))}-${fmt(Math.max(...runs))}`,
  ]);
}
console.log(`1. Into the spool (events of ~${fmt(avgBytes)} bytes; goal ≥ ${fmt(SPOOL_GOAL)}/s)\n`);
console.log(formatBenchTable(['path', 'events/s', 'goal met', 'range'], rows));
console.log();

console.log(
  `2. Statement completion → queryable in the embedded store (chDB), ${SECONDS} s per rate; goal p99 ≤ ${LAG_GOAL_MS} ms\n`,
);
const lagRows = (await lagRuns()).map((r) => [
  fmt(r.rate),
  fmt(r.achieved),
  fmt(r.p50),
  fmt(r.p99),
  fmt(r.max),
  r.p99 <= LAG_GOAL_MS && r.stored === r.written ? 'yes' : 'no',
  `${r.stored}/${r.written}`,
]);
console.log(
  formatBenchTable(
    ['events/s offered', 'written/s', 'p50 ms', 'p99 ms', 'max ms', 'goal met', 'stored'],
    lagRows,
  ),
);
