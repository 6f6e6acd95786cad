import { join } from 'node:path';
import type { Logger, Person, SessionIdentity } from '@portcullis/core';
import {
  Delegations,
  FileDelegationStore,
  GatewayCredentialIssuer,
  GatewayCredentialVerifier,
  IdpVerifier,
  KeyRing,
  isIdentityError,
  type AgentIdentity,
  type IdentityError,
  type VerifiedGatewayCredential,
} from '@portcullis/identity';
import type { IdentityConfig } from '../config/load-config.js';
import { groupsMayUse } from './resource-access.js';

/** A login the gateway refuses: SQLSTATE and message for the client, a reason code for events. */
export class AuthRefusal extends Error {
  constructor(
    readonly sqlState: '28000' | '28P01' | '42501',
    message: string,
    readonly reason: string,
    /** Who the credential named, when it could be read (for the auth.failed event). */
    readonly person: Person | null = null,
  ) {
    super(message);
  }
}

/** Options of {@link GatewayIdentity.open}. */
export interface GatewayIdentityOptions {
  /** `iss` of the credentials this gateway signs and accepts. */
  readonly issuer: string;
  /** Where delegations are kept (the data dir). */
  readonly dataDir: string;
  readonly logger: Logger;
  /**
   * `issuer`: this process signs credentials, rotates keys and writes delegations (the single
   * process, or a cluster's primary); `verifier`: it only checks credentials (cluster workers).
   */
  readonly role: 'issuer' | 'verifier';
  readonly now?: () => number;
}

/** A credential looks like a JWT: three base64url parts (static tokens never do). */
const JWT_SHAPE = /^[\w-]+\.[\w-]+\.[\w-]*$/;

/** The JWT shape check, for the listener to decide which path a password takes. */
export function looksLikeCredential(password: string): boolean {
  return password.length < 16_384 && JWT_SHAPE.test(password);
}

/**
 * The gateway's side of identity: checks the gateway credentials clients send as passwords
 * (who the person is, which agent acts for them, which resources the credential and the
 * person's groups allow), and, in the issuing process, signs credentials for people who logged
 * in at the IdP and for agents under a person's delegation.
 */
export class GatewayIdentity {
  readonly config: IdentityConfig;
  readonly issuerUrl: string;
  readonly keys: KeyRing;
  readonly verifier: GatewayCredentialVerifier;
  readonly issuer: GatewayCredentialIssuer | null;
  readonly delegations: Delegations | null;
  readonly #store: FileDelegationStore;
  readonly #logger: Logger;
  #idp: Promise<IdpVerifier> | null = null;

  private constructor(
    config: IdentityConfig,
    issuerUrl: string,
    keys: KeyRing,
    store: FileDelegationStore,
    options: GatewayIdentityOptions,
  ) {
    this.config = config;
    this.issuerUrl = issuerUrl;
    this.keys = keys;
    this.#store = store;
    this.#logger = options.logger;
    const now = options.now === undefined ? {} : { now: options.now };
    this.verifier = new GatewayCredentialVerifier({ keys, issuer: issuerUrl, ...now });
    if (options.role === 'issuer') {
      this.issuer = new GatewayCredentialIssuer({
        keys,
        issuer: issuerUrl,
        defaultTtlMs: config.credentialTtlMs,
        ...now,
      });
      this.delegations = new Delegations({
        store,
        issuer: this.issuer,
        maxTtlMs: config.delegationMaxMs,
        ...now,
      });
    } else {
      this.issuer = null;
      this.delegations = null;
    }
  }

  static async open(
    config: IdentityConfig,
    options: GatewayIdentityOptions,
  ): Promise<GatewayIdentity> {
    const now = options.now === undefined ? {} : { now: options.now };
    const keys = await KeyRing.open({
      dir: config.keysDir,
      rotationIntervalMs: config.keyRotationMs,
      maxTokenTtlMs: Math.max(config.credentialTtlMs, 60_000),
      ...now,
    });
    const store = await FileDelegationStore.open({
      dir: join(options.dataDir, 'delegations'),
      ...now,
    });
    return new GatewayIdentity(config, options.issuer, keys, store, options);
  }

