// EventTsvTranscoder against its oracle: JSON.parse of the same bytes, then encodeEventTsv (the
// store's row mapping and the sink's TSV cells). For every input the transcoder writes exactly
// the oracle's line or declines; on well-formed, well-typed events it must not decline.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { SessionEvent } from '@portcullis/core';
import { fixtureEvents } from '../store/events.fixture.js';
import { columnsOf } from './clickhouse-sink.js';
import { encodeEventTsv, EventTsvTranscoder, splitTime, type TsvColumn } from './event-tsv.js';

const FLAVOURS = ['legacy18', 'modern'] as const;
/** Runs per property; each run checks both flavours. */
const RUNS = 1_000;
const COLUMNS = Object.fromEntries(FLAVOURS.map((f) => [f, columnsOf(f)])) as Record<
  (typeof FLAVOURS)[number],
  readonly TsvColumn[]
>;
const TRANSCODERS = Object.fromEntries(
  FLAVOURS.map((f) => [f, new EventTsvTranscoder(COLUMNS[f])]),
) as Record<(typeof FLAVOURS)[number], EventTsvTranscoder>;

/** What the JSON.parse path makes of `json`: the line with the event's id and seconds, or null. */
function oracle(
  json: Buffer,
  columns: readonly TsvColumn[],
): { line: Buffer; id: string; seconds: number } | null {
  let event: SessionEvent;
  let line: string;
  try {
    event = JSON.parse(json.toString('utf8')) as SessionEvent;
    line = encodeEventTsv(event, columns);
  } catch {
    return null;
  }
  return {
    line: Buffer.from(line, 'utf8'),
    id: String(event.id),
    seconds: splitTime(Number(event.timeUs)).seconds,
  };
}

/** Bytes around a record in a spool read buffer: quotes, braces and a high byte to mislead. */
const AROUND = Buffer.from('"}\\\u00ff', 'latin1');

/**
 * Transcodes `json` in both flavours; fails on any line that differs from the oracle's. Each
 * time also as a spool record is read, lying at an odd offset between other bytes: the same
 * line, or a decline both ways.
 */
function check(json: Buffer, offset = 3): { transcoded: number; declined: number } {
  let transcoded = 0;
  let declined = 0;
  const inBuffer = Buffer.concat([AROUND.subarray(0, 3), json, AROUND]);
  for (const flavour of FLAVOURS) {
    const transcoder = TRANSCODERS[flavour];
    const out = Buffer.alloc(offset + transcoder.maxLineBytes(json.length));
    const inPlace = Buffer.alloc(out.length);
    const inPlaceEnd = transcoder.transcode(inBuffer, inPlace, offset, 3, 3 + json.length);
    const end = transcoder.transcode(json, out, offset);
    expect(inPlaceEnd, 'transcoded in place').toBe(end);
    expect(inPlace.subarray(offset, inPlaceEnd).equals(out.subarray(offset, end))).toBe(true);
    if (end < 0) {
      declined++;
      continue;
    }
    transcoded++;
    const expected = oracle(json, COLUMNS[flavour]);
    expect(expected, `${flavour}: transcoded what JSON.parse refuses: ${json.toString()}`).not.toBe(
      null,
    );
    expect(out.subarray(offset, end).toString('latin1')).toBe(expected!.line.toString('latin1'));
    expect(transcoder.id).toBe(expected!.id);
    expect(splitTime(transcoder.timeUs).seconds).toBe(expected!.seconds);
  }
  return { transcoded, declined };
}

// ----- JSON text with control over its spelling: escapes, whitespace, number forms, key order.

type J =
  | { readonly t: 'object'; readonly members: readonly (readonly [string, J])[] }
  | { readonly t: 'array'; readonly items: readonly J[] }
  | { readonly t: 'string'; readonly value: string }
  | { readonly t: 'number'; readonly text: string }
  | { readonly t: 'true' | 'false' | 'null' };

