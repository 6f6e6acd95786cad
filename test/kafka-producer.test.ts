// The Kafka producer client (packages/events/src/kafka-producer) against a real single-node Kafka
// 4.x from the testkit: records spread over many partitions and keys come back through a kafkajs
// consumer with their key, headers, timestamp and value, each key in order and in the partition
// kafkajs would pick, with and without gzip; SASL PLAIN and SCRAM-SHA-256/512 with good and bad
// credentials; a topic the principal may not write; a batch over the broker's size limit. A
// tiny fake broker (a TCP server in this file) sends malformed and truncated answers, or none:
// each fails promptly with a typed error instead of hanging.
import { randomUUID } from 'node:crypto';
import { createServer, type Server, type Socket } from 'node:net';
import { inspect } from 'node:util';
import {
  KafkaClientError,
  KafkaProducer,
  KafkaSink,
  KafkaSinkError,
  type KafkaProducerOptions,
  type ProducerRecord,
} from '@portcullis/events';
import { freePort, startKafka, type KafkaServer } from '@portcullis/testkit';
import { Kafka, logLevel, type Admin } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { kafkajsPartition } from '../packages/events/src/kafka-producer/kafkajs-internals.fixture.js';
import { readKafkaTopic, type ConsumedMessage } from './support/read-kafka-topic.js';

let kafka: KafkaServer;
let client: Kafka;
let admin: Admin;
const producers: KafkaProducer[] = [];

beforeAll(async () => {
  kafka = await startKafka({ partitions: 3, tls: true });
  client = new Kafka({ brokers: kafka.brokers, logLevel: logLevel.NOTHING, clientId: 'it-reader' });
  admin = client.admin();
  await admin.connect();
}, 180_000);

afterAll(async () => {
  for (const producer of producers.splice(0)) await producer.close();
  await admin?.disconnect();
  await kafka?.stop();
});

function producerFor(options: Partial<KafkaProducerOptions> = {}): KafkaProducer {
  const producer = new KafkaProducer({ brokers: kafka.brokers, retries: 2, ...options });
  producers.push(producer);
  return producer;
}

/** Every message in `topic` now, in partition and offset order. */
const readTopic = (topic: string): Promise<ConsumedMessage[]> =>
  readKafkaTopic(client, admin, topic);

const T0 = 1_760_000_000_000;

/** `count` records over `keys` keys (some non-ASCII), each value naming its key and its index. */
function recordsFor(count: number, keys: number): ProducerRecord[] {
  return Array.from({ length: count }, (_, i) => {
    const key = i % 11 === 0 ? `sessión-ü-${i % keys}` : `session-${i % keys}`;
    const value = i % 97 === 0 ? '' : JSON.stringify({ key, i, pad: 'x'.repeat(i % 700) });
    return {
      key,
      value: i % 2 === 0 ? value : Buffer.from(value),
      headers: { 'event-id': `e-${i}`, 'event-type': i % 3 === 0 ? 'statement' : 'session.end' },
      timestamp: T0 + (i % 50) * 1_000 - 20_000,
    };
  });
}

function expectReadBack(
  sent: readonly ProducerRecord[],
  got: readonly ConsumedMessage[],
  partitions: number,
) {
  expect(got).toHaveLength(sent.length);
  const byId = new Map(got.map((m) => [m.headers['event-id'], m]));
  const lastIndexOfKey = new Map<string, { partition: number; offset: number }>();
  sent.forEach((record, i) => {
    const m = byId.get(`e-${i}`)!;
    const key = record.key as string;
    expect(m.key?.toString()).toBe(key);
    expect(m.value?.toString() ?? '').toBe(String(record.value));
    expect(m.timestamp).toBe(String(record.timestamp));
    expect(m.headers).toEqual(record.headers);
    expect(m.partition).toBe(kafkajsPartition(key, partitions));
    const previous = lastIndexOfKey.get(key);
    if (previous !== undefined) {
      expect(m.partition).toBe(previous.partition);
      expect(m.offset).toBeGreaterThan(previous.offset);
    }
    lastIndexOfKey.set(key, m);
  });
}

