/**
 * A least-recently-used cache bounded by entry count and by total weight (an estimate of the
 * bytes each entry holds). A Map keeps insertion order, so re-inserting on every hit keeps the
 * least recently used entry first, where eviction finds it.
 */
export class LruCache<K, V> {
  readonly #entries = new Map<K, { readonly value: V; readonly weight: number }>();
  readonly #maxEntries: number;
  readonly #maxWeight: number;
  #weight = 0;

  constructor(maxEntries: number, maxWeight: number) {
    this.#maxEntries = maxEntries;
    this.#maxWeight = maxWeight;
  }

  /** The value for `key`, now the most recently used; undefined when absent. */
  get(key: K): V | undefined {
    const entry = this.#entries.get(key);
    if (entry === undefined) return undefined;
    this.#entries.delete(key);
    this.#entries.set(key, entry);
    return entry.value;
  }

  /**
   * Stores `value` as the most recently used, evicting the least recently used entries until
   * both bounds hold. An entry heavier than the whole weight bound is not stored.
   */
  set(key: K, value: V, weight: number): void {
    const old = this.#entries.get(key);
    if (old !== undefined) {
      this.#entries.delete(key);
      this.#weight -= old.weight;
    }
    if (this.#maxEntries < 1 || weight > this.#maxWeight) return;
    this.#entries.set(key, { value, weight });
    this.#weight += weight;
    while (this.#entries.size > this.#maxEntries || this.#weight > this.#maxWeight) {
      const oldest = this.#entries.keys().next();
      if (oldest.done === true) break;
      this.#weight -= this.#entries.get(oldest.value)!.weight;
      this.#entries.delete(oldest.value);
    }
  }

  /** How many entries the cache holds. */
  get size(): number {
    return this.#entries.size;
  }

  /** The total weight of the entries held. */
  get weight(): number {
    return this.#weight;
  }

  /** Removes every entry. */
  clear(): void {
    this.#entries.clear();
    this.#weight = 0;
  }
}
