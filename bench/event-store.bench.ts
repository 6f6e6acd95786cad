// The embedded event store (chDB, ClickHouse's engine in-process): how fast events go in, and how
// long each review takes on a million of them.
//
//   npm run bench:event-store -- [--events 1000000] [--runs 7]
//
//   1. Rows/s through ChdbEventStore.insert in batches of 1k, 10k and 50k realistic events: the
//      lookup of ids already stored, normalising, HMAC chaining, JSONEachRow and the INSERT
//      (with both rollup views firing). Medians over the batches of each size.
//      The store's default path writes the batch as JSONCompactEachRow to a file and runs
//      INSERT … SELECT FROM file(); the same batches through chDB's insert call (JSONEachRow
//      bytes) are measured beside it.
//   2. Where the time goes: the JavaScript half alone (normalise + chain + serialise), and the
//      engine alone (the same bytes into a copy of the table without views, and into a Null
//      table: parsing only) as the ceiling the store is measured against.
//   3. Each review's latency once the table holds --events events (median of --runs).
//
// The goal from the issue is ≥ 200k rows/s into ClickHouse. These machines have 2 shared cores
// and are noisy: compare medians, not single runs.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { Agent, Person, PolicyAction, SessionEvent } from '@portcullis/core';
import {
  ChdbEventStore,
  chainEvents,
  eventToRow,
  normalizeEvent,
  reviews,
  type BoundQuery,
} from '@portcullis/events';
import { formatBenchTable, median } from './support/bench-table.js';
import { prng } from './support/prng.js';

const { values } = parseArgs({
  options: {
    events: { type: 'string', default: '1000000' },
    runs: { type: 'string', default: '7' },
  },
});
const TOTAL = Number(values.events);
const RUNS = Number(values.runs);
const KEY = 'bench-chain-key-0123456789abcdef';

// ---- realistic events: 300 people, 25 agents, 12 resources, 30 days ---------------------------
const random = prng(0xc1c7);
const int = (lo: number, hi: number): number => lo + Math.floor(random() * (hi - lo + 1));
const pick = <T>(items: readonly T[]): T => items[int(0, items.length - 1)]!;
const hex = (n: number): string =>
  Array.from({ length: n }, () => '0123456789abcdef'[int(0, 15)]).join('');
const uuid = (): string =>
  `${hex(8)}-${hex(4)}-4${hex(3)}-${pick(['8', '9', 'a', 'b'])}${hex(3)}-${hex(12)}`;

const GROUPS = ['eng', 'dba', 'analysts', 'support', 'finance', 'sre'];
const people: Person[] = Array.from({ length: 300 }, (_, i) => ({
  subject: `u-${String(i).padStart(4, '0')}`,
  email: `person${i}@example.com`,
  ...(i % 3 === 0 ? { name: `Person ${i}` } : {}),
  groups: [pick(GROUPS), ...(i % 4 === 0 ? [pick(GROUPS)] : [])],
}));
const agents: Agent[] = Array.from({ length: 25 }, (_, i) => ({
  id: `agent-${i}`,
  name: pick(['report-bot', 'triage-bot', 'migration-agent', 'copilot', 'etl']) + `-${i}`,
}));
const RESOURCES = [
  'orders-db',
  'billing-db',
  'analytics',
  'crm',
  'inventory',
  'payments',
  'hr',
  'search',
  'events',
  'ledger',
  'support-db',
  'staging',
];
const TABLES = [
  'orders',
  'customers',
  'invoices',
  'payments',
  'products',
  'audit_log',
  'users',
  'shipments',
  'tickets',
  'accounts',
];
const TEMPLATES: { kind: string; text: (t: string) => string; weight: number }[] = [
  {
    kind: 'select',
    weight: 70,
    text: (t) =>
      `SELECT id, status, created_at, total FROM ${t} WHERE customer_id = $1 AND created_at > $2 ORDER BY created_at DESC LIMIT $3`,
  },
  { kind: 'select', weight: 10, text: (t) => `SELECT count(*) FROM ${t} WHERE status = $1` },
  {
    kind: 'insert',
    weight: 7,
    text: (t) => `INSERT INTO ${t} (id, customer_id, status, total) VALUES ($1, $2, $3, $4)`,
  },
  {
    kind: 'update',
    weight: 6,
    text: (t) => `UPDATE ${t} SET status = $1, updated_at = now() WHERE id = $2`,
  },
  { kind: 'delete', weight: 2, text: (t) => `DELETE FROM ${t} WHERE id = $1` },
  { kind: 'alter', weight: 1, text: (t) => `ALTER TABLE ${t} ADD COLUMN note text` },
  { kind: 'transaction', weight: 4, text: () => 'BEGIN' },
];
const weighted = TEMPLATES.flatMap((t) => Array<typeof t>(t.weight).fill(t));
const DAY0_US = Date.UTC(2026, 9, 1) * 1000;
const SPAN_US = 30 * 24 * 3600 * 1e6;

