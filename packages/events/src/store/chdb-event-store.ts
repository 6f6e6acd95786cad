import { mkdirSync } from 'node:fs';
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { SessionEvent } from '@portcullis/core';
import { PortcullisError } from '@portcullis/core';
import {
  EVENT_ROW_COLUMNS,
  EVENT_ROW_SELECT,
  eventToRow,
  normalizeEvent,
  rowToEvent,
  type StoredEventRow,
} from './event-row.js';
import { chainEvents, nextHeads, type ChainHead, type ChainedEvent } from './hash-chain.js';
import { eventStoreMigrations, retentionStatements } from './schema.js';
import { runMigrations, type MigrationTarget } from './run-migrations.js';

/** Options of {@link ChdbEventStore}. */
export interface ChdbEventStoreOptions {
  /** chDB's data directory; created when missing. One per process (a chDB limit). */
  readonly dataDir: string;
  /** The HMAC key of the per-session hash chains. */
  readonly chainKey: Buffer | string;
  /** Days events are kept (ClickHouse TTL); applied to existing tables on open. */
  readonly retentionDays: number;
  /** Rows per INSERT; larger arrays are split. Default 50,000. */
  readonly batchRows?: number;
  /**
   * How rows reach the engine. `file` (default) writes each batch as JSONCompactEachRow to a file
   * in `dataDir` and runs `INSERT … SELECT FROM file(…)`, which parses in parallel; `api` hands
   * the JSONEachRow bytes to chDB's insert call. `bench/event-store.bench.ts` measures both.
   */
  readonly insertVia?: 'file' | 'api';
}

/** What one {@link ChdbEventStore.insert} did. */
export interface InsertResult {
  /** Rows written to `events`. */
  readonly inserted: number;
  /** Events skipped because their id was already stored (or repeated in the call). */
  readonly duplicates: number;
}

/** A statement with `{name:Type}` placeholders and the values to bind. */
export interface BoundQuery {
  readonly sql: string;
  readonly params: Readonly<Record<string, unknown>>;
}

type ChdbModule = typeof import('chdb');
type ChdbSession = InstanceType<ChdbModule['Session']>;

let chdbModule: Promise<ChdbModule> | undefined;
/** chdb is ~190 MB once loaded, so it loads on first use, never at import. */
function loadChdb(): Promise<ChdbModule> {
  chdbModule ??= import('chdb');
  return chdbModule;
}

const HEAD_CACHE_LIMIT = 10_000;

/**
 * The store never inserts an id it already holds, so the ReplacingMergeTree need not dedup each
 * inserted block as well (`optimize_on_insert`, on by default, halves insert throughput here).
 */
const INSERT_SETTINGS = 'SETTINGS optimize_on_insert = 0';

/**
 * The embedded event store: ClickHouse's engine in this process (chDB), its data under
 * `dataDir`.
 *
 * **Threading.** chDB runs in the calling process. Its `query` is synchronous; this class only
 * uses the async calls (`queryAsync`, `queryBindAsync`, raw `insert`), which run the engine on a
 * libuv pool thread, so the event loop keeps turning, but the engine's own threads compete with
 * the gateway for the same cores and the libuv pool (4 threads by default, shared with fs and
 * crypto). So it belongs off the gateway's data path: the spool consumer feeds it in batches, and
 * readers (`portcullis events`, `portcullis review`) open it in their own process. Calls on one
 * store run one at a time, in order.
 *
 * **Idempotency.** `insert` chains and writes events whose id is not yet stored; a retried batch
 * writes nothing twice, so the rollups the materialized views keep do not double count.
 */
export class ChdbEventStore {
  readonly #options: Required<ChdbEventStoreOptions>;
  #session: ChdbSession | undefined;
  #opening: Promise<ChdbSession> | undefined;
  #closed = false;
  /** Calls on the chDB session, one after the other. */
  #queue: Promise<unknown> = Promise.resolve();
  /** The last chained event per session this store wrote (bounded; misses are read back). */
  #heads = new Map<string, ChainHead>();
  /** `file()`'s structure argument: the `events` columns in EVENT_ROW_COLUMNS order. */
  #structure = '';

  constructor(options: ChdbEventStoreOptions) {
    this.#options = { batchRows: 50_000, insertVia: 'file', ...options };
    // Validates the retention before anything loads.
    eventStoreMigrations({ retentionDays: options.retentionDays });
  }

  /** Loads chDB, opens the data directory and applies pending migrations (once). */
  async open(): Promise<void> {
    await this.#open();
  }

