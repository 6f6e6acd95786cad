import fc from 'fast-check';
import { expect } from 'vitest';
import { SpanList } from './span-list.js';

/** A detector's signature: finds in `src[start, end)` and adds spans of `kind`. */
export type Detect = (
  src: Uint8Array,
  start: number,
  end: number,
  spans: SpanList,
  kind: number,
) => void;

/** The spans `detect` finds in `src[start, end)`, as flat (kind, start, end) triples. */
export function spansOf(
  detect: Detect,
  src: Uint8Array,
  start: number,
  end: number,
  kind = 7,
): number[] {
  const spans = new SpanList();
  detect(src, start, end, spans, kind);
  return Array.from(spans.data.subarray(0, spans.length * 3));
}

/**
 * Property: `detect` finds exactly what `reference` (the plain, byte-at-a-time version it was
 * optimised from) finds, on texts joined from `parts`, cut at a few bytes from either end.
 */
export function expectSameAsReference(
  detect: Detect,
  reference: Detect,
  parts: fc.Arbitrary<string>,
  options: { maxParts: number; numRuns: number },
): void {
  const text = fc.array(parts, { maxLength: options.maxParts }).map((p) => Buffer.from(p.join('')));
  fc.assert(
    fc.property(text, fc.nat(3), fc.nat(3), (bytes, cutStart, cutEnd) => {
      const start = Math.min(cutStart, bytes.length);
      const end = Math.max(start, bytes.length - cutEnd);
      expect(spansOf(detect, bytes, start, end)).toEqual(spansOf(reference, bytes, start, end));
    }),
    { numRuns: options.numRuns },
  );
}
