import { isPortcullisError, PortcullisError } from '@portcullis/core';
import fc from 'fast-check';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { FrameScanner, type FrameHandler, type FrameScannerOptions } from './frame-scanner.js';

interface Seen {
  readonly type: number;
  /** The buffer handed out (identity matters: views must be the pushed chunk). */
  readonly buf: Buffer;
  readonly start: number;
  readonly end: number;
  readonly length: number;
  /** A copy of `buf[start, end)` taken during the call, when views are still valid. */
  readonly bytes: Buffer;
}

function frame(type: number, body: Uint8Array | string = ''): Buffer {
  const bytes = typeof body === 'string' ? Buffer.from(body) : Buffer.from(body);
  const out = Buffer.alloc(5 + bytes.length);
  out[0] = type;
  out.writeInt32BE(4 + bytes.length, 1);
  bytes.copy(out, 5);
  return out;
}

/** A header announcing `announced` bytes (the length field's own value, so body + 4). */
function header(type: number, announced: number): Buffer {
  const out = Buffer.alloc(5);
  out[0] = type;
  out.writeUInt32BE(announced >>> 0, 1);
  return out;
}

function collector(options: Partial<FrameScannerOptions> = {}) {
  const seen: Seen[] = [];
  const handler: FrameHandler = {
    onFrame(type, buf, start, end, length) {
      seen.push({ type, buf, start, end, length, bytes: Buffer.from(buf.subarray(start, end)) });
    },
  };
  const scanner = new FrameScanner(handler, { maxFrameBytes: 1 << 20, ...options });
  return { scanner, seen };
}

function codeOf(fn: () => void): string {
  try {
    fn();
  } catch (err) {
    return isPortcullisError(err) ? err.code : `not a PortcullisError: ${String(err)}`;
  }
  return 'no error';
}

afterEach(() => {
  vi.restoreAllMocks();
});

describe('FrameScanner: whole chunks', () => {
  it('reports each frame with its type and body as a view of the chunk', () => {
    const chunk = Buffer.concat([
      frame(0x54, 'row description'),
      frame(0x44, 'data row 1'),
      frame(0x44, ''),
      frame(0x43, 'SELECT 2\0'),
      frame(0x5a, 'I'),
    ]);
    const { scanner, seen } = collector();
    scanner.push(chunk);
    expect(seen.map((f) => [String.fromCharCode(f.type), f.bytes.toString()])).toEqual([
      ['T', 'row description'],
      ['D', 'data row 1'],
      ['D', ''],
      ['C', 'SELECT 2\0'],
      ['Z', 'I'],
    ]);
    for (const f of seen) {
      expect(f.buf).toBe(chunk); // a view, not a copy
      expect(f.end - f.start).toBe(f.length);
    }
    expect(seen[0]!.start).toBe(5);
    expect(seen[1]!.start).toBe(5 + 15 + 5);
    expect(scanner.atBoundary).toBe(true);
  });

  it('accepts every type byte, an empty push and a body of exactly maxFrameBytes', () => {
    const { scanner, seen } = collector({ maxFrameBytes: 3 });
    scanner.push(Buffer.alloc(0));
    scanner.push(Buffer.concat([frame(0, 'abc'), frame(255, ''), frame(0x44, 'xyz')]));
    expect(seen.map((f) => f.type)).toEqual([0, 255, 0x44]);
    expect(codeOf(() => scanner.push(frame(0x44, 'abcd')))).toBe(
      'PCL_ERR_PROTOCOL_FRAME_TOO_LARGE',
    );
  });

  it('copies only spanning bodies whose type is in assemble', () => {
    const big = frame(0x45, 'error body that spans');
    const skipped = frame(0x44, 'data row that spans');
    const { scanner, seen } = collector({ assemble: [0x45] });
    scanner.push(big.subarray(0, 10));
    expect(scanner.atBoundary).toBe(false);
    scanner.push(Buffer.concat([big.subarray(10), skipped.subarray(0, 12)]));
    scanner.push(skipped.subarray(12));
    expect(scanner.atBoundary).toBe(true);
    expect(seen).toHaveLength(2);
    expect(seen[0]!.bytes.toString()).toBe('error body that spans');
    expect(seen[0]!.start).toBe(0);
    expect(seen[0]!.length).toBe(21);
    expect(seen[1]!.type).toBe(0x44);
    expect(seen[1]!.buf.length).toBe(0);
    expect([seen[1]!.start, seen[1]!.end]).toEqual([0, 0]);
    expect(seen[1]!.length).toBe(19);
  });

  it('hands out a view when only the header came in an earlier chunk', () => {
    const f = frame(0x44, 'body in the next chunk');
    for (const cut of [1, 4, 5]) {
      const { scanner, seen } = collector();
      scanner.push(f.subarray(0, cut));
      expect(scanner.atBoundary).toBe(false);
      const rest = Buffer.concat([f.subarray(cut), frame(0x5a, 'I')]);
      scanner.push(rest);
      expect(seen[0]!.buf).toBe(rest);
      expect(seen[0]!.bytes.toString()).toBe('body in the next chunk');
      expect(seen[0]!.start).toBe(5 - cut);
      expect(seen[1]!.type).toBe(0x5a);
      expect(scanner.atBoundary).toBe(true);
    }
  });

  it('keeps a complete header across an empty push', () => {
    const f = frame(0x44, 'abc');
    const { scanner, seen } = collector();
    scanner.push(f.subarray(0, 5));
    scanner.push(Buffer.alloc(0));
    expect(scanner.atBoundary).toBe(false);
    const rest = f.subarray(5);
    scanner.push(rest);
    expect(seen).toHaveLength(1);
    expect(seen[0]!.buf).toBe(rest);
    expect(seen[0]!.bytes.toString()).toBe('abc');
  });
});

