// The membership filter's Bloom filter over SHA-256 hashes: no false
// negatives ever, and the false-positive rate and memory the docs state
// (src/verify/key-filter.ts): 2 bytes a key, ~0.05 % at its built size.
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { HashBloom, KeyFilter } from '../../src/verify/key-filter.js';

/** `n` random SHA-256-like hashes in hex, from one buffer. */
function hashes(n: number): string[] {
  const hex = randomBytes(32 * n).toString('hex');
  return Array.from({ length: n }, (_, i) => hex.slice(i * 64, i * 64 + 64));
}

describe('HashBloom', () => {
  it('holds every hash added, takes 2 bytes a key, and passes few others', () => {
    const n = 100_000;
    const bloom = new HashBloom(n);
    const members = hashes(n);
    for (const h of members) bloom.add(h);
    expect(members.every((h) => bloom.has(h))).toBe(true);
    expect(bloom.words.byteLength / n).toBeLessThanOrEqual(2);
    const others = hashes(100_000);
    const passed = others.filter((h) => bloom.has(h)).length / others.length;
    // 0.046 % expected; a bound that random variation never reaches.
    expect(passed).toBeLessThan(0.001);
  });

  it('passes more, but still few, at 1.25x the keys it was built for (where the filter rebuilds)', () => {
    const bloom = new HashBloom(80_000);
    for (const h of hashes(100_000)) bloom.add(h);
    const others = hashes(100_000);
    expect(others.filter((h) => bloom.has(h)).length / others.length).toBeLessThan(0.005);
  });
});

describe('KeyFilter', () => {
  const stored = hashes(1000).sort();
  const deps = (barrier?: () => Promise<void>) => ({
    count: async () => stored.length,
    scan: async (after: string, limit: number) => stored.filter((h) => h > after).slice(0, limit),
    barrier,
  });

  it('says nothing until built, then knows every stored and added secret', async () => {
    const f = new KeyFilter(deps());
    const fresh = randomBytes(32).toString('hex');
    expect(f.absent(fresh)).toBe(false);
    await f.rebuild();
    expect(stored.some((h) => f.absent(h))).toBe(false);
    expect(f.absent(fresh)).toBe(true);
    f.add(fresh);
    expect(f.absent(fresh)).toBe(false);
  });

  it('says nothing once the change feed is lost, until rebuilt; a build begun before the loss is not trusted', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const slow = { ...deps(), count: async () => (await gate, stored.length) };
    const f = new KeyFilter(slow);
    const fresh = randomBytes(32).toString('hex');
    const first = f.rebuild();
    f.distrust();
    release();
    await first;
    expect(f.absent(fresh)).toBe(false);
    await f.rebuild();
    expect(f.absent(fresh)).toBe(true);
    f.distrust();
    expect(f.absent(fresh)).toBe(false);
  });

  it('with a shared database, a "no" waits for the barrier, and a secret the feed brings meanwhile is found', async () => {
    const late = randomBytes(32).toString('hex');
    let f!: KeyFilter;
    f = new KeyFilter(
      deps(async () => {
        f.add(late); // delivered by the feed before the barrier comes back
      }),
    );
    await f.rebuild();
    expect(f.needsBarrier).toBe(true);
    expect(f.absent(late)).toBe(true);
    expect(await f.absentAfterBarrier(late)).toBe(false);
    expect(await f.absentAfterBarrier(randomBytes(32).toString('hex'))).toBe(true);
  });

  it('a failed barrier sends the key to the database', async () => {
    const f = new KeyFilter(deps(() => Promise.reject(new Error('listener lost'))));
    await f.rebuild();
    expect(await f.absentAfterBarrier(randomBytes(32).toString('hex'))).toBe(false);
  });
});

describe('KeyFilter growth', () => {
  it('is rebuilt only once it holds 1.25x the keys it was sized for, not on every add', async () => {
    let scans = 0;
    const stored: string[] = [];
    const f = new KeyFilter({
      count: async () => {
        scans++;
        return stored.length;
      },
      scan: async (after, limit) => stored.filter((h) => h > after).slice(0, limit),
    });
    await f.rebuild();
    const added = hashes(70_000);
    for (const h of added.slice(0, 60_000)) f.add(h);
    for (const h of added.slice(0, 60_000)) f.add(h); // heard again from the feed: not counted twice
    await f.whenBuilt();
    expect(scans).toBe(1);
    stored.push(...[...added].sort());
    for (const h of added.slice(60_000)) f.add(h);
    for (const h of hashes(20_000)) f.add(h);
    await f.whenBuilt();
    expect(scans).toBe(2);
    expect(added.some((h) => f.absent(h))).toBe(false);
  });
});
