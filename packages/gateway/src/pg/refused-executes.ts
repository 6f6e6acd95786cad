import { randomBytes } from 'node:crypto';
import { FrontendCode, decodeErrorFields } from '@portcullis/protocol-pg';

/**
 * Executes the relay sends upstream in place of held ones that were not approved.
 *
 * By then the statement's Parse and Bind may be upstream already, so it cannot be swapped for a
 * refusal statement the way a refused Parse is. Instead the Execute names a portal that does
 * not exist: the server fails it exactly where the statement would have failed (the rest of
 * the batch up to Sync is skipped, an open transaction block is failed) without running
 * anything, and the relay replaces the error it answers with (34000, naming the portal) by the
 * refusal before the client sees it. Names are random per session, so no client can produce an
 * error that would be mistaken for one of these.
 */
export class RefusedExecutes {
  readonly #prefix: string;
  #next = 0;
  /** Portal name → the ErrorResponse the client gets instead of the server's. */
  readonly #pending = new Map<string, Buffer>();

  constructor(prefix = `portcullis-refused-${randomBytes(12).toString('base64url')}-`) {
    this.#prefix = prefix;
  }

  /** Refusals sent and not answered yet. */
  get size(): number {
    return this.#pending.size;
  }

  /** The Execute to send instead of a refused one; its error is answered with `error`. */
  refuse(error: Buffer): Buffer {
    const portal = `${this.#prefix}${this.#next++}`;
    this.#pending.set(portal, error);
    const name = Buffer.from(portal, 'utf8');
    const frame = Buffer.alloc(5 + name.length + 1 + 4);
    frame[0] = FrontendCode.Execute;
    frame.writeInt32BE(frame.length - 1, 1);
    name.copy(frame, 5);
    // The trailing NUL and a row limit of 0 are already zero.
    return frame;
  }

  /**
   * For an ErrorResponse body from the server: the refusal to send instead when it answers one
   * of these Executes (which is then forgotten), or null. The name is looked for anywhere in
   * the message, so a translated message (lc_messages) matches too.
   */
  replacement(buf: Buffer, start: number, end: number): Buffer | null {
    if (this.#pending.size === 0) return null;
    const { message } = decodeErrorFields(buf, start, end);
    if (!message.includes(this.#prefix)) return null;
    for (const [portal, error] of this.#pending) {
      if (quotedName(message, portal)) {
        this.#pending.delete(portal);
        return error;
      }
    }
    return null;
  }

  /**
   * Everything sent upstream has been answered: a refusal still pending was skipped by the
   * server (an earlier error in its batch already failed it), so it will never be answered.
   */
  clear(): void {
    this.#pending.clear();
  }
}

/** True when `message` names `portal` whole (not as the start of a longer name). */
function quotedName(message: string, portal: string): boolean {
  for (let at = message.indexOf(portal); at !== -1; at = message.indexOf(portal, at + 1)) {
    const after = message.charCodeAt(at + portal.length);
    // Names end in digits; whatever quote the server's language uses is not one.
    if (!(after >= 0x30 && after <= 0x39)) return true;
  }
  return false;
}

const EMPTY = Buffer.alloc(0);

/**
 * Replaces frames in a relayed stream that is scanned as it passes, chunk by chunk, without
 * letting a byte of a frame that might be replaced reach the client before it is whole. It is
 * used only while a replacement may come (see RefusedExecutes): then the bytes after a chunk's
 * last complete frame are kept back until their frame completes, and go out with it unless it
 * was replaced. Kept bytes always start at a frame boundary.
 */
export class ChunkSplicer {
  readonly #kept: Buffer[] = [];
  #chunk: Buffer = EMPTY;
  #out: Buffer[] = [];
  #segmentStart = 0;
  #lastEnd = -1;
  #startedAtBoundary = true;

  /** True while bytes are kept back; the client's stream then stands at a frame boundary. */
  get holding(): boolean {
    return this.#kept.length > 0;
  }

  /** Before scanning `chunk`; `atBoundary`: the scanner is between frames. */
  begin(chunk: Buffer, atBoundary: boolean, out: Buffer[]): void {
    this.#chunk = chunk;
    this.#out = out;
    this.#segmentStart = 0;
    this.#lastEnd = -1;
    this.#startedAtBoundary = atBoundary;
  }

  /**
   * A frame completed at `end` in the chunk; `start` is where it began there, or -1 when it
   * began in an earlier chunk. Returns whether `replacement` (when given) takes its place: not
   * when the frame's first bytes went out before this splicer was in use.
   */
  frame(start: number, end: number, replacement: Buffer | null): boolean {
    const first = this.#lastEnd === -1;
    this.#lastEnd = end;
    const keptPrefix = first && this.#kept.length > 0;
    if (replacement !== null && (start >= 0 || keptPrefix)) {
      if (keptPrefix) this.#kept.length = 0;
      const from = start >= 0 ? start : 0;
      if (from > this.#segmentStart) this.#out.push(this.#chunk.subarray(this.#segmentStart, from));
      this.#out.push(replacement);
      this.#segmentStart = end;
      return true;
    }
    if (keptPrefix) {
      for (const part of this.#kept) this.#out.push(part);
      this.#kept.length = 0;
    }
    return false;
  }

  /**
   * After scanning the chunk; `atBoundary`: the scanner is between frames. With `keepTail`
   * false (nothing can be replaced any more) everything goes out.
   */
  finish(atBoundary: boolean, keepTail: boolean): void {
    const chunk = this.#chunk;
    let flushEnd: number;
    if (!keepTail || atBoundary) flushEnd = chunk.length;
    else if (this.#lastEnd >= 0) flushEnd = this.#lastEnd;
    // No frame completed: the chunk continues the kept frame, or starts a new one.
    else if (this.#kept.length > 0 || this.#startedAtBoundary) flushEnd = 0;
    // It continues a frame whose start went out before bytes were kept back.
    else flushEnd = chunk.length;
    if (flushEnd > 0 && this.#kept.length > 0) {
      for (const part of this.#kept) this.#out.push(part);
      this.#kept.length = 0;
    }
    if (flushEnd > this.#segmentStart) {
      this.#out.push(
        this.#segmentStart === 0 && flushEnd === chunk.length
          ? chunk
          : chunk.subarray(this.#segmentStart, flushEnd),
      );
    }
    if (flushEnd < chunk.length) this.#kept.push(chunk.subarray(flushEnd));
    this.#chunk = EMPTY;
  }
}
