// Masking end to end, against real PostgreSQL through real gateway processes, side by side with
// the same gateway recording only (masking off) and a direct connection:
//   1. added latency of a 1,000-row result (8 columns of customer data) with masking on vs off;
//   2. a large result (default 1 GiB) streamed through masking: throughput, and the gateway's
//      resident memory before and at its peak (the goal: growth ≤ 64 MiB).
//
//   npm run bench:masking-e2e -- [--gib 1] [--iterations 200]
//
// Figures are medians over the iterations (latency) and one pass each (stream).
import { parseArgs } from 'node:util';
import pg from 'pg';
import { startGatewayProcess, startPostgres, type GatewayProcess } from '@portcullis/testkit';
import { query } from '@portcullis/protocol-pg';
import { RawPgClient } from '../test/support/raw-pg-client.js';
import { formatBenchTable, median } from './support/bench-table.js';
import { rssKiB } from './support/proc-stats.js';
import { BENCH_TOKEN, benchGatewayConfig } from './support/gateway-config.js';

const { values } = parseArgs({
  options: {
    gib: { type: 'string', default: '1' },
    iterations: { type: 'string', default: '200' },
  },
});
const gib = Number(values.gib);
const iterations = Number(values.iterations);
const BIG_ROW_BYTES = 1024;
const bigRows = Math.ceil((gib * 1024 ** 3) / BIG_ROW_BYTES);

const MASKING = {
  hashKey: { value: 'bench-masking-key-0123456789' },
  rules: [
    { name: 'email', columns: ['public.customers.email', 'public.big.email'], style: 'hash' },
    { name: 'card', columns: ['customers.card'], style: { kind: 'partial', keepLast: 4 } },
    { name: 'phone', columns: ['customers.phone'], style: 'fixed-format' },
    { name: 'national-id', names: ['national_id'], style: 'redact' },
  ],
  detectors: { enabled: true },
};

console.error('starting PostgreSQL…');
const server = await startPostgres({ settings: { shared_buffers: '256MB' } });
await server.createDatabase('bench');
const role = server.roles.scram;
console.error(`creating 1,000 customers and a ${gib} GiB table (${bigRows} rows)…`);
await server.query(
  `CREATE TABLE customers AS
     SELECT g AS id, 'Customer ' || g AS full_name, 'user' || g || '@example.com' AS email,
            '+1 212 555 ' || lpad((g % 10000)::text, 4, '0') AS phone,
            '4111 1111 1111 ' || lpad((g % 10000)::text, 4, '0') AS card,
            '9' || lpad((g % 100)::text, 2, '0') || '-12-' || lpad(g::text, 4, '0') AS national_id,
            'ordered ' || (g % 7) || ' items, ships to Berlin' AS note, g * 1.5 AS balance
     FROM generate_series(1, 1000) g;
   CREATE TABLE big AS
     SELECT g AS id, 'user' || g || '@example.com' AS email,
            repeat('lorem ipsum dolor sit amet ', 36) AS filler
     FROM generate_series(1, ${bigRows}) g;
   GRANT SELECT ON ALL TABLES IN SCHEMA public TO ${role.user};`,
  'bench',
);

const gateways: { name: string; gateway: GatewayProcess }[] = [];
for (const [name, resource] of [
  ['Portcullis, masking off', {}],
  ['Portcullis, masking on', { masking: MASKING }],
] as const) {
  console.error(`starting ${name}…`);
  gateways.push({
    name,
    gateway: await startGatewayProcess({
      config: benchGatewayConfig(server, role, resource),
      processes: 1,
    }),
  });
}

const targets = [
  { name: 'direct to PostgreSQL', port: server.port, user: role.user, password: role.password },
  ...gateways.map(({ name, gateway }) => ({
    name,
    port: gateway.port,
    user: 'bench',
    password: BENCH_TOKEN,
    pid: gateway.pid,
  })),
];

