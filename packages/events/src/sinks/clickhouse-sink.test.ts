// Unit tests of ClickHouseSink's pure parts (insert planning, splitting, error classification,
// the legacy18 DDL) and of its split / dead-letter / failure paths against a small HTTP server
// that answers like ClickHouse 18.16 does. The real server is exercised in
// test/clickhouse-sink.test.ts; this stand-in covers what a real 18.16 cannot be made to do on
// cue: refuse rows by a marker, answer 503 without a ClickHouse code, or never answer.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { SessionEvent } from '@portcullis/core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { SpoolRecord } from '../spool/spool-reader.js';
import { EVENT_ROW_COLUMNS } from '../store/event-row.js';
import {
  ClickHouseSink,
  ClickHouseSinkError,
  classifyClickHouseFailure,
  columnsOf,
  legacy18TableDdl,
  planInserts,
  splitAt,
} from './clickhouse-sink.js';
import type { DeadLetterEntry } from './dead-letter-file.js';
import { sinkTestEvent } from './sink-test-event.fixture.js';
import { encodeEventTsv } from './event-tsv.js';

function records(events: readonly (SessionEvent | string)[], first = 1): SpoolRecord[] {
  return events.map((e, i) => ({
    sequence: first + i,
    payload: Buffer.from(typeof e === 'string' ? e : JSON.stringify(e)),
  }));
}

describe('planInserts', () => {
  const rows = (from: number, to: number) =>
    Array.from({ length: to - from + 1 }, (_, i) => ({ sequence: from + i, bytes: 2 }));
  const sequences = (chunks: { sequence: number }[][]) =>
    chunks.map((c) => c.map((r) => r.sequence));

  it('cuts where floor(sequence / maxRows) changes, so inserts line up across deliveries', () => {
    expect(sequences(planInserts(rows(1, 10), 4, 1e9))).toEqual([
      [1, 2, 3],
      [4, 5, 6, 7],
      [8, 9, 10],
    ]);
    // The same records delivered again starting elsewhere: every full insert is the same.
    expect(sequences(planInserts(rows(3, 12), 4, 1e9))).toEqual([
      [3],
      [4, 5, 6, 7],
      [8, 9, 10, 11],
      [12],
    ]);
  });

  it('also cuts at maxBytes, and at a gap in sequence numbers that crosses a boundary', () => {
    expect(sequences(planInserts(rows(0, 5), 100, 6))).toEqual([
      [0, 1, 2],
      [3, 4, 5],
    ]);
    const gapped = [...rows(1, 2), ...rows(9, 10)];
    expect(sequences(planInserts(gapped, 4, 1e9))).toEqual([
      [1, 2],
      [9, 10],
    ]);
    expect(planInserts([], 4, 1e9)).toEqual([]);
  });
});

describe('splitAt', () => {
  const list = [0, 1, 2, 3, 4, 5, 6, 7];
  it('isolates the row the server named', () => {
    expect(splitAt(list, 'Cannot parse input: (at row 4)')).toEqual([[0, 1, 2], [3], [4, 5, 6, 7]]);
    expect(splitAt(list, '... (at row 1)\n')).toEqual([[0], [1, 2, 3, 4, 5, 6, 7]]);
    expect(splitAt(list, '(at row 8)')).toEqual([[0, 1, 2, 3, 4, 5, 6], [7]]);
  });
  it('halves when the server names no row or one outside the insert', () => {
    expect(splitAt(list, 'Code: 27, no row')).toEqual([
      [0, 1, 2, 3],
      [4, 5, 6, 7],
    ]);
    expect(splitAt(list, '(at row 99)')).toEqual([
      [0, 1, 2, 3],
      [4, 5, 6, 7],
    ]);
  });
});

