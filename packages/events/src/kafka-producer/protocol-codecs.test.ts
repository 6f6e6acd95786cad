import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeApiVersionsResponse } from './api-versions.js';
import { decodeInitProducerIdResponse, encodeInitProducerIdRequest } from './init-producer-id.js';
import { KafkaClientError } from './kafka-client-error.js';
import { decodeMetadataResponse, encodeMetadataRequest } from './metadata.js';
import { decodeProduceResponse, encodeProduceRequest } from './produce.js';
import { ProtocolReader } from './protocol-reader.js';
import { ProtocolWriter } from './protocol-writer.js';
import { decodeSaslAuthenticateResponse, decodeSaslHandshakeResponse } from './sasl-messages.js';

function metadataV8(): Buffer {
  const w = new ProtocolWriter(16);
  w.int32(0); // throttle
  w.int32(2); // brokers
  w.int32(1).string('kafka-1').int32(9092).nullableString(null);
  w.int32(2).string('kafka-2').int32(9093).nullableString('rack-b');
  w.nullableString('cluster').int32(1);
  w.int32(1); // topics
  w.int16(0).string('events').bool(false);
  w.int32(2); // partitions
  for (const [partition, leader] of [
    [0, 1],
    [1, -1],
  ] as const) {
    w.int16(leader < 0 ? 5 : 0)
      .int32(partition)
      .int32(leader)
      .int32(7);
    w.int32(1).int32(1); // replicas
    w.int32(1).int32(1); // isr
    w.int32(0); // offline
  }
  w.int32(-2147483648); // topic authorized operations
  w.int32(-2147483648); // cluster authorized operations
  return w.take();
}

function produceV7(): Buffer {
  const w = new ProtocolWriter(16);
  w.int32(1).string('events').int32(2);
  w.int32(0).int16(0).int64(41n).int64(-1n).int64(0n);
  w.int32(3).int16(6).int64(-1n).int64(-1n).int64(-1n);
  w.int32(0); // throttle
  return w.take();
}

function apiVersions(): Buffer {
  const w = new ProtocolWriter(16);
  w.int16(0).int32(2).int16(0).int16(3).int16(13).int16(3).int16(0).int16(13).int32(0);
  return w.take();
}

function initProducerId(): Buffer {
  return new ProtocolWriter(16).int32(0).int16(0).int64(9007199254740993n).int16(4).take();
}

function saslHandshake(): Buffer {
  return new ProtocolWriter(16).int16(0).int32(2).string('PLAIN').string('SCRAM-SHA-256').take();
}

function saslAuthenticateV1(): Buffer {
  const w = new ProtocolWriter(16).int16(0).nullableString(null);
  return w.bytes(Buffer.from('v=abc')).int64(3_600_000n).take();
}

const decoders: [string, Buffer, (reader: ProtocolReader) => unknown][] = [
  ['Metadata v8', metadataV8(), (r) => decodeMetadataResponse(8, r)],
  ['Produce v7', produceV7(), decodeProduceResponse],
  ['ApiVersions', apiVersions(), decodeApiVersionsResponse],
  ['InitProducerId v1', initProducerId(), decodeInitProducerIdResponse],
  ['SaslHandshake v1', saslHandshake(), decodeSaslHandshakeResponse],
  ['SaslAuthenticate v1', saslAuthenticateV1(), (r) => decodeSaslAuthenticateResponse(1, r)],
];

