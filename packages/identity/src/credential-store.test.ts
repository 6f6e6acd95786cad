import { chmod, mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CredentialStore, type StoredCredentials } from './credential-store.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pcl-cred-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const credentials: StoredCredentials = {
  issuer: 'https://idp.test',
  clientId: 'portcullis-cli',
  tokens: {
    accessToken: 'secret-access-token-value',
    tokenType: 'bearer',
    idToken: 'secret-id-token-value',
    refreshToken: 'secret-refresh-token-value',
    expiresAt: 1_900_000_000_000,
    scope: 'openid email',
  },
  gateway: { url: 'https://gw.test', token: 'secret-gateway-token', expiresAt: 1_900_000_000_000 },
  savedAt: 1_800_000_000_000,
};

describe('CredentialStore', () => {
  it('saves with mode 0600 in a 0700 directory and loads back', async () => {
    const store = new CredentialStore({
      path: join(dir, 'config', 'portcullis', 'credentials.json'),
    });
    expect(await store.load()).toBeUndefined();
    await store.save(credentials);
    expect((await stat(store.path)).mode & 0o777).toBe(0o600);
    expect((await stat(join(dir, 'config', 'portcullis'))).mode & 0o777).toBe(0o700);
    expect(await readdir(join(dir, 'config', 'portcullis'))).toEqual(['credentials.json']);
    expect(await store.load()).toEqual(credentials);
    await store.save({ ...credentials, savedAt: 1 });
    expect((await store.load())?.savedAt).toBe(1);
    await store.clear();
    expect(await store.load()).toBeUndefined();
  });

  it('refuses a file that group or others can read, telling the user to chmod, without its contents', async () => {
    const store = new CredentialStore({ path: join(dir, 'credentials.json') });
    await store.save(credentials);
    for (const mode of [0o644, 0o640, 0o604, 0o660]) {
      await chmod(store.path, mode);
      const error = await store.load().catch((e: unknown) => e);
      expect(error).toMatchObject({
        code: 'PCL_ERR_IDENTITY_FILE_INSECURE',
        reason: 'group-or-world-readable',
      });
      const text = `${(error as Error).message} ${inspect(error)}`;
      expect((error as Error).message).toContain(`chmod 600 ${store.path}`);
      expect(text).not.toContain('secret-');
    }
    await chmod(store.path, 0o600);
    expect(await store.load()).toEqual(credentials);
  });

  it('refuses a corrupt file without quoting it', async () => {
    const store = new CredentialStore({ path: join(dir, 'credentials.json') });
    await writeFile(store.path, '{"tokens": "secret-x"', { mode: 0o600 });
    const error = await store.load().catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'PCL_ERR_IDENTITY_FILE_CORRUPT', reason: 'unparsable' });
    expect(inspect(error)).not.toContain('secret-');
    await writeFile(store.path, '{"issuer": 1}', { mode: 0o600 });
    await expect(store.load()).rejects.toMatchObject({ reason: 'wrong-shape' });
  });

  it('knows the conventional path per platform', () => {
    expect(CredentialStore.defaultPath({ homeDir: '/home/ada' })).toBe(
      '/home/ada/.config/portcullis/credentials.json',
    );
    expect(CredentialStore.defaultPath({ homeDir: '/home/ada', xdgConfigHome: '/x' })).toBe(
      '/x/portcullis/credentials.json',
    );
    expect(CredentialStore.defaultPath({ homeDir: '/Users/ada', platform: 'darwin' })).toBe(
      '/Users/ada/Library/Application Support/portcullis/credentials.json',
    );
  });
});
