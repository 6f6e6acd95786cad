import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { literalShape, redactLiterals } from './redact-literals.js';

describe('redactLiterals: strings', () => {
  it.each([
    ["SELECT 'abc'", 'SELECT ?'],
    ["SELECT 'it''s'", 'SELECT ?'],
    ["SELECT ''", 'SELECT ?'],
    ["SELECT ''''", 'SELECT ?'],
    ["SELECT 'a', 'b'", 'SELECT ?, ?'],
    ["WHERE a='x'AND b='y'", 'WHERE a=?AND b=?'],
    // standard_conforming_strings: a backslash is an ordinary character in '...'
    ["SELECT 'a\\' , 'b'", 'SELECT ? , ?'],
    ["SELECT E'\\''", 'SELECT ?'],
    ["SELECT e'a\\'b''c\\\\'", 'SELECT ?'],
    ["SELECT E'\\\\' , 'x'", 'SELECT ? , ?'],
    ["SELECT B'1010'", 'SELECT ?'],
    ["SELECT b'1010'", 'SELECT ?'],
    ["SELECT X'1F'", 'SELECT ?'],
    ["SELECT N'nchar'", 'SELECT ?'],
    ["SELECT U&'d\\0061t\\+000061'", 'SELECT ?'],
    ["SELECT u&'\\' , 'x'", 'SELECT ? , ?'],
    ["SELECT U&'d!0061t' UESCAPE '!'", 'SELECT ? UESCAPE ?'],
    ["SELECT '1'::int", 'SELECT ?::int'],
    ["SELECT 'multi\nline'", 'SELECT ?'],
    ["SELECT 'ünïcödé ✓'", 'SELECT ?'],
  ])('%j → %j', (sql, expected) => {
    expect(redactLiterals(sql)).toBe(expected);
  });

  it('keeps identifiers that end in a prefix letter before a plain string', () => {
    // `name` is an identifier, the string that follows is a plain one (no backslash escapes).
    expect(redactLiterals("SELECT name'a\\' , 'b'")).toBe('SELECT name? , ?');
    expect(redactLiterals("SELECT abcE'x'")).toBe('SELECT abcE?');
  });
});

describe('redactLiterals: dollar quotes', () => {
  it.each([
    ['SELECT $$secret$$', 'SELECT ?'],
    ["SELECT $$it's$$", 'SELECT ?'],
    ['SELECT $tag$ a $$ b $tag$', 'SELECT ?'],
    ['SELECT $a$ $b$ x $b$ $a$', 'SELECT ?'],
    ['SELECT $a$x$ba$a$, 1', 'SELECT ?, ?'],
    ['SELECT $_t1$x$_t1$', 'SELECT ?'],
    ['SELECT $ü$x$ü$', 'SELECT ?'],
    ['DO $$BEGIN RAISE NOTICE $q$hi$q$; END$$', 'DO ?'],
    ['SELECT 1$$secret$$', 'SELECT ??'],
    ['SELECT $1$$secret$$', 'SELECT $1?'],
    ['SELECT ($$a$$)', 'SELECT (?)'],
  ])('%j → %j', (sql, expected) => {
    expect(redactLiterals(sql)).toBe(expected);
  });

  it('keeps identifiers containing $ and lone $ signs', () => {
    expect(redactLiterals('SELECT a$$b$$ FROM t')).toBe('SELECT a$$b$$ FROM t');
    expect(redactLiterals('SELECT $ + $')).toBe('SELECT $ + $');
  });
});

describe('redactLiterals: numbers', () => {
  it.each([
    ['SELECT 1', 'SELECT ?'],
    ['SELECT 42, -7', 'SELECT ?, -?'],
    ['SELECT 1.5e-3', 'SELECT ?'],
    ['SELECT 1E+5', 'SELECT ?'],
    ['SELECT .5', 'SELECT ?'],
    ['SELECT 5.', 'SELECT ?'],
    ['SELECT 1.e5', 'SELECT ?'],
    ['SELECT 0x1F', 'SELECT ?'],
    ['SELECT 0X_1f', 'SELECT ?'],
    ['SELECT 0o17', 'SELECT ?'],
    ['SELECT 0b1010', 'SELECT ?'],
    ['SELECT 1_000', 'SELECT ?'],
    ['SELECT 1_000.000_1', 'SELECT ?'],
    ['LIMIT 10 OFFSET 20', 'LIMIT ? OFFSET ?'],
    ['WHERE a[1:2]', 'WHERE a[?:?]'],
    ['FOR i IN 1..10 LOOP', 'FOR i IN ?..? LOOP'],
    ['SELECT 3-2', 'SELECT ?-?'],
    ['SELECT 1e', 'SELECT ?e'],
    // `1e'..'` is the number 1 followed by an E'' string (backslash escapes honoured).
    ["SELECT 1e'\\'secret'", 'SELECT ??'],
  ])('%j → %j', (sql, expected) => {
    expect(redactLiterals(sql)).toBe(expected);
  });

  it('keeps identifiers containing digits and $n parameters', () => {
    const sql = 'SELECT t1.c2, col$2, _9, "x1" FROM t1 WHERE a = $1 AND b = $12';
    expect(redactLiterals(sql)).toBe(sql);
    expect(redactLiterals('SELECT t1.c2 + 3 FROM s1.t1')).toBe('SELECT t1.c2 + ? FROM s1.t1');
  });
});

