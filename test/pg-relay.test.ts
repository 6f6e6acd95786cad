// The relayed PostgreSQL session: simple and extended protocol, binary results, pipelining,
// transactions, LISTEN/NOTIFY, notices, COPY (psql), function calls, large results, cancel and
// backpressure toward a client that stops reading.
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { passwordMessage, query, startupMessage } from '@portcullis/protocol-pg';
import { ensurePostgresInstalled, runProgram } from '@portcullis/testkit';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ALICE,
  createSharedDatabase,
  dropSharedDatabase,
  queryError,
  sharedResource,
  sleep,
  startGatewayFixture,
  superuserQuery,
  type GatewayFixture,
} from './support/gateway-fixture.js';
import {
  RawPgClient,
  bindMessage,
  decodeDataRowBytes,
  describeMessage,
  executeMessage,
  functionCallMessage,
  parseMessage,
  rawFrame,
  sendCancelRequest,
  syncMessage,
} from './support/raw-pg-client.js';

const DB = 'it_pg_relay';

let gw: GatewayFixture;
let psql: string;

beforeAll(async () => {
  await createSharedDatabase(DB);
  psql = join((await ensurePostgresInstalled()).binDir, 'psql');
  gw = await startGatewayFixture({ resources: { app: sharedResource(DB) } });
});

afterAll(async () => {
  await gw?.dispose();
  await dropSharedDatabase(DB);
});

/** The gateway's cancel key as pg saw it in BackendKeyData. */
function keyOf(client: pg.Client): { processID: number; secretKey: number } {
  return client as unknown as { processID: number; secretKey: number };
}

async function rawSession(): Promise<RawPgClient> {
  const raw = await RawPgClient.connect(gw.port);
  await raw.login({ database: 'app', password: ALICE.token });
  return raw;
}

