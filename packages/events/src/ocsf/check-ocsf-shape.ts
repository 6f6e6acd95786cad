import {
  DatastoreActivityId,
  OCSF_CATEGORY_APPLICATION,
  OCSF_CLASS_DATASTORE_ACTIVITY,
  OcsfSeverityId,
  OcsfStatusId,
} from './ocsf-event.js';

type Kind = 'string' | 'integer' | 'object' | 'array' | 'boolean';

/** One attribute rule: where, what type, whether required, which integer values are allowed. */
interface Rule {
  readonly path: string;
  readonly kind: Kind;
  readonly required: boolean;
  readonly oneOf?: readonly number[];
}

const rule = (path: string, kind: Kind, required = true, oneOf?: readonly number[]): Rule =>
  oneOf === undefined ? { path, kind, required } : { path, kind, required, oneOf };

const ids = (o: Readonly<Record<string, number>>): number[] => Object.values(o);

/**
 * The attributes OCSF 1.3.0 requires of a Datastore Activity event (base event + class), plus
 * the recommended ones this mapping always writes, with their types and enum ranges.
 */
const RULES: readonly Rule[] = [
  rule('class_uid', 'integer', true, [OCSF_CLASS_DATASTORE_ACTIVITY]),
  rule('category_uid', 'integer', true, [OCSF_CATEGORY_APPLICATION]),
  rule('activity_id', 'integer', true, ids(DatastoreActivityId)),
  rule('type_uid', 'integer'),
  rule('time', 'integer'),
  rule('severity_id', 'integer', true, ids(OcsfSeverityId)),
  rule('metadata', 'object'),
  rule('metadata.version', 'string'),
  rule('metadata.product', 'object'),
  rule('metadata.product.vendor_name', 'string'),
  rule('metadata.uid', 'string', false),
  rule('actor', 'object'),
  rule('actor.user', 'object', false),
  rule('actor.user.uid', 'string', false),
  rule('actor.user.groups', 'array', false),
  rule('actor.app_name', 'string', false),
  rule('actor.app_uid', 'string', false),
  rule('src_endpoint', 'object'),
  rule('src_endpoint.ip', 'string', false),
  rule('src_endpoint.port', 'integer', false),
  rule('database', 'object', false),
  rule('table', 'object', false),
  rule('query_info', 'object', false),
  rule('query_info.query_string', 'string', false),
  rule('activity_name', 'string', false),
  rule('class_name', 'string', false),
  rule('category_name', 'string', false),
  rule('status_id', 'integer', false, ids(OcsfStatusId)),
  rule('status', 'string', false),
  rule('message', 'string', false),
  rule('duration', 'integer', false),
  rule('unmapped', 'object', false),
];

function lookup(value: unknown, path: string): unknown {
  let at = value;
  for (const key of path.split('.')) {
    if (at === null || typeof at !== 'object' || Array.isArray(at)) return undefined;
    at = (at as Record<string, unknown>)[key];
  }
  return at;
}

function kindOf(value: unknown): Kind | 'other' {
  if (typeof value === 'string') return 'string';
  if (typeof value === 'boolean') return 'boolean';
  if (typeof value === 'number') return Number.isSafeInteger(value) ? 'integer' : 'other';
  if (Array.isArray(value)) return 'array';
  if (value !== null && typeof value === 'object') return 'object';
  return 'other';
}

/**
 * Checks that `value` (an object or parsed JSON) has the shape of an OCSF Datastore Activity
 * event: every required attribute present with its type, enum attributes in range, `type_uid` =
 * `class_uid * 100 + activity_id`, and the class constraints (an actor with at least one of user,
 * process, session, app_name, app_uid; at least one of database, databucket, table). Returns the
 * problems found, an empty list when there are none. Not a full OCSF validator: attributes it does
 * not know are not checked.
 */
export function checkOcsfShape(value: unknown): string[] {
  const problems: string[] = [];
  if (kindOf(value) !== 'object') return ['the event is not an object'];
  for (const r of RULES) {
    const v = lookup(value, r.path);
    if (v === undefined) {
      if (r.required) problems.push(`${r.path} is required`);
      continue;
    }
    const kind = kindOf(v);
    if (kind !== r.kind) {
      problems.push(
        `${r.path} must be ${r.kind === 'integer' ? 'an' : 'a'} ${r.kind}, not ${kind}`,
      );
      continue;
    }
    if (r.oneOf !== undefined && !r.oneOf.includes(v as number)) {
      problems.push(`${r.path} = ${String(v)} is not one of ${r.oneOf.join(', ')}`);
    }
  }
  const classUid = lookup(value, 'class_uid');
  const activityId = lookup(value, 'activity_id');
  const typeUid = lookup(value, 'type_uid');
  if (
    typeof classUid === 'number' &&
    typeof activityId === 'number' &&
    typeof typeUid === 'number' &&
    typeUid !== classUid * 100 + activityId
  ) {
    problems.push(`type_uid ${typeUid} is not class_uid * 100 + activity_id`);
  }
  if (
    kindOf(lookup(value, 'actor')) === 'object' &&
    ['user', 'process', 'session', 'app_name', 'app_uid'].every(
      (key) => lookup(value, `actor.${key}`) === undefined,
    )
  ) {
    problems.push('actor needs at least one of user, process, session, app_name, app_uid');
  }
  if (['database', 'databucket', 'table'].every((key) => lookup(value, key) === undefined)) {
    problems.push('at least one of database, databucket, table is required');
  }
  return problems;
}
