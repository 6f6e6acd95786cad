// Events from the durable spool into a ClickHouse server through ClickHouseSink.
//
//   npm run bench:clickhouse -- [--events 200000] [--runs 3] [--rate 2000,10000] [--seconds 10]
//
// It runs the build (`tsc -b` first), as the gateway does: the sink's encoding thread would
// otherwise load its TypeScript through tsx, which runs it slower.
// The server is the test kit's: Debian's clickhouse-server (18.16 on Debian 12) on a loopback
// port, sharing this machine's cores with the benchmark. Tables are the sink's `legacy18` flavour.
//
// Throughput (rows/s, median of --runs; a fresh table each run), with the CPU time Node and the
// server spent per row (and Node's main thread's part: the rest is the encoding thread's, V8's
// garbage collection and compiling threads' and libuv's file reads) and how many cores they kept
// busy together (their CPU time over the wall time: 2 on two idle cores when both work at once,
// near 1 when they take turns or share one):
// - raw client, TSV: `@clickhouse/client` inserting the same TabSeparated bytes the sink sends,
//   encoded before the clock starts, in inserts of the same size: the server's and the HTTP
//   path's ceiling, the baseline.
// - sink.deliver: records already read from the spool, delivered 50,000 at a time: the sink's own
//   cost (transcoding each event's JSON to its TSV line on the sink's encoding thread, streamed
//   into the insert while the server parses) plus the insert.
// - spool → SinkRunner → sink: everything appended and synced first, then the runner drains it
//   with the batches the gateway gives its ClickHouse sink (CLICKHOUSE_BATCHES: at most 50,000
//   records read 8 MiB at a time, ending at multiples of 50,000, each batch one insert, two in
//   flight), and with SinkRunner's defaults (4,096 records
//   / 1 MiB) to show what the batch size costs. The same drain into a sink that drops the records
//   shows what reading the spool costs by itself, and the same drain with the sink transcoding on
//   the event loop (`encodeThread: false`) what its thread buys on this machine. With the gateway's batches the clock stops at
//   the last full batch: the one record after it waits out the batches' 1 s linger by design
//   (latency, which the lag table measures), and timing it would add that second to the drain.
// - raw client, JSONEachRow: the same rows as pre-built objects, the way the client is usually
//   used (`insert({ values, format: 'JSONEachRow' })`); measured last, as its hundreds of MB of
//   objects leave a heap that slows whatever runs after it.
// Encoding in Node (µs per row, median of --runs, no server): the JSON.parse path the sink takes
// for records the transcoder declines (JSON.parse, the store's row mapping, TSV cells) against
// EventTsvTranscoder, which writes the same bytes from the JSON directly.
// Lag: events appended at each steady --rate (events/s) for --seconds while SinkRunner drains
// with the gateway's batches;
// a poller reads `count()` every 20 ms and, since events arrive in order, dates each event's
// arrival; lag is arrival minus append (p50 / p99 / max). The poll interval bounds the resolution.
// When a rate is above what the path drains, the lag grows for as long as the run lasts.
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { createClient, ClickHouseLogLevel } from '@clickhouse/client';
import type { SessionEvent } from '@portcullis/core';
import {
  CLICKHOUSE_BATCHES,
  ClickHouseSink,
  eventToRow,
  legacy18TableDdl,
  SinkRunner,
  Spool,
  type BatchSink,
  type SpoolRecord,
} from '@portcullis/events';
import { startClickHouse, type ClickHouseServer } from '@portcullis/testkit';
import { columnsOf } from '../packages/events/src/sinks/clickhouse-columns.js';
import { encodeEventTsv, EventTsvTranscoder } from '../packages/events/src/sinks/event-tsv.js';
import { formatBenchTable, median } from './support/bench-table.js';
import { cpuTimeUs } from './support/proc-stats.js';
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

/**
 * The test kit's query, sent again once when fetch reused a connection the server was closing:
 * 18.16 drops an idle one after 3 s without a Keep-Alive header saying so, and preparing a
 * case's input can take about that long. Every statement here can be repeated.
 */
