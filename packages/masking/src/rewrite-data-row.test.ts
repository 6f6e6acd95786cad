import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ContentDetector } from './content-detector.js';
import { createMasker } from './create-masker.js';
import type { MaskAction } from './mask-style.js';
import { rewriteDataRow, rewriteDataRows } from './rewrite-data-row.js';
import { compileRowPlan, type ColumnType, type RowPlanSpec } from './row-plan.js';

const KEY = Buffer.alloc(32, 5);
type Value = Uint8Array | null;

function frame(type: string, body: Uint8Array): Buffer {
  const out = Buffer.alloc(5 + body.length);
  out[0] = type.charCodeAt(0);
  out.writeInt32BE(4 + body.length, 1);
  out.set(body, 5);
  return out;
}

function dataRow(values: readonly (Value | string)[]): Buffer {
  const parts: Buffer[] = [Buffer.from([values.length >> 8, values.length & 255])];
  for (const v of values) {
    const len = Buffer.alloc(4);
    if (v === null) {
      len.writeInt32BE(-1);
      parts.push(len);
    } else {
      const bytes = typeof v === 'string' ? Buffer.from(v) : Buffer.from(v);
      len.writeInt32BE(bytes.length);
      parts.push(len, bytes);
    }
  }
  return frame('D', Buffer.concat(parts));
}

/** Parses a complete DataRow frame, checking every length field. */
function parseRow(f: Uint8Array): Value[] {
  const buf = Buffer.from(f.buffer, f.byteOffset, f.length);
  expect(buf[0]).toBe(0x44);
  expect(buf.readInt32BE(1)).toBe(buf.length - 1);
  const count = buf.readInt16BE(5);
  let p = 7;
  const out: Value[] = [];
  for (let i = 0; i < count; i++) {
    const len = buf.readInt32BE(p);
    p += 4;
    if (len === -1) out.push(null);
    else {
      expect(len).toBeGreaterThanOrEqual(0);
      out.push(Uint8Array.from(buf.subarray(p, p + len)));
      p += len;
    }
  }
  expect(p).toBe(buf.length);
  return out;
}

const text = (v: Value): string | null => (v === null ? null : Buffer.from(v).toString());

function rewrite(values: (Value | string)[], spec: RowPlanSpec): (string | null)[] | null {
  const f = dataRow(values);
  const result = rewriteDataRow(f, 5, f.length, compileRowPlan({ hashKey: KEY, ...spec }));
  return result === null ? null : parseRow(result.frame).map(text);
}

const TEXT: ColumnType = { typeOid: 25, format: 0 };

