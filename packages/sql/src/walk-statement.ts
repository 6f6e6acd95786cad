import { functionTraits } from './function-traits.js';
import type { StatementFlag, StatementKind, TableRef } from './statement-analysis.js';

/** What one parsed statement does, as {@link walkStatement} found it. */
export interface StatementFindings {
  readonly kind: Exclude<StatementKind, 'multi'>;
  /** Keyed by {@link tableKey}, in the order first met. */
  readonly tablesRead: Map<string, TableRef>;
  readonly tablesWritten: Map<string, TableRef>;
  readonly functions: Set<string>;
  readonly flags: Set<StatementFlag>;
  readonly readOnly: boolean;
}

/** The deduplication key of a table: the schema (or nothing) and the name, NUL-separated. */
export function tableKey(table: TableRef): string {
  return table.schema === null ? `\0${table.name}` : `${table.schema}\0${table.name}`;
}

/**
 * Analyzes one statement of libpg-query's JSON parse tree (a `stmts[i].stmt` value, such as
 * `{ SelectStmt: {…} }`): its kind, the tables it reads and writes, the functions it calls, its
 * flags and whether it is provably read-only.
 *
 * The walk is generic (every object and array is visited, so node types this code does not know
 * are still searched for tables and calls) with targeted rules for the nodes that matter. It
 * uses an explicit stack, never recursion, so a deep tree cannot overflow the JavaScript stack.
 */
export function walkStatement(stmt: unknown): StatementFindings {
  const [type, node] = unwrap(stmt);
  const kind = statementKind(type, node);
  const walker = new Walker();
  let readOnly = readOnlyCapable(type, kind, node);
  const query = node.query;
  if (type === 'ExplainStmt') {
    const inner = walkStatement(query);
    if (explainExecutes(node)) {
      walker.absorb(inner);
      readOnly &&= inner.readOnly;
    } else {
      // Planned, not run: what it names is only read, and nothing it would do happens.
      for (const t of inner.tablesRead.values()) walker.addTable(walker.read, t);
      for (const t of inner.tablesWritten.values()) walker.addTable(walker.read, t);
      for (const f of inner.functions) walker.functions.add(f);
    }
  } else if ((type === 'PrepareStmt' || type === 'DeclareCursorStmt') && query !== undefined) {
    const inner = walkStatement(query);
    walker.absorb(inner);
    readOnly &&= inner.readOnly;
    walker.walk(node, type, ['query']);
  } else {
    walker.walk(node, type, []);
  }
  if (kind === 'create' || kind === 'alter' || kind === 'drop' || kind === 'truncate') {
    walker.flags.add('ddl');
  }
  if (kind === 'drop') walker.flags.add('drop');
  return {
    kind,
    tablesRead: walker.read,
    tablesWritten: walker.written,
    functions: walker.functions,
    flags: walker.flags,
    readOnly: readOnly && !walker.changesState,
  };
}

type JsonObject = Record<string, unknown>;

/** Names of the CTEs in scope, innermost first. */
interface Scope {
  readonly name: string;
  readonly parent: Scope | null;
}

interface Task {
  readonly value: unknown;
  /** The node type when the parent field implies it (bare, unwrapped structs); else null. */
  readonly type: string | null;
  readonly scope: Scope | null;
  /** True when a RangeVar reached through arrays and wrappers is a write target. */
  readonly target: boolean;
}

class Walker {
  readonly read = new Map<string, TableRef>();
  readonly written = new Map<string, TableRef>();
  readonly functions = new Set<string>();
  readonly flags = new Set<StatementFlag>();
  changesState = false;
  private readonly tasks: Task[] = [];

  /** Walks `node` of `type`, leaving out the fields in `skip`. */
  walk(node: JsonObject, type: string, skip: readonly string[]): void {
    this.visitNode(type, node, null, skip);
    for (let task = this.tasks.pop(); task !== undefined; task = this.tasks.pop()) {
      this.visit(task);
    }
  }

  /** Takes over everything an inner statement found. */
  absorb(inner: StatementFindings): void {
    for (const t of inner.tablesRead.values()) this.addTable(this.read, t);
    for (const t of inner.tablesWritten.values()) this.addTable(this.written, t);
    for (const f of inner.functions) this.functions.add(f);
    for (const f of inner.flags) this.flags.add(f);
  }

  addTable(into: Map<string, TableRef>, table: TableRef): void {
    const key = tableKey(table);
    if (!into.has(key)) into.set(key, Object.freeze({ schema: table.schema, name: table.name }));
  }

