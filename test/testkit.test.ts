// Integration tests of @portcullis/testkit against real PostgreSQL and PgBouncer processes.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import {
  ensurePostgresInstalled,
  parsePgbenchOutput,
  runProgram,
  startPgBouncer,
  startPostgres,
  type PostgresCredentials,
  type PostgresServer,
} from '@portcullis/testkit';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type {} from './provided.js';

const shared = inject('postgres');

type AuthMethod = 'cleartext' | 'md5' | 'scram';

/** Connects, runs `sql`, disconnects; reports which password method the server asked for. */
async function queryAs(
  config: pg.ClientConfig,
  sql: string,
): Promise<{ rows: Record<string, unknown>[]; auth: AuthMethod | undefined }> {
  const client = new pg.Client({ connectionTimeoutMillis: 10_000, ...config });
  client.on('error', () => undefined);
  let auth: AuthMethod | undefined;
  client.connection.once('authenticationCleartextPassword', () => (auth = 'cleartext'));
  client.connection.once('authenticationMD5Password', () => (auth = 'md5'));
  client.connection.once('authenticationSASL', () => (auth = 'scram'));
  await client.connect();
  try {
    const result = await client.query(sql);
    return { rows: result.rows as Record<string, unknown>[], auth };
  } finally {
    await client.end().catch(() => undefined);
  }
}

function tcp(
  server: { host: string; port: number },
  role: PostgresCredentials,
  database = 'postgres',
): pg.ClientConfig {
  return {
    host: server.host,
    port: server.port,
    user: role.user,
    password: role.password,
    database,
  };
}

describe('shared PostgreSQL (global setup)', () => {
  const roles: [AuthMethod, PostgresCredentials][] = [
    ['scram', shared.roles.scram],
    ['md5', shared.roles.md5],
    ['cleartext', shared.roles.cleartext],
  ];

  it('pg_hba.conf gives each role its password method over TCP', async () => {
    const { rows } = await queryAs(
      tcp(shared, shared.superuser),
      `SELECT type, user_name, address, auth_method, error FROM pg_hba_file_rules ORDER BY line_number`,
    );
    const byUser = new Map(
      rows
        .filter((row) => row['type'] === 'host')
        .map((row) => [(row['user_name'] as string[]).join(','), row['auth_method']]),
    );
    expect(rows.every((row) => row['error'] === null)).toBe(true);
    expect(byUser.get(shared.roles.md5.user)).toBe('md5');
    expect(byUser.get(shared.roles.cleartext.user)).toBe('password');
    expect(byUser.get('all')).toBe('scram-sha-256');
    expect(rows.find((row) => row['type'] === 'local')?.['auth_method']).toBe('trust');
  });

  it.each(roles)('the %s role logs in with that method', async (method, role) => {
    const { rows, auth } = await queryAs(tcp(shared, role), 'SELECT current_user AS who');
    expect(auth).toBe(method);
    expect(rows[0]?.['who']).toBe(role.user);
  });

  it.each(roles)('the %s role is refused with a wrong password', async (_method, role) => {
    await expect(
      queryAs(tcp(shared, { user: role.user, password: 'wrong' }), 'SELECT 1'),
    ).rejects.toMatchObject({ code: '28P01' });
  });

  it('the superuser authenticates with SCRAM and stores an MD5 hash only for the md5 role', async () => {
    const { rows, auth } = await queryAs(
      tcp(shared, shared.superuser),
      `SELECT rolname, left(rolpassword, 3) AS kind FROM pg_authid WHERE rolname LIKE 'portcullis_%'`,
    );
    expect(auth).toBe('scram');
    const kinds = Object.fromEntries(rows.map((row) => [row['rolname'], row['kind']]));
    expect(kinds).toEqual({
      [shared.roles.scram.user]: 'SCR',
      [shared.roles.md5.user]: 'md5',
      [shared.roles.cleartext.user]: 'SCR',
    });
  });

  it('serves TLS with a certificate that verifies against tlsCa', async () => {
    const { rows } = await queryAs(
      { ...tcp(shared, shared.roles.scram), ssl: { ca: shared.tlsCa } },
      'SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()',
    );
    expect(rows[0]?.['ssl']).toBe(true);
    expect(rows[0]?.['version']).toMatch(/^TLSv1\.[23]$/);
    // Without the CA the certificate must not verify.
    await expect(
      queryAs(
        { ...tcp(shared, shared.roles.scram), ssl: { rejectUnauthorized: true } },
        'SELECT 1',
      ),
    ).rejects.toThrow(/self[- ]signed|unable to verify|certificate/i);
  });

  it('runs pgbench and parses its output', { timeout: 120_000 }, async () => {
    const { binDir } = await ensurePostgresInstalled();
    const pgbench = join(binDir, 'pgbench');
    await queryAs(tcp(shared, shared.superuser), 'DROP DATABASE IF EXISTS testkit_pgbench');
    await queryAs(tcp(shared, shared.superuser), 'CREATE DATABASE testkit_pgbench');
    const env = { ...process.env, PGPASSWORD: shared.superuser.password };
    const conn = ['-h', shared.host, '-p', String(shared.port), '-U', shared.superuser.user];
    await runProgram(pgbench, ['-i', '-s', '1', '-q', ...conn, 'testkit_pgbench'], {
      env,
      timeoutMs: 60_000,
    });
    const { stdout } = await runProgram(
      pgbench,
      ['-S', '-T', '2', '-c', '2', '-j', '2', ...conn, 'testkit_pgbench'],
      { env, timeoutMs: 60_000 },
    );
    const result = parsePgbenchOutput(stdout);
    expect(result.tps).toBeGreaterThan(0);
    expect(result.transactions).toBeGreaterThan(0);
    expect(result.latencyMs).toBeGreaterThan(0);
    expect(result.failed).toBe(0);
    await queryAs(tcp(shared, shared.superuser), 'DROP DATABASE testkit_pgbench');
  });
});

