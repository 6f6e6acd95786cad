import { chmod, mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import {
  SignJWT,
  base64url,
  createLocalJWKSet,
  exportJWK,
  exportSPKI,
  generateKeyPair,
  importJWK,
  jwtVerify,
  type CryptoKey,
  type JWTPayload,
} from 'jose';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { GatewayCredentialIssuer } from './gateway-credential-issuer.js';
import { GatewayCredentialVerifier } from './gateway-credential-verifier.js';
import { IdentityError, type TokenRejectReason } from './identity-error.js';
import { KeyRing } from './key-ring.js';

const ISSUER = 'https://gateway.test';
const person = { subject: 'p-ada', email: 'ada@example.com', groups: ['dba', 'eng'] };

let dir: string;
let clock: number;
const now = (): number => clock;
let ring: KeyRing;
let issuer: GatewayCredentialIssuer;
let verifier: GatewayCredentialVerifier;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pcl-keys-'));
  clock = Date.UTC(2030, 0, 1);
  ring = await KeyRing.open({ dir: join(dir, 'keys'), now, maxTokenTtlMs: 3600_000 });
  issuer = new GatewayCredentialIssuer({ keys: ring, issuer: ISSUER, now });
  verifier = new GatewayCredentialVerifier({ keys: ring, issuer: ISSUER, now });
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Signs `claims` with the ring's current key (or `key`), filling in valid defaults. */
async function sign(
  claims: JWTPayload,
  options: { omit?: string[]; alg?: string; kid?: string; key?: CryptoKey | Uint8Array } = {},
): Promise<string> {
  const current = await ring.signingKey();
  const iat = Math.floor(clock / 1000);
  const payload: JWTPayload = {
    iss: ISSUER,
    aud: 'portcullis',
    sub: person.subject,
    email: person.email,
    groups: person.groups,
    auth_method: 'oidc',
    iat,
    nbf: iat,
    exp: iat + 600,
    jti: 'j-1',
    ...claims,
  };
  for (const name of options.omit ?? []) delete payload[name];
  return new SignJWT(payload)
    .setProtectedHeader({ alg: options.alg ?? current.alg, kid: options.kid ?? current.kid })
    .sign(options.key ?? current.privateKey);
}

async function rejection(token: string, v = verifier): Promise<IdentityError> {
  const error = await v.verify(token).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(IdentityError);
  return error as IdentityError;
}

async function expectReason(token: string, reason: TokenRejectReason): Promise<void> {
  const error = await rejection(token);
  expect(error.code).toBe('PCL_ERR_IDENTITY_TOKEN_INVALID');
  expect(error.reason).toBe(reason);
  // Nothing of the token (or a key) in what would reach a log.
  const text = `${error.message}\n${inspect(error, { depth: 5 })}`;
  for (const part of token.split('.')) if (part.length > 8) expect(text).not.toContain(part);
}

describe('GatewayCredentialIssuer and GatewayCredentialVerifier', () => {
  it('issues a person credential that verifies and names the person', async () => {
    const issued = await issuer.issue({ person, authMethod: 'oidc', ttlMs: 300_000 });
    const [header] = issued.token.split('.');
    expect(JSON.parse(new TextDecoder().decode(base64url.decode(header ?? '')))).toEqual({
      alg: 'ES256',
      kid: issued.kid,
      typ: 'JWT',
    });
    expect(issued.claims).toMatchObject({
      iss: ISSUER,
      aud: 'portcullis',
      sub: 'p-ada',
      email: 'ada@example.com',
      groups: ['dba', 'eng'],
      auth_method: 'oidc',
    });
    expect(issued.claims.exp - issued.claims.iat).toBe(300);
    expect(issued.claims.nbf).toBe(issued.claims.iat);
    expect(issued.claims.jti).toMatch(/^[0-9a-f-]{36}$/);
    expect(issued.claims.act).toBeUndefined();
    const verified = await verifier.verify(issued.token);
    expect(verified.person).toEqual(person);
    expect(verified.agent).toBeNull();
    expect(verified.resources).toBeNull();
    expect(verified.kid).toBe(issued.kid);
    expect(verified.expiresAt).toBe(issued.expiresAt);
  });

  it('names the agent in act for a delegated credential', async () => {
    const issued = await issuer.issue({
      person,
      agent: { id: 'agent-7', name: 'Report bot' },
      authMethod: 'token-exchange',
      resources: ['orders-db'],
      delegationId: 'dlg_x',
    });
    expect(issued.claims.act).toEqual({ sub: 'agent-7', name: 'Report bot' });
    const verified = await verifier.verify(issued.token);
    expect(verified.person.subject).toBe('p-ada');
    expect(verified.agent).toEqual({ id: 'agent-7', name: 'Report bot' });
    expect(verified.authMethod).toBe('token-exchange');
    expect(verified.resources).toEqual(['orders-db']);
    expect(verified.delegationId).toBe('dlg_x');
  });

  it('caps the lifetime at the key ring maximum and gives every credential its own jti', async () => {
    const a = await issuer.issue({ person, authMethod: 'oidc', ttlMs: 10 * 3600_000 });
    const b = await issuer.issue({ person, authMethod: 'oidc' });
    expect(a.claims.exp - a.claims.iat).toBe(3600);
    expect(b.claims.exp - b.claims.iat).toBe(600);
    expect(a.claims.jti).not.toBe(b.claims.jti);
  });

  it('rejects an expired credential (past the clock tolerance)', async () => {
    const issued = await issuer.issue({ person, authMethod: 'oidc', ttlMs: 60_000 });
    clock += 60_000 + 20_000;
    await expect(verifier.verify(issued.token)).resolves.toBeDefined();
    clock += 20_000;
    await expectReason(issued.token, 'expired');
  });

  it('rejects a credential that is not valid yet', async () => {
    const iat = Math.floor(clock / 1000);
    await expectReason(await sign({ nbf: iat + 120, exp: iat + 600 }), 'not-yet-valid');
  });

  it('rejects a wrong issuer and a wrong audience', async () => {
    await expectReason(await sign({ iss: 'https://evil.test' }), 'wrong-issuer');
    await expectReason(await sign({ aud: 'someone-else' }), 'wrong-audience');
  });

  it('rejects an unknown kid, and a token with no kid', async () => {
    const { privateKey } = await generateKeyPair('ES256');
    await expectReason(await sign({}, { key: privateKey, kid: 'not-a-key-here' }), 'unknown-kid');
    const current = await ring.signingKey();
    const noKid = await new SignJWT({ sub: 'x' })
      .setProtectedHeader({ alg: 'ES256' })
      .sign(current.privateKey);
    await expectReason(noKid, 'unknown-kid');
  });

  it('rejects alg none', async () => {
    const current = await ring.signingKey();
    const enc = (v: object): string => base64url.encode(JSON.stringify(v));
    const iat = Math.floor(clock / 1000);
    const body = enc({
      iss: ISSUER,
      aud: 'portcullis',
      sub: 'p-ada',
      email: 'a@b',
      groups: [],
      auth_method: 'oidc',
      iat,
      nbf: iat,
      exp: iat + 60,
      jti: 'x',
    });
    await expectReason(`${enc({ alg: 'none', kid: current.kid })}.${body}.`, 'alg-not-allowed');
    await expectReason(`${enc({ alg: 'none', kid: current.kid })}.${body}.c2ln`, 'alg-not-allowed');
  });

  it('rejects HS/RS confusion: an HS256 token signed with the public key as the secret', async () => {
    const current = await ring.signingKey();
    const jwk = ring.jwks().keys[0];
    const publicKey = (await importJWK(jwk!, 'ES256')) as CryptoKey;
    const secrets = [
      new TextEncoder().encode(await exportSPKI(publicKey)),
      new TextEncoder().encode(JSON.stringify(jwk)),
      new TextEncoder().encode(JSON.stringify(await exportJWK(publicKey))),
    ];
    for (const secret of secrets) {
      await expectReason(
        await sign({}, { alg: 'HS256', kid: current.kid, key: secret }),
        'alg-not-allowed',
      );
    }
  });

  it('rejects an RSA token presented with the EC key id', async () => {
    const current = await ring.signingKey();
    const { privateKey } = await generateKeyPair('RS256');
    await expectReason(
      await sign({}, { alg: 'RS256', kid: current.kid, key: privateKey }),
      'alg-not-allowed',
    );
  });

  it('rejects a tampered signature and a tampered payload', async () => {
    const { token } = await issuer.issue({ person, authMethod: 'oidc' });
    const [h, p, s] = token.split('.') as [string, string, string];
    const flipped = `${s.slice(0, 10)}${s[10] === 'A' ? 'B' : 'A'}${s.slice(11)}`;
    await expectReason(`${h}.${p}.${flipped}`, 'bad-signature');
    const claims = JSON.parse(new TextDecoder().decode(base64url.decode(p))) as JWTPayload;
    const forged = base64url.encode(JSON.stringify({ ...claims, groups: ['admin'] }));
    await expectReason(`${h}.${forged}.${s}`, 'bad-signature');
    // A signature from another key under this ring's kid.
    const { privateKey } = await generateKeyPair('ES256');
    await expectReason(await sign({}, { key: privateKey }), 'bad-signature');
  });

  it('rejects missing claims', async () => {
    for (const omit of ['email', 'groups', 'auth_method', 'jti', 'sub', 'exp', 'nbf']) {
      await expectReason(await sign({}, { omit: [omit] }), 'missing-claims');
    }
  });

  it('rejects claims of the wrong shape and lifetimes no credential of this ring has', async () => {
    await expectReason(await sign({ groups: 'dba' }), 'invalid-claims');
    await expectReason(await sign({ auth_method: 'password' }), 'invalid-claims');
    await expectReason(await sign({ act: { name: 'no sub' } }), 'invalid-claims');
    // An agent credential without the delegation's scope.
    await expectReason(
      await sign({ auth_method: 'token-exchange', act: { sub: 'a' } }),
      'invalid-claims',
    );
    const iat = Math.floor(clock / 1000);
    await expectReason(await sign({ exp: iat + 2 * 3600 }), 'invalid-claims');
  });

  it('rejects malformed input', async () => {
    for (const token of ['', 'abc', 'a.b', 'a.b.c.d', '!!!.e30.x', `${'a'.repeat(20_000)}.b.c`]) {
      await expectReason(token, 'malformed');
    }
    await expectReason(`${base64url.encode('not json')}.e30.c2ln`, 'malformed');
  });

  it('stores keys as 0600 files in a 0700 directory and publishes only public keys', async () => {
    const keysDir = join(dir, 'keys');
    expect((await stat(keysDir)).mode & 0o777).toBe(0o700);
    const files = await readdir(keysDir);
    expect(files).toHaveLength(1);
    expect((await stat(join(keysDir, files[0]!))).mode & 0o777).toBe(0o600);
    const jwks = ring.jwks();
    expect(jwks.keys).toHaveLength(1);
    expect(jwks.keys[0]).toMatchObject({ kty: 'EC', crv: 'P-256', alg: 'ES256', use: 'sig' });
    expect(jwks.keys[0]).not.toHaveProperty('d');
    // A third party can verify with the published JWKS.
    const { token } = await issuer.issue({ person, authMethod: 'oidc' });
    const { payload } = await jwtVerify(token, createLocalJWKSet(jwks), {
      currentDate: new Date(clock),
    });
    expect(payload.sub).toBe('p-ada');
  });

  it('refuses a key file that group or others can read', async () => {
    const keysDir = join(dir, 'keys');
    const [file] = await readdir(keysDir);
    await chmod(join(keysDir, file!), 0o644);
    const error = await KeyRing.open({ dir: keysDir }).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'PCL_ERR_IDENTITY_FILE_INSECURE' });
    expect((error as Error).message).toContain('chmod 600');
    expect((error as Error).message).not.toContain('"d"');
  });

  it('refuses a corrupt key file', async () => {
    const keysDir = join(dir, 'keys');
    await writeFile(join(keysDir, 'junk.jwk.json'), '{nope', { mode: 0o600 });
    await expect(KeyRing.open({ dir: keysDir })).rejects.toMatchObject({
      code: 'PCL_ERR_IDENTITY_FILE_CORRUPT',
    });
  });
});

