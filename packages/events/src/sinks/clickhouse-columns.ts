import type { EventRow } from '../store/event-row.js';
import { TsvKind, type TsvColumn } from './event-tsv.js';

// The columns the ClickHouse sink writes, apart from the sink itself: its encoding thread needs
// them without the HTTP client.

/**
 * The table layout a ClickHouseSink writes:
 *
 * - `modern`: the event store's `events` table (packages/events/src/store/schema.ts: DateTime64,
 *   LowCardinality, TTL, rollups kept by materialized views), for servers from
 *   MODERN_MIN_CLICKHOUSE_VERSION on.
 * - `legacy18`: legacy18TableDdl, the same columns in types ClickHouse 18.16 has:
 *   `time` as `DateTime('UTC')` plus `time_micros UInt32` (the microseconds within that second),
 *   plain `String`s, no TTL, no rollups.
 */
export type ClickHouseSchemaFlavour = 'modern' | 'legacy18';

/** Column types of the `legacy18` table, keyed like the store's row so a new store column is a type error here. */
const LEGACY18_TYPES: Readonly<Record<keyof EventRow, string>> = {
  id: 'UUID',
  schema: 'UInt16',
  type: 'String',
  time: "DateTime('UTC')",
  session_id: 'String',
  seq: 'UInt32',
  person_subject: 'String',
  person_email: 'String',
  person_name: 'Nullable(String)',
  person_groups: 'Array(String)',
  agent_id: 'String',
  agent_name: 'String',
  auth_method: 'String',
  resource: 'String',
  protocol: 'String',
  upstream_user: 'String',
  client_address: 'String',
  client_port: 'UInt16',
  client_application: 'String',
  client_user: 'String',
  client_tls: 'UInt8',
  statement_text: 'Nullable(String)',
  statement_protocol: 'String',
  statement_prepared_name: 'Nullable(String)',
  statement_params: 'UInt32',
  statement_tag: 'String',
  kind: 'String',
  fingerprint: 'String',
  tables: 'Array(String)',
  verdict: 'String',
  rule: 'String',
  rows: 'UInt64',
  bytes: 'UInt64',
  duration_us: 'UInt64',
  error_code: 'String',
  error_message: 'Nullable(String)',
  masked_values: 'Nullable(UInt32)',
  masked_columns: 'Array(String)',
  approval_text: 'Nullable(String)',
  approval_kind: 'String',
  approval_rule: 'String',
  approval_message: 'String',
  end_reason: 'Nullable(String)',
  end_statements: 'UInt32',
  end_rows: 'UInt64',
  end_bytes_from_client: 'UInt64',
  end_bytes_to_client: 'UInt64',
  end_duration_us: 'UInt64',
  end_error_code: 'String',
  end_error_message: 'Nullable(String)',
  approval_id: 'String',
  decision_by_subjects: 'Array(String)',
  decision_by_emails: 'Array(String)',
  decision_reason: 'Nullable(String)',
  decision_waited_us: 'UInt64',
  auth_failure_reason: 'Nullable(String)',
  auth_failure_code: 'String',
  access_grant_id: 'String',
  access_grant_ends_us: 'UInt64',
  access_grant_by_subjects: 'Array(String)',
  access_grant_by_emails: 'Array(String)',
  prev_hash: 'String',
  hash: 'String',
};

function kindOf(type: string): TsvKind {
  if (type === 'Array(String)') return TsvKind.TextArray;
  if (type === 'Nullable(String)') return TsvKind.NullableText;
  if (type.startsWith('Nullable(')) return TsvKind.NullableNumber;
  if (type === 'String' || type === 'UUID') return TsvKind.Text;
  return TsvKind.Number;
}

/** A `legacy18` column's ClickHouse type. */
export function legacyType({ field, kind }: TsvColumn): string {
  return kind === TsvKind.TimeMicros ? 'UInt32' : LEGACY18_TYPES[field];
}

/** The columns of a flavour, in the order the sink writes them. */
export function columnsOf(flavour: ClickHouseSchemaFlavour): readonly TsvColumn[] {
  const columns: TsvColumn[] = [];
  for (const [field, type] of Object.entries(LEGACY18_TYPES) as [keyof EventRow, string][]) {
    if (field === 'time') {
      columns.push({ name: 'time', field, kind: TsvKind.Time });
      if (flavour === 'legacy18')
        columns.push({ name: 'time_micros', field, kind: TsvKind.TimeMicros });
      continue;
    }
    columns.push({ name: field, field, kind: kindOf(type) });
  }
  return columns;
}