describe('a private PostgreSQL server', () => {
  let server: PostgresServer;

  beforeAll(async () => {
    server = await startPostgres({ maxConnections: 40, settings: { work_mem: '8MB' } });
  });

  afterAll(async () => {
    await server?.stop();
  });

  it('applies the options', async () => {
    const settings = await server.query(
      `SELECT name, setting, unit FROM pg_settings WHERE name IN ('max_connections', 'work_mem', 'fsync', 'ssl', 'port') ORDER BY name`,
    );
    const byName = Object.fromEntries(settings.rows.map((row) => [row.name, row.setting]));
    expect(byName).toEqual({
      fsync: 'off',
      max_connections: '40',
      port: String(server.port),
      ssl: 'on',
      work_mem: String(8 * 1024),
    });
    expect(server.url()).toBe(
      `postgresql://postgres:${encodeURIComponent(server.superuser.password)}@127.0.0.1:${server.port}/postgres`,
    );
  });

  it('createDatabase lets every role create tables there', async () => {
    await server.createDatabase('testkit app');
    for (const role of Object.values(server.roles)) {
      const client = new pg.Client({ connectionString: server.url('testkit app', role) });
      await client.connect();
      try {
        const table = `t_${role.user}`;
        await client.query(`CREATE TABLE ${table} (id int)`);
        await client.query(`INSERT INTO ${table} VALUES (1)`);
        const { rows } = await client.query(`SELECT count(*)::int AS n FROM ${table}`);
        expect(rows[0]).toEqual({ n: 1 });
      } finally {
        await client.end();
      }
    }
  });

  it('kill() drops the server but keeps its data; start() brings it back', async () => {
    const role = server.roles.scram;
    await queryAs(
      tcp(server, role),
      'CREATE TABLE survivor (v text); INSERT INTO survivor VALUES ($$kept$$)',
    );
    const open = new pg.Client(tcp(server, role));
    open.on('error', () => undefined);
    await open.connect();

    await server.kill();
    await expect(open.query('SELECT 1')).rejects.toThrow();
    await expect(queryAs(tcp(server, role), 'SELECT 1')).rejects.toMatchObject({
      code: 'ECONNREFUSED',
    });
    expect(existsSync(server.dataDir)).toBe(true);

    await server.start();
    const { rows } = await queryAs(tcp(server, role), 'SELECT v FROM survivor');
    expect(rows).toEqual([{ v: 'kept' }]);
    await open.end().catch(() => undefined);
  });

  it('restart() keeps the port and data', async () => {
    const before = await server.query('SELECT pg_postmaster_start_time() AS t');
    await server.restart();
    const after = await server.query('SELECT pg_postmaster_start_time() AS t');
    expect(after.rows[0].t.getTime()).toBeGreaterThan(before.rows[0].t.getTime());
    const { rows } = await queryAs(tcp(server, server.roles.scram), 'SELECT v FROM survivor');
    expect(rows).toEqual([{ v: 'kept' }]);
  });

  it('PgBouncer relays every role to the upstream, then stops', { timeout: 300_000 }, async () => {
    const { scram, md5, cleartext } = server.roles;
    const bouncer = await startPgBouncer({ upstream: server, users: [scram, md5, cleartext] });
    try {
      expect(bouncer.port).not.toBe(server.port);
      for (const role of [scram, md5, cleartext]) {
        const { rows, auth } = await queryAs(
          { connectionString: bouncer.url('testkit app', role.user, role.password) },
          'SELECT current_user AS who, current_database() AS db, inet_server_port() AS upstream',
        );
        expect(auth).toBe('md5');
        expect(rows[0]).toEqual({ who: role.user, db: 'testkit app', upstream: server.port });
      }
      await expect(
        queryAs({ connectionString: bouncer.url('postgres', scram.user, 'wrong') }, 'SELECT 1'),
      ).rejects.toThrow();
    } finally {
      await bouncer.stop();
    }
    await expect(
      queryAs(
        { connectionString: bouncer.url('postgres', scram.user, scram.password) },
        'SELECT 1',
      ),
    ).rejects.toMatchObject({ code: 'ECONNREFUSED' });
    await bouncer.stop();
  });

  it('stop() removes every file and is idempotent', async () => {
    const { dataDir } = server;
    await server.stop();
    expect(existsSync(dataDir)).toBe(false);
    await server.stop();
    await expect(server.start()).rejects.toThrow(/stopped/);
  });
});
