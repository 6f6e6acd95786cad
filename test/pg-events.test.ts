// The session events the gateway records for PostgreSQL sessions: who, where, what ran, with
// literals redacted, numbered per session, and never a secret.
import type { SessionEvent, StatementRecord } from '@portcullis/core';
import { query } from '@portcullis/protocol-pg';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ALICE,
  bySession,
  createSharedDatabase,
  dropSharedDatabase,
  queryError,
  sharedPostgres,
  sharedResource,
  startGatewayFixture,
  type GatewayFixture,
} from './support/gateway-fixture.js';
import {
  RawPgClient,
  bindMessage,
  executeMessage,
  functionCallMessage,
  parseMessage,
  rawFrame,
  syncMessage,
} from './support/raw-pg-client.js';

/** What every statement of an unrestricted resource records besides its outcome. */
const ALLOWED = {
  kind: expect.any(String),
  fingerprint: expect.any(String),
  tables: expect.any(Array),
  verdict: 'allow',
  rule: 'default',
};

const DB = 'it_pg_events';
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

let gw: GatewayFixture;

beforeAll(async () => {
  await createSharedDatabase(DB);
  gw = await startGatewayFixture({ resources: { app: sharedResource(DB) } });
});

afterAll(async () => {
  await gw?.dispose();
  await dropSharedDatabase(DB);
});

/** Runs `work` in a fresh pg session, ends it, and returns that session's events. */
async function recordSession(
  work: (client: pg.Client) => Promise<void>,
  fixture: GatewayFixture = gw,
  overrides: pg.ClientConfig = {},
): Promise<SessionEvent[]> {
  const client = new pg.Client(fixture.clientConfig('app', overrides));
  client.on('error', () => undefined);
  await client.connect();
  const localPort = (client as unknown as { connection: { stream: { localPort: number } } })
    .connection.stream.localPort;
  await work(client);
  await client.end();
  const events = await fixture.waitForEvents((all) =>
    all.some((e) => e.type === 'session.end' && e.client.port === localPort),
  );
  const sessionId = events.find((e) => e.client.port === localPort)!.sessionId;
  return events.filter((e) => e.sessionId === sessionId);
}

function statements(events: SessionEvent[]): StatementRecord[] {
  return events.filter((e) => e.type === 'statement').map((e) => e.statement!);
}

