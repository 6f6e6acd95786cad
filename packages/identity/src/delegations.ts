import { randomBytes } from 'node:crypto';
import type { Person } from '@portcullis/core';
import type { Delegation, DelegationStore } from './delegation-store.js';
import type { GatewayCredentialIssuer, IssuedCredential } from './gateway-credential-issuer.js';
import { IdentityError, type DelegationRefusedReason } from './identity-error.js';
import type { AgentIdentity } from './idp-verifier.js';

/** Options for {@link Delegations}. */
export interface DelegationsOptions {
  store: DelegationStore;
  /** Signs the credentials a token exchange hands out. */
  issuer: GatewayCredentialIssuer;
  /** Longest TTL a person may give a delegation; 7 days by default. */
  maxTtlMs?: number;
  /** Clock in epoch milliseconds; `Date.now` by default. */
  now?: () => number;
}

/** A person's request to delegate to an agent. */
export interface CreateDelegationInput {
  /** The delegating person, as their verified token names them. */
  person: Person;
  agentId: string;
  /** Resource names (exact; at least one). */
  resources: readonly string[];
  ttlMs: number;
  /** Why, in the person's words (kept for the audit trail). */
  reason?: string;
}

/** Which delegations to list. */
export interface ListDelegationsInput {
  /** The delegating person's subject. */
  person?: string;
  agentId?: string;
  /** Also revoked and expired ones; `false` by default. */
  includeEnded?: boolean;
}

/** An agent's token-exchange request (RFC 8693 shape). */
export interface ExchangeTokenInput {
  /** The agent, from its own verified token ({@link IdpVerifier.verifyAgent}). */
  agent: AgentIdentity;
  /** The delegation to use; or name the person and the matching delegation is found. */
  delegationId?: string;
  /** The person to act for (their subject), when no delegation id is given. */
  personSubject?: string;
  /** The resource the credential is for; the delegation must cover it. */
  resource: string;
  /** Credential lifetime; never beyond the delegation's expiry. */
  ttlMs?: number;
}

const refusalMessages: Record<DelegationRefusedReason, string> = {
  unknown: 'no delegation allows this',
  revoked: 'the delegation was revoked',
  expired: 'the delegation has expired',
  'out-of-scope': 'the delegation does not cover this resource',
  'wrong-agent': 'the delegation was given to another agent',
  'wrong-person': 'the delegation belongs to another person',
};

function refused(
  reason: DelegationRefusedReason,
): IdentityError<'PCL_ERR_IDENTITY_DELEGATION_REFUSED'> {
  return new IdentityError('PCL_ERR_IDENTITY_DELEGATION_REFUSED', reason, refusalMessages[reason]);
}

const NAME = /^[\w.:@/+-]{1,200}$/;

/**
 * People's delegations to agents and the token exchange that turns one into a gateway
 * credential naming the person (`sub`) and the agent (`act`), limited to the resource asked
 * for. Every refusal is `PCL_ERR_IDENTITY_DELEGATION_REFUSED` with a reason.
 */
export class Delegations {
  readonly #store: DelegationStore;
  readonly #issuer: GatewayCredentialIssuer;
  readonly #maxTtlMs: number;
  readonly #now: () => number;

  constructor(options: DelegationsOptions) {
    this.#store = options.store;
    this.#issuer = options.issuer;
    this.#maxTtlMs = options.maxTtlMs ?? 7 * 24 * 3600_000;
    this.#now = options.now ?? Date.now;
  }

  /** Records a delegation and returns it (with its id). */
  async createDelegation(input: CreateDelegationInput): Promise<Delegation> {
    const invalid = (
      reason: 'no-resources' | 'bad-ttl' | 'bad-agent' | 'bad-person',
      msg: string,
    ) => new IdentityError('PCL_ERR_IDENTITY_DELEGATION_INVALID', reason, msg);
    if (input.person.subject.length === 0) throw invalid('bad-person', 'the person has no subject');
    if (!NAME.test(input.agentId)) throw invalid('bad-agent', 'the agent id is empty or malformed');
    const resources = [...new Set(input.resources)];
    if (resources.length === 0 || !resources.every((r) => NAME.test(r))) {
      throw invalid('no-resources', 'a delegation names one or more well-formed resources');
    }
    if (!Number.isFinite(input.ttlMs) || input.ttlMs <= 0 || input.ttlMs > this.#maxTtlMs) {
      throw invalid('bad-ttl', `the TTL must be above 0 and at most ${this.#maxTtlMs} ms`);
    }
    const now = this.#now();
    const delegation: Delegation = {
      id: `dlg_${randomBytes(16).toString('base64url')}`,
      person: {
        subject: input.person.subject,
        email: input.person.email,
        ...(input.person.name === undefined ? {} : { name: input.person.name }),
        groups: [...input.person.groups],
      },
      agentId: input.agentId,
      resources,
      ...(input.reason === undefined ? {} : { reason: input.reason }),
      createdAt: now,
      expiresAt: now + input.ttlMs,
    };
    await this.#store.insert(delegation);
    return delegation;
  }

