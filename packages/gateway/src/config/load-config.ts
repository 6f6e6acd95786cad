import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname, isAbsolute, resolve } from 'node:path';
import {
  PortcullisError,
  type Person,
  type PolicyRule,
  type RuleMatch,
  type StatementPolicy,
} from '@portcullis/core';
import {
  DETECTOR_KINDS,
  MIN_HASH_KEY_BYTES,
  createMasker,
  type DetectorKind,
  type MaskStyle,
} from '@portcullis/masking';
import { parse as parseYaml } from 'yaml';
import type { z } from 'zod';
import type { ApprovalPolicy } from '../approvals/approval-broker.js';
import {
  gatewayConfigSchema,
  type GatewayConfigInput,
  type GatewayConfigParsed,
  type SecretSource,
} from './config-schema.js';

/** An upstream PostgreSQL resource with its secret resolved. */
export interface PostgresResource {
  readonly name: string;
  readonly host: string;
  readonly port: number;
  readonly database: string;
  readonly user: string;
  /** null for trust authentication. */
  readonly password: string | null;
  readonly tls: {
    readonly mode: 'disable' | 'require' | 'verify-full';
    readonly ca: string | null;
    readonly serverName: string | null;
  };
  readonly connectTimeoutMs: number;
  readonly policy: StatementPolicy;
  /** Approval settings of the policy's `review` rules that name approvers, by rule name. */
  readonly approvals: ReadonlyMap<string, ApprovalPolicy>;
  /** null when the resource masks nothing. */
  readonly masking: ResourceMasking | null;
  /** Time-boxed access people may ask for; null when the resource takes no requests. */
  readonly accessRequests: {
    readonly groups: readonly string[];
    readonly count: number;
    readonly maxHours: number;
    readonly warnMinutes: number;
    readonly timeoutSeconds: number;
  } | null;
  /** Per-session roles instead of `user`/`password`; null for the static login. */
  readonly ephemeralRoles: {
    readonly templateRole: string;
    readonly admin: { readonly user: string; readonly password: string | null };
    readonly ttlMs: number;
    readonly prefix: string;
  } | null;
}

/** A column masking rule (see the `masking.rules` keys in docs/configuration.md). */
export interface MaskingRuleConfig {
  readonly name: string;
  /** `schema.table.column` or `table.column` globs, as written. */
  readonly columns: readonly string[];
  /** Column-name globs, as written. */
  readonly names: readonly string[];
  readonly style: MaskStyle;
  readonly shaping: 'refuse' | 'allow';
  readonly exemptGroups: readonly string[];
}

/** How one resource masks result values. */
export interface ResourceMasking {
  readonly rules: readonly MaskingRuleConfig[];
  /** null when content detectors are off. */
  readonly detectors: {
    readonly kinds: readonly DetectorKind[];
    readonly styles: Readonly<Partial<Record<DetectorKind, MaskStyle>>>;
  } | null;
  /** The HMAC key of the hash style (UTF-8 bytes of the secret); null when no style hashes. */
  readonly hashKey: string | null;
  readonly trustedFunctions: readonly string[];
  readonly catalogRefreshMs: number;
}

/** OIDC login, gateway credentials and agent delegations. */
export interface IdentityConfig {
  /** `iss` of gateway credentials. */
  readonly issuer: string;
  readonly keysDir: string;
  readonly credentialTtlMs: number;
  readonly keyRotationMs: number;
  readonly oidc: {
    readonly issuer: string;
    readonly clientId: string;
    readonly audience: readonly string[];
    readonly groupsClaim: string;
    readonly scopes: readonly string[];
    readonly resource: string | null;
    readonly allowInsecureHttp: boolean;
    readonly timeoutMs: number;
  } | null;
  readonly groupAccess: readonly {
    readonly groups: readonly string[];
    readonly resources: readonly string[];
  }[];
  readonly agents: readonly {
    readonly id: string;
    readonly name: string;
    readonly ownResources: readonly string[];
  }[];
  readonly delegationMaxMs: number;
}

