import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { inspect } from 'node:util';
import { SignJWT, exportJWK, generateKeyPair } from 'jose';
import { afterEach, describe, expect, it } from 'vitest';
import { IdentityError } from './identity-error.js';
import { IdpVerifier } from './idp-verifier.js';
import { OidcClient } from './oidc-client.js';

// The real IdP (oidc-provider) is exercised in test/oidc-identity.test.ts; these cases need
// an IdP that misbehaves on purpose: one that never answers, or answers discovery only.

const servers: Server[] = [];
const hanging: ServerResponse[] = [];

afterEach(async () => {
  for (const res of hanging.splice(0)) res.destroy();
  await Promise.all(
    servers.splice(0).map(
      (server) =>
        new Promise<void>((resolve) => {
          server.closeAllConnections();
          server.close(() => resolve());
        }),
    ),
  );
});

async function serve(
  handler: (path: string, res: ServerResponse, base: string) => void,
): Promise<string> {
  const server = createServer((req, res) => handler(req.url ?? '/', res, base));
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return base;
}

function json(res: ServerResponse, body: unknown): void {
  res.writeHead(200, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

async function failure(promise: Promise<unknown>): Promise<IdentityError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(IdentityError);
  return error as IdentityError;
}

describe('IdpVerifier against an IdP that misbehaves', () => {
  it('gives up on a discovery that never answers, within the timeout', async () => {
    const issuer = await serve((_path, res) => hanging.push(res));
    const started = Date.now();
    const error = await failure(
      IdpVerifier.discover({
        issuer,
        audience: 'gw',
        timeoutMs: 1000,
        allowInsecureRequests: true,
      }),
    );
    expect(Date.now() - started).toBeLessThan(3000);
    expect(error).toMatchObject({ code: 'PCL_ERR_IDENTITY_IDP_UNREACHABLE', reason: 'timeout' });
  });

  it('reports an IdP nobody listens for as unreachable', async () => {
    const issuer = await serve(() => undefined);
    await new Promise<void>((resolve) => servers.pop()?.close(() => resolve()));
    const error = await failure(
      IdpVerifier.discover({ issuer, audience: 'gw', allowInsecureRequests: true }),
    );
    expect(error).toMatchObject({
      code: 'PCL_ERR_IDENTITY_IDP_UNREACHABLE',
      reason: 'unreachable',
    });
  });

  it('refuses an http issuer unless allowed', async () => {
    const error = await failure(
      IdpVerifier.discover({ issuer: 'http://127.0.0.1:9', audience: 'gw' }),
    );
    expect(error.code).toBe('PCL_ERR_IDENTITY_IDP_UNREACHABLE');
  });

  it('times out fetching keys from a JWKS endpoint that stalls, and rejects HS tokens without fetching', async () => {
    let jwksRequests = 0;
    const issuer = await serve((path, res, base) => {
      if (path === '/.well-known/openid-configuration') {
        json(res, { issuer: base, jwks_uri: `${base}/jwks` });
      } else {
        jwksRequests++;
        hanging.push(res);
      }
    });
    const verifier = await IdpVerifier.discover({
      issuer,
      audience: 'gw',
      timeoutMs: 500,
      allowInsecureRequests: true,
    });
    const { privateKey, publicKey } = await generateKeyPair('ES256');
    const token = await new SignJWT({ sub: 'p1' })
      .setProtectedHeader({ alg: 'ES256', kid: 'k1' })
      .setIssuer(issuer)
      .setAudience('gw')
      .setIssuedAt()
      .setExpirationTime('5m')
      .sign(privateKey);
    const started = Date.now();
    const error = await failure(verifier.verify(token));
    expect(Date.now() - started).toBeLessThan(2000);
    expect(error).toMatchObject({ code: 'PCL_ERR_IDENTITY_IDP_UNREACHABLE', reason: 'timeout' });
    expect(inspect(error)).not.toContain(token.split('.')[2]);

    const secret = new TextEncoder().encode(JSON.stringify(await exportJWK(publicKey)));
    const hs = await new SignJWT({ sub: 'p1' })
      .setProtectedHeader({ alg: 'HS256', kid: 'k1' })
      .setIssuer(issuer)
      .setAudience('gw')
      .setIssuedAt()
      .setExpirationTime('5m')
      .sign(secret);
    const before = jwksRequests;
    expect(await failure(verifier.verify(hs))).toMatchObject({ reason: 'alg-not-allowed' });
    expect(jwksRequests).toBe(before);
  });

  it('reports a JWKS endpoint that answers garbage as a bad response', async () => {
    const issuer = await serve((path, res, base) => {
      if (path === '/.well-known/openid-configuration') {
        json(res, { issuer: base, jwks_uri: `${base}/jwks` });
      } else {
        json(res, { keys: 'nope' });
      }
    });
    const verifier = await IdpVerifier.discover({
      issuer,
      audience: 'gw',
      allowInsecureRequests: true,
    });
    const { privateKey } = await generateKeyPair('ES256');
    const token = await new SignJWT({ sub: 'p1' })
      .setProtectedHeader({ alg: 'ES256', kid: 'k1' })
      .setIssuer(issuer)
      .setAudience('gw')
      .setIssuedAt()
      .setExpirationTime('5m')
      .sign(privateKey);
    expect(await failure(verifier.verify(token))).toMatchObject({
      code: 'PCL_ERR_IDENTITY_IDP_UNREACHABLE',
      reason: 'bad-response',
    });
  });
});

describe('OidcClient against an IdP that misbehaves', () => {
  it('never puts the client secret in an error', async () => {
    const secret = 'client-secret-that-must-not-leak';
    const issuer = await serve((path, res, base) => {
      if (path === '/.well-known/openid-configuration') {
        json(res, {
          issuer: base,
          token_endpoint: `${base}/token`,
          device_authorization_endpoint: `${base}/device`,
          jwks_uri: `${base}/jwks`,
        });
      } else {
        // Echo what a careless IdP might: the request's credentials in the error text.
        res.writeHead(401, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ error: 'invalid_client', error_description: `bad ${secret}` }));
      }
    });
    const client = await OidcClient.discover({
      issuer,
      clientId: 'gw',
      clientSecret: secret,
      allowInsecureRequests: true,
    });
    for (const attempt of [
      () => client.clientCredentials({ scope: 'x' }),
      () => client.startDeviceLogin(),
    ]) {
      const error = await failure(attempt());
      expect(error.code).toBe('PCL_ERR_IDENTITY_LOGIN_FAILED');
      expect(inspect(error, { depth: 10 })).not.toContain(secret);
      expect(inspect(error, { depth: 10 })).not.toContain(
        Buffer.from(`gw:${secret}`).toString('base64'),
      );
    }
  });
});
