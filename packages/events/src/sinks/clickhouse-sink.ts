import { Readable } from 'node:stream';
import { setImmediate as yieldToIo } from 'node:timers/promises';
import { createClient, ClickHouseLogLevel, type ClickHouseClient } from '@clickhouse/client';
import { PortcullisError, silentLogger, type Logger, type SessionEvent } from '@portcullis/core';
import { SpoolReadRecord, type SpoolRecord } from '../spool/spool-reader.js';
import { runMigrations, type MigrationTarget } from '../store/run-migrations.js';
import { eventStoreMigrations, MIN_CLICKHOUSE_VERSION } from '../store/schema.js';
import { DeadLetterFile, type DeadLetterEntry } from './dead-letter-file.js';
import { columnsOf, legacyType, type ClickHouseSchemaFlavour } from './clickhouse-columns.js';
import { encodeEventTsv, EventTsvTranscoder, splitTime, type TsvColumn } from './event-tsv.js';
import { TsvEncoderThread } from './tsv-encoder-thread.js';
import type { TsvLines } from './tsv-lines.js';
import type { BatchSink } from './sink-runner.js';

export { columnsOf, type ClickHouseSchemaFlavour } from './clickhouse-columns.js';

/** The oldest server release the `modern` flavour runs on, as the event store's author determined it. */
export const MODERN_MIN_CLICKHOUSE_VERSION = MIN_CLICKHOUSE_VERSION;
/** The oldest server release the `legacy18` flavour was run on. */
export const LEGACY18_MIN_CLICKHOUSE_VERSION = '18.16';

/** Options of a {@link ClickHouseSink}. */
export interface ClickHouseSinkOptions {
  /** The spool consumer name (default `clickhouse`); also names the dead-letter file. */
  readonly name?: string;
  /** HTTP(S) address of the server, e.g. `http://127.0.0.1:8123`. */
  readonly url: string;
  readonly username?: string;
  readonly password?: string;
  readonly database?: string;
  /** Table name, optionally `database.table`. With `modern` it must be `events` (the store's). */
  readonly table: string;
  readonly schema: ClickHouseSchemaFlavour;
  /** Create the table (and, for `modern`, run the store's migrations) when missing. Default true. */
  readonly createTable?: boolean;
  /** Retention for the `modern` schema's TTL when the sink creates it (default 365 days). */
  readonly retentionDays?: number;
  /** Directory of the dead-letter file for records the server refuses. */
  readonly deadLetterDir: string;
  /** Most rows in one INSERT (default 100,000; at most 1,000,000 so one insert is one block). */
  readonly maxInsertRows?: number;
  /** Most encoded bytes in one INSERT (default 64 MiB). */
  readonly maxInsertBytes?: number;
  /** Time limit of one request in ms (default 30,000); a request past it counts as `timeout`. */
  readonly requestTimeoutMs?: number;
  /**
   * Look up the batch's event ids in the table first and insert only those it does not hold
   * (default: true for `modern`, whose rollups would count a duplicate twice; false for
   * `legacy18`, which has no rollups and collapses duplicates in merges).
   */
  readonly skipStoredIds?: boolean;
  /** ClickHouse settings sent with every INSERT (default none), e.g. `insert_quorum`. */
  readonly insertSettings?: Readonly<Record<string, string | number>>;
  /** gzip request bodies (default false). */
  readonly compressRequests?: boolean;
  /**
   * Transcode events on a worker thread of the sink's own (default true), beside the event loop
   * that reads the spool and streams the inserts. Off, they are transcoded on the event loop.
   * (With `skipStoredIds` they always are: the lookup needs each row's id first.)
   */
  readonly encodeThread?: boolean;
  readonly logger?: Logger;
}

/**
 * What went wrong with a request, and what to do about it:
 *
 * - `rejected`: the server refused the data (a row it cannot parse); not retriable as is: the
 *   sink bisects the insert and dead-letters the rows that fail alone.
 * - `config`: the request itself is wrong (unknown table or column, bad credentials, a syntax
 *   error); not retriable until someone changes something, though the runner keeps trying.
 * - `server`: the server failed (5xx without a data error, too many parts, out of memory).
 * - `network`: the connection failed (refused, reset, closed mid-request).
 * - `timeout`: no answer within the request time limit.
 */
export type ClickHouseFailureKind = 'rejected' | 'config' | 'server' | 'network' | 'timeout';

/** The classification of a failed request; see {@link classifyClickHouseFailure}. */
export interface ClickHouseFailure {
  readonly kind: ClickHouseFailureKind;
  readonly retriable: boolean;
  /** ClickHouse's error code (`Code: N` in its message), when the server sent one. */
  readonly clickhouseCode: number | null;
  readonly httpStatus: number | null;
  readonly message: string;
}

/** Counters of a {@link ClickHouseSink}, for metrics. */
export interface ClickHouseSinkStats {
  /** Rows the server accepted (a re-delivered row counts again). */
  readonly inserted: number;
  /** INSERT requests the server accepted. */
  readonly inserts: number;
  /** Rows left out because the table already held their event id (`skipStoredIds`). */
  readonly skippedStored: number;
  /** Deliveries that failed with an error and will be retried by the runner. */
  readonly retried: number;
  /** Records written to the dead-letter file. */
  readonly deadLettered: number;
  /** Inserts the server refused as malformed (each leads to a split or a dead letter). */
  readonly rejectedInserts: number;
  /** Failures by kind since the start. */
  readonly failures: Readonly<Record<ClickHouseFailureKind, number>>;
}

