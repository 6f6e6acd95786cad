import { createHmac, createSecretKey } from 'node:crypto';
import { inspect } from 'node:util';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { HmacSha256 } from './hmac-sha256.js';

function digestBytes(hmac: HmacSha256, value: Uint8Array, start = 0, end = value.length): Buffer {
  const words = new Int32Array(8);
  hmac.digest(value, start, end, words);
  const out = Buffer.alloc(32);
  for (let i = 0; i < 8; i++) out.writeInt32BE(words[i]!, i * 4);
  return out;
}

describe('HmacSha256', () => {
  it('matches node:crypto for message lengths around the block edges', () => {
    const key = Buffer.alloc(32, 0x0b);
    const hmac = new HmacSha256(key);
    for (const length of [0, 1, 54, 55, 56, 63, 64, 65, 119, 120, 128, 1000]) {
      const message = Buffer.alloc(length, 0x61);
      expect(digestBytes(hmac, message)).toEqual(
        createHmac('sha256', key).update(message).digest(),
      );
    }
  });

  it('matches node:crypto for key lengths around the block size (long keys are hashed first)', () => {
    const message = Buffer.from('alice@example.com');
    for (const length of [16, 32, 63, 64, 65, 100, 128, 200]) {
      const key = Buffer.alloc(length, 0x5a);
      key[length - 1] = 1;
      expect(digestBytes(new HmacSha256(key), message)).toEqual(
        createHmac('sha256', key).update(message).digest(),
      );
    }
  });

  it('matches node:crypto on random keys and messages (property)', () => {
    fc.assert(
      fc.property(
        // size 'max': without it fast-check keeps arrays short, and long keys go untested.
        fc.uint8Array({ minLength: 16, maxLength: 130, size: 'max' }),
        fc.uint8Array({ maxLength: 300, size: 'max' }),
        fc.nat(20),
        (key, message, skip) => {
          // A message inside a larger buffer, as values sit inside frames.
          const start = Math.min(skip, message.length);
          const expected = createHmac('sha256', key).update(message.subarray(start)).digest();
          expect(digestBytes(new HmacSha256(key), message, start, message.length)).toEqual(
            expected,
          );
        },
      ),
    );
  });

  it('accepts a KeyObject key', () => {
    const key = createSecretKey(Buffer.from('a secret key of 32 bytes........'));
    const message = Buffer.from('what do ya want for nothing?');
    expect(digestBytes(new HmacSha256(key), message)).toEqual(
      createHmac('sha256', key).update(message).digest(),
    );
  });

  it('refuses keys shorter than 16 bytes', () => {
    expect(() => new HmacSha256(Buffer.alloc(15))).toThrow(
      expect.objectContaining({ code: 'PCL_ERR_CONFIG_INVALID' }),
    );
  });

  it('does not show the key when inspected', () => {
    const key = Buffer.from('0123456789abcdefSECRET');
    const text = inspect(new HmacSha256(key), { showHidden: true, depth: 5 });
    expect(text).not.toContain('SECRET');
    expect(text).not.toContain(key.toString('hex').slice(0, 8));
  });
});
