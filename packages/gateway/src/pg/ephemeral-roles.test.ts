import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { isPortcullisError } from '@portcullis/core';
import { ScramSha256Client } from '@portcullis/protocol-pg';
import { describe, expect, it } from 'vitest';
import type { PostgresResource } from '../config/load-config.js';
import {
  EphemeralRoleProvisioner,
  MAX_ROLE_NAME_BYTES,
  createRoleSql,
  dropRoleSql,
  ephemeralRoleName,
  expiredRolesSql,
  quoteIdent,
  quoteLiteral,
  readableRolePart,
  roleComment,
  scramSha256Verifier,
} from './ephemeral-roles.js';

const person = (subject: string, email = 'someone@example.com') => ({ subject, email });
const ROLE_SHAPE = /^[a-z0-9_]+$/;

/** Splits a verifier into its parts. */
function parseVerifier(verifier: string) {
  const match = /^SCRAM-SHA-256\$(\d+):([^$]+)\$([^:]+):(.+)$/.exec(verifier);
  if (match === null) throw new Error(`not a verifier: ${verifier}`);
  return {
    iterations: Number(match[1]),
    salt: Buffer.from(match[2]!, 'base64'),
    storedKey: Buffer.from(match[3]!, 'base64'),
    serverKey: Buffer.from(match[4]!, 'base64'),
  };
}

const hmac = (key: Buffer, data: string) => createHmac('sha256', key).update(data).digest();

/** Checks a client proof the way a server holding only the verifier does (RFC 5802 §3). */
function serverAccepts(verifier: string, authMessage: string, proof: Buffer): boolean {
  const { storedKey } = parseVerifier(verifier);
  const signature = hmac(storedKey, authMessage);
  const clientKey = Buffer.from(proof.map((b, i) => b ^ signature[i]!));
  return timingSafeEqual(createHash('sha256').update(clientKey).digest(), storedKey);
}

describe('scramSha256Verifier', () => {
  // RFC 7677 §3: user "user", password "pencil".
  const salt = Buffer.from('W22ZaJ0SNY7soEsUEjb6gQ==', 'base64');
  const clientFirstBare = 'n=user,r=rOprNGfwEbeRWgbNEkqO';
  const serverFirst =
    'r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096';
  const clientFinalBare = 'c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0';
  const authMessage = `${clientFirstBare},${serverFirst},${clientFinalBare}`;

  it('matches the RFC 7677 test vector (client proof and server signature)', async () => {
    const verifier = await scramSha256Verifier('pencil', salt, 4096);
    expect(verifier.startsWith('SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$')).toBe(true);
    const proof = Buffer.from('dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=', 'base64');
    expect(serverAccepts(verifier, authMessage, proof)).toBe(true);
    const { serverKey } = parseVerifier(verifier);
    expect(hmac(serverKey, authMessage).toString('base64')).toBe(
      '6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=',
    );
  });

  it('rejects a proof made with another password', async () => {
    const verifier = await scramSha256Verifier('pencil', salt, 4096);
    const wrong = Buffer.from('dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=', 'base64');
    wrong[0]! ^= 1;
    expect(serverAccepts(verifier, authMessage, wrong)).toBe(false);
  });

  it("accepts the gateway's own SCRAM client against a verifier with a fresh salt", async () => {
    const password = 'Zx9_randomly-chosen-password-of-43-chars-ab';
    const verifier = await scramSha256Verifier(password);
    const { salt: freshSalt, iterations } = parseVerifier(verifier);
    expect(freshSalt.length).toBe(16);
    expect(iterations).toBe(4096);
    expect(verifier).not.toContain(password);

    const client = new ScramSha256Client(password, 'clientnonce');
    const clientFirst = client.clientFirst();
    const serverFirstMessage = `r=clientnonceservernonce,s=${freshSalt.toString('base64')},i=${iterations}`;
    const clientFinal = await client.clientFinal(serverFirstMessage);
    const [withoutProof, proofPart] = clientFinal.split(',p=') as [string, string];
    const auth = `${clientFirst.slice(3)},${serverFirstMessage},${withoutProof}`;
    expect(serverAccepts(verifier, auth, Buffer.from(proofPart, 'base64'))).toBe(true);
    const { serverKey } = parseVerifier(verifier);
    const serverFinal = `v=${hmac(serverKey, auth).toString('base64')}`;
    expect(() => client.verifyServerFinal(serverFinal)).not.toThrow();
  });

  it('uses a new salt each time', async () => {
    const a = await scramSha256Verifier('same-password');
    const b = await scramSha256Verifier('same-password');
    expect(a).not.toBe(b);
  });

  it('refuses passwords SASLprep could change', async () => {
    await expect(scramSha256Verifier('pässword')).rejects.toThrow(/printable ASCII/);
    await expect(scramSha256Verifier('with space')).rejects.toThrow(/printable ASCII/);
    await expect(scramSha256Verifier('')).rejects.toThrow(/printable ASCII/);
  });
});

