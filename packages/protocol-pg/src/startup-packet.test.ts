import { isPortcullisError } from '@portcullis/core';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { cancelRequest, sslRequest, startupMessage } from './message-builders.js';
import { StartupCode } from './message-codes.js';
import { decodeStartupPacket, MAX_STARTUP_PACKET_BYTES } from './startup-packet.js';

function packet(code: number, ...rest: Buffer[]): Buffer {
  const body = Buffer.concat(rest);
  const out = Buffer.alloc(8 + body.length);
  out.writeInt32BE(out.length, 0);
  out.writeInt32BE(code, 4);
  body.copy(out, 8);
  return out;
}

const int32 = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeInt32BE(n, 0);
  return b;
};

function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    return isPortcullisError(err) ? err.code : `not a PortcullisError: ${String(err)}`;
  }
  return 'no error';
}

describe('decodeStartupPacket', () => {
  it('decodes SSLRequest and GSSENCRequest', () => {
    expect(decodeStartupPacket(sslRequest)).toEqual({ packet: { kind: 'ssl-request' }, used: 8 });
    expect(decodeStartupPacket(packet(80877104))).toEqual({
      packet: { kind: 'gssenc-request' },
      used: 8,
    });
  });

  it('decodes CancelRequest with its process id and secret key', () => {
    expect(decodeStartupPacket(cancelRequest(4242, -559038737))).toEqual({
      packet: { kind: 'cancel', processId: 4242, secretKey: -559038737 },
      used: 16,
    });
    expect(codeOf(() => decodeStartupPacket(packet(StartupCode.CancelRequest, int32(1))))).toBe(
      'PCL_ERR_PROTOCOL_MALFORMED',
    );
  });

  it('decodes a 3.0 startup message, keeping parameters in order', () => {
    const buf = startupMessage({ user: 'alice', database: 'app', application_name: 'psql' });
    const decoded = decodeStartupPacket(buf);
    expect(decoded?.used).toBe(buf.length);
    expect(decoded?.packet).toMatchObject({ kind: 'startup', major: 3, minor: 0 });
    const params = decoded?.packet.kind === 'startup' ? decoded.packet.params : null;
    expect([...(params ?? [])]).toEqual([
      ['user', 'alice'],
      ['database', 'app'],
      ['application_name', 'psql'],
    ]);
  });

  it('keeps the minor version of 3.x (3.2 and future minors)', () => {
    for (const minor of [2, 0xffff]) {
      const buf = packet(0x30000 | minor, Buffer.from('user\0bob\0\0'));
      expect(decodeStartupPacket(buf)?.packet).toMatchObject({ kind: 'startup', major: 3, minor });
    }
  });

  it('accepts an empty parameter value and UTF-8 text', () => {
    const buf = packet(StartupCode.Protocol3, Buffer.from('user\0zoë\0options\0\0\0'));
    const decoded = decodeStartupPacket(buf);
    const params = decoded?.packet.kind === 'startup' ? decoded.packet.params : null;
    expect(params?.get('user')).toBe('zoë');
    expect(params?.get('options')).toBe('');
  });

  it('consumes exactly one packet and leaves what follows', () => {
    const buf = Buffer.concat([sslRequest, startupMessage({ user: 'a' })]);
    expect(decodeStartupPacket(buf)?.used).toBe(8);
    expect(decodeStartupPacket(buf.subarray(8))?.packet.kind).toBe('startup');
  });

  it('returns null for a partial packet', () => {
    const buf = startupMessage({ user: 'alice', database: 'app' });
    for (let n = 0; n < buf.length; n++) expect(decodeStartupPacket(buf.subarray(0, n))).toBeNull();
    expect(decodeStartupPacket(Buffer.alloc(0))).toBeNull();
  });

  it('rejects protocol 2.0 and other majors as unsupported', () => {
    for (const code of [0x20000, 0x10000, 0x40000, 0]) {
      expect(codeOf(() => decodeStartupPacket(packet(code, Buffer.from('user\0a\0\0'))))).toBe(
        'PCL_ERR_PROTOCOL_UNSUPPORTED',
      );
    }
  });

  it.each([0, 4, 7, -1, MAX_STARTUP_PACKET_BYTES + 1, 0x7fffffff])(
    'rejects announced length %i as malformed, even before the rest arrives',
    (length) => {
      expect(codeOf(() => decodeStartupPacket(int32(length)))).toBe('PCL_ERR_PROTOCOL_MALFORMED');
    },
  );

  it('accepts a packet of exactly the maximum size', () => {
    const value = 'x'.repeat(MAX_STARTUP_PACKET_BYTES - 8 - 'user\0'.length - 2);
    const buf = packet(StartupCode.Protocol3, Buffer.from(`user\0${value}\0\0`));
    expect(buf.length).toBe(MAX_STARTUP_PACKET_BYTES);
    expect(decodeStartupPacket(buf)?.used).toBe(MAX_STARTUP_PACKET_BYTES);
  });

  it.each([
    ['no parameters and no terminator', ''],
    ['a name without a value', 'user\0'],
    ['a name running to the end', 'user'],
    ['a value without its NUL', 'user\0alice'],
    ['a missing final terminator', 'user\0alice\0'],
    ['bytes after the terminator', 'user\0alice\0\0junk'],
    ['a second list after the terminator', 'user\0alice\0\0database\0x\0\0'],
  ])('rejects a startup message with %s', (_name, params) => {
    // Trailing bytes beyond the announced length must not complete the packet either.
    const buf = Buffer.concat([
      packet(StartupCode.Protocol3, Buffer.from(params)),
      Buffer.from('\0\0'),
    ]);
    expect(codeOf(() => decodeStartupPacket(buf))).toBe('PCL_ERR_PROTOCOL_MALFORMED');
  });

  it('never throws anything but a PortcullisError on garbage', () => {
    const garbage = fc.oneof(
      fc.uint8Array({ maxLength: 64 }).map((b) => Buffer.from(b)),
      // Plausible lengths and codes with random bodies reach the deeper checks.
      fc
        .tuple(
          fc.constantFrom(StartupCode.Protocol3, 0x30002, StartupCode.CancelRequest, 0x20000),
          fc.uint8Array({ maxLength: 40 }),
          fc.integer({ min: -2, max: 2 }),
        )
        .map(([code, body, skew]) => {
          const buf = packet(code, Buffer.from(body));
          buf.writeInt32BE(buf.length + skew, 0);
          return buf;
        }),
    );
    fc.assert(
      fc.property(garbage, (buf) => {
        const code = codeOf(() => decodeStartupPacket(buf));
        expect([
          'no error',
          'PCL_ERR_PROTOCOL_MALFORMED',
          'PCL_ERR_PROTOCOL_UNSUPPORTED',
        ]).toContain(code);
        const decoded = code === 'no error' ? decodeStartupPacket(buf) : null;
        if (decoded !== null) {
          expect(decoded.used).toBe(buf.readInt32BE(0));
          expect(decoded.used).toBeLessThanOrEqual(buf.length);
        }
      }),
      { numRuns: 2000 },
    );
  });

  it('round-trips any parameters through startupMessage', () => {
    const name = fc.string({ minLength: 1, maxLength: 12 }).filter((s) => !s.includes('\0'));
    const value = fc.string({ maxLength: 30 }).filter((s) => !s.includes('\0'));
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.tuple(name, value), { selector: ([n]) => n, maxLength: 8 }),
        (entries) => {
          const decoded = decodeStartupPacket(startupMessage(new Map(entries)));
          expect(decoded?.packet.kind === 'startup' && [...decoded.packet.params]).toEqual(entries);
        },
      ),
    );
  });
});
