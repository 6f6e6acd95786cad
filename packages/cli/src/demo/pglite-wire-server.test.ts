import { connect, type Socket } from 'node:net';
import { PGlite } from '@electric-sql/pglite';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PgliteWireServer } from './pglite-wire-server.js';

/** A bare protocol client, for message orders that drivers never produce on their own. */
class RawClient {
  readonly messages: Array<{ type: string; body: Buffer }> = [];
  /** What the server answered to the startup packet. */
  startup: Array<{ type: string; body: Buffer }> = [];
  #buffer = Buffer.alloc(0);
  #waiters: Array<() => void> = [];
  closed = false;

  private constructor(readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.#buffer = Buffer.concat([this.#buffer, chunk]);
      while (this.#buffer.length >= 5) {
        const length = this.#buffer.readInt32BE(1);
        if (this.#buffer.length < length + 1) break;
        this.messages.push({
          type: String.fromCharCode(this.#buffer[0] as number),
          body: this.#buffer.subarray(5, length + 1),
        });
        this.#buffer = this.#buffer.subarray(length + 1);
      }
      this.#wake();
    });
    socket.on('close', () => {
      this.closed = true;
      this.#wake();
    });
    socket.on('error', () => {});
  }

  static async open(
    port: number,
    parameters: Record<string, string> = { user: 'postgres', database: 'postgres' },
  ): Promise<RawClient> {
    const socket = connect(port, '127.0.0.1');
    await new Promise<void>((resolve, reject) =>
      socket.once('connect', resolve).once('error', reject),
    );
    const client = new RawClient(socket);
    const body = Buffer.concat([
      int32(196608),
      ...Object.entries(parameters).flatMap(([k, v]) => [cstring(k), cstring(v)]),
      Buffer.from([0]),
    ]);
    socket.write(Buffer.concat([int32(body.length + 4), body]));
    client.startup = await client.until((m) => m.type === 'Z' || m.type === 'E');
    return client;
  }

  #wake(): void {
    for (const waiter of this.#waiters.splice(0)) waiter();
  }

  send(...messages: Buffer[]): void {
    this.socket.write(Buffer.concat(messages));
  }

