/** Where and as whom a PostgreSQL client connects through the gateway. */
export interface ConnectionTarget {
  /** The gateway's PostgreSQL listener. */
  readonly host: string;
  readonly port: number;
  /** The database name: the gateway resource. */
  readonly database: string;
  /** Shown in the gateway's events as the client's user; the gateway does not check it. */
  readonly user: string;
  /** The gateway credential. Secret. */
  readonly password: string;
  /** libpq `sslmode`; omitted means the client's default (`prefer` for libpq). */
  readonly sslmode?: string;
}

/** The `sslmode` values libpq knows. */
export const SSL_MODES = [
  'disable',
  'allow',
  'prefer',
  'require',
  'verify-ca',
  'verify-full',
] as const;

/** A host and port, as `host:port`, `[v6]:port`, or a bare host (the default port then). */
export interface HostPort {
  readonly host: string;
  readonly port: number;
}

/**
 * Reads `host:port`, `[::1]:port` or a bare host (`defaultPort` then). Returns `undefined` when
 * the text is not one of these or the port is not 1-65535.
 */
export function parseHostPort(text: string, defaultPort: number): HostPort | undefined {
  const bracketed = /^\[([0-9a-fA-F:.]+)\](?::(\d+))?$/.exec(text);
  const plain = /^([^\s:[\]/@?#]+)(?::(\d+))?$/.exec(text);
  const match = bracketed ?? plain;
  if (match === null) return undefined;
  const port = match[2] === undefined ? defaultPort : Number(match[2]);
  if (!Number.isInteger(port) || port < 1 || port > 65_535) return undefined;
  return { host: match[1]!, port };
}

function urlHost(host: string): string {
  return host.includes(':') ? `[${host}]` : host;
}

/**
 * A `postgresql://user:password@host:port/database` URL (RFC 3986 percent-encoding of user,
 * password and database, brackets around an IPv6 host), with `?sslmode=` when given.
 */
export function postgresUrl(target: ConnectionTarget): string {
  // URL parsers drop `.` and `..` path segments (encoded or not), so these names cannot travel.
  if (target.database === '.' || target.database === '..') {
    throw new Error(`a database named "${target.database}" cannot be written in a URL`);
  }
  const query =
    target.sslmode === undefined ? '' : `?sslmode=${encodeURIComponent(target.sslmode)}`;
  return (
    `postgresql://${encodeURIComponent(target.user)}:${encodeURIComponent(target.password)}` +
    `@${urlHost(target.host)}:${target.port}/${encodeURIComponent(target.database)}${query}`
  );
}

/** A `.pgpass` field: `\` and `:` escaped with a backslash, as libpq reads them. */
function pgpassField(value: string): string {
  return value.replace(/[\\:]/g, (c) => `\\${c}`);
}

/**
 * One `.pgpass` line, `host:port:database:user:password`, each field escaped. A line break in
 * any field cannot be written in the format, so it throws.
 */
export function pgpassLine(target: ConnectionTarget): string {
  const fields = [target.host, String(target.port), target.database, target.user, target.password];
  if (fields.some((f) => /[\r\n]/.test(f))) {
    throw new Error('a .pgpass field cannot contain a line break');
  }
  return fields.map(pgpassField).join(':');
}

/** A POSIX shell word: left bare when safe, else in single quotes (`'` written as `'\''`). */
export function shellQuote(value: string): string {
  if (/^[\w@%+=:,./-]+$/.test(value)) return value;
  return `'${value.replaceAll("'", "'\\''")}'`;
}

/**
 * `export PGHOST=… PGPORT=… PGDATABASE=… PGUSER=… PGPASSWORD=…` lines (and `PGSSLMODE`), each
 * value shell-quoted, for `eval "$(portcullis credentials --format env)"` or an env file.
 */
export function envLines(target: ConnectionTarget): string {
  const vars: [string, string][] = [
    ['PGHOST', target.host],
    ['PGPORT', String(target.port)],
    ['PGDATABASE', target.database],
    ['PGUSER', target.user],
    ['PGPASSWORD', target.password],
    ...(target.sslmode === undefined
      ? []
      : ([['PGSSLMODE', target.sslmode]] as [string, string][])),
  ];
  return vars.map(([name, value]) => `export ${name}=${shellQuote(value)}`).join('\n');
}
