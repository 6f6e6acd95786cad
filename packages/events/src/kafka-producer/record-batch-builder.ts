import { crc32c } from '../spool/crc32c.js';
import { varintSize, writeVarint, writeVarlong } from './zigzag-varint.js';

/** Bytes of a record batch's header (magic 2), before the records. */
export const RECORD_BATCH_HEADER_BYTES = 61;

/** Compression of a batch's records; `gzip` is what Kafka brokers decode without extra codecs. */
export type RecordCompression = 'none' | 'gzip';

/** The attribute bits (0–2) that name the compression. */
export const COMPRESSION_ATTRIBUTE: Readonly<Record<RecordCompression, number>> = {
  none: 0,
  gzip: 1,
};

/** Who wrote a batch, for the broker's duplicate detection (-1s for a non-idempotent producer). */
export interface RecordBatchProducer {
  readonly producerId: bigint;
  readonly producerEpoch: number;
  /** The sequence number of the batch's first record in its partition. */
  readonly baseSequence: number;
}

/** A record for {@link RecordBatchBuilder.append}. */
export interface ProducerRecord {
  readonly key?: string | Uint8Array | null;
  readonly value: string | Uint8Array | null;
  readonly headers?: Readonly<Record<string, string | Uint8Array>>;
  /** Milliseconds since the epoch; now when absent. */
  readonly timestamp?: number;
}

/** Copies below this many bytes are a loop: cheaper than a view and a native call. */
const SMALL_COPY = 48;

function copyBytes(src: Uint8Array, start: number, end: number, dst: Uint8Array, at: number) {
  if (end - start < SMALL_COPY) {
    for (let i = start; i < end; i++) dst[at++] = src[i]!;
  } else {
    dst.set(start === 0 && end === src.length ? src : src.subarray(start, end), at);
  }
}

/** Writes a safe integer as a big-endian int64 without a BigInt. */
function writeInt64(buf: Buffer, n: number, at: number): void {
  const high = Math.floor(n / 0x1_0000_0000);
  buf.writeInt32BE(high, at);
  buf.writeUInt32BE(n - high * 0x1_0000_0000, at + 4);
}

/**
 * Builds one record batch (magic 2, the format of Kafka 0.11 and later) for one partition,
 * writing each record straight into one growing buffer: varints in place, strings encoded where
 * they land, byte ranges copied from the caller's buffers; no object per record.
 *
 * A record is written field by field: {@link beginRecord}, then the key, the value (each with
 * {@link bytesField}, {@link stringField} or {@link nullField}), {@link headerCount}, a key and a
 * value field per header, then {@link endRecord}. {@link append} does this for a
 * {@link ProducerRecord}. {@link finish} (or {@link finishCompressed}) writes the header: base
 * offset 0, partition leader epoch -1, the producer id, epoch and base sequence, the first and
 * largest timestamps, and the CRC-32C over everything from the attributes on.
 *
 * After {@link reset} the buffer is reused, so a batch returned by `finish` is valid until then.
 */
export class RecordBatchBuilder {
  #buf: Buffer;
  #pos = RECORD_BATCH_HEADER_BYTES;
  #count = 0;
  #firstTimestamp = 0;
  #maxTimestamp = 0;
  /** Where the open record's length prefix starts; -1 when no record is open. */
  #recordStart = -1;
  #lengthBytes = 0;
  #fields = 0;
  #expectedFields = 0;

  constructor(initialBytes = 16 * 1024) {
    this.#buf = Buffer.allocUnsafe(Math.max(initialBytes, 256));
  }

  /** Records appended since the last reset. */
  get recordCount(): number {
    return this.#count;
  }

  /** Bytes of the uncompressed batch so far, header included. */
  get byteLength(): number {
    return this.#pos;
  }

  /** Forgets every record, keeping the buffer for the next batch. */
  reset(): void {
    this.#pos = RECORD_BATCH_HEADER_BYTES;
    this.#count = 0;
    this.#recordStart = -1;
  }