describe('a session', () => {
  it('records start, statement and end with the person, resource and client', async () => {
    const before = Date.now() * 1000;
    const events = await recordSession(
      async (client) => {
        await client.query("select 'secret-value' as v");
      },
      gw,
      { application_name: 'events-suite', user: 'report-user' },
    );
    const after = Date.now() * 1000;
    expect(events.map((e) => [e.type, e.seq])).toEqual([
      ['session.start', 0],
      ['statement', 1],
      ['session.end', 2],
    ]);
    for (const event of events) {
      expect(event).toMatchObject({
        schema: 1,
        person: {
          subject: 'user-alice',
          email: 'alice@example.com',
          name: 'Alice Example',
          groups: ['eng', 'oncall'],
        },
        agent: null,
        authMethod: 'static-token',
        resource: 'app',
        protocol: 'postgres',
        upstreamUser: sharedPostgres().roles.scram.user,
        client: {
          address: '127.0.0.1',
          application: 'events-suite',
          user: 'report-user',
          tls: false,
        },
      });
      expect(event.id).toMatch(UUID);
      expect(event.sessionId).toMatch(UUID);
      expect(event.timeUs).toBeGreaterThanOrEqual(before - 1000);
      expect(event.timeUs).toBeLessThanOrEqual(after + 1000);
    }
    expect(new Set(events.map((e) => e.id)).size).toBe(3);
    expect(events[0]!.timeUs).toBeLessThanOrEqual(events[1]!.timeUs);
    expect(events[1]!.timeUs).toBeLessThanOrEqual(events[2]!.timeUs);
    expect(events[0]).not.toHaveProperty('statement');
    expect(events[0]).not.toHaveProperty('summary');

    const statement = events[1]!.statement!;
    expect(statement).toEqual({
      text: 'select $1 as v',
      protocol: 'simple',
      params: 0,
      tag: 'SELECT 1',
      rows: 1,
      bytes: expect.any(Number),
      durationUs: expect.any(Number),
      error: null,
      ...ALLOWED,
      kind: 'select',
      tables: [],
    });
    // DataRow: type(1) + length(4) + column count(2) + column length(4) + 12 bytes.
    expect(statement.bytes).toBe(1 + 4 + 2 + 4 + 'secret-value'.length);
    expect(statement.durationUs).toBeGreaterThanOrEqual(0);
    expect(statement.durationUs).toBeLessThan(5_000_000);

    expect(events[2]!.summary).toEqual({
      reason: 'client-closed',
      statements: 1,
      rows: 1,
      bytesFromClient: expect.any(Number),
      bytesToClient: expect.any(Number),
      durationUs: expect.any(Number),
      error: null,
    });
    expect(events[2]!.summary!.bytesFromClient).toBeGreaterThan(0);
    expect(events[2]!.summary!.bytesToClient).toBeGreaterThan(statement.bytes);
  });

  it('records extended-protocol statements with parameter counts and prepared names', async () => {
    const events = await recordSession(async (client) => {
      await client.query("SELECT $1::int + $2::int AS s, 'hidden' AS h", [1, 2]);
      await client.query({ name: 'named_one', text: 'SELECT $1::text AS t', values: ['x'] });
      await client.query({ name: 'named_one', text: 'SELECT $1::text AS t', values: ['y'] });
    });
    expect(statements(events)).toEqual([
      {
        text: 'SELECT $1::int + $2::int AS s, $3 AS h',
        protocol: 'extended',
        preparedName: '',
        params: 2,
        tag: 'SELECT 1',
        rows: 1,
        bytes: expect.any(Number),
        durationUs: expect.any(Number),
        error: null,
        ...ALLOWED,
      },
      ...['x', 'y'].map(() => ({
        text: 'SELECT $1::text AS t',
        protocol: 'extended',
        preparedName: 'named_one',
        params: 1,
        tag: 'SELECT 1',
        rows: 1,
        bytes: 1 + 4 + 2 + 4 + 1,
        durationUs: expect.any(Number),
        error: null,
        ...ALLOWED,
      })),
    ]);
  });

  it('records failing statements with their SQLSTATE', async () => {
    const events = await recordSession(async (client) => {
      expect((await queryError(client, 'SELECT 1/0')).code).toBe('22012');
      expect(
        (await queryError(client, { text: 'SELECT * FROM nowhere WHERE x = $1', values: [1] }))
          .code,
      ).toBe('42P01');
      await client.query('SELECT 1');
    });
    const recorded = statements(events);
    expect(recorded.map((s) => [s.protocol, s.tag, s.rows, s.error])).toEqual([
      ['simple', '', 0, { code: '22012', message: 'division by zero' }],
      ['extended', '', 0, { code: '42P01', message: 'relation "nowhere" does not exist' }],
      ['simple', 'SELECT 1', 1, null],
    ]);
    expect(recorded[0]!.text).toBe('SELECT $1/$2');
    // pg parses the failing extended statement, so the text is known even though Bind never ran.
    expect(recorded[1]!.text).toBe('SELECT * FROM nowhere WHERE x = $1');
  });

  it('records one statement per command of a multi-statement query', async () => {
    const sql =
      "CREATE TEMP TABLE ev (v text); INSERT INTO ev VALUES ('a'), ('b'); SELECT v FROM ev; DELETE FROM ev";
    const events = await recordSession(async (client) => {
      await client.query(sql);
    });
    const recorded = statements(events);
    expect(recorded.map((s) => [s.tag, s.rows])).toEqual([
      ['CREATE TABLE', 0],
      ['INSERT 0 2', 2],
      ['SELECT 2', 2],
      ['DELETE 2', 2],
    ]);
    for (const s of recorded) {
      expect(s.protocol).toBe('simple');
      expect(s.text).toBe(
        'CREATE TEMP TABLE ev (v text); INSERT INTO ev VALUES ($1), ($2); SELECT v FROM ev; DELETE FROM ev',
      );
    }
    expect(recorded.map((s) => s.bytes > 0)).toEqual([false, false, true, false]);
  });

  it('records a failing command in a multi-statement query and nothing after it', async () => {
    const events = await recordSession(async (client) => {
      expect((await queryError(client, 'SELECT 1; SELECT 1/0; SELECT 3')).code).toBe('22012');
    });
    expect(statements(events).map((s) => [s.tag, s.error?.code ?? null])).toEqual([
      ['SELECT 1', null],
      ['', '22012'],
    ]);
  });

  it('records each run of a prepared statement executed over and over (pgbench-like)', async () => {
    const events = await recordSession(async (client) => {
      for (let i = 1; i <= 100; i++) {
        await client.query({
          name: 'bench_select',
          text: 'SELECT abs($1::int) AS a',
          values: [-i],
        });
      }
    });
    const recorded = statements(events);
    expect(recorded).toHaveLength(100);
    for (const s of recorded) {
      expect(s).toMatchObject({
        text: 'SELECT abs($1::int) AS a',
        protocol: 'extended',
        preparedName: 'bench_select',
        params: 1,
        tag: 'SELECT 1',
        rows: 1,
        error: null,
      });
    }
    expect(events.map((e) => e.seq)).toEqual(Array.from({ length: 102 }, (_, i) => i));
    expect(events.at(-1)!.summary).toMatchObject({ statements: 100, rows: 100 });
  });

  it('records pipelined queries in order, including the one that failed', async () => {
    const events = await recordSession(
      async (client) => {
        const pending = Array.from({ length: 10 }, (_, i) =>
          client.query(i === 4 ? 'SELECT 1 / $1::int' : 'SELECT $1::int AS i', [i === 4 ? 0 : i]),
        );
        await Promise.allSettled(pending);
      },
      gw,
      { pipeline: true },
    );
    const recorded = statements(events);
    expect(recorded.map((s) => s.error?.code ?? s.tag)).toEqual([
      'SELECT 1',
      'SELECT 1',
      'SELECT 1',
      'SELECT 1',
      '22012',
      'SELECT 1',
      'SELECT 1',
      'SELECT 1',
      'SELECT 1',
      'SELECT 1',
    ]);
  });
});

