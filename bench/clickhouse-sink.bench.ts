// Events from the durable spool into a ClickHouse server through ClickHouseSink.
//
//   npm run bench:clickhouse -- [--events 200000] [--runs 3] [--rate 2000,10000] [--seconds 10]
//
// The server is the test kit's: Debian's clickhouse-server (18.16 on Debian 12) on a loopback
// port, sharing this machine's cores with the benchmark. Tables are the sink's `legacy18` flavour.
//
// Throughput (rows/s, median of --runs; a fresh table each run):
// - raw client, TSV: `@clickhouse/client` inserting the same TabSeparated bytes the sink sends,
//   encoded before the clock starts, in inserts of the same size: the server's and the HTTP
//   path's ceiling, the baseline.
// - raw client, JSONEachRow: the same rows as pre-built objects, the way the client is usually
//   used (`insert({ values, format: 'JSONEachRow' })`).
// - sink.deliver: records already read from the spool, delivered 50,000 at a time: the sink's own
//   cost (JSON.parse, the store's row mapping, TSV encoding) plus the insert.
// - spool → SinkRunner → sink: everything appended and synced first, then the runner drains it
//   with the batches the gateway gives its ClickHouse sink (BULK_BATCHES: at most 50,000 records
//   read 8 MiB at a time, each batch one insert), and with SinkRunner's defaults (4,096 records
//   / 1 MiB) to show what the batch size costs.
// Lag: events appended at each steady --rate (events/s) for --seconds while SinkRunner drains
// with the gateway's batches;
// a poller reads `count()` every 20 ms and, since events arrive in order, dates each event's
// arrival; lag is arrival minus append (p50 / p99 / max). The poll interval bounds the resolution.
// When a rate is above what the path drains, the lag grows for as long as the run lasts.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { createClient, ClickHouseLogLevel } from '@clickhouse/client';
import type { SessionEvent } from '@portcullis/core';
import {
  BULK_BATCHES,
  ClickHouseSink,
  eventToRow,
  legacy18TableDdl,
  SinkRunner,
  Spool,
  type SpoolRecord,
} from '@portcullis/events';
import { startClickHouse, type ClickHouseServer } from '@portcullis/testkit';
import { formatBenchTable, median } from './support/bench-table.js';
import { sampleStatementEvent } from './support/sample-events.js';

const arg = (name: string, fallback: number): number => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
};
const EVENTS = arg('events', 200_000);
const RUNS = arg('runs', 3);
const RATES = (() => {
  const i = process.argv.indexOf('--rate');
  return (i >= 0 ? process.argv[i + 1]! : '2000,10000').split(',').map(Number);
})();
const SECONDS = arg('seconds', 10);
const INSERT_ROWS = 50_000;
const GOAL_ROWS = 200_000;
const GOAL_LAG_P99_MS = 2_000;

const LINES = Array.from({ length: EVENTS }, (_, i) => JSON.stringify(sampleStatementEvent(i)));
const AVG_BYTES = LINES.reduce((n, l) => n + Buffer.byteLength(l), 0) / LINES.length;

let server: ClickHouseServer;
let tableNo = 0;

async function freshTable(): Promise<string> {
  const table = `bench_${++tableNo}`;
  await server.query(legacy18TableDdl(table));
  return table;
}

async function dropTable(table: string): Promise<void> {
  await server.query(`DROP TABLE IF EXISTS ${table}`);
}

async function rowCount(table: string): Promise<number> {
  return Number((await server.query(`SELECT count() FROM ${table}`)).trim());
}

async function withDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'pcl-ch-bench-'));
  try {
    return await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function sinkFor(table: string, deadLetterDir: string): ClickHouseSink {
  return new ClickHouseSink({
    url: server.url,
    table,
    schema: 'legacy18',
    deadLetterDir,
    maxInsertRows: INSERT_ROWS,
    createTable: false,
  });
}

/** The TSV the sink sends for these records, captured from a sink pointed at a stand-in. */
async function tsvBodies(): Promise<Buffer[]> {
  const { createServer } = await import('node:http');
  const bodies: Buffer[] = [];
  const standIn = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if ((req.url ?? '').includes('INSERT')) bodies.push(Buffer.concat(chunks));
      res.end('');
    });
  });
  await new Promise<void>((resolve) => standIn.listen(0, '127.0.0.1', resolve));
  const address = standIn.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  await withDir(async (dir) => {
    const sink = new ClickHouseSink({
      url: `http://127.0.0.1:${port}`,
      table: 'capture',
      schema: 'legacy18',
      deadLetterDir: dir,
      maxInsertRows: INSERT_ROWS,
      createTable: false,
    });
    await sink.deliver(records(0, EVENTS));
    await sink.close();
  });
  await new Promise((resolve) => standIn.close(resolve));
  return bodies;
}