describe('redactLiterals: comments and identifiers', () => {
  it('keeps line and nested block comments untouched', () => {
    const sql = "SELECT /* it's /* nested 'x' */ 42 */ a -- no 'redaction' 7\nFROM t -- end 'z'";
    expect(redactLiterals(sql)).toBe(sql);
  });

  it('ends a line comment at CR as well as LF', () => {
    expect(redactLiterals("SELECT a -- note\rWHERE pw = 'secret'")).toBe(
      'SELECT a -- note\rWHERE pw = ?',
    );
    expect(redactLiterals("SELECT a -- note\r\nWHERE pw = 'secret'")).toBe(
      'SELECT a -- note\r\nWHERE pw = ?',
    );
  });

  it('keeps comment markers inside literals inside the literal', () => {
    expect(redactLiterals("SELECT '--', '/*', $$*/$$, 1")).toBe('SELECT ?, ?, ?, ?');
  });

  it('starts a comment inside an operator', () => {
    expect(redactLiterals("SELECT 1 +-- 'x'\n 2")).toBe("SELECT ? +-- 'x'\n ?");
  });

  it('keeps quoted identifiers, including doubled quotes and quote characters', () => {
    const sql = 'SELECT "it\'s", "a""b", "1", U&"d\\0061t" FROM "T 1"';
    expect(redactLiterals(sql)).toBe(sql);
  });

  it('leaves text without literals as the very same string', () => {
    const sql = 'SELECT a, b FROM t WHERE c = $1';
    expect(redactLiterals(sql)).toBe(sql);
    expect(redactLiterals('')).toBe('');
  });
});

describe('redactLiterals: text that cannot be lexed', () => {
  it.each([
    ["SELECT 'abc", 'SELECT ?'],
    ["SELECT 'it''s", 'SELECT ?'],
    ["SELECT E'abc\\'", 'SELECT ?'],
    ["SELECT E'abc\\", 'SELECT ?'],
    ["SELECT U&'abc", 'SELECT ?'],
    ['SELECT $$abc', 'SELECT ?'],
    ['SELECT $t$abc $$ x', 'SELECT ?'],
    ["SELECT \"abc 'secret'", 'SELECT ?'],
    ["SELECT /* a /* b */ 'secret'", 'SELECT ?'],
    ["SELECT 'a' /* 'secret'", 'SELECT ? ?'],
  ])('%j → %j', (sql, expected) => {
    expect(redactLiterals(sql)).toBe(expected);
  });
});

// ---------------------------------------------------------------------------------------------
// Property tests: generated SQL made of tokens whose redaction is known.

type Kind =
  | 'keyword'
  | 'ident'
  | 'qident'
  | 'param'
  | 'op'
  | 'punct'
  | 'number'
  | 'comment'
  | 'quote'
  | 'dollar';

interface Token {
  readonly kind: Kind;
  readonly text: string;
}

/** Literals come out as `?`; everything else unchanged. */
const isLiteral = (t: Token) => t.kind === 'number' || t.kind === 'quote' || t.kind === 'dollar';

/**
 * Whether two tokens may be written with nothing between them and still lex as two tokens in
 * PostgreSQL: punctuation touches anything but an operator, comments touch anything but an
 * operator, and a `'`/`$` token may follow a number, parameter, quoted identifier or literal
 * (`1$$x$$`, `$1'x'`, `'x'$$y$$`), but not a `'` (that would be a doubled quote).
 */
function canTouch(prev: Token, next: Token): boolean {
  if (prev.kind === 'op' || next.kind === 'op') return false;
  if (prev.kind === 'punct' || next.kind === 'punct') return true;
  if (prev.kind === 'comment' || next.kind === 'comment') return true;
  const opensWithQuoteOrDollar = next.text.startsWith("'") || next.text.startsWith('$');
  const after = ['number', 'param', 'qident', 'quote', 'dollar'].includes(prev.kind);
  return opensWithQuoteOrDollar && after && !(prev.text.endsWith("'") && next.text.startsWith("'"));
}

const lower = 'abcdefghijklmnopqrstuvwxyz';
const alnum = `${lower}ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789`;
const chars = (alphabet: string) => fc.constantFrom(...alphabet.split(''));
const str = (alphabet: string, maxLength: number, minLength = 0) =>
  fc.string({ unit: chars(alphabet), minLength, maxLength });