describe('rewriteDataRow', () => {
  it('masks by rule and by detection, and reports counts only', () => {
    const f = dataRow([
      '7',
      '4111-1111-1111-1234',
      'alice@example.com',
      'mail bob@example.org',
      'x',
      null,
    ]);
    const plan = compileRowPlan({
      actions: [
        null,
        { kind: 'partial' },
        { kind: 'redact' },
        { kind: 'detect' },
        { kind: 'null' },
        { kind: 'redact' },
      ],
    });
    const result = rewriteDataRow(f, 5, f.length, plan)!;
    expect(parseRow(result.frame).map(text)).toEqual([
      '7',
      '****-****-****-1234',
      '****',
      'mail ****',
      null,
      null,
    ]);
    expect(result.maskedValues).toBe(4);
    expect(result.maskedColumns).toEqual([1, 2, 3, 4]);
    expect(JSON.stringify(result)).not.toContain('alice');
  });

  it('returns null, copying nothing, when no value changes', () => {
    expect(rewrite(['a', 'b'], { actions: [null, null] })).toBeNull();
    expect(rewrite(['nothing here', 'x'], { actions: [{ kind: 'detect' }, null] })).toBeNull();
    expect(rewrite([null, null], { actions: [{ kind: 'redact' }, { kind: 'null' }] })).toBeNull();
    // Masking that yields the same bytes is no change either.
    expect(rewrite(['****'], { actions: [{ kind: 'redact' }] })).toBeNull();
  });

  it('reports the masked columns of each frame, sharing the array while they repeat', () => {
    const plan = compileRowPlan({ actions: [{ kind: 'redact' }, { kind: 'detect' }] });
    const columns = (values: (Value | string)[]): readonly number[] | undefined => {
      const f = dataRow(values);
      return rewriteDataRow(f, 5, f.length, plan)?.maskedColumns;
    };
    const first = columns(['a', 'b@example.com']);
    expect(first).toEqual([0, 1]);
    expect(Object.isFrozen(first)).toBe(true);
    expect(columns(['c', 'd@example.com'])).toBe(first);
    expect(columns(['e', 'no email'])).toEqual([0]);
    expect(columns([null, 'f@example.com'])).toEqual([1]);
    expect(columns(['g', 'h@example.com'])).toEqual([0, 1]);
    expect(plan.takeHits()).toEqual([]);
  });

  it('masks a body that sits inside a larger buffer', () => {
    const f = dataRow(['secret', 'keep']);
    const chunk = Buffer.concat([Buffer.from('xyz'), f, Buffer.from('tail')]);
    const plan = compileRowPlan({ actions: [{ kind: 'redact' }, null] });
    const result = rewriteDataRow(chunk, 3 + 5, 3 + f.length, plan)!;
    expect(parseRow(result.frame).map(text)).toEqual(['****', 'keep']);
  });

  it('masks binary text-like columns as text and keeps jsonb valid', () => {
    const columns: ColumnType[] = [
      { typeOid: 1043, format: 1 },
      { typeOid: 3802, format: 1 },
      { typeOid: 114, format: 0 },
      { typeOid: 3802, format: 1 },
    ];
    const jsonb = Buffer.concat([Buffer.from([1]), Buffer.from('{"email": "a@example.com"}')]);
    const f = dataRow(['varchar value', jsonb, '{"a": "b\\"c"}', jsonb]);
    const plan = compileRowPlan({
      actions: [
        { kind: 'redact' },
        { kind: 'partial' },
        { kind: 'fixed-format' },
        { kind: 'detect' },
      ],
      columns,
    });
    const out = parseRow(rewriteDataRow(f, 5, f.length, plan)!.frame);
    expect(text(out[0]!)).toBe('****');
    expect(out[1]![0]).toBe(1);
    expect(JSON.parse(Buffer.from(out[1]!.subarray(1)).toString())).toBe(
      '********* **@*******.*om"}',
    );
    expect(JSON.parse(text(out[2]!)!)).toBe('{"x": "x\\"x"}');
    expect(out[3]![0]).toBe(1);
    expect(JSON.parse(Buffer.from(out[3]!.subarray(1)).toString())).toEqual({ email: '****' });
  });

  it('turns rule-masked binary values of other types into NULL and leaves them to detection', () => {
    const int4 = Buffer.from([0, 0, 0, 42]);
    const columns: ColumnType[] = [
      { typeOid: 23, format: 1 },
      { typeOid: 23, format: 1 },
      { typeOid: 20, format: 0 },
    ];
    expect(
      rewrite([int4, int4, '4111111111111111'], {
        actions: [{ kind: 'hash' }, { kind: 'detect' }, { kind: 'detect' }],
        columns,
      }),
    ).toEqual([null, '\0\0\0*', '4111111111111111']);
  });

  it('keeps a NULL-masked last column when earlier masking outgrew the first allocation', () => {
    // Hashed empty values grow the row 18 bytes each; for some shapes the buffer is exactly full
    // when the last column's NULL is written, which used to land outside it and vanish. The
    // sweep hits that edge whatever the allocation policy.
    for (let hashed = 1; hashed <= 24; hashed++) {
      for (let pad = 0; pad <= 24; pad++) {
        const values = [...Array.from({ length: hashed }, () => ''), 'p'.repeat(pad), 'x'];
        const actions: (MaskAction | null)[] = [
          ...Array.from({ length: hashed }, (): MaskAction => ({ kind: 'hash' })),
          null,
          { kind: 'null' },
        ];
        const out = rewrite(values, { actions })!;
        expect(out).toHaveLength(hashed + 2);
        expect(out[hashed + 1]).toBeNull();
      }
    }
  });

  it('refuses malformed rows with PCL_ERR_PROTOCOL_MALFORMED', () => {
    const plan = compileRowPlan({ actions: [{ kind: 'redact' }, null] });
    const malformed = expect.objectContaining({ code: 'PCL_ERR_PROTOCOL_MALFORMED' });
    const wrongCount = dataRow(['a']);
    expect(() => rewriteDataRow(wrongCount, 5, wrongCount.length, plan)).toThrow(malformed);
    const f = dataRow(['abc', 'd']);
    expect(() => rewriteDataRow(f, 5, 5 + 2 + 4 + 2, plan)).toThrow(malformed);
    const negative = Buffer.from(f);
    negative.writeInt32BE(-2, 7);
    expect(() => rewriteDataRow(negative, 5, negative.length, plan)).toThrow(malformed);
    expect(() => rewriteDataRow(f, 5, 6, plan)).toThrow(malformed);
  });
});