describe('raw protocol statements', () => {
  async function rawEvents(work: (raw: RawPgClient) => Promise<void>): Promise<SessionEvent[]> {
    const raw = await RawPgClient.connect(gw.port);
    await raw.login({ database: 'app', password: ALICE.token });
    const localPort = raw.socket.localPort!;
    await work(raw);
    raw.end(Buffer.from([0x58, 0, 0, 0, 4]));
    await raw.waitClosed();
    const events = await gw.waitForEvents((all) =>
      all.some((e) => e.type === 'session.end' && e.client.port === localPort),
    );
    return events.filter((e) => e.client.port === localPort);
  }

  it('records COPY in and out with rows and bytes, and function calls', async () => {
    let oid = 0;
    const events = await rawEvents(async (raw) => {
      await raw.query('CREATE TEMP TABLE cp (v int)');
      raw.write(query('COPY cp FROM STDIN'));
      expect((await raw.next()).type).toBe('G');
      raw.write(rawFrame(0x64, Buffer.from('1\n2\n3\n')), rawFrame(0x63, Buffer.alloc(0)));
      expect((await raw.collect()).tags).toEqual(['COPY 3']);
      expect((await raw.query('COPY cp TO STDOUT')).tags).toEqual(['COPY 3']);
      oid = Number((await raw.query("SELECT 'int4pl'::regproc::oid")).rows[0]![0]);
      raw.write(functionCallMessage(oid, ['40', '2']));
      await raw.readUntil('Z');
    });
    const recorded = statements(events);
    expect(recorded.map((s) => [s.text, s.tag, s.rows])).toEqual([
      ['CREATE TEMP TABLE cp (v int)', 'CREATE TABLE', 0],
      ['COPY cp FROM STDIN', 'COPY 3', 3],
      ['COPY cp TO STDOUT', 'COPY 3', 3],
      ['SELECT $1::regproc::oid', 'SELECT 1', 1],
      [`<function call oid=${oid}>`, 'FUNCTION CALL', 0],
    ]);
    // COPY out: three CopyData frames of 2 bytes each (5-byte headers).
    expect(recorded[2]!.bytes).toBe(3 * (5 + 2));
    expect(recorded[4]).toMatchObject({ protocol: 'function-call', params: 2, error: null });
  });
  it('records a portal run in chunks as one statement per Execute', async () => {
    const events = await rawEvents(async (raw) => {
      raw.write(
        parseMessage('', 'SELECT generate_series(1, 5)'),
        bindMessage('cursor', '', []),
        executeMessage('cursor', 2),
        executeMessage('cursor', 2),
        executeMessage('cursor', 2),
        syncMessage,
      );
      const result = await raw.collect();
      expect(result.rows).toEqual([['1'], ['2'], ['3'], ['4'], ['5']]);
      expect(result.messages.map((m) => m.type).join('')).toBe('12DDsDDsDCZ');
    });
    expect(statements(events).map((s) => [s.text, s.tag, s.rows])).toEqual([
      ['SELECT generate_series($1, $2)', '', 2],
      ['SELECT generate_series($1, $2)', '', 2],
      ['SELECT generate_series($1, $2)', 'SELECT 1', 1],
    ]);
  });

  it('records nothing for empty queries and stays in step after them', async () => {
    const events = await rawEvents(async (raw) => {
      expect((await raw.query('')).messages.map((m) => m.type)).toEqual(['I', 'Z']);
      raw.write(parseMessage('', ''), bindMessage('', '', []), executeMessage(''), syncMessage);
      expect((await raw.collect()).messages.map((m) => m.type)).toEqual(['1', '2', 'I', 'Z']);
      expect((await raw.query('SELECT 1')).tags).toEqual(['SELECT 1']);
    });
    expect(statements(events).map((s) => [s.text, s.protocol, s.tag])).toEqual([
      ['SELECT $1', 'simple', 'SELECT 1'],
    ]);
  });
});

