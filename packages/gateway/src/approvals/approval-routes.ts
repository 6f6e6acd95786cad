import type { Person } from '@portcullis/core';
import {
  errorResponse,
  jsonBody,
  type ApiRequest,
  type ApiResponse,
  type ApiRoute,
} from '../http/http-server.js';
import { bearerPerson } from '../http/bearer-person.js';
import type { GatewayIdentity } from '../identity/gateway-identity.js';
import { StateDbUnavailable } from '../state/state-db.js';
import type { ApprovalBroker, PendingApproval } from './approval-broker.js';

/** Longest reason accepted with a decision. */
const MAX_REASON_CHARS = 1000;

/** A pending request as the API shows it. */
function approvalJson(p: PendingApproval) {
  const { subject, policy } = p;
  return {
    id: p.id,
    resource: subject.resource,
    sessionId: subject.sessionId,
    statement: { text: subject.text, kind: subject.kind, tables: subject.tables },
    rule: subject.rule,
    message: subject.message,
    requester:
      subject.agent === null
        ? { subject: subject.person.subject, email: subject.person.email }
        : { agent: subject.agent.id, name: subject.agent.name },
    onBehalfOf:
      subject.agent === null
        ? null
        : { subject: subject.person.subject, email: subject.person.email },
    approvals: p.approvals,
    approvalsNeeded: policy.count,
    requestedAt: new Date(p.requestedAt).toISOString(),
    expiresAt: new Date(p.expiresAt).toISOString(),
  };
}

/** The store is away: 503, so a client retries (any other failure is the server's fault). */
function storeUnavailable(err: unknown): ApiResponse {
  if (!(err instanceof StateDbUnavailable)) throw err;
  return errorResponse(
    503,
    'unavailable',
    'the approval state database is unreachable; try again shortly',
  );
}

/**
 * The approval endpoints: list the held statements the Bearer person may decide, approve one,
 * deny one with a reason. They read and write the shared store, so any gateway's API decides
 * statements held by any other. The Bearer token is a person's gateway credential (an agent's is
 * refused: agents never approve).
 */
export function approvalRoutes(broker: ApprovalBroker, identity: GatewayIdentity): ApiRoute[] {
  const requestPerson = (request: ApiRequest): Promise<Person | ApiResponse> =>
    bearerPerson(request, identity.verifier, {
      notPerson: () =>
        errorResponse(403, 'forbidden', 'only a person may decide on held statements'),
    });

  const decide = (verdict: 'approve' | 'deny') => async (request: ApiRequest) => {
    const person = await requestPerson(request);
    if ('status' in person) return person;
    let reason = '';
    if (request.body.length > 0) {
      const body = jsonBody(request);
      if (!body.ok) return body.response;
      const value = (body.value as { reason?: unknown } | null)?.reason;
      if (value !== undefined && typeof value !== 'string') {
        return errorResponse(400, 'invalid_request', 'reason must be a string');
      }
      reason = (value ?? '').trim();
    }
    if (reason.length > MAX_REASON_CHARS) {
      return errorResponse(
        400,
        'invalid_request',
        `reason is longer than ${MAX_REASON_CHARS} characters`,
      );
    }
    if (verdict === 'deny' && reason === '') {
      return errorResponse(400, 'invalid_request', 'a denial needs a reason');
    }
    const id = request.params['id'] ?? '';
    const result = await broker.decide(id, person, verdict, reason).catch(storeUnavailable);
    if ('status' in result) return result;
    if (!result.ok) {
      const status = { unknown: 404, forbidden: 403, decided: 409 }[result.reason];
      const code = { unknown: 'not_found', forbidden: 'forbidden', decided: 'already_decided' }[
        result.reason
      ];
      return errorResponse(status, code, result.message);
    }
    const state = verdict === 'deny' ? 'denied' : result.settled ? 'granted' : 'pending';
    return { status: 200, json: { ...approvalJson(result.request), state } };
  };

  return [
    {
      method: 'GET',
      path: '/v1/approvals',
      handle: async (request) => {
        const person = await requestPerson(request);
        if ('status' in person) return person;
        const pending = await broker.pendingFor(person).catch(storeUnavailable);
        if ('status' in pending) return pending;
        return { status: 200, json: { approvals: pending.map(approvalJson) } };
      },
    },
    { method: 'POST', path: '/v1/approvals/:id/approve', handle: decide('approve') },
    { method: 'POST', path: '/v1/approvals/:id/deny', handle: decide('deny') },
  ];
}
