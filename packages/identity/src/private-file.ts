import { randomBytes } from 'node:crypto';
import { mkdir, open, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { IdentityError } from './identity-error.js';

/** Creates `dir` (and parents) with mode 0700 when missing. */
export async function ensurePrivateDir(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
}

/**
 * Writes `data` to `path` atomically with mode 0600: a temporary file in the same directory is
 * written, fsynced and renamed over `path`, then the directory is fsynced. A reader sees the old
 * content or the new, never a part.
 * @internal
 */
export async function writePrivateFile(path: string, data: string | Uint8Array): Promise<void> {
  const dir = dirname(path);
  await ensurePrivateDir(dir);
  const temp = join(dir, `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  const handle = await open(temp, 'wx', 0o600);
  try {
    await handle.writeFile(data);
    await handle.sync();
  } catch (error) {
    await handle.close();
    await rm(temp, { force: true });
    throw error;
  }
  await handle.close();
  try {
    await rename(temp, path);
  } catch (error) {
    await rm(temp, { force: true });
    throw error;
  }
  const dirHandle = await open(dir, 'r');
  try {
    await dirHandle.sync();
  } finally {
    await dirHandle.close();
  }
}

/**
 * Reads a file that must not be readable by group or others; `undefined` when it does not
 * exist. A looser mode is refused with PCL_ERR_IDENTITY_FILE_INSECURE, whose message names the
 * path and the `chmod` that fixes it.
 * @internal
 */
export async function readPrivateFile(path: string): Promise<string | undefined> {
  let handle;
  try {
    handle = await open(path, 'r');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  try {
    const info = await handle.stat();
    if ((info.mode & 0o077) !== 0) {
      throw new IdentityError(
        'PCL_ERR_IDENTITY_FILE_INSECURE',
        'group-or-world-readable',
        `${path} is accessible by group or others (mode ${(info.mode & 0o777).toString(8)}); ` +
          `run: chmod 600 ${path}`,
      );
    }
    return await handle.readFile('utf8');
  } finally {
    await handle.close();
  }
}

/** Whether `path` exists. @internal */
export async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}
