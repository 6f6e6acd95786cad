import { describe, expect, it } from 'vitest';
import { LruCache } from './lru-cache.js';

describe('LruCache', () => {
  it('evicts by recency when over the entry bound', () => {
    const cache = new LruCache<string, number>(2, 1000);
    cache.set('a', 1, 1);
    cache.set('b', 2, 1);
    expect(cache.get('a')).toBe(1);
    cache.set('c', 3, 1);
    expect(cache.get('b')).toBeUndefined();
    expect(cache.get('a')).toBe(1);
    expect(cache.get('c')).toBe(3);
  });

  it('evicts by recency when over the weight bound, and skips entries heavier than it', () => {
    const cache = new LruCache<string, number>(100, 10);
    cache.set('a', 1, 4);
    cache.set('b', 2, 4);
    cache.set('c', 3, 4);
    expect(cache.size).toBe(2);
    expect(cache.weight).toBe(8);
    expect(cache.get('a')).toBeUndefined();
    cache.set('huge', 4, 11);
    expect(cache.get('huge')).toBeUndefined();
    expect(cache.size).toBe(2);
  });

  it('replaces an entry in place, weight included', () => {
    const cache = new LruCache<string, number>(10, 100);
    cache.set('a', 1, 30);
    cache.set('a', 2, 5);
    expect(cache.get('a')).toBe(2);
    expect(cache.weight).toBe(5);
    cache.clear();
    expect(cache.size).toBe(0);
    expect(cache.weight).toBe(0);
  });
});
