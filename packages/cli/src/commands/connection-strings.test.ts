import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  envLines,
  parseHostPort,
  pgpassLine,
  postgresUrl,
  shellQuote,
  type ConnectionTarget,
} from './connection-strings.js';

const target: ConnectionTarget = {
  host: '127.0.0.1',
  port: 6432,
  database: 'orders',
  user: 'ada',
  password: 'eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhZGEifQ.c2ln',
};

/** Reads a .pgpass line back as libpq does: `\x` is x, an unescaped `:` separates. */
function readPgpass(line: string): string[] {
  const fields: string[] = [];
  let field = '';
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (c === '\\' && i + 1 < line.length) field += line[++i]!;
    else if (c === ':') {
      fields.push(field);
      field = '';
    } else field += c;
  }
  return [...fields, field];
}

describe('postgresUrl', () => {
  it('writes a URL with the credential as the password', () => {
    expect(postgresUrl(target)).toBe(
      'postgresql://ada:eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhZGEifQ.c2ln@127.0.0.1:6432/orders',
    );
    expect(postgresUrl({ ...target, sslmode: 'require' })).toMatch(/\/orders\?sslmode=require$/);
  });

  it('brackets an IPv6 host', () => {
    expect(postgresUrl({ ...target, host: '::1' })).toContain('@[::1]:6432/');
  });

  it('percent-encodes user, password and database so any value survives a parser', () => {
    fc.assert(
      fc.property(
        fc.string({ minLength: 1 }),
        fc.string({ minLength: 1 }),
        fc.oneof(fc.string({ minLength: 1 }), fc.constantFrom('.', '..')),
        (user, password, database) => {
          if (database === '.' || database === '..') {
            expect(() => postgresUrl({ ...target, user, password, database })).toThrow(/URL/);
            return;
          }
          // libpq and node-postgres percent-decode each part of the URL, as done here.
          const url = new URL(postgresUrl({ ...target, user, password, database }));
          expect(decodeURIComponent(url.username)).toBe(user);
          expect(decodeURIComponent(url.password)).toBe(password);
          expect(decodeURIComponent(url.pathname.slice(1))).toBe(database);
          expect(url.hostname).toBe('127.0.0.1');
          expect(url.port).toBe('6432');
          expect(url.search).toBe('');
        },
      ),
    );
  });
});

describe('pgpassLine', () => {
  it('escapes backslashes and colons', () => {
    expect(pgpassLine({ ...target, user: 'a:b', password: 'p\\q:r' })).toBe(
      '127.0.0.1:6432:orders:a\\:b:p\\\\q\\:r',
    );
  });

  it('reads back field for field', () => {
    fc.assert(
      fc.property(
        fc.string().filter((s) => !/[\r\n]/.test(s)),
        fc.string().filter((s) => !/[\r\n]/.test(s)),
        (user, password) => {
          expect(readPgpass(pgpassLine({ ...target, user, password }))).toEqual([
            '127.0.0.1',
            '6432',
            'orders',
            user,
            password,
          ]);
        },
      ),
    );
  });

  it('refuses a line break, which the format cannot hold', () => {
    expect(() => pgpassLine({ ...target, password: 'a\nb' })).toThrow(/line break/);
  });
});

describe('envLines', () => {
  it('exports the libpq variables', () => {
    expect(envLines({ ...target, sslmode: 'require' })).toBe(
      [
        'export PGHOST=127.0.0.1',
        'export PGPORT=6432',
        'export PGDATABASE=orders',
        'export PGUSER=ada',
        `export PGPASSWORD=${target.password}`,
        'export PGSSLMODE=require',
      ].join('\n'),
    );
  });

  it('quotes what the shell would split or expand', () => {
    expect(shellQuote("it's $HOME; `x`")).toBe("'it'\\''s $HOME; `x`'");
    expect(shellQuote('')).toBe("''");
    expect(shellQuote('a b')).toBe("'a b'");
  });
});

describe('parseHostPort', () => {
  it('reads host:port, [v6]:port and a bare host', () => {
    expect(parseHostPort('db.example.com:5433', 6432)).toEqual({
      host: 'db.example.com',
      port: 5433,
    });
    expect(parseHostPort('127.0.0.1', 6432)).toEqual({ host: '127.0.0.1', port: 6432 });
    expect(parseHostPort('[::1]:7000', 6432)).toEqual({ host: '::1', port: 7000 });
    expect(parseHostPort('[::1]', 6432)).toEqual({ host: '::1', port: 6432 });
  });

  it('refuses anything else', () => {
    for (const text of [
      '',
      ':6432',
      'h:0',
      'h:65536',
      'h:x',
      '::1',
      'http://h:1',
      'a b:1',
      'u@h:1',
    ]) {
      expect(parseHostPort(text, 6432), text).toBeUndefined();
    }
  });
});
