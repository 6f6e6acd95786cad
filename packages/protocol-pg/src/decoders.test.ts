import { isPortcullisError } from '@portcullis/core';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  decodeAuthentication,
  decodeBackendKeyData,
  decodeBind,
  decodeCommandComplete,
  decodeDataRow,
  decodeErrorFields,
  decodeExecute,
  decodeFunctionCall,
  decodeParameterStatus,
  decodeParse,
  decodePassword,
  decodeQuery,
  decodeReadyForQuery,
  decodeRowDescription,
  decodeTarget,
  rowsFromCommandTag,
} from './decoders.js';
import { FrameScanner } from './frame-scanner.js';
import {
  authenticationCleartextPassword,
  authenticationOk,
  backendKeyData,
  errorResponse,
  noticeResponse,
  parameterStatus,
  passwordMessage,
  query,
  readyForQuery,
} from './message-builders.js';

/** pg-protocol (node-postgres) serialises frontend messages; an oracle when installed. */
const pgProtocol = await import('pg-protocol').catch(() => null);

// ---------------------------------------------------------------------------------------------
// Helpers: bodies built by hand, placed inside a larger buffer so a decoder that ignores `end`
// (or `start`) reads the wrong bytes.

const cstr = (s: string) => Buffer.from(`${s}\0`);
const i16 = (n: number) => {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(n & 0xffff, 0);
  return b;
};
const i32 = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeInt32BE(n | 0, 0);
  return b;
};

interface View {
  readonly buf: Buffer;
  readonly start: number;
  readonly end: number;
}

/** `body` at offset 7 of a buffer with plausible bytes (and NULs) on both sides. */
function inside(...parts: Buffer[]): View {
  const body = Buffer.concat(parts);
  const before = Buffer.from('x\0y\0\0\0\x01');
  const after = Buffer.from('\0tail\0\0\0\x05\0\0\0\0more\0');
  return {
    buf: Buffer.concat([before, body, after]),
    start: before.length,
    end: before.length + body.length,
  };
}

type Decoder<T> = (buf: Buffer, start: number, end: number) => T;
const decode = <T>(fn: Decoder<T>, v: View): T => fn(v.buf, v.start, v.end);

/** The first frame of a built message, as a FrameScanner hands it out. */
function scanned(message: Buffer): { type: number } & View {
  let result: ({ type: number } & View) | null = null;
  new FrameScanner(
    {
      onFrame(type, buf, start, end) {
        result ??= { type, buf, start, end };
      },
    },
    { maxFrameBytes: 1 << 20 },
  ).push(message);
  if (result === null) throw new Error('no frame');
  return result;
}

function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    return isPortcullisError(err) ? err.code : `not a PortcullisError: ${String(err)}`;
  }
  return 'no error';
}

/**
 * Every body cut short within the part the decoder reads (`needed` bytes) is MALFORMED, with
 * the rest of the body still in the buffer after `end`.
 */
function expectTruncationsMalformed<T>(fn: Decoder<T>, v: View, needed = v.end - v.start) {
  for (let n = 0; n < needed; n++) {
    expect(
      codeOf(() => fn(v.buf, v.start, v.start + n)),
      `cut at ${n}`,
    ).toBe('PCL_ERR_PROTOCOL_MALFORMED');
  }
  expect(codeOf(() => fn(v.buf, v.start, v.end))).toBe('no error');
}

const noNul = (s: string) => !s.includes('\0');
const text = fc.string({ unit: 'grapheme', maxLength: 40 }).filter(noNul);

// ---------------------------------------------------------------------------------------------