describe('simple and extended protocol', () => {
  it('runs a simple query', async () => {
    const client = await gw.connect('app');
    const { rows, command, rowCount } = await client.query(
      "SELECT 1 AS a, 'two' AS b, NULL::int AS c, 'é✓' AS d",
    );
    expect(rows).toEqual([{ a: 1, b: 'two', c: null, d: 'é✓' }]);
    expect(command).toBe('SELECT');
    expect(rowCount).toBe(1);
    await client.end();
  });

  it('runs a multi-statement simple query', async () => {
    const client = await gw.connect('app');
    const results = (await client.query(
      'CREATE TEMP TABLE m (v int); INSERT INTO m VALUES (1), (2), (3); SELECT sum(v)::int AS s FROM m',
    )) as unknown as pg.QueryResult[];
    expect(results.map((r) => r.command)).toEqual(['CREATE', 'INSERT', 'SELECT']);
    expect(results[1]!.rowCount).toBe(3);
    expect(results[2]!.rows).toEqual([{ s: 6 }]);
    await client.end();
  });

  it('runs parameterized queries and reuses named prepared statements', async () => {
    const client = await gw.connect('app');
    const { rows } = await client.query('SELECT $1::int * 2 AS doubled, $2::text AS t', [21, 'x']);
    expect(rows).toEqual([{ doubled: 42, t: 'x' }]);
    for (let i = 0; i < 5; i++) {
      const result = await client.query({
        name: 'square',
        text: 'SELECT $1::int * $1::int AS sq',
        values: [i],
      });
      expect(result.rows).toEqual([{ sq: i * i }]);
    }
    const prepared = await client.query(
      "SELECT count(*)::int AS n FROM pg_prepared_statements WHERE name = 'square'",
    );
    expect(prepared.rows).toEqual([{ n: 1 }]);
    await client.end();
  });

  it('relays binary results byte for byte', async () => {
    const raw = await rawSession();
    raw.write(
      parseMessage(
        '',
        "SELECT $1::int4, $2::text, 1.5::float8, '\\x00ff'::bytea, true, NULL::int8",
      ),
      bindMessage('', '', ['7', 'hé'], true),
      executeMessage(''),
      syncMessage,
    );
    const result = await raw.collect();
    expect(result.errors).toEqual([]);
    const row = result.messages.find((m) => m.type === 'D')!;
    expect(decodeDataRowBytes(row.body)).toEqual([
      Buffer.from('00000007', 'hex'),
      Buffer.from('hé', 'utf8'),
      Buffer.from('3ff8000000000000', 'hex'),
      Buffer.from([0, 255]),
      Buffer.from([1]),
      null,
    ]);
    raw.destroy();
  });

  it('serves pg in binary mode', async () => {
    const client = new pg.Client(gw.clientConfig('app', { binary: true } as pg.ClientConfig));
    await client.connect();
    try {
      const { rows, fields } = await client.query(
        'SELECT $1::int4 AS i, $2::text AS t, true AS ok, 2::int8 AS big',
        [7, 'hé'],
      );
      expect(fields.map((f) => f.format)).toEqual(['binary', 'binary', 'binary', 'binary']);
      expect(rows).toEqual([{ i: 7, t: 'hé', ok: true, big: '2' }]);
    } finally {
      await client.end();
    }
  });

  it('answers pipelined extended queries in order, with a failure in the middle', async () => {
    const client = new pg.Client(gw.clientConfig('app', { pipeline: true }));
    client.on('error', () => undefined);
    await client.connect();
    try {
      const pending = Array.from({ length: 20 }, (_, i) =>
        i === 10
          ? client.query('SELECT 1 / $1::int AS boom', [0])
          : client.query('SELECT $1::int AS i, pg_backend_pid() AS pid', [i]),
      );
      const settled = await Promise.allSettled(pending);
      settled.forEach((outcome, i) => {
        if (i === 10) {
          expect(outcome.status).toBe('rejected');
          expect((outcome as PromiseRejectedResult).reason.code).toBe('22012');
        } else {
          expect(outcome.status).toBe('fulfilled');
          expect((outcome as PromiseFulfilledResult<pg.QueryResult>).value.rows[0].i).toBe(i);
        }
      });
      const pids = new Set(
        settled
          .filter((o) => o.status === 'fulfilled')
          .map((o) => (o as PromiseFulfilledResult<pg.QueryResult>).value.rows[0].pid),
      );
      expect(pids.size).toBe(1);
    } finally {
      await client.end();
    }
  });

  it('relays a pipeline of raw Parse/Bind/Execute/Sync batches sent in one write', async () => {
    const raw = await rawSession();
    raw.write(
      parseMessage('s1', 'SELECT $1::int + 1'),
      bindMessage('', 's1', ['1']),
      executeMessage(''),
      syncMessage,
      parseMessage('', 'SELECT * FROM no_such_table'),
      bindMessage('', '', []),
      executeMessage(''),
      syncMessage,
      bindMessage('p', 's1', ['41']),
      describeMessage('P', 'p'),
      executeMessage('p'),
      syncMessage,
    );
    const first = await raw.collect();
    expect(first.rows).toEqual([['2']]);
    expect(first.errors).toEqual([]);
    const second = await raw.collect();
    expect(second.errors.map((e) => e.code)).toEqual(['42P01']);
    const third = await raw.collect();
    expect(third.rows).toEqual([['42']]);
    expect(third.messages.map((m) => m.type)).toEqual(['2', 'T', 'D', 'C', 'Z']);
    raw.destroy();
  });

  it('recovers from an error inside a transaction with ROLLBACK', async () => {
    const client = await gw.connect('app');
    await client.query('CREATE TABLE tx_test (v int)');
    await client.query('BEGIN');
    await client.query('INSERT INTO tx_test VALUES (1)');
    expect((await queryError(client, 'SELECT * FROM missing_table')).code).toBe('42P01');
    expect((await queryError(client, 'SELECT 1')).code).toBe('25P02');
    await client.query('ROLLBACK');
    expect((await client.query('SELECT count(*)::int AS n FROM tx_test')).rows).toEqual([{ n: 0 }]);
    const raw = await rawSession();
    const result = await raw.query('BEGIN; SELECT 1/0; SELECT 2');
    expect(result.errors.map((e) => e.code)).toEqual(['22012']);
    expect(result.status).toBe('E');
    expect((await raw.query('ROLLBACK')).status).toBe('I');
    raw.destroy();
    await client.query('DROP TABLE tx_test');
    await client.end();
  });
});