describe('FrameScanner: bad lengths and failure', () => {
  it.each([0, 1, 3, -1, -4, 0x80000000])('rejects announced length %i as malformed', (len) => {
    const { scanner } = collector();
    expect(codeOf(() => scanner.push(header(0x44, len)))).toBe('PCL_ERR_PROTOCOL_MALFORMED');
  });

  it('rejects a malformed length arriving in pieces', () => {
    const { scanner } = collector();
    const h = header(0x44, 2);
    scanner.push(h.subarray(0, 2));
    expect(codeOf(() => scanner.push(h.subarray(2)))).toBe('PCL_ERR_PROTOCOL_MALFORMED');
  });

  it.each([
    ['in one chunk', [5]],
    ['with the header split', [1, 3, 1]],
    ['with body bytes after it', [0]],
  ])('rejects a huge announced length before allocating (%s)', (_name, cuts) => {
    const stream = Buffer.concat([frame(0x5a, 'I'), header(0x44, 0x7fffffff), Buffer.alloc(8)]);
    const { scanner } = collector({ maxFrameBytes: 1024, assemble: [0x44] });
    const allocUnsafe = vi.spyOn(Buffer, 'allocUnsafe');
    const alloc = vi.spyOn(Buffer, 'alloc');
    const allocUnsafeSlow = vi.spyOn(Buffer, 'allocUnsafeSlow');
    let pos = 6; // the ReadyForQuery frame goes first, alone
    scanner.push(stream.subarray(0, pos));
    let code = 'no error';
    for (const cut of [...cuts, stream.length]) {
      const next = Math.min(pos + (cut === 0 ? stream.length : cut), stream.length);
      code = codeOf(() => scanner.push(stream.subarray(pos, next)));
      pos = next;
      if (code !== 'no error') break;
    }
    expect(code).toBe('PCL_ERR_PROTOCOL_FRAME_TOO_LARGE');
    for (const spy of [allocUnsafe, alloc, allocUnsafeSlow]) expect(spy).not.toHaveBeenCalled();
  });

  it('allocates exactly the body size for an assembled frame under the limit', () => {
    const { scanner } = collector({ maxFrameBytes: 1024, assemble: [0x44] });
    const start = frame(0x44, 'x'.repeat(700)).subarray(0, 100);
    const allocUnsafe = vi.spyOn(Buffer, 'allocUnsafe');
    scanner.push(start);
    expect(allocUnsafe.mock.calls).toEqual([[700]]);
  });

  it('refuses every push after a failure, citing the first error', () => {
    const { scanner } = collector({ maxFrameBytes: 10 });
    let first: unknown;
    try {
      scanner.push(header(0x44, 1000));
    } catch (err) {
      first = err;
    }
    expect(isPortcullisError(first, 'PCL_ERR_PROTOCOL_FRAME_TOO_LARGE')).toBe(true);
    for (const chunk of [frame(0x5a, 'I'), Buffer.alloc(0)]) {
      let err: unknown;
      try {
        scanner.push(chunk);
      } catch (e) {
        err = e;
      }
      expect(isPortcullisError(err, 'PCL_ERR_PROTOCOL_SCANNER_FAILED')).toBe(true);
      expect((err as PortcullisError).cause).toBe(first);
    }
  });

  it.each([
    ['a frame in the chunk', [frame(0x44, 'abc')]],
    [
      'an assembled spanning frame',
      [frame(0x45, 'abcdef').subarray(0, 7), frame(0x45, 'abcdef').subarray(7)],
    ],
    [
      'a frame whose header was split',
      [frame(0x44, 'abc').subarray(0, 2), frame(0x44, 'abc').subarray(2)],
    ],
  ])('is poisoned by a handler that throws on %s', (_name, chunks) => {
    const boom = new Error('handler failed');
    const scanner = new FrameScanner(
      {
        onFrame() {
          throw boom;
        },
      },
      { maxFrameBytes: 100, assemble: [0x45] },
    );
    for (const chunk of chunks.slice(0, -1)) scanner.push(chunk);
    expect(() => scanner.push(chunks.at(-1)!)).toThrow(boom);
    let err: unknown;
    try {
      scanner.push(frame(0x5a, 'I'));
    } catch (e) {
      err = e;
    }
    expect(isPortcullisError(err, 'PCL_ERR_PROTOCOL_SCANNER_FAILED')).toBe(true);
    const cause = (err as PortcullisError).cause;
    expect(isPortcullisError(cause, 'PCL_ERR_PROTOCOL_MALFORMED')).toBe(true);
    expect((cause as PortcullisError).cause).toBe(boom);
  });
});

