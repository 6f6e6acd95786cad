import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { MaskAction } from './mask-style.js';
import { compileCopyPlan, rewriteCopyData, type CopyPlanSpec } from './rewrite-copy-data.js';
import { rewriteDataRow } from './rewrite-data-row.js';
import { compileRowPlan } from './row-plan.js';

const KEY = Buffer.alloc(32, 9);
type Row = (string | null)[];

// Encoders and decoders written from the PostgreSQL COPY documentation, independent of the
// rewriter's own parser.
function encodeText(row: Row): string {
  const escapes: Record<string, string> = {
    '\\': '\\\\',
    '\n': '\\n',
    '\r': '\\r',
    '\t': '\\t',
    '\b': '\\b',
    '\f': '\\f',
    '\v': '\\v',
  };
  return (
    row
      .map((v) => (v === null ? '\\N' : v.replace(/[\\\n\r\t\b\f\v]/g, (c) => escapes[c]!)))
      .join('\t') + '\n'
  );
}

function decodeText(line: string): Row {
  const letters: Record<string, string> = { n: '\n', r: '\r', t: '\t', b: '\b', f: '\f', v: '\v' };
  return line
    .replace(/\n$/, '')
    .split('\t')
    .map((field) => {
      if (field === '\\N') return null;
      return field.replace(/\\(x[0-9a-fA-F]{1,2}|[0-7]{1,3}|.)/g, (_m, e: string) => {
        if (e[0] === 'x') return String.fromCharCode(parseInt(e.slice(1), 16));
        if (/^[0-7]/.test(e)) return String.fromCharCode(parseInt(e, 8));
        return letters[e] ?? e;
      });
    });
}

