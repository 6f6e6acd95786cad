// The Kafka sink against a real single-node Kafka 4.x (KRaft) from the testkit: events drained
// from the durable spool by a SinkRunner arrive keyed by session, in order, with headers; a broker
// SIGKILLed mid-stream and restarted loses nothing (exactly once after dedup by event id); the
// OCSF format round-trips; wrong SASL credentials and an unreachable broker fail with typed errors
// while the runner keeps retrying and the events wait in the spool.
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import type { Logger, SessionEvent } from '@portcullis/core';
import {
  checkOcsfShape,
  KafkaSink,
  KafkaSinkError,
  SinkRunner,
  Spool,
  type KafkaSinkOptions,
} from '@portcullis/events';
import { freePort, startKafka, type KafkaServer } from '@portcullis/testkit';
import { Kafka, logLevel, type Admin } from 'kafkajs';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { sessionOf } from '../packages/events/src/ocsf/session-events.fixture.js';
import { readKafkaTopic } from './support/read-kafka-topic.js';

let kafka: KafkaServer;
let client: Kafka;
let admin: Admin;
const dirs: string[] = [];
const runners: SinkRunner[] = [];
const spools: Spool[] = [];

beforeAll(async () => {
  kafka = await startKafka({ partitions: 4 });
  client = new Kafka({ brokers: kafka.brokers, logLevel: logLevel.NOTHING, clientId: 'it-reader' });
  admin = client.admin();
  await admin.connect();
}, 180_000);

afterEach(async () => {
  for (const runner of runners.splice(0)) await runner.stop();
  for (const spool of spools.splice(0)) await spool.close();
  for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
});

afterAll(async () => {
  await admin?.disconnect();
  await kafka?.stop();
});

async function openSpool(): Promise<Spool> {
  const dir = await mkdtemp(join(tmpdir(), 'portcullis-kafka-spool-'));
  dirs.push(dir);
  const spool = await Spool.open({ dir, batchDelayMs: 1 });
  spools.push(spool);
  return spool;
}

async function createTopic(topic: string): Promise<void> {
  await admin.createTopics({ topics: [{ topic, numPartitions: 4 }], waitForLeaders: true });
}

/** Sessions of `perSession` statements each, interleaved as concurrent sessions would write. */
function interleaved(sessions: number, perSession: number, from = 0): SessionEvent[] {
  const all = Array.from({ length: sessions }, (_, i) => sessionOf(from + i, perSession));
  const out: SessionEvent[] = [];
  for (let i = 0; i < perSession + 2; i++) for (const s of all) out.push(s[i]!);
  return out;
}

function runnerFor(spool: Spool, options: Partial<KafkaSinkOptions> & { topic: string }) {
  const sink = new KafkaSink({ brokers: kafka.brokers, retries: 2, ...options });
  const runner = new SinkRunner(spool, sink, { retryDelayMs: 50, maxRetryDelayMs: 500 });
  runners.push(runner);
  return { sink, runner };
}