const latency = new Map<string, number[]>();
const SQL = 'SELECT * FROM customers';
try {
  const clients = await Promise.all(
    targets.map(async (t) => {
      const client = new pg.Client({
        host: '127.0.0.1',
        port: t.port,
        user: t.user,
        password: t.password,
        database: 'bench',
      });
      await client.connect();
      return client;
    }),
  );
  for (let i = 0; i < 20; i++) for (const client of clients) await client.query(SQL);
  for (let i = 0; i < iterations; i++) {
    // Interleaved, so drift on a noisy machine hits every path alike.
    for (const [k, client] of clients.entries()) {
      const started = process.hrtime.bigint();
      const { rows } = await client.query(SQL);
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      if (rows.length !== 1000) throw new Error(`expected 1000 rows, got ${rows.length}`);
      const list = latency.get(targets[k]!.name) ?? [];
      list.push(ms);
      latency.set(targets[k]!.name, list);
    }
  }
  const masked = await clients[2]!.query('SELECT email, card FROM customers LIMIT 1');
  console.error(`masked sample: ${JSON.stringify(masked.rows[0])}`);
  await Promise.all(clients.map((c) => c.end()));

  const latencyRows = targets.map((t) => {
    const ms = latency.get(t.name)!;
    const sorted = [...ms].sort((a, b) => a - b);
    return [t.name, median(ms).toFixed(3), sorted[Math.floor(sorted.length * 0.95)]!.toFixed(3)];
  });
  const off = median(latency.get(targets[1]!.name)!);
  const on = median(latency.get(targets[2]!.name)!);
  console.log(
    `\n1,000-row result (8 columns), ${iterations} iterations, pg client, Node ${process.version}\n`,
  );
  console.log(formatBenchTable(['path', 'median ms', 'p95 ms'], latencyRows));
  console.log(`\nadded by masking: ${(on - off).toFixed(3)} ms (goal ≤ 1 ms)\n`);

  const streamRows: string[][] = [];
  for (const { name, gateway } of gateways) {
    console.error(`streaming ${gib} GiB through ${name}…`);
    const raw = await RawPgClient.connect(gateway.port);
    await raw.login({ database: 'bench', user: 'bench', password: BENCH_TOKEN });
    const before = rssKiB(gateway.pid);
    let peak = before;
    const sampler = setInterval(() => {
      peak = Math.max(peak, rssKiB(gateway.pid));
    }, 50);
    let bytes = 0;
    let rowCount = 0;
    const started = process.hrtime.bigint();
    raw.write(query('SELECT id, email, filler FROM big'));
    const messages = await raw.streamRows((_body, start, end) => {
      bytes += end - start + 5;
      rowCount++;
    }, 30 * 60_000);
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    clearInterval(sampler);
    peak = Math.max(peak, rssKiB(gateway.pid));
    const error = messages.find((m) => m.type === 'E');
    if (error !== undefined || rowCount !== bigRows) {
      throw new Error(`${name}: stream ended after ${rowCount} rows`);
    }
    raw.destroy();
    streamRows.push([
      name,
      (bytes / 1024 ** 2).toFixed(0),
      seconds.toFixed(1),
      (bytes / 1e6 / seconds).toFixed(0),
      (before / 1024).toFixed(1),
      (peak / 1024).toFixed(1),
      ((peak - before) / 1024).toFixed(1),
    ]);
  }
  console.log(
    `\n${gib} GiB result (${bigRows} rows of ~1 KiB, email hashed, detectors on filler)\n`,
  );
  console.log(
    formatBenchTable(
      [
        'path',
        'MiB',
        'seconds',
        'MB/s',
        'RSS before MiB',
        'RSS peak MiB',
        'growth MiB (goal ≤ 64)',
      ],
      streamRows,
    ),
  );
} finally {
  for (const { gateway } of gateways) await gateway.stop();
  await server.stop();
}
