import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  authenticationCleartextPassword,
  authenticationOk,
  backendKeyData,
  cancelRequest,
  encryptionRefused,
  errorResponse,
  negotiateProtocolVersion,
  noticeResponse,
  parameterStatus,
  passwordMessage,
  query,
  readyForQuery,
  saslInitialResponse,
  saslResponse,
  sslAccepted,
  sslRequest,
  startupMessage,
  terminate,
  type ErrorMessageFields,
} from './message-builders.js';

// pg-protocol (node-postgres) is the oracle: its serializer for frontend messages, its Parser
// for backend messages. Both are optional; the tests that need them are skipped without.
const pgProtocol = await import('pg-protocol').catch(() => null);
const pgParser = await import('pg-protocol/dist/parser.js').catch(() => null);

interface ParsedMessage {
  readonly name: string;
  readonly length: number;
  readonly [field: string]: unknown;
}

/** Runs pg-protocol's Parser over `bytes` (a copy: the Parser may write into buffers it keeps). */
function pgParse(bytes: Buffer, chunkSize = bytes.length): ParsedMessage[] {
  const parser = new pgParser!.Parser();
  const out: ParsedMessage[] = [];
  for (let pos = 0; pos < bytes.length; pos += chunkSize) {
    parser.parse(Buffer.from(bytes.subarray(pos, pos + chunkSize)), (msg) => {
      out.push(msg as unknown as ParsedMessage);
    });
  }
  return out;
}

const noNul = (s: string) => !s.includes('\0');
const text = fc.string({ unit: 'grapheme', maxLength: 40 }).filter(noNul);
const asciiText = fc.string({ maxLength: 40 }).filter(noNul);

/** Type byte, length field and body of a typed frame. */
function parts(frame: Buffer): { type: string; length: number; body: Buffer } {
  return {
    type: String.fromCharCode(frame[0]!),
    length: frame.readInt32BE(1),
    body: frame.subarray(5),
  };
}

describe('message builders: layout', () => {
  it('fill in the length of every typed frame', () => {
    const frames = [
      authenticationOk,
      authenticationCleartextPassword,
      errorResponse({ severity: 'FATAL', code: '28P01', message: 'no' }),
      parameterStatus('a', 'b'),
      backendKeyData(1, 2),
      readyForQuery('I'),
      negotiateProtocolVersion(0, ['_pq_.x']),
      passwordMessage('pw'),
      saslInitialResponse('SCRAM-SHA-256', 'n,,n=*,r=abc'),
      saslResponse('c=biws'),
      query('SELECT 1'),
      terminate,
    ];
    for (const f of frames) expect(f.readInt32BE(1)).toBe(f.length - 1);
  });

  it('AuthenticationOk and AuthenticationCleartextPassword', () => {
    expect([...authenticationOk]).toEqual([0x52, 0, 0, 0, 8, 0, 0, 0, 0]);
    expect([...authenticationCleartextPassword]).toEqual([0x52, 0, 0, 0, 8, 0, 0, 0, 3]);
  });

  it('ErrorResponse: S, V, C, M, then D and H when given, then a terminator', () => {
    const f = parts(errorResponse({ severity: 'ERROR', code: '42000', message: 'm', hint: 'h' }));
    expect(f.type).toBe('E');
    expect(f.body.toString()).toBe('SERROR\0VERROR\0C42000\0Mm\0Hh\0\0');
    expect(parts(noticeResponse({ severity: 'NOTICE', code: '00000', message: 'x' })).type).toBe(
      'N',
    );
  });

  it('NegotiateProtocolVersion: newest minor and the unrecognised options', () => {
    const f = parts(negotiateProtocolVersion(2, ['_pq_.a', '_pq_.b']));
    expect(f.type).toBe('v');
    expect(f.body.readInt32BE(0)).toBe(0x30002);
    expect(f.body.readInt32BE(4)).toBe(2);
    expect(f.body.subarray(8).toString()).toBe('_pq_.a\0_pq_.b\0');
  });

  it('one-byte encryption answers, SSLRequest and CancelRequest', () => {
    expect(sslAccepted.toString()).toBe('S');
    expect(encryptionRefused.toString()).toBe('N');
    expect([...sslRequest]).toEqual([0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]);
    const cancel = cancelRequest(7, -2);
    expect(cancel.readInt32BE(0)).toBe(16);
    expect(cancel.readInt32BE(4)).toBe(80877102);
    expect([cancel.readInt32BE(8), cancel.readInt32BE(12)]).toEqual([7, -2]);
  });

  it('SASLInitialResponse: mechanism, then the data with an Int32 length', () => {
    const f = parts(saslInitialResponse('SCRAM-SHA-256', 'n,,n=*,r=ü'));
    expect(f.type).toBe('p');
    expect(f.body.subarray(0, 14).toString()).toBe('SCRAM-SHA-256\0');
    expect(f.body.readInt32BE(14)).toBe(Buffer.byteLength('n,,n=*,r=ü'));
    expect(f.body.subarray(18).toString()).toBe('n,,n=*,r=ü');
  });
});

