/**
 * The gateway's own state database: pending approvals and access grants, shared by every
 * gateway process and instance that points at the same PostgreSQL (`state.url`), or kept in
 * an embedded PGlite under `dataDir/state` for a single process.
 *
 * Both speak PostgreSQL SQL, so stores write one dialect; this interface is all they see.
 */
export interface StateDb {
  /** `embedded` (PGlite, this process only) or `postgres` (shared). */
  readonly kind: 'embedded' | 'postgres';
  /** Runs one statement with $1… parameters; rejects with {@link StateDbUnavailable} when unreachable. */
  query<Row extends Record<string, unknown>>(
    text: string,
    params?: readonly unknown[],
  ): Promise<Row[]>;
  /** Runs `work` in one transaction (committed when it resolves, rolled back when it throws). */
  transaction<T>(work: (tx: StateTx) => Promise<T>): Promise<T>;
  /**
   * Calls `onPayload` for each NOTIFY on `channel` (from any process sharing the database) and
   * `onLost` when the subscription breaks (the database went away); resolves to unsubscribe.
   */
  listen(
    channel: string,
    onPayload: (payload: string) => void,
    onLost: (err: Error) => void,
  ): Promise<() => Promise<void>>;
  /** `pg_notify(channel, payload)` outside any transaction. */
  notify(channel: string, payload: string): Promise<void>;
  close(): Promise<void>;
}

/** A transaction's view of the database. */
export interface StateTx {
  query<Row extends Record<string, unknown>>(
    text: string,
    params?: readonly unknown[],
  ): Promise<Row[]>;
}

/** The state database could not be reached or answered with a connection error. */
export class StateDbUnavailable extends Error {
  override readonly name = 'StateDbUnavailable';
}

/** One schema step of a feature's tables; applied once, in order, under an advisory lock. */
export interface StateMigration {
  readonly version: number;
  readonly sql: string;
}
