// Connection set-up: how long a new connection takes to be ready for queries, and how many
// connections per second can be opened and closed, through Portcullis with a static token and
// with a gateway credential (an ES256 JWT, verified with the gateway's cached keys), against a
// direct connection to PostgreSQL and PgBouncer (session mode), in one run.
//
//   npm run bench:connect -- [--connections 200] [--rounds 3] [--concurrency 8] [--seconds 5]
//
// Sequential phase: `--connections` connect + close cycles per path and round, one at a time;
// the time from the first byte sent to ReadyForQuery is recorded (median and p95 over all
// rounds). Throughput phase: `--concurrency` clients connect and close in a loop for `--seconds`
// per path and round (the median round is reported). Paths are interleaved within each round so
// drift on a noisy machine hits every path alike.
//
// Every path authenticates its client the way it would in use: PostgreSQL and PgBouncer with
// SCRAM-SHA-256, Portcullis with the token or credential in cleartext over loopback (TLS off
// everywhere). Portcullis opens one upstream connection per client connection (SCRAM
// upstream); PgBouncer in session mode hands out pooled server connections, so it skips the
// upstream login after warm-up.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { GatewayCredentialIssuer, KeyRing } from '@portcullis/identity';
import {
  startGatewayProcess,
  startPgBouncer,
  startPostgres,
  stopAllServices,
} from '@portcullis/testkit';
import pg from 'pg';
import { formatBenchTable, median } from './support/bench-table.js';
import { BENCH_TOKEN, benchGatewayConfig } from './support/gateway-config.js';

const { values } = parseArgs({
  options: {
    connections: { type: 'string', default: '200' },
    rounds: { type: 'string', default: '3' },
    concurrency: { type: 'string', default: '8' },
    seconds: { type: 'string', default: '5' },
  },
});
const connections = Number(values.connections);
const rounds = Number(values.rounds);
const concurrency = Number(values.concurrency);
const seconds = Number(values.seconds);

console.error('starting PostgreSQL, PgBouncer and the gateway…');
const server = await startPostgres({ maxConnections: 200 });
await server.createDatabase('bench');
const role = server.roles.scram;
const bouncer = await startPgBouncer({
  upstream: server,
  users: [role],
  poolMode: 'session',
  authType: 'scram-sha-256',
  defaultPoolSize: concurrency + 4,
});

// The gateway's signing keys live in a directory this process opens first: the credential it
// signs here is one the gateway accepts, as if the token endpoint had issued it.
const keysDir = await mkdtemp(join(tmpdir(), 'portcullis-bench-keys-'));
const keys = await KeyRing.open({ dir: keysDir, maxTokenTtlMs: 3_600_000 });
const issuer = new GatewayCredentialIssuer({ keys, issuer: 'urn:portcullis:gateway' });
const credential = await issuer.issue({
  person: { subject: 'bench-person', email: 'bench@example.com', groups: ['bench'] },
  authMethod: 'oidc',
  ttlMs: 3_600_000,
});
const base = benchGatewayConfig(server, role);
const gateway = await startGatewayProcess({
  config: {
    ...base,
    listeners: {
      ...(base['listeners'] as Record<string, unknown>),
      http: { host: '127.0.0.1', port: 0 },
    },
    identity: {
      keysDir,
      credentialTtlMinutes: 60,
      groupAccess: [{ groups: ['bench'], resources: ['bench'] }],
    },
  },
});

interface Path {
  readonly name: string;
  readonly config: pg.ClientConfig;
}
const paths: Path[] = [
  {
    name: 'direct to PostgreSQL (SCRAM)',
    config: { host: server.host, port: server.port, user: role.user, password: role.password },
  },
  {
    name: 'PgBouncer, session mode (SCRAM)',
    config: { host: bouncer.host, port: bouncer.port, user: role.user, password: role.password },
  },
  {
    name: 'Portcullis, static token',
    config: { host: gateway.host, port: gateway.port, user: 'bench', password: BENCH_TOKEN },
  },
  {
    name: 'Portcullis, gateway credential (JWT)',
    config: { host: gateway.host, port: gateway.port, user: 'bench', password: credential.token },
  },
];

/** One connect + close; resolves with the milliseconds until the connection was ready. */
async function connectOnce(path: Path): Promise<number> {
  const client = new pg.Client({ ...path.config, database: 'bench', ssl: false });
  const started = process.hrtime.bigint();
  await client.connect();
  const ready = Number(process.hrtime.bigint() - started) / 1e6;
  await client.end();
  return ready;
}

/** Connections opened and closed per second by `concurrency` loops over `seconds`. */
async function throughput(path: Path): Promise<number> {
  const deadline = Date.now() + seconds * 1000;
  let done = 0;
  const started = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (Date.now() < deadline) {
        await connectOnce(path);
        done++;
      }
    }),
  );
  return done / (Number(process.hrtime.bigint() - started) / 1e9);
}

function percentile(values: readonly number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))]!;
}

const setupMs = new Map<string, number[]>(paths.map((p) => [p.name, []]));
const perSecond = new Map<string, number[]>(paths.map((p) => [p.name, []]));
try {
  for (const path of paths) for (let i = 0; i < 20; i++) await connectOnce(path); // warm-up
  for (let round = 0; round < rounds; round++) {
    for (const path of paths) {
      console.error(`round ${round + 1}/${rounds}: ${path.name}, ${connections} connections…`);
      const times = setupMs.get(path.name)!;
      for (let i = 0; i < connections; i++) times.push(await connectOnce(path));
    }
    for (const path of paths) {
      console.error(
        `round ${round + 1}/${rounds}: ${path.name}, ${concurrency} clients, ${seconds} s…`,
      );
      perSecond.get(path.name)!.push(await throughput(path));
    }
  }
} finally {
  await gateway.stop();
  await stopAllServices();
  await rm(keysDir, { recursive: true, force: true });
}

const direct = median(setupMs.get(paths[0]!.name)!);
const rows = paths.map((path) => {
  const times = setupMs.get(path.name)!;
  return [
    path.name,
    median(times).toFixed(2),
    percentile(times, 95).toFixed(2),
    (median(times) - direct).toFixed(2),
    median(perSecond.get(path.name)!).toFixed(0),
  ];
});
console.log(
  `\nconnection set-up, ${rounds} round(s) x ${connections} sequential connections per path; ` +
    `throughput: ${concurrency} clients x ${seconds} s per round (median round); Node ${process.version}\n`,
);
console.log(
  formatBenchTable(
    ['path', 'set-up median ms', 'p95 ms', 'added ms vs direct', 'connections/s'],
    rows,
  ),
);