  /**
   * Chains and writes events, skipping any whose id is already stored. Events of one session
   * must come in `seq` order (across calls too); a session's chain continues from the last event
   * of it this store wrote, or read back from the table.
   */
  insert(events: readonly SessionEvent[]): Promise<InsertResult> {
    return this.#serial(async (session) => {
      let inserted = 0;
      let duplicates = 0;
      for (let start = 0; start < events.length; start += this.#options.batchRows) {
        const r = await this.#insertBatch(
          session,
          events.slice(start, start + this.#options.batchRows),
        );
        inserted += r.inserted;
        duplicates += r.duplicates;
      }
      return { inserted, duplicates };
    }, 'PCL_ERR_EVENTS_WRITE');
  }

  /** Runs a query with bound `{name:Type}` parameters; rows as JSONEachRow objects. */
  query<T>(sql: string, params: Readonly<Record<string, unknown>> = {}): Promise<T[]> {
    return this.#serial((session) => queryRows<T>(session, sql, params), 'PCL_ERR_EVENTS_READ');
  }

  /** {@link query} for a `{ sql, params }` pair, as the review builders return. */
  run<T>(bound: BoundQuery): Promise<T[]> {
    return this.query<T>(bound.sql, bound.params);
  }

  /** A session's stored events with their chain fields, in time order, for verifyChain. */
  readSession(sessionId: string): Promise<ChainedEvent[]> {
    return this.#serial(async (session) => {
      const rows = await queryRows<StoredEventRow>(
        session,
        `SELECT ${EVENT_ROW_SELECT} FROM events FINAL WHERE session_id = {session:String} ORDER BY time, seq`,
        { session: sessionId },
      );
      return rows.map(rowToEvent);
    }, 'PCL_ERR_EVENTS_READ');
  }

  /** Closes the chDB session. The store refuses further calls. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#queue.catch(() => undefined);
    const session = this.#session ?? (await this.#opening?.catch(() => undefined));
    session?.close();
    this.#session = undefined;
    // A later store in this process may open another directory only once chDB let go of this one.
    if (session !== undefined) await (await loadChdb()).drainPending();
  }

  async #open(): Promise<ChdbSession> {
    if (this.#closed) throw new PortcullisError('PCL_ERR_EVENTS_READ', 'The event store is closed');
    if (this.#session !== undefined) return this.#session;
    this.#opening ??= (async () => {
      try {
        const { Session } = await loadChdb();
        mkdirSync(this.#options.dataDir, { recursive: true });
        const session = new Session(this.#options.dataDir);
        const target: MigrationTarget = {
          command: async (sql) => {
            await session.queryAsync(sql);
          },
          query: (sql, params) => queryRows(session, sql, params ?? {}),
        };
        const { retentionDays } = this.#options;
        await runMigrations(target, eventStoreMigrations({ retentionDays }));
        // Only when the configured retention differs, since MODIFY TTL rewrites parts.
        const [current] = await queryRows<{ ttl: string }>(
          session,
          "SELECT engine_full AS ttl FROM system.tables WHERE database = currentDatabase() AND name = 'events'",
          {},
        );
        // The server prints `INTERVAL n DAY` back as `toIntervalDay(n)`.
        const days = /toIntervalDay\((\d+)\)/.exec(current?.ttl ?? '')?.[1];
        if (days !== undefined && Number(days) !== retentionDays) {
          for (const sql of retentionStatements(retentionDays)) await session.queryAsync(sql);
        }
        const columns = await queryRows<{ name: string; type: string }>(
          session,
          "SELECT name, type FROM system.columns WHERE database = currentDatabase() AND table = 'events'",
          {},
        );
        // Parsed as plain strings and cast to LowCardinality by the INSERT: the cast is
        // vectorised, while parsing straight into LowCardinality goes value by value (2-2.5×
        // slower on this schema, measured).
        const types = new Map(
          columns.map((c) => [
            c.name,
            c.type
              .replace(/LowCardinality\(Nullable\(String\)\)/g, 'Nullable(String)')
              .replace(/LowCardinality\(String\)/g, 'String'),
          ]),
        );
        this.#structure = EVENT_ROW_COLUMNS.map((name) => `${name} ${types.get(name)}`).join(', ');
        this.#session = session;
        return session;
      } catch (err) {
        this.#opening = undefined;
        throw new PortcullisError('PCL_ERR_EVENTS_READ', 'The event store could not be opened', {
          cause: err,
        });
      }
    })();
    return this.#opening;
  }

  #serial<T>(
    work: (session: ChdbSession) => Promise<T>,
    code: 'PCL_ERR_EVENTS_WRITE' | 'PCL_ERR_EVENTS_READ',
  ): Promise<T> {
    const run = this.#queue.then(async () => {
      const session = await this.#open();
      try {
        return await work(session);
      } catch (err) {
        if (err instanceof PortcullisError) throw err;
        throw new PortcullisError(
          code,
          code === 'PCL_ERR_EVENTS_WRITE'
            ? 'The event store could not write events'
            : 'The event store could not run a query',
          { cause: err },
        );
      }
    });
    this.#queue = run.catch(() => undefined);
    return run;
  }

  async #insertBatch(session: ChdbSession, batch: readonly SessionEvent[]): Promise<InsertResult> {
    if (batch.length === 0) return { inserted: 0, duplicates: 0 };
    // Ids already stored, looked up within the batch's time range (partition and index pruning).
    let minUs = Infinity;
    let maxUs = -Infinity;
    for (const e of batch) {
      if (e.timeUs < minUs) minUs = e.timeUs;
      if (e.timeUs > maxUs) maxUs = e.timeUs;
    }
    const stored = await queryRows<{ id: string }>(
      session,
      'SELECT toString(id) AS id FROM events WHERE time >= fromUnixTimestamp64Micro({lo:Int64}) AND time <= fromUnixTimestamp64Micro({hi:Int64}) AND id IN (SELECT arrayJoin({ids:Array(UUID)}))',
      { lo: minUs, hi: maxUs, ids: batch.map((e) => e.id) },
    );
    const seen = new Set(stored.map((r) => r.id));
    const fresh: SessionEvent[] = [];
    for (const e of batch) {
      const id = e.id.toLowerCase();
      if (seen.has(id)) continue;
      seen.add(id);
      fresh.push(normalizeEvent(e));
    }
    const duplicates = batch.length - fresh.length;
    if (fresh.length === 0) return { inserted: 0, duplicates };

    const heads = await this.#headsFor(session, fresh);
    // `fresh` holds normalized events, whose JSON.stringify is their canonical JSON.
    const chained = chainEvents(fresh, this.#options.chainKey, heads, JSON.stringify);
    if (this.#options.insertVia === 'api') {
      let body = '';
      for (const c of chained) body += JSON.stringify(eventToRow(c)) + '\n';
      await session.insert({
        table: 'events',
        values: Buffer.from(body),
        format: 'JSONEachRow',
        settings: { optimize_on_insert: 0 },
      });
    } else {
      let body = '';
      for (const c of chained) body += JSON.stringify(Object.values(eventToRow(c))) + '\n';
      const path = join(this.#options.dataDir, 'insert-batch.jsonl');
      await writeFile(path, body);
      try {
        await session.queryAsync(
          `INSERT INTO events (${EVENT_ROW_COLUMNS.join(', ')}) SELECT * FROM file(${sqlString(path)}, JSONCompactEachRow, ${sqlString(this.#structure)}) ${INSERT_SETTINGS}`,
        );
      } finally {
        await rm(path, { force: true });
      }
    }
    this.#remember(nextHeads(new Map(), chained));
    return { inserted: fresh.length, duplicates };
  }

  /** Chain heads for the sessions of `events` that continue a chain this store has not cached. */
  async #headsFor(
    session: ChdbSession,
    events: readonly SessionEvent[],
  ): Promise<Map<string, ChainHead>> {
    const heads = new Map<string, ChainHead>();
    const missing = new Set<string>();
    const firstSeq = new Map<string, number>();
    for (const e of events) {
      if (firstSeq.has(e.sessionId)) continue;
      firstSeq.set(e.sessionId, e.seq);
      const cached = this.#heads.get(e.sessionId);
      if (cached !== undefined) heads.set(e.sessionId, cached);
      else if (e.seq > 0) missing.add(e.sessionId);
    }
    if (missing.size > 0) {
      const rows = await queryRows<{ session_id: string; last_seq: number; last_hash: string }>(
        session,
        'SELECT session_id, max(seq) AS last_seq, argMax(hash, seq) AS last_hash FROM events WHERE session_id IN (SELECT arrayJoin({ids:Array(String)})) GROUP BY session_id',
        { ids: [...missing] },
      );
      for (const r of rows) heads.set(r.session_id, { seq: Number(r.last_seq), hash: r.last_hash });
    }
    return heads;
  }

  #remember(heads: Map<string, ChainHead>): void {
    for (const [sessionId, head] of heads) {
      this.#heads.delete(sessionId);
      this.#heads.set(sessionId, head);
    }
    // Oldest first in insertion order: drop the least recently written sessions.
    for (const sessionId of this.#heads.keys()) {
      if (this.#heads.size <= HEAD_CACHE_LIMIT) break;
      this.#heads.delete(sessionId);
    }
  }
}

/** A ClickHouse string literal. */
function sqlString(value: string): string {
  return `'${value.replace(/[\\']/g, '\\$&')}'`;
}

async function queryRows<T>(
  session: ChdbSession,
  sql: string,
  params: Readonly<Record<string, unknown>>,
): Promise<T[]> {
  const result =
    Object.keys(params).length === 0
      ? await session.queryAsync(sql, { format: 'JSONEachRow' })
      : await session.queryBindAsync(sql, params, { format: 'JSONEachRow' });
  const text = result.text();
  if (text.length === 0) return [];
  const rows: T[] = [];
  for (const line of text.split('\n')) if (line.length > 0) rows.push(JSON.parse(line) as T);
  return rows;
}
