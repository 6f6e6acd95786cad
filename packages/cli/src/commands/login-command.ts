import { Command, Option } from 'commander';
import {
  CredentialStore,
  isIdentityError,
  OidcClient,
  type IdentityError,
  type OidcTokens,
} from '@portcullis/identity';
import {
  clockTime,
  DEFAULT_PG_PORT,
  durationOption,
  hostPortOption,
  httpUrlOption,
  portOption,
  sslmodeOption,
} from './cli-options.js';
import type { HostPort } from './connection-strings.js';
import { readCredentialClaims } from './credential-claims.js';
import { GatewayApi, GatewayApiError, type LoginInfo } from './gateway-api.js';
import { formatDuration } from './parse-duration.js';
import { credentialsPath, isLoopbackUrl, type CliLogin } from './stored-login.js';

interface LoginOptions {
  gateway?: string;
  pg?: HostPort;
  resource?: string;
  sslmode?: string;
  browser?: boolean;
  callbackPort?: number;
  timeout?: number;
  pollInterval?: number;
  configFile?: string;
}

/** Writes a line to stderr: the conversation with the user, kept apart from results. */
function say(message: string): void {
  process.stderr.write(`${message}\n`);
}

/**
 * A "waiting…" line that counts the seconds on a terminal (and says nothing more elsewhere).
 * Returns the function that ends it.
 */
function waitingLine(what: string, deadline: number): () => void {
  if (process.stderr.isTTY !== true) {
    say(`${what}…`);
    return () => undefined;
  }
  const started = Date.now();
  const draw = (): void => {
    const elapsed = formatDuration(Date.now() - started);
    const left = formatDuration(deadline - Date.now());
    process.stderr.write(`\r\x1b[2K${what}… ${elapsed} (${left} left, Ctrl-C to cancel)`);
  };
  draw();
  const timer = setInterval(draw, 1000);
  return () => {
    clearInterval(timer);
    process.stderr.write('\r\x1b[2K');
  };
}

/** Runs `work` with a signal that aborts on Ctrl-C or after `timeoutMs`. */
async function interruptible<T>(
  timeoutMs: number,
  work: (signal: AbortSignal) => Promise<T>,
): Promise<{ value: T } | { interrupted: true }> {
  const controller = new AbortController();
  let interrupted = false;
  const onSigint = (): void => {
    interrupted = true;
    controller.abort();
  };
  process.once('SIGINT', onSigint);
  const timer = setTimeout(() => controller.abort(), timeoutMs);
  try {
    return { value: await work(controller.signal) };
  } catch (err) {
    if (interrupted) return { interrupted: true };
    throw err;
  } finally {
    clearTimeout(timer);
    process.off('SIGINT', onSigint);
  }
}

async function deviceLogin(
  client: OidcClient,
  request: { scope: string; resource?: string },
  opts: LoginOptions,
): Promise<OidcTokens | null> {
  const started = await client.startDeviceLogin(request);
  const deadline = Math.min(started.expiresAt, Date.now() + (opts.timeout ?? Infinity));
  say('');
  say(`To log in, open  ${started.verificationUri}  and enter the code  ${started.userCode}`);
  if (started.verificationUriComplete !== undefined) {
    say(`(or open ${started.verificationUriComplete} where the code is filled in)`);
  }
  say('');
  const stop = waitingLine('Waiting for you to approve the login', deadline);
  try {
    const outcome = await interruptible(deadline - Date.now(), (signal) =>
      client.pollDeviceLogin(started, {
        signal,
        ...(opts.pollInterval === undefined ? {} : { intervalMs: opts.pollInterval }),
      }),
    );
    return 'value' in outcome ? outcome.value : null;
  } finally {
    stop();
  }
}

async function browserLogin(
  client: OidcClient,
  request: { scope: string; resource?: string },
  opts: LoginOptions,
): Promise<OidcTokens | null> {
  const timeoutMs = opts.timeout ?? 300_000;
  const login = await client.startPkceLogin({
    ...request,
    timeoutMs,
    ...(opts.callbackPort === undefined ? {} : { port: opts.callbackPort }),
  });
  say('');
  say('To log in, open this URL in a browser on this machine:');
  say('');
  say(`  ${login.authorizationUrl.href}`);
  say('');
  say(`The identity provider sends the browser back to ${login.redirectUri}.`);
  const stop = waitingLine('Waiting for the browser', Date.now() + timeoutMs);
  try {
    const outcome = await interruptible(timeoutMs + 1000, async (signal) => {
      signal.addEventListener('abort', () => void login.close(), { once: true });
      return login.tokens;
    });
    return 'value' in outcome ? outcome.value : null;
  } finally {
    stop();
    await login.close();
  }
}

/** Explains a gateway that has no IdP or cannot be reached, in terms of what to do. */
async function readLoginInfo(api: GatewayApi): Promise<LoginInfo> {
  try {
    return await api.loginInfo();
  } catch (err) {
    if (err instanceof GatewayApiError && err.status === 404) {
      throw new Error(
        `the gateway at ${api.baseUrl} has no login configured (identity.oidc in its configuration) or this is not its HTTP API`,
        { cause: err },
      );
    }
    throw err;
  }
}

