import { describe, expect, it } from 'vitest';
import { isPortcullisError, PortcullisError } from '@portcullis/core';
import { compileRowPlan, rewriteDataRows, type RowPlanSpec } from '@portcullis/masking';
import { MaskingPool, type MaskChunkJob, type MaskChunkResult } from './masking-pool.js';
import { OrderedMaskQueue, type MaskRunner } from './ordered-mask-queue.js';

/** A runner whose jobs finish when the test says, in any order. */
class ManualRunner implements MaskRunner {
  readonly calls: {
    job: MaskChunkJob;
    resolve: (r: MaskChunkResult) => void;
    reject: (e: unknown) => void;
  }[] = [];

  run(job: MaskChunkJob): Promise<MaskChunkResult> {
    return new Promise((resolve, reject) => this.calls.push({ job, resolve, reject }));
  }

  /** Finishes job `i` with its range upper-cased as the "masked" output. */
  finish(i: number, consumed?: number): void {
    const { job, resolve } = this.calls[i]!;
    const out = Buffer.from(job.chunk.subarray(job.start, job.end).toString().toUpperCase());
    resolve({
      chunk: job.chunk,
      output: out,
      consumed: consumed ?? job.end,
      frames: 1,
      rewrittenFrames: 1,
      maskedValues: 1,
      maskedColumns: [0],
    });
  }

  /** Finishes job `i` with no change. */
  unchanged(i: number): void {
    const { job, resolve } = this.calls[i]!;
    resolve({
      chunk: job.chunk,
      output: null,
      consumed: job.end,
      frames: 1,
      rewrittenFrames: 0,
      maskedValues: 0,
      maskedColumns: [],
    });
  }
}

function job(text: string, start = 0, end = text.length): MaskChunkJob {
  return {
    kind: 'rows',
    planId: 'p',
    spec: { actions: [] },
    chunk: Buffer.from(text),
    start,
    end,
  };
}

const tick = () => new Promise<void>((resolve) => setImmediate(resolve));

function setup(highWaterMark = 1000) {
  const runner = new ManualRunner();
  const out: string[] = [];
  const results: (MaskChunkResult | null)[] = [];
  const errors: PortcullisError[] = [];
  let drains = 0;
  const queue = new OrderedMaskQueue({
    runner,
    highWaterMark,
    onOutput: (data, masked) => {
      out.push(data.toString());
      results.push(masked);
    },
    onError: (err) => errors.push(err),
    onDrain: () => drains++,
  });
  return { runner, queue, out, results, errors, drains: () => drains };
}

