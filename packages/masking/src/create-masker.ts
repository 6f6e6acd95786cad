import type { KeyObject } from 'node:crypto';
import { PortcullisError } from '@portcullis/core';
import { countCodePoints, sequenceLength } from './count-code-points.js';
import type { HmacBatch, MacSink } from './hmac-batch.js';
import { HmacSha256 } from './hmac-sha256.js';
import { ViewCache, chunkWords } from './output-writer.js';
import {
  DEFAULT_HASH_LENGTH,
  DEFAULT_HASH_PREFIX,
  DEFAULT_PARTIAL_KEEP,
  DEFAULT_REDACT_MARKER,
  type MaskStyle,
  type MaskStyleKind,
} from './mask-style.js';

/**
 * A compiled {@link MaskStyle}: works on the UTF-8 bytes of one value and writes bytes. It never
 * throws on a value, whatever its bytes.
 */
export interface Masker {
  readonly kind: MaskStyleKind;
  /** True for the `null` style: the value becomes SQL NULL and {@link Masker.write} is not used. */
  readonly nulls: boolean;
  /** Upper bound of the bytes {@link Masker.write} produces for a value of `length` bytes. */
  maxOutput(length: number): number;
  /**
   * Writes the masked form of `src[start, end)` into `out` at `pos` and returns the position
   * after it. `out` must have {@link Masker.maxOutput} bytes free at `pos`; bytes between the
   * returned position and that bound may be overwritten.
   */
  write(src: Uint8Array, start: number, end: number, out: Uint8Array, pos: number): number;
  /** The masked form of `value[start, end)` as new bytes, or `null` for SQL NULL. */
  mask(value: Uint8Array, start?: number, end?: number): Uint8Array | null;
  /**
   * As {@link Masker.write}, but the masker may leave part of the output to `batch`, which
   * writes it into the same buffer at the same place when flushed (only the `hash` style does:
   * its MACs are computed four at a time). The output's length is final at once.
   */
  writeLater?(
    batch: HmacBatch,
    src: Uint8Array,
    start: number,
    end: number,
    out: Uint8Array,
    pos: number,
  ): number;
}

/**
 * The most bytes a masker adds to a value: {@link Masker.maxOutput} of `length` never exceeds
 * `length + MAX_MASK_GROWTH` (a redact marker has at most 64 bytes, a hash pseudonym a 64-byte
 * prefix and 51 characters), so a writer can make room for any masker without a call to it.
 */
export const MAX_MASK_GROWTH = 64 + 51;

/** Options of {@link createMasker}. */
export interface MaskerOptions {
  /** The HMAC key of the `hash` style (at least 16 bytes); required when that style is used. */
  readonly hashKey?: Uint8Array | KeyObject;
}

const STAR = 0x2a;
const BASE32 = new TextEncoder().encode('abcdefghijklmnopqrstuvwxyz234567');

/** ASCII separators `partial` keeps in the masked part. */
const SEPARATOR = new Uint8Array(128);
for (const c of ' -.@/()+') SEPARATOR[c.charCodeAt(0)] = 1;

/** `partial` replacement of each ASCII byte in the masked part: `*`, or the byte for separators. */
const PARTIAL_KEEP_SEPARATORS = new Uint8Array(128);
const PARTIAL_STARS = new Uint8Array(128).fill(STAR);
for (let b = 0; b < 128; b++) PARTIAL_KEEP_SEPARATORS[b] = SEPARATOR[b] === 1 ? b : STAR;
/** Every ASCII byte as it is: `partial`'s kept tail. */
const IDENTITY = Uint8Array.from({ length: 128 }, (_, b) => b);

/** Word access to the outputs maskers write into (a writer's buffer, until it grows). */
const outputWords = new ViewCache();

/** `fixed-format` replacement of each ASCII byte. */
const FIXED = new Uint8Array(128);
for (let b = 0; b < 128; b++) {
  FIXED[b] =
    b >= 0x41 && b <= 0x5a
      ? 0x58
      : b >= 0x61 && b <= 0x7a
        ? 0x78
        : b >= 0x30 && b <= 0x39
          ? 0x30
          : b;
}

/** Compiles a style; bad options throw `PCL_ERR_CONFIG_INVALID` (they come from configuration). */
export function createMasker(style: MaskStyle, options: MaskerOptions = {}): Masker {
  switch (style.kind) {
    case 'redact':
      return new RedactMasker(markerBytes(style.marker ?? DEFAULT_REDACT_MARKER, 'redact marker'));
    case 'partial':
      return new PartialMasker(
        intOption(style.keepLast ?? DEFAULT_PARTIAL_KEEP, 0, 64, 'partial keepLast'),
        style.keepSeparators ?? true,
      );
    case 'hash': {
      if (options.hashKey === undefined) {
        throw new PortcullisError('PCL_ERR_CONFIG_INVALID', 'the hash mask style needs a key');
      }
      const prefix = style.prefix ?? DEFAULT_HASH_PREFIX;
      return new HashMasker(
        new HmacSha256(options.hashKey),
        prefix === '' ? new Uint8Array(0) : markerBytes(prefix, 'hash prefix'),
        intOption(style.length ?? DEFAULT_HASH_LENGTH, 1, 51, 'hash length'),
      );
    }
    case 'null':
      return NULL_MASKER;
    case 'fixed-format':
      return new FixedFormatMasker(markerBytes(DEFAULT_REDACT_MARKER, 'redact marker'));
  }
}

