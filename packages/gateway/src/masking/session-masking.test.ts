import { loadSqlParser, StatementAnalyzer } from '@portcullis/sql';
import { beforeAll, describe, expect, it } from 'vitest';
import type { MaskingRuleConfig } from '../config/load-config.js';
import { CatalogSnapshot } from './catalog-snapshot.js';
import { ColumnRules } from './column-rules.js';
import { SessionMasking, VerdictCache } from './session-masking.js';

const RULES: MaskingRuleConfig[] = [
  {
    name: 'email',
    columns: ['public.customers.email'],
    names: [],
    style: { kind: 'redact' },
    shaping: 'refuse',
    exemptGroups: [],
  },
];

/** public.customers (masked email), archive.customers (not masked), public.orders. */
const catalog = new CatalogSnapshot(
  {
    relations: [
      { oid: 1, schema: 'public', name: 'customers', relkind: 'r', definition: null },
      { oid: 2, schema: 'archive', name: 'customers', relkind: 'r', definition: null },
      { oid: 3, schema: 'public', name: 'orders', relkind: 'r', definition: null },
    ],
    columns: [
      { relationOid: 1, attnum: 1, name: 'id', typeOid: 23, dropped: false },
      { relationOid: 1, attnum: 2, name: 'email', typeOid: 25, dropped: false },
      { relationOid: 2, attnum: 1, name: 'id', typeOid: 23, dropped: false },
      { relationOid: 2, attnum: 2, name: 'email', typeOid: 25, dropped: false },
      { relationOid: 3, attnum: 1, name: 'id', typeOid: 23, dropped: false },
    ],
  },
  { generation: 1, loadedAt: 0 },
);

let analyzer: StatementAnalyzer;
beforeAll(async () => {
  await loadSqlParser();
  analyzer = new StatementAnalyzer();
});

function session(searchPath: string[], cache = new VerdictCache()) {
  return new SessionMasking({
    rules: ColumnRules.forPerson(RULES, []),
    detect: false,
    catalog: () => catalog,
    searchPath,
    trustedFunctions: [],
    cache,
  });
}

const verdictOf = (masking: SessionMasking, text: string) =>
  masking.verdict(text, analyzer.analyze(text));

describe('SessionMasking', () => {
  it('resolves unqualified names with the session search path', () => {
    const archiveFirst = session(['pg_catalog', 'archive', 'public']);
    const publicFirst = session(['pg_catalog', 'public', 'archive']);
    expect(verdictOf(archiveFirst, 'SELECT email FROM customers')).toMatchObject({
      ok: true,
      statements: [{ actions: [null] }],
    });
    expect(verdictOf(publicFirst, 'SELECT email FROM customers')).toMatchObject({
      ok: true,
      statements: [{ actions: [{ kind: 'redact' }] }],
    });
  });

  it('traces a text that sets the search path as if the path were unknown, and forgets it', () => {
    const masking = session(['pg_catalog', 'archive', 'public']);
    // Under the old path `customers` would be archive.customers (not masked); the server runs
    // the SELECT under the new path, so the gateway must not guess.
    const verdict = verdictOf(masking, 'SET search_path = public; SELECT email FROM customers');
    expect(verdict.ok).toBe(false);
    expect(!verdict.ok && verdict.message).toContain('schema-qualify');
    expect(masking.searchPath).toBeNull();
    // Unique names still resolve; qualified names always do.
    expect(verdictOf(masking, 'SELECT id FROM orders').ok).toBe(true);
    expect(verdictOf(masking, 'SELECT email FROM public.customers')).toMatchObject({
      ok: true,
      statements: [{ actions: [{ kind: 'redact' }] }],
    });
  });

  it.each(['RESET ALL', 'SET ROLE auditor', "SELECT set_config('search_path', 'x', false)"])(
    'forgets the path after %s',
    (text) => {
      const masking = session(['pg_catalog', 'public']);
      verdictOf(masking, text);
      expect(masking.searchPath).toBeNull();
    },
  );

  it('keeps the path across statements that cannot change it', () => {
    const masking = session(['pg_catalog', 'public']);
    verdictOf(masking, "SET application_name = 'x'");
    verdictOf(masking, 'SELECT id FROM orders');
    expect(masking.searchPath).toEqual(['pg_catalog', 'public']);
  });

  it('refuses text the parser rejects', () => {
    const verdict = verdictOf(session(['public']), 'SELEC email FROM customers');
    expect(verdict).toMatchObject({ ok: false, rule: 'masking-lineage' });
  });
});

describe('VerdictCache', () => {
  it('traces statements that differ only in literals once', () => {
    const cache = new VerdictCache();
    let computed = 0;
    const analysis = analyzer.analyze('SELECT email FROM customers WHERE id = 1');
    const compute = () => {
      computed++;
      return { verdict: { ok: true as const, statements: [] }, literalDependent: false };
    };
    cache.get(analysis, 'ctx', 'SELECT email FROM customers WHERE id = 1', compute);
    cache.get(
      analyzer.analyze('SELECT email FROM customers WHERE id = 2'),
      'ctx',
      'SELECT email FROM customers WHERE id = 2',
      compute,
    );
    expect(computed).toBe(1);
    cache.get(analysis, 'other context', 'SELECT email FROM customers WHERE id = 1', compute);
    expect(computed).toBe(2);
  });

  it('keys a verdict a literal decides (ORDER BY 2) by its text', () => {
    const masking = session(['pg_catalog', 'public']);
    const first = verdictOf(masking, 'SELECT id, email FROM customers ORDER BY 1');
    const second = verdictOf(masking, 'SELECT id, email FROM customers ORDER BY 2');
    expect(first.ok).toBe(true);
    expect(second).toMatchObject({ ok: false, rule: 'email' });
    expect(verdictOf(masking, 'SELECT id, email FROM customers ORDER BY 1').ok).toBe(true);
  });
});