// ---------------------------------------------------------------------------------------------
// Property tests.

interface FrameSpec {
  readonly type: number;
  readonly body: Buffer;
}

/** Bodies from 0 to ~3000 bytes, filled from a seed (much faster than byte-wise arbitraries). */
const frameSpec: fc.Arbitrary<FrameSpec> = fc
  .record({
    type: fc.integer({ min: 0, max: 255 }),
    length: fc.oneof(
      { arbitrary: fc.integer({ min: 0, max: 8 }), weight: 3 },
      { arbitrary: fc.integer({ min: 0, max: 300 }), weight: 2 },
      { arbitrary: fc.integer({ min: 0, max: 3000 }), weight: 1 },
    ),
    seed: fc.integer(),
  })
  .map(({ type, length, seed }) => {
    const body = Buffer.allocUnsafe(length);
    let x = seed | 1;
    for (let i = 0; i < length; i++) {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      body[i] = x & 0xff;
    }
    return { type, body };
  });

interface Layout {
  readonly stream: Buffer;
  readonly frames: readonly FrameSpec[];
  /** Offset of each frame's first byte, then the stream's length. */
  readonly boundaries: readonly number[];
}

function layout(frames: readonly FrameSpec[]): Layout {
  const parts = frames.map((f) => frame(f.type, f.body));
  const boundaries = [0];
  for (const p of parts) boundaries.push(boundaries.at(-1)! + p.length);
  return { stream: Buffer.concat(parts), frames, boundaries };
}

/** Cuts `stream` at the given offsets (any order, duplicates give empty chunks). */
function cut(stream: Buffer, offsets: readonly number[]): Buffer[] {
  const sorted = offsets.map((o) => o % (stream.length + 1)).sort((a, b) => a - b);
  const chunks: Buffer[] = [];
  let pos = 0;
  for (const o of [...sorted, stream.length]) {
    chunks.push(stream.subarray(pos, o));
    pos = o;
  }
  return chunks;
}

function fixedChunks(stream: Buffer, size: number): Buffer[] {
  const chunks: Buffer[] = [];
  for (let pos = 0; pos < stream.length; pos += size) chunks.push(stream.subarray(pos, pos + size));
  return chunks;
}

/**
 * Scans `chunks` and checks every reported frame against the stream's layout: type, length,
 * a view of the right chunk when the body lies within one chunk, a copy when it spans and its
 * type is assembled, an empty body otherwise; and `atBoundary` after every push.
 */
function scanAndCheck(l: Layout, chunks: readonly Buffer[], assemble: ReadonlySet<number>) {
  const { scanner, seen } = collector({ maxFrameBytes: 4000, assemble });
  const chunkStarts: number[] = [];
  let offset = 0;
  for (const chunk of chunks) {
    chunkStarts.push(offset);
    scanner.push(chunk);
    offset += chunk.length;
    expect(scanner.atBoundary).toBe(l.boundaries.includes(offset));
  }
  expect(seen).toHaveLength(l.frames.length);
  l.frames.forEach((f, i) => {
    const s = seen[i]!;
    expect(s.type).toBe(f.type);
    expect(s.length).toBe(f.body.length);
    const bodyStart = l.boundaries[i]! + 5;
    const bodyEnd = bodyStart + f.body.length;
    // The chunk holding the body's first byte (for an empty body, any chunk will do).
    const c = chunkStarts.findLastIndex((start, k) => start <= bodyStart && chunks[k]!.length > 0);
    const inOneChunk =
      f.body.length === 0 || (c !== -1 && bodyEnd <= chunkStarts[c]! + chunks[c]!.length);
    if (inOneChunk) {
      expect(s.bytes.equals(f.body)).toBe(true);
      if (f.body.length > 0) {
        expect(s.buf).toBe(chunks[c]);
        expect(s.start).toBe(bodyStart - chunkStarts[c]!);
      }
    } else if (assemble.has(f.type)) {
      expect(s.bytes.equals(f.body)).toBe(true);
      expect(chunks.includes(s.buf)).toBe(false);
    } else {
      expect([s.buf.length, s.start, s.end]).toEqual([0, 0, 0]);
    }
  });
  return seen;
}

