/** The kind of a relation, as far as lineage cares. */
export type RelationKind = 'table' | 'view' | 'materialized-view' | 'foreign-table' | 'other';

/** A relation as the server resolved it. */
export interface CatalogRelation {
  /** The real schema (after search_path resolution). */
  readonly schema: string;
  readonly name: string;
  readonly kind: RelationKind;
  /** Column names in attribute order, dropped columns excluded. */
  readonly columns: readonly string[];
}

/** What the tracer needs to know about the database; the gateway answers from the upstream catalog (cached). */
export interface LineageCatalog {
  /**
   * Resolves a relation name as the server would (schema null = by search_path), or returns null
   * when it is unknown.
   */
  resolveRelation(schema: string | null, name: string): CatalogRelation | null;
  /** SQL text of a view's or materialized view's definition (`pg_get_viewdef`), or null when unknown. */
  viewDefinition(schema: string, name: string): string | null;
}
