// Throughput of the Kafka sink (packages/events/src/sinks/kafka-sink.ts) into a real broker.
//
//   node --conditions=@portcullis/source --import tsx bench/kafka-sink.bench.ts [--events 100000] [--runs 3]
//
// A single-node Kafka 4.x from the testkit (same machine: the broker's JVM shares the cores with
// this process). Each run fills a fresh spool with --events statement events (~730 bytes of JSON
// each, 64 sessions), then starts a SinkRunner with a KafkaSink and times the drain: from start
// until the last batch is acknowledged by Kafka (acks -1) and in the spool. Cases: native and OCSF
// format, gzip and no compression. The baseline, in the same run: a raw kafkajs producer with the
// same settings (idempotent, maxInFlightRequests 1, acks -1; the request sizes the sink had with
// kafkajs: 4 MB of JSON per request with gzip, 900 kB without) sending the same messages
// pre-encoded (keys, values and headers built before the clock starts), no spool; and the sink's
// own producer (KafkaProducer.sendRecords) sending the same pre-built records in the same
// requests, no spool. The sink rows run SinkRunner with STREAM_BATCHES, as the gateway runs its
// Kafka sink (up to 20,000 records read 8 MiB at a time, the next batch read while one is
// delivered); the "read first" rows hand the sink the same batches from memory, without the
// runner reading the spool between deliveries. Each run writes to a new 4-partition topic.
// Figures are medians of --runs runs; the broker shares this machine's cores, so they vary with
// its load.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import {
  buildKafkaMessage,
  KafkaProducer,
  KafkaSink,
  type ProducerRecord,
  SinkRunner,
  STREAM_BATCHES,
  Spool,
  type KafkaEventMessage,
  type KafkaSinkCompression,
  type KafkaSinkFormat,
  type SpoolRecord,
} from '@portcullis/events';
import { startKafka } from '@portcullis/testkit';
import { CompressionTypes, Kafka, logLevel, Partitioners, type Message } from 'kafkajs';
import { formatBenchTable, median } from './support/bench-table.js';
import { sampleStatementEvent } from './support/sample-events.js';

const arg = (name: string, fallback: number): number => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
};
const EVENTS = arg('events', 100_000);
const RUNS = arg('runs', 3);
const GOAL = 100_000;

const LINES = Array.from({ length: EVENTS }, (_, i) =>
  JSON.stringify(sampleStatementEvent(i, { sessions: 'interleaved' })),
);
const AVG_BYTES = LINES.reduce((n, l) => n + Buffer.byteLength(l), 0) / LINES.length;

const kafka = await startKafka({ partitions: 4 });
const client = new Kafka({ brokers: kafka.brokers, logLevel: logLevel.NOTHING });
const admin = client.admin();
await admin.connect();
let topics = 0;

async function freshTopic(): Promise<string> {
  const topic = `bench-${++topics}`;
  await admin.createTopics({ topics: [{ topic, numPartitions: 4 }], waitForLeaders: true });
  return topic;
}