describe('frontend message decoders', () => {
  it('Query', () => {
    const v = inside(cstr('SELECT 1; SELECT ünï'));
    expect(decode(decodeQuery, v)).toBe('SELECT 1; SELECT ünï');
    expectTruncationsMalformed(decodeQuery, v);
    expect(decode(decodeQuery, inside(cstr('')))).toBe('');
  });

  it('Parse: name, query text and the parameter type count', () => {
    const v = inside(cstr('stmt1'), cstr('SELECT $1, $2'), i16(2), i32(23), i32(25));
    expect(decode(decodeParse, v)).toEqual({
      name: 'stmt1',
      query: 'SELECT $1, $2',
      paramTypes: 2,
    });
    expectTruncationsMalformed(decodeParse, v, 6 + 14 + 2);
    expect(decode(decodeParse, inside(cstr(''), cstr('SELECT 1'), i16(0)))).toEqual({
      name: '',
      query: 'SELECT 1',
      paramTypes: 0,
    });
  });

  it('Bind: portal, statement and parameter count, skipping the format codes', () => {
    const v = inside(
      cstr('portal'),
      cstr('stmt'),
      i16(3), // three parameter format codes
      i16(0),
      i16(1),
      i16(1),
      i16(3), // three parameters
      i32(1),
      Buffer.from('7'),
      i32(-1),
      i32(4),
      i32(42),
      i16(1), // result formats
      i16(1),
    );
    expect(decode(decodeBind, v)).toEqual({ portal: 'portal', statement: 'stmt', params: 3 });
    expectTruncationsMalformed(decodeBind, v, 7 + 5 + 2 + 6 + 2);
    expect(decode(decodeBind, inside(cstr(''), cstr(''), i16(0), i16(0), i16(0)))).toEqual({
      portal: '',
      statement: '',
      params: 0,
    });
    // One format code for all parameters.
    expect(decode(decodeBind, inside(cstr(''), cstr('s'), i16(1), i16(1), i16(2)))).toMatchObject({
      params: 2,
    });
  });

  it('Bind: counts above 32 767 are unsigned (PostgreSQL accepts up to 65 535 parameters)', () => {
    const formats = Buffer.alloc(2 * 40_000);
    const v = inside(cstr(''), cstr('bulk'), i16(40_000), formats, i16(40_000));
    expect(decode(decodeBind, v)).toEqual({ portal: '', statement: 'bulk', params: 40_000 });
    expect(decode(decodeBind, inside(cstr(''), cstr(''), i16(0), i16(65_535)))).toMatchObject({
      params: 65_535,
    });
    expect(decode(decodeParse, inside(cstr(''), cstr('q'), i16(40_000)))).toMatchObject({
      paramTypes: 40_000,
    });
  });

  it('Execute: portal and row limit', () => {
    const v = inside(cstr('p1'), i32(100));
    expect(decode(decodeExecute, v)).toEqual({ portal: 'p1', maxRows: 100 });
    expectTruncationsMalformed(decodeExecute, v);
    expect(decode(decodeExecute, inside(cstr(''), i32(0)))).toEqual({ portal: '', maxRows: 0 });
  });

  it('Close and Describe: statement or portal, and its name', () => {
    expect(decode(decodeTarget, inside(Buffer.from('S'), cstr('stmt')))).toEqual({
      target: 'statement',
      name: 'stmt',
    });
    expect(decode(decodeTarget, inside(Buffer.from('P'), cstr('')))).toEqual({
      target: 'portal',
      name: '',
    });
    expectTruncationsMalformed(decodeTarget, inside(Buffer.from('P'), cstr('portal')));
    for (const kind of ['s', 'p', 'X', '\0']) {
      expect(codeOf(() => decode(decodeTarget, inside(Buffer.from(kind), cstr('n'))))).toBe(
        'PCL_ERR_PROTOCOL_MALFORMED',
      );
    }
  });

  it('FunctionCall: function OID (unsigned) and argument count', () => {
    const v = inside(i32(0xfffffffe), i16(2), i16(0), i16(1), i16(2), i32(1), Buffer.from('5'));
    expect(decode(decodeFunctionCall, v)).toEqual({ functionOid: 0xfffffffe, args: 2 });
    expectTruncationsMalformed(decodeFunctionCall, v, 4 + 2 + 4 + 2);
    expect(decode(decodeFunctionCall, inside(i32(1598), i16(0), i16(0), i16(0)))).toEqual({
      functionOid: 1598,
      args: 0,
    });
  });

  it('PasswordMessage', () => {
    const v = inside(cstr('token-abc'));
    expect(decode(decodePassword, v)).toBe('token-abc');
    expectTruncationsMalformed(decodePassword, v);
  });
});

