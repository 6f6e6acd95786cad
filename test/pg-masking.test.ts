// Masking through the gateway against real PostgreSQL: column rules resolved through the real
// catalog and the lineage tracer, masked over the simple and extended protocol (text and binary
// results), COPY, errors and notices; statements that would reveal masked values refused with
// 42501; what was masked recorded on events (names and counts, never values).
import { createMasker } from '@portcullis/masking';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  bindMessage,
  decodeDataRowBytes,
  describeMessage,
  errorFields,
  executeMessage,
  functionCallMessage,
  parseMessage,
  RawPgClient,
  syncMessage,
} from './support/raw-pg-client.js';
import {
  ALICE,
  createSharedDatabase,
  dropSharedDatabase,
  queryError,
  sharedResource,
  startGatewayFixture,
  superuserQuery,
  type GatewayFixture,
  type ResourceInput,
  type TokenSpec,
} from './support/gateway-fixture.js';

const DB = 'it_pg_masking';
let gw: GatewayFixture;

const AUDITOR: TokenSpec = {
  token: 'auditor-token-0123456789',
  subject: 'auditor',
  email: 'auditor@example.com',
  groups: ['pii-readers'],
};

const HASH_KEY = 'a-test-key-of-at-least-16-bytes';

const masking: NonNullable<ResourceInput['masking']> = {
  hashKey: { value: HASH_KEY },
  rules: [
    { name: 'customer-email', columns: ['public.customers.email'], style: 'redact' },
    {
      name: 'card-last-four',
      columns: ['customers.card'],
      style: { kind: 'partial', keepLast: 4 },
      exemptGroups: ['pii-readers'],
    },
    { name: 'national-id', names: ['*national_id*'], style: 'hash' },
    {
      name: 'phone-shape',
      columns: ['public.customers.phone'],
      style: 'fixed-format',
      shaping: 'allow',
    },
  ],
  detectors: { enabled: true },
};

const CUSTOMERS = [
  [
    1,
    'Ada',
    'ada@example.com',
    '4111-1111-1111-1234',
    'NI-7788',
    '+44 20 7946 0001',
    'VIP: call ada.l@example.org',
  ],
  [2, 'Bob', 'bob@example.net', '5500 0000 0000 0004', 'NI-9911', '+1 212 555 0100', 'no note'],
];

beforeAll(async () => {
  await createSharedDatabase(DB);
  await superuserQuery(
    `CREATE TABLE customers (id int PRIMARY KEY, name text, email text UNIQUE, card text,
                             national_id text, phone text, note text);
     ${CUSTOMERS.map(
       (row) =>
         `INSERT INTO customers VALUES (${row[0]}, ${row
           .slice(1)
           .map((v) => `'${String(v)}'`)
           .join(', ')});`,
     ).join('\n')}
     CREATE VIEW customer_contacts AS SELECT id, name AS who, email AS contact FROM customers;
     CREATE TABLE orders (id int, customer_id int, total numeric);
     INSERT INTO orders VALUES (10, 1, 99.5), (11, 2, 5);
     CREATE TABLE scratch (v text);
     CREATE TABLE registry AS
       SELECT g AS id, 'NI-' || g || repeat('9', g % 70) AS national_id, repeat('x', g % 300) AS pad
       FROM generate_series(1, 6000) g;
     GRANT ALL ON ALL TABLES IN SCHEMA public TO PUBLIC;
     CREATE SCHEMA archive;
     CREATE TABLE archive.customers (id int, email text);
     INSERT INTO archive.customers VALUES (9, 'old@example.com');
     GRANT USAGE ON SCHEMA archive TO PUBLIC;
     GRANT ALL ON ALL TABLES IN SCHEMA archive TO PUBLIC;`,
    DB,
  );
  gw = await startGatewayFixture({
    resources: { shop: sharedResource(DB, 'scram', { masking }) },
    tokens: [ALICE, AUDITOR],
  });
});

afterAll(async () => {
  await gw?.dispose();
  await dropSharedDatabase(DB);
});

