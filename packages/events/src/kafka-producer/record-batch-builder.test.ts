import { gunzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { compressRecords } from './compress-records.js';
import { crc32c } from '../spool/crc32c.js';
import { decodeWithKafkaJs, type KafkaJsRecordBatch } from './kafkajs-internals.fixture.js';
import {
  RECORD_BATCH_HEADER_BYTES,
  RecordBatchBuilder,
  type ProducerRecord,
  type RecordBatchProducer,
} from './record-batch-builder.js';
import { readVarlong } from './zigzag-varint.js';

const producer: RecordBatchProducer = {
  producerId: 4242n,
  producerEpoch: 3,
  baseSequence: 17,
};

const T0 = 1_750_000_000_123;

const records: ProducerRecord[] = [
  {
    key: 'session-1',
    value: '{"a":1}',
    headers: { 'event-id': 'e1', format: 'native' },
    timestamp: T0,
  },
  {
    key: 'séssion-ü-日本',
    value: 'värde — ✓ 🎉',
    headers: { ключ: 'значение' },
    timestamp: T0 - 5_000,
  },
  { key: null, value: '', timestamp: T0 + 86_400_000 * 40 },
  { key: Buffer.from([0, 1, 2, 255]), value: null, headers: { empty: '' }, timestamp: T0 },
  { key: 'k', value: 'x'.repeat(20_000), headers: { big: 'y'.repeat(300) }, timestamp: T0 + 1 },
  { key: 'k', value: Buffer.from('bytes value'), timestamp: T0 + 2 },
];

function expectDecoded(batch: KafkaJsRecordBatch, sent: readonly ProducerRecord[]): void {
  expect(batch.firstOffset).toBe('0');
  expect(batch.partitionLeaderEpoch).toBe(-1);
  expect(batch.lastOffsetDelta).toBe(sent.length - 1);
  expect(batch.producerId).toBe(String(producer.producerId));
  expect(batch.producerEpoch).toBe(producer.producerEpoch);
  expect(batch.firstSequence).toBe(producer.baseSequence);
  expect(batch.firstTimestamp).toBe(String(sent[0]!.timestamp));
  expect(batch.maxTimestamp).toBe(String(Math.max(...sent.map((r) => r.timestamp!))));
  expect(batch.records).toHaveLength(sent.length);
  batch.records.forEach((got, i) => {
    const want = sent[i]!;
    expect(got.offset).toBe(String(i));
    expect(got.timestamp).toBe(String(want.timestamp));
    const asBuffer = (v: string | Uint8Array | null | undefined) =>
      v === null || v === undefined ? null : Buffer.from(v);
    expect(got.key).toEqual(asBuffer(want.key));
    expect(got.value).toEqual(asBuffer(want.value));
    const headers = Object.fromEntries(
      Object.entries(want.headers ?? {}).map(([k, v]) => [k, Buffer.from(v)]),
    );
    expect(got.headers).toEqual(headers);
  });
}

function build(list: readonly ProducerRecord[], initialBytes?: number): RecordBatchBuilder {
  const builder = new RecordBatchBuilder(initialBytes);
  for (const r of list) builder.append(r);
  return builder;
}

describe('RecordBatchBuilder', () => {
  it('writes batches kafkajs decodes: unicode, binary, empty and null keys and values, headers', async () => {
    const builder = build(records, 256); // grows several times on the way
    const batch = builder.finish(producer);
    expect(batch.readInt32BE(8)).toBe(batch.length - 12);
    expect(batch[16]).toBe(2);
    expect(batch.readUInt32BE(17)).toBe(crc32c(batch, 21));
    expect(batch.readInt16BE(21)).toBe(0);
    expect(batch.readInt32BE(57)).toBe(records.length);
    expectDecoded(await decodeWithKafkaJs(batch), records);
  });

  it('writes gzip batches kafkajs decodes, with the compression bits and a CRC over the compressed bytes', async () => {
    const builder = build(records);
    const compressed = await compressRecords(builder.records(), 'gzip', 6);
    expect(gunzipSync(compressed)).toEqual(builder.records());
    const header = builder.finishCompressed(producer, 'gzip', compressed);
    const batch = Buffer.concat([header, compressed]);
    expect(header.length).toBe(RECORD_BATCH_HEADER_BYTES);
    expect(batch.readInt16BE(21) & 7).toBe(1);
    expect(batch.readUInt32BE(17)).toBe(crc32c(batch, 21));
    expectDecoded(await decodeWithKafkaJs(batch), records);
  });

  it('writes fields from byte ranges of a larger buffer, moving the length when the size hint is off', async () => {
    const source = Buffer.from('xx{"id":"abc-123","type":"statement"}yy');
    for (const hint of [0, 30, 100, 10_000, 3_000_000]) {
      const builder = new RecordBatchBuilder(256);
      builder.beginRecord(T0, hint);
      builder.bytesField(source, 9, 16); // abc-123
      builder.bytesField(source, 2, source.length - 2);
      builder.headerCount(1);
      builder.stringField('type');
      builder.bytesField(source, 26, 35);
      builder.endRecord();
      const [decoded] = (await decodeWithKafkaJs(builder.finish(producer))).records;
      expect(String(decoded!.key)).toBe('abc-123');
      expect(String(decoded!.value)).toBe('{"id":"abc-123","type":"statement"}');
      expect(String(decoded!.headers['type'])).toBe('statement');
    }
  });

  it('writes the record length as a zigzag varint in front of each record', () => {
    const builder = build([{ key: null, value: 'v', timestamp: T0 }]);
    const batch = builder.finish(producer);
    const [length, next] = readVarlong(batch, RECORD_BATCH_HEADER_BYTES);
    expect(next + length).toBe(batch.length);
  });

  it('is reusable after reset and refuses misuse', async () => {
    const builder = build(records.slice(0, 2));
    builder.finish(producer);
    builder.reset();
    builder.append(records[2]!);
    expectDecoded(await decodeWithKafkaJs(builder.finish(producer)), [records[2]!]);
    builder.reset();
    expect(() => builder.finish(producer)).toThrow(/empty batch/);
    expect(() => builder.stringField('x')).toThrow(/begin a record/);
    builder.beginRecord(T0);
    expect(() => builder.beginRecord(T0)).toThrow(/not ended/);
    builder.nullField();
    builder.nullField();
    expect(() => builder.nullField()).toThrow(/header count/);
    builder.headerCount(1);
    builder.stringField('h');
    expect(() => builder.endRecord()).toThrow(/headers/);
    expect(() => new RecordBatchBuilder().beginRecord(1.5)).toThrow(/whole number/);
  });
});
