import { KafkaClientError } from './kafka-client-error.js';

/**
 * Reads a response body (Kafka's fixed-width, non-flexible encoding) with every length checked
 * against what is there: a truncated or malformed response throws a `malformed`
 * {@link KafkaClientError}, never reads past the frame, and never allocates from a length it
 * has not checked. Byte fields are views of the frame, not copies.
 */
export class ProtocolReader {
  readonly #buf: Buffer;
  readonly #end: number;
  #pos: number;

  constructor(buf: Buffer, start = 0, end = buf.length) {
    this.#buf = buf;
    this.#pos = start;
    this.#end = end;
  }

  /** Bytes not read yet. */
  get remaining(): number {
    return this.#end - this.#pos;
  }

  int8(what: string): number {
    this.#need(1, what);
    return this.#buf.readInt8(this.#pos++);
  }

  bool(what: string): boolean {
    return this.int8(what) !== 0;
  }

  int16(what: string): number {
    this.#need(2, what);
    const value = this.#buf.readInt16BE(this.#pos);
    this.#pos += 2;
    return value;
  }

  int32(what: string): number {
    this.#need(4, what);
    const value = this.#buf.readInt32BE(this.#pos);
    this.#pos += 4;
    return value;
  }

  int64(what: string): bigint {
    this.#need(8, what);
    const value = this.#buf.readBigInt64BE(this.#pos);
    this.#pos += 8;
    return value;
  }

  /** An int64 that must fit a safe integer (offsets, timestamps, durations). */
  safeInt64(what: string): number {
    const value = this.int64(what);
    if (value > BigInt(Number.MAX_SAFE_INTEGER) || value < BigInt(Number.MIN_SAFE_INTEGER)) {
      throw this.#malformed(`${what} ${value} is out of range`);
    }
    return Number(value);
  }

  string(what: string): string {
    const value = this.nullableString(what);
    if (value === null) throw this.#malformed(`${what} is null`);
    return value;
  }

  nullableString(what: string): string | null {
    const length = this.int16(`${what} length`);
    if (length === -1) return null;
    if (length < 0) throw this.#malformed(`${what} has length ${length}`);
    this.#need(length, what);
    const value = this.#buf.toString('utf8', this.#pos, this.#pos + length);
    this.#pos += length;
    return value;
  }

  /** Bytes with an int32 length; a view of the response. */
  nullableBytes(what: string): Buffer | null {
    const length = this.int32(`${what} length`);
    if (length === -1) return null;
    if (length < 0) throw this.#malformed(`${what} has length ${length}`);
    this.#need(length, what);
    const value = this.#buf.subarray(this.#pos, this.#pos + length);
    this.#pos += length;
    return value;
  }

  /**
   * An array (int32 count, -1 for null, read as empty). `minItemBytes` is the least an item can
   * take, so a count the remaining bytes cannot hold is refused before anything is allocated.
   */
  array<T>(what: string, minItemBytes: number, readItem: (reader: this) => T): T[] {
    const count = this.int32(`${what} count`);
    if (count === -1) return [];
    if (count < 0 || count * minItemBytes > this.remaining) {
      throw this.#malformed(`${what} claims ${count} items but ${this.remaining} bytes remain`);
    }
    const items: T[] = new Array<T>(count);
    for (let i = 0; i < count; i++) items[i] = readItem(this);
    return items;
  }

  #need(bytes: number, what: string): void {
    if (this.#pos + bytes > this.#end) {
      throw this.#malformed(
        `truncated: ${what} needs ${bytes} byte(s) at offset ${this.#pos}, ${this.remaining} left`,
      );
    }
  }

  #malformed(detail: string): KafkaClientError {
    return new KafkaClientError('malformed', `malformed response: ${detail}`);
  }
}
