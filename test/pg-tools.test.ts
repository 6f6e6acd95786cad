// Real PostgreSQL client programs through the gateway: psql (libpq) and pgbench.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { SessionEvent } from '@portcullis/core';
import {
  ensurePostgresInstalled,
  generateTlsCertificates,
  parsePgbenchOutput,
  runProgram,
} from '@portcullis/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ALICE,
  createSharedDatabase,
  dropSharedDatabase,
  sharedResource,
  startGatewayFixture,
  type GatewayFixture,
} from './support/gateway-fixture.js';

const DB = 'it_pg_tools';

let gw: GatewayFixture;
let binDir: string;

beforeAll(async () => {
  await createSharedDatabase(DB);
  binDir = (await ensurePostgresInstalled()).binDir;
  gw = await startGatewayFixture({ resources: { bench: sharedResource(DB) } });
});

afterAll(async () => {
  await gw?.dispose();
  await dropSharedDatabase(DB);
});

const env = (): NodeJS.ProcessEnv => ({
  ...process.env,
  PGPASSWORD: ALICE.token,
  PGCONNECT_TIMEOUT: '10',
});

/** Runs a program and returns its exit status and output, without throwing on failure. */
async function run(
  program: string,
  args: string[],
): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const result = await runProgram(join(binDir, program), args, { env: env(), timeoutMs: 90_000 });
    return { code: 0, stdout: result.stdout, stderr: result.stderr };
  } catch (err) {
    const message = (err as Error).message;
    const code = /exited with status (\d+)/.exec(message);
    if (code === null) throw err;
    return { code: Number(code[1]), stdout: '', stderr: message };
  }
}

describe('psql', () => {
  const url = (): string => `postgresql://psql-user@127.0.0.1:${gw.port}/bench`;

  it('runs commands with -c', async () => {
    const result = await run('psql', [
      url(),
      '-X',
      '-A',
      '-t',
      '-v',
      'ON_ERROR_STOP=1',
      '-c',
      "SELECT current_user, current_database(), current_setting('application_name')",
    ]);
    expect(result).toEqual({
      code: 0,
      stdout: `portcullis_scram|${DB}|psql (portcullis:user-alice)\n`,
      stderr: '',
    });
  });

  it('stops on the first error with ON_ERROR_STOP and prints the server error', async () => {
    const result = await run('psql', [url(), '-X', '-v', 'ON_ERROR_STOP=1', '-c', 'SELECT 1/0']);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('ERROR:  division by zero');
  });

  it('reports a wrong token as a password failure', async () => {
    const result = await runProgram(join(binDir, 'psql'), [url(), '-X', '-c', 'SELECT 1'], {
      env: { ...env(), PGPASSWORD: 'wrong-token' },
      timeoutMs: 30_000,
    }).then(
      () => 'connected',
      (err: Error) => err.message,
    );
    expect(result).toContain('password authentication failed for user "psql-user"');
  });

  describe('with a TLS listener', () => {
    let dir: string;
    let secure: GatewayFixture;

    beforeAll(async () => {
      dir = await mkdtemp(join(tmpdir(), 'portcullis-it-tools-'));
      const certs = await generateTlsCertificates({ dir });
      secure = await startGatewayFixture({
        resources: { bench: sharedResource(DB) },
        listener: { insecure: false, tls: { cert: certs.certFile, key: certs.keyFile } },
      });
    });

    afterAll(async () => {
      await secure?.dispose();
      await rm(dir, { recursive: true, force: true });
    });

    it('connects with sslmode=verify-full against the CA, and is refused without TLS', async () => {
      const base = `postgresql://psql-user@127.0.0.1:${secure.port}/bench`;
      const ok = await run('psql', [
        `${base}?sslmode=verify-full&sslrootcert=${join(dir, 'ca.crt')}`,
        '-X',
        '-A',
        '-t',
        '-c',
        'SELECT 42',
      ]);
      expect(ok).toEqual({ code: 0, stdout: '42\n', stderr: '' });
      const refused = await run('psql', [`${base}?sslmode=disable`, '-X', '-c', 'SELECT 1']);
      expect(refused.code).toBe(2);
      expect(refused.stderr).toContain('this Portcullis listener requires TLS');
      const events = await secure.waitForEvents((e) => e.some((x) => x.type === 'session.end'));
      expect(events.find((e) => e.type === 'session.start')?.client).toMatchObject({
        tls: true,
        application: 'psql',
        user: 'psql-user',
      });
    });
  });
});

describe('pgbench', () => {
  const conn = (): string[] => ['-h', '127.0.0.1', '-p', String(gw.port), '-U', 'bench-user'];
  const SELECT_ONLY = /^SELECT abalance FROM pgbench_accounts WHERE aid = (\?|\$1);?$/;

  async function benchStatements(mode: 'simple' | 'extended'): Promise<SessionEvent[]> {
    const events = await gw.readEvents();
    return events.filter(
      (e) =>
        e.type === 'statement' &&
        e.statement!.protocol === mode &&
        SELECT_ONLY.test(e.statement!.text),
    );
  }

  it('initializes through the gateway', { timeout: 120_000 }, async () => {
    const init = await run('pgbench', ['-i', '-s', '1', '-q', ...conn(), 'bench']);
    expect(init.code, init.stderr).toBe(0);
    const client = await gw.connect('bench');
    const { rows } = await client.query(
      'SELECT (SELECT count(*) FROM pgbench_accounts)::int AS accounts, (SELECT count(*) FROM pgbench_branches)::int AS branches',
    );
    expect(rows).toEqual([{ accounts: 100_000, branches: 1 }]);
    await client.end();
  });

  it.each([
    ['simple', 'simple'],
    ['prepared', 'extended'],
  ] as const)(
    'runs -S -T 2 -c 4 in %s mode with no failures, every statement recorded',
    { timeout: 60_000 },
    async (mode, protocol) => {
      const before = (await benchStatements(protocol)).length;
      const { code, stdout, stderr } = await run('pgbench', [
        '-S',
        '-T',
        '2',
        '-c',
        '4',
        '-j',
        '2',
        '-M',
        mode,
        ...conn(),
        'bench',
      ]);
      expect(code, stderr).toBe(0);
      const result = parsePgbenchOutput(stdout);
      expect(result.failed).toBe(0);
      expect(result.transactions).toBeGreaterThan(100);
      const recorded = (await benchStatements(protocol)).slice(before);
      // Each select-only transaction is one statement; runs cut off at the deadline add at most
      // one per client.
      expect(recorded.length).toBeGreaterThanOrEqual(result.transactions);
      expect(recorded.length).toBeLessThanOrEqual(result.transactions + 4);
      expect(recorded.every((e) => e.statement!.error === null && e.statement!.rows === 1)).toBe(
        true,
      );
      if (protocol === 'extended') {
        expect(recorded.every((e) => e.statement!.preparedName !== '')).toBe(true);
        expect(recorded.every((e) => e.statement!.params === 1)).toBe(true);
      }
    },
  );
});