const str = (value: string): J => ({ t: 'string', value });
const num = (text: string): J => ({ t: 'number', text });
const nul: J = { t: 'null' };
const obj = (members: readonly (readonly [string, J])[]): J => ({ t: 'object', members });

/** A small deterministic generator, so one seed spells one JSON text. */
function random(seed: number): () => number {
  let state = seed >>> 0 || 1;
  return () => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return (state >>> 0) / 2 ** 32;
  };
}

const SHORT_ESCAPES: Readonly<Record<string, string>> = {
  '"': '\\"',
  '\\': '\\\\',
  '/': '\\/',
  '\b': '\\b',
  '\f': '\\f',
  '\n': '\\n',
  '\r': '\\r',
  '\t': '\\t',
};

function unicodeEscape(unit: number, upper: boolean): string {
  const hex = unit.toString(16).padStart(4, '0');
  return `\\u${upper ? hex.toUpperCase() : hex}`;
}

interface Spelling {
  /** Chance to escape a character that need not be. */
  readonly escapes: number;
  /** Chance of whitespace around each token. */
  readonly spaces: number;
  /** Escape characters in keys too (JSON.parse decodes them; the transcoder declines). */
  readonly escapeKeys: boolean;
}

function spellString(value: string, rnd: () => number, spelling: Spelling): string {
  let out = '"';
  for (let i = 0; i < value.length; i++) {
    const unit = value.charCodeAt(i);
    const char = value[i]!;
    const pairs =
      unit >= 0xd800 && unit <= 0xdbff && i + 1 < value.length
        ? value.charCodeAt(i + 1) >= 0xdc00 && value.charCodeAt(i + 1) <= 0xdfff
        : false;
    const lone = unit >= 0xd800 && unit <= 0xdfff && !pairs && !(i > 0 && isPairTail(value, i));
    const must = unit < 0x20 || char === '"' || char === '\\' || lone;
    if (must || rnd() < spelling.escapes) {
      const short = SHORT_ESCAPES[char];
      out += short !== undefined && rnd() < 0.7 ? short : unicodeEscape(unit, rnd() < 0.5);
    } else {
      out += char;
    }
  }
  return `${out}"`;
}

function isPairTail(value: string, i: number): boolean {
  const unit = value.charCodeAt(i);
  const before = value.charCodeAt(i - 1);
  return unit >= 0xdc00 && unit <= 0xdfff && before >= 0xd800 && before <= 0xdbff;
}

function spell(node: J, rnd: () => number, spelling: Spelling): string {
  const ws = (): string =>
    rnd() < spelling.spaces ? [' ', '\n', '\t', '\r', '  '][(rnd() * 5) | 0]! : '';
  switch (node.t) {
    case 'object':
      return `{${ws()}${node.members
        .map(
          ([key, value]) =>
            `${spellString(key, spelling.escapeKeys ? rnd : () => 1, spelling)}${ws()}:${ws()}${spell(value, rnd, spelling)}${ws()}`,
        )
        .join(`,${ws()}`)}}`;
    case 'array':
      return `[${ws()}${node.items.map((item) => `${spell(item, rnd, spelling)}${ws()}`).join(`,${ws()}`)}]`;
    case 'string':
      return spellString(node.value, rnd, spelling);
    case 'number':
      return node.text;
    default:
      return node.t;
  }
}

// ----- Arbitraries.

const awkward = fc.constantFrom(
  '\t',
  '\n',
  '\r',
  '\0',
  '\\',
  '"',
  "'",
  '/',
  '\b',
  '\f',
  '\u0001',
  '\u001f',
  '\u007f',
  '\u0085',
  '\u2028',
  'é',
  'Ñ',
  '€',
  '😀',
  '𝄞',
  '\ud800',
  '\udbff',
  '\udc00',
  '\udfff',
  ' ',
  'N',
  '\\N',
);
const text = fc.string({
  unit: fc.oneof(
    { weight: 4, arbitrary: fc.constantFrom('a', 'b', 'z', '0', '-', '.', '@', '_') },
    { weight: 3, arbitrary: awkward },
    { weight: 1, arbitrary: fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }) },
  ),
  maxLength: 14,
});

