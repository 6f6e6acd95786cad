// The event pipeline as the gateway runs it: every event through the durable spool, drained into
// the JSONL file and the embedded store (chDB); a gateway killed with SIGKILL re-delivers what its
// sinks had not acknowledged; a full spool under fail-closed refuses sessions and statements;
// `portcullis review` and `portcullis verify` read the store and catch a tampered row.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { SessionEvent } from '@portcullis/core';
import { openEventStore, resolveConfig, type EventsConfig } from '@portcullis/gateway';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ALICE,
  connectError,
  createSharedDatabase,
  dropSharedDatabase,
  newToken,
  sharedPostgres,
  sharedResource,
  sleep,
  startGatewayFixture,
  type GatewayFixture,
} from './support/gateway-fixture.js';

const DB = 'it_events_pipeline';
const ROOT = dirname(dirname(fileURLToPath(import.meta.url)));
const CLI = join(ROOT, 'packages/cli/dist/bin.js');

interface StoredStatement {
  id: string;
  session_id: string;
  seq: number;
  text: string;
  rows: number;
}

/** Runs the built CLI; resolves with its exit code and output. */
function runCli(
  args: readonly string[],
  cwd: string,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolveRun, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], {
      cwd,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
    child.once('error', reject);
    child.once('exit', (code) => resolveRun({ code, stdout, stderr }));
  });
}

/** Every statement event in the store of `events`, read in this process (then closed). */
async function storedStatements(events: EventsConfig): Promise<StoredStatement[]> {
  const store = await openEventStore(events);
  try {
    return await store.query<StoredStatement>(
      `SELECT toString(id) AS id, session_id, seq, assumeNotNull(statement_text) AS text, rows
       FROM events WHERE type = 'statement' ORDER BY session_id, seq`,
    );
  } finally {
    await store.close();
  }
}