describe('backend message decoders', () => {
  it('CommandComplete and rowsFromCommandTag', () => {
    const v = inside(cstr('INSERT 0 7'));
    expect(decode(decodeCommandComplete, v)).toBe('INSERT 0 7');
    expectTruncationsMalformed(decodeCommandComplete, v);
  });

  it.each([
    ['SELECT 5', 5],
    ['INSERT 0 7', 7],
    ['UPDATE 3', 3],
    ['DELETE 0', 0],
    ['MERGE 12', 12],
    ['FETCH 100', 100],
    ['MOVE 2', 2],
    ['COPY 10', 10],
    ['SELECT 9007199254740991', 9007199254740991],
    ['BEGIN', 0],
    ['CREATE TABLE', 0],
    ['DROP INDEX', 0],
    ['SET', 0],
    ['', 0],
  ])('rowsFromCommandTag(%j) is %i', (tag, rows) => {
    expect(rowsFromCommandTag(tag)).toBe(rows);
  });

  it('ErrorResponse: the fields the gateway uses, ignoring others', () => {
    const v = inside(
      Buffer.from('S'),
      cstr('ERROR'),
      Buffer.from('V'),
      cstr('ERROR'),
      Buffer.from('C'),
      cstr('42P01'),
      Buffer.from('M'),
      cstr('relation "nope" does not exist'),
      Buffer.from('P'),
      cstr('15'),
      Buffer.from('D'),
      cstr('some detail'),
      Buffer.from('H'),
      cstr('a hint'),
      Buffer.from('F'),
      cstr('parse_relation.c'),
      Buffer.from('\0'),
    );
    expect(decode(decodeErrorFields, v)).toEqual({
      severity: 'ERROR',
      code: '42P01',
      message: 'relation "nope" does not exist',
      detail: 'some detail',
      hint: 'a hint',
    });
    expectTruncationsMalformed(decodeErrorFields, v);
  });

  it('ErrorResponse: absent detail and hint are absent, not undefined', () => {
    const fields = decode(
      decodeErrorFields,
      inside(Buffer.from('S'), cstr('FATAL'), Buffer.from('C'), cstr('28P01'), Buffer.from('\0')),
    );
    expect(fields).toEqual({ severity: 'FATAL', code: '28P01', message: '' });
    expect('detail' in fields).toBe(false);
    expect('hint' in fields).toBe(false);
    expect(decode(decodeErrorFields, inside(Buffer.from('\0')))).toEqual({
      severity: '',
      code: '',
      message: '',
    });
  });

  it('ParameterStatus', () => {
    const v = inside(cstr('server_version'), cstr('17.2'));
    expect(decode(decodeParameterStatus, v)).toEqual({ name: 'server_version', value: '17.2' });
    expectTruncationsMalformed(decodeParameterStatus, v);
  });

  it('BackendKeyData: exactly two Int32s', () => {
    const v = inside(i32(31337), i32(-123456789));
    expect(decode(decodeBackendKeyData, v)).toEqual({ processId: 31337, secretKey: -123456789 });
    expectTruncationsMalformed(decodeBackendKeyData, v);
    expect(codeOf(() => decode(decodeBackendKeyData, inside(i32(1), i32(2), i32(3))))).toBe(
      'PCL_ERR_PROTOCOL_MALFORMED',
    );
  });

  it('ReadyForQuery: I, T or E', () => {
    for (const status of ['I', 'T', 'E'] as const) {
      expect(decode(decodeReadyForQuery, inside(Buffer.from(status)))).toBe(status);
    }
    for (const bad of ['', 'X', 'i', 'II']) {
      expect(codeOf(() => decode(decodeReadyForQuery, inside(Buffer.from(bad))))).toBe(
        'PCL_ERR_PROTOCOL_MALFORMED',
      );
    }
  });

  it('RowDescription: every field, OIDs unsigned', () => {
    const field = (name: string, table: number, attr: number, type: number, size: number) =>
      Buffer.concat([cstr(name), i32(table), i16(attr), i32(type), i16(size), i32(-1), i16(0)]);
    const v = inside(
      i16(3),
      field('id', 16_384, 1, 23, 4),
      field('émail', 0xfffffff0, 3, 25, -1),
      field('?column?', 0, 0, 0xfffffffe, -2),
    );
    expect(decode(decodeRowDescription, v)).toEqual([
      {
        name: 'id',
        tableOid: 16_384,
        columnAttr: 1,
        typeOid: 23,
        typeSize: 4,
        typeModifier: -1,
        format: 0,
      },
      {
        name: 'émail',
        tableOid: 0xfffffff0,
        columnAttr: 3,
        typeOid: 25,
        typeSize: -1,
        typeModifier: -1,
        format: 0,
      },
      {
        name: '?column?',
        tableOid: 0,
        columnAttr: 0,
        typeOid: 0xfffffffe,
        typeSize: -2,
        typeModifier: -1,
        format: 0,
      },
    ]);
    expectTruncationsMalformed(decodeRowDescription, v);
    expect(decode(decodeRowDescription, inside(i16(0)))).toEqual([]);
    // A count that promises fewer fields than the body holds is malformed too.
    expect(codeOf(() => decode(decodeRowDescription, inside(i16(0), field('x', 1, 1, 1, 1))))).toBe(
      'PCL_ERR_PROTOCOL_MALFORMED',
    );
  });

  it('DataRow: text values and NULLs', () => {
    const value = (s: string) => {
      const bytes = Buffer.from(s);
      return Buffer.concat([i32(bytes.length), bytes]);
    };
    const v = inside(i16(4), value('42'), i32(-1), value(''), value('ünï\0code'));
    expect(decode(decodeDataRow, v)).toEqual(['42', null, '', 'ünï\0code']);
    expectTruncationsMalformed(decodeDataRow, v);
    expect(decode(decodeDataRow, inside(i16(0)))).toEqual([]);
    for (const bad of [
      inside(i16(1), i32(-2)),
      inside(i16(1), i32(5), Buffer.from('abc')),
      inside(i16(1), value('a'), Buffer.from('x')),
    ]) {
      expect(codeOf(() => decode(decodeDataRow, bad))).toBe('PCL_ERR_PROTOCOL_MALFORMED');
    }
  });

  describe('Authentication', () => {
    it('ok, cleartext and methods the gateway does not speak', () => {
      expect(decode(decodeAuthentication, inside(i32(0)))).toEqual({ code: 0, kind: 'ok' });
      expect(decode(decodeAuthentication, inside(i32(3)))).toEqual({ code: 3, kind: 'cleartext' });
      for (const code of [2, 7, 8, 9, 99]) {
        expect(decode(decodeAuthentication, inside(i32(code), Buffer.from('xx')))).toEqual({
          code,
          kind: 'other',
        });
      }
      expectTruncationsMalformed(decodeAuthentication, inside(i32(0)));
    });

    it('md5 with a 4-byte salt that outlives the frame', () => {
      const v = inside(i32(5), Buffer.from([0xde, 0xad, 0xbe, 0xef]));
      const auth = decode(decodeAuthentication, v);
      expect(auth).toEqual({ code: 5, kind: 'md5', salt: Buffer.from([0xde, 0xad, 0xbe, 0xef]) });
      expectTruncationsMalformed(decodeAuthentication, v);
      v.buf.fill(0); // the scanner's chunk is reused after the call
      expect(auth.kind === 'md5' && [...auth.salt]).toEqual([0xde, 0xad, 0xbe, 0xef]);
      expect(codeOf(() => decode(decodeAuthentication, inside(i32(5), Buffer.from('12345'))))).toBe(
        'PCL_ERR_PROTOCOL_MALFORMED',
      );
    });

    it('SASL with its mechanism list', () => {
      const v = inside(
        i32(10),
        cstr('SCRAM-SHA-256-PLUS'),
        cstr('SCRAM-SHA-256'),
        Buffer.from('\0'),
      );
      expect(decode(decodeAuthentication, v)).toEqual({
        code: 10,
        kind: 'sasl',
        mechanisms: ['SCRAM-SHA-256-PLUS', 'SCRAM-SHA-256'],
      });
      expectTruncationsMalformed(decodeAuthentication, v);
    });

    it('SASL continue and final carry their data', () => {
      const first = 'r=abc,s=c2FsdA==,i=4096';
      expect(decode(decodeAuthentication, inside(i32(11), Buffer.from(first)))).toEqual({
        code: 11,
        kind: 'sasl-continue',
        data: first,
      });
      expect(decode(decodeAuthentication, inside(i32(12), Buffer.from('v=c2ln')))).toEqual({
        code: 12,
        kind: 'sasl-final',
        data: 'v=c2ln',
      });
    });
  });
});

