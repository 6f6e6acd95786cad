// The `modern` flavour's rows checked on the engine that schema is written for: the TabSeparated
// body ClickHouseSink sends is captured from a stand-in HTTP server, parsed by chDB (ClickHouse
// 26.7) into the store's own `events` table, read back and turned into events again. No modern
// ClickHouse server runs on these machines; chDB's parser is the same code.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { SessionEvent } from '@portcullis/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  EVENT_ROW_SELECT,
  normalizeEvent,
  rowToEvent,
  type StoredEventRow,
} from '../store/event-row.js';
import { eventStoreMigrations } from '../store/schema.js';
import { ClickHouseSink } from './clickhouse-sink.js';

let server: Server;
let url = '';
const captured: { query: string; body: string }[] = [];
let dir = '';

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'portcullis-ch-modern-'));
  server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const query = new URL(req.url ?? '/', 'http://x').searchParams.get('query') ?? '';
      captured.push({ query, body: Buffer.concat(chunks).toString('utf8') });
      res.end('');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await new Promise((resolve) => server.close(resolve));
  await rm(dir, { recursive: true, force: true });
});

const base: SessionEvent = {
  schema: 1,
  id: '3f2a1b4c-5d6e-4f70-8a9b-0c1d2e3f4a5b',
  type: 'statement',
  timeUs: 1_793_000_000_000_007,
  sessionId: 'b7e4a0c2-1111-4222-8333-944455566677',
  seq: 3,
  person: {
    subject: 'u-1',
    email: 'ana@example.com',
    name: 'Ana Ñúñez',
    groups: ['dba', "o'neil"],
  },
  agent: { id: 'agent-report', name: 'report\tbot' },
  authMethod: 'static-token',
  resource: 'payments',
  protocol: 'postgres',
  upstreamUser: 'app',
  client: { address: '10.0.0.1', port: 65_535, application: 'psql', user: 'ana', tls: true },
  statement: {
    text: "SELECT '\\N', E'a\\tb'\nFROM \"t\" -- ✓",
    protocol: 'extended',
    preparedName: 'stmt_1',
    params: 2,
    tag: 'SELECT 1',
    rows: 1,
    bytes: 2 ** 40,
    durationUs: 12,
    error: { code: '22P02', message: 'invalid input syntax for type integer: "x"\r\n' },
    kind: 'select',
    fingerprint: 'abc',
    tables: ['public.t', "we'ird\\name"],
    verdict: 'allow',
    rule: 'default',
    masked: { values: 4, columns: ['email', 'card\tno'] },
  },
};

const events: SessionEvent[] = [
  base,
  {
    ...base,
    id: '3f2a1b4c-5d6e-4f70-8a9b-0c1d2e3f4a5c',
    type: 'session.start',
    timeUs: 1_793_000_000_999_999,
    seq: 0,
    person: { subject: 'u-2', email: 'bo@example.com', groups: [] },
    agent: null,
    statement: undefined,
  } as unknown as SessionEvent,
  {
    ...base,
    id: '3f2a1b4c-5d6e-4f70-8a9b-0c1d2e3f4a5d',
    type: 'approval.requested',
    seq: 4,
    statement: undefined,
    approval: {
      text: 'DELETE FROM t',
      kind: 'delete',
      rule: 'hold-deletes',
      message: 'needs\nreview',
    },
  } as unknown as SessionEvent,
  {
    ...base,
    id: '3f2a1b4c-5d6e-4f70-8a9b-0c1d2e3f4a5e',
    type: 'session.end',
    seq: 5,
    statement: undefined,
    summary: {
      reason: 'client-closed',
      statements: 4,
      rows: 10,
      bytesFromClient: 100,
      bytesToClient: 2000,
      durationUs: 5_000_000,
      error: null,
    },
  } as unknown as SessionEvent,
].map((e) => JSON.parse(JSON.stringify(e)) as SessionEvent);

describe('ClickHouseSink, modern flavour', () => {
  it("writes rows chDB's events table parses back into the same events", async () => {
    const sink = new ClickHouseSink({
      url,
      table: 'events',
      schema: 'modern',
      deadLetterDir: dir,
      createTable: false,
      skipStoredIds: false,
    });
    await sink.deliver(
      events.map((e, i) => ({ sequence: i + 1, payload: Buffer.from(JSON.stringify(e)) })),
    );
    await sink.close();
    const insert = captured.find((c) => c.query.startsWith('INSERT'));
    expect(insert).toBeDefined();
    const columns = /\(([^)]*)\) FORMAT TabSeparated$/.exec(insert!.query)![1]!.split(', ');
    expect(columns).not.toContain('time_micros');

    const { Session } = await import('chdb');
    const session = new Session(join(dir, 'chdb'));
    try {
      for (const migration of eventStoreMigrations({ retentionDays: 3_650 })) {
        for (const sql of migration.statements) await session.queryAsync(sql);
      }
      const rows = async <T>(sql: string): Promise<T[]> =>
        (await session.queryAsync(sql, { format: 'JSONEachRow' }))
          .text()
          .split('\n')
          .filter((line) => line !== '')
          .map((line) => JSON.parse(line) as T);
      const types = new Map(
        (
          await rows<{ name: string; type: string }>(
            "SELECT name, type FROM system.columns WHERE database = currentDatabase() AND table = 'events'",
          )
        ).map((c) => [c.name, c.type]),
      );
      // The table's own types, in the sink's column order: what a server parses the body into.
      const structure = columns.map((c) => `${c} ${types.get(c)!}`).join(', ');
      // chDB reads files under its data directory, as the store does.
      const path = join(dir, 'chdb', 'body.tsv');
      await writeFile(path, insert!.body);
      await session.queryAsync(
        `INSERT INTO events (${columns.join(', ')}) SELECT * FROM file('${path}', TabSeparated, '${structure.replace(/'/g, "\\'")}')`,
      );
      const back = (
        await rows<StoredEventRow>(`SELECT ${EVENT_ROW_SELECT} FROM events ORDER BY id`)
      ).map((row) => rowToEvent(row).event);
      expect(back).toEqual(events.map(normalizeEvent));
    } finally {
      session.cleanup();
    }
  });
});
