/** The OCSF schema version the mapping targets (written to `metadata.version`). */
export const OCSF_SCHEMA_VERSION = '1.3.0';

/** OCSF category "Application Activity". */
export const OCSF_CATEGORY_APPLICATION = 6;
/** OCSF class "Datastore Activity" (category 6). */
export const OCSF_CLASS_DATASTORE_ACTIVITY = 6005;

/** `activity_id` values of Datastore Activity (6005). */
export const DatastoreActivityId = {
  Unknown: 0,
  Read: 1,
  Update: 2,
  Connect: 3,
  Query: 4,
  Write: 5,
  Create: 6,
  Delete: 7,
  List: 8,
  Encrypt: 9,
  Decrypt: 10,
  Other: 99,
} as const;
export type DatastoreActivityId = (typeof DatastoreActivityId)[keyof typeof DatastoreActivityId];

/** Base-event `status_id`. */
export const OcsfStatusId = { Unknown: 0, Success: 1, Failure: 2, Other: 99 } as const;
export type OcsfStatusId = (typeof OcsfStatusId)[keyof typeof OcsfStatusId];

/** Base-event `severity_id`. */
export const OcsfSeverityId = {
  Unknown: 0,
  Informational: 1,
  Low: 2,
  Medium: 3,
  High: 4,
  Critical: 5,
  Fatal: 6,
  Other: 99,
} as const;
export type OcsfSeverityId = (typeof OcsfSeverityId)[keyof typeof OcsfSeverityId];

/** Security-control profile `action_id`. */
export const OcsfActionId = { Unknown: 0, Allowed: 1, Denied: 2 } as const;
export type OcsfActionId = (typeof OcsfActionId)[keyof typeof OcsfActionId];

/** Security-control profile `disposition_id` (the values this mapping uses). */
export const OcsfDispositionId = { Unknown: 0, Allowed: 1, Blocked: 2, Delayed: 14 } as const;
export type OcsfDispositionId = (typeof OcsfDispositionId)[keyof typeof OcsfDispositionId];

/** OCSF `user` object (the person). */
export interface OcsfUser {
  readonly uid: string;
  readonly name: string;
  readonly email_addr: string;
  readonly full_name?: string;
  readonly groups: readonly { readonly name: string }[];
  /** 1 = User. */
  readonly type_id: 1;
  readonly type: 'User';
}

/** OCSF `actor` object: the person, and the agent acting for them as the app. */
export interface OcsfActor {
  readonly user: OcsfUser;
  /** The agent's name when an agent acted for the person. */
  readonly app_name?: string;
  /** The agent's id when an agent acted for the person. */
  readonly app_uid?: string;
  readonly session: { readonly uid: string };
}

/** OCSF `network_endpoint` object (the client). */
export interface OcsfNetworkEndpoint {
  readonly ip: string;
  readonly port: number;
}

/** One Datastore Activity event as {@link toOcsf} writes it. */
export interface OcsfDatastoreActivity {
  readonly class_uid: typeof OCSF_CLASS_DATASTORE_ACTIVITY;
  readonly class_name: 'Datastore Activity';
  readonly category_uid: typeof OCSF_CATEGORY_APPLICATION;
  readonly category_name: 'Application Activity';
  readonly activity_id: DatastoreActivityId;
  readonly activity_name: string;
  readonly type_uid: number;
  readonly type_name: string;
  /** Milliseconds since the Unix epoch. */
  readonly time: number;
  readonly severity_id: OcsfSeverityId;
  readonly severity: string;
  readonly status_id: OcsfStatusId;
  readonly status: string;
  readonly status_code?: string;
  readonly status_detail?: string;
  readonly message: string;
  readonly metadata: {
    readonly version: typeof OCSF_SCHEMA_VERSION;
    readonly uid: string;
    readonly correlation_uid: string;
    readonly sequence: number;
    readonly event_code: string;
    readonly log_name: 'session-events';
    readonly profiles: readonly string[];
    readonly product: {
      readonly name: 'Portcullis';
      readonly vendor_name: 'Portcullis';
      readonly version?: string;
    };
  };
  readonly actor: OcsfActor;
  readonly src_endpoint: OcsfNetworkEndpoint;
  readonly dst_endpoint: { readonly svc_name: string };
  readonly database: { readonly name: string; readonly type_id: 1; readonly type: 'Relational' };
  readonly table?: { readonly name: string };
  readonly query_info?: {
    readonly query_string: string;
    readonly uid?: string;
    readonly name?: string;
    readonly bytes: number;
    readonly query_time: number;
  };
  readonly type_id: 1;
  readonly type: 'Database';
  readonly action_id?: OcsfActionId;
  readonly action?: string;
  readonly disposition_id?: OcsfDispositionId;
  readonly disposition?: string;
  readonly policy?: { readonly name: string };
  readonly duration?: number;
  readonly start_time?: number;
  readonly end_time?: number;
  /** Everything Portcullis records that OCSF has no attribute for. */
  readonly unmapped: Readonly<Record<string, unknown>>;
}
