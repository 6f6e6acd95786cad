/**
 * A growable output buffer that copies unchanged input lazily: `pending` marks where the input
 * bytes not yet copied begin, and {@link OutputWriter.copyTo} moves them over only when a
 * changed byte has to follow them, as one run. Nothing is allocated until the first write.
 */
export class OutputWriter {
  buf: Buffer = EMPTY;
  /** Where the output begins in {@link OutputWriter.buf}; positions are absolute in it. */
  readonly base: number;
  pos: number;
  /** Input offset of the first byte not yet copied. */
  pending: number;
  readonly #src: Uint8Array;
  readonly #initial: number;
  readonly #transferable: boolean;
  /** Writing into the shared slab (see {@link OutputWriter.result}). */
  #inSlab: boolean;
  /** The slab had no room at construction: the first write starts a new one. */
  readonly #freshSlab: boolean;
  /** Word access to `buf`'s ArrayBuffer, where `buf` starts at `#outBase`. */
  #out: DataView = EMPTY_VIEW;
  #outBase = 0;

  /**
   * @param initial - capacity the output is expected to need.
   * @param transferable - allocate an own ArrayBuffer at offset 0, so the result can be moved
   *   to or from a worker; otherwise a small output is a slice of a shared slab (much cheaper per
   *   frame, like Node's own pool).
   */
  constructor(src: Uint8Array, pending: number, initial: number, transferable: boolean) {
    this.#src = src;
    this.pending = pending;
    this.#initial = initial;
    this.#transferable = transferable;
    this.#inSlab = !transferable && initial <= SLAB_MAX_INITIAL;
    this.#freshSlab = this.#inSlab && slabUsed + initial > slab.length;
    this.base = this.#inSlab && !this.#freshSlab ? slabUsed : 0;
    this.pos = this.base;
  }

  /** Makes room for `n` more bytes. */
  ensure(n: number): void {
    const need = this.pos + n;
    if (need <= this.buf.length) return;
    if (this.#inSlab && this.buf === EMPTY) {
      if (this.#freshSlab) {
        slab = Buffer.allocUnsafeSlow(SLAB_BYTES);
        slabUsed = 0;
      }
      this.#use(slab);
      if (need <= slab.length) return;
    }
    // Outgrown (or not from the slab at all): a buffer of its own, the positions kept.
    const size = Math.max(need, this.base + this.#initial, this.buf.length * 2);
    const grown = this.#transferable ? Buffer.allocUnsafeSlow(size) : Buffer.allocUnsafe(size);
    if (this.pos > this.base) grown.set(this.buf.subarray(this.base, this.pos), this.base);
    this.#inSlab = false;
    this.#use(grown);
  }

  #use(buf: Buffer): void {
    this.buf = buf;
    this.#out = bufferView(buf.buffer);
    this.#outBase = buf.byteOffset;
  }

