import { beforeAll, describe, expect, it } from 'vitest';
import { loadSqlParser } from './load-sql-parser.js';
import { StatementAnalyzer } from './statement-analyzer.js';

beforeAll(async () => {
  await loadSqlParser();
});

describe('StatementAnalyzer', () => {
  it('answers the same text from the cache with the same frozen result', () => {
    const analyzer = new StatementAnalyzer();
    const first = analyzer.analyze('SELECT * FROM users WHERE id = 1');
    expect(first.ok).toBe(true);
    expect(analyzer.analyze('SELECT * FROM users WHERE id = 1')).toBe(first);
    expect(analyzer.cacheSize).toBe(1);
    expect(Object.isFrozen(first)).toBe(true);
    // Another text of another shape is its own entry.
    expect(analyzer.analyze('SELECT * FROM accounts WHERE id = 1')).not.toBe(first);
    expect(analyzer.cacheSize).toBe(2);
  });

  it('caches refusals too, so a repeated bad statement costs a lookup', () => {
    const analyzer = new StatementAnalyzer();
    const bad = analyzer.analyze('SELEC 1');
    expect(bad).toMatchObject({ ok: false, reason: 'syntax' });
    expect(analyzer.analyze('SELEC 1')).toBe(bad);
  });

  it('evicts the least recently used text first', () => {
    const analyzer = new StatementAnalyzer({ cacheEntries: 2 });
    const a = analyzer.analyze('SELECT 1 FROM a');
    const b = analyzer.analyze('SELECT 1 FROM b');
    expect(analyzer.analyze('SELECT 1 FROM a')).toBe(a); // now b is the least recently used
    analyzer.analyze('SELECT 1 FROM c');
    expect(analyzer.cacheSize).toBe(2);
    expect(analyzer.analyze('SELECT 1 FROM a')).toBe(a);
    const again = analyzer.analyze('SELECT 1 FROM b');
    expect(again).not.toBe(b);
    expect(again).toEqual(b);
  });

  it('never holds more entries than configured', () => {
    const analyzer = new StatementAnalyzer({ cacheEntries: 10 });
    for (let i = 0; i < 50; i++) analyzer.analyze(`SELECT ${i} FROM t${i}`);
    expect(analyzer.cacheSize).toBe(10);
  });

  it('bounds the bytes it holds, whatever the entry count', () => {
    const analyzer = new StatementAnalyzer({ cacheBytes: 64 * 1024 });
    const big = (i: number): string => `SELECT 1 FROM t${i} /* ${'x'.repeat(8000)} */`;
    for (let i = 0; i < 20; i++) analyzer.analyze(big(i));
    // Each entry weighs over 16 KB (two bytes a character): at most four fit.
    expect(analyzer.cacheSize).toBeLessThanOrEqual(4);
    expect(analyzer.cacheSize).toBeGreaterThan(0);
  });

  it('does not cache text refused for its size', () => {
    const analyzer = new StatementAnalyzer({ maxStatementBytes: 32 });
    expect(analyzer.analyze(`SELECT '${'x'.repeat(64)}'`)).toMatchObject({ reason: 'too-large' });
    expect(analyzer.cacheSize).toBe(0);
  });

  it('can run without a cache', () => {
    const analyzer = new StatementAnalyzer({ cacheEntries: 0 });
    const first = analyzer.analyze('SELECT 1');
    expect(analyzer.analyze('SELECT 1')).not.toBe(first);
    expect(analyzer.cacheSize).toBe(0);
  });

  it('refuses nonsensical options', () => {
    expect(() => new StatementAnalyzer({ cacheEntries: -1 })).toThrow(RangeError);
    expect(() => new StatementAnalyzer({ maxStatementBytes: 1.5 })).toThrow(RangeError);
    expect(() => new StatementAnalyzer({ cacheBytes: Number.NaN })).toThrow(RangeError);
  });
});

describe('StatementAnalyzer shape cache', () => {
  it('parses statements that differ only in plain literals once, with the same analysis', async () => {
    await loadSqlParser();
    const analyzer = new StatementAnalyzer();
    const first = analyzer.analyze('SELECT abalance FROM pgbench_accounts WHERE aid = 1');
    const second = analyzer.analyze('SELECT abalance FROM pgbench_accounts WHERE aid = 77');
    expect(second).toBe(first);
    expect(first.ok && first.analysis.redactedText).toBe(
      'SELECT abalance FROM pgbench_accounts WHERE aid = $1',
    );
  });

  it('never shares an analysis across literal values that decide a flag', async () => {
    await loadSqlParser();
    const analyzer = new StatementAnalyzer();
    const safe = analyzer.analyze("SELECT set_config('application_name', 'x', false)");
    const role = analyzer.analyze("SELECT set_config('role', 'x', false)");
    expect(safe.ok && safe.analysis.flags).not.toContain('set-role');
    expect(role.ok && role.analysis.flags).toContain('set-role');
    const utf8 = analyzer.analyze("SET client_encoding = 'UTF8'");
    const latin = analyzer.analyze("SET client_encoding = 'LATIN1'");
    expect(utf8.ok && utf8.analysis.flags).not.toContain('unsafe-lexer-setting');
    expect(latin.ok && latin.analysis.flags).toContain('unsafe-lexer-setting');
  });

  it('does not trust shapes with dollar quotes or prefixed strings', async () => {
    await loadSqlParser();
    const analyzer = new StatementAnalyzer();
    const a = analyzer.analyze("SELECT E'a' FROM t");
    const b = analyzer.analyze("SELECT E'b' FROM t");
    expect(b).not.toBe(a);
  });
});
