import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ContentDetector } from './content-detector.js';
import { DETECTOR_KINDS, type DetectorKind } from './detector-kind.js';
import { SpanList } from './span-list.js';

const KEY = Buffer.alloc(32, 3);
const detector = new ContentDetector();

function findings(text: string, d = detector): [DetectorKind, string][] {
  const bytes = Buffer.from(text);
  return d.find(bytes).map((s) => [s.kind, bytes.subarray(s.start, s.end).toString()]);
}

function maskText(text: string, d = detector): string | null | undefined {
  const out = d.mask(Buffer.from(text));
  if (out === null) return undefined;
  return out.value === null ? null : Buffer.from(out.value).toString();
}

describe('each detector: exact spans', () => {
  it.each<[string, DetectorKind, string]>([
    ['write to a.b-c+d@mail.example.co.uk.', 'email', 'a.b-c+d@mail.example.co.uk'],
    ['<jürgen@bücher.example>', 'email', 'jürgen@bücher.example'],
    ['card 4111-1111-1111-1111, thanks', 'card', '4111-1111-1111-1111'],
    ['Amex 3782 822463 10005 exp', 'card', '3782 822463 10005'],
    ['4111111111111111 12/27', 'card', '4111111111111111'],
    ['IBAN DE89 3704 0044 0532 0130 00.', 'iban', 'DE89 3704 0044 0532 0130 00'],
    ['SSN 078-05-1120;', 'ssn', '078-05-1120'],
    ['tel:+14155550132', 'phone', '+14155550132'],
    ['(415) 555-0132 ext 2', 'phone', '(415) 555-0132'],
    ['Fax +49 (0)30 1234567', 'phone', '+49 (0)30 1234567'],
    ['from 192.168.0.1:5432', 'ipv4', '192.168.0.1'],
    ['[2001:db8::1]:5432', 'ipv6', '2001:db8::1'],
    ['::ffff:192.0.2.128 mapped', 'ipv6', '::ffff:192.0.2.128'],
    ['id AKIAIOSFODNN7EXAMPLE.', 'aws-key', 'AKIAIOSFODNN7EXAMPLE'],
    [
      'GITHUB_TOKEN=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',
      'api-token',
      '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',
    ],
    ['key Zq7Kp2Lx9Rv4Tn8Wm3Yb6Hc1Jd5Fg0S end', 'api-token', 'Zq7Kp2Lx9Rv4Tn8Wm3Yb6Hc1Jd5Fg0S'],
  ])('%j → %s %j', (text, kind, span) => {
    expect(findings(text)).toEqual([[kind, span]]);
  });

  it('takes a JWT whose header names an alg, through its signature', () => {
    const jwt =
      'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U';
    expect(findings(`Bearer ${jwt}`)).toEqual([['jwt', jwt]]);
    // Same shape, header without alg.
    expect(findings('eyJmb28iOiJiYXIifQ.eyJ4IjoxfQ.c2lnbmF0dXJl')).toEqual([]);
  });

  it('takes a PEM private key through its END line, or to the end when cut off', () => {
    const key = '-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY-----';
    expect(findings(`${key}\ntrailer`)).toEqual([['private-key', key]]);
    expect(findings('x -----BEGIN PRIVATE KEY-----\nMIIE')).toEqual([
      ['private-key', '-----BEGIN PRIVATE KEY-----\nMIIE'],
    ]);
    expect(
      findings(
        '-----BEGIN CERTIFICATE-----\nMIIDdzCCAl+gAwIBAgIEAgAAuTANBgkqhkiG9w0BAQUF\n-----END CERTIFICATE-----',
      ),
    ).toEqual([]);
  });

  it.each([
    ['invalid Luhn', '4111 1111 1111 1112'],
    ['unknown scheme', '9111111111111111'],
    ['EAN-13', '4006381333931'],
    ['IMEI', '356938035643809'],
    ['bad IBAN checksum', 'DE00370400440532013000'],
    ['SSN area 666', '666-12-3456'],
    ['SSN area 9xx', '912-12-3456'],
    ['SSN group 00', '123-00-4567'],
    ['SSN serial 0000', '123-45-0000'],
    ['bare 9 digits', '123456789'],
    ['date', '2024-01-15'],
    ['ISO time', '2024-01-15T10:30:00Z'],
    ['octet over 255', '256.1.1.1'],
    ['OID', '1.3.6.1.4.1'],
    ['version', 'v1.2.3.4'],
    ['MAC', '00:1A:2B:3C:4D:5E'],
    ['clock', '10:30:45'],
    ['UUID', '550e8400-e29b-41d4-a716-446655440000'],
    ['sha1', '9fceb02d0ae598e95dc970b74767f19372d61af8'],
    ['identifier', 'getUserAccountSettingsById2'],
    [
      'data URL',
      'data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==',
    ],
    ['asset name', 'icon@2x.png'],
    ['package', 'lodash@4.17.21'],
    ['AWS prefix glued', 'XAKIAIOSFODNN7EXAMPLE'],
    ['publishable key', 'pk_live_51H8aB2cD3eF4gH5iJ6kL7mN8'],
  ])('leaves a %s alone: %j', (_what, text) => {
    expect(findings(text)).toEqual([]);
  });
});

