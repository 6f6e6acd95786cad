import { parseSync } from 'libpg-query';
import type {
  Alias,
  ColumnRef,
  CommonTableExpr,
  CopyStmt,
  DeleteStmt,
  ExplainStmt,
  FuncCall,
  InsertStmt,
  IntoClause,
  JoinExpr,
  MultiAssignRef,
  Node,
  RangeFunction,
  RangeSubselect,
  RangeTableFunc,
  RangeVar,
  ReturningClause,
  SelectStmt,
  SubLink,
  TypeName,
  UpdateStmt,
  WindowDef,
  WithClause,
} from 'libpg-query';
import { classifyFunction, setReturningShape } from './classify-function.js';
import {
  CONSTANT,
  aggregateSafeLineage,
  directLineage,
  eitherLineage,
  sameLineage,
  sourceKey,
  transformedLineage,
  type ColumnLineage,
} from './column-lineage.js';
import { figureColname } from './figure-colname.js';
import type { CatalogRelation, LineageCatalog } from './lineage-catalog.js';
import { LineageRefusal, refuse } from './lineage-refusal.js';
import type {
  CopyOutOptions,
  LineageResult,
  OutputColumn,
  ShapingClause,
  ShapingUse,
  WrittenColumn,
} from './lineage-result.js';
import {
  checkNameConflicts,
  childScope,
  columnOf,
  findColumn,
  findCte,
  resolveColumnRef,
  resolveStarItem,
  rowLineage,
  type CteEntry,
  type NamedColumn,
  type Scope,
  type ScopeItem,
} from './scope.js';

/** Settings of one tracing run. */
export interface QueryTracerOptions {
  readonly maxViewDepth: number;
  /** Function names (bare or `schema.name`) the deployment vouches compute only from their arguments. */
  readonly trustedFunctions: ReadonlySet<string>;
}

/**
 * Nesting beyond this is refused rather than risking the stack: an expression level costs 1, a
 * query level (which takes many more frames) costs 2.
 */
const MAX_NESTING = 1000;
/** A recursive CTE's lineage grows monotonically, so it settles quickly; this bounds a bug. */
const MAX_RECURSIVE_ROUNDS = 64;

/** Casts that keep the value as it is: unbounded text types (a length limit truncates). */
const TEXT_TYPES = new Set(['text', 'varchar', 'bpchar', 'citext']);

/** Expression nodes whose value is computed from all their child expressions. */
const COMPUTED_NODES = new Set([
  'A_Expr',
  'BoolExpr',
  'NullTest',
  'BooleanTest',
  'CoalesceExpr',
  'MinMaxExpr',
  'CaseExpr',
  'CaseWhen',
  'A_ArrayExpr',
  'RowExpr',
  'List',
  'XmlExpr',
  'XmlSerialize',
  'JsonObjectConstructor',
  'JsonArrayConstructor',
  'JsonObjectAgg',
  'JsonArrayAgg',
  'JsonParseExpr',
  'JsonScalarExpr',
  'JsonSerializeExpr',
  'JsonIsPredicate',
  'JsonFuncExpr',
  'JsonValueExpr',
  'JsonKeyValue',
  'JsonAggConstructor',
  'JsonBehavior',
  'JsonArgument',
  'SortBy',
  'WindowDef',
]);

/** Nodes that carry no column reference at all. */
const CONSTANT_NODES = new Set([
  'A_Const',
  'ParamRef',
  'SQLValueFunction',
  'SetToDefault',
  'CurrentOfExpr',
  'String',
  'Integer',
  'Float',
  'Boolean',
  'BitString',
  'A_Star',
]);

function tagOf(node: Node): string {
  return Object.keys(node)[0] ?? '(empty)';
}

function quote(name: string): string {
  return `"${name}"`;
}

function qualified(schema: string, name: string): string {
  return `${schema}.${name}`;
}

/** The names in a list of String nodes (column aliases, USING lists, function names). */
function names(nodes: readonly Node[] | undefined): string[] {
  return (nodes ?? []).map((node) =>
    'String' in node ? (node.String.sval ?? '') : refuse(`expected a name, found ${tagOf(node)}`),
  );
}

function aliasNames(alias: Alias | undefined): string[] {
  return names(alias?.colnames);
}

/** Renames the first columns, as a column alias list does. */
function renameColumns(
  columns: readonly NamedColumn[],
  aliases: readonly string[],
  what: string,
): NamedColumn[] {
  if (aliases.length > columns.length) {
    refuse(`${what} has ${columns.length} columns available but ${aliases.length} column aliases`);
  }
  return columns.map((column, i) => {
    const alias = aliases[i];
    return alias === undefined ? column : { name: alias, lineage: column.lineage };
  });
}

function isStar(node: Node | undefined): boolean {
  return node !== undefined && 'A_Star' in node;
}

/** A cast that cannot change the value: to an unbounded text type, no array. */
function keepsValue(type: TypeName | undefined): boolean {
  const parts = names(type?.names);
  const name = parts[parts.length - 1];
  const schema = parts.length > 1 ? parts[0] : 'pg_catalog';
  return (
    name !== undefined &&
    schema === 'pg_catalog' &&
    TEXT_TYPES.has(name) &&
    (type?.typmods ?? []).length === 0 &&
    (type?.arrayBounds ?? []).length === 0
  );
}

/** Child values of a node for the generic "computed from everything inside" rule. */
function childNodes(value: unknown, out: Node[]): void {
  if (Array.isArray(value)) {
    for (const item of value) childNodes(item, out);
    return;
  }
  if (value === null || typeof value !== 'object') return;
  const keys = Object.keys(value);
  const [key] = keys;
  // A wrapped node is a single key naming its type; anything else is an inline struct.
  if (keys.length === 1 && key !== undefined && /^[A-Z]/.test(key)) {
    out.push(value as Node);
    return;
  }
  for (const child of Object.values(value)) childNodes(child, out);
}

function whereIs(rel: CatalogRelation): string {
  return quote(qualified(rel.schema, rel.name));
}

/** The SELECT INTO clause, which sits on the leftmost branch of a set operation. */
function intoClauseOf(stmt: SelectStmt): IntoClause | undefined {
  let current: SelectStmt | undefined = stmt;
  while (current !== undefined) {
    if (current.intoClause !== undefined) return current.intoClause;
    current = current.op !== undefined && current.op !== 'SETOP_NONE' ? current.larg : undefined;
  }
  return undefined;
}

function isSetOperation(stmt: SelectStmt): boolean {
  return stmt.op !== undefined && stmt.op !== 'SETOP_NONE';
}

/** A set operation with nothing of its own but its two branches (no WITH, ORDER BY, LIMIT). */
function isBareSetOperation(stmt: SelectStmt): boolean {
  return (
    stmt.withClause === undefined &&
    stmt.sortClause === undefined &&
    stmt.limitCount === undefined &&
    stmt.limitOffset === undefined &&
    stmt.lockingClause === undefined &&
    stmt.intoClause === undefined
  );
}

function isDataModifying(node: Node): boolean {
  return (
    'InsertStmt' in node || 'UpdateStmt' in node || 'DeleteStmt' in node || 'MergeStmt' in node
  );
}

/** Whether an EXPLAIN option list turns on ANALYZE (the statement then runs). */
function explainAnalyzes(stmt: ExplainStmt): boolean {
  for (const option of stmt.options ?? []) {
    if (!('DefElem' in option) || option.DefElem.defname !== 'analyze') continue;
    const arg = option.DefElem.arg;
    if (arg === undefined) return true;
    if ('String' in arg) return !['false', 'off', '0', 'no'].includes(arg.String.sval ?? '');
    if ('Boolean' in arg) return arg.Boolean.boolval === true;
    if ('Integer' in arg) return (arg.Integer.ival ?? 0) !== 0;
    return true;
  }
  return false;
}

