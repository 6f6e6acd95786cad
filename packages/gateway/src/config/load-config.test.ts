import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { isPortcullisError } from '@portcullis/core';
import { configJsonSchema } from './config-json-schema.js';
import { loadConfigFile, resolveConfig, sha256Hex } from './load-config.js';

const dir = mkdtempSync(join(tmpdir(), 'portcullis-config-'));
const base = {
  listeners: { postgres: { port: 6432 } },
  resources: {
    app: {
      type: 'postgres',
      host: 'db',
      database: 'app',
      user: 'app_rw',
      password: { env: 'APP_PW' },
    },
  },
  tokens: [{ token: { value: 'tok-1' }, person: { subject: 'alice', email: 'alice@example.com' } }],
};

function errorOf(fn: () => unknown): { code: string; message: string } {
  try {
    fn();
  } catch (err) {
    if (isPortcullisError(err)) return { code: err.code, message: err.message };
    throw err;
  }
  throw new Error('expected an error');
}

describe('resolveConfig', () => {
  it('applies defaults, resolves secrets and keys tokens by their SHA-256', () => {
    const config = resolveConfig(base, { baseDir: dir, env: { APP_PW: 's3cret' } });
    expect(config.postgres).toEqual({ host: '127.0.0.1', port: 6432, tls: null, insecure: false });
    expect(config.resources.app).toMatchObject({
      port: 5432,
      password: 's3cret',
      tls: { mode: 'disable', ca: null },
    });
    expect(config.tokens[sha256Hex('tok-1')]?.person.email).toBe('alice@example.com');
    expect(JSON.stringify(config)).not.toContain('tok-1');
    expect(config.limits.maxFrameBytes).toBe(64 * 1024 * 1024);
    expect(config.events.path).toBe(join(dir, '.portcullis', 'events.jsonl'));
    expect(Object.isFrozen(config.resources.app)).toBe(true);
  });

  it('names every bad key', () => {
    const bad = {
      ...base,
      listeners: { postgres: { port: 'x', tsl: {} } },
      resources: { app: { ...base.resources.app, port: -1 } },
      limits: { maxFrameBytes: 10 },
    };
    const { code, message } = errorOf(() =>
      resolveConfig(bad, { baseDir: dir, env: { APP_PW: 'x' } }),
    );
    expect(code).toBe('PCL_ERR_CONFIG_INVALID');
    expect(message).toContain('listeners.postgres.port');
    expect(message).toContain('listeners.postgres: unknown key(s) "tsl"');
    expect(message).toContain('resources.app.port');
    expect(message).toContain('limits.maxFrameBytes');
  });

  it('requires exactly one secret source and one of token or sha256', () => {
    const twoSources = {
      ...base,
      resources: { app: { ...base.resources.app, password: { value: 'a', env: 'B' } } },
    };
    expect(errorOf(() => resolveConfig(twoSources, { baseDir: dir, env: {} })).message).toContain(
      'resources.app.password: give exactly one of value, file or env',
    );
    const both = { ...base, tokens: [{ ...base.tokens[0], sha256: sha256Hex('x') }] };
    expect(
      errorOf(() => resolveConfig(both, { baseDir: dir, env: { APP_PW: 'x' } })).message,
    ).toContain('tokens.0: give exactly one of token or sha256');
  });

  it('reports a missing environment variable or secret file by key', () => {
    expect(errorOf(() => resolveConfig(base, { baseDir: dir, env: {} }))).toEqual({
      code: 'PCL_ERR_CONFIG_SECRET',
      message: 'resources.app.password: environment variable APP_PW is not set',
    });
    const fromFile = {
      ...base,
      resources: { app: { ...base.resources.app, password: { file: 'nope.txt' } } },
    };
    expect(errorOf(() => resolveConfig(fromFile, { baseDir: dir, env: {} })).message).toMatch(
      /^resources\.app\.password: cannot read .*nope\.txt/,
    );
  });

  it('reads secret files relative to the config and trims them', () => {
    writeFileSync(join(dir, 'pw.txt'), 'from-file\n');
    const fromFile = {
      ...base,
      resources: { app: { ...base.resources.app, password: { file: 'pw.txt' } } },
    };
    expect(resolveConfig(fromFile, { baseDir: dir, env: {} }).resources.app?.password).toBe(
      'from-file',
    );
  });

  it('refuses a token scoped to a resource that does not exist, and duplicate tokens', () => {
    const scoped = { ...base, tokens: [{ ...base.tokens[0], resources: ['nope'] }] };
    expect(
      errorOf(() => resolveConfig(scoped, { baseDir: dir, env: { APP_PW: 'x' } })).message,
    ).toContain('tokens.0.resources: no resource named "nope" (known: app)');
    const twice = { ...base, tokens: [base.tokens[0], { ...base.tokens[0] }] };
    expect(
      errorOf(() => resolveConfig(twice, { baseDir: dir, env: { APP_PW: 'x' } })).message,
    ).toContain('tokens.1: the same token is configured twice');
  });

  it('accepts resource names that could shadow object properties only as plain keys', () => {
    const config = resolveConfig(
      { ...base, resources: { constructor: base.resources.app } },
      { baseDir: dir, env: { APP_PW: 'x' } },
    );
    expect(Object.keys(config.resources)).toEqual(['constructor']);
  });
});

