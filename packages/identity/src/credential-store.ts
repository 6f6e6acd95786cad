import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { IdentityError } from './identity-error.js';
import type { OidcTokens } from './oidc-client.js';
import { readPrivateFile, writePrivateFile } from './private-file.js';

/** What `portcullis login` keeps between runs. Tokens are secret. */
export interface StoredCredentials {
  /** The IdP the tokens came from. */
  issuer: string;
  clientId: string;
  tokens: OidcTokens;
  /** The last gateway credential obtained with them. */
  gateway?: { url: string; token: string; expiresAt: number };
  /** When this was written, epoch milliseconds. */
  savedAt: number;
}

/** Where a user's config lives, as the caller (an app, never this library) reads it. */
export interface UserConfigLocation {
  /** The user's home directory. */
  homeDir: string;
  /** `process.platform`; `linux` by default. */
  platform?: string;
  /** `$XDG_CONFIG_HOME`, when set (Linux and other Unixes). */
  xdgConfigHome?: string;
  /** `%APPDATA%` (Windows). */
  appData?: string;
}

/** Options for {@link CredentialStore}. */
export interface CredentialStoreOptions {
  /** The credentials file; see {@link CredentialStore.defaultPath}. */
  path: string;
}

function isTokens(value: unknown): value is OidcTokens {
  const v = value as Partial<OidcTokens> | null;
  return (
    typeof v === 'object' &&
    v !== null &&
    typeof v.accessToken === 'string' &&
    typeof v.tokenType === 'string' &&
    (v.idToken === undefined || typeof v.idToken === 'string') &&
    (v.refreshToken === undefined || typeof v.refreshToken === 'string') &&
    (v.expiresAt === undefined || typeof v.expiresAt === 'number') &&
    (v.scope === undefined || typeof v.scope === 'string')
  );
}

/**
 * The user's login state in one JSON file with mode 0600 (its directory 0700), written
 * atomically. A file that group or others can read is refused (PCL_ERR_IDENTITY_FILE_INSECURE,
 * the message says which `chmod` fixes it) rather than used: its tokens may have leaked.
 */
export class CredentialStore {
  readonly path: string;

  constructor(options: CredentialStoreOptions) {
    this.path = options.path;
  }

  /**
   * The conventional file: `$XDG_CONFIG_HOME/portcullis/credentials.json` (or
   * `~/.config/…`) on Linux, `~/Library/Application Support/portcullis/…` on macOS,
   * `%APPDATA%\portcullis\…` on Windows.
   */
  static defaultPath(location: UserConfigLocation): string {
    const platform = location.platform ?? 'linux';
    let base: string;
    if (platform === 'win32')
      base = location.appData ?? join(location.homeDir, 'AppData', 'Roaming');
    else if (platform === 'darwin') base = join(location.homeDir, 'Library', 'Application Support');
    else base = location.xdgConfigHome ?? join(location.homeDir, '.config');
    return join(base, 'portcullis', 'credentials.json');
  }

  /** Writes `credentials` (mode 0600, atomic). */
  async save(credentials: StoredCredentials): Promise<void> {
    await writePrivateFile(this.path, `${JSON.stringify(credentials, null, 2)}\n`);
  }

  /** Reads the stored credentials; `undefined` when there are none. */
  async load(): Promise<StoredCredentials | undefined> {
    const text = await readPrivateFile(this.path);
    if (text === undefined) return undefined;
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      throw new IdentityError(
        'PCL_ERR_IDENTITY_FILE_CORRUPT',
        'unparsable',
        `${this.path} is not valid JSON; log in again`,
      );
    }
    const v = value as Partial<StoredCredentials> | null;
    const gateway = v?.gateway;
    if (
      typeof v !== 'object' ||
      v === null ||
      typeof v.issuer !== 'string' ||
      typeof v.clientId !== 'string' ||
      typeof v.savedAt !== 'number' ||
      !isTokens(v.tokens) ||
      (gateway !== undefined &&
        (typeof gateway !== 'object' ||
          gateway === null ||
          typeof gateway.url !== 'string' ||
          typeof gateway.token !== 'string' ||
          typeof gateway.expiresAt !== 'number'))
    ) {
      throw new IdentityError(
        'PCL_ERR_IDENTITY_FILE_CORRUPT',
        'wrong-shape',
        `${this.path} does not hold Portcullis credentials; log in again`,
      );
    }
    return v as StoredCredentials;
  }

  /** Deletes the file (logout). */
  async clear(): Promise<void> {
    await rm(this.path, { force: true });
  }
}
