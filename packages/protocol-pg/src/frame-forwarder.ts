import { FrameScanner } from './frame-scanner.js';

/** Decides, frame by frame, what a {@link FrameForwarder} passes on. */
export interface ForwardedFrameHandler {
  /**
   * One whole frame, as a FrameScanner reports it. Return null to pass it on as it arrived, or
   * a complete replacement frame (type, length and body) to pass on instead.
   */
  onFrame(type: number, body: Buffer, start: number, end: number, length: number): Buffer | null;
}

const EVERY_TYPE: readonly number[] = Array.from({ length: 256 }, (_, i) => i);

/**
 * Forwards a stream frame by frame while letting a handler replace any frame. Only whole
 * frames are passed on: bytes of a frame still arriving are held back until it completes, so a
 * frame can be judged (and replaced) before any of it leaves. Frames that arrived within one
 * chunk and are kept go out as views of that chunk — in the common case the chunk itself —
 * and only frames that spanned chunks are copied (once, by the scanner).
 */
export class FrameForwarder {
  readonly #scanner: FrameScanner;
  readonly #handler: ForwardedFrameHandler;
  #chunk: Buffer = Buffer.alloc(0);
  #out: Buffer[] = [];
  #segmentStart = 0;
  #frameEnd = 0;
  #spliced = false;

  constructor(handler: ForwardedFrameHandler, options: { readonly maxFrameBytes: number }) {
    this.#handler = handler;
    this.#scanner = new FrameScanner(
      {
        onFrame: (type, body, start, end, length) => this.#onFrame(type, body, start, end, length),
      },
      { maxFrameBytes: options.maxFrameBytes, assemble: EVERY_TYPE },
    );
  }

  /** True when nothing is held back (the stream is at a frame boundary). */
  get atBoundary(): boolean {
    return this.#scanner.atBoundary;
  }

  /** Bytes still to come before a frame boundary (see FrameScanner.bytesToBoundary). */
  get bytesToBoundary(): number {
    return this.#scanner.bytesToBoundary;
  }

  /**
   * Scans `chunk` and appends to `out` the buffers to send, in order (none while a frame is
   * still arriving). Throws as FrameScanner.push does.
   */
  push(chunk: Buffer, out: Buffer[]): void {
    this.#chunk = chunk;
    this.#out = out;
    this.#segmentStart = 0;
    this.#frameEnd = 0;
    this.#spliced = false;
    this.#scanner.push(chunk);
    const end = this.#frameEnd;
    if (!this.#spliced) {
      if (end > 0) out.push(end === chunk.length ? chunk : chunk.subarray(0, end));
    } else if (end > this.#segmentStart) {
      out.push(chunk.subarray(this.#segmentStart, end));
    }
  }

  #onFrame(type: number, body: Buffer, start: number, end: number, length: number): void {
    const replacement = this.#handler.onFrame(type, body, start, end, length);
    const frameEnd = this.#scanner.frameEndInChunk;
    // A frame that arrived whole in this chunk has its header here too (start >= 5).
    const inChunk = body === this.#chunk && start >= 5;
    if (inChunk && replacement === null) {
      this.#frameEnd = frameEnd;
      return;
    }
    // A replaced frame, or one whose first bytes came in an earlier chunk and were held back:
    // send what precedes it in this chunk, then the frame rebuilt whole (or its replacement).
    const frameStart = inChunk ? start - 5 : 0;
    if (frameStart > this.#segmentStart)
      this.#out.push(this.#chunk.subarray(this.#segmentStart, frameStart));
    this.#out.push(replacement ?? wholeFrame(type, body, start, end));
    this.#spliced = true;
    this.#segmentStart = frameEnd;
    this.#frameEnd = frameEnd;
  }
}

/** A frame rebuilt from its type and body. */
function wholeFrame(type: number, body: Buffer, start: number, end: number): Buffer {
  const out = Buffer.allocUnsafe(5 + end - start);
  out[0] = type;
  out.writeInt32BE(4 + end - start, 1);
  body.copy(out, 5, start, end);
  return out;
}
