import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { SessionEvent } from '@portcullis/core';
import { canonicalJson } from './canonical-json.js';
import { fixtureEvents } from './events.fixture.js';
import { chainEvents, nextHeads, verifyChain, type ChainedEvent } from './hash-chain.js';

const KEY = Buffer.from('0123456789abcdef0123456789abcdef');
const events = fixtureEvents();
const chained = chainEvents(events, KEY);

describe('canonicalJson', () => {
  it('sorts keys at every depth, drops undefined, keeps array order', () => {
    expect(canonicalJson({ b: 1, a: { d: [3, { z: 1, y: null }], c: undefined }, é: 'x' })).toBe(
      '{"a":{"d":[3,{"y":null,"z":1}]},"b":1,"é":"x"}',
    );
  });

  it('is the same text whatever order the keys were added in, and parses back', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (value) => {
        const text = canonicalJson(value);
        expect(canonicalJson(JSON.parse(text))).toBe(text);
        const reversed = JSON.parse(JSON.stringify(value), (_k, v: unknown) =>
          v !== null && typeof v === 'object' && !Array.isArray(v)
            ? Object.fromEntries(Object.entries(v).reverse())
            : v,
        ) as unknown;
        expect(canonicalJson(reversed)).toBe(text);
      }),
    );
  });

  it('refuses values JSON cannot hold', () => {
    expect(() => canonicalJson({ a: Number.NaN })).toThrow(TypeError);
    expect(() => canonicalJson({ a: 1n })).toThrow(TypeError);
  });
});

describe('chainEvents and verifyChain', () => {
  it('links each session from an empty prev_hash and verifies clean', () => {
    const firsts = chained.filter((c) => c.event.seq === 0);
    expect(firsts.every((c) => c.prevHash === '')).toBe(true);
    for (let i = 1; i < chained.length; i++) {
      const c = chained[i]!;
      if (c.event.seq > 0) expect(c.prevHash).toBe(chained[i - 1]!.hash);
    }
    expect(verifyChain(chained, KEY)).toEqual([]);
  });

  it('chains a session across batches exactly as in one batch', () => {
    const first = chainEvents(events.slice(0, 7), KEY);
    const second = chainEvents(events.slice(7), KEY, nextHeads(new Map(), first));
    expect([...first, ...second]).toEqual(chained);
  });

  it('reports an event signed with another key as altered', () => {
    const other = chainEvents(events, 'another key');
    expect(verifyChain(other, KEY).every((i) => i.problem === 'altered')).toBe(true);
  });

  type Tamper = (rows: ChainedEvent[], at: number) => { rows: ChainedEvent[]; sessionId: string };
  const edit = (e: SessionEvent, n: number): SessionEvent => {
    switch (n % 4) {
      case 0:
        return { ...e, timeUs: e.timeUs + 1 };
      case 1:
        return { ...e, person: { ...e.person, email: 'someone@else.example' } };
      case 2:
        return { ...e, agent: e.agent === null ? { id: 'x', name: 'x' } : null };
      default:
        return e.statement === undefined
          ? { ...e, resource: e.resource + '-2' }
          : { ...e, statement: { ...e.statement, text: 'SELECT 1', verdict: 'allow' } };
    }
  };
  const tampers: Record<string, Tamper> = {
    alter: (rows, at) => {
      const c = rows[at]!;
      rows[at] = { ...c, event: edit(c.event, at) };
      return { rows, sessionId: c.event.sessionId };
    },
    remove: (rows, at) => {
      const [c] = rows.splice(at, 1);
      return { rows, sessionId: c!.event.sessionId };
    },
    insert: (rows, at) => {
      const c = rows[at]!;
      // A forged event claiming a seq already taken, chained to the right predecessor but
      // hashed without the key.
      const forged = { ...c, event: edit(c.event, at + 3), hash: c.hash.replace(/^./, 'f') };
      rows.splice(at + 1, 0, forged);
      return { rows, sessionId: c.event.sessionId };
    },
    reorder: (rows, at) => {
      // Swap with the next event of the same session.
      const c = rows[at]!;
      const j = rows.findIndex((r, k) => k > at && r.event.sessionId === c.event.sessionId);
      const k =
        j === -1
          ? rows.findLastIndex((r, i) => i < at && r.event.sessionId === c.event.sessionId)
          : j;
      [rows[at], rows[k]] = [rows[k]!, rows[at]!];
      return { rows, sessionId: c.event.sessionId };
    },
  };

  it('detects any single alteration, insertion or reorder, in the session it happened in', () => {
    fc.assert(
      fc.property(
        fc.constantFrom('alter', 'insert', 'reorder'),
        fc.nat({ max: chained.length - 1 }),
        (how, at) => {
          const { rows, sessionId } = tampers[how]!([...chained], at);
          const issues = verifyChain(rows, KEY);
          expect(issues.length).toBeGreaterThan(0);
          expect(issues.every((i) => i.sessionId === sessionId)).toBe(true);
        },
      ),
    );
  });

  it('detects any single removal but the last of a session; with the heads, that one too', () => {
    const heads = nextHeads(new Map(), chained);
    fc.assert(
      fc.property(fc.nat({ max: chained.length - 1 }), (at) => {
        const isLast = chained[at]!.event.seq === heads.get(chained[at]!.event.sessionId)!.seq;
        const { rows, sessionId } = tampers.remove!([...chained], at);
        const withHeads = verifyChain(rows, KEY, heads);
        expect(withHeads).toContainEqual(
          expect.objectContaining({ problem: 'removed', sessionId, seq: chained[at]!.event.seq }),
        );
        expect(verifyChain(rows, KEY).length > 0).toBe(!isLast);
      }),
    );
  });

  it('names the problem: altered, removed, inserted, reordered', () => {
    const sessionRows = chained.slice(0, 5);
    const { sessionId } = sessionRows[0]!.event;
    const problems = (rows: ChainedEvent[]): string[] =>
      verifyChain(rows, KEY).map((i) => `${i.problem}@${i.seq}`);
    expect(problems(tampers.alter!([...sessionRows], 2).rows)).toEqual(['altered@2']);
    expect(problems(tampers.remove!([...sessionRows], 2).rows)).toEqual(['removed@2']);
    expect(problems(tampers.insert!([...sessionRows], 2).rows)).toEqual(['inserted@2']);
    expect(problems(tampers.reorder!([...sessionRows], 2).rows)).toEqual([
      'removed@2',
      'reordered@2',
    ]);
    expect(verifyChain([], KEY, new Map([[sessionId, { seq: 4, hash: 'x' }]]))).toEqual([
      { problem: 'removed', sessionId, seq: 0, id: '' },
    ]);
  });
});
