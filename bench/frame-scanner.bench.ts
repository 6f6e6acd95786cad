// Micro-benchmark of FrameScanner over a DataRow-heavy backend stream.
//
//   node --conditions=@portcullis/source --import tsx bench/frame-scanner.bench.ts
//
// Cases: the scanner in 64 KiB chunks (a typical socket read) and in 1500-byte chunks (one
// Ethernet MTU, the worst realistic case), a length-only loop over the whole buffer (the floor
// any framing pass pays) and, when installed, pg-protocol's Parser (node-postgres), which also
// decodes every field to a string. Figures are medians of per-iteration times.
import { createRequire } from 'node:module';
import { Bench } from 'tinybench';
import { BackendCode, FrameScanner } from '@portcullis/protocol-pg';
import { prng } from './support/prng.js';

const STREAM_BYTES = 16 * 1024 * 1024;
const COLUMNS = 5;

function frame(type: number, body: Buffer): Buffer {
  const out = Buffer.allocUnsafe(5 + body.length);
  out[0] = type;
  out.writeInt32BE(4 + body.length, 1);
  body.copy(out, 5);
  return out;
}

function rowDescription(): Buffer {
  const parts: Buffer[] = [Buffer.from([0, COLUMNS])];
  for (let i = 0; i < COLUMNS; i++) {
    const meta = Buffer.alloc(18);
    meta.writeInt32BE(16384 + i, 0); // table OID
    meta.writeInt16BE(i + 1, 4); // column number
    meta.writeInt32BE(i === 0 ? 20 : 25, 6); // int8, then text
    meta.writeInt16BE(-1, 10);
    meta.writeInt32BE(-1, 12);
    meta.writeInt16BE(0, 16); // text format
    parts.push(Buffer.from(`col${i}\0`), meta);
  }
  return frame(BackendCode.RowDescription, Buffer.concat(parts));
}

/** One DataRow of ~80–120 bytes: an id and four text columns. */
function dataRow(id: number, random: () => number): Buffer {
  const values = [String(id)];
  const target = 80 + Math.floor(random() * 41) - 5 - 2 - 4 * COLUMNS - values[0]!.length;
  let left = target;
  for (let i = 1; i < COLUMNS; i++) {
    const len = i === COLUMNS - 1 ? Math.max(left, 1) : Math.floor(target / (COLUMNS - 1));
    left -= len;
    let s = '';
    while (s.length < len) s += String.fromCharCode(97 + Math.floor(random() * 26));
    values.push(s);
  }
  const body = Buffer.allocUnsafe(2 + values.reduce((n, v) => n + 4 + v.length, 0));
  let pos = body.writeInt16BE(COLUMNS, 0);
  for (const v of values) {
    pos = body.writeInt32BE(v.length, pos);
    pos += body.write(v, pos, 'latin1');
  }
  return frame(BackendCode.DataRow, body);
}

function buildStream(): { stream: Buffer; frames: number; rows: number } {
  const random = prng(0x5eed);
  const parts: Buffer[] = [rowDescription()];
  let bytes = parts[0]!.length;
  let rows = 0;
  while (bytes < STREAM_BYTES - 64) {
    const row = dataRow(rows + 1, random);
    parts.push(row);
    bytes += row.length;
    rows++;
  }
  parts.push(frame(BackendCode.CommandComplete, Buffer.from(`SELECT ${rows}\0`)));
  parts.push(frame(BackendCode.ReadyForQuery, Buffer.from('I')));
  return { stream: Buffer.concat(parts), frames: parts.length, rows };
}

function chunked(buf: Buffer, size: number): Buffer[] {
  const chunks: Buffer[] = [];
  for (let pos = 0; pos < buf.length; pos += size) chunks.push(buf.subarray(pos, pos + size));
  return chunks;
}

const { stream, frames, rows } = buildStream();
const chunks64k = chunked(stream, 64 * 1024);
const chunks1500 = chunked(stream, 1500);

