import type { Logger } from '@portcullis/core';
import {
  endedMessage,
  endingNotice,
  grantActive,
  grantEnd,
  warnAt,
  type AccessGrant,
} from './access-rules.js';
import type { AccessStore } from './access-store.js';

/** What the watcher does to a session: warn it, and close it. */
export interface GrantSession {
  /** Sends a NOTICE to the client. */
  notice(message: string): void;
  /** Closes the session with a FATAL error and records `reason` as its end. */
  end(code: string, message: string, reason: string): void;
}

/**
 * SQLSTATE of the FATAL that closes a session whose access ended: admin_shutdown, what
 * PostgreSQL sends when an administrator terminates a backend. Drivers and poolers read it as
 * "this connection is gone" rather than as a failed statement on a live connection; a reconnect
 * is then refused at login with 42501 and the hint to ask again.
 */
export const ACCESS_ENDED_SQLSTATE = '57P01';

/** Node timers fire at most this far ahead; longer waits are re-armed. */
const MAX_TIMER_MS = 2 ** 31 - 1;

interface Watch {
  grant: AccessGrant;
  readonly subject: string;
  readonly warnMinutes: number;
  readonly session: GrantSession;
  warned: boolean;
  timer: NodeJS.Timeout | null;
  done: boolean;
}

/** Options of {@link GrantSessions}. */
export interface GrantSessionsOptions {
  readonly logger: Logger;
  /** How often live grants are re-read besides NOTIFY (`state.pollIntervalMs`). */
  readonly pollIntervalMs: number;
}

/**
 * The sessions of this gateway process that run under an access grant: each gets a NOTICE
 * `warnMinutes` before its grant ends and is closed when it ends. Revocations arrive by NOTIFY
 * from whichever gateway took them, and a poll re-reads the live grants in case a notification
 * was lost. When a grant ends and a later grant of the same person covers the resource, the
 * session carries on under that one.
 */
export class GrantSessions {
  readonly #store: AccessStore;
  readonly #options: GrantSessionsOptions;
  readonly #watches = new Set<Watch>();
  readonly #unsubscribe: () => void;
  #poll: NodeJS.Timeout | null = null;
  #polling = false;

  constructor(store: AccessStore, options: GrantSessionsOptions) {
    this.#store = store;
    this.#options = options;
    this.#unsubscribe = store.onChange((change) => {
      if (change.kind !== 'revoke') return;
      const affected = [...this.#watches].filter((w) => w.grant.id === change.id);
      if (affected.length === 0) return;
      this.#refresh(affected).catch((err: unknown) =>
        options.logger.warn({ err }, 'a revoked access grant could not be re-read; polling again'),
      );
    });
  }

  /** Number of sessions watched. */
  get size(): number {
    return this.#watches.size;
  }

  /** Watches a session that started under `grant`; returns what stops watching (session closed). */
  watch(grant: AccessGrant, warnMinutes: number, session: GrantSession): () => void {
    const watch: Watch = {
      grant,
      subject: grant.grantee.subject,
      warnMinutes,
      session,
      warned: false,
      timer: null,
      done: false,
    };
    this.#watches.add(watch);
    this.#arm(watch);
    this.#startPolling();
    return () => this.#drop(watch);
  }

  /** Stops every timer (shutdown; the sessions are closed by the listener). */
  close(): void {
    this.#unsubscribe();
    for (const watch of [...this.#watches]) this.#drop(watch);
  }

  #drop(watch: Watch): void {
    watch.done = true;
    if (watch.timer !== null) clearTimeout(watch.timer);
    this.#watches.delete(watch);
    if (this.#watches.size === 0 && this.#poll !== null) {
      clearInterval(this.#poll);
      this.#poll = null;
    }
  }

  /** Sets the timer for the next thing due: the warning, then the end. */
  #arm(watch: Watch): void {
    if (watch.done) return;
    if (watch.timer !== null) clearTimeout(watch.timer);
    watch.timer = null;
    const now = this.#store.now();
    const end = grantEnd(watch.grant);
    if (end <= now) {
      void this.#ending(watch);
      return;
    }
    if (!watch.warned && warnAt(watch.grant, watch) <= now) {
      watch.warned = true;
      watch.session.notice(endingNotice(watch.grant));
    }
    const next = watch.warned ? end : warnAt(watch.grant, watch);
    watch.timer = setTimeout(
      () => this.#arm(watch),
      Math.min(MAX_TIMER_MS, Math.max(0, next - now)),
    );
    watch.timer.unref();
  }

  /**
   * The grant ended or was ended: the session carries on under another running grant of the
   * person for the resource, or is closed. Fails closed when the state database cannot say.
   */
  async #ending(watch: Watch): Promise<void> {
    if (watch.done) return;
    const ended = watch.grant;
    let next: AccessGrant | null = null;
    try {
      next = await this.#store.activeGrant(watch.subject, ended.resource);
    } catch (err) {
      this.#options.logger.warn(
        { err, grant: ended.id },
        'access grant ended; no successor could be read',
      );
    }
    if (watch.done) return;
    if (next !== null && next.id !== ended.id && grantActive(next, this.#store.now())) {
      watch.grant = next;
      watch.warned = false;
      watch.session.notice(
        `your access to ${ended.resource} continues under grant ${next.id}, until ${new Date(grantEnd(next)).toISOString()}`,
      );
      this.#arm(watch);
      return;
    }
    const { message, reason } = endedMessage(ended, this.#store.now());
    this.#drop(watch);
    watch.session.end(ACCESS_ENDED_SQLSTATE, message, reason);
  }

  /** Re-reads the grants of `watches` and re-arms them (a revocation shows as an earlier end). */
  async #refresh(watches: readonly Watch[]): Promise<void> {
    const ids = [...new Set(watches.map((w) => w.grant.id))];
    const grants = new Map((await this.#store.grants(ids)).map((g) => [g.id, g]));
    for (const watch of watches) {
      const fresh = grants.get(watch.grant.id);
      if (fresh === undefined || watch.done) continue;
      // Another watch may have moved on to a successor meanwhile; only newer facts apply.
      if (fresh.id !== watch.grant.id) continue;
      watch.grant = fresh;
      this.#arm(watch);
    }
  }

  #startPolling(): void {
    if (this.#poll !== null) return;
    this.#poll = setInterval(() => {
      if (this.#polling) return;
      this.#polling = true;
      this.#refresh([...this.#watches])
        .catch((err: unknown) =>
          this.#options.logger.debug(
            { err },
            'access grants could not be re-read; sessions keep their known end',
          ),
        )
        .finally(() => {
          this.#polling = false;
        });
    }, this.#options.pollIntervalMs);
    this.#poll.unref();
  }
}