  private visit(task: Task): void {
    const { value, scope, target } = task;
    if (Array.isArray(value)) {
      for (let i = value.length - 1; i >= 0; i--) {
        this.tasks.push({ value: value[i], type: null, scope, target });
      }
      return;
    }
    if (!isObject(value)) return;
    const wrapped = wrapperType(value);
    if (wrapped !== null) {
      // A `{ Type: {...} }` wrapper: the role passes through to the node inside.
      this.tasks.push({ value: value[wrapped], type: wrapped, scope, target });
      return;
    }
    // A bare struct: typed by its field (FIELD_TYPES), or a RangeVar by its shape.
    const type = typeof value.relname === 'string' ? 'RangeVar' : task.type;
    if (type === 'RangeVar') {
      this.rangeVar(value, scope, target);
      return;
    }
    if (type === null) {
      this.pushChildren(value, scope, NO_FIELDS, NO_FIELDS);
      return;
    }
    this.visitNode(type, value, scope, NO_FIELDS);
  }

  /** The rules for one typed node, then its children. */
  private visitNode(type: string, node: JsonObject, scope: Scope | null, skip: readonly string[]) {
    let targets: readonly string[] = NO_FIELDS;
    switch (type) {
      case 'A_Const':
      case 'ColumnRef':
      case 'ParamRef':
      case 'TypeName':
      case 'String':
      case 'Integer':
      case 'Float':
      case 'Boolean':
      case 'BitString':
        return; // leaves: nothing below them names a table or calls a function
      case 'RangeVar':
        this.rangeVar(node, scope, false);
        return;
      case 'FuncCall':
        this.funcCall(node);
        break;
      case 'SelectStmt':
        if (isObject(node.intoClause)) {
          this.flags.add('select-into');
          this.flags.add('writes');
          this.changesState = true;
        }
        if (Array.isArray(node.lockingClause) && node.lockingClause.length > 0) {
          this.flags.add('locking-read');
        }
        break;
      case 'IntoClause':
        targets = ['rel'];
        break;
      case 'InsertStmt':
      case 'MergeStmt':
        this.dataChange();
        targets = ['relation'];
        break;
      case 'UpdateStmt':
        this.dataChange();
        if (node.whereClause === undefined) this.flags.add('update-without-where');
        targets = ['relation'];
        break;
      case 'DeleteStmt':
        this.dataChange();
        if (node.whereClause === undefined) this.flags.add('delete-without-where');
        targets = ['relation'];
        break;
      case 'CommonTableExpr': {
        const inner = isObject(node.ctequery) ? wrapperType(node.ctequery) : null;
        if (inner !== null && DATA_CHANGES.has(inner)) this.flags.add('data-modifying-cte');
        break;
      }
      case 'CopyStmt':
        if (node.is_from === true) {
          this.dataChange();
          targets = ['relation'];
        }
        if (node.is_program === true) {
          this.flags.add('copy-program');
          this.changesState = true; // it runs a program on the server
        } else if (typeof node.filename === 'string') {
          this.flags.add('copy-server-file');
          this.changesState = true; // COPY TO writes the file; COPY FROM writes the table
        }
        break;
      case 'CreateTableAsStmt':
        if (!(isObject(node.into) && node.into.skipData === true)) this.flags.add('writes');
        this.changesState = true;
        break;
      case 'RefreshMatViewStmt':
        if (node.skipData !== true) this.flags.add('writes');
        this.changesState = true;
        targets = ['relation'];
        break;
      case 'TruncateStmt':
        this.flags.add('truncate');
        this.dataChange();
        targets = ['relations'];
        break;
      case 'CreateStmt':
      case 'IndexStmt':
      case 'CreateTrigStmt':
      case 'RuleStmt':
      case 'AlterTableStmt':
      case 'RenameStmt':
      case 'AlterObjectSchemaStmt':
      case 'AlterOwnerStmt':
      case 'ClusterStmt':
      case 'ReindexStmt':
      case 'VacuumRelation':
        this.changesState = true;
        targets = ['relation'];
        break;
      case 'ViewStmt':
        this.changesState = true;
        targets = ['view'];
        break;
      case 'CreateSeqStmt':
      case 'AlterSeqStmt':
        this.changesState = true;
        targets = ['sequence'];
        break;
      case 'CreatePolicyStmt':
      case 'AlterPolicyStmt':
        this.changesState = true;
        targets = ['table'];
        break;
      case 'GrantStmt':
        this.changesState = true;
        if (node.targtype === 'ACL_TARGET_OBJECT' && RELATION_OBJECTS.has(str(node.objtype))) {
          targets = ['objects'];
        }
        break;
      case 'DropStmt':
        this.flags.add('drop');
        this.changesState = true;
        if (RELATION_OBJECTS.has(str(node.removeType)) && Array.isArray(node.objects)) {
          for (const object of node.objects) this.namedTable(object, false);
        }
        return; // the objects are names, not expressions
      case 'CommentStmt':
      case 'SecLabelStmt':
        this.changesState = true;
        if (RELATION_OBJECTS.has(str(node.objtype))) this.namedTable(node.object, false);
        else if (node.objtype === 'OBJECT_COLUMN') this.namedTable(node.object, true);
        break;
      case 'VariableSetStmt':
        this.setting(str(node.name), node.kind === 'VAR_SET_VALUE' ? node.args : undefined);
        break;
      case 'DiscardStmt':
        // DISCARD ALL runs SET SESSION AUTHORIZATION DEFAULT, which also resets the role.
        if (node.target === 'DISCARD_ALL') {
          this.flags.add('set-role');
          this.flags.add('set-session-authorization');
        }
        if (node.target !== 'DISCARD_PLANS' && node.target !== 'DISCARD_SEQUENCES') {
          this.changesState = true;
        }
        break;
      case 'LoadStmt':
        this.flags.add('server-file-access'); // loads a shared library from the server's disk
        this.changesState = true;
        break;
      case 'DoStmt':
      case 'CallStmt':
      case 'ExecuteStmt':
      case 'NotifyStmt':
        this.changesState = true; // opaque, or a signal to other sessions
        break;
    }
    this.pushChildren(node, scope, targets, skip);
  }

