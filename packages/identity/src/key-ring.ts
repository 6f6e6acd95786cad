import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import {
  calculateJwkThumbprint,
  exportJWK,
  generateKeyPair,
  importJWK,
  type CryptoKey,
  type JSONWebKeySet,
  type JWK,
} from 'jose';
import { IdentityError } from './identity-error.js';
import { ensurePrivateDir, readPrivateFile, writePrivateFile } from './private-file.js';

/** Signing algorithms the gateway can use for its credentials (asymmetric only). */
export type GatewaySigningAlg = 'ES256' | 'ES384' | 'EdDSA' | 'RS256' | 'PS256';

/** Options for {@link KeyRing.open}. */
export interface KeyRingOptions {
  /** Directory holding one `<kid>.jwk.json` file per key (created 0700; files 0600). */
  dir: string;
  /** Algorithm of new keys; `ES256` by default. Keys already on disk keep their own. */
  alg?: GatewaySigningAlg;
  /** Age after which {@link KeyRing.signingKey} rotates the current key; 24 h by default. */
  rotationIntervalMs?: number;
  /**
   * The longest lifetime a credential signed by this ring may have; 1 h by default. A retired
   * key is kept for verification this long (plus `clockToleranceMs`) after its retirement.
   */
  maxTokenTtlMs?: number;
  /** Extra time a retired key is kept, for verifiers whose clocks lag; 60 s by default. */
  clockToleranceMs?: number;
  /** Clock in epoch milliseconds; `Date.now` by default. */
  now?: () => number;
}

/** The key new credentials are signed with. */
export interface SigningKey {
  readonly kid: string;
  readonly alg: GatewaySigningAlg;
  readonly privateKey: CryptoKey;
}

interface StoredKey {
  kid: string;
  alg: GatewaySigningAlg;
  createdAt: number;
  retiredAt?: number;
  jwk: JWK;
}

interface LoadedKey {
  stored: StoredKey;
  privateKey: CryptoKey;
  publicKey: CryptoKey;
  publicJwk: JWK;
}

const SUFFIX = '.jwk.json';
const ALGS: ReadonlySet<string> = new Set(['ES256', 'ES384', 'EdDSA', 'RS256', 'PS256']);
const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'] as const;

function publicPart(jwk: JWK): JWK {
  const copy: Record<string, unknown> = { ...jwk };
  for (const member of PRIVATE_MEMBERS) delete copy[member];
  return copy as JWK;
}

function parseStored(text: string, file: string): StoredKey {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (cause) {
    throw new IdentityError(
      'PCL_ERR_IDENTITY_FILE_CORRUPT',
      'unparsable',
      `key file ${file} is not JSON`,
      { cause },
    );
  }
  const v = value as Partial<StoredKey> | null;
  if (
    v === null ||
    typeof v !== 'object' ||
    typeof v.kid !== 'string' ||
    typeof v.alg !== 'string' ||
    !ALGS.has(v.alg) ||
    typeof v.createdAt !== 'number' ||
    (v.retiredAt !== undefined && typeof v.retiredAt !== 'number') ||
    typeof v.jwk !== 'object' ||
    v.jwk === null
  ) {
    throw new IdentityError(
      'PCL_ERR_IDENTITY_FILE_CORRUPT',
      'wrong-shape',
      `key file ${file} does not hold a gateway signing key`,
    );
  }
  return v as StoredKey;
}

/**
 * The gateway's signing keys. One current key signs new credentials; retired keys stay for
 * verification until every credential they signed has expired, then they are deleted. Keys
 * live as private JWK files (mode 0600) in a directory (mode 0700); a key file readable by
 * group or others is refused. The key id (`kid`) is the key's RFC 7638 thumbprint.
 *
 * One process should own rotation (the gateway's primary); other processes call
 * {@link KeyRing.reload} to pick up new keys — verifiers do that on an unknown `kid`.
 */
export class KeyRing {
  readonly dir: string;
  readonly alg: GatewaySigningAlg;
  readonly rotationIntervalMs: number;
  readonly maxTokenTtlMs: number;
  readonly clockToleranceMs: number;
  readonly #now: () => number;
  #keys = new Map<string, LoadedKey>();
  #current: LoadedKey | undefined;
  #busy: Promise<unknown> = Promise.resolve();

  private constructor(options: KeyRingOptions) {
    this.dir = options.dir;
    this.alg = options.alg ?? 'ES256';
    this.rotationIntervalMs = options.rotationIntervalMs ?? 24 * 3600_000;
    this.maxTokenTtlMs = options.maxTokenTtlMs ?? 3600_000;
    this.clockToleranceMs = options.clockToleranceMs ?? 60_000;
    this.#now = options.now ?? Date.now;
  }

