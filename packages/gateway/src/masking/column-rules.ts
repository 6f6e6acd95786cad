import type { MaskStyle } from '@portcullis/masking';
import type { MaskingRuleConfig } from '../config/load-config.js';

/** The masking rule that governs one table column, as a session sees it. */
export interface ColumnRule {
  readonly name: string;
  readonly style: MaskStyle;
  readonly shaping: 'refuse' | 'allow';
}

interface CompiledRule extends ColumnRule {
  /** `[schema|null, table, column]` matchers; schema null = any schema. */
  readonly columns: readonly (readonly [RegExp | null, RegExp, RegExp])[];
  readonly names: readonly RegExp[];
}

/** `*` matches any run of characters; everything else literally. */
function glob(pattern: string, flags = ''): RegExp {
  const body = pattern
    .split('*')
    .map((part) => part.replace(/[.+?^${}()|[\]\\]/g, '\\$&'))
    .join('.*');
  return new RegExp(`^${body}$`, flags);
}

function compileRule(rule: MaskingRuleConfig): CompiledRule {
  return {
    name: rule.name,
    style: rule.style,
    shaping: rule.shaping,
    columns: rule.columns.map((pattern) => {
      const parts = pattern.split('.');
      const [column, table, schema] = parts.reverse();
      return [schema === undefined ? null : glob(schema), glob(table!), glob(column!)] as const;
    }),
    names: rule.names.map((pattern) => glob(pattern, 'i')),
  };
}

/**
 * Which masking rule, if any, governs a table column for one kind of session: the first rule
 * naming the column (by `schema.table.column` / `table.column` glob or column-name glob) wins,
 * and rules whose `exemptGroups` include one of the person's groups are left out. Answers are
 * cached per column. Pure.
 */
export class ColumnRules {
  readonly #rules: readonly CompiledRule[];
  readonly #cache = new Map<string, ColumnRule | null>();
  /** Names the rule set, so caches of decisions made under it can be shared and told apart. */
  readonly key: string;

  private constructor(rules: readonly CompiledRule[]) {
    this.#rules = rules;
    this.key = rules.map((rule) => rule.name).join('\u0000');
  }

  /** The rules that apply to a person in `groups`. */
  static forPerson(rules: readonly MaskingRuleConfig[], groups: readonly string[]): ColumnRules {
    const applicable = rules.filter((rule) => !rule.exemptGroups.some((g) => groups.includes(g)));
    return new ColumnRules(applicable.map(compileRule));
  }

  /** True when no rule applies (the person is exempt from all, or none is configured). */
  get empty(): boolean {
    return this.#rules.length === 0;
  }

  /** The rule that masks `schema.table.column`, or null. */
  ruleFor(schema: string, table: string, column: string): ColumnRule | null {
    const key = `${schema}\u0000${table}\u0000${column}`;
    const cached = this.#cache.get(key);
    if (cached !== undefined) return cached;
    const found = this.#rules.find((rule) => matches(rule, schema, table, column)) ?? null;
    const answer: ColumnRule | null =
      found === null ? null : { name: found.name, style: found.style, shaping: found.shaping };
    if (this.#cache.size >= 100_000) this.#cache.clear();
    this.#cache.set(key, answer);
    return answer;
  }
}

function matches(rule: CompiledRule, schema: string, table: string, column: string): boolean {
  for (const [s, t, c] of rule.columns) {
    if ((s === null || s.test(schema)) && t.test(table) && c.test(column)) return true;
  }
  return rule.names.some((name) => name.test(column));
}
