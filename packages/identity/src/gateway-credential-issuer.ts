import { randomUUID } from 'node:crypto';
import type { Person } from '@portcullis/core';
import { SignJWT } from 'jose';
import {
  GATEWAY_AUDIENCE,
  type ActingAgent,
  type CredentialAuthMethod,
  type GatewayCredentialClaims,
} from './gateway-credential.js';
import type { KeyRing } from './key-ring.js';

/** Options for {@link GatewayCredentialIssuer}. */
export interface GatewayCredentialIssuerOptions {
  /** The gateway's signing keys. */
  keys: KeyRing;
  /** The gateway's issuer URL (the `iss` claim). */
  issuer: string;
  /** The `aud` claim; `portcullis` by default. */
  audience?: string;
  /** Lifetime of a credential when the caller names none; 10 minutes by default. */
  defaultTtlMs?: number;
  /** Clock in epoch milliseconds; `Date.now` by default. */
  now?: () => number;
}

/** What to put in a credential. */
export interface IssueCredentialInput {
  /** The human the credential names (`sub`, `email`, `groups`, `name`). */
  person: Person;
  /** The agent acting for the person (`act`); absent for the person themselves. */
  agent?: ActingAgent;
  authMethod: CredentialAuthMethod;
  /** Limits the credential to these resources (delegated credentials). */
  resources?: readonly string[];
  /** The delegation behind a token exchange. */
  delegationId?: string;
  /** Lifetime; capped by the key ring's `maxTokenTtlMs`. */
  ttlMs?: number;
}

/** A signed credential. */
export interface IssuedCredential {
  /** The compact JWT: what a PostgreSQL client sends as its password. Secret. */
  token: string;
  claims: GatewayCredentialClaims;
  kid: string;
  /** Expiry, epoch milliseconds. */
  expiresAt: number;
}

/**
 * Signs short-lived gateway credentials (JWTs) with the key ring's current key. The header
 * carries `alg`, `kid` and `typ: JWT`; the lifetime never exceeds the ring's `maxTokenTtlMs`,
 * which is what lets a retired key be deleted safely.
 */
export class GatewayCredentialIssuer {
  readonly issuer: string;
  readonly audience: string;
  readonly defaultTtlMs: number;
  readonly #keys: KeyRing;
  readonly #now: () => number;

  constructor(options: GatewayCredentialIssuerOptions) {
    this.#keys = options.keys;
    this.issuer = options.issuer;
    this.audience = options.audience ?? GATEWAY_AUDIENCE;
    this.defaultTtlMs = Math.min(options.defaultTtlMs ?? 600_000, options.keys.maxTokenTtlMs);
    this.#now = options.now ?? Date.now;
  }

  /** Signs a credential for `input.person` (and `input.agent`, when one acts for them). */
  async issue(input: IssueCredentialInput): Promise<IssuedCredential> {
    const key = await this.#keys.signingKey();
    const ttlMs = Math.max(
      1000,
      Math.min(input.ttlMs ?? this.defaultTtlMs, this.#keys.maxTokenTtlMs),
    );
    const iat = Math.floor(this.#now() / 1000);
    const exp = iat + Math.floor(ttlMs / 1000);
    const claims: GatewayCredentialClaims = {
      iss: this.issuer,
      aud: this.audience,
      sub: input.person.subject,
      email: input.person.email,
      ...(input.person.name === undefined ? {} : { name: input.person.name }),
      groups: [...input.person.groups],
      iat,
      nbf: iat,
      exp,
      jti: randomUUID(),
      auth_method: input.authMethod,
      ...(input.agent === undefined
        ? {}
        : {
            act: {
              sub: input.agent.id,
              ...(input.agent.name === undefined ? {} : { name: input.agent.name }),
            },
          }),
      ...(input.resources === undefined ? {} : { resources: [...input.resources] }),
      ...(input.delegationId === undefined ? {} : { delegation_id: input.delegationId }),
    };
    const token = await new SignJWT({ ...claims })
      .setProtectedHeader({ alg: key.alg, kid: key.kid, typ: 'JWT' })
      .sign(key.privateKey);
    return { token, claims, kid: key.kid, expiresAt: exp * 1000 };
  }
}
