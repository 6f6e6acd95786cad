import type { StatementFlag } from './statement-analysis.js';

/** What calling a known function means for a guardrail. */
export interface FunctionTraits {
  /** Flags a call raises. */
  readonly flags: readonly StatementFlag[];
  /** True when a call changes state: data, sequences, locks, files, other sessions, the server. */
  readonly changesState: boolean;
}

/**
 * The traits of a function by its unqualified name (matched in lower case), or undefined for a
 * function not known here. Extension functions (`dblink`, `http_get`) are matched whatever
 * schema they were installed in; a user function that shares a name is treated the same, which
 * errs on the side of flagging.
 */
export function functionTraits(name: string): FunctionTraits | undefined {
  const lower = name.toLowerCase();
  const exact = BY_NAME.get(lower);
  if (exact !== undefined) return exact;
  for (const [prefix, traits] of BY_PREFIX) {
    if (lower.startsWith(prefix)) return traits;
  }
  return undefined;
}

const FILE_READ: FunctionTraits = { flags: ['server-file-access'], changesState: false };
const FILE_WRITE: FunctionTraits = { flags: ['server-file-access'], changesState: true };
const NETWORK: FunctionTraits = { flags: ['network-access'], changesState: true };
const WRITES: FunctionTraits = { flags: [], changesState: true };

const BY_NAME = new Map<string, FunctionTraits>([
  // Server files, read (superuser or pg_read_server_files).
  ...names(FILE_READ, [
    'pg_read_file',
    'pg_read_binary_file',
    'pg_file_read',
    'pg_ls_dir',
    'pg_stat_file',
    'pg_logdir_ls',
  ]),
  // Server files, written (adminpack; large objects to and from server files).
  ...names(FILE_WRITE, [
    'pg_file_write',
    'pg_file_rename',
    'pg_file_unlink',
    'pg_file_sync',
    'lo_import',
    'lo_export',
  ]),
  // Network: pgsql-http and pg_net (dblink is matched by prefix).
  ...names(NETWORK, [
    'http',
    'http_get',
    'http_post',
    'http_put',
    'http_patch',
    'http_delete',
    'http_head',
    'http_request',
  ]),
  ...names(WRITES, [
    // Sequences.
    'nextval',
    'setval',
    // Large objects (the reads lo_get, loread, lo_tell, lo_lseek, lo_close are left out).
    'lo_create',
    'lo_creat',
    'lo_unlink',
    'lo_put',
    'lo_from_bytea',
    'lo_open',
    'lowrite',
    'lo_truncate',
    'lo_truncate64',
    // Other sessions and the server.
    'pg_terminate_backend',
    'pg_cancel_backend',
    'pg_reload_conf',
    'pg_rotate_logfile',
    'pg_log_backend_memory_contexts',
    'pg_switch_wal',
    'pg_create_restore_point',
    'pg_backup_start',
    'pg_backup_stop',
    'pg_start_backup',
    'pg_stop_backup',
    'pg_promote',
    'pg_wal_replay_pause',
    'pg_wal_replay_resume',
    'pg_replication_slot_advance',
    'pg_logical_emit_message',
    'pg_sync_replication_slots',
    'pg_notify',
    'pg_import_system_collations',
    // Statistics and index maintenance.
    'pg_stat_statements_reset',
    'pg_restore_relation_stats',
    'pg_restore_attribute_stats',
    'pg_clear_relation_stats',
    'pg_clear_attribute_stats',
    'brin_summarize_new_values',
    'brin_summarize_range',
    'brin_desummarize_range',
    'gin_clean_pending_list',
  ]),
]);

/** Families matched by prefix, checked in order after the exact names. */
const BY_PREFIX: readonly (readonly [string, FunctionTraits])[] = [
  ['dblink', NETWORK],
  ['pg_ls_', FILE_READ], // pg_ls_logdir, pg_ls_waldir, pg_ls_tmpdir, pg_ls_archive_statusdir, …
  ['pg_advisory_', WRITES],
  ['pg_try_advisory_', WRITES],
  ['pg_stat_reset', WRITES],
  ['pg_create_', WRITES], // replication slots
  ['pg_drop_', WRITES],
  ['pg_copy_', WRITES],
  ['pg_logical_slot_get_', WRITES], // consumes the slot's changes
  ['pg_replication_origin_', WRITES],
  ['binary_upgrade_', WRITES],
];

function names(traits: FunctionTraits, list: readonly string[]): [string, FunctionTraits][] {
  return list.map((name) => [name, traits]);
}