describe('KafkaProducer with a real broker', () => {
  for (const compression of ['none', 'gzip'] as const) {
    it(`sends many keys over many partitions, readable by kafkajs, each key in order (${compression})`, async () => {
      const topic = `many-${compression}`;
      await admin.createTopics({ topics: [{ topic, numPartitions: 12 }], waitForLeaders: true });
      const producer = producerFor({ compression, gzipLevel: compression === 'gzip' ? 6 : 1 });
      expect(await producer.partitionCount(topic)).toBe(12);
      const records = recordsFor(6_000, 300);
      // Several sends: sequence numbers go on from one send to the next.
      for (let at = 0; at < records.length; at += 1_500) {
        // A topic just created may still answer NOT_LEADER_OR_FOLLOWER for a partition or two:
        // those batches are retried, so a send can take more than one request.
        const summary = await producer.sendRecords(topic, records.slice(at, at + 1_500));
        expect(summary.records).toBe(1_500);
        expect(summary.requests).toBeGreaterThanOrEqual(1);
      }
      expectReadBack(records, await readTopic(topic), 12);
    });
  }

  it('creates a missing topic on first use and sends keyless records round-robin', async () => {
    const topic = `auto-${randomUUID()}`;
    const producer = producerFor();
    const records = Array.from({ length: 30 }, (_, i) => ({ value: `v${i}`, timestamp: T0 }));
    await producer.sendRecords(topic, records);
    const got = await readTopic(topic);
    expect(got.map((m) => m.value?.toString()).sort()).toEqual(records.map((r) => r.value).sort());
    expect(got.every((m) => m.key === null)).toBe(true);
    expect(new Set(got.map((m) => m.partition)).size).toBe(3);
  });

  it('refuses a batch over the broker limit as MESSAGE_TOO_LARGE, and sends again afterwards', async () => {
    const topic = `too-large-${randomUUID()}`;
    const producer = producerFor();
    const err: unknown = await producer
      .sendRecords(topic, [{ key: 'k', value: Buffer.alloc(2 * 1024 * 1024, 7) }])
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KafkaClientError);
    expect(err).toMatchObject({ failure: 'broker', errorCode: 10 });
    expect((err as Error).message).toMatch(new RegExp(`${topic}/\\d from .*: MESSAGE_TOO_LARGE`));
    // The failed send dropped the producer id; the next one takes a new one and succeeds.
    await producer.sendRecords(topic, [{ key: 'k', value: 'small' }]);
    expect((await readTopic(topic)).map((m) => m.value?.toString())).toEqual(['small']);
  });

  it('picks up partitions added to a topic once its metadata is older than the max age', async () => {
    const topic = `grown-${randomUUID()}`;
    await admin.createTopics({ topics: [{ topic, numPartitions: 2 }], waitForLeaders: true });
    const cached = producerFor();
    const fresh = producerFor({ metadataMaxAgeMs: 0 });
    expect(await cached.partitionCount(topic)).toBe(2);
    expect(await fresh.partitionCount(topic)).toBe(2);
    await admin.createPartitions({ topicPartitions: [{ topic, count: 5 }] });
    const deadline = Date.now() + 10_000;
    while ((await fresh.partitionCount(topic)) !== 5 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(await fresh.partitionCount(topic)).toBe(5);
    expect(await cached.partitionCount(topic)).toBe(2);
  });

  it('refuses sends after close', async () => {
    const producer = producerFor();
    await producer.close();
    await expect(producer.sendRecords('t', [{ value: 'x' }])).rejects.toMatchObject({
      failure: 'producer-closed',
    });
  });
});

describe('KafkaProducer over TLS', () => {
  it('sends with the CA passed through to node:tls, and refuses a certificate it cannot verify', async () => {
    const topic = 'over-tls';
    const producer = producerFor({ brokers: kafka.sslBrokers, ssl: { ca: kafka.tlsCa! } });
    await producer.sendRecords(topic, [{ key: 'k', value: 'sent over TLS' }]);
    expect((await readTopic(topic)).map((m) => m.value?.toString())).toEqual(['sent over TLS']);

    // `ssl: true` trusts the system CAs only, which never signed the testkit's certificate.
    const untrusting = producerFor({ brokers: kafka.sslBrokers, ssl: true, retries: 0 });
    const err: unknown = await untrusting.partitionCount(topic).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KafkaClientError);
    expect(err).toMatchObject({ failure: 'unreachable' });
    expect((err as Error).message).toMatch(/certificate/i);
  });

  it('lets the sink publish over TLS', async () => {
    const sink = new KafkaSink({
      brokers: kafka.sslBrokers,
      topic: 'sink-over-tls',
      ssl: { ca: kafka.tlsCa! },
      compression: 'none',
    });
    const event = JSON.stringify({
      schema: 1,
      id: 'ev-1',
      type: 'session.start',
      timeUs: 1_760_000_000_000_000,
      sessionId: 's-1',
    });
    await sink.deliver([{ sequence: 1, payload: Buffer.from(event) }]);
    await sink.close();
    const [message] = await readTopic('sink-over-tls');
    expect(message?.key?.toString()).toBe('s-1');
    expect(message?.timestamp).toBe('1760000000000');
    expect(message?.headers).toEqual({
      'event-id': 'ev-1',
      'schema-version': '1',
      'event-type': 'session.start',
      format: 'native',
    });
  });
});

