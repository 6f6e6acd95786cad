import {
  createCipheriv,
  createDecipheriv,
  createHmac,
  hkdfSync,
  randomBytes,
  timingSafeEqual,
} from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PortcullisError } from '@portcullis/core';
import { ensurePrivateKeyFile } from '../config/key-file.js';

/** What a review link lets its holder do once logged in: one verdict, or look and choose. */
export type LinkVerdict = 'approve' | 'deny' | 'view';

/** The signed part of a review link. */
export interface ReviewLink {
  readonly id: string;
  readonly verdict: LinkVerdict;
  /** Unix seconds after which the link is stale. */
  readonly exp: number;
}

/** Why a link is refused. */
export type LinkRefusal = 'forged' | 'expired';

/** The file under dataDir that holds the link key. */
export const LINK_KEY_FILE = 'approval-links.key';

/**
 * Signs and checks review links and seals the review pages' cookie, with keys derived from one
 * gateway secret. The secret is the gateway's own (not a webhook's): links must verify whichever
 * webhook carried them, webhooks without a secret (Slack) still get signed links, rotating a
 * webhook secret does not void outstanding links, and a receiver that can check deliveries
 * cannot mint links.
 */
export class ApprovalLinkSigner {
  readonly #linkKey: Buffer;
  readonly #cookieKey: Buffer;

  constructor(secret: Buffer) {
    if (secret.length < 32) throw new Error('the approval link key must be at least 32 bytes');
    this.#linkKey = derive(secret, 'portcullis approval links v1');
    this.#cookieKey = derive(secret, 'portcullis approval cookie v1');
  }

  /** The `sig` parameter of `link`. */
  sign(link: ReviewLink): string {
    return createHmac('sha256', this.#linkKey)
      .update(`${link.id}\n${link.verdict}\n${link.exp}`)
      .digest('base64url');
  }

  /** Null when `sig` is this gateway's signature of `link` and it has not expired. */
  verify(link: ReviewLink, sig: string, nowMs: number): LinkRefusal | null {
    const expected = Buffer.from(this.sign(link));
    const given = Buffer.from(sig);
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) return 'forged';
    return link.exp * 1000 <= nowMs ? 'expired' : null;
  }

  /** The review page URL for `link` under the gateway's public address. */
  url(publicUrl: string, link: ReviewLink): string {
    const query = new URLSearchParams({
      verdict: link.verdict,
      exp: String(link.exp),
      sig: this.sign(link),
    });
    return `${publicUrl}/v1/approvals/${encodeURIComponent(link.id)}/review?${query}`;
  }

  /** Encrypts and authenticates `value` (AES-256-GCM) for a cookie; readable only by {@link open}. */
  seal(value: unknown): string {
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.#cookieKey, iv);
    const body = Buffer.concat([cipher.update(JSON.stringify(value), 'utf8'), cipher.final()]);
    return Buffer.concat([iv, body, cipher.getAuthTag()]).toString('base64url');
  }

  /** The value {@link seal} sealed, or null for anything else (tampered, another key, garbage). */
  open(sealed: string): unknown {
    const raw = Buffer.from(sealed, 'base64url');
    if (raw.length < 12 + 16 + 1) return null;
    try {
      const decipher = createDecipheriv('aes-256-gcm', this.#cookieKey, raw.subarray(0, 12));
      decipher.setAuthTag(raw.subarray(raw.length - 16));
      const plain = Buffer.concat([
        decipher.update(raw.subarray(12, raw.length - 16)),
        decipher.final(),
      ]);
      return JSON.parse(plain.toString('utf8')) as unknown;
    } catch {
      return null;
    }
  }
}

function derive(secret: Buffer, info: string): Buffer {
  return Buffer.from(hkdfSync('sha256', secret, Buffer.alloc(0), info, 32));
}

/** Reads a review link from a request's path id and query; null when a part is missing. */
export function readReviewLink(
  id: string,
  query: URLSearchParams,
): { link: ReviewLink; sig: string } | null {
  const verdict = query.get('verdict');
  const exp = query.get('exp');
  const sig = query.get('sig');
  if (verdict !== 'approve' && verdict !== 'deny' && verdict !== 'view') return null;
  if (exp === null || !/^\d{1,12}$/.test(exp) || sig === null || sig === '') return null;
  return { link: { id, verdict, exp: Number(exp) }, sig };
}

/**
 * The link key in `dataDir/approval-links.key` (32 random bytes, hex, mode 0600), generated on
 * first use. Created with O_EXCL, so processes starting at once agree on one key; gateways
 * behind one public address need the same file. A key group or others can read is refused:
 * whoever reads it can mint links.
 */
export async function loadLinkKey(dataDir: string): Promise<Buffer> {
  const path = join(dataDir, LINK_KEY_FILE);
  await ensurePrivateKeyFile(path, 'the approval link key', keyError);
  for (let attempt = 0; attempt < 3; attempt++) {
    const hex = (await readFile(path, 'utf8')).trim();
    if (/^[0-9a-f]{64,}$/i.test(hex)) return Buffer.from(hex, 'hex');
    // A key another process is still writing reads empty for a moment.
    await new Promise((resolveWait) => setTimeout(resolveWait, 50));
  }
  throw keyError(`${path} does not hold a key`, new Error('expected at least 64 hex digits'));
}

function keyError(message: string, err: unknown): PortcullisError {
  return new PortcullisError(
    'PCL_ERR_CONFIG_SECRET',
    `approval link key: ${message}: ${(err as Error).message}`,
    { cause: err },
  );
}
