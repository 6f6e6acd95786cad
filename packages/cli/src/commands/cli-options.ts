import { InvalidArgumentError } from 'commander';
import { parseHostPort, SSL_MODES, type HostPort } from './connection-strings.js';
import { parseDuration } from './parse-duration.js';

/** The default port of the gateway's PostgreSQL listener (the demo's too). */
export const DEFAULT_PG_PORT = 6432;

/** commander parser for `1h`, `30m`, `90s`, `2d`, `1h30m`. */
export function durationOption(value: string): number {
  const ms = parseDuration(value);
  if (ms === undefined) {
    throw new InvalidArgumentError('expected a duration such as 90s, 30m, 1h, 2d or 1h30m');
  }
  return ms;
}

/** commander parser for a TCP port 1-65535. */
export function portOption(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 65_535) {
    throw new InvalidArgumentError('expected a port number 1-65535');
  }
  return n;
}

/** commander parser for `host:port` (default port {@link DEFAULT_PG_PORT}). */
export function hostPortOption(value: string): HostPort {
  const parsed = parseHostPort(value, DEFAULT_PG_PORT);
  if (parsed === undefined) {
    throw new InvalidArgumentError('expected host:port, [ipv6]:port or a host name');
  }
  return parsed;
}

/** commander parser for an `http:` or `https:` URL. */
export function httpUrlOption(value: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new InvalidArgumentError('expected a URL such as http://127.0.0.1:9090');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new InvalidArgumentError('expected an http:// or https:// URL (the gateway HTTP API)');
  }
  return url.href.replace(/\/+$/, '');
}

/** commander parser for a libpq sslmode. */
export function sslmodeOption(value: string): string {
  if (!(SSL_MODES as readonly string[]).includes(value)) {
    throw new InvalidArgumentError(`expected one of ${SSL_MODES.join(', ')}`);
  }
  return value;
}

/** commander parser for a comma-separated list of names (`a,b`). */
export function listOption(value: string, previous: string[] = []): string[] {
  const names = value
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  if (names.length === 0) throw new InvalidArgumentError('expected one or more names, a,b');
  return [...previous, ...names];
}

/** A clock time for messages: `14:05:09` today, else the date too. */
export function clockTime(epochMs: number, now: number = Date.now()): string {
  const date = new Date(epochMs);
  const time = date.toTimeString().slice(0, 8);
  return new Date(now).toDateString() === date.toDateString()
    ? time
    : `${date.toISOString().slice(0, 10)} ${time}`;
}
