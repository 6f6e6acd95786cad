import { once } from 'node:events';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { isPortcullisError } from '@portcullis/core';
import { errorResponse, parameterStatus, readyForQuery } from '@portcullis/protocol-pg';
import { afterEach, describe, expect, it } from 'vitest';
import { UpstreamQueryError, runSimpleQuery } from './simple-query.js';

// A scripted server stands in for PostgreSQL so that chunking and leftovers are exact; the
// integration suite test/pg-catalog.test.ts runs the same function against a real server.

function frame(type: string, ...parts: Buffer[]): Buffer {
  const body = Buffer.concat(parts);
  const head = Buffer.alloc(5);
  head.write(type, 0, 'latin1');
  head.writeInt32BE(4 + body.length, 1);
  return Buffer.concat([head, body]);
}
const cstr = (s: string) => Buffer.from(`${s}\0`);
const i16 = (n: number) => {
  const b = Buffer.alloc(2);
  b.writeInt16BE(n);
  return b;
};
const i32 = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeInt32BE(n);
  return b;
};

function rowDescription(...names: string[]): Buffer {
  return frame(
    'T',
    i16(names.length),
    ...names.map((name, i) =>
      Buffer.concat([cstr(name), i32(16_384), i16(i + 1), i32(25), i16(-1), i32(-1), i16(0)]),
    ),
  );
}
function dataRow(...values: (string | null)[]): Buffer {
  return frame(
    'D',
    i16(values.length),
    ...values.map((v) =>
      v === null ? i32(-1) : Buffer.concat([i32(Buffer.byteLength(v)), Buffer.from(v)]),
    ),
  );
}
const commandComplete = (tag: string) => frame('C', cstr(tag));
const notice = frame('N', Buffer.from('SNOTICE\0Mhello\0\0'));

const ANSWER = Buffer.concat([
  notice,
  rowDescription('id', 'email'),
  dataRow('1', 'a@example.com'),
  dataRow('2', null),
  commandComplete('SELECT 2'),
  readyForQuery('I'),
]);
const EXTRA = Buffer.concat([parameterStatus('TimeZone', 'UTC'), readyForQuery('I')]);

const OPTIONS = { maxFrameBytes: 1 << 16, timeoutMs: 2_000 };

let server: Server | null = null;
const sockets: Socket[] = [];

afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  if (server !== null) await new Promise((r) => server!.close(r));
  server = null;
});

