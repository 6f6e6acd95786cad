import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join, relative, resolve } from 'node:path';
import { Command, InvalidArgumentError } from 'commander';
import { OidcClient } from '@portcullis/identity';
import {
  createLogger,
  resolveConfig,
  runGateway,
  type GatewayConfigInput,
} from '@portcullis/gateway';
import { startDemoIdp, type DemoIdp } from '../demo/demo-idp.js';
import { demoCertificate } from '../demo/self-signed-certificate.js';
import { startDemoUpstream } from '../demo/demo-upstream.js';
import { clockTime } from './cli-options.js';
import { postgresUrl } from './connection-strings.js';
import { GatewayApi, type IssuedGatewayCredential } from './gateway-api.js';
import { onShutdown } from './shutdown.js';

/** The demo's people; their tokens are generated once per data directory. */
const DEMO_PEOPLE = [
  {
    login: 'alice',
    person: {
      subject: 'alice',
      email: 'alice@example.com',
      name: 'Alice Martin',
      groups: ['engineering'],
    },
  },
  {
    login: 'bob',
    person: {
      subject: 'bob',
      email: 'bob@example.com',
      name: 'Bob Okafor',
      groups: ['dba', 'approvers'],
    },
  },
] as const;

/** The demo's agent: acts for the delegating person through the token exchange. */
const DEMO_AGENT = { clientId: 'report-bot', name: 'Report bot' } as const;
/** Who delegates to the agent when the demo starts (the other demo person is the approver). */
const DELEGATING_PERSON = 'alice';
/** The demo's one resource (the database name clients ask for). */
const DEMO_RESOURCE = 'demo';
/** The longest lifetimes the gateway allows: gateway credentials 60 minutes, delegations 7 days. */
const CREDENTIAL_TTL_MINUTES = 60;
const DELEGATION_TTL_MS = 7 * 86_400_000;

/** The demo's guardrails: what a newcomer can try to see a statement refused. */
const DEMO_POLICY: NonNullable<GatewayConfigInput['resources'][string]['policy']> = {
  default: 'allow',
  unparsable: 'block',
  rules: [
    {
      name: 'no-drop-or-truncate',
      action: 'block',
      match: { flags: ['drop', 'truncate'] },
      message: 'dropping or truncating tables is not allowed through the demo gateway',
    },
    {
      name: 'no-unbounded-writes',
      action: 'block',
      match: { flags: ['delete-without-where', 'update-without-where'] },
      message: 'DELETE and UPDATE need a WHERE clause',
    },
    {
      name: 'no-server-files',
      action: 'block',
      match: { flags: ['server-file-access', 'copy-program', 'copy-server-file'] },
    },
    {
      name: 'agents-changing-orders-need-approval',
      action: 'review',
      match: { kinds: ['insert', 'update', 'delete'], tablesWritten: ['orders'], agent: true },
      message: 'an agent changing orders needs an approver',
      approvers: { groups: ['approvers'] },
      timeoutSeconds: 600,
    },
  ],
};

/** The demo's masking: the personal data of `customers` comes back masked for everyone. */
function demoMasking(
  hashKey: string,
): NonNullable<GatewayConfigInput['resources'][string]['masking']> {
  return {
    hashKey: { value: hashKey },
    rules: [
      // A keyed pseudonym: equal emails stay equal, so joins and counts still work.
      { name: 'customer-email', columns: ['public.customers.email'], style: 'hash' },
      {
        name: 'customer-phone',
        columns: ['public.customers.phone'],
        style: { kind: 'partial', keepLast: 2 },
      },
      {
        name: 'customer-card',
        columns: ['public.customers.card_number'],
        style: { kind: 'partial', keepLast: 4 },
      },
      { name: 'national-id', names: ['national_id'], style: 'fixed-format' },
    ],
    detectors: { enabled: true },
  };
}

/** What the demo remembers between starts: its HTTP port and the delegation it created. */
interface DemoIdentityState {
  httpPort?: number;
  delegationId?: string;
}

function readIdentityState(dataDir: string): DemoIdentityState {
  const file = join(dataDir, 'demo-identity.json');
  return existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as DemoIdentityState) : {};
}

function writeIdentityState(dataDir: string, state: DemoIdentityState): void {
  writeFileSync(join(dataDir, 'demo-identity.json'), `${JSON.stringify(state, null, 2)}\n`, {
    mode: 0o600,
  });
}

