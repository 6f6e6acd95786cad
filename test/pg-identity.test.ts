// Identity through the gateway, end to end, against a real OIDC provider and real PostgreSQL:
// a person logs in at the IdP (device flow), exchanges the IdP token for a gateway credential at
// the gateway's token endpoint and connects with it as the password; an agent acts for that
// person under a delegation; the events name the person and the agent; revoked delegations,
// foreign or tampered credentials and people without access are refused with 28P01/28000/42501
// and recorded as auth.failed; no token shows up in events.
import { OidcClient, type OidcTokens } from '@portcullis/identity';
import { startOidcProvider, type OidcProviderServer } from '@portcullis/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  connectError,
  createSharedDatabase,
  dropSharedDatabase,
  sharedResource,
  startGatewayFixture,
  superuserQuery,
  type GatewayFixture,
} from './support/gateway-fixture.js';
import { testIdpOidc } from './support/oidc-login.js';

const DB = 'it_pg_identity';
let idp: OidcProviderServer;
let gw: GatewayFixture;
let api: string;
let cli: OidcClient;
let agentClient: OidcClient;
/** Every token the suite handled: none may appear in the event file. */
const secrets: string[] = [];

beforeAll(async () => {
  idp = await startOidcProvider();
  await createSharedDatabase(DB);
  await superuserQuery(
    `CREATE TABLE notes (id int, body text);
     INSERT INTO notes VALUES (1, 'hello');
     GRANT SELECT ON notes TO PUBLIC;`,
    DB,
  );
  const agent = idp.agents[0]!;
  gw = await startGatewayFixture({
    resources: { notes: sharedResource(DB, 'scram'), other: sharedResource(DB, 'scram') },
    tokens: [],
    identity: {
      oidc: testIdpOidc(idp),
      // ada is in approvers (and engineering); bob only in engineering, which reaches `other`.
      groupAccess: [
        { groups: ['approvers'], resources: ['notes', 'other'] },
        { groups: ['engineering'], resources: ['other'] },
      ],
      agents: [{ id: agent.clientId, name: 'Report bot' }],
    },
  });
  api = gw.apiUrl!;
  const insecure = { allowInsecureRequests: true } as const;
  cli = await OidcClient.discover({
    issuer: idp.issuer,
    clientId: idp.cliClient.clientId,
    ...insecure,
  });
  agentClient = await OidcClient.discover({
    issuer: idp.issuer,
    clientId: agent.clientId,
    clientSecret: agent.clientSecret,
    ...insecure,
  });
  secrets.push(agent.clientSecret);
});

afterAll(async () => {
  await gw?.dispose();
  await idp?.stop();
  await dropSharedDatabase(DB);
});

/** A person's IdP tokens through the device flow, completed in the IdP's pages as `subject`. */
async function login(subject: string): Promise<OidcTokens> {
  const started = await cli.startDeviceLogin({ resource: idp.resource });
  const [tokens] = await Promise.all([
    cli.pollDeviceLogin(started, { intervalMs: 100 }),
    idp.completeDeviceFlow(started.userCode, subject),
  ]);
  secrets.push(
    tokens.accessToken,
    ...(tokens.refreshToken === undefined ? [] : [tokens.refreshToken]),
  );
  return tokens;
}

async function post(path: string, body: Record<string, unknown>, bearer?: string) {
  const response = await fetch(`${api}${path}`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      ...(bearer === undefined ? {} : { authorization: `Bearer ${bearer}` }),
    },
    body: JSON.stringify(body),
  });
  return { status: response.status, json: (await response.json()) as Record<string, unknown> };
}

async function exchange(body: Record<string, unknown>): Promise<string> {
  const { status, json } = await post('/v1/token', {
    grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
    ...body,
  });
  expect(status, JSON.stringify(json)).toBe(200);
  const token = json['access_token'] as string;
  secrets.push(token);
  return token;
}

let adaCredential: string;

