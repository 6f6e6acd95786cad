import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { OidcClient, type OidcTokens } from '@portcullis/identity';
import * as oidc from 'openid-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDemoIdp, type DemoIdp } from './demo-idp.js';

const PEOPLE = [
  { subject: 'alice', email: 'alice@example.com', name: 'Alice Martin', groups: ['engineering'] },
  { subject: 'bob', email: 'bob@example.com', name: 'Bob Okafor', groups: ['dba', 'approvers'] },
];
const AGENT = { clientId: 'report-bot', name: 'Report bot' };

let dataDir: string;
let idp: DemoIdp;

function claimsOf(jwt: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(jwt.split('.')[1]!, 'base64url').toString()) as Record<
    string,
    unknown
  >;
}

/** A person at the IdP's pages with a browser: enters the device code, picks `subject`. */
async function approveDevice(issuer: string, userCode: string, subject: string): Promise<string> {
  const cookies = new Map<string, string>();
  const request = async (url: URL, form?: Record<string, string>): Promise<Response> => {
    const response = await fetch(url, {
      method: form === undefined ? 'GET' : 'POST',
      redirect: 'manual',
      headers: {
        cookie: [...cookies].map(([k, v]) => `${k}=${v}`).join('; '),
        ...(form === undefined ? {} : { 'content-type': 'application/x-www-form-urlencoded' }),
      },
      ...(form === undefined ? {} : { body: new URLSearchParams(form).toString() }),
    });
    for (const line of response.headers.getSetCookie()) {
      const [pair = ''] = line.split(';');
      const eq = pair.indexOf('=');
      cookies.set(pair.slice(0, eq), pair.slice(eq + 1));
    }
    return response;
  };
  const confirm = await (await request(new URL(`/device?user_code=${userCode}`, issuer))).text();
  expect(confirm).toContain(userCode);
  const fields = Object.fromEntries(
    [...confirm.matchAll(/<input[^>]*name="([^"]+)"[^>]*value="([^"]*)"/g)].map((m) => [
      m[1]!,
      m[2]!,
    ]),
  );
  let response = await request(new URL('/device', issuer), { ...fields, confirm: 'yes' });
  let pages = '';
  for (let hop = 0; hop < 10 && response.status >= 300 && response.status < 400; hop++) {
    const next = new URL(response.headers.get('location')!, issuer);
    const interaction = /^\/interaction\/([\w-]+)$/.exec(next.pathname);
    if (interaction !== null) {
      const signIn = await (await request(next)).text();
      pages += signIn;
      response = await request(new URL(`/interaction/${interaction[1]}/login`, issuer), {
        subject,
      });
    } else {
      response = await request(next);
    }
  }
  return pages + (await response.text());
}

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'portcullis-demo-idp-'));
  idp = await startDemoIdp({ dataDir, people: PEOPLE, agent: AGENT });
});

afterAll(async () => {
  await idp?.close();
  await rm(dataDir, { recursive: true, force: true });
});

describe('startDemoIdp', () => {
  let deviceTokens: OidcTokens;

  it('logs a person in with the device flow through its sign-in page', async () => {
    const cli = await OidcClient.discover({
      issuer: idp.issuer,
      clientId: idp.cliClientId,
      allowInsecureRequests: true,
    });
    const started = await cli.startDeviceLogin({ resource: idp.resource });
    const [tokens, pages] = await Promise.all([
      cli.pollDeviceLogin(started, { intervalMs: 100 }),
      approveDevice(idp.issuer, started.userCode, 'bob'),
    ]);
    expect(pages).toContain('Alice Martin');
    expect(pages).toContain('bob@example.com · dba, approvers');
    expect(pages).toContain('Return to your terminal');
    expect(claimsOf(tokens.accessToken)).toMatchObject({
      sub: 'bob',
      aud: idp.resource,
      email: 'bob@example.com',
      groups: ['dba', 'approvers'],
    });
    expect(tokens.refreshToken).toBeDefined();
    deviceTokens = tokens;
  });

  it('signs a person in for the demo itself (authorization code + PKCE)', async () => {
    const cli = await OidcClient.discover({
      issuer: idp.issuer,
      clientId: idp.cliClientId,
      allowInsecureRequests: true,
    });
    const login = await cli.startPkceLogin({ resource: idp.resource, timeoutMs: 10_000 });
    const [tokens] = await Promise.all([login.tokens, idp.signIn(login.authorizationUrl, 'alice')]);
    expect(claimsOf(tokens.accessToken)).toMatchObject({ sub: 'alice', groups: ['engineering'] });
  });

  it('gives the agent a token of its own', async () => {
    const agent = await OidcClient.discover({
      issuer: idp.issuer,
      clientId: idp.agent.clientId,
      clientSecret: idp.agent.clientSecret,
      allowInsecureRequests: true,
    });
    const tokens = await agent.clientCredentials({ resource: idp.resource });
    expect(claimsOf(tokens.accessToken)).toMatchObject({
      client_id: 'report-bot',
      aud: idp.resource,
      client_name: 'Report bot',
    });
  });

  it('keeps keys, the agent secret, grants and the port across a restart, privately', async () => {
    const before = { issuer: idp.issuer, secret: idp.agent.clientSecret };
    const jwks = await (await fetch(`${idp.issuer}/jwks`)).json();
    await idp.close();
    idp = await startDemoIdp({ dataDir, people: PEOPLE, agent: AGENT });
    expect(idp.issuer).toBe(before.issuer);
    expect(idp.movedPort).toBe(false);
    expect(idp.agent.clientSecret).toBe(before.secret);
    expect(await (await fetch(`${idp.issuer}/jwks`)).json()).toEqual(jwks);
    // A login from before the restart can still be renewed.
    const config = await oidc.discovery(
      new URL(idp.issuer),
      idp.cliClientId,
      undefined,
      oidc.None(),
      {
        execute: [oidc.allowInsecureRequests],
      },
    );
    const renewed = await oidc.refreshTokenGrant(config, deviceTokens.refreshToken!, {
      resource: idp.resource,
    });
    expect(claimsOf(renewed.access_token)).toMatchObject({ sub: 'bob' });
    for (const name of ['state.json', 'grants.json']) {
      expect((await stat(join(dataDir, 'demo-idp', name))).mode & 0o777).toBe(0o600);
    }
    expect((await stat(join(dataDir, 'demo-idp'))).mode & 0o777).toBe(0o700);
    expect(await readFile(join(dataDir, 'demo-idp', 'grants.json'), 'utf8')).not.toContain(
      deviceTokens.accessToken,
    );
  });

  it('moves to a free port when the last one is taken', async () => {
    const taken = idp;
    const other = await startDemoIdp({ dataDir, people: PEOPLE, agent: AGENT });
    try {
      expect(other.port).not.toBe(taken.port);
      expect(other.movedPort).toBe(true);
    } finally {
      await other.close();
    }
  });
});
