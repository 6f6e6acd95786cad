import type { CommonTableExpr, Node } from 'libpg-query';
import type { ColumnLineage } from './column-lineage.js';
import { transformedLineage } from './column-lineage.js';
import { refuse } from './lineage-refusal.js';

/** A named column of a FROM item or query result, and where its values come from. */
export interface NamedColumn {
  readonly name: string;
  readonly lineage: ColumnLineage;
}

/**
 * One FROM item as the parser's namespace sees it (ParseNamespaceItem): the name it answers to
 * in qualified references, whether its columns answer unqualified references, and its columns.
 */
export interface ScopeItem {
  /** Alias, relation or CTE name; null for an unaliased join or subquery. */
  readonly refname: string | null;
  /** Set only for an unaliased relation, which `schema.table.column` can also reach. */
  readonly relation: { readonly schema: string; readonly name: string } | null;
  readonly columns: readonly NamedColumn[];
  /** Reachable as `refname.column`. */
  relVisible: boolean;
  /** Its columns answer unqualified references (false for tables inside an unaliased join). */
  colsVisible: boolean;
}

/** A WITH item, traced on first reference and remembered. */
export interface CteEntry {
  readonly name: string;
  readonly query: Node;
  readonly columnAliases: readonly string[];
  readonly recursive: boolean;
  /** The parsed item, for SEARCH and CYCLE. */
  readonly definition: CommonTableExpr;
  /** The scope its body is traced in (earlier siblings only, unless WITH RECURSIVE). */
  scope: Scope | null;
  state: 'pending' | 'in-progress' | 'done';
  /** While a recursive body iterates: the columns known so far. */
  approximation: readonly NamedColumn[] | null;
  result: readonly NamedColumn[] | null;
}

/** One query level: its FROM items and WITH items, and the enclosing level for correlation. */
export interface Scope {
  readonly parent: Scope | null;
  readonly items: ScopeItem[];
  readonly ctes: ReadonlyMap<string, CteEntry> | null;
}

/** A new level under `parent`. */
export function childScope(
  parent: Scope | null,
  items: ScopeItem[] = [],
  ctes: ReadonlyMap<string, CteEntry> | null = null,
): Scope {
  return { parent, items, ctes };
}

/** What a column reference resolved to. */
export type Resolved =
  | { readonly kind: 'column'; readonly column: NamedColumn }
  | { readonly kind: 'row'; readonly item: ScopeItem };

function quote(name: string): string {
  return `"${name}"`;
}

/** The only column named `name` in `item`, null if none; refuses when several share the name. */
export function columnOf(item: ScopeItem, name: string, what: string): NamedColumn | null {
  let found: NamedColumn | null = null;
  for (const column of item.columns) {
    if (column.name !== name) continue;
    if (found !== null) refuse(`column reference ${quote(what)} is ambiguous`);
    found = column;
  }
  return found;
}

/** Searches the levels outward for an unqualified column, as colNameToVar does. */
export function findColumn(
  scope: Scope | null,
  name: string,
  localOnly = false,
): NamedColumn | null {
  for (let level = scope; level !== null; level = level.parent) {
    let found: NamedColumn | null = null;
    for (const item of level.items) {
      if (!item.colsVisible) continue;
      const column = columnOf(item, name, name);
      if (column === null) continue;
      if (found !== null) refuse(`column reference ${quote(name)} is ambiguous`);
      found = column;
    }
    if (found !== null || localOnly) return found;
  }
  return null;
}

/** Searches the levels outward for a FROM item by name (or schema and relation name). */
export function findItem(
  scope: Scope | null,
  schema: string | null,
  name: string,
): ScopeItem | null {
  for (let level = scope; level !== null; level = level.parent) {
    let found: ScopeItem | null = null;
    for (const item of level.items) {
      if (!item.relVisible) continue;
      const matches =
        schema === null
          ? item.refname === name
          : item.relation !== null &&
            item.relation.schema === schema &&
            item.relation.name === name;
      if (!matches) continue;
      if (found !== null) refuse(`table reference ${quote(name)} is ambiguous`);
      found = item;
    }
    if (found !== null) return found;
  }
  return null;
}

