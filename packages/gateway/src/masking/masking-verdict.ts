import type { MaskAction } from '@portcullis/masking';
import type { ColumnSource, CopyOutOptions, LineageResult, ShapingClause } from '@portcullis/sql';
import type { ColumnRule, ColumnRules } from './column-rules.js';

/** How the rows one statement returns are masked. */
export interface StatementMask {
  /** Per output column: the rule's style, `detect`, or null (left alone). */
  readonly actions: readonly (MaskAction | null)[];
  /** Per output column: the rule masking it, or null. Recorded on events (names, never values). */
  readonly rules: readonly (string | null)[];
  /** Output column names, for events. */
  readonly names: readonly string[];
  /** For `COPY … TO STDOUT`: how its rows are laid out. */
  readonly copy: CopyOutOptions | null;
}

/** What masking makes of a statement text: how to mask each statement's rows, or a refusal. */
export type MaskingVerdict =
  | { readonly ok: true; readonly statements: readonly StatementMask[] }
  | { readonly ok: false; readonly rule: string; readonly message: string };

/** The rule name recorded when the lineage itself cannot be proven. */
export const UNPROVEN_LINEAGE_RULE = 'masking-lineage';

const DETECT: MaskAction = Object.freeze({ kind: 'detect' });

const CLAUSE_NAMES: Readonly<Record<ShapingClause, string>> = {
  where: 'WHERE',
  join: 'JOIN',
  'order-by': 'ORDER BY',
  'group-by': 'GROUP BY',
  having: 'HAVING',
  distinct: 'DISTINCT',
  window: 'a window clause',
  limit: 'LIMIT',
};

function columnName(source: ColumnSource): string {
  return `${source.schema}.${source.table}.${source.column}`;
}

/** A refusal for a statement whose lineage the tracer could not prove. */
export function unprovenLineage(reason: string): MaskingVerdict {
  return {
    ok: false,
    rule: UNPROVEN_LINEAGE_RULE,
    message: `masking applies to this resource and the statement's results cannot be traced to their source columns: ${reason}`,
  };
}

function refusal(rule: ColumnRule, message: string): MaskingVerdict {
  return { ok: false, rule: rule.name, message };
}

/** The first masked source among `sources`, with its rule. */
function maskedSource(
  sources: readonly ColumnSource[],
  rules: ColumnRules,
): { source: ColumnSource; rule: ColumnRule } | null {
  for (const source of sources) {
    const rule = rules.ruleFor(source.schema, source.table, source.column);
    if (rule !== null) return { source, rule };
  }
  return null;
}

/**
 * Decides how the rows of each traced statement are masked, or refuses the text:
 * - an output column read as it is from a masked column (directly, through views, CTEs, set
 *   operations, `SELECT *`) is masked with that column's rule;
 * - an output column computed from a masked column (`upper(email)`, `substr(card, 1, 6)`) is
 *   refused: no masked form of an arbitrary expression is provably safe;
 * - value-hiding aggregates (`count(email)`) pass;
 * - a masked column that shapes the rows (WHERE, JOIN, ORDER BY, …) is refused unless its
 *   rule allows shaping;
 * - a masked value written into a column no rule masks (`INSERT … SELECT email`, `CREATE
 *   TABLE AS`) is refused: it would launder the value into a readable table;
 * - every other output column is scanned by the content detectors when `detect` is on;
 * - binary COPY of a masked column is refused (its values cannot be rewritten in place).
 * Pure; the same lineage and rules always give the same verdict.
 */
export function maskingVerdict(
  lineages: readonly LineageResult[],
  rules: ColumnRules,
  detect: boolean,
): MaskingVerdict {
  const statements: StatementMask[] = [];
  for (const lineage of lineages) {
    for (const use of lineage.shaping) {
      const rule = rules.ruleFor(use.source.schema, use.source.table, use.source.column);
      if (rule !== null && rule.shaping === 'refuse') {
        return refusal(
          rule,
          `masked column ${columnName(use.source)} is used in ${CLAUSE_NAMES[use.clause]}, which would reveal its values one guess at a time (masking rule "${rule.name}")`,
        );
      }
    }
    for (const write of lineage.writes) {
      const masked = maskedSource(write.sources, rules);
      if (masked === null || write.derivation === 'aggregate-safe') continue;
      const { target } = write;
      const targetRule =
        target.schema === null ? null : rules.ruleFor(target.schema, target.table, target.column);
      if (targetRule !== null) continue;
      const targetName = `${target.schema === null ? '' : `${target.schema}.`}${target.table}.${target.column}`;
      return refusal(
        masked.rule,
        `masked column ${columnName(masked.source)} would be copied into ${targetName}, which is not masked (masking rule "${masked.rule.name}")`,
      );
    }
    const actions: (MaskAction | null)[] = [];
    const ruleNames: (string | null)[] = [];
    for (const output of lineage.outputs) {
      const masked = output.derivation === 'constant' ? null : maskedSource(output.sources, rules);
      if (masked === null || output.derivation === 'aggregate-safe') {
        actions.push(detect ? DETECT : null);
        ruleNames.push(null);
      } else if (output.derivation === 'direct') {
        actions.push(masked.rule.style);
        ruleNames.push(masked.rule.name);
      } else {
        return refusal(
          masked.rule,
          `column "${output.name}" is computed from masked column ${columnName(masked.source)}; select the column itself to get it masked (masking rule "${masked.rule.name}")`,
        );
      }
    }
    const copy = lineage.copy ?? null;
    const ruled = ruleNames.find((name) => name !== null);
    if (copy?.format === 'binary' && ruled !== undefined) {
      return {
        ok: false,
        rule: ruled,
        message: `binary COPY cannot be masked; use FORMAT text or csv (masking rule "${ruled}")`,
      };
    }
    statements.push({
      actions,
      rules: ruleNames,
      names: lineage.outputs.map((output) => output.name),
      copy,
    });
  }
  return { ok: true, statements };
}
