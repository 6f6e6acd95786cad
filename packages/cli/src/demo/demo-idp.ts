import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, rename, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import type { Adapter, AdapterPayload } from 'oidc-provider';

/** A person who can sign in at the demo IdP (no password: it is a demo). */
export interface DemoIdpPerson {
  readonly subject: string;
  readonly email: string;
  readonly name: string;
  readonly groups: readonly string[];
}

/** The demo's agent: a confidential client that signs in with client credentials. */
export interface DemoIdpAgent {
  readonly clientId: string;
  readonly name: string;
  /** Generated on first start, kept in the data dir. Secret. */
  readonly clientSecret: string;
}

/** Options of {@link startDemoIdp}. */
export interface DemoIdpOptions {
  /** Where the IdP keeps its keys, its agent's secret and its grants (`demo-idp/`). */
  readonly dataDir: string;
  readonly people: readonly DemoIdpPerson[];
  readonly agent: { readonly clientId: string; readonly name: string };
  /** Port on 127.0.0.1; by default the one used last time in this data dir, else a free one. */
  readonly port?: number;
}

/** The running demo IdP. */
export interface DemoIdp {
  /** `http://127.0.0.1:<port>`. */
  readonly issuer: string;
  readonly port: number;
  /** The public client `portcullis login` uses (device flow, PKCE, refresh tokens). */
  readonly cliClientId: string;
  /** The RFC 8707 resource whose access tokens are JWTs the gateway verifies (also their `aud`). */
  readonly resource: string;
  readonly agent: DemoIdpAgent;
  /** Whether the port of the last run was taken and the issuer changed (older logins stop working). */
  readonly movedPort: boolean;
  /**
   * Signs `subject` in at `authorizationUrl` the way their browser would (the sign-in page, then
   * the redirect back to the client's loopback listener): the demo's own start-up logins.
   */
  signIn(authorizationUrl: URL, subject: string): Promise<void>;
  close(): Promise<void>;
}

const CLI_CLIENT_ID = 'portcullis-cli';
const RESOURCE = 'urn:portcullis:demo';
const ACCESS_TOKEN_TTL_S = 3600;

/** What survives a restart: signing keys, cookie keys, the agent's secret, the port. */
interface DemoIdpState {
  port: number;
  jwks: { keys: Record<string, unknown>[] };
  cookieKeys: string[];
  agentSecret: string;
}

function secret(): string {
  return randomBytes(24).toString('base64url');
}

async function writeAtomically(path: string, text: string): Promise<void> {
  const temp = `${path}.${process.pid}.tmp`;
  await writeFile(temp, text, { mode: 0o600 });
  await rename(temp, path);
}

function loadState(file: string): DemoIdpState {
  if (existsSync(file)) return JSON.parse(readFileSync(file, 'utf8')) as DemoIdpState;
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({
    format: 'jwk',
  });
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({
    format: 'jwk',
  });
  return {
    port: 0,
    jwks: {
      keys: [
        { ...rsa, kid: `demo-rsa-${secret().slice(0, 8)}`, alg: 'RS256', use: 'sig' },
        { ...ec, kid: `demo-ec-${secret().slice(0, 8)}`, alg: 'ES256', use: 'sig' },
      ],
    },
    cookieKeys: [secret()],
    agentSecret: secret(),
  };
}

interface StoredEntry {
  payload: AdapterPayload;
  /** Epoch milliseconds; absent: no expiry. */
  expiresAt?: number;
}

/**
 * The provider's storage (sessions, grants, codes, refresh tokens) in one JSON file, so a
 * restarted demo still knows the logins it gave out. A demo's volume: the whole file is
 * rewritten on each change.
 */
class DemoIdpStore {
  readonly #file: string;
  readonly #entries: Map<string, StoredEntry>;
  #writing: Promise<void> = Promise.resolve();