describe('rewriteDataRows', () => {
  const plan = compileRowPlan({ actions: [null, { kind: 'redact' }] });
  const rowA = dataRow(['1', 'secret']);
  const rowB = dataRow(['2', null]);
  const complete = frame('C', Buffer.from('SELECT 2\0'));
  const ready = frame('Z', Buffer.from('I'));

  it('replaces changed rows, passes other frames through, and owns its ArrayBuffer', () => {
    const chunk = Buffer.concat([rowA, rowB, rowA, complete, ready]);
    const result = rewriteDataRows(chunk, 0, chunk.length, plan);
    expect(result.consumed).toBe(chunk.length);
    expect(result.frames).toBe(5);
    expect(result.rewrittenFrames).toBe(2);
    expect(result.maskedValues).toBe(2);
    expect(result.maskedColumns).toEqual([1]);
    const masked = dataRow(['1', '****']);
    expect(result.output).toEqual(Buffer.concat([masked, rowB, masked, complete, ready]));
    const output = result.output!;
    expect(output.byteOffset).toBe(0);
    // Transferable: structuredClone with transfer detaches the sender's buffer.
    const buffer = output.buffer as ArrayBuffer;
    structuredClone(buffer, { transfer: [buffer] });
    expect(buffer.byteLength).toBe(0);
  });

  it('returns a null output when nothing changed', () => {
    const chunk = Buffer.concat([rowB, complete]);
    expect(rewriteDataRows(chunk, 0, chunk.length, plan)).toMatchObject({
      output: null,
      consumed: chunk.length,
      frames: 2,
      rewrittenFrames: 0,
    });
  });

  it('stops before a RowDescription or an error', () => {
    const description = frame('T', Buffer.from([0, 0]));
    const error = frame('E', Buffer.from('Mboom\0\0'));
    for (const stopper of [description, error]) {
      const chunk = Buffer.concat([rowA, stopper, rowA]);
      const result = rewriteDataRows(chunk, 0, chunk.length, plan);
      expect(result.consumed).toBe(rowA.length);
      expect(result.output).toEqual(dataRow(['1', '****']));
    }
  });

  it('hashes many values in batches exactly as row by row: long values, two styles, a slab output', () => {
    // More hashed values than one batch flush holds, values too long for the batch, and two
    // hash styles (two maskers of one key) in one row.
    const hashed = compileRowPlan({
      actions: [{ kind: 'hash' }, null, { kind: 'hash', length: 8, prefix: 'p:' }],
      hashKey: KEY,
    });
    const rows = Array.from({ length: 700 }, (_, i) =>
      dataRow([`user${i}@example.com`, String(i), 'x'.repeat(i % 90)]),
    );
    const chunk = Buffer.concat([...rows, complete]);
    for (const transferable of [true, false]) {
      const result = rewriteDataRows(chunk, 0, chunk.length, hashed, transferable);
      const expected = rows.map((r) => rewriteDataRow(r, 5, r.length, hashed)!.frame);
      expect(result.output).toEqual(Buffer.concat([...expected, complete]));
      expect(result.maskedValues).toBe(1400);
    }
    const third = parseRow(rewriteDataRow(rows[1]!, 5, rows[1]!.length, hashed)!.frame)[2]!;
    expect(Buffer.from(third).toString()).toMatch(/^p:[a-z2-7]{8}$/);
  });

  it('stops before an incomplete frame at the end of the chunk', () => {
    for (const cut of [1, 4, 5, 9]) {
      const chunk = Buffer.concat([rowA, rowA.subarray(0, cut)]);
      const result = rewriteDataRows(chunk, 0, chunk.length, plan);
      expect(result.consumed).toBe(rowA.length);
      expect(result.output).toEqual(dataRow(['1', '****']));
    }
  });
});

