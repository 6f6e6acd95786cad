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
import { parse as parseYaml } from 'yaml';
import type { z } from 'zod';
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
}

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
  readonly resources: Readonly<Record<string, PostgresResource>>;
  /** Grants keyed by the SHA-256 (hex) of the token. */
  readonly tokens: Readonly<Record<string, TokenGrant>>;
  readonly limits: {
    readonly maxFrameBytes: number;
    readonly maxConnections: number;
    readonly authTimeoutMs: number;
    readonly clientWriteBufferBytes: number;
  };
  readonly events: {
    readonly path: string;
    readonly flushIntervalMs: number;
    readonly recordLiterals: boolean;
  };
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
  return deepFreeze({
    dataDir,
    processes: cfg.processes === 'auto' ? Math.max(1, cpus().length) : cfg.processes,
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
    resources,
    tokens,
    limits: { ...cfg.limits },
    events: {
      path: isAbsolute(cfg.events.path) ? cfg.events.path : resolve(dataDir, cfg.events.path),
      flushIntervalMs: cfg.events.flushIntervalMs,
      recordLiterals: cfg.events.dangerouslyRecordLiterals,
    },
  });
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