const numberText = fc.oneof(
  { weight: 6, arbitrary: fc.integer({ min: -1_000_000, max: 2 ** 32 }).map(String) },
  { weight: 2, arbitrary: fc.maxSafeNat().map(String) },
  { weight: 1, arbitrary: fc.bigInt({ min: -(10n ** 25n), max: 10n ** 25n }).map(String) },
  { weight: 1, arbitrary: fc.double({ noNaN: true, noDefaultInfinity: true }).map(String) },
  {
    weight: 1,
    arbitrary: fc
      .tuple(
        fc.constantFrom('', '-'),
        fc.constantFrom('0', '1', '7', '12', '999999'),
        fc.constantFrom('', '.0', '.5', '.000001', '.25'),
        fc.constantFrom('', 'e0', 'e2', 'E+3', 'e-2', 'e21', 'e-7', 'e400', 'E-400', 'e15'),
      )
      .map((parts) => parts.join('')),
  },
  {
    weight: 1,
    arbitrary: fc.constantFrom(
      '-0',
      '0',
      '123456789012345',
      '1234567890123456',
      '9007199254740993',
      '-9007199254740993',
      '1e21',
      '100000000000000000000',
    ),
  },
);
const timeText = fc.oneof(
  { weight: 8, arbitrary: fc.integer({ min: 0, max: 4_102_444_800_000_000 }).map(String) },
  { weight: 1, arbitrary: fc.integer({ min: -4_102_444_800_000_000, max: 0 }).map(String) },
  { weight: 1, arbitrary: numberText },
);

/** Any JSON value, for unknown keys and for values of the wrong type. */
const anyJson: fc.Arbitrary<J> = fc.letrec<{ value: J }>((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    text.map(str),
    numberText.map(num),
    fc.constantFrom<J>({ t: 'true' }, { t: 'false' }, nul),
    fc.array(tie('value'), { maxLength: 3 }).map((items): J => ({ t: 'array', items })),
    fc
      .array(
        fc.tuple(fc.constantFrom('subject', 'email', 'x', 'id', 'values', 'by'), tie('value')),
        {
          maxLength: 3,
        },
      )
      .map(obj),
  ),
})).value;

interface Options {
  /** Let values have other types than the event's, and objects be replaced by other values. */
  readonly wrongTypes: boolean;
}

/** A value of the field's type, or (with wrongTypes, rarely) any JSON value. */
function typed(arbitrary: fc.Arbitrary<J>, o: Options): fc.Arbitrary<J> {
  return o.wrongTypes
    ? fc.oneof({ weight: 40, arbitrary }, { weight: 1, arbitrary: anyJson })
    : arbitrary;
}
const s = (o: Options) => typed(text.map(str), o);
const n = (o: Options) => typed(numberText.map(num), o);
const strings = (o: Options) =>
  typed(
    fc.array(text.map(str), { maxLength: 4 }).map((items): J => ({ t: 'array', items })),
    o,
  );

/**
 * An object with members from `fields` (those in `optional` may be left out or null), extra
 * unknown keys, duplicates of some keys (an earlier value JSON.parse discards) and any order.
 */
