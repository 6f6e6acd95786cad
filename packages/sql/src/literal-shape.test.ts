import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { literalShape } from './literal-shape.js';

describe('literalShape', () => {
  it('replaces plain literals and keeps everything else', () => {
    expect(literalShape("SELECT a FROM t WHERE id = 12 AND name = 'it''s' -- note")).toBe(
      'SELECT a FROM t WHERE id = ? AND name = ? -- note',
    );
    expect(literalShape('SELECT $1, "quoted id", 1.5e3 /* c */')).toBe(
      'SELECT $1, "quoted id", ? /* c */',
    );
  });

  it.each([
    "SELECT E'a\\'b'",
    "SELECT U&'d\\0061t'",
    "SELECT X'ff'",
    'SELECT $$body$$',
    'SELECT $tag$body$tag$',
    "SELECT 'unterminated",
    "SELECT 'unterminated''",
    "SELECT 'a'\n'b'",
  ])('is null for %j', (sql) => {
    expect(literalShape(sql)).toBeNull();
  });

  it('gives equal shapes when only plain literal values differ, and only then', () => {
    fc.assert(
      fc.property(
        fc.nat(),
        fc.nat(),
        fc.string({ unit: fc.constantFrom('a', 'b', "'", ' ') }),
        (x, y, text) => {
          const quoted = `'${text.replaceAll("'", "''")}'`;
          expect(literalShape(`SELECT * FROM t WHERE a = ${x} AND b = ${quoted}`)).toBe(
            literalShape(`SELECT * FROM t WHERE a = ${y} AND b = 'other'`),
          );
        },
      ),
    );
    expect(literalShape('SELECT * FROM t WHERE a = 1')).not.toBe(
      literalShape('SELECT * FROM u WHERE a = 1'),
    );
  });
});
