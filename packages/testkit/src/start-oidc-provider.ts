import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { freePort } from './free-port.js';
import { registerService } from './stop-all-services.js';

/** A person known to the test IdP. */
export interface OidcPerson {
  /** The `sub` (account id). */
  subject: string;
  email: string;
  name?: string;
  groups: string[];
}

/** An OAuth client of the test IdP. */
export interface OidcClientCredentials {
  clientId: string;
  /** Absent for a public client. */
  clientSecret?: string;
}

/** An agent: a confidential client that uses client credentials. */
export interface OidcAgent {
  clientId: string;
  clientSecret: string;
  name: string;
}

/** Options for {@link startOidcProvider}. */
export interface StartOidcProviderOptions {
  /** People who can log in; two by default (`ada`, an approver, and `bob`). */
  people?: OidcPerson[];
  /** Agents (client-credentials clients); one by default (`report-bot`). */
  agents?: { clientId: string; name?: string; clientSecret?: string }[];
  /** The gateway's client id; `portcullis-gateway` by default (secret generated). */
  gatewayClientId?: string;
  /** The resource indicator (RFC 8707) whose access tokens are JWTs; also their `aud`. */
  resource?: string;
  /** Access token lifetime in seconds; 600 by default. */
  accessTokenTtlS?: number;
  /** TCP port on 127.0.0.1; a free one by default. */
  port?: number;
}

/** A running `oidc-provider` from {@link startOidcProvider}. */
export interface OidcProviderServer {
  /** `http://127.0.0.1:<port>`: the issuer and the base of every endpoint. */
  readonly issuer: string;
  readonly port: number;
  readonly people: readonly OidcPerson[];
  /**
   * The gateway's confidential client: authorization code + PKCE with a loopback redirect
   * (`http://127.0.0.1/callback` or `/v1/approvals/callback` on any port, RFC 8252), device
   * code, refresh tokens.
   */
  readonly gatewayClient: Required<OidcClientCredentials>;
  /** A public client for the CLI (`portcullis-cli`): the same grants, no secret. */
  readonly cliClient: OidcClientCredentials;
  readonly agents: readonly OidcAgent[];
  /** The resource indicator; access tokens for it are ES256 JWTs with `aud` = this. */
  readonly resource: string;
  /**
   * Acts as `subject` in a browser: opens `userCode`'s verification page, confirms, logs in
   * and consents. Resolves once the IdP shows its success page.
   */
  completeDeviceFlow(userCode: string, subject: string): Promise<void>;
  /** Like {@link completeDeviceFlow} but the person denies: the device poll ends `access_denied`. */
  denyDeviceFlow(userCode: string): Promise<void>;
  /**
   * Acts as `subject` in a browser at `authorizationUrl`: logs in, consents, and follows the
   * redirects up to the client's redirect URI, which it requests too (delivering the code to a
   * loopback listener) unless `deliver` is false. Resolves with that redirect URL.
   */
  completeAuthorization(
    authorizationUrl: string | URL,
    subject: string,
    options?: { deliver?: boolean },
  ): Promise<URL>;
  /** Stops listening and drops every connection. Idempotent. */
  stop(): Promise<void>;
}

const DEFAULT_PEOPLE: OidcPerson[] = [
  {
    subject: 'ada',
    email: 'ada@example.com',
    name: 'Ada Lovelace',
    groups: ['engineering', 'approvers'],
  },
  { subject: 'bob', email: 'bob@example.com', name: 'Bob Builder', groups: ['engineering'] },
];

function secret(): string {
  return randomBytes(24).toString('base64url');
}

/** A cookie jar good enough for one host: name → value, attributes ignored. */
class CookieJar {
  readonly #cookies = new Map<string, string>();

  store(response: Response): void {
    for (const line of response.headers.getSetCookie()) {
      const [pair = '', ...attributes] = line.split(';');
      const eq = pair.indexOf('=');
      if (eq <= 0) continue;
      const name = pair.slice(0, eq).trim();
      const value = pair.slice(eq + 1).trim();
      const expired = attributes.some((a) => {
        const [key = '', v = ''] = a.split('=');
        return key.trim().toLowerCase() === 'expires' && Date.parse(v) < Date.now();
      });
      if (value === '' || expired) this.#cookies.delete(name);
      else this.#cookies.set(name, value);
    }
  }

