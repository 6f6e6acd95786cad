import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { IdentityError } from './identity-error.js';
import { OidcClient } from './oidc-client.js';

// The full flows run against oidc-provider in test/oidc-identity.test.ts; these cases check
// the loopback listener's own behaviour, with an IdP that only serves its discovery document.

let server: Server | undefined;
afterEach(async () => {
  const s = server;
  server = undefined;
  if (s !== undefined) {
    s.closeAllConnections();
    await new Promise<void>((resolve) => s.close(() => resolve()));
  }
});

async function discoveryOnlyIdp(): Promise<OidcClient> {
  server = createServer((req, res: ServerResponse) => {
    const base = `http://127.0.0.1:${(server?.address() as AddressInfo).port}`;
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(
      JSON.stringify({
        issuer: base,
        authorization_endpoint: `${base}/auth`,
        token_endpoint: `${base}/token`,
        jwks_uri: `${base}/jwks`,
      }),
    );
  });
  await new Promise<void>((resolve) => server?.listen(0, '127.0.0.1', resolve));
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return OidcClient.discover({ issuer, clientId: 'cli', allowInsecureRequests: true });
}

async function reason(promise: Promise<unknown>): Promise<string> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(IdentityError);
  return (error as IdentityError).reason;
}

describe('OidcClient.startPkceLogin', () => {
  it('builds an S256 PKCE authorization URL with state and nonce for a loopback redirect', async () => {
    const client = await discoveryOnlyIdp();
    const login = await client.startPkceLogin({ scope: 'openid', resource: 'urn:x' });
    const params = login.authorizationUrl.searchParams;
    expect(login.authorizationUrl.pathname).toBe('/auth');
    expect(params.get('client_id')).toBe('cli');
    expect(params.get('response_type')).toBe('code');
    expect(params.get('code_challenge_method')).toBe('S256');
    expect(params.get('code_challenge')).toMatch(/^[\w-]{43}$/);
    expect(params.get('state')).toMatch(/^[\w-]{20,}$/);
    expect(params.get('nonce')).toMatch(/^[\w-]{20,}$/);
    expect(params.get('resource')).toBe('urn:x');
    expect(params.get('redirect_uri')).toBe(login.redirectUri);
    expect(new URL(login.redirectUri).hostname).toBe('127.0.0.1');
    await login.close();
    expect(await reason(login.tokens)).toBe('timeout');
  });

  it('ignores answers for another login, and ends denied when the person denies', async () => {
    const client = await discoveryOnlyIdp();
    const login = await client.startPkceLogin();
    const state = login.authorizationUrl.searchParams.get('state') ?? '';
    const stale = await fetch(`${login.redirectUri}?code=x&state=someone-else`);
    expect(stale.status).toBe(400);
    expect((await fetch(new URL('/other', login.redirectUri))).status).toBe(404);
    const denied = await fetch(`${login.redirectUri}?error=access_denied&state=${state}`);
    expect(denied.status).toBe(400);
    expect(await reason(login.tokens)).toBe('denied');
    // The listener is gone afterwards.
    await expect(fetch(login.redirectUri)).rejects.toThrow();
  });

  it('times out when the browser never comes back', async () => {
    const client = await discoveryOnlyIdp();
    const login = await client.startPkceLogin({ timeoutMs: 100 });
    expect(await reason(login.tokens)).toBe('timeout');
  });
});