/** Where session events go (see the `events` keys in docs/configuration.md). */
export interface EventsConfig {
  /** The JSONL file (the file sink's path; kept for readers of the file). */
  readonly path: string;
  /** Longest an event waits in memory before the spool writes and fsyncs it. */
  readonly flushIntervalMs: number;
  readonly recordLiterals: boolean;
  /** The durable spool; each gateway process uses `<dir>/<slot>`. */
  readonly spool: {
    readonly dir: string;
    readonly maxBytes: number;
    readonly whenFull: 'fail-closed' | 'fail-open';
  };
  /** The embedded store; null when `store.kind` is none. */
  readonly store: {
    readonly dir: string;
    readonly retentionDays: number;
    /** The hash chains' key from the configuration; null: generated into `chainKeyFile`. */
    readonly chainKey: string | null;
    readonly chainKeyFile: string;
  } | null;
  /** The JSONL file sink; null when disabled. */
  readonly file: {
    readonly path: string;
    readonly maxBytes: number;
    readonly keep: number;
  } | null;
  /** The Kafka sink; null when not configured. */
  readonly kafka: {
    readonly brokers: readonly string[];
    readonly topic: string;
    readonly format: 'native' | 'ocsf';
    readonly compression: 'gzip' | 'none';
    readonly gzipLevel: number;
    readonly ssl: boolean;
    readonly sasl: {
      readonly mechanism: 'plain' | 'scram-sha-256' | 'scram-sha-512';
      readonly username: string;
      readonly password: string;
    } | null;
  } | null;
  /** The ClickHouse server sink; null when not configured. */
  readonly clickhouse: {
    readonly url: string;
    readonly username: string | null;
    readonly password: string | null;
    readonly database: string | null;
    readonly table: string;
    readonly schema: 'modern' | 'legacy18';
    readonly retentionDays: number;
    /** Rows the server refuses go to a dead-letter file here. */
    readonly deadLetterDir: string;
  } | null;
  /** Groups whose members may read the store through the HTTP API (`/v1/reviews`, `/v1/events`). */
  readonly readerGroups: readonly string[];
}

/** Shortest hash-chain key accepted from the configuration. */
export const MIN_CHAIN_KEY_BYTES = 16;

/** What a static token grants. */
export interface TokenGrant {
  readonly person: Person;
  /** Resource names the token may use; null = all. */
  readonly resources: readonly string[] | null;
}

/**
 * The validated, resolved and frozen configuration: secrets read, paths absolute, PEM files
 * loaded. Plain data, so it can be handed to worker processes as it is.
 */
export interface GatewayConfig {
  readonly dataDir: string;
  readonly processes: number;
  readonly logLevel: string;
  readonly postgres: {
    readonly host: string;
    readonly port: number;
    readonly tls: { readonly cert: string; readonly key: string } | null;
    readonly insecure: boolean;
  };
  /** The HTTP API listener; null when off. */
  readonly http: {
    readonly host: string;
    readonly port: number;
    readonly maxBodyBytes: number;
  } | null;
  readonly resources: Readonly<Record<string, PostgresResource>>;
  /** Grants keyed by the SHA-256 (hex) of the token. */
  readonly tokens: Readonly<Record<string, TokenGrant>>;
  /** OIDC login, gateway credentials and delegations; null when off. */
  readonly identity: IdentityConfig | null;
  readonly limits: {
    readonly maxFrameBytes: number;
    readonly maxConnections: number;
    readonly authTimeoutMs: number;
    readonly clientWriteBufferBytes: number;
  };
  readonly events: EventsConfig;
  /** The state database: pending approvals and access grants. */
  readonly state: {
    /** postgres:// URL; null = embedded (PGlite) in `dataDir/state`, one process only. */
    readonly url: string | null;
    readonly poolSize: number;
    readonly pollIntervalMs: number;
    readonly unavailableAfterMs: number;
  };
  readonly approvals: {
    /** Base URL of the gateway API for links in notifications; null = no links. */
    readonly publicUrl: string | null;
    readonly maxPendingPerPerson: number;
    readonly maxRequestsPerSession: number;
    readonly webhooks: readonly ApprovalWebhookConfig[];
  };
  /** Masking workers, shared by the resources that mask. */
  readonly masking: {
    /** Worker threads per process; 0 masks inline only. */
    readonly threads: number;
    /** Chunks at least this large go to a worker; null = the measured default. */
    readonly thresholdBytes: number | null;
    readonly taskTimeoutMs: number;
  };
}

