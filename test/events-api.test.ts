// Reviews, events and chain verification while the gateway runs: the gateway holds its embedded
// store (chDB: one process per store), so the reads go through its HTTP API and the store
// instance its sink writes with. A person in events.readerGroups gets the activity review, a
// session's events and a clean chain report; a person outside the groups, an agent acting for a
// reader and a gateway with no reader groups are refused; bad parameters get 400s. The built
// `portcullis review` finds the store held and reads through the API with the stored login. With
// several processes, the primary (which runs the sinks) serves the same routes.
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { SessionEvent } from '@portcullis/core';
import { reviews, type ChdbEventStore } from '@portcullis/events';
import { CredentialStore, type OidcTokens } from '@portcullis/identity';
import {
  freePort,
  startGatewayProcess,
  startOidcProvider,
  type OidcProviderServer,
} from '@portcullis/testkit';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ALICE,
  createSharedDatabase,
  dropSharedDatabase,
  sharedResource,
  startGatewayFixture,
  superuserQuery,
  type GatewayFixture,
} from './support/gateway-fixture.js';
import { apiCall, startFixtureApi, type FixtureApi } from './support/gateway-api.js';
import {
  delegatedAgentCredential,
  deviceLogin,
  exchangeToken,
  testIdpOidc,
} from './support/oidc-login.js';

const DB = 'it_events_api';
const ROOT = dirname(dirname(fileURLToPath(import.meta.url)));
const CLI = join(ROOT, 'packages/cli/bin/portcullis.js');
const APPLICATION = 'events-api-test';

let idp: OidcProviderServer;
let gw: GatewayFixture;
let dir: string;
let api: FixtureApi;
let store: ChdbEventStore;
/** ada is in `approvers` (the reader group), bob is not. */
const people = new Map<string, { credential: string; expiresAt: number; tokens: OidcTokens }>();
let agentCredential: string;
let session: SessionEvent[];

/** A GET (or `init.method`) on the suite's API, or on the one at `init.base`. */
const call = (
  path: string,
  bearer?: string,
  init: { method?: 'GET' | 'POST'; body?: unknown; base?: string } = {},
) => apiCall(init.base ?? api.base, init.method ?? 'GET', path, bearer, init.body);

const errorOf = (json: Record<string, unknown>): { code: string; message: string } =>
  json['error'] as { code: string; message: string };

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'portcullis-events-api-'));
  idp = await startOidcProvider();
  await createSharedDatabase(DB);
  await superuserQuery(
    `CREATE TABLE orders (id int PRIMARY KEY, item text);
     INSERT INTO orders SELECT g, 'item ' || g FROM generate_series(1, 5) g;
     GRANT ALL ON orders TO PUBLIC;`,
    DB,
  );
  gw = await startGatewayFixture({
    resources: { shop: sharedResource(DB, 'scram') },
    tokens: [ALICE],
    identity: {
      oidc: testIdpOidc(idp, {
        scopes: ['openid', 'email', 'profile', 'groups', 'offline_access'],
      }),
      groupAccess: [{ groups: ['engineering'], resources: ['shop'] }],
      agents: [{ id: idp.agents[0]!.clientId, name: 'Report bot' }],
    },
    // The gateway's own pipeline, with the embedded store (the fixture writes the file otherwise).
    events: { pipeline: { store: { kind: 'embedded' }, readerGroups: ['approvers'] } },
  });
  store = gw.gateway.events!.store!;
  // The fixture's API does not carry the store; serve it as run-gateway.ts does.
  api = await startFixtureApi(gw, { eventStore: store });

  for (const subject of ['ada', 'bob']) {
    const tokens = await deviceLogin(idp, subject);
    const { credential, expiresIn } = await exchangeToken(api.base, tokens.accessToken);
    people.set(subject, { credential, expiresAt: Date.now() + expiresIn * 1000, tokens });
  }

  // The report bot acting for ada, a reader: still refused, agents never read events.
  const delegation = await call('/v1/delegations', people.get('ada')!.credential, {
    method: 'POST',
    body: { agent: idp.agents[0]!.clientId, resources: ['shop'], ttlSeconds: 3600 },
  });
  expect(delegation.status, JSON.stringify(delegation.json)).toBe(201);
  agentCredential = await delegatedAgentCredential(
    idp,
    api.base,
    delegation.json['id'] as string,
    'shop',
  );

  // Some statements, recorded through the spool into the store while the gateway runs.
  const client = await gw.connect('shop', { application_name: APPLICATION });
  await client.query('SELECT id, item FROM orders WHERE id = 1');
  await client.query("INSERT INTO orders VALUES (6, 'item 6')");
  await client.query('DELETE FROM orders WHERE id = 6');
  await client.end();
  session = await gw.sessionEvents(APPLICATION);
  expect(await gw.gateway.events!.drain(10_000)).toBe(true);
}, 120_000);