describe.skipIf(pgProtocol === null)('frontend builders against pg-protocol serialize', () => {
  const serialize = pgProtocol!.serialize;

  it('StartupMessage', () => {
    const name = fc.string({ minLength: 1, maxLength: 12 }).filter(noNul);
    fc.assert(
      fc.property(fc.dictionary(name, text, { maxKeys: 6 }), (params) => {
        fc.pre(!('client_encoding' in params));
        // pg always adds client_encoding=UTF8 after the caller's parameters.
        const ours = startupMessage({ ...params, client_encoding: 'UTF8' });
        expect(ours.equals(serialize.startup(params))).toBe(true);
        const asMap = startupMessage(
          new Map([...Object.entries(params), ['client_encoding', 'UTF8']]),
        );
        expect(asMap.equals(ours)).toBe(true);
      }),
    );
  });

  it('PasswordMessage, Query, SASLInitialResponse and SASLResponse', () => {
    fc.assert(
      fc.property(text, asciiText, (s, mechanism) => {
        expect(passwordMessage(s).equals(serialize.password(s))).toBe(true);
        expect(query(s).equals(serialize.query(s))).toBe(true);
        expect(
          saslInitialResponse(mechanism, s).equals(
            serialize.sendSASLInitialResponseMessage(mechanism, s),
          ),
        ).toBe(true);
        expect(saslResponse(s).equals(serialize.sendSCRAMClientFinalMessage(s))).toBe(true);
      }),
    );
  });

  it('SSLRequest, CancelRequest and Terminate', () => {
    expect(sslRequest.equals(serialize.requestSsl())).toBe(true);
    expect(terminate.equals(serialize.end())).toBe(true);
    fc.assert(
      fc.property(fc.integer(), fc.integer(), (pid, key) => {
        expect(cancelRequest(pid, key).equals(serialize.cancel(pid, key))).toBe(true);
      }),
    );
  });
});

describe.skipIf(pgParser === null)('backend builders against pg-protocol Parser', () => {
  const fields: fc.Arbitrary<ErrorMessageFields> = fc.record(
    { severity: text, code: text, message: text, detail: text, hint: text },
    { requiredKeys: ['severity', 'code', 'message'] },
  );

  it('ErrorResponse and NoticeResponse', () => {
    fc.assert(
      fc.property(fields, fc.boolean(), (f, notice) => {
        const [msg, ...rest] = pgParse(notice ? noticeResponse(f) : errorResponse(f));
        expect(rest).toEqual([]);
        expect(msg).toMatchObject({
          name: notice ? 'notice' : 'error',
          severity: f.severity,
          code: f.code,
          message: f.message,
          detail: f.detail,
          hint: f.hint,
        });
      }),
    );
  });

  it('ParameterStatus, BackendKeyData, ReadyForQuery and Authentication', () => {
    fc.assert(
      fc.property(text, text, fc.integer(), fc.integer(), (name, value, pid, key) => {
        expect(pgParse(parameterStatus(name, value))).toMatchObject([
          { name: 'parameterStatus', parameterName: name, parameterValue: value },
        ]);
        expect(pgParse(backendKeyData(pid, key))).toMatchObject([
          { name: 'backendKeyData', processID: pid, secretKey: key },
        ]);
      }),
    );
    for (const status of ['I', 'T', 'E'] as const) {
      expect(pgParse(readyForQuery(status))).toMatchObject([{ name: 'readyForQuery', status }]);
    }
    expect(pgParse(authenticationOk)).toMatchObject([{ name: 'authenticationOk' }]);
    expect(pgParse(authenticationCleartextPassword)).toMatchObject([
      { name: 'authenticationCleartextPassword' },
    ]);
  });

  it('a whole login sequence, in any chunking', () => {
    const sequence = Buffer.concat([
      authenticationOk,
      parameterStatus('server_version', '17.2'),
      parameterStatus('client_encoding', 'UTF8'),
      backendKeyData(4242, 99),
      noticeResponse({ severity: 'NOTICE', code: '00000', message: 'via Portcullis' }),
      readyForQuery('I'),
    ]);
    for (const size of [1, 3, 7, sequence.length]) {
      expect(pgParse(sequence, size).map((m) => m.name)).toEqual([
        'authenticationOk',
        'parameterStatus',
        'parameterStatus',
        'backendKeyData',
        'notice',
        'readyForQuery',
      ]);
    }
  });
});