function records(from: number, to: number): SpoolRecord[] {
  const out: SpoolRecord[] = [];
  for (let i = from; i < to; i++) out.push({ sequence: i, payload: Buffer.from(LINES[i]!) });
  return out;
}

async function rawTsv(bodies: readonly Buffer[]): Promise<number> {
  const table = await freshTable();
  const client = createClient({ url: server.url, log: { level: ClickHouseLogLevel.OFF } });
  const started = performance.now();
  for (const body of bodies) {
    await client.insert({
      table,
      values: Readable.from([body], { objectMode: false }),
      format: 'TabSeparated',
    });
  }
  const seconds = (performance.now() - started) / 1000;
  await client.close();
  if ((await rowCount(table)) !== EVENTS) throw new Error('raw TSV insert lost rows');
  await dropTable(table);
  return EVENTS / seconds;
}

async function rawJson(rows: readonly object[][]): Promise<number> {
  const table = await freshTable();
  const client = createClient({ url: server.url, log: { level: ClickHouseLogLevel.OFF } });
  const started = performance.now();
  for (const values of rows) await client.insert({ table, values, format: 'JSONEachRow' });
  const seconds = (performance.now() - started) / 1000;
  await client.close();
  if ((await rowCount(table)) !== EVENTS) throw new Error('raw JSON insert lost rows');
  await dropTable(table);
  return EVENTS / seconds;
}

async function sinkDeliver(): Promise<number> {
  const table = await freshTable();
  const batches: SpoolRecord[][] = [];
  for (let i = 0; i < EVENTS; i += INSERT_ROWS) {
    batches.push(records(i, Math.min(EVENTS, i + INSERT_ROWS)));
  }
  const rate = await withDir(async (dir) => {
    const sink = sinkFor(table, dir);
    await sink.ensureTable();
    const started = performance.now();
    for (const batch of batches) await sink.deliver(batch);
    const seconds = (performance.now() - started) / 1000;
    await sink.close();
    return EVENTS / seconds;
  });
  if ((await rowCount(table)) !== EVENTS) throw new Error('sink lost rows');
  await dropTable(table);
  return rate;
}

/** Appends every event to a spool and syncs it, then drains it into the table; rows/s of the drain. */
async function spoolDrain(batches: 'small' | 'bulk'): Promise<{ rate: number; inserts: number }> {
  const table = await freshTable();
  const result = await withDir(async (dir) => {
    const spool = await Spool.open({ dir: join(dir, 'spool'), maxBytes: 8 * 1024 ** 3 });
    for (const line of LINES) spool.append(line);
    await spool.flush();
    const sink = sinkFor(table, dir);
    await sink.ensureTable();
    const started = performance.now();
    const runner = new SinkRunner(spool, sink, batches === 'bulk' ? BULK_BATCHES : {});
    await runner.start();
    while (runner.stats.lagRecords > 0) await sleep(5);
    const seconds = (performance.now() - started) / 1000;
    const inserts = sink.stats.inserts;
    await runner.stop();
    await spool.close();
    return { rate: EVENTS / seconds, inserts };
  });
  if ((await rowCount(table)) !== EVENTS) throw new Error('spool drain lost rows');
  await dropTable(table);
  return result;
}

function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

/** Appends at `rate` events/s for SECONDS while SinkRunner drains; append → queryable lag. */
async function steadyLag(
  rate: number,
): Promise<{ p50: number; p99: number; max: number; events: number }> {
  const table = await freshTable();
  const total = Math.min(EVENTS, rate * SECONDS);
  const result = await withDir(async (dir) => {
    const spool = await Spool.open({ dir: join(dir, 'spool'), maxBytes: 8 * 1024 ** 3 });
    const sink = sinkFor(table, dir);
    await sink.ensureTable();
    const runner = new SinkRunner(spool, sink, BULK_BATCHES);
    await runner.start();
    const appendedAt = new Float64Array(total);
    const lags: number[] = [];
    let seen = 0;
    let appended = 0;
    let polling = true;
    const poller = (async () => {
      while (polling || seen < appended) {
        const visible = await rowCount(table);
        const now = performance.now();
        for (; seen < visible; seen++) lags.push(now - appendedAt[seen]!);
        await sleep(20);
      }
    })();
    const started = performance.now();
    // Appends in 1 ms ticks, each bringing the count up to where rate says it should be.
    while (appended < total) {
      const due = Math.min(total, Math.floor(((performance.now() - started) / 1000) * rate));
      const now = performance.now();
      for (; appended < due; appended++) {
        appendedAt[appended] = now;
        spool.append(LINES[appended]!);
      }
      await sleep(1);
    }
    polling = false;
    await poller;
    await runner.stop();
    await spool.close();
    const sorted = lags.sort((a, b) => a - b);
    return {
      p50: percentile(sorted, 50),
      p99: percentile(sorted, 99),
      max: sorted[sorted.length - 1]!,
      events: sorted.length,
    };
  });
  await dropTable(table);
  return result;
}