function members(
  fields: Readonly<Record<string, fc.Arbitrary<J>>>,
  optional: readonly string[],
  o: Options,
): fc.Arbitrary<J> {
  const entries = Object.entries(fields).map(([key, arbitrary]) =>
    optional.includes(key)
      ? fc.oneof(
          { weight: 3, arbitrary: arbitrary.map((v) => [[key, v] as const]) },
          { weight: 1, arbitrary: fc.constant([]) },
          { weight: 1, arbitrary: fc.constant([[key, nul] as const]) },
        )
      : arbitrary.map((v) => [[key, v] as const]),
  );
  return fc
    .tuple(
      fc.tuple(...entries),
      fc.array(
        fc.tuple(fc.constantFrom('extra', 'x-unknown', 'éxtra', '__proto__', 'Id'), anyJson),
        {
          maxLength: 2,
        },
      ),
      fc.array(
        fc.tuple(
          fc.constantFrom(...Object.keys(fields)),
          o.wrongTypes ? anyJson : fc.constant(nul),
        ),
        {
          maxLength: 2,
        },
      ),
      fc.boolean(),
      fc.nat(),
    )
    .map(([present, extra, dupes, shuffle, seed]) => {
      const list: (readonly [string, J])[] = present.flat();
      // A duplicate goes before the member it duplicates, so the member's own value wins.
      for (const [key, value] of dupes) {
        const at = list.findIndex(([k]) => k === key);
        if (at >= 0) list.splice(at, 0, [key, value]);
      }
      list.push(...extra);
      if (shuffle) {
        const rnd = random(seed);
        for (let i = list.length - 1; i > 0; i--) {
          const j = Math.floor(rnd() * (i + 1));
          [list[i], list[j]] = [list[j]!, list[i]!];
        }
        // Shuffling may put a duplicate after its member; keep the member's value last.
        const last = new Map<string, J>();
        for (const [k, v] of present.flat()) last.set(k, v);
        const seen = new Set<string>();
        for (let i = list.length - 1; i >= 0; i--) {
          const [k] = list[i]!;
          if (!last.has(k) || seen.has(k)) continue;
          seen.add(k);
          list[i] = [k, last.get(k)!];
        }
      }
      return obj(list);
    });
}

const error = (o: Options) =>
  typed(fc.option(members({ code: s(o), message: s(o) }, ['code', 'message'], o), { nil: nul }), o);
const people = (o: Options) =>
  typed(
    fc
      .array(members({ subject: s(o), email: s(o) }, [], o), { maxLength: 3 })
      .map((items): J => ({ t: 'array', items })),
    o,
  );

/** A SessionEvent as JSON, any type, any optional part present, absent or null. */
function eventJson(o: Options): fc.Arbitrary<J> {
  const t = fc.constantFrom(
    'session.start',
    'statement',
    'approval.requested',
    'approval.granted',
    'approval.denied',
    'approval.expired',
    'approval.withdrawn',
    'session.end',
    'auth.failed',
  );
  return members(
    {
      schema: n(o),
      id: typed(fc.oneof(fc.uuid().map(str), text.map(str)), o),
      type: typed(t.map(str), o),
      timeUs: typed(timeText.map(num), o),
      sessionId: s(o),
      seq: n(o),
      person: typed(
        members({ subject: s(o), email: s(o), name: s(o), groups: strings(o) }, ['name'], o),
        o,
      ),
      agent: typed(members({ id: s(o), name: s(o) }, ['id', 'name'], o), o),
      authMethod: s(o),
      resource: s(o),
      protocol: s(o),
      upstreamUser: s(o),
      client: typed(
        members(
          {
            address: s(o),
            port: n(o),
            application: s(o),
            user: s(o),
            tls: typed(fc.constantFrom<J>({ t: 'true' }, { t: 'false' }), o),
          },
          ['tls'],
          o,
        ),
        o,
      ),
      statement: typed(
        members(
          {
            text: s(o),
            protocol: s(o),
            preparedName: s(o),
            params: n(o),
            tag: s(o),
            rows: n(o),
            bytes: n(o),
            durationUs: n(o),
            error: error(o),
            kind: s(o),
            fingerprint: s(o),
            tables: strings(o),
            verdict: s(o),
            rule: s(o),
            masked: typed(
              members({ values: n(o), columns: strings(o) }, ['values', 'columns'], o),
              o,
            ),
          },
          [
            ...['text', 'protocol', 'preparedName', 'params', 'tag', 'rows', 'bytes'],
            ...['durationUs', 'error', 'kind', 'fingerprint', 'tables', 'verdict', 'rule'],
            'masked',
          ],
          o,
        ),
        o,
      ),
      approval: typed(
        members(
          { text: s(o), kind: s(o), rule: s(o), message: s(o), id: s(o) },
          ['text', 'kind', 'rule', 'message', 'id'],
          o,
        ),
        o,
      ),
      approvalDecision: typed(
        members(
          { id: s(o), by: people(o), reason: s(o), waitedUs: n(o) },
          ['id', 'reason', 'waitedUs'],
          o,
        ),
        o,
      ),
      summary: typed(
        members(
          {
            reason: s(o),
            statements: n(o),
            rows: n(o),
            bytesFromClient: n(o),
            bytesToClient: n(o),
            durationUs: n(o),
            error: error(o),
          },
          [
            'reason',
            'statements',
            'rows',
            'bytesFromClient',
            'bytesToClient',
            'durationUs',
            'error',
          ],
          o,
        ),
        o,
      ),
      authFailure: typed(members({ reason: s(o), code: s(o) }, ['reason', 'code'], o), o),
      accessGrant: typed(
        members({ id: s(o), endsUs: n(o), by: people(o) }, ['id', 'endsUs'], o),
        o,
      ),
    },
    ['agent', 'statement', 'approval', 'approvalDecision', 'summary', 'authFailure', 'accessGrant'],
    o,
  );
}

