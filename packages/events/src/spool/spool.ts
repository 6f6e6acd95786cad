import { mkdir, open, readdir, readFile, rename, unlink, type FileHandle } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { PortcullisError, silentLogger, type Logger } from '@portcullis/core';
import {
  RECORD_HEADER_BYTES,
  SEGMENT_HEADER_BYTES,
  decodeSegmentHeader,
  encodeSegmentHeader,
  frameRecord,
  parseSegmentFileName,
  scanWindow,
  segmentFileName,
  type SegmentScan,
} from './segment-format.js';
import {
  SpoolReader,
  type SpoolReaderHost,
  type SpoolReaderOptions,
  type SpoolSegment,
} from './spool-reader.js';

/** What {@link Spool.append} does when the spool is full or the disk refuses writes. */
export type SpoolFullPolicy = 'fail-closed' | 'fail-open';

/** Writes `buffers` at `position` of a segment file; the seam a test uses to fake a full disk. */
export type SpoolWritev = (
  file: FileHandle,
  buffers: Buffer[],
  position: number,
) => Promise<{ bytesWritten: number }>;

/** Something the spool found unreadable or out of place, and what it did about it. */
export interface SpoolCorruptionReport {
  /**
   * `torn-tail`: the last segment ended in a partial record (a crash mid-write); it was truncated.
   * `corrupt-records`: unreadable bytes inside a segment (bad checksum, impossible length); they
   * were skipped and reading resumed at the next valid record.
   * `bad-segment`: a `.seg` file without a valid header; ignored (an empty or torn last one is
   * removed).
   * `unknown-file`: a file the spool did not write; ignored.
   * `bad-offsets`: the consumer offsets file was unreadable; consumers restart from the oldest
   * record (delivered again, never lost).
   */
  readonly kind: 'torn-tail' | 'corrupt-records' | 'bad-segment' | 'unknown-file' | 'bad-offsets';
  readonly file: string;
  /** Offset in the file where the bad bytes start (0 for whole-file reports). */
  readonly offset: number;
  readonly bytes: number;
  /** Records lost, from the gap in sequence numbers around the bad bytes; 0 when unknown. */
  readonly records: number;
  readonly message: string;
}

/** Options of {@link Spool.open}. */
export interface SpoolOptions {
  /** The spool directory (created when missing). One process per directory. */
  readonly dir: string;
  /** Most bytes of segment files on disk, counting buffered records (default 1 GiB). */
  readonly maxBytes?: number;
  /**
   * A segment is closed and a new one started past this size (default an eighth of maxBytes, at
   * most 64 MiB). Deletion frees whole segments, so maxBytes must be at least twice this.
   */
  readonly segmentBytes?: number;
  /** Longest payload accepted (default 4 MiB); longer ones are refused by append. */
  readonly maxRecordBytes?: number;
  /** Buffered bytes that start a write at once (default 1 MiB). */
  readonly batchBytes?: number;
  /** Longest a record waits in memory before its batch is written and fsync'ed (default 5 ms). */
  readonly batchDelayMs?: number;
  /** What append does when full (default `fail-closed`). */
  readonly whenFull?: SpoolFullPolicy;
  /** `fail-open` logs dropped events at most once per this interval (default 10 s). */
  readonly dropWarningIntervalMs?: number;
  /** After a failed write, the next try comes this much later, or at the next flush (default 1 s). */
  readonly retryDelayMs?: number;
  readonly logger?: Logger;
  /** Called for each corruption found (also logged, and counted in the metrics). */
  readonly onCorruption?: (report: SpoolCorruptionReport) => void;
  /** Replaces the segment write call; for fault-injection tests. */
  readonly writev?: SpoolWritev;
}

/** How far a consumer is behind. */
export interface SpoolLag {
  /** Records appended after the consumer's acknowledged position (by sequence distance). */
  readonly records: number;
  /**
   * Bytes after the acknowledged position, buffered ones included; exact when the consumer
   * acknowledged a whole batch, otherwise counted from the batch or segment it is in.
   */
  readonly bytes: number;
}

type ResolvedOptions = Required<Omit<SpoolOptions, 'logger' | 'onCorruption' | 'writev'>> &
  SpoolOptions;

interface Group {
  /** Set when the group starts a new segment, the first sequence of that segment; else 0. */
  newSegment: number;
  readonly chunks: Buffer[];
  bytes: number;
  count: number;
  lastSequence: number;
}

interface Consumer {
  acked: number;
  persisted: number;
  reader: SpoolReader | null;
  /** Where the acknowledged position is on disk, when a reader told. */
  position: { segment: SpoolSegment; offset: number } | null;
  /** Ends of the batches handed out and not yet acknowledged. */
  delivered: { sequence: number; segment: SpoolSegment; offset: number }[];
}

interface Waiter {
  readonly sequence: number;
  readonly resolve: () => void;
  readonly reject: (err: unknown) => void;
}

const OFFSETS_FILE = 'offsets.json';
const OFFSETS_TEMP = 'offsets.json.tmp';
const LOCK_FILE = 'lock';
const OFFSETS_VERSION = 1;
const CONSUMER_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const openDirs = new Set<string>();

const defaultWritev: SpoolWritev = (file, buffers, position) => file.writev(buffers, position);

