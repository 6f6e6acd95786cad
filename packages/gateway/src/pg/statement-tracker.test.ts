import { describe, expect, it, vi } from 'vitest';
import type { StatementRecord } from '@portcullis/core';
import { BackendCode, FrameScanner } from '@portcullis/protocol-pg';
import { serialize } from 'pg-protocol';
import { ColumnRules } from '../masking/column-rules.js';
import type { StatementMask } from '../masking/masking-verdict.js';
import { ResultPlanner } from '../masking/result-planner.js';
import {
  StatementTracker,
  TRACKED_CLIENT_FRAMES,
  TRACKED_SERVER_FRAMES,
} from './statement-tracker.js';

/** A backend frame: type letter and body parts (strings become C strings). */
function server(type: string, ...parts: (string | Buffer)[]): Buffer {
  const body = Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(`${p}\0`) : p)));
  const head = Buffer.alloc(5);
  head[0] = type.charCodeAt(0);
  head.writeInt32BE(body.length + 4, 1);
  return Buffer.concat([head, body]);
}

const complete = (tag: string) => server('C', tag);
const ready = (status = 'I') => server('Z', Buffer.from(status));
const dataRow = (value: string) => {
  const v = Buffer.from(value);
  const body = Buffer.alloc(6 + v.length);
  body.writeInt16BE(1, 0);
  body.writeInt32BE(v.length, 2);
  v.copy(body, 6);
  return server('D', body);
};
const error = (code: string, message: string) =>
  server('E', Buffer.concat([Buffer.from(`SERROR\0C${code}\0M${message}\0`), Buffer.from([0])]));

/** Drives a tracker through scanners, as the relay does, with a fake clock. */
function session() {
  const records: StatementRecord[] = [];
  let clock = 1_000;
  const tracker = new StatementTracker({
    now: () => (clock += 10),
    judge: (text) => ({
      decision: { action: 'allow' as const, rule: 'default', message: '' },
      recordedText: text.replace(/'[^']*'/g, '?'),
      kind: 'test',
      fingerprint: 'f',
      tables: [],
      masks: null,
    }),
    onStatement: (r) => records.push(r),
  });
  const fromClient = new FrameScanner(
    { onFrame: (type, buf, start, end) => tracker.clientFrame(type, buf, start, end) },
    { maxFrameBytes: 1 << 20, assemble: TRACKED_CLIENT_FRAMES },
  );
  const fromServer = new FrameScanner(
    {
      onFrame: (type, buf, start, end, length) =>
        tracker.serverFrame(type, buf, start, end, length),
    },
    { maxFrameBytes: 1 << 20, assemble: TRACKED_SERVER_FRAMES },
  );
  return {
    records,
    tracker,
    client: (...frames: Buffer[]) => fromClient.push(Buffer.concat(frames)),
    server: (...frames: Buffer[]) => fromServer.push(Buffer.concat(frames)),
  };
}