/** Events session by session, start times spread evenly over 30 days; `total` in all. */
function* eventStream(total: number): Generator<SessionEvent> {
  let made = 0;
  const sessions = Math.ceil(total / 12);
  for (let s = 0; made < total; s++) {
    const person = pick(people);
    const agent = random() < 0.4 ? pick(agents) : null;
    const resource = pick(RESOURCES);
    const sessionId = uuid();
    let t = DAY0_US + Math.floor((s / sessions) * SPAN_US);
    let seq = 0;
    const statements = int(1, 20);
    const base = (type: SessionEvent['type']): SessionEvent => ({
      schema: 1,
      id: uuid(),
      type,
      timeUs: t,
      sessionId,
      seq: seq++,
      person,
      agent,
      authMethod: 'static-token',
      resource,
      protocol: 'postgres',
      upstreamUser: 'app_rw',
      client: {
        address: `10.0.${int(0, 255)}.${int(1, 254)}`,
        port: int(30000, 60000),
        application: agent === null ? 'psql' : agent.name,
        user: person.email,
        tls: true,
      },
    });
    const out: SessionEvent[] = [base('session.start')];
    for (let i = 0; i < statements; i++) {
      t += int(1000, 5_000_000);
      const tpl = pick(weighted);
      const table = pick(TABLES);
      const roll = random();
      const verdict: PolicyAction = roll < 0.02 ? 'block' : roll < 0.03 ? 'review' : 'allow';
      const text = tpl.text(table);
      if (verdict === 'review') {
        out.push({
          ...base('approval.requested'),
          approval: { text, kind: tpl.kind, rule: 'review-writes', message: 'held for review' },
        });
      }
      const rows = verdict === 'allow' && tpl.kind === 'select' ? int(0, 500) : int(0, 1);
      const masked = verdict === 'allow' && tpl.kind === 'select' && random() < 0.15;
      out.push({
        ...base('statement'),
        statement: {
          text,
          protocol: random() < 0.6 ? 'extended' : 'simple',
          params: 2,
          tag: `${tpl.kind.toUpperCase()} ${rows}`,
          rows,
          bytes: rows * int(60, 400),
          durationUs: int(200, 80_000),
          error:
            random() < 0.01
              ? { code: '23505', message: 'duplicate key value violates unique constraint' }
              : null,
          kind: tpl.kind,
          fingerprint: hex(16),
          tables: tpl.kind === 'transaction' ? [] : [table],
          verdict,
          rule: verdict === 'allow' ? 'default' : verdict === 'block' ? 'no-ddl' : 'review-writes',
          ...(masked ? { masked: { values: rows * 2, columns: ['email', 'phone'] } } : {}),
        },
      });
    }
    t += int(1000, 1_000_000);
    out.push({
      ...base('session.end'),
      summary: {
        reason: 'client-closed',
        statements,
        rows: 0,
        bytesFromClient: 4096,
        bytesToClient: 65536,
        durationUs: t - DAY0_US,
        error: null,
      },
    });
    for (const e of out) {
      if (made++ >= total) return;
      yield e;
    }
  }
}
const stream = eventStream(TOTAL + 100_000);
const take = (n: number): SessionEvent[] => {
  const batch: SessionEvent[] = [];
  for (let i = 0; i < n; i++) {
    const next = stream.next();
    if (next.done === true) break;
    batch.push(next.value);
  }
  return batch;
};

const dir = mkdtempSync(join(tmpdir(), 'pcl-bench-store-'));
const dataDir = join(dir, 'data');
const store = new ChdbEventStore({ dataDir, chainKey: KEY, retentionDays: 3650 });
const rss0 = process.memoryUsage().rss;
let t0 = performance.now();
await store.open();
const openMs = performance.now() - t0;
const rssOpen = process.memoryUsage().rss;

