import { DETECTOR_KINDS, type DetectorKind } from '@portcullis/masking';
import { STATEMENT_FLAGS, type StatementFlag } from '@portcullis/sql';
import { z } from 'zod';

/**
 * The gateway configuration: one YAML file, validated once at start. `docs/config.schema.json`
 * is generated from this schema (`npm run config-schema`) and a test keeps the two in step.
 */

const port = z.number().int().min(0).max(65535);
const nonEmpty = z.string().min(1);

/** A secret given inline, read from a file, or read from an environment variable. */
const secretSource = z
  .strictObject({
    value: nonEmpty.optional().describe('The secret itself (avoid in shared files).'),
    file: nonEmpty.optional().describe('Path of a file whose contents (trimmed) are the secret.'),
    env: nonEmpty.optional().describe('Name of an environment variable holding the secret.'),
  })
  .refine((s) => [s.value, s.file, s.env].filter((v) => v !== undefined).length === 1, {
    message: 'give exactly one of value, file or env',
  });

const listenerTls = z.strictObject({
  cert: nonEmpty.describe('PEM certificate chain file.'),
  key: nonEmpty.describe('PEM private key file.'),
});

const postgresListener = z.strictObject({
  host: nonEmpty.default('127.0.0.1').describe('Address to listen on.'),
  port: port.default(6432),
  tls: listenerTls.optional().describe('Serve TLS to clients that ask for it (SSLRequest).'),
  insecure: z
    .boolean()
    .default(false)
    .describe(
      'Accept the token as a cleartext password without TLS. Only for local demos: the token crosses the network readable.',
    ),
});

const httpListener = z.strictObject({
  host: nonEmpty.default('127.0.0.1').describe('Address to listen on.'),
  port: port.default(9090),
  maxBodyBytes: z
    .number()
    .int()
    .min(1024)
    .max(16 * 1024 * 1024)
    .default(64 * 1024)
    .describe('Larger request bodies are refused with 413.'),
});

const upstreamTls = z.strictObject({
  mode: z
    .enum(['disable', 'require', 'verify-full'])
    .default('disable')
    .describe(
      'disable: plain TCP; require: TLS without certificate checks; verify-full: TLS, CA and host name checked.',
    ),
  ca: nonEmpty
    .optional()
    .describe('PEM file of the CA that signs the upstream certificate (verify-full).'),
  serverName: nonEmpty
    .optional()
    .describe('Host name expected in the upstream certificate (defaults to host).'),
});

const clock = z.string().regex(/^([01]\d|2[0-3]):[0-5]\d$/, 'expected HH:MM (24-hour clock)');
const names = z.array(nonEmpty).min(1);

const ruleMatch = z.strictObject({
  kinds: names
    .optional()
    .describe(
      'Statement kinds: select, insert, update, delete, merge, create, alter, drop, truncate, grant, revoke, copy-to, copy-from, transaction, set, call, do, explain, multi, …',
    ),
  tables: names.optional().describe('Tables read or written: name, schema.name, schema.* or *.'),
  tablesWritten: names.optional().describe('Tables written, same patterns.'),
  functions: names
    .optional()
    .describe('Functions called (lower case, optionally schema-qualified).'),
  flags: z
    .array(z.enum(STATEMENT_FLAGS as [StatementFlag, ...StatementFlag[]]))
    .min(1)
    .optional()
    .describe(
      'Statement flags: update-without-where, delete-without-where, drop, truncate, copy-program, server-file-access, network-access, set-role, …',
    ),
  groups: names
    .optional()
    .describe("The person is in any of these groups (from the identity's groups)."),
  agent: z
    .boolean()
    .optional()
    .describe('true: only when an agent acts for the person; false: only direct use.'),
  readOnly: z
    .boolean()
    .optional()
    .describe('Match only provably read-only (true) or possibly writing (false) statements.'),
  time: z
    .strictObject({
      from: clock,
      to: clock,
      timeZone: z
        .string()
        .refine((tz) => {
          try {
            new Intl.DateTimeFormat('en', { timeZone: tz });
            return true;
          } catch {
            return false;
          }
        }, 'unknown time zone (use an IANA name such as Europe/Berlin)')
        .optional(),
    })
    .optional()
    .describe('Local time window [from, to); may wrap midnight.'),
});

