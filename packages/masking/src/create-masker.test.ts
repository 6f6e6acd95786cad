import { createHmac } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MAX_MASK_GROWTH, createMasker } from './create-masker.js';
import type { MaskStyle } from './mask-style.js';

const KEY = Buffer.alloc(32, 7);
const INVALID = Uint8Array.from([0x61, 0xff, 0x62, 0x63, 0x64]);

function masked(style: MaskStyle, value: string | Uint8Array): string | null {
  const bytes = typeof value === 'string' ? Buffer.from(value) : value;
  const out = createMasker(style, { hashKey: KEY }).mask(bytes);
  return out === null ? null : Buffer.from(out).toString();
}

describe('redact', () => {
  it.each([
    ['secret', '****'],
    ['', '****'],
    ['ünïcödé', '****'],
  ])('%j → %j', (value, expected) => {
    expect(masked({ kind: 'redact' }, value)).toBe(expected);
  });

  it('writes a configured marker and hides invalid UTF-8 too', () => {
    expect(masked({ kind: 'redact', marker: '[hidden]' }, 'x')).toBe('[hidden]');
    expect(masked({ kind: 'redact' }, INVALID)).toBe('****');
  });

  it.each(['', 'a"b', 'a\\b', 'tab\there', 'x'.repeat(65)])('refuses the marker %j', (marker) => {
    expect(() => createMasker({ kind: 'redact', marker })).toThrow(
      expect.objectContaining({ code: 'PCL_ERR_CONFIG_INVALID' }),
    );
  });
});

describe('partial', () => {
  it.each([
    ['4111-1111-1111-1234', '****-****-****-1234'],
    ['4111111111111234', '************1234'],
    ['jöhn.doe@example.com', '****.***@*******.com'],
    ['+1 (415) 555-0132', '+* (***) ***-0132'],
    ['Zoë Ünal', '*** Ünal'],
    ['1234', '**34'],
    ['abc', '**c'],
    ['x', '*'],
    ['', ''],
    ['日本語テキスト', '****キスト'],
  ])('%j → %j', (value, expected) => {
    expect(masked({ kind: 'partial' }, value)).toBe(expected);
  });

  it('counts code points, not bytes, when keeping', () => {
    expect(masked({ kind: 'partial', keepLast: 2 }, 'añoñé')).toBe('***ñé');
  });

  it('can mask separators too', () => {
    expect(masked({ kind: 'partial', keepSeparators: false }, '4111-1111-1111-1234')).toBe(
      '***************1234',
    );
  });

  it('falls back to the marker on invalid UTF-8', () => {
    expect(masked({ kind: 'partial' }, INVALID)).toBe('****');
  });

  it.each([-1, 1.5, 65])('refuses keepLast %d', (keepLast) => {
    expect(() => createMasker({ kind: 'partial', keepLast })).toThrow(
      expect.objectContaining({ code: 'PCL_ERR_CONFIG_INVALID' }),
    );
  });
});

describe('fixed-format', () => {
  it.each([
    ['Jane.Doe+42@example.com', 'Xxxx.Xxx+00@xxxxxxx.xxx'],
    ['2024-01-15', '0000-00-00'],
    ['Zoë Ünal', 'Xxx xxxx'],
    ['', ''],
    ['(415) 555-0132', '(000) 000-0000'],
  ])('%j → %j', (value, expected) => {
    expect(masked({ kind: 'fixed-format' }, value)).toBe(expected);
  });

  it('falls back to the marker on invalid UTF-8', () => {
    expect(masked({ kind: 'fixed-format' }, INVALID)).toBe('****');
  });
});

describe('hash', () => {
  it('is HMAC-SHA-256 in base32, prefixed and cut to length', () => {
    const digest = createHmac('sha256', KEY).update('alice@example.com').digest();
    let bits = '';
    for (const b of digest) bits += b.toString(2).padStart(8, '0');
    let base32 = '';
    for (let i = 0; i + 5 <= 256; i += 5) {
      base32 += 'abcdefghijklmnopqrstuvwxyz234567'[parseInt(bits.slice(i, i + 5), 2)];
    }
    for (const length of [1, 7, 8, 13, 16, 26, 51]) {
      expect(masked({ kind: 'hash', length }, 'alice@example.com')).toBe(
        'h_' + base32.slice(0, length),
      );
    }
    expect(masked({ kind: 'hash', prefix: '' }, 'alice@example.com')).toBe(base32.slice(0, 16));
    expect(masked({ kind: 'hash', prefix: 'user:' }, 'alice@example.com')).toBe(
      'user:' + base32.slice(0, 16),
    );
  });

  it('is stable per key and differs across keys', () => {
    const a = createMasker({ kind: 'hash' }, { hashKey: KEY });
    const b = createMasker({ kind: 'hash' }, { hashKey: Buffer.alloc(32, 8) });
    const v = Buffer.from('alice@example.com');
    expect(a.mask(v)).toEqual(a.mask(v));
    expect(a.mask(v)).not.toEqual(b.mask(v));
  });

  it('hashes empty and invalid UTF-8 values like any bytes', () => {
    expect(masked({ kind: 'hash' }, '')).toMatch(/^h_[a-z2-7]{16}$/);
    expect(masked({ kind: 'hash' }, INVALID)).toMatch(/^h_[a-z2-7]{16}$/);
  });

  it('needs a key', () => {
    expect(() => createMasker({ kind: 'hash' })).toThrow(
      expect.objectContaining({ code: 'PCL_ERR_CONFIG_INVALID' }),
    );
  });
});

