import type { SessionEvent } from '@portcullis/core';
import type { ChainReport } from '@portcullis/gateway';

/** What `GET /v1/login` says: the IdP and the public client the CLI logs in with. */
export interface LoginInfo {
  readonly issuer: string;
  readonly clientId: string;
  readonly scopes: readonly string[];
  /** RFC 8707 resource indicator to ask the IdP for; null when the gateway names none. */
  readonly resource: string | null;
}

/** A gateway credential from `POST /v1/token`. Secret. */
export interface IssuedGatewayCredential {
  readonly token: string;
  /** Epoch milliseconds. */
  readonly expiresAt: number;
}

/** A delegation as the gateway lists it. */
export interface DelegationView {
  readonly id: string;
  readonly person: { readonly subject: string; readonly email: string };
  readonly agent: string;
  readonly resources: readonly string[];
  readonly reason: string | null;
  readonly createdAt: string;
  readonly expiresAt: string;
  readonly revokedAt: string | null;
}

/** A statement held for approval, as the gateway lists it (see docs/openapi.yaml). */
export interface ApprovalView {
  readonly id: string;
  readonly resource: string;
  readonly statement: { readonly text: string; readonly kind: string; readonly tables: string[] };
  readonly rule: string;
  readonly requester: { readonly email?: string; readonly agent?: string; readonly name?: string };
  readonly onBehalfOf: { readonly subject: string; readonly email: string } | null;
  readonly approvals: readonly { readonly email: string }[];
  readonly approvalsNeeded: number;
  readonly expiresAt: string;
  /** In answers to a decision: pending while more approvals are needed. */
  readonly state?: 'pending' | 'granted' | 'denied';
}

/** A person on an access request or grant. */
export interface AccessPersonView {
  readonly subject: string;
  readonly email: string;
}

/** A time-boxed access grant (see docs/openapi.yaml). */
export interface AccessGrantView {
  readonly id: string;
  readonly requestId: string;
  readonly resource: string;
  readonly grantee: AccessPersonView;
  readonly approvers: readonly AccessPersonView[];
  readonly reason: string;
  readonly state: 'active' | 'ended' | 'revoked';
  readonly startsAt: string;
  readonly endsAt: string;
  readonly revokedAt: string | null;
  readonly revokedBy: AccessPersonView | null;
  readonly revokeReason: string | null;
}

/** A request for time-boxed access (see docs/openapi.yaml). */
export interface AccessRequestView {
  readonly id: string;
  readonly resource: string;
  readonly requester: AccessPersonView;
  readonly minutes: number;
  readonly reason: string;
  readonly state: 'pending' | 'approved' | 'denied' | 'expired';
  readonly requestedAt: string;
  readonly expiresAt: string;
  readonly approvals: readonly AccessPersonView[];
  readonly approvalsNeeded: number;
  readonly decidedAt: string | null;
  readonly deniedBy: AccessPersonView | null;
  readonly decisionReason: string | null;
  readonly grant: AccessGrantView | null;
}

/** A refusal or failure of the gateway's HTTP API, with what the user can do about it. */
export class GatewayApiError extends Error {
  /** HTTP status; 0 when the gateway could not be reached. */
  readonly status: number;
  /** The gateway's error code (`invalid_grant`, `forbidden`, …); `unreachable` without answer. */
  readonly code: string;

  constructor(status: number, code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'GatewayApiError';
    this.status = status;
    this.code = code;
  }
}

const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';

/** Reads `{error: {code, message}}` (the API) or `{error, error_description}` (OAuth). */
function errorOf(json: unknown): { code: string; message: string } | undefined {
  const body = json as Record<string, unknown> | null;
  if (typeof body !== 'object' || body === null) return undefined;
  const error = body['error'];
  if (typeof error === 'string') {
    const description = body['error_description'];
    return { code: error, message: typeof description === 'string' ? description : error };
  }
  if (typeof error === 'object' && error !== null) {
    const { code, message } = error as Record<string, unknown>;
    if (typeof code === 'string' && typeof message === 'string') return { code, message };
  }
  return undefined;
}

/**
 * A client of the gateway's identity endpoints (`/v1/login`, `/v1/token`, `/v1/delegations`).
 * Errors are {@link GatewayApiError}s whose message comes from the gateway or says that it
 * could not be reached; no token is ever part of a message.
 */
export class GatewayApi {
  readonly baseUrl: string;
  readonly #timeoutMs: number;

  /** `baseUrl`: the HTTP API, e.g. `http://127.0.0.1:9090` (a trailing slash is dropped). */
  constructor(baseUrl: string, options: { timeoutMs?: number } = {}) {
    this.baseUrl = baseUrl.replace(/\/+$/, '');
    this.#timeoutMs = options.timeoutMs ?? 15_000;
  }