/** Text allowed inside literals and comments: SQL-ish punctuation, never a newline. */
const bodyText = str(`${alnum} _$'"\\;,.-/*()=`, 20);

const keyword = fc.constantFrom('SELECT', 'FROM', 'WHERE', 'AND', 'OR', 'IN', 'AS', 'E', 'B', 'X');
const identifier = fc
  .tuple(chars(`${lower}_`), str(`${lower}0123456789_$`, 5))
  .map(([first, rest]) => first + rest);
const quotedIdentifier = str(`${alnum} '$-*/`, 8).map((s) => `"${s}"`);
const param = fc.integer({ min: 1, max: 99 }).map((n) => `$${n}`);
const operator = fc.constantFrom('+', '-', '*', '/', '<>', '||', '::', '=', '<', '>=');
const punctuation = fc.constantFrom('(', ')', ',', ';', '[', ']');
const number = fc.oneof(
  fc.nat().map(String),
  fc.constantFrom('1.5e-3', '.5', '5.', '0x1F', '0o17', '0b101', '1_000', '3.14', '1E+10', '2e5'),
);
const lineComment = fc
  .tuple(str(`${alnum} '"$*/-`, 15), fc.constantFrom('\n', '\r', '\r\n'))
  .map(([s, eol]) => `--${s}${eol}`);
const blockComment = fc
  .tuple(str(`${alnum} '"$-`, 8), fc.option(str(`${alnum} '"$-`, 8)))
  .map(([outer, inner]) => (inner === null ? `/*${outer}*/` : `/*${outer}/*${inner}*/${outer}*/`));
const dollarTag = fc.option(
  fc.tuple(chars(`${lower}_`), str(`${lower}_0123456789`, 4)).map(([a, b]) => a + b),
  { nil: '' },
);

/** `s` as a literal: forms 0–4 are quoted strings, any other form dollar-quotes it with `tag`. */
function render(form: number, s: string, tag: string): string {
  switch (form) {
    case 0:
      return `'${s.replaceAll("'", "''")}'`;
    case 1:
      return `E'${s.replaceAll('\\', '\\\\').replaceAll("'", "\\'")}'`;
    case 2:
      return `e'${s.replaceAll('\\', '\\\\').replaceAll("'", "''")}'`;
    case 3:
      return `N'${s.replaceAll("'", "''")}'`;
    case 4:
      return `U&'${s.replaceAll("'", "''")}'`;
    default: {
      const delimiter = `$${tag}$`;
      // The body must not close the quote early, not even together with the closing tag.
      const body = s.replaceAll('$', '');
      return `${delimiter}${body}${delimiter}`;
    }
  }
}

const skeletonToken: fc.Arbitrary<Token> = fc.oneof(
  keyword.map((text) => ({ kind: 'keyword' as const, text })),
  identifier.map((text) => ({ kind: 'ident' as const, text })),
  quotedIdentifier.map((text) => ({ kind: 'qident' as const, text })),
  param.map((text) => ({ kind: 'param' as const, text })),
  operator.map((text) => ({ kind: 'op' as const, text })),
  punctuation.map((text) => ({ kind: 'punct' as const, text })),
  number.map((text) => ({ kind: 'number' as const, text })),
  lineComment.map((text) => ({ kind: 'comment' as const, text })),
  blockComment.map((text) => ({ kind: 'comment' as const, text })),
  fc
    .tuple(fc.nat(4), bodyText)
    .map(([form, s]) => ({ kind: 'quote' as const, text: render(form, s, '') })),
  fc
    .tuple(dollarTag, bodyText)
    .filter(([t, s]) => `${s}$${t}$`.indexOf(`$${t}$`) === s.length)
    .map(([t, s]) => ({ kind: 'dollar' as const, text: `$${t}$${s}$${t}$` })),
  str('01', 8).map((text) => ({ kind: 'quote' as const, text: `B'${text}'` })),
  str('0123456789abcdefABCDEF', 8).map((text) => ({ kind: 'quote' as const, text: `X'${text}'` })),
);

const separator = fc.constantFrom(' ', '\n', '\t', '  ', '\r\n', '\r');

/** Joins tokens with whitespace, or with nothing where `glue` says so and the lexer allows. */
function join(tokens: readonly Token[], seps: readonly string[], glue: readonly boolean[]) {
  let sql = '';
  let expected = '';
  tokens.forEach((t, i) => {
    if (i > 0) {
      const touch = glue[i] === true && canTouch(tokens[i - 1]!, t);
      const sep = touch ? '' : seps[i % seps.length]!;
      sql += sep;
      expected += sep;
    }
    sql += t.text;
    expected += isLiteral(t) ? '?' : t.text;
  });
  return { sql, expected };
}

