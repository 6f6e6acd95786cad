/** What a statement is, from its top-level parse node. `multi` when the text holds several. */
export type StatementKind =
  | 'select'
  | 'insert'
  | 'update'
  | 'delete'
  | 'merge'
  | 'create'
  | 'alter'
  | 'drop'
  | 'truncate'
  | 'grant'
  | 'revoke'
  | 'copy-to'
  | 'copy-from'
  | 'transaction'
  | 'set'
  | 'show'
  | 'call'
  | 'do'
  | 'explain'
  | 'prepare'
  | 'execute'
  | 'deallocate'
  | 'listen'
  | 'notify'
  | 'lock'
  | 'vacuum'
  | 'comment'
  | 'other'
  | 'multi';

/**
 * Something a guardrail may want to know about a statement. `unsafe-lexer-setting` marks a
 * change to `standard_conforming_strings` or `client_encoding` after which the server would
 * read later statement text differently from the parser used here.
 */
export type StatementFlag =
  | 'update-without-where'
  | 'delete-without-where'
  | 'drop'
  | 'truncate'
  | 'copy-program'
  | 'copy-server-file'
  | 'server-file-access'
  | 'network-access'
  | 'set-role'
  | 'set-session-authorization'
  | 'unsafe-lexer-setting'
  | 'writes'
  | 'ddl'
  | 'multi-statement'
  | 'select-into'
  | 'data-modifying-cte'
  | 'locking-read';

/**
 * Every flag, in the order `StatementAnalysis.flags` lists them.
 */
export const STATEMENT_FLAGS: readonly StatementFlag[] = Object.freeze([
  'update-without-where',
  'delete-without-where',
  'drop',
  'truncate',
  'copy-program',
  'copy-server-file',
  'server-file-access',
  'network-access',
  'set-role',
  'set-session-authorization',
  'unsafe-lexer-setting',
  'writes',
  'ddl',
  'multi-statement',
  'select-into',
  'data-modifying-cte',
  'locking-read',
]);

/**
 * A table (or view, sequence, index) as the statement names it: unquoted identifiers folded
 * to lower case, quoted ones kept. `schema` is null when the name is unqualified; resolving it
 * with the session's `search_path` is the caller's business. A catalog (database) prefix is
 * dropped.
 */
export interface TableRef {
  readonly schema: string | null;
  readonly name: string;
}

/** One statement of the text, in order. */
export interface StatementSummary {
  readonly kind: Exclude<StatementKind, 'multi'>;
}

/** What a statement text does, as far as the text alone can tell. */
export interface StatementAnalysis {
  /** The statement's kind, or `multi` when the text holds several statements. */
  readonly kind: StatementKind;
  /** Each statement of the text, in order. */
  readonly statements: readonly StatementSummary[];
  /**
   * Tables read, deduplicated: through subqueries, joins, set operations and CTE bodies (a
   * reference to a CTE is not a table), views named in `FROM`, `COPY (query)` sources, and the
   * targets of `EXPLAIN` without `ANALYZE`.
   */
  readonly tablesRead: readonly TableRef[];
  /**
   * Tables written or changed, deduplicated: `INSERT`/`UPDATE`/`DELETE`/`MERGE` targets (also
   * in CTEs), `SELECT INTO` and `CREATE TABLE AS` targets, `COPY FROM` targets, `TRUNCATE`,
   * and the objects of DDL, `GRANT`/`REVOKE`, `COMMENT`, `VACUUM`/`ANALYZE`, `CLUSTER`,
   * `REINDEX` and `REFRESH MATERIALIZED VIEW`.
   */
  readonly tablesWritten: readonly TableRef[];
  /**
   * Functions called, deduplicated, as written: schema-qualified only when the text qualifies
   * them (`pg_catalog.pg_read_file`), unquoted names in lower case.
   */
  readonly functions: readonly string[];
  /** Flags raised by any statement of the text, in the order of `STATEMENT_FLAGS`. */
  readonly flags: readonly StatementFlag[];
  /**
   * True only when every statement is known not to change anything: queries, `SHOW`,
   * transaction control, `SET` (not of a role), `EXPLAIN` without `ANALYZE` of a write, … with
   * no `SELECT INTO`, no data-modifying CTE and no call to a function known to change state.
   * A user-defined function can still write: only known functions are recognised.
   */
  readonly readOnly: boolean;
  /**
   * 16 hex digits, equal for statements that differ only in literal values, parameter
   * numbers, spelling and the length of constant lists; a hash of the parse tree computed here
   * (see the README for why not libpg-query's own fingerprint, whose values differ).
   */
  readonly fingerprint: string;
  /**
   * The text with every literal replaced by a `$n` placeholder (numbered after any `$n`
   * parameters already in the text) and comments removed.
   */
  readonly redactedText: string;
}

/** Why a text could not be analyzed. */
export type AnalyzeFailureReason = 'syntax' | 'too-large' | 'too-deep' | 'empty';

/** The outcome of analyzing one statement text. */
export type AnalyzeResult =
  | { readonly ok: true; readonly analysis: StatementAnalysis }
  | {
      readonly ok: false;
      readonly reason: AnalyzeFailureReason;
      /**
       * What went wrong, in the parser's words where it had any. A literal the parser quoted
       * (`at or near "'…'"`) is left out, so the message is safe to log.
       */
      readonly message: string;
      /** For a syntax error: the 1-based character position PostgreSQL would report. */
      readonly position?: number;
    };
