// Inline masking against the worker pool, per chunk, to choose the size above which the gateway
// masks a chunk in a worker rather than on the event loop.
//
//   npm run bench:masking-pool -- [--seconds 1] [--runs 1]
//
// Runs against the build (`tsc -b` first; no `@portcullis/source` condition), as production
// does: workers started from TypeScript load it through tsx's CommonJS hook, which runs the
// content detectors about twice as slowly as the compiled ESM, and would skew the comparison.
//
// Chunks of whole customer DataRows (8 columns, ~130 B a row) of 4, 16, 64 and 256 KiB, under
// two plans: column rules (hash on the email, partial on the card: the cheap, common case) and
// every content detector on every text column (the expensive case). Per chunk size:
//   inline       rewriteDataRows on the event loop (the event loop is blocked this long);
//   pool 1t      MaskingPool round trip with 1 thread, the chunk transferred (a socket read
//                that owns its ArrayBuffer), one job at a time: the latency a session sees;
//   1t copy      the same, but the chunk is a view into a larger reused read buffer, so the pool
//                copies it first;
//   pool 2t      2 threads, 8 jobs in flight: time per chunk at full throughput;
//   loop/chunk   event-loop busy time per chunk in the 1-thread run (what the pool still costs
//                the main thread: posting, transfer, the promise).
// Figures are medians of per-iteration times, in microseconds (with --runs N, the median of the
// N runs' medians). The recommended threshold is the smallest size at which, under the rules
// plan (the common case), the pool costs the event loop at most half of what inline masking
// does and a session at most 1.5x the latency. It sets DEFAULT_WORKER_THRESHOLD_BYTES in
// packages/gateway/src/masking/masking-pool.ts.
import { performance } from 'node:perf_hooks';
import { compileRowPlan, rewriteDataRows, type RowPlanSpec } from '@portcullis/masking';
import { MaskingPool, type MaskChunkJob } from '../packages/gateway/dist/masking/masking-pool.js';
import { formatBenchTable, median } from './support/bench-table.js';
import { CUSTOMER_COLUMNS, customerChunk } from './support/customer-rows.js';

function numberArg(name: string, fallback: number): number {
  const at = process.argv.indexOf(name);
  return at > 0 ? Number(process.argv[at + 1]) : fallback;
}
const SECONDS = numberArg('--seconds', 1);
const RUNS = numberArg('--runs', 1);
const SIZES = [4, 16, 64, 256].map((k) => k * 1024);
const IN_FLIGHT = 8;
const KEY = Buffer.from('bench-only key, 32 bytes long!!!');

const none = null;
const SPECS: Record<string, RowPlanSpec> = {
  rules: {
    actions: [none, none, { kind: 'hash' }, none, { kind: 'partial' }, none, none, none],
    columns: CUSTOMER_COLUMNS,
    hashKey: KEY,
  },
  detect: {
    actions: CUSTOMER_COLUMNS.map(() => ({ kind: 'detect' as const })),
    columns: CUSTOMER_COLUMNS,
    hashKey: KEY,
  },
};

/** Runs `fn` for about `SECONDS` after a short warm-up; per-call times in µs. */
async function sample(fn: () => unknown): Promise<number[]> {
  const warmUntil = performance.now() + Math.min(300, SECONDS * 300);
  while (performance.now() < warmUntil) await fn();
  const times: number[] = [];
  const until = performance.now() + SECONDS * 1000;
  while (performance.now() < until || times.length < 5) {
    const t = performance.now();
    await fn();
    times.push((performance.now() - t) * 1000);
  }
  return times;
}

function job(planId: string, spec: RowPlanSpec, chunk: Buffer, length: number): MaskChunkJob {
  return { kind: 'rows', planId, spec, chunk, start: 0, end: length };
}

interface Row {
  plan: string;
  size: number;
  rows: number;
  inline: number;
  pool1: number;
  pool1Copy: number;
  pool2: number;
  loopPerChunk: number;
}

const pool1 = new MaskingPool({ threads: 1, taskTimeoutMs: 10_000 });
const pool2 = new MaskingPool({ threads: 2, taskTimeoutMs: 10_000 });
let sink = 0;