/** Drains a pre-filled spool into Kafka through SinkRunner + KafkaSink; returns events/s. */
async function sinkRun(
  format: KafkaSinkFormat,
  compression: KafkaSinkCompression,
): Promise<number> {
  const dir = await mkdtemp(join(tmpdir(), 'pcl-kafka-bench-'));
  try {
    const spool = await Spool.open({ dir, maxBytes: 8 * 1024 ** 3 });
    for (const line of LINES) spool.append(line);
    await spool.flush();
    const topic = await freshTopic();
    const sink = new KafkaSink({
      brokers: kafka.brokers,
      topic,
      format,
      compression,
    });
    const runner = new SinkRunner(spool, sink, STREAM_BATCHES);
    const started = performance.now();
    await runner.start();
    while (runner.stats.lagRecords > 0) await new Promise((resolve) => setTimeout(resolve, 2));
    const elapsed = performance.now() - started;
    if (sink.stats.sent !== EVENTS) throw new Error(`sent ${sink.stats.sent} of ${EVENTS}`);
    await runner.stop();
    await spool.close();
    return EVENTS / (elapsed / 1000);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * The sink alone: the same spool batches the runner would hand it (STREAM_BATCHES), read into memory
 * before the clock starts, delivered one after another; the difference to the spool → KafkaSink
 * rows is what reading the spool in between costs.
 */
async function deliverRun(compression: KafkaSinkCompression): Promise<number> {
  const dir = await mkdtemp(join(tmpdir(), 'pcl-kafka-bench-'));
  try {
    const spool = await Spool.open({ dir, maxBytes: 8 * 1024 ** 3 });
    for (const line of LINES) spool.append(line);
    await spool.flush();
    const reader = await spool.openReader('kafka', STREAM_BATCHES);
    const batches: SpoolRecord[][] = [];
    for (let batch = await reader.poll(); batch !== null; batch = await reader.poll()) {
      batches.push([...batch.records]);
    }
    await reader.close();
    const topic = await freshTopic();
    const sink = new KafkaSink({ brokers: kafka.brokers, topic, compression });
    const started = performance.now();
    for (const records of batches) await sink.deliver(records);
    const elapsed = performance.now() - started;
    if (sink.stats.sent !== EVENTS) throw new Error(`sent ${sink.stats.sent} of ${EVENTS}`);
    await sink.close();
    await spool.close();
    return EVENTS / (elapsed / 1000);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** The sink's request sizes: 4 MB of JSON per request with gzip, 900 kB without. */
function requestsOf<T>(
  compression: KafkaSinkCompression,
  message: (built: KafkaEventMessage) => T,
): T[][] {
  const maxRequestBytes = compression === 'gzip' ? 4_000_000 : 900_000;
  const requests: T[][] = [];
  let current: T[] = [];
  let bytes = 0;
  for (const line of LINES) {
    const built = buildKafkaMessage(Buffer.from(line), 'native');
    if (built.kind !== 'event') throw new Error('bench event is not an event');
    const size = Buffer.byteLength(built.value);
    if (bytes + size > maxRequestBytes && current.length > 0) {
      requests.push(current);
      current = [];
      bytes = 0;
    }
    current.push(message(built));
    bytes += size;
  }
  requests.push(current);
  return requests;
}

/** The baseline: the same messages, built beforehand, sent by a raw kafkajs producer. */
async function rawRun(compression: KafkaSinkCompression): Promise<number> {
  const requests = requestsOf<Message>(compression, (built) => ({
    key: built.key,
    value: built.value,
    headers: { ...built.headers },
    timestamp: built.timestamp,
  }));
  const topic = await freshTopic();
  const producer = client.producer({
    idempotent: true,
    maxInFlightRequests: 1,
    createPartitioner: Partitioners.DefaultPartitioner,
  });
  await producer.connect();
  const started = performance.now();
  for (const messages of requests) {
    await producer.send({
      topic,
      messages,
      acks: -1,
      compression: compression === 'gzip' ? CompressionTypes.GZIP : CompressionTypes.None,
    });
  }
  const elapsed = performance.now() - started;
  await producer.disconnect();
  return EVENTS / (elapsed / 1000);
}

/** The sink's producer on its own: the same records, built beforehand, one request at a time. */
async function producerRun(compression: KafkaSinkCompression): Promise<number> {
  const requests = requestsOf<ProducerRecord>(compression, (built) => ({
    key: built.key,
    value: built.value,
    headers: built.headers,
    timestamp: Number(built.timestamp),
  }));
  const topic = await freshTopic();
  const producer = new KafkaProducer({ brokers: kafka.brokers, compression });
  await producer.partitionCount(topic);
  const started = performance.now();
  for (const records of requests) await producer.sendRecords(topic, records);
  const elapsed = performance.now() - started;
  await producer.close();
  return EVENTS / (elapsed / 1000);
}

const cases: [string, () => Promise<number>][] = [
  ['raw kafkajs producer, pre-encoded (baseline), gzip', () => rawRun('gzip')],
  ['raw KafkaProducer, pre-built records, gzip', () => producerRun('gzip')],
  ['spool → KafkaSink native, gzip', () => sinkRun('native', 'gzip')],
  ['spool batches read first → KafkaSink native, gzip', () => deliverRun('gzip')],
  ['spool → KafkaSink OCSF, gzip', () => sinkRun('ocsf', 'gzip')],
  ['raw kafkajs producer, pre-encoded (baseline), none', () => rawRun('none')],
  ['raw KafkaProducer, pre-built records, none', () => producerRun('none')],
  ['spool → KafkaSink native, none', () => sinkRun('native', 'none')],
  ['spool batches read first → KafkaSink native, none', () => deliverRun('none')],
  ['spool → KafkaSink OCSF, none', () => sinkRun('ocsf', 'none')],
];

try {
  // One untimed warm-up (JIT of kafkajs and the broker).
  await sinkRun('native', 'gzip');
  const results = new Map<string, number[]>();
  for (let run = 0; run < RUNS; run++) {
    for (const [name, fn] of cases) {
      const list = results.get(name) ?? [];
      list.push(await fn());
      results.set(name, list);
    }
  }
  const baseline = (compression: string): number =>
    median(results.get(`raw kafkajs producer, pre-encoded (baseline), ${compression}`)!);
  const rows = cases.map(([name]) => {
    const eps = median(results.get(name)!);
    const compression = name.endsWith('gzip') ? 'gzip' : 'none';
    return [
      name,
      Math.round(eps).toLocaleString('en-US').replaceAll(',', ''),
      ((eps * AVG_BYTES) / 1024 ** 2).toFixed(1),
      (eps / baseline(compression)).toFixed(2),
      eps >= GOAL ? 'yes' : 'no',
    ];
  });
  process.stdout.write(
    `Kafka sink throughput: ${EVENTS} events of ~${Math.round(AVG_BYTES)} B JSON, Kafka ${kafka.version} ` +
      `single node on this machine, acks -1, idempotent producer; median of ${RUNS} runs\n\n` +
      formatBenchTable(
        ['case', 'events/s', 'MiB/s (JSON)', 'vs baseline', `≥ ${GOAL / 1000}k/s`],
        rows,
      ) +
      '\n',
  );
} finally {
  await admin.disconnect();
  await kafka.stop();
}