describe('key rotation', () => {
  it('signs with the new kid, verifies old credentials until they expire, then drops the old key', async () => {
    const old = await issuer.issue({ person, authMethod: 'oidc', ttlMs: 3600_000 });
    clock += 1000;
    const rotated = await ring.rotate();
    expect(rotated.kid).not.toBe(old.kid);
    const fresh = await issuer.issue({ person, authMethod: 'oidc' });
    expect(fresh.kid).toBe(rotated.kid);
    expect(ring.kids()).toEqual([rotated.kid, old.kid]);
    expect(ring.jwks().keys.map((k) => k.kid)).toEqual([rotated.kid, old.kid]);
    await expect(verifier.verify(old.token)).resolves.toMatchObject({ kid: old.kid });
    await expect(verifier.verify(fresh.token)).resolves.toMatchObject({ kid: rotated.kid });

    // The retired key stays while credentials it signed can be valid (max TTL + tolerance).
    clock += 3600_000 + 30_000;
    expect(ring.verificationKey(old.kid)).toBeDefined();
    clock += 60_000;
    expect(ring.verificationKey(old.kid)).toBeUndefined();
    await ring.reload();
    expect(ring.kids()).toEqual([rotated.kid]);
    expect(await readdir(join(dir, 'keys'))).toEqual([`${rotated.kid}.jwk.json`]);
  });

  it('rotates by itself once the current key is older than the interval', async () => {
    const keysDir = join(dir, 'auto');
    const auto = await KeyRing.open({ dir: keysDir, now, rotationIntervalMs: 3600_000 });
    const first = await auto.signingKey();
    clock += 3599_000;
    expect((await auto.signingKey()).kid).toBe(first.kid);
    clock += 1000;
    const [a, b] = await Promise.all([auto.signingKey(), auto.signingKey()]);
    expect(a.kid).not.toBe(first.kid);
    expect(b.kid).toBe(a.kid);
    expect(auto.kids()).toHaveLength(2);
  });

  it('a verifier in another process picks up a rotation on an unknown kid', async () => {
    const keysDir = join(dir, 'keys');
    const other = await KeyRing.open({ dir: keysDir, now });
    const otherVerifier = new GatewayCredentialVerifier({
      keys: other,
      issuer: ISSUER,
      now,
      reloadCooldownMs: 0,
    });
    await ring.rotate();
    const issued = await issuer.issue({ person, authMethod: 'oidc' });
    await expect(otherVerifier.verify(issued.token)).resolves.toMatchObject({ kid: issued.kid });
  });

  it('keeps the keys across restarts and other algorithms work', async () => {
    const keysDir = join(dir, 'keys');
    const { token } = await issuer.issue({ person, authMethod: 'oidc' });
    const reopened = await KeyRing.open({ dir: keysDir, now });
    const v = new GatewayCredentialVerifier({ keys: reopened, issuer: ISSUER, now });
    await expect(v.verify(token)).resolves.toBeDefined();

    const ed = await KeyRing.open({ dir: join(dir, 'ed'), alg: 'EdDSA', now });
    const edIssued = await new GatewayCredentialIssuer({ keys: ed, issuer: ISSUER, now }).issue({
      person,
      authMethod: 'oidc',
    });
    const edVerifier = new GatewayCredentialVerifier({ keys: ed, issuer: ISSUER, now });
    await expect(edVerifier.verify(edIssued.token)).resolves.toBeDefined();
    // An ES256 credential is not accepted by a ring that holds only EdDSA keys.
    await expect(edVerifier.verify(token)).rejects.toMatchObject({ reason: 'alg-not-allowed' });
  });
});
