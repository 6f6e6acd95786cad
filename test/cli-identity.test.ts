// The CLI's identity commands as shipped (the built `portcullis`), against a real OIDC provider
// and a gateway with identity: `login` runs the device flow while the test approves it in the
// IdP's pages, stores the credentials file (0600), `credentials` prints URLs that connect with
// pg and name the person in the events, renews an expired credential with the refresh token,
// and `delegate`, `delegations` and `revoke` round-trip through the delegations API.
import { execFile, spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startOidcProvider, type OidcProviderServer } from '@portcullis/testkit';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createSharedDatabase,
  dropSharedDatabase,
  sharedResource,
  startGatewayFixture,
  superuserQuery,
  type GatewayFixture,
} from './support/gateway-fixture.js';
import { testIdpOidc } from './support/oidc-login.js';

const DB = 'it_cli_identity';
const ROOT = dirname(dirname(fileURLToPath(import.meta.url)));
const CLI = join(ROOT, 'packages/cli/dist/bin.js');

let idp: OidcProviderServer;
let gw: GatewayFixture;
let dir: string;
let credentialsFile: string;

/** Everything a run printed, and how it ended. */
interface CliRun {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs the built CLI with a private HOME, so nothing touches the real user's config. */
function cli(args: readonly string[]): Promise<CliRun> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [CLI, ...args],
      { env: { ...process.env, HOME: dir, XDG_CONFIG_HOME: join(dir, 'xdg') }, timeout: 30_000 },
      (err, stdout, stderr) => {
        resolve({
          code: err === null ? 0 : ((err as { code?: number }).code ?? null),
          stdout,
          stderr,
        });
      },
    );
  });
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'portcullis-cli-identity-'));
  credentialsFile = join(dir, 'creds', 'credentials.json');
  idp = await startOidcProvider();
  await createSharedDatabase(DB);
  await superuserQuery(
    `CREATE TABLE notes (id int, body text);
     INSERT INTO notes VALUES (1, 'hello');
     GRANT SELECT ON notes TO PUBLIC;`,
    DB,
  );
  gw = await startGatewayFixture({
    resources: { notes: sharedResource(DB, 'scram') },
    tokens: [],
    identity: {
      oidc: testIdpOidc(idp, {
        scopes: ['openid', 'email', 'profile', 'groups', 'offline_access'],
      }),
      groupAccess: [{ groups: ['engineering'], resources: ['notes'] }],
      agents: [{ id: idp.agents[0]!.clientId, name: 'Report bot' }],
    },
  });
}, 120_000);

afterAll(async () => {
  await gw?.dispose();
  await idp?.stop();
  await dropSharedDatabase(DB);
  await rm(dir, { recursive: true, force: true });
});

describe('portcullis login', () => {
  it('runs the device flow, shows the code, and stores the credentials privately', async () => {
    const child = spawn(
      process.execPath,
      [
        CLI,
        'login',
        '--gateway',
        gw.apiUrl!,
        '--pg',
        `${gw.host}:${gw.port}`,
        '--resource',
        'notes',
        '--config-file',
        credentialsFile,
        '--poll-interval',
        '1s',
      ],
      { env: { ...process.env, HOME: dir }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    const userCode = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`no user code within 20 s:\n${stderr}`)),
        20_000,
      );
      child.stderr.on('data', (chunk: Buffer) => {
        stderr += chunk.toString();
        const match = /enter the code\s+(\S+)/.exec(stderr);
        if (match !== null) {
          clearTimeout(timer);
          resolve(match[1]!);
        }
      });
    });
    expect(stderr).toContain(`${idp.issuer}/device`);
    await idp.completeDeviceFlow(userCode, 'ada');
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    expect(code, stderr).toBe(0);
    expect(stdout).toContain('Logged in as ada@example.com');
    expect(stdout).toContain('Next: portcullis credentials');

    const file = await stat(credentialsFile);
    expect(file.mode & 0o777).toBe(0o600);
    expect((await stat(dirname(credentialsFile))).mode & 0o777).toBe(0o700);
    const stored = JSON.parse(await readFile(credentialsFile, 'utf8')) as Record<string, unknown>;
    expect(stored).toMatchObject({
      issuer: idp.issuer,
      clientId: idp.cliClient.clientId,
      gateway: { url: gw.apiUrl },
      postgres: { host: gw.host, port: gw.port },
      defaultResource: 'notes',
    });
    const tokens = stored['tokens'] as { accessToken: string; refreshToken?: string };
    expect(tokens.refreshToken).toBeDefined();
    // No token is printed by login.
    for (const secret of [
      tokens.accessToken,
      tokens.refreshToken!,
      (stored['gateway'] as { token: string }).token,
    ]) {
      expect(stdout + stderr).not.toContain(secret);
    }
  });

  it('says what to do when the gateway cannot be reached', async () => {
    const run = await cli([
      'login',
      '--gateway',
      'http://127.0.0.1:1',
      '--config-file',
      join(dir, 'x.json'),
    ]);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/cannot reach the gateway at http:\/\/127\.0\.0\.1:1/);
  });
});

