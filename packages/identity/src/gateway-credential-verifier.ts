import { decodeProtectedHeader, jwtVerify, type JWTPayload } from 'jose';
import {
  GATEWAY_AUDIENCE,
  type ActorClaim,
  type CredentialAuthMethod,
  type GatewayCredentialClaims,
  type VerifiedGatewayCredential,
} from './gateway-credential.js';
import { IdentityError } from './identity-error.js';
import { joseErrorReason, looksLikeCompactJwt } from './jose-error-reason.js';
import type { KeyRing } from './key-ring.js';

/** Options for {@link GatewayCredentialVerifier}. */
export interface GatewayCredentialVerifierOptions {
  /** The gateway's keys (only the public halves are used). */
  keys: KeyRing;
  /** The expected `iss`. */
  issuer: string;
  /** The expected `aud`; `portcullis` by default. */
  audience?: string;
  /** Allowed clock difference for `exp` and `nbf`; 30 s by default. */
  clockToleranceMs?: number;
  /**
   * On an unknown `kid` the key directory is re-read (another process may have rotated), at
   * most once per this many milliseconds; 5 s by default. 0 re-reads every time.
   */
  reloadCooldownMs?: number;
  /** Clock in epoch milliseconds; `Date.now` by default. */
  now?: () => number;
}

const REQUIRED = ['iss', 'aud', 'sub', 'exp', 'iat', 'nbf', 'jti'];
const AUTH_METHODS: ReadonlySet<string> = new Set(['oidc', 'token-exchange', 'client-credentials']);

function isStringArray(value: unknown): value is string[] {
  return Array.isArray(value) && value.every((item) => typeof item === 'string');
}

/**
 * Verifies gateway credentials. Only the algorithms of the ring's own keys are accepted, and a
 * key is used only with its own algorithm: `alg: none`, an HMAC token made with the public key
 * as its secret, or an RSA token against an EC key are refused before any signature check.
 * Every refusal is an {@link IdentityError} `PCL_ERR_IDENTITY_TOKEN_INVALID` with a reason.
 */
export class GatewayCredentialVerifier {
  readonly issuer: string;
  readonly audience: string;
  readonly #keys: KeyRing;
  readonly #toleranceS: number;
  readonly #reloadCooldownMs: number;
  readonly #now: () => number;
  #lastReload = Number.NEGATIVE_INFINITY;

  constructor(options: GatewayCredentialVerifierOptions) {
    this.#keys = options.keys;
    this.issuer = options.issuer;
    this.audience = options.audience ?? GATEWAY_AUDIENCE;
    this.#toleranceS = Math.floor((options.clockToleranceMs ?? 30_000) / 1000);
    this.#reloadCooldownMs = options.reloadCooldownMs ?? 5000;
    this.#now = options.now ?? Date.now;
  }

  /** Verifies `token`; resolves with who it names or rejects with a typed reason. */
  async verify(token: string): Promise<VerifiedGatewayCredential> {
    if (!looksLikeCompactJwt(token)) throw IdentityError.token('malformed');
    let header;
    try {
      header = decodeProtectedHeader(token);
    } catch {
      throw IdentityError.token('malformed');
    }
    const alg = header.alg;
    if (typeof alg !== 'string' || !(this.#keys.algorithms() as string[]).includes(alg)) {
      throw IdentityError.token('alg-not-allowed');
    }
    const kid = header.kid;
    if (typeof kid !== 'string' || kid.length === 0) throw IdentityError.token('unknown-kid');
    let key = this.#keys.verificationKey(kid);
    if (key === undefined && this.#now() - this.#lastReload >= this.#reloadCooldownMs) {
      this.#lastReload = this.#now();
      await this.#keys.reload();
      key = this.#keys.verificationKey(kid);
    }
    if (key === undefined) throw IdentityError.token('unknown-kid');
    if (key.alg !== alg) throw IdentityError.token('alg-not-allowed');

    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, key.key, {
        algorithms: [key.alg],
        issuer: this.issuer,
        audience: this.audience,
        clockTolerance: this.#toleranceS,
        currentDate: new Date(this.#now()),
        requiredClaims: REQUIRED,
      }));
    } catch (error) {
      throw IdentityError.token(joseErrorReason(error) ?? 'malformed');
    }
    const claims = this.#checkClaims(payload);
    const act = claims.act;
    return {
      person: {
        subject: claims.sub,
        email: claims.email,
        ...(claims.name === undefined ? {} : { name: claims.name }),
        groups: claims.groups,
      },
      agent:
        act === undefined
          ? null
          : { id: act.sub, ...(act.name === undefined ? {} : { name: act.name }) },
      authMethod: claims.auth_method,
      resources: claims.resources ?? null,
      delegationId: claims.delegation_id ?? null,
      tokenId: claims.jti,
      kid,
      expiresAt: claims.exp * 1000,
      claims,
    };
  }

  #checkClaims(payload: JWTPayload): GatewayCredentialClaims {
    const p = payload as Record<string, unknown>;
    if (p.email === undefined || p.groups === undefined || p.auth_method === undefined) {
      throw IdentityError.token('missing-claims');
    }
    const act = p.act as Partial<ActorClaim> | undefined;
    const valid =
      typeof p.sub === 'string' &&
      p.sub.length > 0 &&
      typeof p.jti === 'string' &&
      typeof p.aud === 'string' &&
      typeof p.email === 'string' &&
      isStringArray(p.groups) &&
      typeof p.auth_method === 'string' &&
      AUTH_METHODS.has(p.auth_method) &&
      (p.name === undefined || typeof p.name === 'string') &&
      (act === undefined ||
        (typeof act === 'object' &&
          act !== null &&
          typeof act.sub === 'string' &&
          act.sub.length > 0 &&
          (act.name === undefined || typeof act.name === 'string'))) &&
      (p.resources === undefined || isStringArray(p.resources)) &&
      (p.delegation_id === undefined || typeof p.delegation_id === 'string') &&
      // An agent acting for a person always comes with the scope of its delegation.
      (p.auth_method === 'token-exchange') === (act !== undefined && p.resources !== undefined) &&
      // Lifetimes are bounded by the key ring: a longer one was not issued by this gateway.
      (payload.exp as number) - (payload.nbf as number) <=
        Math.ceil(this.#keys.maxTokenTtlMs / 1000) + 1;
    if (!valid) throw IdentityError.token('invalid-claims');
    return p as unknown as GatewayCredentialClaims & { auth_method: CredentialAuthMethod };
  }
}
