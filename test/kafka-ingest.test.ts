// `portcullis ingest` against a real Kafka broker and a real ClickHouse server from the test kit:
// events the gateway's Kafka sink published land in ClickHouse once per event id, whether two
// ingesters share the partitions or one is SIGKILLed mid-stream (between an insert and its
// offset commit) and another takes over. Uses the build (`npx tsc -b`) for the CLI process.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { SessionEvent } from '@portcullis/core';
import { ClickHouseSink, KafkaIngester, KafkaSink } from '@portcullis/events';
import {
  startClickHouse,
  startKafka,
  type ClickHouseServer,
  type KafkaServer,
} from '@portcullis/testkit';
import { Kafka, logLevel } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sessionOf } from '../packages/events/src/ocsf/session-events.fixture.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const CLI = join(ROOT, 'packages/cli/dist/bin.js');
const PARTITIONS = 3;

let kafka: KafkaServer;
let clickhouse: ClickHouseServer;
let dir: string;
const children: ChildProcess[] = [];

beforeAll(async () => {
  [kafka, clickhouse] = await Promise.all([
    startKafka({ partitions: PARTITIONS }),
    startClickHouse(),
  ]);
  dir = await mkdtemp(join(tmpdir(), 'portcullis-ingest-'));
}, 120_000);

afterAll(async () => {
  for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
  await kafka?.stop();
  await clickhouse?.stop();
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

async function sleep(ms: number): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, ms));
}

/** `sessions` sessions of `statements` statements each (plus start and end), ids unique per first session number. */
function eventsOf(firstSession: number, sessions: number, statements: number): SessionEvent[] {
  const out: SessionEvent[] = [];
  for (let s = 0; s < sessions; s++) out.push(...sessionOf(firstSession + s, statements));
  return out;
}

/** Publishes events with the gateway's Kafka sink, as the gateway does (keyed by session id). */
class Publisher {
  readonly #sink: KafkaSink;
  #sequence = 0;

  constructor(topic: string, format: 'native' | 'ocsf' = 'native') {
    this.#sink = new KafkaSink({ brokers: [...kafka.brokers], topic, format, compression: 'gzip' });
  }