describe('column rules', () => {
  it('masks direct reads, aliases, SELECT * and views with each rule style', async () => {
    const client = await gw.connect('shop');
    const { rows } = await client.query(
      'SELECT id, email AS e, card, national_id, phone FROM customers ORDER BY id',
    );
    expect(rows[0]).toMatchObject({ id: 1, e: '****', card: '****-****-****-1234' });
    expect(rows[0].national_id).toMatch(/^h_[a-z2-7]{16}$/);
    expect(rows[0].phone).toBe('+00 00 0000 0000');
    expect(rows[1].national_id).not.toBe(rows[0].national_id);
    const star = await client.query('SELECT * FROM customers WHERE id = 2');
    expect(star.rows[0]).toMatchObject({ name: 'Bob', email: '****', card: '**** **** **** 0004' });
    const view = await client.query('SELECT who, contact FROM customer_contacts ORDER BY id');
    expect(view.rows.map((r) => r.contact)).toEqual(['****', '****']);
    await client.end();
  });

  it('masks over the extended protocol, text and binary results', async () => {
    const client = await gw.connect('shop');
    const prepared = await client.query({
      name: 'by-id',
      text: 'SELECT email, card FROM customers WHERE id = $1',
      values: [1],
    });
    expect(prepared.rows[0]).toEqual({ email: '****', card: '****-****-****-1234' });
    const again = await client.query({ name: 'by-id', text: '', values: [2] });
    expect(again.rows[0]).toEqual({ email: '****', card: '**** **** **** 0004' });
    const binary = await client.query({
      text: 'SELECT id, email FROM customers WHERE id = $1',
      values: [1],
      binary: true,
    } as pg.QueryConfig);
    expect(binary.rows[0].email.toString()).toBe('****');
    await client.end();
  });

  it('masks a large result inline, every row intact, across socket reads', async () => {
    // Rows of varying length straddle the gateway's reads; ids longer than 55 bytes take the
    // one-at-a-time hash, the rest are hashed four at a time.
    const hash = createMasker({ kind: 'hash' }, { hashKey: Buffer.from(HASH_KEY) });
    const client = await gw.connect('shop');
    const { rows } = await client.query('SELECT * FROM registry ORDER BY id');
    expect(rows).toHaveLength(6000);
    rows.forEach((row, i) => {
      const g = i + 1;
      const id = `NI-${g}${'9'.repeat(g % 70)}`;
      expect(row).toEqual({
        id: g,
        national_id: Buffer.from(hash.mask(Buffer.from(id))!).toString(),
        pad: 'x'.repeat(g % 300),
      });
    });
    await client.end();
  });

  it('scans columns no rule names with the content detectors', async () => {
    const client = await gw.connect('shop');
    const { rows } = await client.query('SELECT note FROM customers ORDER BY id');
    expect(rows.map((r) => r.note)).toEqual(['VIP: call ****', 'no note']);
    await client.end();
  });

  it('lets exempt groups see what their rules would mask, and no more', async () => {
    const client = await gw.connect('shop', { password: AUDITOR.token });
    const { rows } = await client.query('SELECT email, card FROM customers WHERE id = 1');
    expect(rows[0]).toEqual({ email: '****', card: '4111-1111-1111-1234' });
    await client.end();
  });

  it('masks COPY TO STDOUT in text and CSV', async () => {
    const client = await gw.connect('shop');
    const text = await copyOut(
      client,
      'COPY (SELECT id, email, card FROM customers ORDER BY id) TO STDOUT',
    );
    expect(text).toBe('1\t****\t****-****-****-1234\n2\t****\t**** **** **** 0004\n');
    const csv = await copyOut(
      client,
      'COPY (SELECT id, email FROM customers ORDER BY id) TO STDOUT WITH (FORMAT csv, HEADER)',
    );
    expect(csv).toBe('id,email\n1,****\n2,****\n');
    expect((await queryError(client, 'COPY customers TO STDOUT (FORMAT binary)')).code).toBe(
      '42501',
    );
    await client.end();
  });
});

