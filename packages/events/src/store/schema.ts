/**
 * The ClickHouse schema of the event store, as versioned migrations. Pure data: each migration is
 * an ordered list of statements, every one of them safe to run again (`IF NOT EXISTS`), so a
 * runner that dies half way through a migration simply runs it again. `runMigrations`
 * (run-migrations.ts) applies them and records each finished version in `schema_migrations`.
 *
 * The same text runs on chDB (ClickHouse 26.7 in-process) and on a ClickHouse server from
 * {@link MIN_CLICKHOUSE_VERSION} on; see the package README for what each older version lacks.
 */

/** The oldest ClickHouse server release the full schema and the review queries run on. */
export const MIN_CLICKHOUSE_VERSION = '22.3';

/** What the schema text depends on. */
export interface SchemaOptions {
  /** Days an event (and its rollup rows) is kept; ClickHouse's TTL drops older ones in merges. */
  readonly retentionDays: number;
}

/** One schema version. */
export interface Migration {
  readonly version: number;
  readonly name: string;
  readonly statements: readonly string[];
}

/** Kinds counted as writes in rollups and reviews (data changes, not schema changes). */
export const WRITE_KINDS = ['insert', 'update', 'delete', 'merge', 'copy-from'] as const;
/** Kinds counted as DDL (schema and privilege changes). */
export const DDL_KINDS = ['create', 'alter', 'drop', 'truncate', 'grant', 'revoke'] as const;

const kindList = (kinds: readonly string[]): string => kinds.map((k) => `'${k}'`).join(', ');

/** The TTL clause of a table whose time column is `column` (a Date or DateTime64). */
export function ttlClause(column: string, retentionDays: number): string {
  return `TTL toDateTime(${column}) + INTERVAL ${retentionDays} DAY`;
}

/**
 * Longest retention: the TTL expression adds the days to a DateTime, whose range ends in 2106;
 * past that the sum wraps and the server drops every row at once (seen on chDB). 50 years keeps
 * a wide margin for events recorded in this century.
 */
export const MAX_RETENTION_DAYS = 18_250;

function checkOptions({ retentionDays }: SchemaOptions): void {
  if (
    !Number.isSafeInteger(retentionDays) ||
    retentionDays < 1 ||
    retentionDays > MAX_RETENTION_DAYS
  ) {
    throw new RangeError(
      `retentionDays must be a whole number of days from 1 to ${MAX_RETENTION_DAYS}`,
    );
  }
}

