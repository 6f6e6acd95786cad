// An in-process Portcullis gateway for integration suites: listens on a free loopback port, keeps
// its data (the event file) in a temporary directory, and points its resources at the shared
// PostgreSQL server of the integration run (or at any server a suite names).
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { SessionEvent } from '@portcullis/core';
import {
  createLogger,
  JsonlEventSink,
  resolveConfig,
  startGateway,
  startGatewayApi,
  type Gateway,
  type GatewayConfig,
  type GatewayConfigInput,
} from '@portcullis/gateway';
import type { PostgresCredentials } from '@portcullis/testkit';
import pg from 'pg';
import { inject } from 'vitest';
import type { SharedPostgres } from '../provided.js';

/** The raw (file-shaped) configuration of one resource. */
export type ResourceInput = GatewayConfigInput['resources'][string];

/** A token the fixture configures, with the person it stands for. */
export interface TokenSpec {
  readonly token: string;
  readonly subject: string;
  readonly email: string;
  readonly name?: string;
  readonly groups?: readonly string[];
  /** Resources the token may use; all when omitted. */
  readonly resources?: readonly string[];
}

/** Options of {@link startGatewayFixture}. */
export interface GatewayFixtureOptions {
  /** Resources by name (the database name a client asks for). */
  readonly resources: Readonly<Record<string, ResourceInput>>;
  /** Tokens; default: {@link ALICE} only, allowed everywhere. */
  readonly tokens?: readonly TokenSpec[];
  /** Listener settings; default: plain TCP with `insecure: true` (token in cleartext). */
  readonly listener?: { readonly insecure?: boolean; readonly tls?: { cert: string; key: string } };
  readonly limits?: GatewayConfigInput['limits'];
  /** Masking workers (threads, threshold, timeout). */
  readonly masking?: GatewayConfigInput['masking'];
  /** OIDC login, gateway credentials, delegations; starts the HTTP API on a free port too. */
  readonly identity?: GatewayConfigInput['identity'];
  /** Approval limits and notifications (`approvals`: publicUrl, webhooks). */
  readonly approvals?: GatewayConfigInput['approvals'];
  /** The state database (`state.url` for a shared one; embedded in dataDir by default). */
  readonly state?: GatewayConfigInput['state'];
  /** Test-only fault for masking workers (the process needs PORTCULLIS_TEST_HOOKS=1). */
  readonly maskingFault?: () => 'exit' | 'throw' | 'uncaught' | 'hang' | undefined;
  readonly events?: {
    readonly flushIntervalMs?: number;
    readonly dangerouslyRecordLiterals?: boolean;
    /**
     * Run the gateway's own event pipeline (spool, file and store sinks) with these settings;
     * without it the fixture writes the JSONL file directly.
     */
    readonly pipeline?: Pick<
      NonNullable<GatewayConfigInput['events']>,
      'spool' | 'store' | 'file' | 'kafka' | 'clickhouse' | 'readerGroups'
    >;
  };
}

/** A running in-process gateway. */
export interface GatewayFixture {
  readonly gateway: Gateway;
  readonly config: GatewayConfig;
  /** The HTTP API's base URL when the fixture serves it (identity configured), else null. */
  readonly apiUrl: string | null;
  readonly host: string;
  readonly port: number;
  /** Temporary directory holding dataDir and any file the suite writes with {@link writeFile}. */
  readonly dir: string;
  readonly eventsPath: string;
  /** pg client settings for `database` (a resource name) with `token` (default ALICE's). */
  clientConfig(database: string, overrides?: pg.ClientConfig): pg.ClientConfig;
  /** Connects a pg client through the gateway; the fixture ends it on close. */
  connect(database: string, overrides?: pg.ClientConfig): Promise<pg.Client>;
  /** Writes a file into the fixture's directory; returns its path. */
  writeFile(name: string, contents: string): Promise<string>;
  /** Flushes the event sink and reads every event; fails on any line that does not parse. */
  readEvents(): Promise<SessionEvent[]>;
  /** Reads events until `ready(events)` holds (sessions end asynchronously after a client closes). */
  waitForEvents(
    ready: (events: SessionEvent[]) => boolean,
    timeoutMs?: number,
  ): Promise<SessionEvent[]>;
  /**
   * The events of the one session whose client set `application_name` to `application`, in
   * order, once that session has ended.
   */
  sessionEvents(application: string, timeoutMs?: number): Promise<SessionEvent[]>;
  /** The event file's raw text. */
  readEventText(): Promise<string>;
  /** Ends the fixture's pg clients and closes the gateway (flushing events). Idempotent. */
  close(): Promise<void>;
  /** close(), then removes the temporary directory. */
  dispose(): Promise<void>;
}

/** The shared PostgreSQL server of the integration run. */
export function sharedPostgres(): SharedPostgres {
  return inject('postgres');
}

/** A fresh random token. */
export function newToken(prefix = 'pcl'): string {
  return `${prefix}_${randomBytes(18).toString('base64url')}`;
}

