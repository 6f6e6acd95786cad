import type { Person } from '@portcullis/core';
import type { AccessNotice } from '../approvals/approval-messages.js';
import type { GatewayConfig } from '../config/load-config.js';
import {
  errorResponse,
  jsonBody,
  type ApiRequest,
  type ApiResponse,
  type ApiRoute,
} from '../http/http-server.js';
import { bearerPerson } from '../http/bearer-person.js';
import type { GatewayIdentity } from '../identity/gateway-identity.js';
import { groupsMayUse } from '../identity/resource-access.js';
import { StateDbUnavailable } from '../state/state-db.js';
import {
  checkNewRequest,
  grantActive,
  MAX_ACCESS_REASON_CHARS,
  type AccessGrant,
  type AccessPolicy,
  type AccessRefusal,
  type AccessRequest,
} from './access-rules.js';
import { accessDecidedNotice, accessRequestedNotice } from './access-notices.js';
import type { AccessStore } from './access-store.js';

const STATUS: Readonly<Record<AccessRefusal['code'], number>> = {
  invalid_request: 400,
  not_requestable: 400,
  too_long: 400,
  agent: 403,
  requester: 403,
  not_approver: 403,
  not_allowed: 403,
  not_found: 404,
  standing_access: 409,
  already_pending: 409,
  too_many_pending: 409,
  already_approved: 409,
  already_decided: 409,
  expired: 409,
  grant_ended: 409,
};

function refused(refusal: AccessRefusal): ApiResponse {
  return errorResponse(STATUS[refusal.code], refusal.code, refusal.message);
}

const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());

/** A grant as the API shows it. */
export function grantJson(g: AccessGrant, now: number) {
  return {
    id: g.id,
    requestId: g.requestId,
    resource: g.resource,
    grantee: g.grantee,
    approvers: g.approvers,
    reason: g.reason,
    state: grantActive(g, now) ? 'active' : g.revokedAt === null ? 'ended' : 'revoked',
    startsAt: iso(g.startsAt),
    endsAt: iso(g.endsAt),
    revokedAt: iso(g.revokedAt),
    revokedBy: g.revokedBy,
    revokeReason: g.revokeReason === '' ? null : g.revokeReason,
  };
}

/** A request as the API shows it (with its grant once approved). */
export function requestJson(r: AccessRequest, grant: AccessGrant | null, now: number) {
  return {
    id: r.id,
    resource: r.resource,
    requester: r.requester,
    minutes: r.durationMs / 60_000,
    reason: r.reason,
    state: r.state,
    requestedAt: iso(r.requestedAt),
    expiresAt: iso(r.expiresAt),
    approvals: r.approvals,
    approvalsNeeded: r.approvalsNeeded,
    decidedAt: iso(r.decidedAt),
    deniedBy: r.deniedBy,
    decisionReason: r.decisionReason === '' ? null : r.decisionReason,
    grant: grant === null ? null : grantJson(grant, now),
  };
}

/** What the access endpoints need from the gateway. */
export interface AccessRoutesDeps {
  /** The store, opened on first use. */
  readonly store: () => Promise<AccessStore>;
  readonly identity: GatewayIdentity;
  readonly config: Pick<GatewayConfig, 'resources' | 'tokens' | 'identity' | 'approvals'>;
  /** Tells approvers' webhooks of requests and decisions; absent when none are configured. */
  readonly notify?: (notice: AccessNotice) => void;
}

/**
 * The access-request endpoints: a person asks for time-boxed access to a resource, approvers
 * list, approve and deny requests, and grants are listed and ended early. The Bearer token is a
 * person's gateway credential; agents are refused (they neither ask nor decide).
 */