/** `preferred` when it is free on 127.0.0.1 (0: any), else a free port. */
async function freeLoopbackPort(preferred: number): Promise<number> {
  const tryPort = (port: number): Promise<number | null> =>
    new Promise((resolvePort) => {
      const probe = createServer();
      probe.once('error', () => resolvePort(null));
      probe.listen({ host: '127.0.0.1', port }, () => {
        const { port: bound } = probe.address() as { port: number };
        probe.close(() => resolvePort(bound));
      });
    });
  return (await tryPort(preferred)) ?? (await tryPort(0))!;
}

/** The identity part of the demo's configuration: the demo IdP, both people, the agent. */
export function demoIdentityConfig(idp: DemoIdp): NonNullable<GatewayConfigInput['identity']> {
  return {
    credentialTtlMinutes: CREDENTIAL_TTL_MINUTES,
    oidc: {
      issuer: idp.issuer,
      clientId: idp.cliClientId,
      audience: [idp.resource, idp.cliClientId],
      resource: idp.resource,
      scopes: ['openid', 'email', 'profile', 'groups', 'offline_access'],
      allowInsecureHttp: true,
    },
    groupAccess: [
      {
        groups: [...new Set(DEMO_PEOPLE.flatMap(({ person }) => person.groups))],
        resources: [DEMO_RESOURCE],
      },
    ],
    agents: [{ id: DEMO_AGENT.clientId, name: DEMO_AGENT.name }],
  };
}

/** The demo's single-sign-on credentials: a person's, and the agent's acting for them. */
export interface DemoCredentials {
  readonly person: IssuedGatewayCredential;
  readonly agent: IssuedGatewayCredential;
  readonly delegation: { readonly id: string; readonly expiresAt: string };
}

/**
 * Through the gateway's real endpoints: signs {@link DELEGATING_PERSON} in at the demo IdP
 * (authorization code + PKCE, the IdP's sign-in page driven as a browser would), exchanges the
 * IdP token for their gateway credential, makes sure they have delegated the demo resource to
 * the agent (the delegation `knownDelegationId` when it is still active, else a new one), and
 * exchanges the agent's client-credentials token plus the delegation for the agent's credential.
 */
export async function demoCredentials(
  idp: DemoIdp,
  api: GatewayApi,
  knownDelegationId: string | undefined,
): Promise<DemoCredentials> {
  const cli = await OidcClient.discover({
    issuer: idp.issuer,
    clientId: idp.cliClientId,
    allowInsecureRequests: true,
  });
  const login = await cli.startPkceLogin({
    scope: 'openid email profile groups',
    resource: idp.resource,
    timeoutMs: 30_000,
  });
  const [tokens] = await Promise.all([
    login.tokens,
    idp.signIn(login.authorizationUrl, DELEGATING_PERSON),
  ]).finally(() => login.close());
  const person = await api.exchangePersonToken(tokens.accessToken);

  const active = await api.listDelegations(person.token);
  let delegation =
    active.find((d) => d.id === knownDelegationId) ??
    active.find((d) => d.agent === DEMO_AGENT.clientId && d.resources.includes(DEMO_RESOURCE));
  delegation ??= await api.createDelegation(person.token, {
    agent: DEMO_AGENT.clientId,
    resources: [DEMO_RESOURCE],
    ttlMs: DELEGATION_TTL_MS,
    reason: 'demo: the report bot reads the shop data for Alice',
  });

  const agentClient = await OidcClient.discover({
    issuer: idp.issuer,
    clientId: idp.agent.clientId,
    clientSecret: idp.agent.clientSecret,
    allowInsecureRequests: true,
  });
  const agentTokens = await agentClient.clientCredentials({ resource: idp.resource });
  const agent = await api.exchangeAgentToken({
    agentToken: agentTokens.accessToken,
    delegationId: delegation.id,
    resource: DEMO_RESOURCE,
  });
  return { person, agent, delegation: { id: delegation.id, expiresAt: delegation.expiresAt } };
}

function parsePort(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535)
    throw new InvalidArgumentError('expected a port number 0-65535');
  return n;
}

/** Demo tokens, created on first start and kept (mode 0600) so printed URLs stay valid. */
function demoTokens(dataDir: string): Record<string, string> {
  const file = join(dataDir, 'demo-tokens.json');
  if (existsSync(file)) return JSON.parse(readFileSync(file, 'utf8')) as Record<string, string>;
  const tokens = Object.fromEntries(
    DEMO_PEOPLE.map(({ login }) => [login, `pcl_demo_${randomBytes(18).toString('base64url')}`]),
  );
  writeFileSync(file, `${JSON.stringify(tokens, null, 2)}\n`, { mode: 0o600 });
  return tokens;
}

