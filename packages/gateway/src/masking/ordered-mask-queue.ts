import { PortcullisError } from '@portcullis/core';
import type { MaskChunkJob, MaskChunkResult } from './masking-pool.js';

/** What the queue needs of a {@link MaskingPool}: a way to run a job. */
export interface MaskRunner {
  run(job: MaskChunkJob): Promise<MaskChunkResult>;
}

/** Options of {@link OrderedMaskQueue}. */
export interface OrderedMaskQueueOptions {
  readonly runner: MaskRunner;
  /**
   * Bytes queued and not yet emitted above which `mask` and `passThrough` return false: pause
   * the upstream then, and resume on `onDrain`.
   */
  readonly highWaterMark: number;
  /**
   * Receives the session's output in submission order: the masked bytes of a job's range (with
   * the job's result, for counts and events) or a pass-through buffer (with null).
   */
  readonly onOutput: (data: Buffer, masked: MaskChunkResult | null) => void;
  /** Called once, in order, when an item cannot be emitted; nothing is emitted after it. */
  readonly onError: (err: PortcullisError) => void;
  /** Called when pending bytes fall to half the high-water mark after a push returned false. */
  readonly onDrain?: () => void;
}

interface Entry {
  readonly bytes: number;
  /** Unset while a job runs. */
  data: Buffer | null;
  /**
   * The length the data must have when emitted: a pass-through's length when queued (detached
   * memory reads as empty), the output's length for a job.
   */
  expectedLength: number;
  result: MaskChunkResult | null;
  error: PortcullisError | null;
  /** The job is still running. */
  running: boolean;
}

/**
 * The ordered output of one session whose result chunks are masked by a worker pool. Jobs run
 * concurrently and finish in any order; the queue emits their output, and the pass-through
 * buffers queued between them, strictly in submission order through `onOutput`.
 *
 * Backpressure: `pending` counts the bytes queued and not yet emitted; a push returns false
 * once it passes the high-water mark, and `onDrain` says when to read again.
 *
 * Failure: when a job rejects, or returns without handling its whole range, everything queued
 * before it is still emitted, then `onError` is called once and the queue stops for good: the
 * failed item and everything after it are dropped, never emitted, and later pushes are ignored.
 * Like the pool, the queue never forwards what it could not mask.
 *
 * A pass-through buffer is held, not copied, until its turn: it must not be reused meanwhile,
 * nor share its ArrayBuffer with a later job's chunk (the pool transfers a chunk that spans
 * its whole ArrayBuffer, which empties every view of it). A pass-through buffer found emptied
 * that way fails the queue rather than emitting nothing.
 */
export class OrderedMaskQueue {
  readonly #runner: MaskRunner;
  readonly #highWaterMark: number;
  readonly #onOutput: OrderedMaskQueueOptions['onOutput'];
  readonly #onError: OrderedMaskQueueOptions['onError'];
  readonly #onDrain: (() => void) | undefined;
  #entries: Entry[] = [];
  #head = 0;
  #pending = 0;
  #needDrain = false;
  /** A failure is queued: new items are dropped. */
  #doomed = false;
  /** Stopped: failed (and reported) or destroyed. */
  #stopped = false;
  #flushing = false;

  constructor(options: OrderedMaskQueueOptions) {
    this.#runner = options.runner;
    this.#highWaterMark = options.highWaterMark;
    this.#onOutput = options.onOutput;
    this.#onError = options.onError;
    this.#onDrain = options.onDrain;
  }

  /** Bytes queued and not yet emitted. */
  get pending(): number {
    return this.#pending;
  }

  /** Items queued and not yet emitted. */
  get size(): number {
    return this.#entries.length - this.#head;
  }

  /** True once the queue has failed (or will, when the items before the failure are out). */
  get failed(): boolean {
    return this.#doomed;
  }

