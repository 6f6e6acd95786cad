import { describe, expect, it } from 'vitest';
import { analyzeStatement } from './analyze-statement.js';
import { loadSqlParser } from './load-sql-parser.js';
import { StatementAnalyzer } from './statement-analyzer.js';

// This file must not load the parser before its first test: each test file has its own
// module state, so the "not loaded yet" path is reachable here.
describe('loadSqlParser', () => {
  it('must finish before the first analysis', async () => {
    expect(() => analyzeStatement('SELECT 1')).toThrow(/loadSqlParser/);
    expect(() => new StatementAnalyzer().analyze('SELECT 1')).toThrow(/loadSqlParser/);
    await Promise.all([loadSqlParser(), loadSqlParser()]);
    expect(analyzeStatement('SELECT 1').ok).toBe(true);
    await loadSqlParser(); // later calls are cheap and harmless
    expect(analyzeStatement('SELECT 2').ok).toBe(true);
  });
});