/**
 * Refuses two FROM items of one level that answer to the same name, as checkNameSpaceConflicts
 * does; two unaliased relations that differ (`customers`, `crm.customers`) may share one.
 */
export function checkNameConflicts(items: readonly ScopeItem[]): void {
  const visible = items.filter((item) => item.relVisible && item.refname !== null);
  for (let i = 0; i < visible.length; i++) {
    for (let j = i + 1; j < visible.length; j++) {
      const a = visible[i];
      const b = visible[j];
      if (a === undefined || b === undefined || a.refname !== b.refname) continue;
      const distinctRelations =
        a.relation !== null &&
        b.relation !== null &&
        (a.relation.schema !== b.relation.schema || a.relation.name !== b.relation.name);
      if (!distinctRelations) {
        refuse(`table name ${quote(a.refname ?? '')} specified more than once`);
      }
    }
  }
}

/** Finds a WITH item visible from `scope` by name. */
export function findCte(scope: Scope | null, name: string): CteEntry | null {
  for (let level = scope; level !== null; level = level.parent) {
    const entry = level.ctes?.get(name);
    if (entry !== undefined) return entry;
  }
  return null;
}

/** The lineage of a whole-row reference: every column of the item flows into the composite value. */
export function rowLineage(item: ScopeItem): ColumnLineage {
  return transformedLineage(item.columns.map((column) => column.lineage));
}

/**
 * Resolves a ColumnRef's name parts (the `*` already stripped) the way transformColumnRef does:
 * `col`, `rel`, `rel.col`, `schema.rel.col`, `catalog.schema.rel.col`. Composite field access
 * through a column (`col.field`) needs types the catalog does not give, so it is refused.
 */
export function resolveColumnRef(scope: Scope, parts: readonly string[]): Resolved {
  const text = parts.join('.');
  const [a, b, c, d] = parts;
  if (parts.length === 1 && a !== undefined) {
    const column = findColumn(scope, a);
    if (column !== null) return { kind: 'column', column };
    const item = findItem(scope, null, a);
    if (item !== null) return { kind: 'row', item };
    return refuse(`column ${quote(a)} does not exist in any FROM item in scope`);
  }
  let item: ScopeItem | null = null;
  let columnName: string | undefined;
  if (parts.length === 2 && a !== undefined) {
    item = findItem(scope, null, a);
    columnName = b;
  } else if (parts.length === 3 && a !== undefined && b !== undefined) {
    item = findItem(scope, a, b);
    columnName = c;
  } else if (parts.length === 4 && b !== undefined && c !== undefined) {
    // The catalog name must be the current database, or the server rejects the statement.
    item = findItem(scope, b, c);
    columnName = d;
  }
  if (item === null || columnName === undefined) {
    // `a.b` could also be field b of a composite column a, which needs types the catalog lacks.
    const composite =
      parts.length === 2 ? ' (field access on a composite column is not traced)' : '';
    return refuse(`no FROM item in scope matches ${quote(text)}${composite}`);
  }
  const column = columnOf(item, columnName, text);
  if (column === null) {
    return refuse(`column ${quote(text)} does not exist (function-call notation is not traced)`);
  }
  return { kind: 'column', column };
}

/** Resolves `rel.*` name parts (the `*` stripped) to a FROM item. */
export function resolveStarItem(scope: Scope, parts: readonly string[]): ScopeItem {
  const [a, b, c] = parts;
  let item: ScopeItem | null = null;
  if (parts.length === 1 && a !== undefined) item = findItem(scope, null, a);
  else if (parts.length === 2 && a !== undefined && b !== undefined) item = findItem(scope, a, b);
  else if (parts.length === 3 && b !== undefined && c !== undefined) item = findItem(scope, b, c);
  if (item === null) {
    return refuse(`cannot resolve ${quote(`${parts.join('.')}.*`)}: no FROM item matches`);
  }
  return item;
}
