import type { Person } from '@portcullis/core';
import { isIdentityError, type Delegation, type IdentityError } from '@portcullis/identity';
import {
  errorResponse,
  jsonBody,
  type ApiRequest,
  type ApiResponse,
  type ApiRoute,
} from '../http/http-server.js';
import { looksLikeCredential, type GatewayIdentity } from './gateway-identity.js';
import { groupsMayUse } from './resource-access.js';

const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const JWT_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:jwt';

/** An OAuth 2.0 error body (RFC 6749 §5.2), as token clients expect from a token endpoint. */
function oauthError(status: number, error: string, description: string): ApiResponse {
  return { status, json: { error, error_description: description } };
}

function text(value: unknown): string | null {
  return typeof value === 'string' && value !== '' ? value : null;
}

/** An IdP or credential failure as an HTTP answer; no token or detail beyond the reason code. */
function identityFailure(err: unknown, oauth: boolean): ApiResponse {
  if (isIdentityError(err)) {
    const e = err as IdentityError;
    if (e.code === 'PCL_ERR_IDENTITY_IDP_UNREACHABLE') {
      return oauth
        ? oauthError(503, 'temporarily_unavailable', 'the identity provider did not answer; retry')
        : errorResponse(503, 'idp_unreachable', 'the identity provider did not answer; retry');
    }
    if (e.code === 'PCL_ERR_IDENTITY_DELEGATION_REFUSED') {
      return oauth
        ? oauthError(403, 'access_denied', e.message)
        : errorResponse(403, 'delegation_refused', e.message);
    }
    if (e.code === 'PCL_ERR_IDENTITY_DELEGATION_INVALID') {
      return oauth
        ? oauthError(400, 'invalid_request', e.message)
        : errorResponse(400, 'invalid_delegation', e.message);
    }
    const description = `the token was refused (${e.reason})`;
    return oauth
      ? oauthError(401, 'invalid_grant', description)
      : errorResponse(401, 'invalid_token', description);
  }
  throw err;
}

/**
 * The identity endpoints: the public keys of gateway credentials, what the CLI needs to log in,
 * the RFC 8693-shaped token endpoint (a person's IdP token → their gateway credential; an
 * agent's IdP token plus a person's delegation → a credential naming the person and the agent;
 * an agent's token alone → the agent as itself, where configured), and delegations (create,
 * list, revoke) for the person authenticated by the Bearer token.
 */
