import { Readable } from 'node:stream';
import { createClient, ClickHouseLogLevel, type ClickHouseClient } from '@clickhouse/client';
import { PortcullisError, silentLogger, type Logger, type SessionEvent } from '@portcullis/core';
import type { SpoolRecord } from '../spool/spool-reader.js';
import { eventToRow, type EventRow } from '../store/event-row.js';
import { runMigrations, type MigrationTarget } from '../store/run-migrations.js';
import { eventStoreMigrations, MIN_CLICKHOUSE_VERSION } from '../store/schema.js';
import { DeadLetterFile, type DeadLetterEntry } from './dead-letter-file.js';
import type { BatchSink } from './sink-runner.js';

/**
 * The table layout a {@link ClickHouseSink} writes:
 *
 * - `modern`: the event store's `events` table (packages/events/src/store/schema.ts: DateTime64,
 *   LowCardinality, TTL, rollups kept by materialized views), for servers from
 *   {@link MODERN_MIN_CLICKHOUSE_VERSION} on.
 * - `legacy18`: {@link legacy18TableDdl}, the same columns in types ClickHouse 18.16 has:
 *   `time` as `DateTime('UTC')` plus `time_micros UInt32` (the microseconds within that second),
 *   plain `String`s, no TTL, no rollups.
 */
export type ClickHouseSchemaFlavour = 'modern' | 'legacy18';

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

/** Column types of the `legacy18` table, keyed like the store's row so a new store column is a type error here. */
const LEGACY18_TYPES: Readonly<Record<keyof EventRow, string>> = {
  id: 'UUID',
  schema: 'UInt16',
  type: 'String',
  time: "DateTime('UTC')",
  session_id: 'String',
  seq: 'UInt32',
  person_subject: 'String',
  person_email: 'String',
  person_name: 'Nullable(String)',
  person_groups: 'Array(String)',
  agent_id: 'String',
  agent_name: 'String',
  auth_method: 'String',
  resource: 'String',
  protocol: 'String',
  upstream_user: 'String',
  client_address: 'String',
  client_port: 'UInt16',
  client_application: 'String',
  client_user: 'String',
  client_tls: 'UInt8',
  statement_text: 'Nullable(String)',
  statement_protocol: 'String',
  statement_prepared_name: 'Nullable(String)',
  statement_params: 'UInt32',
  statement_tag: 'String',
  kind: 'String',
  fingerprint: 'String',
  tables: 'Array(String)',
  verdict: 'String',
  rule: 'String',
  rows: 'UInt64',
  bytes: 'UInt64',
  duration_us: 'UInt64',
  error_code: 'String',
  error_message: 'Nullable(String)',
  masked_values: 'Nullable(UInt32)',
  masked_columns: 'Array(String)',
  approval_text: 'Nullable(String)',
  approval_kind: 'String',
  approval_rule: 'String',
  approval_message: 'String',
  end_reason: 'Nullable(String)',
  end_statements: 'UInt32',
  end_rows: 'UInt64',
  end_bytes_from_client: 'UInt64',
  end_bytes_to_client: 'UInt64',
  end_duration_us: 'UInt64',
  end_error_code: 'String',
  end_error_message: 'Nullable(String)',
  approval_id: 'String',
  decision_by_subjects: 'Array(String)',
  decision_by_emails: 'Array(String)',
  decision_reason: 'Nullable(String)',
  decision_waited_us: 'UInt64',
  auth_failure_reason: 'Nullable(String)',
  auth_failure_code: 'String',
  access_grant_id: 'String',
  access_grant_ends_us: 'UInt64',
  access_grant_by_subjects: 'Array(String)',
  access_grant_by_emails: 'Array(String)',
  prev_hash: 'String',
  hash: 'String',
};

/** How a column's value is written as TabSeparated text. */
const enum Kind {
  Text,
  Number,
  NullableText,
  NullableNumber,
  TextArray,
  Time,
  TimeMicros,
}

interface Column {
  readonly name: string;
  /** Where the value comes from in {@link EventRow}. */
  readonly field: keyof EventRow;
  readonly kind: Kind;
}

function kindOf(type: string): Kind {
  if (type === 'Array(String)') return Kind.TextArray;
  if (type === 'Nullable(String)') return Kind.NullableText;
  if (type.startsWith('Nullable(')) return Kind.NullableNumber;
  if (type === 'String' || type === 'UUID') return Kind.Text;
  return Kind.Number;
}

