import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { kafkaJsCrc32c } from '../kafka-producer/kafkajs-internals.fixture.js';
import { crc32c } from './crc32c.js';

/** Bit-at-a-time reference, straight from the definition. */
function reference(bytes: Uint8Array): number {
  let crc = 0xffffffff;
  for (const byte of bytes) {
    crc ^= byte;
    for (let k = 0; k < 8; k++) crc = crc & 1 ? (crc >>> 1) ^ 0x82f63b78 : crc >>> 1;
  }
  return (crc ^ 0xffffffff) >>> 0;
}

describe('crc32c', () => {
  it('matches the published check values', () => {
    expect(crc32c(Buffer.from('123456789'))).toBe(0xe3069283);
    expect(crc32c(new Uint8Array(0))).toBe(0);
    expect(crc32c(new Uint8Array(32))).toBe(0x8a9136aa);
    expect(crc32c(new Uint8Array(32).fill(0xff))).toBe(0x62a8ab43);
  });

  it('agrees with the bitwise reference on any bytes and any range', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.nat(), fc.nat(), (bytes, a, b) => {
        const start = bytes.length === 0 ? 0 : a % bytes.length;
        const end = start + (bytes.length === 0 ? 0 : b % (bytes.length - start + 1));
        expect(crc32c(bytes, start, end)).toBe(reference(bytes.subarray(start, end)));
      }),
    );
  });

  it('continues from a seed as if the input were one piece', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 100 }), fc.uint8Array({ maxLength: 100 }), (x, y) => {
        const whole = Buffer.concat([x, y]);
        expect(crc32c(y, 0, y.length, crc32c(x))).toBe(crc32c(whole));
      }),
    );
  });

  it('gives the same result at every alignment of the input, as kafkajs computes it', () => {
    const backing = randomBytes(4096 + 16);
    for (let offset = 0; offset < 8; offset++) {
      const view = backing.subarray(offset, offset + 4096);
      const whole = reference(view);
      expect(crc32c(view)).toBe(whole);
      expect(kafkaJsCrc32c(view)).toBe(whole);
      for (const cut of [1, 7, 8, 9, 1000, 4095]) {
        expect(crc32c(view, cut, view.length, crc32c(view, 0, cut))).toBe(whole);
      }
    }
  });
});
