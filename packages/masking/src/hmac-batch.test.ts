import { createHmac, randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { HMAC_BATCH_MAX_BYTES, HmacBatch, type MacSink } from './hmac-batch.js';
import { HmacSha256 } from './hmac-sha256.js';

/** Writes each MAC's raw 32 bytes, big-endian, where it is told. */
const RAW: MacSink = {
  writeMac(digest, out, pos) {
    const view = new DataView(out.buffer, out.byteOffset, out.byteLength);
    for (let i = 0; i < 8; i++) view.setInt32(pos + i * 4, digest[i]!);
  },
};

const batch = HmacBatch.shared()!;

/** MACs of `messages` through the batch (flushing whenever it is full), 32 bytes each. */
function batched(hmac: HmacSha256, messages: readonly Uint8Array[]): Buffer {
  const out = Buffer.alloc(messages.length * 32);
  messages.forEach((message, i) => {
    if (batch.add(hmac, message, 0, message.length, RAW, i * 32)) return;
    expect(batch.full).toBe(true);
    batch.flush(out);
    expect(batch.add(hmac, message, 0, message.length, RAW, i * 32)).toBe(true);
  });
  batch.flush(out);
  return out;
}

const expected = (key: Uint8Array, messages: readonly Uint8Array[]): Buffer =>
  Buffer.concat(messages.map((m) => createHmac('sha256', key).update(m).digest()));

describe('HmacBatch', () => {
  it('is available on this runtime (WebAssembly SIMD)', () => {
    expect(batch).not.toBeNull();
    expect(HmacBatch.shared()).toBe(batch);
  });

  it('matches node:crypto for every length it takes, over more messages than one flush holds', () => {
    const key = randomBytes(32);
    const messages = Array.from({ length: 2500 }, (_, i) =>
      randomBytes(i % (HMAC_BATCH_MAX_BYTES + 1)),
    );
    expect(batched(new HmacSha256(key), messages)).toEqual(expected(key, messages));
  });

  it('matches node:crypto on random keys, messages and offsets (property)', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 16, maxLength: 100 }),
        fc.array(fc.uint8Array({ maxLength: HMAC_BATCH_MAX_BYTES }), {
          minLength: 1,
          maxLength: 30,
        }),
        fc.nat(7),
        (key, messages, pad) => {
          // Each message inside a larger buffer, so only its own bytes may count.
          const hmac = new HmacSha256(key);
          const out = Buffer.alloc(messages.length * 32);
          messages.forEach((m, i) => {
            const src = Buffer.concat([Buffer.alloc(pad, 0xff), m, Buffer.alloc(pad, 0xff)]);
            expect(batch.add(hmac, src, pad, pad + m.length, RAW, i * 32)).toBe(true);
          });
          batch.flush(out);
          expect(out).toEqual(expected(key, messages));
        },
      ),
      { numRuns: 200 },
    );
  });

  it('declines a message longer than one block holds, and a second key while it holds the first', () => {
    const first = new HmacSha256(Buffer.alloc(32, 1));
    const sameKey = new HmacSha256(Buffer.alloc(32, 1));
    const other = new HmacSha256(Buffer.alloc(32, 2));
    const long = Buffer.alloc(HMAC_BATCH_MAX_BYTES + 1, 0x61);
    expect(batch.add(first, long, 0, long.length, RAW, 0)).toBe(false);
    const out = Buffer.alloc(96);
    expect(batch.add(first, Buffer.from('a'), 0, 1, RAW, 0)).toBe(true);
    expect(batch.add(other, Buffer.from('b'), 0, 1, RAW, 32)).toBe(false);
    // A masker made from the same key joins the batch.
    expect(batch.add(sameKey, Buffer.from('c'), 0, 1, RAW, 64)).toBe(true);
    batch.flush(out);
    expect(out.subarray(0, 32)).toEqual(
      createHmac('sha256', Buffer.alloc(32, 1)).update('a').digest(),
    );
    expect(out.subarray(32, 64)).toEqual(Buffer.alloc(32));
    expect(out.subarray(64)).toEqual(
      createHmac('sha256', Buffer.alloc(32, 1)).update('c').digest(),
    );
    // Empty again, the batch takes the other key.
    expect(batch.add(other, Buffer.from('b'), 0, 1, RAW, 32)).toBe(true);
    batch.flush(out);
    expect(out.subarray(32, 64)).toEqual(
      createHmac('sha256', Buffer.alloc(32, 2)).update('b').digest(),
    );
  });

  it('forgets what it held when cleared', () => {
    const hmac = new HmacSha256(Buffer.alloc(32, 3));
    const out = Buffer.alloc(32);
    batch.add(hmac, Buffer.from('x'), 0, 1, RAW, 0);
    batch.clear();
    batch.flush(out);
    expect(out).toEqual(Buffer.alloc(32));
  });
});