describe('StatementTracker', () => {
  it('records a simple query with its tag, rows, bytes and redacted text', () => {
    const s = session();
    s.client(serialize.query("select name from t where id = 'x'"));
    s.server(
      server('T', Buffer.alloc(2)),
      dataRow('a'),
      dataRow('bb'),
      complete('SELECT 2'),
      ready(),
    );
    expect(s.records).toEqual([
      {
        text: 'select name from t where id = ?',
        protocol: 'simple',
        params: 0,
        tag: 'SELECT 2',
        rows: 2,
        bytes: dataRow('a').length + dataRow('bb').length,
        durationUs: expect.any(Number),
        error: null,
        kind: 'test',
        fingerprint: 'f',
        tables: [],
        verdict: 'allow',
        rule: 'default',
      },
    ]);
    expect(s.records[0]!.durationUs).toBeGreaterThan(0);
    expect(s.tracker.inFlight).toBe(0);
  });

  it('records one statement per command of a multi-statement query', () => {
    const s = session();
    s.client(serialize.query('insert into t values (1); update t set a = 2; select 1'));
    s.server(
      complete('INSERT 0 1'),
      complete('UPDATE 4'),
      dataRow('1'),
      complete('SELECT 1'),
      ready(),
    );
    expect(s.records.map((r) => [r.tag, r.rows])).toEqual([
      ['INSERT 0 1', 1],
      ['UPDATE 4', 4],
      ['SELECT 1', 1],
    ]);
  });

  it('records a failing simple query with its SQLSTATE and nothing after it', () => {
    const s = session();
    s.client(serialize.query('select 1; select nope; select 3'));
    s.server(
      dataRow('1'),
      complete('SELECT 1'),
      error('42703', 'column "nope" does not exist'),
      ready(),
    );
    expect(s.records.map((r) => [r.tag, r.error])).toEqual([
      ['SELECT 1', null],
      ['', { code: '42703', message: 'column "nope" does not exist' }],
    ]);
    expect(s.tracker.inFlight).toBe(0);
  });

  it('records nothing for an empty query', () => {
    const s = session();
    s.client(serialize.query(''));
    s.server(server('I'), ready());
    expect(s.records).toEqual([]);
    expect(s.tracker.inFlight).toBe(0);
  });

  it('follows named statements and portals through pipelined extended batches', () => {
    const s = session();
    s.client(
      serialize.parse({ name: 'q1', text: "select * from t where a = $1 and b = 'k'", types: [] }),
      serialize.bind({ statement: 'q1', portal: '', values: ['7'] }),
      serialize.execute({}),
      serialize.sync(),
      serialize.bind({ statement: 'q1', portal: 'p2', values: ['8'] }),
      serialize.execute({ portal: 'p2' }),
      serialize.sync(),
    );
    s.server(server('1'), server('2'), dataRow('x'), complete('SELECT 1'), ready());
    s.server(server('2'), complete('SELECT 0'), ready());
    expect(s.records.map((r) => [r.protocol, r.preparedName, r.params, r.text, r.rows])).toEqual([
      ['extended', 'q1', 1, 'select * from t where a = $1 and b = ?', 1],
      ['extended', 'q1', 1, 'select * from t where a = $1 and b = ?', 0],
    ]);
  });

  it('drops the executes an error skips, up to the Sync', () => {
    const s = session();
    s.client(
      serialize.parse({ text: 'select 1/0' }),
      serialize.bind({}),
      serialize.execute({}),
      serialize.parse({ text: 'select 2' }),
      serialize.bind({}),
      serialize.execute({}),
      serialize.sync(),
      serialize.parse({ text: 'select 3' }),
      serialize.bind({}),
      serialize.execute({}),
      serialize.sync(),
    );
    s.server(server('1'), server('2'), error('22012', 'division by zero'), ready());
    s.server(server('1'), server('2'), dataRow('3'), complete('SELECT 1'), ready());
    expect(s.records.map((r) => [r.text, r.error?.code ?? null])).toEqual([
      ['select 1/0', '22012'],
      ['select 3', null],
    ]);
    expect(s.tracker.inFlight).toBe(0);
  });

  it('reports a portal suspended by a row limit', () => {
    const s = session();
    s.client(
      serialize.parse({ text: 'select g' }),
      serialize.bind({}),
      serialize.execute({ rows: 2 }),
      serialize.sync(),
    );
    s.server(server('1'), server('2'), dataRow('1'), dataRow('2'), server('s'), ready());
    expect(s.records.map((r) => [r.tag, r.rows])).toEqual([['', 2]]);
  });

  it('forgets closed statements', () => {
    const s = session();
    s.client(
      serialize.parse({ name: 'gone', text: 'select 1' }),
      serialize.close({ type: 'S', name: 'gone' }),
    );
    s.client(serialize.bind({ statement: 'gone' }), serialize.execute({}), serialize.sync());
    s.server(
      server('1'),
      server('3'),
      error('26000', 'prepared statement "gone" does not exist'),
      ready(),
    );
    expect(s.records.map((r) => [r.text, r.error?.code])).toEqual([['', '26000']]);
  });

  it('counts COPY data returned and takes rows from the tag', () => {
    const s = session();
    s.client(serialize.query('copy t to stdout'));
    s.server(
      server('H', Buffer.from([0, 0, 0])),
      server('d', Buffer.from('a\n')),
      server('d', Buffer.from('b\n')),
      server('c'),
    );
    s.server(complete('COPY 2'), ready());
    expect(s.records.map((r) => [r.tag, r.rows, r.bytes])).toEqual([['COPY 2', 2, 14]]);
  });

  it('records a function call', () => {
    const s = session();
    const call = Buffer.alloc(4 + 2 + 2 + 2);
    call.writeInt32BE(2026, 0);
    s.client(server('F', call));
    s.server(server('V', Buffer.from([0, 0, 0, 4, 0, 0, 0, 1])), ready());
    expect(s.records.map((r) => [r.protocol, r.text, r.tag])).toEqual([
      ['function-call', '<function call oid=2026>', 'FUNCTION CALL'],
    ]);
  });

  it('gives the same records whatever the chunking', () => {
    const clientBytes = Buffer.concat([
      serialize.parse({ name: 'a', text: 'select $1' }),
      serialize.bind({ statement: 'a', values: ['1'] }),
      serialize.execute({}),
      serialize.sync(),
      serialize.query('select 2; select 3'),
    ]);
    const serverBytes = Buffer.concat([
      server('1'),
      server('2'),
      dataRow('1'),
      complete('SELECT 1'),
      ready(),
      dataRow('2'),
      complete('SELECT 1'),
      dataRow('3'),
      complete('SELECT 1'),
      ready(),
    ]);
    const whole = session();
    whole.client(clientBytes);
    whole.server(serverBytes);
    for (const size of [1, 3, 7, 64]) {
      const split = session();
      for (let i = 0; i < clientBytes.length; i += size)
        split.client(clientBytes.subarray(i, i + size));
      for (let i = 0; i < serverBytes.length; i += size)
        split.server(serverBytes.subarray(i, i + size));
      const shape = (r: StatementRecord) => [r.text, r.tag, r.rows, r.bytes];
      expect(split.records.map(shape)).toEqual(whole.records.map(shape));
    }
    expect(whole.records).toHaveLength(3);
  });
});