  /** Copies the pending input bytes up to `to`. */
  copyTo(to: number): void {
    const n = to - this.pending;
    if (n <= 0) return;
    this.ensure(n);
    copyBytes(this.#src, this.pending, to, this.buf, this.pos, this.#out, this.#outBase + this.pos);
    this.pos += n;
    this.pending = to;
  }

  /** Writes a big-endian Int32 at the current position. */
  int32(value: number): void {
    this.ensure(4);
    this.int32At(this.pos, value);
    this.pos += 4;
  }

  /** Overwrites four bytes already made room for at `at` with a big-endian Int32: one store. */
  int32At(at: number, value: number): void {
    this.#out.setInt32(this.#outBase + at, value);
  }

  /** Writes one byte. */
  byte(value: number): void {
    this.ensure(1);
    this.buf[this.pos++] = value;
  }

  /**
   * The bytes written (a view, no copy). A slab output is handed out here: later writers start
   * after it. One writer at a time uses the slab, which synchronous callers guarantee.
   */
  result(): Buffer {
    const out = this.buf.subarray(this.base, this.pos);
    if (this.#inSlab && this.buf === slab) slabUsed = (this.pos + 7) & ~7;
    return out;
  }
}

const EMPTY = Buffer.alloc(0);
const EMPTY_VIEW = new DataView(new ArrayBuffer(0));

// The shared slab of small outputs: a result is one view of it, where taking a slice of Node's
// pool costs a view for the allocation and another for the result. Like the pool, a slab stays
// alive as long as any result in it.
const SLAB_BYTES = 64 * 1024;
const SLAB_MAX_INITIAL = 8 * 1024;
let slab: Buffer = EMPTY;
let slabUsed = 0;

/** Runs at least this long are copied natively; a view and a native call cost about as much. */
const NATIVE_COPY_BYTES = 160;

// The DataView of the last output ArrayBuffer: small outputs are slices of Node's shared pool,
// so frame by frame this saves a view per frame.
let lastOutBuffer: ArrayBufferLike | null = null;
let lastOutView: DataView = EMPTY_VIEW;

function bufferView(buffer: ArrayBufferLike): DataView {
  if (buffer !== lastOutBuffer) {
    lastOutBuffer = buffer;
    lastOutView = new DataView(buffer);
  }
  return lastOutView;
}

/**
 * Copies `src[from, to)` to `out` at `pos`; `view` is a DataView of `out`'s ArrayBuffer and
 * `viewPos` is where `out[pos]` sits in it. Short runs go
 * eight bytes at a time through DataViews, which V8 compiles to plain unaligned loads and
 * stores; long ones through a native `set`. Neither allocates per byte, and a short run does
 * not allocate at all.
 */
export function copyBytes(
  src: Uint8Array,
  from: number,
  to: number,
  out: Uint8Array,
  pos: number,
  view: DataView,
  viewPos: number,
): void {
  const n = to - from;
  if (n < 8) {
    while (from < to) out[pos++] = src[from++]!;
    return;
  }
  const sv = chunkWords.of(src);
  if (n >= NATIVE_COPY_BYTES) {
    out.set(chunkWords.plain.subarray(from, to), pos);
    return;
  }
  const last = n - 8;
  let k = 0;
  for (; k < last; k += 8) copyWord(sv, from + k, view, viewPos + k);
  // The last eight bytes, overlapping what was copied already when n is not a multiple of 8.
  copyWord(sv, from + last, view, viewPos + last);
}

/**
 * Copies eight bytes. As one Float64 when they are a number: the language fixes the bytes of
 * every number but lets an engine rewrite a NaN's, so those go as two Int32s. (Text never reads
 * as a NaN: that needs a byte of 0x7f or more followed by one of 0xf0 or more.)
 */
function copyWord(sv: DataView, from: number, view: DataView, to: number): void {
  const x = sv.getFloat64(from, true);
  if (x === x) {
    view.setFloat64(to, x, true);
  } else {
    view.setInt32(to, sv.getInt32(from, true), true);
    view.setInt32(to + 4, sv.getInt32(from + 4, true), true);
  }
}

/**
 * A DataView of all of one Uint8Array at its own offsets, rebuilt only when the array changes:
 * the frames and values read come from one chunk after another, and the output a masker writes
 * into changes only when a writer grows.
 */
export class ViewCache {
  #bytes: Uint8Array = EMPTY;
  #view: DataView = EMPTY_VIEW;
  #plain: Uint8Array | null = null;

  of(bytes: Uint8Array): DataView {
    if (bytes !== this.#bytes) {
      this.#bytes = bytes;
      this.#view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      this.#plain = null;
    }
    return this.#view;
  }

  /**
   * The array last given to {@link ViewCache.of} as a plain Uint8Array: `subarray` on a Buffer
   * goes through Buffer's own constructor.
   */
  get plain(): Uint8Array {
    const bytes = this.#bytes;
    return (this.#plain ??= new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  }
}

/**
 * Word access to the chunk being rewritten: its frames and the values in them, read by the row
 * loop, the detectors and the maskers. It holds on to the last chunk until another one comes.
 */
export const chunkWords = new ViewCache();
