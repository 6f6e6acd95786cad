import { loadSqlParser, traceLineage } from '@portcullis/sql';
import { describe, expect, it } from 'vitest';
import { CatalogSnapshot, type ColumnRow, type RelationRow } from './catalog-snapshot.js';

let nextOid = 16_384;

interface Spec {
  readonly relkind?: string;
  /** Column names by attnum from 1; null for a dropped column. */
  readonly columns?: readonly (string | null)[];
  readonly definition?: string;
}

/** Builds a snapshot from `schema.name` → spec, OIDs assigned in order. */
function snapshot(specs: Readonly<Record<string, Spec>>): {
  snap: CatalogSnapshot;
  oids: Record<string, number>;
} {
  const relations: RelationRow[] = [];
  const columns: ColumnRow[] = [];
  const oids: Record<string, number> = {};
  for (const [qualified, spec] of Object.entries(specs)) {
    const [schema, name] = qualified.split('.') as [string, string];
    const oid = nextOid++;
    oids[qualified] = oid;
    relations.push({
      oid,
      schema,
      name,
      relkind: spec.relkind ?? 'r',
      definition: spec.definition ?? null,
    });
    (spec.columns ?? ['id']).forEach((column, i) => {
      columns.push({
        relationOid: oid,
        attnum: i + 1,
        name: column ?? `........pg.dropped.${i + 1}........`,
        typeOid: 25,
        dropped: column === null,
      });
    });
  }
  // The server returns rows in no particular order.
  columns.reverse();
  return {
    snap: new CatalogSnapshot({ relations, columns }, { generation: 3, loadedAt: 42 }),
    oids,
  };
}

const { snap, oids } = snapshot({
  'public.customers': { columns: ['id', null, 'email', 'phone'] },
  'public.orders': { relkind: 'p', columns: ['id', 'customer_id'] },
  'public.contacts': {
    relkind: 'v',
    columns: ['id', 'email'],
    definition: ' SELECT customers.id,\n    customers.email\n   FROM public.customers;',
  },
  'public.mv_emails': {
    relkind: 'm',
    columns: ['email'],
    definition: ' SELECT customers.email\n   FROM public.customers;',
  },
  'public.remote': { relkind: 'f', columns: ['iban'] },
  'public.order_seq': { relkind: 'S', columns: ['last_value', 'log_cnt', 'is_called'] },
  'crm.customers': { columns: ['id', 'email', 'tier'] },
  'crm.leads': { columns: ['id', 'email'] },
  'pg_catalog.pg_class': { columns: ['oid', 'relname'] },
  'pg_catalog.pg_statistic': { columns: ['starelid', 'stavalues1'] },
  'pg_catalog.pg_statistic_ext_data': { columns: ['stxoid', 'stxdmcv'] },
  'pg_catalog.pg_stats': { relkind: 'v', columns: ['most_common_vals'], definition: ' SELECT 1;' },
  'pg_catalog.pg_stats_ext': {
    relkind: 'v',
    columns: ['most_common_vals'],
    definition: ' SELECT 1;',
  },
  'pg_catalog.pg_stats_ext_exprs': { relkind: 'v', columns: ['x'], definition: ' SELECT 1;' },
  'public.pg_stats': { columns: ['mine'] },
  'public.pg_class': { columns: ['mine'] },
  'information_schema.tables': { relkind: 'v', columns: ['table_name'], definition: ' SELECT 1;' },
  'pg_toast.pg_toast_16384': { relkind: 't', columns: ['chunk_id', 'chunk_seq', 'chunk_data'] },
  'pg_temp_3.scratch': { columns: ['note'] },
  'shared_a.thing': { columns: ['a'] },
  'shared_b.thing': { columns: ['b'] },
});

/** `schema.name` the catalog resolves a name to, or null. */
function resolved(path: readonly string[] | null, schema: string | null, name: string) {
  const rel = snap.lineageCatalog(path).resolveRelation(schema, name);
  return rel === null ? null : `${rel.schema}.${rel.name}`;
}

