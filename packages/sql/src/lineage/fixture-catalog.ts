/**
 * Test fixture, used only by the lineage tests (it sits beside them because test files cannot
 * share code without running each other's tests): an in-memory catalog of a small shop schema,
 * views over it (a view over a view, an aggregating view, a materialized view, broken views), a
 * second schema holding a same-named table, and a search_path.
 */
import type { CatalogRelation, LineageCatalog, RelationKind } from './lineage-catalog.js';
import type { LineageResult } from './lineage-result.js';

interface FixtureRelation {
  readonly kind: RelationKind;
  readonly columns: readonly string[];
  readonly definition?: string;
}

const RELATIONS: Readonly<Record<string, FixtureRelation>> = {
  'public.customers': {
    kind: 'table',
    columns: ['id', 'full_name', 'email', 'phone', 'card_number', 'national_id', 'created_at'],
  },
  'public.orders': {
    kind: 'table',
    columns: ['id', 'customer_id', 'status', 'total_cents', 'placed_at'],
  },
  'public.payments': { kind: 'table', columns: ['id', 'order_id', 'card_number', 'amount_cents'] },
  'public.ext_accounts': { kind: 'foreign-table', columns: ['id', 'iban'] },
  'public.order_seq': { kind: 'other', columns: ['last_value', 'log_cnt', 'is_called'] },
  // pg_get_viewdef style: qualified column references, a trailing semicolon.
  'public.customer_contacts': {
    kind: 'view',
    columns: ['id', 'full_name', 'email'],
    definition:
      ' SELECT customers.id,\n    customers.full_name,\n    customers.email\n   FROM customers;',
  },
  'public.contact_emails': {
    kind: 'view',
    columns: ['address', 'shout'],
    definition:
      ' SELECT customer_contacts.email AS address,\n    upper(customer_contacts.full_name) AS shout\n   FROM customer_contacts\n  WHERE (customer_contacts.id > 10);',
  },
  'public.order_summary': {
    kind: 'view',
    columns: ['customer_id', 'orders', 'spent'],
    definition:
      ' SELECT c.id AS customer_id,\n    count(o.id) AS orders,\n    sum(o.total_cents) AS spent\n   FROM (customers c\n     JOIN orders o ON ((o.customer_id = c.id)))\n  GROUP BY c.id;',
  },
  'public.mv_emails': {
    kind: 'materialized-view',
    columns: ['email'],
    definition: ' SELECT customers.email\n   FROM customers;',
  },
  'public.leaky_view': {
    kind: 'view',
    columns: ['v'],
    definition: ' SELECT public.leak(customers.id) AS v\n   FROM customers;',
  },
  'public.loop_a': { kind: 'view', columns: ['x'], definition: ' SELECT loop_b.x FROM loop_b;' },
  'public.loop_b': { kind: 'view', columns: ['x'], definition: ' SELECT loop_a.x FROM loop_a;' },
  'public.hidden_view': { kind: 'view', columns: ['a'] },
  'public.stale_view': {
    kind: 'view',
    columns: ['id', 'email'],
    definition: ' SELECT customers.id\n   FROM customers;',
  },
  'crm.customers': { kind: 'table', columns: ['id', 'email', 'tier'] },
  'crm.leads': { kind: 'table', columns: ['id', 'email', 'source'] },
};

/** Resolution order for unqualified names, as the session's search_path would give. */
const SEARCH_PATH = ['public', 'crm'];

/** The fixture catalog, resolving unqualified names through `public` then `crm`. */
export function fixtureCatalog(): LineageCatalog {
  return {
    resolveRelation(schema, name): CatalogRelation | null {
      for (const candidate of schema === null ? SEARCH_PATH : [schema]) {
        const rel = RELATIONS[`${candidate}.${name}`];
        if (rel !== undefined) {
          return { schema: candidate, name, kind: rel.kind, columns: rel.columns };
        }
      }
      return null;
    },
    viewDefinition(schema, name) {
      return RELATIONS[`${schema}.${name}`]?.definition ?? null;
    },
  };
}

/** A compact rendering of a lineage for exact comparisons. */
export interface LineageSummary {
  readonly outputs: readonly (readonly [name: string, derivation: string, sources: string])[];
  readonly shaping: string;
  readonly writes: readonly (readonly [target: string, derivation: string, sources: string])[];
}

/** Source lists become sorted `table.column` text (schema omitted when public). */
function sourceText(sources: readonly { schema: string; table: string; column: string }[]): string {
  return sources
    .map((s) => `${s.schema === 'public' ? '' : `${s.schema}.`}${s.table}.${s.column}`)
    .sort()
    .join(' ');
}

/** Summarizes a lineage: outputs in order, shaping uses sorted as `clause:table.column`. */
export function summarize(lineage: LineageResult): LineageSummary {
  return {
    outputs: lineage.outputs.map((o) => [o.name, o.derivation, sourceText(o.sources)] as const),
    shaping: lineage.shaping
      .map((u) => `${u.clause}:${sourceText([u.source])}`)
      .sort()
      .join(' '),
    writes: lineage.writes.map(
      (w) =>
        [
          `${w.target.schema ?? '?'}.${w.target.table}.${w.target.column}`,
          w.derivation,
          sourceText(w.sources),
        ] as const,
    ),
  };
}
