import { createHash, type KeyObject } from 'node:crypto';
import { PortcullisError } from '@portcullis/core';
import { SHA256_IV as IV, SHA256_K as K } from './sha256-constants.js';

/** Smallest key accepted, in bytes: below this a pseudonym could be brute-forced offline. */
export const MIN_HASH_KEY_BYTES = 16;

/**
 * HMAC-SHA-256 with the key's inner and outer pad blocks compressed once, up front.
 *
 * `node:crypto`'s `createHmac` costs an object and a native call per value (about 1–2 µs),
 * which dominates when every row of a result is pseudonymised. Here a short value costs two
 * SHA-256 compressions in plain JavaScript, with no allocation. The implementation is checked
 * against `createHmac` by the tests. The key bytes are not kept, only the two pad states, in
 * private fields that `util.inspect` does not show.
 */
export class HmacSha256 {
  readonly #inner = new Int32Array(8);
  readonly #outer = new Int32Array(8);
  readonly #state = new Int32Array(8);
  readonly #w = new Int32Array(16);

  /** @param key - the secret, at least {@link MIN_HASH_KEY_BYTES} bytes; it is not kept. */
  constructor(key: Uint8Array | KeyObject) {
    let raw = key instanceof Uint8Array ? key : key.export();
    if (raw.length < MIN_HASH_KEY_BYTES) {
      throw new PortcullisError(
        'PCL_ERR_CONFIG_INVALID',
        `the masking hash key must be at least ${MIN_HASH_KEY_BYTES} bytes`,
      );
    }
    // RFC 2104: a key longer than the block is replaced by its digest.
    if (raw.length > 64) raw = createHash('sha256').update(raw).digest();
    const pad = new Uint8Array(64);
    for (const [state, byte] of [
      [this.#inner, 0x36],
      [this.#outer, 0x5c],
    ] as const) {
      pad.fill(byte);
      for (let i = 0; i < raw.length; i++) pad[i] = raw[i]! ^ byte;
      state.set(IV);
      this.#loadBlock(pad, 0);
      compress(state, this.#w);
    }
    pad.fill(0);
  }

  /** Writes the 32-byte MAC of `src[start, end)` into `out` as eight big-endian words. */
  digest(src: Uint8Array, start: number, end: number, out: Int32Array): void {
    // Plain loops and stores throughout: `set` and `fill` are builtin calls that cost more than
    // the eight or sixteen words they move.
    const st = this.#state;
    const w = this.#w;
    const inner = this.#inner;
    for (let i = 0; i < 8; i++) st[i] = inner[i]!;
    let pos = start;
    while (pos + 64 <= end) {
      this.#loadBlock(src, pos);
      compress(st, w);
      pos += 64;
    }
    // Last partial block: the remaining bytes, 0x80, zeros, and the bit length (inner pad
    // block included) in the final 64 bits, spilling into one more block when it does not fit.
    const rest = end - pos;
    const full = rest >> 2;
    for (let i = 0; i < full; i++, pos += 4) {
      w[i] = (src[pos]! << 24) | (src[pos + 1]! << 16) | (src[pos + 2]! << 8) | src[pos + 3]!;
    }
    // The word holding the last bytes and the 0x80 marker.
    let tail = 0x80 << (24 - ((rest & 3) << 3));
    for (let k = 0; pos < end; k++, pos++) tail |= src[pos]! << (24 - (k << 3));
    w[full] = tail;
    for (let i = full + 1; i < 16; i++) w[i] = 0;
    if (rest > 55) {
      compress(st, w);
      for (let i = 0; i < 16; i++) w[i] = 0;
    }
    const bytes = 64 + end - start;
    w[14] = Math.floor(bytes / 0x20000000);
    w[15] = (bytes << 3) | 0;
    compress(st, w);
    // Outer hash: opad state, then the 32-byte inner digest as the single padded block.
    for (let i = 0; i < 8; i++) w[i] = st[i]!;
    w[8] = 0x80000000 | 0;
    for (let i = 9; i < 15; i++) w[i] = 0;
    w[15] = (64 + 32) << 3;
    const outer = this.#outer;
    for (let i = 0; i < 8; i++) out[i] = outer[i]!;
    compress(out, w);
  }

  /** True when `other` was made from the same key (its pad states are the same). */
  sameKey(other: HmacSha256): boolean {
    for (let i = 0; i < 8; i++) {
      if (this.#inner[i] !== other.#inner[i] || this.#outer[i] !== other.#outer[i]) return false;
    }
    return true;
  }

  /**
   * Writes the inner and then the outer pad state into `words` from `at`, each word repeated
   * four times: the layout of the four lanes of `HmacBatch`.
   */
  writeLaneStates(words: Int32Array, at: number): void {
    for (let i = 0; i < 8; i++) {
      for (let lane = 0; lane < 4; lane++) {
        words[at + i * 4 + lane] = this.#inner[i]!;
        words[at + 32 + i * 4 + lane] = this.#outer[i]!;
      }
    }
  }

  #loadBlock(src: Uint8Array, pos: number): void {
    const w = this.#w;
    for (let i = 0; i < 16; i++, pos += 4) {
      w[i] = (src[pos]! << 24) | (src[pos + 1]! << 16) | (src[pos + 2]! << 8) | src[pos + 3]!;
    }
  }
}

/**
 * One SHA-256 compression of the block in `w[0..16)` into state `h`. The 64 rounds run as four
 * blocks of 16, unrolled, with the message schedule in sixteen locals: V8 keeps them in
 * registers, which makes a compression about 40% faster than a loop over a 64-word array.
 */
function compress(h: Int32Array, w: Int32Array): void {
  let w0 = w[0]!;
  let w1 = w[1]!;
  let w2 = w[2]!;
  let w3 = w[3]!;
  let w4 = w[4]!;
  let w5 = w[5]!;
  let w6 = w[6]!;
  let w7 = w[7]!;
  let w8 = w[8]!;
  let w9 = w[9]!;
  let w10 = w[10]!;
  let w11 = w[11]!;
  let w12 = w[12]!;
  let w13 = w[13]!;
  let w14 = w[14]!;
  let w15 = w[15]!;
  let a = h[0]!;
  let b = h[1]!;
  let c = h[2]!;
  let d = h[3]!;
  let e = h[4]!;
  let f = h[5]!;
  let g = h[6]!;
  let hh = h[7]!;
  let t: number;
  let x: number;
  let y: number;
  for (let r = 0; r < 64; r += 16) {
    if (r > 0) {
      // Schedule: w[i] += σ0(w[i+1]) + w[i+9] + σ1(w[i+14]) (indexes mod 16).
      x = w1;
      y = w14;
      w0 =
        (w0 +
          (((x >>> 7) | (x << 25)) ^ ((x >>> 18) | (x << 14)) ^ (x >>> 3)) +
          w9 +
          (((y >>> 17) | (y << 15)) ^ ((y >>> 19) | (y << 13)) ^ (y >>> 10))) |
        0;
      x = w2;
      y = w15;
      w1 =
        (w1 +
          (((x >>> 7) | (x << 25)) ^ ((x >>> 18) | (x << 14)) ^ (x >>> 3)) +
          w10 +
          (((y >>> 17) | (y << 15)) ^ ((y >>> 19) | (y << 13)) ^ (y >>> 10))) |
        0;
      x = w3;
      y = w0;
      w2 =
        (w2 +
          (((x >>> 7) | (x << 25)) ^ ((x >>> 18) | (x << 14)) ^ (x >>> 3)) +
          w11 +
          (((y >>> 17) | (y << 15)) ^ ((y >>> 19) | (y << 13)) ^ (y >>> 10))) |
        0;
      x = w4;
      y = w1;
      w3 =
        (w3 +
          (((x >>> 7) | (x << 25)) ^ ((x >>> 18) | (x << 14)) ^ (x >>> 3)) +
          w12 +
          (((y >>> 17) | (y << 15)) ^ ((y >>> 19) | (y << 13)) ^ (y >>> 10))) |
        0;
      x = w5;
      y = w2;
      w4 =
        (w4 +
          (((x >>> 7) | (x << 25)) ^ ((x >>> 18) | (x << 14)) ^ (x >>> 3)) +
          w13 +
          (((y >>> 17) | (y << 15)) ^ ((y >>> 19) | (y << 13)) ^ (y >>> 10))) |
        0;
      x = w6;
      y = w3;
      w5 =
        (w5 +
          (((x >>> 7) | (x << 25)) ^ ((x >>> 18) | (x << 14)) ^ (x >>> 3)) +
          w14 +
          (((y >>> 17) | (y << 15)) ^ ((y >>> 19) | (y << 13)) ^ (y >>> 10))) |
        0;
      x = w7;
      y = w4;
      w6 =
        (w6 +
          (((x >>> 7) | (x << 25)) ^ ((x >>> 18) | (x << 14)) ^ (x >>> 3)) +
          w15 +
          (((y >>> 17) | (y << 15)) ^ ((y >>> 19) | (y << 13)) ^ (y >>> 10))) |
        0;
      x = w8;
      y = w5;
      w7 =
        (w7 +
          (((x >>> 7) | (x << 25)) ^ ((x >>> 18) | (x << 14)) ^ (x >>> 3)) +
          w0 +
          (((y >>> 17) | (y << 15)) ^ ((y >>> 19) | (y << 13)) ^ (y >>> 10))) |
        0;
      x = w9;
      y = w6;
      w8 =
        (w8 +
          (((x >>> 7) | (x << 25)) ^ ((x >>> 18) | (x << 14)) ^ (x >>> 3)) +
          w1 +
          (((y >>> 17) | (y << 15)) ^ ((y >>> 19) | (y << 13)) ^ (y >>> 10))) |
        0;
      x = w10;
      y = w7;
      w9 =
        (w9 +
          (((x >>> 7) | (x << 25)) ^ ((x >>> 18) | (x << 14)) ^ (x >>> 3)) +
          w2 +
          (((y >>> 17) | (y << 15)) ^ ((y >>> 19) | (y << 13)) ^ (y >>> 10))) |
        0;
      x = w11;
      y = w8;
      w10 =
        (w10 +
          (((x >>> 7) | (x << 25)) ^ ((x >>> 18) | (x << 14)) ^ (x >>> 3)) +
          w3 +
          (((y >>> 17) | (y << 15)) ^ ((y >>> 19) | (y << 13)) ^ (y >>> 10))) |
        0;
      x = w12;
      y = w9;
      w11 =
        (w11 +
          (((x >>> 7) | (x << 25)) ^ ((x >>> 18) | (x << 14)) ^ (x >>> 3)) +
          w4 +
          (((y >>> 17) | (y << 15)) ^ ((y >>> 19) | (y << 13)) ^ (y >>> 10))) |
        0;
      x = w13;
      y = w10;
      w12 =
        (w12 +
          (((x >>> 7) | (x << 25)) ^ ((x >>> 18) | (x << 14)) ^ (x >>> 3)) +
          w5 +
          (((y >>> 17) | (y << 15)) ^ ((y >>> 19) | (y << 13)) ^ (y >>> 10))) |
        0;
      x = w14;
      y = w11;
      w13 =
        (w13 +
          (((x >>> 7) | (x << 25)) ^ ((x >>> 18) | (x << 14)) ^ (x >>> 3)) +
          w6 +
          (((y >>> 17) | (y << 15)) ^ ((y >>> 19) | (y << 13)) ^ (y >>> 10))) |
        0;
      x = w15;
      y = w12;
      w14 =
        (w14 +
          (((x >>> 7) | (x << 25)) ^ ((x >>> 18) | (x << 14)) ^ (x >>> 3)) +
          w7 +
          (((y >>> 17) | (y << 15)) ^ ((y >>> 19) | (y << 13)) ^ (y >>> 10))) |
        0;
      x = w0;
      y = w13;
      w15 =
        (w15 +
          (((x >>> 7) | (x << 25)) ^ ((x >>> 18) | (x << 14)) ^ (x >>> 3)) +
          w8 +
          (((y >>> 17) | (y << 15)) ^ ((y >>> 19) | (y << 13)) ^ (y >>> 10))) |
        0;
    }
    // Round: T1 = h + Σ1(e) + Ch(e, f, g) + K + w; shift; a = T1 + Σ0(a) + Maj(a, b, c).
    t =
      (hh +
        (((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7))) +
        (g ^ (e & (f ^ g))) +
        K[r + 0]! +
        w0) |
      0;
    hh = g;
    g = f;
    f = e;
    e = (d + t) | 0;
    d = c;
    c = b;
    b = a;
    a =
      (t +
        ((((b >>> 2) | (b << 30)) ^ ((b >>> 13) | (b << 19)) ^ ((b >>> 22) | (b << 10))) +
          ((b & c) | (d & (b | c))))) |
      0;
    t =
      (hh +
        (((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7))) +
        (g ^ (e & (f ^ g))) +
        K[r + 1]! +
        w1) |
      0;
    hh = g;
    g = f;
    f = e;
    e = (d + t) | 0;
    d = c;
    c = b;
    b = a;
    a =
      (t +
        ((((b >>> 2) | (b << 30)) ^ ((b >>> 13) | (b << 19)) ^ ((b >>> 22) | (b << 10))) +
          ((b & c) | (d & (b | c))))) |
      0;
    t =
      (hh +
        (((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7))) +
        (g ^ (e & (f ^ g))) +
        K[r + 2]! +
        w2) |
      0;
    hh = g;
    g = f;
    f = e;
    e = (d + t) | 0;
    d = c;
    c = b;
    b = a;
    a =
      (t +
        ((((b >>> 2) | (b << 30)) ^ ((b >>> 13) | (b << 19)) ^ ((b >>> 22) | (b << 10))) +
          ((b & c) | (d & (b | c))))) |
      0;
    t =
      (hh +
        (((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7))) +
        (g ^ (e & (f ^ g))) +
        K[r + 3]! +
        w3) |
      0;
    hh = g;
    g = f;
    f = e;
    e = (d + t) | 0;
    d = c;
    c = b;
    b = a;
    a =
      (t +
        ((((b >>> 2) | (b << 30)) ^ ((b >>> 13) | (b << 19)) ^ ((b >>> 22) | (b << 10))) +
          ((b & c) | (d & (b | c))))) |
      0;
    t =
      (hh +
        (((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7))) +
        (g ^ (e & (f ^ g))) +
        K[r + 4]! +
        w4) |
      0;
    hh = g;
    g = f;
    f = e;
    e = (d + t) | 0;
    d = c;
    c = b;
    b = a;
    a =
      (t +
        ((((b >>> 2) | (b << 30)) ^ ((b >>> 13) | (b << 19)) ^ ((b >>> 22) | (b << 10))) +
          ((b & c) | (d & (b | c))))) |
      0;
    t =
      (hh +
        (((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7))) +
        (g ^ (e & (f ^ g))) +
        K[r + 5]! +
        w5) |
      0;
    hh = g;
    g = f;
    f = e;
    e = (d + t) | 0;
    d = c;
    c = b;
    b = a;
    a =
      (t +
        ((((b >>> 2) | (b << 30)) ^ ((b >>> 13) | (b << 19)) ^ ((b >>> 22) | (b << 10))) +
          ((b & c) | (d & (b | c))))) |
      0;
    t =
      (hh +
        (((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7))) +
        (g ^ (e & (f ^ g))) +
        K[r + 6]! +
        w6) |
      0;
    hh = g;
    g = f;
    f = e;
    e = (d + t) | 0;
    d = c;
    c = b;
    b = a;
    a =
      (t +
        ((((b >>> 2) | (b << 30)) ^ ((b >>> 13) | (b << 19)) ^ ((b >>> 22) | (b << 10))) +
          ((b & c) | (d & (b | c))))) |
      0;
    t =
      (hh +
        (((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7))) +
        (g ^ (e & (f ^ g))) +
        K[r + 7]! +
        w7) |
      0;
    hh = g;
    g = f;
    f = e;
    e = (d + t) | 0;
    d = c;
    c = b;
    b = a;
    a =
      (t +
        ((((b >>> 2) | (b << 30)) ^ ((b >>> 13) | (b << 19)) ^ ((b >>> 22) | (b << 10))) +
          ((b & c) | (d & (b | c))))) |
      0;
    t =
      (hh +
        (((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7))) +
        (g ^ (e & (f ^ g))) +
        K[r + 8]! +
        w8) |
      0;
    hh = g;
    g = f;
    f = e;
    e = (d + t) | 0;
    d = c;
    c = b;
    b = a;
    a =
      (t +
        ((((b >>> 2) | (b << 30)) ^ ((b >>> 13) | (b << 19)) ^ ((b >>> 22) | (b << 10))) +
          ((b & c) | (d & (b | c))))) |
      0;
    t =
      (hh +
        (((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7))) +
        (g ^ (e & (f ^ g))) +
        K[r + 9]! +
        w9) |
      0;
    hh = g;
    g = f;
    f = e;
    e = (d + t) | 0;
    d = c;
    c = b;
    b = a;
    a =
      (t +
        ((((b >>> 2) | (b << 30)) ^ ((b >>> 13) | (b << 19)) ^ ((b >>> 22) | (b << 10))) +
          ((b & c) | (d & (b | c))))) |
      0;
    t =
      (hh +
        (((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7))) +
        (g ^ (e & (f ^ g))) +
        K[r + 10]! +
        w10) |
      0;
    hh = g;
    g = f;
    f = e;
    e = (d + t) | 0;
    d = c;
    c = b;
    b = a;
    a =
      (t +
        ((((b >>> 2) | (b << 30)) ^ ((b >>> 13) | (b << 19)) ^ ((b >>> 22) | (b << 10))) +
          ((b & c) | (d & (b | c))))) |
      0;
    t =
      (hh +
        (((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7))) +
        (g ^ (e & (f ^ g))) +
        K[r + 11]! +
        w11) |
      0;
    hh = g;
    g = f;
    f = e;
    e = (d + t) | 0;
    d = c;
    c = b;
    b = a;
    a =
      (t +
        ((((b >>> 2) | (b << 30)) ^ ((b >>> 13) | (b << 19)) ^ ((b >>> 22) | (b << 10))) +
          ((b & c) | (d & (b | c))))) |
      0;
    t =
      (hh +
        (((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7))) +
        (g ^ (e & (f ^ g))) +
        K[r + 12]! +
        w12) |
      0;
    hh = g;
    g = f;
    f = e;
    e = (d + t) | 0;
    d = c;
    c = b;
    b = a;
    a =
      (t +
        ((((b >>> 2) | (b << 30)) ^ ((b >>> 13) | (b << 19)) ^ ((b >>> 22) | (b << 10))) +
          ((b & c) | (d & (b | c))))) |
      0;
    t =
      (hh +
        (((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7))) +
        (g ^ (e & (f ^ g))) +
        K[r + 13]! +
        w13) |
      0;
    hh = g;
    g = f;
    f = e;
    e = (d + t) | 0;
    d = c;
    c = b;
    b = a;
    a =
      (t +
        ((((b >>> 2) | (b << 30)) ^ ((b >>> 13) | (b << 19)) ^ ((b >>> 22) | (b << 10))) +
          ((b & c) | (d & (b | c))))) |
      0;
    t =
      (hh +
        (((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7))) +
        (g ^ (e & (f ^ g))) +
        K[r + 14]! +
        w14) |
      0;
    hh = g;
    g = f;
    f = e;
    e = (d + t) | 0;
    d = c;
    c = b;
    b = a;
    a =
      (t +
        ((((b >>> 2) | (b << 30)) ^ ((b >>> 13) | (b << 19)) ^ ((b >>> 22) | (b << 10))) +
          ((b & c) | (d & (b | c))))) |
      0;
    t =
      (hh +
        (((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7))) +
        (g ^ (e & (f ^ g))) +
        K[r + 15]! +
        w15) |
      0;
    hh = g;
    g = f;
    f = e;
    e = (d + t) | 0;
    d = c;
    c = b;
    b = a;
    a =
      (t +
        ((((b >>> 2) | (b << 30)) ^ ((b >>> 13) | (b << 19)) ^ ((b >>> 22) | (b << 10))) +
          ((b & c) | (d & (b | c))))) |
      0;
  }
  h[0] = (h[0]! + a) | 0;
  h[1] = (h[1]! + b) | 0;
  h[2] = (h[2]! + c) | 0;
  h[3] = (h[3]! + d) | 0;
  h[4] = (h[4]! + e) | 0;
  h[5] = (h[5]! + f) | 0;
  h[6] = (h[6]! + g) | 0;
  h[7] = (h[7]! + hh) | 0;
}