/** An outgoing approval notification target. */
export interface ApprovalWebhookConfig {
  readonly name: string;
  readonly url: string;
  readonly format: 'generic' | 'slack';
  /** HMAC-SHA256 key of delivery signatures; null = unsigned (links use the gateway's own key). */
  readonly secret: string | null;
  readonly timeoutMs: number;
  readonly retries: number;
}

/** Where relative paths and environment variables come from while resolving. */
export interface ResolveContext {
  /** Relative paths in the file are taken from here (the config file's folder). */
  readonly baseDir: string;
  readonly env: Readonly<Record<string, string | undefined>>;
  /** Overrides for dataDir; relative to the working directory. */
  readonly dataDir?: string;
}

/** Reads, validates and resolves a YAML configuration file. */
export function loadConfigFile(
  path: string,
  env: Readonly<Record<string, string | undefined>>,
  overrides: { dataDir?: string } = {},
): GatewayConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new PortcullisError(
      'PCL_ERR_CONFIG_READ',
      `cannot read config file ${path}: ${(err as Error).message}`,
      {
        cause: err,
      },
    );
  }
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (err) {
    throw new PortcullisError(
      'PCL_ERR_CONFIG_INVALID',
      `${path} is not valid YAML: ${(err as Error).message}`,
      {
        cause: err,
      },
    );
  }
  return resolveConfig(raw, { baseDir: dirname(resolve(path)), env, ...overrides }, path);
}

