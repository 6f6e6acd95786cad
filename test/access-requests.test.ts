// Time-boxed access requests end to end, with a real OIDC provider, real PostgreSQL as the
// upstream and as the shared state database (`state.url`): a person without standing access is
// refused with a hint to ask; they ask through the API, an approver grants a short window, they
// connect and work, get a NOTICE before the end and are closed (57P01) when it ends; ending a
// grant early closes its sessions at once, also on another gateway sharing the state database;
// denials, self-approval, outsiders, repeated decisions and two-approver rules are refused or
// counted as they should be, also when two gateways take the same approval at once.
import { createServer, type Server } from 'node:http';
import { startOidcProvider, type OidcProviderServer } from '@portcullis/testkit';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  connectError,
  createSharedDatabase,
  dropSharedDatabase,
  sharedResource,
  sharedStateUrl,
  startGatewayFixture,
  superuserQuery,
  type GatewayFixture,
  type GatewayFixtureOptions,
} from './support/gateway-fixture.js';
import { apiCall, startFixtureApi, type FixtureApi } from './support/gateway-api.js';
import {
  delegatedAgentCredential,
  deviceLogin,
  exchangeToken,
  testIdpOidc,
} from './support/oidc-login.js';

const DB = 'it_access_requests';
const STATE_DB = 'it_access_requests_state';
let idp: OidcProviderServer;
/** Two gateways sharing the state database. */
let gw: GatewayFixture;
let gw2: GatewayFixture;
const apis: FixtureApi[] = [];
let base: string;
let base2: string;
/** Gateway credentials by subject. */
const credentials = new Map<string, string>();
/** What the approvers' webhook received (generic JSON notices), in arrival order. */
const notices: Json[] = [];
let receiver: Server;
/** Clients the suite opened itself (ended after it). */
const clients: pg.Client[] = [];

const PEOPLE = [
  { subject: 'ada', email: 'ada@example.com', groups: ['approvers'] },
  { subject: 'dan', email: 'dan@example.com', groups: ['approvers'] },
  { subject: 'bob', email: 'bob@example.com', groups: ['engineering'] },
  { subject: 'carol', email: 'carol@example.com', groups: ['contractors'] },
];

beforeAll(async () => {
  receiver = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      notices.push(JSON.parse(Buffer.concat(chunks).toString('utf8')) as Json);
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((done) => receiver.listen(0, '127.0.0.1', done));
  const hook = `http://127.0.0.1:${(receiver.address() as { port: number }).port}/hook`;
  idp = await startOidcProvider({ people: PEOPLE });
  await createSharedDatabase(DB);
  await createSharedDatabase(STATE_DB);
  await superuserQuery(
    `CREATE TABLE secrets (id int, body text);
     INSERT INTO secrets VALUES (1, 'the vault');
     GRANT SELECT ON secrets TO PUBLIC;`,
    DB,
  );
  const requests = { approvers: { groups: ['approvers'] }, maxHours: 1, warnMinutes: 1 };
  const options: GatewayFixtureOptions = {
    resources: {
      vault: sharedResource(DB, 'scram', { accessRequests: requests }),
      vault2: sharedResource(DB, 'scram', {
        accessRequests: { ...requests, approvers: { groups: ['approvers'], count: 2 } },
      }),
      plain: sharedResource(DB, 'scram', { accessRequests: requests }),
      bare: sharedResource(DB, 'scram'),
    },
    tokens: [],
    identity: {
      oidc: testIdpOidc(idp),
      // Standing access: engineering on `plain` only. Nobody has standing access to the vaults.
      groupAccess: [{ groups: ['engineering'], resources: ['plain'] }],
      agents: [{ id: idp.agents[0]!.clientId, name: 'Report bot' }],
    },
    state: { url: { value: sharedStateUrl(STATE_DB) }, pollIntervalMs: 200 },
    approvals: { webhooks: [{ name: 'approvers', url: hook, retries: 0 }] },
  };
  gw = await startGatewayFixture(options);
  // The second gateway signs with its own keys: credentials are per gateway here.
  gw2 = await startGatewayFixture(options);
  for (const fixture of [gw, gw2]) {
    const { approvals, access, notifier } = fixture.gateway;
    apis.push(await startFixtureApi(fixture, { approvals, access, notifier }));
  }
  base = apis[0]!.base;
  base2 = apis[1]!.base;
  // One login at the IdP, exchanged at each gateway (each signs with its own keys).
  for (const { subject } of PEOPLE) {
    const tokens = await deviceLogin(idp, subject);
    for (const [fixtureBase, suffix] of [
      [base, ''],
      [base2, '@2'],
    ] as const) {
      const { credential } = await exchangeToken(fixtureBase, tokens.accessToken);
      credentials.set(`${subject}${suffix}`, credential);
    }
  }
}, 120_000);

