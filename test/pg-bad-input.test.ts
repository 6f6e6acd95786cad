// Hostile or broken input and a failing upstream: the gateway answers with the right SQLSTATE,
// closes only the session concerned, and keeps serving everyone else.
import { startPostgres, type PostgresServer } from '@portcullis/testkit';
import fc from 'fast-check';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ALICE,
  connectError,
  createSharedDatabase,
  dropSharedDatabase,
  queryError,
  sharedResource,
  sleep,
  startGatewayFixture,
  type GatewayFixture,
} from './support/gateway-fixture.js';
import { RawPgClient, bindMessage, errorFields, rawFrame } from './support/raw-pg-client.js';

const DB = 'it_pg_bad_input';
const FRAME_LIMIT = 1024 * 1024;

let gw: GatewayFixture;

beforeAll(async () => {
  await createSharedDatabase(DB);
  gw = await startGatewayFixture({
    resources: { app: sharedResource(DB) },
    limits: { maxFrameBytes: FRAME_LIMIT, authTimeoutMs: 1_000 },
  });
});

afterAll(async () => {
  await gw?.dispose();
  await dropSharedDatabase(DB);
});

async function rawSession(): Promise<RawPgClient> {
  const raw = await RawPgClient.connect(gw.port);
  await raw.login({ database: 'app', password: ALICE.token });
  return raw;
}

/** Sends `bytes` on an authenticated session; returns the FATAL the gateway answered with. */
async function fatalAfter(bytes: Buffer): Promise<{ code: string; message: string; rest: number }> {
  const raw = await rawSession();
  raw.write(bytes);
  const messages = await raw.readAllUntilClose();
  expect(messages.length).toBeGreaterThan(0);
  const fields = errorFields(messages[0]!);
  expect(fields.severity).toBe('FATAL');
  return { code: fields.code, message: fields.message, rest: messages.length - 1 };
}

function localPort(client: pg.Client): number {
  return (client as unknown as { connection: { stream: { localPort: number } } }).connection.stream
    .localPort;
}

async function expectGatewayServes(): Promise<void> {
  const client = await gw.connect('app');
  expect((await client.query('SELECT 1 AS ok')).rows).toEqual([{ ok: 1 }]);
  await client.end();
}