describe('asynchronous messages', () => {
  it('delivers NOTIFY from one gateway session to a LISTENer in another', async () => {
    const listener = await gw.connect('app');
    const notifier = await gw.connect('app');
    await listener.query('LISTEN portcullis_it');
    const received = new Promise<pg.Notification>((resolveNotification) =>
      listener.once('notification', resolveNotification),
    );
    await notifier.query("SELECT pg_notify('portcullis_it', 'hello through the gateway')");
    const notification = await received;
    expect(notification.channel).toBe('portcullis_it');
    expect(notification.payload).toBe('hello through the gateway');
    await listener.end();
    await notifier.end();
  });

  // Clients drop their own notifications by comparing the notifier id with their backend key
  // (a documented libpq idiom), so the gateway's key must appear there, not the upstream pid.
  it('names the session by its gateway process id in its own notifications', async () => {
    const client = await gw.connect('app');
    const clientKey = (client as unknown as { processID: number }).processID;
    const { rows } = await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
    expect(rows[0]!.pid).not.toBe(clientKey);
    await client.query('LISTEN self_notify');
    const received = new Promise<pg.Notification>((resolveNotification) =>
      client.once('notification', resolveNotification),
    );
    await client.query("NOTIFY self_notify, 'mine'");
    const notification = await received;
    expect(notification.processId).toBe(clientKey);
    await client.end();
  });

  it('delivers a NOTICE raised inside a DO block', async () => {
    const client = await gw.connect('app');
    const notices: (string | undefined)[][] = [];
    client.on('notice', (n) => notices.push([n.severity, n.code, n.message]));
    await client.query("DO $$ BEGIN RAISE NOTICE 'hello %', 42; END $$");
    expect(notices).toEqual([['NOTICE', '00000', 'hello 42']]);
    await client.end();
  });
});

describe('COPY with psql', () => {
  const env = (): NodeJS.ProcessEnv => ({ ...process.env, PGPASSWORD: ALICE.token });
  const url = (): string => `postgresql://someone@127.0.0.1:${gw.port}/app?sslmode=disable`;

  it('copies rows in from STDIN and out to STDOUT', async () => {
    const client = await gw.connect('app');
    await client.query('CREATE TABLE copy_test (id int, name text)');
    const lines = Array.from({ length: 5000 }, (_, i) => `${i}\tname-${i}`);
    const copyIn = await runProgram(
      psql,
      [url(), '-X', '-v', 'ON_ERROR_STOP=1', '-c', 'COPY copy_test FROM STDIN'],
      { env: env(), input: `${lines.join('\n')}\n\\.\n`, timeoutMs: 30_000 },
    );
    expect(copyIn.stdout.trim()).toBe('COPY 5000');
    const { rows } = await client.query(
      'SELECT count(*)::int AS n, sum(id)::bigint AS s FROM copy_test',
    );
    expect(rows).toEqual([{ n: 5000, s: String((4999 * 5000) / 2) }]);

    const copyOut = await runProgram(
      psql,
      [
        url(),
        '-X',
        '-v',
        'ON_ERROR_STOP=1',
        '-c',
        'COPY (SELECT * FROM copy_test ORDER BY id) TO STDOUT',
      ],
      { env: env(), timeoutMs: 30_000 },
    );
    expect(copyOut.stdout).toBe(`${lines.join('\n')}\n`);

    const meta = await runProgram(
      psql,
      [url(), '-X', '-v', 'ON_ERROR_STOP=1', '-c', '\\copy copy_test TO STDOUT WITH (FORMAT csv)'],
      { env: env(), timeoutMs: 30_000 },
    );
    expect(meta.stdout.split('\n')[1]).toBe('1,name-1');
    await client.query('DROP TABLE copy_test');
    await client.end();
  });

  it('relays a COPY that fails on bad data or CopyFail, and keeps the session', async () => {
    const raw = await rawSession();
    await raw.query('CREATE TEMP TABLE c (v int)');
    raw.write(query('COPY c FROM STDIN'));
    expect((await raw.next()).type).toBe('G');
    raw.write(rawFrame(0x64, Buffer.from('1\nnot-a-number\n')), rawFrame(0x63, Buffer.alloc(0)));
    const bad = await raw.collect();
    expect(bad.errors.map((e) => e.code)).toEqual(['22P02']);

    raw.write(query('COPY c FROM STDIN'));
    expect((await raw.next()).type).toBe('G');
    raw.write(rawFrame(0x64, Buffer.from('5\n')), rawFrame(0x66, Buffer.from('client gave up\0')));
    const failed = await raw.collect();
    expect(failed.errors.map((e) => [e.code, e.message])).toEqual([
      ['57014', 'COPY from stdin failed: client gave up'],
    ]);

    raw.write(query('COPY c FROM STDIN'));
    expect((await raw.next()).type).toBe('G');
    raw.write(rawFrame(0x64, Buffer.from('7\n8\n')), rawFrame(0x63, Buffer.alloc(0)));
    expect((await raw.collect()).tags).toEqual(['COPY 2']);
    expect((await raw.query('SELECT sum(v) FROM c')).rows).toEqual([['15']]);
    raw.destroy();
  });
});