/** A `legacy18` column's ClickHouse type. */
function legacyType({ field, kind }: Column): string {
  return kind === Kind.TimeMicros ? 'UInt32' : LEGACY18_TYPES[field];
}

/** The columns of a flavour, in the order the sink writes them. */
function columnsOf(flavour: ClickHouseSchemaFlavour): readonly Column[] {
  const columns: Column[] = [];
  for (const [field, type] of Object.entries(LEGACY18_TYPES) as [keyof EventRow, string][]) {
    if (field === 'time') {
      columns.push({ name: 'time', field, kind: Kind.Time });
      if (flavour === 'legacy18')
        columns.push({ name: 'time_micros', field, kind: Kind.TimeMicros });
      continue;
    }
    columns.push({ name: field, field, kind: kindOf(type) });
  }
  return columns;
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

// TabSeparated escaping. A field: backslash, tab, newline, CR and NUL escaped. An array element
// is single-quoted with ClickHouse's quoted-string escapes (the same set plus the quote).
const TSV_SPECIAL = /[\\\t\n\r\0]/;
const TSV_SPECIAL_ALL = /[\\\t\n\r\0]/g;
const QUOTED_SPECIAL_ALL = /[\\'\t\n\r\0]/g;
const ESCAPES: Readonly<Record<string, string>> = {
  '\\': '\\\\',
  '\t': '\\t',
  '\n': '\\n',
  '\r': '\\r',
  '\0': '\\0',
  "'": "\\'",
};
const escapeChar = (c: string): string => ESCAPES[c] ?? c;

function tsvText(value: unknown): string {
  const text = typeof value === 'string' ? value : String(value);
  return TSV_SPECIAL.test(text) ? text.replace(TSV_SPECIAL_ALL, escapeChar) : text;
}

function tsvArray(value: unknown): string {
  if (!Array.isArray(value)) return tsvText(value);
  let out = '[';
  for (let i = 0; i < value.length; i++) {
    if (i > 0) out += ',';
    out += `'${String(value[i]).replace(QUOTED_SPECIAL_ALL, escapeChar)}'`;
  }
  return `${out}]`;
}

/** The event's time in µs, split for the `legacy18` columns (floor division, so pre-1970 works too). */
function splitTime(timeUs: number): { seconds: number; micros: number } {
  const seconds = Math.floor(timeUs / 1_000_000);
  return { seconds, micros: timeUs - seconds * 1_000_000 };
}

/** One record, encoded, on its way to the server. */
interface EncodedRow {
  readonly sequence: number;
  readonly id: string;
  /** Whole seconds of the event's time, for the stored-id lookup. */
  readonly seconds: number;
  /** One TabSeparated line, newline included. */
  readonly line: string;
  /** The line's length in UTF-8. */
  readonly bytes: number;
  readonly payload: Buffer;
}

/** Encodes one event as a TabSeparated line of `columns`. Throws on an event without the expected shape. */
function encodeEvent(event: SessionEvent, columns: readonly Column[]): string {
  const row = eventToRow({ event, prevHash: '', hash: '' });
  const { seconds, micros } = splitTime(event.timeUs);
  const cells = new Array<string>(columns.length);
  for (let i = 0; i < columns.length; i++) {
    const column = columns[i]!;
    const value = row[column.field];
    let cell: string;
    switch (column.kind) {
      case Kind.Text:
        cell = tsvText(value);
        break;
      case Kind.Number:
        cell = typeof value === 'number' ? String(value) : tsvText(value);
        break;
      case Kind.NullableText:
        cell = value === null || value === undefined ? '\\N' : tsvText(value);
        break;
      case Kind.NullableNumber:
        cell = value === null || value === undefined ? '\\N' : tsvText(value);
        break;
      case Kind.TextArray:
        cell = tsvArray(value);
        break;
      case Kind.Time:
        // legacy18: DateTime from a Unix timestamp; modern: DateTime64(6) from `seconds.micros`.
        cell = columns[i + 1]?.kind === Kind.TimeMicros ? String(seconds) : tsvText(value);
        break;
      case Kind.TimeMicros:
        cell = String(micros);
        break;
    }
    cells[i] = cell;
  }
  // join() makes one flat string; appending 50-odd cells would leave a rope per row to collect.
  return `${cells.join('\t')}\n`;
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
  const chunks: T[][] = [];
  let current: T[] = [];
  let bytes = 0;
  let group = Number.NaN;
  for (const row of rows) {
    const rowGroup = Math.floor(row.sequence / maxRows);
    const size = row.bytes;
    if (
      current.length > 0 &&
      (rowGroup !== group || current.length >= maxRows || bytes + size > maxBytes)
    ) {
      chunks.push(current);
      current = [];
      bytes = 0;
    }
    current.push(row);
    bytes += size;
    group = rowGroup;
  }
  if (current.length > 0) chunks.push(current);
  return chunks;
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
  readonly table: string;
  readonly schema: ClickHouseSchemaFlavour;
  readonly deadLetters: DeadLetterFile;
  readonly #client: ClickHouseClient;
  readonly #quotedTable: string;
  readonly #columns: readonly Column[];
  readonly #insertQuery: string;
  readonly #maxRows: number;
  readonly #maxBytes: number;
  readonly #createTable: boolean;
  readonly #retentionDays: number;
  readonly #skipStoredIds: boolean;
  readonly #logger: Logger;
  readonly #insertSettings: Record<string, string>;
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
   * Creates the table when missing (see {@link ClickHouseSinkOptions.createTable}); `deliver`
   * does this on first use. Safe to call again; a failure is retried on the next call.
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
      const dead: DeadLetterEntry[] = [];
      let rows = this.#encode(records, dead);
      if (this.#skipStoredIds && rows.length > 0) rows = await this.#withoutStored(rows);
      for (const chunk of planInserts(rows, this.#maxRows, this.#maxBytes)) {
        await this.#insertOrSplit(chunk, dead);
      }
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
    await this.#client.close();
  }

  async #prepare(): Promise<void> {
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

  /** Decodes and encodes records; what is not an event goes to `dead`. */
  #encode(records: readonly SpoolRecord[], dead: DeadLetterEntry[]): EncodedRow[] {
    const rows: EncodedRow[] = [];
    for (const record of records) {
      let event: SessionEvent;
      let line: string;
      try {
        event = JSON.parse(record.payload.toString('utf8')) as SessionEvent;
        line = encodeEvent(event, this.#columns);
      } catch (error) {
        dead.push(
          this.#deadLetter(record.sequence, record.payload, {
            reason: 'undecodable',
            code: null,
            message: error instanceof Error ? error.message : String(error),
          }),
        );
        continue;
      }
      rows.push({
        sequence: record.sequence,
        id: String(event.id),
        seconds: splitTime(Number(event.timeUs)).seconds,
        line,
        bytes: Buffer.byteLength(line),
        payload: record.payload,
      });
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
   * recurses, so only rows that fail alone are dead-lettered. Other failures throw.
   */
  async #insertOrSplit(rows: readonly EncodedRow[], dead: DeadLetterEntry[]): Promise<void> {
    let failure = await this.#insert(rows);
    if (failure === null) return;
    if (rows.length > 1) {
      for (const part of splitAt(rows, failure.message)) await this.#insertOrSplit(part, dead);
      return;
    }
    // One row refused: once more, so a refusal caused by a damaged request cannot condemn it.
    failure = await this.#insert(rows);
    if (failure === null) return;
    const row = rows[0]!;
    dead.push(
      this.#deadLetter(row.sequence, row.payload, {
        reason: 'rejected',
        code: failure.clickhouseCode,
        message: truncate(failure.message, 4000),
      }),
    );
  }

  /** One INSERT. Resolves null on success, with the failure when the server refused the data; throws otherwise. */
  async #insert(rows: readonly EncodedRow[]): Promise<ClickHouseFailure | null> {
    let size = 0;
    for (const row of rows) size += row.bytes;
    const body = Buffer.allocUnsafe(size);
    let offset = 0;
    for (const row of rows) offset += body.write(row.line, offset, 'utf8');
    let httpStatus: number | undefined;
    let responseText: string;
    try {
      const result = await this.#client.exec({
        query: this.#insertQuery,
        values: Readable.from([body], { objectMode: false }),
        ignore_error_response: true,
        clickhouse_settings: this.#insertSettings,
      });
      httpStatus = result.http_status_code;
      responseText = await streamText(result.stream);
    } catch (error) {
      throw this.#failed(classifyClickHouseFailure({ error }), error);
    }
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