const policyRule = z.strictObject({
  name: nonEmpty.describe('Named in block messages and recorded on every decision.'),
  action: z.enum(['allow', 'block', 'review']),
  match: ruleMatch.default({}),
  message: nonEmpty.optional().describe('Told to the client when the rule blocks.'),
  approvers: z
    .strictObject({
      groups: z.array(nonEmpty).min(1).describe('People in any of these groups may decide.'),
      count: z
        .number()
        .int()
        .min(1)
        .max(10)
        .default(1)
        .describe('Approvals needed to release the statement; one denial refuses it.'),
    })
    .optional()
    .describe(
      'review rules: who may approve a held statement. Without it a review statement is refused at once.',
    ),
  timeoutSeconds: z
    .number()
    .int()
    .min(1)
    .max(86_400)
    .optional()
    .describe('review rules: how long a held statement waits for a decision (default 300).'),
  allowSelfApproval: z
    .boolean()
    .optional()
    .describe("review rules: the person an agent acts for may approve the agent's statement."),
});

const statementPolicy = z.strictObject({
  default: z.enum(['allow', 'block', 'review']).default('allow').describe('When no rule matches.'),
  unparsable: z
    .enum(['allow', 'block'])
    .default('block')
    .describe('Text the PostgreSQL parser rejects cannot be shown to be safe; blocked by default.'),
  rules: z.array(policyRule).default([]).describe('First matching rule wins.'),
});

/** A mask style: its name, or the name with options. */
const maskStyle = z.union([
  z.enum(['redact', 'partial', 'hash', 'null', 'fixed-format']),
  z.strictObject({
    kind: z.literal('redact'),
    marker: z.string().min(1).max(64).optional().describe('Replacement text (default ****).'),
  }),
  z.strictObject({
    kind: z.literal('partial'),
    keepLast: z
      .number()
      .int()
      .min(0)
      .max(64)
      .optional()
      .describe('Trailing characters kept (default 4; never more than half).'),
    keepSeparators: z
      .boolean()
      .optional()
      .describe('Keep - . @ / ( ) + and spaces (default true).'),
  }),
  z.strictObject({
    kind: z.literal('hash'),
    prefix: z.string().max(16).optional().describe('Pseudonym prefix (default h_).'),
    length: z.number().int().min(8).max(52).optional().describe('Base32 characters (default 16).'),
  }),
  z.strictObject({ kind: z.literal('null') }),
  z.strictObject({ kind: z.literal('fixed-format') }),
]);

/** `schema.table.column` or `table.column`; each part a name or a `*` glob. */
const columnPattern = z
  .string()
  .regex(
    /^[^.\s]+(\.[^.\s]+){1,2}$/,
    'expected table.column or schema.table.column (each part a name or a * glob)',
  );

const maskingRule = z
  .strictObject({
    name: nonEmpty.describe('Named in refusals and recorded on statement events.'),
    columns: z
      .array(columnPattern)
      .min(1)
      .optional()
      .describe(
        'Table columns: schema.table.column or table.column (any schema); * matches any run of characters in a part.',
      ),
    names: names
      .optional()
      .describe(
        'Column-name globs matched on every table column (case-insensitive): *email*, ssn.',
      ),
    style: maskStyle.describe('How values are masked.'),
    shaping: z
      .enum(['refuse', 'allow'])
      .default('refuse')
      .describe(
        'A masked column in WHERE, JOIN, ORDER BY, GROUP BY or DISTINCT lets a reader infer values one guess at a time; refused unless allowed here.',
      ),
    exemptGroups: names
      .optional()
      .describe('People in any of these groups see the values unmasked.'),
  })
  .refine((r) => r.columns !== undefined || r.names !== undefined, {
    message: 'give columns, names or both',
  });

const detectors = z.strictObject({
  enabled: z
    .boolean()
    .default(true)
    .describe('Scan text values no column rule names for the kinds below.'),
  kinds: z
    .array(z.enum(DETECTOR_KINDS as unknown as [DetectorKind, ...DetectorKind[]]))
    .min(1)
    .optional()
    .describe(`Detectors to run (default all): ${DETECTOR_KINDS.join(', ')}.`),
  styles: z
    .partialRecord(
      z.enum(DETECTOR_KINDS as unknown as [DetectorKind, ...DetectorKind[]]),
      maskStyle,
    )
    .optional()
    .describe('Style per detector (defaults: card partial, others redact).'),
});