/**
 * Walks one statement's parse tree the way PostgreSQL's analyzer resolves names, carrying a
 * lineage for every value. Shaping uses and writes collect across all query levels, views and
 * CTEs of the statement. One instance traces one statement.
 */
export class QueryTracer {
  private readonly shapingUses = new Map<string, ShapingUse>();
  private readonly written = new Map<
    string,
    { target: WrittenColumn['target']; lineage: ColumnLineage }
  >();
  /** First output names of traced scalar subqueries, for FigureColname. */
  private readonly subqueryNames = new WeakMap<SubLink, string>();
  /** The views being traced, outermost first. */
  private readonly viewPath: string[] = [];
  private readonly locatedRefusals = new WeakSet<LineageRefusal>();
  private readonly viewColumns = new Map<string, NamedColumn[]>();
  /** WITH items being traced, innermost last. */
  private readonly cteStack: CteEntry[] = [];
  private nesting = 0;
  /** Set when an ORDER BY / GROUP BY key is a position: a literal then decides the lineage. */
  private positional = false;
  /** The options of a `COPY … TO STDOUT`, which the caller needs to read its rows. */
  private copyOut: CopyOutOptions | null = null;

  constructor(
    private readonly catalog: LineageCatalog,
    private readonly options: QueryTracerOptions,
  ) {}

  /** The collected result, given the statement's output columns. */
  result(outputs: readonly NamedColumn[]): LineageResult {
    const columns: OutputColumn[] = outputs.map((column, index) => ({
      name: column.name,
      index,
      sources: column.lineage.sources,
      derivation: column.lineage.derivation,
    }));
    const writes: WrittenColumn[] = [...this.written.values()].map(({ target, lineage }) => ({
      target,
      sources: lineage.sources,
      derivation: lineage.derivation,
    }));
    return {
      outputs: columns,
      shaping: [...this.shapingUses.values()],
      writes,
      dependsOnLiterals: this.positional,
      ...(this.copyOut === null ? {} : { copy: this.copyOut }),
    };
  }

  /** Traces a top-level statement and returns the columns of the rows it returns. */
  traceStatement(node: Node): NamedColumn[] {
    if ('SelectStmt' in node) {
      const columns = this.traceSelect(node.SelectStmt, null);
      const into = intoClauseOf(node.SelectStmt);
      if (into === undefined) return columns;
      this.writeNewTable(into, columns);
      return [];
    }
    if ('InsertStmt' in node || 'UpdateStmt' in node || 'DeleteStmt' in node) {
      return this.traceDataModifying(node, null) ?? [];
    }
    if ('CopyStmt' in node) return this.traceCopy(node.CopyStmt);
    if ('ExplainStmt' in node) {
      // Only EXPLAIN ANALYZE runs the statement; its row counts then shape like a WHERE.
      const query = node.ExplainStmt.query;
      if (query !== undefined && explainAnalyzes(node.ExplainStmt)) this.traceStatement(query);
      return [{ name: 'QUERY PLAN', lineage: CONSTANT }];
    }
    if ('VariableShowStmt' in node) {
      const name = node.VariableShowStmt.name ?? '';
      if (name !== 'all') return [{ name, lineage: CONSTANT }];
      return ['name', 'setting', 'description'].map((column) => ({
        name: column,
        lineage: CONSTANT,
      }));
    }
    if ('CreateTableAsStmt' in node) {
      const { query, into, objtype } = node.CreateTableAsStmt;
      if (query === undefined) return [];
      if ('ExecuteStmt' in query) {
        return refuse('CREATE TABLE AS EXECUTE runs a prepared statement the tracer cannot see');
      }
      const columns = this.traceQuery(query, null);
      // A materialized view is traced through its definition when read, so only tables count as writes.
      if (into !== undefined && objtype === 'OBJECT_TABLE' && into.skipData !== true) {
        this.writeNewTable(into, columns);
      }
      return [];
    }
    // The rows come later (FETCH, EXECUTE); the caller keeps this lineage for them.
    if ('DeclareCursorStmt' in node) {
      const query = node.DeclareCursorStmt.query;
      return query === undefined ? [] : this.traceQuery(query, null);
    }
    if ('PrepareStmt' in node) {
      const query = node.PrepareStmt.query;
      return query === undefined ? [] : this.traceStatement(query);
    }
    if ('MergeStmt' in node) return refuse('MERGE is not traced');
    if ('ExecuteStmt' in node) {
      return refuse('EXECUTE runs a prepared statement the tracer cannot see (trace its PREPARE)');
    }
    if ('FetchStmt' in node) {
      return refuse('FETCH returns rows of a cursor declared earlier (trace its DECLARE)');
    }
    if ('CallStmt' in node) return refuse('CALL runs a procedure the tracer cannot see into');
    if ('DoStmt' in node) return refuse('DO runs procedural code the tracer cannot see into');
    // Every other statement returns no rows.
    return [];
  }

  // ---- queries -------------------------------------------------------------------------------

  /** A statement used as a query (subquery, CTE body, COPY, DECLARE): it must return rows. */
  private traceQuery(node: Node, parent: Scope | null): NamedColumn[] {
    if ('SelectStmt' in node) return this.traceSelect(node.SelectStmt, parent);
    if (isDataModifying(node)) {
      const columns = this.traceDataModifying(node, parent);
      if (columns === null) {
        return refuse('a data-modifying statement used as a query has no RETURNING');
      }
      return columns;
    }
    return refuse(`${tagOf(node)} cannot be traced as a query`);
  }

  private traceSelect(stmt: SelectStmt, parent: Scope | null): NamedColumn[] {
    return this.nested(2, () => {
      const withClause = stmt.withClause;
      if (withClause === undefined) return this.traceSelectBody(stmt, parent);
      return this.withCtes(withClause, parent, (scope) => this.traceSelectBody(stmt, scope));
    });
  }

  private traceSelectBody(stmt: SelectStmt, scope: Scope | null): NamedColumn[] {
    if (isSetOperation(stmt)) return this.traceSetOperation(stmt, scope);
    if (stmt.valuesLists !== undefined) return this.traceValues(stmt, scope);
    return this.traceSimpleSelect(stmt, scope);
  }

  private traceSimpleSelect(stmt: SelectStmt, parent: Scope | null): NamedColumn[] {
    const scope = childScope(parent);
    for (const item of stmt.fromClause ?? []) this.addFromItem(item, scope);
    checkNameConflicts(scope.items);
    if (stmt.whereClause !== undefined) this.shapeExpr(stmt.whereClause, scope, 'where');
    const outputs = this.targetList(stmt.targetList, scope);
    for (const item of stmt.groupClause ?? []) this.shapeGroupItem(item, outputs, scope);
    if (stmt.havingClause !== undefined) this.shapeExpr(stmt.havingClause, scope, 'having');
    for (const window of stmt.windowClause ?? []) {
      if ('WindowDef' in window) this.shapeWindow(window.WindowDef, scope);
    }
    this.shapeDistinct(stmt.distinctClause, outputs, scope);
    this.shapeResultClauses(stmt, outputs, scope);
    return outputs;
  }

  private traceValues(stmt: SelectStmt, parent: Scope | null): NamedColumn[] {
    const scope = childScope(parent);
    const rows = (stmt.valuesLists ?? []).map((row) =>
      'List' in row ? (row.List.items ?? []) : refuse(`unexpected VALUES row ${tagOf(row)}`),
    );
    const width = rows[0]?.length ?? 0;
    if (rows.some((row) => row.length !== width)) {
      refuse('VALUES lists must all be the same length');
    }
    const columns: NamedColumn[] = [];
    for (let i = 0; i < width; i++) {
      const lineage = eitherLineage(rows.map((row) => this.traceExpr(row[i], scope)));
      columns.push({ name: `column${i + 1}`, lineage });
    }
    this.shapeResultClauses(stmt, columns, this.resultScope(columns, parent));
    return columns;
  }