/** `portcullis login`: log in at the gateway's IdP and get a gateway credential. */
export function loginCommand(): Command {
  return new Command('login')
    .description(
      "log in at the gateway's identity provider (device code, or a browser with --browser) " +
        'and store a gateway credential for `portcullis credentials`',
    )
    .option(
      '--gateway <url>',
      "the gateway's HTTP API, e.g. http://127.0.0.1:9090 (default: the one you last logged in to)",
      httpUrlOption,
    )
    .option(
      '--pg <host:port>',
      `the gateway's PostgreSQL listener (default: the gateway's host, port ${DEFAULT_PG_PORT})`,
      hostPortOption,
    )
    .option('--resource <name>', 'default resource (database) for `portcullis credentials`')
    .option('--sslmode <mode>', 'sslmode for `portcullis credentials` URLs', sslmodeOption)
    .option(
      '--browser',
      'log in in a browser (authorization code + PKCE with a loopback redirect) instead of entering a code',
    )
    .option(
      '--callback-port <port>',
      'with --browser: the loopback port the browser returns to (default: a free one)',
      portOption,
    )
    .option(
      '--timeout <duration>',
      "give up after this long, e.g. 5m (default: when the IdP's code expires; 5m with --browser)",
      durationOption,
    )
    .option(
      '--config-file <path>',
      'where to store the credentials (default: $XDG_CONFIG_HOME/portcullis/credentials.json or ~/.config/portcullis/credentials.json)',
    )
    .addOption(
      new Option('--poll-interval <duration>', 'device code polling interval if the IdP names none')
        .argParser(durationOption)
        .hideHelp(),
    )
    .addHelpText(
      'after',
      `
Tokens are stored in one file readable only by you (mode 0600) and never printed.
Then: portcullis credentials --resource <name>   (a postgresql:// URL for psql and other tools)`,
    )
    .action(async (opts: LoginOptions) => {
      const store = new CredentialStore({ path: credentialsPath(opts.configFile) });
      const previous = await store.load().then(
        (stored) => stored as Partial<CliLogin> | undefined,
        (err: unknown) => {
          // A corrupt file is replaced by this login; an insecure one is not touched.
          if (
            isIdentityError(err) &&
            (err as IdentityError).code === 'PCL_ERR_IDENTITY_FILE_CORRUPT'
          ) {
            return undefined;
          }
          throw err;
        },
      );
      const gatewayUrl = opts.gateway ?? previous?.gateway?.url;
      if (gatewayUrl === undefined) {
        throw new Error(
          "name the gateway's HTTP API: portcullis login --gateway http://<gateway host>:<http port>",
        );
      }
      const sameGateway = previous?.gateway?.url === gatewayUrl;
      const postgres = opts.pg ??
        (sameGateway ? previous?.postgres : undefined) ?? {
          host: new URL(gatewayUrl).hostname.replace(/^\[|\]$/g, ''),
          port: DEFAULT_PG_PORT,
        };

      const api = new GatewayApi(gatewayUrl);
      const info = await readLoginInfo(api);
      const insecure = new URL(info.issuer).protocol === 'http:';
      if (insecure && !isLoopbackUrl(info.issuer)) {
        throw new Error(
          `the gateway names an identity provider without TLS (${info.issuer}); only an IdP on this machine may use http://`,
        );
      }
      say(`Logging in at ${info.issuer} for the gateway at ${gatewayUrl}`);
      const client = await OidcClient.discover({
        issuer: info.issuer,
        clientId: info.clientId,
        allowInsecureRequests: insecure,
      });
      const request = {
        scope: info.scopes.join(' '),
        ...(info.resource === null ? {} : { resource: info.resource }),
      };
      const tokens =
        opts.browser === true
          ? await browserLogin(client, request, opts)
          : await deviceLogin(client, request, opts);
      if (tokens === null) {
        say('Login cancelled.');
        process.exitCode = 130;
        return;
      }

      let issued;
      try {
        issued = await api.exchangePersonToken(tokens.accessToken);
      } catch (err) {
        if (err instanceof GatewayApiError && err.status === 401) {
          throw new Error(
            `you logged in, but the gateway refused the identity provider's token (${err.message}); ` +
              "its identity.oidc settings (audience, resource) may not match the IdP's tokens",
            { cause: err },
          );
        }
        throw err;
      }
      const saved: CliLogin = {
        issuer: info.issuer,
        clientId: info.clientId,
        tokens,
        gateway: { url: gatewayUrl, token: issued.token, expiresAt: issued.expiresAt },
        postgres,
        idpResource: info.resource,
        savedAt: Date.now(),
        ...(opts.resource === undefined
          ? sameGateway && previous?.defaultResource !== undefined
            ? { defaultResource: previous.defaultResource }
            : {}
          : { defaultResource: opts.resource }),
        ...(opts.sslmode === undefined
          ? sameGateway && previous?.sslmode !== undefined
            ? { sslmode: previous.sslmode }
            : {}
          : { sslmode: opts.sslmode }),
      };
      await store.save(saved);

      const claims = readCredentialClaims(issued.token);
      const who =
        claims === undefined
          ? 'you'
          : `${claims.email || claims.subject}${claims.groups.length > 0 ? ` (groups: ${claims.groups.join(', ')})` : ''}`;
      const renewal =
        tokens.refreshToken === undefined
          ? 'run portcullis login again after that'
          : '`portcullis credentials` renews it while your login lasts';
      console.log(
        [
          `Logged in as ${who}.`,
          `Gateway credential valid until ${clockTime(issued.expiresAt)}; ${renewal}.`,
          `Stored in ${store.path} (readable only by you).`,
          `Next: portcullis credentials${saved.defaultResource === undefined ? ' --resource <name>' : ''}   (PostgreSQL at ${postgres.host}:${postgres.port})`,
        ].join('\n'),
      );
    });
}