afterAll(async () => {
  await Promise.all(clients.map((c) => c.end().catch(() => undefined)));
  for (const api of apis) api.close();
  receiver?.close();
  await gw?.dispose();
  await gw2?.dispose();
  await idp?.stop();
  await dropSharedDatabase(DB);
  await dropSharedDatabase(STATE_DB);
});

type Json = Record<string, unknown>;

/** The notices about access request `id` received so far, by type. */
function noticesAbout(id: string): Json[] {
  return notices.filter((n) => (n['access'] as { id?: string } | undefined)?.id === id);
}

/** An API call on the first gateway as `subject`. */
const as = (subject: string, method: 'GET' | 'POST' | 'DELETE', path: string, body?: Json) =>
  apiCall(base, method, path, credentials.get(subject), body);

function errorCode(json: Json): string {
  return (json['error'] as { code: string }).code;
}

/** carol asks for `resource`; returns the request id. */
async function carolAsks(resource: string, minutes: number): Promise<string> {
  const asked = await as('carol', 'POST', '/v1/access-requests', {
    resource,
    minutes,
    reason: 'incident 4711',
  });
  expect(asked.status, JSON.stringify(asked.json)).toBe(201);
  expect(asked.json).toMatchObject({ resource, state: 'pending', requester: { subject: 'carol' } });
  return asked.json['id'] as string;
}

/** carol's session on `fixture`, recording notices and the error that ends it. */
async function carolConnects(
  resource: string,
  application: string,
  fixture: GatewayFixture = gw,
  credential = credentials.get('carol')!,
): Promise<{ client: pg.Client; notices: string[]; ended: Promise<Error & { code?: string }> }> {
  // Listeners first: the warning may arrive together with the end of the login.
  const client = new pg.Client(
    fixture.clientConfig(resource, { password: credential, application_name: application }),
  );
  clients.push(client);
  const notices: string[] = [];
  client.on('notice', (msg) => notices.push(msg.message ?? ''));
  const ended = new Promise<Error & { code?: string }>((resolve) => client.on('error', resolve));
  await client.connect();
  return { client, notices, ended };
}

