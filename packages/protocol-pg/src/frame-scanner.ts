import { PortcullisError } from '@portcullis/core';

/** Receives the frames a {@link FrameScanner} finds. */
export interface FrameHandler {
  /**
   * One whole frame. `body` holds the frame's payload in `[start, end)`: a view of the chunk
   * the body arrived in whenever the body lies within one chunk (even if the header came in an
   * earlier one; valid only during this call), or a buffer the scanner assembled when the body
   * spanned chunks. For a spanning body whose type is not in `assemble`, the body is not kept:
   * `body` is empty and `start === end === 0`, but `length` still tells its size.
   */
  onFrame(type: number, body: Buffer, start: number, end: number, length: number): void;
}

/** Options of a {@link FrameScanner}. */
export interface FrameScannerOptions {
  /** Largest body length accepted, in bytes; a longer announced length is a fatal error. */
  readonly maxFrameBytes: number;
  /**
   * Frame types whose bodies must be whole even when they span chunks (the scanner copies
   * those, and only those). Other spanning frames are reported by type and length.
   */
  readonly assemble?: Iterable<number>;
}

const EMPTY = Buffer.alloc(0);
const HEADER = 5;

/**
 * A zero-copy scanner for typed PostgreSQL frames (`type:u8 length:i32 body`).
 *
 * `push(chunk)` is synchronous: it reports every frame that completes within the pushed bytes,
 * handing out views of the chunk and copying only bodies that span chunks and are wanted
 * whole. It never awaits, logs or touches a socket. A malformed length or one over the limit
 * throws a {@link PortcullisError}; after that the scanner refuses every further call.
 */
export class FrameScanner {
  readonly #handler: FrameHandler;
  readonly #maxFrameBytes: number;
  readonly #assemble = new Uint8Array(256);
  /** Partial header bytes carried over from the previous chunk. */
  readonly #header = Buffer.alloc(HEADER);
  #headerHave = 0;
  /** Type and body state of a frame that spans chunks. */
  #pendingType = -1;
  #pendingLength = 0;
  #pendingHave = 0;
  #pendingBody: Buffer | null = null;
  #failed: PortcullisError | null = null;
  #frameEnd = 0;

  constructor(handler: FrameHandler, options: FrameScannerOptions) {
    this.#handler = handler;
    this.#maxFrameBytes = options.maxFrameBytes;
    for (const type of options.assemble ?? []) this.#assemble[type] = 1;
  }

  /**
   * During `onFrame`: the offset in the chunk being pushed just past the reported frame. For a
   * frame that began in an earlier chunk its body may be an assembled copy; this still says
   * where the frame's last byte sits in the current chunk.
   */
  get frameEndInChunk(): number {
    return this.#frameEnd;
  }

  /** True when no partial frame is buffered (the stream is at a frame boundary). */
  get atBoundary(): boolean {
    return this.#headerHave === 0 && this.#pendingType === -1;
  }

