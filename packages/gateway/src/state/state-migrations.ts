import type { StateDb, StateMigration } from './state-db.js';

/**
 * Key of the transaction-scoped advisory lock that serialises migrations: two gateways starting
 * at once against one database take turns, and the second finds the steps already applied.
 */
const MIGRATION_LOCK_KEY = 7_365_420_001;

/** Checks that versions are positive integers in strictly increasing order. */
export function checkMigrations(feature: string, migrations: readonly StateMigration[]): void {
  let previous = 0;
  for (const m of migrations) {
    if (!Number.isInteger(m.version) || m.version <= previous) {
      throw new Error(
        `state migrations of ${feature}: version ${m.version} must be an integer above ${previous}`,
      );
    }
    previous = m.version;
  }
}

/**
 * Brings `feature`'s tables up to date: each step not yet recorded in `portcullis_migrations`
 * runs once, in version order, in one transaction with its record, under an advisory lock.
 * Versions the database has beyond `migrations` (a newer gateway ran them) are left alone.
 * Resolves with the versions applied now.
 */
export async function migrateState(
  db: StateDb,
  feature: string,
  migrations: readonly StateMigration[],
): Promise<number[]> {
  checkMigrations(feature, migrations);
  return db.transaction(async (tx) => {
    // Taken before the CREATE: concurrent CREATE TABLE IF NOT EXISTS can still collide.
    await tx.query('SELECT pg_advisory_xact_lock($1::bigint)', [MIGRATION_LOCK_KEY]);
    await tx.query(
      `CREATE TABLE IF NOT EXISTS portcullis_migrations (
         feature text NOT NULL,
         version integer NOT NULL,
         applied_at timestamptz NOT NULL DEFAULT now(),
         PRIMARY KEY (feature, version)
       )`,
    );
    const rows = await tx.query<{ version: number }>(
      'SELECT version FROM portcullis_migrations WHERE feature = $1',
      [feature],
    );
    const done = new Set(rows.map((r) => Number(r.version)));
    const applied: number[] = [];
    for (const m of migrations) {
      if (done.has(m.version)) continue;
      await tx.query(m.sql);
      await tx.query('INSERT INTO portcullis_migrations (feature, version) VALUES ($1, $2)', [
        feature,
        m.version,
      ]);
      applied.push(m.version);
    }
    return applied;
  });
}
