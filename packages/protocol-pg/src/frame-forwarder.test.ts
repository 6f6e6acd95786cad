import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { FrameForwarder } from './frame-forwarder.js';

function frame(type: number, body: Uint8Array): Buffer {
  const out = Buffer.alloc(5 + body.length);
  out[0] = type;
  out.writeInt32BE(4 + body.length, 1);
  out.set(body, 5);
  return out;
}

const frames = fc.array(
  fc.record({
    type: fc.integer({ min: 0x41, max: 0x5a }),
    body: fc.uint8Array({ maxLength: 300 }),
  }),
  { maxLength: 40 },
);
const cuts = fc.array(fc.nat(), { maxLength: 20 });

/** Pushes `stream` split at `at` and returns everything forwarded. */
function forward(stream: Buffer, at: number[], replace: (type: number) => Buffer | null): Buffer {
  const forwarder = new FrameForwarder(
    { onFrame: (type) => replace(type) },
    { maxFrameBytes: 1 << 20 },
  );
  const points = [...new Set(at.map((n) => n % (stream.length + 1)))].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let last = 0;
  for (const point of [...points, stream.length]) {
    forwarder.push(stream.subarray(last, point), out);
    last = point;
  }
  expect(forwarder.atBoundary).toBe(true);
  return Buffer.concat(out);
}

describe('FrameForwarder', () => {
  it('forwards any stream unchanged under any chunking', () => {
    fc.assert(
      fc.property(frames, cuts, (list, at) => {
        const stream = Buffer.concat(list.map((f) => frame(f.type, f.body)));
        expect(forward(stream, at, () => null).equals(stream)).toBe(true);
      }),
    );
  });

  it('replaces exactly the frames the handler replaces, in place, under any chunking', () => {
    const replacement = frame(0x58, Buffer.from('replaced'));
    fc.assert(
      fc.property(frames, cuts, fc.integer({ min: 0x41, max: 0x5a }), (list, at, victim) => {
        const stream = Buffer.concat(list.map((f) => frame(f.type, f.body)));
        const expected = Buffer.concat(
          list.map((f) => (f.type === victim ? replacement : frame(f.type, f.body))),
        );
        expect(
          forward(stream, at, (type) => (type === victim ? replacement : null)).equals(expected),
        ).toBe(true);
      }),
    );
  });

  it('holds back a frame until it is complete, and hands out the chunk itself when it can', () => {
    const a = frame(0x51, Buffer.from('SELECT 1\0'));
    const b = frame(0x51, Buffer.from('SELECT 2\0'));
    const forwarder = new FrameForwarder({ onFrame: () => null }, { maxFrameBytes: 1024 });
    const out: Buffer[] = [];
    const first = Buffer.concat([a, b.subarray(0, 7)]);
    forwarder.push(first, out);
    expect(out).toHaveLength(1);
    expect(out[0]!.equals(a)).toBe(true);
    expect(out[0]!.buffer).toBe(first.buffer); // a view, not a copy
    const whole = Buffer.concat([a]);
    out.length = 0;
    forwarder.push(b.subarray(7), out);
    forwarder.push(whole, out);
    expect(Buffer.concat(out).equals(Buffer.concat([b, a]))).toBe(true);
    expect(out[1]).toBe(whole);
  });
});