const resourceMasking = z.strictObject({
  rules: z
    .array(maskingRule)
    .default([])
    .describe('Column rules; the first rule naming a column wins.'),
  detectors: detectors.default({ enabled: true }),
  hashKey: secretSource
    .optional()
    .describe('HMAC key of the hash style (at least 16 bytes); required when a style is hash.'),
  trustedFunctions: names
    .optional()
    .describe(
      'Functions (name or schema.name) vouched to compute only from their arguments; other unknown functions are refused while masking applies.',
    ),
  catalogRefreshSeconds: z
    .number()
    .int()
    .min(1)
    .default(60)
    .describe('How often the upstream catalog (tables, columns, views) is reloaded.'),
});

const postgresResource = z.strictObject({
  type: z.literal('postgres'),
  host: nonEmpty,
  port: port.default(5432),
  database: nonEmpty.describe('Database name on the upstream server.'),
  user: nonEmpty.describe('Role the gateway logs in as upstream.'),
  password: secretSource.optional().describe('Upstream password (omit for trust authentication).'),
  tls: upstreamTls.default({ mode: 'disable' }),
  connectTimeoutMs: z.number().int().positive().default(10_000),
  ephemeralRoles: z
    .strictObject({
      templateRole: nonEmpty.describe('NOLOGIN role whose privileges every session role inherits.'),
      admin: z
        .strictObject({
          user: nonEmpty.describe('A role with CREATEROLE (not a superuser).'),
          password: secretSource.optional(),
        })
        .describe('Creates and drops the session roles.'),
      ttlMinutes: z
        .number()
        .int()
        .min(1)
        .default(720)
        .describe('VALID UNTIL backstop: a role outlives a crashed gateway by at most this.'),
      prefix: z
        .string()
        .regex(/^[a-z][a-z0-9_]{0,19}$/, 'lower-case letters, digits and _, starting with a letter')
        .default('pcl_')
        .describe('Session role names start with this (and carry the person’s id).'),
    })
    .optional()
    .describe(
      'Log each session in as its own short-lived role (named after the person) instead of `user`/`password`.',
    ),
  policy: statementPolicy
    .default({ default: 'allow', unparsable: 'block', rules: [] })
    .describe('Guardrails: which statements are allowed, blocked or held for review.'),
  masking: resourceMasking
    .optional()
    .describe('Mask sensitive values in results; statements that could reveal them are refused.'),
  accessRequests: z
    .strictObject({
      approvers: z
        .strictObject({
          groups: z.array(nonEmpty).min(1).describe('People in any of these groups may decide.'),
          count: z.number().int().min(1).max(10).default(1).describe('Approvals a grant needs.'),
        })
        .describe('Who grants time-boxed access to this resource.'),
      maxHours: z
        .number()
        .int()
        .min(1)
        .max(720)
        .default(8)
        .describe('The longest grant a person may ask for.'),
      warnMinutes: z
        .number()
        .int()
        .min(1)
        .default(5)
        .describe('Sessions under a grant get a NOTICE this long before it ends.'),
      timeoutSeconds: z
        .number()
        .int()
        .min(60)
        .max(604_800)
        .default(86_400)
        .describe('How long a request waits for a decision.'),
    })
    .optional()
    .describe(
      'People without standing access (identity.groupAccess, tokens) may ask for time-boxed access.',
    ),
});

const approvalWebhook = z.strictObject({
  name: nonEmpty.describe('Named in logs and metrics.'),
  url: z.url().describe('Where notifications are POSTed.'),
  format: z
    .enum(['generic', 'slack'])
    .default('generic')
    .describe('`generic` JSON, or a Slack incoming-webhook message with approve/deny links.'),
  secret: secretSource
    .optional()
    .describe('HMAC-SHA256 key: signs each delivery (X-Portcullis-Signature).'),
  timeoutMs: z.number().int().positive().default(5_000),
  retries: z
    .number()
    .int()
    .min(0)
    .max(20)
    .default(5)
    .describe('Attempts after the first, with exponential backoff.'),
});

const approvalsConfig = z.strictObject({
  publicUrl: z
    .url()
    .optional()
    .describe("The gateway API's address as approvers reach it (links in notifications)."),
  maxPendingPerPerson: z
    .number()
    .int()
    .min(1)
    .default(20)
    .describe(
      'Held statements one person may have waiting, on all gateways; their access requests are capped by the same number, counted on their own.',
    ),
  maxRequestsPerSession: z
    .number()
    .int()
    .min(1)
    .default(100)
    .describe('Approval requests one session may raise over its life.'),
  webhooks: z.array(approvalWebhook).default([]).describe('Notify approvers of new requests.'),
});