async function query(sql: string): Promise<string> {
  try {
    return await server.query(sql);
  } catch (error) {
    const cause = (error as { cause?: { code?: unknown } }).cause;
    if (cause?.code !== 'UND_ERR_SOCKET') throw error;
    return server.query(sql);
  }
}

async function freshTable(): Promise<string> {
  const table = `bench_${++tableNo}`;
  await query(legacy18TableDdl(table));
  return table;
}

async function dropTable(table: string): Promise<void> {
  await query(`DROP TABLE IF EXISTS ${table}`);
}

async function rowCount(table: string): Promise<number> {
  return Number((await query(`SELECT count() FROM ${table}`)).trim());
}

async function withDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'pcl-ch-bench-'));
  try {
    return await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** One timed run: rows/s, CPU µs per row of Node and of the server, and cores busy together. */
interface Run {
  readonly rate: number;
  readonly nodeUs: number;
  /**
   * Of `nodeUs`, the main thread's (the event loop); the rest is the encoding thread's, V8's
   * (garbage collection, compiling) and libuv's (file reads).
   */
  readonly mainUs: number;
  readonly serverUs: number;
  readonly cores: number;
}

/** CPU time (user + system) of this process's main thread, in microseconds. */
function mainThreadUs(): number {
  const stat = readFileSync(`/proc/self/task/${process.pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) * (1e6 / 100); // USER_HZ is 100
}

/** Times `work`, which moves `rows` rows. */
async function timed(work: () => Promise<void>, rows = EVENTS): Promise<Run> {
  const node0 = process.cpuUsage();
  const main0 = mainThreadUs();
  const server0 = cpuTimeUs([server.pid]);
  const started = performance.now();
  await work();
  const seconds = (performance.now() - started) / 1000;
  const node = process.cpuUsage(node0);
  const nodeUs = node.user + node.system;
  const mainUs = mainThreadUs() - main0;
  const serverUs = cpuTimeUs([server.pid]) - server0;
  return {
    rate: rows / seconds,
    nodeUs: nodeUs / rows,
    mainUs: mainUs / rows,
    serverUs: serverUs / rows,
    cores: (nodeUs + serverUs) / 1e6 / seconds,
  };
}

function sinkFor(table: string, deadLetterDir: string, encodeThread = true): ClickHouseSink {
  return new ClickHouseSink({
    url: server.url,
    table,
    schema: 'legacy18',
    deadLetterDir,
    maxInsertRows: INSERT_ROWS,
    createTable: false,
    encodeThread,
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

async function rawTsv(bodies: readonly Buffer[]): Promise<Run> {
  const table = await freshTable();
  const client = createClient({ url: server.url, log: { level: ClickHouseLogLevel.OFF } });
  const run = await timed(async () => {
    for (const body of bodies) {
      await client.insert({
        table,
        values: Readable.from([body], { objectMode: false }),
        format: 'TabSeparated',
      });
    }
  });
  await client.close();
  if ((await rowCount(table)) !== EVENTS) throw new Error('raw TSV insert lost rows');
  await dropTable(table);
  return run;
}

/** The rows as JSONEachRow objects, one list per insert. */
function jsonRows(): object[][] {
  const inserts: object[][] = [];
  for (let i = 0; i < EVENTS; i += INSERT_ROWS) {
    inserts.push(
      LINES.slice(i, i + INSERT_ROWS).map((line) => {
        const event = JSON.parse(line) as SessionEvent;
        const { time: _time, ...row } = eventToRow({ event, prevHash: '', hash: '' });
        const seconds = Math.floor(event.timeUs / 1e6);
        return { ...row, time: seconds, time_micros: event.timeUs - seconds * 1e6 };
      }),
    );
  }
  return inserts;
}

async function rawJson(rows: readonly object[][]): Promise<Run> {
  const table = await freshTable();
  const client = createClient({ url: server.url, log: { level: ClickHouseLogLevel.OFF } });
  const run = await timed(async () => {
    for (const values of rows) await client.insert({ table, values, format: 'JSONEachRow' });
  });
  await client.close();
  if ((await rowCount(table)) !== EVENTS) throw new Error('raw JSON insert lost rows');
  await dropTable(table);
  return run;
}

async function sinkDeliver(): Promise<Run> {
  const table = await freshTable();
  const batches: SpoolRecord[][] = [];
  for (let i = 0; i < EVENTS; i += INSERT_ROWS) {
    batches.push(records(i, Math.min(EVENTS, i + INSERT_ROWS)));
  }
  const run = await withDir(async (dir) => {
    const sink = sinkFor(table, dir);
    await sink.ensureTable();
    const result = await timed(async () => {
      for (const batch of batches) await sink.deliver(batch);
    });
    await sink.close();
    return result;
  });
  if ((await rowCount(table)) !== EVENTS) throw new Error('sink lost rows');
  await dropTable(table);
  return run;
}

/**
 * Appends every event to a spool and syncs it, then drains it into the table (or, with `drop`,
 * into a sink that drops the records); the drain's run and the inserts it made. With the
 * gateway's batches the clock stops once the last full batch is stored: the records after it
 * (one, as the sequences start at 1) wait out the batches' linger by design, which is latency
 * (the lag table), not throughput. They are still delivered and counted before the run ends.
 */
async function spoolDrain(
  batches: 'small' | 'bulk',
  drop = false,
  encodeThread = true,
): Promise<{ run: Run; inserts: number }> {
  const table = await freshTable();
  const result = await withDir(async (dir) => {
    const spool = await Spool.open({ dir: join(dir, 'spool'), maxBytes: 8 * 1024 ** 3 });
    let first = 0;
    let last = 0;
    for (const line of LINES) {
      last = spool.append(line);
      first ||= last;
    }
    await spool.flush();
    let dropped = 0;
    const sink: ClickHouseSink | BatchSink = drop
      ? {
          name: 'drop',
          deliver: async (records) => {
            dropped += records.length;
          },
          close: async () => {},
        }
      : sinkFor(table, dir, encodeThread);
    if (sink instanceof ClickHouseSink) await sink.ensureTable();
    const options = batches === 'bulk' ? CLICKHOUSE_BATCHES : {};
    const lastFull =
      batches === 'bulk' ? last - ((last + 1) % CLICKHOUSE_BATCHES.maxRecords) : last;
    const timedRows = lastFull - first + 1;
    const runner = new SinkRunner(spool, sink, options);
    const run = await timed(async () => {
      await runner.start();
      while (runner.stats.delivered < timedRows) await sleep(1);
    }, timedRows);
    while (runner.stats.delivered < EVENTS) await sleep(5);
    const inserts = sink instanceof ClickHouseSink ? sink.stats.inserts : 0;
    await runner.stop();
    await spool.close();
    if (drop && dropped !== EVENTS) throw new Error('spool drain lost records');
    return { run, inserts };
  });
  if (!drop && (await rowCount(table)) !== EVENTS) throw new Error('spool drain lost rows');
  await dropTable(table);
  return result;
}

/** µs per row Node spends encoding LINES: the transcoder, then (making garbage) the JSON.parse path. */
function encodingCost(): { parsePath: number; transcoder: number } {
  const columns = columnsOf('legacy18');
  const payloads = LINES.map((line) => Buffer.from(line));
  const transcoder = new EventTsvTranscoder(columns);
  const out = Buffer.allocUnsafe(4 * 1024 * 1024);
  let started = performance.now();
  let at = 0;
  for (const payload of payloads) {
    if (out.length - at < transcoder.maxLineBytes(payload.length)) at = 0;
    at = transcoder.transcode(payload, out, at);
    if (at < 0) throw new Error('the transcoder declined a sample event');
  }
  const transcoded = ((performance.now() - started) * 1000) / EVENTS;
  started = performance.now();
  for (const payload of payloads) {
    Buffer.byteLength(encodeEventTsv(JSON.parse(payload.toString('utf8')), columns));
  }
  return { parsePath: ((performance.now() - started) * 1000) / EVENTS, transcoder: transcoded };
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
    const runner = new SinkRunner(spool, sink, CLICKHOUSE_BATCHES);
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
    const tsvBytes = bodies.reduce((n, b) => n + b.length, 0) / EVENTS;
    console.log(
      `ClickHouse ${server.version} on 127.0.0.1:${server.httpPort}; ${EVENTS} statement events ` +
        `(${AVG_BYTES.toFixed(0)} B JSON, ${tsvBytes.toFixed(0)} B TSV each), inserts of ` +
        `${INSERT_ROWS} rows, ${RUNS} run(s), medians\n`,
    );
    const row = (label: string, runs: readonly Run[], inserts = ''): string[] => [
      label,
      median(runs.map((r) => r.rate)).toFixed(0),
      `${((median(runs.map((r) => r.rate)) / GOAL_ROWS) * 100).toFixed(0)}%`,
      median(runs.map((r) => r.nodeUs)).toFixed(1),
      median(runs.map((r) => r.mainUs)).toFixed(1),
      median(runs.map((r) => r.serverUs)).toFixed(1),
      median(runs.map((r) => r.cores)).toFixed(2),
      inserts,
    ];
    const repeat = async (run: () => Promise<Run>): Promise<Run[]> => {
      const runs: Run[] = [];
      for (let r = 0; r < RUNS; r++) runs.push(await run());
      return runs;
    };
    const rows: string[][] = [];
    rows.push(row('raw client, pre-built TSV (baseline)', await repeat(() => rawTsv(bodies))));
    rows.push(row('ClickHouseSink.deliver (50k records/call)', await repeat(sinkDeliver)));
    const drains = [
      [
        'bulk',
        true,
        "spool → SinkRunner → sink, the gateway's batches (≤ 50,000 rec, 8 MiB reads)",
      ],
      ['bulk', false, 'the same, transcoding on the event loop (encodeThread: false)'],
      // After the others: its 148 small parts keep the server merging well after the run ends.
      ['small', true, 'spool → SinkRunner → sink, default batches (≤ 4,096 rec, 1 MiB reads)'],
    ] as const;
    for (const [batches, encodeThread, label] of drains) {
      if (batches === 'small') {
        const dropped = await repeat(async () => (await spoolDrain('bulk', true)).run);
        rows.push(
          row("spool → SinkRunner → a sink that drops them, the gateway's batches", dropped),
        );
      }
      const runs: Run[] = [];
      const inserts: number[] = [];
      for (let r = 0; r < RUNS; r++) {
        const result = await spoolDrain(batches, false, encodeThread);
        runs.push(result.run);
        inserts.push(result.inserts);
      }
      rows.push(row(label, runs, String(median(inserts))));
    }
    {
      // Last: its hundreds of MB of row objects leave a heap that slows whatever runs after it.
      const json = jsonRows();
      rows.push(
        row('raw client, pre-built JSONEachRow objects', await repeat(() => rawJson(json))),
      );
    }
    console.log(
      formatBenchTable(
        [
          'path',
          'rows/s',
          'of goal',
          'node µs/row',
          'of it main thread',
          'server µs/row',
          'cores busy',
          'inserts',
        ],
        rows,
      ),
    );

    const costs: { parsePath: number; transcoder: number }[] = [];
    for (let r = 0; r < RUNS; r++) costs.push(encodingCost());
    console.log(
      `\nencoding in Node, µs per row (${EVENTS} events, no server), medians of ${RUNS} run(s)\n`,
    );
    console.log(
      formatBenchTable(
        ['encoder', 'µs/row'],
        [
          [
            'JSON.parse + row mapping + TSV cells',
            median(costs.map((c) => c.parsePath)).toFixed(2),
          ],
          ['EventTsvTranscoder', median(costs.map((c) => c.transcoder)).toFixed(2)],
        ],
      ),
    );

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