describe('policy configuration', () => {
  const withPolicy = (policy: unknown) => ({
    ...base,
    resources: { app: { ...base.resources.app, policy } },
  });

  it('resolves rules in order with defaults', () => {
    const config = resolveConfig(
      withPolicy({
        rules: [{ name: 'no-drop', action: 'block', match: { flags: ['drop'] } }],
      }),
      { baseDir: dir, env: { APP_PW: 'x' } },
    );
    expect(config.resources.app?.policy).toEqual({
      default: 'allow',
      unparsable: 'block',
      rules: [{ name: 'no-drop', action: 'block', match: { flags: ['drop'] } }],
    });
  });

  it('names a misspelled flag, a bad time and a duplicate rule (a typo must not silently never match)', () => {
    const bad = withPolicy({
      rules: [
        { name: 'a', action: 'block', match: { flags: ['delete-wihtout-where'] } },
        {
          name: 'b',
          action: 'block',
          match: { time: { from: '25:00', to: '06:00', timeZone: 'Mars/Olympus' } },
        },
      ],
    });
    const { message } = errorOf(() => resolveConfig(bad, { baseDir: dir, env: { APP_PW: 'x' } }));
    expect(message).toContain('resources.app.policy.rules.0.match.flags.0');
    expect(message).toContain('resources.app.policy.rules.1.match.time.from: expected HH:MM');
    expect(message).toContain(
      'resources.app.policy.rules.1.match.time.timeZone: unknown time zone',
    );
    const twice = withPolicy({
      rules: [
        { name: 'a', action: 'block', match: {} },
        { name: 'a', action: 'allow', match: {} },
      ],
    });
    expect(
      errorOf(() => resolveConfig(twice, { baseDir: dir, env: { APP_PW: 'x' } })).message,
    ).toContain('resources.app.policy.rules.1.name: rule "a" is defined twice');
  });
});

