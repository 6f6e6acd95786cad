/**
 * What the tracer knows about functions by name. The catalog interface does not describe
 * functions, and a user-defined function can read any table, so only built-ins known to compute
 * from their arguments alone (plus session or clock state) are traced; anything else is refused.
 */

/** How the tracer treats a function. */
export type FunctionKind =
  /** `count`: hides the values it counts. */
  | 'count'
  /** A built-in (scalar, aggregate or window) whose result derives only from its arguments. */
  | 'builtin'
  /** Runs SQL text or reads relations named in its arguments: refused. */
  | 'dynamic-sql'
  /** Moves values out of the result set (settings, notifications, sequences, large objects, timing): refused. */
  | 'side-channel'
  /** Not known: it could read tables, so it is refused unless the deployment trusts it. */
  | 'unknown';

// Grouped the way the PostgreSQL manual groups them; names only (overloads share a name).
const BUILTINS = new Set<string>(
  [
    // strings
    'ascii bit_length btrim casefold char_length character_length chr concat concat_ws convert',
    'convert_from convert_to decode encode format initcap left length lower lpad ltrim md5',
    'normalize is_normalized octet_length overlay parse_ident position quote_ident quote_literal',
    'quote_nullable regexp_count regexp_instr regexp_like regexp_match regexp_matches',
    'regexp_replace regexp_split_to_array regexp_split_to_table regexp_substr repeat replace',
    'reverse right rpad rtrim split_part starts_with string_to_array string_to_table strpos substr',
    'substring to_ascii to_hex to_bin to_oct translate unistr upper sha224 sha256 sha384 sha512',
    'crc32 crc32c similar_to_escape similar_escape like_escape textlen textcat text varchar',
    'bpchar name pg_collation_for to_char to_date to_number to_timestamp get_bit get_byte set_bit',
    'set_byte bit_count gen_random_uuid uuidv4 uuidv7 uuid_extract_timestamp uuid_extract_version',
    // numbers
    'abs cbrt ceil ceiling degrees div exp factorial floor gcd lcm ln log log10 min_scale mod pi',
    'power pow radians round scale sign sqrt trim_scale trunc width_bucket random random_normal',
    'acos acosd asin asind atan atand atan2 atan2d cos cosd cot cotd sin sind tan tand sinh cosh',
    'tanh asinh acosh atanh erf erfc gamma lgamma int2 int4 int8 float4 float8 numeric bool',
    'num_nonnulls num_nulls',
    // dates and times
    'age clock_timestamp date_add date_bin date_part date_subtract date_trunc extract isfinite',
    'justify_days justify_hours justify_interval make_date make_interval make_time make_timestamp',
    'make_timestamptz now statement_timestamp timeofday transaction_timestamp timezone overlaps',
    'date time timestamp timestamptz interval',
    // arrays and ranges
    'array_append array_cat array_dims array_fill array_length array_lower array_ndims',
    'array_position array_positions array_prepend array_remove array_replace array_reverse',
    'array_sample array_shuffle array_sort array_to_string array_upper cardinality trim_array',
    'unnest generate_subscripts generate_series isempty lower_inc upper_inc lower_inf upper_inf',
    'range_merge int4range int8range numrange tsrange tstzrange daterange multirange',
    // json
    'to_json to_jsonb array_to_json row_to_json json_build_array jsonb_build_array',
    'json_build_object jsonb_build_object json_object jsonb_object json_array_length',
    'jsonb_array_length json_each jsonb_each json_each_text jsonb_each_text json_extract_path',
    'jsonb_extract_path json_extract_path_text jsonb_extract_path_text json_object_keys',
    'jsonb_object_keys json_populate_record jsonb_populate_record jsonb_populate_record_valid',
    'json_populate_recordset jsonb_populate_recordset json_to_record jsonb_to_record',
    'json_to_recordset jsonb_to_recordset json_strip_nulls jsonb_strip_nulls jsonb_set',
    'jsonb_set_lax jsonb_insert jsonb_pretty json_typeof jsonb_typeof jsonb_path_exists',
    'jsonb_path_match jsonb_path_query jsonb_path_query_array jsonb_path_query_first',
    'jsonb_path_exists_tz jsonb_path_match_tz jsonb_path_query_tz jsonb_path_query_array_tz',
    'jsonb_path_query_first_tz json_array_elements jsonb_array_elements json_array_elements_text',
    'jsonb_array_elements_text',
    // text search and xml (no catalog or query access)
    'to_tsvector to_tsquery plainto_tsquery phraseto_tsquery websearch_to_tsquery ts_rank',
    'ts_rank_cd ts_headline setweight strip tsvector_to_array array_to_tsvector numnode querytree',
    'xmlcomment xmltext xpath xpath_exists xml_is_well_formed xml_is_well_formed_document',
    'xml_is_well_formed_content xmlexists',
    // network
    'host hostmask masklen netmask network abbrev broadcast family inet_merge inet_same_family',
    'set_masklen',
    // aggregates that return values
    'array_agg avg bit_and bit_or bit_xor bool_and bool_or every json_agg json_agg_strict',
    'jsonb_agg jsonb_agg_strict json_object_agg json_object_agg_strict json_object_agg_unique',
    'json_object_agg_unique_strict jsonb_object_agg jsonb_object_agg_strict',
    'jsonb_object_agg_unique jsonb_object_agg_unique_strict max min range_agg range_intersect_agg',
    'string_agg sum xmlagg any_value corr covar_pop covar_samp regr_avgx regr_avgy regr_count',
    'regr_intercept regr_r2 regr_slope regr_sxx regr_sxy regr_syy stddev stddev_pop stddev_samp',
    'variance var_pop var_samp mode percentile_cont percentile_disc rank dense_rank percent_rank',
    'cume_dist',
    // window functions
    'row_number ntile lag lead first_value last_value nth_value',
    // session and server state (no table data)
    'current_database current_schema current_schemas current_user session_user system_user',
    'inet_client_addr inet_client_port inet_server_addr inet_server_port pg_backend_pid',
    'pg_postmaster_start_time pg_conf_load_time version pg_current_xact_id txid_current',
    'pg_typeof format_type pg_column_size pg_size_pretty pg_input_is_valid pg_input_error_info',
    'to_regclass to_regtype to_regnamespace to_regproc to_regrole has_table_privilege',
    'has_column_privilege has_schema_privilege has_database_privilege has_function_privilege',
    'pg_has_role current_setting nextval currval lastval',
    // catalog introspection, as psql's \d and GUI tools use it (definitions and sizes, no rows)
    'pg_get_expr pg_get_indexdef pg_get_constraintdef pg_get_viewdef pg_get_triggerdef',
    'pg_get_ruledef pg_get_functiondef pg_get_function_arguments pg_get_function_result',
    'pg_get_function_identity_arguments pg_get_userbyid pg_get_serial_sequence pg_get_partkeydef',
    'pg_get_partition_constraintdef pg_get_statisticsobjdef pg_get_statisticsobjdef_columns',
    'pg_table_is_visible pg_type_is_visible pg_function_is_visible pg_operator_is_visible',
    'pg_opclass_is_visible pg_collation_is_visible pg_conversion_is_visible',
    'pg_ts_config_is_visible pg_encoding_to_char obj_description col_description',
    'shobj_description pg_relation_size pg_total_relation_size pg_table_size pg_indexes_size',
    'pg_database_size pg_tablespace_size pg_tablespace_location pg_is_in_recovery',
    'pg_my_temp_schema pg_is_other_temp_schema pg_describe_object pg_identify_object',
    'pg_partition_ancestors pg_partition_root pg_partition_tree pg_relation_is_publishable',
    'pg_get_replica_identity_index pg_relation_filenode pg_relation_filepath pg_char_to_encoding',
  ]
    .join(' ')
    .split(' '),
);

