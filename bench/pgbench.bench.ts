// End-to-end throughput: pgbench -S against PostgreSQL directly, through PgBouncer (session
// mode) and through Portcullis (recording every statement through the durable event spool to the
// JSONL file) with 1 and 2 processes, with guardrails, with guardrails and masking, and with the
// default embedded event store, in one run.
//
//   npm run bench:pgbench -- [--seconds 20] [--clients 16] [--runs 1] [--scale 10]
//
// Prints a table of TPS and latency per path and mode, with each path's ratio to PgBouncer and
// the latency it adds over the direct connection. Runs are interleaved so drift on a noisy
// machine hits every path alike; with --runs > 1 the median run is reported.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
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
import { cpuTimeUs, processTree } from './support/proc-stats.js';
import { BENCH_TOKEN, benchGatewayConfig } from './support/gateway-config.js';

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

/** Guardrails typical of a production resource: every statement is parsed and judged. */
const GUARDRAILS = {
  default: 'allow',
  unparsable: 'block',
  rules: [
    { name: 'no-drop-or-truncate', action: 'block', match: { flags: ['drop', 'truncate'] } },
    {
      name: 'no-unbounded-writes',
      action: 'block',
      match: { flags: ['delete-without-where', 'update-without-where'] },
    },
    {
      name: 'no-server-files',
      action: 'block',
      match: { flags: ['server-file-access', 'copy-program'] },
    },
    {
      name: 'history-needs-approval',
      action: 'review',
      match: { tablesWritten: ['pgbench_history'], agent: true },
    },
  ],
};

/**
 * Masking on top of the guardrails: every statement traced to its source columns, the balance
 * pgbench -S reads masked in every row (fixed-format), detectors on every other column.
 */
const MASKING = {
  hashKey: { value: 'bench-masking-key-0123456789' },
  rules: [
    { name: 'balance', columns: ['pgbench_accounts.abalance'], style: 'fixed-format' },
    { name: 'filler', names: ['filler'], style: 'redact' },
  ],
  detectors: { enabled: true },
};

// The floor for any Node proxy here: a relay that only pipes bytes.
const pipeRelay = spawn(
  process.execPath,
  [fileURLToPath(new URL('./support/pipe-relay.mjs', import.meta.url)), String(server.port)],
  {
    stdio: ['ignore', 'pipe', 'inherit'],
  },
);
const pipeRelayPort = await new Promise<number>((resolvePort) => {
  pipeRelay.stdout.setEncoding('utf8').on('data', (text: string) => {
    const match = /listening (\d+)/.exec(text);
    if (match !== null) resolvePort(Number(match[1]));
  });
});

const gateways: { name: string; gateway: GatewayProcess }[] = [];
for (const [name, processes, resource, events] of [
  ['Portcullis, 1 process', 1, {}, undefined],
  ['Portcullis, 2 processes', 2, {}, undefined],
  ['Portcullis, 1 process, guardrails', 1, { policy: GUARDRAILS }, undefined],
  [
    'Portcullis, 1 process, guardrails + masking',
    1,
    { policy: GUARDRAILS, masking: MASKING },
    undefined,
  ],
  // The defaults: also the embedded event store (chDB) in the gateway process.
  ['Portcullis, 1 process, embedded store', 1, {}, {}],
] as const) {
  console.error(`starting ${name}…`);
  gateways.push({
    name,
    gateway: await startGatewayProcess({
      config: benchGatewayConfig(server, role, resource, events),
      processes,
    }),
  });
}