describe('KafkaProducer SASL', () => {
  const credentials = {
    plain: () => kafka.sasl,
    'scram-sha-256': () => kafka.scramSha256,
    'scram-sha-512': () => kafka.scramSha512,
  };

  for (const mechanism of ['plain', 'scram-sha-256', 'scram-sha-512'] as const) {
    it(`authenticates with the right credentials and fails typed with wrong ones (${mechanism})`, async () => {
      const sasl = credentials[mechanism]();
      const topic = `sasl-${sasl.mechanism}`;
      const good = producerFor({ brokers: kafka.saslBrokers, sasl });
      await good.sendRecords(topic, [{ key: 'k', value: sasl.mechanism }]);
      expect((await readTopic(topic)).map((m) => m.value?.toString())).toEqual([sasl.mechanism]);

      const wrongPassword = `wrong-${randomUUID()}`;
      const bad = producerFor({
        brokers: kafka.saslBrokers,
        sasl: { ...sasl, password: wrongPassword },
      });
      const err: unknown = await bad.sendRecords(topic, [{ value: 'x' }]).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(KafkaClientError);
      expect((err as KafkaClientError).failure).toBe('auth');
      expect((err as Error).message).toMatch(/SASL (PLAIN|SCRAM-SHA-(256|512)) authentication/);
      expect((err as Error).message).toContain(kafka.saslBrokers[0]);
      expect(inspect(err, { depth: 12 })).not.toContain(wrongPassword);
    });
  }

  it('says so when SASL is configured for a listener that takes none', async () => {
    const producer = producerFor({
      brokers: kafka.brokers,
      sasl: { mechanism: 'scram-sha-256', username: 'u', password: 'p' },
      retries: 0,
    });
    const err: unknown = await producer.partitionCount('t').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KafkaClientError);
    expect((err as KafkaClientError).failure).toBe('auth');
    expect((err as Error).message).toMatch(/the listener takes no SASL/);
  });

  it('makes the sink fail with auth on wrong SCRAM credentials, naming broker and topic only', async () => {
    const wrongPassword = `wrong-${randomUUID()}`;
    const sink = new KafkaSink({
      brokers: kafka.saslBrokers,
      topic: 'sink-scram',
      sasl: { ...kafka.scramSha512, password: wrongPassword },
      retries: 0,
    });
    const err: unknown = await sink
      .deliver([{ sequence: 1, payload: Buffer.from('{}') }])
      .catch((e: unknown) => e);
    await sink.close();
    expect(err).toBeInstanceOf(KafkaSinkError);
    expect((err as KafkaSinkError).failure).toBe('auth');
    expect((err as Error).message).toMatch(/authentication failed \(SASL scram-sha-512\)/);
    expect((err as Error).message).toContain('topic sink-scram');
    expect(inspect(err, { depth: 12 })).not.toContain(wrongPassword);
  });
});

