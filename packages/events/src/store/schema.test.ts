import { describe, expect, it } from 'vitest';
import { eventStoreMigrations, retentionStatements, ttlClause } from './schema.js';

describe('eventStoreMigrations', () => {
  const migrations = eventStoreMigrations({ retentionDays: 90 });

  it('numbers versions from 1 without gaps', () => {
    expect(migrations.map((m) => m.version)).toEqual(migrations.map((_, i) => i + 1));
  });

  it('makes every statement safe to run again', () => {
    for (const statement of migrations.flatMap((m) => m.statements)) {
      expect(statement).toMatch(
        /^(CREATE (TABLE|MATERIALIZED VIEW) IF NOT EXISTS |ALTER TABLE \w+\s+(ADD COLUMN IF NOT EXISTS [^,]+,?\s*)+$)/,
      );
    }
  });

  it('puts the retention into every TTL', () => {
    const text = migrations.flatMap((m) => m.statements).join('\n');
    expect(text.match(/TTL .*/g)).toEqual([
      ttlClause('time', 90),
      ttlClause('day', 90),
      ttlClause('day', 90),
    ]);
    expect(retentionStatements(7).every((s) => s.endsWith('INTERVAL 7 DAY'))).toBe(true);
  });

  it('refuses a retention that is not a whole number of days', () => {
    for (const retentionDays of [0, -1, 1.5, Number.NaN, 18_251, 36_500]) {
      expect(() => eventStoreMigrations({ retentionDays })).toThrow(RangeError);
    }
  });
});