/**
 * A marker must be short printable text with no quote, backslash or control character, so it
 * needs no escaping in JSON, COPY text or CSV output.
 */
function markerBytes(text: string, what: string): Uint8Array {
  const bytes = Buffer.from(text, 'utf8');
  const roundTrips = bytes.toString('utf8') === text;
  if (!roundTrips || bytes.length === 0 || bytes.length > 64 || /["\\\p{Cc}]/u.test(text)) {
    throw new PortcullisError(
      'PCL_ERR_CONFIG_INVALID',
      `${what} must be 1–64 bytes of printable text without quotes or backslashes`,
    );
  }
  return new Uint8Array(bytes);
}

function intOption(value: number, min: number, max: number, what: string): number {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new PortcullisError('PCL_ERR_CONFIG_INVALID', `${what} must be an integer ${min}–${max}`);
  }
  return value;
}

abstract class BaseMasker implements Masker {
  abstract readonly kind: MaskStyleKind;
  readonly nulls: boolean = false;
  abstract maxOutput(length: number): number;
  abstract write(src: Uint8Array, start: number, end: number, out: Uint8Array, pos: number): number;

  mask(value: Uint8Array, start = 0, end = value.length): Uint8Array | null {
    if (this.nulls) return null;
    const out = new Uint8Array(this.maxOutput(end - start));
    return out.subarray(0, this.write(value, start, end, out, 0));
  }
}

function writeBytes(bytes: Uint8Array, out: Uint8Array, pos: number): number {
  for (let i = 0; i < bytes.length; i++) out[pos + i] = bytes[i]!;
  return pos + bytes.length;
}

class RedactMasker extends BaseMasker {
  readonly kind = 'redact';
  readonly #marker: Uint8Array;

  /** The marker as a big-endian word when it has four bytes, else 0 (a marker has no NUL). */
  readonly #word: number;

  constructor(marker: Uint8Array) {
    super();
    this.#marker = marker;
    this.#word =
      marker.length === 4
        ? (marker[0]! << 24) | (marker[1]! << 16) | (marker[2]! << 8) | marker[3]!
        : 0;
  }

  maxOutput(): number {
    return this.#marker.length;
  }

