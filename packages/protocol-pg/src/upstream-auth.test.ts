import { createRequire } from 'node:module';
import { isPortcullisError } from '@portcullis/core';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { md5PasswordResponse, ScramSha256Client } from './upstream-auth.js';

// node-postgres's own SCRAM and md5 code is an independent implementation to check against.
interface PgSaslSession {
  clientNonce: string;
  response: string;
  serverSignature?: string;
}
interface PgSasl {
  startSession(mechanisms: string[]): PgSaslSession;
  continueSession(session: PgSaslSession, password: string, serverData: string): Promise<void>;
  finalizeSession(session: PgSaslSession, serverData: string): void;
}
interface PgCryptoUtils {
  postgresMd5PasswordHash(user: string, password: string, salt: Buffer): Promise<string>;
}

function loadPg<T>(path: string): T | null {
  try {
    return createRequire(import.meta.url)(path) as T;
  } catch {
    return null;
  }
}
const pgSasl = loadPg<PgSasl>('pg/lib/crypto/sasl.js');
const pgUtils = loadPg<PgCryptoUtils>('pg/lib/crypto/utils.js');

async function codeOfAsync(fn: () => Promise<unknown>): Promise<string> {
  try {
    await fn();
  } catch (err) {
    return isPortcullisError(err) ? err.code : `not a PortcullisError: ${String(err)}`;
  }
  return 'no error';
}

function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    return isPortcullisError(err) ? err.code : `not a PortcullisError: ${String(err)}`;
  }
  return 'no error';
}

// RFC 7677, section 3.
const RFC = {
  user: 'user',
  password: 'pencil',
  clientNonce: 'rOprNGfwEbeRWgbNEkqO',
  clientFirst: 'n,,n=user,r=rOprNGfwEbeRWgbNEkqO',
  serverFirst:
    'r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096',
  clientFinal:
    'c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=',
  serverFinal: 'v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=',
};

