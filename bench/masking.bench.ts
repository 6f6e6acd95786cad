// Throughput of byte-level masking over a DataRow stream of realistic customer rows.
//
//   node --conditions=@portcullis/source --import tsx bench/masking.bench.ts
//
// A 16 MiB stream of DataRows (id, name, email, phone, card, ssn, city, amount), cut at frame
// boundaries into ~64 KiB chunks as the gateway hands them to rewriteDataRows, inline or in a
// worker. Cases: (a) column rules only, partial on the card and hash on the email; (a') the same
// with redact instead of hash, to show what the HMAC costs; (a, per frame) the rules through
// rewriteDataRow one frame at a time, as the inline FrameScanner path calls it; (b) every content
// detector on every text column; (c) a plan that masks nothing (the floor); a length-only
// framing loop as the baseline any pass pays; and a plain JS loop that reads every byte once, as
// a calibration of what "per core" means on the machine at hand (a rewriter that looks at each
// byte at all cannot beat it). Figures are medians of per-iteration times.
//
// The column-rule goal (1 GB/s) is marked on (a'): the rule machinery, whatever the style. A
// keyed hash is a cryptographic cost on top, two SHA-256 compressions per value: in a chunk,
// four values at a time on WebAssembly SIMD (about 0.25 µs a value here), one at a time in
// JavaScript frame by frame (about 0.5 µs). With one hashed column in a ~140-byte row, (a)
// cannot pass about 500 MB/s.
import { Bench } from 'tinybench';
import {
  compileRowPlan,
  rewriteDataRow,
  rewriteDataRows,
  type ColumnType,
  type MaskAction,
  type RowPlan,
} from '@portcullis/masking';
import { formatBenchTable } from './support/bench-table.js';
import { dataRow } from './support/customer-rows.js';
import { prng } from './support/prng.js';

const STREAM_BYTES = 16 * 1024 * 1024;
const CHUNK_BYTES = 64 * 1024;
const GOALS: Record<string, number> = { a2: 1000, b: 250 };

const random = prng(0x5eed);
const int = (lo: number, hi: number): number => lo + Math.floor(random() * (hi - lo + 1));
const pick = <T>(items: readonly T[]): T => items[int(0, items.length - 1)]!;
const digits = (n: number): string => Array.from({ length: n }, () => int(0, 9)).join('');

const FIRST = ['Anna', 'Mohammed', 'Li', 'Sofía', 'James', 'Olga', 'Kwame', 'Ingrid', 'Raj', 'Zoë'];
const LAST = ['Smith', 'García', 'Nguyen', 'Müller', "O'Brien", 'Kowalski', 'Okafor', 'Tanaka'];
const CITIES = ['Berlin', 'São Paulo', 'New York', 'Lagos', 'Zürich', 'Kraków', 'Austin', 'Osaka'];
const DOMAINS = ['example.com', 'mail.example.org', 'example.co.uk', 'corp.example.io'];

function luhnComplete(body: string): string {
  for (let check = 0; check <= 9; check++) {
    const n = body + check;
    let sum = 0;
    for (let k = 0; k < n.length; k++) {
      let d = Number(n[n.length - 1 - k]);
      if (k % 2 === 1 && (d *= 2) > 9) d -= 9;
      sum += d;
    }
    if (sum % 10 === 0) return n;
  }
  throw new Error('unreachable');
}

function customer(id: number): string[] {
  const first = pick(FIRST);
  const last = pick(LAST);
  const prefix = pick(['4', '51', '55', '6011']);
  const card = luhnComplete(prefix + digits(15 - prefix.length));
  const area = int(201, 989);
  return [
    String(id),
    `${first} ${last}`,
    `${first}.${last}${int(1, 999)}@${pick(DOMAINS)}`.toLowerCase().replace("'", ''),
    pick([`(${area}) 555-${digits(4)}`, `+1 ${area}-555-${digits(4)}`, `${area}.555.${digits(4)}`]),
    pick([card, card.replace(/(\d{4})(?=\d)/g, '$1-'), card.replace(/(\d{4})(?=\d)/g, '$1 ')]),
    `${String(int(1, 665)).padStart(3, '0')}-${String(int(1, 99)).padStart(2, '0')}-${String(int(1, 9999)).padStart(4, '0')}`,
    pick(CITIES),
    `${int(1, 9999)}.${digits(2)}`,
  ];
}

const COLUMNS: ColumnType[] = [
  { typeOid: 20, format: 0 }, // id int8
  { typeOid: 25, format: 0 }, // name
  { typeOid: 25, format: 0 }, // email
  { typeOid: 25, format: 0 }, // phone
  { typeOid: 25, format: 0 }, // card
  { typeOid: 25, format: 0 }, // ssn
  { typeOid: 1043, format: 0 }, // city varchar
  { typeOid: 1700, format: 0 }, // amount numeric
];

