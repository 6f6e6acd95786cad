import type { HmacSha256 } from './hmac-sha256.js';
import { hmacSha256x4Module } from './hmac-sha256-x4-wasm.js';

/** Where a MAC computed later goes: the masker that formats it, and the output position. */
export interface MacSink {
  /** Writes the pseudonym of the 32-byte MAC `digest` (eight big-endian words) at `out[pos]`. */
  writeMac(digest: Int32Array, out: Uint8Array, pos: number): void;
}

/** Longest message a batch takes: the inner hash of a longer one needs a second block. */
export const HMAC_BATCH_MAX_BYTES = 55;

/** Messages per flush: the module's one page holds 255 groups of four. */
const CAPACITY = 255 * 4;
/** Word index of the first group (after the two lane states of 32 words each). */
const GROUPS_AT = 64;

/**
 * HMAC-SHA-256 of many short messages, four at a time on WebAssembly SIMD (see
 * {@link hmacSha256x4Module}): about 2.5× the scalar JavaScript's speed per message on x86-64.
 * Messages are queued with the place their pseudonym goes, and {@link HmacBatch.flush} computes
 * them all and has each sink write its MAC. One key at a time: a batch holding messages of
 * another key declines new ones until it is flushed (maskers made from the same key share it).
 *
 * One batch per thread ({@link HmacBatch.shared}): masking is synchronous, and a batch is only
 * used within one call that flushes it before it returns.
 */
export class HmacBatch {
  static #shared: HmacBatch | null | undefined;

  /** The thread's batch, or null where WebAssembly SIMD is not available. */
  static shared(): HmacBatch | null {
    if (HmacBatch.#shared === undefined) {
      const bytes = hmacSha256x4Module();
      HmacBatch.#shared = WebAssembly.validate(bytes) ? new HmacBatch(bytes) : null;
    }
    return HmacBatch.#shared;
  }

  readonly #hmac: (p: number, groups: number) => void;
  readonly #words: Int32Array;
  readonly #sinks: MacSink[] = [];
  readonly #positions: number[] = [];
  readonly #digest = new Int32Array(8);
  #key: HmacSha256 | null = null;
  #count = 0;

  private constructor(bytes: Uint8Array) {
    const instance = new WebAssembly.Instance(new WebAssembly.Module(bytes));
    const exports = instance.exports as {
      hmac: (p: number, groups: number) => void;
      memory: WebAssembly.Memory;
    };
    this.#hmac = exports.hmac;
    this.#words = new Int32Array(exports.memory.buffer);
  }

  /** True when no message fits until the next flush. */
  get full(): boolean {
    return this.#count === CAPACITY;
  }

  /**
   * Queues the MAC of `src[start, end)` under `key`, for `sink` to write at `out[pos]` on the
   * next flush. False, with nothing queued, when the message is longer than
   * {@link HMAC_BATCH_MAX_BYTES}, the batch is full, or it holds messages of another key.
   */
  add(
    key: HmacSha256,
    src: Uint8Array,
    start: number,
    end: number,
    sink: MacSink,
    pos: number,
  ): boolean {
    const length = end - start;
    if (length > HMAC_BATCH_MAX_BYTES || this.#count === CAPACITY) return false;
    if (key !== this.#key) {
      if (this.#key === null || !key.sameKey(this.#key)) {
        if (this.#count > 0) return false;
        key.writeLaneStates(this.#words, 0);
      }
      this.#key = key;
    }
    const words = this.#words;
    const n = this.#count++;
    // Word i of this message's lane sits at group + i * 4.
    const at = GROUPS_AT + (n >> 2) * 64 + (n & 3);
    let p = start;
    const full = length >> 2;
    for (let i = 0; i < full; i++, p += 4) {
      words[at + i * 4] = (src[p]! << 24) | (src[p + 1]! << 16) | (src[p + 2]! << 8) | src[p + 3]!;
    }
    // The word holding the last bytes and the 0x80 marker, zeros, and the bit length of the
    // pad block and the message.
    let tail = 0x80 << (24 - ((length & 3) << 3));
    for (let k = 0; p < end; k++, p++) tail |= src[p]! << (24 - (k << 3));
    words[at + full * 4] = tail;
    for (let i = full + 1; i < 15; i++) words[at + i * 4] = 0;
    words[at + 60] = (64 + length) << 3;
    this.#sinks[n] = sink;
    this.#positions[n] = pos;
    return true;
  }

  /** Computes the queued MACs and has each sink write its own into `out`; empties the batch. */
  flush(out: Uint8Array): void {
    const count = this.#count;
    if (count === 0) return;
    this.#count = 0;
    this.#hmac(GROUPS_AT * 4, (count + 3) >> 2);
    const words = this.#words;
    const digest = this.#digest;
    for (let n = 0; n < count; n++) {
      const at = GROUPS_AT + (n >> 2) * 64 + (n & 3);
      for (let i = 0; i < 8; i++) digest[i] = words[at + i * 4]!;
      this.#sinks[n]!.writeMac(digest, out, this.#positions[n]!);
    }
  }

  /** Forgets the queued messages (after a failure: their output is discarded). */
  clear(): void {
    this.#count = 0;
  }
}