describe('function calls', () => {
  it('relays a FunctionCall message and its result', async () => {
    const raw = await rawSession();
    const oid = (await raw.query("SELECT 'pg_backend_pid'::regproc::oid")).rows[0]![0]!;
    const pid = (await raw.query('SELECT pg_backend_pid()')).rows[0]![0]!;
    raw.write(functionCallMessage(Number(oid), []));
    const messages = await raw.readUntil('Z');
    expect(messages.map((m) => m.type)).toEqual(['V', 'Z']);
    const value = messages[0]!.body;
    expect(value.readInt32BE(0)).toBe(pid.length);
    expect(value.subarray(4).toString('utf8')).toBe(pid);

    const plusOid = (await raw.query("SELECT 'int4pl'::regproc::oid")).rows[0]![0]!;
    raw.write(functionCallMessage(Number(plusOid), ['40', '2']));
    const sum = await raw.readUntil('Z');
    expect(sum.map((m) => m.type)).toEqual(['V', 'Z']);
    expect(sum[0]!.body.subarray(4).toString('utf8')).toBe('42');
    raw.destroy();
  });
});

describe('large results', () => {
  it('relays 200 000 rows of 1000 bytes completely and intact', async () => {
    const raw = await rawSession();
    const expected = 'x'.repeat(1000);
    let rows = 0;
    let bad = 0;
    raw.write(query("SELECT repeat('x', 1000) FROM generate_series(1, 200000)"));
    const messages = await raw.streamRows((body, start, end) => {
      rows++;
      if (end - start !== 2 + 4 + 1000 || body.toString('latin1', start + 6, end) !== expected)
        bad++;
    });
    expect(rows).toBe(200_000);
    expect(bad).toBe(0);
    expect(messages.map((m) => m.type)).toEqual(['T', 'C', 'Z']);
    raw.destroy();
  });

  it('relays a large result to pg with every row correct', async () => {
    const client = await gw.connect('app');
    const { rows } = await client.query(
      'SELECT i, md5(i::text) AS h FROM generate_series(1, 100000) i ORDER BY i',
    );
    expect(rows.length).toBe(100_000);
    expect(rows[0]).toEqual({ i: 1, h: 'c4ca4238a0b923820dcc509a6f75849b' });
    const wrong = rows.filter(
      (row, idx) =>
        row.i !== idx + 1 ||
        row.h !==
          createHash('md5')
            .update(String(idx + 1))
            .digest('hex'),
    );
    expect(wrong).toEqual([]);
    await client.end();
  });
});