describe('ephemeralRoleName', () => {
  const random = Buffer.alloc(10, 0);

  it('is prefix, readable subject and a random suffix', () => {
    expect(ephemeralRoleName('pcl_', person('user-alice'), random)).toBe(
      'pcl_user_alice_aaaaaaaaaa',
    );
    const name = ephemeralRoleName('pcl_', person('user-alice'));
    expect(name).toMatch(/^pcl_user_alice_[a-z2-7]{10}$/);
  });

  it('is different each time for the same person', () => {
    const names = new Set(
      Array.from({ length: 100 }, () => ephemeralRoleName('pcl_', person('bob'))),
    );
    expect(names.size).toBe(100);
  });

  it.each([
    ['"; DROP ROLE x; --', 'drop_role_x'],
    ["O'Brien\\", 'o_brien'],
    ['Zoë Ångström', 'zoe_angstrom'],
    ['auth0|5f7c8ec7c33c6c004bbafe82', 'auth0_5f7c8ec7c33c6c004bbafe82'],
    ['ＡＢＣ１２３', 'abc123'],
    ['a\u0000b\nc', 'a_b_c'],
  ])('folds the hostile or unusual subject %j to %j', (subject, readable) => {
    const name = ephemeralRoleName('pcl_', person(subject), random);
    expect(name).toBe(`pcl_${readable}_aaaaaaaaaa`);
    expect(name).toMatch(ROLE_SHAPE);
  });

  it('falls back to the email, then to anon, when nothing of the subject is readable', () => {
    expect(readableRolePart(person('日本語', 'Taro.Yamada@example.jp'), 40)).toBe('taro_yamada');
    expect(readableRolePart(person('日本語', '山田@example.jp'), 40)).toBe('anon');
    expect(readableRolePart(person('', ''), 40)).toBe('anon');
  });

  it('stays within 63 bytes and ends the readable part without an underscore', () => {
    const long = person('x'.repeat(30) + '-' + 'y'.repeat(200));
    const name = ephemeralRoleName('portcullis_session_', long);
    expect(Buffer.byteLength(name)).toBeLessThanOrEqual(MAX_ROLE_NAME_BYTES);
    expect(name).toMatch(ROLE_SHAPE);
    const atBoundary = person('a'.repeat(32) + '_____b');
    expect(ephemeralRoleName('pcl_', atBoundary, random)).not.toContain('__');
    const emoji = person('😀'.repeat(100) + 'eve');
    expect(ephemeralRoleName('pcl_', emoji, random)).toBe('pcl_eve_aaaaaaaaaa');
  });
});