function encodeCsv(row: Row): string {
  return (
    row
      .map((v) => {
        if (v === null) return '';
        return v === '' || /[",\n\r]/.test(v) ? `"${v.replace(/"/g, '""')}"` : v;
      })
      .join(',') + '\n'
  );
}

function decodeCsv(text: string): Row {
  const row: Row = [];
  let i = 0;
  for (;;) {
    if (text[i] === '"') {
      let v = '';
      i++;
      for (;;) {
        if (text[i] === '"' && text[i + 1] === '"') {
          v += '"';
          i += 2;
        } else if (text[i] === '"') {
          i++;
          break;
        } else v += text[i++];
      }
      row.push(v);
    } else {
      let v = '';
      while (i < text.length && text[i] !== ',' && text[i] !== '\n') v += text[i++];
      row.push(v === '' ? null : v);
    }
    if (i >= text.length || text[i] === '\n') return row;
    i++;
  }
}

function copyData(text: string): Buffer {
  const body = Buffer.from(text);
  const out = Buffer.alloc(5 + body.length);
  out[0] = 0x64;
  out.writeInt32BE(4 + body.length, 1);
  body.copy(out, 5);
  return out;
}

function run(spec: CopyPlanSpec, text: string, header = false): string | null {
  const f = copyData(text);
  const result = rewriteCopyData(f, 5, f.length, compileCopyPlan({ hashKey: KEY, ...spec }), {
    header,
  });
  if (result === null) return null;
  expect(result.frame[0]).toBe(0x64);
  expect(result.frame.readInt32BE(1)).toBe(result.frame.length - 1);
  return result.frame.subarray(5).toString();
}

describe('rewriteCopyData, text format', () => {
  it('masks de-escaped values and escapes them again', () => {
    const actions: MaskAction[] = [
      { kind: 'partial' },
      { kind: 'fixed-format' },
      { kind: 'detect' },
    ];
    // `a<tab>b\cdef`: the tab and backslash are masked like any character; `X\nY` keeps its \n.
    expect(run({ format: 'text', actions }, 'a\\tb\\\\cdef\tX\\nY\tmail a@example.com\n')).toBe(
      '****cdef\tX\\nX\tmail ****\n',
    );
    // What stays after masking is escaped again (the kept tab, the backslash).
    expect(run({ format: 'text', actions }, 'abcd\\tx\tx\\\\y\tz\n')).toBe('***d\\tx\tx\\\\x\tz\n');
  });

  it('keeps NULL, turns null-style values into \\N and leaves other columns alone', () => {
    const actions = [null, { kind: 'null' } as const, { kind: 'redact' } as const];
    expect(run({ format: 'text', actions }, 'keep\\tme\tsecret\t\\N\n')).toBe(
      'keep\\tme\t\\N\t\\N\n',
    );
    expect(run({ format: 'text', actions }, 'keep\t\\N\t\\N\n')).toBeNull();
  });

  it('honours a custom delimiter and NULL marker', () => {
    const spec: CopyPlanSpec = {
      format: 'text',
      delimiter: '|',
      null: 'NULL',
      actions: [{ kind: 'partial', keepLast: 1 }, null],
    };
    expect(run(spec, 'ab\\|c|NULL\n')).toBe('***c|NULL\n');
    expect(run({ ...spec, actions: [{ kind: 'fixed-format' }, null] }, 'a\\|b|x\n')).toBe(
      'x\\|x|x\n',
    );
    expect(run(spec, 'NULL|x\n')).toBeNull();
  });

  it('refuses a row with the wrong field count', () => {
    expect(() => run({ format: 'text', actions: [{ kind: 'redact' }] }, 'a\tb\n')).toThrow(
      expect.objectContaining({ code: 'PCL_ERR_PROTOCOL_MALFORMED' }),
    );
  });
});

describe('rewriteCopyData, CSV', () => {
  it('decodes quoted fields, masks, and quotes when needed', () => {
    const actions: (MaskAction | null)[] = [
      { kind: 'redact' },
      { kind: 'partial' },
      { kind: 'fixed-format' },
      null,
    ];
    expect(run({ format: 'csv', actions }, '"a,b","x""y,zz",plain,"keep ""me"""\n')).toBe(
      '"****","***,zz",xxxxx,"keep ""me"""\n',
    );
  });

  it('keeps NULL (unquoted empty) apart from the empty string, and skips the header row', () => {
    const actions: MaskAction[] = [{ kind: 'fixed-format' }, { kind: 'null' }];
    expect(run({ format: 'csv', actions }, 'name,email\n"",x\n,y\n', true)).toBe(
      'name,email\n"",\n,\n',
    );
  });

  it('handles newlines inside quoted fields and a custom escape', () => {
    const actions: MaskAction[] = [{ kind: 'detect' }, { kind: 'partial', keepLast: 1 }];
    expect(run({ format: 'csv', escape: '\\', actions }, '"line1\na@example.com","q\\"x"\n')).toBe(
      '"line1\n****","**x"\n',
    );
    const keep2: (MaskAction | null)[] = [null, { kind: 'partial', keepLast: 2 }];
    expect(run({ format: 'csv', escape: '\\', actions: keep2 }, 'a,"qq\\"x"\n')).toBe(
      'a,"**\\"x"\n',
    );
  });
});

const fieldArb = fc.oneof(
  fc.constant(null),
  fc.constant(''),
  fc.constant('\\N'),
  fc.string({ unit: 'grapheme', maxLength: 12 }),
  fc.stringMatching(/^[a-z\\\t\n\r,"|]{0,8}$/),
  fc.constantFrom('alice@example.com', 'x 4111 1111 1111 1111', 'call +1 415 555 0132'),
);
const actionArb = fc.constantFrom<MaskAction | null>(
  null,
  null,
  { kind: 'redact' },
  { kind: 'partial' },
  { kind: 'hash' },
  { kind: 'null' },
  { kind: 'fixed-format' },
  { kind: 'detect' },
);
const copyCase = fc.integer({ min: 1, max: 8 }).chain((n) =>
  fc.record({
    rows: fc.array(fc.array(fieldArb, { minLength: n, maxLength: n }), {
      minLength: 1,
      maxLength: 4,
    }),
    actions: fc.array(actionArb, { minLength: n, maxLength: n }),
  }),
);

/** The same values and plan through the DataRow rewriter: the oracle for masked values. */
function viaDataRow(row: Row, actions: (MaskAction | null)[]): Row {
  const parts: Buffer[] = [Buffer.from([0, row.length])];
  for (const v of row) {
    const len = Buffer.alloc(4);
    len.writeInt32BE(v === null ? -1 : Buffer.byteLength(v));
    parts.push(len, Buffer.from(v ?? ''));
  }
  const body = Buffer.concat(parts);
  const result = rewriteDataRow(body, 0, body.length, compileRowPlan({ actions, hashKey: KEY }));
  if (result === null) return row;
  const f = result.frame;
  const out: Row = [];
  let p = 7;
  for (let i = 0; i < row.length; i++) {
    const len = f.readInt32BE(p);
    p += 4;
    out.push(len < 0 ? null : f.subarray(p, p + len).toString());
    p += Math.max(len, 0);
  }
  return out;
}

describe('rewriteCopyData (properties)', () => {
  for (const format of ['text', 'csv'] as const) {
    it(`${format}: rows round-trip, unmasked columns identical, masked as a DataRow would be`, () => {
      const encode = format === 'text' ? encodeText : encodeCsv;
      const decode = format === 'text' ? decodeText : decodeCsv;
      fc.assert(
        fc.property(copyCase, ({ rows, actions }) => {
          for (const row of rows) {
            const line = encode(row);
            const out = run({ format, actions }, line);
            const decoded = decode(out ?? line);
            // CSV cannot tell NULL from '' without quotes only when unquoted; the encoder quotes ''.
            expect(decoded).toHaveLength(row.length);
            const expected = viaDataRow(row, actions);
            expect(decoded).toEqual(expected);
            expect(out === null).toBe(expected.every((v, i) => v === row[i]));
          }
        }),
        { numRuns: 300 },
      );
    });
  }

  it('masks several rows in one message', () => {
    const out = run({ format: 'text', actions: [{ kind: 'redact' }] }, 'a\nb\n\\N\n');
    expect(out).toBe('****\n****\n\\N\n');
  });
});
