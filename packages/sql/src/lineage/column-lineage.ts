import type { ColumnSource, Derivation } from './lineage-result.js';

/** Where one value comes from: its source columns and how it relates to them. */
export interface ColumnLineage {
  readonly sources: readonly ColumnSource[];
  readonly derivation: Derivation;
}

/** Ordered so that the larger rank is the more revealing one. */
const RANK: Readonly<Record<Derivation, number>> = {
  constant: 0,
  'aggregate-safe': 1,
  direct: 2,
  transformed: 3,
};

/** The lineage of a value no column flows into. */
export const CONSTANT: ColumnLineage = Object.freeze({ sources: [], derivation: 'constant' });

/** A stable key for a source column (names may hold any character but NUL). */
export function sourceKey(source: ColumnSource): string {
  return `${source.schema}\u0000${source.table}\u0000${source.column}`;
}

/** The lineage of a table column read as it is. */
export function directLineage(schema: string, table: string, column: string): ColumnLineage {
  return { sources: [Object.freeze({ schema, table, column })], derivation: 'direct' };
}

/** The union of the inputs' sources, first-seen order, without duplicates. */
export function unionSources(inputs: readonly ColumnLineage[]): ColumnSource[] {
  const seen = new Set<string>();
  const out: ColumnSource[] = [];
  for (const input of inputs) {
    for (const source of input.sources) {
      const key = sourceKey(source);
      if (!seen.has(key)) {
        seen.add(key);
        out.push(source);
      }
    }
  }
  return out;
}

/**
 * An expression computed from the inputs: any revealing input (direct or transformed) makes the
 * result transformed; counts combined with constants stay aggregate-safe.
 */
export function transformedLineage(inputs: readonly ColumnLineage[]): ColumnLineage {
  let rank = 0;
  for (const input of inputs) rank = Math.max(rank, RANK[input.derivation]);
  const derivation: Derivation =
    rank >= RANK.direct
      ? 'transformed'
      : rank === RANK['aggregate-safe']
        ? 'aggregate-safe'
        : 'constant';
  return { sources: unionSources(inputs), derivation };
}

/**
 * A value that is one of the inputs as they are (set operations, VALUES rows, merged join
 * columns): the most revealing input decides.
 */
export function eitherLineage(inputs: readonly ColumnLineage[]): ColumnLineage {
  let derivation: Derivation = 'constant';
  for (const input of inputs) {
    if (RANK[input.derivation] > RANK[derivation]) derivation = input.derivation;
  }
  return { sources: unionSources(inputs), derivation };
}

/** A value-hiding aggregate over the inputs. */
export function aggregateSafeLineage(inputs: readonly ColumnLineage[]): ColumnLineage {
  return { sources: unionSources(inputs), derivation: 'aggregate-safe' };
}

/** Whether two lineages are equal (same derivation, same set of sources). */
export function sameLineage(a: ColumnLineage, b: ColumnLineage): boolean {
  if (a.derivation !== b.derivation || a.sources.length !== b.sources.length) return false;
  const keys = new Set(a.sources.map(sourceKey));
  return b.sources.every((source) => keys.has(sourceKey(source)));
}
