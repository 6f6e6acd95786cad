// Approval notifications end to end: a held DELETE is POSTed, signed, to a generic webhook and as
// a Slack message to another (real loopback receivers that check the signature the documented
// way); a receiver that answers 503 twice gets the same delivery three times, one that answers
// 400 once. The approve link in the notice leads an approver through the real OIDC provider
// (authorization code + PKCE) to a confirm form, and the statement runs; forged, tampered and
// stale links, the requester and a form without the CSRF token are refused.
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ApprovalLinkSigner, loadLinkKey } from '@portcullis/gateway';
import { freePort, startOidcProvider, type OidcProviderServer } from '@portcullis/testkit';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createSharedDatabase,
  dropSharedDatabase,
  sharedResource,
  startGatewayFixture,
  superuserQuery,
  type GatewayFixture,
} from './support/gateway-fixture.js';
import { holdStatement, ordersDeletesNeedApproval } from './support/approval-holds.js';
import { startFixtureApi, type FixtureApi } from './support/gateway-api.js';
import { personCredential, testIdpOidc } from './support/oidc-login.js';

const DB = 'it_approval_webhooks';
const SECRET = `whsec_${randomBytes(18).toString('base64url')}`;

/** One request a receiver got. */
interface Delivery {
  readonly path: string;
  readonly id: string;
  readonly type: string;
  readonly signed: boolean;
  readonly body: Record<string, unknown>;
}

let idp: OidcProviderServer;
let gw: GatewayFixture;
let api: FixtureApi;
let receiver: Server;
let base: string;
const deliveries: Delivery[] = [];
/** Attempts per delivery id on /flaky, which fails the first two with 503. */
const flakyAttempts = new Map<string, number>();
/** Gateway credential of bob, the requester. */
let bobCredential: string;

/** The documented receiver check: HMAC-SHA256 of "<t>.<raw body>", t within five minutes. */
function verified(header: string | undefined, raw: string): boolean {
  const t = /(?:^|,)t=(\d+)/.exec(header ?? '')?.[1];
  const v1 = /(?:^|,)v1=([0-9a-f]{64})/.exec(header ?? '')?.[1];
  if (t === undefined || v1 === undefined) return false;
  if (Math.abs(Date.now() / 1000 - Number(t)) > 300) return false;
  const expected = createHmac('sha256', SECRET).update(`${t}.${raw}`).digest();
  return timingSafeEqual(Buffer.from(v1, 'hex'), expected);
}

async function startReceiver(): Promise<Server> {
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks).toString('utf8');
      const id = String(req.headers['x-portcullis-delivery']);
      deliveries.push({
        path: req.url ?? '',
        id,
        type: String(req.headers['x-portcullis-event']),
        signed: verified(req.headers['x-portcullis-signature'] as string | undefined, raw),
        body: JSON.parse(raw) as Record<string, unknown>,
      });
      if (req.url === '/bad') return void res.writeHead(400).end('bad');
      if (req.url === '/flaky') {
        const n = (flakyAttempts.get(id) ?? 0) + 1;
        flakyAttempts.set(id, n);
        if (n <= 2) return void res.writeHead(503).end('later');
      }
      res.writeHead(200).end('ok');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return server;
}

beforeAll(async () => {
  idp = await startOidcProvider();
  receiver = await startReceiver();
  const hooks = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`;
  await createSharedDatabase(DB);
  await superuserQuery(
    `CREATE TABLE orders (id int PRIMARY KEY, item text);
     INSERT INTO orders SELECT g, 'item ' || g FROM generate_series(1, 10) g;
     GRANT ALL ON orders TO PUBLIC;`,
    DB,
  );
  // The links name the API's address, so pick its port before the gateway starts.
  const apiPort = await freePort();
  base = `http://127.0.0.1:${apiPort}`;
  const secret = { value: SECRET };
  gw = await startGatewayFixture({
    resources: {
      shop: sharedResource(DB, 'scram', {
        policy: {
          rules: [ordersDeletesNeedApproval()],
        },
      }),
    },
    identity: {
      oidc: testIdpOidc(idp),
      groupAccess: [{ groups: ['engineering'], resources: ['shop'] }],
    },
    approvals: {
      publicUrl: base,
      webhooks: [
        { name: 'generic', url: `${hooks}/generic`, secret },
        { name: 'slack', url: `${hooks}/slack`, format: 'slack' },
        { name: 'flaky', url: `${hooks}/flaky`, secret, retries: 3 },
        { name: 'bad', url: `${hooks}/bad`, secret },
      ],
    },
  });
  // The fixture's API has no approval routes; serve the gateway's broker on the linked port.
  api = await startFixtureApi(gw, {
    config: { ...gw.config, http: { ...gw.config.http!, port: apiPort } },
    metrics: () => gw.gateway.metrics.text(),
    approvals: gw.gateway.approvals,
  });
  bobCredential = await personCredential(idp, base, 'bob');
});

afterAll(async () => {
  api?.close();
  await gw?.dispose();
  await idp?.stop();
  await new Promise((resolve) => receiver?.close(resolve));
  await dropSharedDatabase(DB);
});

