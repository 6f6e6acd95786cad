import type { Person } from '@portcullis/core';
import {
  createRemoteJWKSet,
  decodeProtectedHeader,
  errors,
  jwtVerify,
  type JWTPayload,
  type JWTVerifyGetKey,
} from 'jose';
import * as client from 'openid-client';
import { IdentityError } from './identity-error.js';
import { idpUnreachable, networkFailure } from './idp-failure.js';
import { joseErrorReason, looksLikeCompactJwt } from './jose-error-reason.js';

/** Options for {@link IdpVerifier.discover}. */
export interface IdpVerifierOptions {
  /** The IdP's issuer URL; its discovery document names the JWKS. */
  issuer: string;
  /**
   * Accepted `aud` values: the gateway's client id (ID tokens) and/or the resource indicator
   * the IdP puts in access tokens.
   */
  audience: string | readonly string[];
  /** Claim holding the groups; `groups` by default. A string value counts as one group. */
  groupsClaim?: string;
  /** Claim holding the email; `email` by default. */
  emailClaim?: string;
  /** Claim naming the OAuth client a token was issued to; `client_id`, then `azp`, by default. */
  clientIdClaim?: string;
  /** Allowed clock difference for `exp`, `nbf` and `iat`; 30 s by default. */
  clockToleranceMs?: number;
  /** Limit for discovery and each JWKS fetch; 5 s by default. */
  timeoutMs?: number;
  /** Least time between two JWKS refetches on an unknown `kid`; 30 s by default. */
  jwksCooldownMs?: number;
  /** How long fetched keys are trusted before a refetch; 10 min by default. */
  jwksCacheMaxAgeMs?: number;
  /** Accepted signing algorithms; the asymmetric JWS algorithms by default (never HS*, none). */
  algorithms?: readonly string[];
  /** Allows an `http:` issuer. Only for tests against a local IdP. */
  allowInsecureRequests?: boolean;
}

/** Who a verified IdP token names. */
export interface IdpTokenIdentity {
  /** `sub`. */
  readonly subject: string;
  /** The email claim, or `undefined` when the token has none. */
  readonly email: string | undefined;
  readonly name: string | undefined;
  /** The groups claim (empty when absent). */
  readonly groups: readonly string[];
  /** The OAuth client the token was issued to, when the token says. */
  readonly clientId: string | undefined;
  /** Expiry, epoch milliseconds. */
  readonly expiresAt: number;
  /** All verified claims. */
  readonly claims: Readonly<JWTPayload>;
}

/** An agent authenticated as itself (a client-credentials token). */
export interface AgentIdentity {
  /** The agent's OAuth client id. */
  readonly id: string;
  readonly name?: string;
}

const DEFAULT_ALGORITHMS = [
  'RS256',
  'RS384',
  'RS512',
  'PS256',
  'PS384',
  'PS512',
  'ES256',
  'ES384',
  'ES512',
  'EdDSA',
  'Ed25519',
];

/**
 * Verifies tokens an OIDC IdP issued to people (ID tokens, JWT access tokens) and to agents
 * (client-credentials access tokens), offline, with the IdP's keys. The keys are fetched from
 * the `jwks_uri` of the discovery document and cached; a token naming an unknown `kid` makes
 * one refetch (at most once per cooldown), so IdP key rotation needs no restart. An IdP that
 * does not answer within the timeout gives `PCL_ERR_IDENTITY_IDP_UNREACHABLE`, never a hang.
 */
export class IdpVerifier {
  /** The issuer as the discovery document names it. */
  readonly issuer: string;
  /** The IdP's JWKS URL. */
  readonly jwksUri: URL;
  readonly #audience: string[];
  readonly #algorithms: string[];
  readonly #groupsClaim: string;
  readonly #emailClaim: string;
  readonly #clientIdClaim: string | undefined;
  readonly #toleranceS: number;
  readonly #keys: JWTVerifyGetKey;

