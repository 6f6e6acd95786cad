import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { crc32c as spoolCrc32c } from '../spool/crc32c.js';
import { crc32c } from './crc32c.js';
import { kafkaJsCrc32c } from './kafkajs-internals.fixture.js';

/** Byte-at-a-time reference, straight from the definition (reflected polynomial 0x82F63B78). */
function bytewise(bytes: Uint8Array): number {
  let crc = 0xffffffff;
  for (const byte of bytes) {
    crc ^= byte;
    for (let k = 0; k < 8; k++) crc = crc & 1 ? (crc >>> 1) ^ 0x82f63b78 : crc >>> 1;
  }
  return (crc ^ 0xffffffff) >>> 0;
}

describe('crc32c for record batches', () => {
  it('matches the published check value', () => {
    expect(crc32c(Buffer.from('123456789'))).toBe(0xe3069283);
  });

  it('agrees with a bytewise reference and with kafkajs on random input and ranges', () => {
    for (let i = 0; i < 200; i++) {
      const bytes = randomBytes(i * 37);
      const start = bytes.length === 0 ? 0 : i % 7;
      const end = Math.max(start, bytes.length - (i % 5));
      const range = bytes.subarray(start, end);
      expect(crc32c(bytes, start, end)).toBe(bytewise(range));
      expect(crc32c(bytes, start, end)).toBe(kafkaJsCrc32c(range));
      expect(crc32c(bytes, start, end)).toBe(spoolCrc32c(bytes, start, end));
    }
  });

  it('gives the same result at every alignment and when continued from a seed', () => {
    const backing = randomBytes(4096 + 16);
    for (let offset = 0; offset < 8; offset++) {
      const view = backing.subarray(offset, offset + 4096);
      const whole = bytewise(view);
      expect(crc32c(view)).toBe(whole);
      for (const cut of [1, 7, 8, 9, 1000, 4095]) {
        expect(crc32c(view, cut, view.length, crc32c(view, 0, cut))).toBe(whole);
      }
    }
  });
});