  /** Waits for a message matching `predicate` and returns everything received up to and including it. */
  async until(
    predicate: (message: { type: string; body: Buffer }) => boolean,
    timeoutMs = 5_000,
  ): Promise<Array<{ type: string; body: Buffer }>> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const index = this.messages.findIndex(predicate);
      if (index >= 0) return this.messages.splice(0, index + 1);
      if (this.closed)
        throw new Error(`connection closed; got ${this.messages.map((m) => m.type).join('')}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out; got ${this.messages.map((m) => m.type).join('')}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.#waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  close(): void {
    this.socket.destroy();
  }
}

const int32 = (value: number): Buffer => {
  const buffer = Buffer.alloc(4);
  buffer.writeInt32BE(value);
  return buffer;
};
const cstring = (value: string): Buffer => Buffer.from(`${value}\0`);
const message = (type: string, ...parts: Buffer[]): Buffer => {
  const body = Buffer.concat(parts);
  return Buffer.concat([Buffer.from(type), int32(body.length + 4), body]);
};
const query = (sql: string): Buffer => message('Q', cstring(sql));
const parse = (name: string, sql: string): Buffer =>
  message('P', cstring(name), cstring(sql), Buffer.from([0, 0]));
const bind = (statement: string): Buffer =>
  message('B', cstring(''), cstring(statement), Buffer.from([0, 0, 0, 0, 0, 0]));
const execute = (): Buffer => message('E', cstring(''), int32(0));
const sync = (): Buffer => message('S');
const flush = (): Buffer => message('H');
const isReady = (m: { type: string }): boolean => m.type === 'Z';
const dataRows = (messages: Array<{ type: string; body: Buffer }>): string[] =>
  messages.filter((m) => m.type === 'D').map((m) => m.body.subarray(6).toString());
const errorText = (messages: Array<{ type: string; body: Buffer }>): string =>
  messages
    .filter((m) => m.type === 'E' || m.type === 'N')
    .map((m) => m.body.toString().replaceAll('\0', '|'))
    .join('\n');

describe('PgliteWireServer', () => {
  let db: PGlite;
  let server: PgliteWireServer;
  let port: number;
  const events: string[] = [];

  const client = async (): Promise<pg.Client> => {
    const c = new pg.Client({ host: '127.0.0.1', port, user: 'postgres', database: 'postgres' });
    c.on('error', () => {});
    await c.connect();
    return c;
  };

  beforeAll(async () => {
    db = await PGlite.create();
    await db.exec('create table t (id int primary key, note text)');
    server = new PgliteWireServer({
      db,
      maxConnections: 6,
      idleInTransactionTimeoutMs: 1_500,
      waitNoticeAfterMs: 300,
      onEvent: (e) => events.push(e),
    });
    ({ port } = await server.start());
  }, 60_000);

  afterAll(async () => {
    await server?.stop();
    await db?.close();
  });

  it('serves simple and extended queries to several clients at once', async () => {
    const clients = await Promise.all([client(), client(), client()]);
    // Each client runs its queries one after another (as pg requires); the clients overlap.
    const results = await Promise.all(
      clients.map(async (c, i) => {
        const seen: number[] = [];
        for (let j = 0; j < 20; j++)
          seen.push(
            Number((await c.query('select $1::int * 100 + $2::int as v', [i, j])).rows[0].v),
          );
        return seen;
      }),
    );
    expect(results).toEqual(
      clients.map((_, i) => Array.from({ length: 20 }, (_, j) => i * 100 + j)),
    );
    const multi = (await clients[0]!.query(
      'select 1 as one; select 2 as two',
    )) as unknown as pg.QueryResult[];
    expect(multi.map((r) => r.rows[0])).toEqual([{ one: 1 }, { two: 2 }]);
    await Promise.all(clients.map((c) => c.end()));
  });

  it('keeps SET, SET ROLE and custom settings per session', async () => {
    const [a, b] = [await client(), await client()];
    await db.exec(
      'do $$ begin create role demo_reader; exception when duplicate_object then null; end $$',
    );
    await a.query(
      "set application_name = 'alpha'; set search_path = pg_catalog, public; select set_config('portcullis.actor', 'alice', false)",
    );
    await a.query('set role demo_reader');
    await b.query("set application_name = 'beta'; set portcullis.actor = 'bob'");
    const seenByB = await b.query(
      "select current_setting('application_name') as app, current_setting('search_path') as path, current_user as usr, current_setting('portcullis.actor', true) as actor",
    );
    expect(seenByB.rows[0]).toEqual({ app: 'beta', path: 'public', usr: 'postgres', actor: 'bob' });
    const seenByA = await a.query(
      "select current_setting('application_name') as app, current_setting('search_path') as path, current_user as usr, current_setting('portcullis.actor', true) as actor",
    );
    expect(seenByA.rows[0]).toEqual({
      app: 'alpha',
      path: 'pg_catalog, public',
      usr: 'demo_reader',
      actor: 'alice',
    });
    await Promise.all([a.end(), b.end()]);
    const c = await client();
    const fresh = await c.query(
      "select current_setting('application_name') as app, current_user as usr, current_setting('portcullis.actor', true) as actor",
    );
    expect(fresh.rows[0]).toEqual({ app: '', usr: 'postgres', actor: '' });
    await c.end();
  });

  it('applies startup parameters as session settings', async () => {
    const c = new pg.Client({
      host: '127.0.0.1',
      port,
      user: 'anyone',
      database: 'whatever',
      application_name: 'gateway',
      options: '-c search_path=pg_catalog,public',
    });
    c.on('error', () => {});
    await c.connect();
    const row = (
      await c.query(
        "select current_setting('application_name') as app, current_setting('search_path') as path, current_user as usr, current_database() as db",
      )
    ).rows[0];
    expect(row).toEqual({
      app: 'gateway',
      path: 'pg_catalog,public',
      usr: 'postgres',
      db: 'postgres',
    });
    await c.end();
  });

  it('isolates named prepared statements', async () => {
    const [a, b] = [await client(), await client()];
    expect((await a.query({ name: 'q', text: 'select 1 as v' })).rows).toEqual([{ v: 1 }]);
    expect((await b.query({ name: 'q', text: "select 'two' as v" })).rows).toEqual([{ v: 'two' }]);
    expect((await a.query({ name: 'q', text: 'select 1 as v' })).rows).toEqual([{ v: 1 }]);
    await Promise.all([a.end(), b.end()]);
    const left = await db.query<{ n: number }>(
      "select count(*)::int as n from pg_prepared_statements where name like 'pc%'",
    );
    expect(left.rows[0]?.n).toBe(0);
  });

  it('never lets another session run between Parse and Sync', async () => {
    const a = await RawClient.open(port);
    const b = await RawClient.open(port);
    a.send(parse('', "select 'from a'"), flush());
    await a.until((m) => m.type === '1');
    b.send(parse('', "select 'from b'"), bind(''), execute(), sync());
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(b.messages.length).toBe(0);
    a.send(bind(''), execute(), sync());
    expect(dataRows(await a.until(isReady))).toEqual(['from a']);
    expect(dataRows(await b.until(isReady))).toEqual(['from b']);
    a.close();
    b.close();
  });

  it("does not let one session's failed extended query swallow another's messages", async () => {
    const a = await RawClient.open(port);
    const b = await RawClient.open(port);
    a.send(parse('', 'selec broken'), flush());
    await a.until((m) => m.type === 'E');
    b.send(query('select 41 + 1'));
    a.send(sync());
    await a.until(isReady);
    expect(dataRows(await b.until(isReady))).toEqual(['42']);
    a.close();
    b.close();
  });

  it('queues other sessions behind an open transaction, with a notice, and ends it when idle too long', async () => {
    const a = await client();
    const b = await client();
    const notices: string[] = [];
    b.on('notice', (n) => notices.push(n.message ?? ''));
    await a.query('begin');
    await a.query("insert into t values (1, 'uncommitted')");
    const started = Date.now();
    const count = await b.query('select count(*)::int as n from t');
    expect(count.rows[0].n).toBe(0);
    expect(Date.now() - started).toBeGreaterThanOrEqual(1_000);
    expect(notices.join()).toMatch(/waiting for demo session \d+ to finish its transaction/);
    await expect(a.query('select 1')).rejects.toThrow();
    expect(events.some((e) => /idle in a transaction/.test(e))).toBe(true);
    await b.end();
  });

  it('serves the next session once the transaction commits', async () => {
    const a = await client();
    const b = await client();
    await a.query('begin');
    await a.query("insert into t values (2, 'committed')");
    const pending = b.query('select note from t where id = 2');
    await new Promise((resolve) => setTimeout(resolve, 200));
    await a.query('commit');
    expect((await pending).rows).toEqual([{ note: 'committed' }]);
    await Promise.all([a.end(), b.end()]);
  });

  it('rolls back the transaction of a session that drops, and carries on', async () => {
    const a = await RawClient.open(port);
    a.send(query("begin; insert into t values (3, 'lost')"));
    await a.until(isReady);
    a.close();
    const b = await client();
    expect((await b.query('select count(*)::int as n from t where id = 3')).rows[0].n).toBe(0);
    await b.query("insert into t values (3, 'kept')");
    expect(db.isInTransaction()).toBe(false);
    await b.end();
  });

  it('recovers from a session that drops in the middle of a failed extended query', async () => {
    const a = await RawClient.open(port);
    a.send(parse('', 'selec broken'), flush());
    await a.until((m) => m.type === 'E');
    a.close();
    const b = await client();
    expect((await b.query('select 7 as v')).rows).toEqual([{ v: 7 }]);
    await b.end();
  });

  it('refuses message types that would wedge PGlite, and stays up', async () => {
    const a = await RawClient.open(port);
    a.send(message('p', cstring('secret')));
    await expect(a.until(() => false, 2_000)).rejects.toThrow(/closed/);
    const b = await RawClient.open(port);
    b.send(message('Y', cstring('junk')));
    await expect(b.until(() => false, 2_000)).rejects.toThrow(/closed/);
    const c = await client();
    expect((await c.query('select 1 as v')).rows).toEqual([{ v: 1 }]);
    await c.end();
  });

  it('turns COPY FROM STDIN, which would kill PGlite, into an error', async () => {
    const c = await client();
    await expect(c.query('copy t from stdin')).rejects.toThrow(/COPY FROM STDIN is not supported/);
    expect((await c.query('select 1 as v')).rows).toEqual([{ v: 1 }]);
    await c.end();
  });

  it('answers SSL requests with N and refuses connections over the limit', async () => {
    const socket = connect(port, '127.0.0.1');
    await new Promise((resolve) => socket.once('connect', resolve));
    socket.write(Buffer.concat([int32(8), int32(80877103)]));
    const reply = await new Promise<Buffer>((resolve) => socket.once('data', resolve));
    expect(reply.toString()).toBe('N');
    socket.destroy();

    await new Promise((resolve) => setTimeout(resolve, 200));
    const held = await Promise.all(Array.from({ length: 6 }, () => RawClient.open(port)));
    const refused = await RawClient.open(port);
    expect(errorText(refused.startup)).toMatch(/53300.*too many clients/);
    held.forEach((c) => c.close());
    refused.close();
  });

  it('reopens the database after PGlite fails', async () => {
    const first = await PGlite.create();
    let reopened: PGlite | null = null;
    const failing = new PgliteWireServer({
      db: first,
      reopen: async () => (reopened = await PGlite.create()),
    });
    const address = await failing.start();
    Object.assign(first, {
      execProtocolRawStream: async () => {
        throw new Error('simulated exit');
      },
    });
    const a = new pg.Client({ host: '127.0.0.1', port: address.port, user: 'postgres' });
    a.on('error', () => {});
    await a.connect();
    await expect(a.query('select 1')).rejects.toThrow();
    const b = new pg.Client({ host: '127.0.0.1', port: address.port, user: 'postgres' });
    b.on('error', () => {});
    await b.connect();
    expect((await b.query('select 2 as v')).rows).toEqual([{ v: 2 }]);
    expect(failing.db).toBe(reopened);
    await b.end();
    await failing.stop();
    await reopened!.close();
    await first.close();
  }, 60_000);
});