describe('classifyClickHouseFailure', () => {
  const body18 = (code: number, text: string) =>
    `Code: ${code}, e.displayText() = DB::Exception: ${text}, e.what() = DB::Exception\n`;

  it('reads the ClickHouse code of an 18.16 error body, whatever the HTTP status', () => {
    expect(
      classifyClickHouseFailure({ httpStatus: 500, body: body18(27, 'Cannot parse input') }),
    ).toMatchObject({ kind: 'rejected', retriable: false, clickhouseCode: 27, httpStatus: 500 });
    expect(
      classifyClickHouseFailure({
        httpStatus: 500,
        body: body18(60, "Table default.x doesn't exist"),
      }),
    ).toMatchObject({ kind: 'config', retriable: false, clickhouseCode: 60 });
    expect(
      classifyClickHouseFailure({ httpStatus: 500, body: body18(252, 'Too many parts') }),
    ).toMatchObject({ kind: 'server', retriable: true });
    expect(
      classifyClickHouseFailure({ httpStatus: 500, body: body18(159, 'Timeout exceeded') }),
    ).toMatchObject({ kind: 'timeout', retriable: true });
  });

  it('reads the newer error format too', () => {
    const modern =
      "Code: 27. DB::Exception: Cannot parse input: expected '\\t' before: ... (CANNOT_PARSE_INPUT_ASSERTION_FAILED) (version 24.3.1.1)";
    expect(classifyClickHouseFailure({ httpStatus: 400, body: modern })).toMatchObject({
      kind: 'rejected',
      clickhouseCode: 27,
    });
  });

  it('uses the HTTP status when the body has no ClickHouse code (a proxy answered)', () => {
    expect(
      classifyClickHouseFailure({ httpStatus: 503, body: '<html>Service Unavailable</html>' }),
    ).toMatchObject({ kind: 'server', retriable: true, clickhouseCode: null });
    expect(classifyClickHouseFailure({ httpStatus: 504, body: '' })).toMatchObject({
      kind: 'timeout',
      retriable: true,
    });
    expect(classifyClickHouseFailure({ httpStatus: 401, body: 'Unauthorized' })).toMatchObject({
      kind: 'config',
      retriable: false,
    });
  });

  it('classifies errors thrown without a response', () => {
    const errno = (code: string, message: string) => Object.assign(new Error(message), { code });
    expect(
      classifyClickHouseFailure({
        error: errno('ECONNREFUSED', 'connect ECONNREFUSED 127.0.0.1:1'),
      }),
    ).toMatchObject({ kind: 'network', retriable: true });
    expect(
      classifyClickHouseFailure({ error: errno('ECONNRESET', 'read ECONNRESET') }),
    ).toMatchObject({
      kind: 'network',
    });
    expect(classifyClickHouseFailure({ error: new Error('socket hang up') })).toMatchObject({
      kind: 'network',
    });
    expect(classifyClickHouseFailure({ error: new Error('Timeout error.') })).toMatchObject({
      kind: 'timeout',
      retriable: true,
    });
    expect(classifyClickHouseFailure({ error: new Error('something odd') })).toMatchObject({
      kind: 'server',
      retriable: true,
    });
  });
});

describe('legacy18TableDdl', () => {
  it("has a column for each of the store's row fields, plus time_micros after time", () => {
    const ddl = legacy18TableDdl('db.events_v1');
    const columns = [...ddl.matchAll(/^ {4}(\w+) /gm)].map((m) => m[1]);
    const expected = [...EVENT_ROW_COLUMNS];
    expected.splice(expected.indexOf('time') + 1, 0, 'time_micros' as never);
    expect(columns).toEqual(expected);
    expect(ddl).toMatch(/^CREATE TABLE IF NOT EXISTS `db`\.`events_v1`/);
    expect(ddl).toContain("time DateTime('UTC')");
    expect(ddl).toContain('time_micros UInt32');
    expect(ddl).toContain('ENGINE = ReplacingMergeTree');
    expect(ddl).toContain('ORDER BY (person_subject, resource, time, id)');
    expect(ddl).not.toMatch(/LowCardinality|DateTime64|TTL/);
  });

  it('refuses a table name that is not a plain identifier', () => {
    expect(() => legacy18TableDdl('events; DROP TABLE x')).toThrow(RangeError);
    expect(() => legacy18TableDdl('a.b.c')).toThrow(RangeError);
  });
});

/** Answers like ClickHouse 18.16: DDL succeeds; an insert with a `POISON` line fails with code 27. */
interface StandIn {
  url: string;
  /** `early`: refuses a POISON insert as soon as it sees the line, before the body has ended. */
  mode: 'ok' | 'unavailable' | 'hang' | 'no-row-hint' | 'early';
  inserts: string[][];
  /** The bodies of accepted inserts, as sent. */
  bodies: Buffer[];
  requests: number;
}

