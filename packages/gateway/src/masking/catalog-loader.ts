import type { Socket } from 'node:net';
import { PortcullisError, silentLogger, type Logger } from '@portcullis/core';
import { terminate } from '@portcullis/protocol-pg';
import type { PostgresResource } from '../config/load-config.js';
import { connectUpstream } from '../pg/connect-upstream.js';
import { CatalogSnapshot, type ColumnRow, type RelationRow } from './catalog-snapshot.js';
import { runSimpleQuery, type SimpleQueryOptions } from './simple-query.js';

/** Options of {@link loadCatalogSnapshot}. */
export interface LoadCatalogOptions {
  /** Refuse a catalog with more relations than this (indexes not counted); default 100 000. */
  readonly maxRelations?: number;
  /** Largest frame accepted from the server (a long view definition); default 16 MiB. */
  readonly maxFrameBytes?: number;
  /** Time allowed for each catalog query, in milliseconds; default 30 000. */
  readonly timeoutMs?: number;
  /** The snapshot's generation number; default 1. */
  readonly generation?: number;
}

/** Default of {@link LoadCatalogOptions.maxRelations}. */
export const DEFAULT_MAX_CATALOG_RELATIONS = 100_000;
const DEFAULT_MAX_FRAME_BYTES = 16 * 1024 * 1024;
const DEFAULT_TIMEOUT_MS = 30_000;

/** `application_name` of the gateway's catalog connections, as pg_stat_activity shows it. */
export const CATALOG_APPLICATION_NAME = 'portcullis catalog';

// Every name is qualified and the path is pg_catalog alone, so objects in a user's schema (or a
// role's search_path setting) cannot stand in for catalog tables, functions or operators, and
// pg_get_viewdef qualifies every relation outside pg_catalog. One repeatable-read transaction
// makes the three reads one consistent picture. Indexes are left out: they have no rows to read.
const BEGIN_AND_COUNT = `SET search_path = pg_catalog;
BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY;
SELECT pg_catalog.count(*) FROM pg_catalog.pg_class WHERE relkind NOT IN ('i', 'I')`;

const READ_CATALOG = `SELECT c.oid, n.nspname, c.relname, c.relkind,
  CASE WHEN c.relkind IN ('v', 'm') THEN pg_catalog.pg_get_viewdef(c.oid) END
FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind NOT IN ('i', 'I');
SELECT a.attrelid, a.attnum, a.attname, a.atttypid, a.attisdropped
FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_class c ON c.oid = a.attrelid
WHERE a.attnum > 0 AND c.relkind NOT IN ('i', 'I');
COMMIT`;

/** The query that reads a session's resolved search path, one schema a row, in order. */
export const SEARCH_PATH_QUERY = 'SELECT pg_catalog.unnest(pg_catalog.current_schemas(true))';

function loadFailed(resource: PostgresResource, err: unknown): PortcullisError {
  const why = err instanceof Error ? err.message : String(err);
  return new PortcullisError(
    'PCL_ERR_UPSTREAM_CONNECT',
    `cannot read the catalog of upstream ${resource.name}: ${why}`,
    { cause: err },
  );
}

function number(value: string | null | undefined): number {
  const n = Number(value);
  if (value == null || !Number.isSafeInteger(n)) {
    throw new PortcullisError('PCL_ERR_PROTOCOL_MALFORMED', 'unexpected value in a catalog row');
  }
  return n;
}

function text(value: string | null | undefined): string {
  if (value == null) {
    throw new PortcullisError('PCL_ERR_PROTOCOL_MALFORMED', 'unexpected NULL in a catalog row');
  }
  return value;
}

/**
 * Reads the search path of the session on `socket` (logged in and idle): the schemas
 * `current_schemas(true)` lists, including pg_catalog and the session's temporary schema where
 * they apply. Used on a session's own upstream connection right after login; `leftover` holds
 * any bytes that came after the answer.
 */