let sink = 0;

function scan(chunks: readonly Buffer[]): number {
  let dataRows = 0;
  const scanner = new FrameScanner(
    {
      onFrame(type) {
        if (type === BackendCode.DataRow) dataRows++;
      },
    },
    { maxFrameBytes: 1 << 30 },
  );
  for (const chunk of chunks) scanner.push(chunk);
  if (dataRows !== rows) throw new Error(`scanner counted ${dataRows} DataRows, expected ${rows}`);
  return dataRows;
}

function lengthOnly(buf: Buffer): number {
  let count = 0;
  let pos = 0;
  const size = buf.length;
  while (pos + 5 <= size) {
    pos += 1 + buf.readInt32BE(pos + 1);
    count++;
  }
  if (count !== frames) throw new Error(`length loop counted ${count} frames, expected ${frames}`);
  return count;
}

interface PgParser {
  parse(buffer: Buffer, callback: (msg: { name: string }) => void): void;
}

/** pg-protocol is a dependency of pg; load its Parser only when it is installed. */
function loadPgParser(): (new () => PgParser) | null {
  try {
    const require = createRequire(import.meta.url);
    const mod = require('pg-protocol/dist/parser.js') as { Parser: new () => PgParser };
    return mod.Parser;
  } catch {
    return null;
  }
}

const PgProtocolParser = loadPgParser();

interface Case {
  readonly name: string;
  readonly fn: () => void;
  readonly beforeEach?: () => void;
}

const cases: Case[] = [
  { name: 'FrameScanner, 64 KiB chunks', fn: () => void (sink += scan(chunks64k)) },
  { name: 'FrameScanner, 1500 B chunks', fn: () => void (sink += scan(chunks1500)) },
  { name: 'length-only loop (baseline)', fn: () => void (sink += lengthOnly(stream)) },
];

if (PgProtocolParser !== null) {
  // The Parser may keep a chunk and later move bytes around inside it, so it gets fresh copies,
  // made before each iteration and outside the measured time.
  let copies: Buffer[] = [];
  cases.push({
    name: 'pg-protocol Parser, 64 KiB chunks',
    beforeEach: () => {
      copies = chunks64k.map((c) => Buffer.from(c));
    },
    fn: () => {
      const parser = new PgProtocolParser();
      let dataRows = 0;
      for (const chunk of copies) {
        parser.parse(chunk, (msg) => {
          if (msg.name === 'dataRow') dataRows++;
        });
      }
      if (dataRows !== rows) throw new Error(`pg-protocol counted ${dataRows} DataRows`);
      sink += dataRows;
    },
  });
}

const bench = new Bench({ time: 2000, warmupTime: 500, throws: true });
for (const c of cases) {
  bench.add(c.name, c.fn, c.beforeEach === undefined ? {} : { beforeEach: c.beforeEach });
}
await bench.run();

const medians = new Map<string, number>();
for (const task of bench.tasks) {
  const result = task.result;
  if (result.state !== 'completed') throw new Error(`${task.name}: ${result.state}`);
  medians.set(task.name, result.latency.p50);
}
const baseline = medians.get('length-only loop (baseline)')!;

console.log(
  `stream: ${(stream.length / 1e6).toFixed(1)} MB, ${frames} frames (${rows} DataRows, ` +
    `avg ${(stream.length / frames).toFixed(0)} B/frame); node ${process.version}, ${process.arch}`,
);
console.table(
  cases.map((c) => {
    const ms = medians.get(c.name)!;
    return {
      case: c.name,
      'median ms': Number(ms.toFixed(2)),
      'MB/s': Math.round(stream.length / 1e3 / ms),
      'Mframes/s': Number((frames / ms / 1e3).toFixed(1)),
      'vs length-only': `${(baseline / ms).toFixed(2)}x`,
    };
  }),
);
if (sink === 0) console.log('(unreachable)');