/** A delivery failure: `PCL_ERR_EVENTS_WRITE` with the classification and the client error as `cause`. */
export class ClickHouseSinkError extends PortcullisError {
  override readonly retriable: boolean;
  readonly failure: ClickHouseFailure;

  constructor(failure: ClickHouseFailure, options?: { cause?: unknown }) {
    super('PCL_ERR_EVENTS_WRITE', `ClickHouse insert failed (${describe(failure)})`, options);
    this.name = 'ClickHouseSinkError';
    this.failure = failure;
    this.retriable = failure.retriable;
  }
}

function describe(failure: ClickHouseFailure): string {
  const parts: string[] = [failure.kind];
  if (failure.httpStatus !== null) parts.push(`HTTP ${failure.httpStatus}`);
  if (failure.clickhouseCode !== null) parts.push(`code ${failure.clickhouseCode}`);
  // A rejection's message quotes the rows it refused; those stay in the dead-letter file.
  if (failure.kind !== 'rejected') parts.push(truncate(failure.message, 300));
  return parts.join(', ');
}

function truncate(text: string, max: number): string {
  const trimmed = text.trim();
  return trimmed.length <= max ? trimmed : `${trimmed.slice(0, max)}…`;
}

/**
 * ClickHouse error codes that mean "this data cannot go into this table": parse failures, type
 * mismatches, values out of range. An insert failing with one of them is split to find the rows.
 */
const DATA_ERROR_CODES: ReadonlySet<number> = new Set([
  6, // CANNOT_PARSE_TEXT
  26, // CANNOT_PARSE_QUOTED_STRING
  27, // CANNOT_PARSE_INPUT_ASSERTION_FAILED
  38, // CANNOT_PARSE_DATE
  41, // CANNOT_PARSE_DATETIME
  53, // TYPE_MISMATCH
  69, // ARGUMENT_OUT_OF_BOUND
  70, // CANNOT_CONVERT_TYPE
  72, // CANNOT_PARSE_NUMBER
  117, // INCORRECT_DATA
  131, // TOO_LARGE_STRING_SIZE
  321, // VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE
  349, // CANNOT_INSERT_NULL_IN_ORDINARY_COLUMN
  376, // CANNOT_PARSE_UUID
  377, // CANNOT_PARSE_IPV4 (and friends below)
  378, // CANNOT_PARSE_IPV6
  691, // UNKNOWN_ELEMENT_OF_ENUM
]);

/** Codes that mean the request, not the data, is wrong: retrying the same request cannot help. */
const CONFIG_ERROR_CODES: ReadonlySet<number> = new Set([
  16, // NO_SUCH_COLUMN_IN_TABLE
  36, // BAD_ARGUMENTS
  44, // ILLEGAL_COLUMN (a type not allowed here, e.g. experimental LowCardinality on 18.16)
  50, // UNKNOWN_TYPE (e.g. DateTime64 on a server older than 20.1)
  47, // UNKNOWN_IDENTIFIER
  60, // UNKNOWN_TABLE
  62, // SYNTAX_ERROR
  73, // UNKNOWN_FORMAT
  81, // UNKNOWN_DATABASE
  115, // UNKNOWN_SETTING
  164, // READONLY
  192, // UNKNOWN_USER
  193, // WRONG_PASSWORD
  194, // REQUIRED_PASSWORD
  195, // IP_ADDRESS_NOT_ALLOWED
  497, // ACCESS_DENIED
  516, // AUTHENTICATION_FAILED
]);

const NETWORK_ERRNOS: ReadonlySet<string> = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'EPIPE',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENETDOWN',
  'EAI_AGAIN',
  'ENOTFOUND',
  'ERR_STREAM_PREMATURE_CLOSE',
]);

const CODE_PATTERN = /(?:^|\b)Code: (\d+)/;

/**
 * Classifies a failed ClickHouse request. `httpStatus` and `body` describe an error response
 * (ClickHouse 18.16 answers 500 for nearly every error, a data error included, so the
 * `Code: N` in the body decides, and the status only when there is none); `error` is what the
 * HTTP layer threw when no response came.
 */
export function classifyClickHouseFailure(input: {
  readonly error?: unknown;
  readonly httpStatus?: number;
  readonly body?: string;
}): ClickHouseFailure {
  const httpStatus = input.httpStatus ?? null;
  const error = input.error;
  const errorMessage =
    error instanceof Error ? error.message : error === undefined ? '' : String(error);
  const message = input.body ?? errorMessage;
  const codeMatch = CODE_PATTERN.exec(message);
  const clickhouseCode = codeMatch?.[1] === undefined ? null : Number(codeMatch[1]);
  const make = (kind: ClickHouseFailureKind): ClickHouseFailure => ({
    kind,
    retriable: kind !== 'rejected' && kind !== 'config',
    clickhouseCode,
    httpStatus,
    message,
  });
  if (clickhouseCode !== null) {
    if (DATA_ERROR_CODES.has(clickhouseCode)) return make('rejected');
    if (CONFIG_ERROR_CODES.has(clickhouseCode)) return make('config');
    if (clickhouseCode === 159 || clickhouseCode === 209) return make('timeout'); // TIMEOUT_EXCEEDED, SOCKET_TIMEOUT
    if (clickhouseCode === 210) return make('network'); // NETWORK_ERROR
    return make('server');
  }
  if (httpStatus !== null) {
    if (httpStatus >= 500 || httpStatus === 429 || httpStatus === 408) {
      return make(httpStatus === 504 || httpStatus === 408 ? 'timeout' : 'server');
    }
    return make('config');
  }
  const errno = (error as { code?: unknown } | null)?.code;
  const name = error instanceof Error ? error.name : '';
  if (
    errno === 'ETIMEDOUT' ||
    errno === 'ESOCKETTIMEDOUT' ||
    name === 'TimeoutError' ||
    /\btimeout\b|timed out/i.test(errorMessage)
  ) {
    return make('timeout');
  }
  if (
    (typeof errno === 'string' && NETWORK_ERRNOS.has(errno)) ||
    /socket hang up|ECONNRESET|ECONNREFUSED|other side closed|premature close/i.test(errorMessage)
  ) {
    return make('network');
  }
  // Unknown: keep the events on disk and let the runner try again.
  return make('server');
}

