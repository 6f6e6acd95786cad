import type { Logger } from '@portcullis/core';
import type { GatewayConfig } from '../config/load-config.js';
import type { StateDb } from '../state/state-db.js';
import { GrantSessions, type GrantSession } from './access-sessions.js';
import type { AccessGrant, AccessPolicy } from './access-rules.js';
import { AccessStore } from './access-store.js';

/** Options of {@link AccessService}. */
export interface AccessServiceOptions {
  readonly logger: Logger;
  /** Re-read interval of live grants besides NOTIFY. */
  readonly pollIntervalMs: number;
  readonly now?: () => number;
}

/**
 * Access requests in one gateway process: the store (opened on first use, since the state
 * database may be an embedded PGlite that a gateway without requests should not load) and the
 * sessions running under grants.
 */
export class AccessService {
  readonly #db: () => Promise<StateDb>;
  readonly #options: AccessServiceOptions;
  #store: Promise<AccessStore> | null = null;
  #sessions: GrantSessions | null = null;
  #closed = false;

  constructor(db: () => Promise<StateDb>, options: AccessServiceOptions) {
    this.#db = db;
    this.#options = options;
  }

  /** The service when some resource takes access requests, else null. */
  static forConfig(
    config: Pick<GatewayConfig, 'resources' | 'state'>,
    db: () => Promise<StateDb>,
    logger: Logger,
  ): AccessService | null {
    const any = Object.values(config.resources).some((r) => r.accessRequests !== null);
    return any
      ? new AccessService(db, { logger, pollIntervalMs: config.state.pollIntervalMs })
      : null;
  }

  /** The store, opened (tables migrated, changes subscribed) the first time. */
  store(): Promise<AccessStore> {
    if (this.#closed) return Promise.reject(new Error('access requests are closed'));
    if (this.#store === null) {
      const opening = this.#db().then((db) =>
        AccessStore.open(db, {
          logger: this.#options.logger,
          ...(this.#options.now === undefined ? {} : { now: this.#options.now }),
        }),
      );
      this.#store = opening;
      opening.then(
        (store) => {
          this.#sessions ??= new GrantSessions(store, this.#options);
        },
        () => {
          if (this.#store === opening) this.#store = null; // try again on the next use
        },
      );
    }
    return this.#store;
  }

  /** The grant that lets `subject` use `resource` now, or null. */
  async activeGrant(subject: string, resource: string): Promise<AccessGrant | null> {
    return (await this.store()).activeGrant(subject, resource);
  }

  /** Warns and closes a session under `grant` on time; returns what stops watching it. */
  async watch(
    grant: AccessGrant,
    policy: AccessPolicy,
    session: GrantSession,
  ): Promise<() => void> {
    const store = await this.store();
    this.#sessions ??= new GrantSessions(store, this.#options);
    return this.#sessions.watch(grant, policy.warnMinutes, session);
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#sessions?.close();
    const store = this.#store;
    this.#store = null;
    if (store !== null) await store.then((s) => s.close()).catch(() => undefined);
  }
}
