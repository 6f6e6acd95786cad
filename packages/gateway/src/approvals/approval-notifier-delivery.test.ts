import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  classifyResponse,
  parseRetryAfter,
  retryDelayMs,
  signDelivery,
  verifyDelivery,
} from './approval-notifier-delivery.js';

const secret = 'whsec_test_secret';
const body = '{"version":1,"type":"approval.requested"}';

describe('delivery signatures', () => {
  it('signs "<t>.<body>" with HMAC-SHA256, hex, as t=…,v1=…', () => {
    const header = signDelivery(secret, body, 1_900_000_000);
    const mac = createHmac('sha256', secret).update(`1900000000.${body}`).digest('hex');
    expect(header).toBe(`t=1900000000,v1=${mac}`);
  });

  it('verifies within the five-minute tolerance, not outside it', () => {
    const header = signDelivery(secret, body, 1_900_000_000);
    expect(verifyDelivery(secret, header, body, 1_900_000_000)).toBe(true);
    expect(verifyDelivery(secret, header, body, 1_900_000_300)).toBe(true);
    expect(verifyDelivery(secret, header, body, 1_900_000_301)).toBe(false);
    expect(verifyDelivery(secret, header, body, 1_899_999_699)).toBe(false);
  });

  it('refuses another secret, a changed body, a moved timestamp and garbage', () => {
    const header = signDelivery(secret, body, 1_900_000_000);
    expect(verifyDelivery('other', header, body, 1_900_000_000)).toBe(false);
    expect(verifyDelivery(secret, header, `${body} `, 1_900_000_000)).toBe(false);
    const moved = header.replace('t=1900000000', 't=1900000001');
    expect(verifyDelivery(secret, moved, body, 1_900_000_000)).toBe(false);
    expect(verifyDelivery(secret, 'v1=abc', body, 1_900_000_000)).toBe(false);
    expect(verifyDelivery(secret, '', body, 1_900_000_000)).toBe(false);
  });

  it('accepts any of several v1 values (secret rotation)', () => {
    const mac = signDelivery(secret, body, 1_900_000_000).split('v1=')[1]!;
    const header = `t=1900000000,v1=${'0'.repeat(64)},v1=${mac}`;
    expect(verifyDelivery(secret, header, body, 1_900_000_000)).toBe(true);
  });
});

describe('retry decisions', () => {
  const now = Date.parse('2030-01-01T00:00:00Z');

  it('retries network-like failures (429, 5xx), rejects other 4xx and redirects', () => {
    expect(classifyResponse(200, null, now)).toEqual({ kind: 'delivered', status: 200 });
    expect(classifyResponse(204, null, now).kind).toBe('delivered');
    expect(classifyResponse(503, null, now)).toEqual({
      kind: 'retry',
      status: 503,
      retryAfterMs: null,
    });
    expect(classifyResponse(429, '7', now)).toEqual({
      kind: 'retry',
      status: 429,
      retryAfterMs: 7000,
    });
    expect(classifyResponse(400, null, now)).toEqual({ kind: 'rejected', status: 400 });
    expect(classifyResponse(404, '5', now).kind).toBe('rejected');
    expect(classifyResponse(302, null, now).kind).toBe('rejected');
  });

  it('reads Retry-After as seconds or an HTTP date', () => {
    expect(parseRetryAfter('120', now)).toBe(120_000);
    expect(parseRetryAfter(new Date(now + 30_000).toUTCString(), now)).toBe(30_000);
    expect(parseRetryAfter(new Date(now - 30_000).toUTCString(), now)).toBe(0);
    expect(parseRetryAfter('soon', now)).toBeNull();
    expect(parseRetryAfter(null, now)).toBeNull();
  });

  it('backs off exponentially, jittered between half and all of the step, capped', () => {
    const backoff = { baseMs: 1000, maxMs: 60_000 };
    const lows = [1, 2, 3, 4, 5, 6, 7, 8].map((n) => retryDelayMs(n, null, 0, backoff));
    const highs = [1, 2, 3, 4, 5, 6, 7, 8].map((n) => retryDelayMs(n, null, 1, backoff));
    expect(highs).toEqual([1000, 2000, 4000, 8000, 16_000, 32_000, 60_000, 60_000]);
    expect(lows).toEqual([500, 1000, 2000, 4000, 8000, 16_000, 30_000, 30_000]);
    expect(retryDelayMs(2, null, 0.5, backoff)).toBe(1500);
  });

  it('waits at least what Retry-After asks, up to five minutes', () => {
    expect(retryDelayMs(1, 10_000, 0, { baseMs: 1000, maxMs: 60_000 })).toBe(10_000);
    expect(retryDelayMs(1, 100, 1, { baseMs: 1000, maxMs: 60_000 })).toBe(1000);
    expect(retryDelayMs(1, 3_600_000, 0, { baseMs: 1000, maxMs: 60_000 })).toBe(300_000);
  });
});
