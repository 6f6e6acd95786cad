import { hasSqlDetails, parseSync } from 'libpg-query';
import type { LineageCatalog } from './lineage-catalog.js';
import { LineageRefusal } from './lineage-refusal.js';
import type { LineageOutcome } from './lineage-result.js';
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
  const empty: LineageOutcome = { ok: true, lineage: { outputs: [], shaping: [], writes: [] } };
  if (sql.trim() === '') return empty;
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
  if (stmts.length === 0) return empty;
  const [first] = stmts;
  if (stmts.length > 1 || first?.stmt === undefined) {
    return { ok: false, reason: `${stmts.length} statements in one string; trace each on its own` };
  }
  const tracer = new QueryTracer(catalog, {
    maxViewDepth: options.maxViewDepth ?? DEFAULT_MAX_VIEW_DEPTH,
    trustedFunctions: new Set(options.trustedFunctions ?? []),
  });
  try {
    return { ok: true, lineage: tracer.result(tracer.traceStatement(first.stmt)) };
  } catch (error) {
    if (error instanceof LineageRefusal) return { ok: false, reason: error.message };
    // A stack overflow (a smaller stack than the nesting limit assumes) or a bug must not let
    // the statement through unmasked.
    if (error instanceof RangeError) return { ok: false, reason: 'the statement nests too deeply' };
    return { ok: false, reason: `the tracer failed: ${message(error)}` };
  }
}
