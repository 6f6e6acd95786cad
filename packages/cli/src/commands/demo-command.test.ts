// The identity wiring of `portcullis demo`, in process: the demo IdP, the gateway configured with
// demoIdentityConfig, and demoCredentials through the gateway's real endpoints. A person's URL
// and the agent's URL both connect; the events name the person on both sessions and the agent
// on the second. (The whole demo command adds only printing and signal handling.)
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { SessionEvent } from '@portcullis/core';
import { createLogger, resolveConfig, runGateway, type RunningGateway } from '@portcullis/gateway';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDemoIdp, type DemoIdp } from '../demo/demo-idp.js';
import { startDemoUpstream, type DemoUpstream } from '../demo/demo-upstream.js';
import { demoCredentials, demoIdentityConfig, type DemoCredentials } from './demo-command.js';
import { GatewayApi } from './gateway-api.js';

let dataDir: string;
let upstream: DemoUpstream;
let idp: DemoIdp;
let running: RunningGateway;
let api: GatewayApi;
let sso: DemoCredentials;

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'portcullis-demo-identity-'));
  upstream = await startDemoUpstream({ dataDir, port: 0 });
  idp = await startDemoIdp({
    dataDir,
    people: [
      {
        subject: 'alice',
        email: 'alice@example.com',
        name: 'Alice Martin',
        groups: ['engineering'],
      },
      {
        subject: 'bob',
        email: 'bob@example.com',
        name: 'Bob Okafor',
        groups: ['dba', 'approvers'],
      },
    ],
    agent: { clientId: 'report-bot', name: 'Report bot' },
  });
  const config = resolveConfig(
    {
      dataDir,
      processes: 1,
      listeners: {
        postgres: { host: '127.0.0.1', port: 0, insecure: true },
        http: { host: '127.0.0.1', port: 0 },
      },
      identity: demoIdentityConfig(idp),
      resources: {
        demo: {
          type: 'postgres',
          host: upstream.host,
          port: upstream.port,
          database: upstream.database,
          user: upstream.user,
        },
      },
      tokens: [],
      log: { level: 'silent' },
      events: { flushIntervalMs: 20 },
    },
    { baseDir: dataDir, env: {} },
    'demo test config',
  );
  running = await runGateway(config, createLogger('silent'));
  api = new GatewayApi(`http://127.0.0.1:${running.http!.port}`);
  sso = await demoCredentials(idp, api, undefined);
}, 120_000);

afterAll(async () => {
  await running?.close();
  await idp?.close();
  await upstream?.close();
  await rm(dataDir, { recursive: true, force: true });
});

async function events(done: (all: SessionEvent[]) => boolean): Promise<SessionEvent[]> {
  const file = join(dataDir, 'events.jsonl');
  for (let i = 0; i < 200; i++) {
    const all = existsSync(file)
      ? (await readFile(file, 'utf8'))
          .split('\n')
          .filter((l) => l !== '')
          .map((l) => JSON.parse(l) as SessionEvent)
      : [];
    if (done(all)) return all;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error('the events did not arrive');
}

async function connect(password: string, application: string): Promise<void> {
  const client = new pg.Client({
    host: running.host,
    port: running.port,
    database: 'demo',
    user: 'demo-test',
    password,
    application_name: application,
  });
  await client.connect();
  const { rows } = await client.query('select count(*)::int as n from products');
  expect(rows).toEqual([{ n: 50 }]);
  await client.end();
}

describe('the demo with identity', () => {
  it('connects the person and the agent acting for them, and records both', async () => {
    await connect(sso.person.token, 'demo-person');
    await connect(sso.agent.token, 'demo-agent');
    const all = await events((list) =>
      ['demo-person', 'demo-agent'].every((app) =>
        list.some((e) => e.type === 'session.end' && e.client.application === app),
      ),
    );
    const start = (app: string) =>
      all.find((e) => e.type === 'session.start' && e.client.application === app)!;
    expect(start('demo-person').person.email).toBe('alice@example.com');
    expect(start('demo-person').agent).toBeNull();
    expect(start('demo-agent').person.email).toBe('alice@example.com');
    expect(start('demo-agent').agent).toEqual({ id: 'report-bot', name: 'Report bot' });
    expect(start('demo-agent').authMethod).toBe('token-exchange');
  });

  it('mints credentials for the longest lifetime the gateway allows', () => {
    const lifetime = sso.person.expiresAt - Date.now();
    expect(lifetime).toBeGreaterThan(59 * 60_000);
    expect(lifetime).toBeLessThanOrEqual(60 * 60_000);
  });

  it('reuses its delegation on the next start', async () => {
    const again = await demoCredentials(idp, api, sso.delegation.id);
    expect(again.delegation.id).toBe(sso.delegation.id);
    const list = await api.listDelegations(again.person.token);
    expect(list.map((d) => d.id)).toEqual([sso.delegation.id]);
  });

  it('lets portcullis login work against it: GET /v1/login names the demo IdP', async () => {
    expect(await api.loginInfo()).toEqual({
      issuer: idp.issuer,
      clientId: 'portcullis-cli',
      scopes: ['openid', 'email', 'profile', 'groups', 'offline_access'],
      resource: idp.resource,
    });
  });
});