  /** Pushes every field of `node`, in order, with the CTE scope its WITH clause makes. */
  private pushChildren(
    node: JsonObject,
    scope: Scope | null,
    targets: readonly string[],
    skip: readonly string[],
  ): void {
    const keys = Object.keys(node);
    const withClause = node.withClause;
    const ctes = isObject(withClause) && Array.isArray(withClause.ctes) ? withClause.ctes : [];
    const recursive = isObject(withClause) && withClause.recursive === true;
    // Each CTE sees the ones before it (all of them when RECURSIVE); the body sees all.
    const cteScopes: (Scope | null)[] = [];
    let inner = scope;
    for (const cte of ctes) {
      cteScopes.push(inner);
      const name =
        isObject(cte) && isObject(cte.CommonTableExpr) ? cte.CommonTableExpr.ctename : '';
      if (typeof name === 'string' && name !== '') inner = { name, parent: inner };
    }
    for (let i = keys.length - 1; i >= 0; i--) {
      const key = keys[i]!;
      if (key === 'withClause' || skip.includes(key)) continue;
      const value = node[key];
      if (value === null || typeof value !== 'object') continue;
      this.tasks.push({
        value,
        type: FIELD_TYPES.get(key) ?? null,
        scope: inner,
        target: targets.includes(key),
      });
    }
    // Pushed last, so walked first: tables come out in the order the text names them.
    for (let i = ctes.length - 1; i >= 0; i--) {
      this.tasks.push({
        value: ctes[i],
        type: null,
        scope: recursive ? inner : (cteScopes[i] ?? null),
        target: false,
      });
    }
  }

  private rangeVar(node: JsonObject, scope: Scope | null, target: boolean): void {
    const name = node.relname;
    if (typeof name !== 'string') return;
    const schema = typeof node.schemaname === 'string' ? node.schemaname : null;
    if (target) {
      this.addTable(this.written, { schema, name });
      return;
    }
    // An unqualified name that matches a CTE in scope is that CTE, not a table.
    if (schema === null && node.catalogname === undefined && inScope(scope, name)) return;
    this.addTable(this.read, { schema, name });
  }

  /** A table named by a list of String nodes (`DROP TABLE s.t`, `COMMENT ON COLUMN t.c`). */
  private namedTable(object: unknown, dropLast: boolean): void {
    const items = isObject(object) && isObject(object.List) ? object.List.items : undefined;
    if (!Array.isArray(items)) return;
    const parts = items.map((item) =>
      isObject(item) && isObject(item.String) ? str(item.String.sval) : '',
    );
    if (dropLast) parts.pop();
    const name = parts.pop();
    if (name === undefined || name === '') return;
    const schema = parts.pop();
    this.addTable(this.written, { schema: schema === undefined ? null : schema, name });
  }

