import { createHash, createHmac, pbkdf2, randomBytes, timingSafeEqual } from 'node:crypto';
import { promisify } from 'node:util';

const pbkdf2Async = promisify(pbkdf2);

/**
 * Most PBKDF2 iterations a server may ask for. PostgreSQL's default is 4096; a hostile or
 * misconfigured server asking for billions would tie up a thread-pool thread for minutes.
 */
export const MAX_SCRAM_ITERATIONS = 1_000_000;
import { PortcullisError } from '@portcullis/core';

/** The md5 password answer: `'md5' + md5(md5(password + user) + salt)`. */
export function md5PasswordResponse(user: string, password: string, salt: Buffer): string {
  const inner = createHash('md5').update(password).update(user).digest('hex');
  return `md5${createHash('md5').update(inner).update(salt).digest('hex')}`;
}

/**
 * The client side of SCRAM-SHA-256 (RFC 5802/7677) as PostgreSQL speaks it: no channel binding
 * and a placeholder user name (`*`) in the client-first message, since the server ignores it
 * and uses the startup user.
 */
export class ScramSha256Client {
  readonly #password: string;
  readonly #clientNonce: string;
  readonly #user: string;
  #clientFirstBare = '';
  #expectedServerSignature: Buffer | null = null;

  /**
   * `nonce` is for tests; by default 18 random bytes, base64. `user` is the SCRAM user name
   * sent in client-first-message (default `*`; PostgreSQL ignores it, other servers and the
   * RFC test vectors do not); `,` and `=` in it are escaped as RFC 5802 requires.
   */
  constructor(
    password: string,
    nonce: string = randomBytes(18).toString('base64'),
    user: string = '*',
  ) {
    this.#password = password;
    this.#clientNonce = nonce;
    this.#user = user.replaceAll('=', '=3D').replaceAll(',', '=2C');
  }

  /** The mechanism name to put in SASLInitialResponse. */
  get mechanism(): 'SCRAM-SHA-256' {
    return 'SCRAM-SHA-256';
  }

  /** client-first-message. */
  clientFirst(): string {
    this.#clientFirstBare = `n=${this.#user},r=${this.#clientNonce}`;
    return `n,,${this.#clientFirstBare}`;
  }

  /**
   * Takes server-first-message, returns client-final-message. Async because key derivation
   * (PBKDF2) runs on the thread pool rather than blocking every other session.
   */
  async clientFinal(serverFirst: string): Promise<string> {
    const attrs = parseAttributes(serverFirst);
    const nonce = attrs.get('r');
    const salt = attrs.get('s');
    const iterations = Number(attrs.get('i'));
    if (
      nonce === undefined ||
      salt === undefined ||
      !Number.isInteger(iterations) ||
      iterations < 1
    ) {
      throw scramError('server-first-message is malformed');
    }
    if (iterations > MAX_SCRAM_ITERATIONS) {
      throw scramError(
        `server asks for ${iterations} iterations, over the limit of ${MAX_SCRAM_ITERATIONS}`,
      );
    }
    if (!nonce.startsWith(this.#clientNonce) || nonce.length === this.#clientNonce.length) {
      throw scramError('server nonce does not extend the client nonce');
    }
    const saltedPassword = await pbkdf2Async(
      saslPrep(this.#password),
      Buffer.from(salt, 'base64'),
      iterations,
      32,
      'sha256',
    );
    const clientKey = hmac(saltedPassword, 'Client Key');
    const storedKey = createHash('sha256').update(clientKey).digest();
    const clientFinalWithoutProof = `c=biws,r=${nonce}`;
    const authMessage = `${this.#clientFirstBare},${serverFirst},${clientFinalWithoutProof}`;
    const clientSignature = hmac(storedKey, authMessage);
    const proof = Buffer.alloc(clientKey.length);
    for (let i = 0; i < proof.length; i++) proof[i] = clientKey[i]! ^ clientSignature[i]!;
    this.#expectedServerSignature = hmac(hmac(saltedPassword, 'Server Key'), authMessage);
    return `${clientFinalWithoutProof},p=${proof.toString('base64')}`;
  }

  /** Checks server-final-message; throws unless the server proved it knows the password. */
  verifyServerFinal(serverFinal: string): void {
    const attrs = parseAttributes(serverFinal);
    const error = attrs.get('e');
    if (error !== undefined) throw scramError(`server rejected the exchange: ${error}`);
    const signature = Buffer.from(attrs.get('v') ?? '', 'base64');
    const expected = this.#expectedServerSignature;
    if (
      expected === null ||
      signature.length !== expected.length ||
      !timingSafeEqual(signature, expected)
    ) {
      throw scramError('server signature does not match');
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

function hmac(key: Buffer, data: string): Buffer {
  return createHmac('sha256', key).update(data).digest();
}

function parseAttributes(message: string): Map<string, string> {
  const attrs = new Map<string, string>();
  for (const part of message.split(',')) {
    const eq = part.indexOf('=');
    if (eq === 1) attrs.set(part[0]!, part.slice(2));
  }
  return attrs;
}

function scramError(message: string): PortcullisError {
  return new PortcullisError('PCL_ERR_UPSTREAM_AUTH', `SCRAM-SHA-256: ${message}`);
}
