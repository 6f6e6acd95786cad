import type { Logger } from '@portcullis/core';
import type { GatewayConfig } from '../config/load-config.js';
import { PgStateDb } from './pg-state-db.js';
import { embeddedStateDir, PgliteStateDb } from './pglite-state-db.js';
import type { StateDb } from './state-db.js';

/** True when some resource keeps state there: a `review` rule with approvers, or access requests. */
export function stateDbNeeded(config: Pick<GatewayConfig, 'resources'>): boolean {
  return Object.values(config.resources).some(
    (r) => r.approvals.size > 0 || r.accessRequests !== null,
  );
}

/** Opens the configured state database now: the shared PostgreSQL, or PGlite in `dataDir/state`. */
export async function openStateDb(
  config: Pick<GatewayConfig, 'state' | 'dataDir'>,
  logger?: Logger,
): Promise<StateDb> {
  const { url, poolSize } = config.state;
  if (url !== null) {
    return new PgStateDb({
      url,
      poolSize,
      // Connecting must give up well before holds are failed for want of the database.
      connectTimeoutMs: Math.max(500, Math.min(5_000, config.state.unavailableAfterMs / 2)),
      queryTimeoutMs: Math.max(1_000, config.state.unavailableAfterMs),
      ...(logger === undefined ? {} : { logger }),
    });
  }
  return PgliteStateDb.open(embeddedStateDir(config.dataDir));
}

/**
 * The state database, opened on first use (PGlite loads a WASM build of PostgreSQL: a gateway
 * that keeps no state should not pay for it). Users share one instance; a failed open is tried
 * again on the next use.
 */
export class LazyStateDb {
  readonly #open: () => Promise<StateDb>;
  #db: Promise<StateDb> | null = null;
  #closed = false;

  constructor(open: () => Promise<StateDb>) {
    this.#open = open;
  }

  /** The configured state database, or null when no resource needs one. */
  static forConfig(config: GatewayConfig, logger?: Logger): LazyStateDb | null {
    return stateDbNeeded(config) ? new LazyStateDb(() => openStateDb(config, logger)) : null;
  }

  /** The open database (opening it the first time). */
  get(): Promise<StateDb> {
    if (this.#closed) return Promise.reject(new Error('the state database is closed'));
    if (this.#db === null) {
      const opening = this.#open();
      this.#db = opening;
      opening.catch(() => {
        if (this.#db === opening) this.#db = null;
      });
    }
    return this.#db;
  }

  /** Closes the database if it was opened. */
  async close(): Promise<void> {
    this.#closed = true;
    const db = this.#db;
    this.#db = null;
    if (db !== null) await db.then((d) => d.close()).catch(() => undefined);
  }
}
