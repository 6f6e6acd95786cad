// The catalog snapshot the masking layer resolves names with, read from a real PostgreSQL: the
// loader's queries, attnums across a dropped column, views traced back to their base tables, and
// the simple-query runner the gateway also uses on a session's own upstream connection.
import { randomBytes } from 'node:crypto';
import type { Socket } from 'node:net';
import { isPortcullisError } from '@portcullis/core';
import { resolveConfig, type PostgresResource } from '@portcullis/gateway';
import {
  BackendCode,
  FrameScanner,
  decodeDataRow,
  query,
  terminate,
} from '@portcullis/protocol-pg';
import { loadSqlParser, traceLineage, type LineageOutcome } from '@portcullis/sql';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CATALOG_APPLICATION_NAME,
  CatalogCache,
  loadCatalogSnapshot,
  readSearchPath,
} from '../packages/gateway/src/masking/catalog-loader.js';
import type { CatalogSnapshot } from '../packages/gateway/src/masking/catalog-snapshot.js';
import {
  UpstreamQueryError,
  runSimpleQuery,
} from '../packages/gateway/src/masking/simple-query.js';
import { connectUpstream } from '../packages/gateway/src/pg/connect-upstream.js';
import {
  createSharedDatabase,
  dropSharedDatabase,
  sharedResource,
  superuserQuery,
} from './support/gateway-fixture.js';

const DB = 'it_pg_catalog';
const OPTIONS = { maxFrameBytes: 1 << 20, timeoutMs: 10_000 };

let resource: PostgresResource;
let snapshot: CatalogSnapshot;
const opened: Socket[] = [];

/** A fresh suffix so names never collide with another suite's or an earlier run's. */
const suffix = randomBytes(4).toString('hex');
const SHOP = `shop_${suffix}`;
const CRM = `crm_${suffix}`;

function sql(text: string): Promise<unknown> {
  return superuserQuery(text, DB);
}

async function upstream(params: Record<string, string> = {}) {
  const connection = await connectUpstream(resource, new Map(Object.entries(params)));
  opened.push(connection.socket);
  return connection;
}

/**
 * Reads one answer up to ReadyForQuery without sending anything, starting with `pending` (what
 * an earlier reader left over); frames as their type letter, DataRows with their first value.
 */
async function readAnswer(socket: Socket, pending: Buffer): Promise<string[]> {
  const frames: string[] = [];
  let done = false;
  const scanner = new FrameScanner(
    {
      onFrame(type, body, start, end) {
        const letter = String.fromCharCode(type);
        frames.push(letter === 'D' ? `D ${decodeDataRow(body, start, end)[0]}` : letter);
        if (letter === 'Z') done = true;
      },
    },
    { maxFrameBytes: 1 << 16, assemble: [BackendCode.DataRow] },
  );
  scanner.push(pending);
  if (done) return frames;
  await new Promise<void>((resolve) => {
    const onData = (chunk: Buffer) => {
      scanner.push(chunk);
      if (done) {
        socket.off('data', onData);
        socket.pause();
        resolve();
      }
    };
    socket.on('data', onData);
    socket.resume();
  });
  return frames;
}

function sources(outcome: LineageOutcome): string[][] {
  if (!outcome.ok) throw new Error(`refused: ${outcome.reason}`);
  return outcome.lineage.outputs.map((o) =>
    o.sources.map((s) => `${s.schema}.${s.table}.${s.column}`),
  );
}

beforeAll(async () => {
  await createSharedDatabase(DB);
  const config = resolveConfig(
    {
      dataDir: '/nonexistent',
      listeners: { postgres: { host: '127.0.0.1', port: 0, insecure: true } },
      resources: { [DB]: sharedResource(DB, 'scram') },
    },
    { baseDir: '/', env: {} },
    'test config',
  );
  resource = config.resources[DB]!;
  await sql(`
    CREATE SCHEMA ${SHOP};
    CREATE SCHEMA ${CRM};
    CREATE TABLE ${SHOP}.customers (id int, legacy text, email text, phone text);
    ALTER TABLE ${SHOP}.customers DROP COLUMN legacy;
    INSERT INTO ${SHOP}.customers VALUES (1, 'a@example.com', '555');
    CREATE VIEW ${SHOP}.contacts AS SELECT id, email AS address FROM ${SHOP}.customers;
    CREATE VIEW ${SHOP}.contact_upper AS SELECT upper(address) AS loud FROM ${SHOP}.contacts;
    CREATE MATERIALIZED VIEW ${SHOP}.emails AS SELECT email FROM ${SHOP}.customers;
    CREATE TABLE ${CRM}.customers (id int, email text, tier text);
    CREATE TABLE ${CRM}.leads (id int, email text);
    GRANT USAGE ON SCHEMA ${SHOP}, ${CRM} TO "${resource.user}";
    GRANT SELECT ON ALL TABLES IN SCHEMA ${SHOP}, ${CRM} TO "${resource.user}";
  `);
  snapshot = await loadCatalogSnapshot(resource);
  await loadSqlParser();
});