const spelling = fc.record({
  escapes: fc.constantFrom(0, 0.05, 0.3, 1),
  spaces: fc.constantFrom(0, 0.1, 0.5),
  escapeKeys: fc.constant(false),
});

describe('EventTsvTranscoder', () => {
  it(
    'writes the oracle line for every well-typed event, however it is spelled',
    { timeout: 60_000 },
    () => {
      fc.assert(
        fc.property(eventJson({ wrongTypes: false }), spelling, fc.nat(), (event, how, seed) => {
          const json = Buffer.from(spell(event, random(seed), how), 'utf8');
          expect(oracle(json, COLUMNS.legacy18)).not.toBe(null);
          const { declined } = check(json);
          expect(declined, json.toString()).toBe(0);
        }),
        { numRuns: RUNS },
      );
    },
  );

  it(
    'writes the oracle line or declines for events with values of any type',
    { timeout: 60_000 },
    () => {
      let transcoded = 0;
      let declined = 0;
      fc.assert(
        fc.property(
          eventJson({ wrongTypes: true }),
          fc.tuple(spelling, fc.constantFrom(false, false, false, true)).map(([s, escapeKeys]) => ({
            ...s,
            escapeKeys,
          })),
          fc.nat(),
          (event, how, seed) => {
            const result = check(Buffer.from(spell(event, random(seed), how), 'utf8'));
            transcoded += result.transcoded;
            declined += result.declined;
          },
        ),
        { numRuns: RUNS },
      );
      // Many such events still have the expected types throughout: both outcomes are exercised.
      expect(transcoded).toBeGreaterThan(RUNS / 4);
      expect(declined).toBeGreaterThan(RUNS / 4);
    },
  );

  it(
    'writes the oracle line or declines for damaged text: truncated, cut, spliced, invalid UTF-8',
    { timeout: 60_000 },
    () => {
      fc.assert(
        fc.property(
          eventJson({ wrongTypes: false }),
          fc.nat(),
          fc.nat(),
          fc.constantFrom('truncate', 'delete', 'insert', 'replace', 'bytes'),
          fc.constantFrom(
            ...'{}[]",:\\ -.0eEtfnu\u0000\u001f\t\n'.split(''),
            'tru',
            'nul',
            '\\x',
            '\\u12',
            '01',
          ),
          (event, at, seed, how, junk) => {
            const text = spell(event, random(seed), {
              escapes: 0.05,
              spaces: 0.1,
              escapeKeys: false,
            });
            let bytes = Buffer.from(text, 'utf8');
            const i = at % (bytes.length + 1);
            if (how === 'truncate') bytes = bytes.subarray(0, i);
            else if (how === 'delete')
              bytes = Buffer.concat([bytes.subarray(0, i), bytes.subarray(i + 1)]);
            else if (how === 'insert')
              bytes = Buffer.concat([bytes.subarray(0, i), Buffer.from(junk), bytes.subarray(i)]);
            else if (how === 'replace')
              bytes = Buffer.concat([
                bytes.subarray(0, i),
                Buffer.from(junk),
                bytes.subarray(i + junk.length),
              ]);
            else
              bytes = Buffer.concat([
                bytes.subarray(0, i),
                Buffer.from([[0xff, 0xc0, 0xed, 0x80, 0xf4][seed % 5]!]),
                bytes.subarray(i),
              ]);
            check(bytes);
          },
        ),
        { numRuns: RUNS },
      );
    },
  );

  it("writes the fixture sessions' events as the oracle does, spelled as JSON.stringify does", () => {
    for (const event of fixtureEvents()) {
      const { declined } = check(Buffer.from(JSON.stringify(event)));
      expect(declined).toBe(0);
    }
  });

  const base = JSON.parse(
    JSON.stringify(fixtureEvents().find((e) => e.statement !== undefined)),
  ) as Record<string, unknown>;
  const json = (value: unknown) => Buffer.from(JSON.stringify(value));

  it.each([
    [
      'a string with every escape',
      { ...base, resource: '\t\n\r\0\\"\'/\b\f\u0001\u2028😀\ud800x\udc00' },
    ],
    [
      'a surrogate pair spelled as two escapes',
      Buffer.from(
        JSON.stringify(base).replace('"resource":"', '"resource":"\\ud83d\\ude00\\uD834\\uDD1E'),
      ),
    ],
    [
      'lone surrogates around a pair',
      Buffer.from(
        JSON.stringify(base).replace(
          '"resource":"',
          '"resource":"\\udc00\\ud83d\\ud83d\\ude00\\ud800',
        ),
      ),
    ],
    [
      'a high surrogate at the end of an array element',
      { ...base, person: { ...(base.person as object), groups: ['a\ud800', '\udc00b', "it's"] } },
    ],
    [
      'numbers printed differently from their text',
      Buffer.from(
        JSON.stringify(base)
          .replace(/"seq":\d+/, '"seq":1E3')
          .replace(/"port":\d+/, '"port":-0'),
      ),
    ],
    [
      'integers past 2^53',
      Buffer.from(JSON.stringify(base).replace(/"seq":\d+/, '"seq":123456789012345678901')),
    ],
    ['a time before 1970', { ...base, timeUs: -1_500_001 }],
    ['a fractional time', { ...base, timeUs: 1.5 }],
    [
      'a time whose division rounds up to the next second',
      { ...base, timeUs: 8_999_999_999_999_999 },
    ],
    [
      'duplicate keys: the last counts',
      Buffer.from(
        JSON.stringify(base).replace(
          '{',
          '{"resource":"first","statement":{"text":"x","tables":["a"]},',
        ),
      ),
    ],
    [
      'a duplicate object replaced by null',
      Buffer.from(JSON.stringify(base).replace(/}$/, ',"statement":null}')),
    ],
    [
      'unknown keys, nested',
      Buffer.from(
        JSON.stringify(base).replace(
          '{',
          '{"x":{"y":[1,{"z":null}],"statement":{"text":"no"}},"__proto__":{"id":1},',
        ),
      ),
    ],
    ['tls missing', { ...base, client: { ...(base.client as object), tls: undefined } }],
    [
      'an approval id only on the decision',
      {
        ...base,
        approvalDecision: {
          id: 'apr_1',
          by: [{ subject: 's\t', email: "e'" }],
          reason: 'ok',
          waitedUs: 5,
        },
      },
    ],
    [
      'both approval ids',
      {
        ...base,
        approval: { text: 't', kind: 'k', rule: 'r', message: 'm', id: 'apr_a' },
        approvalDecision: { id: 'apr_b', by: [], reason: 'ok', waitedUs: 5 },
      },
    ],
    [
      'an access grant',
      {
        ...base,
        accessGrant: {
          id: 'acg_1',
          endsUs: 1e15,
          by: [
            { subject: 'a', email: 'b' },
            { subject: 'c', email: 'd' },
          ],
        },
      },
    ],
    [
      'apostrophes in arrays and NULs, which grow the most',
      {
        ...base,
        person: { ...(base.person as object), groups: ["'".repeat(500), '\0'.repeat(100)] },
      },
    ],
    ['whitespace everywhere', Buffer.from(JSON.stringify(base, null, '\t').replace(/\n/g, '\r\n'))],
    ['surrounding whitespace', Buffer.from(` \n${JSON.stringify(base)}\t\r\n`)],
  ])('matches the oracle: %s', (_name, input) => {
    const { declined } = check(Buffer.isBuffer(input) ? input : json(input));
    expect(declined).toBe(0);
  });

  it.each([
    ['not JSON', 'not json'],
    ['not an event', '{"schema":1}'],
    ['an array', '[1,2]'],
    ['empty', ''],
    ['a BOM first', `\ufeff${JSON.stringify(base)}`],
    ['trailing garbage', `${JSON.stringify(base)}x`],
    ['two objects', `${JSON.stringify(base)}{}`],
    ['a raw control character', JSON.stringify(base).replace('"resource":"', '"resource":"\u0001')],
    ['a bad escape', JSON.stringify(base).replace('"resource":"', '"resource":"\\x')],
    ['a short unicode escape', JSON.stringify(base).replace('"resource":"', '"resource":"\\u12"')],
    ['a leading zero', JSON.stringify(base).replace(/"seq":\d+/, '"seq":01')],
    ['a trailing comma', JSON.stringify(base).replace(/}$/, ',}')],
    ['an escaped key', JSON.stringify(base).replace('"resource"', '"\\u0072esource"')],
    ['a string where an object belongs', JSON.stringify({ ...base, statement: 'x' })],
    ['an array where an object belongs', JSON.stringify({ ...base, statement: [] })],
    ['a number where a string belongs', JSON.stringify({ ...base, resource: 5 })],
    ['null where a string belongs', JSON.stringify({ ...base, resource: null })],
    ['a missing required field', JSON.stringify({ ...base, resource: undefined })],
    [
      'a decision without by',
      JSON.stringify({ ...base, approvalDecision: { id: 'a', reason: 'r', waitedUs: 1 } }),
    ],
    [
      'a decision with a null approver',
      JSON.stringify({
        ...base,
        approvalDecision: { id: 'a', by: [null], reason: 'r', waitedUs: 1 },
      }),
    ],
    [
      'tls as a string',
      JSON.stringify({ ...base, client: { ...(base.client as object), tls: 'yes' } }),
    ],
    [
      'groups of numbers',
      JSON.stringify({ ...base, person: { ...(base.person as object), groups: [1] } }),
    ],
    [
      'deep nesting',
      JSON.stringify(base).replace('{', `{"x":${'['.repeat(100)}${']'.repeat(100)},`),
    ],
    ['a toString key where a string belongs', JSON.stringify({ ...base, id: { toString: 1 } })],
  ])('declines or matches: %s', (_name, input) => {
    check(Buffer.from(input));
  });

  it('declines what it cannot fit in the room given', () => {
    const input = json(base);
    const out = Buffer.alloc(40);
    expect(TRANSCODERS.legacy18.transcode(input, out, 0)).toBe(-1);
    // …and is fine again afterwards.
    expect(check(input).declined).toBe(0);
  });
});