describe('KafkaProducer against a broker with an authorizer', () => {
  let secured: KafkaServer;

  beforeAll(async () => {
    secured = await startKafka({
      properties: {
        'authorizer.class.name': 'org.apache.kafka.metadata.authorizer.StandardAuthorizer',
        // The broker itself (PLAINTEXT listeners) and the PLAIN user may do anything; the SCRAM
        // user has no ACLs, so it may write nothing.
        'super.users': 'User:ANONYMOUS;User:portcullis',
      },
    });
  }, 180_000);

  afterAll(async () => {
    await secured?.stop();
  });

  it('fails with a typed auth error when the principal may not write the topic', async () => {
    const producer = producerFor({
      brokers: secured.saslBrokers,
      sasl: secured.scramSha256,
      retries: 0,
    });
    const err: unknown = await producer.sendRecords('forbidden', [{ value: 'x' }]).catch((e) => e);
    expect(err).toBeInstanceOf(KafkaClientError);
    expect(err).toMatchObject({ failure: 'auth', errorCode: 29 });
    expect((err as Error).message).toMatch(
      /forbidden cannot be written: TOPIC_AUTHORIZATION_FAILED/,
    );

    const sink = new KafkaSink({
      brokers: secured.saslBrokers,
      topic: 'forbidden',
      sasl: secured.scramSha256,
      retries: 0,
    });
    const sinkErr: unknown = await sink
      .deliver([{ sequence: 1, payload: Buffer.from('{}') }])
      .catch((e: unknown) => e);
    await sink.close();
    expect(sinkErr).toMatchObject({ failure: 'auth' });
    expect((sinkErr as Error).message).toMatch(/access refused \(TOPIC_AUTHORIZATION_FAILED\)/);

    // The super user writes.
    const allowed = producerFor({ brokers: secured.saslBrokers, sasl: secured.sasl });
    await allowed.sendRecords('allowed', [{ value: 'x' }]);
  });
});