  private traceSetOperation(stmt: SelectStmt, parent: Scope | null): NamedColumn[] {
    // Generated SQL chains thousands of UNION ALLs, left-deep: walk the chain down iteratively
    // and trace its branches from the leftmost up, as recursion would.
    const chain: SelectStmt[] = [];
    let node: SelectStmt = stmt;
    while (isSetOperation(node) && (node === stmt || isBareSetOperation(node))) {
      chain.push(node);
      if (node.larg === undefined) return refuse('set operation without both branches');
      node = node.larg;
    }
    let columns = this.traceSelect(node, parent);
    for (const link of chain.reverse()) {
      if (link.rarg === undefined) return refuse('set operation without both branches');
      const right = this.traceSelect(link.rarg, parent);
      if (right.length !== columns.length) {
        const op = (link.op ?? '').replace('SETOP_', '');
        refuse(`each ${op} query must have the same number of columns`);
      }
      columns = columns.map((column, i) => ({
        name: column.name,
        lineage: eitherLineage([column.lineage, right[i]?.lineage ?? CONSTANT]),
      }));
      // Deduplication and INTERSECT/EXCEPT matching decide rows by comparing the values.
      if (!(link.op === 'SETOP_UNION' && link.all === true)) {
        for (const column of columns) this.shape(column.lineage, 'distinct');
      }
    }
    this.shapeResultClauses(stmt, columns, this.resultScope(columns, parent));
    return columns;
  }

  /** The scope of ORDER BY over a set operation or VALUES: its result columns, by name. */
  private resultScope(columns: readonly NamedColumn[], parent: Scope | null): Scope {
    return childScope(parent, [
      { refname: null, relation: null, columns, relVisible: false, colsVisible: true },
    ]);
  }

  // ---- WITH ----------------------------------------------------------------------------------

  private withCtes<T>(withClause: WithClause, parent: Scope | null, body: (scope: Scope) => T): T {
    const recursive = withClause.recursive === true;
    const entries = new Map<string, CteEntry>();
    for (const node of withClause.ctes ?? []) {
      if (!('CommonTableExpr' in node)) return refuse(`unexpected WITH item ${tagOf(node)}`);
      const cte: CommonTableExpr = node.CommonTableExpr;
      const name = cte.ctename ?? '';
      if (entries.has(name)) refuse(`WITH query name ${quote(name)} specified more than once`);
      if (cte.ctequery === undefined) return refuse(`WITH query ${quote(name)} has no body`);
      entries.set(name, {
        name,
        query: cte.ctequery,
        columnAliases: names(cte.aliascolnames),
        recursive,
        definition: cte,
        // Without RECURSIVE a body sees only the WITH items before it.
        scope: recursive ? null : childScope(parent, [], new Map(entries)),
        state: 'pending',
        approximation: null,
        result: null,
      });
    }
    const scope = childScope(parent, [], entries);
    if (recursive) for (const entry of entries.values()) entry.scope = scope;
    const result = body(scope);
    // Data-modifying WITH items run even when nothing reads them (RETURNING or not).
    for (const entry of entries.values()) {
      if (entry.state !== 'pending' || !isDataModifying(entry.query)) continue;
      entry.state = 'in-progress';
      entry.result = this.traceDataModifying(entry.query, entry.scope) ?? [];
      entry.state = 'done';
    }
    return result;
  }

  private traceCte(entry: CteEntry): readonly NamedColumn[] {
    if (entry.state === 'done' && entry.result !== null) return entry.result;
    if (entry.state === 'in-progress') {
      // Only the item's own recursive term may read the partial lineage; another WITH item
      // reading it would memoize an incomplete answer (and the server rejects mutual recursion).
      if (entry.approximation !== null && this.cteStack.at(-1) === entry) {
        return entry.approximation;
      }
      return refuse(
        `WITH query ${quote(entry.name)} refers to itself outside its recursive UNION term, or through another WITH query`,
      );
    }
    entry.state = 'in-progress';
    const query = entry.query;
    let columns: NamedColumn[];
    this.cteStack.push(entry);
    try {
      if (entry.recursive && 'SelectStmt' in query && query.SelectStmt.op === 'SETOP_UNION') {
        columns = this.traceRecursiveCte(entry, query.SelectStmt);
      } else {
        columns = renameColumns(
          this.traceQuery(query, entry.scope),
          entry.columnAliases,
          `WITH query ${quote(entry.name)}`,
        );
      }
    } finally {
      this.cteStack.pop();
    }
    columns = this.addSearchAndCycleColumns(entry, columns);
    entry.result = columns;
    entry.approximation = null;
    entry.state = 'done';
    return columns;
  }

  /** Iterates the recursive term over the lineage known so far until nothing new flows in. */
  private traceRecursiveCte(entry: CteEntry, body: SelectStmt): NamedColumn[] {
    const { larg, rarg } = body;
    if (larg === undefined || rarg === undefined) {
      return refuse('recursive UNION without both terms');
    }
    if (
      body.sortClause !== undefined ||
      body.limitCount !== undefined ||
      body.limitOffset !== undefined
    ) {
      refuse(`ORDER BY or LIMIT in recursive query ${quote(entry.name)} is not traced`);
    }
    // A WITH on the UNION itself is visible to both terms.
    if (body.withClause !== undefined) {
      return this.withCtes(body.withClause, entry.scope, (scope) =>
        this.iterateRecursiveCte(entry, body, larg, rarg, scope),
      );
    }
    return this.iterateRecursiveCte(entry, body, larg, rarg, entry.scope);
  }

  private iterateRecursiveCte(
    entry: CteEntry,
    body: SelectStmt,
    larg: SelectStmt,
    rarg: SelectStmt,
    scope: Scope | null,
  ): NamedColumn[] {
    const what = `WITH query ${quote(entry.name)}`;
    const anchor = renameColumns(this.traceSelect(larg, scope), entry.columnAliases, what);
    let current = anchor;
    for (let round = 0; round < MAX_RECURSIVE_ROUNDS; round++) {
      entry.approximation = current;
      const step = this.traceSelect(rarg, scope);
      if (step.length !== anchor.length) {
        refuse(
          `the recursive term of ${what} returns ${step.length} columns, not ${anchor.length}`,
        );
      }
      const next = current.map((column, i) => ({
        name: column.name,
        lineage: eitherLineage([column.lineage, step[i]?.lineage ?? CONSTANT]),
      }));
      if (next.every((column, i) => sameLineage(column.lineage, current[i]?.lineage ?? CONSTANT))) {
        if (body.all !== true) for (const column of next) this.shape(column.lineage, 'distinct');
        return next;
      }
      current = next;
    }
    return refuse(`the lineage of recursive ${what} did not settle`);
  }

  /** SEARCH and CYCLE add columns computed from the columns they name. */
  private addSearchAndCycleColumns(entry: CteEntry, columns: NamedColumn[]): NamedColumn[] {
    const { search_clause: search, cycle_clause: cycle } = entry.definition;
    if (search === undefined && cycle === undefined) return columns;
    const byName = (list: readonly Node[] | undefined): ColumnLineage =>
      transformedLineage(
        names(list).map((name) => {
          const column = columns.find((c) => c.name === name);
          return column?.lineage ?? refuse(`SEARCH/CYCLE column ${quote(name)} not found`);
        }),
      );
    const out = [...columns];
    if (search?.search_seq_column !== undefined) {
      out.push({ name: search.search_seq_column, lineage: byName(search.search_col_list) });
    }
    if (cycle !== undefined) {
      const lineage = byName(cycle.cycle_col_list);
      if (cycle.cycle_mark_column !== undefined) {
        out.push({ name: cycle.cycle_mark_column, lineage });
      }
      if (cycle.cycle_path_column !== undefined) {
        out.push({ name: cycle.cycle_path_column, lineage });
      }
    }
    return out;
  }

  // ---- FROM ----------------------------------------------------------------------------------

