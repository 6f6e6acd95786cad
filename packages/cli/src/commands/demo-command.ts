import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { Command, InvalidArgumentError } from 'commander';
import {
  createLogger,
  resolveConfig,
  runGateway,
  type GatewayConfigInput,
} from '@portcullis/gateway';
import { demoCertificate } from '../demo/self-signed-certificate.js';
import { startDemoUpstream } from '../demo/demo-upstream.js';
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
    .action(async (opts: { host: string; port: number; dataDir: string; upstreamPort: number }) => {
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
        },
        resources: {
          demo: {
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
        log: { level: 'warn' },
      };
      const config = resolveConfig(input, { baseDir: dataDir, env: process.env }, 'demo config');
      let running;
      try {
        running = await runGateway(config, createLogger(config.logLevel));
      } catch (err) {
        await upstream.close();
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'EADDRINUSE') {
          throw new Error(`port ${opts.port} on ${opts.host} is in use; pick another with --port`, {
            cause: err,
          });
        }
        throw err;
      }
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
        'Try the guardrails (refused with SQLSTATE 42501, naming the rule; the session carries on):',
        "  DROP TABLE customers;      DELETE FROM orders;      SELECT pg_read_file('/etc/passwd');",
        '',
        'Try the masking (personal data comes back masked; anything that could reveal it is refused):',
        '  SELECT full_name, email, phone, card_number, national_id FROM customers LIMIT 5;',
        "  SELECT upper(email) FROM customers;      SELECT id FROM customers WHERE email LIKE 'a%';",
        '',
        'Then see what was recorded, against whom:',
        `  npx portcullis events${eventsHint}                  (a table)`,
        `  npx portcullis events${eventsHint} --format json    (one JSON object per line)`,
        '',
        'Ctrl-C stops the demo.',
        '',
      ];
      console.log(lines.join('\n'));
      onShutdown(async () => {
        await running.close();
        await upstream.close();
      });
    });
}
