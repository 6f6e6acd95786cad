import { chownSync, existsSync, readFileSync } from 'node:fs';

/** The account that runs a service: `postgres` when this process is root, else this process's own. */
export interface ServiceUser {
  name: string;
  uid: number;
  gid: number;
}

/** The system account PostgreSQL and PgBouncer run as when the tests run as root. */
const SYSTEM_USER = 'postgres';

function isRoot(): boolean {
  return process.getuid?.() === 0;
}

function lookUp(name: string): ServiceUser | undefined {
  for (const line of readFileSync('/etc/passwd', 'utf8').split('\n')) {
    const [user, , uid, gid] = line.split(':');
    if (user === name && uid !== undefined && gid !== undefined) {
      return { name, uid: Number(uid), gid: Number(gid) };
    }
  }
  return undefined;
}

/**
 * The account services run as. PostgreSQL and PgBouncer refuse to run as root, so a root process
 * runs them as the `postgres` system account (created by the Debian packages).
 */
export function serviceUser(): ServiceUser {
  if (!isRoot()) {
    return {
      name: process.env['USER'] ?? 'self',
      uid: process.getuid?.() ?? -1,
      gid: process.getgid?.() ?? -1,
    };
  }
  const user = lookUp(SYSTEM_USER);
  if (user === undefined) {
    throw new Error(
      `the system account "${SYSTEM_USER}" does not exist; it comes with the Debian package postgresql-common`,
    );
  }
  return user;
}

/** Gives `paths` to the service account (only needed, and only possible, as root). */
export function giveToServiceUser(...paths: string[]): void {
  if (!isRoot()) return;
  const { uid, gid } = serviceUser();
  for (const path of paths) chownSync(path, uid, gid);
}

/**
 * Wraps a command so it runs as the service account and, with `dieWithParent`, is killed when
 * this process dies (even by SIGKILL, through the kernel's parent-death signal), so no server
 * outlives a crashed test run. Uses util-linux `setpriv`, which execs the program in place: the
 * resulting child's pid is the program's.
 */
export function asServiceUser(
  cmd: string,
  args: string[],
  opts: { dieWithParent?: boolean } = {},
): { cmd: string; args: string[] } {
  const setpriv = findSetpriv();
  const root = isRoot();
  if (setpriv === undefined) {
    if (!root) return { cmd, args };
    return { cmd: 'runuser', args: ['-u', SYSTEM_USER, '--', cmd, ...args] };
  }
  const flags: string[] = [];
  if (root) flags.push(`--reuid=${SYSTEM_USER}`, `--regid=${SYSTEM_USER}`, '--init-groups');
  // The parent-death signal is cleared when credentials change; setpriv sets it after changing them.
  if (opts.dieWithParent) flags.push('--pdeathsig=KILL');
  if (flags.length === 0) return { cmd, args };
  return { cmd: setpriv, args: [...flags, '--', cmd, ...args] };
}

function findSetpriv(): string | undefined {
  return ['/usr/bin/setpriv', '/bin/setpriv'].find((path) => existsSync(path));
}

/**
 * Wraps a command, run as this process's own user, so it is killed when this process dies
 * (the kernel's parent-death signal through `setpriv`); unchanged where `setpriv` is missing.
 * For services that run as any user (ClickHouse, Kafka).
 */
export function dyingWithParent(cmd: string, args: string[]): { cmd: string; args: string[] } {
  const setpriv = findSetpriv();
  return setpriv === undefined
    ? { cmd, args }
    : { cmd: setpriv, args: ['--pdeathsig=KILL', '--', cmd, ...args] };
}

/** A small environment for server programs: no PG* variables of the caller leak in. */
export function serviceEnv(): NodeJS.ProcessEnv {
  return {
    PATH: process.env['PATH'] ?? '/usr/local/bin:/usr/bin:/bin',
    LC_ALL: 'C',
    LANG: 'C',
  };
}
