import { createHash } from 'node:crypto';
import { PortcullisError, ScramClient } from '@portcullis/core';

/**
 * Most PBKDF2 iterations a server may ask for. PostgreSQL's default is 4096; a hostile or
 * misconfigured server asking for billions would tie up a thread-pool thread for minutes.
 */
export const MAX_SCRAM_ITERATIONS = 1_000_000;

/** The md5 password answer: `'md5' + md5(md5(password + user) + salt)`. */
export function md5PasswordResponse(user: string, password: string, salt: Buffer): string {
  const inner = createHash('md5').update(password).update(user).digest('hex');
  return `md5${createHash('md5').update(inner).update(salt).digest('hex')}`;
}

/**
 * The client side of SCRAM-SHA-256 (RFC 5802/7677) as PostgreSQL speaks it: no channel binding,
 * a placeholder user name (`*`) in the client-first message, since the server ignores it and
 * uses the startup user, and the password SASLprep'd as the server hashed it. The exchange is
 * core's {@link ScramClient}; its errors become `PCL_ERR_UPSTREAM_AUTH`.
 */
export class ScramSha256Client {
  readonly #scram: ScramClient;

  /**
   * `nonce` is for tests; by default 18 random bytes, base64. `user` is the SCRAM user name
   * sent in client-first-message (default `*`; PostgreSQL ignores it, other servers and the
   * RFC test vectors do not); `,` and `=` in it are escaped as RFC 5802 requires.
   */
  constructor(password: string, nonce?: string, user = '*') {
    this.#scram = new ScramClient({
      mechanism: 'SCRAM-SHA-256',
      user,
      password: saslPrep(password),
      ...(nonce === undefined ? {} : { nonce }),
      // PostgreSQL 16 lets `scram_iterations` go down to 1.
      minIterations: 1,
      maxIterations: MAX_SCRAM_ITERATIONS,
    });
  }

  /** The mechanism name to put in SASLInitialResponse. */
  get mechanism(): 'SCRAM-SHA-256' {
    return 'SCRAM-SHA-256';
  }

  /** client-first-message. */
  clientFirst(): string {
    return this.#scram.clientFirst();
  }

  /** Takes server-first-message, returns client-final-message (PBKDF2 on the thread pool). */
  async clientFinal(serverFirst: string): Promise<string> {
    try {
      return await this.#scram.clientFinal(serverFirst);
    } catch (err) {
      throw scramError(err);
    }
  }

  /** Checks server-final-message; throws unless the server proved it knows the password. */
  verifyServerFinal(serverFinal: string): void {
    try {
      this.#scram.verifyServerFinal(serverFinal);
    } catch (err) {
      throw scramError(err);
    }
  }
}

/** RFC 3454 table C.1.2, non-ASCII spaces: SASLprep maps them to U+0020. */
const NON_ASCII_SPACE = /[\u00a0\u1680\u2000-\u200b\u202f\u205f\u3000]/g;
/** RFC 3454 table B.1, "commonly mapped to nothing": SASLprep removes them. */
// eslint-disable-next-line no-misleading-character-class -- the class lists joiners on purpose
const MAPPED_TO_NOTHING = /[\u00ad\u034f\u1806\u180b-\u180d\u200c\u200d\u2060\ufe00-\ufe0f\ufeff]/g;

/**
 * The mapping and normalisation steps of SASLprep (RFC 4013) that PostgreSQL applies to a
 * password before hashing it: non-ASCII spaces become spaces, characters mapped to nothing
 * go, then NFKC. An all-ASCII password is used as is. Like node-postgres, this skips
 * SASLprep's prohibited-character and bidi checks; PostgreSQL hashes the raw password when
 * those fail, so a non-ASCII password that also holds, say, a control character will not match.
 */
function saslPrep(password: string): string {
  // eslint-disable-next-line no-control-regex -- testing for ASCII only
  if (/^[\x00-\x7f]*$/.test(password)) return password;
  return password.replace(NON_ASCII_SPACE, ' ').replace(MAPPED_TO_NOTHING, '').normalize('NFKC');
}

function scramError(err: unknown): PortcullisError {
  const message = err instanceof Error ? err.message : String(err);
  return new PortcullisError('PCL_ERR_UPSTREAM_AUTH', `SCRAM-SHA-256: ${message}`);
}