// ---- 1. store.insert by batch size ------------------------------------------------------------
const rate = (rows: number, ms: number): string => String(Math.round((rows / ms) * 1000));
let stored = 0;
const insertRows: string[][] = [];
const plan: [number, number][] = [
  [1_000, 20],
  [10_000, 10],
  [50_000, Math.max(4, Math.floor((TOTAL - 320_000) / 50_000))],
];
for (const [size, batches] of plan) {
  const perBatch: number[] = [];
  for (let b = 0; b < batches && stored < TOTAL; b++) {
    const batch = take(Math.min(size, TOTAL - stored));
    t0 = performance.now();
    const { inserted } = await store.insert(batch);
    perBatch.push((inserted / (performance.now() - t0)) * 1000);
    stored += inserted;
  }
  console.error(`  batches of ${size}: ${perBatch.length} done, ${stored} events stored`);
  insertRows.push([
    `store.insert, batches of ${size.toLocaleString('en')}`,
    String(perBatch.length),
    String(Math.round(median(perBatch))),
  ]);
}
{
  const api = new ChdbEventStore({ dataDir, chainKey: KEY, retentionDays: 3650, insertVia: 'api' });
  const perBatch: number[] = [];
  for (let b = 0; b < 4 && stored < TOTAL; b++) {
    const batch = take(Math.min(50_000, TOTAL - stored));
    t0 = performance.now();
    const { inserted } = await api.insert(batch);
    perBatch.push((inserted / (performance.now() - t0)) * 1000);
    stored += inserted;
  }
  await api.close();
  insertRows.push([
    'store.insert via chDB insert API (JSONEachRow), 50,000',
    String(perBatch.length),
    String(Math.round(median(perBatch))),
  ]);
}
while (stored < TOTAL) {
  const { inserted } = await store.insert(take(Math.min(50_000, TOTAL - stored)));
  stored += inserted;
}
const rssFull = process.memoryUsage().rss;