/** The demo's masking key, created on first start and kept (mode 0600) so pseudonyms stay stable. */
function demoMaskingKey(dataDir: string): string {
  const file = join(dataDir, 'demo-masking-key');
  if (existsSync(file)) return readFileSync(file, 'utf8').trim();
  const key = randomBytes(32).toString('base64url');
  writeFileSync(file, `${key}\n`, { mode: 0o600 });
  return key;
}

interface DemoOptions {
  host: string;
  port: number;
  dataDir: string;
  upstreamPort: number;
  httpPort?: number;
  idpPort?: number;
}

/** `portcullis demo`: the gateway in front of an embedded demo database, no services needed. */
export function demoCommand(): Command {
  return new Command('demo')
    .description('run the gateway on an embedded demo database (what `npm start` runs)')
    .option('--host <host>', 'address of the PostgreSQL listener', '127.0.0.1')
    .option('--port <port>', 'port of the PostgreSQL listener', parsePort, 6432)
    .option(
      '--data-dir <dir>',
      'where the demo keeps its database, events and keys',
      './.portcullis',
    )
    .option(
      '--upstream-port <port>',
      'port of the embedded demo database (0 = any free port)',
      parsePort,
      0,
    )
    .option(
      '--http-port <port>',
      "port of the gateway's HTTP API on 127.0.0.1 (default: the last one, else a free one)",
      parsePort,
    )
    .option(
      '--idp-port <port>',
      'port of the embedded OIDC provider on 127.0.0.1 (default: the last one, else a free one)',
      parsePort,
    )
    .action(async (opts: DemoOptions) => {
      const dataDir = resolve(opts.dataDir);
      mkdirSync(dataDir, { recursive: true, mode: 0o700 });
      const progress = (message: string): void => console.error(`  ${message}`);
      console.error('Starting the Portcullis demo…');
      const upstream = await startDemoUpstream({
        dataDir,
        host: '127.0.0.1',
        port: opts.upstreamPort,
        onProgress: progress,
      });
      const closeUpstream = async (): Promise<void> => {
        await upstream.close();
      };
      let idp: DemoIdp;
      try {
        idp = await startDemoIdp({
          dataDir,
          people: DEMO_PEOPLE.map(({ person }) => person),
          agent: DEMO_AGENT,
          ...(opts.idpPort === undefined ? {} : { port: opts.idpPort }),
        });
      } catch (err) {
        await closeUpstream();
        if ((err as NodeJS.ErrnoException).code === 'EADDRINUSE') {
          throw new Error(
            `port ${opts.idpPort} on 127.0.0.1 is in use; pick another with --idp-port`,
            {
              cause: err,
            },
          );
        }
        throw err;
      }
      progress(`identity provider (OIDC) on ${idp.issuer}`);
      const identityState = readIdentityState(dataDir);
      const httpPort = opts.httpPort ?? (await freeLoopbackPort(identityState.httpPort ?? 0));
      const certificate = await demoCertificate(dataDir);
      const tokens = demoTokens(dataDir);
      const input: GatewayConfigInput = {
        dataDir,
        processes: 1,
        listeners: {
          postgres: {
            host: opts.host,
            port: opts.port,
            tls: { cert: certificate.certPath, key: certificate.keyPath },
            insecure: true,
          },
          http: { host: '127.0.0.1', port: httpPort },
        },
        identity: demoIdentityConfig(idp),
        resources: {
          [DEMO_RESOURCE]: {
            policy: DEMO_POLICY,
            masking: demoMasking(demoMaskingKey(dataDir)),
            type: 'postgres',
            host: upstream.host,
            port: upstream.port,
            database: upstream.database,
            user: upstream.user,
          },
        },
        tokens: DEMO_PEOPLE.map(({ login, person }) => ({
          token: { value: tokens[login]! },
          person: { ...person, groups: [...person.groups] },
        })),
        // The demo's DBA may run access reviews while the demo runs.
        events: { readerGroups: ['dba'] },
        log: { level: 'warn' },
      };
      const config = resolveConfig(input, { baseDir: dataDir, env: process.env }, 'demo config');
      let running;
      try {
        running = await runGateway(config, createLogger(config.logLevel));
      } catch (err) {
        await idp.close();
        await closeUpstream();
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'EADDRINUSE') {
          throw new Error(
            `port ${opts.port} on ${opts.host} or HTTP port ${httpPort} is in use; pick others with --port and --http-port`,
            { cause: err },
          );
        }
        throw err;
      }
      const apiUrl = `http://127.0.0.1:${running.http?.port ?? httpPort}`;
      let sso: DemoCredentials;
      try {
        sso = await demoCredentials(idp, new GatewayApi(apiUrl), identityState.delegationId);
      } catch (err) {
        await running.close();
        await idp.close();
        await closeUpstream();
        throw new Error(`the demo could not sign its people in: ${(err as Error).message}`, {
          cause: err,
        });
      }
      writeIdentityState(dataDir, { httpPort, delegationId: sso.delegation.id });
      const delegator = DEMO_PEOPLE.find(({ login }) => login === DELEGATING_PERSON)!.person;
      const ssoUrl = (user: string, password: string): string =>
        postgresUrl({
          host: running.host,
          port: running.port,
          database: DEMO_RESOURCE,
          user,
          password,
          sslmode: 'require',
        });
      const relativeDir = relative(process.cwd(), dataDir) || '.';
      const shownDir = relativeDir.startsWith('..') ? dataDir : relativeDir;
      const eventsHint = shownDir === '.portcullis' ? '' : ` --data-dir ${shownDir}`;
      const lines = [
        '',
        'Portcullis demo is running.',
        '',
        `  gateway     postgresql://${running.host}:${running.port}  (TLS with a self-signed certificate; cleartext allowed for this demo)`,
        `  upstream    embedded PostgreSQL (PGlite) on ${upstream.host}:${upstream.port}: customers, orders, products with personal data`,
        `  events      ${join(shownDir, 'events.jsonl')}`,
        '',
        'Connect with psql, as:',
        ...DEMO_PEOPLE.map(
          ({ login, person }) =>
            `  ${login.padEnd(6)} (${person.email}, ${person.groups.join('+')}):  psql 'postgresql://${login}:${tokens[login]}@${running.host}:${running.port}/demo?sslmode=require'`,
        ),
        '',
        `With single sign-on (the demo's OIDC provider at ${idp.issuer}; these credentials are valid until ${clockTime(sso.person.expiresAt)}):`,
        `  ${delegator.name}:  psql '${ssoUrl(delegator.subject, sso.person.token)}'`,
        `  ${DEMO_AGENT.name} acting for ${delegator.name} (delegation ${sso.delegation.id}):  psql '${ssoUrl(DEMO_AGENT.clientId, sso.agent.token)}'`,
        '',
        'Log in yourself, as any demo person (the sign-in page lists them; no passwords), then get a fresh URL:',
        `  npx portcullis login --gateway ${apiUrl}${running.port === 6432 && running.host === '127.0.0.1' ? '' : ` --pg ${running.host}:${running.port}`}`,
        `  npx portcullis credentials --resource ${DEMO_RESOURCE} --sslmode require`,
        `  npx portcullis delegate --agent ${DEMO_AGENT.clientId} --resources ${DEMO_RESOURCE} --ttl 1h    (then: npx portcullis delegations)`,
        ...(idp.movedPort
          ? [
              `  (the IdP's port changed since the last start: earlier logins need a new portcullis login)`,
            ]
          : []),
        '',
        'Try the guardrails (refused with SQLSTATE 42501, naming the rule; the session carries on):',
        "  DROP TABLE customers;      DELETE FROM orders;      SELECT pg_read_file('/etc/passwd');",
        '',
        'Try the masking (personal data comes back masked; anything that could reveal it is refused):',
        '  SELECT full_name, email, phone, card_number, national_id FROM customers LIMIT 5;',
        "  SELECT upper(email) FROM customers;      SELECT id FROM customers WHERE email LIKE 'a%';",
        '',
        `Try an approval: as ${DEMO_AGENT.name} (its URL above) run  DELETE FROM orders WHERE id = 1;`,
        '  it waits, and the NOTICE names the approval; an approver (bob) releases or refuses it:',
        `  npx portcullis login --gateway ${apiUrl} --config-file ${join(shownDir, 'bob.json')}    (sign in as bob)`,
        `  npx portcullis approvals --config-file ${join(shownDir, 'bob.json')}`,
        `  npx portcullis approve ID --config-file ${join(shownDir, 'bob.json')}      (or: deny ID --reason "…")`,
        '',
        'Then see what was recorded, against whom:',
        `  npx portcullis events${eventsHint}                  (a table)`,
        `  npx portcullis events${eventsHint} --format json    (one JSON object per line)`,
        `  npx portcullis review activity --config-file ${join(shownDir, 'bob.json')}    (an access review, as bob, while the demo runs)`,
        '',
        'Ctrl-C stops the demo.',
        '',
      ];
      console.log(lines.join('\n'));
      onShutdown(async () => {
        await running.close();
        await idp.close();
        await closeUpstream();
      });
    });
}