/** A table name as written in SQL: `name` or `database.name`, each part an identifier. */
function quoteTable(table: string): string {
  const parts = table.split('.');
  if (parts.length > 2 || parts.some((part) => !/^[A-Za-z_][A-Za-z0-9_]*$/.test(part))) {
    throw new RangeError(`table ${JSON.stringify(table)} is not a plain [database.]name`);
  }
  return parts.map((part) => `\`${part}\``).join('.');
}

/**
 * `CREATE TABLE IF NOT EXISTS` of the `legacy18` flavour: the store's columns in types ClickHouse
 * 18.16 has (no DateTime64, TTL or LowCardinality). `ReplacingMergeTree` on a sorting key that
 * ends in the event id, so copies of one event collapse when parts merge; read it with `FINAL`
 * (or `argMax(…, id)`) to see each event once before that. The event's time is `time` (whole
 * seconds, UTC) plus `time_micros` (0–999,999).
 */
export function legacy18TableDdl(table: string): string {
  const lines = columnsOf('legacy18').map((c) => `    ${c.name} ${legacyType(c)}`);
  return `CREATE TABLE IF NOT EXISTS ${quoteTable(table)}
(
${lines.join(',\n')}
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(time)
ORDER BY (person_subject, resource, time, id)`;
}

/** One record, encoded, on its way to the server. */
interface EncodedRow {
  readonly sequence: number;
  /** The event id, for the stored-id lookup ('' when the sink does not look ids up). */
  readonly id: string;
  /** Whole seconds of the event's time, for the stored-id lookup (likewise). */
  readonly seconds: number;
  /** Where its TabSeparated line (newline included) is: `chunk[start, start + bytes)`. */
  readonly chunk: Buffer;
  readonly start: number;
  /** The line's length in UTF-8. */
  readonly bytes: number;
  /** The spool record, for the dead-letter file. */
  readonly record: SpoolRecord;
}

/**
 * Decides insert boundaries one row at a time, as {@link planInserts} does for a list, so an
 * insert can start before the rows after it are encoded.
 */
class InsertPlanner {
  readonly #maxRows: number;
  readonly #maxBytes: number;
  #rows = 0;
  #bytes = 0;
  #group = Number.NaN;

  constructor(maxRows: number, maxBytes: number) {
    this.#maxRows = maxRows;
    this.#maxBytes = maxBytes;
  }

  /** Takes the next row; true when it starts a new insert (the first row does). */
  next(sequence: number, bytes: number): boolean {
    const group = Math.floor(sequence / this.#maxRows);
    const cut =
      this.#rows === 0 ||
      group !== this.#group ||
      this.#rows >= this.#maxRows ||
      this.#bytes + bytes > this.#maxBytes;
    if (cut) {
      this.#rows = 0;
      this.#bytes = 0;
    }
    this.#rows++;
    this.#bytes += bytes;
    this.#group = group;
    return cut;
  }
}

/**
 * Splits rows into inserts of at most `maxRows` rows and about `maxBytes` bytes. Boundaries fall
 * where `floor(sequence / maxRows)` changes, so the same records re-delivered in a batch that
 * starts at another place still make the same inserts (the same block, byte for byte, which a
 * server deduplicating insert blocks recognises), except the partial first one.
 */
export function planInserts<T extends { readonly sequence: number; readonly bytes: number }>(
  rows: readonly T[],
  maxRows: number,
  maxBytes: number,
): T[][] {
  const planner = new InsertPlanner(maxRows, maxBytes);
  const chunks: T[][] = [];
  let current: T[] = [];
  for (const row of rows) {
    if (planner.next(row.sequence, row.bytes) && current.length > 0) {
      chunks.push(current);
      current = [];
    }
    current.push(row);
  }
  if (current.length > 0) chunks.push(current);
  return chunks;
}

/** Encoded lines live in chunks of this size (a longer line gets a chunk of its own). */
const CHUNK_BYTES = 1024 * 1024;
/** A streamed insert body is handed to the socket in pieces of about this size. */
const STREAM_BYTES = 256 * 1024;
/**
 * Records per job of the encoding thread: enough that a message costs little per record, few
 * enough that an insert starts streaming soon after a delivery does.
 */
const THREAD_JOB_RECORDS = 4096;
/** Jobs sent to the encoding thread ahead of the one being streamed. */
const THREAD_JOBS_AHEAD = 2;

/** The bytes of `rows`, as views of their chunks (adjacent lines in one view). */
function bodyOf(rows: readonly EncodedRow[]): Buffer[] {
  const parts: Buffer[] = [];
  let chunk: Buffer | null = null;
  let from = 0;
  let to = 0;
  for (const row of rows) {
    if (row.chunk === chunk && row.start === to) {
      to += row.bytes;
      continue;
    }
    if (chunk !== null) parts.push(chunk.subarray(from, to));
    chunk = row.chunk;
    from = row.start;
    to = row.start + row.bytes;
  }
  if (chunk !== null) parts.push(chunk.subarray(from, to));
  return parts;
}

/**
 * An insert whose rows are still being encoded: its body is a stream the encoder feeds while
 * the request is under way, so the server parses while Node encodes. The rows are kept, so a
 * refused insert can be split.
 */
class StreamedInsert {
  readonly rows: EncodedRow[] = [];
  readonly body = new Readable({ read() {} });
  /** Resolves when every row is added (or the delivery gave up). */
  readonly complete: Promise<void>;
  #resolve: () => void = () => {};
  // Bytes added but not yet handed to the body: chunk[from, to).
  #chunk: Buffer | null = null;
  #from = 0;
  #to = 0;