  /**
   * Bytes still to come before the stream is at a frame boundary: 0 at a boundary, the rest of
   * the frame being assembled, or -1 while its header is incomplete (its length unknown).
   */
  get bytesToBoundary(): number {
    if (this.#pendingType !== -1) return this.#pendingLength - this.#pendingHave;
    if (this.#headerHave === 0) return 0;
    if (this.#headerHave < HEADER) return -1;
    return this.#header.readInt32BE(1) - 4;
  }

  /** Scans `chunk`, reporting each frame that completes in it. */
  push(chunk: Buffer): void {
    if (this.#failed !== null) {
      throw new PortcullisError('PCL_ERR_PROTOCOL_SCANNER_FAILED', 'frame scanner already failed', {
        cause: this.#failed,
      });
    }
    try {
      this.#scan(chunk);
    } catch (err) {
      this.#failed =
        err instanceof PortcullisError
          ? err
          : new PortcullisError('PCL_ERR_PROTOCOL_MALFORMED', 'frame handler failed', {
              cause: err,
            });
      throw err;
    }
  }

  #scan(chunk: Buffer): void {
    let pos = 0;
    const size = chunk.length;
    if (this.#pendingType !== -1) {
      pos = this.#continueBody(chunk);
    } else if (this.#headerHave > 0) {
      pos = this.#continueHeader(chunk);
    }
    const handler = this.#handler;
    // Fast path: whole frames inside this chunk are reported as views, no copies.
    while (pos + HEADER <= size) {
      const type = chunk[pos]!;
      const length = chunk.readInt32BE(pos + 1) - 4;
      if (length < 0 || length > this.#maxFrameBytes) this.#badLength(type, length + 4);
      const start = pos + HEADER;
      const end = start + length;
      if (end > size) {
        if (start === size) {
          // The header ends this chunk and the body starts the next: keep the header, so a
          // body that fits in the next chunk is still handed out as a view of it.
          this.#headerHave = chunk.copy(this.#header, 0, pos, size);
        } else {
          this.#beginBody(type, length, chunk, start);
        }
        return;
      }
      this.#frameEnd = end;
      handler.onFrame(type, chunk, start, end, length);
      pos = end;
    }
    if (pos < size) {
      this.#headerHave = chunk.copy(this.#header, 0, pos, size);
    }
  }

  #continueHeader(chunk: Buffer): number {
    const need = HEADER - this.#headerHave;
    const take = Math.min(need, chunk.length);
    chunk.copy(this.#header, this.#headerHave, 0, take);
    this.#headerHave += take;
    if (this.#headerHave < HEADER) return chunk.length;
    this.#headerHave = 0;
    const type = this.#header[0]!;
    const length = this.#header.readInt32BE(1) - 4;
    if (length < 0 || length > this.#maxFrameBytes) this.#badLength(type, length + 4);
    if (take + length <= chunk.length) {
      this.#frameEnd = take + length;
      this.#handler.onFrame(type, chunk, take, take + length, length);
      return take + length;
    }
    if (take === chunk.length) {
      // No body byte in this chunk yet: stay in the header state (see #scan).
      this.#headerHave = HEADER;
      return take;
    }
    this.#beginBody(type, length, chunk, take);
    return chunk.length;
  }

  #beginBody(type: number, length: number, chunk: Buffer, start: number): void {
    this.#pendingType = type;
    this.#pendingLength = length;
    this.#pendingHave = chunk.length - start;
    if (this.#assemble[type] === 1) {
      // Length was checked against the limit before this allocation.
      this.#pendingBody = Buffer.allocUnsafe(length);
      chunk.copy(this.#pendingBody, 0, start);
    }
  }

  #continueBody(chunk: Buffer): number {
    const take = Math.min(this.#pendingLength - this.#pendingHave, chunk.length);
    const body = this.#pendingBody;
    if (body !== null) chunk.copy(body, this.#pendingHave, 0, take);
    this.#pendingHave += take;
    if (this.#pendingHave < this.#pendingLength) return chunk.length;
    const type = this.#pendingType;
    const length = this.#pendingLength;
    this.#pendingType = -1;
    this.#pendingBody = null;
    this.#frameEnd = take;
    if (body !== null) this.#handler.onFrame(type, body, 0, length, length);
    else this.#handler.onFrame(type, EMPTY, 0, 0, length);
    return take;
  }

  #badLength(type: number, announced: number): never {
    const typeName = JSON.stringify(String.fromCharCode(type));
    if (announced < 4) {
      throw new PortcullisError(
        'PCL_ERR_PROTOCOL_MALFORMED',
        `invalid frame length ${announced} for message type ${typeName}`,
      );
    }
    throw new PortcullisError(
      'PCL_ERR_PROTOCOL_FRAME_TOO_LARGE',
      `message type ${typeName} announces ${announced} bytes, over the ${this.#maxFrameBytes}-byte frame limit`,
    );
  }
}
