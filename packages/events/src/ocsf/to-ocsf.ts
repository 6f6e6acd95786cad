import type { SessionEvent, StatementRecord } from '@portcullis/core';
import {
  DatastoreActivityId,
  OCSF_CATEGORY_APPLICATION,
  OCSF_CLASS_DATASTORE_ACTIVITY,
  OCSF_SCHEMA_VERSION,
  OcsfActionId,
  OcsfDispositionId,
  OcsfSeverityId,
  OcsfStatusId,
  type OcsfActor,
  type OcsfDatastoreActivity,
} from './ocsf-event.js';

/** Options of {@link toOcsf}. */
export interface ToOcsfOptions {
  /** Written to `metadata.product.version` (the gateway's version). */
  readonly productVersion?: string;
}

type Activity = readonly [id: DatastoreActivityId, name: string];

const ACTIVITY_CAPTIONS: Readonly<Record<number, string>> = {
  [DatastoreActivityId.Unknown]: 'Unknown',
  [DatastoreActivityId.Read]: 'Read',
  [DatastoreActivityId.Update]: 'Update',
  [DatastoreActivityId.Connect]: 'Connect',
  [DatastoreActivityId.Query]: 'Query',
  [DatastoreActivityId.Write]: 'Write',
  [DatastoreActivityId.Create]: 'Create',
  [DatastoreActivityId.Delete]: 'Delete',
};

/** Statement kind (from the sql package) → Datastore Activity `activity_id`. */
const KIND_ACTIVITY: Readonly<Record<string, DatastoreActivityId>> = {
  select: DatastoreActivityId.Query,
  'copy-to': DatastoreActivityId.Read,
  show: DatastoreActivityId.Read,
  insert: DatastoreActivityId.Create,
  'copy-from': DatastoreActivityId.Write,
  merge: DatastoreActivityId.Write,
  update: DatastoreActivityId.Update,
  delete: DatastoreActivityId.Delete,
  truncate: DatastoreActivityId.Delete,
  create: DatastoreActivityId.Create,
  alter: DatastoreActivityId.Update,
  drop: DatastoreActivityId.Delete,
};

const SEVERITY_NAMES: Readonly<Record<number, string>> = {
  [OcsfSeverityId.Informational]: 'Informational',
  [OcsfSeverityId.Low]: 'Low',
  [OcsfSeverityId.Medium]: 'Medium',
};

/** The activity of a statement of this kind: known kinds get their id, the rest `Other`. */
export function datastoreActivityOf(kind: string): Activity {
  const id = KIND_ACTIVITY[kind];
  if (id !== undefined) return [id, ACTIVITY_CAPTIONS[id]!];
  // 99 Other: activity_name carries the source's own word, capitalised like OCSF captions.
  const name = kind === '' ? 'Other' : kind[0]!.toUpperCase() + kind.slice(1);
  return [DatastoreActivityId.Other, name];
}

function msOfUs(us: number): number {
  return Math.floor(us / 1000);
}

function actorOf(event: SessionEvent): OcsfActor {
  const { person, agent } = event;
  const user = {
    uid: person.subject,
    name: person.email,
    email_addr: person.email,
    ...(person.name === undefined ? {} : { full_name: person.name }),
    groups: person.groups.map((name) => ({ name })),
    type_id: 1 as const,
    type: 'User' as const,
  };
  return agent === null
    ? { user, session: { uid: event.sessionId } }
    : { user, app_name: agent.name, app_uid: agent.id, session: { uid: event.sessionId } };
}

function who(event: SessionEvent): string {
  return event.agent === null
    ? event.person.email
    : `${event.agent.name} for ${event.person.email}`;
}

interface Outcome {
  readonly status_id: OcsfStatusId;
  readonly status: string;
  readonly status_code?: string;
  readonly status_detail?: string;
  readonly severity_id: OcsfSeverityId;
  readonly action_id?: OcsfActionId;
  readonly action?: string;
  readonly disposition_id?: OcsfDispositionId;
  readonly disposition?: string;
  readonly policy?: { readonly name: string };
}