  header(): string {
    return [...this.#cookies].map(([name, value]) => `${name}=${value}`).join('; ');
  }
}

/** Hidden and submit inputs of the first form in `html`, by name. */
function formFields(html: string): { action: string | undefined; fields: Record<string, string> } {
  const action = /<form[^>]*action="([^"]*)"/i.exec(html)?.[1];
  const fields: Record<string, string> = {};
  for (const match of html.matchAll(/<input[^>]*>/gi)) {
    const tag = match[0];
    const name = /name="([^"]*)"/i.exec(tag)?.[1];
    const value = /value="([^"]*)"/i.exec(tag)?.[1] ?? '';
    if (name !== undefined) fields[name] = value;
  }
  return { action, fields };
}

async function readBody(req: IncomingMessage): Promise<URLSearchParams> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > 64 * 1024) throw new Error('request body too large');
    chunks.push(chunk as Buffer);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

/**
 * Starts `oidc-provider` in this process on 127.0.0.1 and a free port, as a complete IdP for
 * tests: discovery, JWKS (an RS256 key for ID tokens, an ES256 key for access tokens),
 * authorization code with PKCE (required), device flow, client credentials, refresh tokens,
 * and JWT access tokens for {@link StartOidcProviderOptions.resource} (resource indicators),
 * which carry `email`, `name` and `groups` so they can be verified offline. ID tokens carry
 * `email`, `name` and `groups` too. Logins go through the provider's real interaction
 * endpoints: the helpers drive them with HTTP requests, as a browser would.
 *
 * In-process rather than a child process: the provider needs only koa and jose, starts in
 * milliseconds, and stopping is closing a server. On Node 20 it prints one warning at import
 * ("Unsupported runtime"); everything used here works.
 */
