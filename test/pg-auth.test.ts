// Client side of the gateway's PostgreSQL login: encryption negotiation, the startup message,
// token authentication and resource authorization, against a real upstream server.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  decodeAuthentication,
  passwordMessage,
  query,
  sslRequest,
  startupMessage,
} from '@portcullis/protocol-pg';
import { generateTlsCertificates } from '@portcullis/testkit';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ALICE,
  connectError,
  createSharedDatabase,
  dropSharedDatabase,
  newToken,
  sharedResource,
  startGatewayFixture,
  type GatewayFixture,
  type TokenSpec,
} from './support/gateway-fixture.js';
import {
  RawPgClient,
  errorFields,
  gssencRequestPacket,
  protocol2StartupPacket,
  type PgMessage,
} from './support/raw-pg-client.js';

const DB = 'it_pg_auth';
const BOB: TokenSpec = {
  token: newToken('bob'),
  subject: 'user-bob',
  email: 'bob@example.com',
  resources: ['other'],
};

let gw: GatewayFixture;

beforeAll(async () => {
  await createSharedDatabase(DB);
  gw = await startGatewayFixture({
    resources: { app: sharedResource(DB), other: sharedResource(DB) },
    tokens: [ALICE, BOB],
  });
});

afterAll(async () => {
  await gw?.dispose();
  await dropSharedDatabase(DB);
});

/** The first message after the startup packet, and the rest until the server closes. */
async function refusal(client: RawPgClient): Promise<{ first: PgMessage; rest: PgMessage[] }> {
  const first = await client.next();
  const rest = await client.readAllUntilClose();
  return { first, rest };
}

