import { open, type FileHandle } from 'node:fs/promises';
import { SEGMENT_HEADER_BYTES, scanWindow, type SegmentScan } from './segment-format.js';

/** One record read back from the spool. */
export interface SpoolRecord {
  readonly sequence: number;
  /** The payload bytes: a view into the batch's read buffer (not shared with other batches). */
  readonly payload: Buffer;
}

/**
 * A record as the reader hands it out: where its payload lies in the read buffer, the view made
 * only when asked for. A batch holds tens of thousands of records until its sink is done, and a
 * Buffer view per record, kept that long, costs the garbage collector more than reading them;
 * sinks that read the bytes in place (the ClickHouse sink) never make one.
 */
export class SpoolReadRecord implements SpoolRecord {
  constructor(
    readonly sequence: number,
    /** The read buffer the payload lies in, at `[start, end)`; shared with the batch's other records. */
    readonly buffer: Buffer,
    readonly start: number,
    readonly end: number,
  ) {}

  /** A new view of the payload bytes each time. */
  get payload(): Buffer {
    return this.buffer.subarray(this.start, this.end);
  }
}

/** Records handed to a consumer in one go, in sequence order. */
export interface SpoolBatch {
  readonly records: readonly SpoolRecord[];
  readonly firstSequence: number;
  /** Acknowledge this to move the consumer past the whole batch. */
  readonly lastSequence: number;
}

/** Options of {@link Spool.openReader}. */
export interface SpoolReaderOptions {
  /** Most records in one batch (default 4096). */
  readonly maxRecords?: number;
  /** Bytes read from disk at a time, and so the most payload bytes in one batch (default 1 MiB). */
  readonly readBytes?: number;
  /**
   * Reuse the memory of full-size reads once every record read into it is handed back with
   * {@link SpoolReader.release} (default false). Only for a consumer that releases each batch
   * once, after nothing reads its records any more: the next read overwrites them.
   */
  readonly recycleReads?: boolean;
}

/** A full-size read whose records are handed out, and how many of them are still in use. */
interface LentWindow {
  /** The memory read into (the window is its start). */
  readonly memory: Buffer;
  /** Records handed out in batches and not yet released. */
  records: number;
}

/**
 * Spare reads a recycling reader keeps while it drains a backlog: about what the deliveries of
 * a sink that has two in flight release at once (the gateway's ClickHouse batches span five 8 MiB
 * reads each).
 */
const SPARE_WINDOWS = 8;

/** @internal A segment as the spool tracks it. */
export interface SpoolSegment {
  readonly firstSequence: number;
  readonly path: string;
  /** Durable bytes, header included; readers read no further. Final once a later segment exists. */
  size: number;
  /** Highest sequence in the segment, `firstSequence - 1` while it has none. */
  lastSequence: number;
  /** Unreadable runs found when the spool opened: start offset → offset to resume at. */
  readonly skips: Map<number, number>;
}

/** @internal What a reader needs from its spool. */
export interface SpoolReaderHost {
  readonly maxRecordBytes: number;
  segments(): readonly SpoolSegment[];
  durableSequence(): number;
  isClosed(): boolean;
  /** Resolves once records past `durableSequence` are durable, or the spool closes. */
  waitForMore(durableSequence: number): Promise<void>;
  ack(sequence: number): Promise<void>;
  /** A batch ending at `sequence` was handed out; its last record ends at `endOffset`. */
  delivered(sequence: number, segment: SpoolSegment, endOffset: number): void;
  /** Unreadable bytes found while reading (not found when the spool opened). */
  corruption(
    segment: SpoolSegment,
    from: number,
    to: number,
    previousSequence: number,
    nextSequence: number,
  ): void;
  release(reader: SpoolReader): void;
}

/**
 * A named consumer's view of the spool: batches of durable records from the consumer's
 * acknowledged position on, in sequence order. Iterate it with `for await`, or call
 * {@link SpoolReader.read} (waits for new records) or {@link SpoolReader.poll} (does not).
 * Acknowledge with {@link SpoolReader.ack}; whatever is not acknowledged is delivered again after
 * the spool is reopened (at least once). One reader per consumer name at a time.
 */
export class SpoolReader implements AsyncIterable<SpoolBatch> {
  /** The consumer's name. */
  readonly name: string;
  readonly #host: SpoolReaderHost;
  readonly #maxRecords: number;
  readonly #readBytes: number;
  #nextSequence: number;
  #segment: SpoolSegment | null = null;
  #file: FileHandle | null = null;
  #scan: SegmentScan = { pos: 0, previousSequence: 0, corruptFrom: -1, need: 0 };
  #window: Buffer | null = null;
  #windowBase = 0;
  #windowLimit = -1;
  readonly #recycle: boolean;
  /** Windows of recycled memory, until their records are released and the scan left them. */
  readonly #lent = new Map<Buffer, LentWindow>();
  /** Memory whose records were all released, for the next reads. */
  readonly #spare: Buffer[] = [];
  #busy = false;
  #closed = false;
  #wake: (() => void) | null = null;

