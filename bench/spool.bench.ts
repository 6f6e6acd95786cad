// Throughput of the durable event spool (packages/events/src/spool).
//
//   node --conditions=@portcullis/source --import tsx bench/spool.bench.ts [--events 300000] [--runs 3]
//
// One process appends realistic session-event JSON lines (statement events as JSON.stringify
// writes them, ~730 bytes: a real event with short values does not get much below 700) in bursts
// of 1,000, yielding to the event loop between bursts as the gateway does between socket reads,
// then awaits flush(): events/s counts from the first append until the last record is fsync'ed.
// Cases: the batch settings (batchBytes / batchDelayMs) and, as the baseline in the same run, the
// same bytes written raw (no framing, no CRC) with the same group commit (one writev + fdatasync
// of whatever accumulated meanwhile), the ceiling for this pattern on this disk.
// "+ JSON.stringify" goes through SpoolEventSink with the encoding included. Then one consumer
// reads everything back in batches (at most 4,096 records / 4 MiB) and acknowledges each batch
// (an atomic offsets-file replace: two fsyncs), and once more without acknowledging. Figures are
// medians of --runs runs; each run uses a fresh directory.
import { mkdtemp, open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { crc32c, Spool, SpoolEventSink } from '@portcullis/events';
import { formatBenchTable, median } from './support/bench-table.js';
import { sampleStatementEvent } from './support/sample-events.js';

const arg = (name: string, fallback: number): number => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
};
const EVENTS = arg('events', 300_000);
const RUNS = arg('runs', 3);
const BURST = 1000;
const GOAL = 200_000;

const EVENT_OBJECTS = Array.from({ length: 1000 }, (_, i) => sampleStatementEvent(i));
const LINES = EVENT_OBJECTS.map((e) => JSON.stringify(e));
const AVG_BYTES = LINES.reduce((n, l) => n + Buffer.byteLength(l), 0) / LINES.length;