describe('OrderedMaskQueue', () => {
  it('emits outputs in submission order when jobs finish out of order', async () => {
    const { runner, queue, out, results } = setup();
    queue.passThrough(Buffer.from('<head>'));
    queue.mask(job('one'));
    queue.passThrough(Buffer.from('|'));
    queue.mask(job('two'));
    queue.mask(job('three'));
    queue.passThrough(Buffer.from('<tail>'));
    // Nothing ahead of the first pass-through: it went out at once.
    expect(out).toEqual(['<head>']);

    runner.finish(2);
    await tick();
    expect(out).toEqual(['<head>']);
    runner.finish(1);
    await tick();
    expect(out).toEqual(['<head>']);
    runner.unchanged(0);
    await tick();
    // Job 0 changed nothing: its own bytes go out.
    expect(out).toEqual(['<head>', 'one', '|', 'TWO', 'THREE', '<tail>']);
    expect(results.map((r) => r?.maskedValues ?? null)).toEqual([null, 0, null, 1, 1, null]);
    expect(queue.pending).toBe(0);
    expect(queue.size).toBe(0);
  });

  it('emits only the job range of the chunk', async () => {
    const { runner, queue, out } = setup();
    queue.mask(job('xxabcyy', 2, 5));
    runner.unchanged(0);
    queue.mask(job('xxabcyy', 2, 5));
    runner.finish(1);
    await tick();
    expect(out).toEqual(['abc', 'ABC']);
  });

  it('counts pending bytes, asks for a pause past the high-water mark, and drains at half', async () => {
    const { runner, queue, drains } = setup(10);
    expect(queue.mask(job('12345'))).toBe(true);
    expect(queue.pending).toBe(5);
    expect(queue.mask(job('123456'))).toBe(false);
    expect(queue.pending).toBe(11);
    expect(queue.passThrough(Buffer.from('abc'))).toBe(false);
    expect(queue.pending).toBe(14);
    runner.finish(1);
    await tick();
    expect(queue.pending).toBe(14);
    runner.finish(0);
    await tick();
    // Both jobs and the pass-through are out.
    expect(queue.pending).toBe(0);
    expect(drains()).toBe(1);
    // No drain without a refused push.
    queue.mask(job('1'));
    runner.finish(2);
    await tick();
    expect(drains()).toBe(1);
  });

  it('does not drain while pending bytes are above half the mark', async () => {
    const { runner, queue, drains } = setup(10);
    queue.mask(job('1234'));
    queue.mask(job('12345678'));
    runner.finish(0);
    await tick();
    expect(queue.pending).toBe(8);
    expect(drains()).toBe(0);
    runner.finish(1);
    await tick();
    expect(drains()).toBe(1);
  });

  it('on a failed job: emits what came before, reports once, drops everything after', async () => {
    const { runner, queue, out, errors } = setup();
    queue.mask(job('one'));
    queue.mask(job('two'));
    queue.passThrough(Buffer.from('|'));
    queue.mask(job('three'));
    runner.calls[1]!.reject(new PortcullisError('PCL_ERR_MASKING_FAILED', 'worker exited'));
    await tick();
    // Not reported before the jobs ahead of it are out.
    expect(errors).toEqual([]);
    expect(queue.failed).toBe(true);
    // Pushes after the failure are refused and start nothing.
    expect(queue.mask(job('four'))).toBe(false);
    expect(queue.passThrough(Buffer.from('late'))).toBe(false);
    expect(runner.calls.length).toBe(3);

    runner.finish(2);
    runner.finish(0);
    await tick();
    expect(out).toEqual(['ONE']);
    expect(errors.length).toBe(1);
    expect(errors[0]!.message).toBe('worker exited');
    expect(queue.pending).toBe(0);
    expect(queue.size).toBe(0);
  });

  it('reports a non-Portcullis rejection as a masking error', async () => {
    const { runner, queue, errors } = setup();
    queue.mask(job('one'));
    runner.calls[0]!.reject(new Error('boom'));
    await tick();
    expect(errors.length).toBe(1);
    expect(isPortcullisError(errors[0], 'PCL_ERR_MASKING_FAILED')).toBe(true);
  });

  it('fails when a job stops short of its range (a frame it does not handle)', async () => {
    const { runner, queue, out, errors } = setup();
    queue.mask(job('abcdef'));
    queue.passThrough(Buffer.from('after'));
    runner.finish(0, 3);
    await tick();
    expect(out).toEqual([]);
    expect(errors.length).toBe(1);
    expect(errors[0]!.message).toMatch(/stopped at byte 3/);
  });

  it('fails rather than emit a pass-through buffer whose memory was transferred away', async () => {
    const { runner, queue, out, errors } = setup();
    const memory = new ArrayBuffer(8);
    const pass = Buffer.from(memory, 0, 4);
    queue.mask(job('one'));
    queue.passThrough(pass);
    structuredClone(memory, { transfer: [memory] });
    runner.finish(0);
    await tick();
    expect(out).toEqual(['ONE']);
    expect(errors.length).toBe(1);
    expect(errors[0]!.message).toMatch(/emptied/);
  });

  it('stops and reports once when onOutput throws', async () => {
    const runner = new ManualRunner();
    const errors: PortcullisError[] = [];
    let calls = 0;
    const queue = new OrderedMaskQueue({
      runner,
      highWaterMark: 100,
      onOutput: () => {
        calls++;
        throw new Error('socket gone');
      },
      onError: (err) => errors.push(err),
    });
    queue.passThrough(Buffer.from('a'));
    queue.passThrough(Buffer.from('b'));
    expect(calls).toBe(1);
    expect(errors.length).toBe(1);
  });

  it('reports a runner that throws synchronously', async () => {
    const errors: PortcullisError[] = [];
    const queue = new OrderedMaskQueue({
      runner: {
        run: () => {
          throw new RangeError('bad range');
        },
      },
      highWaterMark: 100,
      onOutput: () => {},
      onError: (err) => errors.push(err),
    });
    queue.mask(job('x'));
    await tick();
    expect(errors.length).toBe(1);
    expect(errors[0]!.message).toMatch(/bad range/);
  });

  it('destroy drops everything without reporting', async () => {
    const { runner, queue, out, errors } = setup();
    queue.mask(job('one'));
    queue.destroy();
    runner.finish(0);
    await tick();
    expect(out).toEqual([]);
    expect(errors).toEqual([]);
    expect(queue.mask(job('two'))).toBe(false);
  });

  it('keeps order with a real pool and chunks of very different sizes', async () => {
    const spec: RowPlanSpec = { actions: [{ kind: 'redact' }] };
    const row = (v: string): Buffer => {
      const out = Buffer.alloc(11 + v.length);
      out.write('D', 0);
      out.writeInt32BE(10 + v.length, 1);
      out.writeInt16BE(1, 5);
      out.writeInt32BE(v.length, 7);
      out.write(v, 11);
      return out;
    };
    const chunk = (n: number, tag: string): Buffer => {
      const bytes = Buffer.concat(Array.from({ length: n }, (_, i) => row(`${tag}-${i}`)));
      const own = Buffer.from(new ArrayBuffer(bytes.length));
      bytes.copy(own);
      return own;
    };
    const plan = compileRowPlan(spec);
    const pool = new MaskingPool({ threads: 2, taskTimeoutMs: 5000 });
    try {
      const expected: Buffer[] = [];
      const got: Buffer[] = [];
      let done!: () => void;
      const finished = new Promise<void>((resolve) => (done = resolve));
      const queue = new OrderedMaskQueue({
        runner: pool,
        highWaterMark: 1 << 30,
        onOutput: (data) => {
          got.push(Buffer.from(data));
          if (got.length === expected.length) done();
        },
        onError: (err) => {
          throw err;
        },
      });
      for (let i = 0; i < 12; i++) {
        const c = chunk(i % 3 === 0 ? 4000 : 3, `c${i}`);
        expected.push(rewriteDataRows(c, 0, c.length, plan).output!);
        queue.mask({ kind: 'rows', planId: 'q', spec, chunk: c, start: 0, end: c.length });
        const pass = Buffer.from(`pass-${i}`);
        expected.push(pass);
        queue.passThrough(pass);
      }
      await finished;
      expect(got.length).toBe(expected.length);
      for (let i = 0; i < expected.length; i++) expect(got[i]!.equals(expected[i]!)).toBe(true);
    } finally {
      await pool.close();
    }
  });
});