const ALL_TYPES: ReadonlySet<number> = new Set(Array.from({ length: 256 }, (_, i) => i));
const frames = fc.array(frameSpec, { maxLength: 20 });
const offsets = fc.array(fc.nat(), { maxLength: 40 });

describe('FrameScanner: properties', () => {
  it('yields the same frames for any split as for a single push (all types assembled)', () => {
    fc.assert(
      fc.property(frames, offsets, (specs, cuts) => {
        const l = layout(specs);
        const whole = scanAndCheck(l, [l.stream], new Set());
        const split = scanAndCheck(l, cut(l.stream, cuts), ALL_TYPES);
        expect(split.map((f) => [f.type, f.bytes])).toEqual(whole.map((f) => [f.type, f.bytes]));
      }),
      { numRuns: 500 },
    );
  });

  it('hands out views, copies or empty bodies exactly as the chunk layout says', () => {
    fc.assert(
      fc.property(
        frames,
        offsets,
        fc.uniqueArray(fc.integer({ min: 0, max: 255 }), { maxLength: 64 }),
        (specs, cuts, assembled) => {
          const l = layout(specs);
          // Assemble some of the types that actually occur, and some that do not.
          const assemble = new Set([
            ...assembled,
            ...specs.filter((_, i) => i % 2).map((f) => f.type),
          ]);
          scanAndCheck(l, cut(l.stream, cuts), assemble);
        },
      ),
      { numRuns: 500 },
    );
  });

  it('copes with 1-byte, 2-byte, 5-byte and MTU-sized chunks', () => {
    fc.assert(
      fc.property(
        fc.array(frameSpec, { maxLength: 8 }),
        fc.constantFrom(1, 2, 5, 6, 1500),
        fc.boolean(),
        (specs, size, all) => {
          const l = layout(specs);
          scanAndCheck(l, fixedChunks(l.stream, size), all ? ALL_TYPES : new Set([0x44]));
        },
      ),
      { numRuns: 150 },
    );
  });

  it('never throws anything but a protocol PortcullisError on garbage, then stays failed', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 300 }),
        offsets,
        fc.integer({ min: 0, max: 200 }),
        fc.boolean(),
        (bytes, cuts, max, assembleAll) => {
          const scanner = new FrameScanner(
            {
              onFrame(_type, buf, start, end, length) {
                expect(length).toBeLessThanOrEqual(max);
                expect(0 <= start && start <= end && end <= buf.length).toBe(true);
                if (buf.length > 0 || length === 0) expect(end - start).toBe(length);
              },
            },
            { maxFrameBytes: max, ...(assembleAll ? { assemble: ALL_TYPES } : {}) },
          );
          let failed = false;
          for (const chunk of cut(Buffer.from(bytes), cuts)) {
            const code = codeOf(() => scanner.push(chunk));
            if (failed) {
              expect(code).toBe('PCL_ERR_PROTOCOL_SCANNER_FAILED');
            } else if (code !== 'no error') {
              expect(['PCL_ERR_PROTOCOL_MALFORMED', 'PCL_ERR_PROTOCOL_FRAME_TOO_LARGE']).toContain(
                code,
              );
              failed = true;
            }
          }
        },
      ),
      { numRuns: 1000 },
    );
  });
});

describe('FrameScanner: bytesToBoundary', () => {
  it('says how many bytes complete the frame in progress, or -1 inside its header', () => {
    const { scanner } = collector();
    const stream = Buffer.concat([frame(0x44, 'abcdefghij'), frame(0x43, 'xyz')]);
    expect(scanner.bytesToBoundary).toBe(0);
    scanner.push(stream.subarray(0, 3)); // inside the header
    expect(scanner.bytesToBoundary).toBe(-1);
    scanner.push(stream.subarray(3, 5)); // header complete, no body yet
    expect(scanner.bytesToBoundary).toBe(10);
    scanner.push(stream.subarray(5, 9)); // four body bytes
    expect(scanner.bytesToBoundary).toBe(6);
    scanner.push(stream.subarray(9, 15)); // frame complete
    expect(scanner.bytesToBoundary).toBe(0);
    expect(scanner.atBoundary).toBe(true);
    scanner.push(stream.subarray(15));
    expect(scanner.bytesToBoundary).toBe(0);
  });
});
