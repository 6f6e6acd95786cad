/**
 * The Java client's default partitioner for keyed records (kafkajs's `DefaultPartitioner` does the
 * same): `toPositive(murmur2(keyBytes)) % numPartitions`. A key keeps its partition whichever of
 * these clients sends it, so a session's events stay where earlier releases put them.
 */

const SEED = 0x9747b28c;
const M = 0x5bd1e995;

/**
 * Murmur2 (32-bit, seed 0x9747b28c) of `bytes[start, end)`, as Kafka's `Utils.murmur2`: a signed
 * 32-bit number.
 */
export function murmur2(bytes: Uint8Array, start = 0, end = bytes.length): number {
  const length = end - start;
  let h = SEED ^ length;
  const whole = start + (length & ~3);
  let i = start;
  for (; i < whole; i += 4) {
    let k = bytes[i]! | (bytes[i + 1]! << 8) | (bytes[i + 2]! << 16) | (bytes[i + 3]! << 24);
    k = Math.imul(k, M);
    k ^= k >>> 24;
    k = Math.imul(k, M);
    h = Math.imul(h, M) ^ k;
  }
  const rest = length & 3;
  if (rest === 3) h ^= bytes[i + 2]! << 16;
  if (rest >= 2) h ^= bytes[i + 1]! << 8;
  if (rest >= 1) h = Math.imul(h ^ bytes[i]!, M);
  h ^= h >>> 13;
  h = Math.imul(h, M);
  h ^= h >>> 15;
  return h | 0;
}

/** The partition of a record whose key is `bytes[start, end)`, among `partitions` (at least 1). */
export function partitionOfKey(
  bytes: Uint8Array,
  partitions: number,
  start = 0,
  end = bytes.length,
): number {
  return (murmur2(bytes, start, end) & 0x7fffffff) % partitions;
}

const scratch = Buffer.allocUnsafe(256);

/** {@link partitionOfKey} for a string key (its UTF-8 bytes, as the Java client hashes them). */
export function partitionOfStringKey(key: string, partitions: number): number {
  if (key.length <= scratch.length / 3) {
    const n = scratch.write(key, 0, 'utf8');
    return partitionOfKey(scratch, partitions, 0, n);
  }
  return partitionOfKey(Buffer.from(key, 'utf8'), partitions);
}