  async #request(
    method: string,
    path: string,
    options: { body?: unknown; bearer?: string } = {},
  ): Promise<unknown> {
    let response: Response;
    try {
      response = await fetch(`${this.baseUrl}${path}`, {
        method,
        headers: {
          accept: 'application/json',
          ...(options.body === undefined ? {} : { 'content-type': 'application/json' }),
          ...(options.bearer === undefined ? {} : { authorization: `Bearer ${options.bearer}` }),
        },
        ...(options.body === undefined ? {} : { body: JSON.stringify(options.body) }),
        signal: AbortSignal.timeout(this.#timeoutMs),
      });
    } catch (err) {
      const timedOut = (err as Error).name === 'TimeoutError';
      throw new GatewayApiError(
        0,
        'unreachable',
        timedOut
          ? `the gateway at ${this.baseUrl} did not answer within ${this.#timeoutMs / 1000} s`
          : `cannot reach the gateway at ${this.baseUrl} (is it running, and is this its HTTP API address?)`,
        { cause: err },
      );
    }
    const text = await response.text();
    let json: unknown;
    try {
      json = text === '' ? null : JSON.parse(text);
    } catch {
      json = undefined;
    }
    if (response.ok && json !== undefined) return json;
    const error = errorOf(json);
    if (error !== undefined) throw new GatewayApiError(response.status, error.code, error.message);
    throw new GatewayApiError(
      response.status,
      'bad_response',
      `the gateway at ${this.baseUrl} answered ${method} ${path} with HTTP ${response.status} and no usable body (is this the gateway's HTTP API?)`,
    );
  }

  /** `GET /v1/login`: which IdP and client to log in with. */
  async loginInfo(): Promise<LoginInfo> {
    const json = (await this.#request('GET', '/v1/login')) as Record<string, unknown> | null;
    const issuer = json?.['issuer'];
    const clientId = json?.['clientId'];
    const scopes = json?.['scopes'];
    const resource = json?.['resource'];
    if (
      typeof issuer !== 'string' ||
      typeof clientId !== 'string' ||
      !Array.isArray(scopes) ||
      !scopes.every((s) => typeof s === 'string') ||
      (resource !== null && resource !== undefined && typeof resource !== 'string')
    ) {
      throw new GatewayApiError(
        200,
        'bad_response',
        `${this.baseUrl}/v1/login did not describe an IdP`,
      );
    }
    return { issuer, clientId, scopes: scopes as string[], resource: (resource as string) ?? null };
  }

  async #token(params: Record<string, string>): Promise<IssuedGatewayCredential> {
    const requestedAt = Date.now();
    const json = (await this.#request('POST', '/v1/token', {
      body: { grant_type: TOKEN_EXCHANGE, ...params },
    })) as Record<string, unknown> | null;
    const token = json?.['access_token'];
    const expiresIn = json?.['expires_in'];
    if (typeof token !== 'string' || typeof expiresIn !== 'number') {
      throw new GatewayApiError(
        200,
        'bad_response',
        'the token endpoint answered without a credential',
      );
    }
    return { token, expiresAt: requestedAt + expiresIn * 1000 };
  }

  /** A person's IdP access token → their gateway credential. */
  exchangePersonToken(idpAccessToken: string): Promise<IssuedGatewayCredential> {
    return this.#token({ subject_token: idpAccessToken });
  }

  /** An agent's own IdP token and a person's delegation → a credential for `resource`. */
  exchangeAgentToken(input: {
    agentToken: string;
    delegationId: string;
    resource: string;
  }): Promise<IssuedGatewayCredential> {
    return this.#token({
      actor_token: input.agentToken,
      delegation_id: input.delegationId,
      resource: input.resource,
    });
  }

  /** Creates a delegation from the person behind `bearer` to an agent. */
  async createDelegation(
    bearer: string,
    input: { agent: string; resources: readonly string[]; ttlMs: number; reason?: string },
  ): Promise<DelegationView> {
    return (await this.#request('POST', '/v1/delegations', {
      bearer,
      body: {
        agent: input.agent,
        resources: input.resources,
        ttlSeconds: Math.round(input.ttlMs / 1000),
        ...(input.reason === undefined ? {} : { reason: input.reason }),
      },
    })) as DelegationView;
  }

  /** The delegations of the person behind `bearer`; ended ones too with `all`. */
  async listDelegations(
    bearer: string,
    options: { all?: boolean } = {},
  ): Promise<DelegationView[]> {
    const json = (await this.#request(
      'GET',
      `/v1/delegations${options.all === true ? '?all=true' : ''}`,
      { bearer },
    )) as { delegations?: DelegationView[] } | null;
    return json?.delegations ?? [];
  }

  /** Revokes one of the delegations of the person behind `bearer`. */
  async revokeDelegation(bearer: string, id: string): Promise<DelegationView> {
    return (await this.#request('DELETE', `/v1/delegations/${encodeURIComponent(id)}`, {
      bearer,
    })) as DelegationView;
  }

  /** `GET /v1/approvals`: held statements `bearer`'s person may decide. */
  async listApprovals(bearer: string): Promise<ApprovalView[]> {
    const json = (await this.#request('GET', '/v1/approvals', { bearer })) as {
      approvals?: ApprovalView[];
    } | null;
    return json?.approvals ?? [];
  }

  /** `POST /v1/approvals/:id/approve|deny`: decide a held statement. */
  async decideApproval(
    bearer: string,
    id: string,
    verdict: 'approve' | 'deny',
    reason: string | undefined,
  ): Promise<ApprovalView> {
    return (await this.#request('POST', `/v1/approvals/${encodeURIComponent(id)}/${verdict}`, {
      bearer,
      body: reason === undefined ? {} : { reason },
    })) as ApprovalView;
  }

  /** `POST /v1/access-requests`: ask for time-boxed access. */
  async requestAccess(
    bearer: string,
    input: { resource: string; minutes: number; reason: string },
  ): Promise<AccessRequestView> {
    return (await this.#request('POST', '/v1/access-requests', {
      bearer,
      body: input,
    })) as AccessRequestView;
  }

  /** `GET /v1/access-requests/:id`. */
  async accessRequest(bearer: string, id: string): Promise<AccessRequestView> {
    return (await this.#request('GET', `/v1/access-requests/${encodeURIComponent(id)}`, {
      bearer,
    })) as AccessRequestView;
  }

  /** `GET /v1/access-requests`: mine, and those waiting for my decision. */
  async listAccessRequests(
    bearer: string,
  ): Promise<{ mine: AccessRequestView[]; toDecide: AccessRequestView[] }> {
    const json = (await this.#request('GET', '/v1/access-requests', { bearer })) as {
      mine?: AccessRequestView[];
      toDecide?: AccessRequestView[];
    } | null;
    return { mine: json?.mine ?? [], toDecide: json?.toDecide ?? [] };
  }

  /** `POST /v1/access-requests/:id/approve|deny`. */
  async decideAccessRequest(
    bearer: string,
    id: string,
    verdict: 'approve' | 'deny',
    reason: string | undefined,
  ): Promise<AccessRequestView> {
    return (await this.#request(
      'POST',
      `/v1/access-requests/${encodeURIComponent(id)}/${verdict}`,
      { bearer, body: reason === undefined ? {} : { reason } },
    )) as AccessRequestView;
  }

  /** `GET /v1/reviews/:report`: a review's rows, as the store returns them. */
  async review(
    bearer: string,
    report: string,
    params: { readonly days: number; readonly person?: string | undefined },
  ): Promise<Record<string, unknown>[]> {
    const query = new URLSearchParams({ days: String(params.days) });
    if (params.person !== undefined) query.set('person', params.person);
    const json = (await this.#request('GET', `/v1/reviews/${encodeURIComponent(report)}?${query}`, {
      bearer,
    })) as { rows?: Record<string, unknown>[] } | null;
    return json?.rows ?? [];
  }

  /** `GET /v1/events`: the last `last` stored events matching the filters, oldest first. */
  async storedEvents(
    bearer: string,
    filters: {
      readonly sessionPrefix?: string | undefined;
      readonly type?: string | undefined;
      readonly person?: string | undefined;
      readonly last: number;
    },
  ): Promise<SessionEvent[]> {
    const query = new URLSearchParams({ last: String(filters.last) });
    if (filters.sessionPrefix !== undefined) query.set('session', filters.sessionPrefix);
    if (filters.type !== undefined) query.set('type', filters.type);
    if (filters.person !== undefined) query.set('person', filters.person);
    const json = (await this.#request('GET', `/v1/events?${query}`, { bearer })) as {
      events?: SessionEvent[];
    } | null;
    return json?.events ?? [];
  }

  /** `GET /v1/events/verify`: the hash-chain report of the stored sessions. */
  async verifyChains(
    bearer: string,
    scope: { readonly sessionPrefix?: string | undefined; readonly since?: Date | undefined },
  ): Promise<ChainReport> {
    const query = new URLSearchParams();
    if (scope.sessionPrefix !== undefined) query.set('session', scope.sessionPrefix);
    if (scope.since !== undefined) query.set('since', scope.since.toISOString());
    const json = (await this.#request('GET', `/v1/events/verify?${query}`, {
      bearer,
    })) as Partial<ChainReport> | null;
    if (
      typeof json?.sessions !== 'number' ||
      typeof json.events !== 'number' ||
      !Array.isArray(json.issues)
    ) {
      throw new GatewayApiError(
        200,
        'bad_response',
        `${this.baseUrl} answered without a chain report`,
      );
    }
    return json as ChainReport;
  }

  /** `GET /v1/access-grants`: running grants (ended ones too with `all`). */
  async listAccessGrants(
    bearer: string,
    options: { all?: boolean } = {},
  ): Promise<AccessGrantView[]> {
    const json = (await this.#request(
      'GET',
      `/v1/access-grants${options.all === true ? '?all=true' : ''}`,
      { bearer },
    )) as { grants?: AccessGrantView[] } | null;
    return json?.grants ?? [];
  }

  /** `DELETE /v1/access-grants/:id`: end a grant early. */
  async endAccessGrant(
    bearer: string,
    id: string,
    reason: string | undefined,
  ): Promise<AccessGrantView> {
    const query = reason === undefined ? '' : `?reason=${encodeURIComponent(reason)}`;
    return (await this.#request('DELETE', `/v1/access-grants/${encodeURIComponent(id)}${query}`, {
      bearer,
    })) as AccessGrantView;
  }
}
