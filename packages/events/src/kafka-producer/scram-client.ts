import { createHash, createHmac, pbkdf2, randomBytes, timingSafeEqual } from 'node:crypto';
import { promisify } from 'node:util';

const pbkdf2Async = promisify(pbkdf2);

/** The SCRAM variants Kafka offers. */
export type ScramMechanism = 'SCRAM-SHA-256' | 'SCRAM-SHA-512';

const DIGEST = {
  'SCRAM-SHA-256': { hash: 'sha256', bytes: 32 },
  'SCRAM-SHA-512': { hash: 'sha512', bytes: 64 },
} as const;

/** Kafka refuses fewer; far more would make a hostile server burn this process's CPU. */
const MIN_ITERATIONS = 4096;
const MAX_ITERATIONS = 1_000_000;

/** `=` and `,` are escaped in a SCRAM user name (RFC 5802 §5.1). */
function saslName(username: string): string {
  return username.replaceAll('=', '=3D').replaceAll(',', '=2C');
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
 * The client side of a SCRAM exchange (RFC 5802, with SHA-256/512 as in RFC 7677), as Kafka
 * runs it: no channel binding, no authorization id. Pure: it produces and checks messages; the
 * connection carries them. The password is used to derive keys and is not kept or shown.
 */
export class ScramClient {
  readonly #mechanism: ScramMechanism;
  readonly #password: string;
  readonly #clientFirstBare: string;
  readonly #nonce: string;
  #serverSignature: Buffer | null = null;

  constructor(mechanism: ScramMechanism, username: string, password: string, nonce?: string) {
    this.#mechanism = mechanism;
    this.#password = password;
    this.#nonce = nonce ?? randomBytes(24).toString('base64url');
    this.#clientFirstBare = `n=${saslName(username)},r=${this.#nonce}`;
  }

  /** client-first-message: `n,,n=user,r=nonce`. */
  firstMessage(): string {
    return `n,,${this.#clientFirstBare}`;
  }

  /**
   * client-final-message for the server's first message (`r=…,s=…,i=…`): checks the server's
   * nonce extends ours and the iteration count is sane, derives the keys (PBKDF2 on the thread
   * pool) and returns `c=biws,r=…,p=proof`. Throws an Error saying what the server got wrong.
   */
  async finalMessage(serverFirst: string): Promise<string> {
    const fields = attributes(serverFirst);
    const error = fields.get('e');
    if (error !== undefined) throw new Error(`the server refused the first message: ${error}`);
    const nonce = fields.get('r');
    const salt = fields.get('s');
    const iterations = Number(fields.get('i'));
    if (nonce === undefined || !nonce.startsWith(this.#nonce) || nonce === this.#nonce) {
      throw new Error("the server's nonce does not extend the client's");
    }
    if (salt === undefined || salt === '') throw new Error('the server sent no salt');
    if (!Number.isSafeInteger(iterations) || iterations < MIN_ITERATIONS) {
      throw new Error(`the server asked for ${fields.get('i') ?? 'no'} iterations`);
    }
    if (iterations > MAX_ITERATIONS) {
      throw new Error(`the server asked for ${iterations} iterations, over ${MAX_ITERATIONS}`);
    }
    const { hash, bytes } = DIGEST[this.#mechanism];
    const hmac = (key: Buffer, text: string): Buffer =>
      createHmac(hash, key).update(text, 'utf8').digest();
    const salted = await pbkdf2Async(
      this.#password,
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
