import pg from 'pg';
import type { Logger } from '@portcullis/core';
import { StateDbUnavailable, type StateDb, type StateTx } from './state-db.js';

/** Options of {@link PgStateDb}. */
export interface PgStateDbOptions {
  /** postgres:// URL of the shared state database. */
  readonly url: string;
  /** Connections in the pool (the LISTEN connection comes on top). */
  readonly poolSize: number;
  /** Longest wait for a new connection before the database counts as unreachable. */
  readonly connectTimeoutMs?: number;
  /**
   * Longest wait for a statement's answer: a server that stopped answering without closing
   * the connection (a network partition) counts as unreachable, and the connection is dropped.
   */
  readonly queryTimeoutMs?: number;
  readonly logger?: Logger;
}

/** SQLSTATE classes that mean "the server is not there for us" rather than "the SQL failed". */
const UNAVAILABLE_SQLSTATE = /^(08|57P0[1-4]|53300|3D000)/;

/**
 * True when `err` is about reaching the database (refused, reset, timed out, the server shutting
 * down), not about the statement: such errors become {@link StateDbUnavailable}.
 */
export function isConnectionError(err: unknown): boolean {
  if (!(err instanceof Error)) return true;
  const { code, severity } = err as Error & { code?: unknown; severity?: unknown };
  // Errors the server sent carry a severity; everything else came from the socket or the pool.
  if (typeof severity !== 'string') return true;
  return typeof code === 'string' && UNAVAILABLE_SQLSTATE.test(code);
}

function unavailable(err: unknown): Error {
  if (err instanceof StateDbUnavailable || !isConnectionError(err)) return err as Error;
  const message = err instanceof Error ? err.message : String(err);
  return new StateDbUnavailable(`the state database is unreachable: ${message}`, { cause: err });
}

function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

interface Subscriber {
  readonly onPayload: (payload: string) => void;
  readonly onLost: (err: Error) => void;
}

/**
 * The shared state database on a PostgreSQL server: a pool for statements and transactions,
 * and one dedicated connection for LISTEN (a pooled connection would drop the subscription
 * when it is handed back). When that connection ends, every subscriber hears `onLost` and the
 * next {@link listen} opens a new one.
 */
export class PgStateDb implements StateDb {
  readonly kind = 'postgres';
  readonly #pool: pg.Pool;
  readonly #options: PgStateDbOptions;
  readonly #subscribers = new Map<string, Set<Subscriber>>();
  #listener: Promise<pg.Client> | null = null;
  #closed = false;

