import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PgliteStateDb } from './pglite-state-db.js';
import { StateDbUnavailable } from './state-db.js';
import { checkMigrations, migrateState } from './state-migrations.js';

let db: PgliteStateDb;

beforeAll(async () => {
  db = await PgliteStateDb.open(null);
});
afterAll(async () => {
  await db.close();
});

describe('PgliteStateDb', () => {
  it('runs statements with parameters, and parameterless texts of several statements', async () => {
    await db.query('CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, $$a$$)');
    expect(await db.query('SELECT v FROM t WHERE id = $1', [1])).toEqual([{ v: 'a' }]);
    expect(await db.query('SELECT 1 AS one; SELECT 2 AS two')).toEqual([{ two: 2 }]);
  });

  it('commits a transaction that resolves and rolls back one that throws', async () => {
    await db.transaction(async (tx) => {
      await tx.query('INSERT INTO t VALUES ($1, $2)', [2, 'b']);
    });
    await expect(
      db.transaction(async (tx) => {
        await tx.query('INSERT INTO t VALUES ($1, $2)', [3, 'c']);
        throw new Error('changed my mind');
      }),
    ).rejects.toThrow('changed my mind');
    expect(await db.query('SELECT id FROM t ORDER BY id')).toEqual([{ id: 1 }, { id: 2 }]);
  });

  it('delivers NOTIFY to this process’s listeners until they unsubscribe', async () => {
    const heard: string[] = [];
    const stop = await db.listen(
      'chan',
      (p) => heard.push(p),
      () => heard.push('lost'),
    );
    await db.notify('chan', 'one');
    await db.notify('other', 'ignored');
    await expect.poll(() => heard).toEqual(['one']);
    await stop();
    await db.notify('chan', 'two');
    await db.query('SELECT 1');
    expect(heard).toEqual(['one']);
  });

  it('migrates each feature once, in order, even when two migrations start together', async () => {
    const steps = [
      { version: 1, sql: 'CREATE TABLE m1 (id int)' },
      { version: 2, sql: 'ALTER TABLE m1 ADD COLUMN v text; CREATE TABLE m2 (id int)' },
    ];
    const [a, b] = await Promise.all([
      migrateState(db, 'feature-a', steps),
      migrateState(db, 'feature-a', steps),
    ]);
    expect([a, b].sort((x, y) => y.length - x.length)).toEqual([[1, 2], []]);
    expect(
      await migrateState(db, 'feature-a', [...steps, { version: 3, sql: 'DROP TABLE m2' }]),
    ).toEqual([3]);
    // Versions beyond what this gateway knows were run by a newer one: left alone.
    expect(await migrateState(db, 'feature-a', steps)).toEqual([]);
    expect(await db.query('SELECT version FROM portcullis_migrations ORDER BY version')).toEqual([
      { version: 1 },
      { version: 2 },
      { version: 3 },
    ]);
  });

  it('rolls back a failing step with its record', async () => {
    await expect(
      migrateState(db, 'feature-b', [
        { version: 1, sql: 'CREATE TABLE b1 (id int)' },
        { version: 2, sql: 'SELECT no_such_column FROM b1' },
      ]),
    ).rejects.toThrow(/no_such_column/);
    expect(await db.query(`SELECT to_regclass('b1') IS NULL AS gone`)).toEqual([{ gone: true }]);
  });

  it('refuses migrations out of order', () => {
    expect(() =>
      checkMigrations('x', [
        { version: 2, sql: '' },
        { version: 1, sql: '' },
      ]),
    ).toThrow(/version 1 must be an integer above 2/);
  });

  it('keeps its data in a directory across opens, and refuses use once closed', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'portcullis-state-'));
    try {
      const first = await PgliteStateDb.open(join(dir, 'state'));
      await first.query('CREATE TABLE kept (v text); INSERT INTO kept VALUES ($$x$$)');
      await first.close();
      await expect(first.query('SELECT 1')).rejects.toBeInstanceOf(StateDbUnavailable);
      const second = await PgliteStateDb.open(join(dir, 'state'));
      expect(await second.query('SELECT v FROM kept')).toEqual([{ v: 'x' }]);
      await second.close();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
