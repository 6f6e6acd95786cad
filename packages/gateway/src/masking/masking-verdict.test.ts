import type { LineageResult, OutputColumn } from '@portcullis/sql';
import { describe, expect, it } from 'vitest';
import type { MaskingRuleConfig } from '../config/load-config.js';
import { ColumnRules } from './column-rules.js';
import { maskingVerdict } from './masking-verdict.js';

const RULES: MaskingRuleConfig[] = [
  {
    name: 'email',
    columns: ['crm.customers.email'],
    names: [],
    style: { kind: 'redact' },
    shaping: 'refuse',
    exemptGroups: ['support'],
  },
  {
    name: 'phone',
    columns: ['customers.phone'],
    names: [],
    style: { kind: 'fixed-format' },
    shaping: 'allow',
    exemptGroups: [],
  },
  {
    name: 'ids',
    columns: [],
    names: ['*ssn*', 'national_*'],
    style: { kind: 'null' },
    shaping: 'refuse',
    exemptGroups: [],
  },
];

const rules = ColumnRules.forPerson(RULES, []);
const src = (table: string, column: string, schema = 'crm') => ({ schema, table, column });

function output(
  name: string,
  derivation: OutputColumn['derivation'],
  ...sources: ReturnType<typeof src>[]
): OutputColumn {
  return { name, index: 0, derivation, sources };
}

function lineage(parts: Partial<LineageResult>): LineageResult {
  return { outputs: [], shaping: [], writes: [], dependsOnLiterals: false, ...parts };
}

describe('ColumnRules', () => {
  it('matches schema.table.column, table.column in any schema, and name globs', () => {
    expect(rules.ruleFor('crm', 'customers', 'email')?.name).toBe('email');
    expect(rules.ruleFor('public', 'customers', 'email')).toBeNull();
    expect(rules.ruleFor('other', 'customers', 'phone')?.name).toBe('phone');
    expect(rules.ruleFor('x', 'y', 'customer_SSN_hash')?.name).toBe('ids');
    expect(rules.ruleFor('x', 'y', 'national_id')?.name).toBe('ids');
    expect(rules.ruleFor('x', 'y', 'nationality')).toBeNull();
  });

  it('takes the first matching rule, and drops rules the person is exempt from', () => {
    const support = ColumnRules.forPerson(RULES, ['support']);
    expect(support.ruleFor('crm', 'customers', 'email')).toBeNull();
    expect(support.key).not.toBe(rules.key);
    expect(ColumnRules.forPerson([], []).empty).toBe(true);
  });

  it('treats regex characters in patterns literally', () => {
    const dotted = ColumnRules.forPerson(
      [{ ...RULES[0]!, columns: ['a+b.c(d).e'], exemptGroups: [] }],
      [],
    );
    expect(dotted.ruleFor('a+b', 'c(d)', 'e')?.name).toBe('email');
    expect(dotted.ruleFor('aab', 'cd', 'e')).toBeNull();
  });
});

describe('maskingVerdict', () => {
  it('masks direct reads with the rule style and detects elsewhere', () => {
    const verdict = maskingVerdict(
      [
        lineage({
          outputs: [
            output('id', 'direct', src('customers', 'id')),
            output('email', 'direct', src('customers', 'email')),
            output('n', 'aggregate-safe', src('customers', 'email')),
            output('k', 'constant'),
          ],
        }),
      ],
      rules,
      true,
    );
    expect(verdict).toEqual({
      ok: true,
      statements: [
        {
          actions: [{ kind: 'detect' }, { kind: 'redact' }, { kind: 'detect' }, { kind: 'detect' }],
          rules: [null, 'email', null, null],
          names: ['id', 'email', 'n', 'k'],
          copy: null,
        },
      ],
    });
  });

  it('leaves unmasked columns alone when detectors are off', () => {
    const verdict = maskingVerdict(
      [lineage({ outputs: [output('id', 'direct', src('customers', 'id'))] })],
      rules,
      false,
    );
    expect(verdict.ok && verdict.statements[0]!.actions).toEqual([null]);
  });

  it('refuses a value computed from a masked column, naming column and rule', () => {
    const verdict = maskingVerdict(
      [lineage({ outputs: [output('upper', 'transformed', src('customers', 'email'))] })],
      rules,
      true,
    );
    expect(verdict).toMatchObject({ ok: false, rule: 'email' });
    expect(!verdict.ok && verdict.message).toContain('crm.customers.email');
  });

  it('refuses shaping by a masked column unless its rule allows it', () => {
    const refused = maskingVerdict(
      [lineage({ shaping: [{ source: src('customers', 'email'), clause: 'where' }] })],
      rules,
      true,
    );
    expect(refused).toMatchObject({ ok: false, rule: 'email' });
    expect(!refused.ok && refused.message).toContain('WHERE');
    const allowed = maskingVerdict(
      [lineage({ shaping: [{ source: src('customers', 'phone'), clause: 'order-by' }] })],
      rules,
      true,
    );
    expect(allowed.ok).toBe(true);
  });

  it('refuses writing a masked value into an unmasked column, allows a masked one', () => {
    const write = (table: string, column: string) =>
      lineage({
        writes: [
          {
            target: { schema: 'crm', table, column },
            sources: [src('customers', 'email')],
            derivation: 'transformed',
          },
        ],
      });
    expect(maskingVerdict([write('scratch', 'v')], rules, true)).toMatchObject({ ok: false });
    expect(maskingVerdict([write('customers', 'email')], rules, true).ok).toBe(true);
  });

  it('refuses binary COPY of a masked column but not of unmasked ones', () => {
    const copy = (column: string) =>
      lineage({
        outputs: [output(column, 'direct', src('customers', column))],
        copy: { format: 'binary', header: false },
      });
    expect(maskingVerdict([copy('email')], rules, true)).toMatchObject({
      ok: false,
      rule: 'email',
    });
    expect(maskingVerdict([copy('id')], rules, true).ok).toBe(true);
  });

  it('refuses a multi-statement text when any statement reveals a masked value', () => {
    const verdict = maskingVerdict(
      [
        lineage({ outputs: [output('id', 'direct', src('customers', 'id'))] }),
        lineage({ outputs: [output('x', 'transformed', src('t', 'national_id', 'public'))] }),
      ],
      rules,
      true,
    );
    expect(verdict).toMatchObject({ ok: false, rule: 'ids' });
  });
});
