import { KafkaClientError } from './kafka-client-error.js';

/** The smallest response frame: its correlation id. */
const MIN_FRAME_BYTES = 4;

/**
 * Splits a byte stream into Kafka's size-prefixed frames (int32 size, then that many bytes).
 * Synchronous, no I/O: `push` each chunk as it arrives and `onFrame` gets every complete frame,
 * a view of the chunk when the frame lies within it, a copy only when it spans chunks. A size
 * below 4 or above `maxFrameBytes` is refused before anything is allocated; after that error
 * every further push throws too.
 */
export class FrameDecoder {
  readonly #maxFrameBytes: number;
  readonly #onFrame: (frame: Buffer) => void;
  /** The size prefix when it arrived split across chunks. */
  readonly #size = Buffer.alloc(4);
  #sizeBytes = 0;
  /** A frame spanning chunks, being filled. */
  #frame: Buffer | null = null;
  #filled = 0;
  #failure: KafkaClientError | null = null;

  constructor(maxFrameBytes: number, onFrame: (frame: Buffer) => void) {
    this.#maxFrameBytes = maxFrameBytes;
    this.#onFrame = onFrame;
  }

  push(chunk: Buffer): void {
    if (this.#failure !== null) throw this.#failure;
    let pos = 0;
    while (pos < chunk.length) {
      const frame = this.#frame;
      if (frame !== null) {
        const n = Math.min(frame.length - this.#filled, chunk.length - pos);
        chunk.copy(frame, this.#filled, pos, pos + n);
        this.#filled += n;
        pos += n;
        if (this.#filled === frame.length) {
          this.#frame = null;
          this.#onFrame(frame);
        }
      } else if (this.#sizeBytes > 0 || chunk.length - pos < 4) {
        while (this.#sizeBytes < 4 && pos < chunk.length)
          this.#size[this.#sizeBytes++] = chunk[pos++]!;
        if (this.#sizeBytes < 4) return;
        this.#sizeBytes = 0;
        this.#frame = Buffer.allocUnsafe(this.#checkSize(this.#size.readInt32BE(0)));
        this.#filled = 0;
      } else {
        const size = this.#checkSize(chunk.readInt32BE(pos));
        pos += 4;
        if (chunk.length - pos >= size) {
          this.#onFrame(chunk.subarray(pos, pos + size));
          pos += size;
        } else {
          this.#frame = Buffer.allocUnsafe(size);
          this.#filled = 0;
        }
      }
    }
  }

  /** Whether a frame has started but not ended (bytes would be lost if the stream ended now). */
  get partial(): boolean {
    return this.#frame !== null || this.#sizeBytes > 0;
  }

  #checkSize(size: number): number {
    if (size < MIN_FRAME_BYTES || size > this.#maxFrameBytes) {
      this.#failure = new KafkaClientError(
        'malformed',
        `malformed response: frame size ${size} is outside ${MIN_FRAME_BYTES}–${this.#maxFrameBytes} bytes`,
      );
      throw this.#failure;
    }
    return size;
  }
}