async function main(): Promise<void> {
  server = await startClickHouse();
  try {
    const bodies = await tsvBodies();
    const jsonRows: object[][] = [];
    for (let i = 0; i < EVENTS; i += INSERT_ROWS) {
      jsonRows.push(
        LINES.slice(i, i + INSERT_ROWS).map((line) => {
          const event = JSON.parse(line) as SessionEvent;
          const { time: _time, ...row } = eventToRow({ event, prevHash: '', hash: '' });
          const seconds = Math.floor(event.timeUs / 1e6);
          return { ...row, time: seconds, time_micros: event.timeUs - seconds * 1e6 };
        }),
      );
    }
    const tsvBytes = bodies.reduce((n, b) => n + b.length, 0) / EVENTS;
    console.log(
      `ClickHouse ${server.version} on 127.0.0.1:${server.httpPort}; ${EVENTS} statement events ` +
        `(${AVG_BYTES.toFixed(0)} B JSON, ${tsvBytes.toFixed(0)} B TSV each), inserts of ` +
        `${INSERT_ROWS} rows, ${RUNS} run(s), medians\n`,
    );
    const cases: [string, () => Promise<number>, string][] = [
      ['raw client, pre-built TSV (baseline)', () => rawTsv(bodies), ''],
      ['raw client, pre-built JSONEachRow objects', () => rawJson(jsonRows), ''],
      ['ClickHouseSink.deliver (50k records/call)', sinkDeliver, ''],
    ];
    const rows: string[][] = [];
    for (const [label, run] of cases) {
      const rates: number[] = [];
      for (let r = 0; r < RUNS; r++) rates.push(await run());
      rows.push([
        label,
        median(rates).toFixed(0),
        `${((median(rates) / GOAL_ROWS) * 100).toFixed(0)}%`,
        '',
      ]);
    }
    for (const batches of ['small', 'bulk'] as const) {
      const rates: number[] = [];
      const inserts: number[] = [];
      for (let r = 0; r < RUNS; r++) {
        const result = await spoolDrain(batches);
        rates.push(result.rate);
        inserts.push(result.inserts);
      }
      rows.push([
        batches === 'bulk'
          ? "spool → SinkRunner → sink, the gateway's batches (≤ 50,000 rec, 8 MiB reads)"
          : 'spool → SinkRunner → sink, default batches (≤ 4,096 rec, 1 MiB reads)',
        median(rates).toFixed(0),
        `${((median(rates) / GOAL_ROWS) * 100).toFixed(0)}%`,
        String(median(inserts)),
      ]);
    }
    console.log(formatBenchTable(['path', 'rows/s', 'of goal', 'inserts'], rows));

    console.log(
      `\nappend → queryable, steady rate for ${SECONDS} s (spool → SinkRunner → sink, ` +
        `count() polled every 20 ms; goal p99 ≤ ${GOAL_LAG_P99_MS} ms), medians of ${RUNS} run(s)\n`,
    );
    const lagRows: string[][] = [];
    for (const rate of RATES) {
      const lagRuns: { p50: number; p99: number; max: number; events: number }[] = [];
      for (let r = 0; r < RUNS; r++) lagRuns.push(await steadyLag(rate));
      lagRows.push([
        String(rate),
        String(median(lagRuns.map((l) => l.events))),
        median(lagRuns.map((l) => l.p50)).toFixed(0),
        median(lagRuns.map((l) => l.p99)).toFixed(0),
        median(lagRuns.map((l) => l.max)).toFixed(0),
      ]);
    }
    console.log(formatBenchTable(['events/s', 'events', 'p50 ms', 'p99 ms', 'max ms'], lagRows));
  } finally {
    await server.stop();
  }
}

await main();