  /** Loads the keys in `options.dir`, creating the directory and a first key when there is none. */
  static async open(options: KeyRingOptions): Promise<KeyRing> {
    const ring = new KeyRing(options);
    await ensurePrivateDir(ring.dir);
    await ring.reload();
    if (ring.#current === undefined) await ring.rotate();
    return ring;
  }

  /** Re-reads the key directory (keys rotated by another process), dropping expired retired keys. */
  reload(): Promise<void> {
    return this.#exclusive(async () => {
      const names = (await readdir(this.dir)).filter((name) => name.endsWith(SUFFIX)).sort();
      const keys = new Map<string, LoadedKey>();
      const now = this.#now();
      for (const name of names) {
        const file = join(this.dir, name);
        const text = await readPrivateFile(file);
        if (text === undefined) continue;
        const stored = parseStored(text, file);
        if (stored.retiredAt !== undefined && this.#expired(stored.retiredAt, now)) {
          await rm(file, { force: true });
          continue;
        }
        keys.set(stored.kid, this.#keys.get(stored.kid) ?? (await load(stored)));
      }
      const live = [...keys.values()].filter((key) => key.stored.retiredAt === undefined);
      live.sort((a, b) => b.stored.createdAt - a.stored.createdAt);
      const [current, ...older] = live;
      // Several unretired keys happen only after a crash mid-rotation: keep the newest.
      for (const key of older) await this.#retire(key, now);
      this.#keys = keys;
      this.#current = current;
    });
  }

  /** The current signing key, rotating first when it is older than the rotation interval. */
  async signingKey(): Promise<SigningKey> {
    const current = this.#current;
    if (current !== undefined && !this.#due(current)) return toSigningKey(current);
    return this.#exclusive(async () => {
      const latest = this.#current;
      return latest !== undefined && !this.#due(latest) ? toSigningKey(latest) : this.#rotateNow();
    });
  }

  /**
   * Makes a new current key and retires the previous one (kept for verification until the
   * credentials it signed have expired). The new key file is written before the old one is
   * marked retired, so a crash in between leaves two usable keys, never none.
   */
  rotate(): Promise<SigningKey> {
    return this.#exclusive(() => this.#rotateNow());
  }

  #due(key: LoadedKey): boolean {
    return this.#now() - key.stored.createdAt >= this.rotationIntervalMs;
  }

  async #rotateNow(): Promise<SigningKey> {
    const now = this.#now();
    const { privateKey } = await generateKeyPair(this.alg, { extractable: true });
    const jwk = await exportJWK(privateKey);
    const kid = await calculateJwkThumbprint(publicPart(jwk));
    const stored: StoredKey = { kid, alg: this.alg, createdAt: now, jwk: { ...jwk, kid } };
    await writePrivateFile(this.#file(kid), JSON.stringify(stored));
    const loaded = await load(stored);
    const previous = this.#current;
    this.#keys.set(kid, loaded);
    this.#current = loaded;
    if (previous !== undefined) await this.#retire(previous, now);
    for (const [id, key] of this.#keys) {
      if (key.stored.retiredAt !== undefined && this.#expired(key.stored.retiredAt, now)) {
        this.#keys.delete(id);
        await rm(this.#file(id), { force: true });
      }
    }
    return toSigningKey(loaded);
  }

  /**
   * The public key for `kid` with its algorithm, or `undefined` for a key this ring does not
   * hold (never issued here, or retired long enough ago to be deleted).
   */
  verificationKey(kid: string): { key: CryptoKey; alg: GatewaySigningAlg } | undefined {
    const key = this.#keys.get(kid);
    if (key === undefined) return undefined;
    if (key.stored.retiredAt !== undefined && this.#expired(key.stored.retiredAt, this.#now())) {
      return undefined;
    }
    return { key: key.publicKey, alg: key.stored.alg };
  }

  /** The algorithms of the keys held now (what a verifier accepts). */
  algorithms(): GatewaySigningAlg[] {
    return [...new Set([...this.#keys.values()].map((key) => key.stored.alg))];
  }

  /** The key ids held now, current first. */
  kids(): string[] {
    const current = this.#current?.stored.kid;
    const rest = [...this.#keys.keys()].filter((kid) => kid !== current);
    return current === undefined ? rest : [current, ...rest];
  }

  /** The public keys as a JWKS (`use: sig`, `alg`, `kid` on each), for publishing. */
  jwks(): JSONWebKeySet {
    return {
      keys: this.kids().map((kid) => {
        const key = this.#keys.get(kid) as LoadedKey;
        return { ...key.publicJwk, kid, alg: key.stored.alg, use: 'sig' };
      }),
    };
  }

  #expired(retiredAt: number, now: number): boolean {
    return now > retiredAt + this.maxTokenTtlMs + this.clockToleranceMs;
  }

  async #retire(key: LoadedKey, now: number): Promise<void> {
    if (key.stored.retiredAt !== undefined) return;
    key.stored = { ...key.stored, retiredAt: now };
    await writePrivateFile(this.#file(key.stored.kid), JSON.stringify(key.stored));
  }

  #file(kid: string): string {
    return join(this.dir, `${kid}${SUFFIX}`);
  }

  #exclusive<T>(task: () => Promise<T>): Promise<T> {
    const run = this.#busy.then(task, task);
    this.#busy = run.catch(() => undefined);
    return run;
  }
}

async function load(stored: StoredKey): Promise<LoadedKey> {
  const privateKey = (await importJWK(stored.jwk, stored.alg)) as CryptoKey;
  const publicJwk = publicPart(stored.jwk);
  const publicKey = (await importJWK(publicJwk, stored.alg)) as CryptoKey;
  return { stored, privateKey, publicKey, publicJwk };
}

function toSigningKey(key: LoadedKey): SigningKey {
  return { kid: key.stored.kid, alg: key.stored.alg, privateKey: key.privateKey };
}