const DYNAMIC_SQL = new Set<string>(
  [
    'query_to_xml query_to_xmlschema query_to_xml_and_xmlschema cursor_to_xml',
    'cursor_to_xmlschema table_to_xml table_to_xmlschema table_to_xml_and_xmlschema schema_to_xml',
    'schema_to_xmlschema schema_to_xml_and_xmlschema database_to_xml database_to_xmlschema',
    'database_to_xml_and_xmlschema ts_stat dblink dblink_exec dblink_open dblink_fetch',
    'dblink_send_query dblink_get_result',
  ]
    .join(' ')
    .split(' '),
);

const SIDE_CHANNEL = new Set<string>(
  [
    'set_config pg_notify setval lo_from_bytea lo_put',
    'lo_get lo_import lo_export pg_logical_emit_message pg_sleep pg_sleep_for pg_sleep_until',
    'pg_advisory_lock pg_advisory_xact_lock pg_try_advisory_lock pg_try_advisory_xact_lock',
    'pg_read_file pg_read_binary_file pg_stat_file',
  ]
    .join(' ')
    .split(' '),
);

/**
 * Classifies a function by its (possibly schema-qualified) name. A qualified name counts as
 * built-in only in `pg_catalog`; `trusted` holds names the deployment vouches for, bare or as
 * `schema.name`.
 */
