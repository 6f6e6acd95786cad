/**
 * Writes a request body in Kafka's fixed-width, non-flexible encoding into a growing buffer.
 * {@link take} hands out what was written so far as a view, so large byte fields (record
 * batches) can go out as separate chunks instead of being copied in.
 */
export class ProtocolWriter {
  #buf: Buffer;
  #start = 0;
  #pos = 0;

  constructor(initialBytes = 256) {
    this.#buf = Buffer.allocUnsafe(initialBytes);
  }

  int8(value: number): this {
    this.#reserve(1);
    this.#buf.writeInt8(value, this.#pos);
    this.#pos += 1;
    return this;
  }

  bool(value: boolean): this {
    return this.int8(value ? 1 : 0);
  }

  int16(value: number): this {
    this.#reserve(2);
    this.#buf.writeInt16BE(value, this.#pos);
    this.#pos += 2;
    return this;
  }

  int32(value: number): this {
    this.#reserve(4);
    this.#buf.writeInt32BE(value, this.#pos);
    this.#pos += 4;
    return this;
  }

  int64(value: bigint): this {
    this.#reserve(8);
    this.#buf.writeBigInt64BE(value, this.#pos);
    this.#pos += 8;
    return this;
  }

  string(value: string): this {
    const length = Buffer.byteLength(value, 'utf8');
    if (length > 0x7fff) throw new RangeError(`string of ${length} bytes is too long for Kafka`);
    this.int16(length);
    this.#reserve(length);
    this.#pos += this.#buf.write(value, this.#pos, 'utf8');
    return this;
  }

  nullableString(value: string | null): this {
    return value === null ? this.int16(-1) : this.string(value);
  }

  /** Bytes with an int32 length, copied in. */
  bytes(value: Uint8Array): this {
    this.int32(value.length);
    this.#reserve(value.length);
    this.#buf.set(value, this.#pos);
    this.#pos += value.length;
    return this;
  }

  /** What was written since the last take, as a view; writing goes on after it. */
  take(): Buffer {
    const chunk = this.#buf.subarray(this.#start, this.#pos);
    this.#start = this.#pos;
    return chunk;
  }

  #reserve(bytes: number): void {
    if (this.#pos + bytes <= this.#buf.length) return;
    // Chunks already taken keep the old buffer; only the untaken part moves.
    const untaken = this.#pos - this.#start;
    const grown = Buffer.allocUnsafe(Math.max(this.#buf.length * 2, untaken + bytes + 256));
    this.#buf.copy(grown, 0, this.#start, this.#pos);
    this.#buf = grown;
    this.#start = 0;
    this.#pos = untaken;
  }
}