interface Target {
  readonly name: string;
  readonly url: string;
  readonly password: string;
  /** The proxy's process (its CPU time is measured); null for the direct path. */
  readonly pid: number | null;
}
const targets: Target[] = [
  {
    name: 'direct to PostgreSQL',
    url: `postgresql://${role.user}@${server.host}:${server.port}/bench?sslmode=disable`,
    password: role.password,
    pid: null,
  },
  {
    name: 'PgBouncer (session)',
    url: `postgresql://${role.user}@${bouncer.host}:${bouncer.port}/bench?sslmode=disable`,
    password: role.password,
    pid: bouncer.pid,
  },
  {
    name: 'Node pipe relay (baseline)',
    url: `postgresql://${role.user}@127.0.0.1:${pipeRelayPort}/bench?sslmode=disable`,
    password: role.password,
    pid: pipeRelay.pid!,
  },
  ...gateways.map(({ name, gateway }) => ({
    name,
    url: `postgresql://bench@${gateway.host}:${gateway.port}/bench?sslmode=disable`,
    password: BENCH_TOKEN,
    pid: gateway.pid,
  })),
];

const modes = ['simple', 'prepared'] as const;
const results = new Map<string, { tps: number[]; latencyMs: number[]; cpuUsPerTxn: number[] }>();
try {
  for (let run = 0; run < runs; run++) {
    for (const mode of modes) {
      for (const target of targets) {
        console.error(
          `run ${run + 1}/${runs}: ${target.name}, ${mode}, ${clients} clients, ${seconds} s…`,
        );
        const pids = target.pid === null ? [] : processTree(target.pid);
        const cpuBefore = cpuTimeUs(pids);
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
        const cpuUs = cpuTimeUs(pids) - cpuBefore;
        const parsed = parsePgbenchOutput(stdout);
        if (parsed.failed > 0)
          throw new Error(`${target.name}: ${parsed.failed} failed transactions`);
        const key = `${target.name}|${mode}`;
        const entry = results.get(key) ?? { tps: [], latencyMs: [], cpuUsPerTxn: [] };
        entry.tps.push(parsed.tps);
        entry.latencyMs.push(parsed.latencyMs);
        entry.cpuUsPerTxn.push(cpuUs / parsed.transactions);
        results.set(key, entry);
      }
    }
  }
} finally {
  for (const { gateway } of gateways) await gateway.stop();
  pipeRelay.kill('SIGTERM');
  await bouncer.stop();
  await server.stop();
}

const rows: string[][] = [];
for (const mode of modes) {
  const get = (name: string): { tps: number; latencyMs: number; cpuUsPerTxn: number } => {
    const entry = results.get(`${name}|${mode}`)!;
    return {
      tps: median(entry.tps),
      latencyMs: median(entry.latencyMs),
      cpuUsPerTxn: median(entry.cpuUsPerTxn),
    };
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
      target.pid === null ? '-' : r.cpuUsPerTxn.toFixed(1),
    ]);
  }
}
console.log(
  `\npgbench -S, scale ${scale}, ${clients} clients, 2 threads, ${seconds} s per run, ${runs} run(s) (median); Node ${process.version}\n`,
);
console.log(
  formatBenchTable(
    ['mode', 'path', 'TPS', 'latency ms', 'added ms vs direct', 'x PgBouncer', 'proxy CPU µs/txn'],
    rows,
  ),
);

// The masking goal: guardrails + masking against recording only, per mode. Runs interleave the
// paths, so each run's pair of figures met the same machine; their spread shows how far a single
// run can be trusted here.
const RECORDING = 'Portcullis, 1 process';
const MASKED = 'Portcullis, 1 process, guardrails + masking';
console.log('\nguardrails + masking ÷ recording only (goal ≥ 0.9×):');
for (const mode of modes) {
  const recording = results.get(`${RECORDING}|${mode}`)!;
  const masked = results.get(`${MASKED}|${mode}`)!;
  const perRun = masked.tps.map((tps, i) => (tps / recording.tps[i]!).toFixed(2)).join(', ');
  const cpu = median(masked.cpuUsPerTxn) / median(recording.cpuUsPerTxn);
  console.log(
    `  ${mode}: TPS ${(median(masked.tps) / median(recording.tps)).toFixed(3)} (runs: ${perRun}); proxy CPU per txn ${cpu.toFixed(2)}×`,
  );
}