function statementOutcome(s: StatementRecord): Outcome {
  const policy = { name: s.rule };
  if (s.verdict === 'block') {
    return {
      status_id: OcsfStatusId.Failure,
      status: 'Failure',
      status_detail: `blocked by rule ${s.rule}`,
      ...(s.error === null ? {} : { status_code: s.error.code }),
      severity_id: OcsfSeverityId.Medium,
      action_id: OcsfActionId.Denied,
      action: 'Denied',
      disposition_id: OcsfDispositionId.Blocked,
      disposition: 'Blocked',
      policy,
    };
  }
  const allowed = {
    action_id: OcsfActionId.Allowed,
    action: 'Allowed',
    disposition_id: OcsfDispositionId.Allowed,
    disposition: 'Allowed',
    policy,
  } as const;
  if (s.error !== null) {
    return {
      status_id: OcsfStatusId.Failure,
      status: 'Failure',
      status_code: s.error.code,
      status_detail: s.error.message,
      severity_id: OcsfSeverityId.Low,
      ...allowed,
    };
  }
  return {
    status_id: OcsfStatusId.Success,
    status: 'Success',
    severity_id: OcsfSeverityId.Informational,
    ...allowed,
  };
}

/** The parts of an event that differ by type. */
interface TypeSpecific {
  readonly activity: Activity;
  readonly outcome: Outcome;
  readonly message: string;
  readonly extra: Partial<OcsfDatastoreActivity>;
  readonly unmapped: Record<string, unknown>;
}

