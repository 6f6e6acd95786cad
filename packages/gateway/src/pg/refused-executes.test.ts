import { describe, expect, it } from 'vitest';
import {
  BackendCode,
  FrameScanner,
  decodeExecute,
  errorResponse,
  FrontendCode,
} from '@portcullis/protocol-pg';
import { ChunkSplicer, RefusedExecutes } from './refused-executes.js';

const refusal = errorResponse({ severity: 'ERROR', code: '42501', message: 'refused' });

/** The server's answer to an Execute of a portal that does not exist. */
function portalMissing(portal: string, wording = (p: string) => `portal "${p}" does not exist`) {
  return errorResponse({ severity: 'ERROR', code: '34000', message: wording(portal) });
}

function portalOf(execute: Buffer): string {
  expect(execute[0]).toBe(FrontendCode.Execute);
  expect(execute.readInt32BE(1)).toBe(execute.length - 1);
  return decodeExecute(execute, 5, execute.length).portal;
}

describe('RefusedExecutes', () => {
  it('sends an Execute of a fresh portal and swaps the error naming it for the refusal, once', () => {
    const refused = new RefusedExecutes('pcl-x-');
    const portal = portalOf(refused.refuse(refusal));
    expect(portal).toBe('pcl-x-0');
    expect(refused.size).toBe(1);
    const error = portalMissing(portal);
    expect(refused.replacement(error, 5, error.length)).toBe(refusal);
    expect(refused.size).toBe(0);
    expect(refused.replacement(error, 5, error.length)).toBeNull();
  });

  it('matches a translated message, and never a name that only starts the same', () => {
    const refused = new RefusedExecutes('pcl-x-');
    const other = errorResponse({ severity: 'ERROR', code: '42501', message: 'other' });
    for (let i = 0; i < 11; i++) refused.refuse(i === 10 ? other : refusal);
    const tenth = portalMissing('pcl-x-10', (p) => `Portal »${p}« existiert nicht`);
    expect(refused.replacement(tenth, 5, tenth.length)).toBe(other);
    const first = portalMissing('pcl-x-1');
    expect(refused.replacement(first, 5, first.length)).toBe(refusal);
    expect(refused.size).toBe(9);
  });

  it('passes other errors on and forgets everything on clear', () => {
    const refused = new RefusedExecutes();
    refused.refuse(refusal);
    const unrelated = errorResponse({ severity: 'ERROR', code: '42P01', message: 'no table' });
    expect(refused.replacement(unrelated, 5, unrelated.length)).toBeNull();
    refused.clear();
    expect(refused.size).toBe(0);
  });

  it('names portals no other session can predict', () => {
    const a = portalOf(new RefusedExecutes().refuse(refusal));
    const b = portalOf(new RefusedExecutes().refuse(refusal));
    expect(a).not.toBe(b);
  });
});

/** A stream of server frames: a long DataRow, the error to replace, and frames around them. */
function stream(): { bytes: Buffer; error: Buffer } {
  const frame = (type: number, body: Buffer) => {
    const head = Buffer.alloc(5);
    head[0] = type;
    head.writeInt32BE(body.length + 4, 1);
    return Buffer.concat([head, body]);
  };
  const error = portalMissing('pcl-s-0');
  const bytes = Buffer.concat([
    frame(BackendCode.DataRow, Buffer.alloc(40, 7)),
    frame(BackendCode.CommandComplete, Buffer.from('SELECT 1\0')),
    frame(BackendCode.ParseComplete, Buffer.alloc(0)),
    error,
    frame(BackendCode.ReadyForQuery, Buffer.from('I')),
  ]);
  return { bytes, error };
}

/** Relays `bytes` cut at `cuts` through a scanner and a splicer, as the relay's spliced path. */
function relay(bytes: Buffer, cuts: number[], from: number, drop: number): Buffer[] {
  const splicer = new ChunkSplicer();
  const refused = new RefusedExecutes('pcl-s-');
  let chunk: Buffer = Buffer.alloc(0);
  let active = false;
  const scanner = new FrameScanner(
    {
      onFrame: (type, buf, start, end) => {
        if (!active) return;
        const frameStart = buf === chunk && start >= 5 ? start - 5 : -1;
        let replacement =
          type === BackendCode.ErrorResponse ? refused.replacement(buf, start, end) : null;
        if (type === drop) replacement = Buffer.alloc(0);
        splicer.frame(frameStart, scanner.frameEndInChunk, replacement);
      },
    },
    { maxFrameBytes: 1 << 20, assemble: [BackendCode.ErrorResponse] },
  );
  const written: Buffer[] = [];
  let at = 0;
  for (const cut of [...cuts, bytes.length]) {
    chunk = bytes.subarray(at, cut);
    at = cut;
    if (at > from && !active) {
      // Splicing starts between chunks, wherever the scanner stands.
      active = true;
      refused.refuse(refusal);
    }
    if (!active) {
      scanner.push(chunk);
      written.push(chunk);
      continue;
    }
    const out: Buffer[] = [];
    splicer.begin(chunk, scanner.atBoundary, out);
    scanner.push(chunk);
    splicer.finish(scanner.atBoundary, refused.size > 0);
    written.push(...out);
  }
  return written;
}

describe('ChunkSplicer', () => {
  it('replaces a frame however the stream is cut, never sending part of it first', () => {
    const { bytes, error } = stream();
    const at = bytes.indexOf(error);
    const expected = Buffer.concat([
      bytes.subarray(0, at),
      refusal,
      bytes.subarray(at + error.length),
    ]);
    for (let a = 1; a < bytes.length; a++) {
      for (let b = a; b < bytes.length; b += 7) {
        const cuts = a === b ? [a] : [a, b];
        // Splicing starts after the first chunk at the latest, before the error is sent.
        const out = relay(bytes, cuts, Math.min(a, at), -1);
        expect(Buffer.concat(out), `cuts ${cuts.join(',')}`).toEqual(expected);
      }
    }
  });

  it('drops a frame given an empty replacement', () => {
    const { bytes, error } = stream();
    const at = bytes.indexOf(error);
    const expected = Buffer.concat([
      bytes.subarray(0, at - 5),
      refusal,
      bytes.subarray(at + error.length),
    ]);
    for (let a = 1; a < bytes.length; a++) {
      const out = relay(bytes, [a], 0, BackendCode.ParseComplete);
      expect(Buffer.concat(out), `cut ${a}`).toEqual(expected);
    }
  });

  it('holds back nothing when no frame is pending', () => {
    const splicer = new ChunkSplicer();
    const out: Buffer[] = [];
    const chunk = Buffer.from([BackendCode.ParseComplete, 0, 0, 0, 4]);
    splicer.begin(chunk, true, out);
    expect(splicer.frame(0, 5, null)).toBe(false);
    splicer.finish(true, true);
    expect(out).toEqual([chunk]);
    expect(splicer.holding).toBe(false);
  });
});
