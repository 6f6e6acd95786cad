import { describe, expect, it } from 'vitest';
import { walkStatement } from './walk-statement.js';

describe('walkStatement', () => {
  it('finds tables and calls inside node types it has no rule for', () => {
    const findings = walkStatement({
      FutureStmt: {
        options: [{ NewNode: { relation: { relname: 'events', schemaname: 'audit' } } }],
        nested: {
          deeper: [[{ FuncCall: { funcname: [{ String: { sval: 'pg_read_file' } }] } }]],
        },
        odd: [null, 1, 'text', true, {}],
      },
    });
    expect(findings.kind).toBe('other');
    expect([...findings.tablesRead.values()]).toEqual([{ schema: 'audit', name: 'events' }]);
    expect([...findings.functions]).toEqual(['pg_read_file']);
    expect([...findings.flags]).toEqual(['server-file-access']);
    expect(findings.readOnly).toBe(false);
  });

  it('takes nothing that is not a parse tree for a statement', () => {
    for (const input of [undefined, null, 42, 'SELECT 1', [], {}]) {
      const findings = walkStatement(input);
      expect(findings.kind).toBe('other');
      expect(findings.tablesRead.size + findings.tablesWritten.size).toBe(0);
    }
  });

  it('walks a very deep tree without recursion', () => {
    let node: unknown = { RangeVar: { relname: 'bottom' } };
    for (let i = 0; i < 200_000; i++) node = { A_Expr: { lexpr: node } };
    const findings = walkStatement({ SelectStmt: { whereClause: node } });
    expect([...findings.tablesRead.values()]).toEqual([{ schema: null, name: 'bottom' }]);
  });
});
