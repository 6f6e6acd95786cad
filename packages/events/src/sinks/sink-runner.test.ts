import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Spool } from '../spool/spool.js';
import { SpoolReadRecord, type SpoolRecord } from '../spool/spool-reader.js';
import { SinkRunner, type BatchSink } from './sink-runner.js';

const dirs: string[] = [];
afterEach(async () => {
  for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
});

async function openSpool(): Promise<{ spool: Spool; dir: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'portcullis-sink-runner-'));
  dirs.push(dir);
  return { spool: await Spool.open({ dir, batchDelayMs: 1 }), dir };
}

/** A sink that stores payloads and fails while `down` is set. */
function recordingSink(name: string) {
  const stored: string[] = [];
  const state = { down: false, attempts: 0, closed: false };
  const sink: BatchSink = {
    name,
    async deliver(records: readonly SpoolRecord[]) {
      state.attempts++;
      if (state.down) throw new Error('sink unavailable');
      for (const r of records) stored.push(r.payload.toString('utf8'));
    },
    async close() {
      state.closed = true;
    },
  };
  return { sink, stored, state };
}

async function until(check: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe('SinkRunner', () => {
  it('with lingerMs, records that trickle in shortly after a delivery go together in the next', async () => {
    const { spool } = await openSpool();
    const sizes: number[] = [];
    const stored: string[] = [];
    const sink: BatchSink = {
      name: 'bulk',
      async deliver(records: readonly SpoolRecord[]) {
        sizes.push(records.length);
        for (const r of records) stored.push(r.payload.toString('utf8'));
      },
      async close() {},
    };
    const runner = new SinkRunner(spool, sink, { lingerMs: 1_000 });
    await runner.start();
    const append = async (from: number) => {
      for (let i = from; i < from + 5; i++) spool.append(`event ${i}`);
      await spool.flush();
    };
    await append(0);
    await until(() => stored.length === 5);
    // Two small flushes inside the linger after that delivery: one delivery takes both.
    await append(5);
    await new Promise((r) => setTimeout(r, 20));
    await append(10);
    await until(() => stored.length === 15);
    expect(sizes).toEqual([5, 10]);
    expect(stored).toEqual(Array.from({ length: 15 }, (_, i) => `event ${i}`));
    // Stopping does not wait out a linger: what was read is delivered, the rest stays spooled.
    await append(15);
    await new Promise((r) => setTimeout(r, 20));
    await runner.stop();
    expect(stored.length).toBeGreaterThanOrEqual(15);
    await spool.close();
  });

  it('with alignBatches, a backlog is delivered in batches that end at multiples of maxRecords', async () => {
    const { spool } = await openSpool();
    for (let i = 0; i < 57; i++) spool.append(JSON.stringify({ i }));
    await spool.flush();
    const batches: [number, number][] = [];
    const sink: BatchSink = {
      name: 'aligned',
      async deliver(records: readonly SpoolRecord[]) {
        batches.push([records[0]!.sequence, records.at(-1)!.sequence]);
      },
      async close() {},
    };
    // Reads of 3 records (readBytes), joined up to the next multiple of 10.
    const runner = new SinkRunner(spool, sink, {
      maxRecords: 10,
      readBytes: 30,
      lingerMs: 50,
      alignBatches: true,
    });
    await runner.start();
    await until(() => runner.stats.lagRecords === 0);
    await runner.stop();
    await spool.close();
    const first = batches[0]![0];
    expect(batches.flatMap(([a, b]) => [a, b])).toEqual(
      Array.from({ length: batches.length }, (_, k) => {
        const start = k === 0 ? first : Math.floor(first / 10) * 10 + k * 10;
        const end = Math.min(Math.floor(first / 10) * 10 + (k + 1) * 10 - 1, first + 56);
        return [start, end];
      }).flat(),
    );
  });

  it('with maxInFlight 2, delivers the next batch while one is stored, and acknowledges in order', async () => {
    const { spool } = await openSpool();
    for (let i = 0; i < 20; i++) spool.append(JSON.stringify({ i }));
    await spool.flush();
    const started: number[] = [];
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const sink: BatchSink = {
      name: 'parallel',
      async deliver(records: readonly SpoolRecord[]) {
        started.push(records[0]!.sequence);
        if (started.length === 1) await gate;
      },
      async close() {},
    };
    const runner = new SinkRunner(spool, sink, {
      maxRecords: 10,
      maxInFlight: 2,
      ackIntervalMs: 0,
    });
    await runner.start();
    await until(() => started.length === 2);
    // The second batch is stored, the first is not: nothing may be acknowledged yet.
    await new Promise((r) => setTimeout(r, 50));
    expect(spool.consumers().get('parallel') ?? 0).toBe(0);
    release();
    await until(() => runner.stats.lagRecords === 0);
    expect(runner.stats.delivered).toBe(20);
    await runner.stop();
    await spool.close();
  });

  it('delivers every record in order and acknowledges it', async () => {
    const { spool } = await openSpool();
    const { sink, stored, state } = recordingSink('test');
    const runner = new SinkRunner(spool, sink);
    await runner.start();
    for (let i = 0; i < 500; i++) spool.append(`event ${i}`);
    await spool.flush();
    await until(() => stored.length === 500);
    expect(stored).toEqual(Array.from({ length: 500 }, (_, i) => `event ${i}`));
    await until(() => runner.stats.lagRecords === 0);
    await runner.stop();
    expect(state.closed).toBe(true);
    await spool.close();
  });

  it('for a sink that keeps no records, reuses read memory only after a delivery settles', async () => {
    const { spool } = await openSpool();
    // 40 records of 1 KiB a 16 KiB read, 20 a delivery, two in flight, the third read ahead.
    const text = (i: number): string => `${i}:`.padEnd(1000, 'x');
    for (let i = 0; i < 2_000; i++) spool.append(text(i));
    await spool.flush();
    const memories = new Set<ArrayBufferLike>();
    const stored = new Map<number, string>();
    let failures = 0;
    const sink: BatchSink = {
      name: 'keeps-none',
      keepsNoRecords: true,
      async deliver(records) {
        const memory = (records[0] as SpoolReadRecord).buffer.buffer;
        // A failed delivery too: its records are delivered again from the same memory.
        if (records[0]!.sequence % 400 === 1 && failures++ % 2 === 0) throw new Error('once');
        memories.add(memory);
        // Reads go on meanwhile; what they overwrote would show below.
        await new Promise((resolve) => setTimeout(resolve, 2));
        for (const r of records) stored.set(r.sequence, r.payload.toString());
      },
      async close() {},
    };
    const runner = new SinkRunner(spool, sink, {
      maxRecords: 20,
      readBytes: 16 * 1024,
      maxInFlight: 2,
      retryDelayMs: 1,
    });
    await runner.start();
    await until(() => runner.stats.delivered === 2_000);
    // (Two in flight finish in any order.)
    expect([...stored].sort(([a], [b]) => a - b)).toEqual(
      Array.from({ length: 2_000 }, (_, i) => [i + 1, text(i)]),
    );
    expect(failures).toBeGreaterThan(0);
    // Fifty reads of 16 KiB in a handful of buffers.
    expect(memories.size).toBeLessThan(15);
    await runner.stop();
    await spool.close();
  });

  it('keeps events on disk while the sink is down and drains them when it returns', async () => {
    const { spool } = await openSpool();
    const { sink, stored, state } = recordingSink('flaky');
    state.down = true;
    const runner = new SinkRunner(spool, sink, { retryDelayMs: 5, maxRetryDelayMs: 20 });
    await runner.start();
    for (let i = 0; i < 50; i++) spool.append(`e${i}`);
    await spool.flush();
    await until(() => state.attempts >= 3);
    expect(stored).toEqual([]);
    expect(runner.stats.lastError).toBe('sink unavailable');
    expect(runner.stats.lagRecords).toBe(50);
    state.down = false;
    await until(() => stored.length === 50);
    expect(stored).toEqual(Array.from({ length: 50 }, (_, i) => `e${i}`));
    await until(() => runner.stats.lagRecords === 0 && runner.stats.lastError === null);
    expect(runner.stats.delivered).toBe(50);
    await runner.stop();
    await spool.close();
  });

  it('redelivers what was not acknowledged after a restart (at least once)', async () => {
    const { spool, dir } = await openSpool();
    const first = recordingSink('restart');
    first.state.down = true;
    const runner = new SinkRunner(spool, first.sink, { retryDelayMs: 5 });
    await runner.start();
    for (let i = 0; i < 10; i++) spool.append(`r${i}`);
    await spool.flush();
    await until(() => first.state.attempts >= 1);
    await runner.stop();
    await spool.close();

    const reopened = await Spool.open({ dir, batchDelayMs: 1 });
    const second = recordingSink('restart');
    const again = new SinkRunner(reopened, second.sink);
    await again.start();
    await until(() => second.stored.length === 10);
    expect(second.stored[0]).toBe('r0');
    await again.stop();
    await reopened.close();
  });
});
