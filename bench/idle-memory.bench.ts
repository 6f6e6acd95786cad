// Memory per idle proxied connection: opens N connections (default 1000) through PgBouncer
// (session mode) and through Portcullis (one process), leaves them idle, and reports each
// proxy's resident memory before and after.
//
//   npm run bench:memory -- [--connections 1000]
import { parseArgs } from 'node:util';
import pg from 'pg';
import { startGatewayProcess, startPgBouncer, startPostgres } from '@portcullis/testkit';
import { formatBenchTable } from './support/bench-table.js';
import { rssKiB } from './support/proc-stats.js';
import { BENCH_TOKEN, benchGatewayConfig } from './support/gateway-config.js';

const { values } = parseArgs({ options: { connections: { type: 'string', default: '1000' } } });
const connections = Number(values.connections);

console.error(`starting PostgreSQL with max_connections ${connections * 2 + 20}…`);
const server = await startPostgres({
  maxConnections: connections * 2 + 20,
  settings: { shared_buffers: '64MB' },
});
await server.createDatabase('bench');
const role = server.roles.scram;
const bouncer = await startPgBouncer({
  upstream: server,
  users: [role],
  poolMode: 'session',
  maxClientConn: connections + 10,
  defaultPoolSize: connections + 10,
});
const gateway = await startGatewayProcess({
  config: benchGatewayConfig(server, role),
  processes: 1,
});

async function openIdle(port: number, user: string, password: string): Promise<pg.Client[]> {
  const clients: pg.Client[] = [];
  for (let i = 0; i < connections; i += 50) {
    const batch = Array.from(
      { length: Math.min(50, connections - i) },
      () => new pg.Client({ host: '127.0.0.1', port, user, password, database: 'bench' }),
    );
    await Promise.all(batch.map((c) => c.connect()));
    // One round trip each, so every session is fully set up, then idle.
    await Promise.all(batch.map((c) => c.query('SELECT 1')));
    clients.push(...batch);
    if ((i / 50) % 4 === 0) process.stderr.write(`  ${clients.length}/${connections}\r`);
  }
  process.stderr.write('\n');
  return clients;
}

const rows: string[][] = [];
try {
  for (const target of [
    {
      name: 'PgBouncer (session)',
      pid: bouncer.pid,
      port: bouncer.port,
      user: role.user,
      password: role.password,
    },
    {
      name: 'Portcullis, 1 process',
      pid: gateway.pid,
      port: gateway.port,
      user: 'bench',
      password: BENCH_TOKEN,
    },
  ]) {
    console.error(`${target.name}: opening ${connections} connections…`);
    const before = rssKiB(target.pid);
    const clients = await openIdle(target.port, target.user, target.password);
    await new Promise((r) => setTimeout(r, 2000));
    const after = rssKiB(target.pid);
    rows.push([
      target.name,
      String(connections),
      (before / 1024).toFixed(1),
      (after / 1024).toFixed(1),
      ((after - before) / connections).toFixed(1),
    ]);
    await Promise.all(clients.map((c) => c.end().catch(() => {})));
  }
} finally {
  await gateway.stop();
  await bouncer.stop();
  await server.stop();
}
console.log(`\nIdle proxied connections; RSS of the proxy process; Node ${process.version}\n`);
console.log(
  formatBenchTable(
    ['proxy', 'connections', 'RSS before MiB', 'RSS after MiB', 'KiB per connection'],
    rows,
  ),
);
