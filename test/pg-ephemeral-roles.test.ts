// Per-session ephemeral upstream roles against the real PostgreSQL of the integration run: an
// admin role with CREATEROLE (not superuser) creates a login role per session in a template role,
// a real client logs in as it, and the role is dropped afterwards or swept once expired.
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { resolveConfig, type PostgresResource } from '@portcullis/gateway';
import type { Logger } from '@portcullis/core';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  EPHEMERAL_ADMIN_APPLICATION_NAME,
  EphemeralRoleProvisioner,
  type EphemeralRole,
  type EphemeralRoleOptions,
} from '../packages/gateway/src/pg/ephemeral-roles.js';
import {
  createSharedDatabase,
  dropSharedDatabase,
  sharedPostgres,
  sharedResource,
  sleep,
  superuserQuery,
} from './support/gateway-fixture.js';

const DB = 'it_pg_ephemeral_roles';
const RUN = randomBytes(4).toString('hex');
const TEMPLATE = `it_eph_template_${RUN}`;
const ADMIN = `it_eph_admin_${RUN}`;
const ADMIN_PASSWORD = randomBytes(24).toString('base64url');
/** Made by the superuser: a hostile subject must not be able to drop it. */
const CANARY = `it_eph_canary_${RUN}`;
const PREFIX = `iteph${RUN}_`;
const ALICE = { subject: 'user-alice', email: 'alice@example.com' };

interface LogRecord {
  level: string;
  obj: object;
  msg: string | undefined;
}

const logRecords: LogRecord[] = [];
const logger: Logger = {
  debug: (obj, msg) => logRecords.push({ level: 'debug', obj, msg }),
  info: (obj, msg) => logRecords.push({ level: 'info', obj, msg }),
  warn: (obj, msg) => logRecords.push({ level: 'warn', obj, msg }),
  error: (obj, msg) => logRecords.push({ level: 'error', obj, msg }),
};

/** Every password any role was given in this suite, to look for where it must not be. */
const passwords: string[] = [];
const provisioners: EphemeralRoleProvisioner[] = [];
let resource: PostgresResource;

function provisioner(extra: Partial<EphemeralRoleOptions> = {}): EphemeralRoleProvisioner {
  const p = new EphemeralRoleProvisioner({
    resource,
    admin: { user: ADMIN, password: ADMIN_PASSWORD },
    templateRole: TEMPLATE,
    ttlMs: 10 * 60_000,
    prefix: PREFIX,
    logger,
    retryDelayMs: 20,
    ...extra,
  });
  provisioners.push(p);
  return p;
}

async function acquire(
  p: EphemeralRoleProvisioner,
  person = ALICE,
  sessionId = `s-${randomBytes(4).toString('hex')}`,
): Promise<EphemeralRole> {
  const role = await p.acquire(person, sessionId);
  passwords.push(role.password);
  return role;
}

/** Logs in as `role` with node-postgres over TCP (SCRAM-SHA-256, as pg_hba.conf says). */
async function login(role: { user: string; password: string }): Promise<pg.Client> {
  const server = sharedPostgres();
  const client = new pg.Client({
    host: server.host,
    port: server.port,
    database: DB,
    user: role.user,
    password: role.password,
  });
  client.on('error', () => undefined);
  await client.connect();
  return client;
}

async function sql(text: string): Promise<pg.QueryResult> {
  return superuserQuery(text, DB);
}

async function roleExists(name: string): Promise<boolean> {
  const { rows } = await sql(`SELECT 1 FROM pg_roles WHERE rolname = '${name}'`);
  return rows.length === 1;
}

async function sqlState(promise: Promise<unknown>): Promise<string | undefined> {
  try {
    await promise;
    return undefined;
  } catch (err) {
    return (err as { code?: string }).code;
  }
}

async function adminPids(): Promise<number[]> {
  const { rows } = await sql(
    `SELECT pid FROM pg_stat_activity
     WHERE usename = '${ADMIN}' AND application_name = '${EPHEMERAL_ADMIN_APPLICATION_NAME}'`,
  );
  return rows.map((r: { pid: number }) => r.pid);
}