export function accessRoutes(deps: AccessRoutesDeps): ApiRoute[] {
  const { identity, config } = deps;

  const policyFor = (resource: string): AccessPolicy | null =>
    Object.hasOwn(config.resources, resource)
      ? (config.resources[resource]!.accessRequests ?? null)
      : null;

  /** Standing access: the person's groups (identity.groupAccess) or a static token of theirs. */
  const standingAccess = (person: Person, resource: string): boolean =>
    groupsMayUse(config.identity?.groupAccess ?? [], person.groups, resource) ||
    Object.values(config.tokens).some(
      (t) =>
        t.person.subject === person.subject &&
        (t.resources === null || t.resources.includes(resource)),
    );

  /** Resources on which `person` is an approver. */
  const approverOf = (person: Person): string[] =>
    Object.values(config.resources)
      .filter((r) => r.accessRequests?.groups.some((g) => person.groups.includes(g)) === true)
      .map((r) => r.name);

  /** Only a person's own login asks or decides: agents and their delegated credentials do not. */
  const requestPerson = (request: ApiRequest): Promise<Person | ApiResponse> =>
    bearerPerson(request, identity.verifier, {
      isPerson: (verified) => verified.agent === null && verified.authMethod === 'oidc',
      notPerson: () =>
        refused({ code: 'agent', message: 'only a person may ask for or decide on access' }),
    });

  /** The JSON object body ({} when empty), or the answer refusing it. */
  function body(
    request: ApiRequest,
  ): { ok: true; value: Record<string, unknown> } | { ok: false; response: ApiResponse } {
    if (request.body.length === 0) return { ok: true, value: {} };
    const parsed = jsonBody(request);
    if (!parsed.ok) return parsed;
    const value = parsed.value;
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      return { ok: false, response: errorResponse(400, 'invalid_request', 'send a JSON object') };
    }
    return { ok: true, value: value as Record<string, unknown> };
  }

  function optionalReason(input: Record<string, unknown>): string | ApiResponse {
    const value = input['reason'];
    if (value !== undefined && typeof value !== 'string') {
      return errorResponse(400, 'invalid_request', 'reason must be a string');
    }
    const reason = (value ?? '').trim();
    if (reason.length > MAX_ACCESS_REASON_CHARS) {
      return errorResponse(
        400,
        'invalid_request',
        `reason is longer than ${MAX_ACCESS_REASON_CHARS} characters`,
      );
    }
    return reason;
  }

  /** Runs a handler; a state database that cannot be reached is a 503, not a 500. */
  const guarded =
    (handle: (request: ApiRequest) => Promise<ApiResponse>) =>
    async (request: ApiRequest): Promise<ApiResponse> => {
      try {
        return await handle(request);
      } catch (err) {
        if (err instanceof StateDbUnavailable) {
          return errorResponse(
            503,
            'state_unavailable',
            'the gateway cannot reach its state database; try again shortly',
          );
        }
        throw err;
      }
    };

  const decide = (verdict: 'approve' | 'deny') =>
    guarded(async (request) => {
      const person = await requestPerson(request);
      if ('status' in person) return person;
      const parsed = body(request);
      if (!parsed.ok) return parsed.response;
      const reason = optionalReason(parsed.value);
      if (typeof reason !== 'string') return reason;
      if (verdict === 'deny' && reason === '') {
        return errorResponse(400, 'invalid_request', 'a denial needs a reason');
      }
      const store = await deps.store();
      const result = await store.decide(
        request.params['id'] ?? '',
        person,
        verdict,
        reason,
        policyFor,
      );
      if (!result.ok) return refused(result.refusal);
      const policy = policyFor(result.request.resource);
      const notice =
        policy === null
          ? null
          : accessDecidedNotice(result.request, policy, result.grant, store.now());
      if (notice !== null) deps.notify?.(notice);
      return { status: 200, json: requestJson(result.request, result.grant, store.now()) };
    });

  return [
    {
      method: 'POST',
      path: '/v1/access-requests',
      handle: guarded(async (request) => {
        const person = await requestPerson(request);
        if ('status' in person) return person;
        const parsed = body(request);
        if (!parsed.ok) return parsed.response;
        const input = parsed.value;
        const resource = input['resource'];
        if (typeof resource !== 'string' || resource === '') {
          return errorResponse(
            400,
            'invalid_request',
            'send {"resource": name, "minutes": n, "reason": text}',
          );
        }
        if (!Object.hasOwn(config.resources, resource)) {
          return errorResponse(404, 'unknown_resource', `no resource named "${resource}"`);
        }
        const policy = policyFor(resource);
        const checked = checkNewRequest({
          person,
          agent: false,
          resource,
          policy,
          standingAccess: standingAccess(person, resource),
          minutes: input['minutes'],
          reason: input['reason'],
        });
        if (!checked.ok) return refused(checked.refusal);
        const store = await deps.store();
        const created = await store.createRequest({
          resource,
          requester: { subject: person.subject, email: person.email },
          durationMs: checked.durationMs,
          reason: checked.reason,
          policy: policy!,
          maxPendingPerPerson: config.approvals.maxPendingPerPerson,
        });
        if (!created.ok) return refused(created.refusal);
        deps.notify?.(accessRequestedNotice(created.request, policy!, store.now()));
        return { status: 201, json: requestJson(created.request, null, store.now()) };
      }),
    },
    {
      method: 'GET',
      path: '/v1/access-requests',
      handle: guarded(async (request) => {
        const person = await requestPerson(request);
        if ('status' in person) return person;
        const store = await deps.store();
        const now = store.now();
        const mine = await store.requestsBy(person.subject);
        const grants = new Map(
          (await store.grants(mine.flatMap((r) => (r.grantId === null ? [] : [r.grantId])))).map(
            (g) => [g.id, g],
          ),
        );
        const toDecide = (await store.pendingOn(approverOf(person))).filter(
          (r) =>
            r.requester.subject !== person.subject &&
            !r.approvals.some((a) => a.subject === person.subject),
        );
        return {
          status: 200,
          json: {
            mine: mine.map((r) => requestJson(r, grants.get(r.grantId ?? '') ?? null, now)),
            toDecide: toDecide.map((r) => requestJson(r, null, now)),
          },
        };
      }),
    },
    {
      method: 'GET',
      path: '/v1/access-requests/:id',
      handle: guarded(async (request) => {
        const person = await requestPerson(request);
        if ('status' in person) return person;
        const store = await deps.store();
        const id = request.params['id'] ?? '';
        const found = await store.request(id);
        // Only the requester and the resource's approvers see a request; others get 404 too.
        if (
          found === null ||
          (found.requester.subject !== person.subject &&
            !approverOf(person).includes(found.resource))
        ) {
          return refused({ code: 'not_found', message: `no access request ${id}` });
        }
        const grant = found.grantId === null ? null : await store.grant(found.grantId);
        return { status: 200, json: requestJson(found, grant, store.now()) };
      }),
    },
    { method: 'POST', path: '/v1/access-requests/:id/approve', handle: decide('approve') },
    { method: 'POST', path: '/v1/access-requests/:id/deny', handle: decide('deny') },
    {
      method: 'GET',
      path: '/v1/access-grants',
      handle: guarded(async (request) => {
        const person = await requestPerson(request);
        if ('status' in person) return person;
        const store = await deps.store();
        const includeEnded = request.query.get('all') === 'true';
        const approving = approverOf(person);
        const own = await store.listGrants({ subject: person.subject, includeEnded });
        const others =
          approving.length === 0
            ? []
            : await store.listGrants({ resources: approving, includeEnded });
        const seen = new Set<string>();
        const grants = [...own, ...others].filter((g) => !seen.has(g.id) && seen.add(g.id));
        const now = store.now();
        return { status: 200, json: { grants: grants.map((g) => grantJson(g, now)) } };
      }),
    },
    {
      method: 'DELETE',
      path: '/v1/access-grants/:id',
      handle: guarded(async (request) => {
        const person = await requestPerson(request);
        if ('status' in person) return person;
        // DELETE carries no body here: the reason comes as ?reason=.
        const reason = optionalReason({ reason: request.query.get('reason') ?? undefined });
        if (typeof reason !== 'string') return reason;
        const store = await deps.store();
        const result = await store.endGrant(request.params['id'] ?? '', person, reason, policyFor);
        if (!result.ok) return refused(result.refusal);
        const policy = policyFor(result.grant.resource);
        const granted =
          deps.notify === undefined ? null : await store.request(result.grant.requestId);
        if (policy !== null && granted !== null) {
          const notice = accessDecidedNotice(granted, policy, result.grant, store.now());
          if (notice !== null) deps.notify?.(notice);
        }
        return { status: 200, json: grantJson(result.grant, store.now()) };
      }),
    },
  ];
}