export async function readSearchPath(
  socket: Socket,
  options: SimpleQueryOptions,
): Promise<{ searchPath: string[]; leftover: Buffer }> {
  const result = await runSimpleQuery(socket, SEARCH_PATH_QUERY, options);
  return { searchPath: result.rows.map((row) => text(row[0])), leftover: result.leftover };
}

/**
 * Loads a {@link CatalogSnapshot} of a resource's database over a side connection (the
 * resource's own credentials, `application_name` {@link CATALOG_APPLICATION_NAME}), then closes
 * it. Rejects with a PortcullisError when the server cannot be reached or refuses the reads,
 * or when the catalog holds more than `maxRelations` relations; callers refuse what needed the
 * snapshot (fail closed).
 */
export async function loadCatalogSnapshot(
  resource: PostgresResource,
  options: LoadCatalogOptions = {},
): Promise<CatalogSnapshot> {
  const maxRelations = options.maxRelations ?? DEFAULT_MAX_CATALOG_RELATIONS;
  const queryOptions = {
    maxFrameBytes: options.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES,
    timeoutMs: options.timeoutMs ?? DEFAULT_TIMEOUT_MS,
  };
  let socket: Socket | null = null;
  let tooLarge: PortcullisError | null = null;
  try {
    const upstream = await connectUpstream(
      resource,
      new Map([['application_name', CATALOG_APPLICATION_NAME]]),
    );
    socket = upstream.socket;
    const loadedAt = Date.now();
    const counted = await runSimpleQuery(socket, BEGIN_AND_COUNT, {
      ...queryOptions,
      pending: upstream.leftover,
    });
    const count = number(counted.rows[0]?.[0]);
    if (count > maxRelations) {
      throw (tooLarge = new PortcullisError(
        'PCL_ERR_UPSTREAM_CONNECT',
        `the catalog of upstream ${resource.name} holds ${count} relations, over the limit of ${maxRelations}; masking cannot follow it`,
      ));
    }
    const read = await runSimpleQuery(socket, READ_CATALOG, {
      ...queryOptions,
      pending: counted.leftover,
    });
    const [relationSet, columnSet] = read.resultSets;
    if (relationSet === undefined || columnSet === undefined) {
      throw new PortcullisError('PCL_ERR_PROTOCOL_MALFORMED', 'catalog query returned no rows');
    }
    const relations: RelationRow[] = relationSet.rows.map((row) => ({
      oid: number(row[0]),
      schema: text(row[1]),
      name: text(row[2]),
      relkind: text(row[3]),
      definition: row[4] ?? null,
    }));
    const columns: ColumnRow[] = columnSet.rows.map((row) => ({
      relationOid: number(row[0]),
      attnum: number(row[1]),
      name: text(row[2]),
      typeOid: number(row[3]),
      dropped: row[4] === 't',
    }));
    return new CatalogSnapshot(
      { relations, columns },
      { generation: options.generation ?? 1, loadedAt },
    );
  } catch (err) {
    throw err === tooLarge ? err : loadFailed(resource, err);
  } finally {
    if (socket !== null && !socket.destroyed) {
      socket.on('error', () => undefined); // nothing more to learn from this connection
      socket.end(terminate);
    }
  }
}

/** Options of a {@link CatalogCache}. */
export interface CatalogCacheOptions extends LoadCatalogOptions {
  /** How often to reload in the background, in milliseconds; default 60 000; 0 never. */
  readonly refreshMs?: number;
  readonly logger?: Logger;
  /** Replaces {@link loadCatalogSnapshot} (tests). */
  readonly load?: (
    resource: PostgresResource,
    options: LoadCatalogOptions,
  ) => Promise<CatalogSnapshot>;
}

const DEFAULT_REFRESH_MS = 60_000;