describe('after authentication', () => {
  it('closes a session that sends an unknown message type with 08P01, and only that one', async () => {
    const bystander = await gw.connect('app');
    await bystander.query('BEGIN');
    await bystander.query('CREATE TEMP TABLE keep (v int)');
    const fatal = await fatalAfter(rawFrame(0x01, Buffer.from('garbage')));
    expect(fatal).toEqual({
      code: '08P01',
      message: 'invalid frontend message type "\\u0001"',
      rest: 0,
    });
    await bystander.query('INSERT INTO keep VALUES (1)');
    await bystander.query('COMMIT');
    await bystander.end();
    await expectGatewayServes();
  });

  it('refuses a frame over limits.maxFrameBytes with 08P01 naming the limit', async () => {
    const header = Buffer.alloc(5);
    header[0] = 0x51;
    header.writeInt32BE(2 * FRAME_LIMIT + 4, 1);
    const fatal = await fatalAfter(Buffer.concat([header, Buffer.alloc(1000, 0x20)]));
    expect(fatal.code).toBe('08P01');
    expect(fatal.message).toBe(
      `message type "Q" announces ${2 * FRAME_LIMIT + 4} bytes, over the ${FRAME_LIMIT}-byte frame limit`,
    );
    await expectGatewayServes();
  });

  it('relays a frame just under the limit', async () => {
    const client = await gw.connect('app');
    const text = 'x'.repeat(FRAME_LIMIT - 1000);
    const { rows } = await client.query('SELECT length($1::text) AS n', [text]);
    expect(rows).toEqual([{ n: FRAME_LIMIT - 1000 }]);
    await client.end();
  });

  it('ends a session whose upstream sends a row over the frame limit with 54000', async () => {
    const client = await gw.connect('app');
    const port = localPort(client);
    const err = await queryError(client, `SELECT repeat('x', ${4 * FRAME_LIMIT})`);
    expect(err.code).toBe('54000');
    expect(err.severity).toBe('FATAL');
    expect(err.message).toContain("the upstream server's reply is too large");
    expect(err.hint).toBe('raise limits.maxFrameBytes in the gateway configuration');
    await expectGatewayServes();
    // The recorded cause is the first one, not a later chunk's "scanner already failed".
    const events = await gw.waitForEvents((all) =>
      all.some((e) => e.type === 'session.end' && e.client.port === port),
    );
    const end = events.find((e) => e.type === 'session.end' && e.client.port === port)!;
    expect(end.summary).toMatchObject({
      reason: 'upstream-protocol-error',
      error: {
        code: '54000',
        message: `message type "D" announces ${4 * FRAME_LIMIT + 10} bytes, over the ${FRAME_LIMIT}-byte frame limit`,
      },
    });
  });

  it('refuses a negative frame length with 08P01', async () => {
    const fatal = await fatalAfter(rawFrame(0x51, Buffer.alloc(0), 2));
    expect(fatal.code).toBe('08P01');
    expect(fatal.message).toBe('invalid frame length 2 for message type "Q"');
  });

  it('refuses a Query without its terminating NUL with 08P01', async () => {
    const fatal = await fatalAfter(rawFrame(0x51, Buffer.from('SELECT 1')));
    expect(fatal).toMatchObject({ code: '08P01', message: 'malformed Query message' });
  });

  it('refuses a truncated Bind with 08P01', async () => {
    // Portal name only: the statement name's terminator is missing.
    const bind = bindMessage('p', 's', ['1']);
    const fatal = await fatalAfter(rawFrame(0x42, bind.subarray(5, 8)));
    expect(fatal).toMatchObject({ code: '08P01', message: 'malformed Bind message' });
  });

  it('survives a truncated frame followed by a close, and records the session end', async () => {
    const raw = await rawSession();
    const port = raw.socket.localPort;
    const header = Buffer.alloc(5);
    header[0] = 0x51;
    header.writeInt32BE(104, 1);
    raw.end(Buffer.concat([header, Buffer.from('SELECT 1')]));
    await raw.waitClosed();
    const events = await gw.waitForEvents((all) =>
      all.some((e) => e.type === 'session.end' && e.client.port === port),
    );
    const end = events.find((e) => e.type === 'session.end' && e.client.port === port)!;
    expect(end.summary).toMatchObject({ reason: 'client-closed', statements: 0, error: null });
    await expectGatewayServes();
  });

  it('records a protocol error as the end of the session', async () => {
    const raw = await rawSession();
    const port = raw.socket.localPort;
    raw.write(rawFrame(0x02, Buffer.alloc(0)));
    await raw.readAllUntilClose();
    const events = await gw.waitForEvents((all) =>
      all.some((e) => e.type === 'session.end' && e.client.port === port),
    );
    const end = events.find((e) => e.type === 'session.end' && e.client.port === port)!;
    expect(end.summary).toMatchObject({
      reason: 'protocol-error',
      error: { code: '08P01', message: 'invalid frontend message type "\\u0002"' },
    });
  });
});

describe('random first packets', () => {
  const startupCodes = [196608, 196610, 80877103, 80877104, 80877102, 131072, 0];
  const framed = fc
    .tuple(
      fc.integer({ min: -16, max: 12_000 }),
      fc.constantFrom(...startupCodes),
      fc.uint8Array({ maxLength: 200 }),
    )
    .map(([length, code, tail]) => {
      const head = Buffer.alloc(8);
      head.writeInt32BE(length, 0);
      head.writeInt32BE(code, 4);
      return Buffer.concat([head, Buffer.from(tail)]);
    });
  const arbitraryPacket = fc.oneof(
    fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from(b)),
    framed,
  );

  it('never crash the gateway, and every connection ends', { timeout: 60_000 }, async () => {
    await fc.assert(
      fc.asyncProperty(arbitraryPacket, async (packet) => {
        const raw = await RawPgClient.connect(gw.port);
        raw.write(packet);
        raw.end();
        // The gateway closes within the auth timeout (1 s) at the latest.
        await raw.waitClosed(5_000);
      }),
      { numRuns: 50 },
    );
    await expectGatewayServes();
    // Nothing is left behind as a session (the last one ends just after its client does).
    for (let i = 0; i < 100 && gw.gateway.postgres.sessionCount > 0; i++) await sleep(20);
    expect(gw.gateway.postgres.sessionCount).toBe(0);
  });
});