  write(_src: Uint8Array, _start: number, _end: number, out: Uint8Array, pos: number): number {
    // The default four-byte marker is one store.
    if (this.#word === 0) return writeBytes(this.#marker, out, pos);
    outputWords.of(out).setInt32(pos, this.#word);
    return pos + 4;
  }
}

class PartialMasker extends BaseMasker {
  readonly kind = 'partial';
  readonly #keepLast: number;
  readonly #separators: boolean;
  readonly #fallback = markerBytes(DEFAULT_REDACT_MARKER, 'redact marker');

  constructor(keepLast: number, separators: boolean) {
    super();
    this.#keepLast = keepLast;
    this.#separators = separators;
  }

  maxOutput(length: number): number {
    return Math.max(length, this.#fallback.length);
  }

  write(src: Uint8Array, start: number, end: number, out: Uint8Array, pos: number): number {
    // ASCII (the common case): code points are bytes, so the cut is known up front.
    const map = this.#separators ? PARTIAL_KEEP_SEPARATORS : PARTIAL_STARS;
    const cut = end - Math.min(this.#keepLast, (end - start) >> 1);
    let high: number;
    if (cut - start >= 4 && (end - cut >= 4 || end === cut)) {
      const sv = chunkWords.of(src);
      const ov = outputWords.of(out);
      high =
        mapWords(sv, start, cut, ov, pos, map) |
        mapWords(sv, cut, end, ov, pos + (cut - start), IDENTITY);
    } else {
      high =
        mapBytes(src, start, cut, out, pos, map) |
        mapBytes(src, cut, end, out, pos + (cut - start), IDENTITY);
    }
    if ((high & 0x80808080) === 0) return pos + (end - start);
    return this.#writeUtf8(src, start, end, out, pos);
  }

  /** The general case: count code points (validating), then mask all but the kept tail. */
  #writeUtf8(src: Uint8Array, start: number, end: number, out: Uint8Array, pos: number): number {
    const count = countCodePoints(src, start, end);
    if (count < 0) return writeBytes(this.#fallback, out, pos);
    // Keep at most half, so `partial` never reveals a short value whole.
    const keep = Math.min(this.#keepLast, count >> 1);
    let i = start;
    const separators = this.#separators;
    for (let k = count - keep; k > 0; k--) {
      const b = src[i]!;
      if (b < 0x80) {
        out[pos++] = separators && SEPARATOR[b] === 1 ? b : STAR;
        i++;
      } else {
        out[pos++] = STAR;
        i += sequenceLength(src, i, end);
      }
    }
    while (i < end) out[pos++] = src[i++]!;
    return pos;
  }
}

/**
 * Writes `src[from, to)` (none, or four bytes or more) at `pos` of the output `ov` views, each
 * byte through `map` (128 entries); returns the OR of the words read, so bit 7 of some byte set
 * means the value is not ASCII and the output is garbage. A word per step, the last one
 * overlapping the one before (a byte maps on its own, so writing it twice is harmless), and no
 * branch on the bytes: a column mixes formats (`4111 1111…`, `4111-1111…`) in no order a
 * branch predictor could learn.
 */
function mapWords(
  sv: DataView,
  from: number,
  to: number,
  ov: DataView,
  pos: number,
  map: Uint8Array,
): number {
  const last = to - from - 4;
  let high = 0;
  for (let k = 0; k <= last + 3; k += 4) {
    if (k > last) k = last;
    const x = sv.getInt32(from + k);
    high |= x;
    ov.setInt32(
      pos + k,
      (map[(x >>> 24) & 0x7f]! << 24) |
        (map[(x >>> 16) & 0x7f]! << 16) |
        (map[(x >>> 8) & 0x7f]! << 8) |
        map[x & 0x7f]!,
    );
  }
  return high;
}

/** {@link mapWords} a byte at a time, for pieces shorter than a word. */
function mapBytes(
  src: Uint8Array,
  from: number,
  to: number,
  out: Uint8Array,
  pos: number,
  map: Uint8Array,
): number {
  let high = 0;
  for (let i = from; i < to; i++) {
    const b = src[i]!;
    high |= b;
    out[pos++] = map[b & 0x7f]!;
  }
  return high;
}

class FixedFormatMasker extends BaseMasker {
  readonly kind = 'fixed-format';
  readonly #fallback: Uint8Array;

  constructor(fallback: Uint8Array) {
    super();
    this.#fallback = fallback;
  }

  maxOutput(length: number): number {
    return Math.max(length, this.#fallback.length);
  }

  write(src: Uint8Array, start: number, end: number, out: Uint8Array, pos: number): number {
    const from = pos;
    let i = start;
    while (i < end) {
      const b = src[i]!;
      if (b < 0x80) {
        out[pos++] = FIXED[b]!;
        i++;
        continue;
      }
      const need = sequenceLength(src, i, end);
      // Invalid UTF-8 has no shape to keep: start over with the marker.
      if (need === 0) return writeBytes(this.#fallback, out, from);
      out[pos++] = 0x78;
      i += need;
    }
    return pos;
  }
}

class HashMasker extends BaseMasker implements MacSink {
  readonly kind = 'hash';
  readonly #hmac: HmacSha256;
  readonly #prefix: Uint8Array;
  readonly #length: number;
  readonly #digest = new Int32Array(8);

  constructor(hmac: HmacSha256, prefix: Uint8Array, length: number) {
    super();
    this.#hmac = hmac;
    this.#prefix = prefix;
    this.#length = length;
  }

  maxOutput(): number {
    return this.#prefix.length + this.#length;
  }

  write(src: Uint8Array, start: number, end: number, out: Uint8Array, pos: number): number {
    const digest = this.#digest;
    this.#hmac.digest(src, start, end, digest);
    pos = writeBytes(this.#prefix, out, pos);
    this.writeMac(digest, out, pos);
    return pos + this.#length;
  }

  writeLater(
    batch: HmacBatch,
    src: Uint8Array,
    start: number,
    end: number,
    out: Uint8Array,
    pos: number,
  ): number {
    const at = writeBytes(this.#prefix, out, pos);
    const hmac = this.#hmac;
    if (batch.add(hmac, src, start, end, this, at)) return at + this.#length;
    if (batch.full) {
      batch.flush(out);
      if (batch.add(hmac, src, start, end, this, at)) return at + this.#length;
    }
    return this.write(src, start, end, out, pos);
  }

  /** Writes the pseudonym's characters: base32 of the MAC's leading bits. */
  writeMac(digest: Int32Array, out: Uint8Array, pos: number): void {
    // Five bits at a time, most significant first.
    let word = 0;
    let bits = 0;
    let acc = 0;
    for (let n = this.#length; n > 0; n--) {
      if (bits < 5) {
        const next = digest[word++]! >>> 0;
        // Up to 4 carried bits plus a 32-bit word would overflow 32 bits, so split the word.
        const chunk = (acc << (5 - bits)) | (next >>> (27 + bits));
        out[pos++] = BASE32[chunk & 31]!;
        acc = next & ((1 << (27 + bits)) - 1);
        bits = 27 + bits;
      } else {
        bits -= 5;
        out[pos++] = BASE32[(acc >>> bits) & 31]!;
        acc &= (1 << bits) - 1;
      }
    }
  }
}

class NullMasker extends BaseMasker {
  readonly kind = 'null';
  override readonly nulls = true;

  maxOutput(): number {
    return 0;
  }

  write(_src: Uint8Array, _start: number, _end: number, _out: Uint8Array, pos: number): number {
    return pos;
  }
}

const NULL_MASKER = new NullMasker();
