import { hasSqlDetails, parseSync } from 'libpg-query';
import type { LineageCatalog } from './lineage-catalog.js';
import { LineageRefusal } from './lineage-refusal.js';
import type { LineageOutcome, LineageResult } from './lineage-result.js';
import { QueryTracer } from './query-tracer.js';

/** Options of {@link traceLineage}. */
export interface TraceLineageOptions {
  /** How many views deep to follow view definitions before refusing (default 16). */
  readonly maxViewDepth?: number;
  /**
   * Functions (bare `name` or `schema.name`) the deployment vouches compute only from their
   * arguments, traced like built-ins. Unknown functions are refused: they could read any table.
   * In FROM they are taken to return one column unless a column definition list is given.
   */
  readonly trustedFunctions?: readonly string[];
}

const DEFAULT_MAX_VIEW_DEPTH = 16;

/** The parser's message without the quoted token, which may be a literal (a card number…). */
function parseErrorText(error: unknown): string {
  const text = message(error).replace(/ at or near ".*"$/s, '');
  const position = hasSqlDetails(error) ? error.sqlDetails?.cursorPosition : undefined;
  // The parser counts from 0; the server (and psql) from 1.
  return position === undefined ? text : `${text} at character ${position + 1}`;
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** The outcome of {@link traceLineageEach}: one lineage per statement of the text, in order. */
export type LineageListOutcome =
  | { readonly ok: true; readonly statements: readonly LineageResult[] }
  | { readonly ok: false; readonly reason: string };

const EMPTY: LineageResult = Object.freeze({
  outputs: [],
  shaping: [],
  writes: [],
  dependsOnLiterals: false,
});

/**
 * Traces the output columns of one statement (text) back to the table columns they derive from,
 * with the columns that shape which rows come back and the columns written server-side.
 *
 * Synchronous; call `loadModule()` from `libpg-query` once before. Output columns are the rows
 * the statement returns: for DECLARE CURSOR and PREPARE, the rows a later FETCH or EXECUTE
 * returns (keep them by name; FETCH and EXECUTE themselves are refused). Anything the tracer
 * cannot prove is refused with a reason that names it and never quotes a literal.
 */
export function traceLineage(
  sql: string,
  catalog: LineageCatalog,
  options: TraceLineageOptions = {},
): LineageOutcome {
  const all = traceLineageEach(sql, catalog, options);
  if (!all.ok) return all;
  if (all.statements.length > 1) {
    return {
      ok: false,
      reason: `${all.statements.length} statements in one string; trace each on its own`,
    };
  }
  return { ok: true, lineage: all.statements[0] ?? EMPTY };
}

/**
 * {@link traceLineage} for a text that may hold several statements (a simple-protocol query):
 * one result per statement, in order, as the server runs them; refused as a whole when any
 * statement is. An empty text (or only comments) yields no statements.
 */
export function traceLineageEach(
  sql: string,
  catalog: LineageCatalog,
  options: TraceLineageOptions = {},
): LineageListOutcome {
  if (sql.trim() === '') return { ok: true, statements: [] };
  let stmts;
  try {
    stmts = parseSync(sql).stmts ?? [];
  } catch (error) {
    if (message(error).includes('not initialized')) {
      return {
        ok: false,
        reason: 'the PostgreSQL parser is not loaded (await loadModule() first)',
      };
    }
    return { ok: false, reason: `cannot parse the statement: ${parseErrorText(error)}` };
  }
  const settings = {
    maxViewDepth: options.maxViewDepth ?? DEFAULT_MAX_VIEW_DEPTH,
    trustedFunctions: new Set(options.trustedFunctions ?? []),
  };
  const statements: LineageResult[] = [];
  for (const [i, entry] of stmts.entries()) {
    if (entry.stmt === undefined) return { ok: false, reason: 'an empty statement node' };
    const tracer = new QueryTracer(catalog, settings);
    try {
      statements.push(tracer.result(tracer.traceStatement(entry.stmt)));
    } catch (error) {
      const reason = refusalReason(error);
      return { ok: false, reason: stmts.length > 1 ? `statement ${i + 1}: ${reason}` : reason };
    }
  }
  return { ok: true, statements };
}

function refusalReason(error: unknown): string {
  if (error instanceof LineageRefusal) return error.message;
  // A stack overflow (a smaller stack than the nesting limit assumes) or a bug must not let
  // the statement through unmasked.
  if (error instanceof RangeError) return 'the statement nests too deeply';
  return `the tracer failed: ${message(error)}`;
}
