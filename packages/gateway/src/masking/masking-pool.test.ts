import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isPortcullisError } from '@portcullis/core';
import {
  compileCopyPlan,
  compileRowPlan,
  rewriteCopyData,
  rewriteDataRows,
  type CopyPlanSpec,
  type RowPlanSpec,
} from '@portcullis/masking';
import {
  MaskingPool,
  takeChunkMemory,
  type MaskChunkJob,
  type RowsMaskJob,
} from './masking-pool.js';

const KEY = Buffer.alloc(32, 7);

function frame(type: string, body: Buffer | string): Buffer {
  const bytes = typeof body === 'string' ? Buffer.from(body) : body;
  const out = Buffer.alloc(5 + bytes.length);
  out.write(type, 0, 'latin1');
  out.writeInt32BE(4 + bytes.length, 1);
  bytes.copy(out, 5);
  return out;
}

function dataRow(values: readonly (string | null)[]): Buffer {
  const parts: Buffer[] = [Buffer.from([values.length >> 8, values.length & 0xff])];
  for (const v of values) {
    const len = Buffer.alloc(4);
    len.writeInt32BE(v === null ? -1 : Buffer.byteLength(v));
    parts.push(len);
    if (v !== null) parts.push(Buffer.from(v));
  }
  return frame('D', Buffer.concat(parts));
}

/** `bytes` in an ArrayBuffer of its own, exactly its size: what the pool transfers. */
function owned(bytes: Buffer): Buffer {
  const out = Buffer.from(new ArrayBuffer(bytes.length));
  bytes.copy(out);
  return out;
}

const rowSpec: RowPlanSpec = {
  actions: [null, { kind: 'hash' }, { kind: 'partial' }],
  hashKey: KEY,
};

function rows(count: number): Buffer {
  const frames: Buffer[] = [];
  for (let i = 0; i < count; i++) {
    frames.push(dataRow([String(i), `person${i}@example.com`, `4111-1111-1111-${1000 + i}`]));
  }
  frames.push(frame('C', 'SELECT 3\0'), frame('Z', 'I'));
  return Buffer.concat(frames);
}

function rowsJob(chunk: Buffer, extra: Partial<MaskChunkJob> = {}): RowsMaskJob {
  return {
    planId: 'p1',
    spec: rowSpec,
    chunk,
    start: 0,
    end: chunk.length,
    ...extra,
    kind: 'rows',
  } as RowsMaskJob;
}

/** What inline masking makes of `bytes`: the reference the worker must match byte for byte. */
function inline(bytes: Buffer, spec: RowPlanSpec = rowSpec): Buffer {
  const r = rewriteDataRows(bytes, 0, bytes.length, compileRowPlan(spec));
  return r.output ?? bytes.subarray(0, r.consumed);
}

let pool: MaskingPool;
const savedHooks = process.env['PORTCULLIS_TEST_HOOKS'];

beforeAll(() => {
  // Workers copy the environment when they start: the fault hooks are on for this pool only.
  process.env['PORTCULLIS_TEST_HOOKS'] = '1';
  pool = new MaskingPool({ threads: 1, taskTimeoutMs: 3000 });
});

afterAll(async () => {
  await pool.close();
  if (savedHooks === undefined) delete process.env['PORTCULLIS_TEST_HOOKS'];
  else process.env['PORTCULLIS_TEST_HOOKS'] = savedHooks;
});