  constructor(file: string) {
    this.#file = file;
    const loaded = existsSync(file)
      ? (JSON.parse(readFileSync(file, 'utf8')) as Record<string, StoredEntry>)
      : {};
    const now = Date.now();
    this.#entries = new Map(
      Object.entries(loaded).filter(([, e]) => e.expiresAt === undefined || e.expiresAt > now),
    );
  }

  #save(): Promise<void> {
    const text = `${JSON.stringify(Object.fromEntries(this.#entries))}\n`;
    this.#writing = this.#writing.then(() => writeAtomically(this.#file, text));
    return this.#writing;
  }

  #get(key: string): AdapterPayload | undefined {
    const entry = this.#entries.get(key);
    if (entry === undefined) return undefined;
    if (entry.expiresAt !== undefined && entry.expiresAt <= Date.now()) {
      this.#entries.delete(key);
      return undefined;
    }
    return entry.payload;
  }

  adapter(model: string): Adapter {
    const key = (id: string): string => `${model}:${id}`;
    const find = (predicate: (p: AdapterPayload) => boolean): AdapterPayload | undefined => {
      for (const [k] of this.#entries) {
        if (!k.startsWith(`${model}:`)) continue;
        const payload = this.#get(k);
        if (payload !== undefined && predicate(payload)) return payload;
      }
      return undefined;
    };
    return {
      upsert: async (id, payload, expiresIn) => {
        this.#entries.set(key(id), {
          payload,
          ...(expiresIn === undefined ? {} : { expiresAt: Date.now() + expiresIn * 1000 }),
        });
        await this.#save();
      },
      find: async (id) => this.#get(key(id)),
      findByUid: async (uid) => find((p) => p.uid === uid),
      findByUserCode: async (userCode) => find((p) => p.userCode === userCode),
      consume: async (id) => {
        const payload = this.#get(key(id));
        if (payload === undefined) return;
        payload.consumed = Math.floor(Date.now() / 1000);
        await this.#save();
      },
      destroy: async (id) => {
        this.#entries.delete(key(id));
        await this.#save();
      },
      revokeByGrantId: async (grantId) => {
        for (const [k, entry] of this.#entries) {
          if (entry.payload.grantId === grantId) this.#entries.delete(k);
        }
        await this.#save();
      },
    };
  }

  flush(): Promise<void> {
    return this.#writing;
  }
}

const STYLE =
  'body{font:16px/1.5 system-ui,sans-serif;max-width:34rem;margin:3rem auto;padding:0 1rem}' +
  'button{font:inherit;display:block;width:100%;margin:.5rem 0;padding:.6rem;text-align:left;cursor:pointer}' +
  'input{font:inherit;padding:.4rem;width:12rem}small{color:#666}';

function page(title: string, body: string): string {
  return (
    `<!doctype html><html><head><meta charset="utf-8"><title>${title} · Portcullis demo IdP</title>` +
    `<style>${STYLE}</style></head><body><h1>${title}</h1>${body}</body></html>`
  );
}