  /**
   * Adds one FROM item's namespace entries to `scope` (the level being built) and returns the
   * item that stands for it (for joins, the join itself).
   */
  private addFromItem(node: Node, scope: Scope): ScopeItem {
    if ('JoinExpr' in node) return this.addJoin(node.JoinExpr, scope);
    const item = this.fromItem(node, scope);
    scope.items.push(item);
    return item;
  }

  private fromItem(node: Node, scope: Scope): ScopeItem {
    if ('RangeVar' in node) return this.relationItem(node.RangeVar, scope);
    if ('RangeSubselect' in node) return this.subselectItem(node.RangeSubselect, scope);
    if ('RangeFunction' in node) {
      return this.functionItem(node.RangeFunction, this.lateralScope(scope));
    }
    if ('RangeTableFunc' in node) {
      return this.xmlTableItem(node.RangeTableFunc, this.lateralScope(scope));
    }
    if ('RangeTableSample' in node) {
      const sample = node.RangeTableSample;
      if (sample.relation === undefined || !('RangeVar' in sample.relation)) {
        return refuse('TABLESAMPLE over something other than a relation');
      }
      for (const arg of [...(sample.args ?? []), sample.repeatable]) this.traceExpr(arg, scope);
      return this.relationItem(sample.relation.RangeVar, scope);
    }
    if ('JsonTable' in node) return refuse('JSON_TABLE in FROM is not traced');
    return refuse(`FROM item ${tagOf(node)} is not traced`);
  }

  /** What a LATERAL item (and any function in FROM) sees: the FROM items before it. */
  private lateralScope(scope: Scope): Scope {
    return childScope(scope.parent, [...scope.items]);
  }

  private relationItem(rv: RangeVar, scope: Scope): ScopeItem {
    const name = rv.relname ?? '';
    const alias = rv.alias;
    if (rv.schemaname === undefined && rv.catalogname === undefined) {
      const cte = findCte(scope, name);
      if (cte !== null) {
        const columns = renameColumns(this.traceCte(cte), aliasNames(alias), quote(name));
        return {
          refname: alias?.aliasname ?? name,
          relation: null,
          columns,
          relVisible: true,
          colsVisible: true,
        };
      }
    }
    const rel = this.resolveRelation(rv);
    const columns = renameColumns(this.relationColumns(rel), aliasNames(alias), whereIs(rel));
    return {
      refname: alias?.aliasname ?? name,
      // An alias hides the real name from `schema.table.column` references.
      relation: alias === undefined ? { schema: rel.schema, name: rel.name } : null,
      columns,
      relVisible: true,
      colsVisible: true,
    };
  }

  private resolveRelation(rv: RangeVar): CatalogRelation {
    const name = rv.relname ?? '';
    const schema = rv.schemaname ?? null;
    const rel = this.catalog.resolveRelation(schema, name);
    return (
      rel ?? refuse(`unknown relation ${quote(schema === null ? name : qualified(schema, name))}`)
    );
  }

  /** A relation's columns: its own for tables, traced through the definition for views. */
  private relationColumns(rel: CatalogRelation): NamedColumn[] {
    if (rel.kind === 'view' || rel.kind === 'materialized-view') return this.traceView(rel);
    return rel.columns.map((name) => ({
      name,
      lineage: directLineage(rel.schema, rel.name, name),
    }));
  }

  private traceView(rel: CatalogRelation): NamedColumn[] {
    // A view's lineage does not depend on where it is used; its shaping is recorded the first time.
    const key = `${rel.schema}\u0000${rel.name}`;
    const cached = this.viewColumns.get(key);
    if (cached !== undefined) return cached;
    const columns = this.traceViewDefinition(rel);
    this.viewColumns.set(key, columns);
    return columns;
  }

  private traceViewDefinition(rel: CatalogRelation): NamedColumn[] {
    const where = whereIs(rel);
    if (this.viewPath.length >= this.options.maxViewDepth) {
      refuse(`views nest deeper than ${this.options.maxViewDepth} levels`);
    }
    const sql = this.catalog.viewDefinition(rel.schema, rel.name);
    if (sql === null) return refuse(`no definition known for view ${where}`);
    let stmt: Node | undefined;
    try {
      const parsed = parseSync(sql);
      stmt = parsed.stmts?.length === 1 ? parsed.stmts[0]?.stmt : undefined;
    } catch {
      return refuse(`the definition of view ${where} does not parse`);
    }
    if (stmt === undefined || !('SelectStmt' in stmt)) {
      return refuse(`the definition of view ${where} is not a single SELECT`);
    }
    this.viewPath.push(qualified(rel.schema, rel.name));
    let columns: NamedColumn[];
    try {
      columns = this.traceSelect(stmt.SelectStmt, null);
    } catch (error) {
      // Name the view path once, where the refusal happened (the innermost view).
      if (error instanceof LineageRefusal && !this.locatedRefusals.has(error)) {
        const located = new LineageRefusal(`in view ${this.shownViewPath()}: ${error.message}`);
        this.locatedRefusals.add(located);
        throw located;
      }
      throw error;
    } finally {
      this.viewPath.pop();
    }
    if (columns.length !== rel.columns.length) {
      refuse(
        `view ${where} defines ${columns.length} columns but the catalog lists ${rel.columns.length}`,
      );
    }
    return rel.columns.map((name, i) => ({ name, lineage: columns[i]?.lineage ?? CONSTANT }));
  }

  private shownViewPath(): string {
    const path = this.viewPath.map(quote);
    const shown = path.length > 4 ? [...path.slice(0, 2), '…', ...path.slice(-1)] : path;
    return shown.join(' → ');
  }

  private subselectItem(sub: RangeSubselect, scope: Scope): ScopeItem {
    if (sub.subquery === undefined) return refuse('subquery in FROM without a query');
    // A non-LATERAL subquery sees outer query levels but not its FROM siblings.
    const parent = sub.lateral === true ? this.lateralScope(scope) : scope.parent;
    const alias = sub.alias;
    const what =
      alias === undefined ? 'subquery in FROM' : `subquery ${quote(alias.aliasname ?? '')}`;
    const columns = renameColumns(this.traceQuery(sub.subquery, parent), aliasNames(alias), what);
    return {
      refname: alias?.aliasname ?? null,
      relation: null,
      columns,
      relVisible: alias !== undefined,
      colsVisible: true,
    };
  }

  private functionItem(rf: RangeFunction, scope: Scope): ScopeItem {
    const alias = rf.alias;
    const single = (rf.functions ?? []).length === 1;
    const columns: NamedColumn[] = [];
    let firstName: string | undefined;
    for (const entry of rf.functions ?? []) {
      const parts = 'List' in entry ? (entry.List.items ?? []) : [];
      const [call, perFunctionDefinitions] = parts;
      if (call === undefined) return refuse('function in FROM without a call');
      const definitions =
        perFunctionDefinitions !== undefined && 'List' in perFunctionDefinitions
          ? perFunctionDefinitions.List.items
          : rf.coldeflist;
      const definedNames = (definitions ?? []).map((def) =>
        'ColumnDef' in def ? (def.ColumnDef.colname ?? '') : refuse('unexpected column definition'),
      );
      if (!('FuncCall' in call)) {
        const lineage = this.traceExpr(call, scope);
        const name = figureColname(call, (s) => this.subqueryNames.get(s));
        firstName ??= name;
        columns.push({
          name: single && alias !== undefined ? (alias.aliasname ?? name) : name,
          lineage,
        });
        continue;
      }
      const funcName = names(call.FuncCall.funcname);
      const name = funcName[funcName.length - 1] ?? '';
      firstName ??= name;
      const lineage = this.traceFuncCall(call.FuncCall, scope);
      if (definedNames.length > 0) {
        for (const defined of definedNames) columns.push({ name: defined, lineage });
        continue;
      }
      const shape = setReturningShape(name);
      if (shape === null || shape.kind === 'definition-list') {
        return refuse(`function ${quote(name)} in FROM returns a row type the tracer cannot see`);
      }
      if (shape.kind === 'columns') {
        for (const column of shape.names) columns.push({ name: column, lineage });
      } else if (shape.kind === 'per-argument' && (call.FuncCall.args ?? []).length > 1) {
        for (const arg of call.FuncCall.args ?? []) {
          columns.push({ name, lineage: transformedLineage([this.traceExpr(arg, scope)]) });
        }
      } else {
        // A function returning a base type names its column after the alias, if any.
        columns.push({
          name: single && alias !== undefined ? (alias.aliasname ?? name) : name,
          lineage,
        });
      }
    }
    if (rf.ordinality === true) columns.push({ name: 'ordinality', lineage: CONSTANT });
    const refname = alias?.aliasname ?? firstName ?? null;
    return {
      refname,
      relation: null,
      columns: renameColumns(columns, aliasNames(alias), `function ${quote(refname ?? '')}`),
      relVisible: refname !== null,
      colsVisible: true,
    };
  }