/** A RowDescription of text columns: [name, tableOid, attnum, typeOid, format]. */
function rowDescription(...fields: [string, number, number, number, number][]): Buffer {
  const parts: Buffer[] = [Buffer.alloc(2)];
  parts[0]!.writeInt16BE(fields.length);
  for (const [name, tableOid, attnum, typeOid, format] of fields) {
    const f = Buffer.alloc(18);
    f.writeUInt32BE(tableOid, 0);
    f.writeInt16BE(attnum, 4);
    f.writeUInt32BE(typeOid, 6);
    f.writeInt16BE(-1, 10);
    f.writeInt32BE(-1, 12);
    f.writeInt16BE(format, 16);
    parts.push(Buffer.from(`${name}\0`), f);
  }
  return server('T', Buffer.concat(parts));
}

/** A masking session: `masks` says what the judge returns for every text. */
function maskingSession(masksFor: (text: string) => readonly StatementMask[] | null) {
  const records: StatementRecord[] = [];
  const planner = new ResultPlanner({
    rules: ColumnRules.forPerson(
      [
        {
          name: 'secret',
          columns: ['public.t.secret'],
          names: [],
          style: { kind: 'redact' },
          shaping: 'refuse',
          exemptGroups: [],
        },
      ],
      [],
    ),
    locate: (oid, attnum) =>
      oid === 777 && attnum === 2 ? { schema: 'public', table: 't', column: 'secret' } : null,
    hashKey: null,
    detector: null,
  });
  const tracker = new StatementTracker({
    now: () => 0,
    judge: (text) => ({
      decision: { action: 'allow' as const, rule: 'default', message: '' },
      recordedText: text,
      kind: 'select',
      fingerprint: 'f',
      tables: [],
      masks: masksFor(text),
    }),
    onStatement: (r) => records.push(r),
    planner,
  });
  const scan = (
    onFrame: (type: number, buf: Buffer, start: number, end: number, length: number) => void,
    assemble: readonly number[],
  ) => new FrameScanner({ onFrame }, { maxFrameBytes: 1 << 20, assemble });
  const plans: (string | null)[] = [];
  const fromClient = scan(
    (type, buf, start, end) => void tracker.clientFrame(type, buf, start, end),
    TRACKED_CLIENT_FRAMES,
  );
  const fromServer = scan(
    (type, buf, start, end, length) => {
      tracker.serverFrame(type, buf, start, end, length);
      if (type === 0x44) plans.push(JSON.stringify(tracker.plan?.rowSpec?.actions ?? null));
    },
    [...TRACKED_SERVER_FRAMES, 0x44],
  );
  return {
    records,
    tracker,
    plans,
    client: (...frames: Buffer[]) => fromClient.push(Buffer.concat(frames)),
    server: (...frames: Buffer[]) => fromServer.push(Buffer.concat(frames)),
  };
}