describe('token authentication (insecure listener)', () => {
  it('lets pg in with a valid token and relays queries as the resource role', async () => {
    const client = await gw.connect('app', { application_name: 'auth-suite' });
    const { rows } = await client.query(
      'SELECT current_user AS who, current_database() AS db, current_setting($1) AS app',
      ['application_name'],
    );
    expect(rows).toEqual([
      {
        who: 'portcullis_scram',
        db: DB,
        app: 'auth-suite (portcullis:user-alice)',
      },
    ]);
    await client.end();
  });

  it('refuses a wrong token with 28P01 and closes the connection', async () => {
    const err = await connectError(gw.clientConfig('app', { password: 'not-a-token' }));
    expect(err.code).toBe('28P01');
    expect(err.severity).toBe('FATAL');
    expect(err.message).toBe('password authentication failed for user "someone"');

    const raw = await RawPgClient.connect(gw.port);
    raw.startup({ user: 'someone', database: 'app' });
    expect((await raw.next()).type).toBe('R');
    raw.write(passwordMessage('not-a-token'));
    const { first, rest } = await refusal(raw);
    expect(errorFields(first)).toMatchObject({ severity: 'FATAL', code: '28P01' });
    expect(rest).toEqual([]);
    expect(raw.closed).toBe(true);
  });

  it('refuses an unknown database (resource) with 3D000', async () => {
    const err = await connectError(gw.clientConfig('nope'));
    expect(err.code).toBe('3D000');
    expect(err.message).toBe('database "nope" does not exist');
    // The hint lists only what this person may use.
    expect(err.hint).toContain('app, other');
  });

  it('checks the token before the database, so a stranger learns no resource names', async () => {
    const err = await connectError(gw.clientConfig('nope', { password: 'not-a-token' }));
    expect(err.code).toBe('28P01');
    expect(JSON.stringify({ ...err, message: err.message })).not.toContain('other');
  });

  it('refuses a token that may only use other resources with 42501', async () => {
    const err = await connectError(gw.clientConfig('app', { password: BOB.token }));
    expect(err.code).toBe('42501');
    expect(err.message).toBe('permission denied for database "app"');
    const ok = await gw.connect('other', { password: BOB.token });
    expect((await ok.query('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
    await ok.end();
  });

  it('refuses a startup message without a user with 28000', async () => {
    const raw = await RawPgClient.connect(gw.port);
    raw.startup({ database: 'app' });
    const { first } = await refusal(raw);
    expect(errorFields(first)).toMatchObject({ severity: 'FATAL', code: '28000' });
  });

  it('refuses replication connections with 0A000', async () => {
    const raw = await RawPgClient.connect(gw.port);
    raw.startup({ user: 'someone', database: 'app', replication: 'database' });
    const { first } = await refusal(raw);
    expect(errorFields(first)).toMatchObject({ severity: 'FATAL', code: '0A000' });
  });

  it('answers a GSSENCRequest with N, then serves a normal startup', async () => {
    const raw = await RawPgClient.connect(gw.port);
    raw.write(gssencRequestPacket);
    expect(await raw.readByte()).toBe('N');
    await raw.login({ database: 'app', password: ALICE.token });
    const result = await raw.query('SELECT 41 + 1');
    expect(result.rows).toEqual([['42']]);
    expect(result.status).toBe('I');
    raw.destroy();
  });

  it('answers an SSLRequest with N when the listener has no TLS, then serves the startup', async () => {
    const raw = await RawPgClient.connect(gw.port);
    raw.write(sslRequest);
    expect(await raw.readByte()).toBe('N');
    await raw.login({ database: 'app', password: ALICE.token });
    expect((await raw.query('SELECT 7')).rows).toEqual([['7']]);
    raw.destroy();
  });

  it('refuses protocol 2.0 with 0A000', async () => {
    const raw = await RawPgClient.connect(gw.port);
    raw.write(protocol2StartupPacket('someone', 'app'));
    const { first } = await refusal(raw);
    expect(errorFields(first)).toMatchObject({ severity: 'FATAL', code: '0A000' });
    expect(errorFields(first).message).toContain('2.0');
  });

  it('answers protocol 3.2 with _pq_ options by NegotiateProtocolVersion, then authenticates', async () => {
    const raw = await RawPgClient.connect(gw.port);
    raw.startup({ user: 'someone', database: 'app', '_pq_.foo': 'bar' }, 2);
    const negotiate = await raw.next();
    expect(negotiate.type).toBe('v');
    const version = negotiate.body.readInt32BE(0);
    expect(version >>> 16).toBe(3);
    expect(version & 0xffff).toBe(0);
    expect(negotiate.body.readInt32BE(4)).toBe(1);
    expect(negotiate.body.subarray(8).toString('utf8')).toBe('_pq_.foo\0');
    const ask = await raw.next();
    expect(ask.type).toBe('R');
    expect(decodeAuthentication(ask.body, 0, ask.body.length).kind).toBe('cleartext');
    raw.write(passwordMessage(ALICE.token));
    const messages = await raw.readUntil('Z');
    expect(messages[0]!.type).toBe('R');
    expect(messages.map((m) => m.type)).toContain('K');
    expect((await raw.query('SELECT 1')).rows).toEqual([['1']]);
    raw.destroy();
  });

  it('refuses an absurd startup packet length with 08P01', async () => {
    const raw = await RawPgClient.connect(gw.port);
    const packet = Buffer.alloc(8);
    packet.writeInt32BE(0x7fffffff, 0);
    packet.writeInt32BE(196608, 4);
    raw.write(packet);
    const { first } = await refusal(raw);
    expect(errorFields(first)).toMatchObject({ severity: 'FATAL', code: '08P01' });
  });

  it('serves a client that pipelines its password right behind the startup message', async () => {
    const raw = await RawPgClient.connect(gw.port);
    raw.write(
      Buffer.concat([startupMessage({ user: 'u', database: 'app' }), passwordMessage(ALICE.token)]),
    );
    const messages = await raw.readUntil('Z');
    expect(messages.map((m) => m.type).filter((t) => t !== 'S')).toEqual(['R', 'R', 'K', 'Z']);
    expect((await raw.query('SELECT 2')).rows).toEqual([['2']]);
    raw.destroy();
  });

  it('lets a client end the login with Terminate instead of a password', async () => {
    const raw = await RawPgClient.connect(gw.port);
    raw.startup({ user: 'u', database: 'app' });
    expect((await raw.next()).type).toBe('R');
    raw.write(Buffer.from([0x58, 0, 0, 0, 4]));
    expect(await raw.readAllUntilClose()).toEqual([]);
  });
});

describe('the auth timeout', () => {
  let slow: GatewayFixture;

  beforeAll(async () => {
    slow = await startGatewayFixture({
      resources: { app: sharedResource(DB) },
      limits: { authTimeoutMs: 300 },
    });
  });

  afterAll(async () => {
    await slow?.dispose();
  });

  it('closes a silent client with an 08P01 error', async () => {
    const raw = await RawPgClient.connect(slow.port);
    const started = Date.now();
    const { first, rest } = await refusal(raw);
    expect(Date.now() - started).toBeGreaterThanOrEqual(250);
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(errorFields(first)).toMatchObject({ severity: 'FATAL', code: '08P01' });
    expect(errorFields(first).message).toContain('300 ms');
    expect(rest).toEqual([]);
  });

  it('also applies while the gateway waits for the password', async () => {
    const raw = await RawPgClient.connect(slow.port);
    raw.startup({ user: 'u', database: 'app' });
    expect((await raw.next()).type).toBe('R');
    const { first } = await refusal(raw);
    expect(errorFields(first)).toMatchObject({ severity: 'FATAL', code: '08P01' });
  });
});

describe('limits.maxConnections', () => {
  let small: GatewayFixture;

  beforeAll(async () => {
    small = await startGatewayFixture({
      resources: { app: sharedResource(DB) },
      limits: { maxConnections: 2 },
    });
  });

  afterAll(async () => {
    await small?.dispose();
  });

  it('refuses connections over the limit with 53300, counting those still in startup', async () => {
    const first = await RawPgClient.connect(small.port);
    const second = await small.connect('app');
    const err = await connectError(small.clientConfig('app'));
    expect(err.code).toBe('53300');
    expect(err.message).toBe('sorry, too many clients already');
    first.destroy();
    await first.waitClosed();
    // The gateway frees the slot once it sees the close.
    let client: pg.Client | null = null;
    for (let i = 0; i < 50 && client === null; i++) {
      client = await small.connect('app').catch(() => null);
      if (client === null) await new Promise((r) => setTimeout(r, 20));
    }
    expect(client).not.toBeNull();
    expect((await client!.query('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
    await client!.end();
    await second.end();
  });

  it('survives refused clients that reset the connection, and drops them at once', async () => {
    const holders = await Promise.all([small.connect('app'), small.connect('app')]);
    // Over the limit, clients that send a startup packet and reset: a write of the refusal then
    // fails with ECONNRESET, which must not become an uncaught exception.
    await Promise.all(
      Array.from({ length: 100 }, async () => {
        const raw = await RawPgClient.connect(small.port);
        raw.write(startupMessage({ user: 'u', database: 'app' }), Buffer.alloc(64 * 1024, 1));
        raw.socket.resetAndDestroy();
      }),
    );
    // pg sends its startup packet before it reads the refusal; that input must not keep the
    // refused socket open until its idle timeout (which would also hold up close()).
    expect((await connectError(small.clientConfig('app'))).code).toBe('53300');
    expect((await holders[0]!.query('SELECT 2 AS two')).rows).toEqual([{ two: 2 }]);
    await Promise.all(holders.map((c) => c.end()));
    const started = Date.now();
    await small.close();
    expect(Date.now() - started).toBeLessThan(3_000);
  });
});

describe('a listener that requires TLS', () => {
  let dir: string;
  let plain: GatewayFixture;
  let secure: GatewayFixture;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'portcullis-it-tls-'));
    const certs = await generateTlsCertificates({ dir });
    plain = await startGatewayFixture({
      resources: { app: sharedResource(DB) },
      listener: { insecure: false },
    });
    secure = await startGatewayFixture({
      resources: { app: sharedResource(DB) },
      listener: { insecure: false, tls: { cert: certs.certFile, key: certs.keyFile } },
    });
  });

  afterAll(async () => {
    await plain?.dispose();
    await secure?.dispose();
    await rm(dir, { recursive: true, force: true });
  });

  it('refuses a cleartext login with 28000 before asking for the password', async () => {
    const raw = await RawPgClient.connect(plain.port);
    raw.startup({ user: 'u', database: 'app' });
    const { first, rest } = await refusal(raw);
    expect(errorFields(first)).toMatchObject({ severity: 'FATAL', code: '28000' });
    expect(errorFields(first).message).toBe('this Portcullis listener requires TLS');
    expect(rest).toEqual([]);

    const err = await connectError(plain.clientConfig('app', { ssl: false }));
    expect(err.code).toBe('28000');
  });

  it('serves pg over TLS and records tls: true', async () => {
    const client = new pg.Client(
      secure.clientConfig('app', { ssl: { rejectUnauthorized: false } }),
    );
    await client.connect();
    const { rows } = await client.query('SELECT 1 AS one');
    expect(rows).toEqual([{ one: 1 }]);
    await client.end();
    const events = await secure.waitForEvents((e) => e.some((x) => x.type === 'session.end'));
    const start = events.find((e) => e.type === 'session.start');
    expect(start?.client.tls).toBe(true);
  });

  it('still refuses a plain startup on the TLS listener with 28000', async () => {
    const err = await connectError(secure.clientConfig('app', { ssl: false }));
    expect(err.code).toBe('28000');
  });

  it('refuses bytes sent after SSLRequest before the handshake with 08P01', async () => {
    const raw = await RawPgClient.connect(secure.port);
    raw.write(Buffer.concat([sslRequest, query('SELECT 1')]));
    const { first } = await refusal(raw);
    expect(errorFields(first)).toMatchObject({ severity: 'FATAL', code: '08P01' });
  });
});
