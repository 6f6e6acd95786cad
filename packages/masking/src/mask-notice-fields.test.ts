import { describe, expect, it } from 'vitest';
import { ContentDetector } from './content-detector.js';
import { maskNoticeFields } from './mask-notice-fields.js';

const E = 0x45;
const detector = new ContentDetector({ styles: { ssn: { kind: 'null' } } });

function body(fields: [string, string][]): Buffer {
  return Buffer.concat([
    ...fields.map(([code, text]) => Buffer.from(`${code}${text}\0`)),
    Buffer.from([0]),
  ]);
}

function fieldsOf(frame: Buffer): [string, string][] {
  expect(frame.readInt32BE(1)).toBe(frame.length - 1);
  const out: [string, string][] = [];
  let p = 5;
  while (frame[p] !== 0) {
    const z = frame.indexOf(0, p + 1);
    out.push([String.fromCharCode(frame[p]!), frame.subarray(p + 1, z).toString()]);
    p = z + 1;
  }
  expect(p).toBe(frame.length - 1);
  return out;
}

describe('maskNoticeFields', () => {
  it('masks values in message, detail, hint, where and internal query; leaves the rest', () => {
    const b = body([
      ['S', 'ERROR'],
      ['C', '23505'],
      ['M', 'duplicate key value violates unique constraint "users_email_key"'],
      ['D', 'Key (email)=(alice@example.com) already exists.'],
      ['W', 'PL/pgSQL function f() line 3 at RAISE: ssn 123-45-6789'],
      ['n', 'users_email_key'],
    ]);
    const result = maskNoticeFields(E, b, 0, b.length, detector)!;
    expect(result.frame[0]).toBe(E);
    expect(fieldsOf(result.frame)).toEqual([
      ['S', 'ERROR'],
      ['C', '23505'],
      ['M', 'duplicate key value violates unique constraint "users_email_key"'],
      ['D', 'Key (email)=(****) already exists.'],
      // A null-style finding cannot make a field NULL: it gets the marker.
      ['W', 'PL/pgSQL function f() line 3 at RAISE: ssn ****'],
      ['n', 'users_email_key'],
    ]);
    expect(result.maskedValues).toBe(2);
    expect(result.maskedFields).toEqual(['D', 'W']);
  });

  it('masks the message of a RAISE or an input syntax error', () => {
    const b = body([['M', 'invalid input syntax for type integer: "4111 1111 1111 1111"']]);
    const result = maskNoticeFields(0x4e, b, 0, b.length, detector)!;
    expect(fieldsOf(result.frame)).toEqual([
      ['M', 'invalid input syntax for type integer: "**** **** **** 1111"'],
    ]);
    expect(result.frame[0]).toBe(0x4e);
  });

  it('returns null when nothing is found, and works on a view', () => {
    const b = body([
      ['M', 'relation "users" does not exist'],
      ['D', 'Failing row contains (1, bob).'],
    ]);
    expect(maskNoticeFields(E, b, 0, b.length, detector)).toBeNull();
    const padded = Buffer.concat([
      Buffer.from('xx'),
      body([['D', 'ip 10.0.0.1']]),
      Buffer.from('yy'),
    ]);
    const result = maskNoticeFields(E, padded, 2, padded.length - 2, detector)!;
    expect(fieldsOf(result.frame)).toEqual([['D', 'ip ****']]);
  });

  it('refuses a body without terminators', () => {
    const malformed = expect.objectContaining({ code: 'PCL_ERR_PROTOCOL_MALFORMED' });
    const b = Buffer.from('Dalice@example.com');
    expect(() => maskNoticeFields(E, b, 0, b.length, detector)).toThrow(malformed);
    const c = Buffer.from('Dx\0');
    expect(() => maskNoticeFields(E, c, 0, c.length, detector)).toThrow(malformed);
  });
});