/** A server that answers each Query with `answer(n)` (n counts from 0); returns a connected client. */
async function scripted(answer: (n: number, peer: Socket) => void): Promise<Socket> {
  server = createServer((peer) => {
    sockets.push(peer);
    let n = 0;
    peer.on('data', () => answer(n++, peer));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  const client = connect({ host: '127.0.0.1', port });
  sockets.push(client);
  await once(client, 'connect');
  return client;
}

/** Reads from `socket` (left paused) until `n` bytes have come, starting with `first`. */
async function readOn(socket: Socket, first: Buffer, n: number): Promise<Buffer> {
  let got = first;
  if (got.length < n) {
    await new Promise<void>((resolve) => {
      const onData = (chunk: Buffer) => {
        got = Buffer.concat([got, chunk]);
        if (got.length >= n) {
          socket.off('data', onData);
          resolve();
        }
      };
      socket.on('data', onData);
      socket.resume();
    });
  }
  return got;
}

function listeners(socket: Socket): number[] {
  return ['data', 'error', 'close'].map((e) => socket.listenerCount(e));
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (err) {
    return err;
  }
  throw new Error('expected a rejection');
}

describe('runSimpleQuery', () => {
  it('returns the rows and hands over the bytes after ReadyForQuery, untouched', async () => {
    const client = await scripted((_n, peer) => peer.write(Buffer.concat([ANSWER, EXTRA])));
    const before = listeners(client);
    const result = await runSimpleQuery(client, 'SELECT id, email FROM t', OPTIONS);
    expect(result.columns).toEqual(['id', 'email']);
    expect(result.rows).toEqual([
      ['1', 'a@example.com'],
      ['2', null],
    ]);
    expect(result.resultSets[0]?.fields[1]).toMatchObject({ tableOid: 16_384, columnAttr: 2 });
    expect(result.status).toBe('I');
    expect(listeners(client)).toEqual(before);
    expect(client.isPaused()).toBe(true);
    // Whatever part of EXTRA came with the answer is leftover; the rest is still on the socket.
    expect(await readOn(client, result.leftover, EXTRA.length)).toEqual(EXTRA);
  });

  it('scans pending bytes first, splitting a leftover at the exact frame end', async () => {
    const whole = Buffer.concat([ANSWER, EXTRA]);
    for (const cut of [1, 7, ANSWER.length - 3, ANSWER.length, ANSWER.length + 2]) {
      const client = await scripted((_n, peer) => peer.write(whole.subarray(cut)));
      const result = await runSimpleQuery(client, 'SELECT 1', {
        ...OPTIONS,
        pending: whole.subarray(0, cut),
      });
      expect(result.rows, `cut ${cut}`).toHaveLength(2);
      expect(await readOn(client, result.leftover, EXTRA.length), `cut ${cut}`).toEqual(EXTRA);
      client.destroy();
      await new Promise((r) => server!.close(r));
      server = null;
    }
  });

  it('reads answers split at every byte', async () => {
    const client = await scripted((_n, peer) => {
      peer.setNoDelay(true);
      let i = 0;
      const next = () => {
        if (i < ANSWER.length) peer.write(ANSWER.subarray(i, ++i), () => setImmediate(next));
      };
      next();
    });
    const result = await runSimpleQuery(client, 'SELECT 1', OPTIONS);
    expect(result.rows).toEqual([
      ['1', 'a@example.com'],
      ['2', null],
    ]);
    expect(result.leftover).toHaveLength(0);
  });

  it('returns every result set of a multi-statement query, and ParameterStatus frames', async () => {
    const client = await scripted((_n, peer) =>
      peer.write(
        Buffer.concat([
          commandComplete('SET'),
          parameterStatus('application_name', 'x'),
          rowDescription('a'),
          dataRow('1'),
          commandComplete('SELECT 1'),
          commandComplete('BEGIN'),
          rowDescription('b', 'c'),
          commandComplete('SELECT 0'),
          readyForQuery('T'),
        ]),
      ),
    );
    const result = await runSimpleQuery(client, 'SET x = 1; SELECT 1; BEGIN; SELECT 2, 3', OPTIONS);
    expect(result.resultSets.map((r) => [r.columns, r.rows])).toEqual([
      [['a'], [['1']]],
      [['b', 'c'], []],
    ]);
    expect(result.columns).toEqual(['b', 'c']);
    expect(result.status).toBe('T');
    expect(result.parameterFrames).toEqual([parameterStatus('application_name', 'x')]);
  });

  it('rejects on ErrorResponse after ReadyForQuery, leaving the socket usable', async () => {
    const client = await scripted((n, peer) =>
      peer.write(
        n === 0
          ? Buffer.concat([
              errorResponse({ severity: 'ERROR', code: '42601', message: 'syntax error' }),
              readyForQuery('I'),
            ])
          : ANSWER,
      ),
    );
    const before = listeners(client);
    const err = await rejection(runSimpleQuery(client, 'SELEC 1', OPTIONS));
    expect(err).toBeInstanceOf(UpstreamQueryError);
    expect((err as UpstreamQueryError).fields.code).toBe('42601');
    expect((err as Error).message).toContain('42601 syntax error');
    expect(listeners(client)).toEqual(before);
    expect(client.destroyed).toBe(false);
    expect((await runSimpleQuery(client, 'SELECT 1', OPTIONS)).rows).toHaveLength(2);
  });

  it('rejects and destroys the socket when the server closes mid-answer', async () => {
    const client = await scripted((_n, peer) => peer.end(ANSWER.subarray(0, 20)));
    const err = await rejection(runSimpleQuery(client, 'SELECT 1', OPTIONS));
    expect(isPortcullisError(err, 'PCL_ERR_UPSTREAM_LOST')).toBe(true);
    expect(client.destroyed).toBe(true);
    expect(listeners(client).slice(0, 1)).toEqual([0]);
  });

  it('names a FATAL error that came before the close', async () => {
    const client = await scripted((_n, peer) =>
      peer.end(errorResponse({ severity: 'FATAL', code: '57P01', message: 'terminating' })),
    );
    const err = await rejection(runSimpleQuery(client, 'SELECT 1', OPTIONS));
    expect(isPortcullisError(err, 'PCL_ERR_UPSTREAM_LOST')).toBe(true);
    expect((err as Error).message).toContain('57P01 terminating');
  });

  it('times out, destroying the socket', async () => {
    const client = await scripted((_n, peer) => peer.write(ANSWER.subarray(0, 30)));
    const err = await rejection(runSimpleQuery(client, 'SELECT 1', { ...OPTIONS, timeoutMs: 50 }));
    expect(isPortcullisError(err, 'PCL_ERR_UPSTREAM_LOST')).toBe(true);
    expect((err as Error).message).toContain('50 ms');
    expect(client.destroyed).toBe(true);
  });

  it('refuses COPY and frames over the limit', async () => {
    const copy = await scripted((_n, peer) => peer.write(frame('G', Buffer.from([0]), i16(0))));
    expect(
      isPortcullisError(
        await rejection(runSimpleQuery(copy, 'COPY t FROM STDIN', OPTIONS)),
        'PCL_ERR_PROTOCOL_UNSUPPORTED',
      ),
    ).toBe(true);
    expect(copy.destroyed).toBe(true);
    await new Promise((r) => server!.close(r));
    server = null;
    const big = await scripted((_n, peer) => peer.write(ANSWER));
    expect(
      isPortcullisError(
        await rejection(runSimpleQuery(big, 'SELECT 1', { ...OPTIONS, maxFrameBytes: 10 })),
        'PCL_ERR_PROTOCOL_FRAME_TOO_LARGE',
      ),
    ).toBe(true);
  });

  it('refuses SQL holding a NUL without writing it', async () => {
    let queries = 0;
    const client = await scripted(() => queries++);
    const err = await rejection(runSimpleQuery(client, 'SELECT 1\0; DROP TABLE t', OPTIONS));
    expect(isPortcullisError(err, 'PCL_ERR_PROTOCOL_MALFORMED')).toBe(true);
    await new Promise((r) => setTimeout(r, 20));
    expect(queries).toBe(0);
  });
});