const mask = (...actions: (null | 'redact')[]): StatementMask => ({
  actions: actions.map((a) => (a === null ? null : { kind: a })),
  rules: actions.map((a) => (a === null ? null : 'secret')),
  names: actions.map((_, i) => `c${i}`),
  copy: null,
});

describe('StatementTracker result plans (masking)', () => {
  it('plans each statement of a multi-statement query with its own mask', () => {
    const s = maskingSession(() => [mask('redact'), mask(null)]);
    s.client(serialize.query('select secret from t; select 1'));
    s.server(
      rowDescription(['secret', 0, 0, 25, 0]),
      dataRow('x'),
      complete('SELECT 1'),
      rowDescription(['?column?', 0, 0, 25, 0]),
      dataRow('1'),
      complete('SELECT 1'),
      ready(),
    );
    expect(s.plans).toEqual(['[{"kind":"redact"}]', '[null]']);
    expect(s.tracker.plan).toBeNull();
  });

  it('masks a described table column the lineage missed (by table OID and attnum)', () => {
    const s = maskingSession(() => [mask(null, null)]);
    s.client(serialize.query('select id, secret from t'));
    s.server(rowDescription(['id', 777, 1, 23, 0], ['secret', 777, 2, 25, 0]), dataRow('1'));
    expect(s.plans).toEqual(['[null,{"kind":"redact"}]']);
  });

  it('plans an Execute without Describe from the statement described earlier and the bound formats', () => {
    const s = maskingSession(() => [mask(null, 'redact')]);
    s.client(
      serialize.parse({ name: 's1', text: 'select id, secret from t' }),
      serialize.describe({ type: 'S', name: 's1' }),
      serialize.sync(),
    );
    s.server(
      server('1'),
      server('t', Buffer.from([0, 0])),
      rowDescription(['id', 777, 1, 23, 0], ['secret', 777, 2, 25, 0]),
      ready(),
    );
    s.client(
      serialize.bind({ portal: '', statement: 's1', values: [], binary: true }),
      serialize.execute({ portal: '' }),
      serialize.sync(),
    );
    s.server(server('2'), server('D', Buffer.from([0, 2, 0, 0, 0, 1, 0x31, 0, 0, 0, 1, 0x78])));
    const plan = s.tracker.plan!;
    expect(plan.rowSpec?.columns).toEqual([
      { typeOid: 23, format: 1 },
      { typeOid: 25, format: 1 },
    ]);
    expect(plan.rowSpec?.actions).toEqual([null, { kind: 'redact' }]);
    s.server(complete('SELECT 1'), ready());
    expect(s.tracker.plan).toBeNull();
  });

  it('keeps the plan while the portal is described the same before every Execute, and re-plans when it changes', () => {
    const s = maskingSession(() => [mask(null, null)]);
    const planned = vi.spyOn(ResultPlanner.prototype, 'rows');
    s.client(serialize.parse({ name: 's1', text: 'select id, secret from t' }), serialize.sync());
    s.server(server('1'), ready());
    const run = (...columns: [string, number, number, number, number][]) => {
      s.client(
        serialize.bind({ portal: '', statement: 's1', values: [] }),
        serialize.describe({ type: 'P', name: '' }),
        serialize.execute({ portal: '' }),
        serialize.sync(),
      );
      s.server(server('2'), rowDescription(...columns));
      s.server(server('D', Buffer.from([0, 2, 0, 0, 0, 1, 0x31, 0, 0, 0, 1, 0x78])));
      const plan = s.tracker.plan!;
      s.server(complete('SELECT 1'), ready());
      return plan;
    };
    const first = run(['id', 777, 1, 23, 0], ['secret', 0, 0, 25, 0]);
    expect(run(['id', 777, 1, 23, 0], ['secret', 0, 0, 25, 0])).toBe(first);
    expect(planned).toHaveBeenCalledTimes(1);
    const changed = run(['id', 777, 1, 23, 0], ['secret', 777, 2, 25, 0]);
    expect(changed).not.toBe(first);
    expect(changed.rowSpec?.actions).toEqual([null, { kind: 'redact' }]);
    expect(planned).toHaveBeenCalledTimes(2);
    planned.mockRestore();
  });

  it('redacts every column of a result it cannot attribute (fail closed)', () => {
    const s = maskingSession(() => null);
    s.client(serialize.query('select a, b'));
    s.server(rowDescription(['a', 0, 0, 25, 0], ['b', 0, 0, 25, 0]), dataRow('x'));
    expect(s.plans).toEqual(['[{"kind":"redact"},{"kind":"redact"}]']);
  });

  it('redacts every column when the result does not match the lineage', () => {
    const s = maskingSession(() => [mask(null)]);
    s.client(serialize.query('select a, b'));
    s.server(rowDescription(['a', 0, 0, 25, 0], ['b', 0, 0, 25, 0]), dataRow('x'));
    expect(s.plans).toEqual(['[{"kind":"redact"},{"kind":"redact"}]']);
  });

  it('records masked counts and column names', () => {
    const s = maskingSession(() => [mask('redact')]);
    s.client(serialize.query('select secret from t'));
    s.server(rowDescription(['secret', 0, 0, 25, 0]), dataRow('x'));
    s.tracker.noteMasked(1, [0]);
    s.server(dataRow('y'));
    s.tracker.noteMasked(1, [0]);
    s.server(complete('SELECT 2'), ready());
    expect(s.records[0]!.masked).toEqual({ values: 2, columns: ['c0'] });
  });
});