/** The default person: may use every resource. */
export const ALICE: TokenSpec = {
  token: newToken('alice'),
  subject: 'user-alice',
  email: 'alice@example.com',
  name: 'Alice Example',
  groups: ['eng', 'oncall'],
};

/** A resource on the shared server (`role`: which testkit role the gateway logs in as). */
export function sharedResource(
  database: string,
  role: keyof SharedPostgres['roles'] | PostgresCredentials = 'scram',
  extra: Partial<ResourceInput> = {},
): ResourceInput {
  const pgServer = sharedPostgres();
  const credentials = typeof role === 'string' ? pgServer.roles[role] : role;
  return {
    type: 'postgres',
    host: pgServer.host,
    port: pgServer.port,
    database,
    user: credentials.user,
    password: { value: credentials.password },
    connectTimeoutMs: 5_000,
    ...extra,
  };
}

/** A `state.url` on the shared server: `database` as the scram role (a shared state database). */
export function sharedStateUrl(database: string): string {
  const { host, port, roles } = sharedPostgres();
  const { user, password } = roles.scram;
  return `postgresql://${user}:${encodeURIComponent(password)}@${host}:${port}/${database}`;
}

/** pg settings for the shared server's superuser over TCP. */
export function superuserConfig(database = 'postgres'): pg.ClientConfig {
  const pgServer = sharedPostgres();
  return {
    host: pgServer.host,
    port: pgServer.port,
    user: pgServer.superuser.user,
    password: pgServer.superuser.password,
    database,
  };
}

