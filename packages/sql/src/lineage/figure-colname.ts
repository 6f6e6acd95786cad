import type { Node, SubLink } from 'libpg-query';

/** 2: a real name (column, function); 1: a fallback (type name, `case`); 0: nothing. */
type Strength = 0 | 1 | 2;
type Figured = readonly [name: string | undefined, strength: Strength];

const NOTHING: Figured = [undefined, 0];

const SQL_VALUE_FUNCTION_NAMES: Readonly<Record<string, string>> = {
  SVFOP_CURRENT_DATE: 'current_date',
  SVFOP_CURRENT_TIME: 'current_time',
  SVFOP_CURRENT_TIME_N: 'current_time',
  SVFOP_CURRENT_TIMESTAMP: 'current_timestamp',
  SVFOP_CURRENT_TIMESTAMP_N: 'current_timestamp',
  SVFOP_LOCALTIME: 'localtime',
  SVFOP_LOCALTIME_N: 'localtime',
  SVFOP_LOCALTIMESTAMP: 'localtimestamp',
  SVFOP_LOCALTIMESTAMP_N: 'localtimestamp',
  SVFOP_CURRENT_ROLE: 'current_role',
  SVFOP_CURRENT_USER: 'current_user',
  SVFOP_USER: 'user',
  SVFOP_SESSION_USER: 'session_user',
  SVFOP_CURRENT_CATALOG: 'current_catalog',
  SVFOP_CURRENT_SCHEMA: 'current_schema',
};

const XML_EXPR_NAMES: Readonly<Record<string, string>> = {
  IS_XMLCONCAT: 'xmlconcat',
  IS_XMLELEMENT: 'xmlelement',
  IS_XMLFOREST: 'xmlforest',
  IS_XMLPARSE: 'xmlparse',
  IS_XMLPI: 'xmlpi',
  IS_XMLROOT: 'xmlroot',
  IS_XMLSERIALIZE: 'xmlserialize',
};

const JSON_FUNC_NAMES: Readonly<Record<string, string>> = {
  JSON_EXISTS_OP: 'json_exists',
  JSON_QUERY_OP: 'json_query',
  JSON_VALUE_OP: 'json_value',
  JSON_TABLE_OP: 'json_table',
};

function lastString(nodes: readonly Node[] | undefined): string | undefined {
  let found: string | undefined;
  for (const node of nodes ?? []) if ('String' in node) found = node.String.sval ?? '';
  return found;
}

function figure(
  node: Node | undefined,
  subqueryName: (sublink: SubLink) => string | undefined,
): Figured {
  if (node === undefined) return NOTHING;
  if ('ColumnRef' in node) {
    const name = lastString(node.ColumnRef.fields);
    return name === undefined ? NOTHING : [name, 2];
  }
  if ('A_Indirection' in node) {
    const name = lastString(node.A_Indirection.indirection);
    return name === undefined ? figure(node.A_Indirection.arg, subqueryName) : [name, 2];
  }
  if ('FuncCall' in node) return [lastString(node.FuncCall.funcname), 2];
  if ('A_Expr' in node) return node.A_Expr.kind === 'AEXPR_NULLIF' ? ['nullif', 2] : NOTHING;
  if ('TypeCast' in node) {
    const inner = figure(node.TypeCast.arg, subqueryName);
    if (inner[1] > 1) return inner;
    const type = lastString(node.TypeCast.typeName?.names);
    return type === undefined ? inner : [type, 1];
  }
  if ('CollateClause' in node) return figure(node.CollateClause.arg, subqueryName);
  if ('GroupingFunc' in node) return ['grouping', 2];
  if ('SubLink' in node) {
    switch (node.SubLink.subLinkType) {
      case 'EXISTS_SUBLINK':
        return ['exists', 2];
      case 'ARRAY_SUBLINK':
        return ['array', 2];
      case 'EXPR_SUBLINK': {
        const name = subqueryName(node.SubLink);
        return name === undefined ? NOTHING : [name, 2];
      }
      default:
        return NOTHING;
    }
  }
  if ('CaseExpr' in node) {
    const inner = figure(node.CaseExpr.defresult, subqueryName);
    return inner[1] > 1 ? inner : ['case', 1];
  }
  if ('A_ArrayExpr' in node) return ['array', 2];
  if ('RowExpr' in node) return ['row', 2];
  if ('CoalesceExpr' in node) return ['coalesce', 2];
  if ('MinMaxExpr' in node) return [node.MinMaxExpr.op === 'IS_LEAST' ? 'least' : 'greatest', 2];
  if ('SQLValueFunction' in node) {
    const name = SQL_VALUE_FUNCTION_NAMES[node.SQLValueFunction.op ?? ''];
    return name === undefined ? NOTHING : [name, 2];
  }
  if ('XmlExpr' in node) {
    const name = XML_EXPR_NAMES[node.XmlExpr.op ?? ''];
    return name === undefined ? NOTHING : [name, 2];
  }
  if ('XmlSerialize' in node) return ['xmlserialize', 2];
  if ('JsonObjectConstructor' in node) return ['json_object', 2];
  if ('JsonArrayConstructor' in node || 'JsonArrayQueryConstructor' in node) {
    return ['json_array', 2];
  }
  if ('JsonObjectAgg' in node) return ['json_objectagg', 2];
  if ('JsonArrayAgg' in node) return ['json_arrayagg', 2];
  if ('JsonParseExpr' in node) return ['json', 2];
  if ('JsonScalarExpr' in node) return ['json_scalar', 2];
  if ('JsonSerializeExpr' in node) return ['json_serialize', 2];
  if ('JsonFuncExpr' in node) {
    const name = JSON_FUNC_NAMES[node.JsonFuncExpr.op ?? ''];
    return name === undefined ? NOTHING : [name, 2];
  }
  if ('MergeSupportFunc' in node) return ['merge_action', 2];
  return NOTHING;
}

/**
 * The name PostgreSQL gives an unaliased select-list expression (FigureColname in
 * parse_target.c), `?column?` when it has none. `subqueryName` answers the first output name of
 * an already traced scalar subquery.
 */
export function figureColname(
  node: Node | undefined,
  subqueryName: (sublink: SubLink) => string | undefined,
): string {
  return figure(node, subqueryName)[0] ?? '?column?';
}
