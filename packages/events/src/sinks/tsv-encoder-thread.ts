import { Piscina } from 'piscina';
import { workerScript } from '@portcullis/core';
import { SpoolReadRecord, type SpoolRecord } from '../spool/spool-reader.js';
import type { ClickHouseSchemaFlavour } from './clickhouse-columns.js';
import type { TsvLines } from './tsv-lines.js';

/** @internal A job for the thread: the records' bytes, and where each lies in them. */
export interface TsvEncodeJob {
  readonly json: ArrayBuffer;
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
    const job = jobOf(records, this.#spare);
    const reply = await this.#pool.run(job, { transferList: [job.json] });
    if (this.#spare.length < SPARE_JOB_BUFFERS) this.#spare.push(reply.json);
    return {
      lines: Buffer.from(reply.lines, 0, reply.length),
      ends: reply.ends,
      errors: reply.errors,
    };
  }

  /** @internal The pool's worker threads, for tests that kill one mid-job. */
  get workers(): readonly { terminate(): Promise<number> }[] {
    return this.#pool.threads;
  }

  /** Stops the thread; jobs still running fail. */
  close(): Promise<void> {
    return this.#pool.destroy();
  }
}

/**
 * A job of `records`: their payloads copied into one ArrayBuffer. Records read from one spool
 * window are copied as one range (the record headers between them ride along); others one by one.
 */
function jobOf(records: readonly SpoolRecord[], spare: ArrayBuffer[]): TsvEncodeJob {
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
  return { json, starts, ends };
}
