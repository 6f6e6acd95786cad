/** The human behind a session. */
export interface Person {
  /** Stable id from the identity source (a token's subject, later the IdP's `sub`). */
  readonly subject: string;
  readonly email: string;
  readonly name?: string;
  readonly groups: readonly string[];
}

/** An AI agent or service acting for a person; absent for a person at a keyboard. */
export interface Agent {
  readonly id: string;
  readonly name: string;
}

/**
 * How the client proved who it is: a static token from the configuration, or a gateway
 * credential obtained by a person's OIDC login (`oidc`), by an agent acting for a person under
 * a delegation (`token-exchange`), or by an agent as itself (`client-credentials`).
 */
export type AuthMethod = 'static-token' | 'oidc' | 'token-exchange' | 'client-credentials';

/** Who is behind a session. */
export interface SessionIdentity {
  readonly person: Person;
  readonly agent: Agent | null;
  readonly authMethod: AuthMethod;
}