  private xmlTableItem(table: RangeTableFunc, scope: Scope): ScopeItem {
    const inputs = [table.docexpr, table.rowexpr, ...(table.namespaces ?? [])].map((node) =>
      this.traceExpr(node, scope),
    );
    const columns: NamedColumn[] = (table.columns ?? []).map((node) => {
      if (!('RangeTableFuncCol' in node)) return refuse('unexpected XMLTABLE column');
      const column = node.RangeTableFuncCol;
      const lineage =
        column.for_ordinality === true
          ? CONSTANT
          : transformedLineage([
              ...inputs,
              this.traceExpr(column.colexpr, scope),
              this.traceExpr(column.coldefexpr, scope),
            ]);
      return { name: column.colname ?? '', lineage };
    });
    const refname = table.alias?.aliasname ?? 'xmltable';
    return {
      refname,
      relation: null,
      columns: renameColumns(columns, aliasNames(table.alias), 'XMLTABLE'),
      relVisible: true,
      colsVisible: true,
    };
  }

  private addJoin(join: JoinExpr, scope: Scope): ScopeItem {
    if (join.larg === undefined || join.rarg === undefined) {
      return refuse('join without both sides');
    }
    const start = scope.items.length;
    const left = this.addFromItem(join.larg, scope);
    const middle = scope.items.length;
    const right = this.addFromItem(join.rarg, scope);
    const leftItems = scope.items.slice(start, middle);
    const rightItems = scope.items.slice(middle);
    const merged: NamedColumn[] = [];
    let columns: NamedColumn[];
    if (join.isNatural === true || join.usingClause !== undefined) {
      const rightNames = new Set(right.columns.map((column) => column.name));
      const using =
        join.isNatural === true
          ? [...new Set(left.columns.map((c) => c.name).filter((name) => rightNames.has(name)))]
          : names(join.usingClause);
      const usedLeft = new Set<NamedColumn>();
      const usedRight = new Set<NamedColumn>();
      for (const name of using) {
        if (merged.some((column) => column.name === name)) {
          refuse(`column ${quote(name)} appears more than once in USING clause`);
        }
        const l =
          columnOf(left, name, name) ??
          refuse(`column ${quote(name)} specified in USING clause does not exist in left table`);
        const r =
          columnOf(right, name, name) ??
          refuse(`column ${quote(name)} specified in USING clause does not exist in right table`);
        this.shape(l.lineage, 'join');
        this.shape(r.lineage, 'join');
        // buildMergedJoinVar: the left value, the right one for RIGHT JOIN, COALESCE for FULL.
        const lineage =
          join.jointype === 'JOIN_RIGHT'
            ? r.lineage
            : join.jointype === 'JOIN_FULL'
              ? transformedLineage([l.lineage, r.lineage])
              : l.lineage;
        merged.push({ name, lineage });
        usedLeft.add(l);
        usedRight.add(r);
      }
      columns = [
        ...merged,
        ...left.columns.filter((column) => !usedLeft.has(column)),
        ...right.columns.filter((column) => !usedRight.has(column)),
      ];
    } else {
      columns = [...left.columns, ...right.columns];
      if (join.quals !== undefined) {
        // ON sees only the two sides of this join (and outer query levels).
        this.shapeExpr(join.quals, childScope(scope.parent, [...leftItems, ...rightItems]), 'join');
      }
    }
    const alias = join.alias;
    const joinItem: ScopeItem = {
      refname: alias?.aliasname ?? null,
      relation: null,
      columns: renameColumns(columns, aliasNames(alias), 'join'),
      relVisible: alias !== undefined,
      colsVisible: true,
    };
    scope.items.splice(start);
    if (alias !== undefined) {
      // An aliased join hides the tables inside it completely.
      scope.items.push(joinItem);
    } else {
      // Inside an unaliased join the tables keep their names, but unqualified columns go through the join.
      for (const item of [...leftItems, ...rightItems]) item.colsVisible = false;
      scope.items.push(...leftItems, ...rightItems, joinItem);
    }
    if (join.join_using_alias !== undefined) {
      scope.items.push({
        refname: join.join_using_alias.aliasname ?? '',
        relation: null,
        columns: merged,
        relVisible: true,
        colsVisible: false,
      });
    }
    return joinItem;
  }

  // ---- select lists --------------------------------------------------------------------------

  private targetList(targets: readonly Node[] | undefined, scope: Scope): NamedColumn[] {
    const columns: NamedColumn[] = [];
    for (const node of targets ?? []) {
      if (!('ResTarget' in node)) return refuse(`unexpected select-list item ${tagOf(node)}`);
      const { val, name } = node.ResTarget;
      if (val !== undefined && 'ColumnRef' in val && isStar(val.ColumnRef.fields?.at(-1))) {
        columns.push(...this.expandStar(val.ColumnRef, scope));
        continue;
      }
      if (
        val !== undefined &&
        'A_Indirection' in val &&
        isStar(val.A_Indirection.indirection?.at(-1))
      ) {
        columns.push(...this.expandCompositeStar(val, scope));
        continue;
      }
      const lineage = this.traceExpr(val, scope);
      columns.push({ name: name ?? figureColname(val, (s) => this.subqueryNames.get(s)), lineage });
    }
    return columns;
  }

  /** `*` (this level's visible FROM items, left to right) or `rel.*`. */
  private expandStar(ref: ColumnRef, scope: Scope): readonly NamedColumn[] {
    const parts = names(ref.fields?.slice(0, -1));
    if (parts.length > 0) return resolveStarItem(scope, parts).columns;
    const visible = scope.items.filter((item) => item.colsVisible);
    if (visible.length === 0) return refuse('SELECT * with no tables specified');
    return visible.flatMap((item) => item.columns);
  }

  /** `(rel).*`: the columns of a whole-row reference; any other composite needs its type. */
  private expandCompositeStar(node: Node, scope: Scope): readonly NamedColumn[] {
    if ('A_Indirection' in node) {
      const { arg, indirection } = node.A_Indirection;
      if (arg !== undefined && 'ColumnRef' in arg && (indirection ?? []).length === 1) {
        const fields = arg.ColumnRef.fields ?? [];
        if (isStar(fields.at(-1))) return this.expandStar(arg.ColumnRef, scope);
        const resolved = resolveColumnRef(scope, names(fields));
        if (resolved.kind === 'row') return resolved.item.columns;
      }
    }
    return refuse(
      '(expression).* over a composite value needs its type, which the tracer cannot see',
    );
  }

  // ---- expressions ---------------------------------------------------------------------------

  private traceExpr(node: Node | undefined, scope: Scope): ColumnLineage {
    if (node === undefined || Object.keys(node).length === 0) return CONSTANT;
    return this.nested(1, () => this.traceExprNode(node, scope));
  }