beforeAll(async () => {
  await createSharedDatabase(DB);
  const config = resolveConfig(
    {
      dataDir: '/nonexistent',
      listeners: { postgres: { host: '127.0.0.1', port: 0, insecure: true } },
      resources: { [DB]: sharedResource(DB, 'scram') },
    },
    { baseDir: '/', env: {} },
    'test config',
  );
  resource = config.resources[DB]!;
  // The least-privilege setup docs/configuration.md gives operators for PostgreSQL 15 (the admin has
  // CREATEROLE and nothing else), plus statement logging for the admin so the test can show
  // what reaches the server log.
  await sql(`
    CREATE ROLE ${TEMPLATE} NOLOGIN;
    CREATE ROLE ${ADMIN} LOGIN CREATEROLE PASSWORD '${ADMIN_PASSWORD}';
    ALTER ROLE ${ADMIN} SET log_statement = 'all';
    CREATE ROLE ${CANARY} NOLOGIN;
    CREATE TABLE granted (id int PRIMARY KEY, note text);
    INSERT INTO granted VALUES (1, 'visible to the template');
    CREATE TABLE withheld (id int);
    GRANT USAGE, CREATE ON SCHEMA public TO ${TEMPLATE};
    GRANT SELECT ON granted TO ${TEMPLATE};
    CREATE TABLE template_owned (id int);
    ALTER TABLE template_owned OWNER TO ${TEMPLATE};
  `);
});

afterAll(async () => {
  await Promise.all(provisioners.map((p) => p.close()));
  // Objects the roles own live in the database: drop it first, then the roles.
  await dropSharedDatabase(DB);
  const { rows } = await superuserQuery(
    `SELECT rolname FROM pg_roles WHERE starts_with(rolname, '${PREFIX}')`,
  );
  for (const { rolname } of rows as { rolname: string }[]) {
    await superuserQuery(`DROP ROLE IF EXISTS "${rolname}"`);
  }
  await superuserQuery(`DROP ROLE IF EXISTS ${ADMIN}, ${TEMPLATE}, ${CANARY}`);
});

