import { randomBytes, timingSafeEqual } from 'node:crypto';
import type { Logger, Person } from '@portcullis/core';
import { OidcClient, isIdentityError, type IdentityError } from '@portcullis/identity';
import type { GatewayConfig } from '../config/load-config.js';
import type { ApiRequest, ApiResponse, ApiRoute } from '../http/http-server.js';
import type { GatewayIdentity } from '../identity/gateway-identity.js';
import type { DecideResult, PendingApproval } from './approval-broker.js';
import {
  ApprovalLinkSigner,
  loadLinkKey,
  readReviewLink,
  type LinkVerdict,
  type ReviewLink,
} from './approval-links.js';
import {
  PAGE_HEADERS,
  decidedPage,
  linkRefusedPage,
  messagePage,
  reviewPage,
  type ReviewAction,
} from './approval-page.js';

/**
 * What the pages need of the broker: its public reading and deciding, awaited so a broker that
 * answers synchronously or from a database both fit.
 */
export interface ApprovalDecisions {
  get(id: string): PendingApproval | undefined | Promise<PendingApproval | undefined>;
  decide(
    id: string,
    person: Person,
    verdict: 'approve' | 'deny',
    reason: string,
  ): DecideResult | Promise<DecideResult>;
}

/** Options of {@link approvalPageRoutes}. */
export interface ApprovalPageOptions {
  /** `approvals.publicUrl`; null: the pages answer that links are off. */
  readonly publicUrl: string | null;
  /** The link key; null: as for `publicUrl`. */
  readonly links: ApprovalLinkSigner | null;
  readonly broker: ApprovalDecisions;
  readonly identity: GatewayIdentity;
  readonly logger: Logger;
  readonly now?: () => number;
}

const COOKIE = 'pcl_approval';
/** How long a login may take, and how long a login lets its person decide without another. */
const LOGIN_MS = 600_000;
const SESSION_MS = 600_000;
/** Longest reason accepted with a decision (as the API). */
const MAX_REASON_CHARS = 1000;

/** The cookie's sealed content: a login in progress, or a person who logged in. */
type CookieState =
  | {
      readonly k: 'login';
      readonly state: string;
      readonly nonce: string;
      readonly verifier: string;
      /** The link to return to. */
      readonly back: ReviewLink & { readonly sig: string };
      readonly exp: number;
    }
  | { readonly k: 'session'; readonly person: Person; readonly csrf: string; readonly exp: number };

/**
 * The review pages behind the links in approval notifications: `GET /v1/approvals/ID/review`
 * checks the link's signature and expiry, shows the held statement and sends the approver to
 * the OIDC provider (authorization code with PKCE, the gateway as `identity.oidc.clientId`);
 * `GET /v1/approvals/callback` finishes that login; `POST /v1/approvals/ID/review` takes the
 * decision (CSRF token bound to the login) through the broker, so its every rule holds. Login
 * state and the logged-in person live in one sealed (AES-GCM), HttpOnly, SameSite=Lax cookie.
 */