/** Bob sends `sql`; resolves with the approval id from the hold's NOTICE and the pending query. */
async function hold(sql: string): Promise<{ id: string; result: Promise<pg.QueryResult> }> {
  return holdStatement(await gw.connect('shop', { password: bobCredential }), sql);
}

async function until<T>(what: string, read: () => T | undefined, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = read();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function deliveriesTo(path: string, approvalId: string, type = 'approval.requested'): Delivery[] {
  return deliveries.filter((d) => {
    if (d.path !== path || d.type !== type) return false;
    const approval = d.body['approval'] as { id?: string } | undefined;
    return approval?.id === approvalId || JSON.stringify(d.body).includes(approvalId);
  });
}

/** A browser: one cookie jar for the gateway, redirects by hand. */
class Browser {
  readonly #cookies = new Map<string, string>();

  async request(
    url: string,
    form?: Record<string, string>,
  ): Promise<{ status: number; html: string; location: string | null }> {
    const response = await fetch(url, {
      method: form === undefined ? 'GET' : 'POST',
      redirect: 'manual',
      headers: {
        cookie: [...this.#cookies].map(([k, v]) => `${k}=${v}`).join('; '),
        ...(form === undefined
          ? {}
          : { 'content-type': 'application/x-www-form-urlencoded', origin: base }),
      },
      ...(form === undefined ? {} : { body: new URLSearchParams(form).toString() }),
    });
    for (const line of response.headers.getSetCookie()) {
      const [pair = ''] = line.split(';');
      const eq = pair.indexOf('=');
      this.#cookies.set(pair.slice(0, eq), pair.slice(eq + 1));
    }
    return {
      status: response.status,
      html: await response.text(),
      location: response.headers.get('location'),
    };
  }

  /** Opens `link`, signs in at the IdP as `subject`, and returns the confirm page. */
  async signIn(link: string, subject: string): Promise<string> {
    const page = await this.request(link);
    expect(page.status, page.html).toBe(200);
    const signIn = /<a class="button" href="([^"]+)">Sign in<\/a>/.exec(page.html)?.[1];
    expect(signIn, page.html).toBeDefined();
    const callback = await idp.completeAuthorization(signIn!.replaceAll('&amp;', '&'), subject, {
      deliver: false,
    });
    expect(callback.pathname).toBe('/v1/approvals/callback');
    const back = await this.request(callback.href);
    expect(back.status, back.html).toBe(303);
    expect(back.location).toBe(link);
    const confirm = await this.request(back.location!);
    expect(confirm.status).toBe(200);
    expect(confirm.html).toContain('<form method="post" action="review">');
    return confirm.html;
  }
}

/** The hidden fields of the confirm form. */
function formFields(html: string): Record<string, string> {
  const fields: Record<string, string> = {};
  for (const [, name, value] of html.matchAll(
    /<input type="hidden" name="(\w+)" value="([^"]*)">/g,
  )) {
    fields[name!] = value!;
  }
  return fields;
}

function formAction(link: string): string {
  return new URL('review', link).href;
}

let held: { id: string; result: Promise<pg.QueryResult> };
let links: { approve: string; deny: string; view: string };

describe('approval notifications', () => {
  it('a held DELETE sends a signed generic notice and a Slack message with the links', async () => {
    held = await hold('DELETE FROM orders WHERE id = 1');
    const [generic] = await until('the generic notice', () => {
      const found = deliveriesTo('/generic', held.id);
      return found.length > 0 ? found : undefined;
    });
    expect(generic!.signed).toBe(true);
    expect(generic!.body).toMatchObject({
      version: 1,
      type: 'approval.requested',
      approval: {
        id: held.id,
        resource: 'shop',
        statement: { text: 'DELETE FROM orders WHERE id = $1', kind: 'delete', tables: ['orders'] },
        rule: 'orders-deletes-need-approval',
        requester: { subject: 'bob', email: 'bob@example.com' },
        onBehalfOf: null,
        approvalsNeeded: 1,
      },
      commands: { approve: `portcullis approve ${held.id}` },
      outcome: null,
    });
    links = generic!.body['links'] as typeof links;
    expect(
      links.approve.startsWith(`${base}/v1/approvals/${held.id}/review?verdict=approve&`),
    ).toBe(true);

    const [slack] = await until('the Slack message', () => {
      const found = deliveriesTo('/slack', held.id);
      return found.length > 0 ? found : undefined;
    });
    expect(slack!.signed).toBe(false);
    const body = slack!.body as {
      text: string;
      blocks: { type: string; elements?: { url: string; text: { text: string } }[] }[];
    };
    expect(body.text).toBe('Approval needed: DELETE on shop by bob@example.com');
    const actions = body.blocks.find((b) => b.type === 'actions')!;
    expect(actions.elements!.slice(0, 2).map((e) => [e.text.text, e.url])).toEqual([
      ['Approve', links.approve],
      ['Deny', links.deny],
    ]);
  });

  it('retries a receiver that answers 503 with the same delivery id; a 400 is not retried', async () => {
    const flaky = await until('three attempts on the flaky receiver', () => {
      const found = deliveriesTo('/flaky', held.id);
      return found.length >= 3 ? found : undefined;
    });
    expect(flaky).toHaveLength(3);
    expect(new Set(flaky.map((d) => d.id)).size).toBe(1);
    expect(flaky.every((d) => d.signed)).toBe(true);
    expect(deliveriesTo('/bad', held.id)).toHaveLength(1);
    const metrics = await gw.gateway.metrics.text();
    expect(metrics).toMatch(
      /portcullis_approval_webhook_deliveries_total\{webhook="bad",outcome="rejected"\} [1-9]/,
    );
    expect(metrics).toMatch(
      /portcullis_approval_webhook_deliveries_total\{webhook="flaky",outcome="delivered"\} [1-9]/,
    );
  });
});