async function measure(name: string, spec: RowPlanSpec, size: number): Promise<Row> {
  const plan = compileRowPlan(spec);
  const { chunk, rows } = customerChunk(size);
  const length = chunk.length;
  const reference = rewriteDataRows(chunk, 0, length, plan);
  if (reference.consumed !== length || reference.rewrittenFrames !== rows) {
    throw new Error(`${name}/${size}: inline masking did not mask every row`);
  }
  const inline = median(
    await sample(() => {
      sink += rewriteDataRows(chunk, 0, length, plan).output!.length;
    }),
  );

  // One job at a time; the chunk comes back with the result and goes out again.
  let current: Buffer = Buffer.from(chunk);
  const planId = `${name}-${size}`;
  const check = await pool1.run(job(planId, spec, Buffer.from(chunk), length));
  if (!check.output!.equals(reference.output!)) throw new Error('pool output differs');
  const elu0 = performance.eventLoopUtilization();
  let jobs = 0;
  const pool1Time = median(
    await sample(async () => {
      current = (await pool1.run(job(planId, spec, current, length))).chunk;
      jobs++;
    }),
  );
  const elu = performance.eventLoopUtilization(elu0);

  // From a reused read buffer: the pool copies the view before transferring the copy.
  const readBuffer = Buffer.alloc(length * 2);
  chunk.copy(readBuffer);
  const view = readBuffer.subarray(0, length);
  const pool1Copy = median(
    await sample(async () => {
      sink += (await pool1.run(job(planId, spec, view, length))).output!.length;
    }),
  );

  // Full throughput with 2 threads: batches of IN_FLIGHT jobs.
  let batch: Buffer[] = Array.from({ length: IN_FLIGHT }, () => Buffer.from(chunk));
  const perBatch = await sample(async () => {
    const done = await Promise.all(batch.map((c) => pool2.run(job(planId, spec, c, length))));
    batch = done.map((r) => r.chunk);
  });
  return {
    plan: name,
    size,
    rows,
    inline,
    pool1: pool1Time,
    pool1Copy,
    pool2: median(perBatch) / IN_FLIGHT,
    // The busy time covers the warm-up batches too, and so does `jobs`.
    loopPerChunk: (elu.active * 1000) / jobs,
  };
}

const runs: Row[][] = [];
for (let run = 0; run < RUNS; run++) {
  const rows: Row[] = [];
  for (const [name, spec] of Object.entries(SPECS)) {
    for (const size of SIZES) rows.push(await measure(name, spec, size));
  }
  runs.push(rows);
}
const pick = (i: number, key: keyof Row): number => median(runs.map((r) => r[i]![key] as number));
const results: Row[] = runs[0]!.map((first, i) => ({
  ...first,
  inline: pick(i, 'inline'),
  pool1: pick(i, 'pool1'),
  pool1Copy: pick(i, 'pool1Copy'),
  pool2: pick(i, 'pool2'),
  loopPerChunk: pick(i, 'loopPerChunk'),
}));
await pool1.close();
await pool2.close();

const us = (n: number): string => n.toFixed(0);
console.log(
  `node ${process.version}, ${process.arch}; medians in µs per chunk; ` +
    `${SECONDS}s per case, ${RUNS} run(s); pool 2t with ${IN_FLIGHT} jobs in flight`,
);
console.log(
  formatBenchTable(
    [
      'plan',
      'chunk KiB',
      'rows',
      'inline µs',
      'pool 1t µs',
      '1t copy µs',
      'pool 2t µs',
      'loop/chunk µs',
      '1t vs inline',
    ],
    results.map((r) => [
      r.plan,
      String(r.size / 1024),
      String(r.rows),
      us(r.inline),
      us(r.pool1),
      us(r.pool1Copy),
      us(r.pool2),
      us(r.loopPerChunk),
      `${(r.pool1 / r.inline).toFixed(2)}x`,
    ]),
  ),
);

function threshold(plan: string): number | null {
  const worth = (r: Row): boolean => r.loopPerChunk <= r.inline / 2 && r.pool1 <= r.inline * 1.5;
  return results.find((r) => r.plan === plan && worth(r))?.size ?? null;
}
const rules = threshold('rules');
const detect = threshold('detect');
const kib = (n: number | null): string => (n === null ? 'above 256 KiB' : `${n / 1024} KiB`);
console.log(
  `\nrecommended worker threshold: ${kib(rules)} (rules plan; every detector on: ` +
    `${kib(detect)})`,
);
if (sink === 0) console.log('(unreachable)');