  /** The IdP's token verifier, discovered on first use (fails closed while the IdP is down). */
  idp(): Promise<IdpVerifier> {
    const oidc = this.config.oidc;
    if (oidc === null) {
      return Promise.reject(new Error('no OIDC provider is configured (identity.oidc)'));
    }
    this.#idp ??= IdpVerifier.discover({
      issuer: oidc.issuer,
      audience: [...oidc.audience],
      groupsClaim: oidc.groupsClaim,
      timeoutMs: oidc.timeoutMs,
      allowInsecureRequests: oidc.allowInsecureHttp,
    }).catch((err: unknown) => {
      this.#idp = null; // retry discovery on the next request
      throw err;
    });
    return this.#idp;
  }

  /** The configured agent with this client id, or null. */
  agent(id: string): IdentityConfig['agents'][number] | null {
    return this.config.agents.find((a) => a.id === id) ?? null;
  }

  /**
   * Checks a gateway credential sent as a password for `resource`: a valid signature from this
   * gateway's keys, not expired, and access to the resource — the person's groups for a person,
   * the delegation (not revoked) and the person's groups for an agent acting for them, the
   * agent's own resources for an agent as itself. Throws {@link AuthRefusal}. `granted` is asked
   * when the person's groups do not reach the resource (a time-boxed access grant); an agent
   * acting for them still needs a delegation covering the resource.
   */
  async authenticate(
    password: string,
    resource: string,
    granted?: (person: Person) => Promise<boolean>,
  ): Promise<SessionIdentity> {
    let credential: VerifiedGatewayCredential;
    try {
      credential = await this.verifier.verify(password);
    } catch (err) {
      const reason = isIdentityError(err) ? (err as IdentityError).reason : 'invalid';
      this.#logger.debug({ reason }, 'gateway credential refused');
      throw new AuthRefusal(
        '28P01',
        reason === 'expired'
          ? 'the gateway credential has expired; get a new one (portcullis credentials)'
          : 'password authentication failed: the gateway credential is not valid',
        `credential-${reason}`,
      );
    }
    const { person } = credential;
    if (credential.resources !== null && !credential.resources.includes(resource)) {
      throw new AuthRefusal(
        '42501',
        `this credential is not valid for resource "${resource}"`,
        'credential-out-of-scope',
        person,
      );
    }
    if (credential.authMethod === 'client-credentials') {
      const agent = this.agent(credential.agent?.id ?? person.subject);
      if (agent === null || !agent.ownResources.includes(resource)) {
        throw new AuthRefusal(
          '42501',
          `agent "${person.subject}" may not use resource "${resource}" without a person's delegation`,
          'agent-without-delegation',
          person,
        );
      }
      return {
        person,
        agent: { id: agent.id, name: agent.name },
        authMethod: 'client-credentials',
      };
    }
    if (
      !groupsMayUse(this.config.groupAccess, person.groups, resource) &&
      (granted === undefined || !(await granted(person)))
    ) {
      throw new AuthRefusal(
        '42501',
        `${person.email || person.subject} may not use resource "${resource}"`,
        'no-access',
        person,
      );
    }
    if (credential.agent !== null) {
      const delegation =
        credential.delegationId === null
          ? undefined
          : await this.#store.get(credential.delegationId);
      const now = Date.now();
      if (
        delegation === undefined ||
        delegation.revokedAt !== undefined ||
        delegation.expiresAt <= now
      ) {
        throw new AuthRefusal(
          '28000',
          'the delegation behind this credential was revoked or has expired',
          'delegation-revoked',
          person,
        );
      }
      const known = this.agent(credential.agent.id);
      return {
        person,
        agent: {
          id: credential.agent.id,
          name: known?.name ?? credential.agent.name ?? credential.agent.id,
        },
        authMethod: 'token-exchange',
      };
    }
    return { person, agent: null, authMethod: 'oidc' };
  }

  /** The agent behind an IdP token sent to the token endpoint, if it is a configured agent. */
  async verifyAgentToken(token: string): Promise<AgentIdentity> {
    const idp = await this.idp();
    return idp.verifyAgent(token);
  }

  /** The person behind an IdP token. */
  async verifyPersonToken(token: string): Promise<Person> {
    const idp = await this.idp();
    return idp.verifyPerson(token);
  }
}