describe('decoders against the builders', () => {
  it('ErrorResponse and NoticeResponse round-trip', () => {
    const fields = fc.record(
      { severity: text, code: text, message: text, detail: text, hint: text },
      { requiredKeys: ['severity', 'code', 'message'] },
    );
    fc.assert(
      fc.property(fields, fc.boolean(), (f, notice) => {
        const frame = scanned(notice ? noticeResponse(f) : errorResponse(f));
        expect(String.fromCharCode(frame.type)).toBe(notice ? 'N' : 'E');
        expect(decode(decodeErrorFields, frame)).toEqual(f);
      }),
    );
  });

  it('ParameterStatus, BackendKeyData and ReadyForQuery round-trip', () => {
    fc.assert(
      fc.property(text, text, fc.integer(), fc.integer(), (name, value, pid, key) => {
        expect(decode(decodeParameterStatus, scanned(parameterStatus(name, value)))).toEqual({
          name,
          value,
        });
        expect(decode(decodeBackendKeyData, scanned(backendKeyData(pid, key)))).toEqual({
          processId: pid | 0,
          secretKey: key | 0,
        });
      }),
    );
    for (const status of ['I', 'T', 'E'] as const) {
      const frame = scanned(readyForQuery(status));
      expect(frame.type).toBe(0x5a);
      expect(decode(decodeReadyForQuery, frame)).toBe(status);
    }
  });

  it('Authentication requests round-trip', () => {
    expect(decode(decodeAuthentication, scanned(authenticationOk))).toEqual({
      code: 0,
      kind: 'ok',
    });
    expect(decode(decodeAuthentication, scanned(authenticationCleartextPassword))).toEqual({
      code: 3,
      kind: 'cleartext',
    });
  });

  it('Query and PasswordMessage round-trip', () => {
    fc.assert(
      fc.property(text, (s) => {
        const q = scanned(query(s));
        expect(q.type).toBe(0x51);
        expect(decode(decodeQuery, q)).toBe(s);
        const p = scanned(passwordMessage(s));
        expect(p.type).toBe(0x70);
        expect(decode(decodePassword, p)).toBe(s);
      }),
    );
  });
});

