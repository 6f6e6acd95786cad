import type { CatalogRelation, LineageCatalog, RelationKind } from '@portcullis/sql';

/** A pg_class row as the loader reads it. */
export interface RelationRow {
  readonly oid: number;
  readonly schema: string;
  readonly name: string;
  /** `pg_class.relkind`: `r`, `p`, `v`, `m`, `f`, `S`, `t`, `c`… */
  readonly relkind: string;
  /** `pg_get_viewdef(oid)` for views and materialized views; null otherwise. */
  readonly definition: string | null;
}

/** A pg_attribute row (user columns only, `attnum > 0`) as the loader reads it. */
export interface ColumnRow {
  readonly relationOid: number;
  readonly attnum: number;
  readonly name: string;
  readonly typeOid: number;
  readonly dropped: boolean;
}

/** The rows a snapshot is built from. */
export interface CatalogRows {
  readonly relations: readonly RelationRow[];
  readonly columns: readonly ColumnRow[];
}

/** A column of a snapshot relation. */
export interface SnapshotColumn {
  readonly name: string;
  /** `pg_attribute.attnum`, as RowDescription reports it; gaps where columns were dropped. */
  readonly attnum: number;
  readonly typeOid: number;
}

/** A relation in a snapshot; usable as the tracer's {@link CatalogRelation}. */
export interface SnapshotRelation extends CatalogRelation {
  readonly oid: number;
  /** Column names in attnum order, dropped columns excluded. */
  readonly columns: readonly string[];
  /** The same columns with their attnum and type. */
  readonly attributes: readonly SnapshotColumn[];
  /** The view's or materialized view's definition; null for other kinds. */
  readonly definition: string | null;
}

/** Where a snapshot came from. */
export interface CatalogSnapshotMeta {
  /** Increases with every load of the same resource's catalog. */
  readonly generation: number;
  /** When the rows were read, in milliseconds since the epoch. */
  readonly loadedAt: number;
}

/**
 * Relations left out of every snapshot. A statement that names one is refused while masking
 * applies, because it resolves to nothing; a same-named relation later in the search path is
 * not used in its place, since the server would read this one.
 *
 * The statistics relations hold samples of other tables' column values: `most_common_vals`,
 * `histogram_bounds` and the extended statistics' MCV lists show masked values verbatim to
 * anyone allowed to read the column (pg_stats) or the catalog (pg_statistic, superusers).
 */
const EXCLUDED = new Set([
  'pg_catalog.pg_statistic',
  'pg_catalog.pg_statistic_ext_data',
  'pg_catalog.pg_stats',
  'pg_catalog.pg_stats_ext',
  'pg_catalog.pg_stats_ext_exprs',
]);

/**
 * Relation kinds left out the same way: TOAST tables (`t`) hold the out-of-line chunks of other
 * tables' values, readable raw by a superuser as `pg_toast.pg_toast_<oid>`.
 */
const EXCLUDED_KINDS = new Set(['t']);

function relationKind(relkind: string): RelationKind {
  switch (relkind) {
    case 'r':
    case 'p':
      return 'table';
    case 'v':
      return 'view';
    case 'm':
      return 'materialized-view';
    case 'f':
      return 'foreign-table';
    default:
      return 'other';
  }
}

/** A relation name in one schema: a relation, or a marker for an excluded one. */
type Entry = SnapshotRelation | typeof BLOCKED;
const BLOCKED = Symbol('excluded');

/** The implicit alias of a session's temporary schema. */
const TEMP_ALIAS = 'pg_temp';

/**
 * An immutable copy of one database's relations, columns and view definitions, read ahead of
 * time so the gateway can answer the lineage tracer synchronously. Pure: built from rows.
 *
 * Resolution follows the server: a qualified name looks in its schema (`pg_temp` meaning the
 * session's temporary schema, when the search path names one); an unqualified one walks the
 * session's search path. Relations that expose other columns' values are excluded (see
 * `EXCLUDED`), and so is nothing else: pg_catalog and information_schema resolve like any schema,
 * so catalog queries (psql's `\d`) can be traced.
 */
