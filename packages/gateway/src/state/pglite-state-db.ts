import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { PGlite, type Results, type Transaction } from '@electric-sql/pglite';
import { StateDbUnavailable, type StateDb, type StateTx } from './state-db.js';

/** Where the embedded state database keeps its files under the gateway's data directory. */
export function embeddedStateDir(dataDir: string): string {
  return join(dataDir, 'state');
}

/**
 * The embedded state database: PGlite (PostgreSQL compiled to WASM) in this process, its files
 * under `dataDir/state`. Only this process can use it, so NOTIFY reaches LISTENs of this process
 * only and the subscription is never lost. PGlite runs one statement at a time; its own queue
 * serialises callers, and a transaction holds it to the end.
 */
export class PgliteStateDb implements StateDb {
  readonly kind = 'embedded';
  readonly #db: PGlite;
  #closed = false;

  private constructor(db: PGlite) {
    this.#db = db;
  }

  /** Opens (creating when missing) the database in `dir`; null keeps it in memory (tests). */
  static async open(dir: string | null): Promise<PgliteStateDb> {
    if (dir !== null) await mkdir(dir, { recursive: true, mode: 0o700 });
    const db = await PGlite.create(dir === null ? {} : { dataDir: dir });
    return new PgliteStateDb(db);
  }

  async query<Row extends Record<string, unknown>>(
    text: string,
    params?: readonly unknown[],
  ): Promise<Row[]> {
    this.#assertOpen();
    return run<Row>(this.#db, text, params);
  }

  async transaction<T>(work: (tx: StateTx) => Promise<T>): Promise<T> {
    this.#assertOpen();
    return this.#db.transaction((tx) =>
      work({
        query: <Row extends Record<string, unknown>>(text: string, params?: readonly unknown[]) =>
          run<Row>(tx, text, params),
      }),
    );
  }

  async listen(
    channel: string,
    onPayload: (payload: string) => void,
    _onLost: (err: Error) => void,
  ): Promise<() => Promise<void>> {
    this.#assertOpen();
    const unlisten = await this.#db.listen(channel, onPayload);
    return async () => {
      if (!this.#closed) await unlisten();
    };
  }

  async notify(channel: string, payload: string): Promise<void> {
    await this.query('SELECT pg_notify($1, $2)', [channel, payload]);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#db.close();
  }

  #assertOpen(): void {
    if (this.#closed) throw new StateDbUnavailable('the state database is closed');
  }
}

/**
 * One statement with parameters goes through the extended protocol; a parameterless text may
 * hold several statements (a migration), which only the simple protocol (`exec`) accepts.
 */
async function run<Row extends Record<string, unknown>>(
  db: PGlite | Transaction,
  text: string,
  params: readonly unknown[] | undefined,
): Promise<Row[]> {
  if (params === undefined || params.length === 0) {
    const results: Results[] = await db.exec(text);
    return (results.at(-1)?.rows ?? []) as Row[];
  }
  const result = await db.query<Row>(text, [...params]);
  return result.rows;
}
