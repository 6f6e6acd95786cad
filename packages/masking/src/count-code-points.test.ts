import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { countCodePoints } from './count-code-points.js';

const strict = new TextDecoder('utf-8', { fatal: true });

describe('countCodePoints', () => {
  it.each([
    ['', 0],
    ['abc', 3],
    ['jöhn', 4],
    ['€', 1],
    ['😀x', 2],
  ])('%j has %i code points', (text, count) => {
    const bytes = Buffer.from(text);
    expect(countCodePoints(bytes, 0, bytes.length)).toBe(count);
  });

  it.each([
    ['lone continuation', [0x80]],
    ['overlong slash', [0xc0, 0xaf]],
    ['surrogate', [0xed, 0xa0, 0x80]],
    ['above U+10FFFF', [0xf4, 0x90, 0x80, 0x80]],
    ['truncated', [0xe2, 0x82]],
    ['0xff', [0x61, 0xff]],
  ])('rejects %s', (_name, bytes) => {
    expect(countCodePoints(Uint8Array.from(bytes), 0, bytes.length)).toBe(-1);
  });

  it('agrees with a strict TextDecoder on random bytes (property)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 40 }), (bytes) => {
        let expected: number;
        try {
          expected = [...strict.decode(bytes)].length;
        } catch {
          expected = -1;
        }
        expect(countCodePoints(bytes, 0, bytes.length)).toBe(expected);
      }),
    );
  });

  it('counts any valid string like the string iterator (property)', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary' }), (text) => {
        const bytes = Buffer.from(text);
        expect(countCodePoints(bytes, 0, bytes.length)).toBe([...bytes.toString()].length);
      }),
    );
  });
});