const stateConfig = z.strictObject({
  url: secretSource
    .optional()
    .describe(
      'postgres:// URL of the state database several gateways share (pending approvals, access grants). Omitted: embedded in dataDir (one process only).',
    ),
  poolSize: z.number().int().min(1).max(100).default(4),
  pollIntervalMs: z
    .number()
    .int()
    .min(50)
    .default(1_000)
    .describe('How often held statements re-read their request (besides LISTEN/NOTIFY).'),
  unavailableAfterMs: z
    .number()
    .int()
    .min(100)
    .default(10_000)
    .describe('Held statements are refused once the state database is unreachable this long.'),
});

const person = z.strictObject({
  subject: nonEmpty.describe('Stable id of the person.'),
  email: z.email(),
  name: nonEmpty.optional(),
  groups: z.array(nonEmpty).default([]),
});

const staticToken = z
  .strictObject({
    token: secretSource.optional().describe('The token a client sends as its password.'),
    sha256: z
      .string()
      .regex(/^[0-9a-f]{64}$/, 'expected 64 lowercase hex digits')
      .optional()
      .describe('SHA-256 (hex) of the token, so the file holds no usable secret.'),
    person,
    resources: z
      .array(nonEmpty)
      .optional()
      .describe('Resources this token may use; all when omitted.'),
  })
  .refine((t) => (t.token === undefined) !== (t.sha256 === undefined), {
    message: 'give exactly one of token or sha256',
  });

const identityConfig = z.strictObject({
  issuer: nonEmpty
    .default('urn:portcullis:gateway')
    .describe(
      'The `iss` of gateway credentials; gateways that share keys and delegations share it too.',
    ),
  keysDir: nonEmpty
    .default('keys')
    .describe('Signing keys of gateway credentials, relative to dataDir (0700, files 0600).'),
  credentialTtlMinutes: z
    .number()
    .int()
    .min(1)
    .max(60)
    .default(10)
    .describe('Lifetime of the gateway credentials clients send as their password.'),
  keyRotationHours: z.number().int().min(1).default(24).describe('How often signing keys rotate.'),
  oidc: z
    .strictObject({
      issuer: z
        .url()
        .describe("The IdP's issuer URL (discovery at /.well-known/openid-configuration)."),
      clientId: nonEmpty.describe('The public client the CLI logs in with (device flow, PKCE).'),
      audience: names
        .optional()
        .describe("Accepted `aud` of people's and agents' tokens (default: clientId)."),
      groupsClaim: nonEmpty.default('groups').describe('The claim that lists a person’s groups.'),
      scopes: names
        .default(['openid', 'email', 'profile', 'offline_access'])
        .describe('Scopes the CLI asks for.'),
      resource: nonEmpty
        .optional()
        .describe('RFC 8707 resource indicator the CLI asks tokens for (JWT access tokens).'),
      allowInsecureHttp: z
        .boolean()
        .default(false)
        .describe('Allow an http:// issuer (local tests and demos only).'),
      timeoutMs: z.number().int().positive().default(5_000),
    })
    .optional()
    .describe('People log in with this OpenID Connect provider.'),
  groupAccess: z
    .array(
      z.strictObject({
        groups: names.describe('Any of these groups…'),
        resources: names.describe('…may use these resources (`*` for all).'),
      }),
    )
    .default([])
    .describe('Which IdP groups may use which resources.'),
  agents: z
    .array(
      z.strictObject({
        id: nonEmpty.describe("The agent's OAuth client id at the IdP."),
        name: nonEmpty.describe('Shown on its sessions and events.'),
        ownResources: z
          .array(nonEmpty)
          .default([])
          .describe(
            'Resources the agent may use as itself, without a person’s delegation (its sessions are recorded as the agent).',
          ),
      }),
    )
    .default([])
    .describe('Agents that may exchange their IdP token for gateway credentials.'),
  delegationMaxHours: z
    .number()
    .int()
    .min(1)
    .default(168)
    .describe('The longest delegation a person may give an agent.'),
});

