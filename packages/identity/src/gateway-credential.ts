import type { Person } from '@portcullis/core';

/** The audience of every gateway credential unless configured otherwise. */
export const GATEWAY_AUDIENCE = 'portcullis';

/** How the holder of a gateway credential proved who they are. */
export type CredentialAuthMethod =
  /** A person logged in at the IdP (device flow, browser, or an IdP token presented). */
  | 'oidc'
  /** An agent exchanged its own token plus a person's delegation (RFC 8693 shape). */
  | 'token-exchange'
  /** An agent authenticated as itself with OIDC client credentials, acting for nobody. */
  | 'client-credentials';

/** The agent acting for the person: the RFC 8693 `act` claim. */
export interface ActorClaim {
  /** The agent's id (its OIDC client id). */
  sub: string;
  /** A display name for the agent. */
  name?: string;
}

/** The claims of a gateway credential (a JWT signed by the gateway). */
export interface GatewayCredentialClaims {
  /** The gateway's issuer URL. */
  iss: string;
  /** `portcullis` unless configured otherwise. */
  aud: string;
  /** The person's subject. */
  sub: string;
  email: string;
  name?: string;
  groups: string[];
  iat: number;
  nbf: number;
  exp: number;
  /** Unique id of this credential. */
  jti: string;
  auth_method: CredentialAuthMethod;
  /** Present when an agent acts for the person. */
  act?: ActorClaim;
  /**
   * The only resources this credential may be used for; present on delegated credentials
   * (the delegation's scope). Absent: whatever the person's groups allow.
   */
  resources?: string[];
  /** The delegation a token exchange used. */
  delegation_id?: string;
}

/** An agent acting for a person, as a verified credential names it. */
export interface ActingAgent {
  readonly id: string;
  readonly name?: string;
}

/** What a verified gateway credential says. */
export interface VerifiedGatewayCredential {
  /** The human behind the session. */
  readonly person: Person;
  /** The agent acting for them, or `null` for a person at a keyboard. */
  readonly agent: ActingAgent | null;
  readonly authMethod: CredentialAuthMethod;
  /** Resources this credential is limited to, or `null` when not limited by the credential. */
  readonly resources: readonly string[] | null;
  readonly delegationId: string | null;
  /** The credential's `jti`. */
  readonly tokenId: string;
  /** The signing key's id. */
  readonly kid: string;
  /** Expiry, epoch milliseconds. */
  readonly expiresAt: number;
  /** The verified claims as they are. */
  readonly claims: Readonly<GatewayCredentialClaims>;
}