describe('acquire and release', () => {
  it("logs a session in as a person-named role holding exactly the template's privileges", async () => {
    const p = provisioner();
    const sessionId = 'session-1234';
    const started = Date.now();
    const role = await acquire(p, ALICE, sessionId);
    expect(role.user).toMatch(new RegExp(`^${PREFIX}user_alice_[a-z2-7]{10}$`));
    expect(role.password).toMatch(/^[A-Za-z0-9_-]{43}$/);

    const { rows: attrs } = await sql(`
      SELECT rolsuper, rolinherit, rolcreaterole, rolcreatedb, rolcanlogin, rolreplication,
             rolbypassrls, rolconnlimit, rolvaliduntil,
             pg_has_role(oid, '${TEMPLATE}', 'MEMBER') AS in_template,
             shobj_description(oid, 'pg_authid') AS comment
      FROM pg_roles WHERE rolname = '${role.user}'`);
    expect(attrs).toHaveLength(1);
    const attr = attrs[0] as Record<string, unknown>;
    expect(attr).toMatchObject({
      rolsuper: false,
      rolinherit: true,
      rolcreaterole: false,
      rolcreatedb: false,
      rolcanlogin: true,
      rolreplication: false,
      rolbypassrls: false,
      rolconnlimit: 1,
      in_template: true,
      comment: `portcullis session ${sessionId} for user-alice <alice@example.com>`,
    });
    const validUntil = (attr['rolvaliduntil'] as Date).getTime();
    expect(validUntil).toBeGreaterThan(started + 10 * 60_000 - 5_000);
    expect(validUntil).toBeLessThan(Date.now() + 10 * 60_000 + 5_000);
    expect(Math.abs(validUntil - role.validUntil.getTime())).toBeLessThan(1_000);

    const client = await login(role);
    const { rows: who } = await client.query('SELECT current_user AS cu, session_user AS su');
    expect(who).toEqual([{ cu: role.user, su: role.user }]);
    const { rows: data } = await client.query('SELECT note FROM granted');
    expect(data).toEqual([{ note: 'visible to the template' }]);
    expect(await sqlState(client.query('SELECT * FROM withheld'))).toBe('42501');
    expect(await sqlState(client.query("INSERT INTO granted VALUES (2, 'x')"))).toBe('42501');
    expect(await sqlState(client.query(`SET ROLE ${CANARY}`))).toBe('42501');
    expect(await sqlState(client.query('CREATE ROLE it_eph_not_allowed'))).toBe('42501');
    await client.end();

    await role.release();
    expect(await roleExists(role.user)).toBe(false);
    // Idempotent: the same promise, and nothing more happens.
    await expect(role.release()).resolves.toBeUndefined();
  });

  it('never hands the password to JSON or a logger', async () => {
    const p = provisioner();
    const role = await acquire(p);
    expect(JSON.stringify(role)).not.toContain(role.password);
    expect(JSON.stringify({ ...role })).not.toContain(role.password);
    expect(Object.keys(role)).not.toContain('password');
    await role.release();
  });

  it('gives concurrent sessions of one person distinct roles', async () => {
    const p = provisioner();
    const roles = await Promise.all(Array.from({ length: 6 }, () => acquire(p)));
    expect(new Set(roles.map((r) => r.user)).size).toBe(6);
    const clients = await Promise.all(roles.map((r) => login(r)));
    const users = await Promise.all(
      clients.map(async (c) => (await c.query('SELECT current_user AS u')).rows[0].u as string),
    );
    expect(users).toEqual(roles.map((r) => r.user));
    await Promise.all(clients.map((c) => c.end()));
    await Promise.all(roles.map((r) => r.release()));
    for (const r of roles) expect(await roleExists(r.user)).toBe(false);
  });

  it('lets each role log in once at a time (CONNECTION LIMIT 1)', async () => {
    const p = provisioner();
    const role = await acquire(p);
    const first = await login(role);
    expect(await sqlState(login(role))).toBe('53300');
    await first.end();
    await role.release();
  });

  it('waits for the session backend to exit, then drops the role with its temporary tables', async () => {
    const p = provisioner();
    const role = await acquire(p);
    const client = await login(role);
    await client.query('CREATE TEMP TABLE scratch AS SELECT 1 AS x');
    const released = role.release();
    await sleep(200);
    expect(await roleExists(role.user)).toBe(true); // still logged in
    await client.end();
    await released;
    expect(await roleExists(role.user)).toBe(false);
  });

  it('hands what a session created to the template role before dropping its role', async () => {
    const p = provisioner();
    const role = await acquire(p);
    const client = await login(role);
    const table = `made_by_session_${RUN}`;
    await client.query(`CREATE TABLE ${table} (id int)`);
    await client.query('ALTER DEFAULT PRIVILEGES GRANT SELECT ON TABLES TO PUBLIC');
    await client.end();
    // A privilege granted to the role itself (by the template's side, which the admin can act
    // for): DROP ROLE alone would refuse with 2BP01.
    await sql(`GRANT SELECT ON template_owned TO ${role.user}`);
    await role.release();
    expect(await roleExists(role.user)).toBe(false);
    const { rows } = await sql(
      `SELECT pg_get_userbyid(relowner) AS owner FROM pg_class WHERE relname = '${table}'`,
    );
    expect(rows).toEqual([{ owner: TEMPLATE }]);
    const { rows: defaults } = await sql('SELECT count(*)::int AS n FROM pg_default_acl');
    expect(defaults).toEqual([{ n: 0 }]);
  });

  it('leaves a role whose session is still logged in after releaseWaitMs to the sweeper', async () => {
    const p = provisioner({ releaseWaitMs: 200 });
    const role = await acquire(p);
    const client = await login(role);
    await role.release();
    expect(await roleExists(role.user)).toBe(true);
    expect(
      logRecords.some((r) => r.level === 'warn' && (r.obj as { role?: string }).role === role.user),
    ).toBe(true);
    await client.end();
    // A later release (another handle) or a sweep drops it; here the superuser cleans up.
    await sql(`DROP ROLE ${role.user}`);
  });
});