beforeAll(async () => {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: build first (npx tsc -b)`);
  await createSharedDatabase(DB);
});

afterAll(async () => {
  await dropSharedDatabase(DB);
});

describe('spool → JSONL file and embedded store', () => {
  let fixture: GatewayFixture;
  let sessionId = '';
  let tamperedId = '';

  beforeAll(async () => {
    fixture = await startGatewayFixture({
      resources: { app: sharedResource(DB) },
      events: { pipeline: { store: { kind: 'embedded' }, file: { enabled: true } } },
    });
  });

  afterAll(async () => {
    await fixture?.dispose();
  });

  it('records a session’s statements in the spool, the file and the store', async () => {
    expect(fixture.gateway.events).not.toBeNull();
    const client = await fixture.connect('app');
    await client.query('CREATE TABLE IF NOT EXISTS pipeline_t (v int)');
    await client.query('INSERT INTO pipeline_t SELECT generate_series(1, 5)');
    const { rows } = await client.query('SELECT count(*)::int AS n FROM pipeline_t');
    expect(rows[0].n).toBeGreaterThanOrEqual(5);
    await client.end();

    const inFile = await fixture.waitForEvents((events) =>
      events.some((e) => e.type === 'session.end'),
    );
    const session = inFile.filter((e) => e.type !== 'auth.failed');
    sessionId = session[0]!.sessionId;
    expect(session.map((e) => e.type)).toEqual([
      'session.start',
      'statement',
      'statement',
      'statement',
      'session.end',
    ]);
    expect(session.map((e) => e.seq)).toEqual([0, 1, 2, 3, 4]);
    const spool = fixture.gateway.events!.spool;
    expect(spool.lastSequence).toBe(5);
    expect(spool.consumers()).toEqual(
      new Map([
        ['file', 5],
        ['store', expect.any(Number)],
      ]),
    );
    const metrics = await fixture.gateway.metrics.text();
    expect(metrics).toMatch(/portcullis_event_spool_accepting 1/);
    expect(metrics).toMatch(/portcullis_event_sink_delivered_events\{sink="file"\} 5/);

    // Closing drains the store sink; then the store opens in this process.
    await fixture.close();
    const stored = await storedStatements(fixture.config.events);
    expect(stored.map((s) => [s.session_id, s.seq, s.text])).toEqual([
      [sessionId, 1, 'CREATE TABLE IF NOT EXISTS pipeline_t (v int)'],
      [sessionId, 2, 'INSERT INTO pipeline_t SELECT generate_series($1, $2)'],
      [sessionId, 3, 'SELECT count(*)::int AS n FROM pipeline_t'],
    ]);
    tamperedId = stored[1]!.id;
  });

  it('portcullis review runs the reports on the store', async () => {
    const dataDir = fixture.config.dataDir;
    const activity = await runCli(
      ['review', 'activity', '--data-dir', dataDir, '--format', 'json', '--days', '7'],
      fixture.dir,
    );
    expect(activity.code, activity.stderr).toBe(0);
    const rows = activity.stdout
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(rows).toEqual([
      expect.objectContaining({
        person_subject: ALICE.subject,
        resource: 'app',
        sessions: 1,
        statements: 3,
        writes: 1,
        ddl: 1,
      }),
    ]);
    const writes = await runCli(
      ['review', 'writes', '--data-dir', dataDir, '--format', 'csv', '--person', ALICE.subject],
      fixture.dir,
    );
    expect(writes.code, writes.stderr).toBe(0);
    const lines = writes.stdout.trimEnd().split('\r\n');
    expect(lines[0]).toContain('person_subject');
    expect(lines.slice(1).map((l) => l.split(',')[7])).toEqual(['create', 'insert']);
    const missing = await runCli(['review', 'sessions', '--data-dir', dataDir], fixture.dir);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('--person');
  });

  it('portcullis verify passes an intact store and reports a tampered row', async () => {
    const dataDir = fixture.config.dataDir;
    const intact = await runCli(['verify', '--data-dir', dataDir], fixture.dir);
    expect(intact.code, intact.stderr).toBe(0);
    expect(intact.stdout).toContain('1 session(s), 5 event(s) checked: every chain is intact');

    const store = await openEventStore(fixture.config.events);
    try {
      await store.query(
        `ALTER TABLE events UPDATE rows = 999 WHERE id = toUUID('${tamperedId}') SETTINGS mutations_sync = 2`,
      );
    } finally {
      await store.close();
    }
    const tampered = await runCli(
      ['verify', '--data-dir', dataDir, '--session', sessionId.slice(0, 8), '--since', '1d'],
      fixture.dir,
    );
    expect(tampered.code).toBe(1);
    expect(tampered.stdout).toMatch(new RegExp(`altered\\s+${sessionId}\\s+2\\s+${tamperedId}`));
    expect(tampered.stdout).toContain('1 problem(s) found');

    const events = await runCli(
      ['events', '--data-dir', dataDir, '--format', 'json', '--type', 'statement'],
      fixture.dir,
    );
    expect(events.code, events.stderr).toBe(0);
    const listed = events.stdout
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as SessionEvent);
    expect(listed.map((e) => e.seq)).toEqual([1, 2, 3]);
    expect(listed[1]!.statement!.rows).toBe(999);
  });
});

describe('a gateway killed with SIGKILL', () => {
  const TOKEN = newToken('kill');
  let dir: string;
  let cli: ChildProcess | null = null;

  function yamlConfig(): string {
    const pgServer = sharedPostgres();
    return [
      'dataDir: ./data',
      'log:',
      '  level: warn',
      'listeners:',
      '  postgres:',
      '    host: 127.0.0.1',
      '    port: 0',
      '    insecure: true',
      'resources:',
      '  app:',
      '    type: postgres',
      `    host: ${pgServer.host}`,
      `    port: ${pgServer.port}`,
      `    database: ${DB}`,
      `    user: ${pgServer.roles.scram.user}`,
      '    password:',
      '      env: KILL_UPSTREAM_PASSWORD',
      'tokens:',
      '  - token:',
      '      env: KILL_TOKEN',
      '    person:',
      '      subject: user-kill',
      '      email: kill@example.com',
      'events:',
      '  dangerouslyRecordLiterals: true',
      '',
    ].join('\n');
  }

  async function start(
    configFile: string,
  ): Promise<{ port: number; exited: Promise<void>; output: () => string }> {
    const child = spawn(process.execPath, [CLI, 'start', '--config', configFile], {
      cwd: dir,
      env: {
        ...process.env,
        KILL_TOKEN: TOKEN,
        KILL_UPSTREAM_PASSWORD: sharedPostgres().roles.scram.password,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    cli = child;
    let output = '';
    const exited = new Promise<void>((resolveExit) => child.once('exit', () => resolveExit()));
    child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
    const port = await new Promise<number>((resolvePort, reject) => {
      const timer = setTimeout(() => reject(new Error(`no listening line:\n${output}`)), 30_000);
      child.stdout!.on('data', (chunk: Buffer) => {
        output += chunk.toString('utf8');
        const match = /listening on postgresql:\/\/127\.0\.0\.1:(\d+)/.exec(output);
        if (match !== null) {
          clearTimeout(timer);
          resolvePort(Number(match[1]));
        }
      });
      void exited.then(() => reject(new Error(`the CLI exited before listening:\n${output}`)));
    });
    return { port, exited, output: () => output };
  }

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'portcullis-it-kill-'));
  });

  afterAll(async () => {
    if (cli !== null && cli.exitCode === null && cli.signalCode === null) cli.kill('SIGKILL');
    await rm(dir, { recursive: true, force: true });
  });

  it(
    're-delivers unacknowledged events after a restart; the store holds each statement once',
    { timeout: 90_000 },
    async () => {
      const configFile = join(dir, 'portcullis.yaml');
      await writeFile(configFile, yamlConfig(), { mode: 0o600 });
      const first = await start(configFile);
      const client = new pg.Client({
        host: '127.0.0.1',
        port: first.port,
        user: 'kill',
        password: TOKEN,
        database: 'app',
      });
      client.on('error', () => undefined);
      await client.connect();
      const SURE = 150;
      for (let i = 0; i < SURE; i++) await client.query(`SELECT ${i} AS marker_${i}`);
      // Past the spool's batch delay, these are durable; the ones below are in flight.
      await sleep(200);
      let sent = SURE;
      const stream = (async () => {
        for (; sent < SURE + 1000; sent++) await client.query(`SELECT ${sent} AS marker_${sent}`);
      })().catch(() => undefined);
      await sleep(50);
      cli!.kill('SIGKILL');
      await first.exited;
      await stream;

      const offsets = JSON.parse(
        await readFile(join(dir, 'data', 'spool', '0', 'offsets.json'), 'utf8'),
      ) as { consumers: Record<string, number> };
      // The kill came mid-stream: the store had not acknowledged the latest statements.
      const acked = offsets.consumers.store ?? 0;
      expect(sent).toBeGreaterThan(SURE);
      expect(acked).toBeLessThan(1 + sent);

      const second = await start(configFile);
      // Stop once the store has caught up with the file (a loaded machine may take a while).
      const deadline = Date.now() + 30_000;
      for (;;) {
        const now = JSON.parse(
          await readFile(join(dir, 'data', 'spool', '0', 'offsets.json'), 'utf8'),
        ) as { consumers: Record<string, number> };
        if ((now.consumers.store ?? 0) >= (now.consumers.file ?? 1)) break;
        if (Date.now() > deadline)
          throw new Error(`the store did not catch up:\n${second.output()}`);
        await sleep(50);
      }
      cli!.kill('SIGTERM');
      await second.exited;

      const events = resolveConfig(
        {
          dataDir: join(dir, 'data'),
          listeners: { postgres: {} },
          resources: {},
        },
        { baseDir: dir, env: {} },
      ).events;
      const stored = await storedStatements(events);
      expect(stored.length, second.output()).toBeGreaterThanOrEqual(SURE);
      const markers = stored.map((s) => Number(/marker_(\d+)/.exec(s.text)?.[1] ?? -1));
      expect(new Set(stored.map((s) => s.id)).size).toBe(stored.length);
      expect(new Set(markers).size).toBe(markers.length);
      for (let i = 0; i < SURE; i++) expect(markers).toContain(i);
      expect(markers.every((m) => m >= 0 && m < sent)).toBe(true);
      // What the store had not acknowledged came again after the restart (session.start is 1).
      expect(stored.length).toBeGreaterThanOrEqual(acked - 1);

      // The file sink got them too (at least once).
      const text = await readFile(join(dir, 'data', 'events.jsonl'), 'utf8');
      const inFile = new Set(
        text
          .trim()
          .split('\n')
          .map((line) => JSON.parse(line) as SessionEvent)
          .filter((e) => e.type === 'statement')
          .map((e) => e.statement!.text),
      );
      for (let i = 0; i < SURE; i++) expect(inFile).toContain(`SELECT ${i} AS marker_${i}`);
    },
  );
});

describe('a full spool under fail-closed', () => {
  let fixture: GatewayFixture;

  beforeAll(async () => {
    // Nothing drains this spool: no store, no file.
    fixture = await startGatewayFixture({
      resources: { app: sharedResource(DB) },
      events: {
        pipeline: {
          spool: { maxBytes: 64 * 1024, whenFull: 'fail-closed' },
          store: { kind: 'none' },
          file: { enabled: false },
        },
      },
    });
  });

  afterAll(async () => {
    await fixture?.dispose();
  });

  it('ends the session at the next statement, then refuses new sessions with 53100', async () => {
    const client = await fixture.connect('app');
    let refused: (Error & { code?: string; hint?: string }) | null = null;
    let ran = 0;
    for (let i = 0; i < 1000 && refused === null; i++) {
      try {
        await client.query(`SELECT ${i} AS filling_the_spool`);
        ran++;
      } catch (err) {
        refused = err as Error & { code?: string };
      }
    }
    expect(ran).toBeGreaterThan(10);
    expect(refused?.code).toBe('53100');
    expect(refused?.message).toContain('event spool is full');

    const err = await connectError(fixture.clientConfig('app'));
    expect(err.code).toBe('53100');
    expect(err.message).toContain('its event spool is full');
    expect(err.hint).toContain('events.spool.maxBytes');

    const events = fixture.gateway.events!;
    expect(events.sink.accepting).toBe(false);
    // The refused statement never reached the server, and every admitted one was recorded.
    expect(events.sink.lost).toBe(0);
    expect(events.spool.lastSequence).toBe(1 + ran + 1);
    const metrics = await fixture.gateway.metrics.text();
    expect(metrics).toMatch(/portcullis_event_spool_accepting 0/);
    expect(metrics).toMatch(/portcullis_event_spool_max_bytes 65536/);
  });
});