  /**
   * Opens a record with the given timestamp (ms since the epoch, a safe integer). `sizeHint` is
   * about how many bytes the record will take (its value's length is close enough): the length
   * prefix is reserved from it, and moved only when the guess was wrong.
   */
  beginRecord(timestampMs: number, sizeHint = 0): void {
    if (this.#recordStart >= 0)
      throw new Error('RecordBatchBuilder: the open record was not ended');
    if (!Number.isSafeInteger(timestampMs)) {
      throw new RangeError(`record timestamp ${timestampMs} is not a whole number of milliseconds`);
    }
    this.#reserve(sizeHint + 64);
    if (this.#count === 0) {
      this.#firstTimestamp = timestampMs;
      this.#maxTimestamp = timestampMs;
    } else if (timestampMs > this.#maxTimestamp) {
      this.#maxTimestamp = timestampMs;
    }
    const buf = this.#buf;
    this.#lengthBytes = varintSize(sizeHint + 24);
    this.#recordStart = this.#pos;
    let pos = this.#pos + this.#lengthBytes;
    buf[pos++] = 0; // record attributes: unused
    pos = writeVarlong(buf, pos, timestampMs - this.#firstTimestamp);
    pos = writeVarint(buf, pos, this.#count);
    this.#pos = pos;
    this.#fields = 0;
    this.#expectedFields = 3;
  }

  /** Writes the next field (key, value, header key or value) as `bytes[start, end)`. */
  bytesField(bytes: Uint8Array, start = 0, end = bytes.length): void {
    const length = end - start;
    this.#field(length + 5);
    const pos = writeVarint(this.#buf, this.#pos, length);
    copyBytes(bytes, start, end, this.#buf, pos);
    this.#pos = pos + length;
  }

  /** Writes the next field as the UTF-8 bytes of `text`. */
  stringField(text: string): void {
    // Up to 21 characters take at most 63 bytes: a one-byte length, filled in after the write.
    if (text.length <= 21) {
      this.#field(64);
      const length = this.#buf.write(text, this.#pos + 1, 'utf8');
      this.#buf[this.#pos] = length << 1;
      this.#pos += 1 + length;
      return;
    }
    const length = Buffer.byteLength(text, 'utf8');
    this.#field(length + 5);
    const pos = writeVarint(this.#buf, this.#pos, length);
    this.#pos = pos + this.#buf.write(text, pos, 'utf8');
  }

  /** Writes the next field as null (a record without key or value, or a header without value). */
  nullField(): void {
    this.#field(1);
    this.#buf[this.#pos++] = 1; // zigzag(-1)
  }

  /** Writes the number of headers that follow (the field after the value). */
  headerCount(count: number): void {
    if (this.#recordStart < 0 || this.#fields !== 2) {
      throw new Error('RecordBatchBuilder: the header count comes right after the key and value');
    }
    this.#reserve(5);
    this.#pos = writeVarint(this.#buf, this.#pos, count);
    this.#fields = 3;
    this.#expectedFields = 3 + 2 * count;
  }

  /** Closes the open record: fills in its length. */
  endRecord(): void {
    if (this.#recordStart < 0 || this.#fields !== this.#expectedFields) {
      throw new Error(
        'RecordBatchBuilder: a record needs a key, a value, a header count and its headers',
      );
    }
    const bodyStart = this.#recordStart + this.#lengthBytes;
    const bodyLength = this.#pos - bodyStart;
    const lengthBytes = varintSize(bodyLength);
    if (lengthBytes !== this.#lengthBytes) {
      // The size hint was off: move the body next to a prefix of the right size.
      this.#reserve(lengthBytes);
      this.#buf.copyWithin(this.#recordStart + lengthBytes, bodyStart, this.#pos);
      this.#pos += lengthBytes - this.#lengthBytes;
    }
    writeVarint(this.#buf, this.#recordStart, bodyLength);
    this.#recordStart = -1;
    this.#count++;
  }

  /** Appends a whole record; strings are written as UTF-8. */
  append(record: ProducerRecord): void {
    const { key, value, headers } = record;
    const valueSize = value === null ? 0 : value.length;
    this.beginRecord(record.timestamp ?? Date.now(), valueSize + 32);
    this.#anyField(key ?? null);
    this.#anyField(value);
    if (headers === undefined) {
      this.headerCount(0);
    } else {
      const names = Object.keys(headers);
      this.headerCount(names.length);
      for (const name of names) {
        this.stringField(name);
        this.#anyField(headers[name]!);
      }
    }
    this.endRecord();
  }

  /**
   * Finishes the batch uncompressed: writes the header and CRC and returns the batch, a view of
   * this builder's buffer (valid until {@link reset}).
   */
  finish(producer: RecordBatchProducer): Buffer {
    this.#checkFinishable();
    const buf = this.#buf;
    this.#writeHeader(buf, this.#pos, COMPRESSION_ATTRIBUTE.none, producer);
    buf.writeUInt32BE(crc32c(buf, 21, this.#pos), 17);
    return buf.subarray(0, this.#pos);
  }

  /** The records as written (what a compressed batch compresses), a view of the buffer. */
  records(): Buffer {
    this.#checkFinishable();
    return this.#buf.subarray(RECORD_BATCH_HEADER_BYTES, this.#pos);
  }

  /**
   * Finishes the batch with `compressed`, the {@link records} compressed with `compression`:
   * returns a new header; the batch on the wire is the header followed by `compressed`.
   */
  finishCompressed(
    producer: RecordBatchProducer,
    compression: RecordCompression,
    compressed: Uint8Array,
  ): Buffer {
    this.#checkFinishable();
    const header = Buffer.allocUnsafe(RECORD_BATCH_HEADER_BYTES);
    const size = RECORD_BATCH_HEADER_BYTES + compressed.length;
    this.#writeHeader(header, size, COMPRESSION_ATTRIBUTE[compression], producer);
    const crc = crc32c(compressed, 0, compressed.length, crc32c(header, 21));
    header.writeUInt32BE(crc, 17);
    return header;
  }

  #anyField(field: string | Uint8Array | null): void {
    if (field === null) this.nullField();
    else if (typeof field === 'string') this.stringField(field);
    else this.bytesField(field);
  }

  #field(maxBytes: number): void {
    if (this.#recordStart < 0 || this.#fields === this.#expectedFields) {
      throw new Error('RecordBatchBuilder: no field expected here (begin a record first)');
    }
    if (this.#fields === 2) throw new Error('RecordBatchBuilder: the header count comes next');
    this.#fields++;
    this.#reserve(maxBytes);
  }

  #checkFinishable(): void {
    if (this.#recordStart >= 0) throw new Error('RecordBatchBuilder: a record is still open');
    if (this.#count === 0) throw new Error('RecordBatchBuilder: an empty batch cannot be sent');
  }

  #writeHeader(
    target: Buffer,
    batchBytes: number,
    attributes: number,
    producer: RecordBatchProducer,
  ): void {
    target.writeInt32BE(0, 0); // base offset (int64): the broker assigns offsets
    target.writeInt32BE(0, 4);
    target.writeInt32BE(batchBytes - 12, 8); // batch length: the bytes after this field
    target.writeInt32BE(-1, 12); // partition leader epoch: set by the broker
    target[16] = 2; // magic
    target.writeInt16BE(attributes, 21);
    target.writeInt32BE(this.#count - 1, 23); // last offset delta
    writeInt64(target, this.#firstTimestamp, 27);
    writeInt64(target, this.#maxTimestamp, 35);
    target.writeBigInt64BE(producer.producerId, 43);
    target.writeInt16BE(producer.producerEpoch, 51);
    target.writeInt32BE(producer.baseSequence, 53);
    target.writeInt32BE(this.#count, 57);
  }

  #reserve(bytes: number): void {
    if (this.#pos + bytes <= this.#buf.length) return;
    const grown = Buffer.allocUnsafe(Math.max(this.#buf.length * 2, this.#pos + bytes));
    this.#buf.copy(grown, 0, 0, this.#pos);
    this.#buf = grown;
  }
}
