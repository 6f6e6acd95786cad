/**
 * The signed variable-length integers of Kafka's record format (zigzag, then 7 bits a byte, low
 * bits first), written in place into a byte array. The caller makes room first.
 */

const TWO_31 = 2 ** 31;

/** Bytes {@link writeVarint} takes for the 32-bit integer `n`. */
export function varintSize(n: number): number {
  const z = ((n << 1) ^ (n >> 31)) >>> 0;
  if (z < 0x80) return 1;
  if (z < 0x4000) return 2;
  if (z < 0x200000) return 3;
  if (z < 0x10000000) return 4;
  return 5;
}

/** Writes the 32-bit integer `n` at `pos`; returns the position after it. */
export function writeVarint(bytes: Uint8Array, pos: number, n: number): number {
  let z = ((n << 1) ^ (n >> 31)) >>> 0;
  while (z >= 0x80) {
    bytes[pos++] = (z & 0x7f) | 0x80;
    z >>>= 7;
  }
  bytes[pos++] = z;
  return pos;
}

/**
 * Writes the safe integer `n` as a varlong at `pos` (up to 10 bytes); returns the position
 * after it. Timestamps and their deltas fit in a safe integer, so no BigInt is needed.
 */
export function writeVarlong(bytes: Uint8Array, pos: number, n: number): number {
  if (n >= -TWO_31 && n < TWO_31) return writeVarint(bytes, pos, n);
  let z = n >= 0 ? n * 2 : -n * 2 - 1;
  while (z >= 0x80) {
    bytes[pos++] = (z % 0x80) | 0x80;
    z = Math.floor(z / 0x80);
  }
  bytes[pos++] = z;
  return pos;
}

/** Reads a varint or varlong at `pos` of `bytes` (for tests and diagnostics): `[value, next]`. */
export function readVarlong(bytes: Uint8Array, pos: number): [number, number] {
  let z = 0;
  let scale = 1;
  for (let i = 0; i < 10; i++) {
    if (pos >= bytes.length) throw new RangeError('varint runs past the end of the bytes');
    const b = bytes[pos++]!;
    z += (b & 0x7f) * scale;
    if (b < 0x80) return [z % 2 === 0 ? z / 2 : -(z + 1) / 2, pos];
    scale *= 0x80;
  }
  throw new RangeError('varint longer than 10 bytes');
}