function typeSpecific(event: SessionEvent): TypeSpecific {
  const timeMs = msOfUs(event.timeUs);
  switch (event.type) {
    case 'session.start':
      return {
        activity: [DatastoreActivityId.Connect, 'Connect'],
        outcome: {
          status_id: OcsfStatusId.Success,
          status: 'Success',
          severity_id: OcsfSeverityId.Informational,
        },
        message: `${who(event)} connected to ${event.resource}${
          event.accessGrant === undefined ? '' : ` under access grant ${event.accessGrant.id}`
        }`,
        extra: {},
        unmapped:
          event.accessGrant === undefined
            ? {}
            : {
                access_grant: {
                  id: event.accessGrant.id,
                  ends_us: event.accessGrant.endsUs,
                  by: event.accessGrant.by,
                },
              },
      };
    case 'session.end': {
      const summary = event.summary;
      const durationMs = summary === undefined ? undefined : msOfUs(summary.durationUs);
      const failed = summary !== undefined && summary.error !== null;
      return {
        activity: [DatastoreActivityId.Other, 'Disconnect'],
        outcome: failed
          ? {
              status_id: OcsfStatusId.Failure,
              status: 'Failure',
              status_code: summary.error!.code,
              status_detail: summary.error!.message,
              severity_id: OcsfSeverityId.Low,
            }
          : { status_id: OcsfStatusId.Success, status: 'Success', severity_id: 1 },
        message: `${who(event)} disconnected from ${event.resource}${
          summary === undefined ? '' : ` (${summary.reason})`
        }`,
        extra:
          durationMs === undefined
            ? {}
            : { duration: durationMs, start_time: timeMs - durationMs, end_time: timeMs },
        unmapped: summary === undefined ? {} : { summary },
      };
    }
    case 'statement': {
      const s = event.statement;
      if (s === undefined) return otherType(event, 'statement without its record');
      const durationMs = msOfUs(s.durationUs);
      const activity = datastoreActivityOf(s.kind);
      return {
        activity,
        outcome: statementOutcome(s),
        message: `${who(event)} ${
          s.verdict === 'block' ? 'was blocked running' : 'ran'
        } ${s.kind} on ${event.resource}`,
        extra: {
          query_info: {
            query_string: s.text,
            ...(s.fingerprint === '' ? {} : { uid: s.fingerprint }),
            ...(s.preparedName ? { name: s.preparedName } : {}),
            bytes: s.bytes,
            query_time: timeMs,
          },
          ...(s.tables.length > 0 ? { table: { name: s.tables[0]! } } : {}),
          duration: durationMs,
          start_time: timeMs - durationMs,
          end_time: timeMs,
        },
        unmapped: {
          statement: {
            kind: s.kind,
            protocol: s.protocol,
            params: s.params,
            tag: s.tag,
            rows: s.rows,
            tables: s.tables,
            verdict: s.verdict,
            rule: s.rule,
            ...(s.masked === undefined ? {} : { masked: s.masked }),
          },
        },
      };
    }
    case 'approval.requested': {
      const a = event.approval;
      if (a === undefined) return otherType(event, 'approval request without its record');
      return {
        activity: datastoreActivityOf(a.kind),
        outcome: {
          status_id: OcsfStatusId.Other,
          status: 'Held for approval',
          status_detail: a.message,
          severity_id: OcsfSeverityId.Low,
          action_id: OcsfActionId.Unknown,
          action: 'Unknown',
          disposition_id: OcsfDispositionId.Delayed,
          disposition: 'Delayed',
          policy: { name: a.rule },
        },
        message: `${who(event)} asked to run ${a.kind} on ${event.resource}; held for approval`,
        extra: { query_info: { query_string: a.text, bytes: 0, query_time: timeMs } },
        unmapped: {
          approval: { kind: a.kind, rule: a.rule, ...(a.id === undefined ? {} : { id: a.id }) },
        },
      };
    }
    case 'approval.granted':
    case 'approval.denied':
    case 'approval.expired':
    case 'approval.withdrawn': {
      const d = event.approvalDecision;
      if (d === undefined) return otherType(event, 'approval decision without its record');
      const granted = event.type === 'approval.granted';
      const outcome = event.type.slice('approval.'.length);
      const by = d.by.map((p) => p.email).join(', ');
      return {
        activity: [DatastoreActivityId.Other, 'Approval'],
        outcome: {
          status_id: granted ? OcsfStatusId.Success : OcsfStatusId.Failure,
          status: granted ? 'Success' : 'Failure',
          status_detail: d.reason === '' ? outcome : `${outcome}: ${d.reason}`,
          severity_id: granted ? OcsfSeverityId.Informational : OcsfSeverityId.Low,
          action_id: granted ? OcsfActionId.Allowed : OcsfActionId.Denied,
          action: granted ? 'Allowed' : 'Denied',
          disposition_id: granted ? OcsfDispositionId.Allowed : OcsfDispositionId.Blocked,
          disposition: granted ? 'Allowed' : 'Blocked',
        },
        message: `${who(event)}'s held statement ${d.id} was ${outcome}${by === '' ? '' : ` by ${by}`}`,
        extra: { duration: msOfUs(d.waitedUs) },
        unmapped: {
          approval_decision: {
            id: d.id,
            outcome,
            by: d.by,
            reason: d.reason,
            waited_us: d.waitedUs,
          },
        },
      };
    }
    case 'auth.failed': {
      const f = event.authFailure;
      if (f === undefined) return otherType(event, 'refused login without its record');
      return {
        activity: [DatastoreActivityId.Connect, 'Connect'],
        outcome: {
          status_id: OcsfStatusId.Failure,
          status: 'Failure',
          status_code: f.code,
          status_detail: f.reason,
          severity_id: OcsfSeverityId.Medium,
          action_id: OcsfActionId.Denied,
          action: 'Denied',
          disposition_id: OcsfDispositionId.Blocked,
          disposition: 'Blocked',
        },
        message: `${who(event)} was refused a connection to ${event.resource} (${f.reason})`,
        extra: {},
        unmapped: { auth_failure: { reason: f.reason, code: f.code } },
      };
    }
    default:
      return otherType(event, `event type ${String((event as { type: unknown }).type)}`);
  }
}