  constructor() {
    this.complete = new Promise((resolve) => (this.#resolve = resolve));
  }

  add(row: EncodedRow): void {
    this.rows.push(row);
    if (row.chunk === this.#chunk && row.start === this.#to) {
      this.#to += row.bytes;
      return;
    }
    this.flush();
    this.#chunk = row.chunk;
    this.#from = row.start;
    this.#to = row.start + row.bytes;
  }

  /** Bytes added since the last {@link flush}. */
  get unsent(): number {
    return this.#to - this.#from;
  }

  flush(): void {
    if (this.#chunk !== null && this.#to > this.#from) {
      this.body.push(this.#chunk.subarray(this.#from, this.#to));
    }
    this.#from = this.#to;
  }

  finish(): void {
    this.flush();
    this.body.push(null);
    this.#resolve();
  }

  /** Ends the body unfinished: a request sending it fails (premature close), none is made. */
  abandon(): void {
    // Without an error: an 'error' event on a body nobody reads yet would go unhandled.
    this.body.destroy();
    this.#resolve();
  }
}

/** The inserts of one delivery, handed from the encoder to the requests in order. */
class InsertQueue {
  readonly #items: StreamedInsert[] = [];
  #ended = false;
  #error: unknown = undefined;
  #wake: (() => void) | null = null;

  push(insert: StreamedInsert): void {
    this.#items.push(insert);
    this.#wakeUp();
  }

  end(error?: unknown): void {
    this.#ended = true;
    this.#error = error;
    this.#wakeUp();
  }

  /** The next insert, or null after the last. */
  async next(): Promise<StreamedInsert | null> {
    while (this.#items.length === 0) {
      if (this.#ended) {
        if (this.#error !== undefined) throw this.#error;
        return null;
      }
      await new Promise<void>((resolve) => (this.#wake = resolve));
    }
    return this.#items.shift()!;
  }

  /** Inserts not taken: their bodies are destroyed. */
  discard(): void {
    for (const insert of this.#items.splice(0)) insert.abandon();
  }

  #wakeUp(): void {
    const wake = this.#wake;
    this.#wake = null;
    wake?.();
  }
}

const UUID = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;
/** Ids per stored-id lookup (keeps the query under ClickHouse's default 256 KiB query size). */
const LOOKUP_IDS = 5_000;

/**
 * A {@link BatchSink} that inserts spooled events into a ClickHouse server over HTTP with
 * `@clickhouse/client`, as TabSeparated.
 *
 * - **Batches:** each delivery becomes inserts of at most `maxInsertRows` rows / `maxInsertBytes`
 *   bytes, aligned on spool sequence numbers ({@link planInserts}). The runner decides how much a
 *   delivery holds and when it comes; retries with backoff are the runner's too.
 * - **Encoding:** each record's JSON is transcoded straight into its TabSeparated line
 *   ({@link EventTsvTranscoder}); a record the transcoder declines takes the JSON.parse path,
 *   which writes the same bytes and decides what is not an event. An insert's body is streamed
 *   while its rows are encoded, and encoding runs on into the next insert while the server
 *   answers, so Node and the server work at the same time (with `skipStoredIds` the lookup needs
 *   every id first, so there encoding comes before the inserts). The lines stay in memory until
 *   the delivery ends, so a refused insert can be split.
 * - **Errors:** a failed request is classified ({@link classifyClickHouseFailure}). Network
 *   failures, timeouts and server failures throw a retriable {@link ClickHouseSinkError}, so the
 *   runner delivers the batch again. An insert the server refuses as malformed is split in halves
 *   until the rows that fail alone are found; each is tried once more on its own (so a transient
 *   cannot condemn it), then goes to the dead-letter file, and the rest is inserted. A payload
 *   that is not an event goes there without a request.
 * - **Idempotency by event id:** a retried delivery inserts rows again; the tables are
 *   `ReplacingMergeTree`s whose sorting key ends in the id, so the copies collapse in merges, and
 *   readers use `FINAL` (or `argMax` by id) until then. ClickHouse's own insert deduplication
 *   (a block seen before is dropped) works only on Replicated tables in 18.16
 *   (`insert_deduplicate`; 18.16 refuses `non_replicated_deduplication_window`, which newer
 *   releases offer for plain MergeTree); where a table has it, the aligned insert boundaries make
 *   a retried block identical, so the server drops it. With `skipStoredIds` the sink also looks
 *   the ids up first and leaves out the stored ones (as the event store does, for its rollups).
 * - **Hash chains are not written:** `prev_hash` and `hash` stay empty. Chaining needs each
 *   session's last hash and the deployment key, which the event store keeps; rows from this sink
 *   do not verify with `verifyChain`.
 *
 * The dead-letter file is synced before `deliver` resolves, so a dead-lettered record is on disk
 * before the runner acknowledges it.
 */
export class ClickHouseSink implements BatchSink {
  readonly name: string;
  /** Encoding copies each record (dead letters included) before `deliver` settles. */
  readonly keepsNoRecords = true;
  readonly table: string;
  readonly schema: ClickHouseSchemaFlavour;
  readonly deadLetters: DeadLetterFile;
  readonly #client: ClickHouseClient;
  readonly #quotedTable: string;
  readonly #columns: readonly TsvColumn[];
  readonly #insertQuery: string;
  readonly #maxRows: number;
  readonly #maxBytes: number;
  readonly #createTable: boolean;
  readonly #retentionDays: number;
  readonly #skipStoredIds: boolean;
  readonly #logger: Logger;
  readonly #insertSettings: Record<string, string>;
  readonly #transcoder: EventTsvTranscoder;
  /** Encodes streamed inserts beside the event loop; null when the sink encodes inline. */
  readonly #encoder: TsvEncoderThread | null;
  /** Where encoded lines go; a full chunk is left to the rows that point into it. */
  #chunk: Buffer = Buffer.alloc(0);
  #chunkUsed = 0;
  #ready: Promise<void> | null = null;
  #closed = false;
  #inserted = 0;
  #inserts = 0;
  #skippedStored = 0;
  #retried = 0;
  #deadLettered = 0;
  #rejectedInserts = 0;
  readonly #failures: Record<ClickHouseFailureKind, number> = {
    rejected: 0,
    config: 0,
    server: 0,
    network: 0,
    timeout: 0,
  };

  constructor(options: ClickHouseSinkOptions) {
    this.name = options.name ?? 'clickhouse';
    this.table = options.table;
    this.schema = options.schema;
    if (options.schema !== 'modern' && options.schema !== 'legacy18') {
      throw new RangeError(`schema must be 'modern' or 'legacy18', not ${String(options.schema)}`);
    }
    this.#quotedTable = quoteTable(options.table);
    this.#maxRows = options.maxInsertRows ?? 100_000;
    this.#maxBytes = options.maxInsertBytes ?? 64 * 1024 * 1024;
    if (!Number.isSafeInteger(this.#maxRows) || this.#maxRows < 1 || this.#maxRows > 1_000_000) {
      throw new RangeError('maxInsertRows must be a whole number from 1 to 1,000,000');
    }
    if (!(this.#maxBytes >= 1)) throw new RangeError('maxInsertBytes must be positive');
    this.#createTable = options.createTable ?? true;
    this.#retentionDays = options.retentionDays ?? 365;
    this.#skipStoredIds = options.skipStoredIds ?? options.schema === 'modern';
    this.#logger = options.logger ?? silentLogger;
    this.#insertSettings = Object.fromEntries(
      Object.entries(options.insertSettings ?? {}).map(([key, value]) => [key, String(value)]),
    );
    this.#columns = columnsOf(options.schema);
    this.#transcoder = new EventTsvTranscoder(this.#columns);
    // The stored-id lookup needs each row's id as it is encoded, so that path encodes here.
    this.#encoder =
      options.encodeThread === false || this.#skipStoredIds
        ? null
        : new TsvEncoderThread(options.schema);
    this.#insertQuery = `INSERT INTO ${this.#quotedTable} (${this.#columns
      .map((c) => c.name)
      .join(', ')}) FORMAT TabSeparated`;
    this.deadLetters = new DeadLetterFile(options.deadLetterDir, this.name);
    this.#client = createClient({
      url: options.url,
      ...(options.username === undefined ? {} : { username: options.username }),
      ...(options.password === undefined ? {} : { password: options.password }),
      ...(options.database === undefined ? {} : { database: options.database }),
      request_timeout: options.requestTimeoutMs ?? 30_000,
      compression: { request: options.compressRequests ?? false, response: false },
      application: 'portcullis',
      // Errors reach the caller classified; the client's own console logging stays off.
      log: { level: ClickHouseLogLevel.OFF },
    });
  }

  /** Counters since the sink was made. */
  get stats(): ClickHouseSinkStats {
    return {
      inserted: this.#inserted,
      inserts: this.#inserts,
      skippedStored: this.#skippedStored,
      retried: this.#retried,
      deadLettered: this.#deadLettered,
      rejectedInserts: this.#rejectedInserts,
      failures: { ...this.#failures },
    };
  }

  /**
   * Creates the table when missing (see {@link ClickHouseSinkOptions.createTable}) and has the
   * encoding thread load its code; `deliver` does this on first use. Safe to call again; a
   * failure is retried on the next call.
   */
  async ensureTable(): Promise<void> {
    this.#ready ??= this.#prepare().catch((error: unknown) => {
      this.#ready = null;
      throw error;
    });
    return this.#ready;
  }

  async deliver(records: readonly SpoolRecord[]): Promise<void> {
    if (this.#closed) throw new Error(`ClickHouse sink ${this.name} is closed`);
    try {
      await this.ensureTable();
      const undecodable: DeadLetterEntry[] = [];
      const rejected: DeadLetterEntry[] = [];
      if (this.#skipStoredIds) {
        // The lookup needs every id first, so here encoding does not overlap the inserts.
        let rows = this.#encodeAll(records, undecodable);
        if (rows.length > 0) rows = await this.#withoutStored(rows);
        for (const chunk of planInserts(rows, this.#maxRows, this.#maxBytes)) {
          await this.#insertOrSplit(chunk, rejected, null);
        }
      } else {
        await this.#streamInserts(records, undecodable, rejected);
      }
      const dead = [...undecodable, ...rejected];
      await this.deadLetters.append(dead);
      this.#deadLettered += dead.length;
      if (dead.length > 0) {
        this.#logger.warn(
          { sink: this.name, table: this.table, records: dead.length, file: this.deadLetters.path },
          'ClickHouse refused event records; they went to the dead-letter file',
        );
      }
    } catch (error) {
      this.#retried++;
      throw error;
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#encoder?.close();
    await this.#client.close();
  }

  async #prepare(): Promise<void> {
    await this.#encoder?.encode([]);
    if (!this.#createTable) return;
    if (this.schema === 'legacy18') {
      await this.#command(legacy18TableDdl(this.table));
      await this.#addMissingLegacyColumns();
      return;
    }
    if (this.table !== 'events') {
      throw new ClickHouseSinkError({
        kind: 'config',
        retriable: false,
        clickhouseCode: null,
        httpStatus: null,
        message: `the modern schema's table is the event store's "events", not "${this.table}"; create it yourself and set createTable: false`,
      });
    }
    const target: MigrationTarget = {
      command: (sql) => this.#command(sql),
      query: async <T>(sql: string, params?: Record<string, unknown>): Promise<T[]> => {
        const result = await this.#client.query({
          query: sql,
          format: 'JSONEachRow',
          ...(params === undefined ? {} : { query_params: params }),
        });
        return result.json<T>();
      },
    };
    await runMigrations(target, eventStoreMigrations({ retentionDays: this.#retentionDays }));
  }

  /**
   * A `legacy18` table made by an earlier version lacks the columns added since: they are added
   * here (ClickHouse 18.16 has no `ADD COLUMN IF NOT EXISTS`, so the table is described first, and
   * a column another gateway added meanwhile is not an error).
   */
  async #addMissingLegacyColumns(): Promise<void> {
    const missing = await this.#missingLegacyColumns();
    for (const { name, type } of missing) {
      try {
        await this.#command(`ALTER TABLE ${this.#quotedTable} ADD COLUMN ${name} ${type}`);
      } catch (error) {
        const still = await this.#missingLegacyColumns();
        if (still.some((c) => c.name === name)) throw error;
      }
    }
  }

  async #missingLegacyColumns(): Promise<{ name: string; type: string }[]> {
    const text = await this.#queryText(`DESCRIBE TABLE ${this.#quotedTable} FORMAT TabSeparated`);
    const present = new Set(text.split('\n').map((line) => line.split('\t')[0]));
    return columnsOf('legacy18')
      .filter((c) => !present.has(c.name))
      .map((c) => ({ name: c.name, type: legacyType(c) }));
  }

  /** The text a query answers; failures are classified as for inserts. */
  async #queryText(sql: string, settings?: Record<string, string>): Promise<string> {
    try {
      const result = await this.#client.exec({
        query: sql,
        ...(settings === undefined ? {} : { clickhouse_settings: settings }),
      });
      return await streamText(result.stream);
    } catch (error) {
      throw this.#failed(classifyClickHouseFailure({ error }), error);
    }
  }