export function identityRoutes(
  identity: GatewayIdentity,
  resourceNames: () => string[],
  /** A running access grant lets a person delegate a resource their groups do not reach. */
  granted?: (person: Person, resource: string) => Promise<boolean>,
): ApiRoute[] {
  const issuer = identity.issuer!;
  const delegations = identity.delegations!;

  /** The person behind a Bearer token: their gateway credential (not an agent's) or IdP token. */
  async function bearerPerson(request: ApiRequest): Promise<Person | ApiResponse> {
    const header = request.headers.get('authorization') ?? '';
    const match = /^Bearer\s+(\S+)$/i.exec(header);
    if (match === null) {
      return {
        ...errorResponse(401, 'unauthorized', 'send your credential as Authorization: Bearer …'),
        headers: { 'www-authenticate': 'Bearer' },
      };
    }
    const token = match[1]!;
    try {
      const own = await identity.verifier.verify(token).catch(() => null);
      if (own !== null) {
        if (own.authMethod !== 'oidc' || own.agent !== null) {
          return errorResponse(403, 'forbidden', 'only a person may manage their delegations');
        }
        return own.person;
      }
      if (!looksLikeCredential(token)) {
        return errorResponse(401, 'invalid_token', 'the token was refused (malformed)');
      }
      return await identity.verifyPersonToken(token);
    } catch (err) {
      return identityFailure(err, false);
    }
  }

  const issued = (credential: { token: string; expiresAt: number }): ApiResponse => ({
    status: 200,
    json: {
      access_token: credential.token,
      issued_token_type: JWT_TOKEN_TYPE,
      token_type: 'N_A',
      expires_in: Math.max(0, Math.floor((credential.expiresAt - Date.now()) / 1000)),
    },
    headers: { pragma: 'no-cache' },
  });

  const delegationJson = (d: Delegation) => ({
    id: d.id,
    person: { subject: d.person.subject, email: d.person.email },
    agent: d.agentId,
    resources: d.resources,
    reason: d.reason ?? null,
    createdAt: new Date(d.createdAt).toISOString(),
    expiresAt: new Date(d.expiresAt).toISOString(),
    revokedAt: d.revokedAt === undefined ? null : new Date(d.revokedAt).toISOString(),
  });

  return [
    {
      method: 'GET',
      path: '/.well-known/jwks.json',
      handle: () => ({ status: 200, json: identity.keys.jwks() }),
    },
    {
      method: 'GET',
      path: '/v1/login',
      handle: () => {
        const oidc = identity.config.oidc;
        if (oidc === null) {
          return errorResponse(404, 'no_login', 'this gateway has no OIDC provider configured');
        }
        return {
          status: 200,
          json: {
            issuer: oidc.issuer,
            clientId: oidc.clientId,
            scopes: oidc.scopes,
            resource: oidc.resource,
          },
        };
      },
    },
    {
      method: 'POST',
      path: '/v1/token',
      handle: async (request) => {
        const body = jsonBody(request, true);
        if (!body.ok) return body.response;
        const params = (body.value ?? {}) as Record<string, unknown>;
        if (params['grant_type'] !== TOKEN_EXCHANGE) {
          return oauthError(400, 'unsupported_grant_type', `grant_type must be ${TOKEN_EXCHANGE}`);
        }
        const actorToken = text(params['actor_token']);
        const subjectToken = text(params['subject_token']);
        const resource = text(params['resource']);
        try {
          if (actorToken !== null) {
            if (resource === null) {
              return oauthError(400, 'invalid_request', 'an agent must name the resource');
            }
            const agentIdentity = await identity.verifyAgentToken(actorToken);
            const agent = identity.agent(agentIdentity.id);
            if (agent === null) {
              return oauthError(403, 'access_denied', 'this agent is not known to the gateway');
            }
            const delegationId = text(params['delegation_id']);
            const personSubject = text(params['subject']);
            if (delegationId === null && personSubject === null) {
              if (!agent.ownResources.includes(resource)) {
                return oauthError(
                  403,
                  'access_denied',
                  `agent ${agent.id} may use ${resource} only for a person who delegated it`,
                );
              }
              return issued(
                await issuer.issue({
                  person: { subject: agent.id, email: '', groups: [] },
                  agent: { id: agent.id, name: agent.name },
                  authMethod: 'client-credentials',
                  resources: [resource],
                }),
              );
            }
            return issued(
              await delegations.exchangeToken({
                agent: { id: agent.id, name: agent.name },
                ...(delegationId === null ? {} : { delegationId }),
                ...(personSubject === null ? {} : { personSubject }),
                resource,
              }),
            );
          }
          if (subjectToken === null) {
            return oauthError(400, 'invalid_request', 'send subject_token (or actor_token)');
          }
          const person = await identity.verifyPersonToken(subjectToken);
          return issued(await issuer.issue({ person, authMethod: 'oidc' }));
        } catch (err) {
          return identityFailure(err, true);
        }
      },
    },
    {
      method: 'POST',
      path: '/v1/delegations',
      handle: async (request) => {
        const person = await bearerPerson(request);
        if ('status' in person) return person;
        const body = jsonBody(request);
        if (!body.ok) return body.response;
        const input = (body.value ?? {}) as Record<string, unknown>;
        const agentId = text(input['agent']);
        const resources = input['resources'];
        const ttl = input['ttlSeconds'];
        if (
          agentId === null ||
          !Array.isArray(resources) ||
          resources.length === 0 ||
          !resources.every((r) => typeof r === 'string') ||
          typeof ttl !== 'number'
        ) {
          return errorResponse(
            400,
            'invalid_request',
            'send {"agent": id, "resources": [names], "ttlSeconds": n, "reason"?: text}',
          );
        }
        if (identity.agent(agentId) === null) {
          return errorResponse(404, 'unknown_agent', `no agent "${agentId}" is configured`);
        }
        const known = resourceNames();
        for (const resource of resources as string[]) {
          if (!known.includes(resource)) {
            return errorResponse(404, 'unknown_resource', `no resource named "${resource}"`);
          }
          if (
            !groupsMayUse(identity.config.groupAccess, person.groups, resource) &&
            !((await granted?.(person, resource)) ?? false)
          ) {
            return errorResponse(
              403,
              'forbidden',
              `you may not use "${resource}", so you cannot delegate it`,
            );
          }
        }
        try {
          const created = await delegations.createDelegation({
            person,
            agentId,
            resources: resources as string[],
            ttlMs: ttl * 1000,
            ...(text(input['reason']) === null ? {} : { reason: text(input['reason'])! }),
          });
          return { status: 201, json: delegationJson(created) };
        } catch (err) {
          return identityFailure(err, false);
        }
      },
    },
    {
      method: 'GET',
      path: '/v1/delegations',
      handle: async (request) => {
        const person = await bearerPerson(request);
        if ('status' in person) return person;
        const list = await delegations.listDelegations({
          person: person.subject,
          includeEnded: request.query.get('all') === 'true',
        });
        return { status: 200, json: { delegations: list.map(delegationJson) } };
      },
    },
    {
      method: 'DELETE',
      path: '/v1/delegations/:id',
      handle: async (request) => {
        const person = await bearerPerson(request);
        if ('status' in person) return person;
        try {
          const revoked = await delegations.revokeDelegation(request.params['id']!, {
            person: person.subject,
          });
          return { status: 200, json: delegationJson(revoked) };
        } catch (err) {
          return identityFailure(err, false);
        }
      },
    },
  ];
}
