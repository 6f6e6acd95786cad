// End-to-end throughput: pgbench -S against PostgreSQL directly, through PgBouncer (session
// mode) and through Portcullis (recording on) with 1 and 2 processes, in one run.
//
//   npm run bench:pgbench -- [--seconds 20] [--clients 16] [--runs 1] [--scale 10]
//
// Prints a table of TPS and latency per path and mode, with each path's ratio to PgBouncer and
// the latency it adds over the direct connection. Runs are interleaved so drift on a noisy
// machine hits every path alike; with --runs > 1 the median run is reported.
import { parseArgs } from 'node:util';
import {
  ensurePostgresInstalled,
  parsePgbenchOutput,
  runProgram,
  startGatewayProcess,
  startPgBouncer,
  startPostgres,
  type GatewayProcess,
} from '@portcullis/testkit';
import { formatBenchTable, median } from './support/bench-table.js';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '20' },
    clients: { type: 'string', default: '16' },
    runs: { type: 'string', default: '1' },
    scale: { type: 'string', default: '10' },
  },
});
const seconds = Number(values.seconds);
const clients = Number(values.clients);
const runs = Number(values.runs);
const scale = Number(values.scale);

const TOKEN = 'bench-token';
const { binDir } = await ensurePostgresInstalled();
const pgbench = `${binDir}/pgbench`;

console.error(`starting PostgreSQL and initialising pgbench scale ${scale}…`);
const server = await startPostgres({ maxConnections: 200 });
await server.createDatabase('bench');
const role = server.roles.scram;
await runProgram(
  pgbench,
  ['-i', '-q', '-s', String(scale), server.url('bench', server.superuser)],
  { timeoutMs: 600_000 },
);
await server.query(`GRANT SELECT ON ALL TABLES IN SCHEMA public TO ${role.user}`, 'bench');
const bouncer = await startPgBouncer({
  upstream: server,
  users: [role],
  poolMode: 'session',
  defaultPoolSize: clients + 4,
});

const gatewayConfig = (): Record<string, unknown> => ({
  listeners: { postgres: { host: '127.0.0.1', port: 0, insecure: true } },
  resources: {
    bench: {
      type: 'postgres',
      host: server.host,
      port: server.port,
      database: 'bench',
      user: role.user,
      password: { value: role.password },
    },
  },
  tokens: [{ token: { value: TOKEN }, person: { subject: 'bench', email: 'bench@example.com' } }],
  log: { level: 'warn' },
});
const gateways: GatewayProcess[] = [];
for (const processes of [1, 2]) {
  console.error(`starting Portcullis with ${processes} process(es)…`);
  gateways.push(await startGatewayProcess({ config: gatewayConfig(), processes }));
}

interface Target {
  readonly name: string;
  readonly url: string;
  readonly password: string;
}
const targets: Target[] = [
  {
    name: 'direct to PostgreSQL',
    url: `postgresql://${role.user}@${server.host}:${server.port}/bench?sslmode=disable`,
    password: role.password,
  },
  {
    name: 'PgBouncer (session)',
    url: `postgresql://${role.user}@${bouncer.host}:${bouncer.port}/bench?sslmode=disable`,
    password: role.password,
  },
  ...gateways.map((g, i) => ({
    name: `Portcullis, ${i + 1} process${i === 0 ? '' : 'es'}`,
    url: `postgresql://bench@${g.host}:${g.port}/bench?sslmode=disable`,
    password: TOKEN,
  })),
];

const modes = ['simple', 'prepared'] as const;
const results = new Map<string, { tps: number[]; latencyMs: number[] }>();
try {
  for (let run = 0; run < runs; run++) {
    for (const mode of modes) {
      for (const target of targets) {
        console.error(
          `run ${run + 1}/${runs}: ${target.name}, ${mode}, ${clients} clients, ${seconds} s…`,
        );
        const { stdout } = await runProgram(
          pgbench,
          [
            '-S',
            '-M',
            mode,
            '-c',
            String(clients),
            '-j',
            '2',
            '-T',
            String(seconds),
            '-n',
            target.url,
          ],
          {
            env: { ...process.env, PGPASSWORD: target.password },
            timeoutMs: (seconds + 60) * 1000,
          },
        );
        const parsed = parsePgbenchOutput(stdout);
        if (parsed.failed > 0)
          throw new Error(`${target.name}: ${parsed.failed} failed transactions`);
        const key = `${target.name}|${mode}`;
        const entry = results.get(key) ?? { tps: [], latencyMs: [] };
        entry.tps.push(parsed.tps);
        entry.latencyMs.push(parsed.latencyMs);
        results.set(key, entry);
      }
    }
  }
} finally {
  for (const g of gateways) await g.stop();
  await bouncer.stop();
  await server.stop();
}

const rows: string[][] = [];
for (const mode of modes) {
  const get = (name: string): { tps: number; latencyMs: number } => {
    const entry = results.get(`${name}|${mode}`)!;
    return { tps: median(entry.tps), latencyMs: median(entry.latencyMs) };
  };
  const direct = get(targets[0]!.name);
  const bouncerResult = get(targets[1]!.name);
  for (const target of targets) {
    const r = get(target.name);
    rows.push([
      mode,
      target.name,
      r.tps.toFixed(0),
      r.latencyMs.toFixed(3),
      (r.latencyMs - direct.latencyMs).toFixed(3),
      (r.tps / bouncerResult.tps).toFixed(2),
    ]);
  }
}
console.log(
  `\npgbench -S, scale ${scale}, ${clients} clients, 2 threads, ${seconds} s per run, ${runs} run(s) (median); Node ${process.version}\n`,
);
console.log(
  formatBenchTable(
    ['mode', 'path', 'TPS', 'latency ms', 'added ms vs direct', 'x PgBouncer'],
    rows,
  ),
);
