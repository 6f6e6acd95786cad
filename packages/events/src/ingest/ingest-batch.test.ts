import { describe, expect, it } from 'vitest';
import { sessionOf } from '../ocsf/session-events.fixture.js';
import {
  assembleIngestChunks,
  classifyIngestMessage,
  nextOffset,
  type IngestMessage,
} from './ingest-batch.js';

const events = sessionOf(1, 10);

function native(offset: number, i = offset): IngestMessage {
  return {
    offset: String(offset),
    value: Buffer.from(JSON.stringify(events[i % events.length])),
    headers: { format: Buffer.from('native') },
  };
}

function ocsf(offset: number): IngestMessage {
  return {
    offset: String(offset),
    value: Buffer.from('{"class_uid":6005}'),
    headers: { format: 'ocsf' },
  };
}

describe('classifyIngestMessage', () => {
  it('takes native events, with or without the format header', () => {
    expect(classifyIngestMessage(native(0))).toEqual({ kind: 'event' });
    const { headers: _h, ...bare } = native(1);
    expect(classifyIngestMessage(bare)).toEqual({ kind: 'event' });
  });

  it('skips OCSF messages', () => {
    expect(classifyIngestMessage(ocsf(0))).toEqual({ kind: 'ocsf' });
  });

  it('names why a message is not an event', () => {
    const at = (value: string | null, format?: string): IngestMessage => ({
      offset: '0',
      value: value === null ? null : Buffer.from(value),
      ...(format === undefined ? {} : { headers: { format } }),
    });
    expect(classifyIngestMessage(at(null))).toEqual({ kind: 'invalid', reason: 'no value' });
    expect(classifyIngestMessage(at('not json'))).toEqual({ kind: 'invalid', reason: 'not JSON' });
    expect(classifyIngestMessage(at('{"id":"x"}'))).toEqual({
      kind: 'invalid',
      reason: 'no session id',
    });
    expect(classifyIngestMessage(at('{}', 'avro'))).toEqual({
      kind: 'invalid',
      reason: 'unknown format header "avro"',
    });
  });
});

describe('assembleIngestChunks', () => {
  it('cuts a partition batch into inserts of at most maxRows events, offsets as sequences', () => {
    const messages = Array.from({ length: 7 }, (_, i) => native(100 + i));
    const chunks = assembleIngestChunks(messages, 3);
    expect(chunks.map((c) => c.records.map((r) => r.sequence))).toEqual([
      [100, 101, 102],
      [103, 104, 105],
      [106],
    ]);
    expect(chunks.map((c) => c.lastOffset)).toEqual(['102', '105', '106']);
    expect(chunks[0]!.records[0]!.payload).toBe(messages[0]!.value);
  });

  it('lets skipped and invalid messages ride with their chunk, so every offset is committed once', () => {
    const messages = [
      ocsf(0),
      native(1),
      native(2),
      { offset: '3', value: Buffer.from('garbage') },
      native(4),
      ocsf(5),
      ocsf(6),
    ];
    const chunks = assembleIngestChunks(messages, 2);
    expect(chunks).toHaveLength(2);
    expect(chunks[0]).toMatchObject({ ocsf: 1, lastOffset: '3' });
    expect(chunks[0]!.records.map((r) => r.sequence)).toEqual([1, 2]);
    expect(chunks[0]!.invalid).toEqual([
      { offset: 3, reason: 'not JSON', payload: Buffer.from('garbage') },
    ]);
    expect(chunks[1]).toMatchObject({ ocsf: 2, lastOffset: '6', invalid: [] });
    expect(chunks[1]!.records.map((r) => r.sequence)).toEqual([4]);
  });

  it('makes one chunk without records for a batch of skipped messages only', () => {
    const chunks = assembleIngestChunks([ocsf(8), ocsf(9)], 10);
    expect(chunks).toEqual([{ records: [], invalid: [], ocsf: 2, lastOffset: '9' }]);
  });

  it('makes no chunk for no messages and refuses a row limit under 1', () => {
    expect(assembleIngestChunks([], 5)).toEqual([]);
    expect(() => assembleIngestChunks([], 0)).toThrow(RangeError);
  });
});

describe('nextOffset', () => {
  it('counts past what a Number holds exactly', () => {
    expect(nextOffset('41')).toBe('42');
    expect(nextOffset('9007199254740993')).toBe('9007199254740994');
  });
});