describe('access requests', () => {
  it('refuses a person without standing access, with a hint to ask', async () => {
    const err = await connectError(
      gw.clientConfig('vault', { password: credentials.get('carol') }),
    );
    expect(err.code).toBe('42501');
    expect(err.hint).toContain('portcullis request vault --for 1h --reason');
    const bare = await connectError(
      gw.clientConfig('bare', { password: credentials.get('carol') }),
    );
    expect(bare.code).toBe('42501');
    expect(bare.hint ?? '').not.toContain('portcullis request');
  });

  it('refuses requests outside the rules', async () => {
    const tooLong = await as('carol', 'POST', '/v1/access-requests', {
      resource: 'vault',
      minutes: 61,
      reason: 'x',
    });
    expect([tooLong.status, errorCode(tooLong.json)]).toEqual([400, 'too_long']);
    const noReason = await as('carol', 'POST', '/v1/access-requests', {
      resource: 'vault',
      minutes: 5,
    });
    expect([noReason.status, errorCode(noReason.json)]).toEqual([400, 'invalid_request']);
    const bare = await as('carol', 'POST', '/v1/access-requests', {
      resource: 'bare',
      minutes: 5,
      reason: 'x',
    });
    expect([bare.status, errorCode(bare.json)]).toEqual([400, 'not_requestable']);
    const standing = await as('bob', 'POST', '/v1/access-requests', {
      resource: 'plain',
      minutes: 5,
      reason: 'x',
    });
    expect([standing.status, errorCode(standing.json)]).toEqual([409, 'standing_access']);
    const unknown = await as('carol', 'POST', '/v1/access-requests', {
      resource: 'nope',
      minutes: 5,
      reason: 'x',
    });
    expect(unknown.status).toBe(404);
    const anonymous = await apiCall(base, 'GET', '/v1/access-requests');
    expect(anonymous.status).toBe(401);
  });

  it('grants a short window: the person connects and works, is warned, and is closed when it ends', async () => {
    const id = await carolAsks('vault', 0.08); // 4.8 s
    const again = await as('carol', 'POST', '/v1/access-requests', {
      resource: 'vault',
      minutes: 1,
      reason: 'again',
    });
    expect([again.status, errorCode(again.json)]).toEqual([409, 'already_pending']);

    const listed = await as('ada', 'GET', '/v1/access-requests');
    expect((listed.json['toDecide'] as Json[]).map((r) => r['id'])).toContain(id);
    const own = await as('carol', 'POST', `/v1/access-requests/${id}/approve`);
    expect([own.status, errorCode(own.json)]).toEqual([403, 'requester']);
    const outsider = await as('bob', 'POST', `/v1/access-requests/${id}/approve`);
    expect([outsider.status, errorCode(outsider.json)]).toEqual([403, 'not_approver']);

    const approved = await as('ada', 'POST', `/v1/access-requests/${id}/approve`, {
      reason: 'on call',
    });
    expect(approved.status, JSON.stringify(approved.json)).toBe(200);
    expect(approved.json).toMatchObject({
      state: 'approved',
      grant: { state: 'active', grantee: { subject: 'carol' }, approvers: [{ subject: 'ada' }] },
    });
    const grantId = (approved.json['grant'] as Json)['id'] as string;
    const twice = await as('dan', 'POST', `/v1/access-requests/${id}/approve`);
    expect([twice.status, errorCode(twice.json)]).toEqual([409, 'already_decided']);

    const session = await carolConnects('vault', 'carol-window');
    expect((await session.client.query('SELECT body FROM secrets')).rows).toEqual([
      { body: 'the vault' },
    ]);
    // warnMinutes (1) exceeds the window, so the warning comes right away.
    await expect.poll(() => session.notices.length).toBeGreaterThan(0);
    expect(session.notices[0]).toMatch(
      new RegExp(
        `^your access to vault granted by ada@example.com ends at .+ \\(grant ${grantId}\\)$`,
      ),
    );
    const ended = await session.ended;
    expect(ended.code).toBe('57P01');
    expect(ended.message).toContain(`your access to vault ended at`);
    const events = await gw.sessionEvents('carol-window');
    // The start names the grant the session ran under, and who granted it.
    expect(events.find((e) => e.type === 'session.start')?.accessGrant).toMatchObject({
      id: grantId,
      by: [{ subject: 'ada', email: 'ada@example.com' }],
    });
    const end = events.find((e) => e.type === 'session.end')!;
    expect(end.summary).toMatchObject({ reason: 'access-ended', error: { code: '57P01' } });
    expect(end.summary?.error?.message).toContain(grantId);

    const after = await connectError(
      gw.clientConfig('vault', { password: credentials.get('carol') }),
    );
    expect(after.code).toBe('42501');
    expect(after.hint).toContain('portcullis request vault');
  });

  it('ending a grant early closes its sessions at once, on every gateway', async () => {
    const id = await carolAsks('vault', 10);
    const approved = await as('dan', 'POST', `/v1/access-requests/${id}/approve`);
    const grantId = (approved.json['grant'] as Json)['id'] as string;
    const here = await carolConnects('vault', 'carol-revoked');
    const there = await carolConnects('vault', 'carol-revoked-2', gw2, credentials.get('carol@2'));
    await here.client.query('SELECT 1');
    await there.client.query('SELECT 1');
    expect(here.notices).toEqual([]);

    const mine = await as('carol', 'GET', '/v1/access-grants');
    expect((mine.json['grants'] as Json[]).map((g) => g['id'])).toEqual([grantId]);
    const approverView = await as('ada', 'GET', '/v1/access-grants');
    expect((approverView.json['grants'] as Json[]).map((g) => g['id'])).toContain(grantId);
    const outsider = await as('bob', 'DELETE', `/v1/access-grants/${grantId}`);
    expect([outsider.status, errorCode(outsider.json)]).toEqual([403, 'not_allowed']);

    // Ended through the second gateway: the first hears it by NOTIFY.
    const revoked = await apiCall(
      base2,
      'DELETE',
      `/v1/access-grants/${grantId}?reason=incident%20closed`,
      credentials.get('ada@2'),
    );
    expect(revoked.status, JSON.stringify(revoked.json)).toBe(200);
    expect(revoked.json).toMatchObject({ state: 'revoked', revokedBy: { subject: 'ada' } });
    for (const session of [here, there]) {
      const ended = await session.ended;
      expect(ended.code).toBe('57P01');
      expect(ended.message).toBe(
        `your access to vault was ended by ada@example.com: incident closed (grant ${grantId})`,
      );
    }
    const events = await gw.sessionEvents('carol-revoked');
    expect(events.find((e) => e.type === 'session.end')?.summary?.reason).toBe('access-revoked');
    const twice = await as('carol', 'DELETE', `/v1/access-grants/${grantId}`);
    expect([twice.status, errorCode(twice.json)]).toEqual([409, 'grant_ended']);
    // Notices came from whichever gateway's API took each step.
    await expect
      .poll(() => noticesAbout(id).map((n) => n['type']))
      .toEqual(['access.requested', 'access.granted', 'access.revoked']);
    expect(noticesAbout(id)[2]).toMatchObject({
      outcome: { kind: 'revoked', by: [{ subject: 'ada' }], reason: 'incident closed' },
    });
  });

  it('an agent acts for a person under their grant only through a delegation of the resource', async () => {
    const id = await carolAsks('vault', 10);
    const approved = await as('ada', 'POST', `/v1/access-requests/${id}/approve`);
    const grantId = (approved.json['grant'] as Json)['id'] as string;
    const agent = idp.agents[0]!;
    // The grant is what lets carol delegate a resource her groups do not reach.
    const otherResource = await as('carol', 'POST', '/v1/delegations', {
      agent: agent.clientId,
      resources: ['vault2'],
      ttlSeconds: 600,
    });
    expect(otherResource.status).toBe(403);
    const delegated = await as('carol', 'POST', '/v1/delegations', {
      agent: agent.clientId,
      resources: ['vault'],
      ttlSeconds: 600,
    });
    expect(delegated.status, JSON.stringify(delegated.json)).toBe(201);
    const bot = await carolConnects(
      'vault',
      'report-bot-granted',
      gw,
      await delegatedAgentCredential(idp, base, delegated.json['id'] as string, 'vault'),
    );
    await bot.client.query('SELECT 1');
    await as('carol', 'DELETE', `/v1/access-grants/${grantId}`);
    expect((await bot.ended).code).toBe('57P01');
    const events = await gw.sessionEvents('report-bot-granted');
    expect(events[0]).toMatchObject({ person: { subject: 'carol' }, authMethod: 'token-exchange' });
  });

  it('a denial ends the request; later decisions are refused', async () => {
    const id = await carolAsks('vault', 5);
    const noReason = await as('dan', 'POST', `/v1/access-requests/${id}/deny`);
    expect(noReason.status).toBe(400);
    const denied = await as('dan', 'POST', `/v1/access-requests/${id}/deny`, {
      reason: 'use the runbook',
    });
    expect(denied.json).toMatchObject({
      state: 'denied',
      deniedBy: { subject: 'dan' },
      decisionReason: 'use the runbook',
    });
    const late = await as('ada', 'POST', `/v1/access-requests/${id}/approve`);
    expect([late.status, errorCode(late.json)]).toEqual([409, 'already_decided']);
    const seen = await as('carol', 'GET', `/v1/access-requests/${id}`);
    expect(seen.json).toMatchObject({ state: 'denied', grant: null });
    const unknown = await as('ada', 'POST', '/v1/access-requests/acr_unknown/approve');
    expect([unknown.status, errorCode(unknown.json)]).toEqual([404, 'not_found']);
    // Approvers heard of the request and of its denial, with the commands that decide it.
    await expect
      .poll(() => noticesAbout(id).map((n) => n['type']))
      .toEqual(['access.requested', 'access.denied']);
    expect(noticesAbout(id)[0]).toMatchObject({
      access: { resource: 'vault', requester: { subject: 'carol' }, reason: 'incident 4711' },
      commands: { approve: `portcullis approve ${id}` },
    });
    expect(noticesAbout(id)[1]).toMatchObject({
      outcome: { kind: 'denied', by: [{ subject: 'dan' }], reason: 'use the runbook' },
    });
    const err = await connectError(
      gw.clientConfig('vault', { password: credentials.get('carol') }),
    );
    expect(err.code).toBe('42501');
  });

  it('needs two distinct approvals where the rule says so, counted once across gateways', async () => {
    const id = await carolAsks('vault2', 5);
    // The same approver on both gateways at the same moment: the row lock lets one count.
    const both = await Promise.all([
      apiCall(base, 'POST', `/v1/access-requests/${id}/approve`, credentials.get('ada'), {}),
      apiCall(base2, 'POST', `/v1/access-requests/${id}/approve`, credentials.get('ada@2'), {}),
    ]);
    expect(both.map((r) => r.status).sort()).toEqual([200, 409]);
    expect(both.find((r) => r.status === 409)!.json['error']).toMatchObject({
      code: 'already_approved',
    });
    const pending = await as('carol', 'GET', `/v1/access-requests/${id}`);
    expect(pending.json).toMatchObject({ state: 'pending', approvalsNeeded: 2 });
    expect(pending.json['approvals']).toHaveLength(1);
    const early = await connectError(
      gw.clientConfig('vault2', { password: credentials.get('carol') }),
    );
    expect(early.code).toBe('42501');

    const second = await apiCall(
      base2,
      'POST',
      `/v1/access-requests/${id}/approve`,
      credentials.get('dan@2'),
      {},
    );
    expect(second.json).toMatchObject({ state: 'approved', grant: { state: 'active' } });
    const session = await carolConnects('vault2', 'carol-two-approvers');
    expect((await session.client.query('SELECT count(*)::int AS n FROM secrets')).rows).toEqual([
      { n: 1 },
    ]);
    await session.client.end();
  });
});
