import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import * as client from 'openid-client';
import { IdentityError, type LoginFailedReason } from './identity-error.js';
import { idpUnreachable, networkFailure, safeCause } from './idp-failure.js';

/** Options for {@link OidcClient.discover}. */
export interface OidcClientOptions {
  /** The IdP's issuer URL. */
  issuer: string;
  clientId: string;
  /** The client secret of a confidential client; absent for a public client (the CLI). Secret. */
  clientSecret?: string;
  /** How a confidential client authenticates; `client_secret_basic` by default. */
  clientAuthMethod?: 'client_secret_basic' | 'client_secret_post';
  /** Limit for each request to the IdP; 10 s by default. */
  timeoutMs?: number;
  /** Allows an `http:` issuer. Only for tests against a local IdP. */
  allowInsecureRequests?: boolean;
}

/** Tokens from the IdP's token endpoint. All but `tokenType`, `expiresAt`, `scope` are secret. */
export interface OidcTokens {
  accessToken: string;
  tokenType: string;
  idToken?: string;
  refreshToken?: string;
  /** Access token expiry, epoch milliseconds, when the IdP said. */
  expiresAt?: number;
  scope?: string;
}

/** What to ask the IdP for. */
export interface TokenRequest {
  /** Space-separated scopes; `openid email profile groups offline_access` for logins by default. */
  scope?: string;
  /** A resource indicator (RFC 8707): the IdP then issues an access token for that audience. */
  resource?: string;
}

/** A started device login: show `userCode` and `verificationUri` to the person. */
export interface DeviceLogin {
  readonly userCode: string;
  readonly verificationUri: string;
  readonly verificationUriComplete: string | undefined;
  /** When the codes expire, epoch milliseconds. */
  readonly expiresAt: number;
  /** @internal The IdP's answer, handed back to {@link OidcClient.pollDeviceLogin}. */
  readonly response: client.DeviceAuthorizationResponse;
}

/** Options for {@link OidcClient.pollDeviceLogin}. */
export interface PollDeviceLoginOptions {
  /** Stops polling (the promise rejects with reason `timeout`). */
  signal?: AbortSignal;
  /**
   * Polling interval when the IdP's answer names none (RFC 8628 says 5 s then). An interval
   * the IdP names always wins.
   */
  intervalMs?: number;
}

/** Options for {@link OidcClient.startPkceLogin}. */
export interface PkceLoginOptions extends TokenRequest {
  /** Loopback port to listen on; a free one by default. */
  port?: number;
  /** How long to wait for the browser to come back; 5 minutes by default. */
  timeoutMs?: number;
}

/** A started browser login: open `authorizationUrl`; `tokens` settles when it comes back. */
export interface PkceLogin {
  readonly authorizationUrl: URL;
  /** `http://127.0.0.1:<port>/callback`. */
  readonly redirectUri: string;
  /** Resolves with the tokens once the browser returned and the code was exchanged. */
  readonly tokens: Promise<OidcTokens>;
  /** Stops listening; a pending `tokens` rejects with reason `timeout`. Idempotent. */
  close(): Promise<void>;
}

/** A started redirect login: send the browser to `authorizationUrl`; the rest is secret. */
export interface RedirectLogin {
  readonly authorizationUrl: URL;
  readonly state: string;
  readonly nonce: string;
  /** The PKCE code verifier. */
  readonly verifier: string;
}

const LOGIN_SCOPE = 'openid email profile groups offline_access';
const CALLBACK_PATH = '/callback';

const loginMessages: Record<LoginFailedReason, string> = {
  denied: 'the login was denied',
  expired: 'the login code expired before the login completed',
  timeout: 'the login did not complete in time',
  'state-mismatch': 'the login answer does not belong to this login attempt',
  rejected: 'the identity provider rejected the login',
};

function loginFailed(reason: LoginFailedReason, cause?: unknown): IdentityError {
  return new IdentityError(
    'PCL_ERR_IDENTITY_LOGIN_FAILED',
    reason,
    loginMessages[reason],
    cause === undefined ? undefined : { cause: safeCause(cause) },
  );
}

/** Turns an openid-client failure into an IdentityError that carries no secret. */
function flowError(error: unknown): IdentityError {
  if (error instanceof IdentityError) return error;
  const network = networkFailure(error);
  if (network !== undefined) return idpUnreachable(network, error);
  const oauthError = (error as { error?: unknown }).error;
  if (oauthError === 'access_denied') return loginFailed('denied', error);
  if (oauthError === 'expired_token') return loginFailed('expired', error);
  const code = (error as { code?: unknown }).code;
  if (code === 'OAUTH_INVALID_RESPONSE' && /state/i.test((error as Error).message)) {
    return loginFailed('state-mismatch', error);
  }
  return loginFailed('rejected', error);
}

