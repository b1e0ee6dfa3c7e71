// Hono: `app.get('/transfers', auth('balance_transfers:read'), (c) => c.json(c.get('keyward')))`.
import type { MiddlewareHandler } from 'hono';
import { guardOptions, verifierOf, type GuardArgs, type KeyVerifier, type KeywardIdentity, type VerifierOptions } from './core.js';

/** The Hono environment the middleware sets: `c.get('keyward')`. */
export type KeywardEnv = { Variables: { keyward: KeywardIdentity } };

/** `const auth = keywardHono({ baseUrl, sdkKey })`, then `auth('scope:action')` per route or `app.use(auth())`. */
export function keywardHono(options: VerifierOptions | KeyVerifier): (...args: GuardArgs) => MiddlewareHandler<KeywardEnv> {
  const verifier = verifierOf(options);
  return (...args) => {
    const opts = guardOptions(args);
    return async (c, next) => {
      const d = await verifier.decide((name) => c.req.header(name) || undefined, opts);
      if (!d.ok) return new Response(JSON.stringify(d.body), { status: d.status, headers: { 'content-type': 'application/json', ...d.headers } });
      for (const [k, v] of Object.entries(d.headers)) c.header(k, v);
      c.set('keyward', d.identity);
      await next();
    };
  };
}