describe('ContentDetector masking', () => {
  it('masks only the spans, each with its style', () => {
    const d = new ContentDetector({
      styles: { email: { kind: 'hash', length: 8 }, phone: { kind: 'fixed-format' } },
      hashKey: KEY,
    });
    expect(maskText('mail bob@example.com or call (415) 555-0132 now', d)).toMatch(
      /^mail h_[a-z2-7]{8} or call \(000\) 000-0000 now$/,
    );
    expect(maskText('card 4111 1111 1111 1111 ok')).toBe('card **** **** **** 1111 ok');
    expect(maskText('nothing to see here')).toBeUndefined();
  });

  it('turns the whole value into NULL when a finding has the null style', () => {
    const d = new ContentDetector({ styles: { ssn: { kind: 'null' } } });
    expect(maskText('ssn 123-45-6789', d)).toBeNull();
    expect(maskText('mail a@example.com', d)).toBe('mail ****');
  });

  it('writes the marker instead of NULL where a value cannot be NULL', () => {
    const d = new ContentDetector({ styles: { ssn: { kind: 'null' } } });
    const v = Buffer.from('ssn 123-45-6789!');
    expect(d.scan(v, 0, v.length)).toBe(1);
    const out = new Uint8Array(d.maxOutput(v.length));
    const end = d.writeMasked(v, 0, v.length, out, 0, false, false);
    expect(Buffer.from(out.subarray(0, end)).toString()).toBe('ssn ****!');
  });

  it('runs only the detectors asked for', () => {
    const d = new ContentDetector({ kinds: ['email'] });
    expect(findings('a@example.com 4111 1111 1111 1111', d)).toEqual([['email', 'a@example.com']]);
  });

  it('merges overlapping findings into their union, named after the longest', () => {
    const spans = new SpanList();
    spans.push(7, 10, 20);
    spans.push(4, 0, 12);
    spans.push(1, 15, 40);
    spans.push(2, 50, 55);
    spans.normalize();
    expect(Array.from(spans.data.subarray(0, spans.length * 3))).toEqual([1, 0, 40, 2, 50, 55]);
  });

  it('finds several findings in one value, in order', () => {
    expect(findings('x a@example.com 10.0.0.1 +44 20 7946 0958 b@example.org')).toEqual([
      ['email', 'a@example.com'],
      ['ipv4', '10.0.0.1'],
      ['phone', '+44 20 7946 0958'],
      ['email', 'b@example.org'],
    ]);
  });

  it('never throws, and reports sorted disjoint spans inside the value (property)', () => {
    const pieces = fc.constantFrom(
      'a@example.com',
      '4111 1111 1111 1111',
      '123-45-6789',
      '+1 415 555 0132',
      '10.0.0.1',
      'fe80::1',
      'AKIAIOSFODNN7EXAMPLE',
      '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',
      '-----BEGIN PRIVATE KEY-----',
      'eyJhbGciOiJIUzI1NiJ9.eyJ4IjoxfQ.sig',
      ' ',
      '-',
      '.',
      '@',
      ':',
    );
    const value = fc.oneof(
      fc.uint8Array({ maxLength: 80 }),
      fc
        .array(fc.oneof(pieces, fc.string({ maxLength: 6 })), { maxLength: 8 })
        .map((p) => Buffer.from(p.join(''))),
    );
    fc.assert(
      fc.property(value, fc.nat(5), (bytes, pad) => {
        const buf = new Uint8Array(bytes.length + 2 * pad).fill(0x41);
        buf.set(bytes, pad);
        const spans = detector.find(buf, pad, pad + bytes.length);
        let last = pad;
        for (const s of spans) {
          expect(s.start).toBeGreaterThanOrEqual(last);
          expect(s.end).toBeGreaterThan(s.start);
          last = s.end;
        }
        expect(last).toBeLessThanOrEqual(pad + bytes.length);
        const masked = detector.mask(buf, pad, pad + bytes.length);
        expect(masked === null).toBe(spans.length === 0);
      }),
    );
  });

  it('reads nothing outside the value: its neighbours in a buffer change nothing (property)', () => {
    const piece = fc.constantFrom(
      'a@example.com',
      '10.0.0.1',
      'fe80::1',
      '4111 1111 1111 1111',
      '123-45-6789',
      '(415) 555-0132',
      'eyJhbGciOiJIUzI1NiJ9.eyJ4IjoxfQ.sig',
      'AKIAIOSFODNN7EXAMPLE',
      'Zq7Kp2Lx9Rv4Tn8Wm3Yb6Hc1Jd5Fg0S',
      'DE89370400440532013000',
    );
    const around = fc.stringMatching(/^[A-Za-z0-9.:@ ()+\-_]{0,6}$/);
    fc.assert(
      fc.property(
        around,
        fc.array(fc.oneof(piece, around), { maxLength: 3 }),
        around,
        (before, parts, after) => {
          const value = Buffer.from(parts.join(''));
          const alone = detector.find(value);
          const left = Buffer.from(before);
          const buf = Buffer.concat([left, value, Buffer.from(after)]);
          const inside = detector.find(buf, left.length, left.length + value.length);
          expect(inside).toEqual(
            alone.map((s) => ({ ...s, start: s.start + left.length, end: s.end + left.length })),
          );
        },
      ),
      { numRuns: 500 },
    );
  });

  it('keeps JSON text valid when asked to', () => {
    const d = new ContentDetector({ styles: { 'private-key': { kind: 'fixed-format' } } });
    const json = Buffer.from(
      JSON.stringify({ key: '-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----', n: 1 }),
    );
    d.scan(json, 0, json.length);
    const out = new Uint8Array(d.maxOutput(json.length));
    const end = d.writeMasked(json, 0, json.length, out, 0, true, true);
    expect(JSON.parse(Buffer.from(out.subarray(0, end)).toString())).toEqual({ key: '****', n: 1 });
  });
});