describe.skipIf(pgProtocol === null)('decoders against pg-protocol serialize', () => {
  const serialize = pgProtocol!.serialize;

  it('Parse', () => {
    fc.assert(
      fc.property(text, text, fc.array(fc.nat(), { maxLength: 40 }), (name, sql, types) => {
        const frame = scanned(serialize.parse({ name, text: sql, types }));
        expect(frame.type).toBe(0x50);
        expect(decode(decodeParse, frame)).toEqual({ name, query: sql, paramTypes: types.length });
      }),
    );
  });

  it('Bind, including more than 32 767 parameters', () => {
    const values = fc.array(fc.oneof(fc.constant(null), text, fc.uint8Array().map(Buffer.from)), {
      maxLength: 20,
    });
    fc.assert(
      fc.property(text, text, values, (portal, statement, vals) => {
        const frame = scanned(serialize.bind({ portal, statement, values: vals }));
        expect(frame.type).toBe(0x42);
        expect(decode(decodeBind, frame)).toEqual({ portal, statement, params: vals.length });
      }),
    );
    for (const n of [32_767, 32_768, 40_000, 65_535]) {
      const frame = scanned(
        serialize.bind({ statement: 'bulk', values: new Array<string>(n).fill('1') }),
      );
      expect(decode(decodeBind, frame)).toEqual({ portal: '', statement: 'bulk', params: n });
    }
  });

  it('Execute, Describe and Close', () => {
    fc.assert(
      fc.property(text, fc.nat(), (name, rows) => {
        expect(decode(decodeExecute, scanned(serialize.execute({ portal: name, rows })))).toEqual({
          portal: name,
          maxRows: rows,
        });
        for (const type of ['S', 'P'] as const) {
          const target = type === 'S' ? 'statement' : 'portal';
          const d = scanned(serialize.describe({ type, name }));
          expect(d.type).toBe(0x44);
          expect(decode(decodeTarget, d)).toEqual({ target, name });
          const c = scanned(serialize.close({ type, name }));
          expect(c.type).toBe(0x43);
          expect(decode(decodeTarget, c)).toEqual({ target, name });
        }
      }),
    );
  });
});

describe('decoders on garbage', () => {
  const decoders: Decoder<unknown>[] = [
    decodeQuery,
    decodeParse,
    decodeBind,
    decodeExecute,
    decodeTarget,
    decodeFunctionCall,
    decodePassword,
    decodeCommandComplete,
    decodeErrorFields,
    decodeParameterStatus,
    decodeBackendKeyData,
    decodeReadyForQuery,
    decodeAuthentication,
    decodeRowDescription,
    decodeDataRow,
  ];

  it('throw nothing but PCL_ERR_PROTOCOL_MALFORMED, and never read outside [start, end)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 60 }), fc.nat(60), fc.nat(60), (bytes, a, b) => {
        const buf = Buffer.from(bytes);
        const start = Math.min(a, b, buf.length);
        const end = Math.min(Math.max(a, b), buf.length);
        for (const fn of decoders) {
          const before = codeOf(() => fn(buf, start, end));
          expect(['no error', 'PCL_ERR_PROTOCOL_MALFORMED']).toContain(before);
          // Changing bytes outside the body changes nothing.
          const moved = Buffer.concat([
            Buffer.from([0, 1, 0]),
            buf.subarray(start, end),
            Buffer.alloc(3),
          ]);
          expect(codeOf(() => fn(moved, 3, 3 + end - start))).toBe(before);
          if (before === 'no error')
            expect(fn(moved, 3, 3 + end - start)).toEqual(fn(buf, start, end));
        }
      }),
      { numRuns: 1000 },
    );
  });
});