// ---- 2. where the time goes -------------------------------------------------------------------
const sample = take(50_000);
const jsTimes: number[] = [];
let jsonBody = Buffer.alloc(0);
let compactBody = Buffer.alloc(0);
for (let r = 0; r < 3; r++) {
  t0 = performance.now();
  const chained = chainEvents(sample.map(normalizeEvent), KEY, new Map(), JSON.stringify);
  let compact = '';
  for (const c of chained) compact += JSON.stringify(Object.values(eventToRow(c))) + '\n';
  compactBody = Buffer.from(compact);
  jsTimes.push(performance.now() - t0);
  let body = '';
  for (const c of chained) body += JSON.stringify(eventToRow(c)) + '\n';
  jsonBody = Buffer.from(body);
}
const { Session } = await import('chdb');
const raw = new Session(dataDir); // a second connection to the same directory
raw.query('CREATE TABLE IF NOT EXISTS bench_raw AS events');
raw.query('CREATE TABLE IF NOT EXISTS bench_null AS events ENGINE = Null');
const structure = raw
  .query(
    "SELECT arrayStringConcat(groupArray(name || ' ' || type), ', ') FROM (SELECT name, type FROM system.columns WHERE database = currentDatabase() AND table = 'events' ORDER BY position)",
    'TSVRaw',
  )
  .trim()
  .replace(/LowCardinality\(Nullable\(String\)\)/g, 'Nullable(String)')
  .replace(/LowCardinality\(String\)/g, 'String')
  .replace(/'/g, "\\'");
const batchFile = join(dir, 'batch.jsonl');
writeFileSync(batchFile, compactBody);
const engine = async (table: string, insert: () => Promise<unknown>): Promise<number> => {
  const times: number[] = [];
  for (let r = 0; r < 3; r++) {
    if (table !== 'bench_null') raw.query(`TRUNCATE TABLE ${table}`);
    t0 = performance.now();
    await insert();
    times.push(performance.now() - t0);
  }
  return median(times);
};
const viaFile = (table: string) => () =>
  raw.queryAsync(
    `INSERT INTO ${table} SELECT * FROM file('${batchFile}', JSONCompactEachRow, '${structure}') SETTINGS optimize_on_insert = 0`,
  );
const viaApi = (table: string) => () =>
  raw.insert({
    table,
    values: jsonBody,
    format: 'JSONEachRow',
    settings: { optimize_on_insert: 0 },
  });
const enginePaths: [string, number][] = [
  [
    'engine only: file() JSONCompactEachRow → Null (parse only)',
    await engine('bench_null', viaFile('bench_null')),
  ],
  [
    'engine only: insert API JSONEachRow → Null (parse only)',
    await engine('bench_null', viaApi('bench_null')),
  ],
  [
    'engine only: file() JSONCompactEachRow → table, no views',
    await engine('bench_raw', viaFile('bench_raw')),
  ],
  [
    'engine only: insert API JSONEachRow → table, no views',
    await engine('bench_raw', viaApi('bench_raw')),
  ],
];
raw.query('DROP TABLE bench_raw');
raw.query('DROP TABLE bench_null');
raw.close();
const lookupTimes: number[] = [];
for (let r = 0; r < 3; r++) {
  t0 = performance.now();
  await store.query(
    'SELECT toString(id) AS id FROM events WHERE time >= fromUnixTimestamp64Micro({lo:Int64}) AND time <= fromUnixTimestamp64Micro({hi:Int64}) AND id IN (SELECT arrayJoin({ids:Array(UUID)}))',
    { lo: sample[0]!.timeUs, hi: sample.at(-1)!.timeUs, ids: sample.map((e) => e.id) },
  );
  lookupTimes.push(performance.now() - t0);
}
const partRows = [
  ['lookup of stored ids only, 50,000 ids', '3', rate(50_000, median(lookupTimes))],
  ['JS only: normalise + HMAC chain + serialise, 50,000', '3', rate(50_000, median(jsTimes))],
  ...enginePaths.map(([name, ms]) => [name, '3', rate(50_000, ms)]),
];

// ---- 3. reviews on the full table -------------------------------------------------------------
const [{ n } = { n: 0 }] = await store.query<{ n: number }>('SELECT count() AS n FROM events');
const window = { from: new Date(DAY0_US / 1000), to: new Date((DAY0_US + SPAN_US) / 1000) };
const week = {
  from: new Date(DAY0_US / 1000 + 7 * 86_400_000),
  to: new Date(DAY0_US / 1000 + 14 * 86_400_000),
};
const grants = people.flatMap((p) =>
  RESOURCES.slice(0, 4).map((resource) => ({ person: p.subject, resource })),
);
const cases: [string, BoundQuery][] = [
  ['activity per person × resource, 30 days', reviews.activity(window)],
  ['agents and whom they acted for, 30 days', reviews.agents(window)],
  ['writes and DDL, everyone, 7 days', reviews.writes(week)],
  ['writes and DDL, one person, 30 days', reviews.writes(window, people[7]!.subject)],
  ['blocked and held, 30 days', reviews.blocked(window)],
  [
    `unused access, ${grants.length} grants, 14 days`,
    reviews.unused(grants, 14, new Date(DAY0_US / 1000 + 40 * 86_400_000)),
  ],
  ['sessions of one person, 30 days', reviews.sessions(people[7]!.subject, window)],
];
const reviewRows: string[][] = [];
for (const [name, q] of cases) {
  const times: number[] = [];
  let rows = 0;
  for (let r = 0; r < RUNS; r++) {
    t0 = performance.now();
    rows = (await store.run(q)).length;
    times.push(performance.now() - t0);
  }
  reviewRows.push([name, String(rows), median(times).toFixed(1)]);
}
await store.close();
rmSync(dir, { recursive: true, force: true });

const mib = (b: number): string => (b / 2 ** 20).toFixed(0);
console.log(
  `\nEvent store on chDB ${'(ClickHouse 26.7 in-process)'}, ${n.toLocaleString('en')} events, ${RUNS} runs per review`,
);
console.log(
  `open + migrations: ${openMs.toFixed(0)} ms; RSS ${mib(rss0)} MiB before chDB, ${mib(rssOpen)} MiB open, ${mib(rssFull)} MiB after ${TOTAL.toLocaleString('en')} inserts\n`,
);
console.log(
  formatBenchTable(['insert path', 'batches', 'rows/s (median)'], [...insertRows, ...partRows]),
);
console.log('\nGoal: ≥ 200,000 rows/s into ClickHouse.\n');
console.log(formatBenchTable(['review', 'rows', 'ms (median)'], reviewRows));