describe('StatementTracker: what an Execute runs', () => {
  /** A tracker whose judge reviews DELETEs and allows the rest. */
  function reviewing() {
    const tracker = new StatementTracker({
      now: () => 0,
      judge: (text) => ({
        decision: text.startsWith('delete')
          ? { action: 'review' as const, rule: 'r', message: 'needs approval' }
          : { action: 'allow' as const, rule: 'default', message: '' },
        recordedText: text,
        kind: text.split(' ')[0]!,
        fingerprint: '',
        tables: [],
        masks: null,
      }),
      onStatement: () => undefined,
    });
    const scanner = new FrameScanner(
      {
        onFrame: (type, buf, start, end) => {
          last = tracker.clientFrame(type, buf, start, end);
        },
      },
      { maxFrameBytes: 1 << 20, assemble: TRACKED_CLIENT_FRAMES },
    );
    let last: ReturnType<StatementTracker['clientFrame']> = null;
    return {
      tracker,
      send: (frame: Buffer) => {
        scanner.push(frame);
        return last;
      },
    };
  }

  it('judges an Execute by the statement its portal was bound to, not a later Parse', () => {
    const t = reviewing();
    t.send(serialize.parse({ text: 'delete from t' }));
    expect(t.send(serialize.bind({ portal: 'p' }))?.decision.action).toBe('review');
    t.send(serialize.parse({ text: 'select 1' }));
    expect(t.send(serialize.execute({ portal: 'p' }))?.kind).toBe('delete');
    expect(t.send(serialize.execute({ portal: 'nope' }))).toBeNull();
  });

  it('does not judge again the Executes of an approved portal, until it is bound anew', () => {
    const t = reviewing();
    t.send(serialize.parse({ text: 'delete from t' }));
    t.send(serialize.bind({ portal: 'p' }));
    t.tracker.approvePortal('p');
    expect(t.send(serialize.execute({ portal: 'p', rows: 10 }))).toBeNull();
    t.send(serialize.bind({ portal: 'p' }));
    expect(t.send(serialize.execute({ portal: 'p' }))?.decision.action).toBe('review');
  });

  it('counts batches and ReadyForQuery, and knows the first frame of a batch', () => {
    const t = reviewing();
    t.send(serialize.parse({ text: 'select 1' }));
    expect(t.tracker.batchStart).toBe(true);
    t.send(serialize.bind({}));
    expect(t.tracker.batchStart).toBe(false);
    t.send(serialize.sync());
    t.send(serialize.query('select 2'));
    expect(t.tracker.syncs).toBe(1);
    expect(t.tracker.pendingReadies).toBe(2);
    t.send(serialize.bind({}));
    expect(t.tracker.batchStart).toBe(true);
    t.tracker.serverFrame(BackendCode.ReadyForQuery, Buffer.from('I'), 0, 1, 1);
    expect(t.tracker.readies).toBe(1);
    expect(t.tracker.pendingReadies).toBe(1);
  });

  it('judges Binds of a statement the gateway replaced upstream by what it now holds', () => {
    const t = reviewing();
    t.send(serialize.parse({ text: 'select 1' }));
    t.tracker.statementReplaced('', t.send(serialize.parse({ name: 's', text: 'delete from t' }))!);
    expect(t.send(serialize.bind({}))?.decision.action).toBe('review');
  });
});
