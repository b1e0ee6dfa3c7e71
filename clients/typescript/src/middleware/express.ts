// Express: `app.get('/transfers', auth('balance_transfers:read'), handler)`.
import type { RequestHandler } from 'express';
import { guardOptions, nodeHeader, verifierOf, type GuardArgs, type KeyVerifier, type KeywardIdentity, type VerifierOptions } from './core.js';

declare global {
  // eslint-disable-next-line @typescript-eslint/no-namespace
  namespace Express {
    interface Request {
      /** The verified API key, set by the Keyward middleware. */
      keyward?: KeywardIdentity;
    }
  }
}

/**
 * `const auth = keywardExpress({ baseUrl, sdkKey })` (one client, one
 * connection), then `auth('scope:action', ...)` or `auth({ permissions,
 * workspaceId, cost })` per route; `auth()` asks only for a valid key.
 */
export function keywardExpress(options: VerifierOptions | KeyVerifier): (...args: GuardArgs) => RequestHandler {
  const verifier = verifierOf(options);
  return (...args) => {
    const opts = guardOptions(args);
    return (req, res, next) => {
      verifier.decide(nodeHeader(req.headers), opts).then((d) => {
        if (!d.ok) {
          res.status(d.status).set(d.headers).json(d.body);
          return;
        }
        res.set(d.headers);
        req.keyward = d.identity;
        next();
      }, next);
    };
  };
}