// ------------------------------------------------------------------------------------------------
// Properties over random rows and plans.

const sensitive = fc.constantFrom(
  'alice@example.com',
  '4111 1111 1111 1111',
  '123-45-6789',
  '+1 415 555 0132',
  '10.0.0.1',
  'AKIAIOSFODNN7EXAMPLE',
);
const valueArb: fc.Arbitrary<Value> = fc.oneof(
  fc.constant(null),
  fc.constant(new Uint8Array(0)),
  fc.string({ unit: 'binary', maxLength: 24 }).map((s) => new Uint8Array(Buffer.from(s))),
  fc.uint8Array({ maxLength: 24 }),
  fc
    .tuple(fc.string({ maxLength: 5 }), sensitive)
    .map(([a, b]) => new Uint8Array(Buffer.from(a + b))),
);
const actionArb: fc.Arbitrary<MaskAction | null> = fc.constantFrom<MaskAction | null>(
  null,
  null,
  { kind: 'redact' },
  { kind: 'partial' },
  { kind: 'hash' },
  { kind: 'null' },
  { kind: 'fixed-format' },
  { kind: 'detect' },
);
const columnArb: fc.Arbitrary<ColumnType> = fc.oneof(
  fc.constant(TEXT),
  fc.record({
    typeOid: fc.constantFrom(0, 19, 23, 25, 1042, 1043, 2950, 17),
    format: fc.constantFrom<0 | 1>(0, 1),
  }),
);
const caseArb = fc.integer({ min: 0, max: 20 }).chain((n) =>
  fc.record({
    rows: fc.array(fc.array(valueArb, { minLength: n, maxLength: n }), {
      minLength: 1,
      maxLength: 6,
    }),
    actions: fc.array(actionArb, { minLength: n, maxLength: n }),
    columns: fc.array(columnArb, { minLength: n, maxLength: n }),
  }),
);

const fixedFormat = createMasker({ kind: 'fixed-format' });
const same = (a: Value, b: Value): boolean =>
  a === null || b === null ? a === b : Buffer.from(a).equals(Buffer.from(b));

