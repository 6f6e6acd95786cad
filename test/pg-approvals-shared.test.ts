// Statement holds shared through a PostgreSQL state database: two gateway instances pointed at
// the same `state.url` see one set of requests, so a DELETE held on one is approved or denied
// through the other's API; a multi-process gateway holds in its workers and releases through
// its primary's API; and one person's flood of held statements stops at the configured cap.
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startOidcProvider, type OidcProviderServer } from '@portcullis/testkit';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { holdStatement, ordersDeletesNeedApproval } from './support/approval-holds.js';
import { apiCall, startFixtureApi, type FixtureApi } from './support/gateway-api.js';
import {
  ALICE,
  createSharedDatabase,
  dropSharedDatabase,
  newToken,
  sharedPostgres,
  sharedResource,
  sharedStateUrl,
  sleep,
  startGatewayFixture,
  superuserQuery,
  type GatewayFixture,
  type TokenSpec,
} from './support/gateway-fixture.js';
import { CLI, startCliCluster, type CliCluster } from './support/cli-cluster.js';
import { personCredential, testIdpOidc } from './support/oidc-login.js';

const DB = 'it_pg_approvals_shared';
const STATE_DB = 'it_pg_approvals_shared_state';
const FLOOD: TokenSpec = {
  token: newToken('flood'),
  subject: 'user-flood',
  email: 'flood@example.com',
  groups: ['eng'],
};
const MAX_PENDING = 3;

let idp: OidcProviderServer;
const gateways: GatewayFixture[] = [];
const apis: FixtureApi[] = [];
/** API base URLs of gateway 1 and gateway 2. */
const bases: string[] = [];
/** bob's credential on each gateway's API (same person, each instance's own signing keys). */
const bob: string[] = [];

function resources() {
  return {
    shop: sharedResource(DB, 'scram', {
      policy: {
        rules: [ordersDeletesNeedApproval()],
      },
    }),
  };
}

async function orderCount(): Promise<number> {
  const { rows } = await superuserQuery('SELECT count(*)::int AS n FROM orders', DB);
  return (rows as { n: number }[])[0]!.n;
}

beforeAll(async () => {
  idp = await startOidcProvider();
  await createSharedDatabase(DB);
  await createSharedDatabase(STATE_DB);
  await superuserQuery(
    `CREATE TABLE orders (id int PRIMARY KEY, item text);
     INSERT INTO orders SELECT g, 'item ' || g FROM generate_series(1, 20) g;
     GRANT ALL ON orders TO PUBLIC;`,
    DB,
  );
  for (let i = 0; i < 2; i++) {
    const gw = await startGatewayFixture({
      resources: resources(),
      tokens: [ALICE, FLOOD],
      state: { url: { value: sharedStateUrl(STATE_DB) }, pollIntervalMs: 200 },
      approvals: { maxPendingPerPerson: MAX_PENDING },
      identity: {
        oidc: testIdpOidc(idp),
        groupAccess: [{ groups: ['engineering'], resources: ['shop'] }],
      },
    });
    gateways.push(gw);
    const api = await startFixtureApi(gw, { approvals: gw.gateway.approvals });
    apis.push(api);
    bases.push(api.base);
    bob.push(await personCredential(idp, api.base, 'bob'));
  }
});

afterAll(async () => {
  for (const api of apis) api.close();
  for (const gw of gateways) await gw.dispose();
  await idp?.stop();
  await dropSharedDatabase(DB);
  await dropSharedDatabase(STATE_DB);
});