/** A fake broker: answers ApiVersions properly, then whatever `answer` writes. */
async function fakeBroker(
  answer: (socket: Socket, request: { apiKey: number; correlationId: number }) => void,
): Promise<{ broker: string; server: Server }> {
  const server = createServer((socket) => {
    let buffered = Buffer.alloc(0);
    socket.on('error', () => undefined);
    socket.on('data', (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      while (buffered.length >= 4 && buffered.length >= 4 + buffered.readInt32BE(0)) {
        const size = buffered.readInt32BE(0);
        const apiKey = buffered.readInt16BE(4);
        const correlationId = buffered.readInt32BE(8);
        buffered = buffered.subarray(4 + size);
        if (apiKey === 18) socket.write(apiVersionsResponse(correlationId));
        else answer(socket, { apiKey, correlationId });
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  return { broker: `127.0.0.1:${port}`, server };
}

function frame(correlationId: number, body: Buffer): Buffer {
  const out = Buffer.alloc(8 + body.length);
  out.writeInt32BE(4 + body.length, 0);
  out.writeInt32BE(correlationId, 4);
  body.copy(out, 8);
  return out;
}

function apiVersionsResponse(correlationId: number): Buffer {
  const apis = [
    [0, 3, 13],
    [3, 0, 13],
    [17, 0, 1],
    [18, 0, 4],
    [22, 0, 5],
    [36, 0, 2],
  ];
  const body = Buffer.alloc(2 + 4 + apis.length * 6 + 4);
  body.writeInt32BE(apis.length, 2);
  apis.forEach(([key, min, max], i) => {
    body.writeInt16BE(key!, 6 + i * 6);
    body.writeInt16BE(min!, 8 + i * 6);
    body.writeInt16BE(max!, 10 + i * 6);
  });
  return frame(correlationId, body);
}

describe('KafkaProducer against a broken broker', () => {
  const servers: Server[] = [];
  afterAll(() => {
    for (const server of servers) server.close();
  });

  async function failureOf(
    answer: (socket: Socket, request: { apiKey: number; correlationId: number }) => void,
    options: Partial<KafkaProducerOptions> = {},
  ): Promise<KafkaClientError> {
    const { broker, server } = await fakeBroker(answer);
    servers.push(server);
    const producer = producerFor({
      brokers: [broker],
      retries: 0,
      requestTimeoutMs: 2_000,
      ...options,
    });
    const started = Date.now();
    const err: unknown = await producer.partitionCount('t').catch((e: unknown) => e);
    expect(Date.now() - started).toBeLessThan(3_000);
    expect(err).toBeInstanceOf(KafkaClientError);
    expect((err as Error).message).toContain(broker);
    return err as KafkaClientError;
  }

  it('refuses a frame size out of range', async () => {
    const err = await failureOf((socket) => socket.write(Buffer.from([0x7f, 0xff, 0xff, 0xff])));
    expect(err.failure).toBe('malformed');
    expect(err.message).toMatch(/frame size 2147483647/);
  });

  it('refuses a response for another request', async () => {
    const err = await failureOf((socket, { correlationId }) =>
      socket.write(frame(correlationId + 7, Buffer.alloc(8))),
    );
    expect(err.failure).toBe('malformed');
    expect(err.message).toMatch(/correlation id/);
  });

  it('refuses a truncated metadata response', async () => {
    const body = Buffer.alloc(20);
    body.writeInt32BE(0, 0); // throttle time
    body.writeInt32BE(1, 4); // one broker
    body.writeInt32BE(1, 8); // node id
    body.writeInt16BE(50, 12); // a host of 50 bytes, of which 6 are there
    body.write('abcdef', 14);
    const err = await failureOf((socket, { correlationId }) =>
      socket.write(frame(correlationId, body)),
    );
    expect(err.failure).toBe('malformed');
    expect(err.message).toMatch(/Metadata response that cannot be decoded.*truncated/);
  });

  it('refuses an array longer than the response', async () => {
    const body = Buffer.alloc(8);
    body.writeInt32BE(0, 0);
    body.writeInt32BE(100_000_000, 4);
    const err = await failureOf((socket, { correlationId }) =>
      socket.write(frame(correlationId, body)),
    );
    expect(err.failure).toBe('malformed');
    expect(err.message).toMatch(/claims 100000000 items/);
  });

  it('fails when the broker closes in the middle of a response', async () => {
    const err = await failureOf((socket, { correlationId }) => {
      socket.end(frame(correlationId, Buffer.alloc(64)).subarray(0, 20));
    });
    expect(err.failure).toBe('closed');
  });

  it('times out when the broker does not answer', async () => {
    const err = await failureOf(() => undefined, { requestTimeoutMs: 300 });
    expect(err.failure).toBe('timeout');
    expect(err.message).toMatch(/Metadata request to Kafka broker .* timed out after 300 ms/);
  });

  it('names an old broker that lacks the needed API versions', async () => {
    const { broker, server } = await fakeBroker(() => undefined);
    servers.push(server);
    server.removeAllListeners('connection');
    server.on('connection', (socket: Socket) => {
      socket.once('data', (chunk: Buffer) => {
        // A Kafka 2.0 broker: Produce up to v6.
        const body = Buffer.alloc(2 + 4 + 6 + 4);
        body.writeInt32BE(1, 2);
        body.writeInt16BE(0, 6);
        body.writeInt16BE(0, 8);
        body.writeInt16BE(6, 10);
        socket.write(frame(chunk.readInt32BE(8), body));
      });
    });
    const producer = producerFor({ brokers: [broker], retries: 0 });
    await expect(producer.partitionCount('t')).rejects.toMatchObject({
      failure: 'unsupported',
      message: expect.stringMatching(/needs Metadata v5–v8 \(Kafka 2\.1 or newer\)/),
    });
  });

  it('names the mechanisms a listener offers when the configured one is not among them', async () => {
    const err = await failureOf(
      (socket, { apiKey, correlationId }) => {
        if (apiKey !== 17) return;
        const body = Buffer.alloc(2 + 4 + 2 + 5);
        body.writeInt16BE(33, 0); // UNSUPPORTED_SASL_MECHANISM
        body.writeInt32BE(1, 2);
        body.writeInt16BE(5, 6);
        body.write('PLAIN', 8);
        socket.write(frame(correlationId, body));
      },
      { sasl: { mechanism: 'scram-sha-512', username: 'u', password: 'secret-pw' } },
    );
    expect(err.failure).toBe('auth');
    expect(err.message).toMatch(/does not enable SCRAM-SHA-512 \(it offers: PLAIN\)/);
    expect(inspect(err, { depth: 12 })).not.toContain('secret-pw');
  });

  it('fails as unreachable when nothing listens', async () => {
    const port = await freePort();
    const producer = producerFor({ brokers: [`127.0.0.1:${port}`], retries: 0 });
    await expect(producer.partitionCount('t')).rejects.toMatchObject({
      failure: 'unreachable',
      message: expect.stringMatching(
        new RegExp(`no Kafka broker reachable.*127\\.0\\.0\\.1:${port}.*ECONNREFUSED`),
      ),
    });
  });
});