describe('CatalogSnapshot', () => {
  it('keeps its generation and load time', () => {
    expect(snap.generation).toBe(3);
    expect(snap.loadedAt).toBe(42);
  });

  it('maps relkind to the tracer kinds', () => {
    const kind = (qualified: string) => snap.relationByOid(oids[qualified]!)?.kind;
    expect(kind('public.customers')).toBe('table');
    expect(kind('public.orders')).toBe('table');
    expect(kind('public.contacts')).toBe('view');
    expect(kind('public.mv_emails')).toBe('materialized-view');
    expect(kind('public.remote')).toBe('foreign-table');
    expect(kind('public.order_seq')).toBe('other');
  });

  it('lists columns in attnum order without dropped ones, and maps attnums across the gap', () => {
    const customers = oids['public.customers']!;
    expect(snap.relationByOid(customers)).toMatchObject({
      oid: customers,
      schema: 'public',
      name: 'customers',
      kind: 'table',
      columns: ['id', 'email', 'phone'],
      attributes: [
        { name: 'id', attnum: 1, typeOid: 25 },
        { name: 'email', attnum: 3, typeOid: 25 },
        { name: 'phone', attnum: 4, typeOid: 25 },
      ],
      definition: null,
    });
    expect(snap.columnByAttnum(customers, 1)).toBe('id');
    expect(snap.columnByAttnum(customers, 2)).toBeNull(); // dropped
    expect(snap.columnByAttnum(customers, 3)).toBe('email');
    expect(snap.columnByAttnum(customers, 4)).toBe('phone');
    expect(snap.columnByAttnum(customers, 5)).toBeNull();
    expect(snap.columnByAttnum(customers, 0)).toBeNull(); // not a table column
    expect(snap.columnByAttnum(customers, -1)).toBeNull(); // ctid
    expect(snap.columnByAttnum(0, 1)).toBeNull();
    expect(snap.relationByOid(1)).toBeNull();
  });

  it('resolves an unqualified name through the search path, first schema first', () => {
    const path = ['pg_catalog', 'public', 'crm'];
    expect(resolved(path, null, 'customers')).toBe('public.customers');
    expect(resolved(['pg_catalog', 'crm', 'public'], null, 'customers')).toBe('crm.customers');
    expect(resolved(path, null, 'leads')).toBe('crm.leads');
    expect(resolved(path, null, 'nope')).toBeNull();
    // A schema that is not on the path is not searched.
    expect(resolved(['pg_catalog', 'public'], null, 'leads')).toBeNull();
  });

  it('finds pg_catalog relations where the path puts pg_catalog', () => {
    expect(resolved(['pg_catalog', 'public'], null, 'pg_class')).toBe('pg_catalog.pg_class');
    // A path that names pg_catalog late lets a user relation shadow it, as on the server.
    expect(resolved(['public', 'pg_catalog'], null, 'pg_class')).toBe('public.pg_class');
    expect(resolved(['pg_catalog', 'public'], null, 'tables')).toBeNull();
    expect(resolved(['pg_catalog', 'public'], 'information_schema', 'tables')).toBe(
      'information_schema.tables',
    );
  });

  it('resolves qualified names directly, whatever the path', () => {
    expect(resolved(['pg_catalog', 'public'], 'crm', 'customers')).toBe('crm.customers');
    expect(resolved(null, 'crm', 'customers')).toBe('crm.customers');
    expect(resolved(null, 'public', 'customers')).toBe('public.customers');
    expect(resolved(null, 'crm', 'orders')).toBeNull();
    expect(resolved(null, 'nowhere', 'orders')).toBeNull();
  });

  it('resolves pg_temp to the temporary schema on the path, and the path searches it first', () => {
    const path = ['pg_temp_3', 'pg_catalog', 'public'];
    expect(resolved(path, 'pg_temp', 'scratch')).toBe('pg_temp_3.scratch');
    expect(resolved(path, null, 'scratch')).toBe('pg_temp_3.scratch');
    expect(resolved(['pg_catalog', 'public'], 'pg_temp', 'scratch')).toBeNull();
    expect(resolved(null, 'pg_temp', 'scratch')).toBeNull();
  });

  it('with an unknown path, resolves an unqualified name only when one schema holds it', () => {
    expect(resolved(null, null, 'leads')).toBe('crm.leads');
    expect(resolved(null, null, 'orders')).toBe('public.orders');
    expect(resolved(null, null, 'customers')).toBeNull(); // public and crm
    expect(resolved(null, null, 'thing')).toBeNull(); // shared_a and shared_b
    expect(resolved(null, null, 'pg_class')).toBeNull(); // pg_catalog counts
    expect(resolved(null, null, 'nope')).toBeNull();
  });

  it('leaves out the statistics relations, and does not fall through to a same-named one', () => {
    for (const name of [
      'pg_statistic',
      'pg_statistic_ext_data',
      'pg_stats',
      'pg_stats_ext',
      'pg_stats_ext_exprs',
    ]) {
      expect(resolved(['pg_catalog', 'public'], 'pg_catalog', name), name).toBeNull();
      expect(resolved(['pg_catalog', 'public'], null, name), name).toBeNull();
      expect(resolved(null, null, name), name).toBeNull();
      expect(snap.relationByOid(oids[`pg_catalog.${name}`]!), name).toBeNull();
      expect(snap.lineageCatalog(null).viewDefinition('pg_catalog', name), name).toBeNull();
    }
    // pg_catalog.pg_stats comes first on this path: the server would read it, not public's.
    expect(resolved(['pg_catalog', 'public'], null, 'pg_stats')).toBeNull();
    expect(resolved(['public', 'pg_catalog'], null, 'pg_stats')).toBe('public.pg_stats');
    expect(resolved(null, 'public', 'pg_stats')).toBe('public.pg_stats');
    expect(snap.columnByAttnum(oids['pg_catalog.pg_statistic']!, 2)).toBeNull();
  });

  it('leaves out TOAST tables', () => {
    expect(resolved(null, 'pg_toast', 'pg_toast_16384')).toBeNull();
    expect(resolved(['pg_toast'], null, 'pg_toast_16384')).toBeNull();
    expect(snap.relationByOid(oids['pg_toast.pg_toast_16384']!)).toBeNull();
  });

  it('counts the relations it holds', () => {
    // 21 rows, less five statistics relations and one TOAST table.
    expect(snap.relationCount).toBe(15);
  });

  it('returns view and materialized view definitions, and nothing for other kinds', () => {
    const catalog = snap.lineageCatalog(['pg_catalog', 'public']);
    expect(catalog.viewDefinition('public', 'contacts')).toContain('FROM public.customers');
    expect(catalog.viewDefinition('public', 'mv_emails')).toContain('customers.email');
    expect(catalog.viewDefinition('public', 'customers')).toBeNull();
    expect(catalog.viewDefinition('crm', 'contacts')).toBeNull();
  });

  it('answers the tracer: a view traces back to its base table', async () => {
    await loadSqlParser();
    const outcome = traceLineage(
      'SELECT c.email AS e FROM contacts c',
      snap.lineageCatalog(['pg_catalog', 'public']),
    );
    expect(outcome).toMatchObject({
      ok: true,
      lineage: {
        outputs: [
          {
            name: 'e',
            derivation: 'direct',
            sources: [{ schema: 'public', table: 'customers', column: 'email' }],
          },
        ],
      },
    });
    const refused = traceLineage(
      'SELECT most_common_vals FROM pg_stats',
      snap.lineageCatalog(['pg_catalog', 'public']),
    );
    expect(refused.ok).toBe(false);
  });
});