/** Runs SQL on the shared server as the superuser. */
export async function superuserQuery(sql: string, database = 'postgres'): Promise<pg.QueryResult> {
  const client = new pg.Client(superuserConfig(database));
  client.on('error', () => undefined);
  await client.connect();
  try {
    return await client.query(sql);
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** (Re)creates a database on the shared server that every testkit role may use. */
export async function createSharedDatabase(name: string): Promise<void> {
  const ident = `"${name.replaceAll('"', '""')}"`;
  const roles = Object.values(sharedPostgres().roles)
    .map((r) => `"${r.user}"`)
    .join(', ');
  await superuserQuery(`DROP DATABASE IF EXISTS ${ident} WITH (FORCE)`);
  await superuserQuery(`CREATE DATABASE ${ident}`);
  await superuserQuery(`GRANT ALL ON DATABASE ${ident} TO ${roles}`);
  await superuserQuery(`GRANT ALL ON SCHEMA public TO ${roles}`, name);
}

/** Drops a database made by {@link createSharedDatabase}. */
export async function dropSharedDatabase(name: string): Promise<void> {
  await superuserQuery(`DROP DATABASE IF EXISTS "${name.replaceAll('"', '""')}" WITH (FORCE)`);
}

/** Starts an in-process gateway on 127.0.0.1, port 0, with a temporary dataDir. */
export async function startGatewayFixture(options: GatewayFixtureOptions): Promise<GatewayFixture> {
  const dir = await mkdtemp(join(tmpdir(), 'portcullis-it-'));
  const tokens = options.tokens ?? [ALICE];
  const raw: GatewayConfigInput = {
    dataDir: join(dir, 'data'),
    log: { level: 'silent' },
    listeners: {
      postgres: {
        host: '127.0.0.1',
        port: 0,
        insecure: options.listener?.insecure ?? true,
        ...(options.listener?.tls === undefined ? {} : { tls: options.listener.tls }),
      },
      ...(options.identity === undefined ? {} : { http: { host: '127.0.0.1', port: 0 } }),
    },
    resources: { ...options.resources },
    tokens: tokens.map((t) => ({
      token: { value: t.token },
      person: {
        subject: t.subject,
        email: t.email,
        ...(t.name === undefined ? {} : { name: t.name }),
        groups: [...(t.groups ?? [])],
      },
      ...(t.resources === undefined ? {} : { resources: [...t.resources] }),
    })),
    ...(options.limits === undefined ? {} : { limits: options.limits }),
    ...(options.masking === undefined ? {} : { masking: options.masking }),
    ...(options.identity === undefined ? {} : { identity: options.identity }),
    ...(options.approvals === undefined ? {} : { approvals: options.approvals }),
    ...(options.state === undefined ? {} : { state: options.state }),
    events: {
      flushIntervalMs: options.events?.flushIntervalMs ?? 20,
      dangerouslyRecordLiterals: options.events?.dangerouslyRecordLiterals ?? false,
      ...options.events?.pipeline,
    },
  };
  let config: GatewayConfig;
  let gateway: Gateway;
  let sink: JsonlEventSink | null = null;
  let api: { port: number; close(): void } | null = null;
  try {
    config = resolveConfig(raw, { baseDir: dir, env: {} }, 'test config');
    const logger = createLogger('silent');
    if (options.events?.pipeline === undefined) {
      sink = new JsonlEventSink({
        path: config.events.path,
        flushIntervalMs: config.events.flushIntervalMs,
        logger,
      });
    }
    gateway = await startGateway(config, {
      logger,
      ...(sink === null ? {} : { sink }),
      ...(options.maskingFault === undefined ? {} : { maskingFault: options.maskingFault }),
    });
    const started = gateway;
    api = await startGatewayApi(
      config,
      logger,
      { ready: () => started.accepting, metrics: () => started.metrics.text() },
      gateway.identity,
    );
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }

  const clients = new Set<pg.Client>();
  let closing: Promise<void> | null = null;
  const eventsPath = config.events.path;

  const clientConfig = (database: string, overrides: pg.ClientConfig = {}): pg.ClientConfig => ({
    host: gateway.postgres.host,
    port: gateway.postgres.port,
    user: 'someone',
    password: ALICE.token,
    database,
    connectionTimeoutMillis: 10_000,
    ...overrides,
  });

  const readEventText = async (): Promise<string> => {
    if (closing === null) await (sink?.flush() ?? gateway.events?.drain(10_000));
    return existsSync(eventsPath) ? readFile(eventsPath, 'utf8') : '';
  };

  const readEvents = async (): Promise<SessionEvent[]> => {
    const text = await readEventText();
    return text
      .split('\n')
      .filter((line) => line !== '')
      .map((line, i) => {
        try {
          return JSON.parse(line) as SessionEvent;
        } catch (err) {
          throw new Error(`line ${i + 1} of ${eventsPath} is not JSON: ${line.slice(0, 200)}`, {
            cause: err,
          });
        }
      });
  };

  const close = (): Promise<void> => {
    closing ??= (async () => {
      await Promise.all([...clients].map((c) => c.end().catch(() => undefined)));
      api?.close();
      await gateway.close();
    })();
    return closing;
  };

  const waitForEvents = async (
    ready: (events: SessionEvent[]) => boolean,
    timeoutMs = 10_000,
  ): Promise<SessionEvent[]> => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const events = await readEvents();
      if (ready(events)) return events;
      if (Date.now() > deadline) {
        throw new Error(
          `events did not reach the expected state within ${timeoutMs} ms; have ${events.length}:\n` +
            events
              .slice(-20)
              .map((e) => `${e.sessionId.slice(0, 8)} #${e.seq} ${e.type}`)
              .join('\n'),
        );
      }
      await sleep(25);
    }
  };

  return {
    gateway,
    config,
    apiUrl: api === null ? null : `http://127.0.0.1:${api.port}`,
    host: gateway.postgres.host,
    port: gateway.postgres.port,
    dir,
    eventsPath,
    clientConfig,
    async connect(database, overrides) {
      const client = new pg.Client(clientConfig(database, overrides));
      // A FATAL from the gateway outside a query is emitted as 'error'; suites that care listen
      // themselves, and the next query on the client fails anyway.
      client.on('error', () => undefined);
      await client.connect();
      clients.add(client);
      return client;
    },
    async writeFile(name, contents) {
      const path = join(dir, name);
      await writeFile(path, contents, { mode: 0o600 });
      return path;
    },
    readEvents,
    waitForEvents,
    async sessionEvents(application, timeoutMs) {
      const ended = (e: SessionEvent): boolean =>
        e.type === 'session.end' && e.client.application === application;
      const events = await waitForEvents((all) => all.some(ended), timeoutMs);
      const sessionId = events.find(ended)!.sessionId;
      return events.filter((e) => e.sessionId === sessionId);
    },
    readEventText,
    close,
    async dispose() {
      await close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Events grouped by session, each group in file order. */
export function bySession(events: readonly SessionEvent[]): Map<string, SessionEvent[]> {
  const sessions = new Map<string, SessionEvent[]>();
  for (const event of events) {
    const list = sessions.get(event.sessionId) ?? [];
    list.push(event);
    sessions.set(event.sessionId, list);
  }
  return sessions;
}

/** The number of `session.end` events. */
export function endedSessions(events: readonly SessionEvent[]): number {
  return events.filter((e) => e.type === 'session.end').length;
}

/** Runs a query and returns the rejection (fails when the query succeeds). */
export async function queryError(
  client: pg.Client,
  sql: string | pg.QueryConfig,
): Promise<Error & { code?: string; severity?: string; hint?: string; detail?: string }> {
  try {
    await client.query(sql);
  } catch (err) {
    return err as Error & { code?: string };
  }
  throw new Error(`expected ${JSON.stringify(sql)} to fail`);
}

/** Connects a pg client and returns the rejection (fails when the connection succeeds). */
export async function connectError(
  config: pg.ClientConfig,
): Promise<Error & { code?: string; severity?: string; hint?: string; detail?: string }> {
  const client = new pg.Client(config);
  client.on('error', () => undefined);
  try {
    await client.connect();
  } catch (err) {
    return err as Error & { code?: string };
  }
  await client.end().catch(() => undefined);
  throw new Error('expected the connection to be refused');
}

export async function sleep(ms: number): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, ms));
}
