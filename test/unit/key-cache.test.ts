import { describe, expect, it } from 'vitest';
import { KeyCache } from '../../src/verify/key-cache.js';

interface Rec {
  id: string;
  ws: string;
  v: number;
}

const newCache = (over: Partial<{ maxEntries: number; positiveTtlMs: number; negativeTtlMs: number }> = {}) =>
  new KeyCache<Rec>({
    maxEntries: 100,
    positiveTtlMs: 10_000,
    negativeTtlMs: 1000,
    owner: (r) => ({ keyId: r.id, workspaceId: r.ws }),
    ...over,
  });

function deferred<T>() {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

describe('KeyCache', () => {
  it('serves hits without loading and counts them', async () => {
    const c = newCache();
    let loads = 0;
    const load = async () => (loads++, { id: 'k1', ws: 'w1', v: 1 });
    await c.get('h1', load);
    await c.get('h1', load);
    expect(loads).toBe(1);
    expect(c.stats.hits).toBe(1);
  });

  it('shares one load among concurrent misses (single-flight)', async () => {
    const c = newCache();
    const d = deferred<Rec | null>();
    let loads = 0;
    const load = () => (loads++, d.promise);
    const all = Promise.all(Array.from({ length: 50 }, () => c.get('h', load)));
    d.resolve({ id: 'k', ws: 'w', v: 1 });
    const results = await all;
    expect(loads).toBe(1);
    expect(results.every((r) => r?.v === 1)).toBe(true);
  });

  it('never stores a fill that raced an eviction', async () => {
    const c = newCache();
    const d = deferred<Rec | null>();
    const pending = c.get('h', () => d.promise);
    c.evictKeys(['k']); // e.g. a revoke committed while the query ran
    d.resolve({ id: 'k', ws: 'w', v: 1 }); // the query read the pre-revoke row
    await pending;
    expect(c.size).toBe(0);
    expect(c.stats.discardedFills).toBe(1);
    let loads = 0;
    await c.get('h', async () => (loads++, { id: 'k', ws: 'w', v: 2 }));
    expect(loads).toBe(1);
  });

  it('a miss after an eviction does not join a load that started before it', async () => {
    const c = newCache();
    const before = deferred<Rec | null>();
    const a = c.get('h', () => before.promise); // reads the row before the revoke commits
    c.evictKeys(['k']); // the revoke committed; RevokeKey returns
    let loads = 0;
    const b = c.get('h', async () => (loads++, { id: 'k', ws: 'w', v: 2 })); // a verify after the revoke
    before.resolve({ id: 'k', ws: 'w', v: 1 });
    expect((await a)?.v).toBe(1);
    expect((await b)?.v).toBe(2);
    expect(loads).toBe(1);
    // The newer load was stored, the older one discarded.
    expect((await c.get('h', async () => ({ id: 'k', ws: 'w', v: 3 })))?.v).toBe(2);
  });

  it('keeps negative answers for their own, shorter TTL', async () => {
    const c = newCache({ negativeTtlMs: 1000 });
    let loads = 0;
    const load = async () => (loads++, null);
    await c.get('unknown', load, 0);
    await c.get('unknown', load, 999);
    expect(loads).toBe(1);
    await c.get('unknown', load, 1001 + Date.now());
    expect(loads).toBe(2);
  });

  it('evicts by key (all its secrets) and by workspace', async () => {
    const c = newCache();
    await c.get('a1', async () => ({ id: 'A', ws: 'w1', v: 1 }));
    await c.get('a2', async () => ({ id: 'A', ws: 'w1', v: 1 })); // rotated: two secrets
    await c.get('b', async () => ({ id: 'B', ws: 'w1', v: 1 }));
    await c.get('c', async () => ({ id: 'C', ws: 'w2', v: 1 }));
    c.evictKeys(['A']);
    expect(c.size).toBe(2);
    c.evictWorkspace('w1');
    expect(c.size).toBe(1);
  });

  it('stays within its bound, dropping the oldest fills first', async () => {
    const c = newCache({ maxEntries: 10 });
    for (let i = 0; i < 25; i++) await c.get(`h${i}`, async () => ({ id: `k${i}`, ws: 'w', v: i }));
    expect(c.size).toBe(10);
    let loads = 0;
    await c.get('h24', async () => (loads++, null));
    await c.get('h0', async () => (loads++, null));
    expect(loads).toBe(1);
  });

  it('when disabled neither serves nor stores, and re-enabling starts empty', async () => {
    const c = newCache();
    await c.get('h', async () => ({ id: 'k', ws: 'w', v: 1 }));
    c.setEnabled(false);
    let loads = 0;
    await c.get('h', async () => (loads++, { id: 'k', ws: 'w', v: 2 }));
    await c.get('h', async () => (loads++, { id: 'k', ws: 'w', v: 2 }));
    expect(loads).toBe(2);
    c.setEnabled(true);
    expect(c.size).toBe(0);
  });
});
