import { homedir } from 'node:os';
import { resolve } from 'node:path';
import { CredentialStore, type OidcTokens, type StoredCredentials } from '@portcullis/identity';
import * as oidc from 'openid-client';
import type { HostPort } from './connection-strings.js';
import { GatewayApi, GatewayApiError } from './gateway-api.js';

/**
 * What `portcullis login` stores: the identity package's {@link StoredCredentials} (IdP
 * tokens, the gateway credential and the gateway's HTTP API address) plus where the gateway's
 * PostgreSQL listener is and the defaults given at login.
 */
export interface CliLogin extends StoredCredentials {
  gateway: { url: string; token: string; expiresAt: number };
  /** The gateway's PostgreSQL listener. */
  postgres: HostPort;
  /** The RFC 8707 resource the IdP tokens were asked for (from `GET /v1/login`); null if none. */
  idpResource: string | null;
  /** `--resource` given at login: the default database of `portcullis credentials`. */
  defaultResource?: string;
  /** `--sslmode` given at login. */
  sslmode?: string;
}

/** The environment the default credentials path depends on. */
export interface CredentialsPathEnv {
  readonly HOME?: string | undefined;
  readonly XDG_CONFIG_HOME?: string | undefined;
  readonly APPDATA?: string | undefined;
}

/**
 * The credentials file: `--config-file` when given, else the conventional path in the user's
 * config directory (`$XDG_CONFIG_HOME/portcullis/credentials.json` or
 * `~/.config/portcullis/credentials.json` on Linux).
 */
export function credentialsPath(
  configFile: string | undefined,
  env: CredentialsPathEnv = process.env,
  platform: string = process.platform,
): string {
  if (configFile !== undefined) return resolve(configFile);
  const xdg = env.XDG_CONFIG_HOME;
  return CredentialStore.defaultPath({
    homeDir: env.HOME !== undefined && env.HOME !== '' ? env.HOME : homedir(),
    platform,
    ...(xdg !== undefined && xdg !== '' ? { xdgConfigHome: xdg } : {}),
    ...(env.APPDATA !== undefined && env.APPDATA !== '' ? { appData: env.APPDATA } : {}),
  });
}

/** Whether an `http:` issuer may be used: only on this machine (a local IdP or the demo's). */
export function isLoopbackUrl(url: string): boolean {
  try {
    const { hostname } = new URL(url);
    return (
      hostname === 'localhost' || hostname === '[::1]' || /^127(?:\.\d{1,3}){3}$/.test(hostname)
    );
  } catch {
    return false;
  }
}

/** Reads the stored login; tells the user to log in when there is none or it is incomplete. */
export async function loadLogin(store: CredentialStore): Promise<CliLogin> {
  const stored = (await store.load()) as Partial<CliLogin> | undefined;
  if (stored === undefined) {
    throw new Error(
      `not logged in (no credentials in ${store.path}); run: portcullis login --gateway <the gateway's HTTP API URL>`,
    );
  }
  const pgAddress = stored.postgres;
  if (
    stored.gateway === undefined ||
    typeof pgAddress !== 'object' ||
    pgAddress === null ||
    typeof pgAddress.host !== 'string' ||
    typeof pgAddress.port !== 'number'
  ) {
    throw new Error(
      `${store.path} holds no complete login; run: portcullis login --gateway <the gateway's HTTP API URL>`,
    );
  }
  return { idpResource: null, ...stored } as CliLogin;
}

/** How long before its expiry a gateway credential counts as expired (clock skew, slow tools). */
const CREDENTIAL_MARGIN_MS = 60_000;
/** How long before its expiry an IdP access token is not sent any more. */
const IDP_TOKEN_MARGIN_MS = 15_000;

function loginAgain(login: CliLogin, why: string): Error {
  return new Error(`${why}; log in again: portcullis login --gateway ${login.gateway.url}`);
}

/** New IdP tokens from the refresh token (openid-client, the public client from login). */
async function refreshIdpTokens(login: CliLogin, refreshToken: string): Promise<OidcTokens> {
  const insecure = isLoopbackUrl(login.issuer);
  let response: oidc.TokenEndpointResponse;
  try {
    const config = await oidc.discovery(
      new URL(login.issuer),
      login.clientId,
      undefined,
      oidc.None(),
      {
        timeout: 10,
        ...(insecure ? { execute: [oidc.allowInsecureRequests] } : {}),
      },
    );
    response = await oidc.refreshTokenGrant(
      config,
      refreshToken,
      login.idpResource === null ? undefined : { resource: login.idpResource },
    );
  } catch (err) {
    // A refusal (invalid_grant: expired or revoked) or an IdP that is down: either way the
    // stored tokens cannot be renewed now. The cause stays out of the message (it may quote
    // the IdP's answer).
    const oauthError = (err as { error?: unknown }).error;
    throw loginAgain(
      login,
      typeof oauthError === 'string'
        ? `the identity provider refused to renew your login (${oauthError})`
        : `could not renew your login at ${login.issuer} (${(err as Error).name})`,
    );
  }
  const now = Date.now();
  return {
    accessToken: response.access_token,
    tokenType: response.token_type,
    ...(response.id_token === undefined ? {} : { idToken: response.id_token }),
    // A provider that does not rotate refresh tokens answers without one: keep the old.
    refreshToken: response.refresh_token ?? refreshToken,
    ...(response.expires_in === undefined ? {} : { expiresAt: now + response.expires_in * 1000 }),
    ...(response.scope === undefined ? {} : { scope: response.scope }),
  };
}

/**
 * The stored gateway credential when it is valid for at least another minute; otherwise a new
 * one, exchanged at the gateway with the stored IdP access token, or with one renewed from the
 * refresh token, and saved. Throws an error that says to log in again when neither works.
 * `onRefresh` hears what is happening (for a progress line).
 */
export async function freshGatewayCredential(
  store: CredentialStore,
  login: CliLogin,
  options: { onRefresh?: (message: string) => void; now?: () => number } = {},
): Promise<CliLogin> {
  const now = options.now ?? Date.now;
  if (login.gateway.expiresAt - now() > CREDENTIAL_MARGIN_MS) return login;
  const api = new GatewayApi(login.gateway.url);
  let tokens = login.tokens;
  const accessUsable =
    tokens.expiresAt === undefined || tokens.expiresAt - now() > IDP_TOKEN_MARGIN_MS;
  let issued;
  if (accessUsable) {
    options.onRefresh?.('your gateway credential has expired; getting a new one');
    try {
      issued = await api.exchangePersonToken(tokens.accessToken);
    } catch (err) {
      if (!(err instanceof GatewayApiError) || err.code !== 'invalid_grant') throw err;
      // The IdP token was refused (revoked, or expired early): try the refresh token.
    }
  }
  if (issued === undefined) {
    if (tokens.refreshToken === undefined) {
      throw loginAgain(login, 'your login has expired and holds no refresh token');
    }
    options.onRefresh?.(`renewing your login at ${login.issuer}`);
    tokens = await refreshIdpTokens(login, tokens.refreshToken);
    try {
      issued = await api.exchangePersonToken(tokens.accessToken);
    } catch (err) {
      if (err instanceof GatewayApiError && err.code === 'invalid_grant') {
        throw loginAgain(login, `the gateway refused your renewed login (${err.message})`);
      }
      throw err;
    }
  }
  const updated: CliLogin = {
    ...login,
    tokens,
    gateway: { url: login.gateway.url, token: issued.token, expiresAt: issued.expiresAt },
    savedAt: now(),
  };
  await store.save(updated);
  return updated;
}