/** The stream, cut at frame boundaries into chunks of about CHUNK_BYTES. */
function buildStream(): {
  stream: Buffer;
  chunks: [number, number][];
  rows: number;
  frames: [number, number][];
} {
  const parts: Buffer[] = [];
  let bytes = 0;
  let rows = 0;
  while (bytes < STREAM_BYTES) {
    const row = dataRow(customer(rows + 1));
    parts.push(row);
    bytes += row.length;
    rows++;
  }
  const stream = Buffer.concat(parts);
  const chunks: [number, number][] = [];
  const frames: [number, number][] = [];
  let start = 0;
  let pos = 0;
  while (pos < stream.length) {
    const end = pos + 1 + stream.readInt32BE(pos + 1);
    frames.push([pos + 5, end]);
    if (end - start > CHUNK_BYTES) {
      chunks.push([start, pos]);
      start = pos;
    }
    pos = end;
  }
  chunks.push([start, pos]);
  return { stream, chunks, rows, frames };
}

const { stream, chunks, rows, frames } = buildStream();
const KEY = Buffer.from('bench-only key, 32 bytes long!!!');

function plan(actions: (MaskAction | null)[]): RowPlan {
  return compileRowPlan({ actions, columns: COLUMNS, hashKey: KEY });
}

const none = null;
const detect: MaskAction = { kind: 'detect' };
const plans = {
  a: plan([none, none, { kind: 'hash' }, none, { kind: 'partial' }, none, none, none]),
  a2: plan([none, none, { kind: 'redact' }, none, { kind: 'partial' }, none, none, none]),
  // Every column gets `detect`; the plan skips the two typed ones (int8, numeric).
  b: plan(COLUMNS.map(() => detect)),
  c: plan(COLUMNS.map(() => none)),
};

let sink = 0;

/** Runs a chunk rewrite over the stream; returns the masked values. */
function chunked(p: RowPlan): number {
  let masked = 0;
  for (const [start, end] of chunks) {
    const r = rewriteDataRows(stream, start, end, p);
    if (r.consumed !== end) throw new Error('chunk not consumed');
    masked += r.maskedValues;
    sink += r.output === null ? 0 : r.output.length;
  }
  return masked;
}

function perFrame(p: RowPlan): number {
  let masked = 0;
  for (const [start, end] of frames) {
    const r = rewriteDataRow(stream, start, end, p);
    if (r !== null) {
      masked += r.maskedValues;
      sink += r.frame.length;
    }
  }
  return masked;
}

function lengthOnly(): number {
  let count = 0;
  let pos = 0;
  while (pos + 5 <= stream.length) {
    pos += 1 + stream.readInt32BE(pos + 1);
    count++;
  }
  return count;
}

/** Reads every byte of the stream once: the calibration row. */
function everyByte(): number {
  let x = 0;
  for (let i = 0; i < stream.length; i++) x = (x + stream[i]!) | 0;
  return x;
}

// Sanity: each case masks what it should before it is timed.
const expectMasked = (what: string, got: number, perRow: number): void => {
  if (got < rows * perRow) throw new Error(`${what}: masked ${got}, expected ≥ ${rows * perRow}`);
};
expectMasked('a', chunked(plans.a), 2);
expectMasked('b', chunked(plans.b), 4);
if (chunked(plans.c) !== 0) throw new Error('no-op plan masked something');

interface Case {
  readonly key: string;
  readonly name: string;
  readonly fn: () => number;
}

const cases: Case[] = [
  { key: 'a', name: '(a) rules: partial card + hash email', fn: () => chunked(plans.a) },
  { key: 'a2', name: "(a') rules: partial card + redact email", fn: () => chunked(plans.a2) },
  { key: 'a1', name: '(a) rules, per frame (rewriteDataRow)', fn: () => perFrame(plans.a) },
  { key: 'b', name: '(b) all detectors, every text column', fn: () => chunked(plans.b) },
  { key: 'c', name: '(c) no-op plan (floor)', fn: () => chunked(plans.c) },
  { key: 'len', name: 'length-only framing loop (baseline)', fn: lengthOnly },
  { key: 'byte', name: 'every byte read once in JS (calibration)', fn: everyByte },
];

const bench = new Bench({ time: 3000, warmupTime: 1000, throws: true });
for (const c of cases) bench.add(c.name, () => void (sink += c.fn()));
await bench.run();

const medians = new Map<string, number>();
for (const task of bench.tasks) {
  const result = task.result;
  if (result.state !== 'completed') throw new Error(`${task.name}: ${result.state}`);
  medians.set(task.name, result.latency.p50);
}
const floor = medians.get(cases.find((c) => c.key === 'c')!.name)!;

console.log(
  `stream: ${(stream.length / 1e6).toFixed(1)} MB, ${rows} DataRows of ${COLUMNS.length} columns ` +
    `(avg ${(stream.length / rows).toFixed(0)} B/row), ${chunks.length} chunks of ~${CHUNK_BYTES / 1024} KiB; ` +
    `node ${process.version}, ${process.arch}`,
);
console.log(
  formatBenchTable(
    ['case', 'median ms', 'MB/s', 'ns/row', 'time vs no-op', 'goal MB/s'],
    cases.map((c) => {
      const ms = medians.get(c.name)!;
      const goal = GOALS[c.key];
      return [
        c.name,
        ms.toFixed(2),
        String(Math.round(stream.length / 1e3 / ms)),
        String(Math.round((ms * 1e6) / rows)),
        `${(ms / floor).toFixed(1)}x`,
        goal === undefined ? '' : String(goal),
      ];
    }),
  ),
);
if (sink === 0) console.log('(unreachable)');