  constructor(options: PgStateDbOptions) {
    this.#options = options;
    this.#pool = new pg.Pool({
      connectionString: options.url,
      max: options.poolSize,
      connectionTimeoutMillis: options.connectTimeoutMs ?? 5_000,
      ...(options.queryTimeoutMs === undefined ? {} : { query_timeout: options.queryTimeoutMs }),
      keepAlive: true,
      application_name: 'portcullis-state',
    });
    // An idle pooled connection that dies is discarded by the pool; the next query reconnects.
    this.#pool.on('error', (err) => {
      options.logger?.warn({ err }, 'a state database connection failed');
    });
  }

  async query<Row extends Record<string, unknown>>(
    text: string,
    params: readonly unknown[] = [],
  ): Promise<Row[]> {
    this.#assertOpen();
    try {
      const result = await this.#pool.query<Row>(text, params as unknown[]);
      return lastRows(result);
    } catch (err) {
      throw unavailable(err);
    }
  }

  async transaction<T>(work: (tx: StateTx) => Promise<T>): Promise<T> {
    this.#assertOpen();
    let client: pg.PoolClient;
    try {
      client = await this.#pool.connect();
    } catch (err) {
      throw unavailable(err);
    }
    let broken: Error | undefined;
    const tx: StateTx = {
      query: async <Row extends Record<string, unknown>>(
        text: string,
        params: readonly unknown[] = [],
      ) => {
        try {
          return lastRows(await client.query<Row>(text, params as unknown[]));
        } catch (err) {
          const mapped = unavailable(err);
          if (mapped instanceof StateDbUnavailable) broken = mapped;
          throw mapped;
        }
      },
    };
    try {
      await tx.query('BEGIN');
      const result = await work(tx);
      await tx.query('COMMIT');
      return result;
    } catch (err) {
      if (broken === undefined) await client.query('ROLLBACK').catch(() => undefined);
      throw err;
    } finally {
      // A connection that failed mid-transaction is not handed to anyone else.
      client.release(broken);
    }
  }

  async listen(
    channel: string,
    onPayload: (payload: string) => void,
    onLost: (err: Error) => void,
  ): Promise<() => Promise<void>> {
    this.#assertOpen();
    const client = await this.#listenerClient();
    const subscriber: Subscriber = { onPayload, onLost };
    let set = this.#subscribers.get(channel);
    if (set === undefined) {
      set = new Set();
      this.#subscribers.set(channel, set);
      try {
        await client.query(`LISTEN ${quoteIdent(channel)}`);
      } catch (err) {
        this.#subscribers.delete(channel);
        throw unavailable(err);
      }
    }
    set.add(subscriber);
    return async () => {
      const current = this.#subscribers.get(channel);
      if (current === undefined || !current.delete(subscriber) || current.size > 0) return;
      this.#subscribers.delete(channel);
      await client.query(`UNLISTEN ${quoteIdent(channel)}`).catch(() => undefined);
    };
  }

  async notify(channel: string, payload: string): Promise<void> {
    await this.query('SELECT pg_notify($1, $2)', [channel, payload]);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const listener = this.#listener;
    this.#listener = null;
    this.#subscribers.clear();
    if (listener !== null) {
      await listener.then((c) => c.end()).catch(() => undefined);
    }
    await this.#pool.end();
  }

  #assertOpen(): void {
    if (this.#closed) throw new StateDbUnavailable('the state database connection is closed');
  }

  /** The LISTEN connection, opened on first use and again after it was lost. */
  #listenerClient(): Promise<pg.Client> {
    if (this.#listener === null) {
      const opening = this.#connectListener(() => {
        if (this.#listener === opening) this.#listener = null;
      });
      this.#listener = opening;
    }
    return this.#listener;
  }

  async #connectListener(forget: () => void): Promise<pg.Client> {
    const client = new pg.Client({
      connectionString: this.#options.url,
      connectionTimeoutMillis: this.#options.connectTimeoutMs ?? 5_000,
      keepAlive: true,
      application_name: 'portcullis-state-listen',
    });
    let lost = false;
    const lose = (err: Error): void => {
      if (lost) return;
      lost = true;
      forget();
      const subscribers = [...this.#subscribers.values()].flatMap((s) => [...s]);
      this.#subscribers.clear();
      client.end().catch(() => undefined);
      if (this.#closed) return;
      const reason = new StateDbUnavailable(
        `the state database LISTEN connection was lost: ${err.message}`,
        { cause: err },
      );
      for (const s of subscribers) s.onLost(reason);
    };
    client.on('error', lose);
    client.on('end', () => lose(new Error('the connection ended')));
    client.on('notification', (message) => {
      const subscribers = this.#subscribers.get(message.channel);
      for (const s of subscribers ?? []) s.onPayload(message.payload ?? '');
    });
    try {
      await client.connect();
    } catch (err) {
      lost = true;
      forget();
      throw unavailable(err);
    }
    return client;
  }
}

/** The rows of the last statement (a multi-statement text answers with one result each). */
function lastRows<Row extends Record<string, unknown>>(
  result: pg.QueryResult<Row> | pg.QueryResult<Row>[],
): Row[] {
  const last = Array.isArray(result) ? result.at(-1) : result;
  return last?.rows ?? [];
}
