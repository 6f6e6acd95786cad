/**
 * A growable output buffer that copies unchanged input lazily: `pending` marks where the input
 * bytes not yet copied begin, and {@link OutputWriter.copyTo} moves them over only when a
 * changed byte has to follow them. Nothing is allocated until the first write.
 */
export class OutputWriter {
  buf: Buffer = EMPTY;
  pos = 0;
  /** Input offset of the first byte not yet copied. */
  pending: number;
  readonly #src: Uint8Array;
  readonly #initial: number;
  readonly #transferable: boolean;

  /**
   * @param initial - capacity allocated at the first write.
   * @param transferable - allocate an own ArrayBuffer at offset 0, so the result can be moved
   *   to or from a worker; otherwise small buffers come from Node's pool (much cheaper per frame).
   */
  constructor(src: Uint8Array, pending: number, initial: number, transferable: boolean) {
    this.#src = src;
    this.pending = pending;
    this.#initial = initial;
    this.#transferable = transferable;
  }

  /** Makes room for `n` more bytes. */
  ensure(n: number): void {
    const need = this.pos + n;
    if (need <= this.buf.length) return;
    const size = Math.max(need, this.#initial, this.buf.length * 2);
    const grown = this.#transferable ? Buffer.allocUnsafeSlow(size) : Buffer.allocUnsafe(size);
    if (this.pos > 0) grown.set(this.buf.subarray(0, this.pos));
    this.buf = grown;
  }

  /** Copies the pending input bytes up to `to`. */
  copyTo(to: number): void {
    const n = to - this.pending;
    if (n <= 0) return;
    this.ensure(n);
    const src = this.#src;
    const buf = this.buf;
    let from = this.pending;
    let pos = this.pos;
    // A native copy costs a view and a call; short gaps are cheaper byte by byte.
    if (n < 48) {
      while (from < to) buf[pos++] = src[from++]!;
    } else {
      buf.set(src.subarray(from, to), pos);
      pos += n;
    }
    this.pos = pos;
    this.pending = to;
  }

  /** Writes a big-endian Int32 at the current position. */
  int32(value: number): void {
    this.ensure(4);
    writeInt32(this.buf, this.pos, value);
    this.pos += 4;
  }

  /** Writes one byte. */
  byte(value: number): void {
    this.ensure(1);
    this.buf[this.pos++] = value;
  }

  /** The bytes written so far (a view, no copy). */
  result(): Buffer {
    return this.buf.subarray(0, this.pos);
  }
}

const EMPTY = Buffer.alloc(0);

/** Reads a big-endian Int32. */
export function readInt32(src: Uint8Array, at: number): number {
  return (src[at]! << 24) | (src[at + 1]! << 16) | (src[at + 2]! << 8) | src[at + 3]!;
}

/** Writes a big-endian Int32. */
export function writeInt32(out: Uint8Array, at: number, value: number): void {
  out[at] = value >>> 24;
  out[at + 1] = value >>> 16;
  out[at + 2] = value >>> 8;
  out[at + 3] = value;
}