  private funcCall(node: JsonObject): void {
    const parts = Array.isArray(node.funcname)
      ? node.funcname.map((part) =>
          isObject(part) && isObject(part.String) ? str(part.String.sval) : '',
        )
      : [];
    // SQL-syntax forms (EXTRACT(… FROM …), TRIM(…), x AT TIME ZONE y) name pg_catalog
    // functions the text never spelled out.
    if (node.funcformat === 'COERCE_SQL_SYNTAX' && parts[0] === 'pg_catalog') parts.shift();
    const bare = parts[parts.length - 1];
    if (bare === undefined || bare === '') return;
    this.functions.add(parts.join('.'));
    const traits = functionTraits(bare);
    if (traits !== undefined) {
      for (const flag of traits.flags) this.flags.add(flag);
      if (traits.changesState) this.changesState = true;
    }
    if (bare.toLowerCase() === 'set_config') {
      const args = Array.isArray(node.args) ? node.args : [];
      const name = constantText(args[0]);
      if (name === undefined) {
        // A computed setting name could be any of them.
        this.flags.add('set-role');
        this.flags.add('set-session-authorization');
        this.flags.add('unsafe-lexer-setting');
        this.changesState = true;
      } else {
        this.setting(name, args.slice(1, 2));
      }
    }
  }

  /** A SET, RESET or set_config() of `name`; `args` holds the value when one was given. */
  private setting(rawName: string, args: unknown): void {
    const name = rawName.toLowerCase();
    if (name === 'role') {
      this.flags.add('set-role');
      this.changesState = true;
    } else if (name === 'session_authorization') {
      this.flags.add('set-session-authorization');
      this.changesState = true;
    } else if (name === 'standard_conforming_strings' || name === 'client_encoding') {
      const value = Array.isArray(args) && args.length === 1 ? constantText(args[0]) : undefined;
      const safe = name === 'client_encoding' ? isUtf8Name(value) : isOnValue(value);
      if (!safe) {
        this.flags.add('unsafe-lexer-setting');
        this.changesState = true;
      }
    }
  }

  private dataChange(): void {
    this.flags.add('writes');
    this.changesState = true;
  }
}

/** The kind of a top-level statement node. */
function statementKind(type: string, node: JsonObject): Exclude<StatementKind, 'multi'> {
  const known = KINDS.get(type);
  if (known !== undefined) return known;
  switch (type) {
    case 'CopyStmt':
      return node.is_from === true ? 'copy-from' : 'copy-to';
    case 'GrantStmt':
    case 'GrantRoleStmt':
      return node.is_grant === true ? 'grant' : 'revoke';
  }
  if (type.startsWith('Create')) return 'create';
  if (type.startsWith('Alter')) return 'alter';
  if (type.startsWith('Drop')) return 'drop';
  return 'other';
}

const KINDS = new Map<string, Exclude<StatementKind, 'multi'>>([
  ['SelectStmt', 'select'],
  ['InsertStmt', 'insert'],
  ['UpdateStmt', 'update'],
  ['DeleteStmt', 'delete'],
  ['MergeStmt', 'merge'],
  ['IndexStmt', 'create'],
  ['ViewStmt', 'create'],
  ['RuleStmt', 'create'],
  ['DefineStmt', 'create'],
  ['CompositeTypeStmt', 'create'],
  ['ImportForeignSchemaStmt', 'create'],
  ['RenameStmt', 'alter'],
  ['ReassignOwnedStmt', 'alter'],
  ['TruncateStmt', 'truncate'],
  ['TransactionStmt', 'transaction'],
  ['VariableSetStmt', 'set'],
  ['ConstraintsSetStmt', 'set'],
  ['VariableShowStmt', 'show'],
  ['CallStmt', 'call'],
  ['DoStmt', 'do'],
  ['ExplainStmt', 'explain'],
  ['PrepareStmt', 'prepare'],
  ['ExecuteStmt', 'execute'],
  ['DeallocateStmt', 'deallocate'],
  ['ListenStmt', 'listen'],
  ['UnlistenStmt', 'listen'],
  ['NotifyStmt', 'notify'],
  ['LockStmt', 'lock'],
  ['VacuumStmt', 'vacuum'],
  ['CommentStmt', 'comment'],
]);

/** Whether a statement of this kind can be read-only at all, before looking inside it. */
function readOnlyCapable(type: string, kind: StatementKind, node: JsonObject): boolean {
  switch (kind) {
    case 'select':
    case 'show':
    case 'transaction':
    case 'set':
    case 'explain':
    case 'prepare':
    case 'deallocate':
    case 'listen':
    case 'copy-to':
      return true;
    case 'lock':
      // PostgreSQL allows up to ROW EXCLUSIVE in a read-only transaction; stronger modes
      // block other sessions' writes.
      return typeof node.mode === 'number' && node.mode <= ROW_EXCLUSIVE;
    case 'other':
      return READ_ONLY_OTHERS.has(type);
    default:
      return false;
  }
}