describe('portcullis credentials', () => {
  it('prints a URL that connects as the person', async () => {
    const run = await cli(['credentials', '--config-file', credentialsFile]);
    expect(run.code, run.stderr).toBe(0);
    const url = run.stdout.trim();
    expect(url).toMatch(/^postgresql:\/\/ada:[\w.-]+@127\.0\.0\.1:\d+\/notes$/);
    const client = new pg.Client({ connectionString: url, application_name: 'cli-url' });
    await client.connect();
    const { rows } = await client.query('SELECT body FROM notes');
    expect(rows).toEqual([{ body: 'hello' }]);
    await client.end();
    const events = await gw.sessionEvents('cli-url');
    const start = events.find((e) => e.type === 'session.start')!;
    expect(start.person).toMatchObject({ subject: 'ada', email: 'ada@example.com' });
    expect(start.authMethod).toBe('oidc');
  });

  it('prints pgpass, env and token forms of the same credential', async () => {
    const token = (
      await cli(['credentials', '-f', 'token', '--config-file', credentialsFile])
    ).stdout.trim();
    const pgpass = (
      await cli(['credentials', '-f', 'pgpass', '--config-file', credentialsFile])
    ).stdout.trim();
    const env = (
      await cli([
        'credentials',
        '-f',
        'env',
        '--sslmode',
        'disable',
        '--config-file',
        credentialsFile,
      ])
    ).stdout;
    expect(pgpass).toBe(`${gw.host}:${gw.port}:notes:ada:${token}`);
    expect(env).toContain(`export PGPASSWORD=${token}\n`);
    expect(env).toContain('export PGSSLMODE=disable');
  });

  it('renews an expired gateway credential with the refresh token', async () => {
    const stored = JSON.parse(await readFile(credentialsFile, 'utf8')) as {
      tokens: { accessToken: string; expiresAt?: number };
      gateway: { token: string; expiresAt: number };
    };
    const old = stored.gateway.token;
    stored.gateway.expiresAt = Date.now() - 1000;
    stored.tokens.expiresAt = Date.now() - 1000; // the IdP access token too: refresh needed
    await writeFile(credentialsFile, JSON.stringify(stored), { mode: 0o600 });
    const run = await cli(['credentials', '-f', 'token', '--config-file', credentialsFile]);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stderr).toContain('renewing your login');
    const fresh = run.stdout.trim();
    expect(fresh).not.toBe(old);
    const client = await gw.connect('notes', { password: fresh });
    await client.end();
    const saved = JSON.parse(await readFile(credentialsFile, 'utf8')) as typeof stored;
    expect(saved.gateway.token).toBe(fresh);
    expect(saved.tokens.accessToken).not.toBe(stored.tokens.accessToken);
    expect((await stat(credentialsFile)).mode & 0o777).toBe(0o600);
  });

  it('tells the user to log in when there is nothing to renew with', async () => {
    const missing = await cli(['credentials', '--config-file', join(dir, 'none.json')]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/not logged in .*portcullis login --gateway/);

    const stale = join(dir, 'stale.json');
    const stored = JSON.parse(await readFile(credentialsFile, 'utf8')) as Record<string, unknown>;
    await writeFile(
      stale,
      JSON.stringify({
        ...stored,
        tokens: { accessToken: 'x', tokenType: 'Bearer', expiresAt: 1 },
        gateway: { ...(stored['gateway'] as object), expiresAt: 1 },
      }),
      { mode: 0o600 },
    );
    const run = await cli(['credentials', '--config-file', stale]);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain(`log in again: portcullis login --gateway ${gw.apiUrl}`);
  });

  it('refuses a credentials file others can read', async () => {
    const open = join(dir, 'open.json');
    await writeFile(open, await readFile(credentialsFile, 'utf8'), { mode: 0o644 });
    const run = await cli(['credentials', '--config-file', open]);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain('chmod');
  });
});

describe('portcullis delegate, delegations, revoke', () => {
  it('round-trips a delegation', async () => {
    const agent = idp.agents[0]!.clientId;
    const created = await cli([
      'delegate',
      '--agent',
      agent,
      '--resources',
      'notes',
      '--ttl',
      '2h',
      '--reason',
      'weekly report',
      '--config-file',
      credentialsFile,
    ]);
    expect(created.code, created.stderr).toBe(0);
    const id = created.stdout.trim();
    expect(id).not.toBe('');
    expect(created.stderr).toContain(`portcullis revoke ${id}`);

    const listed = await cli(['delegations', '--config-file', credentialsFile]);
    expect(listed.code, listed.stderr).toBe(0);
    expect(listed.stdout).toMatch(
      new RegExp(`${id}\\s+${agent}\\s+notes\\s+active\\s+\\S+\\s+weekly report`),
    );

    const json = await cli(['delegations', '--json', '--config-file', credentialsFile]);
    const [entry] = JSON.parse(json.stdout) as { id: string; expiresAt: string }[];
    expect(entry?.id).toBe(id);
    const ttl = Date.parse(entry!.expiresAt) - Date.now();
    expect(ttl).toBeGreaterThan(7_000_000);
    expect(ttl).toBeLessThanOrEqual(7_200_000);

    const revoked = await cli(['revoke', id, '--config-file', credentialsFile]);
    expect(revoked.code, revoked.stderr).toBe(0);
    expect(revoked.stdout).toContain(`revoked ${id}`);
    expect((await cli(['delegations', '--config-file', credentialsFile])).stdout).toContain(
      'no active delegations',
    );
    expect((await cli(['delegations', '--all', '--config-file', credentialsFile])).stdout).toMatch(
      new RegExp(`${id}.*revoked`),
    );
  });

  it('explains refusals', async () => {
    const unknown = await cli([
      'delegate',
      '--agent',
      'nobody',
      '--resources',
      'notes',
      '--config-file',
      credentialsFile,
    ]);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain('identity.agents');
    const badTtl = await cli([
      'delegate',
      '--agent',
      'x',
      '--resources',
      'notes',
      '--ttl',
      '1 hour',
      '--config-file',
      credentialsFile,
    ]);
    expect(badTtl.code).toBe(1);
    expect(badTtl.stderr).toContain('expected a duration such as');
    const revokeUnknown = await cli(['revoke', 'no-such-id', '--config-file', credentialsFile]);
    expect(revokeUnknown.code).toBe(1);
    expect(revokeUnknown.stderr).toMatch(/portcullis: /);
  });
});