  /** Delegations by person and/or agent; only active ones unless `includeEnded`. */
  async listDelegations(input: ListDelegationsInput = {}): Promise<Delegation[]> {
    const all = await this.#store.list({
      ...(input.person === undefined ? {} : { personSubject: input.person }),
      ...(input.agentId === undefined ? {} : { agentId: input.agentId }),
    });
    if (input.includeEnded === true) return all;
    const now = this.#now();
    return all.filter((d) => this.#state(d, now) === 'active');
  }

  /**
   * Revokes a delegation at once. With `person`, only that person's delegation may be revoked
   * (`wrong-person` otherwise). Revoking twice is not an error.
   */
  async revokeDelegation(id: string, options: { person?: string } = {}): Promise<Delegation> {
    const found = await this.#store.get(id);
    if (found === undefined) throw refused('unknown');
    if (options.person !== undefined && found.person.subject !== options.person) {
      throw refused('wrong-person');
    }
    const revoked = await this.#store.revoke(id, this.#now());
    if (revoked === undefined) throw refused('unknown');
    return revoked;
  }

  /**
   * Token exchange: checks that the delegation exists, belongs to this agent (and to the named
   * person), is neither revoked nor expired and covers the resource; then issues a gateway
   * credential with `sub` = the person, `act` = the agent, `resources` = [resource],
   * `auth_method` = `token-exchange`, expiring no later than the delegation.
   */
  async exchangeToken(input: ExchangeTokenInput): Promise<IssuedCredential> {
    const now = this.#now();
    let delegation: Delegation;
    if (input.delegationId !== undefined) {
      const found = await this.#store.get(input.delegationId);
      if (found === undefined) throw refused('unknown');
      if (found.agentId !== input.agent.id) throw refused('wrong-agent');
      if (input.personSubject !== undefined && found.person.subject !== input.personSubject) {
        throw refused('wrong-person');
      }
      const state = this.#state(found, now);
      if (state !== 'active') throw refused(state);
      if (!found.resources.includes(input.resource)) throw refused('out-of-scope');
      delegation = found;
    } else if (input.personSubject !== undefined) {
      delegation = await this.#find(input.personSubject, input.agent.id, input.resource, now);
    } else {
      throw refused('unknown');
    }
    const ttlMs = Math.min(input.ttlMs ?? this.#issuer.defaultTtlMs, delegation.expiresAt - now);
    // Credentials last whole seconds: one that would outlive the delegation is not issued.
    if (ttlMs < 1000) throw refused('expired');
    return this.#issuer.issue({
      person: delegation.person,
      agent: input.agent,
      authMethod: 'token-exchange',
      resources: [input.resource],
      delegationId: delegation.id,
      ttlMs,
    });
  }

  /** The active delegation of `person` to `agentId` covering `resource` that lasts longest. */
  async #find(person: string, agentId: string, resource: string, now: number): Promise<Delegation> {
    const candidates = await this.#store.list({ personSubject: person, agentId });
    const states = candidates.map((d) => ({ d, state: this.#state(d, now) }));
    const usable = states
      .filter(({ d, state }) => state === 'active' && d.resources.includes(resource))
      .map(({ d }) => d)
      .sort((a, b) => b.expiresAt - a.expiresAt);
    const [best] = usable;
    if (best !== undefined) return best;
    const covering = states.filter(({ d }) => d.resources.includes(resource));
    if (states.some(({ state }) => state === 'active')) throw refused('out-of-scope');
    if (covering.some(({ state }) => state === 'revoked')) throw refused('revoked');
    if (covering.some(({ state }) => state === 'expired')) throw refused('expired');
    throw refused(candidates.length > 0 ? 'out-of-scope' : 'unknown');
  }

  #state(d: Delegation, now: number): 'active' | 'revoked' | 'expired' {
    if (d.revokedAt !== undefined && d.revokedAt <= now) return 'revoked';
    if (d.expiresAt <= now) return 'expired';
    return 'active';
  }
}