describe('the event file', () => {
  it('numbers every session from 0 without gaps and closes each with session.end', async () => {
    const events = await gw.readEvents();
    const sessions = bySession(events);
    expect(sessions.size).toBeGreaterThanOrEqual(8);
    for (const [, list] of sessions) {
      expect(list.map((e) => e.seq)).toEqual(list.map((_, i) => i));
      expect(list[0]!.type).toBe('session.start');
      const end = list.at(-1)!;
      expect(end.type).toBe('session.end');
      expect(end.summary!.statements).toBe(list.filter((e) => e.type === 'statement').length);
    }
  });

  it('holds no token or password', async () => {
    const text = await gw.readEventText();
    const pgServer = sharedPostgres();
    expect(text.length).toBeGreaterThan(0);
    for (const secret of [
      ALICE.token,
      pgServer.superuser.password,
      pgServer.roles.scram.password,
      pgServer.roles.md5.password,
      pgServer.roles.cleartext.password,
    ]) {
      expect(text).not.toContain(secret);
    }
    expect(text).not.toContain('secret-value');
    expect(text).not.toContain('hidden');
  });
});

describe('events.dangerouslyRecordLiterals', () => {
  let literal: GatewayFixture;

  beforeAll(async () => {
    literal = await startGatewayFixture({
      resources: { app: sharedResource(DB) },
      events: { dangerouslyRecordLiterals: true },
    });
  });

  afterAll(async () => {
    await literal?.dispose();
  });

  it('keeps literals in the recorded text', async () => {
    const events = await recordSession(async (client) => {
      await client.query("select 'secret-value' as v, 42 as n");
      await client.query("SELECT $1::text || 'tail' AS t", ['p']);
    }, literal);
    expect(statements(events).map((s) => s.text)).toEqual([
      "select 'secret-value' as v, 42 as n",
      "SELECT $1::text || 'tail' AS t",
    ]);
  });
});

describe('shutdown', () => {
  it('records session.end for sessions that end as the gateway closes, and for open ones', async () => {
    const fixture = await startGatewayFixture({ resources: { app: sharedResource(DB) } });
    try {
      const open = await fixture.connect('app');
      const errors: (Error & { code?: string })[] = [];
      open.on('error', (err) => errors.push(err));
      const closing = await Promise.all(Array.from({ length: 8 }, () => fixture.connect('app')));
      await Promise.all(closing.map((c) => c.query('SELECT 1')));
      // End these and close the gateway at once: their upstream sockets close during shutdown.
      await Promise.all(closing.map((c) => c.end()));
      await fixture.gateway.close();
      const events = await fixture.readEvents();
      const ends = events.filter((e) => e.type === 'session.end');
      expect(ends).toHaveLength(9);
      expect(ends.filter((e) => e.summary!.reason === 'shutdown')).toHaveLength(1);
      expect(ends.find((e) => e.summary!.reason === 'shutdown')!.summary!.error).toEqual({
        code: '57P01',
        message: 'terminating connection because the gateway is shutting down',
      });
      // pg reports the FATAL, then the closed connection.
      expect(errors[0]?.code).toBe('57P01');
    } finally {
      await fixture.dispose();
    }
  });
});
