import { randomUUID } from 'node:crypto';
import type { Admin, Kafka } from 'kafkajs';

/** One message as a test reads it back. */
export interface ConsumedMessage {
  readonly partition: number;
  readonly offset: number;
  readonly key: Buffer | null;
  readonly value: Buffer | null;
  readonly timestamp: string;
  readonly headers: Readonly<Record<string, string>>;
}

/**
 * Every message in `topic` now (up to each partition's high watermark), read by a kafkajs
 * consumer of a fresh group, in partition and offset order. Fails after 30 s.
 */
export async function readKafkaTopic(
  client: Kafka,
  admin: Admin,
  topic: string,
): Promise<ConsumedMessage[]> {
  const offsets = await admin.fetchTopicOffsets(topic);
  const total = offsets.reduce((n, p) => n + Number(p.high) - Number(p.low), 0);
  const out: ConsumedMessage[] = [];
  if (total === 0) return out;
  const consumer = client.consumer({ groupId: `it-${randomUUID()}`, maxWaitTimeInMs: 100 });
  await consumer.connect();
  try {
    await consumer.subscribe({ topic, fromBeginning: true });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`read ${out.length}/${total}`)), 30_000);
      void consumer.run({
        eachBatch: async ({ batch }) => {
          for (const m of batch.messages) {
            const headers: Record<string, string> = {};
            for (const [k, v] of Object.entries(m.headers ?? {})) headers[k] = String(v);
            out.push({
              partition: batch.partition,
              offset: Number(m.offset),
              key: m.key,
              value: m.value,
              timestamp: m.timestamp,
              headers,
            });
          }
          if (out.length >= total) {
            clearTimeout(timer);
            resolve();
          }
        },
      });
    });
  } finally {
    await consumer.disconnect();
  }
  return out.sort((a, b) => a.partition - b.partition || a.offset - b.offset);
}
