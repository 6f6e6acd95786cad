import { describe, expect, it } from 'vitest';
import { FrameDecoder } from './frame-decoder.js';

function frame(body: string): Buffer {
  const bytes = Buffer.from(body);
  const out = Buffer.alloc(4 + bytes.length);
  out.writeInt32BE(bytes.length, 0);
  bytes.copy(out, 4);
  return out;
}

describe('FrameDecoder', () => {
  const stream = Buffer.concat([frame('abcd-first'), frame('efgh'), frame('ijkl-third-frame')]);

  it('yields the same frames whatever the chunk boundaries', () => {
    for (let size = 1; size <= stream.length; size++) {
      const got: string[] = [];
      const decoder = new FrameDecoder(1024, (f) => got.push(f.toString()));
      for (let at = 0; at < stream.length; at += size) decoder.push(stream.subarray(at, at + size));
      expect(got).toEqual(['abcd-first', 'efgh', 'ijkl-third-frame']);
      expect(decoder.partial).toBe(false);
    }
  });

  it('hands out views of the chunk when a frame lies within it', () => {
    const views: Buffer[] = [];
    new FrameDecoder(1024, (f) => views.push(f)).push(stream);
    expect(views[0]!.buffer).toBe(stream.buffer);
  });

  it('refuses sizes out of range before allocating, and every push after', () => {
    const sizes = [-1, 0, 3, 1025, 0x7fffffff];
    for (const size of sizes) {
      const prefix = Buffer.alloc(4);
      prefix.writeInt32BE(size, 0);
      const decoder = new FrameDecoder(1024, () => undefined);
      expect(() => decoder.push(prefix)).toThrow(/frame size/);
      expect(() => decoder.push(frame('abcd'))).toThrow(/frame size/);
    }
  });

  it('reports a frame cut short', () => {
    const decoder = new FrameDecoder(1024, () => undefined);
    decoder.push(stream.subarray(0, 7));
    expect(decoder.partial).toBe(true);
  });
});