  /** @internal Use {@link Spool.openReader}. */
  constructor(
    host: SpoolReaderHost,
    name: string,
    nextSequence: number,
    options: SpoolReaderOptions = {},
  ) {
    this.#host = host;
    this.name = name;
    this.#nextSequence = nextSequence;
    this.#maxRecords = positiveInteger(options.maxRecords ?? 4096, 'maxRecords');
    this.#readBytes = positiveInteger(options.readBytes ?? 1024 * 1024, 'readBytes');
    this.#recycle = options.recycleReads ?? false;
  }

  /** The sequence the next batch starts at or after. */
  get nextSequence(): number {
    return this.#nextSequence;
  }

  /**
   * The next batch, waiting for records when caught up; null once the reader or spool closed.
   * `maxRecords` lowers the reader's own limit for this batch.
   */
  async read(maxRecords?: number): Promise<SpoolBatch | null> {
    for (;;) {
      if (this.#closed || this.#host.isClosed()) {
        await this.close();
        return null;
      }
      const durable = this.#host.durableSequence();
      const batch = await this.#guarded(maxRecords);
      if (batch !== null) return batch;
      // Caught up: spare memory is for draining a backlog, not for keeping while idle.
      this.#spare.length = 0;
      await new Promise<void>((resolve) => {
        this.#wake = resolve;
        void this.#host.waitForMore(durable).then(resolve);
      });
      this.#wake = null;
    }
  }

