import { randomBytes, randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { kafkajsPartition } from './kafkajs-internals.fixture.js';
import { murmur2, partitionOfKey, partitionOfStringKey } from './murmur2-partition.js';

describe('murmur2 partitioning', () => {
  it("matches the Java client's murmur2 on known keys", () => {
    // Values of org.apache.kafka.common.utils.Utils.murmur2 (its UtilsTest).
    expect(murmur2(Buffer.from('21'))).toBe(-973932308);
    expect(murmur2(Buffer.from('foobar'))).toBe(-790332482);
    expect(murmur2(Buffer.from('a-little-bit-long-string'))).toBe(-985981536);
    expect(murmur2(Buffer.from('a-little-bit-longer-string'))).toBe(-1486304829);
    expect(murmur2(Buffer.from('lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8'))).toBe(
      -58897971,
    );
    expect(murmur2(Buffer.from('abc'))).toBe(479470107);
  });

  it("puts keys where kafkajs's DefaultPartitioner puts them", () => {
    for (let i = 0; i < 2000; i++) {
      const partitions = 1 + (i % 97);
      const key = i % 2 === 0 ? randomUUID() : randomBytes(i % 41);
      const expected = kafkajsPartition(key, partitions);
      if (typeof key === 'string') {
        expect(partitionOfStringKey(key, partitions)).toBe(expected);
      } else {
        expect(partitionOfKey(key, partitions)).toBe(expected);
      }
    }
  });

  it('hashes a range of a larger buffer like the key alone', () => {
    const key = Buffer.from('session-0123456789');
    const framed = Buffer.concat([Buffer.from('{"x":"'), key, Buffer.from('"}')]);
    expect(partitionOfKey(framed, 12, 6, 6 + key.length)).toBe(partitionOfKey(key, 12));
    const long = 'ü'.repeat(300);
    expect(partitionOfStringKey(long, 7)).toBe(kafkajsPartition(long, 7));
  });
});