async function until(what: string, check: () => boolean, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

interface Consumed {
  partition: number;
  key: string;
  value: string;
  headers: Readonly<Record<string, string>>;
}

/** Every message in `topic` now (up to each partition's high watermark), in partition order. */
async function readTopic(topic: string): Promise<Consumed[]> {
  return (await readKafkaTopic(client, admin, topic)).map((m) => ({
    partition: m.partition,
    key: String(m.key),
    value: String(m.value),
    headers: m.headers,
  }));
}

/** Checks that each session's events appear in `seq` order (first occurrence of each id). */
function expectSessionOrder(messages: readonly Consumed[]): void {
  const seen = new Set<string>();
  const lastSeq = new Map<string, number>();
  const partitionOf = new Map<string, number>();
  for (const m of messages) {
    const id = m.headers['event-id']!;
    if (seen.has(id)) continue;
    seen.add(id);
    const event = JSON.parse(m.value) as SessionEvent;
    expect(m.key).toBe(event.sessionId);
    expect(partitionOf.get(m.key) ?? m.partition).toBe(m.partition);
    partitionOf.set(m.key, m.partition);
    expect(event.seq).toBe((lastSeq.get(m.key) ?? -1) + 1);
    lastSeq.set(m.key, event.seq);
  }
}

describe('KafkaSink with a real broker', () => {
  it('delivers every spooled event once, keyed by session, in order, with headers', async () => {
    const topic = 'events-native';
    await createTopic(topic);
    const spool = await openSpool();
    const events = interleaved(40, 48); // 2,000 events
    for (const e of events) spool.append(JSON.stringify(e));
    const { runner, sink } = runnerFor(spool, { topic });
    await runner.start();
    await until('the spool to drain', () => runner.stats.lagRecords === 0);

    const messages = await readTopic(topic);
    expect(messages).toHaveLength(events.length);
    expect(new Set(messages.map((m) => m.headers['event-id']))).toEqual(
      new Set(events.map((e) => e.id)),
    );
    for (const m of messages) {
      const event = JSON.parse(m.value) as SessionEvent;
      expect(m.headers).toEqual({
        'event-id': event.id,
        'schema-version': '1',
        'event-type': event.type,
        format: 'native',
      });
    }
    expectSessionOrder(messages);
    expect(new Set(messages.map((m) => m.partition)).size).toBeGreaterThan(1);
    expect(sink.stats).toMatchObject({ sent: events.length, deadLettered: 0, skipped: 0 });
  });

  it('keeps uncompressed batches under the broker message.max.bytes on a one-partition topic', async () => {
    // 1 MiB of events for one partition: sent whole, the batch (keys and headers included) would
    // pass the broker's default 1,048,588 bytes and be refused as MESSAGE_TOO_LARGE.
    const topic = 'events-one-partition';
    await admin.createTopics({ topics: [{ topic, numPartitions: 1 }], waitForLeaders: true });
    const spool = await openSpool();
    const events = interleaved(30, 60); // 1,860 events, ~1.4 MB
    for (const e of events) spool.append(JSON.stringify(e));
    const { runner, sink } = runnerFor(spool, { topic, compression: 'none' });
    await runner.start();
    await until('the spool to drain', () => runner.stats.lagRecords === 0);
    expect(runner.stats.failures).toBe(0);
    expect(sink.stats.sent).toBe(events.length);
    const messages = await readTopic(topic);
    expect(messages).toHaveLength(events.length);
    expectSessionOrder(messages);
  });

  it('loses nothing when the broker is SIGKILLed mid-stream and restarted', async () => {
    const topic = 'events-crash';
    await createTopic(topic);
    const spool = await openSpool();
    const events = interleaved(50, 58); // 3,000 events
    const { runner, sink } = runnerFor(spool, { topic, requestTimeoutMs: 5_000 });
    await runner.start();
    const half = events.length / 2;
    for (let i = 0; i < half; i++) {
      spool.append(JSON.stringify(events[i]));
      if (i % 100 === 99) await new Promise((resolve) => setTimeout(resolve, 2));
    }
    await until('some events to reach Kafka', () => sink.stats.sent > 0);
    await kafka.kill();
    for (let i = half; i < events.length; i++) spool.append(JSON.stringify(events[i]));
    await spool.flush();
    await until('a failed delivery', () => runner.stats.failures > 0);
    expect(runner.stats.lagRecords).toBeGreaterThan(0);
    await kafka.restart();
    await until('the spool to drain', () => runner.stats.lagRecords === 0, 45_000);

    const messages = await readTopic(topic);
    const ids = messages.map((m) => m.headers['event-id']!);
    const unique = new Set(ids);
    expect(unique.size).toBe(events.length);
    expect(unique).toEqual(new Set(events.map((e) => e.id)));
    expectSessionOrder(messages);
    // Duplicates are allowed (at least once) and removed by event id; report how many there were.
    console.info(
      `kafka crash test: ${messages.length - unique.size} duplicate(s) among ${messages.length} messages; ` +
        `${runner.stats.failures} failed deliveries; sink skipped ${sink.stats.skipped} already-sent record(s)`,
    );
  }, 90_000);

  it('publishes OCSF events that pass the shape check', async () => {
    const topic = 'events-ocsf';
    await createTopic(topic);
    const spool = await openSpool();
    const events = interleaved(5, 8);
    for (const e of events) spool.append(JSON.stringify(e));
    spool.append('not an event');
    const { runner, sink } = runnerFor(spool, {
      topic,
      format: 'ocsf',
      ocsf: { productVersion: '0.1.0' },
    });
    await runner.start();
    await until('the spool to drain', () => runner.stats.lagRecords === 0);

    const messages = await readTopic(topic);
    expect(messages).toHaveLength(events.length);
    for (const m of messages) {
      const ocsf = JSON.parse(m.value) as { metadata: { uid: string; correlation_uid: string } };
      expect(checkOcsfShape(ocsf)).toEqual([]);
      expect(ocsf.metadata.uid).toBe(m.headers['event-id']);
      expect(ocsf.metadata.correlation_uid).toBe(m.key);
      expect(m.headers['format']).toBe('ocsf');
    }
    const dead = await readTopic(`${topic}.dead-letter`);
    expect(dead).toHaveLength(1);
    expect(dead[0]!.value).toBe('not an event');
    expect(dead[0]!.headers['portcullis-error']).toBe('not JSON');
    expect(sink.stats).toMatchObject({ sent: events.length, deadLettered: 1 });
  });

  it('fails with a typed auth error on wrong SASL credentials, keeps retrying, loses nothing', async () => {
    const topic = 'events-sasl';
    await createTopic(topic);
    const spool = await openSpool();
    const events = interleaved(3, 4);
    for (const e of events) spool.append(JSON.stringify(e));
    const wrongPassword = `wrong-${randomUUID()}`;
    const logged: unknown[] = [];
    const logger: Logger = {
      debug: (o) => logged.push(o),
      info: (o) => logged.push(o),
      warn: (o) => logged.push(o),
      error: (o) => logged.push(o),
    };
    const sink = new KafkaSink({
      brokers: kafka.saslBrokers,
      topic,
      sasl: { mechanism: 'plain', username: kafka.sasl.username, password: wrongPassword },
      retries: 1,
      logger,
    });
    const runner = new SinkRunner(spool, sink, { retryDelayMs: 50, maxRetryDelayMs: 200, logger });
    runners.push(runner);
    await runner.start();
    await until('three failed deliveries', () => runner.stats.failures >= 3);
    expect(runner.stats.lastError).toMatch(/authentication failed \(SASL plain\)/);
    const failure = logged.find(
      (o): o is { err: KafkaSinkError } => (o as { err?: unknown }).err instanceof KafkaSinkError,
    );
    expect(failure?.err.failure).toBe('auth');
    expect(failure?.err.code).toBe('PCL_ERR_EVENTS_WRITE');
    expect(inspect(logged, { depth: 12 })).not.toContain(wrongPassword);
    expect(runner.stats.lagRecords).toBe(events.length);
    await runner.stop();
    runners.splice(runners.indexOf(runner), 1);

    // The right credentials deliver everything that waited in the spool.
    const good = runnerFor(spool, { topic, brokers: kafka.saslBrokers, sasl: kafka.sasl });
    await good.runner.start();
    await until('the spool to drain', () => good.runner.stats.lagRecords === 0);
    expect((await readTopic(topic)).map((m) => m.headers['event-id']).sort()).toEqual(
      events.map((e) => e.id).sort(),
    );
  });

  it('fails with a typed unreachable error when no broker answers, keeps the events', async () => {
    const spool = await openSpool();
    const events = interleaved(2, 3);
    for (const e of events) spool.append(JSON.stringify(e));
    const { runner } = runnerFor(spool, {
      topic: 'events-nowhere',
      brokers: [`127.0.0.1:${await freePort()}`],
      retries: 1,
      connectionTimeoutMs: 500,
    });
    await runner.start();
    await until('two failed deliveries', () => runner.stats.failures >= 2);
    expect(runner.stats.lastError).toMatch(/no broker reachable/);
    expect(runner.stats.lagRecords).toBe(events.length);
  });
});
