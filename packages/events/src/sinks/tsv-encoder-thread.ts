import { Piscina } from 'piscina';
import { workerScript } from '@portcullis/core';
import { SpoolReadRecord, type SpoolRecord } from '../spool/spool-reader.js';
import type { ClickHouseSchemaFlavour } from './clickhouse-columns.js';
import type { TsvLines } from './tsv-lines.js';

/** @internal A job for the thread: the records' bytes, and where each lies in them. */
export interface TsvEncodeJob {
  readonly json: ArrayBuffer;
  /** Memory for the lines, when the sink gave some back (the thread allocates otherwise). */
  readonly lines: ArrayBuffer | null;
  readonly starts: Int32Array;
  readonly ends: Int32Array;
}

/** @internal The thread's answer: {@link TsvLines}, the lines' memory moved. */
export interface TsvEncodeReply {
  /** The job's memory, back for another job. */
  readonly json: ArrayBuffer;
  readonly lines: ArrayBuffer;
  readonly length: number;
  readonly ends: Int32Array;
  readonly errors: TsvLines['errors'];
}

const WORKER = workerScript(import.meta.url, 'tsv-encoder-worker');
/** Job buffers kept for reuse: about as many as a sink has jobs under way. */
const SPARE_JOB_BUFFERS = 4;
/**
 * Line buffers kept for reuse: about as many as a delivery of 50,000 records makes, which the
 * sink hands back at once. Without reuse, the megabytes that come from the thread for every job
 * and stay until their delivery ends are what sets off nearly every full garbage collection
 * of a busy sink (V8 collects on external memory growth), and marking the heap costs more than
 * the transcoding saves.
 */
const SPARE_LINE_BUFFERS = 16;
/** How long spare line memory outlives the last delivery that gave some back. */
const SPARE_LINES_IDLE_MS = 5_000;

/**
 * Encodes spooled event records into TabSeparated lines on a worker thread, so a ClickHouse
 * sink's transcoding runs beside the event loop (which reads the spool and streams the inserts)
 * instead of on it. Each job's bytes are copied once into memory handed to the thread, and its
 * lines come back without a copy. A thread that dies fails its job (the delivery is retried) and
 * is replaced.
 */
export class TsvEncoderThread {
  readonly #pool: Piscina<TsvEncodeJob, TsvEncodeReply>;
  /**
   * Job memory back from the thread. Reused, since allocating megabytes of fresh ArrayBuffer per
   * job drives the garbage collector (V8 collects on external memory growth).
   */
  readonly #spare: ArrayBuffer[] = [];
  /** Line memory handed back by the sink (see {@link TsvEncoderThread.recycle}). */
  readonly #spareLines: ArrayBuffer[] = [];
  /** Drops the spare line memory once the sink has been idle a while. */
  readonly #idle = setTimeout(() => (this.#spareLines.length = 0), SPARE_LINES_IDLE_MS).unref();

  constructor(flavour: ClickHouseSchemaFlavour) {
    this.#pool = new Piscina<TsvEncodeJob, TsvEncodeReply>({
      filename: WORKER.url.href,
      minThreads: 1,
      maxThreads: 1,
      workerData: { flavour },
      // Not the parent's flags (a loader the parent runs under would load the thread's code too).
      execArgv: WORKER.execArgv ?? [],
    });
  }

  /** The lines of `records`, in order (see {@link TsvLines}). */
  async encode(records: readonly SpoolRecord[]): Promise<TsvLines> {
    const lines = this.#spareLines.pop() ?? null;
    const job = jobOf(records, this.#spare, lines);
    const reply = await this.#pool.run(job, {
      transferList: lines === null ? [job.json] : [job.json, lines],
    });
    if (this.#spare.length < SPARE_JOB_BUFFERS) this.#spare.push(reply.json);
    return {
      lines: Buffer.from(reply.lines, 0, reply.length),
      ends: reply.ends,
      errors: reply.errors,
    };
  }

  /**
   * Gives back the memory of lines {@link encode} returned, for later jobs: only once nothing
   * reads them any more, as the next job moves the memory to the thread and overwrites it.
   */
  recycle(lines: readonly Buffer[]): void {
    this.#idle.refresh();
    for (const line of lines) {
      const memory = line.buffer;
      if (
        memory instanceof ArrayBuffer &&
        memory.byteLength > 0 &&
        this.#spareLines.length < SPARE_LINE_BUFFERS &&
        !this.#spareLines.includes(memory)
      ) {
        this.#spareLines.push(memory);
      }
    }
  }

  /** @internal The pool's worker threads, for tests that kill one mid-job. */
  get workers(): readonly { terminate(): Promise<number> }[] {
    return this.#pool.threads;
  }

  /** Stops the thread; jobs still running fail. */
  close(): Promise<void> {
    clearTimeout(this.#idle);
    this.#spareLines.length = 0;
    return this.#pool.destroy();
  }
}

/**
 * A job of `records`: their payloads copied into one ArrayBuffer. Records read from one spool
 * window are copied as one range (the record headers between them ride along); others one by one.
 */
function jobOf(
  records: readonly SpoolRecord[],
  spare: ArrayBuffer[],
  lines: ArrayBuffer | null,
): TsvEncodeJob {
  const count = records.length;
  const starts = new Int32Array(count);
  const ends = new Int32Array(count);
  // Runs of records that share a read buffer, each copied as `buffer[from, to)`.
  const runs: { buffer: Buffer; from: number; to: number }[] = [];
  let bytes = 0;
  for (let i = 0; i < count; i++) {
    const record = records[i]!;
    const read = record instanceof SpoolReadRecord;
    const buffer = read ? record.buffer : record.payload;
    const from = read ? record.start : 0;
    const to = read ? record.end : buffer.length;
    const run = runs[runs.length - 1];
    if (read && run !== undefined && run.buffer === buffer && from >= run.to) {
      starts[i] = bytes + from - run.to;
      bytes += to - run.to;
      run.to = to;
    } else {
      starts[i] = bytes;
      bytes += to - from;
      runs.push({ buffer, from, to });
    }
    ends[i] = bytes;
  }
  const reused = spare.findIndex((memory) => memory.byteLength >= bytes);
  // With a quarter to spare, a new buffer fits the jobs after this one too.
  const json = reused >= 0 ? spare.splice(reused, 1)[0]! : new ArrayBuffer(Math.ceil(bytes * 1.25));
  const target = new Uint8Array(json);
  let at = 0;
  for (const run of runs) {
    target.set(run.buffer.subarray(run.from, run.to), at);
    at += run.to - run.from;
  }
  return { json, lines, starts, ends };
}