  /**
   * Starts a job on the runner and queues its output: the masked bytes of `chunk[start, end)`.
   * The range must hold only frames the rewriter handles (DataRows, or CopyData, and the frames
   * they pass through), complete: a result that stops short of `end` fails the queue. Returns
   * false when the caller should stop reading (see {@link OrderedMaskQueueOptions.highWaterMark});
   * also false, with nothing run, once the queue has failed.
   */
  mask(job: MaskChunkJob): boolean {
    if (this.#doomed || this.#stopped) return false;
    const entry: Entry = {
      bytes: job.end - job.start,
      data: null,
      expectedLength: 0,
      result: null,
      error: null,
      running: true,
    };
    this.#push(entry);
    let promise: Promise<MaskChunkResult>;
    try {
      promise = this.#runner.run(job);
    } catch (err) {
      promise = Promise.reject(err);
    }
    promise.then(
      (result) => {
        entry.running = false;
        if (result.consumed !== job.end) {
          this.#markFailed(
            entry,
            new PortcullisError(
              'PCL_ERR_MASKING_FAILED',
              `masking stopped at byte ${result.consumed} of [${job.start}, ${job.end}): ` +
                'the range held a frame the rewriter does not handle, or an incomplete one',
            ),
          );
        } else {
          const data = result.output ?? result.chunk.subarray(job.start, job.end);
          entry.result = result;
          entry.data = data;
          entry.expectedLength = data.length;
        }
        this.#flush();
      },
      (err: unknown) => {
        entry.running = false;
        this.#markFailed(entry, asMaskingError(err));
        this.#flush();
      },
    );
    return this.#accepting();
  }

  /**
   * Queues bytes that need no masking, after everything queued before. Emitted at once (before
   * this returns) when nothing is ahead of them. Returns false as {@link mask} does.
   */
  passThrough(data: Buffer): boolean {
    if (this.#doomed || this.#stopped) return false;
    this.#push({
      bytes: data.length,
      data,
      expectedLength: data.length,
      result: null,
      error: null,
      running: false,
    });
    this.#flush();
    return this.#accepting();
  }

  /** Drops everything queued and stops, without calling `onError` (the session is closing). */
  destroy(): void {
    this.#stopped = true;
    this.#doomed = true;
    this.#entries = [];
    this.#head = 0;
    this.#pending = 0;
  }

  #push(entry: Entry): void {
    this.#entries.push(entry);
    this.#pending += entry.bytes;
  }

  #accepting(): boolean {
    if (this.#stopped) return false;
    if (this.#pending <= this.#highWaterMark) return true;
    this.#needDrain = true;
    return false;
  }

  #markFailed(entry: Entry, err: PortcullisError): void {
    if (entry.error === null) entry.error = err;
    this.#doomed = true;
  }

  #flush(): void {
    if (this.#flushing || this.#stopped) return;
    this.#flushing = true;
    let failure: PortcullisError | null = null;
    try {
      while (!this.#stopped && this.#head < this.#entries.length) {
        const entry = this.#entries[this.#head]!;
        if (entry.running) break;
        if (entry.error === null && entry.data!.length !== entry.expectedLength) {
          entry.error = new PortcullisError(
            'PCL_ERR_MASKING_FAILED',
            'a pass-through buffer was emptied before its turn (its memory went to a worker)',
          );
        }
        if (entry.error !== null) {
          failure = entry.error;
          break;
        }
        this.#entries[this.#head++] = undefined as unknown as Entry;
        this.#pending -= entry.bytes;
        this.#onOutput(entry.data!, entry.result);
      }
    } catch (err) {
      // onOutput threw: what reached the client is unknown, so stop here.
      failure = asMaskingError(err);
    } finally {
      this.#flushing = false;
    }
    if (failure !== null) {
      this.#fail(failure);
      return;
    }
    if (this.#head === this.#entries.length) {
      this.#entries = [];
      this.#head = 0;
    } else if (this.#head > 1024 && this.#head * 2 > this.#entries.length) {
      this.#entries = this.#entries.slice(this.#head);
      this.#head = 0;
    }
    if (this.#needDrain && !this.#stopped && this.#pending <= this.#highWaterMark / 2) {
      this.#needDrain = false;
      this.#onDrain?.();
    }
  }

  /** Stops and reports `err`, unless the queue had already stopped. */
  #fail(err: PortcullisError): void {
    if (this.#stopped) return;
    this.destroy();
    this.#onError(err);
  }
}

function asMaskingError(err: unknown): PortcullisError {
  if (err instanceof PortcullisError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new PortcullisError('PCL_ERR_MASKING_FAILED', `masking failed: ${message}`, {
    cause: err,
  });
}
