import { MessageChannel, receiveMessageOnPort } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { Piscina } from 'piscina';
import { compileCopyPlan, rewriteCopyData, type RowPlanSpec } from '@portcullis/masking';
import type { MaskReply, MaskTask } from './masking-contract.js';
import maskChunk, { rewriteCopyFrames } from './masking-worker.js';

function frame(type: string, body: string, encoding: BufferEncoding = 'utf8'): Buffer {
  const bytes = Buffer.from(body, encoding);
  const out = Buffer.alloc(5 + bytes.length);
  out.write(type, 0, 'latin1');
  out.writeInt32BE(4 + bytes.length, 1);
  bytes.copy(out, 5);
  return out;
}

function row(values: readonly string[]): Buffer {
  const parts: Buffer[] = [Buffer.from([0, values.length])];
  for (const v of values) {
    const len = Buffer.alloc(4);
    len.writeInt32BE(Buffer.byteLength(v));
    parts.push(len, Buffer.from(v));
  }
  return frame('D', Buffer.concat(parts).toString('latin1'), 'latin1');
}

let plans = 0;

/** A task with a plan id of its own (the worker caches plans by id). */
function task(bytes: Buffer, spec: RowPlanSpec): MaskTask {
  const buffer = new ArrayBuffer(bytes.length);
  bytes.copy(Buffer.from(buffer));
  return {
    kind: 'rows',
    planId: `w${plans++}`,
    spec,
    buffer,
    length: bytes.length,
    start: 0,
    end: bytes.length,
  };
}

/** What Piscina does with a handler's return value, then a postMessage as it does it. */
function post(value: unknown): { reply: MaskReply; transferred: unknown[] } {
  let reply = value as MaskReply;
  let transferred: unknown[] = [];
  const movable = value as Record<symbol, unknown>;
  if (value !== null && typeof value === 'object' && Piscina.transferableSymbol in movable) {
    transferred = movable[Piscina.transferableSymbol] as unknown[];
    reply = movable[Piscina.valueSymbol] as MaskReply;
  }
  const { port1, port2 } = new MessageChannel();
  port1.postMessage(reply, transferred as ArrayBuffer[]);
  const received = receiveMessageOnPort(port2)!.message as MaskReply;
  port1.close();
  return { reply: received, transferred };
}

describe('masking worker replies', () => {
  it('transfers the input and the output back at the top level (nothing copied)', () => {
    const bytes = Buffer.concat([row(['1', 'ann@example.com']), row(['2', 'bob@example.com'])]);
    const t = task(bytes, { actions: [null, { kind: 'redact' }] });
    const value = maskChunk(t);
    const inner = (value as Record<symbol, MaskReply>)[Piscina.valueSymbol]!;
    expect(inner.ok).toBe(true);
    const sentOutput = inner.ok ? inner.output! : null;
    const { reply, transferred } = post(value);
    // Both buffers were in the transfer list, so posting detached them on the worker's side.
    expect(transferred.length).toBe(2);
    expect(transferred[0]).toBe(t.buffer);
    expect(transferred[1]).toBe(sentOutput);
    expect(t.buffer.byteLength).toBe(0);
    expect(sentOutput!.byteLength).toBe(0);
    expect(reply.ok).toBe(true);
    if (!reply.ok) return;
    expect(Buffer.from(reply.buffer).equals(bytes)).toBe(true);
    const output = Buffer.from(reply.output!, 0, reply.outputLength);
    expect(output.includes('ann@example.com')).toBe(false);
    expect(output.includes('****')).toBe(true);
  });

  it('transfers only the input when nothing changed', () => {
    const bytes = row(['1', 'x']);
    const t = task(bytes, { actions: [null, null] });
    const { reply, transferred } = post(maskChunk(t));
    expect(transferred.length).toBe(1);
    expect(transferred[0]).toBe(t.buffer);
    expect(t.buffer.byteLength).toBe(0);
    expect(reply.ok && reply.output).toBeNull();
  });

  it('answers errors as { code, message }', () => {
    const bytes = row(['1']);
    const { reply } = post(maskChunk(task(bytes, { actions: [null, { kind: 'redact' }] })));
    expect(reply).toEqual({
      ok: false,
      code: 'PCL_ERR_PROTOCOL_MALFORMED',
      message: expect.stringMatching(/1 columns where the result set has 2/),
    });
  });
});

describe('rewriteCopyFrames', () => {
  const plan = () => compileCopyPlan({ format: 'text', actions: [{ kind: 'redact' }] });

  it('matches rewriteCopyData frame by frame and passes CopyDone through', () => {
    const frames = [frame('d', 'a\n'), frame('d', '\\N\n'), frame('d', 'b\n'), frame('c', '')];
    const bytes = Buffer.concat(frames);
    const r = rewriteCopyFrames(bytes, 0, bytes.length, plan(), false);
    const expected = Buffer.concat(
      frames.map((f) =>
        f[0] === 0x64 ? (rewriteCopyData(f, 5, f.length, plan())?.frame ?? f) : f,
      ),
    );
    expect(r.consumed).toBe(bytes.length);
    expect(r.frames).toBe(4);
    expect(r.rewrittenFrames).toBe(2);
    expect(r.output!.equals(expected)).toBe(true);
  });

  it('stops at an incomplete frame and at frame types it does not handle', () => {
    const a = frame('d', 'a\n');
    const bytes = Buffer.concat([a, frame('d', 'b\n')]);
    expect(rewriteCopyFrames(bytes, 0, bytes.length - 1, plan(), false).consumed).toBe(a.length);
    const withError = Buffer.concat([a, frame('E', 'SERROR\0\0'), a]);
    const r = rewriteCopyFrames(withError, 0, withError.length, plan(), false);
    expect(r.consumed).toBe(a.length);
    expect(r.frames).toBe(1);
  });

  it('returns null output when nothing changed', () => {
    const bytes = Buffer.concat([frame('d', '\\N\n'), frame('c', '')]);
    const r = rewriteCopyFrames(bytes, 0, bytes.length, plan(), false);
    expect(r.output).toBeNull();
    expect(r.consumed).toBe(bytes.length);
  });

  it('rejects a frame length below 4', () => {
    const bytes = Buffer.from([0x64, 0, 0, 0, 1, 0]);
    expect(() => rewriteCopyFrames(bytes, 0, bytes.length, plan(), false)).toThrow(/frame length/);
  });
});
