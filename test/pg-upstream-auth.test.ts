// The gateway's own login to upstream PostgreSQL: every password method the testkit's roles use,
// TLS to the upstream, and how upstream failures reach the client (08001, no secrets).
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '@portcullis/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  connectError,
  createSharedDatabase,
  dropSharedDatabase,
  sharedPostgres,
  sharedResource,
  startGatewayFixture,
  type GatewayFixture,
} from './support/gateway-fixture.js';

const DB = 'it_pg_upstream_auth';
const WRONG_SECRET = 'upstream-secret-that-is-wrong-7f3a';

let gw: GatewayFixture;
let caDir: string | undefined;

beforeAll(async () => {
  await createSharedDatabase(DB);
  const pgServer = sharedPostgres();
  caDir = await mkdtemp(join(tmpdir(), 'portcullis-it-ca-'));
  const caFile = join(caDir, 'upstream-ca.pem');
  await writeFile(caFile, pgServer.tlsCa);
  gw = await startGatewayFixture({
    resources: {
      scram: sharedResource(DB, 'scram'),
      md5: sharedResource(DB, 'md5'),
      cleartext: sharedResource(DB, 'cleartext'),
      'tls-verify': sharedResource(DB, 'scram', { tls: { mode: 'verify-full', ca: caFile } }),
      'tls-require': sharedResource(DB, 'md5', { tls: { mode: 'require' } }),
      'tls-wrong-name': sharedResource(DB, 'scram', {
        tls: { mode: 'verify-full', ca: caFile, serverName: 'db.example.com' },
      }),
      'tls-no-ca': sharedResource(DB, 'scram', { tls: { mode: 'verify-full' } }),
      'wrong-scram': sharedResource(DB, {
        user: pgServer.roles.scram.user,
        password: WRONG_SECRET,
      }),
      'wrong-md5': sharedResource(DB, { user: pgServer.roles.md5.user, password: WRONG_SECRET }),
      'wrong-cleartext': sharedResource(DB, {
        user: pgServer.roles.cleartext.user,
        password: WRONG_SECRET,
      }),
      'no-password': { ...sharedResource(DB, 'scram'), password: undefined },
      'no-database': sharedResource('it_database_that_does_not_exist'),
      closed: { ...sharedResource(DB), port: await freePort() },
    },
  });
});

afterAll(async () => {
  await gw?.dispose();
  if (caDir !== undefined) await rm(caDir, { recursive: true, force: true });
  await dropSharedDatabase(DB);
});

const SESSION_SQL = `SELECT current_user AS who, coalesce(s.ssl, false) AS ssl
  FROM pg_stat_ssl s RIGHT JOIN (SELECT pg_backend_pid() AS pid) me ON s.pid = me.pid`;

describe('upstream password methods', () => {
  it.each([
    ['scram', 'portcullis_scram'],
    ['md5', 'portcullis_md5'],
    ['cleartext', 'portcullis_cleartext'],
  ])('logs in to resource %s as %s', async (resource, role) => {
    const client = await gw.connect(resource);
    const { rows } = await client.query(SESSION_SQL);
    expect(rows).toEqual([{ who: role, ssl: false }]);
    await client.end();
  });

  it('uses TLS upstream with verify-full and the server CA', async () => {
    const client = await gw.connect('tls-verify');
    const { rows } = await client.query(SESSION_SQL);
    expect(rows).toEqual([{ who: 'portcullis_scram', ssl: true }]);
    await client.end();
  });

  it('uses TLS upstream with require (no certificate check)', async () => {
    const client = await gw.connect('tls-require');
    const { rows } = await client.query(SESSION_SQL);
    expect(rows).toEqual([{ who: 'portcullis_md5', ssl: true }]);
    await client.end();
  });

  it.each(['tls-wrong-name', 'tls-no-ca'])(
    'refuses an upstream whose certificate does not verify (%s) with 08001',
    async (resource) => {
      const err = await connectError(gw.clientConfig(resource));
      expect(err.code).toBe('08001');
      expect(err.message).toBe(
        `could not connect to the upstream server of resource "${resource}"`,
      );
    },
  );
});

describe('upstream failures', () => {
  it.each(['wrong-scram', 'wrong-md5', 'wrong-cleartext'])(
    'answers a wrong upstream password (%s) with 08001 without the secret',
    async (resource) => {
      const err = await connectError(gw.clientConfig(resource));
      expect(err.code).toBe('08001');
      expect(err.severity).toBe('FATAL');
      const everything = JSON.stringify({ ...err, message: err.message });
      expect(everything).not.toContain(WRONG_SECRET);
      expect(everything).not.toContain('portcullis_');
    },
  );

  it('answers a resource with no password for a password upstream with 08001', async () => {
    const err = await connectError(gw.clientConfig('no-password'));
    expect(err.code).toBe('08001');
  });

  it('answers an upstream database that does not exist with 08001', async () => {
    const err = await connectError(gw.clientConfig('no-database'));
    expect(err.code).toBe('08001');
  });

  it('answers a closed upstream port with 08001 quickly', async () => {
    const started = Date.now();
    const err = await connectError(gw.clientConfig('closed'));
    expect(err.code).toBe('08001');
    expect(err.message).toBe('could not connect to the upstream server of resource "closed"');
    expect(Date.now() - started).toBeLessThan(3_000);
  });

  it('keeps serving after failed upstream logins', async () => {
    const client = await gw.connect('scram');
    expect((await client.query('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
    await client.end();
  });
});
