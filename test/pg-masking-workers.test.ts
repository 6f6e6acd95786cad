// Masking on worker threads through the gateway against real PostgreSQL: large results are
// masked off the event loop with every row intact and in order, and a worker that dies, throws
// or hangs mid-result ends that session with an error before any unmasked byte is sent, while
// the gateway and other sessions carry on.
import { query } from '@portcullis/protocol-pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  decodeDataRow,
  errorFields,
  RawPgClient,
  type PgMessage,
} from './support/raw-pg-client.js';
import {
  ALICE,
  createSharedDatabase,
  dropSharedDatabase,
  sharedResource,
  startGatewayFixture,
  superuserQuery,
  type GatewayFixture,
} from './support/gateway-fixture.js';

const DB = 'it_pg_masking_workers';
const ROWS = 20_000;
let gw: GatewayFixture;
let fault: 'exit' | 'throw' | 'uncaught' | 'hang' | undefined;

beforeAll(async () => {
  // Lets the test ask a worker to fail; workers ignore fault requests without it.
  process.env['PORTCULLIS_TEST_HOOKS'] = '1';
  await createSharedDatabase(DB);
  await superuserQuery(
    `CREATE TABLE people AS
       SELECT g AS id, 'person' || g || '@example.com' AS email, repeat('z', 200) AS bio
       FROM generate_series(1, ${ROWS}) g;
     GRANT SELECT ON people TO PUBLIC;`,
    DB,
  );
  gw = await startGatewayFixture({
    resources: {
      shop: sharedResource(DB, 'scram', {
        masking: {
          rules: [{ name: 'email', columns: ['public.people.email'], style: 'redact' }],
          detectors: { enabled: false },
        },
      }),
    },
    masking: { threads: 2, thresholdBytes: 4096, taskTimeoutMs: 2_000 },
    maskingFault: () => fault,
  });
});

afterAll(async () => {
  delete process.env['PORTCULLIS_TEST_HOOKS'];
  await gw?.dispose();
  await dropSharedDatabase(DB);
});

describe('masking workers', () => {
  it('masks a large result on workers, every row intact and in order', async () => {
    const client = await gw.connect('shop', { application_name: 'workers-ok' });
    const { rows } = await client.query('SELECT id, email, bio FROM people ORDER BY id');
    expect(rows).toHaveLength(ROWS);
    rows.forEach((row, i) => {
      expect(row.id).toBe(i + 1);
      expect(row.email).toBe('****');
      expect(row.bio).toHaveLength(200);
    });
    await client.end();
    const events = await gw.sessionEvents('workers-ok');
    const statement = events.find((e) => e.type === 'statement')!.statement!;
    expect(statement.rows).toBe(ROWS);
    // Every upstream DataRow was counted once, whether masked inline or on a worker.
    let bytes = 0;
    for (let id = 1; id <= ROWS; id++) {
      bytes += 5 + 2 + 3 * 4 + String(id).length + `person${id}@example.com`.length + 200;
    }
    expect(statement.bytes).toBe(bytes);
    expect(statement.masked).toEqual({ values: ROWS, columns: ['email'] });
  });

  it.each(['exit', 'throw', 'uncaught', 'hang'] as const)(
    'ends the session when a worker fails (%s) and sends no unmasked value',
    async (kind) => {
      const raw = await RawPgClient.connect(gw.port);
      await raw.login({ database: 'shop', password: ALICE.token });
      fault = kind;
      raw.write(query('SELECT id, email FROM people ORDER BY id'));
      const emails: string[] = [];
      const messages: PgMessage[] = [];
      // Every DataRow that reaches the client, until the gateway ends the session.
      for (;;) {
        const message = await raw.nextOrClose(15_000);
        if (message === null) break;
        if (message.type === 'D') emails.push(decodeDataRow(message.body)[1]!);
        else messages.push(message);
      }
      fault = undefined;
      const error = messages.find((m) => m.type === 'E');
      expect(error && errorFields(error)).toMatchObject({
        code: 'XX000',
        message: expect.stringContaining('masking failed'),
      });
      expect(emails.length).toBeLessThan(ROWS);
      expect(emails.every((email) => email === '****')).toBe(true);
      raw.destroy();
      // The gateway carries on: a new session works, and its large result is masked.
      const next = await gw.connect('shop');
      const { rows } = await next.query('SELECT email FROM people WHERE id <= 3000');
      expect(rows).toHaveLength(3000);
      expect(rows.every((r) => r.email === '****')).toBe(true);
      await next.end();
    },
    30_000,
  );
});