  private traceExprNode(node: Node, scope: Scope): ColumnLineage {
    const tag = tagOf(node);
    if (CONSTANT_NODES.has(tag)) return CONSTANT;
    if ('ColumnRef' in node) return this.traceColumnRef(node.ColumnRef, scope);
    if ('TypeCast' in node) {
      const inner = this.traceExpr(node.TypeCast.arg, scope);
      return keepsValue(node.TypeCast.typeName) ? inner : transformedLineage([inner]);
    }
    if ('CollateClause' in node) return this.traceExpr(node.CollateClause.arg, scope);
    if ('NamedArgExpr' in node) return this.traceExpr(node.NamedArgExpr.arg, scope);
    if ('ResTarget' in node) return this.traceExpr(node.ResTarget.val, scope);
    if ('FuncCall' in node) return this.traceFuncCall(node.FuncCall, scope);
    if ('SubLink' in node) return this.traceSubLink(node.SubLink, scope);
    if ('A_Indirection' in node) return this.traceIndirection(node, scope);
    if ('GroupingFunc' in node) {
      // GROUPING() returns which grouping set a row belongs to, never a value.
      return aggregateSafeLineage(
        (node.GroupingFunc.args ?? []).map((arg) => this.traceExpr(arg, scope)),
      );
    }
    if ('JsonArrayQueryConstructor' in node) {
      const query = node.JsonArrayQueryConstructor.query;
      if (query === undefined) return CONSTANT;
      return transformedLineage(this.traceSubquery(query, scope).map((column) => column.lineage));
    }
    if (COMPUTED_NODES.has(tag)) {
      const children: Node[] = [];
      childNodes(Object.values(node)[0], children);
      return transformedLineage(children.map((child) => this.traceExpr(child, scope)));
    }
    return refuse(`expression ${tag} is not traced`);
  }

  private traceColumnRef(ref: ColumnRef, scope: Scope): ColumnLineage {
    const fields = ref.fields ?? [];
    if (isStar(fields.at(-1))) {
      // `rel.*` or `*` inside an expression: the whole row(s).
      const parts = names(fields.slice(0, -1));
      if (parts.length > 0) return rowLineage(resolveStarItem(scope, parts));
      return transformedLineage(
        scope.items.filter((item) => item.colsVisible).map((item) => rowLineage(item)),
      );
    }
    const resolved = resolveColumnRef(scope, names(fields));
    return resolved.kind === 'column' ? resolved.column.lineage : rowLineage(resolved.item);
  }

  /** Whether a ColumnRef names a whole row (`c`, `c.*`), whose nullness says nothing of values. */
  private isWholeRow(node: Node, scope: Scope): boolean {
    if (!('ColumnRef' in node)) return false;
    const fields = node.ColumnRef.fields ?? [];
    if (isStar(fields.at(-1))) return true;
    return resolveColumnRef(scope, names(fields)).kind === 'row';
  }

  private traceIndirection(node: Node, scope: Scope): ColumnLineage {
    if (!('A_Indirection' in node)) return CONSTANT;
    const { arg, indirection } = node.A_Indirection;
    const steps = indirection ?? [];
    const [first, ...rest] = steps;
    const restInputs = (list: readonly Node[]): ColumnLineage[] =>
      list.flatMap((step) =>
        'A_Indices' in step
          ? [this.traceExpr(step.A_Indices.lidx, scope), this.traceExpr(step.A_Indices.uidx, scope)]
          : [],
      );
    // `(c).email`: a field of a whole-row reference is that column itself.
    if (first !== undefined && 'String' in first && arg !== undefined && 'ColumnRef' in arg) {
      const fields = arg.ColumnRef.fields ?? [];
      const item = isStar(fields.at(-1))
        ? resolveStarItem(scope, names(fields.slice(0, -1)))
        : (() => {
            const resolved = resolveColumnRef(scope, names(fields));
            return resolved.kind === 'row' ? resolved.item : null;
          })();
      if (item !== null) {
        const field = first.String.sval ?? '';
        const column =
          columnOf(item, field, field) ??
          refuse(`column ${quote(field)} not found in ${quote(item.refname ?? 'row')}`);
        return rest.length === 0
          ? column.lineage
          : transformedLineage([column.lineage, ...restInputs(rest)]);
      }
    }
    return transformedLineage([this.traceExpr(arg, scope), ...restInputs(steps)]);
  }

  private traceFuncCall(call: FuncCall, scope: Scope): ColumnLineage {
    const parts = names(call.funcname);
    const name = parts[parts.length - 1] ?? '';
    const schema = parts.length > 1 ? (parts[parts.length - 2] ?? null) : null;
    const shown = quote(parts.join('.'));
    const kind = classifyFunction(schema, name, this.options.trustedFunctions);
    if (kind === 'dynamic-sql') refuse(`function ${shown} runs SQL text the tracer cannot see`);
    if (kind === 'side-channel') refuse(`function ${shown} moves values outside the result set`);
    if (kind === 'unknown') {
      refuse(
        `function ${shown} is not a built-in known to compute only from its arguments (it could read tables)`,
      );
    }
    if (call.over !== undefined) this.shapeWindow(call.over, scope);
    // FILTER picks the rows an aggregate sees, exactly as WHERE would.
    if (call.agg_filter !== undefined) this.shapeExpr(call.agg_filter, scope, 'where');
    const args = call.args ?? [];
    const inputs = args.map((arg) => this.traceExpr(arg, scope));
    for (const order of call.agg_order ?? []) {
      const key = 'SortBy' in order ? order.SortBy.node : order;
      // In WITHIN GROUP the ordered values are the aggregated ones (percentile_disc returns one).
      if (call.agg_within_group === true) inputs.push(this.traceExpr(key, scope));
      else this.shapeExpr(key, scope, 'order-by');
    }
    if (kind === 'count') {
      // count over a computed value counts a predicate's matches (count(CASE WHEN … THEN 1 END)).
      const plain = args.every(
        (arg, i) => inputs[i]?.derivation !== 'transformed' || this.isWholeRow(arg, scope),
      );
      return plain ? aggregateSafeLineage(inputs) : transformedLineage(inputs);
    }
    return transformedLineage(inputs);
  }

  private traceSubLink(link: SubLink, scope: Scope): ColumnLineage {
    if (link.subselect === undefined) return refuse('subquery without a query');
    const type = link.subLinkType ?? 'EXPR_SUBLINK';
    if (type === 'MULTIEXPR_SUBLINK' || type === 'CTE_SUBLINK') {
      return refuse(`${type} outside UPDATE SET is not traced`);
    }
    const columns = this.traceSubquery(link.subselect, scope);
    switch (type) {
      case 'EXISTS_SUBLINK':
        // Only whether a row exists; the subquery's own WHERE is already recorded as shaping.
        return CONSTANT;
      case 'EXPR_SUBLINK':
      case 'ARRAY_SUBLINK': {
        const [only] = columns;
        if (only === undefined || columns.length !== 1) {
          // `(a, b) = (SELECT x, y …)` compares rows; anywhere else the server rejects it.
          return transformedLineage(columns.map((column) => column.lineage));
        }
        if (type === 'ARRAY_SUBLINK') return transformedLineage([only.lineage]);
        this.subqueryNames.set(link, only.name);
        return only.lineage;
      }
      default:
        return transformedLineage([
          this.traceExpr(link.testexpr, scope),
          ...columns.map((column) => column.lineage),
        ]);
    }
  }

  private traceSubquery(node: Node, scope: Scope): NamedColumn[] {
    return this.traceQuery(node, scope);
  }

  private nested<T>(cost: number, body: () => T): T {
    if (this.nesting + cost > MAX_NESTING) return refuse('the statement nests too deeply');
    this.nesting += cost;
    try {
      return body();
    } finally {
      this.nesting -= cost;
    }
  }

  // ---- shaping -------------------------------------------------------------------------------

  private shape(lineage: ColumnLineage, clause: ShapingClause): void {
    for (const source of lineage.sources) {
      const key = `${clause}\u0000${sourceKey(source)}`;
      if (!this.shapingUses.has(key)) this.shapingUses.set(key, { source, clause });
    }
  }