/** Validates and resolves a configuration object (already parsed from YAML or built in code). */
export function resolveConfig(raw: unknown, ctx: ResolveContext, source = 'config'): GatewayConfig {
  const parsed = gatewayConfigSchema.safeParse(raw ?? {});
  if (!parsed.success) {
    throw new PortcullisError(
      'PCL_ERR_CONFIG_INVALID',
      `${source} is invalid:\n${formatIssues(parsed.error.issues)}`,
    );
  }
  const cfg = parsed.data;
  const path = (p: string): string => (isAbsolute(p) ? p : resolve(ctx.baseDir, p));
  const readPem = (key: string, p: string): string => readSecretFile(key, path(p));

  const resources: Record<string, PostgresResource> = {};
  for (const [name, r] of Object.entries(cfg.resources)) {
    resources[name] = {
      name,
      host: r.host,
      port: r.port,
      database: r.database,
      user: r.user,
      password:
        r.password === undefined
          ? null
          : readSecret(`resources.${name}.password`, r.password, ctx, path),
      tls: {
        mode: r.tls.mode,
        ca: r.tls.ca === undefined ? null : readPem(`resources.${name}.tls.ca`, r.tls.ca),
        serverName: r.tls.serverName ?? null,
      },
      connectTimeoutMs: r.connectTimeoutMs,
      policy: resolvePolicy(`resources.${name}.policy`, r.policy),
      approvals: resolveApprovals(`resources.${name}.policy`, r.policy),
      accessRequests:
        r.accessRequests === undefined
          ? null
          : {
              groups: r.accessRequests.approvers.groups,
              count: r.accessRequests.approvers.count,
              maxHours: r.accessRequests.maxHours,
              warnMinutes: r.accessRequests.warnMinutes,
              timeoutSeconds: r.accessRequests.timeoutSeconds,
            },
      ephemeralRoles:
        r.ephemeralRoles === undefined
          ? null
          : {
              templateRole: r.ephemeralRoles.templateRole,
              admin: {
                user: r.ephemeralRoles.admin.user,
                password:
                  r.ephemeralRoles.admin.password === undefined
                    ? null
                    : readSecret(
                        `resources.${name}.ephemeralRoles.admin.password`,
                        r.ephemeralRoles.admin.password,
                        ctx,
                        path,
                      ),
              },
              ttlMs: r.ephemeralRoles.ttlMinutes * 60_000,
              prefix: r.ephemeralRoles.prefix,
            },
      masking:
        r.masking === undefined
          ? null
          : resolveMasking(`resources.${name}.masking`, r.masking, (key, source) =>
              readSecret(key, source, ctx, path),
            ),
    };
  }

  const tokens: Record<string, TokenGrant> = {};
  cfg.tokens.forEach((t, i) => {
    const key = `tokens.${i}`;
    for (const name of t.resources ?? []) {
      if (resources[name] === undefined) {
        throw invalid(
          `${key}.resources: no resource named "${name}" (known: ${Object.keys(resources).join(', ') || 'none'})`,
        );
      }
    }
    const digest = t.sha256 ?? sha256Hex(readSecret(`${key}.token`, t.token!, ctx, path));
    if (tokens[digest] !== undefined) throw invalid(`${key}: the same token is configured twice`);
    const { name, ...rest } = t.person;
    tokens[digest] = {
      person: { ...rest, ...(name === undefined ? {} : { name }) },
      resources: t.resources ?? null,
    };
  });

  const listener = cfg.listeners.postgres;
  const dataDir = resolve(ctx.dataDir ?? path(cfg.dataDir));
  const identity =
    cfg.identity === undefined ? null : resolveIdentity(cfg.identity, resources, dataDir);
  if (identity !== null && cfg.listeners.http === undefined) {
    throw invalid('identity: needs listeners.http (the token and delegation endpoints live there)');
  }
  const processes = cfg.processes === 'auto' ? Math.max(1, cpus().length) : cfg.processes;
  const stateUrl =
    cfg.state.url === undefined ? null : readSecret('state.url', cfg.state.url, ctx, path);
  if (stateUrl !== null && !/^postgres(ql)?:\/\//.test(stateUrl)) {
    throw invalid('state.url: must be a postgres:// or postgresql:// URL');
  }
  const needsState = Object.values(resources).some(
    (r) => r.approvals.size > 0 || r.accessRequests !== null,
  );
  if (needsState && stateUrl === null && processes > 1) {
    throw invalid(
      'state.url: approvers and access requests with several processes need a shared PostgreSQL state database; set state.url or use processes: 1',
    );
  }
  return deepFreeze({
    dataDir,
    processes,
    logLevel: cfg.log.level,
    postgres: {
      host: listener.host,
      port: listener.port,
      tls:
        listener.tls === undefined
          ? null
          : {
              cert: readPem('listeners.postgres.tls.cert', listener.tls.cert),
              key: readPem('listeners.postgres.tls.key', listener.tls.key),
            },
      insecure: listener.insecure,
    },
    http: cfg.listeners.http === undefined ? null : { ...cfg.listeners.http },
    resources,
    tokens,
    identity,
    limits: { ...cfg.limits },
    events: resolveEvents(cfg.events, dataDir, (key, source) => readSecret(key, source, ctx, path)),
    state: {
      url: stateUrl,
      poolSize: cfg.state.poolSize,
      pollIntervalMs: cfg.state.pollIntervalMs,
      unavailableAfterMs: cfg.state.unavailableAfterMs,
    },
    approvals: {
      publicUrl: cfg.approvals.publicUrl?.replace(/\/+$/, '') ?? null,
      maxPendingPerPerson: cfg.approvals.maxPendingPerPerson,
      maxRequestsPerSession: cfg.approvals.maxRequestsPerSession,
      webhooks: cfg.approvals.webhooks.map((w, i) => ({
        name: w.name,
        url: w.url,
        format: w.format,
        secret:
          w.secret === undefined
            ? null
            : readSecret(`approvals.webhooks.${i}.secret`, w.secret, ctx, path),
        timeoutMs: w.timeoutMs,
        retries: w.retries,
      })),
    },
    masking: {
      threads:
        cfg.masking.threads === 'auto'
          ? Math.max(1, Math.min(4, cpus().length - 1))
          : cfg.masking.threads,
      thresholdBytes: cfg.masking.thresholdBytes ?? null,
      taskTimeoutMs: cfg.masking.taskTimeoutMs,
    },
  });
}

