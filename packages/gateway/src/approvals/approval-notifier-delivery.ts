import { createHmac, timingSafeEqual } from 'node:crypto';

/** Header carrying the delivery's signature. */
export const SIGNATURE_HEADER = 'X-Portcullis-Signature';
/** Header carrying the delivery id (the same on every attempt, for receivers to dedupe). */
export const DELIVERY_HEADER = 'X-Portcullis-Delivery';
/** How far a signature's timestamp may be from a receiver's clock (replay window). */
export const SIGNATURE_TOLERANCE_SECONDS = 300;

/** `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">` for `body` signed at `t`. */
export function signDelivery(secret: string, body: string, t: number): string {
  const mac = createHmac('sha256', secret).update(`${t}.${body}`).digest('hex');
  return `t=${t},v1=${mac}`;
}

/**
 * What a receiver does with a delivery: true when `header` carries a `v1` signature of `body`
 * with `secret` and its `t` is within the tolerance of `nowSeconds`. Several `v1` values are
 * accepted (any may match), so a secret can be rotated while both are in use.
 */
export function verifyDelivery(
  secret: string,
  header: string,
  body: string,
  nowSeconds: number,
  toleranceSeconds = SIGNATURE_TOLERANCE_SECONDS,
): boolean {
  let t: number | null = null;
  const macs: string[] = [];
  for (const part of header.split(',')) {
    const [key, value = ''] = part.trim().split('=', 2);
    if (key === 't' && /^\d+$/.test(value)) t = Number(value);
    else if (key === 'v1') macs.push(value);
  }
  if (t === null || Math.abs(nowSeconds - t) > toleranceSeconds) return false;
  const expected = Buffer.from(createHmac('sha256', secret).update(`${t}.${body}`).digest('hex'));
  return macs.some((mac) => {
    const given = Buffer.from(mac);
    return given.length === expected.length && timingSafeEqual(given, expected);
  });
}

/** What one attempt came to. */
export type AttemptResult =
  | { readonly kind: 'delivered'; readonly status: number }
  /** Worth another attempt: network error, timeout, 429 or 5xx. */
  | { readonly kind: 'retry'; readonly status: number | null; readonly retryAfterMs: number | null }
  /** The receiver refused it for good (4xx other than 429, or a redirect). */
  | { readonly kind: 'rejected'; readonly status: number };

/** Classifies an HTTP answer; `retryAfter` is its Retry-After header. */
export function classifyResponse(
  status: number,
  retryAfter: string | null,
  nowMs: number,
): AttemptResult {
  if (status >= 200 && status < 300) return { kind: 'delivered', status };
  if (status === 429 || status >= 500) {
    return { kind: 'retry', status, retryAfterMs: parseRetryAfter(retryAfter, nowMs) };
  }
  return { kind: 'rejected', status };
}

/** Retry-After as milliseconds from now (delta-seconds or an HTTP date), or null. */
export function parseRetryAfter(value: string | null, nowMs: number): number | null {
  if (value === null) return null;
  const trimmed = value.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed) * 1000;
  const at = Date.parse(trimmed);
  return Number.isNaN(at) ? null : Math.max(0, at - nowMs);
}

/** Backoff settings: the first retry waits about `baseMs`, each next one twice as long. */
export interface Backoff {
  readonly baseMs: number;
  readonly maxMs: number;
}

export const DEFAULT_BACKOFF: Backoff = { baseMs: 1_000, maxMs: 60_000 };
/** A Retry-After longer than this is cut to it (a held statement waits minutes, not hours). */
export const MAX_RETRY_AFTER_MS = 300_000;

/**
 * How long to wait before retry number `retry` (1 for the first): `baseMs · 2^(retry-1)` capped
 * at `maxMs`, jittered down to half of it at random so receivers that came back are not hit by
 * every gateway at once. A receiver's Retry-After wins when it asks for longer.
 */
export function retryDelayMs(
  retry: number,
  retryAfterMs: number | null,
  random: number,
  backoff: Backoff = DEFAULT_BACKOFF,
): number {
  const ceiling = Math.min(backoff.maxMs, backoff.baseMs * 2 ** Math.max(0, retry - 1));
  const jittered = Math.round(ceiling * (0.5 + random / 2));
  return retryAfterMs === null
    ? jittered
    : Math.max(jittered, Math.min(retryAfterMs, MAX_RETRY_AFTER_MS));
}
