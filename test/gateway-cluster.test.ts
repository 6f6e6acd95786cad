// The multi-process gateway as shipped: the built CLI (`portcullis start --processes 2`) from a
// YAML file, sessions spread over worker processes, cancels routed to the worker that owns the
// session, and one event file that every worker appends to.
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { SessionEvent } from '@portcullis/core';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createSharedDatabase,
  dropSharedDatabase,
  newToken,
  queryError,
  sharedPostgres,
  sleep,
  superuserQuery,
} from './support/gateway-fixture.js';
import { CLI, startCliCluster, type CliCluster } from './support/cli-cluster.js';
import { sendCancelRequest } from './support/raw-pg-client.js';

const DB = 'it_gateway_cluster';
const TOKEN = newToken('cluster');

let dir: string;
let cluster: CliCluster | undefined;
let port = 0;

/** Starts `portcullis start --processes 2` and resolves with the port it prints once listening. */
async function startCli(configFile: string): Promise<number> {
  cluster = await startCliCluster({
    configFile,
    cwd: dir,
    processes: 2,
    env: {
      CLUSTER_TOKEN: TOKEN,
      CLUSTER_UPSTREAM_PASSWORD: sharedPostgres().roles.scram.password,
    },
  });
  expect(cluster.host).toBe('127.0.0.1');
  expect(cluster.processes).toBe(2);
  return cluster.port;
}

function yamlConfig(): string {
  const pgServer = sharedPostgres();
  return [
    '# Written by test/gateway-cluster.test.ts',
    'dataDir: ./data',
    'log:',
    '  level: warn',
    'listeners:',
    '  postgres:',
    '    host: 127.0.0.1',
    '    port: 0',
    '    insecure: true',
    '  http:',
    '    host: 127.0.0.1',
    '    port: 0',
    'resources:',
    '  app:',
    '    type: postgres',
    `    host: ${pgServer.host}`,
    `    port: ${pgServer.port}`,
    `    database: ${DB}`,
    `    user: ${pgServer.roles.scram.user}`,
    '    password:',
    '      env: CLUSTER_UPSTREAM_PASSWORD',
    'tokens:',
    '  - token:',
    '      env: CLUSTER_TOKEN',
    '    person:',
    '      subject: user-cluster',
    '      email: cluster@example.com',
    '      groups: [ops]',
    'events:',
    '  flushIntervalMs: 20',
    '',
  ].join('\n');
}

function clientConfig(): pg.ClientConfig {
  return {
    host: '127.0.0.1',
    port,
    user: 'cluster-user',
    password: TOKEN,
    database: 'app',
    connectionTimeoutMillis: 10_000,
  };
}

/** The gateway's cancel key as pg saw it in BackendKeyData; the top byte names the worker slot. */
function keyOf(client: pg.Client): { processID: number; secretKey: number } {
  return client as unknown as { processID: number; secretKey: number };
}

async function upstreamPid(client: pg.Client): Promise<number> {
  return (await client.query('SELECT pg_backend_pid() AS pid')).rows[0].pid as number;
}

async function waitForActivity(pid: number, sql: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    const { rows } = await superuserQuery(
      `SELECT query, state FROM pg_stat_activity WHERE pid = ${pid}`,
    );
    if (rows[0]?.state === 'active' && rows[0]?.query === sql) return;
    await sleep(20);
  }
  throw new Error(`backend ${pid} did not start ${sql}`);
}

const clients: pg.Client[] = [];
const SESSIONS = 10;

beforeAll(async () => {
  if (!existsSync(CLI)) {
    throw new Error(`${CLI} is missing: build first (npx tsc -b)`);
  }
  await createSharedDatabase(DB);
  dir = await mkdtemp(join(tmpdir(), 'portcullis-it-cluster-'));
  const configFile = join(dir, 'portcullis.yaml');
  await writeFile(configFile, yamlConfig(), { mode: 0o600 });
  port = await startCli(configFile);
});

afterAll(async () => {
  await Promise.all(clients.map((c) => c.end().catch(() => undefined)));
  await cluster?.stop();
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  await dropSharedDatabase(DB);
});

