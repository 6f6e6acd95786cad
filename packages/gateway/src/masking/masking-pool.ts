import { Piscina } from 'piscina';
import type { CopyPlanSpec, RowPlanSpec } from '@portcullis/masking';
import {
  errorCatalog,
  PortcullisError,
  silentLogger,
  type ErrorCode,
  type Logger,
  workerScript,
} from '@portcullis/core';
import type { MaskReply, MaskTask, MaskTestHook } from './masking-contract.js';

export type { MaskTestHook } from './masking-contract.js';

/**
 * Chunks smaller than this are masked inline on the event loop; larger ones may go to the pool.
 *
 * Measured with `npm run bench:masking-pool -- --runs 3` (whole 8-column customer DataRows, a
 * hash and a partial rule; medians in µs on a loaded 2-core machine, Node 20):
 *
 *   chunk    inline   pool round trip   event-loop time per pooled chunk
 *   4 KiB        27         85 (3.2x)        64
 *   16 KiB      114        296 (2.6x)       116
 *   64 KiB      633        499 (0.8x)       122
 *   256 KiB    1765       2275 (1.3x)       314
 *
 * A round trip has a fixed cost of about 100 µs (post, wake a worker, transfer back, resolve),
 * so below 64 KiB the pool only adds latency and CPU. From 64 KiB on it takes 3–5x less time
 * off the event loop than inline masking; the latency a session sees varies with the load on
 * this machine: 0.75–1.64x inline at 64 KiB over five runs (median 1.33x), 1.1–1.4x at
 * 256 KiB. 64 KiB is the smallest size where the pool costs the loop at most half and a
 * session at most 1.5x (the bench's rule) in the median run, and one full socket read (Node
 * reads 64 KiB at a time) reaches it, so that is the default.
 */
export const DEFAULT_WORKER_THRESHOLD_BYTES = 64 * 1024;

/** Tasks waiting for a worker before `run` refuses more, when the options do not say. */
export const DEFAULT_MAX_QUEUE = 1024;

interface MaskJobBase {
  /**
   * Identifies `spec`: each worker compiles a spec once per id and keeps the compiled plan in a
   * bounded LRU cache. An id must never be reused for a different spec (use one per session and
   * result set, or a digest of the spec): a worker that has the id cached ignores the new spec.
   */
  readonly planId: string;
  /**
   * Holds the frames to mask at `[start, end)`. When the chunk spans its whole ArrayBuffer, the
   * pool takes that memory: it is transferred to the worker (never copied) and every view of it
   * on this thread, `chunk` included, becomes empty as soon as `run` is called. Keep nothing
   * else in such a buffer that is still to be forwarded. A chunk that is a view into a larger
   * ArrayBuffer (a pooled Buffer, a slice of a socket read) is copied first, since that memory
   * may hold other data; the caller's view then stays as it was.
   */
  readonly chunk: Buffer;
  /** First frame to mask: a frame boundary. */
  readonly start: number;
  /** End of the frames to mask. */
  readonly end: number;
  /** Test-only fault injection; see {@link MaskTestHook}. */
  readonly testHook?: MaskTestHook;
}

/** DataRows of one result set, masked with `rewriteDataRows`. */
export interface RowsMaskJob extends MaskJobBase {
  readonly kind: 'rows';
  readonly spec: RowPlanSpec;
}

/** CopyData messages of a `COPY … TO STDOUT` (text or CSV), masked with `rewriteCopyData`. */
export interface CopyMaskJob extends MaskJobBase {
  readonly kind: 'copy';
  readonly spec: CopyPlanSpec;
  /** The first CopyData in the range is the CSV header line (COPY … HEADER): left alone. */
  readonly header?: boolean;
}

/** One chunk for the pool to mask. */
export type MaskChunkJob = RowsMaskJob | CopyMaskJob;

/** What a worker made of a {@link MaskChunkJob}. Counts only, never values. */
export interface MaskChunkResult {
  /** The job's chunk, back from the worker (the same memory, or the pool's copy of it). */
  readonly chunk: Buffer;
  /** The frames of `[start, consumed)` with masked ones replaced; null when none changed. */
  readonly output: Buffer | null;
  /**
   * End of the frames handled, as with `rewriteDataRows`: less than `end` at an incomplete
   * frame or a frame type the rewriter leaves to the caller (a RowDescription, a notice).
   */
  readonly consumed: number;
  readonly frames: number;
  readonly rewrittenFrames: number;
  readonly maskedValues: number;
  readonly maskedColumns: readonly number[];
}

/** Options of {@link MaskingPool}. */
export interface MaskingPoolOptions {
  /** Worker threads, started at once and kept; a worker that dies is replaced. */
  readonly threads: number;
  /**
   * Time limit per task, from `run` to the reply (waiting for a worker included). A task past it
   * fails and its worker, if it had started, is terminated and replaced.
   */
  readonly taskTimeoutMs: number;
  readonly logger?: Logger;
  /** Tasks that may wait for a worker; more fail at once. {@link DEFAULT_MAX_QUEUE} by default. */
  readonly maxQueue?: number;
  /** Compiled plans each worker keeps (LRU); 64 by default. */
  readonly planCacheSize?: number;
}

// Piscina requires the worker file, so from the sources (tests) tsx compiles it to CommonJS,
// which runs the detectors about twice as slowly: correct for tests, but measure speed against
// the build (bench/masking-pool.bench.ts does).
const WORKER = workerScript(import.meta.url, 'masking-worker');

/**
 * Takes the bytes of `chunk` as an ArrayBuffer this thread may give away. A chunk spanning its
 * whole ArrayBuffer is moved: the caller's buffer is detached at once (not when a worker picks
 * the task up) and the memory is not copied. Any other chunk, and one whose ArrayBuffer Node
 * marks untransferable (its Buffer pool), is copied, leaving the caller's memory alone.
 */