/**
 * A durable on-disk queue of event records between the gateway and its sinks.
 *
 * Records go to append-only segment files (`<first sequence>.seg`), each framed with its length,
 * a CRC-32C and a sequence number that increases through the spool. {@link Spool.append} only
 * copies the payload into memory and returns its sequence; a background writer writes batches
 * (bounded by {@link SpoolOptions.batchBytes} and {@link SpoolOptions.batchDelayMs}) with one
 * `writev` and one `fdatasync` each. {@link Spool.flush} resolves once everything appended before
 * it is durable.
 *
 * Sinks read through named consumers ({@link Spool.openReader}); each sees only durable records,
 * from its acknowledged position on, and acknowledges with {@link Spool.ack}, which replaces a
 * small offsets file atomically. Segments every consumer has acknowledged are deleted. On open
 * the spool checks every segment: a torn tail is truncated, corrupt records are skipped (resync
 * to the next valid record), strays are ignored, each with a report; readers restart at each
 * consumer's acknowledged position, so unacknowledged records come again (at least once).
 */
export class Spool {
  readonly #dir: string;
  readonly #maxBytes: number;
  readonly #segmentBytes: number;
  readonly #maxRecordBytes: number;
  readonly #batchBytes: number;
  readonly #batchDelayMs: number;
  readonly #policy: SpoolFullPolicy;
  readonly #dropWarningIntervalMs: number;
  readonly #retryDelayMs: number;
  readonly #logger: Logger;
  readonly #onCorruption: ((report: SpoolCorruptionReport) => void) | undefined;
  readonly #writev: SpoolWritev;
  readonly #segments: SpoolSegment[];
  readonly #consumers = new Map<string, Consumer>();

  #file: FileHandle;
  #nextSequence: number;
  #durableSequence: number;
  /** Bytes of segment files plus buffered records: what maxBytes bounds. */
  #usedBytes: number;
  /** Bytes the last segment will have once everything buffered is written. */
  #activeBytes: number;

  #stage: Buffer = Buffer.alloc(0);
  #stageStart = 0;
  #stageUsed = 0;
  readonly #groups: Group[] = [];
  #bufferedBytes = 0;
  #dueSequence = 0;
  #writing: Promise<void> | null = null;
  #timer: NodeJS.Timeout | null = null;
  #retryTimer: NodeJS.Timeout | null = null;
  #failure: PortcullisError | null = null;
  #retryWanted = false;
  #waiters: Waiter[] = [];
  #more: { promise: Promise<void>; resolve: () => void } | null = null;

  #offsetsChain: Promise<void> = Promise.resolve();
  #offsetsPending: Promise<void> | null = null;

  #closing = false;
  #closed = false;

  #droppedEvents = 0;
  #droppedSinceWarning = 0;
  #lastDropWarning = -Infinity;
  #corruptedRecords = 0;
  #corruptedBytes = 0;
  #tornTailBytes = 0;
  #lastFsyncMs = 0;

  readonly #readerHost: SpoolReaderHost;