describe('SQL text', () => {
  it('quotes identifiers and literals', () => {
    expect(quoteIdent('a"b')).toBe('"a""b"');
    expect(quoteLiteral("it's")).toBe("'it''s'");
    expect(quoteLiteral('back\\slash')).toBe("'back\\slash'");
  });

  it('creates a login role with no attributes beyond LOGIN, in the template role', () => {
    const sql = createRoleSql({
      role: 'pcl_alice_abc',
      template: 'app "readers"',
      admin: 'pcl_admin',
      verifier: 'SCRAM-SHA-256$4096:c2FsdA==$c3RvcmVk:c2VydmVy',
      validUntil: new Date('2030-01-02T03:04:05.000Z'),
      comment: "portcullis session s1 for '; DROP ROLE x; -- <e@x>",
    });
    expect(sql).toBe(
      `CREATE ROLE "pcl_alice_abc" WITH LOGIN INHERIT NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS CONNECTION LIMIT 1 ENCRYPTED PASSWORD 'SCRAM-SHA-256$4096:c2FsdA==$c3RvcmVk:c2VydmVy' VALID UNTIL '2030-01-02T03:04:05.000Z' IN ROLE "app ""readers""" ROLE "pcl_admin";\n` +
        `COMMENT ON ROLE "pcl_alice_abc" IS 'portcullis session s1 for ''; DROP ROLE x; -- <e@x>'`,
    );
  });

  it('reassigns and drops what the role owns before dropping it', () => {
    expect(dropRoleSql('pcl_a_b', 'tmpl')).toBe(
      'REASSIGN OWNED BY "pcl_a_b" TO "tmpl";\nDROP OWNED BY "pcl_a_b";\nDROP ROLE "pcl_a_b"',
    );
  });

  it('sweeps by exact prefix (no LIKE wildcards) and template membership', () => {
    const sql = expiredRolesSql('pcl_', "t'x");
    expect(sql).toContain("starts_with(r.rolname, 'pcl_')");
    expect(sql).toContain("t.rolname = 't''x'");
    expect(sql).not.toMatch(/\bLIKE\b/i);
  });

  it('writes comments without control characters', () => {
    expect(roleComment(person('a\nb', 'e\u0000@x'), 's\r1')).toBe(
      'portcullis session s?1 for a?b <e?@x>',
    );
  });
});

describe('EphemeralRoleProvisioner options', () => {
  const resource = {
    name: 'db',
    host: '127.0.0.1',
    port: 1,
    database: 'db',
    user: 'u',
    password: null,
    tls: { mode: 'disable', ca: null, serverName: null },
    connectTimeoutMs: 1000,
  } as unknown as PostgresResource;
  const base = {
    resource,
    admin: { user: 'pcl_admin', password: null },
    templateRole: 'pcl_template',
    ttlMs: 60_000,
    prefix: 'pcl_',
  };

  it.each([
    [{ prefix: 'PCL_' }, /prefix/],
    [{ prefix: '1pcl' }, /prefix/],
    [{ prefix: 'pcl-' }, /prefix/],
    [{ prefix: 'p'.repeat(21) }, /prefix/],
    [{ prefix: 'pg_x' }, /pg_/],
    [{ templateRole: '' }, /template/],
    [{ templateRole: 'x'.repeat(64) }, /template/],
    [{ admin: { user: 'a\u0000b', password: null } }, /admin/],
    [{ ttlMs: 10 }, /TTL/],
    [{ ttlMs: Number.NaN }, /TTL/],
  ])('refuses %j', (override, message) => {
    let caught: unknown;
    try {
      new EphemeralRoleProvisioner({ ...base, ...override });
    } catch (err) {
      caught = err;
    }
    expect(isPortcullisError(caught, 'PCL_ERR_CONFIG_INVALID')).toBe(true);
    expect((caught as Error).message).toMatch(message);
  });

  it('refuses work after close', async () => {
    const provisioner = new EphemeralRoleProvisioner(base);
    await provisioner.close();
    await expect(provisioner.acquire(person('alice'), 's1')).rejects.toThrow(/closed/);
    await expect(provisioner.sweepExpired()).rejects.toThrow(/closed/);
  });

  it('reports an unreachable upstream without the password', async () => {
    const provisioner = new EphemeralRoleProvisioner({
      ...base,
      admin: { user: 'pcl_admin', password: 'admin-secret-value' },
    });
    const err = await provisioner.acquire(person('alice'), 's1').catch((e: unknown) => e);
    expect(isPortcullisError(err, 'PCL_ERR_UPSTREAM_CONNECT')).toBe(true);
    expect(String((err as Error).message)).not.toContain('admin-secret-value');
    await provisioner.close();
  });
});