function toTokens(response: client.TokenEndpointResponse, now: number): OidcTokens {
  return {
    accessToken: response.access_token,
    tokenType: response.token_type,
    ...(response.id_token === undefined ? {} : { idToken: response.id_token }),
    ...(response.refresh_token === undefined ? {} : { refreshToken: response.refresh_token }),
    ...(response.expires_in === undefined ? {} : { expiresAt: now + response.expires_in * 1000 }),
    ...(response.scope === undefined ? {} : { scope: response.scope }),
  };
}

function params(request: TokenRequest, defaultScope: string | undefined): Record<string, string> {
  const scope = request.scope ?? defaultScope;
  return {
    ...(scope === undefined ? {} : { scope }),
    ...(request.resource === undefined ? {} : { resource: request.resource }),
  };
}

function page(res: ServerResponse, status: number, text: string): void {
  res.writeHead(status, {
    'content-type': 'text/html; charset=utf-8',
    'cache-control': 'no-store',
    'referrer-policy': 'no-referrer',
  });
  res.end(`<!doctype html><meta charset="utf-8"><title>Portcullis login</title><p>${text}</p>`);
}

/**
 * An OIDC relying party for logins (openid-client underneath): the device authorization flow,
 * the authorization-code flow with PKCE and a loopback redirect, and client credentials for
 * agents. Errors are {@link IdentityError}s (`PCL_ERR_IDENTITY_LOGIN_FAILED`,
 * `PCL_ERR_IDENTITY_IDP_UNREACHABLE`) whose message and cause never hold a secret.
 */
export class OidcClient {
  readonly issuer: string;
  readonly clientId: string;
  readonly #config: client.Configuration;

  private constructor(config: client.Configuration, clientId: string) {
    this.#config = config;
    this.issuer = config.serverMetadata().issuer;
    this.clientId = clientId;
  }

  /** Reads the IdP's discovery document and returns a client for it. */
  static async discover(options: OidcClientOptions): Promise<OidcClient> {
    const auth =
      options.clientSecret === undefined
        ? client.None()
        : options.clientAuthMethod === 'client_secret_post'
          ? client.ClientSecretPost(options.clientSecret)
          : client.ClientSecretBasic(options.clientSecret);
    try {
      const config = await client.discovery(
        new URL(options.issuer),
        options.clientId,
        undefined,
        auth,
        {
          timeout: Math.max(1, Math.ceil((options.timeoutMs ?? 10_000) / 1000)),
          ...(options.allowInsecureRequests === true
            ? { execute: [client.allowInsecureRequests] }
            : {}),
        },
      );
      return new OidcClient(config, options.clientId);
    } catch (error) {
      throw idpUnreachable(networkFailure(error) ?? 'bad-response', error);
    }
  }

  /** Starts a device authorization (RFC 8628). */
  async startDeviceLogin(request: TokenRequest = {}): Promise<DeviceLogin> {
    try {
      const response = await client.initiateDeviceAuthorization(
        this.#config,
        params(request, LOGIN_SCOPE),
      );
      return {
        userCode: response.user_code,
        verificationUri: response.verification_uri,
        verificationUriComplete: response.verification_uri_complete,
        expiresAt: Date.now() + response.expires_in * 1000,
        response,
      };
    } catch (error) {
      throw flowError(error);
    }
  }

  /**
   * Polls the token endpoint until the person approved (resolves with the tokens), denied
   * (`denied`), the code expired (`expired`) or `signal` aborted (`timeout`).
   */
  async pollDeviceLogin(
    login: DeviceLogin,
    options: PollDeviceLoginOptions = {},
  ): Promise<OidcTokens> {
    const response =
      login.response.interval === undefined && options.intervalMs !== undefined
        ? { ...login.response, interval: options.intervalMs / 1000 }
        : login.response;
    try {
      const tokens = await client.pollDeviceAuthorizationGrant(
        this.#config,
        response,
        undefined,
        options.signal === undefined ? undefined : { signal: options.signal },
      );
      return toTokens(tokens, Date.now());
    } catch (error) {
      if (options.signal?.aborted === true) throw loginFailed('timeout');
      if (
        error instanceof Error &&
        (error.name === 'TimeoutError' || error.name === 'AbortError') &&
        Date.now() >= login.expiresAt
      ) {
        throw loginFailed('expired');
      }
      throw flowError(error);
    }
  }

