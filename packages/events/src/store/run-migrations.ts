import type { Migration } from './schema.js';

/** The bookkeeping table {@link runMigrations} creates before anything else. */
export const SCHEMA_MIGRATIONS_DDL = `CREATE TABLE IF NOT EXISTS schema_migrations
(
    version UInt32,
    name String,
    applied_at DateTime64(6, 'UTC') DEFAULT now64(6)
)
ENGINE = ReplacingMergeTree
ORDER BY version`;

/** The statements the runner needs from a ClickHouse connection. */
export interface MigrationTarget {
  /** Runs one statement that returns nothing. */
  command(sql: string): Promise<void>;
  /** Runs a query and returns its rows (JSONEachRow). */
  query<T>(sql: string, params?: Record<string, unknown>): Promise<T[]>;
}

/**
 * Applies every migration not yet recorded in `schema_migrations`, in version order, and records
 * each once all its statements ran. Returns the versions it applied. Safe to run on every start,
 * and safe to rerun after a crash: every statement is idempotent.
 */
export async function runMigrations(
  target: MigrationTarget,
  migrations: readonly Migration[],
): Promise<number[]> {
  await target.command(SCHEMA_MIGRATIONS_DDL);
  const rows = await target.query<{ version: number }>(
    'SELECT DISTINCT version FROM schema_migrations',
  );
  const done = new Set(rows.map((r) => Number(r.version)));
  const applied: number[] = [];
  for (const migration of [...migrations].sort((a, b) => a.version - b.version)) {
    if (done.has(migration.version)) continue;
    for (const statement of migration.statements) await target.command(statement);
    await target.query(
      'INSERT INTO schema_migrations (version, name) SELECT {version:UInt32}, {name:String}',
      { version: migration.version, name: migration.name },
    );
    applied.push(migration.version);
  }
  return applied;
}
