// Identity against a real OIDC provider (oidc-provider, started in-process by the testkit):
// discovery, device and browser (PKCE) logins driven through the provider's own pages, offline
// verification of its tokens, an agent's client-credentials token, delegation and token
// exchange into a gateway credential, and an IdP that has gone away.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import {
  Delegations,
  FileDelegationStore,
  GatewayCredentialIssuer,
  GatewayCredentialVerifier,
  IdentityError,
  IdpVerifier,
  KeyRing,
  OidcClient,
  type AgentIdentity,
  type OidcTokens,
} from '@portcullis/identity';
import { startOidcProvider, type OidcProviderServer } from '@portcullis/testkit';
import { SignJWT, decodeJwt, decodeProtectedHeader, generateKeyPair } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const GATEWAY = 'https://gateway.portcullis.test';

let idp: OidcProviderServer;
let dir: string;
let verifier: IdpVerifier;
let gatewayClient: OidcClient;
let cliClient: OidcClient;
let agentClient: OidcClient;
let keys: KeyRing;
let credentials: GatewayCredentialVerifier;
let delegations: Delegations;
/** Every secret the suite handled: none may show up in any error. */
const secrets: string[] = [];
/** Every error the suite provoked. */
const errors: unknown[] = [];

async function failure(promise: Promise<unknown>): Promise<IdentityError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(IdentityError);
  errors.push(error);
  return error as IdentityError;
}

function keep(tokens: OidcTokens): OidcTokens {
  secrets.push(tokens.accessToken);
  if (tokens.idToken !== undefined) secrets.push(tokens.idToken);
  if (tokens.refreshToken !== undefined) secrets.push(tokens.refreshToken);
  return tokens;
}

beforeAll(async () => {
  idp = await startOidcProvider();
  secrets.push(idp.gatewayClient.clientSecret, ...idp.agents.map((a) => a.clientSecret));
  dir = await mkdtemp(join(tmpdir(), 'pcl-oidc-'));
  const insecure = { allowInsecureRequests: true } as const;
  verifier = await IdpVerifier.discover({
    issuer: idp.issuer,
    audience: [idp.gatewayClient.clientId, idp.cliClient.clientId, idp.resource],
    ...insecure,
  });
  gatewayClient = await OidcClient.discover({
    issuer: idp.issuer,
    clientId: idp.gatewayClient.clientId,
    clientSecret: idp.gatewayClient.clientSecret,
    ...insecure,
  });
  cliClient = await OidcClient.discover({
    issuer: idp.issuer,
    clientId: idp.cliClient.clientId,
    ...insecure,
  });
  const agent = idp.agents[0]!;
  agentClient = await OidcClient.discover({
    issuer: idp.issuer,
    clientId: agent.clientId,
    clientSecret: agent.clientSecret,
    ...insecure,
  });
  keys = await KeyRing.open({ dir: join(dir, 'keys') });
  const issuer = new GatewayCredentialIssuer({ keys, issuer: GATEWAY });
  credentials = new GatewayCredentialVerifier({ keys, issuer: GATEWAY });
  delegations = new Delegations({
    store: await FileDelegationStore.open({ dir: join(dir, 'data') }),
    issuer,
  });
});