export function takeChunkMemory(chunk: Uint8Array): ArrayBuffer {
  const ab = chunk.buffer;
  if (ab instanceof ArrayBuffer && chunk.byteOffset === 0 && ab.byteLength === chunk.byteLength) {
    return structuredClone(ab, { transfer: [ab] });
  }
  const own = new ArrayBuffer(chunk.byteLength);
  new Uint8Array(own).set(chunk);
  return own;
}

const isErrorCode = (code: string): code is ErrorCode => Object.hasOwn(errorCatalog, code);

/**
 * Worker threads that mask large result chunks off the event loop, with `rewriteDataRows` (or
 * `rewriteCopyData` per CopyData frame). Chunks travel by transfer, never by copy, both ways.
 *
 * Fails closed: a task that throws, a worker that exits or dies of an uncaught error, and a task
 * past `taskTimeoutMs` reject the job with a `PortcullisError` (`PCL_ERR_MASKING_FAILED`, or the
 * code the masking code raised, such as `PCL_ERR_PROTOCOL_MALFORMED` for a bad DataRow, exactly
 * as inline masking would). Nothing of a failed job is returned: its chunk is gone and the
 * session must end. Dead or terminated workers are replaced, so later jobs run as before.
 */
export class MaskingPool {
  readonly #pool: Piscina<MaskTask, MaskReply>;
  readonly #timeoutMs: number;
  readonly #logger: Logger;
  #closed = false;

  constructor(options: MaskingPoolOptions) {
    if (!Number.isInteger(options.threads) || options.threads < 1) {
      throw new RangeError('threads must be a positive integer');
    }
    if (!(options.taskTimeoutMs > 0)) throw new RangeError('taskTimeoutMs must be positive');
    this.#timeoutMs = options.taskTimeoutMs;
    this.#logger = options.logger ?? silentLogger;
    const execArgv = WORKER.execArgv;
    this.#pool = new Piscina<MaskTask, MaskReply>({
      filename: WORKER.url.href,
      minThreads: options.threads,
      maxThreads: options.threads,
      maxQueue: options.maxQueue ?? DEFAULT_MAX_QUEUE,
      workerData: { planCacheSize: options.planCacheSize },
      ...(execArgv === undefined ? {} : { execArgv }),
    });
    // A worker error with no task to blame: log it (an unhandled 'error' event would throw).
    this.#pool.on('error', (err: unknown) => {
      this.#logger.error({ err }, 'masking worker failed outside a task');
    });
  }

  /** Tasks waiting for a free worker: a relay may mask inline instead when this grows. */
  get queued(): number {
    return this.#pool.queueSize;
  }

  /** Worker threads configured. */
  get threads(): number {
    return this.#pool.maxThreads;
  }

  /**
   * Masks `job.chunk[start, end)` in a worker. Takes the chunk's memory synchronously (see
   * {@link MaskJobBase.chunk}); resolves with it and the output, or rejects with a
   * `PortcullisError` (see the class notes).
   */
  async run(job: MaskChunkJob): Promise<MaskChunkResult> {
    if (this.#closed) throw new PortcullisError('PCL_ERR_MASKING_FAILED', 'masking pool closed');
    const length = job.chunk.length;
    if (!(job.start >= 0 && job.start <= job.end && job.end <= length)) {
      throw new RangeError(`mask range [${job.start}, ${job.end}) outside a ${length}-byte chunk`);
    }
    const buffer = takeChunkMemory(job.chunk);
    const base = { planId: job.planId, buffer, length, start: job.start, end: job.end };
    const hook = job.testHook === undefined ? {} : { testHook: job.testHook };
    const task: MaskTask =
      job.kind === 'rows'
        ? { ...base, ...hook, kind: 'rows', spec: job.spec }
        : { ...base, ...hook, kind: 'copy', spec: job.spec, header: job.header === true };

    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), this.#timeoutMs);
    let reply: MaskReply;
    try {
      reply = await this.#pool.run(task, { transferList: [buffer], signal: abort.signal });
    } catch (err) {
      throw this.#failed(job, err, abort.signal.aborted);
    } finally {
      clearTimeout(timer);
    }
    if (!reply.ok) {
      const code = isErrorCode(reply.code) ? reply.code : 'PCL_ERR_MASKING_FAILED';
      this.#logger.warn({ code, planId: job.planId, kind: job.kind }, 'masking task failed');
      throw new PortcullisError(code, reply.message);
    }
    return {
      chunk: Buffer.from(reply.buffer, 0, length),
      output: reply.output === null ? null : Buffer.from(reply.output, 0, reply.outputLength),
      consumed: reply.consumed,
      frames: reply.frames,
      rewrittenFrames: reply.rewrittenFrames,
      maskedValues: reply.maskedValues,
      maskedColumns: reply.maskedColumns,
    };
  }

  #failed(job: MaskChunkJob, cause: unknown, timedOut: boolean): PortcullisError {
    let reason: string;
    if (timedOut) reason = `ran past ${this.#timeoutMs} ms`;
    else if (this.#closed) reason = 'failed: pool closed';
    else reason = `failed: ${cause instanceof Error ? cause.message : 'worker failed'}`;
    this.#logger.warn(
      { code: 'PCL_ERR_MASKING_FAILED', planId: job.planId, kind: job.kind, reason },
      'masking task failed',
    );
    return new PortcullisError('PCL_ERR_MASKING_FAILED', `masking task ${reason}`, { cause });
  }

  /** Lets running tasks finish, then stops the workers; `run` fails from now on. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#pool.close();
  }
}