describe('review links', () => {
  it('refuses a forged, a tampered and a stale link', async () => {
    const browser = new Browser();
    const approve = new URL(links.approve);
    const forged = new URL(approve);
    forged.searchParams.set('sig', randomBytes(32).toString('base64url'));
    const tampered = new URL(approve);
    tampered.searchParams.set('verdict', 'deny');
    const later = new URL(approve);
    later.searchParams.set('exp', String(Number(approve.searchParams.get('exp')) + 3600));
    for (const url of [forged, tampered, later]) {
      const page = await browser.request(url.href);
      expect(page.status).toBe(403);
      expect(page.html).toContain('not issued by this gateway');
    }
    // Correctly signed by this gateway's key, but past its expiry.
    const signer = new ApprovalLinkSigner(await loadLinkKey(gw.config.dataDir));
    const stale = signer.url(base, {
      id: held.id,
      verdict: 'approve',
      exp: Math.floor(Date.now() / 1000) - 1,
    });
    const page = await browser.request(stale);
    expect(page.status).toBe(403);
    expect(page.html).toContain('stale');
  });

  it('the requester who follows the link is refused', async () => {
    const browser = new Browser();
    const html = await browser.signIn(links.approve, 'bob');
    expect(html).toContain('Signed in as bob@example.com');
    const page = await browser.request(formAction(links.approve), {
      ...formFields(html),
      decision: 'approve',
    });
    expect(page.status).toBe(403);
    expect(page.html).toContain('you cannot decide on your own statement');
  });

  it('an approver follows the approve link, signs in, confirms, and the statement runs', async () => {
    const browser = new Browser();
    const html = await browser.signIn(links.approve, 'ada');
    expect(html).toContain('DELETE FROM orders WHERE id = $1');
    expect(html).toContain('orders-deletes-need-approval');
    expect(html).toContain('bob@example.com (bob)');
    const fields = formFields(html);
    const noCsrf = await browser.request(formAction(links.approve), {
      ...fields,
      csrf: 'guess',
      decision: 'approve',
    });
    expect(noCsrf.status).toBe(403);
    const tampered = await browser.request(formAction(links.approve), {
      ...fields,
      decision: 'deny',
      reason: 'no',
    });
    expect(tampered.status).toBe(403);
    const done = await browser.request(formAction(links.approve), {
      ...fields,
      decision: 'approve',
      reason: 'ticket 7',
    });
    expect(done.status, done.html).toBe(200);
    expect(done.html).toContain('You approved the statement');
    expect((await held.result).rowCount).toBe(1);
    const granted = await until('the granted notice', () => {
      const found = deliveriesTo('/generic', held.id, 'approval.granted');
      return found.length > 0 ? found : undefined;
    });
    expect(granted[0]!.body).toMatchObject({
      type: 'approval.granted',
      links: null,
      outcome: { kind: 'granted', by: [{ subject: 'ada', email: 'ada@example.com' }] },
    });
    const again = await browser.request(links.approve);
    expect(again.status).toBe(404);
    expect(again.html).toContain('not waiting for a decision');
  });

  it('escapes a hostile statement and denies it with a reason from the deny link', async () => {
    const hostile = await hold('DELETE FROM orders WHERE "<script>alert(1)</script>" = 1');
    const [notice] = await until('the generic notice', () => {
      const found = deliveriesTo('/generic', hostile.id);
      return found.length > 0 ? found : undefined;
    });
    const deny = (notice!.body['links'] as typeof links).deny;
    const browser = new Browser();
    const first = await browser.request(deny);
    expect(first.html).not.toContain('<script');
    expect(first.html).toContain('&quot;&lt;script&gt;alert(1)&lt;/script&gt;&quot;');
    const html = await browser.signIn(deny, 'ada');
    expect(html).not.toContain('<script');
    const noReason = await browser.request(formAction(deny), { ...formFields(html), reason: ' ' });
    expect(noReason.status).toBe(400);
    expect(noReason.html).toContain('A denial needs a reason.');
    const done = await browser.request(formAction(deny), {
      ...formFields(html),
      reason: 'not <b>today</b>',
    });
    expect(done.status, done.html).toBe(200);
    await expect(hostile.result).rejects.toMatchObject({
      code: '42501',
      message: expect.stringContaining('denied by ada@example.com: not <b>today</b>') as unknown,
    });
  });
});
