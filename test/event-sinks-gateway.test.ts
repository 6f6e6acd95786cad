// The gateway's event pipeline with its network sinks configured, against a real Kafka broker
// and a real ClickHouse server from the test kit: every statement of a session reaches the
// Kafka topic (keyed by session id, with the event-id header) and the ClickHouse table, through
// the durable spool.
import {
  startClickHouse,
  startKafka,
  type ClickHouseServer,
  type KafkaServer,
} from '@portcullis/testkit';
import { Kafka, logLevel } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createSharedDatabase,
  dropSharedDatabase,
  sharedResource,
  sleep,
  startGatewayFixture,
  type GatewayFixture,
} from './support/gateway-fixture.js';

const DB = 'it_event_sinks_gateway';
const TOPIC = 'portcullis.it-events';
let kafka: KafkaServer;
let clickhouse: ClickHouseServer;
let gw: GatewayFixture;

beforeAll(async () => {
  [kafka, clickhouse] = await Promise.all([startKafka(), startClickHouse()]);
  await createSharedDatabase(DB);
  gw = await startGatewayFixture({
    resources: { app: sharedResource(DB, 'scram') },
    events: {
      pipeline: {
        store: { kind: 'none' },
        kafka: { brokers: [...kafka.brokers], topic: TOPIC, format: 'native' },
        clickhouse: { url: clickhouse.url, table: 'it_events', schema: 'legacy18' },
      },
    },
  });
}, 120_000);

afterAll(async () => {
  await gw?.dispose();
  await dropSharedDatabase(DB);
  await kafka?.stop();
  await clickhouse?.stop();
});

describe('network sinks through the gateway', () => {
  it('delivers every event of a session to Kafka and to ClickHouse', async () => {
    const client = await gw.connect('app', { application_name: 'sinks-it' });
    for (let i = 0; i < 20; i++) await client.query(`SELECT ${i} AS n`);
    await client.end();
    const events = await gw.sessionEvents('sinks-it');
    const session = events[0]!.sessionId;
    const ids = events.map((e) => e.id);
    expect(ids).toHaveLength(22);

    // ClickHouse: every event of the session, once (legacy18 dedups by id on merge; count distinct).
    let stored = 0;
    for (let attempt = 0; attempt < 100 && stored < ids.length; attempt++) {
      stored = Number(
        (
          await clickhouse.query(
            `SELECT uniqExact(id) FROM it_events WHERE session_id = '${session}'`,
          )
        ).trim(),
      );
      if (stored < ids.length) await sleep(100);
    }
    expect(stored).toBe(ids.length);

    // Kafka: every event of the session, in order, keyed by the session id.
    const consumer = new Kafka({
      brokers: [...kafka.brokers],
      logLevel: logLevel.NOTHING,
    }).consumer({
      groupId: `it-${Date.now()}`,
    });
    await consumer.connect();
    await consumer.subscribe({ topic: TOPIC, fromBeginning: true });
    const seen: string[] = [];
    await consumer.run({
      eachMessage: async ({ message }) => {
        if (message.key?.toString() === session)
          seen.push(message.headers?.['event-id']?.toString() ?? '');
      },
    });
    for (let attempt = 0; attempt < 200 && new Set(seen).size < ids.length; attempt++)
      await sleep(50);
    await consumer.disconnect();
    expect([...new Set(seen)]).toEqual(ids);
  }, 60_000);
});