describe('ScramSha256Client', () => {
  it('reproduces the RFC 7677 test vector', async () => {
    const client = new ScramSha256Client(RFC.password, RFC.clientNonce, RFC.user);
    expect(client.mechanism).toBe('SCRAM-SHA-256');
    expect(client.clientFirst()).toBe(RFC.clientFirst);
    expect(await client.clientFinal(RFC.serverFirst)).toBe(RFC.clientFinal);
    expect(() => client.verifyServerFinal(RFC.serverFinal)).not.toThrow();
  });

  it('sends n=* by default, as PostgreSQL ignores the SCRAM user name', async () => {
    const client = new ScramSha256Client('pencil', 'abc');
    expect(client.clientFirst()).toBe('n,,n=*,r=abc');
    // With `n=*` the proof differs from the RFC's, which was made with `n=user`.
    const proof = new ScramSha256Client(RFC.password, RFC.clientNonce);
    proof.clientFirst();
    expect(await proof.clientFinal(RFC.serverFirst)).not.toBe(RFC.clientFinal);
  });

  it('escapes , and = in the user name', async () => {
    expect(new ScramSha256Client('pw', 'n1', 'a,b=c').clientFirst()).toBe('n,,n=a=2Cb=3Dc,r=n1');
  });

  it('makes a fresh random nonce for each client', async () => {
    const nonce = (c: ScramSha256Client) => c.clientFirst().slice('n,,n=*,r='.length);
    const a = nonce(new ScramSha256Client('pw'));
    const b = nonce(new ScramSha256Client('pw'));
    expect(a).not.toBe(b);
    expect(Buffer.from(a, 'base64')).toHaveLength(18);
  });

  it('rejects a server nonce that does not extend the client nonce', async () => {
    for (const nonce of ['rOprNGfwEbeRWgbNEkqO', 'XOprNGfwEbeRWgbNEkqO%abc', 'rOprNG', '']) {
      const client = new ScramSha256Client(RFC.password, RFC.clientNonce, RFC.user);
      client.clientFirst();
      const serverFirst = `r=${nonce},s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096`;
      expect(await codeOfAsync(() => client.clientFinal(serverFirst)), nonce).toBe(
        'PCL_ERR_UPSTREAM_AUTH',
      );
    }
  });

  it.each([
    'r=rOprNGfwEbeRWgbNEkqO%x,i=4096',
    'r=rOprNGfwEbeRWgbNEkqO%x,s=W22ZaJ0SNY7soEsUEjb6gQ==',
    'r=rOprNGfwEbeRWgbNEkqO%x,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=0',
    'r=rOprNGfwEbeRWgbNEkqO%x,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=-1',
    'r=rOprNGfwEbeRWgbNEkqO%x,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=1.5',
    'r=rOprNGfwEbeRWgbNEkqO%x,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=many',
    'e=other-error',
    'r=rOprNGfwEbeRWgbNEkqO%x,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=1000000000',
    '',
  ])('rejects the malformed server-first-message %j', async (serverFirst) => {
    const client = new ScramSha256Client(RFC.password, RFC.clientNonce, RFC.user);
    client.clientFirst();
    expect(await codeOfAsync(() => client.clientFinal(serverFirst))).toBe('PCL_ERR_UPSTREAM_AUTH');
  });

  it.each([
    ['a wrong signature', 'v=7rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4='],
    ['a truncated signature', 'v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJR'],
    ['no signature', 'x=1'],
    ['an empty message', ''],
    ['an error', 'e=invalid-proof'],
  ])('rejects a server-final-message with %s', async (_name, serverFinal) => {
    const client = new ScramSha256Client(RFC.password, RFC.clientNonce, RFC.user);
    client.clientFirst();
    await client.clientFinal(RFC.serverFirst);
    expect(codeOf(() => client.verifyServerFinal(serverFinal))).toBe('PCL_ERR_UPSTREAM_AUTH');
  });

  it('reports the server error named in e=', async () => {
    const client = new ScramSha256Client(RFC.password, RFC.clientNonce, RFC.user);
    client.clientFirst();
    await client.clientFinal(RFC.serverFirst);
    expect(() => client.verifyServerFinal('e=invalid-proof')).toThrow(/invalid-proof/);
  });

  it('rejects a server-final-message before the exchange has reached it', async () => {
    const client = new ScramSha256Client(RFC.password, RFC.clientNonce, RFC.user);
    client.clientFirst();
    expect(codeOf(() => client.verifyServerFinal(RFC.serverFinal))).toBe('PCL_ERR_UPSTREAM_AUTH');
  });

  it('rejects the server signature made for another password', async () => {
    const client = new ScramSha256Client('not pencil', RFC.clientNonce, RFC.user);
    client.clientFirst();
    expect(await client.clientFinal(RFC.serverFirst)).not.toBe(RFC.clientFinal);
    expect(codeOf(() => client.verifyServerFinal(RFC.serverFinal))).toBe('PCL_ERR_UPSTREAM_AUTH');
  });

  it.skipIf(pgSasl === null)('agrees with node-postgres for any password and salt', async () => {
    // Passwords mix ASCII with characters SASLprep maps: non-ASCII spaces, soft hyphens,
    // zero-width characters and compatibility forms (ﬁ, ｆｕｌｌ-width).
    const special = fc.constantFrom(
      '\u00a0',
      '\u1680',
      '\u2003',
      '\u200b',
      '\u3000',
      '\u00ad',
      '\u200d',
      '\ufeff',
      '\ufe0f',
      'ﬁ',
      'Ａ',
      'é',
      'e\u0301',
    );
    const password = fc
      .array(fc.oneof(fc.string({ minLength: 1, maxLength: 4 }), special), {
        minLength: 1,
        maxLength: 8,
      })
      .map((parts) => parts.join(''));
    const printable = fc.string({
      unit: fc
        .integer({ min: 0x21, max: 0x7e })
        .filter((c) => c !== 0x2c)
        .map((c) => String.fromCharCode(c)),
      minLength: 1,
      maxLength: 24,
    });
    await fc.assert(
      fc.asyncProperty(
        password,
        printable,
        fc.uint8Array({ minLength: 1, maxLength: 24 }),
        fc.integer({ min: 1, max: 64 }),
        async (pw, serverPart, salt, iterations) => {
          const session = pgSasl!.startSession(['SCRAM-SHA-256']);
          const serverFirst = `r=${session.clientNonce}${serverPart},s=${Buffer.from(salt).toString('base64')},i=${iterations}`;
          await pgSasl!.continueSession(session, pw, serverFirst);
          const client = new ScramSha256Client(pw, session.clientNonce);
          client.clientFirst();
          expect(await client.clientFinal(serverFirst)).toBe(session.response);
          expect(() => client.verifyServerFinal(`v=${session.serverSignature}`)).not.toThrow();
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe('md5PasswordResponse', () => {
  it('matches the values node-postgres computes', async () => {
    // From pg/lib/crypto/utils.js postgresMd5PasswordHash.
    expect(md5PasswordResponse('alice', 'secret', Buffer.from([1, 2, 3, 4]))).toBe(
      'md598a0412b9c31436fc53776e863350083',
    );
    expect(md5PasswordResponse('postgres', 'postgres', Buffer.from('abcd'))).toBe(
      'md50800ba833a175e428fc0110c29998942',
    );
  });

  it.skipIf(pgUtils === null)(
    'agrees with node-postgres for any user, password and salt',
    async () => {
      await fc.assert(
        fc.asyncProperty(
          fc.string({ unit: 'grapheme', maxLength: 20 }),
          fc.string({ unit: 'grapheme', maxLength: 20 }),
          fc.uint8Array({ minLength: 4, maxLength: 4 }),
          async (user, password, salt) => {
            const expected = await pgUtils!.postgresMd5PasswordHash(
              user,
              password,
              Buffer.from(salt),
            );
            expect(md5PasswordResponse(user, password, Buffer.from(salt))).toBe(expected);
          },
        ),
      );
    },
  );
});
