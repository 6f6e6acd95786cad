import { mkdtempSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { isPortcullisError } from '@portcullis/core';
import { loadChainKey } from '../events/chain-key.js';
import { resolveConfig } from './load-config.js';

const dir = mkdtempSync(join(tmpdir(), 'portcullis-events-config-'));
const base = { listeners: { postgres: {} }, resources: {} };
const resolveEvents = (events: unknown, env: Record<string, string> = {}) =>
  resolveConfig({ ...base, events }, { baseDir: dir, env }).events;

function messageOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    if (isPortcullisError(err, 'PCL_ERR_CONFIG_INVALID')) return err.message;
    throw err;
  }
  throw new Error('expected PCL_ERR_CONFIG_INVALID');
}

describe('events configuration', () => {
  it('defaults: a 1 GiB fail-closed spool, the embedded store for 365 days, a rotated file', () => {
    const events = resolveEvents(undefined);
    const data = join(dir, '.portcullis');
    expect(events).toEqual({
      path: join(data, 'events.jsonl'),
      flushIntervalMs: 50,
      recordLiterals: false,
      spool: { dir: join(data, 'spool'), maxBytes: 1024 ** 3, whenFull: 'fail-closed' },
      store: {
        dir: join(data, 'store'),
        retentionDays: 365,
        chainKey: null,
        chainKeyFile: join(data, 'events-chain.key'),
      },
      file: { path: join(data, 'events.jsonl'), maxBytes: 256 * 1024 ** 2, keep: 5 },
      kafka: null,
      clickhouse: null,
      readerGroups: [],
    });
  });

  it('resolves the Kafka and ClickHouse sinks with their secrets', () => {
    const events = resolveEvents(
      {
        kafka: {
          brokers: ['k1:9092'],
          sasl: { mechanism: 'scram-sha-512', username: 'p', password: { env: 'KAFKA_PW' } },
        },
        clickhouse: { url: 'http://ch:8123', password: { env: 'CH_PW' }, schema: 'legacy18' },
      },
      { KAFKA_PW: 'kafka-secret', CH_PW: 'ch-secret' },
    );
    expect(events.kafka).toEqual({
      brokers: ['k1:9092'],
      topic: 'portcullis.events',
      format: 'native',
      compression: 'gzip',
      gzipLevel: 1,
      ssl: false,
      sasl: { mechanism: 'scram-sha-512', username: 'p', password: 'kafka-secret' },
    });
    expect(events.clickhouse).toMatchObject({
      url: 'http://ch:8123',
      password: 'ch-secret',
      schema: 'legacy18',
      table: 'events',
      deadLetterDir: join(dir, '.portcullis', 'dead-letter'),
    });
  });

  it('keeps path, flushIntervalMs, dangerouslyRecordLiterals and the old sink key working', () => {
    const events = resolveEvents({
      sink: 'jsonl',
      path: '/var/log/portcullis/events.jsonl',
      flushIntervalMs: 200,
      dangerouslyRecordLiterals: true,
    });
    expect(events.path).toBe('/var/log/portcullis/events.jsonl');
    expect(events.file?.path).toBe('/var/log/portcullis/events.jsonl');
    expect(events.flushIntervalMs).toBe(200);
    expect(events.recordLiterals).toBe(true);
  });

  it('resolves every section as written', () => {
    const events = resolveEvents(
      {
        spool: { maxBytes: 65536, whenFull: 'fail-open' },
        store: { kind: 'embedded', retentionDays: 30, chainKey: { env: 'CHAIN_KEY' } },
        file: { path: 'logs/e.jsonl', maxBytes: 4096, keep: 0 },
      },
      { CHAIN_KEY: 'k'.repeat(32) },
    );
    expect(events.spool).toMatchObject({ maxBytes: 65536, whenFull: 'fail-open' });
    expect(events.store).toMatchObject({ retentionDays: 30, chainKey: 'k'.repeat(32) });
    expect(events.file).toEqual({
      path: join(dir, '.portcullis', 'logs/e.jsonl'),
      maxBytes: 4096,
      keep: 0,
    });
    expect(events.path).toBe(events.file!.path);
  });

  it('turns the store and the file off', () => {
    const events = resolveEvents({ store: { kind: 'none' }, file: { enabled: false } });
    expect(events.store).toBeNull();
    expect(events.file).toBeNull();
  });

  it('names the bad key', () => {
    const cases: [unknown, string][] = [
      [{ spool: { maxBytes: 1000 } }, 'events.spool.maxBytes'],
      [{ spool: { whenFull: 'drop' } }, 'events.spool.whenFull'],
      [{ spool: { size: 1 } }, 'events.spool: unknown key(s) "size"'],
      [{ store: { kind: 'clickhouse' } }, 'events.store.kind'],
      [{ store: { retentionDays: 0 } }, 'events.store.retentionDays'],
      [{ store: { chainKey: { value: 'k', env: 'K' } } }, 'events.store.chainKey'],
      [
        { store: { chainKey: { value: 'short' } } },
        'events.store.chainKey: the key must be at least 16 bytes',
      ],
      [{ file: { enabled: 'yes' } }, 'events.file.enabled'],
      [{ file: { maxBytes: 10 } }, 'events.file.maxBytes'],
      [{ file: { keep: -1 } }, 'events.file.keep'],
      [{ path: 'a.jsonl', file: { path: 'b.jsonl' } }, 'events.file.path'],
      [{ flushIntervalMs: 0 }, 'events.flushIntervalMs'],
      [{ kafka: { brokers: ['k:9092'], gzipLevel: 10 } }, 'events.kafka.gzipLevel'],
    ];
    for (const [events, key] of cases) {
      expect(messageOf(() => resolveEvents(events))).toContain(key);
    }
  });
});

describe('loadChainKey', () => {
  it('generates a key once, mode 0600, and returns the configured one when given', async () => {
    const store = resolveEvents({ store: {} }).store!;
    const keyFile = join(mkdtempSync(join(tmpdir(), 'portcullis-key-')), 'sub', 'k.key');
    const generated = { ...store, chainKeyFile: keyFile };
    const [a, b] = await Promise.all([loadChainKey(generated), loadChainKey(generated)]);
    expect(a).toMatch(/^[0-9a-f]{64}$/);
    expect(b).toBe(a);
    expect(await loadChainKey(generated)).toBe(a);
    expect((await stat(keyFile)).mode & 0o777).toBe(0o600);
    expect(await loadChainKey({ ...generated, chainKey: 'configured-key-123' })).toBe(
      'configured-key-123',
    );
  });
});