describe('portcullis start --processes 2', () => {
  it('serves concurrent sessions from both worker processes', async () => {
    for (let i = 0; i < SESSIONS; i++) {
      const client = new pg.Client({ ...clientConfig(), application_name: `cluster-${i}` });
      client.on('error', () => undefined);
      clients.push(client);
    }
    await Promise.all(clients.map((c) => c.connect()));
    const results = await Promise.all(
      clients.map(async (client, i) => {
        await client.query('CREATE TEMP TABLE t (v int)');
        await client.query('INSERT INTO t SELECT generate_series(1, $1::int)', [i + 1]);
        return (await client.query('SELECT sum(v)::int AS s FROM t')).rows[0].s as number;
      }),
    );
    expect(results).toEqual(clients.map((_, i) => ((i + 1) * (i + 2)) / 2));
    const slots = new Set(clients.map((c) => keyOf(c).processID >>> 24));
    expect([...slots].sort()).toEqual([0, 1]);
  });

  it('serves health, readiness and metrics summed over both workers on the primary', async () => {
    expect((await fetch(`${cluster!.httpBase}/healthz`)).status).toBe(200);
    expect((await fetch(`${cluster!.httpBase}/readyz`)).status).toBe(200);
    const text = await (await fetch(`${cluster!.httpBase}/metrics`)).text();
    const count = (kind: string): number =>
      Number(
        new RegExp(
          `portcullis_statements_total\\{resource="app",kind="${kind}",verdict="allow"\\} (\\d+)`,
        ).exec(text)?.[1] ?? 0,
      );
    // Every session of the test above ran one CREATE, one INSERT and one SELECT, on either worker.
    expect(count('create')).toBe(SESSIONS);
    expect(count('insert')).toBe(SESSIONS);
    expect(count('select')).toBeGreaterThanOrEqual(SESSIONS);
    expect(text).toContain('portcullis_sessions_active{resource="app"} 10');
  });

  it(
    'cancels queries whichever worker the CancelRequest lands on',
    { timeout: 60_000 },
    async () => {
      // Round-robin distribution alternates the workers that accept consecutive connections, so
      // three cancels in a row for one session reach both its own worker and the other one.
      const bySlot = new Map<number, pg.Client>();
      for (const client of clients) bySlot.set(keyOf(client).processID >>> 24, client);
      for (const [, client] of bySlot) {
        const pid = await upstreamPid(client);
        const key = keyOf(client);
        for (let round = 0; round < 3; round++) {
          const started = Date.now();
          const sleeping = queryError(client, 'SELECT pg_sleep(30)');
          await waitForActivity(pid, 'SELECT pg_sleep(30)');
          await sendCancelRequest(port, key.processID, key.secretKey);
          const err = await sleeping;
          expect(err.code).toBe('57014');
          expect(Date.now() - started).toBeLessThan(10_000);
        }
        expect(await upstreamPid(client)).toBe(pid);
      }
    },
  );

  it(
    'writes every session, in order, to one event file and stops on SIGTERM',
    { timeout: 60_000 },
    async () => {
      // Half the sessions end normally, the rest are ended by the shutdown.
      const ending = clients.splice(0, SESSIONS / 2);
      await Promise.all(ending.map((c) => c.end()));
      const open = clients.splice(0);
      const shutdownErrors: string[] = [];
      for (const client of open)
        client.on('error', (err: Error & { code?: string }) => shutdownErrors.push(err.code ?? ''));

      cluster!.child.kill('SIGTERM');
      const exit = await Promise.race([
        cluster!.exited,
        sleep(20_000).then(() => ({ code: -1, signal: null })),
      ]);
      expect(exit, cluster!.output()).toEqual({ code: 0, signal: null });
      expect(shutdownErrors.filter((code) => code === '57P01')).toHaveLength(open.length);
      await Promise.all(open.map((c) => c.end().catch(() => undefined)));

      const text = await readFile(join(dir, 'data', 'events.jsonl'), 'utf8');
      expect(text.endsWith('\n')).toBe(true);
      const events = text
        .trimEnd()
        .split('\n')
        .map((line) => JSON.parse(line) as SessionEvent);
      const sessions = new Map<string, SessionEvent[]>();
      for (const event of events) {
        sessions.set(event.sessionId, [...(sessions.get(event.sessionId) ?? []), event]);
      }
      expect(sessions.size).toBe(SESSIONS);
      const applications = new Set<string>();
      const reasons: string[] = [];
      for (const [, list] of sessions) {
        expect(list.map((e) => e.seq)).toEqual(list.map((_, i) => i));
        expect(list[0]!.type).toBe('session.start');
        expect(list.at(-1)!.type).toBe('session.end');
        expect(list.every((e) => e.person.subject === 'user-cluster' && e.resource === 'app')).toBe(
          true,
        );
        applications.add(list[0]!.client.application);
        reasons.push(list.at(-1)!.summary!.reason);
        const statements = list.filter((e) => e.type === 'statement');
        // CREATE, INSERT, SELECT, pg_backend_pid() and any cancelled sleeps.
        expect(statements.slice(0, 3).map((e) => e.statement!.tag)).toEqual([
          'CREATE TABLE',
          `INSERT 0 ${Number(list[0]!.client.application.slice('cluster-'.length)) + 1}`,
          'SELECT 1',
        ]);
        expect(list.at(-1)!.summary!.statements).toBe(statements.length);
      }
      expect(applications).toEqual(
        new Set(Array.from({ length: SESSIONS }, (_, i) => `cluster-${i}`)),
      );
      expect(reasons.sort()).toEqual([
        ...Array<string>(SESSIONS / 2).fill('client-closed'),
        ...Array<string>(SESSIONS / 2).fill('shutdown'),
      ]);
      const cancelled = events.filter((e) => e.statement?.error?.code === '57014');
      expect(cancelled).toHaveLength(6);
    },
  );
});