  private shapeExpr(node: Node | undefined, scope: Scope, clause: ShapingClause): void {
    this.shape(this.traceExpr(node, scope), clause);
  }

  private shapeWindow(window: WindowDef, scope: Scope): void {
    for (const node of window.partitionClause ?? []) this.shapeExpr(node, scope, 'window');
    for (const node of window.orderClause ?? []) {
      this.shapeExpr('SortBy' in node ? node.SortBy.node : node, scope, 'window');
    }
    this.shapeExpr(window.startOffset, scope, 'window');
    this.shapeExpr(window.endOffset, scope, 'window');
  }

  private shapeDistinct(
    list: readonly Node[] | undefined,
    outputs: readonly NamedColumn[],
    scope: Scope,
  ): void {
    if (list === undefined) return;
    // Plain DISTINCT is a list holding one empty node; DISTINCT ON lists its expressions.
    if (list.every((node) => Object.keys(node).length === 0)) {
      for (const column of outputs) this.shape(column.lineage, 'distinct');
      return;
    }
    for (const node of list) this.shape(this.sortKey(node, outputs, scope, false), 'distinct');
  }

  /** ORDER BY and LIMIT/OFFSET. */
  private shapeResultClauses(
    stmt: SelectStmt,
    outputs: readonly NamedColumn[],
    scope: Scope,
  ): void {
    for (const node of stmt.sortClause ?? []) {
      const key = 'SortBy' in node ? node.SortBy.node : node;
      if (key !== undefined) this.shape(this.sortKey(key, outputs, scope, false), 'order-by');
    }
    this.shapeExpr(stmt.limitCount, scope, 'limit');
    this.shapeExpr(stmt.limitOffset, scope, 'limit');
  }

  private shapeGroupItem(node: Node, outputs: readonly NamedColumn[], scope: Scope): void {
    if ('GroupingSet' in node) {
      for (const item of node.GroupingSet.content ?? []) this.shapeGroupItem(item, outputs, scope);
      return;
    }
    if ('RowExpr' in node && node.RowExpr.row_format === 'COERCE_IMPLICIT_CAST') {
      // A parenthesised list inside GROUPING SETS: each element is its own grouping key.
      for (const item of node.RowExpr.args ?? []) this.shapeGroupItem(item, outputs, scope);
      return;
    }
    this.shape(this.sortKey(node, outputs, scope, true), 'group-by');
  }

  /**
   * What an ORDER BY / GROUP BY / DISTINCT ON key refers to (findTargetlistEntrySQL92): a
   * position, an output column name (in GROUP BY only when no input column has that name),
   * or else an expression over the input.
   */
  private sortKey(
    node: Node,
    outputs: readonly NamedColumn[],
    scope: Scope,
    groupBy: boolean,
  ): ColumnLineage {
    if ('A_Const' in node) {
      if (node.A_Const.ival === undefined) return CONSTANT;
      this.positional = true;
      const position = node.A_Const.ival.ival ?? 0;
      const column = outputs[position - 1];
      return column?.lineage ?? refuse(`position ${position} is not in select list`);
    }
    if ('ColumnRef' in node) {
      const fields = node.ColumnRef.fields ?? [];
      const [only] = fields;
      if (fields.length === 1 && only !== undefined && 'String' in only) {
        const name = only.String.sval ?? '';
        const inputWins = groupBy && findColumn(scope, name, true) !== null;
        const matches = inputWins ? [] : outputs.filter((column) => column.name === name);
        if (matches.length > 0) return eitherLineage(matches.map((column) => column.lineage));
      }
    }
    return this.traceExpr(node, scope);
  }

  // ---- data-modifying statements -------------------------------------------------------------

  /** INSERT/UPDATE/DELETE: records writes and shaping; returns the RETURNING columns, or null. */
  private traceDataModifying(node: Node, parent: Scope | null): NamedColumn[] | null {
    return this.nested(2, () => {
      if ('InsertStmt' in node) {
        const stmt = node.InsertStmt;
        return this.withOptionalCtes(stmt.withClause, parent, (scope) =>
          this.traceInsert(stmt, scope),
        );
      }
      if ('UpdateStmt' in node) {
        const stmt = node.UpdateStmt;
        return this.withOptionalCtes(stmt.withClause, parent, (scope) =>
          this.traceUpdate(stmt, scope),
        );
      }
      if ('DeleteStmt' in node) {
        const stmt = node.DeleteStmt;
        return this.withOptionalCtes(stmt.withClause, parent, (scope) =>
          this.traceDelete(stmt, scope),
        );
      }
      return refuse(`${tagOf(node)} is not traced`);
    });
  }

  private withOptionalCtes<T>(
    withClause: WithClause | undefined,
    parent: Scope | null,
    body: (scope: Scope | null) => T,
  ): T {
    return withClause === undefined ? body(parent) : this.withCtes(withClause, parent, body);
  }

  private targetOf(rv: RangeVar | undefined): {
    rel: CatalogRelation;
    item: ScopeItem;
    own: NamedColumn[];
  } {
    if (rv === undefined) return refuse('data-modifying statement without a target');
    const rel = this.resolveRelation(rv);
    const own = this.relationColumns(rel);
    const item: ScopeItem = {
      refname: rv.alias?.aliasname ?? rv.relname ?? '',
      relation: rv.alias === undefined ? { schema: rel.schema, name: rel.name } : null,
      columns: own,
      relVisible: true,
      colsVisible: true,
    };
    return { rel, item, own };
  }

  private traceInsert(stmt: InsertStmt, scope: Scope | null): NamedColumn[] | null {
    const { rel, item, own } = this.targetOf(stmt.relation);
    const byName = (name: string): NamedColumn =>
      own.find((column) => column.name === name) ??
      refuse(`column ${quote(name)} of relation ${whereIs(rel)} does not exist`);
    const targets = stmt.cols
      ? stmt.cols.map((node) => {
          if (!('ResTarget' in node)) return refuse('unexpected INSERT column');
          const indirect = (node.ResTarget.indirection ?? []).length > 0;
          return { column: byName(node.ResTarget.name ?? ''), indirect };
        })
      : own.map((column) => ({ column, indirect: false }));
    const values = new Map<string, ColumnLineage[]>();
    const assign = (name: string, lineage: ColumnLineage): void => {
      values.set(name, [...(values.get(name) ?? []), lineage]);
    };
    if (stmt.selectStmt !== undefined) {
      // The source query cannot see the target table.
      const rows = this.traceQuery(stmt.selectStmt, scope);
      if (rows.length > targets.length) refuse('INSERT has more expressions than target columns');
      rows.forEach((row, i) => {
        const target = targets[i];
        if (target === undefined) return;
        // Assigning into an element or field keeps the rest of the old value.
        const lineage = target.indirect
          ? transformedLineage([target.column.lineage, row.lineage])
          : row.lineage;
        assign(target.column.name, lineage);
      });
    }
    const newRow = (): NamedColumn[] =>
      own.map((column) => ({
        name: column.name,
        lineage: eitherLineage([column.lineage, ...(values.get(column.name) ?? [])]),
      }));
    const conflict = stmt.onConflictClause;
    if (conflict?.action === 'ONCONFLICT_UPDATE') {
      const excluded: ScopeItem = {
        refname: 'excluded',
        relation: null,
        columns: newRow(),
        relVisible: true,
        colsVisible: false,
      };
      const conflictScope = childScope(scope, [item, excluded]);
      this.assignments(conflict.targetList, byName, conflictScope, assign);
      this.shapeExpr(conflict.whereClause, conflictScope, 'where');
    }
    this.recordWrites(rel, values);
    if (stmt.returningClause === undefined) return null;
    return this.returning(
      stmt.returningClause,
      childScope(scope, [item]),
      item,
      own,
      newRow(),
      true,
    );
  }