const limits = z.strictObject({
  maxFrameBytes: z
    .number()
    .int()
    .min(1024)
    .max(1024 ** 3)
    .default(64 * 1024 * 1024)
    .describe('Largest protocol message accepted in either direction.'),
  maxConnections: z.number().int().positive().default(10_000).describe('Per process.'),
  authTimeoutMs: z
    .number()
    .int()
    .positive()
    .default(30_000)
    .describe('Time a client has to finish startup and authentication.'),
  clientWriteBufferBytes: z
    .number()
    .int()
    .min(16 * 1024)
    .default(1024 * 1024)
    .describe('Output buffered for a slow client before the gateway stops reading upstream.'),
});

const GIB = 1024 ** 3;
const MIB = 1024 ** 2;

const eventSpool = z.strictObject({
  maxBytes: z
    .number()
    .int()
    .min(64 * 1024)
    .default(GIB)
    .describe(
      'Most bytes of spooled events on disk (per gateway process) waiting for their sinks (default 1 GiB).',
    ),
  whenFull: z
    .enum(['fail-closed', 'fail-open'])
    .default('fail-closed')
    .describe(
      'fail-closed: refuse new sessions and statements while events cannot be spooled; fail-open: keep serving and count dropped events.',
    ),
});

const eventStore = z.strictObject({
  kind: z
    .enum(['embedded', 'none'])
    .default('embedded')
    .describe('embedded: ClickHouse in the gateway (chDB) under dataDir/store; none: no store.'),
  retentionDays: z
    .number()
    .int()
    .min(1)
    .max(18_250)
    .default(365)
    .describe('Days events are kept in the store (ClickHouse TTL; at most 50 years).'),
  chainKey: secretSource
    .optional()
    .describe(
      'HMAC key of the per-session hash chains (at least 16 bytes). Default: a random key generated once into dataDir/events-chain.key (0600).',
    ),
});

const eventFile = z.strictObject({
  enabled: z
    .boolean()
    .default(true)
    .describe('Write every event as a JSON line to a file, for log shippers.'),
  path: nonEmpty
    .optional()
    .describe('The JSONL file, relative to dataDir unless absolute (default events.path).'),
  maxBytes: z
    .number()
    .int()
    .min(4096)
    .default(256 * MIB)
    .describe('The file is rotated (path.1, path.2, …) once it passes this size.'),
  keep: z.number().int().min(0).max(1000).default(5).describe('Rotated files kept.'),
});

const eventKafka = z.strictObject({
  brokers: names.describe('Bootstrap brokers, host:port.'),
  topic: nonEmpty.default('portcullis.events').describe('Events are keyed by session id.'),
  format: z
    .enum(['native', 'ocsf'])
    .default('native')
    .describe('native: the event JSON; ocsf: OCSF 1.3.0 Datastore Activity (6005) for SIEMs.'),
  compression: z.enum(['gzip', 'none']).default('gzip'),
  gzipLevel: z
    .number()
    .int()
    .min(1)
    .max(9)
    .default(1)
    .describe('gzip level: 1 is fastest (the default), 9 smallest.'),
  ssl: z.boolean().default(false).describe('TLS to the brokers (system CAs).'),
  sasl: z
    .strictObject({
      mechanism: z.enum(['plain', 'scram-sha-256', 'scram-sha-512']),
      username: nonEmpty,
      password: secretSource,
    })
    .optional(),
});

const eventClickHouse = z.strictObject({
  url: z.url().describe('HTTP(S) address of the server, e.g. http://clickhouse:8123.'),
  username: nonEmpty.optional(),
  password: secretSource.optional(),
  database: nonEmpty.optional(),
  table: nonEmpty.default('events'),
  schema: z
    .enum(['modern', 'legacy18'])
    .default('modern')
    .describe(
      'modern: the full schema with rollups (ClickHouse 22.3+); legacy18: a plain table for old servers.',
    ),
  retentionDays: z.number().int().min(1).max(18_250).default(365),
});