describe('hostile subjects', () => {
  it.each([
    '"; DROP ROLE x; --',
    `'; DROP ROLE ${CANARY}; --`,
    `"; DROP ROLE "${CANARY}"; --`,
    'Zoë Ångström 日本 😀',
    "back\\slash\\' $$ $x$ E'\\x27'",
    '\u0000nul\u0001',
    '日本語',
  ])('%j is harmless', async (subject) => {
    const p = provisioner();
    const email = `${subject}@example.com`;
    const sessionId = `'); DROP ROLE ${CANARY}; --`;
    const role = await acquire(p, { subject, email }, sessionId);
    expect(role.user).toMatch(/^[a-z0-9_]+$/);
    expect(Buffer.byteLength(role.user)).toBeLessThanOrEqual(63);
    expect(await roleExists(CANARY)).toBe(true);
    const { rows } = await sql(
      `SELECT shobj_description(oid, 'pg_authid') AS comment FROM pg_roles WHERE rolname = '${role.user}'`,
    );
    const printable = (s: string): string =>
      [...s].map((c) => (c.charCodeAt(0) < 0x20 ? '?' : c)).join('');
    expect(rows).toEqual([
      {
        comment: `portcullis session ${sessionId} for ${printable(subject)} <${printable(email)}>`,
      },
    ]);
    const client = await login(role);
    expect((await client.query('SELECT current_user AS u')).rows).toEqual([{ u: role.user }]);
    await client.end();
    await role.release();
    expect(await roleExists(role.user)).toBe(false);
    expect(await roleExists(CANARY)).toBe(true);
  });
});