function otherType(event: SessionEvent, what: string): TypeSpecific {
  return {
    activity: [DatastoreActivityId.Other, 'Other'],
    outcome: { status_id: OcsfStatusId.Unknown, status: 'Unknown', severity_id: 1 },
    message: `${who(event)}: ${what} on ${event.resource}`,
    extra: {},
    unmapped: {},
  };
}

/**
 * Maps a session event to one OCSF {@link OCSF_SCHEMA_VERSION} "Datastore Activity" (class
 * 6005, category 6 Application Activity) event: the person is `actor.user`, an agent acting for
 * them `actor.app_name`/`actor.app_uid`, the client `src_endpoint`, the resource `database` and
 * `dst_endpoint.svc_name`, the statement `query_info` (text as recorded: literals redacted unless
 * the deployment opted out). Session start is `Connect`, session end `Other`/"Disconnect", a
 * statement gets the activity of its kind; a blocked statement is `status_id` Failure with
 * `action_id` Denied and `disposition_id` Blocked. Fields OCSF has no attribute for go under
 * `unmapped`. Pure: no I/O, no clock.
 */
export function toOcsf(event: SessionEvent, options: ToOcsfOptions = {}): OcsfDatastoreActivity {
  const { activity, outcome, message, extra, unmapped } = typeSpecific(event);
  const [activityId, activityName] = activity;
  return {
    class_uid: OCSF_CLASS_DATASTORE_ACTIVITY,
    class_name: 'Datastore Activity',
    category_uid: OCSF_CATEGORY_APPLICATION,
    category_name: 'Application Activity',
    activity_id: activityId,
    activity_name: activityName,
    type_uid: OCSF_CLASS_DATASTORE_ACTIVITY * 100 + activityId,
    type_name: `Datastore Activity: ${activityName}`,
    time: msOfUs(event.timeUs),
    severity: SEVERITY_NAMES[outcome.severity_id] ?? 'Unknown',
    message,
    ...outcome,
    metadata: {
      version: OCSF_SCHEMA_VERSION,
      uid: event.id,
      correlation_uid: event.sessionId,
      sequence: event.seq,
      event_code: event.type,
      log_name: 'session-events',
      profiles: outcome.action_id === undefined ? [] : ['security_control'],
      product: {
        name: 'Portcullis',
        vendor_name: 'Portcullis',
        ...(options.productVersion === undefined ? {} : { version: options.productVersion }),
      },
    },
    ...sessionEndpoints(event),
    ...extra,
    unmapped: {
      schema: event.schema,
      time_us: event.timeUs,
      ...sessionUnmapped(event),
      ...unmapped,
    },
  };
}

/** What every event of a session says of its person, agent, client and resource. */
function sessionEndpoints(event: SessionEvent) {
  return {
    actor: actorOf(event),
    src_endpoint: { ip: event.client.address, port: event.client.port },
    dst_endpoint: { svc_name: event.resource },
    database: { name: event.resource, type_id: 1 as const, type: 'Relational' as const },
    type_id: 1 as const,
    type: 'Database' as const,
  };
}

/** The session's fields OCSF has no attribute for. */
function sessionUnmapped(event: SessionEvent) {
  return {
    protocol: event.protocol,
    auth_method: event.authMethod,
    upstream_user: event.upstreamUser,
    client_application: event.client.application,
    client_user: event.client.user,
    client_tls: event.client.tls,
  };
}

/** A session's serialized OCSF parts, and the event fields they were made from. */
interface SessionParts {
  readonly from: SessionEvent;
  /** `"actor":…,"src_endpoint":…,"dst_endpoint":…,"database":…,"type_id":1,"type":"Database"`. */
  readonly endpoints: string;
  /** The session's keys of `unmapped` after `time_us` (empty when none has a value). */
  readonly unmapped: string;
}

/** Sessions whose parts are kept; a sink sees the events of many sessions interleaved. */
const SESSION_PARTS_KEPT = 4096;
const sessionParts = new Map<string, SessionParts>();