/** Every migration, oldest first. */
export function eventStoreMigrations(options: SchemaOptions): readonly Migration[] {
  checkOptions(options);
  const { retentionDays } = options;
  return [
    {
      version: 1,
      name: 'events table',
      statements: [
        // Engine: ReplacingMergeTree on the sorting key, which ends in the event id, so two copies
        // of one event (a retried batch) collapse into one row when their parts merge. Until then
        // the store keeps duplicates out itself (it skips ids already stored before inserting), and
        // queries that list events read with FINAL, so a server with several writers still
        // reports each event once.
        //
        // Sorting key: (person_subject, resource, time, id). Reviews ask "what did this person
        // do" (on one resource or all) over a time window, so person first, resource second and
        // time third let the primary index skip to one person's rows in each monthly partition.
        // Per-resource questions without a person use the `resource` set index; per-session
        // reads (chain verification, one session's statements) use the `session_id` bloom filter.
        // The id comes last only to make the dedup key exact.
        `CREATE TABLE IF NOT EXISTS events
(
    id UUID,
    schema UInt16,
    type LowCardinality(String),
    time DateTime64(6, 'UTC'),
    session_id String,
    seq UInt32,
    person_subject LowCardinality(String),
    person_email LowCardinality(String),
    person_name Nullable(String),
    person_groups Array(LowCardinality(String)),
    agent_id LowCardinality(String),
    agent_name LowCardinality(String),
    auth_method LowCardinality(String),
    resource LowCardinality(String),
    protocol LowCardinality(String),
    upstream_user LowCardinality(String),
    client_address String,
    client_port UInt16,
    client_application LowCardinality(String),
    client_user LowCardinality(String),
    client_tls UInt8,
    statement_text Nullable(String) CODEC(ZSTD(1)),
    statement_protocol LowCardinality(String),
    statement_prepared_name Nullable(String),
    statement_params UInt32,
    statement_tag String,
    kind LowCardinality(String),
    fingerprint String,
    tables Array(LowCardinality(String)),
    verdict LowCardinality(String),
    rule LowCardinality(String),
    rows UInt64,
    bytes UInt64,
    duration_us UInt64,
    error_code LowCardinality(String),
    error_message Nullable(String),
    masked_values Nullable(UInt32),
    masked_columns Array(LowCardinality(String)),
    approval_text Nullable(String) CODEC(ZSTD(1)),
    approval_kind LowCardinality(String),
    approval_rule LowCardinality(String),
    approval_message String,
    end_reason LowCardinality(Nullable(String)),
    end_statements UInt32,
    end_rows UInt64,
    end_bytes_from_client UInt64,
    end_bytes_to_client UInt64,
    end_duration_us UInt64,
    end_error_code LowCardinality(String),
    end_error_message Nullable(String),
    prev_hash String,
    hash String,
    INDEX events_resource resource TYPE set(256) GRANULARITY 4,
    INDEX events_session session_id TYPE bloom_filter(0.01) GRANULARITY 4,
    INDEX events_id id TYPE bloom_filter(0.01) GRANULARITY 4
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(time)
ORDER BY (person_subject, resource, time, id)
${ttlClause('time', retentionDays)}`,
      ],
    },
    {
      version: 2,
      name: 'daily rollups',
      statements: [
        // Per person × resource × day. Counts are SimpleAggregateFunction(sum): each insert adds
        // a partial row and merges add them up, so readers always sum() with GROUP BY. The
        // materialized view sees every inserted block, which is why the store never inserts an
        // event it already holds.
        `CREATE TABLE IF NOT EXISTS person_resource_daily
(
    day Date,
    person_subject LowCardinality(String),
    resource LowCardinality(String),
    person_email SimpleAggregateFunction(any, LowCardinality(String)),
    sessions SimpleAggregateFunction(sum, UInt64),
    statements SimpleAggregateFunction(sum, UInt64),
    by_agent SimpleAggregateFunction(sum, UInt64),
    writes SimpleAggregateFunction(sum, UInt64),
    ddl SimpleAggregateFunction(sum, UInt64),
    blocked SimpleAggregateFunction(sum, UInt64),
    held SimpleAggregateFunction(sum, UInt64),
    errors SimpleAggregateFunction(sum, UInt64),
    masked_values SimpleAggregateFunction(sum, UInt64),
    rows SimpleAggregateFunction(sum, UInt64),
    bytes SimpleAggregateFunction(sum, UInt64),
    last_seen SimpleAggregateFunction(max, DateTime64(6, 'UTC'))
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(day)
ORDER BY (person_subject, resource, day)
${ttlClause('day', retentionDays)}`,
        `CREATE MATERIALIZED VIEW IF NOT EXISTS person_resource_daily_mv TO person_resource_daily AS
SELECT
    toDate(time) AS day,
    person_subject,
    resource,
    any(person_email) AS person_email,
    toUInt64(countIf(type = 'session.start')) AS sessions,
    toUInt64(countIf(type = 'statement')) AS statements,
    toUInt64(countIf(type = 'statement' AND agent_id != '')) AS by_agent,
    toUInt64(countIf(type = 'statement' AND kind IN (${kindList(WRITE_KINDS)}))) AS writes,
    toUInt64(countIf(type = 'statement' AND kind IN (${kindList(DDL_KINDS)}))) AS ddl,
    toUInt64(countIf(type = 'statement' AND verdict = 'block')) AS blocked,
    toUInt64(countIf(type = 'statement' AND verdict = 'review')) AS held,
    toUInt64(countIf(type = 'statement' AND error_message IS NOT NULL)) AS errors,
    toUInt64(sum(ifNull(masked_values, 0))) AS masked_values,
    toUInt64(sumIf(rows, type = 'statement')) AS rows,
    toUInt64(sumIf(bytes, type = 'statement')) AS bytes,
    max(time) AS last_seen
FROM events
GROUP BY day, person_subject, resource`,
        // Per agent → the people it acted for, per day.
        `CREATE TABLE IF NOT EXISTS agent_person_daily
(
    day Date,
    agent_id LowCardinality(String),
    person_subject LowCardinality(String),
    agent_name SimpleAggregateFunction(any, LowCardinality(String)),
    person_email SimpleAggregateFunction(any, LowCardinality(String)),
    sessions SimpleAggregateFunction(sum, UInt64),
    statements SimpleAggregateFunction(sum, UInt64),
    writes SimpleAggregateFunction(sum, UInt64),
    ddl SimpleAggregateFunction(sum, UInt64),
    blocked SimpleAggregateFunction(sum, UInt64),
    held SimpleAggregateFunction(sum, UInt64),
    resources SimpleAggregateFunction(groupUniqArrayArray, Array(String))
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(day)
ORDER BY (agent_id, day, person_subject)
${ttlClause('day', retentionDays)}`,
        `CREATE MATERIALIZED VIEW IF NOT EXISTS agent_person_daily_mv TO agent_person_daily AS
SELECT
    toDate(time) AS day,
    agent_id,
    person_subject,
    any(agent_name) AS agent_name,
    any(person_email) AS person_email,
    toUInt64(countIf(type = 'session.start')) AS sessions,
    toUInt64(countIf(type = 'statement')) AS statements,
    toUInt64(countIf(type = 'statement' AND kind IN (${kindList(WRITE_KINDS)}))) AS writes,
    toUInt64(countIf(type = 'statement' AND kind IN (${kindList(DDL_KINDS)}))) AS ddl,
    toUInt64(countIf(type = 'statement' AND verdict = 'block')) AS blocked,
    toUInt64(countIf(type = 'statement' AND verdict = 'review')) AS held,
    groupUniqArray(toString(resource)) AS resources
FROM events
WHERE agent_id != ''
GROUP BY day, agent_id, person_subject`,
      ],
    },
    {
      version: 3,
      name: 'approval decisions, refused logins and access grants',
      // Columns added to the end: rows stored before keep their defaults ('' / [] / NULL / 0),
      // which read back as events without these parts, as they were chained.
      statements: [
        `ALTER TABLE events
    ADD COLUMN IF NOT EXISTS approval_id String,
    ADD COLUMN IF NOT EXISTS decision_by_subjects Array(LowCardinality(String)),
    ADD COLUMN IF NOT EXISTS decision_by_emails Array(LowCardinality(String)),
    ADD COLUMN IF NOT EXISTS decision_reason Nullable(String),
    ADD COLUMN IF NOT EXISTS decision_waited_us UInt64,
    ADD COLUMN IF NOT EXISTS auth_failure_reason LowCardinality(Nullable(String)),
    ADD COLUMN IF NOT EXISTS auth_failure_code LowCardinality(String),
    ADD COLUMN IF NOT EXISTS access_grant_id String,
    ADD COLUMN IF NOT EXISTS access_grant_ends_us UInt64,
    ADD COLUMN IF NOT EXISTS access_grant_by_subjects Array(LowCardinality(String)),
    ADD COLUMN IF NOT EXISTS access_grant_by_emails Array(LowCardinality(String))`,
      ],
    },
  ];
}

/**
 * Brings the TTL of every table in line with `retentionDays` (the schema was created with the
 * retention of its first start; a changed setting is applied here, not by a new migration).
 */
export function retentionStatements(retentionDays: number): string[] {
  checkOptions({ retentionDays });
  return [
    `ALTER TABLE events MODIFY ${ttlClause('time', retentionDays)}`,
    `ALTER TABLE person_resource_daily MODIFY ${ttlClause('day', retentionDays)}`,
    `ALTER TABLE agent_person_daily MODIFY ${ttlClause('day', retentionDays)}`,
  ];
}