let standIn: StandIn;
let server: Server;
const hanging: ServerResponse[] = [];

async function body(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

const refusal = (hint: string) =>
  `Code: 27, e.displayText() = DB::Exception: Cannot parse input: expected \\t before: POISON${hint}\n, e.what() = DB::Exception\n`;

/** Answers as soon as a POISON line arrives, then reads the rest of the body. */
function refuseEarly(req: IncomingMessage, res: ServerResponse): void {
  let seen = '';
  let answered = false;
  req.on('data', (chunk: Buffer) => {
    if (answered) return;
    seen += chunk.toString('latin1');
    const lines = seen.split('\n');
    const bad = lines.findIndex((line) => line.includes('POISON'));
    if (bad >= 0 && bad < lines.length - 1) {
      answered = true;
      res.writeHead(500);
      res.end(refusal(` (at row ${bad + 1})`));
    }
  });
  req.on('end', () => {
    if (answered) return;
    standIn.inserts.push(seen.split('\n').filter((line) => line !== ''));
    res.end('');
  });
}

beforeAll(async () => {
  standIn = { url: '', mode: 'ok', inserts: [], bodies: [], requests: 0 };
  server = createServer((req, res) => {
    void (async () => {
      const query = new URL(req.url ?? '/', 'http://x').searchParams.get('query') ?? '';
      if (standIn.mode === 'early' && query.startsWith('INSERT')) {
        standIn.requests++;
        refuseEarly(req, res);
        return;
      }
      const raw = await body(req);
      const text = raw.toString('utf8');
      standIn.requests++;
      if (standIn.mode === 'hang') {
        hanging.push(res);
        return;
      }
      if (standIn.mode === 'unavailable') {
        res.writeHead(503, { 'content-type': 'text/html' });
        res.end('<html><body>503 Service Unavailable</body></html>');
        return;
      }
      if (!query.startsWith('INSERT')) {
        res.end('');
        return;
      }
      const lines = text.split('\n').filter((line) => line !== '');
      const bad = lines.findIndex((line) => line.includes('POISON'));
      if (bad >= 0) {
        const hint = standIn.mode === 'no-row-hint' ? '' : ` (at row ${bad + 1})`;
        res.writeHead(500);
        res.end(refusal(hint));
        return;
      }
      standIn.inserts.push(lines);
      standIn.bodies.push(raw);
      res.end('');
    })();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  standIn.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  for (const res of hanging) res.destroy();
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

const dirs: string[] = [];
afterEach(async () => {
  standIn.mode = 'ok';
  standIn.inserts = [];
  standIn.bodies = [];
  standIn.requests = 0;
  for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
});

/** Whether the sinks of the tests running now transcode on their thread or on the event loop. */
let encodeThread = true;

async function makeSink(options: { maxInsertRows?: number; requestTimeoutMs?: number } = {}) {
  const deadLetterDir = await mkdtemp(join(tmpdir(), 'portcullis-ch-sink-'));
  dirs.push(deadLetterDir);
  return new ClickHouseSink({
    url: standIn.url,
    table: 'events_legacy',
    schema: 'legacy18',
    deadLetterDir,
    encodeThread,
    ...options,
  });
}

async function deadLetters(sink: ClickHouseSink): Promise<DeadLetterEntry[]> {
  const text = await readFile(sink.deadLetters.path, 'utf8').catch(() => '');
  return text
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => JSON.parse(line) as DeadLetterEntry);
}

describe.each([
  ['on its encoding thread', true],
  ['on the event loop', false],
])('ClickHouseSink against a stand-in server, transcoding %s', (_how, thread) => {
  beforeAll(() => {
    encodeThread = thread;
  });

  it('splits an insert the server refuses until the bad rows are alone, dead-letters them, inserts the rest', async () => {
    const sink = await makeSink();
    const events = Array.from({ length: 100 }, (_, i) =>
      i === 17 || i === 63 ? sinkTestEvent(i, { resource: `POISON-${i}` }) : sinkTestEvent(i),
    );
    await sink.deliver(records(events));
    const inserted = standIn.inserts.flat();
    expect(inserted).toHaveLength(98);
    expect(new Set(inserted).size).toBe(98);
    expect(inserted.some((line) => line.includes('POISON'))).toBe(false);
    const dead = await deadLetters(sink);
    expect(dead.map((d) => d.sequence)).toEqual([18, 64]);
    expect(dead[0]).toMatchObject({
      sink: 'clickhouse',
      target: 'events_legacy',
      error: { reason: 'rejected', code: 27 },
    });
    expect((JSON.parse(dead[0]!.payload) as SessionEvent).resource).toBe('POISON-17');
    expect(sink.stats).toMatchObject({ inserted: 98, deadLettered: 2, retried: 0 });
    // With the row hint, each bad row costs its own refusal, a confirming retry and a few inserts.
    expect(sink.stats.rejectedInserts).toBeLessThanOrEqual(8);
    await sink.close();
  });

  it('bisects when the server names no row', async () => {
    standIn.mode = 'no-row-hint';
    const sink = await makeSink();
    const events = Array.from({ length: 64 }, (_, i) =>
      i === 40 ? sinkTestEvent(i, { resource: 'POISON' }) : sinkTestEvent(i),
    );
    await sink.deliver(records(events));
    expect(standIn.inserts.flat()).toHaveLength(63);
    expect((await deadLetters(sink)).map((d) => d.sequence)).toEqual([41]);
    // log2(64) = 6 levels of halves, plus the confirming retry of the single row.
    expect(sink.stats.rejectedInserts).toBe(8);
    await sink.close();
  });

  it('streams, insert by insert, the bytes the JSON.parse path encodes, the same on re-delivery', async () => {
    const sink = await makeSink({ maxInsertRows: 1_000 });
    // Several of the encoding thread's jobs (4,096 records each).
    const payloads: (SessionEvent | string)[] = Array.from({ length: 10_000 }, (_, i) =>
      sinkTestEvent(i, {
        resource: `r\t${i}\\\n'😀\ud800`,
        person: { subject: 'u-1', email: 'a@example.com', groups: [`g'${i}`, 'x\ty'] },
      }),
    );
    // Records the transcoder leaves to JSON.parse (a number for a string), or nobody can read.
    payloads[10] = JSON.stringify(sinkTestEvent(10)).replace(
      '"resource":"payments"',
      '"resource":5',
    );
    payloads[1_500] = 'not json';
    payloads[9_000] = '{"schema":1}';
    const batch = records(payloads, 7);
    await sink.deliver(batch);
    const columns = columnsOf('legacy18');
    const lines = batch
      .filter((r, i) => i !== 1_500 && i !== 9_000)
      .map((r) => {
        const line = Buffer.from(encodeEventTsv(JSON.parse(r.payload.toString()), columns));
        return { sequence: r.sequence, bytes: line.length, line };
      });
    const expected = planInserts(lines, 1_000, 64 * 1024 * 1024).map((rows) =>
      Buffer.concat(rows.map((r) => r.line)),
    );
    // Compared as Buffers: a deep equality of megabytes would take seconds.
    const same = (a: Buffer[], b: Buffer[]) =>
      a.length === b.length && a.every((x, i) => x.equals(b[i]!));
    expect(standIn.bodies.map((b) => b.length)).toEqual(expected.map((b) => b.length));
    expect(same(standIn.bodies, expected)).toBe(true);
    standIn.bodies = [];
    await sink.deliver(batch);
    expect(same(standIn.bodies, expected)).toBe(true);
    expect((await deadLetters(sink)).map((d) => d.sequence)).toEqual([1_507, 9_007, 1_507, 9_007]);
    await sink.close();
  });

  it('splits an insert the server refuses before its body has ended', async () => {
    standIn.mode = 'early';
    const sink = await makeSink();
    const events = Array.from({ length: 4_000 }, (_, i) =>
      i === 5 || i === 3_500 ? sinkTestEvent(i, { resource: `POISON-${i}` }) : sinkTestEvent(i),
    );
    await sink.deliver(records(events));
    const inserted = standIn.inserts.flat();
    expect(inserted).toHaveLength(3_998);
    expect(new Set(inserted).size).toBe(3_998);
    expect((await deadLetters(sink)).map((d) => d.sequence)).toEqual([6, 3_501]);
    expect(sink.stats).toMatchObject({ inserted: 3_998, deadLettered: 2, retried: 0 });
    await sink.close();
  });

  it('dead-letters payloads that are not events without asking the server', async () => {
    const sink = await makeSink();
    await sink.deliver(records(['not json', '{"schema":1}', JSON.stringify(sinkTestEvent(3))]));
    expect(standIn.inserts.flat()).toHaveLength(1);
    const dead = await deadLetters(sink);
    expect(dead.map((d) => [d.sequence, d.error.reason, d.payload])).toEqual([
      [1, 'undecodable', 'not json'],
      [2, 'undecodable', '{"schema":1}'],
    ]);
    await sink.close();
  });

  it('splits a large delivery into inserts of at most maxInsertRows rows', async () => {
    const sink = await makeSink({ maxInsertRows: 250 });
    await sink.deliver(records(Array.from({ length: 1_000 }, (_, i) => sinkTestEvent(i))));
    expect(standIn.inserts.map((lines) => lines.length)).toEqual([249, 250, 250, 250, 1]);
    expect(sink.stats.inserts).toBe(5);
    await sink.close();
  });

  it('throws a retriable error on a 503 without a ClickHouse code, and dead-letters nothing', async () => {
    const sink = await makeSink();
    await sink.ensureTable();
    standIn.mode = 'unavailable';
    const error = await sink
      .deliver(records([sinkTestEvent(1), sinkTestEvent(2)]))
      .catch((err: unknown) => err);
    expect(error).toBeInstanceOf(ClickHouseSinkError);
    expect((error as ClickHouseSinkError).retriable).toBe(true);
    expect((error as ClickHouseSinkError).failure).toMatchObject({
      kind: 'server',
      httpStatus: 503,
      clickhouseCode: null,
    });
    expect(sink.stats).toMatchObject({ retried: 1, deadLettered: 0, inserted: 0 });
    expect(sink.stats.failures.server).toBe(1);
    expect(await deadLetters(sink)).toEqual([]);
    await sink.close();
  });

  it('throws a retriable timeout when the server does not answer in time', async () => {
    const sink = await makeSink({ requestTimeoutMs: 200 });
    await sink.ensureTable();
    standIn.mode = 'hang';
    const error = await sink.deliver(records([sinkTestEvent(1)])).catch((err: unknown) => err);
    expect((error as ClickHouseSinkError).failure.kind).toBe('timeout');
    expect((error as ClickHouseSinkError).retriable).toBe(true);
    await sink.close();
  });

  it('throws a retriable network error when nothing listens', async () => {
    const deadLetterDir = await mkdtemp(join(tmpdir(), 'portcullis-ch-sink-'));
    dirs.push(deadLetterDir);
    const probe = createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const port = (probe.address() as AddressInfo).port;
    await new Promise((resolve) => probe.close(resolve));
    const sink = new ClickHouseSink({
      url: `http://127.0.0.1:${port}`,
      table: 't',
      schema: 'legacy18',
      deadLetterDir,
    });
    const error = await sink.deliver(records([sinkTestEvent(1)])).catch((err: unknown) => err);
    expect((error as ClickHouseSinkError).failure.kind).toBe('network');
    expect(sink.stats.retried).toBe(1);
    await sink.close();
  });

  it('refuses options it cannot honour', () => {
    const base = { url: standIn.url, deadLetterDir: tmpdir() } as const;
    expect(
      () => new ClickHouseSink({ ...base, table: 'x', schema: 'legacy18', maxInsertRows: 0 }),
    ).toThrow(RangeError);
    expect(
      () =>
        new ClickHouseSink({ ...base, table: 'x', schema: 'legacy18', maxInsertRows: 2_000_000 }),
    ).toThrow(RangeError);
    expect(() => new ClickHouseSink({ ...base, table: 'x y', schema: 'legacy18' })).toThrow(
      RangeError,
    );
  });

  it("the modern flavour only creates the store's own events table", async () => {
    const deadLetterDir = await mkdtemp(join(tmpdir(), 'portcullis-ch-sink-'));
    dirs.push(deadLetterDir);
    const sink = new ClickHouseSink({
      url: standIn.url,
      table: 'my_events',
      schema: 'modern',
      deadLetterDir,
    });
    const error = await sink.ensureTable().catch((err: unknown) => err);
    expect((error as ClickHouseSinkError).failure).toMatchObject({
      kind: 'config',
      retriable: false,
    });
    expect(standIn.requests).toBe(0);
    await sink.close();
  });
});