export function approvalPageRoutes(options: ApprovalPageOptions): ApiRoute[] {
  const { publicUrl, links, broker, identity, logger } = options;
  const now = options.now ?? Date.now;
  const base = publicUrl === null ? null : new URL(publicUrl);
  const cookiePath = `${base?.pathname.replace(/\/+$/, '') ?? ''}/v1/approvals`;
  const secure = base?.protocol === 'https:' ? '; Secure' : '';
  const callbackUrl = `${publicUrl ?? ''}/v1/approvals/callback`;

  let client: Promise<OidcClient> | null = null;
  const oidc = (): Promise<OidcClient> => {
    const config = identity.config.oidc!;
    client ??= OidcClient.discover({
      issuer: config.issuer,
      clientId: config.clientId,
      timeoutMs: config.timeoutMs,
      allowInsecureRequests: config.allowInsecureHttp,
    }).catch((err: unknown) => {
      client = null; // discover again on the next request
      throw err;
    });
    return client;
  };

  const html = (status: number, body: string, cookie?: string): ApiResponse => ({
    status,
    text: body,
    contentType: 'text/html; charset=utf-8',
    headers: { ...PAGE_HEADERS, ...(cookie === undefined ? {} : { 'set-cookie': cookie }) },
  });
  const setCookie = (value: CookieState): string =>
    `${COOKIE}=${links!.seal(value)}; Path=${cookiePath}; Max-Age=${Math.ceil((value.exp - now()) / 1000)}; HttpOnly; SameSite=Lax${secure}`;
  const readCookie = (request: ApiRequest): CookieState | null => {
    const header = request.headers.get('cookie') ?? '';
    for (const part of header.split(';')) {
      const [name, ...rest] = part.trim().split('=');
      if (name !== COOKIE) continue;
      const value = links!.open(rest.join('=')) as CookieState | null;
      if (value !== null && typeof value === 'object' && value.exp > now()) return value;
    }
    return null;
  };
  const session = (request: ApiRequest): Extract<CookieState, { k: 'session' }> | null => {
    const state = readCookie(request);
    return state?.k === 'session' ? state : null;
  };
  const disabled = (): ApiResponse | null =>
    publicUrl === null || links === null || identity.config.oidc === null
      ? html(
          404,
          messagePage(
            'Links are off',
            'This gateway does not serve approval links (approvals.publicUrl and identity.oidc are needed).',
          ),
        )
      : null;
  /** The verified link of a request, or the refusal page. */
  const verifiedLink = (
    id: string,
    fields: URLSearchParams,
  ): { link: ReviewLink; sig: string } | ApiResponse => {
    const read = readReviewLink(id, fields);
    if (read === null) return html(403, linkRefusedPage('malformed'));
    const refusal = links!.verify(read.link, read.sig, now());
    return refusal === null ? read : html(403, linkRefusedPage(refusal));
  };
  const notPending = (id: string): ApiResponse =>
    html(
      404,
      messagePage(
        'Nothing to decide',
        `Approval ${id} is not waiting for a decision: it was decided, it expired or it was withdrawn.`,
      ),
    );

  const reviewUrl = (link: ReviewLink): string => links!.url(publicUrl!, link);

  async function showReview(request: ApiRequest): Promise<ApiResponse> {
    const off = disabled();
    if (off !== null) return off;
    const id = request.params['id'] ?? '';
    const verified = verifiedLink(id, request.query);
    if ('status' in verified) return verified;
    const { link, sig } = verified;
    const approval = await broker.get(id);
    if (approval === undefined) return notPending(id);
    const person = session(request);
    if (person !== null) {
      return html(
        200,
        reviewPage(approval, link.verdict, {
          kind: 'confirm',
          person: person.person,
          csrf: person.csrf,
          exp: link.exp,
          sig,
        }),
      );
    }
    const config = identity.config.oidc!;
    let login;
    try {
      login = await (
        await oidc()
      ).startRedirectLogin({
        redirectUri: callbackUrl,
        // A page login needs no refresh token.
        scope: config.scopes.filter((s) => s !== 'offline_access').join(' '),
        ...(config.resource === null ? {} : { resource: config.resource }),
      });
    } catch (err) {
      logger.warn({ reason: failureReason(err) }, 'approval page: the IdP could not be reached');
      return html(503, reviewPage(approval, link.verdict, { kind: 'unavailable' }));
    }
    const cookie = setCookie({
      k: 'login',
      state: login.state,
      nonce: login.nonce,
      verifier: login.verifier,
      back: { ...link, sig },
      exp: now() + LOGIN_MS,
    });
    const action: ReviewAction = {
      kind: 'login',
      authorizationUrl: login.authorizationUrl.href,
    };
    return html(200, reviewPage(approval, link.verdict, action), cookie);
  }

  async function callback(request: ApiRequest): Promise<ApiResponse> {
    const off = disabled();
    if (off !== null) return off;
    const state = readCookie(request);
    if (state?.k !== 'login') {
      return html(
        400,
        messagePage(
          'Login not recognised',
          'This login was not started here or took too long. Open the approval link again.',
        ),
      );
    }
    if (request.query.get('error') !== null) {
      return html(
        403,
        messagePage(
          'Login failed',
          'The identity provider did not log you in. Open the link again to retry.',
        ),
      );
    }
    let person: Person;
    try {
      const tokens = await (
        await oidc()
      ).finishRedirectLogin(new URL(`${callbackUrl}?${request.query.toString()}`), state);
      person = await personOf(tokens.accessToken, tokens.idToken);
    } catch (err) {
      const reason = failureReason(err);
      logger.warn({ reason }, 'approval page: login failed');
      return reason === 'idp-unreachable'
        ? html(503, messagePage('Try again', 'The identity provider did not answer. Retry.'))
        : html(
            403,
            messagePage('Login failed', 'The login could not be completed. Open the link again.'),
          );
    }
    const cookie = setCookie({
      k: 'session',
      person,
      csrf: randomBytes(24).toString('base64url'),
      exp: now() + SESSION_MS,
    });
    return {
      status: 303,
      headers: { location: reviewUrl(state.back), 'set-cookie': cookie, ...PAGE_HEADERS },
      text: '',
      contentType: 'text/plain',
    };
  }

  /** The person a token names, with the checks of the token endpoint (access token first). */
  async function personOf(accessToken: string, idToken: string | undefined): Promise<Person> {
    try {
      return await identity.verifyPersonToken(accessToken);
    } catch (err) {
      if (idToken === undefined) throw err;
      return identity.verifyPersonToken(idToken);
    }
  }

  async function decide(request: ApiRequest): Promise<ApiResponse> {
    const off = disabled();
    if (off !== null) return off;
    const id = request.params['id'] ?? '';
    // A form posted from another site never carries the cookie (SameSite=Lax); check its origin too.
    const origin = request.headers.get('origin');
    if (origin !== undefined && origin !== 'null' && origin !== base!.origin) {
      return html(403, messagePage('Refused', 'This form was not sent from the approval page.'));
    }
    if (!/^application\/x-www-form-urlencoded\b/i.test(request.headers.get('content-type') ?? '')) {
      return html(400, messagePage('Refused', 'Send the form from the approval page.'));
    }
    const form = new URLSearchParams(request.body.toString('utf8'));
    const verified = verifiedLink(id, form);
    if ('status' in verified) return verified;
    const { link, sig } = verified;
    const who = session(request);
    const csrf = Buffer.from(form.get('csrf') ?? '');
    if (
      who === null ||
      csrf.length !== who.csrf.length ||
      !timingSafeEqual(csrf, Buffer.from(who.csrf))
    ) {
      return html(
        403,
        messagePage(
          'Sign in again',
          'Your sign-in has expired or this form is stale. Open the approval link again.',
        ),
      );
    }
    const decision = form.get('decision') ?? link.verdict;
    if (decision !== 'approve' && decision !== 'deny') {
      return html(400, messagePage('Refused', 'Choose approve or deny.'));
    }
    if (!allows(link.verdict, decision)) {
      return html(403, messagePage('Refused', `This link does not let you ${decision}.`));
    }
    const reason = (form.get('reason') ?? '').trim();
    const retry = async (error: string): Promise<ApiResponse> => {
      const approval = await broker.get(id);
      if (approval === undefined) return notPending(id);
      return html(
        400,
        reviewPage(approval, link.verdict, {
          kind: 'confirm',
          person: who.person,
          csrf: who.csrf,
          exp: link.exp,
          sig,
          error,
        }),
      );
    };
    if (reason.length > MAX_REASON_CHARS) {
      return retry(`The reason is longer than ${MAX_REASON_CHARS} characters.`);
    }
    if (decision === 'deny' && reason === '') return retry('A denial needs a reason.');
    const result = await broker.decide(id, who.person, decision, reason);
    if (!result.ok) {
      const status = { unknown: 404, forbidden: 403, decided: 409 }[result.reason];
      return html(status, messagePage('Not decided', result.message));
    }
    logger.info(
      { id, by: who.person.subject, decision, via: 'review-page' },
      'approval decided from a review link',
    );
    const state = decision === 'deny' ? 'denied' : result.settled ? 'granted' : 'pending';
    return html(200, decidedPage(decision, state, result.request));
  }

  return [
    { method: 'GET', path: '/v1/approvals/:id/review', handle: showReview },
    { method: 'POST', path: '/v1/approvals/:id/review', handle: decide },
    { method: 'GET', path: '/v1/approvals/callback', handle: callback },
  ];
}

function allows(verdict: LinkVerdict, decision: 'approve' | 'deny'): boolean {
  return verdict === 'view' || verdict === decision;
}

/** A failure's reason code for logs: never a token, code or message from the IdP. */
function failureReason(err: unknown): string {
  if (isIdentityError(err)) {
    const e = err as IdentityError;
    return e.code === 'PCL_ERR_IDENTITY_IDP_UNREACHABLE' ? 'idp-unreachable' : e.reason;
  }
  return 'error';
}

/**
 * The review page routes for this gateway's configuration: the link key is read (or made) in
 * dataDir when links are on (`approvals.publicUrl` and `identity.oidc`).
 */
export async function openApprovalPages(
  config: GatewayConfig,
  broker: ApprovalDecisions,
  identity: GatewayIdentity,
  logger: Logger,
): Promise<ApiRoute[]> {
  const { publicUrl } = config.approvals;
  const on = publicUrl !== null && identity.config.oidc !== null;
  return approvalPageRoutes({
    publicUrl,
    links: on ? new ApprovalLinkSigner(await loadLinkKey(config.dataDir)) : null,
    broker,
    identity,
    logger,
  });
}
