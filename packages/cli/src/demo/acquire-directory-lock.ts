import { open, readFile, stat, unlink } from 'node:fs/promises';

/** A held lock; release it when done with the directory. */
export interface DirectoryLock {
  readonly path: string;
  release(): Promise<void>;
}

/**
 * Takes an exclusive lock file holding this process's pid. PGlite takes no lock of its own, and two processes on
 * one data directory corrupt it, so a second user must fail loudly. A lock left by a dead process is taken over.
 */
export async function acquireDirectoryLock(
  path: string,
  what = 'this directory',
): Promise<DirectoryLock> {
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const handle = await open(path, 'wx', 0o600);
      await handle.writeFile(`${process.pid}\n`);
      await handle.close();
      let released = false;
      return {
        path,
        release: async () => {
          if (released) return;
          released = true;
          if ((await readOwner(path)) === process.pid) await unlink(path).catch(() => undefined);
        },
      };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    const owner = await readOwner(path);
    // No pid yet may mean another process created the file a moment ago and is still writing it.
    const fresh =
      owner === null && Date.now() - ((await stat(path).catch(() => null))?.mtimeMs ?? 0) < 5_000;
    if (fresh)
      throw new Error(`${what} is being locked by another process (lock file ${path}); try again`);
    if (owner !== null && isAlive(owner)) {
      const who = owner === process.pid ? 'this process' : `process ${owner}`;
      throw new Error(
        `${what} is in use by ${who} (lock file ${path}); stop it or use another data directory`,
      );
    }
    await unlink(path).catch(() => undefined);
  }
  throw new Error(`could not lock ${what} (lock file ${path})`);
}

async function readOwner(path: string): Promise<number | null> {
  const text = await readFile(path, 'utf8').catch(() => '');
  const pid = Number.parseInt(text.trim(), 10);
  return Number.isInteger(pid) && pid > 0 ? pid : null;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: alive, but owned by someone else.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