describe('MaskingPool', () => {
  it('masks DataRows in a worker exactly as inline masking does', async () => {
    const bytes = rows(50);
    const result = await pool.run(rowsJob(owned(bytes)));
    expect(result.consumed).toBe(bytes.length);
    expect(result.frames).toBe(52);
    expect(result.rewrittenFrames).toBe(50);
    expect(result.maskedValues).toBe(100);
    expect(result.maskedColumns).toEqual([1, 2]);
    expect(result.output).not.toBeNull();
    expect(result.output!.equals(inline(bytes))).toBe(true);
    expect(result.output!.includes('person7@example.com')).toBe(false);
    // The input came back as it was.
    expect(result.chunk.equals(bytes)).toBe(true);
  });

  it('transfers the chunk: the caller is detached when run() starts, the data comes back', async () => {
    const bytes = rows(20);
    const chunk = owned(bytes);
    const promise = pool.run(rowsJob(chunk));
    // Synchronously after the call, before any worker has seen the task.
    expect(chunk.buffer.byteLength).toBe(0);
    expect(chunk.length).toBe(0);
    const result = await promise;
    expect(result.chunk.equals(bytes)).toBe(true);
    expect(result.chunk.byteOffset).toBe(0);
    expect(result.chunk.buffer.byteLength).toBe(bytes.length);
    expect(result.output!.equals(inline(bytes))).toBe(true);
    // The output sits at the start of an ArrayBuffer of its own, as the worker made it.
    expect(result.output!.byteOffset).toBe(0);
    expect(result.output!.buffer).not.toBe(result.chunk.buffer);
  });

  it('detaches at once even when the task has to wait for a worker', async () => {
    const chunks = [0, 1, 2, 3].map(() => owned(rows(200)));
    const promises = chunks.map((chunk) => pool.run(rowsJob(chunk)));
    for (const chunk of chunks) expect(chunk.buffer.byteLength).toBe(0);
    for (const result of await Promise.all(promises)) {
      expect(result.output!.equals(inline(rows(200)))).toBe(true);
    }
  });

  it('copies a chunk that is a view into a larger ArrayBuffer, leaving that memory alone', async () => {
    const bytes = rows(10);
    // A socket read: the frames sit between other bytes of one shared ArrayBuffer.
    const big = Buffer.alloc(bytes.length + 200, 0xaa);
    bytes.copy(big, 100);
    const view = big.subarray(100, 100 + bytes.length);
    const result = await pool.run(rowsJob(view));
    expect(big.buffer.byteLength).toBe(bytes.length + 200);
    expect(view.equals(bytes)).toBe(true);
    expect(big[99]).toBe(0xaa);
    expect(big[100 + bytes.length]).toBe(0xaa);
    expect(result.chunk.equals(bytes)).toBe(true);
    expect(result.chunk.buffer).not.toBe(big.buffer);
    expect(result.output!.equals(inline(bytes))).toBe(true);
  });

  it("copies a Buffer from Node's pool instead of transferring the pool", async () => {
    const small = Buffer.from(dataRow(['1', 'a@example.com', '4111111111111111']));
    expect(small.buffer.byteLength).toBe(Buffer.poolSize); // pooled
    const before = Buffer.from(small);
    const result = await pool.run(rowsJob(small));
    expect(small.buffer.byteLength).toBe(Buffer.poolSize);
    expect(small.equals(before)).toBe(true);
    expect(result.output!.equals(inline(before))).toBe(true);
  });

  it('copies a chunk over a SharedArrayBuffer', () => {
    const shared = Buffer.from(new SharedArrayBuffer(8));
    shared.write('abcdefgh');
    const taken = takeChunkMemory(shared);
    expect(shared.toString()).toBe('abcdefgh');
    expect(Buffer.from(taken).toString()).toBe('abcdefgh');
    expect(taken).toBeInstanceOf(ArrayBuffer);
  });

  it('returns no output when nothing changed, and stops where rewriteDataRows stops', async () => {
    const plain = Buffer.concat([rows(3), frame('T', Buffer.alloc(2)), dataRow(['x', 'y', 'z'])]);
    const spec: RowPlanSpec = { actions: [null, null, null] };
    const result = await pool.run({ ...rowsJob(owned(plain)), spec, planId: 'nothing' });
    expect(result.output).toBeNull();
    const stop = rows(3).length; // at the RowDescription
    expect(result.consumed).toBe(stop);
    expect(result.chunk.equals(plain)).toBe(true);
  });

  it('masks a range of the chunk and reports consumed in chunk offsets', async () => {
    const bytes = Buffer.concat([frame('1', ''), rows(5)]);
    const end = bytes.length - 3;
    const result = await pool.run(rowsJob(owned(bytes), { start: 5, end }));
    // The last frame (ReadyForQuery, 6 bytes) is cut: it is left for the next chunk.
    expect(result.consumed).toBe(bytes.length - 6);
    const expected = rewriteDataRows(bytes, 5, end, compileRowPlan(rowSpec));
    expect(result.output!.equals(expected.output!)).toBe(true);
  });

  it('masks COPY text data frame by frame, leaving the header and other frames alone', async () => {
    const spec: CopyPlanSpec = {
      format: 'csv',
      actions: [null, { kind: 'redact' }],
    };
    const frames = [
      frame('d', 'id,email\n'),
      frame('d', '1,ann@example.com\n'),
      frame('d', '2,"bob, jr@example.com"\n'),
      frame('d', '3,\n'),
      frame('c', ''),
      frame('C', 'COPY 3\0'),
      frame('N', 'SWARNING\0Mcarol@example.com\0\0'),
      frame('d', '4,dan@example.com\n'),
    ];
    const bytes = Buffer.concat(frames);
    const result = await pool.run({
      kind: 'copy',
      planId: 'copy-1',
      spec,
      header: true,
      chunk: owned(bytes),
      start: 0,
      end: bytes.length,
    });
    // Stops at the notice: its own rewriter must handle it.
    const noticeAt = Buffer.concat(frames.slice(0, 6)).length;
    expect(result.consumed).toBe(noticeAt);
    expect(result.frames).toBe(6);
    expect(result.rewrittenFrames).toBe(2);
    expect(result.maskedValues).toBe(2);
    expect(result.maskedColumns).toEqual([1]);
    const plan = compileCopyPlan(spec);
    const expected = Buffer.concat(
      frames.slice(0, 6).map((f, i) => {
        if (f[0] !== 0x64 || i === 0) return f;
        return rewriteCopyData(f, 5, f.length, plan)?.frame ?? f;
      }),
    );
    expect(result.output!.equals(expected)).toBe(true);
    expect(result.output!.includes('id,email\n')).toBe(true);
    expect(result.output!.includes('ann@example.com')).toBe(false);
  });

  it('compiles a spec once per plan id and keeps a bounded cache', async () => {
    const small = new MaskingPool({ threads: 1, taskTimeoutMs: 3000, planCacheSize: 1 });
    try {
      const bytes = rows(2);
      const redact: RowPlanSpec = { actions: [null, { kind: 'redact' }, null] };
      const nulls: RowPlanSpec = { actions: [null, { kind: 'null' }, null] };
      const a1 = await small.run({ ...rowsJob(owned(bytes)), planId: 'a', spec: redact });
      // Same id, other spec: the cached plan is used (ids must not be reused).
      const a2 = await small.run({ ...rowsJob(owned(bytes)), planId: 'a', spec: nulls });
      expect(a2.output!.equals(a1.output!)).toBe(true);
      // Another id evicts `a` from a one-plan cache; `a` is then compiled again from its spec.
      await small.run({ ...rowsJob(owned(bytes)), planId: 'b', spec: redact });
      const a3 = await small.run({ ...rowsJob(owned(bytes)), planId: 'a', spec: nulls });
      expect(a3.output!.equals(inline(bytes, nulls))).toBe(true);
      expect(a3.output!.equals(a1.output!)).toBe(false);
    } finally {
      await small.close();
    }
  });
});