export class CatalogSnapshot implements CatalogSnapshotMeta {
  readonly generation: number;
  readonly loadedAt: number;
  readonly #byOid = new Map<number, SnapshotRelation>();
  /** schema → name → entry. */
  readonly #bySchema = new Map<string, Map<string, Entry>>();
  /** name → every schema's entry of that name (for an unknown search path). */
  readonly #byName = new Map<string, Entry[]>();
  readonly #attnums = new Map<number, Map<number, string>>();

  constructor(rows: CatalogRows, meta: CatalogSnapshotMeta) {
    this.generation = meta.generation;
    this.loadedAt = meta.loadedAt;
    const columnsOf = new Map<number, SnapshotColumn[]>();
    for (const column of rows.columns) {
      if (column.dropped || column.attnum <= 0) continue;
      let list = columnsOf.get(column.relationOid);
      if (list === undefined) columnsOf.set(column.relationOid, (list = []));
      list.push({ name: column.name, attnum: column.attnum, typeOid: column.typeOid });
    }
    for (const row of rows.relations) {
      let entry: Entry = BLOCKED;
      if (!EXCLUDED.has(`${row.schema}.${row.name}`) && !EXCLUDED_KINDS.has(row.relkind)) {
        const attributes = (columnsOf.get(row.oid) ?? []).sort((a, b) => a.attnum - b.attnum);
        const kind = relationKind(row.relkind);
        const relation: SnapshotRelation = Object.freeze({
          oid: row.oid,
          schema: row.schema,
          name: row.name,
          kind,
          columns: Object.freeze(attributes.map((a) => a.name)),
          attributes: Object.freeze(attributes),
          definition: kind === 'view' || kind === 'materialized-view' ? row.definition : null,
        });
        entry = relation;
        this.#byOid.set(row.oid, relation);
        this.#attnums.set(row.oid, new Map(attributes.map((a) => [a.attnum, a.name])));
      }
      let names = this.#bySchema.get(row.schema);
      if (names === undefined) this.#bySchema.set(row.schema, (names = new Map()));
      names.set(row.name, entry);
      let same = this.#byName.get(row.name);
      if (same === undefined) this.#byName.set(row.name, (same = []));
      same.push(entry);
    }
  }

  /** Relations in the snapshot (excluded ones not counted). */
  get relationCount(): number {
    return this.#byOid.size;
  }

  /** The relation with this OID (RowDescription's table OID), or null when unknown or excluded. */
  relationByOid(oid: number): SnapshotRelation | null {
    return this.#byOid.get(oid) ?? null;
  }

  /**
   * The name of column `attnum` of relation `tableOid` (RowDescription's table OID and column
   * attribute number), or null when either is unknown, the column was dropped, or `attnum` is a
   * system column's (negative) or 0.
   */
  columnByAttnum(tableOid: number, attnum: number): string | null {
    return this.#attnums.get(tableOid)?.get(attnum) ?? null;
  }

  /**
   * The tracer's view of this snapshot for a session whose search path is `searchPath` (the
   * schemas of `current_schemas(true)`, in order), or null when the session's path is unknown:
   * then an unqualified name resolves only when exactly one schema holds a relation of that name
   * (pg_catalog included), and `pg_temp.` names do not resolve.
   */
  lineageCatalog(searchPath: readonly string[] | null): LineageCatalog {
    const path = searchPath === null ? null : [...searchPath];
    const tempSchema = path?.find((schema) => /^pg_temp_\d+$/.test(schema)) ?? null;
    const lookup = (schema: string, name: string): SnapshotRelation | null => {
      const real = schema === TEMP_ALIAS ? tempSchema : schema;
      if (real === null) return null;
      const entry = this.#bySchema.get(real)?.get(name);
      return entry === undefined || entry === BLOCKED ? null : entry;
    };
    return {
      resolveRelation: (schema, name) => {
        if (schema !== null) return lookup(schema, name);
        if (path === null) {
          const same = this.#byName.get(name);
          const only = same?.length === 1 ? same[0] : undefined;
          return only === undefined || only === BLOCKED ? null : only;
        }
        for (const candidate of path) {
          const entry = this.#bySchema.get(candidate)?.get(name);
          // The first schema holding the name wins, even when the relation is excluded.
          if (entry !== undefined) return entry === BLOCKED ? null : entry;
        }
        return null;
      },
      viewDefinition: (schema, name) => lookup(schema, name)?.definition ?? null,
    };
  }
}