describe('masking configuration', () => {
  const withMasking = (masking: unknown) => ({
    ...base,
    resources: { app: { ...base.resources.app, masking } },
  });
  const resolve = (masking: unknown, env: Record<string, string> = {}) =>
    resolveConfig(withMasking(masking), { baseDir: dir, env: { APP_PW: 'x', ...env } });

  it('resolves rules, styles given by name or with options, detectors and the key', () => {
    const config = resolve(
      {
        hashKey: { env: 'MASK_KEY' },
        rules: [
          { name: 'email', columns: ['public.customers.email'], style: 'hash' },
          { name: 'card', names: ['*card*'], style: { kind: 'partial', keepLast: 2 } },
        ],
        detectors: { kinds: ['email', 'card'] },
      },
      { MASK_KEY: 'sixteen-byte-key!' },
    );
    expect(config.resources.app?.masking).toEqual({
      rules: [
        {
          name: 'email',
          columns: ['public.customers.email'],
          names: [],
          style: { kind: 'hash' },
          shaping: 'refuse',
          exemptGroups: [],
        },
        {
          name: 'card',
          columns: [],
          names: ['*card*'],
          style: { kind: 'partial', keepLast: 2 },
          shaping: 'refuse',
          exemptGroups: [],
        },
      ],
      detectors: { kinds: ['email', 'card'], styles: {} },
      hashKey: 'sixteen-byte-key!',
      trustedFunctions: [],
      catalogRefreshMs: 60_000,
    });
    expect(config.masking).toEqual({
      threads: expect.any(Number),
      thresholdBytes: null,
      taskTimeoutMs: 5_000,
    });
    expect(resolveConfig(base, { baseDir: dir, env: { APP_PW: 'x' } }).resources.app?.masking).toBe(
      null,
    );
  });

  it('names the bad key: no target, a bad pattern, an unknown detector, a hash without key', () => {
    const messageOf = (masking: unknown, env?: Record<string, string>) =>
      errorOf(() => resolve(masking, env)).message;
    expect(messageOf({ rules: [{ name: 'x', style: 'redact' }] })).toContain(
      'resources.app.masking.rules.0: give columns, names or both',
    );
    expect(messageOf({ rules: [{ name: 'x', columns: ['email'], style: 'redact' }] })).toContain(
      'resources.app.masking.rules.0.columns.0: expected table.column',
    );
    expect(messageOf({ detectors: { kinds: ['emial'] } })).toContain(
      'resources.app.masking.detectors.kinds.0',
    );
    expect(messageOf({ rules: [{ name: 'x', columns: ['t.c'], style: 'hash' }] })).toContain(
      'resources.app.masking.rules.0.style: the hash style needs resources.app.masking.hashKey',
    );
    expect(
      messageOf({
        hashKey: { value: 'short' },
        rules: [{ name: 'x', columns: ['t.c'], style: 'hash' }],
      }),
    ).toContain('resources.app.masking.hashKey: the key must be at least 16 bytes long');
    expect(
      messageOf({
        rules: [{ name: 'x', columns: ['t.c'], style: { kind: 'redact', marker: 'a\u0000' } }],
      }),
    ).toContain('resources.app.masking.rules.0.style');
    expect(
      messageOf({
        rules: [
          { name: 'x', columns: ['t.c'], style: 'null' },
          { name: 'x', columns: ['t.d'], style: 'null' },
        ],
      }),
    ).toContain('resources.app.masking.rules.1.name: rule "x" is defined twice');
  });
});

describe('loadConfigFile', () => {
  it('reports unreadable files and invalid YAML clearly', () => {
    expect(errorOf(() => loadConfigFile(join(dir, 'missing.yaml'), {})).code).toBe(
      'PCL_ERR_CONFIG_READ',
    );
    writeFileSync(join(dir, 'bad.yaml'), 'listeners: [unclosed');
    const { code, message } = errorOf(() => loadConfigFile(join(dir, 'bad.yaml'), {}));
    expect(code).toBe('PCL_ERR_CONFIG_INVALID');
    expect(message).toContain('is not valid YAML');
  });

  it('loads the annotated example configuration', () => {
    const example = new URL('../../../../docs/portcullis.example.yaml', import.meta.url);
    writeFileSync(join(dir, 'bob-token'), 'bob-token-value');
    const text = readFileSync(example, 'utf8')
      .replaceAll('/etc/portcullis/tokens/bob', join(dir, 'bob-token'))
      .replace(/tls:\n\s+cert: .*\n\s+key: .*\n/, '')
      .replace(/, ca: \/etc\/portcullis\/tls\/orders-ca.pem/, '');
    writeFileSync(join(dir, 'example.yaml'), text);
    const config = loadConfigFile(join(dir, 'example.yaml'), {
      ORDERS_DB_PASSWORD: 'pw',
      ORDERS_MASKING_KEY: 'a-masking-key-of-32-bytes-length',
    });
    expect(Object.keys(config.resources)).toEqual(['orders-prod']);
    expect(config.resources['orders-prod']!.masking?.rules.map((r) => r.name)).toEqual([
      'customer-email',
      'card-last-four',
    ]);
    expect(Object.keys(config.tokens)).toHaveLength(2);
  });
});

describe('docs/config.schema.json', () => {
  it('is the JSON Schema generated from the config schema (run `npm run config-schema`)', () => {
    const published = readFileSync(
      new URL('../../../../docs/config.schema.json', import.meta.url),
      'utf8',
    );
    expect(published).toBe(configJsonSchema());
  });
});
