import { readdir } from 'node:fs/promises';
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { Spool, type SpoolCorruptionReport } from './spool.js';
import type { SpoolReader } from './spool-reader.js';
import { removeTempDirs, tempDir } from './spool-test-support.fixture.js';

afterEach(removeTempDirs);

type Op =
  | { op: 'append'; sizes: number[] }
  | { op: 'flush' }
  | { op: 'read'; consumer: number }
  | { op: 'ack'; consumer: number; pick: number }
  | { op: 'reopen' };

const CONSUMERS = ['a', 'b'] as const;

const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({
      op: fc.constant('append' as const),
      sizes: fc.array(fc.integer({ min: 0, max: 120 }), { minLength: 1, maxLength: 15 }),
    }),
  },
  { weight: 1, arbitrary: fc.constant({ op: 'flush' as const }) },
  {
    weight: 4,
    arbitrary: fc.record({ op: fc.constant('read' as const), consumer: fc.nat(1) }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      op: fc.constant('ack' as const),
      consumer: fc.nat(1),
      pick: fc.nat(),
    }),
  },
  { weight: 1, arbitrary: fc.constant({ op: 'reopen' as const }) },
);

const text = (seq: number, size: number) =>
  `${seq}:${'é'.repeat(size >> 1)}${'z'.repeat(size & 1)}`;

describe('Spool (property)', () => {
  it('delivers exactly the appended records in order per consumer, again after the last ack on reopen', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(opArb, { maxLength: 40 }),
        fc.integer({ min: 1, max: 2 }),
        async (ops, consumerCount) => {
          const dir = await tempDir();
          const reports: SpoolCorruptionReport[] = [];
          const options = {
            dir,
            segmentBytes: 600,
            maxBytes: 64 * 1024 * 1024,
            batchDelayMs: 1,
            onCorruption: (r: SpoolCorruptionReport) => reports.push(r),
          };
          let spool = await Spool.open(options);
          const model: string[] = ['']; // model[seq]
          const acked = [0, 0];
          const next = [1, 1]; // what each reader must deliver next
          const open = async () =>
            Promise.all(
              CONSUMERS.slice(0, consumerCount).map((c, i) =>
                spool.openReader(c, { maxRecords: 1 + i * 3 }),
              ),
            );
          let readers: SpoolReader[] = await open();

          const check = (i: number, got: { sequence: number; payload: Buffer }[]) => {
            for (const r of got) {
              expect(r.sequence).toBe(next[i]);
              expect(r.payload.toString('utf8')).toBe(model[r.sequence]);
              next[i]!++;
            }
          };

          for (const step of ops) {
            switch (step.op) {
              case 'append':
                for (const size of step.sizes) {
                  const seq = model.length;
                  expect(spool.append(text(seq, size))).toBe(seq);
                  model.push(text(seq, size));
                }
                break;
              case 'flush':
                await spool.flush();
                break;
              case 'read': {
                if (step.consumer >= consumerCount) break;
                const batch = await readers[step.consumer]!.poll();
                if (batch !== null) check(step.consumer, [...batch.records]);
                break;
              }
              case 'ack': {
                const i = step.consumer;
                if (i >= consumerCount) break;
                const delivered = next[i]! - 1;
                if (delivered <= acked[i]!) break;
                const to = acked[i]! + 1 + (step.pick % (delivered - acked[i]!));
                await readers[i]!.ack(to);
                acked[i] = to;
                break;
              }
              case 'reopen':
                await spool.close();
                spool = await Spool.open(options);
                readers = await open();
                next[0] = acked[0]! + 1;
                next[1] = acked[1]! + 1;
                break;
            }
          }

          // Everything appended comes out of both readers, after their positions.
          await spool.flush();
          for (let i = 0; i < consumerCount; i++) {
            for (let b = await readers[i]!.poll(); b !== null; b = await readers[i]!.poll()) {
              check(i, [...b.records]);
            }
            expect(next[i]).toBe(model.length);
          }
          expect(reports).toEqual([]);
          // Once both have acknowledged everything, only the segment being written stays.
          const last = model.length - 1;
          if (last > 0) {
            for (const reader of readers) await reader.ack(last);
          }
          const segments = (await readdir(dir)).filter((f) => f.endsWith('.seg'));
          expect(segments.length).toBe(1);
          expect(spool.lag('a')).toEqual({ records: 0, bytes: 0 });
          await spool.close();
        },
      ),
      { numRuns: 100 },
    );
  }, 60_000);
});
