import type { Socket } from 'node:net';
import type { Logger, Person, StatementRecord } from '@portcullis/core';
import type { PostgresResource, ResourceMasking } from '../config/load-config.js';
import { CatalogCache, readSearchPath } from './catalog-loader.js';
import type { CatalogSnapshot } from './catalog-snapshot.js';
import { ColumnRules } from './column-rules.js';
import type { MaskingPool, MaskTestHook } from './masking-pool.js';
import { ResultPlanner } from './result-planner.js';
import { SessionMasking, VerdictCache } from './session-masking.js';

/** The process's masking workers, as sessions use them. */
export interface MaskingWorkers {
  readonly pool: MaskingPool;
  /** Runs of masked rows at least this long (bytes) go to a worker. */
  readonly thresholdBytes: number;
  /** Test-only fault injection (see MaskTestHook). */
  readonly fault?: () => MaskTestHook | undefined;
}

/** What a session of a masking resource gets: its judge's masking and its result planner. */
export interface MaskedSession {
  readonly masking: SessionMasking;
  readonly planner: ResultPlanner;
  /** Upstream bytes that arrived after the search path was read (belong to the session). */
  readonly leftover: Buffer;
}

/** Least time between reloads caused by names the snapshot lacks. */
const STALE_RELOAD_INTERVAL_MS = 1_000;

/** Statement kinds after which the catalog may have changed. */
const DDL_KINDS: ReadonlySet<string> = new Set(['create', 'alter', 'drop', 'multi', 'other']);

/**
 * Masking state one gateway process keeps per resource: the upstream catalog snapshot, the
 * verdict cache its sessions share, and a result planner per rule set (people exempt from
 * different rules see different plans).
 */
export class ResourceMaskingRuntime {
  readonly #resource: PostgresResource;
  readonly #config: ResourceMasking;
  readonly #logger: Logger;
  readonly #maxFrameBytes: number;
  readonly #catalog: CatalogCache;
  readonly #verdicts = new VerdictCache();
  readonly #planners = new Map<string, ResultPlanner>();
  readonly #hashKey: Uint8Array | null;
  #lastStaleReload = 0;
  /** Counts DDL seen through this process: prepared statements' masks predate a change. */
  #schemaEpoch = 0;

  constructor(
    resource: PostgresResource & { readonly masking: ResourceMasking },
    options: { readonly logger: Logger; readonly maxFrameBytes: number },
  ) {
    this.#resource = resource;
    this.#config = resource.masking;
    this.#logger = options.logger;
    this.#maxFrameBytes = options.maxFrameBytes;
    this.#hashKey =
      resource.masking.hashKey === null
        ? null
        : new Uint8Array(Buffer.from(resource.masking.hashKey, 'utf8'));
    this.#catalog = new CatalogCache(resource, {
      refreshMs: resource.masking.catalogRefreshMs,
      logger: options.logger,
      maxFrameBytes: options.maxFrameBytes,
    });
  }

  /**
   * Prepares masking for a session whose upstream connection (`socket`) just logged in: waits
   * for a fresh catalog snapshot and reads the session's search path on its own connection.
   * Returns null when nothing is masked for this person. Rejects when either read fails; the
   * caller refuses the session (fail closed).
   */
  async openSession(socket: Socket, person: Person): Promise<MaskedSession | null> {
    const rules = ColumnRules.forPerson(this.#config.rules, person.groups);
    const detect = this.#config.detectors !== null;
    if (rules.empty && !detect) return null;
    const snapshot = await this.#catalog.current();
    const { searchPath, leftover } = await readSearchPath(socket, {
      maxFrameBytes: this.#maxFrameBytes,
      timeoutMs: this.#resource.connectTimeoutMs,
    });
    const catalog = this.#catalog;
    const masking = new SessionMasking({
      rules,
      detect,
      catalog: () => catalog.snapshot ?? snapshot,
      searchPath,
      trustedFunctions: this.#config.trustedFunctions,
      cache: this.#verdicts,
      onUnknownRelation: () => this.#maybeStale(),
      schemaEpoch: () => this.#schemaEpoch,
    });
    return { masking, planner: this.#planner(rules), leftover };
  }

  /**
   * Called for each finished statement: DDL marks the catalog snapshot stale and reloads it.
   * Returns the reload for the session to wait on (its next statement may use the new table);
   * it settles either way, since a failed reload keeps the old snapshot and logs.
   */
  statementDone(record: StatementRecord): Promise<void> | null {
    if (record.error !== null || !DDL_KINDS.has(record.kind)) return null;
    this.#schemaEpoch++;
    this.#catalog.invalidate();
    return this.#catalog.current().then(
      () => undefined,
      () => undefined,
    );
  }

  close(): void {
    this.#catalog.close();
  }

  /**
   * A statement named a relation, or a result a table OID, the snapshot lacks: someone may have
   * changed the schema behind the gateway's back. Reload, at most once per
   * {@link STALE_RELOAD_INTERVAL_MS}, so a retry sees it and a stream of bad names cannot hammer
   * the upstream.
   */
  #maybeStale(): void {
    const now = Date.now();
    if (now - this.#lastStaleReload < STALE_RELOAD_INTERVAL_MS) return;
    this.#lastStaleReload = now;
    this.#catalog.invalidate();
  }

  #planner(rules: ColumnRules): ResultPlanner {
    let planner = this.#planners.get(rules.key);
    if (planner === undefined) {
      const catalog = this.#catalog;
      const logger = this.#logger;
      const resource = this.#resource.name;
      planner = new ResultPlanner({
        rules,
        hashKey: this.#hashKey,
        detector: this.#config.detectors,
        locate: (tableOid, columnAttr) => {
          const found = locate(catalog.snapshot, tableOid, columnAttr);
          if (found === null && catalog.snapshot?.relationByOid(tableOid) === null) {
            this.#maybeStale();
          }
          return found;
        },
        onMismatch: (detail) => logger.warn({ resource }, `masking plan corrected: ${detail}`),
      });
      this.#planners.set(rules.key, planner);
    }
    return planner;
  }
}

function locate(
  snapshot: CatalogSnapshot | null,
  tableOid: number,
  columnAttr: number,
): { schema: string; table: string; column: string } | null {
  const relation = snapshot?.relationByOid(tableOid) ?? null;
  const column = snapshot?.columnByAttnum(tableOid, columnAttr) ?? null;
  if (relation === null || column === null) return null;
  return { schema: relation.schema, table: relation.name, column };
}