  private constructor(init: {
    options: ResolvedOptions;
    logger: Logger;
    segments: SpoolSegment[];
    file: FileHandle;
    nextSequence: number;
    acks: Map<string, number>;
    counters: { records: number; bytes: number; torn: number };
  }) {
    const o = init.options;
    this.#dir = o.dir;
    this.#maxBytes = o.maxBytes;
    this.#segmentBytes = o.segmentBytes;
    this.#maxRecordBytes = o.maxRecordBytes;
    this.#batchBytes = o.batchBytes;
    this.#batchDelayMs = o.batchDelayMs;
    this.#policy = o.whenFull;
    this.#dropWarningIntervalMs = o.dropWarningIntervalMs;
    this.#retryDelayMs = o.retryDelayMs;
    this.#logger = init.logger;
    this.#onCorruption = o.onCorruption;
    this.#writev = o.writev ?? defaultWritev;
    this.#segments = init.segments;
    this.#file = init.file;
    this.#nextSequence = init.nextSequence;
    this.#durableSequence = init.nextSequence - 1;
    this.#usedBytes = init.segments.reduce((sum, s) => sum + s.size, 0);
    this.#activeBytes = SEGMENT_HEADER_BYTES;
    this.#corruptedRecords = init.counters.records;
    this.#corruptedBytes = init.counters.bytes;
    this.#tornTailBytes = init.counters.torn;
    for (const [name, acked] of init.acks) {
      this.#consumers.set(name, {
        acked,
        persisted: acked,
        reader: null,
        position: null,
        delivered: [],
      });
    }
    this.#readerHost = this.#makeReaderHost();
  }

  /**
   * Opens (or creates) the spool in `options.dir`: checks every segment, truncates a torn tail,
   * reports what it skipped, and starts a new segment for this run's records. Throws
   * `PCL_ERR_EVENTS_READ` when a segment is in a newer format, `PCL_ERR_EVENTS_WRITE` when the
   * directory cannot be used or another process has it open.
   */
  static async open(options: SpoolOptions): Promise<Spool> {
    const maxBytes = options.maxBytes ?? 1024 * 1024 * 1024;
    const resolved: ResolvedOptions = {
      ...options,
      dir: resolve(options.dir),
      maxBytes,
      segmentBytes:
        options.segmentBytes ??
        Math.max(4096, Math.min(64 * 1024 * 1024, Math.floor(maxBytes / 8))),
      maxRecordBytes: options.maxRecordBytes ?? 4 * 1024 * 1024,
      batchBytes: options.batchBytes ?? 1024 * 1024,
      batchDelayMs: options.batchDelayMs ?? 5,
      whenFull: options.whenFull ?? 'fail-closed',
      dropWarningIntervalMs: options.dropWarningIntervalMs ?? 10_000,
      retryDelayMs: options.retryDelayMs ?? 1000,
    };
    for (const key of ['maxBytes', 'segmentBytes', 'maxRecordBytes', 'batchBytes'] as const) {
      const value = resolved[key];
      if (!Number.isSafeInteger(value) || value < 1) {
        throw new RangeError(`spool ${key} must be a positive integer, got ${value}`);
      }
    }
    for (const key of ['batchDelayMs', 'dropWarningIntervalMs', 'retryDelayMs'] as const) {
      const value = resolved[key];
      if (!Number.isFinite(value) || value < 0) {
        throw new RangeError(`spool ${key} must be a non-negative number, got ${value}`);
      }
    }
    if (resolved.maxRecordBytes > 0xffffffff) {
      throw new RangeError('spool maxRecordBytes must fit 32 bits');
    }
    if (resolved.segmentBytes < SEGMENT_HEADER_BYTES + RECORD_HEADER_BYTES) {
      throw new RangeError(`spool segmentBytes must be at least ${SEGMENT_HEADER_BYTES + 16}`);
    }
    if (resolved.maxBytes < 2 * resolved.segmentBytes) {
      throw new RangeError('spool maxBytes must be at least twice segmentBytes');
    }
    if (resolved.whenFull !== 'fail-closed' && resolved.whenFull !== 'fail-open') {
      throw new RangeError(`spool whenFull must be fail-closed or fail-open`);
    }
    const logger = options.logger ?? silentLogger;
    const dir = resolved.dir;
    try {
      await mkdir(dir, { recursive: true, mode: 0o700 });
    } catch (err) {
      throw writeError(`cannot create spool directory ${dir}`, err);
    }
    await lockDirectory(dir);
    try {
      return await Spool.#recover(resolved, logger);
    } catch (err) {
      await unlockDirectory(dir);
      throw err;
    }
  }

  static async #recover(options: ResolvedOptions, logger: Logger): Promise<Spool> {
    const dir = options.dir;
    const reports: SpoolCorruptionReport[] = [];
    const report = (r: SpoolCorruptionReport): void => {
      reports.push(r);
      logger.warn({ spool: dir, ...r }, `spool: ${r.message}`);
      options.onCorruption?.(r);
    };
    const counters = { records: 0, bytes: 0, torn: 0 };

    const names = (await readdir(dir, { withFileTypes: true }).catch((err: unknown) => {
      throw writeError(`cannot read spool directory ${dir}`, err);
    })) as { name: string; isFile(): boolean }[];
    const segmentNames: { name: string; first: number }[] = [];
    for (const entry of names) {
      const first = parseSegmentFileName(entry.name);
      if (first > 0 && entry.isFile()) segmentNames.push({ name: entry.name, first });
      else if (entry.name === OFFSETS_TEMP) await unlink(join(dir, entry.name)).catch(() => {});
      else if (entry.name !== OFFSETS_FILE && entry.name !== LOCK_FILE) {
        report({
          kind: 'unknown-file',
          file: entry.name,
          offset: 0,
          bytes: 0,
          records: 0,
          message: `ignoring ${entry.name}: not a spool file`,
        });
      }
    }
    segmentNames.sort((a, b) => a.first - b.first);

    // Headers first: a newer format stops everything before anything is changed.
    const headed: { name: string; first: number; size: number }[] = [];
    for (let i = 0; i < segmentNames.length; i++) {
      const { name, first } = segmentNames[i]!;
      const path = join(dir, name);
      const file = await open(path, 'r');
      let size: number;
      let got: number;
      const header = Buffer.alloc(SEGMENT_HEADER_BYTES);
      try {
        size = (await file.stat()).size;
        got = (await file.read(header, 0, SEGMENT_HEADER_BYTES, 0)).bytesRead;
      } finally {
        await file.close();
      }
      const check = decodeSegmentHeader(header.subarray(0, got));
      if (check.ok && check.firstSequence === first) {
        headed.push({ name, first, size });
        continue;
      }
      if (!check.ok && check.newerVersion !== null) {
        throw new PortcullisError(
          'PCL_ERR_EVENTS_READ',
          `spool segment ${path} is in format version ${check.newerVersion}; this build reads ` +
            `version 1 and older. A newer Portcullis wrote it: let that build drain the spool, ` +
            `or move the directory aside`,
        );
      }
      const reason = check.ok ? `header says first sequence ${check.firstSequence}` : check.reason;
      const last = i === segmentNames.length - 1;
      if (last && size < SEGMENT_HEADER_BYTES) {
        // Created just before a crash, header not yet durable: nothing in it was ever promised.
        await unlink(path);
        if (size > 0) {
          counters.torn += size;
          report({
            kind: 'torn-tail',
            file: name,
            offset: 0,
            bytes: size,
            records: 0,
            message: `removed ${name}: ${reason} (torn at creation)`,
          });
        }
        continue;
      }
      report({
        kind: 'bad-segment',
        file: name,
        offset: 0,
        bytes: size,
        records: 0,
        message: `ignoring ${name}: ${reason}`,
      });
    }

    const segments: SpoolSegment[] = [];
    let highest = 0;
    for (let i = 0; i < headed.length; i++) {
      const { name, first, size } = headed[i]!;
      const path = join(dir, name);
      const next = headed[i + 1];
      const last = next === undefined;
      const segment: SpoolSegment = {
        firstSequence: first,
        path,
        size,
        lastSequence: first - 1,
        skips: new Map(),
      };
      highest = Math.max(highest, first - 1);
      let tail: { from: number; to: number } | null = null;
      const file = await open(path, last ? 'r+' : 'r');
      try {
        await scanFile(file, size, options.maxRecordBytes, {
          record: (sequence) => {
            segment.lastSequence = sequence;
            return true;
          },
          corrupt: () => -1,
          skipped: (from, to, nextSequence) => {
            if (nextSequence < 0 && last) {
              tail = { from, to };
              return;
            }
            const upTo = nextSequence >= 0 ? nextSequence : (next?.first ?? 0);
            const records = Math.max(0, upTo - segment.lastSequence - 1);
            segment.skips.set(from, to);
            counters.records += records;
            counters.bytes += to - from;
            report({
              kind: 'corrupt-records',
              file: name,
              offset: from,
              bytes: to - from,
              records,
              message: `skipped ${to - from} unreadable bytes at offset ${from} of ${name} (${records} records lost)`,
            });
          },
        });
        const torn = tail as { from: number; to: number } | null;
        if (torn !== null) {
          await file.truncate(torn.from);
          await file.sync();
          segment.size = torn.from;
          counters.torn += torn.to - torn.from;
          report({
            kind: 'torn-tail',
            file: name,
            offset: torn.from,
            bytes: torn.to - torn.from,
            records: 0,
            message: `truncated a torn tail of ${torn.to - torn.from} bytes at offset ${torn.from} of ${name}`,
          });
        }
      } finally {
        await file.close();
      }
      highest = Math.max(highest, segment.lastSequence);
      if (segment.lastSequence < first && segment.skips.size === 0) {
        // Nothing in it: an empty segment from an earlier run.
        await unlink(path);
        continue;
      }
      segments.push(segment);
    }

    const acks = await readOffsets(dir, (message, err) => {
      report({ kind: 'bad-offsets', file: OFFSETS_FILE, offset: 0, bytes: 0, records: 0, message });
      logger.warn({ err }, message);
    });
    const oldest = segments[0]?.firstSequence ?? highest + 1;
    for (const [name, acked] of acks) {
      highest = Math.max(highest, acked);
      // Acknowledged past what survived (a lost tail): keep the position, nothing to redo.
      if (acked < oldest - 1) acks.set(name, oldest - 1);
    }

    const nextSequence = highest + 1;
    const path = join(dir, segmentFileName(nextSequence));
    let file: FileHandle;
    try {
      file = await open(path, 'w', 0o600);
      await writeFully(file, defaultWritev, [encodeSegmentHeader(nextSequence)], 0);
      await file.datasync();
      await syncDirectory(dir);
    } catch (err) {
      throw writeError(`cannot create spool segment ${path}`, err);
    }
    segments.push({
      firstSequence: nextSequence,
      path,
      size: SEGMENT_HEADER_BYTES,
      lastSequence: nextSequence - 1,
      skips: new Map(),
    });
    const spool = new Spool({ options, logger, segments, file, nextSequence, acks, counters });
    if (acks.size > 0) await spool.#deleteAcknowledged();
    return spool;
  }

  // --- writing -------------------------------------------------------------------------------

  /**
   * Buffers one record and returns its sequence (1, 2, 3, … through the life of the spool); the
   * record is durable once a later {@link flush} resolves (or within the batch delay). Never
   * blocks. When the spool is full or the disk refuses writes: with `fail-closed` throws
   * `PCL_ERR_SPOOL_FULL` (`PCL_ERR_EVENTS_WRITE` for other write faults); with `fail-open`
   * drops the record, counts it in {@link droppedEvents} and returns 0. A payload above
   * `maxRecordBytes` throws `PCL_ERR_EVENTS_WRITE` under either policy.
   */
  append(payload: string | Uint8Array): number {
    if (this.#closing) throw new PortcullisError('PCL_ERR_EVENTS_WRITE', 'spool is closed');
    if (this.#failure !== null) return this.#refuse(this.#failure);
    const isString = typeof payload === 'string';
    const bound = isString ? payload.length * 3 : payload.length;
    if (this.#stage.length - this.#stageUsed < RECORD_HEADER_BYTES + bound) {
      const exact = isString ? Buffer.byteLength(payload, 'utf8') : payload.length;
      if (exact > this.#maxRecordBytes) throw this.#tooLarge(exact);
      if (this.#stage.length - this.#stageUsed < RECORD_HEADER_BYTES + exact) {
        this.#cut();
        this.#stage = Buffer.allocUnsafe(
          Math.max(this.#batchBytes, 64 * 1024, RECORD_HEADER_BYTES + exact),
        );
        this.#stageStart = 0;
        this.#stageUsed = 0;
      }
    }
    const at = this.#stageUsed;
    const stage = this.#stage;
    const length = isString
      ? stage.write(payload, at + RECORD_HEADER_BYTES, 'utf8')
      : (stage.set(payload, at + RECORD_HEADER_BYTES), payload.length);
    if (length > this.#maxRecordBytes) throw this.#tooLarge(length);
    const recordBytes = RECORD_HEADER_BYTES + length;
    const roll =
      this.#activeBytes > SEGMENT_HEADER_BYTES &&
      this.#activeBytes + recordBytes > this.#segmentBytes;
    const needed = recordBytes + (roll ? SEGMENT_HEADER_BYTES : 0);
    if (this.#usedBytes + needed > this.#maxBytes) return this.#refuse(null);
    const sequence = this.#nextSequence++;
    frameRecord(stage, at, length, sequence);
    let group = this.#groups[this.#groups.length - 1];
    if (roll || group === undefined) {
      // Bytes staged so far belong to the group before the new segment.
      if (roll && group !== undefined) this.#cut();
      group = { newSegment: roll ? sequence : 0, chunks: [], bytes: 0, count: 0, lastSequence: 0 };
      this.#groups.push(group);
    }
    this.#stageUsed = at + recordBytes;
    if (roll) this.#activeBytes = SEGMENT_HEADER_BYTES;
    group.bytes += recordBytes;
    group.count++;
    group.lastSequence = sequence;
    this.#bufferedBytes += recordBytes;
    this.#usedBytes += needed;
    this.#activeBytes += recordBytes;
    if (this.#bufferedBytes >= this.#batchBytes) this.#kick();
    else if (this.#timer === null) {
      this.#timer = setTimeout(this.#onTimer, this.#batchDelayMs);
      this.#timer.unref();
    }
    return sequence;
  }

  /**
   * Resolves once every record appended before the call is durable (written and fsync'ed).
   * Rejects with `PCL_ERR_SPOOL_FULL` or `PCL_ERR_EVENTS_WRITE` when the write failed; the
   * records stay buffered and the spool keeps trying.
   */
  flush(): Promise<void> {
    const target = this.#nextSequence - 1;
    if (target <= this.#durableSequence) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      this.#waiters.push({ sequence: target, resolve, reject });
      this.#dueSequence = Math.max(this.#dueSequence, target);
      if (this.#failure !== null) this.#retryNow();
      else this.#kick();
    });
  }

  readonly #onTimer = (): void => {
    this.#timer = null;
    this.#dueSequence = Math.max(this.#dueSequence, this.#nextSequence - 1);
    this.#kick();
  };

  /** Moves the staged bytes not yet in a group's chunks into the last group. */
  #cut(): void {
    if (this.#stageUsed === this.#stageStart) return;
    this.#groups[this.#groups.length - 1]!.chunks.push(
      this.#stage.subarray(this.#stageStart, this.#stageUsed),
    );
    this.#stageStart = this.#stageUsed;
  }

  #kick(): void {
    if (this.#writing !== null || this.#failure !== null) return;
    this.#writing = this.#drain().finally(() => {
      this.#writing = null;
      // An append, flush or retry may have come in after the loop's last look.
      if (this.#failure !== null && this.#retryWanted) this.#retryNow();
      else if (this.#isDue()) this.#kick();
    });
  }

  /** Whether the oldest buffered group should be written now rather than at the timer. */
  #isDue(): boolean {
    const first = this.#groups[0];
    if (first === undefined || first.count === 0) return false;
    return (
      this.#bufferedBytes >= this.#batchBytes ||
      this.#dueSequence >= first.lastSequence - first.count + 1
    );
  }

  async #drain(): Promise<void> {
    for (;;) {
      const first = this.#groups[0];
      if (first === undefined || first.count === 0) return;
      if (!this.#isDue()) {
        if (this.#timer === null) {
          this.#timer = setTimeout(this.#onTimer, this.#batchDelayMs);
          this.#timer.unref();
        }
        return;
      }
      if (this.#timer !== null) {
        clearTimeout(this.#timer);
        this.#timer = null;
      }
      this.#cut();
      const group = this.#groups.shift()!;
      try {
        await this.#writeGroup(group);
      } catch (err) {
        await this.#writeFailed(group, err);
        return;
      }
      this.#bufferedBytes -= group.bytes;
      this.#durableSequence = group.lastSequence;
      if (this.#failure !== null) {
        this.#logger.info({ spool: this.#dir }, 'spool: writes succeed again');
        this.#failure = null;
      }
      while (this.#waiters.length > 0 && this.#waiters[0]!.sequence <= this.#durableSequence) {
        this.#waiters.shift()!.resolve();
      }
      this.#signalMore();
    }
  }

  async #writeGroup(group: Group): Promise<void> {
    if (group.newSegment !== 0) {
      await this.#roll(group.newSegment);
      group.newSegment = 0;
    }
    const segment = this.#segments[this.#segments.length - 1]!;
    await writeFully(this.#file, this.#writev, group.chunks, segment.size);
    const started = performance.now();
    await this.#file.datasync();
    this.#lastFsyncMs = performance.now() - started;
    segment.size += group.bytes;
    segment.lastSequence = group.lastSequence;
  }

  /** Starts a new segment; the current one is already durable and is not written again. */
  async #roll(firstSequence: number): Promise<void> {
    const path = join(this.#dir, segmentFileName(firstSequence));
    const file = await open(path, 'w', 0o600);
    try {
      await writeFully(file, this.#writev, [encodeSegmentHeader(firstSequence)], 0);
      await file.datasync();
      await syncDirectory(this.#dir);
    } catch (err) {
      await file.close().catch(() => {});
      await unlink(path).catch(() => {});
      throw err;
    }
    const previous = this.#file;
    this.#file = file;
    this.#segments.push({
      firstSequence,
      path,
      size: SEGMENT_HEADER_BYTES,
      lastSequence: firstSequence - 1,
      skips: new Map(),
    });
    await previous.close();
  }

  async #writeFailed(group: Group, err: unknown): Promise<void> {
    this.#groups.unshift(group);
    const segment = this.#segments[this.#segments.length - 1]!;
    // Cut off whatever part of the batch reached the file; the next try writes it whole.
    await this.#file.truncate(segment.size).catch(() => {});
    const code = (err as NodeJS.ErrnoException).code;
    const full = code === 'ENOSPC' || code === 'EDQUOT';
    const failure = full
      ? new PortcullisError(
          'PCL_ERR_SPOOL_FULL',
          `event spool cannot write: disk full (${code ?? 'unknown'})`,
          { cause: err },
        )
      : writeError('event spool cannot write', err);
    if (this.#failure === null) {
      this.#logger.error({ err, spool: this.#dir }, 'spool: write failed; retrying');
    }
    this.#failure = failure;
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const waiter of waiters) waiter.reject(failure);
    if (this.#retryTimer === null && !this.#closing) {
      this.#retryTimer = setTimeout(() => {
        this.#retryTimer = null;
        this.#retryNow();
      }, this.#retryDelayMs);
      this.#retryTimer.unref();
    }
  }

  #retryNow(): void {
    if (this.#writing !== null) {
      // The write in flight decides; if it fails, its end comes back here.
      this.#retryWanted = true;
      return;
    }
    this.#retryWanted = false;
    if (this.#retryTimer !== null) {
      clearTimeout(this.#retryTimer);
      this.#retryTimer = null;
    }
    const failure = this.#failure;
    this.#failure = null;
    this.#dueSequence = Math.max(this.#dueSequence, this.#nextSequence - 1);
    this.#kick();
    // Appends stay refused until a write has gone through.
    if (this.#writing !== null) this.#failure = failure;
  }

  /** Applies the full policy; `failure` null means maxBytes (the error is built only if needed). */
  #refuse(failure: PortcullisError | null): number {
    if (this.#policy === 'fail-closed') throw failure ?? this.#fullError();
    this.#droppedEvents++;
    this.#droppedSinceWarning++;
    const now = performance.now();
    if (now - this.#lastDropWarning >= this.#dropWarningIntervalMs) {
      this.#logger.warn(
        { spool: this.#dir, dropped: this.#droppedSinceWarning, total: this.#droppedEvents },
        `spool: dropping events (fail-open): ${(failure ?? this.#fullError()).message}`,
      );
      this.#lastDropWarning = now;
      this.#droppedSinceWarning = 0;
    }
    return 0;
  }

  #fullError(): PortcullisError {
    return new PortcullisError(
      'PCL_ERR_SPOOL_FULL',
      `event spool is full (${this.#usedBytes} of ${this.#maxBytes} bytes)`,
    );
  }

  #tooLarge(bytes: number): PortcullisError {
    return new PortcullisError(
      'PCL_ERR_EVENTS_WRITE',
      `event of ${bytes} bytes exceeds the spool's maxRecordBytes (${this.#maxRecordBytes})`,
    );
  }

  // --- reading -------------------------------------------------------------------------------

  /**
   * Opens the reader of consumer `name` (registering the consumer, from the oldest record still
   * in the spool, when it is new). It starts after the consumer's acknowledged position. Throws
   * when a reader of that name is already open.
   */
  async openReader(name: string, options: SpoolReaderOptions = {}): Promise<SpoolReader> {
    this.#assertOpen();
    if (!CONSUMER_NAME.test(name)) {
      throw new RangeError(`spool consumer name must match ${String(CONSUMER_NAME)}: ${name}`);
    }
    let consumer = this.#consumers.get(name);
    if (consumer === undefined) {
      const start = this.#segments[0]!.firstSequence - 1;
      consumer = { acked: start, persisted: -1, reader: null, position: null, delivered: [] };
      this.#consumers.set(name, consumer);
      await this.#saveOffsets();
    }
    if (consumer.reader !== null) throw new Error(`spool consumer ${name} already has a reader`);
    const reader = new SpoolReader(this.#hostFor(name), name, consumer.acked + 1, options);
    consumer.reader = reader;
    consumer.delivered = [];
    return reader;
  }

  /**
   * Persists that consumer `name` is done with every record up to `sequence` (an atomic replace
   * of the offsets file), then deletes the segments every consumer is done with. Lower sequences
   * than the current position are ignored.
   */
  async ack(name: string, sequence: number): Promise<void> {
    this.#assertOpen();
    const consumer = this.#consumers.get(name);
    if (consumer === undefined) throw new RangeError(`unknown spool consumer ${name}`);
    if (!Number.isSafeInteger(sequence) || sequence > this.#durableSequence) {
      throw new RangeError(
        `cannot acknowledge ${sequence}: the spool's last durable record is ${this.#durableSequence}`,
      );
    }
    if (sequence <= consumer.acked) return;
    consumer.acked = sequence;
    const delivered = consumer.delivered;
    let done = 0;
    while (done < delivered.length && delivered[done]!.sequence <= sequence) {
      const d = delivered[done++]!;
      consumer.position = { segment: d.segment, offset: d.offset };
    }
    delivered.splice(0, done);
    await this.#saveOffsets();
  }

  /** Forgets a consumer, so it no longer holds segments on disk. */
  async removeConsumer(name: string): Promise<void> {
    this.#assertOpen();
    const consumer = this.#consumers.get(name);
    if (consumer === undefined) return;
    await consumer.reader?.close();
    this.#consumers.delete(name);
    await this.#saveOffsets();
  }

  /** The registered consumers and their acknowledged sequence. */
  consumers(): ReadonlyMap<string, number> {
    return new Map([...this.#consumers].map(([name, c]) => [name, c.acked]));
  }

  // --- metrics -------------------------------------------------------------------------------

  /** How far consumer `name` is behind the last appended record. */
  lag(name: string): SpoolLag {
    const consumer = this.#consumers.get(name);
    if (consumer === undefined) throw new RangeError(`unknown spool consumer ${name}`);
    const records = Math.max(0, this.#nextSequence - 1 - consumer.acked);
    let position = consumer.position;
    if (position === null || !this.#segments.includes(position.segment)) {
      let segment = this.#segments[0]!;
      for (const s of this.#segments) if (s.firstSequence <= consumer.acked + 1) segment = s;
      position = { segment, offset: SEGMENT_HEADER_BYTES };
    }
    let bytes = this.#bufferedBytes;
    if (records > 0) {
      let counting = false;
      for (const s of this.#segments) {
        if (s === position.segment) {
          counting = true;
          bytes += Math.max(0, s.size - position.offset);
        } else if (counting) bytes += s.size - SEGMENT_HEADER_BYTES;
      }
    } else bytes = 0;
    return { records, bytes };
  }

  /** Bytes of segment files on disk (records written, durable or about to be). */
  get diskBytes(): number {
    return this.#usedBytes - this.#bufferedBytes;
  }

  /** Bytes appended and not yet written to disk. */
  get bufferedBytes(): number {
    return this.#bufferedBytes;
  }

  /** The sequence of the last appended record (0 before the first). */
  get lastSequence(): number {
    return this.#nextSequence - 1;
  }

  /** The sequence of the last durable record; readers see up to here. */
  get durableSequence(): number {
    return this.#durableSequence;
  }

  /** Records dropped under `fail-open` since the spool opened. */
  get droppedEvents(): number {
    return this.#droppedEvents;
  }

  /** Records lost to corruption (skipped) since the spool opened, from sequence gaps. */
  get corruptedRecords(): number {
    return this.#corruptedRecords;
  }

  /** Unreadable bytes skipped since the spool opened (torn tails not included). */
  get corruptedBytes(): number {
    return this.#corruptedBytes;
  }

  /** Bytes of torn tails truncated when the spool opened. */
  get tornTailBytes(): number {
    return this.#tornTailBytes;
  }

  /** Milliseconds the last fdatasync of a batch took. */
  get lastFsyncMs(): number {
    return this.#lastFsyncMs;
  }

  /** Whether appends are refused because the disk refused the last write. */
  get failing(): boolean {
    return this.#failure !== null;
  }

  // --- closing -------------------------------------------------------------------------------

  /**
   * Writes what is buffered, closes readers (their pending reads resolve with null) and files,
   * and releases the directory. Rejects when the last records could not be made durable.
   */
  async close(): Promise<void> {
    if (this.#closing) return;
    this.#closing = true;
    let failed: unknown = null;
    try {
      if (this.#failure !== null) this.#retryNow();
      await this.flush();
    } catch (err) {
      failed = err;
    }
    if (this.#timer !== null) clearTimeout(this.#timer);
    if (this.#retryTimer !== null) clearTimeout(this.#retryTimer);
    this.#closed = true;
    this.#signalMore();
    for (const consumer of this.#consumers.values()) await consumer.reader?.close();
    await this.#writing?.catch(() => {});
    await this.#offsetsChain;
    await this.#file.close().catch(() => {});
    await unlockDirectory(this.#dir);
    if (failed !== null) throw failed;
  }

  #assertOpen(): void {
    if (this.#closing) throw new PortcullisError('PCL_ERR_EVENTS_WRITE', 'spool is closed');
  }

  // --- internals shared with readers ---------------------------------------------------------

  #signalMore(): void {
    const more = this.#more;
    this.#more = null;
    more?.resolve();
  }

  #makeReaderHost(): SpoolReaderHost {
    return {
      maxRecordBytes: this.#maxRecordBytes,
      segments: () => this.#segments,
      durableSequence: () => this.#durableSequence,
      isClosed: () => this.#closed,
      waitForMore: (sequence) => {
        if (this.#closed || this.#durableSequence > sequence) return Promise.resolve();
        if (this.#more === null) {
          let resolve!: () => void;
          const promise = new Promise<void>((r) => (resolve = r));
          this.#more = { promise, resolve };
        }
        return this.#more.promise;
      },
      ack: () => Promise.reject(new Error('unreachable')),
      delivered: () => {},
      corruption: (segment, from, to, previousSequence, nextSequence) => {
        const records = nextSequence >= 0 ? Math.max(0, nextSequence - previousSequence - 1) : 0;
        this.#corruptedBytes += to - from;
        this.#corruptedRecords += records;
        segment.skips.set(from, to);
        const name = segment.path.slice(this.#dir.length + 1);
        const r: SpoolCorruptionReport = {
          kind: 'corrupt-records',
          file: name,
          offset: from,
          bytes: to - from,
          records,
          message: `skipped ${to - from} unreadable bytes at offset ${from} of ${name} while reading (${records} records lost)`,
        };
        this.#logger.warn({ spool: this.#dir, ...r }, `spool: ${r.message}`);
        this.#onCorruption?.(r);
      },
      release: () => {},
    };
  }

  #hostFor(name: string): SpoolReaderHost {
    const base = this.#readerHost;
    return {
      ...base,
      ack: (sequence) => this.ack(name, sequence),
      delivered: (sequence, segment, offset) => {
        this.#consumers.get(name)?.delivered.push({ sequence, segment, offset });
      },
      release: (reader) => {
        const consumer = this.#consumers.get(name);
        if (consumer?.reader === reader) consumer.reader = null;
      },
    };
  }

  // --- offsets and deletion ------------------------------------------------------------------

  /** Writes the offsets file with the acknowledgements as they are when the write starts. */
  #saveOffsets(): Promise<void> {
    if (this.#offsetsPending !== null) return this.#offsetsPending;
    const pending = this.#offsetsChain.then(async () => {
      this.#offsetsPending = null;
      const snapshot = new Map([...this.#consumers].map(([name, c]) => [name, c.acked]));
      await writeOffsets(this.#dir, snapshot);
      for (const [name, acked] of snapshot) {
        const consumer = this.#consumers.get(name);
        if (consumer !== undefined) consumer.persisted = Math.max(consumer.persisted, acked);
      }
      await this.#deleteAcknowledged();
    });
    this.#offsetsPending = pending;
    this.#offsetsChain = pending.catch(() => {});
    return pending;
  }

  /** Deletes the oldest segments while every consumer has durably acknowledged all of them. */
  async #deleteAcknowledged(): Promise<void> {
    if (this.#consumers.size === 0) return;
    let floor = Infinity;
    for (const c of this.#consumers.values()) floor = Math.min(floor, c.persisted);
    let freed = false;
    while (this.#segments.length > 1) {
      const next = this.#segments[1]!;
      if (floor < next.firstSequence - 1) break;
      const segment = this.#segments.shift()!;
      await unlink(segment.path).catch((err: unknown) => {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
          this.#logger.warn({ err, path: segment.path }, 'spool: cannot delete a segment');
        }
      });
      this.#usedBytes -= segment.size;
      freed = true;
    }
    if (freed && this.#failure !== null && this.#failure.code === 'PCL_ERR_SPOOL_FULL') {
      this.#retryNow();
    }
  }
}

/** Scans a whole segment file, window by window. */
async function scanFile(
  file: FileHandle,
  size: number,
  maxRecordBytes: number,
  visitor: Parameters<typeof scanWindow>[5],
): Promise<void> {
  const scan: SegmentScan = {
    pos: SEGMENT_HEADER_BYTES,
    previousSequence: -1,
    corruptFrom: -1,
    need: 0,
  };
  const header = Buffer.alloc(SEGMENT_HEADER_BYTES);
  await file.read(header, 0, SEGMENT_HEADER_BYTES, 0);
  const check = decodeSegmentHeader(header);
  scan.previousSequence = check.ok ? check.firstSequence - 1 : 0;
  const windowBytes = 1024 * 1024;
  while (scan.pos < size) {
    const length = Math.min(size - scan.pos, Math.max(windowBytes, scan.need));
    const buf = Buffer.allocUnsafe(length);
    let got = 0;
    while (got < length) {
      const { bytesRead } = await file.read(buf, got, length - got, scan.pos + got);
      if (bytesRead === 0) break;
      got += bytesRead;
    }
    const base = scan.pos;
    scanWindow(buf.subarray(0, got), base, scan, base + got >= size, maxRecordBytes, visitor);
    if (got < length) break;
  }
}

async function writeFully(
  file: FileHandle,
  writev: SpoolWritev,
  buffers: Buffer[],
  position: number,
): Promise<void> {
  let rest = buffers;
  let at = position;
  let left = buffers.reduce((sum, b) => sum + b.length, 0);
  while (left > 0) {
    const { bytesWritten } = await writev(file, rest, at);
    if (bytesWritten <= 0)
      throw Object.assign(new Error('write made no progress'), { code: 'EIO' });
    left -= bytesWritten;
    at += bytesWritten;
    if (left === 0) break;
    let skip = bytesWritten;
    const next: Buffer[] = [];
    for (const b of rest) {
      if (skip >= b.length) skip -= b.length;
      else {
        next.push(skip > 0 ? b.subarray(skip) : b);
        skip = 0;
      }
    }
    rest = next;
  }
}

async function syncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

async function readOffsets(
  dir: string,
  onBad: (message: string, err: unknown) => void,
): Promise<Map<string, number>> {
  const acks = new Map<string, number>();
  let text: string;
  try {
    text = await readFile(join(dir, OFFSETS_FILE), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return acks;
    onBad(`cannot read ${OFFSETS_FILE}; consumers restart from the oldest record`, err);
    return acks;
  }
  try {
    const parsed = JSON.parse(text) as { version?: unknown; consumers?: unknown };
    if (parsed.version !== OFFSETS_VERSION || typeof parsed.consumers !== 'object') {
      throw new Error(`unexpected content`);
    }
    for (const [name, acked] of Object.entries(parsed.consumers as Record<string, unknown>)) {
      if (!CONSUMER_NAME.test(name) || !Number.isSafeInteger(acked) || (acked as number) < 0) {
        throw new Error(`bad entry ${name}`);
      }
      acks.set(name, acked as number);
    }
  } catch (err) {
    acks.clear();
    onBad(`${OFFSETS_FILE} is malformed; consumers restart from the oldest record`, err);
  }
  return acks;
}

/** Replaces the offsets file atomically: temp file, fsync, rename, fsync of the directory. */
async function writeOffsets(dir: string, acks: ReadonlyMap<string, number>): Promise<void> {
  const temp = join(dir, OFFSETS_TEMP);
  const body = JSON.stringify({ version: OFFSETS_VERSION, consumers: Object.fromEntries(acks) });
  const file = await open(temp, 'w', 0o600);
  try {
    await file.writeFile(`${body}\n`, 'utf8');
    await file.datasync();
  } finally {
    await file.close();
  }
  await rename(temp, join(dir, OFFSETS_FILE));
  await syncDirectory(dir);
}

/** Claims the directory for this process: refuses one another live process holds. */
async function lockDirectory(dir: string): Promise<void> {
  if (openDirs.has(dir)) {
    throw new PortcullisError('PCL_ERR_EVENTS_WRITE', `spool ${dir} is already open`);
  }
  const path = join(dir, LOCK_FILE);
  try {
    const holder = Number((await readFile(path, 'utf8')).trim());
    if (Number.isSafeInteger(holder) && holder > 0 && holder !== process.pid && alive(holder)) {
      throw new PortcullisError(
        'PCL_ERR_EVENTS_WRITE',
        `spool ${dir} is in use by process ${holder}; give each gateway process its own spool`,
      );
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
      if (err instanceof PortcullisError) throw err;
    }
  }
  const file = await open(path, 'w', 0o600);
  try {
    await file.writeFile(`${process.pid}\n`);
  } finally {
    await file.close();
  }
  openDirs.add(dir);
}

async function unlockDirectory(dir: string): Promise<void> {
  if (!openDirs.delete(dir)) return;
  await unlink(join(dir, LOCK_FILE)).catch(() => {});
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function writeError(message: string, err: unknown): PortcullisError {
  return new PortcullisError('PCL_ERR_EVENTS_WRITE', `${message}: ${(err as Error).message}`, {
    cause: err,
  });
}