describe('rewriteDataRow (properties)', () => {
  it('keeps rows valid, leaves unmasked columns and NULLs alone, masks what it claims', () => {
    fc.assert(
      fc.property(caseArb, ({ rows, actions, columns }) => {
        const plan = compileRowPlan({ actions, columns, hashKey: KEY });
        for (const values of rows) {
          const f = dataRow(values);
          const copy = Buffer.from(f);
          const result = rewriteDataRow(f, 5, f.length, plan);
          expect(f).toEqual(copy);
          const out = result === null ? values : parseRow(result.frame);
          expect(out).toHaveLength(values.length);
          const changed: number[] = [];
          values.forEach((v, i) => {
            const o = out[i]!;
            if (!same(v, o)) changed.push(i);
            if (actions[i] === null || v === null) expect(same(v, o)).toBe(true);
            const kind = actions[i]?.kind;
            const textLike =
              columns[i]!.format === 0 || [0, 19, 25, 1042, 1043].includes(columns[i]!.typeOid);
            if (
              v !== null &&
              v.length >= 4 &&
              (kind === 'redact' || kind === 'hash' || kind === 'fixed-format')
            ) {
              const fixedPoint = kind === 'fixed-format' && same(fixedFormat.mask(v), v);
              const markerAlready = kind === 'redact' && text(v) === '****';
              if (!fixedPoint && !markerAlready) expect(same(v, o)).toBe(false);
            }
            if (v !== null && kind !== undefined && kind !== 'detect' && !textLike)
              expect(o).toBeNull();
          });
          // null iff nothing changed; counts match the changed values.
          expect(result === null).toBe(changed.length === 0);
          if (result !== null) {
            expect(result.maskedValues).toBe(changed.length);
            expect(result.maskedColumns).toEqual(changed);
          }
        }
      }),
      { numRuns: 300 },
    );
  });

  it('rewrites a chunk exactly as frame by frame', () => {
    fc.assert(
      fc.property(caseArb, fc.nat(3), (c, pad) => {
        const plan = compileRowPlan({ actions: c.actions, columns: c.columns, hashKey: KEY });
        const frames = c.rows.flatMap((values, i) =>
          i % 2 === 0
            ? [dataRow(values)]
            : [dataRow(values), frame('C', Buffer.from('SELECT 1\0'))],
        );
        const chunk = Buffer.concat([Buffer.alloc(pad, 0x7a), ...frames, Buffer.alloc(pad, 0x7a)]);
        const batch = rewriteDataRows(chunk, pad, chunk.length - pad, plan);
        const expected = frames.map((f) =>
          f[0] === 0x44 ? (rewriteDataRow(f, 5, f.length, plan)?.frame ?? f) : f,
        );
        expect(batch.consumed).toBe(chunk.length - pad);
        expect(batch.output ?? chunk.subarray(pad, chunk.length - pad)).toEqual(
          Buffer.concat(expected),
        );
        const rewritten = frames.filter(
          (f) => f[0] === 0x44 && rewriteDataRow(f, 5, f.length, plan) !== null,
        );
        expect(batch.rewrittenFrames).toBe(rewritten.length);
        expect(batch.output === null).toBe(rewritten.length === 0);
      }),
      { numRuns: 200 },
    );
  });
});

describe('detect columns (property)', () => {
  it('write each value as ContentDetector.mask does, column hints and all', () => {
    const options = {
      styles: { ssn: { kind: 'null' }, phone: { kind: 'hash', length: 8 } },
      hashKey: KEY,
    } as const;
    const reference = new ContentDetector(options);
    const piece = fc.constantFrom(
      'alice@example.com',
      '4111 1111 1111 1111',
      '4111-1111-1111-1111',
      '123-45-6789',
      '(415) 555-0132',
      '+1 415 555 0132',
      '10.0.0.1',
      'x',
      ' ',
      '',
    );
    const value = fc.oneof(
      fc.constant(null),
      piece,
      fc.array(piece, { maxLength: 3 }).map((p) => p.join(' ')),
    );
    fc.assert(
      fc.property(fc.array(fc.array(value, { minLength: 3, maxLength: 3 })), (rows) => {
        const plan = compileRowPlan({
          actions: [{ kind: 'detect' }, { kind: 'detect' }, { kind: 'detect' }],
          detector: options,
          hashKey: KEY,
        });
        for (const values of rows) {
          const f = dataRow(values);
          const result = rewriteDataRow(f, 5, f.length, plan);
          const out = result === null ? values : parseRow(result.frame).map(text);
          values.forEach((v, i) => {
            if (v === null) return expect(out[i]).toBeNull();
            const masked = reference.mask(Buffer.from(v));
            const expected =
              masked === null ? v : masked.value === null ? null : text(masked.value);
            expect(out[i]).toBe(expected);
          });
        }
      }),
      { numRuns: 300 },
    );
  });
});
