/** A table (or view, foreign table…) column that values flow out of, as the catalog names it. */
export interface ColumnSource {
  readonly schema: string;
  readonly table: string;
  readonly column: string;
}

/**
 * How an output column relates to its sources, from the most revealing to the least:
 * - `direct`: the source value itself, maybe renamed or passed through CTEs, subqueries, views,
 *   set operations or a cast to an unbounded text type;
 * - `transformed`: an expression over the sources (functions, operators, CASE, bounded casts,
 *   aggregates that return values…) whose result can still reveal them;
 * - `aggregate-safe`: only value-hiding aggregates (`count`) over plain references;
 * - `constant`: no source column flows in.
 */
export type Derivation = 'direct' | 'transformed' | 'aggregate-safe' | 'constant';

/** One column of the rows a statement returns. */
export interface OutputColumn {
  /** The column name the server reports (alias, column name, function name or `?column?`). */
  readonly name: string;
  /** Zero-based position in the row (the field index in RowDescription). */
  readonly index: number;
  /** Every source column whose value flows into this column, in first-seen order, without duplicates. */
  readonly sources: readonly ColumnSource[];
  readonly derivation: Derivation;
}

/** The clause a shaping use sits in. */
export type ShapingClause =
  'where' | 'join' | 'order-by' | 'group-by' | 'having' | 'distinct' | 'window' | 'limit';

/**
 * A source column that decides which rows come back, how many, or in what order, without its
 * value being returned: enough for one-guess-at-a-time inference (`WHERE email LIKE 'a%'`).
 */
export interface ShapingUse {
  readonly source: ColumnSource;
  readonly clause: ShapingClause;
}

/**
 * A column that the statement writes server-side (INSERT, UPDATE, SELECT INTO, CREATE TABLE AS),
 * with the sources of the written value: the way to launder a masked value through a table the
 * session can read back unmasked.
 */
export interface WrittenColumn {
  /** The written relation's column; `schema` is null for a table created by the statement without a schema. */
  readonly target: {
    readonly schema: string | null;
    readonly table: string;
    readonly column: string;
  };
  readonly sources: readonly ColumnSource[];
  readonly derivation: Derivation;
}

/** What a traced statement reveals. */
export interface LineageResult {
  /** The columns of the returned rows, in order; empty for a statement that returns no rows. */
  readonly outputs: readonly OutputColumn[];
  /** Source columns that decide which rows come back or in what order (one-guess-at-a-time inference). */
  readonly shaping: readonly ShapingUse[];
  /** Columns written server-side and where their values come from. */
  readonly writes: readonly WrittenColumn[];
  /**
   * True when a literal's value decides the lineage (`ORDER BY 1`): statements that differ only
   * in literal values may then trace differently, so a cache must key this one by its text.
   */
  readonly dependsOnLiterals: boolean;
  /** For `COPY … TO STDOUT`: how the rows are written (the server's CopyOutResponse does not say). */
  readonly copy?: CopyOutOptions;
}

/** The options of a `COPY … TO STDOUT` that decide how its rows are laid out. */
export interface CopyOutOptions {
  readonly format: 'text' | 'csv' | 'binary';
  /** A HEADER line comes first (CSV). */
  readonly header: boolean;
  readonly delimiter?: string;
  readonly null?: string;
  readonly quote?: string;
  readonly escape?: string;
}

/**
 * The tracer's answer: a proven lineage, or a refusal naming what it could not resolve. The
 * gateway refuses a refused statement whenever masking applies to the session.
 */
export type LineageOutcome =
  | { readonly ok: true; readonly lineage: LineageResult }
  | { readonly ok: false; readonly reason: string };
