// The bounded, in-memory token buckets that throttle failed credential checks
// (SDK keys: sdk-key-auth.ts; API keys exchanging themselves:
// tokens/exchange-throttle.ts).

export interface Bucket {
  tokens: number;
  at: number;
}

/**
 * The bucket of `id` in `m`, refilled up to `now` at `perSecond`, holding at
 * most `burst`; a new one (full) is not stored until drawn from.
 */
export function bucketOf(m: Map<string, Bucket>, id: string, burst: number, perSecond: number, now: number): Bucket {
  const b = m.get(id);
  return b ? refilled(b, burst, perSecond, now) : { tokens: burst, at: now };
}

/** `b`, refilled up to `now` at `perSecond`, holding at most `burst`. */
export function refilled(b: Bucket, burst: number, perSecond: number, now: number): Bucket {
  b.tokens = Math.min(burst, b.tokens + ((now - b.at) / 1000) * perSecond);
  b.at = now;
  return b;
}

/** Sets k (as the newest entry), dropping the oldest entry if the map is full. */
export function boundedSet<K, V>(m: Map<K, V>, k: K, v: V, max: number): void {
  m.delete(k);
  if (m.size >= max) m.delete(m.keys().next().value!);
  m.set(k, v);
}