afterAll(async () => {
  await idp?.stop();
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

describe('identity against oidc-provider', () => {
  it('discovers the IdP', () => {
    expect(verifier.issuer).toBe(idp.issuer);
    expect(verifier.jwksUri.href).toBe(`${idp.issuer}/jwks`);
    expect(gatewayClient.issuer).toBe(idp.issuer);
  });

  it('a person logs in with the device flow; ID and access tokens name them and their groups', async () => {
    const login = await gatewayClient.startDeviceLogin();
    expect(login.userCode).toMatch(/^[A-Z]{4}-?[A-Z]{4}$/);
    expect(login.verificationUri).toBe(`${idp.issuer}/device`);
    const [tokens] = await Promise.all([
      gatewayClient.pollDeviceLogin(login, { intervalMs: 100 }).then(keep),
      idp.completeDeviceFlow(login.userCode, 'ada'),
    ]);
    expect(tokens.idToken).toBeDefined();
    expect(tokens.refreshToken).toBeDefined();
    const ada = {
      subject: 'ada',
      email: 'ada@example.com',
      name: 'Ada Lovelace',
      groups: ['engineering', 'approvers'],
    };
    expect(await verifier.verifyPerson(tokens.idToken!)).toEqual(ada);
    // The access token is an ES256 JWT for the gateway's resource: verifiable offline.
    expect(decodeProtectedHeader(tokens.accessToken)).toMatchObject({
      alg: 'ES256',
      typ: 'at+jwt',
    });
    expect(decodeJwt(tokens.accessToken).aud).toBe(idp.resource);
    expect(await verifier.verifyPerson(tokens.accessToken)).toEqual(ada);

    // The device code cannot be used twice.
    const replay = await failure(gatewayClient.pollDeviceLogin(login, { intervalMs: 100 }));
    expect(replay).toMatchObject({ code: 'PCL_ERR_IDENTITY_LOGIN_FAILED', reason: 'rejected' });
  });

  it('a denied device login ends as denied', async () => {
    const login = await gatewayClient.startDeviceLogin();
    const [error] = await Promise.all([
      failure(gatewayClient.pollDeviceLogin(login, { intervalMs: 100 })),
      idp.denyDeviceFlow(login.userCode),
    ]);
    expect(error).toMatchObject({ code: 'PCL_ERR_IDENTITY_LOGIN_FAILED', reason: 'denied' });
  });

  it('a person logs in with the authorization code flow, PKCE and a loopback redirect', async () => {
    const login = await cliClient.startPkceLogin({ timeoutMs: 20_000 });
    expect(login.redirectUri).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/callback$/);
    const params = login.authorizationUrl.searchParams;
    expect(params.get('code_challenge_method')).toBe('S256');
    expect(params.get('redirect_uri')).toBe(login.redirectUri);
    expect(params.get('state')).toBeTruthy();
    const callback = await idp.completeAuthorization(login.authorizationUrl, 'bob');
    expect(callback.searchParams.get('code')).toBeTruthy();
    const tokens = keep(await login.tokens);
    const bob = await verifier.verifyPerson(tokens.idToken!);
    expect(bob).toEqual({
      subject: 'bob',
      email: 'bob@example.com',
      name: 'Bob Builder',
      groups: ['engineering'],
    });
    expect(await verifier.verifyPerson(tokens.accessToken)).toEqual(bob);
    await login.close();
  });

  it('the confidential gateway client can use the browser flow too', async () => {
    const login = await gatewayClient.startPkceLogin({ timeoutMs: 20_000 });
    await idp.completeAuthorization(login.authorizationUrl, 'ada');
    const tokens = keep(await login.tokens);
    expect((await verifier.verifyPerson(tokens.idToken!)).subject).toBe('ada');
  });

  it('an agent gets a client-credentials token and is verified as itself, not as a person', async () => {
    const tokens = keep(
      await agentClient.clientCredentials({ resource: idp.resource, scope: 'db:connect' }),
    );
    const agent = await verifier.verifyAgent(tokens.accessToken);
    expect(agent).toEqual({ id: 'report-bot' });
    const error = await failure(verifier.verifyPerson(tokens.accessToken));
    expect(error).toMatchObject({ reason: 'invalid-claims' });
  });

  it('exchange with a delegation yields a gateway credential naming the person and the agent; a revoked one is refused', async () => {
    const deviceLogin = await gatewayClient.startDeviceLogin();
    const [personTokens] = await Promise.all([
      gatewayClient.pollDeviceLogin(deviceLogin, { intervalMs: 100 }).then(keep),
      idp.completeDeviceFlow(deviceLogin.userCode, 'ada'),
    ]);
    const person = await verifier.verifyPerson(personTokens.accessToken);
    const agentTokens = keep(
      await agentClient.clientCredentials({ resource: idp.resource, scope: 'db:connect' }),
    );
    const verifiedAgent = await verifier.verifyAgent(agentTokens.accessToken);
    const agent: AgentIdentity = { ...verifiedAgent, name: idp.agents[0]!.name };

    const delegation = await delegations.createDelegation({
      person,
      agentId: agent.id,
      resources: ['orders-db'],
      ttlMs: 3600_000,
      reason: 'monthly report',
    });
    const issued = await delegations.exchangeToken({
      agent,
      delegationId: delegation.id,
      resource: 'orders-db',
    });
    secrets.push(issued.token);
    expect(issued.claims).toMatchObject({
      iss: GATEWAY,
      aud: 'portcullis',
      sub: 'ada',
      email: 'ada@example.com',
      groups: ['engineering', 'approvers'],
      act: { sub: 'report-bot', name: 'Report bot' },
      auth_method: 'token-exchange',
      resources: ['orders-db'],
      delegation_id: delegation.id,
    });
    const checked = await credentials.verify(issued.token);
    expect(checked.person.subject).toBe('ada');
    expect(checked.agent).toEqual({ id: 'report-bot', name: 'Report bot' });
    expect(keys.jwks().keys.map((k) => k.kid)).toContain(checked.kid);

    expect(
      await failure(
        delegations.exchangeToken({ agent, delegationId: delegation.id, resource: 'payroll-db' }),
      ),
    ).toMatchObject({ code: 'PCL_ERR_IDENTITY_DELEGATION_REFUSED', reason: 'out-of-scope' });
    await delegations.revokeDelegation(delegation.id, { person: 'ada' });
    expect(
      await failure(
        delegations.exchangeToken({ agent, delegationId: delegation.id, resource: 'orders-db' }),
      ),
    ).toMatchObject({ code: 'PCL_ERR_IDENTITY_DELEGATION_REFUSED', reason: 'revoked' });
  });

  it('a wrong client secret is refused without the secret in the error', async () => {
    const wrong = `${idp.agents[0]!.clientSecret}-wrong`;
    secrets.push(wrong);
    const client = await OidcClient.discover({
      issuer: idp.issuer,
      clientId: idp.agents[0]!.clientId,
      clientSecret: wrong,
      allowInsecureRequests: true,
    });
    const error = await failure(
      client.clientCredentials({ resource: idp.resource, scope: 'db:connect' }),
    );
    expect(error).toMatchObject({ code: 'PCL_ERR_IDENTITY_LOGIN_FAILED', reason: 'rejected' });
  });

  it('once the IdP is down, a token with an unknown kid fails as IdP unreachable within the timeout', async () => {
    const tokens = keep(
      await agentClient.clientCredentials({ resource: idp.resource, scope: 'db:connect' }),
    );
    const down = await IdpVerifier.discover({
      issuer: idp.issuer,
      audience: idp.resource,
      timeoutMs: 2000,
      jwksCooldownMs: 0,
      allowInsecureRequests: true,
    });
    await down.verify(tokens.accessToken); // keys now cached
    await idp.stop();

    // Cached keys still verify tokens the IdP signed before it went away.
    expect((await down.verifyAgent(tokens.accessToken)).id).toBe('report-bot');
    const { privateKey } = await generateKeyPair('ES256');
    const forged = await new SignJWT({ client_id: 'report-bot' })
      .setProtectedHeader({ alg: 'ES256', kid: 'rotated-key' })
      .setIssuer(idp.issuer)
      .setSubject('report-bot')
      .setAudience(idp.resource)
      .setIssuedAt()
      .setExpirationTime('5m')
      .sign(privateKey);
    secrets.push(forged);
    const started = Date.now();
    const error = await failure(down.verify(forged));
    expect(Date.now() - started).toBeLessThan(2500);
    expect(error).toMatchObject({
      code: 'PCL_ERR_IDENTITY_IDP_UNREACHABLE',
      reason: 'unreachable',
      retriable: true,
    });

    const rediscover = await failure(
      IdpVerifier.discover({
        issuer: idp.issuer,
        audience: 'x',
        timeoutMs: 2000,
        allowInsecureRequests: true,
      }),
    );
    expect(rediscover.code).toBe('PCL_ERR_IDENTITY_IDP_UNREACHABLE');
  });

  it('no secret (client secret, token) appears in any error the suite provoked', () => {
    expect(errors.length).toBeGreaterThanOrEqual(8);
    expect(secrets.length).toBeGreaterThanOrEqual(10);
    for (const error of errors) {
      const text = `${String(error)}\n${inspect(error, { depth: 10 })}\n${JSON.stringify(error)}`;
      for (const secret of secrets) {
        expect(text).not.toContain(secret);
        // Nor the signature part of a token on its own.
        const signature = secret.split('.')[2];
        if (signature !== undefined && signature.length > 16) expect(text).not.toContain(signature);
      }
    }
  });
});