describe('people', () => {
  it('log in at the IdP, get a gateway credential and connect with it', async () => {
    const tokens = await login('ada');
    adaCredential = await exchange({ subject_token: tokens.accessToken });
    const client = await gw.connect('notes', {
      password: adaCredential,
      application_name: 'ada-psql',
    });
    const { rows } = await client.query('SELECT body FROM notes');
    expect(rows).toEqual([{ body: 'hello' }]);
    await client.end();
    const events = await gw.sessionEvents('ada-psql');
    const start = events.find((e) => e.type === 'session.start')!;
    expect(start.person).toMatchObject({ subject: 'ada', email: 'ada@example.com' });
    expect(start.person.groups).toContain('engineering');
    expect(start.agent).toBeNull();
    expect(start.authMethod).toBe('oidc');
  });

  it('refuses a person whose groups give no access, and records why', async () => {
    const tokens = await login('bob');
    const credential = await exchange({ subject_token: tokens.accessToken });
    const err = await connectError(gw.clientConfig('notes', { password: credential }));
    expect(err.code).toBe('42501');
    const events = await gw.waitForEvents((all) =>
      all.some((e) => e.type === 'auth.failed' && e.person.subject === 'bob'),
    );
    expect(
      events.find((e) => e.type === 'auth.failed' && e.person.subject === 'bob')!.authFailure,
    ).toEqual({
      reason: 'no-access',
      code: '42501',
    });
  });

  it('refuses tampered, foreign and garbage credentials with 28P01', async () => {
    const [head, payload, signature] = adaCredential.split('.') as [string, string, string];
    const claims = JSON.parse(Buffer.from(payload, 'base64url').toString()) as Record<
      string,
      unknown
    >;
    const forged = `${head}.${Buffer.from(JSON.stringify({ ...claims, sub: 'mallory' })).toString('base64url')}.${signature}`;
    const none = `${Buffer.from('{"alg":"none","typ":"JWT"}').toString('base64url')}.${payload}.`;
    for (const password of [forged, none, 'eyJhbGciOiJFUzI1NiJ9.e30.AAAA']) {
      const err = await connectError(gw.clientConfig('notes', { password }));
      expect(err.code).toBe('28P01');
      expect(err.message).not.toContain(password);
    }
  });

  it('refuses IdP tokens at the token endpoint when they are not the IdP’s', async () => {
    const { status, json } = await post('/v1/token', {
      grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
      subject_token: adaCredential, // a gateway credential is not an IdP token
    });
    expect(status).toBe(401);
    expect(json['error']).toBe('invalid_grant');
    const wrongGrant = await post('/v1/token', { grant_type: 'password' });
    expect(wrongGrant.status).toBe(400);
    expect(wrongGrant.json['error']).toBe('unsupported_grant_type');
  });
});

describe('agents acting for people', () => {
  let delegationId: string;
  let agentCredential: string;

  it('act for a person who delegated, and both are recorded', async () => {
    const created = await post(
      '/v1/delegations',
      {
        agent: idp.agents[0]!.clientId,
        resources: ['notes'],
        ttlSeconds: 3600,
        reason: 'weekly report',
      },
      adaCredential,
    );
    expect(created.status).toBe(201);
    delegationId = created.json['id'] as string;
    const agentTokens = await agentClient.clientCredentials({ resource: idp.resource });
    secrets.push(agentTokens.accessToken);
    agentCredential = await exchange({
      actor_token: agentTokens.accessToken,
      delegation_id: delegationId,
      resource: 'notes',
    });
    const client = await gw.connect('notes', {
      password: agentCredential,
      application_name: 'report-bot',
    });
    await client.query('SELECT count(*) FROM notes');
    await client.end();
    const events = await gw.sessionEvents('report-bot');
    const statement = events.find((e) => e.type === 'statement')!;
    expect(statement.person.subject).toBe('ada');
    expect(statement.agent).toEqual({ id: idp.agents[0]!.clientId, name: 'Report bot' });
    expect(statement.authMethod).toBe('token-exchange');
  });

  it('cannot use the delegated credential for another resource', async () => {
    const err = await connectError(gw.clientConfig('other', { password: agentCredential }));
    expect(err.code).toBe('42501');
  });

  it('lists and revokes delegations; a revoked delegation ends the credential at once', async () => {
    const listed = await fetch(`${api}/v1/delegations`, {
      headers: { authorization: `Bearer ${adaCredential}` },
    });
    const { delegations } = (await listed.json()) as { delegations: { id: string }[] };
    expect(delegations.map((d) => d.id)).toContain(delegationId);
    const revoked = await fetch(`${api}/v1/delegations/${delegationId}`, {
      method: 'DELETE',
      headers: { authorization: `Bearer ${adaCredential}` },
    });
    expect(revoked.status).toBe(200);
    const err = await connectError(gw.clientConfig('notes', { password: agentCredential }));
    expect(err.code).toBe('28000');
    expect(err.message).toContain('revoked');
  });

  it('cannot act as itself where it has no resources of its own', async () => {
    const agentTokens = await agentClient.clientCredentials({ resource: idp.resource });
    secrets.push(agentTokens.accessToken);
    const { status, json } = await post('/v1/token', {
      grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
      actor_token: agentTokens.accessToken,
      resource: 'notes',
    });
    expect(status).toBe(403);
    expect(json['error']).toBe('access_denied');
  });

  it('keeps every token out of the events', async () => {
    const text = await gw.readEventText();
    for (const secret of secrets) expect(text).not.toContain(secret);
  });
});