describe('MaskingPool fails closed', () => {
  const expectMaskingError = async (promise: Promise<unknown>, text: RegExp): Promise<void> => {
    const err = await promise.then(
      () => null,
      (e: unknown) => e,
    );
    expect(isPortcullisError(err, 'PCL_ERR_MASKING_FAILED'), String(err)).toBe(true);
    expect((err as Error).message).toMatch(text);
  };

  const nextJobWorks = async (p: MaskingPool = pool): Promise<void> => {
    const bytes = rows(3);
    const result = await p.run(rowsJob(owned(bytes)));
    expect(result.output!.equals(inline(bytes))).toBe(true);
  };

  it('rejects when the worker exits mid-job, and the replaced worker masks the next job', async () => {
    await expectMaskingError(pool.run(rowsJob(owned(rows(3)), { testHook: 'exit' })), /exited/);
    await nextJobWorks();
  });

  it('rejects when an uncaught error kills the worker thread', async () => {
    await expectMaskingError(
      pool.run(rowsJob(owned(rows(3)), { testHook: 'uncaught' })),
      /uncaught/,
    );
    await nextJobWorks();
  });

  it('rejects when the task throws', async () => {
    await expectMaskingError(pool.run(rowsJob(owned(rows(3)), { testHook: 'throw' })), /failed/);
    await nextJobWorks();
  });

  it('rejects a task past the time limit and terminates its worker', async () => {
    // The limit counts from run(), so it must leave room for a fresh worker to boot (tsx here).
    const quick = new MaskingPool({ threads: 1, taskTimeoutMs: 1500 });
    try {
      const started = Date.now();
      await expectMaskingError(
        quick.run(rowsJob(owned(rows(3)), { testHook: 'hang' })),
        /ran past 1500 ms/,
      );
      expect(Date.now() - started).toBeLessThan(4000);
      // The spinning thread was terminated: the next job gets a fresh worker.
      const bytes = rows(3);
      const result = await quick.run(rowsJob(owned(bytes)));
      expect(result.output!.equals(inline(bytes))).toBe(true);
    } finally {
      await quick.close();
    }
  });

  it('keeps the code of an error the masking code raised (a malformed DataRow)', async () => {
    const bad = dataRow(['1', 'two columns only']);
    const err = await pool.run(rowsJob(owned(bad))).catch((e: unknown) => e);
    expect(isPortcullisError(err, 'PCL_ERR_PROTOCOL_MALFORMED'), String(err)).toBe(true);
    await nextJobWorks();
  });

  it('rejects an invalid spec with the config error', async () => {
    const spec: CopyPlanSpec = { format: 'csv', actions: [null], delimiter: '::' };
    const bytes = frame('d', '1\n');
    const err = await pool
      .run({ kind: 'copy', planId: 'bad', spec, chunk: owned(bytes), start: 0, end: bytes.length })
      .catch((e: unknown) => e);
    expect(isPortcullisError(err, 'PCL_ERR_CONFIG_INVALID'), String(err)).toBe(true);
  });

  it('ignores the fault hooks when the worker environment does not enable them', async () => {
    delete process.env['PORTCULLIS_TEST_HOOKS'];
    const production = new MaskingPool({ threads: 1, taskTimeoutMs: 3000 });
    process.env['PORTCULLIS_TEST_HOOKS'] = '1';
    try {
      const bytes = rows(3);
      const result = await production.run(rowsJob(owned(bytes), { testHook: 'exit' }));
      expect(result.output!.equals(inline(bytes))).toBe(true);
    } finally {
      await production.close();
    }
  });

  it('refuses jobs after close', async () => {
    const closing = new MaskingPool({ threads: 1, taskTimeoutMs: 3000 });
    await closing.close();
    const chunk = owned(rows(1));
    await expectMaskingError(closing.run(rowsJob(chunk)), /closed/);
    // A refused job leaves the chunk with the caller.
    expect(chunk.length).toBeGreaterThan(0);
  });
});