describe('passwords never reach the server in clear', () => {
  it('stores only the SCRAM verifier computed by the gateway', async () => {
    const p = provisioner();
    const role = await acquire(p);
    const { rows } = await sql(`SELECT rolpassword FROM pg_authid WHERE rolname = '${role.user}'`);
    const stored = (rows[0] as { rolpassword: string }).rolpassword;
    expect(stored).toMatch(
      /^SCRAM-SHA-256\$4096:[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+:[A-Za-z0-9+/=]+$/,
    );
    expect(stored).not.toContain(role.password);
    const client = await login(role); // SCRAM login against that verifier
    await client.end();
    await role.release();
  });

  it('leaves no password in the server log, though every admin statement is logged', async () => {
    const p = provisioner();
    const role = await acquire(p);
    await role.release();
    const { rows } = await sql('SHOW data_directory');
    // The testkit writes the server's output beside the data directory (start-postgres.ts).
    const logFile = join(
      dirname((rows[0] as { data_directory: string }).data_directory),
      'postgres.log',
    );
    const log = await readFile(logFile, 'utf8');
    expect(log).toContain(`CREATE ROLE "${role.user}"`);
    expect(log).toContain('SCRAM-SHA-256$4096:');
    expect(passwords.length).toBeGreaterThan(5);
    for (const password of passwords) expect(log).not.toContain(password);
  });

  it("writes no password to the gateway's log", () => {
    const text = JSON.stringify(logRecords);
    expect(logRecords.some((r) => r.msg === 'ephemeral role created')).toBe(true);
    for (const password of passwords) expect(text).not.toContain(password);
    expect(text).not.toContain(ADMIN_PASSWORD);
    expect(text).not.toContain('SCRAM-SHA-256$');
  });
});

describe('sweeping expired roles', () => {
  it('drops expired leftovers without a backend, and nothing else', async () => {
    const shortLived = provisioner({ ttlMs: 1_000 });
    const leftover = await acquire(shortLived); // never released: a crashed gateway's role
    const busy = await acquire(shortLived);
    const busyClient = await login(busy); // logged in before expiry; outlives its VALID UNTIL
    const fresh = await acquire(provisioner()); // not expired
    // Expired and prefixed, but not a member of the template: not the provisioner's to drop.
    const stranger = `${PREFIX}stranger`;
    await sql(`CREATE ROLE ${stranger} LOGIN VALID UNTIL '2000-01-01'`);
    await sleep(1_500);
    expect(await sqlState(login(leftover))).toBe('28P01'); // VALID UNTIL passed
    await busyClient.query('SELECT 1'); // checked at login only: the session goes on

    const sweeper = provisioner();
    expect(await sweeper.sweepExpired()).toBe(1);
    expect(await roleExists(leftover.user)).toBe(false);
    expect(await roleExists(busy.user)).toBe(true);
    expect(await roleExists(fresh.user)).toBe(true);
    expect(await roleExists(stranger)).toBe(true);

    await busyClient.end();
    await sleep(200);
    expect(await sweeper.start()).toBe(1); // start() sweeps once
    expect(await roleExists(busy.user)).toBe(false);

    // Releasing a role a sweeper already dropped is fine.
    await leftover.release();
    await fresh.release();
    expect(await roleExists(fresh.user)).toBe(false);
    await sql(`DROP ROLE ${stranger}`);
  });

  it('sweeps in the background once started', async () => {
    const leftover = await acquire(provisioner({ ttlMs: 1_000 }));
    const sweeper = provisioner({ sweepIntervalMs: 300 });
    await sweeper.start();
    const deadline = Date.now() + 5_000;
    while ((await roleExists(leftover.user)) && Date.now() < deadline) await sleep(100);
    expect(await roleExists(leftover.user)).toBe(false);
    await sweeper.close();
  });
});

describe('the admin connection', () => {
  it('is one connection, reused, and reopened after the server ends it', async () => {
    await Promise.all(provisioners.splice(0).map((p) => p.close()));
    const p = provisioner();
    const first = await acquire(p);
    const pids = await adminPids();
    expect(pids).toHaveLength(1);
    await first.release();
    const second = await acquire(p);
    expect(await adminPids()).toEqual(pids); // the same connection serves every call

    await sql(`SELECT pg_terminate_backend(${pids[0]!})`);
    const deadline = Date.now() + 5_000;
    while ((await adminPids()).length > 0 && Date.now() < deadline) await sleep(20);

    const third = await acquire(p);
    const reopened = await adminPids();
    expect(reopened).toHaveLength(1);
    expect(reopened).not.toEqual(pids);
    const client = await login(third);
    expect((await client.query('SELECT current_user AS u')).rows).toEqual([{ u: third.user }]);
    await client.end();
    await third.release();
    await second.release();
    expect(await roleExists(third.user)).toBe(false);
    expect(await roleExists(second.user)).toBe(false);
  });

  it('is closed by close(), after which acquire is refused', async () => {
    await Promise.all(provisioners.splice(0).map((p) => p.close()));
    const p = provisioner();
    const role = await acquire(p);
    expect(await adminPids()).toHaveLength(1);
    await role.release();
    await p.close();
    await sleep(100);
    expect(await adminPids()).toEqual([]);
    await expect(p.acquire(ALICE, 's')).rejects.toThrow(/closed/);
  });

  it('reports a refused admin login with PCL_ERR_UPSTREAM_CONNECT and no secret', async () => {
    const p = provisioner({ admin: { user: ADMIN, password: 'wrong-admin-password-123' } });
    const err = (await p.acquire(ALICE, 's').catch((e: unknown) => e)) as Error & {
      code?: string;
    };
    expect(err.code).toBe('PCL_ERR_UPSTREAM_CONNECT');
    expect(err.message).not.toContain('wrong-admin-password-123');
  });
});