export async function startOidcProvider(
  options: StartOidcProviderOptions = {},
): Promise<OidcProviderServer> {
  // Loaded on first use: the import prints the Node 20 warning and pulls in koa.
  const { default: Provider, errors } = await import('oidc-provider');

  const people = options.people ?? DEFAULT_PEOPLE;
  const byId = new Map(people.map((p) => [p.subject, p]));
  const agents: OidcAgent[] = (
    options.agents ?? [{ clientId: 'report-bot', name: 'Report bot' }]
  ).map((a) => ({
    clientId: a.clientId,
    name: a.name ?? a.clientId,
    clientSecret: a.clientSecret ?? secret(),
  }));
  const agentNames = new Map(agents.map((a) => [a.clientId, a.name]));
  const accessTokenTtlS = options.accessTokenTtlS ?? 600;
  const resource = options.resource ?? 'urn:portcullis:gateway';
  const gatewayClient = {
    clientId: options.gatewayClientId ?? 'portcullis-gateway',
    clientSecret: secret(),
  };
  const cliClient = { clientId: 'portcullis-cli' };
  // Loopback redirects match on any port (RFC 8252): the CLI's listener, and the gateway's
  // approval pages signing an approver in.
  const loginRedirects = ['http://127.0.0.1/callback', 'http://127.0.0.1/v1/approvals/callback'];
  const loginGrants = [
    'authorization_code',
    'refresh_token',
    'urn:ietf:params:oauth:grant-type:device_code',
  ];
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({
    format: 'jwk',
  });
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({
    format: 'jwk',
  });
  const jwks = {
    keys: [
      { ...rsa, kid: `rsa-${secret().slice(0, 8)}`, alg: 'RS256', use: 'sig' },
      { ...ec, kid: `ec-${secret().slice(0, 8)}`, alg: 'ES256', use: 'sig' },
    ],
  };

  const port = options.port ?? (await freePort());
  const issuer = `http://127.0.0.1:${port}`;
  const page = (title: string, body: string): string =>
    `<!doctype html><html><head><meta charset="utf-8"><title>${title}</title></head><body>${body}</body></html>`;

  const provider = new Provider(issuer, {
    clients: [
      {
        client_id: gatewayClient.clientId,
        client_secret: gatewayClient.clientSecret,
        application_type: 'native',
        redirect_uris: loginRedirects,
        grant_types: loginGrants,
        response_types: ['code'],
        token_endpoint_auth_method: 'client_secret_basic',
      },
      {
        client_id: cliClient.clientId,
        application_type: 'native',
        redirect_uris: loginRedirects,
        grant_types: loginGrants,
        response_types: ['code'],
        token_endpoint_auth_method: 'none',
      },
      ...agents.map((a) => ({
        client_id: a.clientId,
        client_secret: a.clientSecret,
        client_name: a.name,
        grant_types: ['client_credentials'],
        response_types: [],
        redirect_uris: [],
        token_endpoint_auth_method: 'client_secret_basic' as const,
      })),
    ],
    jwks,
    cookies: { keys: [secret()] },
    claims: {
      openid: ['sub'],
      email: ['email', 'email_verified'],
      profile: ['name'],
      groups: ['groups'],
    },
    scopes: ['openid', 'offline_access', 'email', 'profile', 'groups'],
    conformIdTokenClaims: false,
    // Explicit lifetimes (the defaults print a notice each).
    ttl: {
      AccessToken: accessTokenTtlS,
      ClientCredentials: accessTokenTtlS,
      IdToken: 3600,
      RefreshToken: 86_400,
      DeviceCode: 600,
      Interaction: 600,
      Session: 86_400,
      Grant: 86_400,
    },
    pkce: { required: () => true },
    async findAccount(_ctx, id) {
      const person = byId.get(id);
      if (person === undefined) return undefined;
      return {
        accountId: id,
        claims: () => ({
          sub: id,
          email: person.email,
          email_verified: true,
          ...(person.name === undefined ? {} : { name: person.name }),
          groups: person.groups,
        }),
      };
    },
    async extraTokenClaims(_ctx, token) {
      const accountId = (token as { accountId?: string }).accountId;
      const person = accountId === undefined ? undefined : byId.get(accountId);
      if (person !== undefined) {
        return {
          email: person.email,
          ...(person.name === undefined ? {} : { name: person.name }),
          groups: person.groups,
        };
      }
      const name = agentNames.get((token as { clientId?: string }).clientId ?? '');
      return name === undefined ? undefined : { client_name: name };
    },
    interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      revocation: { enabled: true },
      introspection: { enabled: true },
      deviceFlow: {
        enabled: true,
        userCodeInputSource(ctx, form) {
          ctx.body = page('Sign-in', form);
        },
        userCodeConfirmSource(ctx, form, _client, _info, userCode) {
          ctx.body = page('Confirm device', `<p>Code ${userCode}</p>${form}`);
        },
        successSource(ctx) {
          ctx.body = page('Signed in', '<p id="device-success">Signed in</p>');
        },
      },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => resource,
        useGrantedResource: () => true,
        getResourceServerInfo(_ctx, indicator) {
          if (indicator !== resource) throw new errors.InvalidTarget();
          return {
            scope: 'db:connect',
            audience: resource,
            accessTokenTTL: accessTokenTtlS,
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg: 'ES256' } },
          };
        },
      },
    },
    async renderError(ctx, out) {
      ctx.type = 'json';
      ctx.body = out;
    },
  });

  /** Login (when asked) and consent to everything the request asks for, as `subject`. */
  async function finishInteraction(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const body = await readBody(req);
    const details = await provider.interactionDetails(req, res);
    if (body.get('deny') === 'yes') {
      await provider.interactionFinished(req, res, {
        error: 'access_denied',
        error_description: 'the person denied the request',
      });
      return;
    }
    const subject = body.get('subject') ?? details.session?.accountId;
    if (subject === undefined || !byId.has(subject)) {
      res.writeHead(400, { 'content-type': 'text/plain' }).end('unknown person');
      return;
    }
    const params = details.params as Record<string, string | undefined>;
    const clientId = params.client_id ?? '';
    const grant =
      details.grantId === undefined
        ? new provider.Grant({ accountId: subject, clientId })
        : ((await provider.Grant.find(details.grantId)) ??
          new provider.Grant({ accountId: subject, clientId }));
    if (params.scope !== undefined) grant.addOIDCScope(params.scope);
    const promptDetails = details.prompt.details as {
      missingOIDCClaims?: string[];
      missingResourceScopes?: Record<string, string[]>;
    };
    if (promptDetails.missingOIDCClaims !== undefined)
      grant.addOIDCClaims(promptDetails.missingOIDCClaims);
    for (const [indicator, scopes] of Object.entries(promptDetails.missingResourceScopes ?? {})) {
      grant.addResourceScope(indicator, scopes.join(' '));
    }
    grant.addResourceScope(resource, 'db:connect');
    const grantId = await grant.save();
    await provider.interactionFinished(
      req,
      res,
      { login: { accountId: subject }, consent: { grantId } },
      { mergeWithLastSubmission: false },
    );
  }

  const callback = provider.callback();
  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', issuer);
    const match = /^\/interaction\/([\w-]+)(\/confirm)?$/.exec(url.pathname);
    if (match === null) {
      void callback(req, res);
      return;
    }
    const handle = async (): Promise<void> => {
      if (req.method === 'POST' && match[2] !== undefined) {
        await finishInteraction(req, res);
        return;
      }
      const details = await provider.interactionDetails(req, res);
      const names = people.map((p) => `<option value="${p.subject}">${p.email}</option>`).join('');
      res
        .writeHead(200, { 'content-type': 'text/html; charset=utf-8' })
        .end(
          page(
            'Log in',
            `<form method="post" action="/interaction/${details.uid}/confirm">` +
              `<select name="subject">${names}</select>` +
              `<button type="submit">Log in and allow ${details.params.client_id as string}</button>` +
              `<button type="submit" name="deny" value="yes">Deny</button></form>`,
          ),
        );
    };
    handle().catch((error: unknown) => {
      if (!res.headersSent) {
        res.writeHead(400, { 'content-type': 'text/plain' });
        res.end(error instanceof Error ? error.name : 'error');
      }
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: '127.0.0.1', port }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const actualPort = (server.address() as AddressInfo).port;

  /** Requests `url` like a browser would: cookies kept, redirects followed on the IdP. */
  async function browse(
    jar: CookieJar,
    start: URL,
    init: { method?: string; form?: Record<string, string> } = {},
    onInteraction?: (uid: string) => Record<string, string>,
  ): Promise<{ url: URL; html: string; leftIdp: boolean }> {
    let url = start;
    let method = init.method ?? 'GET';
    let form = init.form;
    for (let hop = 0; hop < 20; hop++) {
      if (url.origin !== issuer) return { url, html: '', leftIdp: true };
      const response = await fetch(url, {
        method,
        redirect: 'manual',
        headers: {
          cookie: jar.header(),
          ...(form === undefined ? {} : { 'content-type': 'application/x-www-form-urlencoded' }),
        },
        ...(form === undefined ? {} : { body: new URLSearchParams(form).toString() }),
      });
      jar.store(response);
      const location = response.headers.get('location');
      if (response.status >= 300 && response.status < 400 && location !== null) {
        await response.body?.cancel();
        url = new URL(location, url);
        method = 'GET';
        form = undefined;
        const interaction = /^\/interaction\/([\w-]+)$/.exec(url.pathname);
        if (interaction !== null && onInteraction !== undefined && url.origin === issuer) {
          url = new URL(`/interaction/${interaction[1]}/confirm`, issuer);
          method = 'POST';
          form = onInteraction(interaction[1] ?? '');
        }
        continue;
      }
      const html = await response.text();
      if (response.status >= 400) {
        throw new Error(
          `the IdP answered ${response.status} at ${url.pathname}: ${html.slice(0, 300)}`,
        );
      }
      return { url, html, leftIdp: false };
    }
    throw new Error('too many redirects at the IdP');
  }

  async function deviceFlow(userCode: string, interaction: Record<string, string>): Promise<void> {
    const jar = new CookieJar();
    const device = new URL('/device', issuer);
    device.searchParams.set('user_code', userCode);
    const confirm = await browse(jar, device);
    const { action, fields } = formFields(confirm.html);
    if (action === undefined || fields.xsrf === undefined) {
      throw new Error('the IdP did not show the device confirmation form');
    }
    const done = await browse(
      jar,
      new URL(action, issuer),
      { method: 'POST', form: { ...fields, confirm: 'yes' } },
      () => interaction,
    );
    if (!done.leftIdp && interaction.deny === undefined && !done.html.includes('device-success')) {
      throw new Error('the device flow did not reach the success page');
    }
  }

  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    unregister();
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  };
  const unregister = registerService({
    stop,
    stopSync: () => {
      server.closeAllConnections();
      server.close();
    },
  });

  return {
    issuer,
    port: actualPort,
    people,
    gatewayClient,
    cliClient,
    agents,
    resource,
    completeDeviceFlow: (userCode, subject) => deviceFlow(userCode, { subject }),
    denyDeviceFlow: (userCode) => deviceFlow(userCode, { deny: 'yes' }),
    async completeAuthorization(authorizationUrl, subject, opts = {}) {
      const jar = new CookieJar();
      const end = await browse(jar, new URL(authorizationUrl), {}, () => ({ subject }));
      if (!end.leftIdp) throw new Error('the authorization did not redirect back to the client');
      if (opts.deliver !== false) {
        const delivered = await fetch(end.url);
        await delivered.body?.cancel();
      }
      return end.url;
    },
    stop,
  };
}