function sameStrings(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** True when `b` has every session field the parts of `a` were made from. */
function sameSession(a: SessionEvent, b: SessionEvent): boolean {
  const pa = a.person;
  const pb = b.person;
  const ca = a.client;
  const cb = b.client;
  return (
    pa.subject === pb.subject &&
    pa.email === pb.email &&
    pa.name === pb.name &&
    sameStrings(pa.groups, pb.groups) &&
    (a.agent === null
      ? b.agent === null
      : b.agent !== null && a.agent.id === b.agent.id && a.agent.name === b.agent.name) &&
    ca.address === cb.address &&
    ca.port === cb.port &&
    ca.application === cb.application &&
    ca.user === cb.user &&
    ca.tls === cb.tls &&
    a.resource === b.resource &&
    a.protocol === b.protocol &&
    a.authMethod === b.authMethod &&
    a.upstreamUser === b.upstreamUser
  );
}

function partsOf(event: SessionEvent): SessionParts {
  const kept = sessionParts.get(event.sessionId);
  if (kept !== undefined && sameSession(kept.from, event)) return kept;
  const parts: SessionParts = {
    from: event,
    endpoints: JSON.stringify(sessionEndpoints(event)).slice(1, -1),
    unmapped: JSON.stringify(sessionUnmapped(event)).slice(1, -1),
  };
  if (sessionParts.size >= SESSION_PARTS_KEPT) sessionParts.clear();
  sessionParts.set(event.sessionId, parts);
  return parts;
}

/** The members of a JSON object without its braces, after a comma; empty for `{}`. */
function members(value: object): string {
  const json = JSON.stringify(value);
  return json.length === 2 ? '' : `,${json.slice(1, -1)}`;
}

/**
 * `JSON.stringify(toOcsf(event, options))`, character for character, in about half the time:
 * what an event shares with the rest of its session (the actor, endpoints, database and client
 * details) is serialized once per session and reused while those fields stay the same. This is
 * the Kafka sink's OCSF encoder.
 */
export function encodeOcsfJson(event: SessionEvent, options: ToOcsfOptions = {}): string {
  const { activity, outcome, message, extra, unmapped } = typeSpecific(event);
  const [activityId, activityName] = activity;
  const session = partsOf(event);
  const product =
    options.productVersion === undefined
      ? PRODUCT
      : JSON.stringify({
          name: 'Portcullis',
          vendor_name: 'Portcullis',
          version: options.productVersion,
        });
  const sessionUnmapped = session.unmapped === '' ? '' : `,${session.unmapped}`;
  return (
    `{"class_uid":${OCSF_CLASS_DATASTORE_ACTIVITY},"class_name":"Datastore Activity",` +
    `"category_uid":${OCSF_CATEGORY_APPLICATION},"category_name":"Application Activity",` +
    `"activity_id":${activityId},"activity_name":${JSON.stringify(activityName)},` +
    `"type_uid":${OCSF_CLASS_DATASTORE_ACTIVITY * 100 + activityId},` +
    `"type_name":${JSON.stringify(`Datastore Activity: ${activityName}`)},` +
    `"time":${JSON.stringify(msOfUs(event.timeUs))},` +
    `"severity":${JSON.stringify(SEVERITY_NAMES[outcome.severity_id] ?? 'Unknown')},` +
    `"message":${JSON.stringify(message)}${members(outcome)},` +
    `"metadata":{"version":"${OCSF_SCHEMA_VERSION}","uid":${JSON.stringify(event.id)},` +
    `"correlation_uid":${JSON.stringify(event.sessionId)},"sequence":${JSON.stringify(event.seq)},` +
    `"event_code":${JSON.stringify(event.type)},"log_name":"session-events",` +
    `"profiles":${outcome.action_id === undefined ? '[]' : '["security_control"]'},` +
    `"product":${product}},${session.endpoints}${members(extra)},` +
    `"unmapped":{"schema":${JSON.stringify(event.schema)},"time_us":${JSON.stringify(event.timeUs)}` +
    `${sessionUnmapped}${members(unmapped)}}}`
  );
}

const PRODUCT = JSON.stringify({ name: 'Portcullis', vendor_name: 'Portcullis' });