function resolveIdentity(
  id: NonNullable<GatewayConfigParsed['identity']>,
  resources: Readonly<Record<string, PostgresResource>>,
  dataDir: string,
): IdentityConfig {
  const known = (key: string, names: readonly string[]): void => {
    for (const name of names) {
      if (name !== '*' && resources[name] === undefined) {
        throw invalid(
          `${key}: no resource named "${name}" (known: ${Object.keys(resources).join(', ') || 'none'})`,
        );
      }
    }
  };
  id.groupAccess.forEach((g, i) => known(`identity.groupAccess.${i}.resources`, g.resources));
  const seen = new Set<string>();
  id.agents.forEach((a, i) => {
    if (seen.has(a.id)) throw invalid(`identity.agents.${i}.id: agent "${a.id}" is listed twice`);
    seen.add(a.id);
    known(`identity.agents.${i}.ownResources`, a.ownResources);
  });
  return {
    issuer: id.issuer,
    keysDir: isAbsolute(id.keysDir) ? id.keysDir : resolve(dataDir, id.keysDir),
    credentialTtlMs: id.credentialTtlMinutes * 60_000,
    keyRotationMs: id.keyRotationHours * 3_600_000,
    oidc:
      id.oidc === undefined
        ? null
        : {
            issuer: id.oidc.issuer,
            clientId: id.oidc.clientId,
            audience: id.oidc.audience ?? [id.oidc.clientId],
            groupsClaim: id.oidc.groupsClaim,
            scopes: id.oidc.scopes,
            resource: id.oidc.resource ?? null,
            allowInsecureHttp: id.oidc.allowInsecureHttp,
            timeoutMs: id.oidc.timeoutMs,
          },
    groupAccess: id.groupAccess.map((g) => ({ groups: g.groups, resources: g.resources })),
    agents: id.agents.map((a) => ({ id: a.id, name: a.name, ownResources: a.ownResources })),
    delegationMaxMs: id.delegationMaxHours * 3_600_000,
  };
}

function resolveEvents(
  ev: GatewayConfigParsed['events'],
  dataDir: string,
  secret: (key: string, source: SecretSource) => string,
): EventsConfig {
  const inData = (p: string): string => (isAbsolute(p) ? p : resolve(dataDir, p));
  if (ev.file.path !== undefined && ev.path !== 'events.jsonl' && ev.file.path !== ev.path) {
    throw invalid('events.file.path: events.path names the file too; give only one of them');
  }
  const filePath = inData(ev.file.path ?? ev.path);
  let store: EventsConfig['store'] = null;
  if (ev.store.kind === 'embedded') {
    const chainKey =
      ev.store.chainKey === undefined ? null : secret('events.store.chainKey', ev.store.chainKey);
    if (chainKey !== null && Buffer.byteLength(chainKey, 'utf8') < MIN_CHAIN_KEY_BYTES) {
      throw invalid(
        `events.store.chainKey: the key must be at least ${MIN_CHAIN_KEY_BYTES} bytes long`,
      );
    }
    store = {
      dir: resolve(dataDir, 'store'),
      retentionDays: ev.store.retentionDays,
      chainKey,
      chainKeyFile: resolve(dataDir, 'events-chain.key'),
    };
  }
  return {
    path: filePath,
    flushIntervalMs: ev.flushIntervalMs,
    recordLiterals: ev.dangerouslyRecordLiterals,
    spool: {
      dir: resolve(dataDir, 'spool'),
      maxBytes: ev.spool.maxBytes,
      whenFull: ev.spool.whenFull,
    },
    store,
    file: ev.file.enabled
      ? { path: filePath, maxBytes: ev.file.maxBytes, keep: ev.file.keep }
      : null,
    kafka:
      ev.kafka === undefined
        ? null
        : {
            brokers: ev.kafka.brokers,
            topic: ev.kafka.topic,
            format: ev.kafka.format,
            compression: ev.kafka.compression,
            gzipLevel: ev.kafka.gzipLevel,
            ssl: ev.kafka.ssl,
            sasl:
              ev.kafka.sasl === undefined
                ? null
                : {
                    mechanism: ev.kafka.sasl.mechanism,
                    username: ev.kafka.sasl.username,
                    password: secret('events.kafka.sasl.password', ev.kafka.sasl.password),
                  },
          },
    clickhouse:
      ev.clickhouse === undefined
        ? null
        : {
            url: ev.clickhouse.url,
            username: ev.clickhouse.username ?? null,
            password:
              ev.clickhouse.password === undefined
                ? null
                : secret('events.clickhouse.password', ev.clickhouse.password),
            database: ev.clickhouse.database ?? null,
            table: ev.clickhouse.table,
            schema: ev.clickhouse.schema,
            retentionDays: ev.clickhouse.retentionDays,
            deadLetterDir: resolve(dataDir, 'dead-letter'),
          },
    readerGroups: ev.readerGroups,
  };
}