function escapeHtml(text: string): string {
  return text.replace(
    /[&<>"']/g,
    (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!,
  );
}

async function readForm(req: IncomingMessage): Promise<URLSearchParams> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > 16 * 1024) throw new Error('form too large');
    chunks.push(chunk as Buffer);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

/** Listens on 127.0.0.1:`port`; on a taken port, on a free one instead (when `fallback`). */
async function listen(server: Server, port: number, fallback: boolean): Promise<number> {
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host: '127.0.0.1', port }, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (err) {
    if (!fallback || (err as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw err;
    return listen(server, 0, false);
  }
  return (server.address() as AddressInfo).port;
}

/**
 * Starts the demo's identity provider: `oidc-provider` on 127.0.0.1 with the demo's people (a
 * sign-in page that lists them, no passwords), the public client of `portcullis login` (device
 * flow, authorization code + PKCE, refresh tokens) and one agent (client credentials). Access
 * tokens for {@link DemoIdp.resource} are ES256 JWTs carrying email, name and groups, as the
 * gateway expects. Keys, the agent's secret, grants and the port are kept in
 * `<dataDir>/demo-idp/` (0600), so a restarted demo accepts the logins it gave out before.
 *
 * For trying Portcullis on one machine only: anyone who can reach the port can sign in as any
 * demo person.
 */
export async function startDemoIdp(options: DemoIdpOptions): Promise<DemoIdp> {
  // On Node 20 the import warns that the runtime is unsupported; the testkit runs the same
  // provider on Node 20 for every login flow used here, so the demo keeps that line out of its
  // output.
  const warn = console.warn;
  console.warn = (...args: unknown[]) => {
    if (!String(args[0]).includes('Unsupported runtime')) warn(...args);
  };
  const { default: Provider, errors } = await import('oidc-provider').finally(() => {
    console.warn = warn;
  });

  const dir = join(options.dataDir, 'demo-idp');
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const stateFile = join(dir, 'state.json');
  const state = loadState(stateFile);
  const store = new DemoIdpStore(join(dir, 'grants.json'));
  const byId = new Map(options.people.map((p) => [p.subject, p]));
  const agent: DemoIdpAgent = { ...options.agent, clientSecret: state.agentSecret };

  // The issuer names the port, so the port is chosen before the provider is made.
  const server = createServer();
  const wanted = options.port ?? state.port;
  const port = await listen(server, wanted, options.port === undefined);
  const movedPort = state.port !== 0 && port !== state.port;
  await writeAtomically(stateFile, `${JSON.stringify({ ...state, port }, null, 2)}\n`);
  const issuer = `http://127.0.0.1:${port}`;

  const provider = new Provider(issuer, {
    adapter: (model: string) => store.adapter(model),
    clients: [
      {
        client_id: CLI_CLIENT_ID,
        client_name: 'Portcullis CLI',
        application_type: 'native',
        // Native clients may come back on any loopback port (RFC 8252).
        redirect_uris: ['http://127.0.0.1/callback'],
        grant_types: [
          'authorization_code',
          'refresh_token',
          'urn:ietf:params:oauth:grant-type:device_code',
        ],
        response_types: ['code'],
        token_endpoint_auth_method: 'none',
      },
      {
        client_id: agent.clientId,
        client_secret: agent.clientSecret,
        client_name: agent.name,
        grant_types: ['client_credentials'],
        response_types: [],
        redirect_uris: [],
        token_endpoint_auth_method: 'client_secret_basic',
      },
    ],
    jwks: state.jwks as never,
    cookies: { keys: state.cookieKeys },
    claims: {
      openid: ['sub'],
      email: ['email', 'email_verified'],
      profile: ['name'],
      groups: ['groups'],
    },
    scopes: ['openid', 'offline_access', 'email', 'profile', 'groups'],
    conformIdTokenClaims: false,
    ttl: {
      AccessToken: ACCESS_TOKEN_TTL_S,
      ClientCredentials: ACCESS_TOKEN_TTL_S,
      IdToken: 3600,
      RefreshToken: 14 * 86_400,
      DeviceCode: 600,
      Interaction: 600,
      Session: 14 * 86_400,
      Grant: 14 * 86_400,
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
          name: person.name,
          groups: [...person.groups],
        }),
      };
    },
    async extraTokenClaims(_ctx, token) {
      const person = byId.get((token as { accountId?: string }).accountId ?? '');
      if (person !== undefined) {
        return { email: person.email, name: person.name, groups: [...person.groups] };
      }
      return (token as { clientId?: string }).clientId === agent.clientId
        ? { client_name: agent.name }
        : undefined;
    },
    interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      revocation: { enabled: true },
      deviceFlow: {
        enabled: true,
        userCodeInputSource(ctx, form, _out, err) {
          ctx.body = page(
            'Connect a device',
            `${err === undefined ? '' : '<p><strong>That code is not valid or has expired.</strong></p>'}` +
              `<p>Enter the code <code>portcullis login</code> shows.</p>${form}`,
          );
        },
        userCodeConfirmSource(ctx, form, client, _info, userCode) {
          ctx.body = page(
            'Confirm the device',
            `<p>${escapeHtml(client.clientName ?? client.clientId)} asks to sign in. ` +
              `Does it show the code <strong>${escapeHtml(userCode)}</strong>?</p>${form}`,
          );
        },
        successSource(ctx) {
          ctx.body = page('Signed in', '<p>Return to your terminal.</p>');
        },
      },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => RESOURCE,
        useGrantedResource: () => true,
        getResourceServerInfo(_ctx, indicator) {
          if (indicator !== RESOURCE) throw new errors.InvalidTarget();
          return {
            scope: 'db:connect',
            audience: RESOURCE,
            accessTokenTTL: ACCESS_TOKEN_TTL_S,
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg: 'ES256' } },
          };
        },
      },
    },
  });

  /** The sign-in page: one button per demo person. */
  async function showSignIn(req: IncomingMessage, res: ServerResponse, uid: string): Promise<void> {
    const details = await provider.interactionDetails(req, res);
    const client = await provider.Client.find(String(details.params['client_id']));
    const buttons = options.people
      .map(
        (p) =>
          `<button name="subject" value="${escapeHtml(p.subject)}">${escapeHtml(p.name)} ` +
          `<small>${escapeHtml(p.email)} · ${escapeHtml(p.groups.join(', '))}</small></button>`,
      )
      .join('');
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
    res.end(
      page(
        'Sign in',
        `<p>${escapeHtml(client?.clientName ?? 'An application')} asks who you are. ` +
          'This demo IdP has no passwords: pick a demo person.</p>' +
          `<form method="post" action="/interaction/${escapeHtml(uid)}/login">${buttons}` +
          '<button name="deny" value="yes"><small>Cancel</small></button></form>',
      ),
    );
  }

  /** Signs the chosen person in and grants what the client asked for. */
  async function finishSignIn(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const form = await readForm(req);
    const details = await provider.interactionDetails(req, res);
    if (form.get('deny') === 'yes') {
      await provider.interactionFinished(req, res, {
        error: 'access_denied',
        error_description: 'the person cancelled the sign-in',
      });
      return;
    }
    const subject = form.get('subject') ?? '';
    if (!byId.has(subject)) {
      res.writeHead(400, { 'content-type': 'text/plain' }).end('unknown demo person');
      return;
    }
    const clientId = String(details.params['client_id']);
    const grant =
      (details.grantId === undefined ? undefined : await provider.Grant.find(details.grantId)) ??
      new provider.Grant({ accountId: subject, clientId });
    const scope = details.params['scope'];
    if (typeof scope === 'string') grant.addOIDCScope(scope);
    const missing = details.prompt.details as {
      missingOIDCClaims?: string[];
      missingResourceScopes?: Record<string, string[]>;
    };
    if (missing.missingOIDCClaims !== undefined) grant.addOIDCClaims(missing.missingOIDCClaims);
    for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes ?? {})) {
      grant.addResourceScope(indicator, scopes.join(' '));
    }
    grant.addResourceScope(RESOURCE, 'db:connect');
    const grantId = await grant.save();
    await provider.interactionFinished(
      req,
      res,
      { login: { accountId: subject }, consent: { grantId } },
      { mergeWithLastSubmission: false },
    );
  }

  const callback = provider.callback();
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', issuer);
    const match = /^\/interaction\/([\w-]+)(\/login)?$/.exec(url.pathname);
    if (match === null) {
      void callback(req, res);
      return;
    }
    const handled =
      req.method === 'POST' && match[2] !== undefined
        ? finishSignIn(req, res)
        : showSignIn(req, res, match[1]!);
    handled.catch((err: unknown) => {
      if (res.headersSent) return;
      res.writeHead(400, { 'content-type': 'text/html; charset=utf-8' });
      res.end(
        page(
          'Sign-in expired',
          `<p>Start again from your terminal. <small>(${escapeHtml((err as Error).name)})</small></p>`,
        ),
      );
    });
  });

  async function signIn(authorizationUrl: URL, subject: string): Promise<void> {
    const cookies = new Map<string, string>();
    let url = authorizationUrl;
    let form: Record<string, string> | undefined;
    for (let hop = 0; hop < 12; hop++) {
      if (url.origin !== issuer) {
        // Back at the client (its loopback listener): deliver the answer as a browser would.
        const delivered = await fetch(url);
        await delivered.body?.cancel();
        return;
      }
      const response = await fetch(url, {
        method: form === undefined ? 'GET' : 'POST',
        redirect: 'manual',
        headers: {
          cookie: [...cookies].map(([k, v]) => `${k}=${v}`).join('; '),
          ...(form === undefined ? {} : { 'content-type': 'application/x-www-form-urlencoded' }),
        },
        ...(form === undefined ? {} : { body: new URLSearchParams(form).toString() }),
      });
      for (const line of response.headers.getSetCookie()) {
        const pair = line.split(';', 1)[0] ?? '';
        const eq = pair.indexOf('=');
        if (eq > 0) cookies.set(pair.slice(0, eq).trim(), pair.slice(eq + 1).trim());
      }
      await response.body?.cancel();
      const location = response.headers.get('location');
      if (response.status < 300 || response.status >= 400 || location === null) {
        throw new Error(`the demo sign-in stopped at ${url.pathname} (HTTP ${response.status})`);
      }
      url = new URL(location, url);
      form = undefined;
      const interaction = /^\/interaction\/([\w-]+)$/.exec(url.pathname);
      if (interaction !== null && url.origin === issuer) {
        url = new URL(`/interaction/${interaction[1]}/login`, issuer);
        form = { subject };
      }
    }
    throw new Error('the demo sign-in went through too many redirects');
  }

  return {
    issuer,
    port,
    cliClientId: CLI_CLIENT_ID,
    resource: RESOURCE,
    agent,
    movedPort,
    signIn,
    async close() {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      await store.flush();
    },
  };
}