export function classifyFunction(
  schema: string | null,
  name: string,
  trusted: ReadonlySet<string>,
): FunctionKind {
  if (trusted.has(schema === null ? name : `${schema}.${name}`)) return 'builtin';
  if (schema !== null && schema !== 'pg_catalog') return 'unknown';
  if (name === 'count') return 'count';
  if (DYNAMIC_SQL.has(name)) return 'dynamic-sql';
  if (SIDE_CHANNEL.has(name)) return 'side-channel';
  return BUILTINS.has(name) ? 'builtin' : 'unknown';
}

/** Result columns of a built-in set-returning function used in FROM. */
export type SetReturningShape =
  /** A single column of a base type: named after the alias or the function. */
  | { readonly kind: 'scalar' }
  /** One scalar column per argument (`unnest(a, b)`). */
  | { readonly kind: 'per-argument' }
  /** Fixed column names. */
  | { readonly kind: 'columns'; readonly names: readonly string[] }
  /** Columns declared by a column definition list (`AS t(a int, b text)`). */
  | { readonly kind: 'definition-list' };

const SET_RETURNING: ReadonlyMap<string, SetReturningShape> = new Map<string, SetReturningShape>([
  ['unnest', { kind: 'per-argument' }],
  ['json_each', { kind: 'columns', names: ['key', 'value'] }],
  ['jsonb_each', { kind: 'columns', names: ['key', 'value'] }],
  ['json_each_text', { kind: 'columns', names: ['key', 'value'] }],
  ['jsonb_each_text', { kind: 'columns', names: ['key', 'value'] }],
  ['json_array_elements', { kind: 'columns', names: ['value'] }],
  ['jsonb_array_elements', { kind: 'columns', names: ['value'] }],
  ['json_array_elements_text', { kind: 'columns', names: ['value'] }],
  ['jsonb_array_elements_text', { kind: 'columns', names: ['value'] }],
  ['pg_partition_tree', { kind: 'columns', names: ['relid', 'parentrelid', 'isleaf', 'level'] }],
  ['json_to_record', { kind: 'definition-list' }],
  ['jsonb_to_record', { kind: 'definition-list' }],
  ['json_to_recordset', { kind: 'definition-list' }],
  ['jsonb_to_recordset', { kind: 'definition-list' }],
]);

/** Functions whose row type comes from an argument's type, which the catalog cannot describe. */
const ROW_TYPE_FROM_ARGUMENT = new Set<string>([
  'json_populate_record',
  'jsonb_populate_record',
  'json_populate_recordset',
  'jsonb_populate_recordset',
  'jsonb_populate_record_valid',
]);

/**
 * The result shape of a built-in function used as a FROM item, or null when the tracer cannot
 * know its columns. Any other built-in returns a single scalar column.
 */
export function setReturningShape(name: string): SetReturningShape | null {
  if (ROW_TYPE_FROM_ARGUMENT.has(name)) return null;
  return SET_RETURNING.get(name) ?? { kind: 'scalar' };
}