const events = z.strictObject({
  sink: z
    .literal('jsonl')
    .optional()
    .describe('Deprecated and ignored: every event goes through the spool to the sinks below.'),
  path: nonEmpty
    .default('events.jsonl')
    .describe('The JSONL event file, relative to dataDir unless absolute (see file).'),
  flushIntervalMs: z
    .number()
    .int()
    .positive()
    .max(10_000)
    .default(50)
    .describe(
      'Longest an event waits in memory before the spool writes and fsyncs it (the most a gateway crash can lose; shorter costs an fsync per batch).',
    ),
  dangerouslyRecordLiterals: z
    .boolean()
    .default(false)
    .describe(
      'Record statement text with its literal values (they may hold personal data or secrets).',
    ),
  spool: eventSpool
    .default({ maxBytes: GIB, whenFull: 'fail-closed' })
    .describe('The durable on-disk spool every event passes through, under dataDir/spool.'),
  store: eventStore
    .default({ kind: 'embedded', retentionDays: 365 })
    .describe('The event store `portcullis events`, `review` and `verify` read.'),
  file: eventFile
    .default({ enabled: true, maxBytes: 256 * MIB, keep: 5 })
    .describe('The JSONL file sink.'),
  kafka: eventKafka.optional().describe('Also publish every event to Kafka (SIEM export).'),
  clickhouse: eventClickHouse
    .optional()
    .describe('Also insert every event into a ClickHouse server (idempotent by event id).'),
  readerGroups: z
    .array(nonEmpty)
    .default([])
    .describe(
      'Groups whose members may read the store through the HTTP API (reviews, events, chain verification) while the gateway runs; empty: nobody.',
    ),
});

const maskingWorkers = z.strictObject({
  threads: z
    .union([z.literal('auto'), z.number().int().min(0).max(64)])
    .default('auto')
    .describe('Worker threads per process for large result chunks; 0 masks inline only.'),
  thresholdBytes: z
    .number()
    .int()
    .min(1024)
    .optional()
    .describe(
      'Chunks at least this large go to a worker (default measured by bench:masking-pool).',
    ),
  taskTimeoutMs: z
    .number()
    .int()
    .positive()
    .default(5_000)
    .describe('A chunk not masked in time ends the session (fail closed).'),
});

/** Schema of the whole configuration file. */
export const gatewayConfigSchema = z.strictObject({
  dataDir: nonEmpty.default('./.portcullis').describe('Where the gateway keeps its data.'),
  processes: z
    .union([z.literal('auto'), z.number().int().min(1).max(64)])
    .default(1)
    .describe('Gateway processes; `auto` = one per CPU core.'),
  log: z
    .strictObject({
      level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
    })
    .default({ level: 'info' }),
  listeners: z.strictObject({
    postgres: postgresListener,
    http: httpListener
      .optional()
      .describe('The HTTP API: health, readiness, Prometheus metrics (off when omitted).'),
  }),
  resources: z.record(
    z
      .string()
      .regex(
        /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/,
        'resource names are 1-63 of A-Z a-z 0-9 _ . -, starting with a letter or digit',
      ),
    postgresResource,
  ),
  tokens: z.array(staticToken).default([]),
  identity: identityConfig
    .optional()
    .describe('OIDC login, gateway credentials and agent delegations (needs listeners.http).'),
  limits: limits.default({
    maxFrameBytes: 64 * 1024 * 1024,
    maxConnections: 10_000,
    authTimeoutMs: 30_000,
    clientWriteBufferBytes: 1024 * 1024,
  }),
  masking: maskingWorkers
    .default({ threads: 'auto', taskTimeoutMs: 5_000 })
    .describe('Masking workers, shared by every resource that masks.'),
  state: stateConfig
    .default({ poolSize: 4, pollIntervalMs: 1_000, unavailableAfterMs: 10_000 })
    .describe('Where approvals and access grants live.'),
  approvals: approvalsConfig
    .default({ maxPendingPerPerson: 20, maxRequestsPerSession: 100, webhooks: [] })
    .describe('Approval limits and notifications.'),
  events: events
    .default({
      path: 'events.jsonl',
      flushIntervalMs: 50,
      dangerouslyRecordLiterals: false,
      spool: { maxBytes: GIB, whenFull: 'fail-closed' },
      store: { kind: 'embedded', retentionDays: 365 },
      file: { enabled: true, maxBytes: 256 * MIB, keep: 5 },
      readerGroups: [],
    })
    .describe('Session events: spool, store and file.'),
});

/** The configuration as written in the file (before defaults). */
export type GatewayConfigInput = z.input<typeof gatewayConfigSchema>;
/** The validated configuration, defaults applied. */
export type GatewayConfigParsed = z.output<typeof gatewayConfigSchema>;
/** A secret as the configuration names it. */
export type SecretSource = z.output<typeof secretSource>;