type ParsedMasking = NonNullable<GatewayConfigParsed['resources'][string]['masking']>;

/** A style as the file may write it (`partial` or `{ kind: partial, keepLast: 2 }`). */
function styleOf(style: ParsedMasking['rules'][number]['style']): MaskStyle {
  if (typeof style === 'string') return { kind: style };
  return Object.fromEntries(
    Object.entries(style).filter(([, value]) => value !== undefined),
  ) as MaskStyle;
}

function resolveMasking(
  key: string,
  masking: ParsedMasking,
  secret: (key: string, source: SecretSource) => string,
): ResourceMasking {
  const seen = new Set<string>();
  const rules = masking.rules.map((rule, i): MaskingRuleConfig => {
    if (seen.has(rule.name))
      throw invalid(`${key}.rules.${i}.name: rule "${rule.name}" is defined twice`);
    seen.add(rule.name);
    return {
      name: rule.name,
      columns: rule.columns ?? [],
      names: rule.names ?? [],
      style: styleOf(rule.style),
      shaping: rule.shaping,
      exemptGroups: rule.exemptGroups ?? [],
    };
  });
  const detectorStyles: Partial<Record<DetectorKind, MaskStyle>> = {};
  for (const [kind, style] of Object.entries(masking.detectors.styles ?? {})) {
    if (style !== undefined) detectorStyles[kind as DetectorKind] = styleOf(style);
  }
  const detectors = masking.detectors.enabled
    ? { kinds: masking.detectors.kinds ?? [...DETECTOR_KINDS], styles: detectorStyles }
    : null;
  const hashKey = masking.hashKey === undefined ? null : secret(`${key}.hashKey`, masking.hashKey);
  if (hashKey !== null && Buffer.byteLength(hashKey, 'utf8') < MIN_HASH_KEY_BYTES) {
    throw invalid(`${key}.hashKey: the key must be at least ${MIN_HASH_KEY_BYTES} bytes long`);
  }
  const keyed = hashKey === null ? {} : { hashKey: Buffer.from(hashKey, 'utf8') };
  const check = (at: string, style: MaskStyle): void => {
    if (style.kind === 'hash' && hashKey === null) {
      throw invalid(
        `${at}: the hash style needs ${key}.hashKey (a secret of at least ${MIN_HASH_KEY_BYTES} bytes)`,
      );
    }
    try {
      createMasker(style, keyed);
    } catch (err) {
      throw invalid(`${at}: ${(err as Error).message}`);
    }
  };
  rules.forEach((rule, i) => check(`${key}.rules.${i}.style`, rule.style));
  for (const [kind, style] of Object.entries(detectorStyles)) {
    check(`${key}.detectors.styles.${kind}`, style);
  }
  return {
    rules,
    detectors,
    hashKey,
    trustedFunctions: masking.trustedFunctions ?? [],
    catalogRefreshMs: masking.catalogRefreshSeconds * 1000,
  };
}