describe('two gateways sharing one state database', () => {
  it('runs a DELETE held on gateway 1 once it is approved through gateway 2’s API', async () => {
    const [gw1] = gateways;
    const client = await gw1!.connect('shop');
    const { id, result } = await holdStatement(client, 'DELETE FROM orders WHERE id = 1');
    await sleep(200);
    expect(await orderCount()).toBe(20);

    const listed = await apiCall(bases[1]!, 'GET', '/v1/approvals', bob[1]);
    expect(listed.status).toBe(200);
    expect(listed.json['approvals']).toMatchObject([
      { id, resource: 'shop', requester: { email: ALICE.email } },
    ]);
    const approved = await apiCall(bases[1]!, 'POST', `/v1/approvals/${id}/approve`, bob[1], {
      reason: 'ticket 7',
    });
    expect(approved.status, JSON.stringify(approved.json)).toBe(200);
    expect(approved.json['state']).toBe('granted');
    expect((await result).rowCount).toBe(1);
    expect(await orderCount()).toBe(19);

    // Settled for every instance.
    const again = await apiCall(bases[0]!, 'POST', `/v1/approvals/${id}/approve`, bob[0]);
    expect(again.status).toBe(409);
    const events = await gw1!.waitForEvents((all) =>
      all.some((e) => e.type === 'approval.granted' && e.approvalDecision?.id === id),
    );
    const granted = events.find((e) => e.type === 'approval.granted')!;
    expect(granted.approvalDecision).toMatchObject({
      by: [{ subject: 'bob' }],
      reason: 'ticket 7',
    });
  });

  it('refuses a DELETE held on gateway 1 with 42501 when denied through gateway 2', async () => {
    const client = await gateways[0]!.connect('shop');
    const { id, result } = await holdStatement(client, 'DELETE FROM orders WHERE id = 2');
    const denied = await apiCall(bases[1]!, 'POST', `/v1/approvals/${id}/deny`, bob[1], {
      reason: 'not during the sale',
    });
    expect(denied.status, JSON.stringify(denied.json)).toBe(200);
    await expect(result).rejects.toMatchObject({
      code: '42501',
      message: expect.stringContaining('denied by bob') as unknown,
    });
    expect((await client.query('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
    expect(await orderCount()).toBe(19);
  });

  it('a client that disconnects from gateway 2 withdraws its request for gateway 1 too', async () => {
    const client = await gateways[1]!.connect('shop');
    const { id } = await holdStatement(client, 'DELETE FROM orders WHERE id = 3');
    await client.end();
    await expect
      .poll(
        async () =>
          (await apiCall(bases[0]!, 'POST', `/v1/approvals/${id}/approve`, bob[0])).status,
      )
      .toBe(409);
    expect(await orderCount()).toBe(19);
  });

  it(`refuses a person’s held statements beyond approvals.maxPendingPerPerson (${MAX_PENDING}) on either gateway`, async () => {
    const held: { id: string; result: Promise<pg.QueryResult> }[] = [];
    const clients: pg.Client[] = [];
    for (let i = 0; i < MAX_PENDING; i++) {
      const client = await gateways[i % 2]!.connect('shop', { password: FLOOD.token });
      clients.push(client);
      held.push(await holdStatement(client, `DELETE FROM orders WHERE id = ${10 + i}`));
      // The count is taken when the request is stored.
      await expect
        .poll(
          async () =>
            (
              (await apiCall(bases[0]!, 'GET', '/v1/approvals', bob[0])).json[
                'approvals'
              ] as unknown[]
            ).length,
        )
        .toBe(i + 1);
    }
    const extra = await gateways[1]!.connect('shop', { password: FLOOD.token });
    // Refused before it is stored: no NOTICE names an id nobody could decide.
    const overNotices: string[] = [];
    extra.on('notice', (msg) => overNotices.push(msg.message ?? ''));
    await expect(extra.query('DELETE FROM orders WHERE id = 15')).rejects.toMatchObject({
      code: '42501',
      message: expect.stringContaining(
        `flood@example.com already has ${MAX_PENDING} statements awaiting approval, the limit (approvals.maxPendingPerPerson)`,
      ) as unknown,
    });
    expect(overNotices).toEqual([]);
    // Another person is not held back by the flood.
    const other = await gateways[1]!.connect('shop');
    const ok = await holdStatement(other, 'DELETE FROM orders WHERE id = 16');
    await apiCall(bases[0]!, 'POST', `/v1/approvals/${ok.id}/deny`, bob[0], { reason: 'no' });
    await expect(ok.result).rejects.toMatchObject({ code: '42501' });
    await Promise.all(clients.map((c) => c.end()));
    expect(await orderCount()).toBe(19);
  });
});

describe('a multi-process gateway on the shared state database', () => {
  const TOKEN = newToken('cluster');
  let dir: string;
  let cluster: CliCluster | undefined;
  let port = 0;
  let base = '';

  beforeAll(async () => {
    if (!existsSync(CLI)) throw new Error(`${CLI} is missing: build first (npx tsc -b)`);
    dir = await mkdtemp(join(tmpdir(), 'portcullis-it-approvals-cluster-'));
    const pgServer = sharedPostgres();
    const config = {
      dataDir: './data',
      log: { level: 'warn' },
      listeners: {
        postgres: { host: '127.0.0.1', port: 0, insecure: true },
        http: { host: '127.0.0.1', port: 0 },
      },
      state: { url: { env: 'STATE_URL' }, pollIntervalMs: 200 },
      resources: {
        shop: {
          type: 'postgres',
          host: pgServer.host,
          port: pgServer.port,
          database: DB,
          user: pgServer.roles.scram.user,
          password: { env: 'UPSTREAM_PASSWORD' },
          policy: resources().shop.policy,
        },
      },
      tokens: [
        {
          token: { env: 'CLUSTER_TOKEN' },
          person: { subject: 'user-cluster', email: 'cluster@example.com', groups: ['ops'] },
        },
      ],
      identity: {
        oidc: testIdpOidc(idp),
        groupAccess: [{ groups: ['engineering'], resources: ['shop'] }],
      },
    };
    const file = join(dir, 'portcullis.yaml');
    // JSON is YAML.
    await writeFile(file, JSON.stringify(config, null, 2), { mode: 0o600 });
    cluster = await startCliCluster({
      configFile: file,
      cwd: dir,
      processes: 2,
      env: {
        CLUSTER_TOKEN: TOKEN,
        UPSTREAM_PASSWORD: pgServer.roles.scram.password,
        STATE_URL: sharedStateUrl(STATE_DB),
      },
    });
    port = cluster.port;
    base = cluster.httpBase;
  });

  afterAll(async () => {
    await cluster?.stop();
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  it('holds in each worker and releases through the primary’s API', async () => {
    const credential = await personCredential(idp, base, 'bob');
    // Connect until both workers hold a session (the cancel key's top byte is the slot).
    const bySlot = new Map<number, pg.Client>();
    const extra: pg.Client[] = [];
    for (let i = 0; i < 20 && bySlot.size < 2; i++) {
      const client = new pg.Client({
        host: '127.0.0.1',
        port,
        user: 'cluster-user',
        password: TOKEN,
        database: 'shop',
      });
      client.on('error', () => undefined);
      await client.connect();
      const slot = (client as unknown as { processID: number }).processID >>> 24;
      if (bySlot.has(slot)) extra.push(client);
      else bySlot.set(slot, client);
    }
    expect([...bySlot.keys()].sort()).toEqual([0, 1]);
    try {
      const holds = await Promise.all(
        [...bySlot.values()].map((c, i) =>
          holdStatement(c, `DELETE FROM orders WHERE id = ${4 + i}`),
        ),
      );
      await expect
        .poll(async () =>
          (
            (await apiCall(base, 'GET', '/v1/approvals', credential)).json['approvals'] as {
              id: string;
            }[]
          )
            .map((a) => a.id)
            .sort(),
        )
        .toEqual(holds.map((h) => h.id).sort());
      const [first, second] = holds;
      expect(
        (await apiCall(base, 'POST', `/v1/approvals/${first!.id}/approve`, credential)).status,
      ).toBe(200);
      expect(
        (
          await apiCall(base, 'POST', `/v1/approvals/${second!.id}/deny`, credential, {
            reason: 'no',
          })
        ).status,
      ).toBe(200);
      expect((await first!.result).rowCount).toBe(1);
      await expect(second!.result).rejects.toMatchObject({ code: '42501' });
      expect(await orderCount()).toBe(18);
    } finally {
      await Promise.all([...bySlot.values(), ...extra].map((c) => c.end().catch(() => undefined)));
    }
  });
});
