import { describe, expect, it } from 'vitest';
import { classifyFunction, setReturningShape } from './classify-function.js';

const NONE = new Set<string>();

describe('classifyFunction', () => {
  it.each([
    [null, 'count', 'count'],
    ['pg_catalog', 'count', 'count'],
    ['public', 'count', 'unknown'],
    [null, 'upper', 'builtin'],
    ['pg_catalog', 'btrim', 'builtin'],
    [null, 'pg_get_expr', 'builtin'],
    [null, 'query_to_xml', 'dynamic-sql'],
    [null, 'ts_stat', 'dynamic-sql'],
    [null, 'set_config', 'side-channel'],
    [null, 'pg_notify', 'side-channel'],
    [null, 'pg_sleep', 'side-channel'],
    [null, 'leak', 'unknown'],
    ['public', 'upper', 'unknown'],
  ] as const)('%s.%s is %s', (schema, name, kind) => {
    expect(classifyFunction(schema, name, NONE)).toBe(kind);
  });

  it('trusts what the deployment lists, bare or qualified', () => {
    const trusted = new Set(['leak', 'ext.digest']);
    expect(classifyFunction(null, 'leak', trusted)).toBe('builtin');
    expect(classifyFunction('ext', 'digest', trusted)).toBe('builtin');
    expect(classifyFunction('public', 'leak', trusted)).toBe('unknown');
    expect(classifyFunction(null, 'digest', trusted)).toBe('unknown');
  });
});

describe('setReturningShape', () => {
  it('knows the columns of built-in set-returning functions', () => {
    expect(setReturningShape('json_each')).toEqual({ kind: 'columns', names: ['key', 'value'] });
    expect(setReturningShape('unnest')).toEqual({ kind: 'per-argument' });
    expect(setReturningShape('jsonb_to_recordset')).toEqual({ kind: 'definition-list' });
    expect(setReturningShape('generate_series')).toEqual({ kind: 'scalar' });
  });

  it('cannot see a row type taken from an argument', () => {
    expect(setReturningShape('json_populate_record')).toBeNull();
  });
});