  /**
   * Starts an authorization-code login with PKCE (S256), `state` and `nonce`: listens on
   * 127.0.0.1 (a free port unless `port` is given) for the browser's return to `/callback`,
   * then exchanges the code. The IdP must accept the loopback redirect on any port (RFC 8252).
   */
  async startPkceLogin(options: PkceLoginOptions = {}): Promise<PkceLogin> {
    const verifier = client.randomPKCECodeVerifier();
    const challenge = await client.calculatePKCECodeChallenge(verifier);
    const state = client.randomState();
    const nonce = client.randomNonce();
    const server: Server = createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host: '127.0.0.1', port: options.port ?? 0 }, () => {
        server.off('error', reject);
        resolve();
      });
    });
    const { port } = server.address() as AddressInfo;
    const redirectUri = `http://127.0.0.1:${port}${CALLBACK_PATH}`;
    const authorizationUrl = client.buildAuthorizationUrl(this.#config, {
      redirect_uri: redirectUri,
      response_type: 'code',
      code_challenge: challenge,
      code_challenge_method: 'S256',
      state,
      nonce,
      ...params(options, LOGIN_SCOPE),
    });

    let settle: { resolve: (t: OidcTokens) => void; reject: (e: Error) => void } | undefined;
    const tokens = new Promise<OidcTokens>((resolve, reject) => {
      settle = { resolve, reject };
    });
    tokens.catch(() => undefined);
    let done = false;
    const finish = (outcome: OidcTokens | Error): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      server.close();
      server.closeAllConnections();
      if (outcome instanceof Error) settle?.reject(outcome);
      else settle?.resolve(outcome);
    };
    const timer = setTimeout(() => finish(loginFailed('timeout')), options.timeoutMs ?? 300_000);
    timer.unref();

    const onRequest = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
      const url = new URL(req.url ?? '/', redirectUri);
      if (req.method !== 'GET' || url.pathname !== CALLBACK_PATH || done) {
        page(res, 404, 'Not found.');
        return;
      }
      if (url.searchParams.get('state') !== state) {
        // Not this login's answer (a stale tab, or a forged request): keep waiting.
        page(res, 400, 'This login answer does not belong to the login in progress.');
        return;
      }
      try {
        const response = await client.authorizationCodeGrant(this.#config, url, {
          pkceCodeVerifier: verifier,
          expectedState: state,
          expectedNonce: nonce,
          idTokenExpected: true,
        });
        page(res, 200, 'Login complete. You can close this window.');
        finish(toTokens(response, Date.now()));
      } catch (error) {
        const failure = flowError(error);
        page(res, 400, 'Login failed. Return to the terminal for details.');
        finish(failure);
      }
    };
    server.on('request', (req: IncomingMessage, res: ServerResponse) => {
      void onRequest(req, res);
    });

    return {
      authorizationUrl,
      redirectUri,
      tokens,
      close: async () => {
        finish(loginFailed('timeout'));
      },
    };
  }

  /**
   * Starts an authorization-code login with PKCE (S256), `state` and `nonce` whose redirect the
   * caller serves itself (a web page, not a loopback listener). Keep the returned secrets from
   * anyone but the browser that logs in (a sealed cookie), and hand them to
   * {@link finishRedirectLogin} with the URL the browser came back to.
   */
  async startRedirectLogin(
    options: TokenRequest & { redirectUri: string },
  ): Promise<RedirectLogin> {
    const verifier = client.randomPKCECodeVerifier();
    const challenge = await client.calculatePKCECodeChallenge(verifier);
    const state = client.randomState();
    const nonce = client.randomNonce();
    const authorizationUrl = client.buildAuthorizationUrl(this.#config, {
      redirect_uri: options.redirectUri,
      response_type: 'code',
      code_challenge: challenge,
      code_challenge_method: 'S256',
      state,
      nonce,
      ...params(options, LOGIN_SCOPE),
    });
    return { authorizationUrl, state, nonce, verifier };
  }

  /**
   * Exchanges the code in `callbackUrl` (the redirect URI with the IdP's query) after checking
   * `state`, then the ID token's `nonce`. Fails with reason `state-mismatch`, `denied` or
   * `rejected`.
   */
  async finishRedirectLogin(
    callbackUrl: URL,
    expected: Pick<RedirectLogin, 'state' | 'nonce' | 'verifier'>,
  ): Promise<OidcTokens> {
    if (callbackUrl.searchParams.get('state') !== expected.state) {
      throw loginFailed('state-mismatch');
    }
    try {
      const response = await client.authorizationCodeGrant(this.#config, callbackUrl, {
        pkceCodeVerifier: expected.verifier,
        expectedState: expected.state,
        expectedNonce: expected.nonce,
        idTokenExpected: true,
      });
      return toTokens(response, Date.now());
    } catch (error) {
      throw flowError(error);
    }
  }

  /** Client-credentials grant: an agent's own token (needs a confidential client). */
  async clientCredentials(request: TokenRequest = {}): Promise<OidcTokens> {
    try {
      const response = await client.clientCredentialsGrant(
        this.#config,
        params(request, undefined),
      );
      return toTokens(response, Date.now());
    } catch (error) {
      throw flowError(error);
    }
  }
}
