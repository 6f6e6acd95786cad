import { PortcullisError, isPortcullisError, type Logger } from '@portcullis/core';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { PostgresResource } from '../config/load-config.js';
import { CatalogCache, type LoadCatalogOptions } from './catalog-loader.js';
import { CatalogSnapshot } from './catalog-snapshot.js';

// The cache's policy over a scripted loader; test/pg-catalog.test.ts loads from a real server.

const RESOURCE = { name: 'shop' } as PostgresResource;

interface Call {
  readonly generation: number;
  resolve(tables?: readonly string[]): void;
  reject(err: Error): void;
}

/** A loader whose loads the test settles by hand. */
function scriptedLoader() {
  const calls: Call[] = [];
  const load = (_resource: PostgresResource, options: LoadCatalogOptions) =>
    new Promise<CatalogSnapshot>((resolve, reject) => {
      const generation = options.generation ?? 0;
      calls.push({
        generation,
        resolve: (tables = ['t']) =>
          resolve(
            new CatalogSnapshot(
              {
                relations: tables.map((name, i) => ({
                  oid: 100 + i,
                  schema: 'public',
                  name,
                  relkind: 'r',
                  definition: null,
                })),
                columns: [],
              },
              { generation, loadedAt: Date.now() },
            ),
          ),
        reject,
      });
    });
  return { calls, load };
}

function recordingLogger(): Logger & { warnings: string[] } {
  const warnings: string[] = [];
  return {
    warnings,
    debug() {},
    info() {},
    warn(_obj, msg) {
      warnings.push(msg ?? '');
    },
    error() {},
  };
}

const tick = () => new Promise((r) => setImmediate(r));

let cache: CatalogCache | null = null;
afterEach(() => {
  cache?.close();
  cache = null;
  vi.useRealTimers();
});

describe('CatalogCache', () => {
  it('loads on first use, and concurrent callers share one load', async () => {
    const { calls, load } = scriptedLoader();
    cache = new CatalogCache(RESOURCE, { load, refreshMs: 0 });
    expect(cache.snapshot).toBeNull();
    expect(cache.stale).toBe(true);
    const a = cache.current();
    const b = cache.current();
    await tick();
    expect(calls).toHaveLength(1);
    calls[0]!.resolve();
    const [sa, sb] = await Promise.all([a, b]);
    expect(sa).toBe(sb);
    expect(cache.snapshot).toBe(sa);
    expect(cache.stale).toBe(false);
    expect(sa.generation).toBe(1);
    expect(await cache.current()).toBe(sa);
    expect(calls).toHaveLength(1);
  });

  it('reloads after invalidate(), in the background and for current()', async () => {
    const { calls, load } = scriptedLoader();
    cache = new CatalogCache(RESOURCE, { load, refreshMs: 0 });
    const first = cache.current();
    await tick();
    calls[0]!.resolve(['t']);
    const old = await first;
    cache.invalidate();
    expect(cache.stale).toBe(true);
    expect(cache.snapshot).toBe(old); // still there for synchronous readers
    expect(calls).toHaveLength(2); // the background reload started
    const next = cache.current();
    calls[1]!.resolve(['t', 'u']);
    const fresh = await next;
    expect(fresh.generation).toBe(2);
    expect(fresh.lineageCatalog(['public']).resolveRelation(null, 'u')).not.toBeNull();
    expect(calls).toHaveLength(2);
  });

  it('reloads again when DDL is reported while a load is running', async () => {
    const { calls, load } = scriptedLoader();
    cache = new CatalogCache(RESOURCE, { load, refreshMs: 0 });
    const first = cache.current();
    await tick();
    cache.invalidate(); // the running load may have read the catalog before the DDL
    calls[0]!.resolve(['t']);
    await tick();
    expect(calls).toHaveLength(2);
    calls[1]!.resolve(['t', 'u']);
    expect((await first).generation).toBe(2);
  });

  it('fails closed: a failed load rejects current(), and the next call tries again', async () => {
    const { calls, load } = scriptedLoader();
    cache = new CatalogCache(RESOURCE, { load, refreshMs: 0 });
    const first = cache.current();
    await tick();
    calls[0]!.reject(new Error('connection refused'));
    await expect(first).rejects.toSatisfy(
      (err) =>
        isPortcullisError(err, 'PCL_ERR_UPSTREAM_CONNECT') &&
        err.message.includes('connection refused'),
    );
    expect(cache.snapshot).toBeNull();
    const second = cache.current();
    await tick();
    calls[1]!.resolve();
    expect((await second).generation).toBe(2);
  });

  it('a failed background refresh keeps the previous snapshot and logs a warning', async () => {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
    const { calls, load } = scriptedLoader();
    const logger = recordingLogger();
    cache = new CatalogCache(RESOURCE, { load, refreshMs: 1_000, logger });
    vi.advanceTimersByTime(5_000);
    expect(calls).toHaveLength(0); // nobody asked yet
    const first = cache.current();
    await tick();
    calls[0]!.resolve();
    const old = await first;
    vi.advanceTimersByTime(1_000);
    expect(calls).toHaveLength(2);
    calls[1]!.reject(new PortcullisError('PCL_ERR_UPSTREAM_CONNECT', 'down'));
    await tick();
    expect(logger.warnings).toEqual(['catalog refresh failed; keeping the previous snapshot']);
    expect(cache.snapshot).toBe(old);
    expect(await cache.current()).toBe(old); // no DDL reported: still current
    vi.advanceTimersByTime(1_000);
    calls[2]!.resolve(['t', 'v']);
    await tick();
    expect(cache.snapshot?.generation).toBe(3);
  });

  it('close() stops the refresh timer', async () => {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
    const { calls, load } = scriptedLoader();
    cache = new CatalogCache(RESOURCE, { load, refreshMs: 1_000 });
    const first = cache.current();
    await tick();
    calls[0]!.resolve();
    await first;
    cache.close();
    vi.advanceTimersByTime(10_000);
    cache.invalidate();
    expect(calls).toHaveLength(1);
  });
});