describe('cancel', () => {
  it('cancels a running query through the gateway key and keeps the session usable', async () => {
    const client = await gw.connect('app');
    const upstreamPid = (await client.query('SELECT pg_backend_pid() AS pid')).rows[0]
      .pid as number;
    const key = keyOf(client);
    expect(key.processID).not.toBe(upstreamPid);
    const started = Date.now();
    const sleeping = queryError(client, 'SELECT pg_sleep(30)');
    await waitForActivity(upstreamPid, 'SELECT pg_sleep(30)');
    await sendCancelRequest(gw.port, key.processID, key.secretKey);
    const err = await sleeping;
    expect(err.code).toBe('57014');
    expect(Date.now() - started).toBeLessThan(10_000);
    expect((await client.query('SELECT pg_backend_pid() AS pid')).rows).toEqual([
      { pid: upstreamPid },
    ]);
    await client.end();
  });

  it('ignores a CancelRequest with a wrong secret', async () => {
    const client = await gw.connect('app');
    const upstreamPid = (await client.query('SELECT pg_backend_pid() AS pid')).rows[0]
      .pid as number;
    const key = keyOf(client);
    const sleeping = client.query('SELECT pg_sleep(1.5) AS slept');
    await waitForActivity(upstreamPid, 'SELECT pg_sleep(1.5) AS slept');
    await sendCancelRequest(gw.port, key.processID, key.secretKey ^ 1);
    await sendCancelRequest(gw.port, key.processID ^ 1, key.secretKey);
    const result = await sleeping;
    expect(result.rows).toEqual([{ slept: '' }]);
    await client.end();
  });
});

describe('backpressure', () => {
  it('pauses the upstream while a client does not read, then delivers everything', async () => {
    const raw = await rawSession();
    const upstreamPid = Number((await raw.query('SELECT pg_backend_pid()')).rows[0]![0]);
    const rowCount = 200_000;
    const resultBytes = rowCount * 1011;
    raw.pause();
    const before = process.memoryUsage().rss;
    let peak = before;
    raw.write(query(`SELECT repeat('x', 1000) FROM generate_series(1, ${rowCount})`));
    const deadline = Date.now() + 2_000;
    while (Date.now() < deadline) {
      peak = Math.max(peak, process.memoryUsage().rss);
      await sleep(50);
    }
    // The upstream backend is blocked writing to the gateway, not done.
    const { rows } = await superuserQuery(
      `SELECT state, wait_event FROM pg_stat_activity WHERE pid = ${upstreamPid}`,
    );
    expect(rows).toEqual([{ state: 'active', wait_event: 'ClientWrite' }]);
    const growth = peak - before;
    expect(growth).toBeLessThan(resultBytes / 4);

    let received = 0;
    const done = raw.streamRows(() => {
      received++;
    });
    raw.resume();
    const messages = await done;
    expect(received).toBe(rowCount);
    expect(messages.map((m) => m.type)).toEqual(['T', 'C', 'Z']);
    raw.destroy();
  });
});

/** Waits until the upstream backend `pid` runs `query`. */
async function waitForActivity(pid: number, query: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    const { rows } = await superuserQuery(
      `SELECT query, state FROM pg_stat_activity WHERE pid = ${pid}`,
    );
    if (rows[0]?.state === 'active' && rows[0]?.query === query) return;
    await sleep(20);
  }
  throw new Error(`backend ${pid} did not start ${query}`);
}

describe('a client that sends ahead of the login', () => {
  // Everything a client pipelines behind its password is held (up to a bound, then the socket
  // is paused) while the gateway logs in upstream, and then relayed without losing a byte.
  it('relays queries pipelined behind the password, past the login read bound', async () => {
    const raw = await RawPgClient.connect(gw.port);
    const count = 20_000; // ~500 KB of Query frames, well past the 64 KiB login buffer bound
    raw.write(
      startupMessage({ user: 'someone', database: 'app' }),
      passwordMessage(ALICE.token),
      ...Array.from({ length: count }, (_, i) => query(`SELECT ${i} AS n`)),
    );
    const login = await raw.readUntil('Z');
    expect(login.map((m) => m.type)).toContain('K');
    let last = '';
    for (let i = 0; i < count; i++) {
      const result = await raw.collect();
      expect(result.errors).toEqual([]);
      last = result.rows[0]![0]!;
    }
    expect(last).toBe(String(count - 1));
    raw.destroy();
  });
});