describe('ContentDetector scan hints', () => {
  const pieces = fc.constantFrom(
    'a@example.com',
    'anna.smith12@example.co.uk',
    '4111 1111 1111 1111',
    '4111-1111-1111-1111',
    '4111111111111111',
    '123-45-6789',
    '123 45 6789',
    '(415) 555-0132',
    '+1 415-555-0132',
    '415.555.0132',
    '020 7946 0958',
    '10.0.0.1',
    'DE89370400440532013000',
    ' ',
    '-',
    '.',
    '@',
    '+',
  );
  const value = fc.oneof(
    pieces.map((p) => Buffer.from(p)),
    fc
      .array(fc.oneof(pieces, fc.string({ maxLength: 4 })), { minLength: 1, maxLength: 4 })
      .map((p) => Buffer.from(p.join(''))),
    fc.uint8Array({ maxLength: 24 }),
  );
  const spansOf = (d: ContentDetector, n: number, bytes: Uint8Array): string => {
    const out = new Uint8Array(d.maxOutput(bytes.length));
    const end = d.writeMasked(bytes, 0, bytes.length, out, 0, true, false);
    return `${n} ${end < 0 ? 'NULL' : Buffer.from(out.subarray(0, end)).toString('hex')}`;
  };

  it('finds the same with any hint as without (property)', () => {
    const d = new ContentDetector({ styles: { ssn: { kind: 'fixed-format' } } });
    fc.assert(
      fc.property(value, fc.integer({ min: -1, max: 10 }), (bytes, hint) => {
        const plain = spansOf(d, d.scan(bytes, 0, bytes.length), bytes);
        const covering = d.covering;
        const hinted = spansOf(d, d.scan(bytes, 0, bytes.length, hint), bytes);
        expect(hinted).toBe(plain);
        expect(d.covering).toBe(covering);
      }),
      { numRuns: 2000 },
    );
  });

  it('claims a phone number that holds an SSN with or without the phone hint', () => {
    const d = new ContentDetector({ styles: { ssn: { kind: 'fixed-format' } } });
    const phone = Buffer.from('+123-45-6789');
    const plain = spansOf(d, d.scan(phone, 0, phone.length), phone);
    expect(d.covering).toBe(DETECTOR_KINDS.indexOf('phone'));
    expect(spansOf(d, d.scan(phone, 0, phone.length, DETECTOR_KINDS.indexOf('phone')), phone)).toBe(
      plain,
    );
  });

  it('names the detector that claimed a whole value, and ignores hints for disabled ones', () => {
    const d = new ContentDetector({ kinds: ['email', 'card'] });
    const email = Buffer.from('a@example.com');
    expect(d.scan(email, 0, email.length)).toBe(1);
    const kind = d.covering;
    expect(kind).toBeGreaterThanOrEqual(0);
    expect(d.scan(email, 0, email.length, kind)).toBe(1);
    expect(d.covering).toBe(kind);
    const ssn = Buffer.from('123-45-6789');
    expect(d.scan(ssn, 0, ssn.length, 6)).toBe(0);
    expect(d.covering).toBe(-1);
    expect(d.scan(email, 1, email.length, kind)).toBe(0);
    expect(d.covering).toBe(-1);
  });
});
