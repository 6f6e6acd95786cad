import { SHA256_K } from './sha256-constants.js';

/**
 * The bytes of a WebAssembly module that computes HMAC-SHA-256 of four short messages at once,
 * one per 32-bit lane of 128-bit SIMD vectors. The module is generated here, instruction by
 * instruction, rather than shipped as a binary, so what runs is what this file says.
 *
 * Export `hmac(p, groups)`: for each of `groups` consecutive 256-byte groups from address `p`,
 * the group holds one padded message block for each of four lanes, word `i` of lane `l` at
 * `p + i*16 + l*4` (big-endian words, as SHA-256 reads them, stored as native integers). The
 * block is compressed from the inner pad state (eight vectors at address 0, each word repeated
 * in all four lanes), the digest is padded as the outer block and compressed from the outer pad
 * state (at 128), and the eight words of each lane's MAC replace the first eight words of its
 * group. Export `memory`: one 64 KiB page, so 255 groups (1,020 messages) fit per call.
 *
 * Each compression is 64 unrolled rounds over locals; rotations are a shift pair and an `or`
 * (WebAssembly has no vector rotate). On x86-64 a call costs about a third of what four calls of
 * the scalar JavaScript compression cost.
 */
export function hmacSha256x4Module(): Uint8Array {
  const code: number[] = [];
  // Locals: 0 p, 1 groups (parameters); then v128: 2–9 the working variables a–h, 10 the round
  // temporary, 11–26 the message schedule w0–w15.
  const P = 0;
  const GROUPS = 1;
  const T = 10;
  const W = 11;
  const state = [2, 3, 4, 5, 6, 7, 8, 9];

  const block = (): void => void code.push(0x02, 0x40);
  const loop = (): void => void code.push(0x03, 0x40);
  const end = (): void => void code.push(0x0b);
  const get = (i: number): number[] => [0x20, i];
  const set = (i: number, value: number[]): void => void code.push(...value, 0x21, i);
  const i32 = (value: number): number[] => [0x41, ...sleb(value)];
  const simd = (op: number): number[] => [0xfd, ...uleb(op)];
  const load = (address: number[], offset: number): number[] => [
    ...address,
    ...simd(0x00),
    4,
    ...uleb(offset),
  ];
  const store = (address: number[], offset: number, value: number[]): void =>
    void code.push(...address, ...value, ...simd(0x0b), 4, ...uleb(offset));
  const splat = (word: number): number[] => {
    const bytes = new Uint8Array(16);
    new DataView(bytes.buffer).setInt32(0, word, true);
    bytes.copyWithin(4, 0, 4);
    bytes.copyWithin(8, 0, 8);
    return [...simd(0x0c), ...bytes];
  };
  const add = (...xs: number[][]): number[] => xs.reduce((sum, x) => [...sum, ...x, ...simd(0xae)]);
  const xor = (a: number[], b: number[]): number[] => [...a, ...b, ...simd(0x51)];
  const shr = (x: number[], n: number): number[] => [...x, ...i32(n), ...simd(0xad)];
  const rotr = (x: number[], n: number): number[] => [
    ...shr(x, n),
    ...x,
    ...i32(32 - n),
    ...simd(0xab),
    ...simd(0x50),
  ];
  // bitselect(a, b, mask): a where mask is 1, b where it is 0.
  const select = (a: number[], b: number[], mask: number[]): number[] => [
    ...a,
    ...b,
    ...mask,
    ...simd(0x52),
  ];
  const zero = i32(0);

  function compress(stateAddress: number): void {
    const s = [...state];
    for (let i = 0; i < 8; i++) set(s[i]!, load(zero, stateAddress + i * 16));
    for (let t = 0; t < 64; t++) {
      const w = W + (t & 15);
      if (t >= 16) {
        // w[t] = w[t-16] + σ0(w[t-15]) + w[t-7] + σ1(w[t-2]), indexes mod 16.
        const w1 = get(W + ((t + 1) & 15));
        const w14 = get(W + ((t + 14) & 15));
        const sigma0 = xor(xor(rotr(w1, 7), rotr(w1, 18)), shr(w1, 3));
        const sigma1 = xor(xor(rotr(w14, 17), rotr(w14, 19)), shr(w14, 10));
        set(w, add(get(w), sigma0, get(W + ((t + 9) & 15)), sigma1));
      }
      const [a, b, c, d, e, f, g, h] = s as [
        number,
        number,
        number,
        number,
        number,
        number,
        number,
        number,
      ];
      // T1 = h + Σ1(e) + Ch(e, f, g) + K[t] + w[t]; e' = d + T1; a' = T1 + Σ0(a) + Maj(a, b, c).
      const bigSigma1 = xor(xor(rotr(get(e), 6), rotr(get(e), 11)), rotr(get(e), 25));
      const ch = select(get(f), get(g), get(e));
      set(T, add(get(h), bigSigma1, ch, splat(SHA256_K[t]!), get(w)));
      const bigSigma0 = xor(xor(rotr(get(a), 2), rotr(get(a), 13)), rotr(get(a), 22));
      const maj = select(get(b), get(a), xor(get(a), get(c)));
      set(d, add(get(d), get(T)));
      set(h, add(get(T), bigSigma0, maj));
      // The variables shift by renaming: what was h now holds a.
      s.unshift(s.pop()!);
    }
    for (let i = 0; i < 8; i++) set(s[i]!, add(get(s[i]!), load(zero, stateAddress + i * 16)));
  }

  block();
  loop();
  code.push(...get(GROUPS), 0x45, 0x0d, 1); // br_if $done (groups == 0)
  for (let i = 0; i < 16; i++) set(W + i, load(get(P), i * 16));
  compress(0);
  // The outer block: the inner digest, 0x80 padding, and the length of pad block plus digest.
  for (let i = 0; i < 8; i++) set(W + i, get(state[i]!));
  set(W + 8, splat(0x80000000 | 0));
  for (let i = 9; i < 15; i++) set(W + i, splat(0));
  set(W + 15, splat((64 + 32) * 8));
  compress(128);
  for (let i = 0; i < 8; i++) store(get(P), i * 16, get(state[i]!));
  set(P, [...get(P), ...i32(256), 0x6a]);
  set(GROUPS, [...get(GROUPS), ...i32(1), 0x6b]);
  code.push(0x0c, 0); // br $next
  end();
  end();
  end();

  const body = [1, 25, 0x7b, ...code]; // one run of 25 v128 locals, then the code
  const name = (text: string): number[] => [text.length, ...Buffer.from(text, 'ascii')];
  return Uint8Array.from([
    ...[0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00],
    ...section(1, [1, 0x60, 2, 0x7f, 0x7f, 0]), // type: (i32, i32) -> ()
    ...section(3, [1, 0]), // function 0 has type 0
    ...section(5, [1, 0, 1]), // one memory, at least one page
    ...section(7, [2, ...name('hmac'), 0, 0, ...name('memory'), 2, 0]),
    ...section(10, [1, ...uleb(body.length), ...body]),
  ]);
}

function section(id: number, content: number[]): number[] {
  return [id, ...uleb(content.length), ...content];
}

function uleb(value: number): number[] {
  const out: number[] = [];
  do {
    let byte = value & 0x7f;
    value >>>= 7;
    if (value !== 0) byte |= 0x80;
    out.push(byte);
  } while (value !== 0);
  return out;
}

function sleb(value: number): number[] {
  const out: number[] = [];
  for (;;) {
    const byte = value & 0x7f;
    value >>= 7;
    if ((value === 0 && (byte & 0x40) === 0) || (value === -1 && (byte & 0x40) !== 0)) {
      out.push(byte);
      return out;
    }
    out.push(byte | 0x80);
  }
}