const ROW_EXCLUSIVE = 3;
const READ_ONLY_OTHERS = new Set([
  'DeclareCursorStmt',
  'FetchStmt',
  'ClosePortalStmt',
  'DiscardStmt',
]);

/** True unless EXPLAIN's options turn ANALYZE on explicitly off: the statement then runs. */
function explainExecutes(node: JsonObject): boolean {
  if (!Array.isArray(node.options)) return false;
  let analyze = false;
  for (const option of node.options) {
    const def = isObject(option) && isObject(option.DefElem) ? option.DefElem : undefined;
    if (def === undefined || def.defname !== 'analyze') continue;
    analyze = !isFalseOption(def.arg);
  }
  return analyze;
}

/** PostgreSQL's defGetBoolean: false for false/off/no/0 and their accepted prefixes. */
function isFalseOption(arg: unknown): boolean {
  if (!isObject(arg)) return false; // a bare `ANALYZE` means true
  if (isObject(arg.Integer)) return arg.Integer.ival === undefined || arg.Integer.ival === 0;
  if (isObject(arg.Boolean)) return arg.Boolean.boolval !== true;
  if (isObject(arg.String)) {
    const value = str(arg.String.sval).toLowerCase();
    return FALSE_WORDS.has(value);
  }
  return false; // anything else: assume it runs
}

const FALSE_WORDS = new Set(['f', 'fa', 'fal', 'fals', 'false', 'n', 'no', 'of', 'off', '0']);

function isOnValue(value: string | undefined): boolean {
  if (value === undefined) return false;
  const v = value.toLowerCase();
  return v === 'on' || v === 'true' || v === 'yes' || v === '1' || v === 't' || v === 'y';
}

function isUtf8Name(value: string | undefined): boolean {
  if (value === undefined) return false;
  const v = value.toLowerCase().replace(/[^a-z0-9]/g, '');
  return v === 'utf8' || v === 'unicode';
}

/** The text of a string, identifier-like or numeric constant node; undefined otherwise. */
function constantText(node: unknown): string | undefined {
  if (!isObject(node)) return undefined;
  const c = isObject(node.A_Const) ? node.A_Const : undefined;
  if (c === undefined) return undefined;
  if (isObject(c.sval)) return str(c.sval.sval);
  if (isObject(c.ival)) return String(typeof c.ival.ival === 'number' ? c.ival.ival : 0);
  if (isObject(c.boolval)) return c.boolval.boolval === true ? 'true' : 'false';
  return undefined;
}

function inScope(scope: Scope | null, name: string): boolean {
  for (let s = scope; s !== null; s = s.parent) if (s.name === name) return true;
  return false;
}

/** `[type, node]` of a top-level `{ Type: {...} }` statement wrapper. */
function unwrap(stmt: unknown): [string, JsonObject] {
  if (isObject(stmt)) {
    const type = wrapperType(stmt);
    if (type !== null) return [type, stmt[type] as JsonObject];
  }
  return ['Unknown', {}];
}

/** The node type when `value` is a `{ Type: {...} }` wrapper, else null. */
function wrapperType(value: JsonObject): string | null {
  let found: string | null = null;
  for (const key in value) {
    if (found !== null) return null; // more than one field: a bare struct
    found = key;
  }
  if (found === null) return null;
  const first = found.charCodeAt(0);
  return first >= 0x41 && first <= 0x5a && isObject(value[found]) ? found : null;
}

function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function str(value: unknown): string {
  return typeof value === 'string' ? value : '';
}

const NO_FIELDS: readonly string[] = [];

/** Statement nodes that change table data. */
const DATA_CHANGES = new Set(['InsertStmt', 'UpdateStmt', 'DeleteStmt', 'MergeStmt']);

/** Object types that name a relation: their names are tables for guardrails. */
const RELATION_OBJECTS = new Set([
  'OBJECT_TABLE',
  'OBJECT_VIEW',
  'OBJECT_MATVIEW',
  'OBJECT_INDEX',
  'OBJECT_SEQUENCE',
  'OBJECT_FOREIGN_TABLE',
]);

/** Types of the bare (unwrapped) structs that the walker has rules for, by field name. */
const FIELD_TYPES = new Map([
  ['larg', 'SelectStmt'],
  ['rarg', 'SelectStmt'],
  ['intoClause', 'IntoClause'],
  ['into', 'IntoClause'],
  ['funccall', 'FuncCall'],
  ['base', 'CreateStmt'],
  // ALTER ROLE/DATABASE … SET and ALTER SYSTEM SET: a default role or lexer setting for later
  // sessions is flagged like one for this session.
  ['setstmt', 'VariableSetStmt'],
]);