  async #command(sql: string): Promise<void> {
    try {
      await this.#client.command({ query: sql });
    } catch (error) {
      throw this.#failed(classifyClickHouseFailure({ error }), error);
    }
  }

  #failed(failure: ClickHouseFailure, cause: unknown): ClickHouseSinkError {
    this.#failures[failure.kind]++;
    return new ClickHouseSinkError(failure, { cause });
  }

  /** Encodes records; what is not an event goes to `dead`. */
  #encodeAll(records: readonly SpoolRecord[], dead: DeadLetterEntry[]): EncodedRow[] {
    const rows: EncodedRow[] = [];
    for (const record of records) {
      const row = this.#encodeRecord(record, dead);
      if (row !== null) rows.push(row);
    }
    return rows;
  }

  /**
   * Encodes one record into the current chunk: straight from its JSON where the transcoder can,
   * else through JSON.parse and the row mapping, which also decides what is not an event (that
   * goes to `dead`, and null is returned).
   */
  #encodeRecord(record: SpoolRecord, dead: DeadLetterEntry[]): EncodedRow | null {
    // A record straight from the spool is read where it lies, without a view of its own.
    const read = record instanceof SpoolReadRecord;
    const json = read ? record.buffer : record.payload;
    const from = read ? record.start : 0;
    const to = read ? record.end : json.length;
    this.#reserve(this.#transcoder.maxLineBytes(to - from));
    const start = this.#chunkUsed;
    const end = this.#transcoder.transcode(json, this.#chunk, start, from, to);
    if (end >= 0) {
      this.#chunkUsed = end;
      const lookup = this.#skipStoredIds;
      return {
        sequence: record.sequence,
        id: lookup ? this.#transcoder.id : '',
        seconds: lookup ? splitTime(this.#transcoder.timeUs).seconds : 0,
        chunk: this.#chunk,
        start,
        bytes: end - start,
        record,
      };
    }
    const payload = record.payload;
    let event: SessionEvent;
    let line: string;
    try {
      event = JSON.parse(payload.toString('utf8')) as SessionEvent;
      line = encodeEventTsv(event, this.#columns);
    } catch (error) {
      dead.push(
        this.#deadLetter(record.sequence, payload, {
          reason: 'undecodable',
          code: null,
          message: error instanceof Error ? error.message : String(error),
        }),
      );
      return null;
    }
    const bytes = Buffer.byteLength(line);
    this.#reserve(bytes);
    const at = this.#chunkUsed;
    this.#chunk.write(line, at, 'utf8');
    this.#chunkUsed = at + bytes;
    return {
      sequence: record.sequence,
      id: String(event.id),
      seconds: splitTime(Number(event.timeUs)).seconds,
      chunk: this.#chunk,
      start: at,
      bytes,
      record,
    };
  }

  /** Makes room for `bytes` in the current chunk; lines already written stay where they are. */
  #reserve(bytes: number): void {
    if (this.#chunk.length - this.#chunkUsed >= bytes) return;
    this.#chunk = Buffer.allocUnsafe(Math.max(CHUNK_BYTES, bytes));
    this.#chunkUsed = 0;
  }

  /**
   * Encodes the records and inserts them as {@link planInserts} plans, each insert's body
   * streamed while its rows are encoded; the encoder runs on into the next insert while the
   * server answers the last. Inserts go one at a time, in order.
   */
  async #streamInserts(
    records: readonly SpoolRecord[],
    undecodable: DeadLetterEntry[],
    rejected: DeadLetterEntry[],
  ): Promise<void> {
    const queue = new InsertQueue();
    const stop = { requested: false };
    const lines: Buffer[] = [];
    const encoding = this.#encodeInto(records, undecodable, queue, stop, lines);
    try {
      for (let insert = await queue.next(); insert !== null; insert = await queue.next()) {
        await this.#insertOrSplit(insert.rows, rejected, insert);
      }
    } finally {
      stop.requested = true;
      await encoding;
      queue.discard();
    }
    // Every insert is stored and nothing reads their lines any more: the thread may reuse them.
    this.#encoder?.recycle(lines);
  }

  /** The encoding half of {@link #streamInserts}; it yields to I/O after each piece of a body. */
  async #encodeInto(
    records: readonly SpoolRecord[],
    dead: DeadLetterEntry[],
    queue: InsertQueue,
    stop: { readonly requested: boolean },
    lines: Buffer[],
  ): Promise<void> {
    const planner = new InsertPlanner(this.#maxRows, this.#maxBytes);
    let current: StreamedInsert | null = null;
    try {
      for await (const rows of this.#encodedRows(records, dead, stop, lines)) {
        for (const row of rows) {
          if (planner.next(row.sequence, row.bytes)) {
            current?.finish();
            current = new StreamedInsert();
            queue.push(current);
          }
          current!.add(row);
          if (current!.unsent >= STREAM_BYTES) {
            current!.flush();
            await yieldToIo();
          }
        }
      }
      if (stop.requested) current?.abandon();
      else current?.finish();
      queue.end();
    } catch (error) {
      current?.abandon();
      queue.end(error);
    }
  }

  /**
   * The rows of `records` in order, a run at a time; what is not an event goes to `dead`. With
   * the encoding thread, runs of {@link THREAD_JOB_RECORDS} are encoded there, a few sent ahead
   * of the one being streamed (the lines they come in go to `made`); without it, here.
   */
  async *#encodedRows(
    records: readonly SpoolRecord[],
    dead: DeadLetterEntry[],
    stop: { readonly requested: boolean },
    made: Buffer[],
  ): AsyncGenerator<EncodedRow[]> {
    const encoder = this.#encoder;
    if (encoder === null) {
      for (let i = 0; i < records.length && !stop.requested; i += THREAD_JOB_RECORDS) {
        yield this.#encodeAll(records.slice(i, i + THREAD_JOB_RECORDS), dead);
      }
      return;
    }
    const jobs: { records: readonly SpoolRecord[]; lines: Promise<TsvLines> }[] = [];
    let next = 0;
    const send = (): void => {
      while (jobs.length <= THREAD_JOBS_AHEAD && next < records.length) {
        const slice = records.slice(next, next + THREAD_JOB_RECORDS);
        next += slice.length;
        const lines = encoder.encode(slice);
        // Awaited in turn below; a failure meanwhile must not count as unhandled.
        lines.catch(() => undefined);
        jobs.push({ records: slice, lines });
      }
    };
    send();
    while (jobs.length > 0 && !stop.requested) {
      const job = jobs.shift()!;
      const lines = await job.lines;
      made.push(lines.lines);
      send();
      yield this.#rowsOf(job.records, lines, dead);
    }
  }

  /** The rows of lines the encoding thread made of `records`; those it found no event in go to `dead`. */
  #rowsOf(records: readonly SpoolRecord[], lines: TsvLines, dead: DeadLetterEntry[]): EncodedRow[] {
    const rows: EncodedRow[] = [];
    const errors = new Map(lines.errors);
    let start = 0;
    for (let i = 0; i < records.length; i++) {
      const record = records[i]!;
      const end = lines.ends[i]!;
      if (end < 0) {
        dead.push(
          this.#deadLetter(record.sequence, record.payload, {
            reason: 'undecodable',
            code: null,
            message: errors.get(i) ?? 'not an event',
          }),
        );
        continue;
      }
      rows.push({
        sequence: record.sequence,
        id: '',
        seconds: 0,
        chunk: lines.lines,
        start,
        bytes: end - start,
        record,
      });
      start = end;
    }
    return rows;
  }

  #deadLetter(sequence: number, payload: Buffer, error: DeadLetterEntry['error']): DeadLetterEntry {
    return {
      at: new Date().toISOString(),
      sink: this.name,
      target: this.table,
      sequence,
      error,
      payload: payload.toString('utf8'),
    };
  }

  /** Leaves out rows whose event id the table holds already (looked up in the batch's time range). */
  async #withoutStored(rows: EncodedRow[]): Promise<EncodedRow[]> {
    const candidates = rows.filter((row) => UUID.test(row.id) && Number.isFinite(row.seconds));
    if (candidates.length === 0) return rows;
    let min = Infinity;
    let max = -Infinity;
    for (const row of candidates) {
      if (row.seconds < min) min = row.seconds;
      if (row.seconds > max) max = row.seconds;
    }
    const stored = new Set<string>();
    for (let i = 0; i < candidates.length; i += LOOKUP_IDS) {
      const ids = candidates
        .slice(i, i + LOOKUP_IDS)
        .map((row) => `'${row.id.toLowerCase()}'`)
        .join(',');
      const sql =
        `SELECT DISTINCT toString(id) AS id FROM ${this.#quotedTable} ` +
        `WHERE time >= toDateTime(${min}) AND time < toDateTime(${max + 1}) ` +
        `AND id IN (${ids}) FORMAT TabSeparated`;
      const text = await this.#queryText(sql, {
        max_query_size: String(Math.max(262_144, sql.length + 1024)),
      });
      for (const id of text.split('\n')) if (id !== '') stored.add(id);
    }
    if (stored.size === 0) return rows;
    const kept = rows.filter((row) => !stored.has(row.id.toLowerCase()));
    this.#skippedStored += rows.length - kept.length;
    return kept;
  }

  /**
   * Inserts `rows`; when the server refuses them as malformed, splits them in halves and
   * recurses, so only rows that fail alone are dead-lettered. Other failures throw. `streamed`
   * is the insert whose rows these are, while they are still being encoded.
   */
  async #insertOrSplit(
    rows: readonly EncodedRow[],
    dead: DeadLetterEntry[],
    streamed: StreamedInsert | null,
  ): Promise<void> {
    let failure = await this.#insert(rows, streamed);
    if (failure === null) return;
    if (rows.length > 1) {
      for (const part of splitAt(rows, failure.message)) {
        await this.#insertOrSplit(part, dead, null);
      }
      return;
    }
    // One row refused: once more, so a refusal caused by a damaged request cannot condemn it.
    failure = await this.#insert(rows, null);
    if (failure === null) return;
    const row = rows[0]!;
    dead.push(
      this.#deadLetter(row.sequence, row.record.payload, {
        reason: 'rejected',
        code: failure.clickhouseCode,
        message: truncate(failure.message, 4000),
      }),
    );
  }

  /**
   * One INSERT of `rows` (whose body `streamed` streams, when given). Resolves null on success,
   * with the failure when the server refused the data; throws otherwise. Once it resolves, the
   * rows are complete.
   */
  async #insert(
    rows: readonly EncodedRow[],
    streamed: StreamedInsert | null,
  ): Promise<ClickHouseFailure | null> {
    let httpStatus: number | undefined;
    let responseText: string;
    try {
      const result = await this.#client.exec({
        query: this.#insertQuery,
        values: streamed?.body ?? Readable.from(bodyOf(rows), { objectMode: false }),
        ignore_error_response: true,
        clickhouse_settings: this.#insertSettings,
      });
      httpStatus = result.http_status_code;
      responseText = await streamText(result.stream);
    } catch (error) {
      throw this.#failed(classifyClickHouseFailure({ error }), error);
    }
    // A refusal can come before the body ends: the split needs every row of the insert.
    if (streamed !== null) await streamed.complete;
    if (httpStatus === 200) {
      this.#inserts++;
      this.#inserted += rows.length;
      return null;
    }
    const failure = classifyClickHouseFailure({
      ...(httpStatus === undefined ? {} : { httpStatus }),
      body: responseText,
    });
    if (failure.kind !== 'rejected') throw this.#failed(failure, undefined);
    this.#failures.rejected++;
    this.#rejectedInserts++;
    return failure;
  }
}

const AT_ROW = /\(at row (\d+)\)/;

/**
 * Splits refused rows for another try: around the row the server named (`(at row N)`, counted
 * from 1) when it names one, so a single bad row costs about three inserts; in halves otherwise.
 * Every part is tried again, so a wrong hint costs time, never a row.
 */
export function splitAt<T>(rows: readonly T[], serverMessage: string): T[][] {
  const match = AT_ROW.exec(serverMessage);
  const at = match?.[1] === undefined ? 0 : Number(match[1]) - 1;
  if (at >= 0 && at < rows.length && match !== null) {
    return [rows.slice(0, at), rows.slice(at, at + 1), rows.slice(at + 1)].filter(
      (part) => part.length > 0,
    );
  }
  const half = rows.length >> 1;
  return [rows.slice(0, half), rows.slice(half)];
}

async function streamText(stream: NodeJS.ReadableStream): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) {
    chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer));
  }
  return Buffer.concat(chunks).toString('utf8');
}