afterAll(async () => {
  for (const socket of opened) socket.destroy();
  await dropSharedDatabase(DB);
});

describe('loadCatalogSnapshot', () => {
  it('reads relations of every kind, pg_catalog and information_schema included', () => {
    const catalog = snapshot.lineageCatalog(null);
    expect(catalog.resolveRelation(SHOP, 'customers')).toMatchObject({
      kind: 'table',
      columns: ['id', 'email', 'phone'],
    });
    expect(catalog.resolveRelation(SHOP, 'contacts')).toMatchObject({
      kind: 'view',
      columns: ['id', 'address'],
    });
    expect(catalog.resolveRelation(SHOP, 'emails')).toMatchObject({
      kind: 'materialized-view',
      columns: ['email'],
    });
    expect(catalog.resolveRelation('pg_catalog', 'pg_class')).toMatchObject({ kind: 'table' });
    expect(catalog.resolveRelation('information_schema', 'columns')).toMatchObject({
      kind: 'view',
    });
    // Definitions name every relation outside pg_catalog with its schema.
    expect(catalog.viewDefinition(SHOP, 'contacts')).toContain(`FROM ${SHOP}.customers`);
    expect(catalog.viewDefinition(SHOP, 'emails')).toContain(`FROM ${SHOP}.customers`);
    expect(catalog.viewDefinition(SHOP, 'customers')).toBeNull();
    expect(snapshot.generation).toBe(1);
    expect(Math.abs(snapshot.loadedAt - Date.now())).toBeLessThan(60_000);
  });

  it('leaves out the statistics relations and TOAST tables', async () => {
    const catalog = snapshot.lineageCatalog(['pg_catalog', 'public']);
    for (const name of [
      'pg_statistic',
      'pg_statistic_ext_data',
      'pg_stats',
      'pg_stats_ext',
      'pg_stats_ext_exprs',
    ]) {
      expect(catalog.resolveRelation('pg_catalog', name), name).toBeNull();
      expect(catalog.resolveRelation(null, name), name).toBeNull();
    }
    const result = (await superuserQuery(
      `SELECT reltoastrelid::int AS toast FROM pg_class WHERE oid = '${SHOP}.customers'::regclass`,
      DB,
    )) as { rows: { toast: number }[] };
    const toast = result.rows[0]!.toast;
    expect(toast).toBeGreaterThan(0);
    expect(snapshot.relationByOid(toast)).toBeNull();
  });

  it('maps RowDescription table OIDs and attnums to columns, across a dropped column', async () => {
    const { socket, leftover } = await upstream();
    const result = await runSimpleQuery(socket, `SELECT phone, id, email FROM ${SHOP}.customers`, {
      ...OPTIONS,
      pending: leftover,
    });
    const fields = result.resultSets[0]!.fields;
    expect(fields.map((f) => f.columnAttr)).toEqual([4, 1, 3]); // legacy was attnum 2
    for (const field of fields) {
      expect(snapshot.columnByAttnum(field.tableOid, field.columnAttr)).toBe(field.name);
      expect(snapshot.relationByOid(field.tableOid)).toMatchObject({
        schema: SHOP,
        name: 'customers',
      });
    }
    expect(snapshot.columnByAttnum(fields[0]!.tableOid, 2)).toBeNull();
  });

  it('answers the tracer: views trace back to the base table', () => {
    const catalog = snapshot.lineageCatalog(['pg_catalog', SHOP, 'public']);
    expect(sources(traceLineage('SELECT address, id FROM contacts', catalog))).toEqual([
      [`${SHOP}.customers.email`],
      [`${SHOP}.customers.id`],
    ]);
    expect(sources(traceLineage('SELECT loud FROM contact_upper', catalog))).toEqual([
      [`${SHOP}.customers.email`],
    ]);
    expect(sources(traceLineage('SELECT * FROM emails', catalog))).toEqual([
      [`${SHOP}.customers.email`],
    ]);
    expect(traceLineage('SELECT most_common_vals FROM pg_stats', catalog).ok).toBe(false);
  });

  it('resolves a name in two schemas by the search path, and refuses it when the path is unknown', () => {
    const byPath = (path: string[] | null) =>
      traceLineage('SELECT email FROM customers', snapshot.lineageCatalog(path));
    expect(sources(byPath(['pg_catalog', CRM, SHOP]))).toEqual([[`${CRM}.customers.email`]]);
    expect(sources(byPath(['pg_catalog', SHOP, CRM]))).toEqual([[`${SHOP}.customers.email`]]);
    expect(byPath(null).ok).toBe(false);
    // `leads` is in one schema only, so an unknown path still finds it.
    expect(sources(traceLineage('SELECT email FROM leads', snapshot.lineageCatalog(null)))).toEqual(
      [[`${CRM}.leads.email`]],
    );
  });

  it('closes its side connection', async () => {
    const catalogSessions = async () => {
      const seen = (await superuserQuery(
        `SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = '${CATALOG_APPLICATION_NAME}' AND datname = '${DB}'`,
      )) as { rows: { n: number }[] };
      return seen.rows[0]!.n;
    };
    await loadCatalogSnapshot(resource);
    // Terminate is sent before the load resolves; the backend exits right after.
    const deadline = Date.now() + 5_000;
    while ((await catalogSessions()) > 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(await catalogSessions()).toBe(0);
  });

  it('refuses a catalog larger than maxRelations', async () => {
    const err = await loadCatalogSnapshot(resource, { maxRelations: 10 }).then(
      () => null,
      (e: unknown) => e,
    );
    expect(isPortcullisError(err)).toBe(true);
    expect((err as Error).message).toMatch(/holds \d+ relations, over the limit of 10/);
  });

  it('fails closed with a PortcullisError when the upstream cannot be reached', async () => {
    const err = await loadCatalogSnapshot({ ...resource, port: 1, connectTimeoutMs: 2_000 }).then(
      () => null,
      (e: unknown) => e,
    );
    expect(isPortcullisError(err, 'PCL_ERR_UPSTREAM_CONNECT')).toBe(true);
  });
});

describe('CatalogCache against the server', () => {
  it('sees a new table after invalidate()', async () => {
    const cache = new CatalogCache(resource, { refreshMs: 0 });
    try {
      const [a, b] = await Promise.all([cache.current(), cache.current()]);
      expect(a).toBe(b);
      expect(a.lineageCatalog(null).resolveRelation(SHOP, 'late')).toBeNull();
      await sql(`CREATE TABLE ${SHOP}.late (id int, secret text)`);
      cache.invalidate();
      const fresh = await cache.current();
      expect(fresh.generation).toBe(2);
      expect(fresh.lineageCatalog(null).resolveRelation(SHOP, 'late')).toMatchObject({
        columns: ['id', 'secret'],
      });
    } finally {
      cache.close();
      await sql(`DROP TABLE IF EXISTS ${SHOP}.late`);
    }
  });
});

describe('runSimpleQuery on an upstream connection', () => {
  it('rejects bad SQL with its SQLSTATE, and the connection answers the next query', async () => {
    const { socket, leftover } = await upstream();
    const err = await runSimpleQuery(socket, 'SELEC 1', { ...OPTIONS, pending: leftover }).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(UpstreamQueryError);
    expect((err as UpstreamQueryError).fields.code).toBe('42601');
    expect((err as Error).message).toContain('42601');
    const next = await runSimpleQuery(socket, "SELECT 'still here' AS ok, NULL AS n", OPTIONS);
    expect(next).toMatchObject({ columns: ['ok', 'n'], rows: [['still here', null]], status: 'I' });
  });

  it('reports the transaction status and a failed block', async () => {
    const { socket } = await upstream();
    expect((await runSimpleQuery(socket, 'BEGIN', OPTIONS)).status).toBe('T');
    await expect(runSimpleQuery(socket, 'SELECT 1/0', OPTIONS)).rejects.toMatchObject({
      fields: { code: '22012' },
    });
    expect((await runSimpleQuery(socket, 'ROLLBACK', OPTIONS)).status).toBe('I');
  });

  it('consumes nothing after ReadyForQuery: a pipelined answer reaches the next reader whole', async () => {
    const { socket } = await upstream();
    for (let i = 0; i < 20; i++) {
      const running = runSimpleQuery(socket, `SELECT 'first ${i}'`, OPTIONS);
      socket.write(query(`SELECT 'second ${i}'`)); // queued behind the first
      const first = await running;
      expect(first.rows).toEqual([[`first ${i}`]]);
      expect(await readAnswer(socket, first.leftover)).toEqual(['T', 'D second ' + i, 'C', 'Z']);
    }
  });

  it('reads the search path a session starts with, as current_schemas(true) lists it', async () => {
    const { socket, leftover } = await upstream({ search_path: `${CRM}, "$user", ${SHOP}` });
    const { searchPath, leftover: rest } = await readSearchPath(socket, {
      ...OPTIONS,
      pending: leftover,
    });
    // "$user" names no schema here, so it is left out; pg_catalog comes first, implicitly.
    expect(searchPath).toEqual(['pg_catalog', CRM, SHOP]);
    expect(
      sources(traceLineage('SELECT email FROM customers', snapshot.lineageCatalog(searchPath))),
    ).toEqual([[`${CRM}.customers.email`]]);
    // A temporary table puts the session's temporary schema first.
    await runSimpleQuery(socket, 'CREATE TEMP TABLE scratch (note text)', {
      ...OPTIONS,
      pending: rest,
    });
    const withTemp = (await readSearchPath(socket, OPTIONS)).searchPath;
    expect(withTemp[0]).toMatch(/^pg_temp_\d+$/);
    expect(withTemp.slice(1)).toEqual(['pg_catalog', CRM, SHOP]);
    socket.end(terminate);
  });
});