describe('refusals', () => {
  it.each([
    ['a function over a masked column', 'SELECT upper(email) FROM customers', 'customer-email'],
    ['a substring laundering a card', 'SELECT substr(card, 1, 6) FROM customers', 'card-last-four'],
    ['concatenation', "SELECT email || '' FROM customers", 'customer-email'],
    [
      'a CTE computing from it',
      'WITH c AS (SELECT lower(email) AS e FROM customers) SELECT e FROM c',
      'customer-email',
    ],
    ['a row-shaping predicate', "SELECT id FROM customers WHERE email LIKE 'a%'", 'customer-email'],
    ['an ORDER BY position', 'SELECT email, id FROM customers ORDER BY 1', 'customer-email'],
    [
      'copying into an unmasked table',
      'INSERT INTO scratch SELECT email FROM customers',
      'customer-email',
    ],
    ['a view then a function', 'SELECT md5(contact) FROM customer_contacts', 'customer-email'],
  ])('refuses %s with 42501 naming the rule', async (_, sql, rule) => {
    const client = await gw.connect('shop');
    const err = await queryError(client, sql);
    expect(err.code).toBe('42501');
    expect(err.message).toContain(`masking rule "${rule}"`);
    expect((await client.query('SELECT count(*)::int AS n FROM scratch')).rows[0].n).toBe(0);
    await client.end();
  });

  it('allows shaping where the rule allows it, and value-hiding aggregates', async () => {
    const client = await gw.connect('shop');
    const shaped = await client.query("SELECT id FROM customers WHERE phone LIKE '+44%'");
    expect(shaped.rows).toEqual([{ id: 1 }]);
    const counted = await client.query('SELECT count(email)::int AS n FROM customers');
    expect(counted.rows).toEqual([{ n: 2 }]);
    await client.end();
  });

  it('refuses statements it cannot trace, and fast-path function calls', async () => {
    const client = await gw.connect('shop');
    const unknown = await queryError(client, 'SELECT * FROM no_such_table');
    expect(unknown.code).toBe('42501');
    expect(unknown.message).toContain('cannot be traced');
    await client.end();
  });

  it('scrubs values out of errors', async () => {
    const client = await gw.connect('shop');
    const err = await queryError(
      client,
      "INSERT INTO customers (id, email) VALUES (3, 'ada@example.com')",
    );
    expect(err.code).toBe('23505');
    expect(err.detail).toBe('Key (email)=(values hidden by Portcullis masking) already exists.');
    // Copying masked rows into the masked table is allowed; its error must not quote them.
    const copied = await queryError(
      client,
      'INSERT INTO customers (id, email) SELECT id + 100, email FROM customers',
    );
    expect(copied.code).toBe('23505');
    expect(copied.detail).not.toMatch(/@example\.(com|net)/);
    const failing = await queryError(
      client,
      "UPDATE customers SET id = NULL WHERE card = '4111-1111-1111-1234'",
    );
    expect(failing.code).toBe('42501'); // the card rule refuses shaping by card
    const nulled = await queryError(client, 'UPDATE customers SET id = NULL WHERE id = 1');
    expect(nulled.code).toBe('23502');
    expect(nulled.detail).toBe('Failing row contains (values hidden by Portcullis masking).');
    await client.end();
  });
});

describe('events', () => {
  it('records how many values were masked and in which columns, never the values', async () => {
    const client = await gw.connect('shop', { application_name: 'masking-events' });
    await client.query('SELECT id, email, card FROM customers');
    await client.end();
    const events = await gw.sessionEvents('masking-events');
    const statement = events.find((e) => e.type === 'statement')!.statement!;
    expect(statement.masked).toEqual({ values: 4, columns: ['email', 'card'] });
    const text = await gw.readEventText();
    expect(text).not.toContain('ada@example.com');
    expect(text).not.toContain('4111-1111');
  });
});

async function copyOut(client: pg.Client, sql: string): Promise<string> {
  // pg has no COPY TO helper: read the CopyData the connection emits.
  const connection = (client as unknown as { connection: NodeJS.EventEmitter }).connection;
  const chunks: Buffer[] = [];
  // pg reuses its read buffer: copy each chunk before the next read overwrites it.
  const onData = (msg: { chunk: Buffer }): void => void chunks.push(Buffer.from(msg.chunk));
  connection.on('copyData', onData);
  try {
    await client.query(sql);
  } finally {
    connection.off('copyData', onData);
  }
  return Buffer.concat(chunks).toString('utf8');
}

