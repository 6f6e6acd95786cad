import { existsSync } from 'node:fs';
import { runProgram } from './run-program.js';

/** What {@link ensureDebianPackages} installs and how it checks for it. */
export interface DebianPackagesRequest {
  /** Debian package names to install when something in `probe` is missing. */
  packages: string[];
  /** Absolute paths that must exist afterwards; when all exist already, nothing is installed. */
  probe: string[];
}

const APT_TIMEOUT_MS = 15 * 60_000;
const APT_ENV: NodeJS.ProcessEnv = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
/** Wait for another apt/dpkg run to release its lock instead of failing at once. */
const APT_LOCK = ['-o', 'DPkg::Lock::Timeout=600'];

let updated: Promise<void> | undefined;
/** Installs in this process run one after another, so they never race for dpkg's lock. */
let queue: Promise<unknown> = Promise.resolve();

function missingOf(probe: string[]): string[] {
  return probe.filter((path) => !existsSync(path));
}

async function aptUpdateOnce(): Promise<void> {
  updated ??= runProgram('apt-get', [...APT_LOCK, 'update'], {
    env: APT_ENV,
    timeoutMs: APT_TIMEOUT_MS,
  }).then(
    () => undefined,
    (error: unknown) => {
      updated = undefined;
      throw error;
    },
  );
  return updated;
}

async function install(req: DebianPackagesRequest): Promise<void> {
  if (missingOf(req.probe).length === 0) return;
  await aptUpdateOnce();
  await runProgram(
    'apt-get',
    [...APT_LOCK, 'install', '-y', '--no-install-recommends', ...req.packages],
    { env: APT_ENV, timeoutMs: APT_TIMEOUT_MS },
  );
  const stillMissing = missingOf(req.probe);
  if (stillMissing.length > 0) {
    throw new Error(
      `installed Debian packages ${req.packages.join(', ')} but these are still missing: ${stillMissing.join(', ')}`,
    );
  }
}

/**
 * Installs Debian packages when their binaries are missing: runs `apt-get update` once per
 * process, then `apt-get install -y --no-install-recommends ...`. Idempotent, and fast when every
 * path in `probe` exists already (nothing is run then).
 *
 * @throws when something is missing and this process is not root (it cannot install), when
 *   `apt-get` is absent, when apt fails, or when a probed path is still missing afterwards.
 */
export async function ensureDebianPackages(req: DebianPackagesRequest): Promise<void> {
  const missing = missingOf(req.probe);
  if (missing.length === 0) return;
  if (process.getuid?.() !== 0) {
    throw new Error(
      `missing ${missing.join(', ')}; install the Debian packages ${req.packages.join(' ')} ` +
        `(apt-get install ${req.packages.join(' ')}) or run as root so the testkit can install them`,
    );
  }
  if (!existsSync('/usr/bin/apt-get')) {
    throw new Error(
      `missing ${missing.join(', ')} and apt-get is not available to install ${req.packages.join(' ')}`,
    );
  }
  const run = queue.then(() => install(req));
  queue = run.catch(() => undefined);
  return run;
}
