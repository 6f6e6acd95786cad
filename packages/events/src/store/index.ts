export { canonicalJson } from './canonical-json.js';
export {
  chainEvents,
  hashEvent,
  nextHeads,
  verifyChain,
  type ChainedEvent,
  type ChainHead,
  type ChainIssue,
} from './hash-chain.js';
export {
  EVENT_ROW_COLUMNS,
  EVENT_ROW_SELECT,
  eventToRow,
  normalizeEvent,
  rowToEvent,
  type EventRow,
  type StoredEventRow,
} from './event-row.js';
export {
  DDL_KINDS,
  MIN_CLICKHOUSE_VERSION,
  WRITE_KINDS,
  eventStoreMigrations,
  retentionStatements,
  ttlClause,
  type Migration,
  type SchemaOptions,
} from './schema.js';
export { SCHEMA_MIGRATIONS_DDL, runMigrations, type MigrationTarget } from './run-migrations.js';
export {
  ChdbEventStore,
  type BoundQuery,
  type ChdbEventStoreOptions,
  type InsertResult,
} from './chdb-event-store.js';
export * from './reviews.js';