describe('random frames after authentication', () => {
  // Message types the statement tracker decodes, and a few it does not; never FunctionCall, which
  // could call whatever function a random OID names.
  const types = [...'QPBECDSHdcfX'].map((c) => c.charCodeAt(0));
  const frame = fc
    .tuple(fc.constantFrom(...types), fc.uint8Array({ maxLength: 48 }))
    .map(([type, body]) => rawFrame(type, Buffer.from(body)));

  it('never crash the gateway', { timeout: 60_000 }, async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(frame, { minLength: 1, maxLength: 6 }), async (frames) => {
        const raw = await rawSession();
        raw.write(Buffer.concat(frames));
        raw.end();
        await raw.waitClosed(5_000);
      }),
      { numRuns: 30 },
    );
    await expectGatewayServes();
  });
});

describe('an upstream that restarts mid-session', () => {
  let server: PostgresServer;
  let fixture: GatewayFixture;

  beforeAll(async () => {
    server = await startPostgres({ maxConnections: 20 });
    await server.createDatabase('restart_db');
    fixture = await startGatewayFixture({
      resources: {
        private: {
          type: 'postgres',
          host: server.host,
          port: server.port,
          database: 'restart_db',
          user: server.roles.scram.user,
          password: { value: server.roles.scram.password },
          connectTimeoutMs: 3_000,
        },
        shared: sharedResource(DB),
      },
    });
  });

  afterAll(async () => {
    await fixture?.dispose();
    await server?.stop();
  });

  it('ends the affected sessions with 08006, spares other resources, and reconnects after start', async () => {
    const idle = await fixture.connect('private');
    const busy = await fixture.connect('private');
    const other = await fixture.connect('shared');
    const idleErrors: (Error & { code?: string })[] = [];
    idle.on('error', (err) => idleErrors.push(err));
    const idlePort = localPort(idle);
    expect((await idle.query('SELECT 1 AS ok')).rows).toEqual([{ ok: 1 }]);
    await other.query('BEGIN');
    await other.query('CREATE TEMP TABLE t (v int)');
    const sleeping = queryError(busy, 'SELECT pg_sleep(20)');
    await sleep(200);

    await server.kill();
    const busyError = await sleeping;
    expect(busyError.code).toBe('08006');
    for (let i = 0; i < 100 && idleErrors.length === 0; i++) await sleep(20);
    expect(idleErrors[0]?.code).toBe('08006');
    expect((await queryError(idle, 'SELECT 1')).message).toMatch(/not queryable|terminated/);

    // The shared resource's session and transaction are untouched.
    await other.query('INSERT INTO t VALUES (1)');
    expect((await other.query('SELECT count(*)::int AS n FROM t')).rows).toEqual([{ n: 1 }]);
    await other.query('COMMIT');

    // While the upstream is down, new sessions are refused with 08001.
    expect((await connectError(fixture.clientConfig('private'))).code).toBe('08001');

    await server.start();
    const again = new pg.Client(fixture.clientConfig('private'));
    await again.connect();
    expect((await again.query('SELECT current_database() AS db')).rows).toEqual([
      { db: 'restart_db' },
    ]);
    await again.end();
    await other.end();

    const events = await fixture.waitForEvents((all) =>
      all.some((e) => e.type === 'session.end' && e.client.port === idlePort),
    );
    const end = events.find((e) => e.type === 'session.end' && e.client.port === idlePort)!;
    expect(end.summary).toMatchObject({
      reason: 'upstream-lost',
      error: { code: '08006', message: 'upstream connection lost' },
    });
  });
});
