import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDemoUpstream, type DemoUpstream } from './demo-upstream.js';

const run = promisify(execFile);
const PSQL = '/usr/bin/psql';

describe('startDemoUpstream', () => {
  let dataDir: string;
  let upstream: DemoUpstream;
  const progress: string[] = [];

  const client = async (): Promise<pg.Client> => {
    const c = new pg.Client({
      host: upstream.host,
      port: upstream.port,
      user: upstream.user,
      password: 'ignored',
      database: upstream.database,
    });
    c.on('error', () => {});
    await c.connect();
    return c;
  };
  const psql = async (sql: string, sslmode = 'disable'): Promise<string> => {
    const url = `postgresql://${upstream.user}@${upstream.host}:${upstream.port}/${upstream.database}?sslmode=${sslmode}`;
    const { stdout } = await run(PSQL, [url, '-XAt', '-c', sql], {
      env: { ...process.env, PGCONNECT_TIMEOUT: '10' },
    });
    return stdout.trim();
  };

  beforeAll(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'portcullis-demo-'));
    upstream = await startDemoUpstream({ dataDir, port: 0, onProgress: (m) => progress.push(m) });
  }, 120_000);

  afterAll(async () => {
    await upstream?.close();
    await rm(dataDir, { recursive: true, force: true });
  });

  it('starts on a free port and seeds the first time', () => {
    expect(upstream.port).toBeGreaterThan(0);
    expect(upstream.seeded).toBe(true);
    expect(upstream.dataDir).toBe(join(dataDir, 'demo-postgres'));
    expect(progress.join('\n')).toMatch(
      /Creating the demo database[\s\S]*Loading demo data[\s\S]*listening on/,
    );
  });

  it('answers simple and extended-protocol queries over pg', async () => {
    const c = await client();
    expect((await c.query('select count(*)::int as n from customers')).rows).toEqual([{ n: 2000 }]);
    const byId = await c.query('select email, card_number from customers where id = $1', [1]);
    expect(byId.rows[0].email).toMatch(/@example\.(com|org|net)$/);
    const totals = await c.query({
      text: 'select count(*)::int as n from customer_order_totals where total_cents > $1',
      values: [0],
    });
    expect(totals.rows[0].n).toBeGreaterThan(0);
    await c.end();
  });

  it.skipIf(!existsSync(PSQL))(
    'answers psql, with sslmode=disable and with sslmode=prefer',
    async () => {
      expect(await psql('select count(*) from customers')).toBe('2000');
      expect(await psql('select count(*) from orders', 'prefer')).toBe('5000');
    },
  );

  it.skipIf(!existsSync(PSQL))('serves concurrent connections from pg and psql', async () => {
    const [a, b] = await Promise.all([client(), client()]);
    await a.query("set application_name = 'session-a'");
    const [rowsA, rowsB, fromPsql] = await Promise.all([
      a.query(
        "select count(*)::int as n, current_setting('application_name') as app from orders where status = $1",
        ['shipped'],
      ),
      b.query(
        "select count(*)::int as n, current_setting('application_name') as app from order_items",
      ),
      psql("select current_setting('application_name')"),
    ]);
    expect(rowsA.rows[0].app).toBe('session-a');
    expect(rowsB.rows[0]).toMatchObject({ app: '' });
    expect(rowsB.rows[0].n).toBeGreaterThan(11_000);
    expect(fromPsql).toBe('psql');
    await Promise.all([a.end(), b.end()]);
  });

  it('refuses a second start on the same directory while running', async () => {
    await expect(startDemoUpstream({ dataDir })).rejects.toThrow(/in use by this process/);
  });

  it('keeps data across restarts and does not seed again', async () => {
    const c = await client();
    await c.query(
      "insert into products (id, sku, name, price_cents, category) values (999, 'TST-0999', 'Restart Probe', 100, 'Test')",
    );
    await c.end();
    await upstream.close();
    progress.length = 0;
    upstream = await startDemoUpstream({ dataDir, port: 0, onProgress: (m) => progress.push(m) });
    expect(upstream.seeded).toBe(false);
    expect(progress.join('\n')).toMatch(/Opening the demo database/);
    const d = await client();
    const counts = await d.query(
      `select (select count(*)::int from customers) as customers, (select count(*)::int from orders) as orders,
              (select count(*)::int from portcullis_demo.seed) as seeds, (select name from products where id = 999) as probe`,
    );
    expect(counts.rows[0]).toEqual({
      customers: 2000,
      orders: 5000,
      seeds: 1,
      probe: 'Restart Probe',
    });
    await d.end();
  }, 120_000);
});
