// The worker side of MaskingPool: a Piscina task handler that masks one transferred chunk and
// transfers the input and the output back. Loaded as compiled JS in production
// (dist/masking/masking-worker.js) and as TypeScript through tsx under tests and benchmarks.
import { Piscina } from 'piscina';
import {
  compileCopyPlan,
  compileRowPlan,
  rewriteCopyData,
  rewriteDataRows,
  type CopyPlan,
  type RowPlan,
} from '@portcullis/masking';
import { PortcullisError } from '@portcullis/core';
import type { MaskReply, MaskReplyOk, MaskTask } from './masking-contract.js';

type Movable = Parameters<typeof Piscina.move>[0];

/** Plans kept per worker when the pool does not say. */
export const DEFAULT_PLAN_CACHE_SIZE = 64;

const settings = (Piscina.workerData ?? {}) as { planCacheSize?: number };
const planCacheSize = Math.max(1, settings.planCacheSize ?? DEFAULT_PLAN_CACHE_SIZE);
// Test hooks: read once, from the environment the worker was started with.
const testHooks = process.env['PORTCULLIS_TEST_HOOKS'] === '1';

/** Compiled plans by kind and id, least recently used first (Map keeps insertion order). */
const plans = new Map<string, RowPlan | CopyPlan>();

function planFor(task: MaskTask): RowPlan | CopyPlan {
  const key = `${task.kind}\0${task.planId}`;
  let plan = plans.get(key);
  if (plan !== undefined) {
    plans.delete(key);
  } else {
    plan = task.kind === 'rows' ? compileRowPlan(task.spec) : compileCopyPlan(task.spec);
    if (plans.size >= planCacheSize) plans.delete(plans.keys().next().value!);
  }
  plans.set(key, plan);
  return plan;
}

/** Masks one chunk; never throws: errors travel back as `{ code, message }`. */
export default function maskChunk(task: MaskTask): unknown {
  try {
    if (testHooks && task.testHook !== undefined) return runTestHook(task);
    const chunk = Buffer.from(task.buffer, 0, task.length);
    const plan = planFor(task);
    const result =
      task.kind === 'rows'
        ? rewriteDataRows(chunk, task.start, task.end, plan as RowPlan)
        : rewriteCopyFrames(chunk, task.start, task.end, plan as CopyPlan, task.header);
    const output = result.output === null ? null : transferable(result.output, task.buffer);
    const reply: MaskReplyOk = {
      ok: true,
      buffer: task.buffer,
      output,
      outputLength: result.output === null ? 0 : result.output.length,
      consumed: result.consumed,
      frames: result.frames,
      rewrittenFrames: result.rewrittenFrames,
      maskedValues: result.maskedValues,
      maskedColumns: result.maskedColumns,
    };
    // Piscina transfers only what a top-level movable lists; nested buffers would be copied.
    return Piscina.move({
      [Piscina.transferableSymbol]: output === null ? [task.buffer] : [task.buffer, output],
      [Piscina.valueSymbol]: reply,
    } as unknown as Movable);
  } catch (err) {
    const failed: MaskReply = {
      ok: false,
      code: err instanceof PortcullisError ? err.code : 'PCL_ERR_MASKING_FAILED',
      message: err instanceof Error ? err.message : 'masking failed',
    };
    return failed;
  }
}

/**
 * The ArrayBuffer behind `output`, when it is one the worker may give away: at offset 0, not
 * the input's, not shared and not Node's Buffer pool (transferring that would copy it, or worse
 * take the pool from under later allocations). Otherwise the bytes are copied into one.
 */
function transferable(output: Buffer, input: ArrayBuffer): ArrayBuffer {
  const ab = output.buffer;
  if (
    output.byteOffset === 0 &&
    ab instanceof ArrayBuffer &&
    ab !== input &&
    ab.byteLength !== Buffer.poolSize
  ) {
    return ab;
  }
  const own = Buffer.allocUnsafeSlow(output.length);
  output.copy(own);
  return own.buffer as ArrayBuffer;
}

interface FramesRewrite {
  readonly output: Buffer | null;
  readonly consumed: number;
  readonly frames: number;
  readonly rewrittenFrames: number;
  readonly maskedValues: number;
  readonly maskedColumns: readonly number[];
}

const COPY_DATA = 0x64;
/** Frames a COPY batch passes through: CopyDone, CommandComplete, ReadyForQuery (no values). */
const COPY_PASS_THROUGH = new Uint8Array(256);
for (const c of 'cCZ') COPY_PASS_THROUGH[c.charCodeAt(0)] = 1;

/**
 * The COPY counterpart of `rewriteDataRows`: masks each CopyData among the complete frames of
 * `chunk[start, end)`, keeps {@link COPY_PASS_THROUGH} frames, and stops at an incomplete frame
 * or any other type (a notice or error needs its own rewriter), reporting where in `consumed`.
 */
export function rewriteCopyFrames(
  chunk: Buffer,
  start: number,
  end: number,
  plan: CopyPlan,
  header: boolean,
): FramesRewrite {
  const parts: Uint8Array[] = [];
  const hit = new Uint8Array(plan.rows.columnCount);
  let size = 0;
  let copyFrom = start;
  let pos = start;
  let frames = 0;
  let rewrittenFrames = 0;
  let maskedValues = 0;
  let headerPending = header;
  while (pos + 5 <= end) {
    const type = chunk[pos]!;
    const length = chunk.readInt32BE(pos + 1);
    if (length < 4) {
      throw new PortcullisError('PCL_ERR_PROTOCOL_MALFORMED', `frame length ${length}`);
    }
    const frameEnd = pos + 1 + length;
    if (frameEnd > end) break;
    if (type === COPY_DATA) {
      const r = rewriteCopyData(chunk, pos + 5, frameEnd, plan, { header: headerPending });
      headerPending = false;
      if (r !== null) {
        const before = chunk.subarray(copyFrom, pos);
        parts.push(before, r.frame);
        size += before.length + r.frame.length;
        copyFrom = frameEnd;
        rewrittenFrames++;
        maskedValues += r.maskedValues;
        for (const col of r.maskedColumns) hit[col] = 1;
      }
    } else if (COPY_PASS_THROUGH[type] !== 1) {
      break;
    }
    frames++;
    pos = frameEnd;
  }
  const maskedColumns: number[] = [];
  for (let i = 0; i < hit.length; i++) if (hit[i] === 1) maskedColumns.push(i);
  if (rewrittenFrames === 0) {
    return { output: null, consumed: pos, frames, rewrittenFrames, maskedValues, maskedColumns };
  }
  const tail = chunk.subarray(copyFrom, pos);
  const output = Buffer.allocUnsafeSlow(size + tail.length);
  let at = 0;
  for (const part of parts) {
    output.set(part, at);
    at += part.length;
  }
  output.set(tail, at);
  return { output, consumed: pos, frames, rewrittenFrames, maskedValues, maskedColumns };
}

function runTestHook(task: MaskTask): unknown {
  switch (task.testHook) {
    case 'exit':
      process.exit(1);
      break;
    case 'throw':
      throw new Error('test hook: task failed');
    case 'uncaught':
      setImmediate(() => {
        throw new Error('test hook: uncaught error in the worker');
      });
      return new Promise<never>(() => {});
    case 'hang': {
      const until = Number.POSITIVE_INFINITY;
      while (performance.now() < until) {
        // Spin until the pool terminates the thread.
      }
    }
  }
  return null;
}