describe('null', () => {
  it('turns any value into NULL', () => {
    expect(masked({ kind: 'null' }, 'anything')).toBeNull();
    expect(createMasker({ kind: 'null' }).nulls).toBe(true);
  });
});

describe('every style (property)', () => {
  const styles: MaskStyle[] = [
    { kind: 'redact' },
    { kind: 'partial' },
    { kind: 'partial', keepLast: 0 },
    { kind: 'hash' },
    { kind: 'fixed-format' },
  ];

  it('never throws, stays within maxOutput and writes valid UTF-8', () => {
    const strict = new TextDecoder('utf-8', { fatal: true });
    fc.assert(
      fc.property(
        fc.constantFrom(...styles),
        fc.oneof(
          fc.uint8Array({ maxLength: 64 }),
          fc.string({ unit: 'binary' }).map((s) => Buffer.from(s)),
        ),
        (style, value) => {
          const masker = createMasker(style, { hashKey: KEY });
          const max = masker.maxOutput(value.length);
          const out = new Uint8Array(max + 8).fill(0xee);
          const end = masker.write(value, 0, value.length, out, 4);
          expect(end - 4).toBeLessThanOrEqual(max);
          // Bytes past `end` may be scratch, but never past maxOutput.
          expect(out[4 + max]).toBe(0xee);
          expect(() => strict.decode(out.subarray(4, end))).not.toThrow();
        },
      ),
    );
  });

  it('never grows a value by more than MAX_MASK_GROWTH bytes, whatever the options', () => {
    const widest: MaskStyle[] = [
      ...styles,
      { kind: 'redact', marker: 'm'.repeat(64) },
      { kind: 'hash', prefix: 'p'.repeat(64), length: 51 },
      { kind: 'partial', keepLast: 64 },
      { kind: 'null' },
    ];
    fc.assert(
      fc.property(fc.constantFrom(...widest), fc.nat(300), (style, length) => {
        const masker = createMasker(style, { hashKey: KEY });
        expect(masker.maxOutput(length)).toBeLessThanOrEqual(length + MAX_MASK_GROWTH);
      }),
    );
  });

  it('partial keeps separators in the masked part, wherever the value sits in its buffer', () => {
    // Digit-heavy text, so the four-bytes-at-a-time path sees whole digit words, mixed words
    // and non-ASCII bytes at every alignment.
    const char = fc.constantFrom(...'0123456789012345-. @/()+xZ_é€😀'.match(/./gu)!);
    fc.assert(
      fc.property(
        fc.array(char, { maxLength: 40 }),
        fc.nat(8),
        fc.nat(7),
        fc.boolean(),
        (chars, keepLast, offset, keepSeparators) => {
          const text = chars.join('');
          const bytes = Buffer.from(text);
          const src = new Uint8Array(offset + bytes.length + 3).subarray(1);
          src.set(bytes, offset);
          const masker = createMasker({ kind: 'partial', keepLast, keepSeparators });
          const out = new Uint8Array(masker.maxOutput(bytes.length) + 5).subarray(3);
          const end = masker.write(src, offset, offset + bytes.length, out, 1);
          const kept = Math.min(keepLast, chars.length >> 1);
          const head = chars
            .slice(0, chars.length - kept)
            .map((c) => (keepSeparators && ' -.@/()+'.includes(c) ? c : '*'));
          const expected = head.join('') + chars.slice(chars.length - kept).join('');
          expect(Buffer.from(out.subarray(1, end)).toString()).toBe(expected);
        },
      ),
    );
  });

  it('partial keeps at most half and at most keepLast code points of the tail', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'grapheme', maxLength: 30 }), fc.nat(8), (text, keepLast) => {
        const out = masked({ kind: 'partial', keepLast, keepSeparators: false }, text)!;
        const chars = [...text];
        const kept = Math.min(keepLast, chars.length >> 1);
        expect([...out].length).toBe(chars.length);
        expect(out).toBe(
          '*'.repeat(chars.length - kept) + chars.slice(chars.length - kept).join(''),
        );
      }),
    );
  });
});