  private constructor(issuer: string, jwksUri: URL, options: IdpVerifierOptions) {
    this.issuer = issuer;
    this.jwksUri = jwksUri;
    this.#audience =
      typeof options.audience === 'string' ? [options.audience] : [...options.audience];
    this.#algorithms = [...(options.algorithms ?? DEFAULT_ALGORITHMS)].filter(
      (alg) => alg !== 'none' && !alg.startsWith('HS'),
    );
    this.#groupsClaim = options.groupsClaim ?? 'groups';
    this.#emailClaim = options.emailClaim ?? 'email';
    this.#clientIdClaim = options.clientIdClaim;
    this.#toleranceS = Math.floor((options.clockToleranceMs ?? 30_000) / 1000);
    this.#keys = createRemoteJWKSet(jwksUri, {
      timeoutDuration: options.timeoutMs ?? 5000,
      cooldownDuration: options.jwksCooldownMs ?? 30_000,
      cacheMaxAge: options.jwksCacheMaxAgeMs ?? 600_000,
    });
  }

  /**
   * Reads the IdP's discovery document (with openid-client) and returns a verifier for it.
   * Rejects with `PCL_ERR_IDENTITY_IDP_UNREACHABLE` when the IdP does not answer in time,
   * cannot be reached, or its document has no usable `jwks_uri`.
   */
  static async discover(options: IdpVerifierOptions): Promise<IdpVerifier> {
    const timeoutMs = options.timeoutMs ?? 5000;
    let config: client.Configuration;
    try {
      const clientId =
        typeof options.audience === 'string' ? options.audience : (options.audience[0] ?? '');
      config = await client.discovery(new URL(options.issuer), clientId, undefined, undefined, {
        timeout: Math.max(1, Math.ceil(timeoutMs / 1000)),
        ...(options.allowInsecureRequests === true
          ? { execute: [client.allowInsecureRequests] }
          : {}),
      });
    } catch (error) {
      throw idpUnreachable(networkFailure(error) ?? 'bad-response', error);
    }
    const metadata = config.serverMetadata();
    if (typeof metadata.jwks_uri !== 'string') throw idpUnreachable('bad-response');
    let jwksUri: URL;
    try {
      jwksUri = new URL(metadata.jwks_uri);
    } catch (error) {
      throw idpUnreachable('bad-response', error);
    }
    if (jwksUri.protocol !== 'https:' && options.allowInsecureRequests !== true) {
      throw idpUnreachable('bad-response');
    }
    return new IdpVerifier(metadata.issuer, jwksUri, options);
  }

  /**
   * Verifies an IdP-issued JWT (signature with the IdP's keys, algorithm, `iss`, `aud`, `exp`,
   * `nbf`, `iat`) and returns who it names. Rejects with `PCL_ERR_IDENTITY_TOKEN_INVALID` and a
   * reason, or `PCL_ERR_IDENTITY_IDP_UNREACHABLE` when keys had to be fetched and could not be.
   */
  async verify(token: string): Promise<IdpTokenIdentity> {
    if (!looksLikeCompactJwt(token)) throw IdentityError.token('malformed');
    let alg: unknown;
    try {
      alg = decodeProtectedHeader(token).alg;
    } catch {
      throw IdentityError.token('malformed');
    }
    if (typeof alg !== 'string' || !this.#algorithms.includes(alg)) {
      throw IdentityError.token('alg-not-allowed');
    }
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, this.#keys, {
        issuer: this.issuer,
        audience: this.#audience,
        algorithms: this.#algorithms,
        clockTolerance: this.#toleranceS,
        requiredClaims: ['sub', 'exp', 'iat'],
      }));
    } catch (error) {
      const network = networkFailure(error);
      if (network !== undefined) throw idpUnreachable(network, error);
      if (error instanceof errors.JWKSInvalid) throw idpUnreachable('bad-response', error);
      const reason = joseErrorReason(error);
      if (reason !== undefined) throw IdentityError.token(reason);
      // jose's generic error is what a JWKS endpoint answering with a non-200 status gives.
      if (error instanceof errors.JOSEError) throw idpUnreachable('bad-response', error);
      throw IdentityError.token('malformed');
    }
    return this.#identity(payload);
  }

  /**
   * Verifies a person's token and returns the person. A token whose subject is the client it
   * was issued to (an agent acting as itself) is refused with reason `invalid-claims`.
   * `email` is `''` when the token carries none.
   */
  async verifyPerson(token: string): Promise<Person> {
    const identity = await this.verify(token);
    if (identity.clientId !== undefined && identity.clientId === identity.subject) {
      throw IdentityError.token('invalid-claims');
    }
    return {
      subject: identity.subject,
      email: identity.email ?? '',
      ...(identity.name === undefined ? {} : { name: identity.name }),
      groups: identity.groups,
    };
  }

  /**
   * Verifies an agent's own token (client credentials) and returns the agent: its id is the
   * client the token was issued to. Refused with `missing-claims` when the token names no
   * client.
   */
  async verifyAgent(token: string): Promise<AgentIdentity> {
    const identity = await this.verify(token);
    if (identity.clientId === undefined) throw IdentityError.token('missing-claims');
    return { id: identity.clientId };
  }

  #identity(payload: JWTPayload): IdpTokenIdentity {
    const p = payload as Record<string, unknown>;
    const sub = p.sub;
    if (typeof sub !== 'string' || sub.length === 0) throw IdentityError.token('invalid-claims');
    const rawGroups = p[this.#groupsClaim];
    let groups: string[];
    if (rawGroups === undefined) groups = [];
    else if (typeof rawGroups === 'string') groups = [rawGroups];
    else if (Array.isArray(rawGroups) && rawGroups.every((g) => typeof g === 'string')) {
      groups = rawGroups as string[];
    } else throw IdentityError.token('invalid-claims');
    const email = p[this.#emailClaim];
    const name = p.name;
    const clientIdValue =
      this.#clientIdClaim === undefined ? (p.client_id ?? p.azp) : p[this.#clientIdClaim];
    if (
      (email !== undefined && typeof email !== 'string') ||
      (name !== undefined && typeof name !== 'string') ||
      (clientIdValue !== undefined && typeof clientIdValue !== 'string')
    ) {
      throw IdentityError.token('invalid-claims');
    }
    return {
      subject: sub,
      email,
      name,
      groups,
      clientId: clientIdValue,
      expiresAt: (payload.exp as number) * 1000,
      claims: payload,
    };
  }
}