async function withDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'pcl-spool-bench-'));
  try {
    return await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

interface WriteResult {
  eventsPerSec: number;
  appendUsPerEvent: number;
  fsyncMs: number;
}

/** Appends EVENTS lines in bursts and waits until they are durable. */
async function spoolRun(
  batchBytes: number,
  batchDelayMs: number,
  viaSink: boolean,
): Promise<WriteResult> {
  return withDir(async (dir) => {
    const spool = await Spool.open({ dir, batchBytes, batchDelayMs, maxBytes: 8 * 1024 ** 3 });
    const sink = new SpoolEventSink(spool);
    let appendMs = 0;
    const started = performance.now();
    for (let sent = 0; sent < EVENTS;) {
      const t0 = performance.now();
      const end = Math.min(EVENTS, sent + BURST);
      if (viaSink) for (; sent < end; sent++) sink.write(EVENT_OBJECTS[sent % 1000]!);
      else for (; sent < end; sent++) spool.append(LINES[sent % 1000]!);
      appendMs += performance.now() - t0;
      await nextTurn();
    }
    await spool.flush();
    const elapsed = performance.now() - started;
    const fsyncMs = spool.lastFsyncMs;
    await spool.close();
    return {
      eventsPerSec: EVENTS / (elapsed / 1000),
      appendUsPerEvent: (appendMs * 1000) / EVENTS,
      fsyncMs,
    };
  });
}

/**
 * The baseline: the same bytes (newline-terminated, no framing, no CRC), written the way the spool
 * writes when busy: whatever accumulated during the last fdatasync goes out in one writev.
 */
async function rawRun(): Promise<WriteResult> {
  return withDir(async (dir) => {
    const file = await open(join(dir, 'raw.jsonl'), 'w');
    const STAGE = 1024 * 1024;
    let stage = Buffer.allocUnsafe(STAGE);
    let used = 0;
    let pending: Buffer[] = [];
    let position = 0;
    let fsyncMs = 0;
    let appendMs = 0;
    let writing: Promise<void> | null = null;
    const drain = async (): Promise<void> => {
      while (pending.length > 0) {
        const chunks = pending;
        pending = [];
        const bytes = chunks.reduce((n, c) => n + c.length, 0);
        await file.writev(chunks, position);
        position += bytes;
        const t = performance.now();
        await file.datasync();
        fsyncMs = performance.now() - t;
      }
    };
    const kick = (): void => {
      if (used > 0) {
        pending.push(stage.subarray(0, used));
        stage = Buffer.allocUnsafe(STAGE);
        used = 0;
      }
      writing ??= drain().finally(() => (writing = null));
    };
    const started = performance.now();
    for (let sent = 0; sent < EVENTS;) {
      const t0 = performance.now();
      const end = Math.min(EVENTS, sent + BURST);
      for (; sent < end; sent++) {
        if (STAGE - used < 4096) kick();
        used += stage.write(LINES[sent % 1000]!, used, 'utf8');
        stage[used++] = 10;
      }
      appendMs += performance.now() - t0;
      if (writing === null) kick();
      await nextTurn();
    }
    kick();
    while (writing !== null) await writing;
    const elapsed = performance.now() - started;
    await file.close();
    return {
      eventsPerSec: EVENTS / (elapsed / 1000),
      appendUsPerEvent: (appendMs * 1000) / EVENTS,
      fsyncMs,
    };
  });
}

/** Fills a spool, reopens it, and reads everything back with one consumer, acking each batch. */
async function readRun(ack: boolean): Promise<{ eventsPerSec: number; batches: number }> {
  return withDir(async (dir) => {
    const options = { dir, maxBytes: 8 * 1024 ** 3 };
    const writer = await Spool.open(options);
    for (let sent = 0; sent < EVENTS; sent++) {
      writer.append(LINES[sent % 1000]!);
      if (sent % BURST === 0) await nextTurn();
    }
    await writer.close();
    const spool = await Spool.open(options);
    const started = performance.now();
    const reader = await spool.openReader('bench', {
      maxRecords: 4096,
      readBytes: 4 * 1024 * 1024,
    });
    let seen = 0;
    let batches = 0;
    while (seen < EVENTS) {
      const batch = await reader.read();
      if (batch === null) throw new Error('reader ended early');
      seen += batch.records.length;
      batches++;
      if (ack) await reader.ack(batch.lastSequence);
    }
    const elapsed = performance.now() - started;
    await spool.close();
    return { eventsPerSec: EVENTS / (elapsed / 1000), batches };
  });
}

function crcMBps(): number {
  const buf = Buffer.alloc(16 * 1024 * 1024, 0x5a);
  crc32c(buf);
  const t0 = performance.now();
  for (let i = 0; i < 4; i++) crc32c(buf);
  return (4 * 16) / ((performance.now() - t0) / 1000);
}

const fmt = (n: number, digits = 0) => n.toFixed(digits);

console.log(
  `spool: ${EVENTS.toLocaleString('en')} events of ~${Math.round(AVG_BYTES)} bytes per run, ` +
    `bursts of ${BURST}, median of ${RUNS} runs; goal ≥ ${GOAL.toLocaleString('en')} events/s durable`,
);
console.log(`CRC-32C (slicing-by-8): ${fmt(crcMBps())} MB/s\n`);

const cases: { name: string; run: () => Promise<WriteResult> }[] = [
  { name: 'baseline: raw lines, group-commit writev + fdatasync', run: rawRun },
  { name: 'spool 256 KiB / 1 ms', run: () => spoolRun(256 * 1024, 1, false) },
  { name: 'spool 1 MiB / 5 ms (default)', run: () => spoolRun(1024 * 1024, 5, false) },
  { name: 'spool 4 MiB / 10 ms', run: () => spoolRun(4 * 1024 * 1024, 10, false) },
  { name: 'spool 1 MiB / 5 ms + JSON.stringify', run: () => spoolRun(1024 * 1024, 5, true) },
];
const rows: string[][] = [];
for (const c of cases) {
  const results: WriteResult[] = [];
  for (let r = 0; r < RUNS; r++) results.push(await c.run());
  const eps = median(results.map((x) => x.eventsPerSec));
  rows.push([
    c.name,
    fmt(eps),
    fmt((eps * AVG_BYTES) / 1e6, 1),
    fmt(median(results.map((x) => x.appendUsPerEvent)), 2),
    fmt(median(results.map((x) => x.fsyncMs)), 2),
    c.name.startsWith('baseline') ? '' : eps >= GOAL ? 'yes' : 'no',
  ]);
}
console.log(
  formatBenchTable(
    ['append + durable flush', 'events/s', 'MB/s', 'append µs/event', 'last fsync ms', 'goal'],
    rows,
  ),
);

const readRows: string[][] = [];
for (const ack of [true, false]) {
  const reads: { eventsPerSec: number; batches: number }[] = [];
  for (let r = 0; r < RUNS; r++) reads.push(await readRun(ack));
  const eps = median(reads.map((x) => x.eventsPerSec));
  readRows.push([
    ack ? 'read + ack (atomic offsets replace) per batch' : 'read only, no ack',
    fmt(eps),
    fmt((eps * AVG_BYTES) / 1e6, 1),
    String(reads[0]!.batches),
  ]);
}
console.log();
console.log(
  formatBenchTable(
    ['one consumer, batches ≤ 4,096 / 4 MiB', 'events/s', 'MB/s', 'batches'],
    readRows,
  ),
);
