import type { Person } from '@portcullis/core';
import type { GatewayCredentialVerifier, VerifiedGatewayCredential } from '@portcullis/identity';
import { errorResponse, type ApiRequest, type ApiResponse } from './http-server.js';

/** How an endpoint that only people may use words its refusals. */
export interface BearerPersonOptions {
  /** The answer to a credential that is not a person's own (each endpoint says why). */
  readonly notPerson: () => ApiResponse;
  /**
   * Which verified credentials stand for a person; default: any without an agent. Endpoints that
   * also refuse delegated or client-credentials logins narrow it to `oidc`.
   */
  readonly isPerson?: (verified: VerifiedGatewayCredential) => boolean;
  /** Added to the 401 message when no credential is sent (e.g. how to get one). */
  readonly loginHint?: string;
}

/**
 * The person behind a request's `Authorization: Bearer` gateway credential, or the answer that
 * refuses it: 401 (with `www-authenticate`) when none is sent, 401 when it does not verify, and
 * `notPerson` for an agent's.
 */
export async function bearerPerson(
  request: ApiRequest,
  verifier: Pick<GatewayCredentialVerifier, 'verify'>,
  options: BearerPersonOptions,
): Promise<Person | ApiResponse> {
  const match = /^Bearer\s+(\S+)$/i.exec(request.headers.get('authorization') ?? '');
  if (match === null) {
    const hint = options.loginHint === undefined ? '' : ` ${options.loginHint}`;
    return {
      ...errorResponse(
        401,
        'unauthorized',
        `send your gateway credential as Authorization: Bearer …${hint}`,
      ),
      headers: { 'www-authenticate': 'Bearer' },
    };
  }
  const verified = await verifier.verify(match[1]!).catch(() => null);
  if (verified === null) {
    return errorResponse(401, 'invalid_token', 'the gateway credential was refused');
  }
  const isPerson = options.isPerson ?? ((v: VerifiedGatewayCredential) => v.agent === null);
  return isPerson(verified) ? verified.person : options.notPerson();
}