const statement = fc
  .tuple(
    fc.array(skeletonToken, { minLength: 1, maxLength: 25 }),
    fc.array(separator, { minLength: 1, maxLength: 5 }),
    fc.array(fc.boolean(), { maxLength: 25 }),
  )
  .map(([tokens, seps, glue]) => join(tokens, seps, glue));

describe('redactLiterals: properties', () => {
  it('replaces exactly the literals of generated SQL with ?', () => {
    fc.assert(
      fc.property(statement, ({ sql, expected }) => {
        expect(redactLiterals(sql)).toBe(expected);
      }),
      { numRuns: 2000 },
    );
  });

  it('never lets a secret embedded in a literal through', () => {
    const secret = str(alnum, 24, 6);
    /** A literal token holding `secret` between two bits of random text. */
    const secretLiteral = (s: string) =>
      fc
        .tuple(bodyText, bodyText, fc.nat(5), dollarTag)
        .map(([before, after, form, tag]): Token => ({
          kind: form === 5 ? 'dollar' : 'quote',
          text: render(form, `${before}${s}${after}`, tag),
        }));
    const withSecrets = fc
      .array(secret, { minLength: 1, maxLength: 4 })
      .chain((secrets) =>
        fc.record({
          secrets: fc.constant(secrets),
          literals: fc.tuple(...secrets.map(secretLiteral)),
          tokens: fc.array(skeletonToken, { maxLength: 20 }),
          positions: fc.array(fc.nat(), { minLength: secrets.length, maxLength: secrets.length }),
          seps: fc.array(separator, { minLength: 1, maxLength: 3 }),
          glue: fc.array(fc.boolean(), { maxLength: 25 }),
          unterminated: fc.boolean(),
        }),
      )
      .map(({ secrets, literals, tokens, positions, seps, glue, unterminated }) => {
        const all = [...tokens];
        literals.forEach((t, k) => all.splice(positions[k]! % (all.length + 1), 0, t));
        const { sql, expected } = join(all, seps, glue);
        // Optionally one more secret in an unterminated literal at the very end.
        return { sql: unterminated ? `${sql} '${secrets[0]!}` : sql, secrets, skeleton: expected };
      });
    fc.assert(
      fc.property(withSecrets, ({ sql, secrets, skeleton }) => {
        const out = redactLiterals(sql);
        for (const s of secrets) {
          // A secret may by chance also be written outside literals (say, as a keyword).
          if (!skeleton.includes(s)) expect(out).not.toContain(s);
        }
      }),
      { numRuns: 2000 },
    );
  });

  it('never throws, never grows the text, and is idempotent on arbitrary SQL-ish text', () => {
    const soup = fc.string({ unit: chars(`${alnum} \n\r'"$\\-/*.&_+eEuUxX`), maxLength: 80 });
    fc.assert(
      fc.property(soup, (sql) => {
        const once = redactLiterals(sql);
        expect(once.length).toBeLessThanOrEqual(sql.length);
        expect(redactLiterals(once)).toBe(once);
      }),
      { numRuns: 3000 },
    );
  });
});

describe('literalShape', () => {
  it('is the redacted text when every literal is plain', () => {
    expect(literalShape("SELECT a FROM t WHERE id = 12 AND name = 'it''s' -- note")).toBe(
      'SELECT a FROM t WHERE id = ? AND name = ? -- note',
    );
    expect(literalShape('SELECT $1, "quoted id", 1.5e3 /* c */')).toBe(
      'SELECT $1, "quoted id", ? /* c */',
    );
  });

  it.each([
    "SELECT E'a\\\\'b'",
    "SELECT U&'d\\0061t'",
    "SELECT X'ff'",
    'SELECT $$body$$',
    'SELECT $tag$body$tag$',
    "SELECT 'unterminated",
    'SELECT "unterminated',
    'SELECT 1 /* unterminated',
  ])('is null for %s', (sql) => {
    expect(literalShape(sql)).toBeNull();
  });

  it('gives equal shapes exactly when only plain literal values differ', () => {
    fc.assert(
      fc.property(
        fc.integer(),
        fc.integer(),
        fc.string({ unit: fc.constantFrom('a', 'b', "'", ' ') }),
        (x, y, text) => {
          const quoted = `'${text.replaceAll("'", "''")}'`;
          expect(literalShape(`SELECT * FROM t WHERE a = ${Math.abs(x)} AND b = ${quoted}`)).toBe(
            literalShape(`SELECT * FROM t WHERE a = ${Math.abs(y)} AND b = 'other'`),
          );
        },
      ),
    );
    expect(literalShape('SELECT * FROM t WHERE a = 1')).not.toBe(
      literalShape('SELECT * FROM u WHERE a = 1'),
    );
  });
});
