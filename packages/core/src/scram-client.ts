import { createHash, createHmac, pbkdf2, randomBytes, timingSafeEqual } from 'node:crypto';
import { promisify } from 'node:util';

const pbkdf2Async = promisify(pbkdf2);

/** The SCRAM variants the gateway speaks (PostgreSQL offers the first, Kafka both). */
export type ScramMechanism = 'SCRAM-SHA-256' | 'SCRAM-SHA-512';

const DIGEST = {
  'SCRAM-SHA-256': { hash: 'sha256', bytes: 32 },
  'SCRAM-SHA-512': { hash: 'sha512', bytes: 64 },
} as const;

/** Options of a {@link ScramClient}. */
export interface ScramClientOptions {
  readonly mechanism: ScramMechanism;
  /** The SCRAM user name; `=` and `,` are escaped as RFC 5802 §5.1 requires. */
  readonly user: string;
  /** The password as the server hashed it (a caller that needs SASLprep applies it first). */
  readonly password: string;
  /** For tests; by default 18 random bytes, base64. */
  readonly nonce?: string;
  /** Fewest PBKDF2 iterations accepted from the server (default 4096). */
  readonly minIterations?: number;
  /**
   * Most iterations accepted (default 1,000,000): a hostile or misconfigured server asking for
   * billions would tie up a thread-pool thread for minutes.
   */
  readonly maxIterations?: number;
}

function attributes(message: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const part of message.split(',')) {
    const eq = part.indexOf('=');
    if (eq === 1) out.set(part[0]!, part.slice(2));
  }
  return out;
}

/**
 * The client side of a SCRAM exchange (RFC 5802, with SHA-256/512 as in RFC 7677): no channel
 * binding, no authorization id. Pure: it produces and checks messages; the connection carries
 * them. The password is used to derive keys and is never put in an error. Errors are plain
 * `Error`s saying what the server got wrong; callers wrap them in their own.
 */
export class ScramClient {
  readonly #options: ScramClientOptions;
  readonly #nonce: string;
  readonly #clientFirstBare: string;
  #serverSignature: Buffer | null = null;

  constructor(options: ScramClientOptions) {
    this.#options = options;
    this.#nonce = options.nonce ?? randomBytes(18).toString('base64');
    const user = options.user.replaceAll('=', '=3D').replaceAll(',', '=2C');
    this.#clientFirstBare = `n=${user},r=${this.#nonce}`;
  }

  get mechanism(): ScramMechanism {
    return this.#options.mechanism;
  }

  /** client-first-message: `n,,n=user,r=nonce`. */
  clientFirst(): string {
    return `n,,${this.#clientFirstBare}`;
  }

  /**
   * client-final-message for the server's first message (`r=…,s=…,i=…`): checks the server's
   * nonce extends ours and the iteration count is sane, derives the keys (PBKDF2 on the thread
   * pool, so other sessions are not blocked) and returns `c=biws,r=…,p=proof`.
   */
  async clientFinal(serverFirst: string): Promise<string> {
    const fields = attributes(serverFirst);
    const error = fields.get('e');
    if (error !== undefined) throw new Error(`the server refused the first message: ${error}`);
    const nonce = fields.get('r');
    const salt = fields.get('s');
    const count = fields.get('i');
    const iterations = Number(count);
    const { minIterations = 4096, maxIterations = 1_000_000 } = this.#options;
    if (nonce === undefined || !nonce.startsWith(this.#nonce) || nonce === this.#nonce) {
      throw new Error("the server's nonce does not extend the client's");
    }
    if (salt === undefined || salt === '') throw new Error('the server sent no salt');
    if (!Number.isSafeInteger(iterations) || iterations < minIterations) {
      throw new Error(`the server asked for ${count ?? 'no'} iterations`);
    }
    if (iterations > maxIterations) {
      throw new Error(`the server asked for ${iterations} iterations, over ${maxIterations}`);
    }
    const { hash, bytes } = DIGEST[this.#options.mechanism];
    const hmac = (key: Buffer, text: string): Buffer =>
      createHmac(hash, key).update(text, 'utf8').digest();
    const salted = await pbkdf2Async(
      this.#options.password,
      Buffer.from(salt, 'base64'),
      iterations,
      bytes,
      hash,
    );
    const clientKey = hmac(salted, 'Client Key');
    const storedKey = createHash(hash).update(clientKey).digest();
    const withoutProof = `c=biws,r=${nonce}`;
    const authMessage = `${this.#clientFirstBare},${serverFirst},${withoutProof}`;
    const clientSignature = hmac(storedKey, authMessage);
    const proof = Buffer.alloc(bytes);
    for (let i = 0; i < bytes; i++) proof[i] = clientKey[i]! ^ clientSignature[i]!;
    this.#serverSignature = hmac(hmac(salted, 'Server Key'), authMessage);
    return `${withoutProof},p=${proof.toString('base64')}`;
  }

  /**
   * Checks the server's final message (`v=signature`): the server proves it knows the
   * credentials too. Throws when it does not, or when it reports an error (`e=…`).
   */
  verifyServerFinal(serverFinal: string): void {
    const fields = attributes(serverFinal);
    const error = fields.get('e');
    if (error !== undefined) throw new Error(`the server refused the proof: ${error}`);
    const expected = this.#serverSignature;
    if (expected === null) throw new Error('the server finished before the client proof');
    const signature = Buffer.from(fields.get('v') ?? '', 'base64');
    if (signature.length !== expected.length || !timingSafeEqual(signature, expected)) {
      throw new Error("the server's signature does not match: it does not know the credentials");
    }
  }
}
