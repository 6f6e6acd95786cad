import { describe, expect, it } from 'vitest';
import { decodeBindResultFormats } from './bind-result-formats.js';

/** A Bind body: portal, statement, parameter formats, values, result formats. */
function bindBody(values: (Buffer | null)[], paramFormats: number[], results: number[]): Buffer {
  const parts: Buffer[] = [Buffer.from('p\0s\0')];
  const u16 = (n: number): Buffer => {
    const b = Buffer.alloc(2);
    b.writeUInt16BE(n);
    return b;
  };
  parts.push(u16(paramFormats.length), ...paramFormats.map(u16), u16(values.length));
  for (const value of values) {
    const len = Buffer.alloc(4);
    len.writeInt32BE(value === null ? -1 : value.length);
    parts.push(len);
    if (value !== null) parts.push(value);
  }
  parts.push(u16(results.length), ...results.map(u16));
  return Buffer.concat(parts);
}

describe('decodeBindResultFormats', () => {
  it('reads the result formats after parameters of every shape', () => {
    const body = bindBody([Buffer.from('42'), null, Buffer.alloc(0)], [0, 1, 0], [1, 0, 1]);
    expect(decodeBindResultFormats(body, 0, body.length)).toEqual([1, 0, 1]);
  });

  it('returns no codes when every column is text by default', () => {
    const body = bindBody([], [], []);
    expect(decodeBindResultFormats(body, 0, body.length)).toEqual([]);
  });

  it.each([
    ['a truncated value', (b: Buffer) => b.subarray(0, b.length - 8)],
    ['trailing bytes', (b: Buffer) => Buffer.concat([b, Buffer.from([0])])],
    ['no statement name', () => Buffer.from('p')],
  ])('rejects %s', (_, mangle) => {
    const body = mangle(bindBody([Buffer.from('hello')], [], [0]));
    expect(() => decodeBindResultFormats(body, 0, body.length)).toThrow(/malformed Bind/);
  });

  it('rejects a format code other than text or binary', () => {
    const body = bindBody([], [], [2]);
    expect(() => decodeBindResultFormats(body, 0, body.length)).toThrow(/malformed Bind/);
  });
});
