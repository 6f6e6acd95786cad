import { createServer } from 'node:net';
import { isPortcullisError, type SessionEvent } from '@portcullis/core';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { checkOcsfShape } from '../ocsf/check-ocsf-shape.js';
import { ocsfCases, sessionOf } from '../ocsf/session-events.fixture.js';
import {
  buildKafkaMessage,
  KAFKA_HEADERS,
  KafkaSink,
  KafkaSinkError,
  type KafkaEventMessage,
} from './kafka-sink.js';

const bytes = (event: unknown): Buffer => Buffer.from(JSON.stringify(event));

function asEvent(built: ReturnType<typeof buildKafkaMessage>): KafkaEventMessage {
  if (built.kind !== 'event') throw new Error(`dead letter: ${built.reason}`);
  return built;
}

/** A loopback port nobody listens on. */
async function closedPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

describe('buildKafkaMessage', () => {
  it('keys native messages by session id and sends the recorded bytes unchanged', () => {
    const event = ocsfCases.insertByAgent;
    const payload = bytes(event);
    const built = asEvent(buildKafkaMessage(payload, 'native'));
    expect(built.key).toBe(event.sessionId);
    expect(built.value).toBe(payload);
    expect(built.headers).toEqual({
      'event-id': event.id,
      'schema-version': '1',
      'event-type': 'statement',
      format: 'native',
    });
    expect(built.timestamp).toBe(String(Math.floor(event.timeUs / 1000)));
  });

  it('reads the same key and headers when the JSON does not start the way JSON.stringify writes it', () => {
    const event = ocsfCases.select;
    const { schema, id, type, timeUs, sessionId, ...rest } = event;
    const reordered = { ...rest, sessionId, timeUs, type, id, schema };
    const fast = asEvent(buildKafkaMessage(bytes(event), 'native'));
    const slow = asEvent(buildKafkaMessage(bytes(reordered), 'native'));
    expect(slow.key).toBe(fast.key);
    expect(slow.headers).toEqual(fast.headers);
    expect(slow.timestamp).toBe(fast.timestamp);
  });

  it('does not take a nested id for the event id', () => {
    // An agent comes before the event's own fields here; only a full parse finds the right id.
    const event = ocsfCases.insertByAgent;
    const { agent, ...rest } = event;
    const tricky = { agent, ...rest };
    const built = asEvent(buildKafkaMessage(bytes(tricky), 'native'));
    expect(built.headers[KAFKA_HEADERS.eventId]).toBe(event.id);
  });

  it('keeps every session in one key, so its events share a partition and their order', () => {
    const events = [...sessionOf(1, 3), ...sessionOf(2, 2)];
    const keys = events.map((e) => asEvent(buildKafkaMessage(bytes(e), 'native')).key);
    expect(new Set(keys.slice(0, 5))).toEqual(new Set([events[0]!.sessionId]));
    expect(new Set(keys.slice(5))).toEqual(new Set([events[5]!.sessionId]));
  });

  it('reads the fields a full parse (or the former prefix regex) reads, for any event JSON', () => {
    const formerPrefix =
      /^\{"schema":(\d+),"id":"([\w-]+)","type":"([\w.-]+)","timeUs":(\d+),"sessionId":"([\w-]+)"/;
    const text = fc.string({
      unit: fc.constantFrom('a', 'Z', '0', '-', '_', '.', 'é', '"', '\\', ' '),
    });
    fc.assert(
      fc.property(
        fc.record({
          schema: fc.oneof(fc.nat(), fc.constant(Number.MAX_SAFE_INTEGER + 2)),
          id: text,
          type: text,
          timeUs: fc.oneof(fc.nat(), fc.constant(1_793_000_000_000_685), fc.constant(2 ** 60)),
          sessionId: text,
          seq: fc.nat(),
        }),
        (event) => {
          const payload = bytes(event);
          const built = buildKafkaMessage(payload, 'native');
          const m = formerPrefix.exec(payload.toString('latin1', 0, 256));
          const valid = event.id !== '' && event.sessionId !== '';
          if (!valid) {
            expect(built.kind).toBe('dead-letter');
            return;
          }
          const message = asEvent(built);
          expect(message.key).toBe(event.sessionId);
          expect(message.headers).toEqual({
            'event-id': event.id,
            'schema-version': String(event.schema),
            'event-type': event.type,
            format: 'native',
          });
          expect(message.timestamp).toBe(String(Math.floor(event.timeUs / 1000)));
          if (m !== null) {
            expect([
              message.key,
              message.headers['event-id'],
              message.headers['event-type'],
            ]).toEqual([m[5], m[2], m[3]]);
          }
        },
      ),
      { numRuns: 2000 },
    );
  });

  it('sends the OCSF form with the same key and headers in ocsf format', () => {
    const event = ocsfCases.blocked;
    const built = asEvent(buildKafkaMessage(bytes(event), 'ocsf', { productVersion: '9.9.9' }));
    expect(built.key).toBe(event.sessionId);
    expect(built.headers).toMatchObject({ 'event-id': event.id, format: 'ocsf' });
    const value = JSON.parse(String(built.value)) as Record<string, unknown>;
    expect(checkOcsfShape(value)).toEqual([]);
    expect(value).toMatchObject({
      class_uid: 6005,
      disposition_id: 2,
      metadata: { uid: event.id, product: { version: '9.9.9' } },
    });
  });

  it('sends records that are not events to the dead-letter topic with the reason', () => {
    const event: SessionEvent = ocsfCases.start;
    const cases: [Buffer, string][] = [
      [Buffer.from('{"schema":1,"id":"x"'), 'not JSON'],
      [Buffer.from('[1,2]'), 'no event id'],
      [Buffer.from('"text"'), 'not a JSON object'],
      [bytes({ ...event, sessionId: '' }), 'no session id'],
      [bytes({ ...event, timeUs: 'soon' }), 'no time'],
    ];
    for (const [payload, reason] of cases) {
      expect(buildKafkaMessage(payload, 'native')).toEqual({ kind: 'dead-letter', reason });
      expect(buildKafkaMessage(payload, 'ocsf')).toEqual({ kind: 'dead-letter', reason });
    }
  });

  it('passes a newer schema version through natively but does not map it to OCSF', () => {
    const newer = bytes({ ...ocsfCases.select, schema: 2 });
    expect(asEvent(buildKafkaMessage(newer, 'native')).headers['schema-version']).toBe('2');
    const built = buildKafkaMessage(newer, 'ocsf');
    expect(built.kind).toBe('dead-letter');
    expect(built.kind === 'dead-letter' && built.reason).toMatch(/schema version 2 is newer/);
  });
});

describe('KafkaSink', () => {
  it('fails with a typed unreachable error when no broker listens', async () => {
    const port = await closedPort();
    const sink = new KafkaSink({
      brokers: [`127.0.0.1:${port}`],
      topic: 'events',
      retries: 0,
      connectionTimeoutMs: 500,
    });
    const err: unknown = await sink
      .deliver([{ sequence: 1, payload: bytes(ocsfCases.start) }])
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KafkaSinkError);
    expect(isPortcullisError(err, 'PCL_ERR_EVENTS_WRITE')).toBe(true);
    expect((err as KafkaSinkError).failure).toBe('unreachable');
    expect((err as Error).message).toContain(`127.0.0.1:${port}`);
    expect(sink.stats).toMatchObject({ sent: 0, highWaterMark: -1 });
    await sink.close();
    await expect(sink.deliver([])).rejects.toThrow(/closed/);
  });

  it('refuses options without brokers or topic', () => {
    expect(() => new KafkaSink({ brokers: [], topic: 't' })).toThrow(/broker/);
    expect(() => new KafkaSink({ brokers: ['127.0.0.1:1'], topic: '' })).toThrow(/topic/);
  });
});