afterAll(async () => {
  api?.close();
  await gw?.dispose();
  await idp?.stop();
  await dropSharedDatabase(DB);
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

describe('a reader, while the gateway runs', () => {
  it('gets the activity review: the same rows as the store holds', async () => {
    const { status, json } = await call(
      '/v1/reviews/activity?days=7',
      people.get('ada')!.credential,
    );
    expect(status, JSON.stringify(json)).toBe(200);
    expect(json).toMatchObject({ report: 'activity', days: 7 });
    const rows = json['rows'] as Record<string, unknown>[];
    expect(rows).toEqual([
      expect.objectContaining({
        person_subject: ALICE.subject,
        resource: 'shop',
        sessions: 1,
        statements: 3,
        writes: 2,
      }),
    ]);
    const now = new Date();
    const direct = await store.run(
      reviews.activity({ from: new Date(now.getTime() - 7 * 86_400_000), to: now }),
    );
    expect(rows).toEqual(direct);
  });

  it("gets a session's events, as the gateway recorded them", async () => {
    const sessionId = session[0]!.sessionId;
    const { status, json } = await call(
      `/v1/events?session=${sessionId.slice(0, 8)}&last=100`,
      people.get('ada')!.credential,
    );
    expect(status, JSON.stringify(json)).toBe(200);
    const events = json['events'] as SessionEvent[];
    expect(events.map((e) => [e.id, e.seq, e.type])).toEqual(
      session.map((e) => [e.id, e.seq, e.type]),
    );
    // Literals are redacted in the store, and so in what the API returns.
    const insert = events.find((e) => e.statement?.kind === 'insert')!;
    expect(insert.statement!.text).not.toContain('item 6');
    const typed = await call('/v1/events?type=statement&last=2', people.get('ada')!.credential);
    expect((typed.json['events'] as SessionEvent[]).map((e) => e.seq)).toEqual([2, 3]);
  });

  it('gets a clean chain verification', async () => {
    const since = new Date(Date.now() - 86_400_000).toISOString();
    const { status, json } = await call(
      `/v1/events/verify?since=${encodeURIComponent(since)}`,
      people.get('ada')!.credential,
    );
    expect(status, JSON.stringify(json)).toBe(200);
    expect(json).toEqual({ sessions: 1, events: session.length, issues: [] });
  });
});

describe('refusals', () => {
  it('refuses a person outside events.readerGroups, saying which key admits them', async () => {
    for (const path of ['/v1/reviews/activity', '/v1/events', '/v1/events/verify']) {
      const { status, json } = await call(path, people.get('bob')!.credential);
      expect(status).toBe(403);
      expect(errorOf(json)).toEqual({
        code: 'not_a_reader',
        message:
          'only members of approvers (events.readerGroups) may read events; ask to be added to one of them',
      });
    }
  });

  it("refuses an agent's credential, even acting for a reader", async () => {
    const { status, json } = await call('/v1/reviews/activity', agentCredential);
    expect(status).toBe(403);
    expect(errorOf(json).message).toContain('an agent may not read events');
  });

  it('asks for a credential, and refuses a forged one', async () => {
    const missing = await call('/v1/events');
    expect(missing.status).toBe(401);
    expect(errorOf(missing.json).code).toBe('unauthorized');
    const forged = await call('/v1/events', `${people.get('ada')!.credential}x`);
    expect(forged.status).toBe(401);
  });

  it('answers 400 to an unknown report and days outside 1 to the retention', async () => {
    const ada = people.get('ada')!.credential;
    const unknown = await call('/v1/reviews/everything', ada);
    expect(unknown.status).toBe(400);
    expect(errorOf(unknown.json)).toEqual({
      code: 'unknown_report',
      message:
        'no review named everything; the reports are activity, agents, writes, blocked, approvals, unused, sessions',
    });
    for (const days of ['0', '366', 'week']) {
      const bad = await call(`/v1/reviews/activity?days=${days}`, ada);
      expect(bad.status).toBe(400);
      expect(errorOf(bad.json).message).toBe(
        'days must be a whole number from 1 to 365 (events are kept for events.store.retentionDays)',
      );
    }
    const last = await call('/v1/events?last=10001', ada);
    expect(last.status).toBe(400);
    const sessions = await call('/v1/reviews/sessions', ada);
    expect(errorOf(sessions.json).message).toBe('the sessions report needs person (a subject)');
  });

  it('refuses everyone while events.readerGroups is empty, naming the key', async () => {
    const closed = await startFixtureApi(gw, {
      config: { ...gw.config, events: { ...gw.config.events, readerGroups: [] } },
      eventStore: store,
    });
    try {
      const { status, json } = await call('/v1/reviews/activity', people.get('ada')!.credential, {
        base: closed.base,
      });
      expect(status).toBe(403);
      expect(errorOf(json).code).toBe('readers_not_configured');
      expect(errorOf(json).message).toContain('set events.readerGroups');
    } finally {
      closed.close();
    }
  });
});

describe('portcullis review while the gateway runs', () => {
  it('finds the store held, reads through the API with the stored login, and prints the same rows', async () => {
    const credentialsFile = join(dir, 'credentials.json');
    const ada = people.get('ada')!;
    await new CredentialStore({ path: credentialsFile }).save({
      issuer: idp.issuer,
      clientId: idp.cliClient.clientId,
      tokens: ada.tokens,
      gateway: { url: api.base, token: ada.credential, expiresAt: ada.expiresAt },
      postgres: { host: gw.host, port: gw.port },
      idpResource: idp.resource,
      savedAt: Date.now(),
    } as Parameters<CredentialStore['save']>[0]);
    const run = await new Promise<{ code: number | null; stdout: string; stderr: string }>(
      (resolveRun) =>
        execFile(
          process.execPath,
          [
            CLI,
            'review',
            'activity',
            '--data-dir',
            gw.config.dataDir,
            '--days',
            '7',
            '--format',
            'json',
            '--config-file',
            credentialsFile,
          ],
          { env: { ...process.env, HOME: dir }, timeout: 60_000 },
          (err, stdout, stderr) =>
            resolveRun({
              code: err === null ? 0 : ((err as { code?: number }).code ?? null),
              stdout,
              stderr,
            }),
        ),
    );
    expect(run.code, run.stderr).toBe(0);
    expect(run.stderr).toContain(
      `portcullis: the running gateway holds the event store; reading through its API at ${api.base}`,
    );
    const printed = run.stdout
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as Record<string, unknown>);
    const { json } = await call('/v1/reviews/activity?days=7', ada.credential);
    expect(printed).toEqual(json['rows']);
    expect(printed).toHaveLength(1);
  });
});

describe('several processes', () => {
  it('the primary, which holds the store, serves the review and the chain report', async () => {
    const httpPort = await freePort();
    const cluster = await startGatewayProcess({
      processes: 2,
      config: {
        log: { level: 'warn' },
        listeners: {
          postgres: { host: '127.0.0.1', port: 0, insecure: true },
          http: { host: '127.0.0.1', port: httpPort },
        },
        resources: { shop: sharedResource(DB, 'scram') },
        tokens: [
          {
            token: { value: ALICE.token },
            person: { subject: ALICE.subject, email: ALICE.email, groups: [...ALICE.groups!] },
          },
        ],
        identity: {
          oidc: testIdpOidc(idp),
        },
        events: { flushIntervalMs: 20, readerGroups: ['approvers'] },
      },
    });
    try {
      const clusterBase = `http://127.0.0.1:${httpPort}`;
      const ada = (await exchangeToken(clusterBase, people.get('ada')!.tokens.accessToken))
        .credential;
      const client = new pg.Client({
        host: cluster.host,
        port: cluster.port,
        user: 'someone',
        password: ALICE.token,
        database: 'shop',
      });
      await client.connect();
      await client.query('SELECT count(*) FROM orders');
      await client.end();
      // A worker's events reach the primary's store through its spool: wait for them.
      const deadline = Date.now() + 20_000;
      let rows: Record<string, unknown>[] = [];
      while (Date.now() < deadline) {
        const review = await call('/v1/reviews/activity?days=1', ada, { base: clusterBase });
        expect(review.status, JSON.stringify(review.json)).toBe(200);
        rows = review.json['rows'] as Record<string, unknown>[];
        if (rows.some((r) => r['statements'] === 1)) break;
        await new Promise((resolveWait) => setTimeout(resolveWait, 200));
      }
      expect(rows).toEqual([
        expect.objectContaining({ person_subject: ALICE.subject, resource: 'shop', statements: 1 }),
      ]);
      // The session's end may still be on its way: verify whatever is stored, which must be intact.
      const verified = await call('/v1/events/verify', ada, { base: clusterBase });
      expect(verified.status).toBe(200);
      expect(verified.json).toMatchObject({ sessions: 1, issues: [] });
    } finally {
      await cluster.stop();
    }
  }, 90_000);
});