function resolvePolicy(
  key: string,
  policy: GatewayConfigParsed['resources'][string]['policy'],
): StatementPolicy {
  const seen = new Set<string>();
  const rules: PolicyRule[] = policy.rules.map((rule, i) => {
    if (seen.has(rule.name))
      throw invalid(`${key}.rules.${i}.name: rule "${rule.name}" is defined twice`);
    seen.add(rule.name);
    // zod leaves absent optional keys as undefined; the policy model has them absent.
    const match = Object.fromEntries(
      Object.entries(rule.match).filter(([, value]) => value !== undefined),
    ) as RuleMatch;
    return {
      name: rule.name,
      action: rule.action,
      match,
      ...(rule.message === undefined ? {} : { message: rule.message }),
    };
  });
  return { default: policy.default, unparsable: policy.unparsable, rules };
}

/** Default wait for a decision on a held statement. */
const DEFAULT_APPROVAL_TIMEOUT_SECONDS = 300;

function resolveApprovals(
  key: string,
  policy: GatewayConfigParsed['resources'][string]['policy'],
): Map<string, ApprovalPolicy> {
  const approvals = new Map<string, ApprovalPolicy>();
  policy.rules.forEach((rule, i) => {
    const set =
      rule.approvers !== undefined ||
      rule.timeoutSeconds !== undefined ||
      rule.allowSelfApproval !== undefined;
    if (set && rule.action !== 'review') {
      throw invalid(
        `${key}.rules.${i}: approvers, timeoutSeconds and allowSelfApproval apply to review rules only`,
      );
    }
    if (rule.approvers === undefined) {
      if (set) throw invalid(`${key}.rules.${i}.approvers: name the groups that may approve`);
      return;
    }
    approvals.set(rule.name, {
      groups: rule.approvers.groups,
      count: rule.approvers.count,
      timeoutSeconds: rule.timeoutSeconds ?? DEFAULT_APPROVAL_TIMEOUT_SECONDS,
      allowSelfApproval: rule.allowSelfApproval ?? false,
    });
  });
  return approvals;
}

/** SHA-256 of a token, hex; how tokens are looked up (so lookups never compare secrets). */
export function sha256Hex(value: string): string {
  return createHash('sha256').update(value, 'utf8').digest('hex');
}

/** Writes input type for callers who build configuration in code. */
export type { GatewayConfigInput };

function formatIssues(issues: readonly z.core.$ZodIssue[]): string {
  return issues
    .map((issue) => {
      const at = issue.path.length === 0 ? '(top level)' : issue.path.join('.');
      let message = issue.message;
      if (issue.code === 'unrecognized_keys')
        message = `unknown key(s) ${issue.keys.map((k) => `"${k}"`).join(', ')}`;
      else if (issue.code === 'invalid_union') message = `${message}: ${describeUnion(issue)}`;
      return `  - ${at}: ${message}`;
    })
    .join('\n');
}

function describeUnion(issue: z.core.$ZodIssueInvalidUnion): string {
  return issue.errors
    .map((branch) => branch.map((i) => i.message.replace(/^Invalid input: /, '')).join(', '))
    .join(' or ');
}

function readSecret(
  key: string,
  source: SecretSource,
  ctx: ResolveContext,
  path: (p: string) => string,
): string {
  if (source.value !== undefined) return source.value;
  if (source.env !== undefined) {
    const value = ctx.env[source.env];
    if (value === undefined || value === '') {
      throw new PortcullisError(
        'PCL_ERR_CONFIG_SECRET',
        `${key}: environment variable ${source.env} is not set`,
      );
    }
    return value;
  }
  return readSecretFile(key, path(source.file!)).trim();
}

function readSecretFile(key: string, file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    throw new PortcullisError(
      'PCL_ERR_CONFIG_SECRET',
      `${key}: cannot read ${file}: ${(err as Error).message}`,
      {
        cause: err,
      },
    );
  }
}

function invalid(message: string): PortcullisError {
  return new PortcullisError('PCL_ERR_CONFIG_INVALID', `config is invalid:\n  - ${message}`);
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}