  /** The next batch if one is durable now; null when caught up or closed. As `read` otherwise. */
  async poll(maxRecords?: number): Promise<SpoolBatch | null> {
    if (this.#closed || this.#host.isClosed()) return null;
    return this.#guarded(maxRecords);
  }

  /**
   * With `recycleReads`: nothing reads these records (of a batch this reader handed out, or of
   * several joined) any more, so the memory they were read into may take later reads once all
   * its records are released. Each record must be released once. Without it, does nothing.
   */
  release(records: readonly SpoolRecord[]): void {
    if (this.#lent.size === 0) return;
    let i = 0;
    while (i < records.length) {
      const record = records[i]!;
      if (!(record instanceof SpoolReadRecord)) {
        i++;
        continue;
      }
      // Records of one window are adjacent: count the run, then settle it.
      const buffer = record.buffer;
      let run = 1;
      while (i + run < records.length && (records[i + run] as SpoolReadRecord).buffer === buffer) {
        run++;
      }
      i += run;
      const lent = this.#lent.get(buffer);
      if (lent === undefined) continue;
      if (lent.records < run) {
        // Released more often than handed out: never reuse what may still be read.
        this.#lent.delete(buffer);
        continue;
      }
      lent.records -= run;
      if (lent.records === 0 && buffer !== this.#window) this.#settle(buffer, lent);
    }
  }

  /** Persists the consumer's position: everything up to `sequence` is done with. */
  ack(sequence: number): Promise<void> {
    return this.#host.ack(sequence);
  }

  /** Stops the reader; a pending {@link read} resolves with null. */
  async close(): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      this.#lent.clear();
      this.#spare.length = 0;
      this.#host.release(this);
      this.#wake?.();
    }
    if (!this.#busy) await this.#closeFile();
  }

  [Symbol.asyncIterator](): AsyncIterator<SpoolBatch> {
    return {
      next: async () => {
        const batch = await this.read();
        return batch === null ? { value: undefined, done: true } : { value: batch, done: false };
      },
      return: async () => {
        await this.close();
        return { value: undefined, done: true };
      },
    };
  }

  async #guarded(maxRecords = this.#maxRecords): Promise<SpoolBatch | null> {
    if (this.#busy) throw new Error(`spool reader ${this.name} is already reading`);
    this.#busy = true;
    try {
      return await this.#readSome(Math.max(1, Math.min(maxRecords, this.#maxRecords)));
    } finally {
      this.#busy = false;
      if (this.#closed) await this.#closeFile();
    }
  }

  async #readSome(maxRecords: number): Promise<SpoolBatch | null> {
    for (;;) {
      if (this.#closed) return null;
      const segment = this.#segment ?? this.#pickSegment();
      if (segment === null) return null;
      const limit = segment.size;
      const scan = this.#scan;
      if (scan.pos >= limit) {
        const next = this.#host.segments().find((s) => s.firstSequence > segment.firstSequence);
        if (next === undefined) return null;
        await this.#closeFile();
        this.#enter(next);
        continue;
      }
      const window = await this.#readWindow(segment, limit);
      if (window === null) continue;
      const records: SpoolRecord[] = [];
      let bytes = 0;
      const want = this.#nextSequence;
      const maxBytes = this.#readBytes;
      scanWindow(
        window,
        this.#windowBase,
        scan,
        this.#windowBase + window.length >= limit,
        this.#host.maxRecordBytes,
        {
          record: (sequence, buf, start, end) => {
            if (sequence < want) return true;
            records.push(new SpoolReadRecord(sequence, buf, start, end));
            bytes += end - start;
            return records.length < maxRecords && bytes < maxBytes;
          },
          corrupt: (offset) => segment.skips.get(offset) ?? -1,
          skipped: (from, to, nextSequence) =>
            this.#host.corruption(segment, from, to, scan.previousSequence, nextSequence),
        },
      );
      const last = records[records.length - 1];
      if (last !== undefined) {
        const lent = this.#lent.get(window);
        if (lent !== undefined) lent.records += records.length;
        this.#nextSequence = last.sequence + 1;
        this.#host.delivered(last.sequence, segment, scan.pos);
        return { records, firstSequence: records[0]!.sequence, lastSequence: last.sequence };
      }
    }
  }

  /** The bytes from the scan position on: the last window when it still covers them, or a read. */
  async #readWindow(segment: SpoolSegment, limit: number): Promise<Buffer | null> {
    const scan = this.#scan;
    const window = this.#window;
    if (
      window !== null &&
      scan.need === 0 &&
      scan.pos >= this.#windowBase &&
      scan.pos < this.#windowBase + window.length &&
      (this.#windowBase + window.length < this.#windowLimit || limit === this.#windowLimit)
    ) {
      return window;
    }
    if (this.#file === null) {
      try {
        this.#file = await open(segment.path, 'r');
      } catch (err) {
        // Deleted after every consumer acknowledged it: start again from the live list.
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
        this.#segment = null;
        return null;
      }
    }
    const length = Math.min(limit - scan.pos, Math.max(this.#readBytes, scan.need));
    // Reads of (nearly) the full size recycle memory; short ones, as a trickle makes, do not
    // hold a full window each.
    const recycled = this.#recycle && length <= this.#readBytes && length * 2 >= this.#readBytes;
    const memory = recycled
      ? (this.#spare.pop() ?? Buffer.allocUnsafe(this.#readBytes))
      : Buffer.allocUnsafe(length);
    let got = 0;
    while (got < length) {
      const { bytesRead } = await this.#file.read(memory, got, length - got, scan.pos + got);
      if (bytesRead === 0) break;
      got += bytesRead;
    }
    const read = got === memory.length ? memory : memory.subarray(0, got);
    this.#setWindow(read);
    if (recycled) this.#lent.set(read, { memory, records: 0 });
    this.#windowBase = scan.pos;
    this.#windowLimit = limit;
    return read;
  }

  /** Makes `window` the one the scan reads; the last one is recycled when none of it is in use. */
  #setWindow(window: Buffer | null): void {
    const last = this.#window;
    this.#window = window;
    if (last === null || last === window) return;
    const lent = this.#lent.get(last);
    if (lent !== undefined && lent.records === 0) this.#settle(last, lent);
  }

  /** Every record of `window` is released and the scan has left it: its memory is spare. */
  #settle(window: Buffer, lent: LentWindow): void {
    this.#lent.delete(window);
    if (!this.#closed && this.#spare.length < SPARE_WINDOWS) this.#spare.push(lent.memory);
  }

  #pickSegment(): SpoolSegment | null {
    const segments = this.#host.segments();
    let chosen: SpoolSegment | null = segments[0] ?? null;
    for (const s of segments) if (s.firstSequence <= this.#nextSequence) chosen = s;
    if (chosen !== null) this.#enter(chosen);
    return chosen;
  }

  #enter(segment: SpoolSegment): void {
    this.#segment = segment;
    this.#scan = {
      pos: SEGMENT_HEADER_BYTES,
      previousSequence: segment.firstSequence - 1,
      corruptFrom: -1,
      need: 0,
    };
    this.#setWindow(null);
  }

  async #closeFile(): Promise<void> {
    const file = this.#file;
    this.#file = null;
    this.#setWindow(null);
    if (file !== null) await file.close();
  }
}

function positiveInteger(value: number, name: string): number {
  if (!Number.isSafeInteger(value) || value < 1) {
    throw new RangeError(`${name} must be a positive integer, got ${value}`);
  }
  return value;
}