describe('catalog and names', () => {
  it('resolves unqualified names with the session search path, and refuses ambiguity after SET', async () => {
    const client = await gw.connect('shop');
    // archive.customers.email matches no rule; the detectors still find the address.
    const before = await client.query('SELECT email FROM customers WHERE id = 1');
    expect(before.rows).toEqual([{ email: '****' }]);
    await client.query('SET search_path = archive, public');
    const err = await queryError(client, 'SELECT email FROM customers');
    expect(err.code).toBe('42501');
    expect(err.message).toContain('schema-qualify');
    const qualified = await client.query('SELECT id, email FROM archive.customers');
    expect(qualified.rows).toEqual([{ id: 9, email: '****' }]);
    const unique = await client.query('SELECT total FROM orders WHERE id = 10');
    expect(unique.rows).toEqual([{ total: '99.5' }]);
    await client.end();
  });

  it('redacts whole rows of a statement prepared before the search path changed', async () => {
    const fresh = await gw.connect('shop', { options: '-c search_path=archive,public' });
    // Prepared while `customers` is archive.customers (no rule), then the path changes and the
    // server re-plans it against public.customers, whose email is masked.
    await fresh.query({
      name: 'contacts',
      text: 'SELECT id, email FROM customers WHERE id < $1',
      values: [3],
    });
    await fresh.query('SET search_path = public');
    const { rows } = await fresh.query({ name: 'contacts', text: '', values: [3] });
    // Every value is the redaction marker (pg reads the int column's '****' as NaN).
    expect(rows).toHaveLength(2);
    expect(rows.every((row) => Number.isNaN(row.id) && row.email === '****')).toBe(true);
    await fresh.end();
  });

  it('redacts whole rows of a statement prepared before a view it reads was redefined', async () => {
    const admin = await gw.connect('shop');
    await admin.query('CREATE VIEW directory AS SELECT id, name AS contact FROM customers');
    const app = await gw.connect('shop');
    await app.query({
      name: 'dir',
      text: 'SELECT contact FROM directory WHERE id = $1',
      values: [1],
    });
    // The view now exposes the masked email; the server re-plans the prepared statement.
    await admin.query(
      'CREATE OR REPLACE VIEW directory AS SELECT id, email AS contact FROM customers',
    );
    const { rows } = await app.query({ name: 'dir', text: '', values: [1] });
    expect(rows).toEqual([{ contact: '****' }]);
    await admin.query('DROP VIEW directory');
    await admin.end();
    await app.end();
  });

  it('refuses a table created behind its back, and knows it on a retry', async () => {
    await superuserQuery('CREATE TABLE outside (id int); GRANT ALL ON outside TO PUBLIC', DB);
    const client = await gw.connect('shop');
    const err = await queryError(client, 'SELECT id FROM outside');
    expect(err.code).toBe('42501');
    expect(err.message).toContain('unknown relation');
    let rows: unknown[] | null = null;
    for (let attempt = 0; attempt < 50 && rows === null; attempt++) {
      await new Promise((r) => setTimeout(r, 20));
      rows = await client.query('SELECT id FROM outside').then(
        (result) => result.rows,
        () => null,
      );
    }
    expect(rows).toEqual([]);
    await client.end();
  });

  it('knows a table created in the session by its next statement', async () => {
    const client = await gw.connect('shop');
    await client.query('CREATE TABLE fresh_contacts AS SELECT id, name FROM customers');
    const { rows } = await client.query('SELECT name FROM fresh_contacts ORDER BY id');
    expect(rows).toEqual([{ name: 'Ada' }, { name: 'Bob' }]);
    await client.query('DROP TABLE fresh_contacts');
    await client.end();
  });

  it('masks a column a new view exposes', async () => {
    const client = await gw.connect('shop');
    await client.query('CREATE VIEW fresh_view AS SELECT email AS mail FROM customers');
    const { rows } = await client.query('SELECT mail FROM fresh_view');
    expect(rows).toEqual([{ mail: '****' }, { mail: '****' }]);
    await client.query('DROP VIEW fresh_view');
    await client.end();
  });
});

describe('protocol paths', () => {
  it('masks an Execute that was never described, in row-limited batches, pipelined', async () => {
    const raw = await RawPgClient.connect(gw.port);
    await raw.login({ database: 'shop', password: ALICE.token });
    // Parse and Describe the statement once (as JDBC does), then execute it without Describe.
    raw.write(
      parseMessage('s1', 'SELECT id, email, card FROM customers ORDER BY id'),
      describeMessage('S', 's1'),
      syncMessage,
    );
    await raw.readUntil('Z');
    raw.write(
      bindMessage('p1', 's1', []),
      executeMessage('p1', 1),
      executeMessage('p1', 1),
      syncMessage,
      bindMessage('', 's1', [], true),
      executeMessage(''),
      syncMessage,
    );
    const messages = [...(await raw.readUntil('Z')), ...(await raw.readUntil('Z'))];
    const rows = messages.filter((m) => m.type === 'D').map((m) => decodeDataRowBytes(m.body));
    expect(rows.map((r) => r[1]?.toString())).toEqual(['****', '****', '****', '****']);
    expect(rows.map((r) => r[2]?.toString())).toEqual([
      '****-****-****-1234',
      '**** **** **** 0004',
      '****-****-****-1234',
      '**** **** **** 0004',
    ]);
    // The binary id is still a binary int4.
    expect(rows[2]![0]!.readInt32BE(0)).toBe(1);
    expect(messages.filter((m) => m.type === 's')).toHaveLength(2); // PortalSuspended
    raw.destroy();
  });

  it('refuses fast-path function calls and carries on', async () => {
    const raw = await RawPgClient.connect(gw.port);
    await raw.login({ database: 'shop', password: ALICE.token });
    raw.write(functionCallMessage(870 /* upper(text) */, ['ada@example.com']));
    const reply = await raw.readUntil('Z');
    const error = reply.find((m) => m.type === 'E');
    expect(error && errorFields(error).code).toBe('42501');
    expect((await raw.query('SELECT 1')).rows).toEqual([['1']]);
    raw.destroy();
  });
});
