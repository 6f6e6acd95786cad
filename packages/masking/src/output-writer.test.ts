import { describe, expect, it } from 'vitest';
import { OutputWriter, copyBytes } from './output-writer.js';

describe('copyBytes', () => {
  it('copies every run length and alignment exactly, touching nothing around it', () => {
    const src = Buffer.alloc(1024);
    for (let i = 0; i < src.length; i++) src[i] = (i * 131 + 7) & 255;
    // A view at an odd offset into a larger pool, as socket chunks are.
    const pooled = Buffer.concat([Buffer.alloc(3, 0xee), src]).subarray(3);
    for (const source of [src, pooled]) {
      for (let n = 0; n <= 400; n++) {
        for (const from of [0, 1, 5, 13]) {
          for (const pos of [0, 3, 6]) {
            // `out` is a view into a larger buffer, as pooled output Buffers are.
            const whole = new Uint8Array(600).fill(0xaa);
            const out = whole.subarray(7, 519);
            copyBytes(source, from, from + n, out, pos, new DataView(whole.buffer), 7 + pos);
            expect(
              Buffer.from(out.subarray(pos, pos + n)).equals(src.subarray(from, from + n)),
            ).toBe(true);
            expect(out.subarray(0, pos).every((b) => b === 0xaa)).toBe(true);
            expect(out.subarray(pos + n).every((b) => b === 0xaa)).toBe(true);
            expect(whole.subarray(0, 7).every((b) => b === 0xaa)).toBe(true);
          }
        }
      }
    }
  });
});

describe('copyBytes on bytes that read as special doubles', () => {
  // Eight-byte patterns, little-endian as copyBytes reads them: NaNs (signalling, quiet, negative,
  // with payloads, V8's hole pattern), infinities, zeros, subnormals.
  const patterns = [
    0x7ff0000000000001n,
    0x7ff4000000000000n,
    0x7ff8000000000000n,
    0x7ff8dead0000beefn,
    0xfff8000000000000n,
    0xfff7fffffff7ffffn,
    0xffffffffffffffffn,
    0x7fffffffffffffffn,
    0x7ff0000000000000n,
    0xfff0000000000000n,
    0x8000000000000000n,
    0x0000000000000000n,
    0x0000000000000001n,
    0x800fffffffffffffn,
  ];

  it('copies them exactly, at every alignment, in every tier', () => {
    const src = Buffer.alloc(8 * patterns.length + 16);
    patterns.forEach((p, i) => src.writeBigUInt64LE(p, 3 + 8 * i));
    const out = new Uint8Array(src.length + 16);
    const view = new DataView(out.buffer);
    // Enough rounds for the copy loop to be optimised.
    for (let round = 0; round < 3000; round++) {
      const from = round % 11;
      const to = src.length - (round % 5);
      const pos = round % 7;
      out.fill(0);
      copyBytes(src, from, to, out, pos, view, pos);
      if (!Buffer.from(out.subarray(pos, pos + to - from)).equals(src.subarray(from, to))) {
        throw new Error(`round ${round}: bytes changed`);
      }
    }
  });
});

describe('OutputWriter', () => {
  it('copies pending input in runs across growth', () => {
    const src = Buffer.from(Array.from({ length: 3000 }, (_, i) => i & 255));
    const w = new OutputWriter(src, 0, 16, true);
    const expected: number[] = [];
    let at = 0;
    for (const step of [1, 7, 8, 9, 150, 160, 161, 1000, 64]) {
      at += step;
      w.copyTo(at);
      w.byte(0xff);
      expected.push(...src.subarray(at - step, at), 0xff);
    }
    expect([...w.result()]).toEqual(expected);
    expect(w.result().byteOffset).toBe(0);
  });

  it('writes at the right place in pooled buffers, whatever their offset', () => {
    const src = Buffer.from(Array.from({ length: 200 }, (_, i) => (i * 7) & 255));
    for (let round = 0; round < 50; round++) {
      const w = new OutputWriter(src, 0, 40 + round, false);
      w.byte(1);
      w.copyTo(30 + round);
      w.byte(2);
      expect([...w.result()]).toEqual([1, ...src.subarray(0, 30 + round), 2]);
    }
  });

  it('hands out slab slices that later outputs never overwrite, and outgrows the slab intact', () => {
    const src = Buffer.from(Array.from({ length: 20_000 }, (_, i) => (i * 13 + 1) & 255));
    const kept: [Buffer, number[]][] = [];
    for (let round = 0; round < 3000; round++) {
      const length = 1 + ((round * 37) % 300);
      const from = round % 1000;
      // Now and then an output far beyond the capacity it announced, to leave the slab.
      const extra = round % 97 === 0 ? 9000 : 0;
      const w = new OutputWriter(src, from, length + 8, false);
      w.byte(round & 255);
      w.copyTo(from + length + extra);
      if (round % 5 === 0) continue; // abandoned: its bytes belong to no result
      const out = w.result();
      kept.push([out, [round & 255, ...src.subarray(from, from + length + extra)]]);
    }
    for (const [out, expected] of kept) expect([...out]).toEqual(expected);
  });
});