/**
 * The catalog snapshot of one resource, loaded on first use and kept fresh: reloaded every
 * `refreshMs` and after {@link invalidate} (DDL the gateway saw). Concurrent callers share one
 * load. A failed load rejects {@link current} (callers refuse: fail closed); a failed background
 * refresh keeps the previous snapshot and logs a warning.
 */
export class CatalogCache {
  readonly #resource: PostgresResource;
  readonly #options: CatalogCacheOptions;
  readonly #logger: Logger;
  readonly #load: NonNullable<CatalogCacheOptions['load']>;
  readonly #timer: NodeJS.Timeout | null;
  #snapshot: CatalogSnapshot | null = null;
  #loading: Promise<CatalogSnapshot> | null = null;
  /** Counts invalidations; a load started before the latest one leaves the snapshot stale. */
  #epoch = 0;
  #freshEpoch = -1;
  #generation = 0;
  #closed = false;

  constructor(resource: PostgresResource, options: CatalogCacheOptions = {}) {
    this.#resource = resource;
    this.#options = options;
    this.#logger = options.logger ?? silentLogger;
    this.#load = options.load ?? loadCatalogSnapshot;
    const refreshMs = options.refreshMs ?? DEFAULT_REFRESH_MS;
    this.#timer = refreshMs > 0 ? setInterval(() => this.#refresh(), refreshMs).unref() : null;
  }

  /**
   * The last snapshot loaded, or null before the first load. After {@link invalidate} it may be
   * stale until the reload ends (see {@link stale}); use {@link current} where DDL matters.
   */
  get snapshot(): CatalogSnapshot | null {
    return this.#snapshot;
  }

  /** True when DDL was reported since the snapshot was read (or nothing is loaded yet). */
  get stale(): boolean {
    return this.#freshEpoch !== this.#epoch;
  }

  /** A snapshot read after the last {@link invalidate}; loads (or waits for a load) when needed. */
  async current(): Promise<CatalogSnapshot> {
    for (;;) {
      const snapshot = this.#snapshot;
      if (snapshot !== null && !this.stale) return snapshot;
      await this.#loadShared();
    }
  }

  /** Marks the snapshot stale (the gateway saw DDL) and starts reloading in the background. */
  invalidate(): void {
    this.#epoch++;
    if (!this.#closed) this.#refresh();
  }

  /** Stops the background refresh. {@link current} still loads when asked. */
  close(): void {
    this.#closed = true;
    if (this.#timer !== null) clearInterval(this.#timer);
  }

  #refresh(): void {
    // Nothing asked for the catalog yet: no reason to read it.
    if (this.#snapshot === null && this.#loading === null) return;
    this.#loadShared().catch((err: unknown) => {
      this.#logger.warn(
        { err, resource: this.#resource.name },
        'catalog refresh failed; keeping the previous snapshot',
      );
    });
  }

  #loadShared(): Promise<CatalogSnapshot> {
    if (this.#loading !== null) return this.#loading;
    const epoch = this.#epoch;
    const generation = ++this.#generation;
    const started = Date.now();
    const { maxRelations, maxFrameBytes, timeoutMs } = this.#options;
    const options: LoadCatalogOptions = {
      generation,
      ...(maxRelations === undefined ? {} : { maxRelations }),
      ...(maxFrameBytes === undefined ? {} : { maxFrameBytes }),
      ...(timeoutMs === undefined ? {} : { timeoutMs }),
    };
    const loading = this.#load(this.#resource, options).then(
      (snapshot) => {
        this.#snapshot = snapshot;
        this.#freshEpoch = epoch;
        this.#logger.debug(
          {
            resource: this.#resource.name,
            generation,
            relations: snapshot.relationCount,
            ms: Date.now() - started,
          },
          'catalog snapshot loaded',
        );
        return snapshot;
      },
      (err: unknown) => {
        throw err instanceof PortcullisError ? err : loadFailed(this.#resource, err);
      },
    );
    this.#loading = loading;
    void loading.then(
      () => (this.#loading = null),
      () => (this.#loading = null),
    );
    return loading;
  }
}
