import { join } from 'node:path';
import type { Person } from '@portcullis/core';
import { IdentityError } from './identity-error.js';
import { ensurePrivateDir, readPrivateFile, writePrivateFile } from './private-file.js';

/** A person's consent that an agent may act for them on some resources until a time. */
export interface Delegation {
  /** `dlg_` + 22 random base64url characters. */
  readonly id: string;
  /** The person who delegated, as their token named them when they did. */
  readonly person: Person;
  /** The agent's id (its OAuth client id). */
  readonly agentId: string;
  /** Resource names the agent may use for the person (exact names). */
  readonly resources: readonly string[];
  readonly reason?: string;
  /** Epoch milliseconds. */
  readonly createdAt: number;
  /** Epoch milliseconds. */
  readonly expiresAt: number;
  /** Epoch milliseconds, once revoked. */
  readonly revokedAt?: number;
}

/** Which delegations to list. */
export interface DelegationFilter {
  /** The delegating person's subject. */
  personSubject?: string;
  agentId?: string;
}

/**
 * Where delegations are kept. The file store below suits one gateway; a cluster backs this
 * with PostgreSQL. Implementations keep revoked and expired delegations (for listing and
 * audit) at least until `expiresAt`.
 */
export interface DelegationStore {
  /** Adds a new delegation (its id is unique). */
  insert(delegation: Delegation): Promise<void>;
  get(id: string): Promise<Delegation | undefined>;
  /** Delegations matching every given field, oldest first. */
  list(filter: DelegationFilter): Promise<Delegation[]>;
  /** Marks a delegation revoked at `at` (idempotent: an earlier revocation stays); `undefined` when unknown. */
  revoke(id: string, at: number): Promise<Delegation | undefined>;
}

function matches(delegation: Delegation, filter: DelegationFilter): boolean {
  return (
    (filter.personSubject === undefined || delegation.person.subject === filter.personSubject) &&
    (filter.agentId === undefined || delegation.agentId === filter.agentId)
  );
}

/** A {@link DelegationStore} in memory (tests, the demo). */
export class InMemoryDelegationStore implements DelegationStore {
  readonly #items = new Map<string, Delegation>();

  async insert(delegation: Delegation): Promise<void> {
    if (this.#items.has(delegation.id)) throw new Error('delegation id already exists');
    this.#items.set(delegation.id, delegation);
  }

  async get(id: string): Promise<Delegation | undefined> {
    return this.#items.get(id);
  }

  async list(filter: DelegationFilter): Promise<Delegation[]> {
    return [...this.#items.values()].filter((d) => matches(d, filter));
  }

  async revoke(id: string, at: number): Promise<Delegation | undefined> {
    const found = this.#items.get(id);
    if (found === undefined || found.revokedAt !== undefined) return found;
    const revoked = { ...found, revokedAt: at };
    this.#items.set(id, revoked);
    return revoked;
  }
}

/** Options for {@link FileDelegationStore.open}. */
export interface FileDelegationStoreOptions {
  /** Data directory; the store is `delegations.json` in it (mode 0600, directory 0700). */
  dir: string;
  /** How long an ended (expired or revoked) delegation is kept; 7 days by default. */
  retainEndedMs?: number;
  /** Clock in epoch milliseconds; `Date.now` by default. */
  now?: () => number;
}

interface FileContent {
  version: 1;
  delegations: Delegation[];
}

/**
 * A {@link DelegationStore} in one JSON file, rewritten atomically (temporary file, fsync,
 * rename) on every change. Reads go to the file each time, so nothing is cached that another
 * writer could make stale; writes from this process are serialised. One writing process per
 * directory. Ended delegations are dropped `retainEndedMs` after they ended.
 */
export class FileDelegationStore implements DelegationStore {
  readonly path: string;
  readonly #retainEndedMs: number;
  readonly #now: () => number;
  #busy: Promise<unknown> = Promise.resolve();

  private constructor(options: FileDelegationStoreOptions) {
    this.path = join(options.dir, 'delegations.json');
    this.#retainEndedMs = options.retainEndedMs ?? 7 * 24 * 3600_000;
    this.#now = options.now ?? Date.now;
  }

  /** Opens (creating the directory when missing) and checks the store file. */
  static async open(options: FileDelegationStoreOptions): Promise<FileDelegationStore> {
    await ensurePrivateDir(options.dir);
    const store = new FileDelegationStore(options);
    await store.#read();
    return store;
  }

  insert(delegation: Delegation): Promise<void> {
    return this.#update((items) => {
      if (items.some((d) => d.id === delegation.id))
        throw new Error('delegation id already exists');
      items.push(delegation);
      return undefined;
    });
  }

  async get(id: string): Promise<Delegation | undefined> {
    return (await this.#read()).find((d) => d.id === id);
  }

  async list(filter: DelegationFilter): Promise<Delegation[]> {
    return (await this.#read()).filter((d) => matches(d, filter));
  }

  revoke(id: string, at: number): Promise<Delegation | undefined> {
    return this.#update((items) => {
      const index = items.findIndex((d) => d.id === id);
      const found = items[index];
      if (found === undefined || found.revokedAt !== undefined) return found;
      const revoked = { ...found, revokedAt: at };
      items[index] = revoked;
      return revoked;
    });
  }

  async #read(): Promise<Delegation[]> {
    const text = await readPrivateFile(this.path);
    if (text === undefined) return [];
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      throw new IdentityError(
        'PCL_ERR_IDENTITY_FILE_CORRUPT',
        'unparsable',
        `${this.path} is not valid JSON`,
      );
    }
    const content = value as Partial<FileContent> | null;
    if (
      typeof content !== 'object' ||
      content === null ||
      content.version !== 1 ||
      !Array.isArray(content.delegations)
    ) {
      throw new IdentityError(
        'PCL_ERR_IDENTITY_FILE_CORRUPT',
        'wrong-shape',
        `${this.path} does not hold delegations`,
      );
    }
    return content.delegations;
  }

  #update<T>(change: (items: Delegation[]) => T): Promise<T> {
    const run = this.#busy.then(async () => {
      const items = await this.#read();
      const result = change(items);
      const cutoff = this.#now() - this.#retainEndedMs;
      const kept = items.filter((d) => Math.min(d.expiresAt, d.revokedAt ?? Infinity) >= cutoff);
      const content: FileContent = { version: 1, delegations: kept };
      await writePrivateFile(this.path, `${JSON.stringify(content)}\n`);
      return result;
    });
    this.#busy = run.catch(() => undefined);
    return run;
  }
}