describe('response decoders', () => {
  it('decode what the broker sends', () => {
    expect(decodeMetadataResponse(8, new ProtocolReader(metadataV8()))).toEqual({
      brokers: [
        { nodeId: 1, host: 'kafka-1', port: 9092 },
        { nodeId: 2, host: 'kafka-2', port: 9093 },
      ],
      topics: [
        {
          errorCode: 0,
          name: 'events',
          partitions: [
            { errorCode: 0, partition: 0, leader: 1 },
            { errorCode: 5, partition: 1, leader: -1 },
          ],
        },
      ],
    });
    expect(decodeProduceResponse(new ProtocolReader(produceV7()))).toEqual({
      topics: [
        {
          topic: 'events',
          partitions: [
            { partition: 0, errorCode: 0, baseOffset: 41n },
            { partition: 3, errorCode: 6, baseOffset: -1n },
          ],
        },
      ],
    });
    const versions = decodeApiVersionsResponse(new ProtocolReader(apiVersions()));
    expect(versions.versions.get(0)).toEqual({ min: 3, max: 13 });
    expect(decodeInitProducerIdResponse(new ProtocolReader(initProducerId()))).toEqual({
      errorCode: 0,
      producerId: 9007199254740993n,
      producerEpoch: 4,
    });
    expect(decodeSaslHandshakeResponse(new ProtocolReader(saslHandshake())).mechanisms).toEqual([
      'PLAIN',
      'SCRAM-SHA-256',
    ]);
    const auth = decodeSaslAuthenticateResponse(1, new ProtocolReader(saslAuthenticateV1()));
    expect(auth.authBytes.toString()).toBe('v=abc');
    expect(auth.sessionLifetimeMs).toBe(3_600_000);
  });

  it('refuse every truncation with a malformed error', () => {
    for (const [name, bytes, decode] of decoders) {
      for (let length = 0; length < bytes.length; length++) {
        // ApiVersions may end before its throttle time (an UNSUPPORTED_VERSION answer is v0).
        if (name === 'ApiVersions' && length >= bytes.length - 4) continue;
        const attempt = () => decode(new ProtocolReader(bytes.subarray(0, length)));
        expect(attempt, `${name} cut at ${length}`).toThrow(KafkaClientError);
        expect(attempt).toThrow(/malformed response/);
      }
    }
  });

  it('throw nothing but malformed errors on any bytes, and allocate nothing from a bad count', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), fc.nat(decoders.length - 1), (bytes, i) => {
        const [, , decode] = decoders[i]!;
        try {
          decode(new ProtocolReader(Buffer.from(bytes)));
        } catch (err) {
          expect(err).toBeInstanceOf(KafkaClientError);
          expect((err as KafkaClientError).failure).toBe('malformed');
        }
      }),
      { numRuns: 5_000 },
    );
  });
});

describe('request encoders', () => {
  it('write a Produce request whose lengths add up, batches passed through as their own chunks', () => {
    const batchA = [Buffer.alloc(61, 1), Buffer.alloc(100, 2)];
    const batchB = [Buffer.alloc(300, 3)];
    const chunks = encodeProduceRequest(-1, 30_000, [
      { topic: 'events', partitions: [{ partition: 2, batch: batchA }] },
      { topic: 'dead', partitions: [{ partition: 0, batch: batchB }] },
    ]);
    expect(chunks).toContain(batchA[0]);
    expect(chunks).toContain(batchB[0]);
    const r = new ProtocolReader(Buffer.concat(chunks));
    expect(r.nullableString('transactional id')).toBeNull();
    expect(r.int16('acks')).toBe(-1);
    expect(r.int32('timeout')).toBe(30_000);
    expect(r.int32('topics')).toBe(2);
    expect(r.string('topic')).toBe('events');
    expect(r.int32('partitions')).toBe(1);
    expect(r.int32('partition')).toBe(2);
    expect(r.nullableBytes('records')).toEqual(Buffer.concat(batchA));
    expect(r.string('topic')).toBe('dead');
    expect(r.int32('partitions')).toBe(1);
    expect(r.int32('partition')).toBe(0);
    expect(r.nullableBytes('records')).toEqual(Buffer.concat(batchB));
    expect(r.remaining).toBe(0);
  });

  it('write Metadata and InitProducerId requests', () => {
    const v5 = new ProtocolReader(encodeMetadataRequest(5, ['a', 'ü'], true));
    expect([v5.int32('n'), v5.string('a'), v5.string('b'), v5.bool('auto'), v5.remaining]).toEqual([
      2,
      'a',
      'ü',
      true,
      0,
    ]);
    expect(encodeMetadataRequest(8, [], false)).toEqual(Buffer.from([0, 0, 0, 0, 0, 0, 0]));
    expect(encodeInitProducerIdRequest()).toEqual(Buffer.from([0xff, 0xff, 0, 0, 0xea, 0x60]));
  });
});