  private traceUpdate(stmt: UpdateStmt, parent: Scope | null): NamedColumn[] | null {
    const { rel, item, own } = this.targetOf(stmt.relation);
    const byName = (name: string): NamedColumn =>
      own.find((column) => column.name === name) ??
      refuse(`column ${quote(name)} of relation ${whereIs(rel)} does not exist`);
    const scope = childScope(parent, [item]);
    for (const from of stmt.fromClause ?? []) this.addFromItem(from, scope);
    checkNameConflicts(scope.items);
    this.shapeExpr(stmt.whereClause, scope, 'where');
    const values = new Map<string, ColumnLineage[]>();
    this.assignments(stmt.targetList, byName, scope, (name, lineage) => {
      values.set(name, [...(values.get(name) ?? []), lineage]);
    });
    this.recordWrites(rel, values);
    if (stmt.returningClause === undefined) return null;
    const newRow = own.map((column) => ({
      name: column.name,
      lineage: eitherLineage([column.lineage, ...(values.get(column.name) ?? [])]),
    }));
    return this.returning(stmt.returningClause, scope, item, own, newRow, true);
  }

  private traceDelete(stmt: DeleteStmt, parent: Scope | null): NamedColumn[] | null {
    const { item, own } = this.targetOf(stmt.relation);
    const scope = childScope(parent, [item]);
    for (const from of stmt.usingClause ?? []) this.addFromItem(from, scope);
    checkNameConflicts(scope.items);
    this.shapeExpr(stmt.whereClause, scope, 'where');
    if (stmt.returningClause === undefined) return null;
    return this.returning(stmt.returningClause, scope, item, own, own, false);
  }

  /** SET lists: `col = expr`, `col[i] = expr`, `(a, b) = (SELECT …)`. */
  private assignments(
    targets: readonly Node[] | undefined,
    byName: (name: string) => NamedColumn,
    scope: Scope,
    assign: (name: string, lineage: ColumnLineage) => void,
  ): void {
    for (const node of targets ?? []) {
      if (!('ResTarget' in node)) return refuse('unexpected SET item');
      const { name, val, indirection } = node.ResTarget;
      const column = byName(name ?? '');
      let lineage =
        val !== undefined && 'MultiAssignRef' in val
          ? this.traceMultiAssign(val.MultiAssignRef, scope)
          : this.traceExpr(val, scope);
      if ((indirection ?? []).length > 0) {
        const indices = (indirection ?? []).flatMap((step) =>
          'A_Indices' in step
            ? [
                this.traceExpr(step.A_Indices.lidx, scope),
                this.traceExpr(step.A_Indices.uidx, scope),
              ]
            : [],
        );
        lineage = transformedLineage([column.lineage, lineage, ...indices]);
      }
      assign(column.name, lineage);
    }
  }

  private traceMultiAssign(ref: MultiAssignRef, scope: Scope): ColumnLineage {
    const { source, colno } = ref;
    const index = (colno ?? 1) - 1;
    if (source !== undefined && 'SubLink' in source && source.SubLink.subselect !== undefined) {
      const columns = this.traceSubquery(source.SubLink.subselect, scope);
      return columns[index]?.lineage ?? refuse('too few columns in multiple-column assignment');
    }
    if (source !== undefined && 'RowExpr' in source) {
      const arg = source.RowExpr.args?.[index];
      return arg === undefined
        ? refuse('too few values in multiple-column assignment')
        : this.traceExpr(arg, scope);
    }
    return transformedLineage([this.traceExpr(source, scope)]);
  }

  private recordWrites(
    rel: CatalogRelation,
    values: ReadonlyMap<string, readonly ColumnLineage[]>,
  ): void {
    for (const [column, lineages] of values) {
      this.recordWrite({ schema: rel.schema, table: rel.name, column }, eitherLineage(lineages));
    }
  }

  private recordWrite(target: WrittenColumn['target'], lineage: ColumnLineage): void {
    // Constants written carry nothing out of a masked column.
    if (lineage.sources.length === 0) return;
    const key = `${target.schema ?? ''}\u0000${target.table}\u0000${target.column}`;
    const previous = this.written.get(key);
    this.written.set(key, {
      target,
      lineage: previous === undefined ? lineage : eitherLineage([previous.lineage, lineage]),
    });
  }

  /** SELECT INTO and CREATE TABLE AS fill a new table with the query's columns. */
  private writeNewTable(into: IntoClause, columns: readonly NamedColumn[]): void {
    const aliases = names(into.colNames);
    const schema = into.rel?.schemaname ?? null;
    const table = into.rel?.relname ?? '';
    columns.forEach((column, i) => {
      this.recordWrite({ schema, table, column: aliases[i] ?? column.name }, column.lineage);
    });
  }

  /**
   * RETURNING sees the target (the new row for INSERT/UPDATE, the old one for DELETE), the
   * FROM/USING items, and `old`/`new` (or the names given in `RETURNING WITH (…)`).
   */
  private returning(
    clause: ReturningClause,
    scope: Scope,
    target: ScopeItem,
    oldRow: readonly NamedColumn[],
    newRow: readonly NamedColumn[],
    defaultIsNew: boolean,
  ): NamedColumn[] {
    const current: ScopeItem = { ...target, columns: defaultIsNew ? newRow : oldRow };
    const items = scope.items.map((item) => (item === target ? current : item));
    let oldName = 'old';
    let newName = 'new';
    for (const option of clause.options ?? []) {
      if (!('ReturningOption' in option)) continue;
      const { option: kind, value } = option.ReturningOption;
      if (kind === 'RETURNING_OPTION_OLD') oldName = value ?? oldName;
      else newName = value ?? newName;
    }
    for (const [refname, columns] of [
      [oldName, oldRow],
      [newName, newRow],
    ] as const) {
      if (items.some((item) => item.relVisible && item.refname === refname)) continue;
      items.push({ refname, relation: null, columns, relVisible: true, colsVisible: false });
    }
    return this.targetList(clause.exprs, childScope(scope.parent, items));
  }

  // ---- COPY ----------------------------------------------------------------------------------

  private traceCopy(stmt: CopyStmt): NamedColumn[] {
    if (stmt.is_from !== true && stmt.filename === undefined && stmt.is_program !== true) {
      this.copyOut = copyOutOptions(stmt);
    }
    if (stmt.query !== undefined) return this.traceQuery(stmt.query, null);
    // COPY FROM brings data in from the client; nothing of the database flows out.
    if (stmt.is_from === true || stmt.relation === undefined) return [];
    const rel = this.resolveRelation(stmt.relation);
    const columns = this.relationColumns(rel);
    if (stmt.attlist === undefined) return columns;
    return names(stmt.attlist).map(
      (name) =>
        columns.find((column) => column.name === name) ??
        refuse(`column ${quote(name)} of relation ${whereIs(rel)} does not exist`),
    );
  }
}

/** The options of `COPY … TO STDOUT` that decide how its rows are written. */
function copyOutOptions(stmt: CopyStmt): CopyOutOptions {
  let format: CopyOutOptions['format'] = 'text';
  let header = false;
  const text: { delimiter?: string; null?: string; quote?: string; escape?: string } = {};
  for (const option of stmt.options ?? []) {
    if (!('DefElem' in option)) continue;
    const { defname, arg } = option.DefElem;
    const value =
      arg === undefined
        ? undefined
        : 'String' in arg
          ? (arg.String.sval ?? '')
          : 'Boolean' in arg
            ? String(arg.Boolean.boolval === true)
            : 'Integer' in arg
              ? String(arg.Integer.ival ?? 0)
              : undefined;
    switch (defname) {
      case 'format':
        if (value === 'csv' || value === 'binary' || value === 'text') format = value;
        break;
      case 'header':
        header = value === undefined || !['false', 'off', '0', 'no'].includes(value);
        break;
      case 'delimiter':
      case 'null':
      case 'quote':
      case 'escape':
        if (value !== undefined) text[defname] = value;
        break;
      default:
    }
  }
  return { format, header, ...text };
}