  async publish(events: readonly SessionEvent[]): Promise<void> {
    await this.#sink.deliver(
      events.map((e) => ({ sequence: this.#sequence++, payload: Buffer.from(JSON.stringify(e)) })),
    );
  }

  async close(): Promise<void> {
    await this.#sink.close();
  }
}

async function count(sql: string): Promise<number> {
  return Number((await clickhouse.query(sql)).trim());
}

/** Distinct event ids in the table, polled until `expected` or the time is up. */
async function waitForDistinct(table: string, expected: number, ms = 30_000): Promise<number> {
  const until = Date.now() + ms;
  let seen = 0;
  while (Date.now() < until) {
    seen = await count(`SELECT uniqExact(id) FROM ${table}`).catch(() => 0);
    if (seen >= expected) return seen;
    await sleep(100);
  }
  return seen;
}

/** Rows whose event id appears more than once after ReplacingMergeTree deduplication. */
async function duplicatesAfterDedup(table: string): Promise<number> {
  return count(
    `SELECT count() FROM (SELECT id, count() AS c FROM ${table} FINAL GROUP BY id) WHERE c != 1`,
  );
}

function sinkFor(table: string, name: string): ClickHouseSink {
  return new ClickHouseSink({
    name,
    url: clickhouse.url,
    table,
    schema: 'legacy18',
    deadLetterDir: dir,
    maxInsertRows: 500,
  });
}

describe('KafkaIngester', () => {
  it('stores every native event once, skips OCSF, dead-letters the rest; two members split the partitions', async () => {
    const topic = 'it-ingest.group';
    const table = 'it_ingest_group';
    const events = eventsOf(1, 40, 13); // 40 sessions × 15 events
    const native = new Publisher(topic);
    const ocsf = new Publisher(topic, 'ocsf');
    await native.publish(events.slice(0, 300));
    await ocsf.publish(events.slice(0, 20));
    const producer = new Kafka({
      brokers: [...kafka.brokers],
      logLevel: logLevel.NOTHING,
    }).producer();
    await producer.connect();
    await producer.send({ topic, messages: [{ key: 'x', value: 'not an event' }] });
    await producer.disconnect();

    const sinks = [sinkFor(table, 'ingest-a'), sinkFor(table, 'ingest-b')];
    const ingesters = sinks.map(
      (sink) =>
        new KafkaIngester({
          brokers: [...kafka.brokers],
          topic,
          groupId: 'it-ingest-group',
          sink,
          batchRows: 100,
          batchMs: 100,
          sessionTimeoutMs: 6_000,
        }),
    );
    try {
      await sinks[0]!.ensureTable();
      await Promise.all(ingesters.map((i) => i.start()));
      await native.publish(events.slice(300));

      expect(await waitForDistinct(table, events.length)).toBe(events.length);
      await expect
        .poll(() => ingesters.map((i) => i.stats.partitions), { timeout: 20_000 })
        .toSatisfy((p: number[]) => p.every((n) => n > 0) && p[0]! + p[1]! === PARTITIONS);
      await expect
        .poll(() => ingesters.reduce((n, i) => n + i.stats.deadLettered, 0), { timeout: 10_000 })
        .toBe(1);
      await expect
        .poll(() => ingesters.reduce((n, i) => n + i.stats.skippedOcsf, 0), { timeout: 10_000 })
        .toBe(20);
      expect(await count(`SELECT count() FROM ${table} FINAL`)).toBe(events.length);
      expect(await duplicatesAfterDedup(table)).toBe(0);
      expect(ingesters.reduce((n, i) => n + i.stats.lag, 0)).toBe(0);

      const letters = (
        await Promise.all(sinks.map((s) => readFile(s.deadLetters.path, 'utf8').catch(() => '')))
      ).join('');
      expect(letters).toContain('not an event');
      expect(letters).toContain('not JSON');
    } finally {
      await Promise.all(ingesters.map((i) => i.stop()));
      await Promise.all(sinks.map((s) => s.close()));
      await native.close();
      await ocsf.close();
    }
  }, 60_000);
});

describe('portcullis ingest', () => {
  function ingest(topic: string, table: string): { child: ChildProcess; stderr: () => string } {
    const child = spawn(
      process.execPath,
      [
        CLI,
        'ingest',
        ...['--brokers', kafka.brokers.join(','), '--topic', topic, '--group', 'it-ingest-cli'],
        ...['--clickhouse-url', clickhouse.url, '--table', table, '--schema', 'legacy18'],
        ...['--batch-rows', '40', '--batch-ms', '50', '--session-timeout-ms', '6000'],
        ...['--dead-letter-dir', dir, '--progress-ms', '200'],
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    children.push(child);
    let text = '';
    child.stderr!.on('data', (chunk: Buffer) => (text += chunk.toString()));
    return { child, stderr: () => text };
  }

  async function exited(child: ChildProcess): Promise<number | null> {
    if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
    return new Promise((resolve) => child.once('exit', (code) => resolve(code)));
  }

  it('keeps every event exactly once when an ingester is SIGKILLed mid-stream and another takes over', async () => {
    const topic = 'it-ingest.crash';
    const table = 'it_ingest_crash';
    const events = eventsOf(1_000, 100, 18); // 100 sessions × 20 events
    const publisher = new Publisher(topic);
    const rounds = 10;
    const per = events.length / rounds;
    try {
      await publisher.publish(events.slice(0, per));
      const first = ingest(topic, table);
      let round = 1;
      // Keep publishing until the first ingester has stored some events, then kill it.
      for (; round < rounds; round++) {
        await publisher.publish(events.slice(round * per, (round + 1) * per));
        if ((await count(`SELECT count() FROM ${table}`).catch(() => 0)) > 0) break;
        await sleep(100);
      }
      await expect
        .poll(() => count(`SELECT count() FROM ${table}`).catch(() => 0), {
          timeout: 20_000,
        })
        .toBeGreaterThan(0);
      first.child.kill('SIGKILL');
      await exited(first.child);
      const storedAtKill = await count(`SELECT uniqExact(id) FROM ${table}`);

      for (round++; round < rounds; round++) {
        await publisher.publish(events.slice(round * per, (round + 1) * per));
      }
      const second = ingest(topic, table);
      expect(await waitForDistinct(table, events.length, 40_000)).toBe(events.length);
      await expect.poll(second.stderr, { timeout: 5_000 }).toMatch(/lag 0/);
      second.child.kill('SIGTERM');
      expect(await exited(second.child)).toBe(0);
      expect(second.stderr()).toMatch(/stopped after storing \d+ events/);

      expect(storedAtKill).toBeLessThan(events.length);
      expect(await count(`SELECT count() FROM ${table} FINAL`)).toBe(events.length);
      expect(await duplicatesAfterDedup(table)).toBe(0);
      expect(await count(`SELECT uniqExact(id) FROM ${table}`)).toBe(events.length);
    } finally {
      await publisher.close();
    }
  }, 90_000);
});
