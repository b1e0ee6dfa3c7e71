// Fastify: a preHandler per route (`{ preHandler: auth('balance_transfers:read') }`),
// or a plugin that guards every route (`app.register(keywardPlugin, { baseUrl, sdkKey })`).
import type { FastifyPluginCallback, FastifyReply, FastifyRequest } from 'fastify';
import {
  guardOptions,
  nodeHeader,
  verifierOf,
  type GuardArgs,
  type GuardOptions,
  type KeyVerifier,
  type KeywardIdentity,
  type VerifierOptions,
} from './core.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** The verified API key, set by the Keyward preHandler. */
    keyward?: KeywardIdentity;
  }
  interface FastifyContextConfig {
    /** What the keywardPlugin requires on this route; `false` leaves the route open. */
    keyward?: GuardOptions | false;
  }
}

type PreHandler = (request: FastifyRequest, reply: FastifyReply) => Promise<unknown>;

function preHandlerOf(verifier: KeyVerifier, opts: (request: FastifyRequest) => GuardOptions | false): PreHandler {
  return async (request, reply) => {
    const o = opts(request);
    if (o === false) return;
    const d = await verifier.decide(nodeHeader(request.headers), o);
    if (!d.ok) return reply.code(d.status).headers(d.headers).send(d.body);
    reply.headers(d.headers);
    request.keyward = d.identity;
  };
}

/** `const auth = keywardFastify({ baseUrl, sdkKey })`, then `{ preHandler: auth('scope:action') }` per route. */
export function keywardFastify(options: VerifierOptions | KeyVerifier): (...args: GuardArgs) => PreHandler {
  const verifier = verifierOf(options);
  return (...args) => {
    const opts = guardOptions(args);
    return preHandlerOf(verifier, () => opts);
  };
}

export type KeywardPluginOptions = (VerifierOptions | { verifier: KeyVerifier }) & GuardOptions;

/**
 * Guards every route of the instance it is registered on (and, as it is not
 * encapsulated, its parent's routes declared after it) with `permissions`;
 * a route's `config: { keyward: { permissions } }` overrides them, and
 * `config: { keyward: false }` leaves it open.
 */
export const keywardPlugin: FastifyPluginCallback<KeywardPluginOptions> = (fastify, options, done) => {
  const { permissions, workspaceId, cost } = options;
  const verifier = 'verifier' in options ? options.verifier : verifierOf(options);
  if (!fastify.hasRequestDecorator('keyward')) fastify.decorateRequest('keyward', undefined);
  fastify.addHook(
    'preHandler',
    preHandlerOf(verifier, (request) => request.routeOptions.config?.keyward ?? { permissions, workspaceId, cost }),
  );
  done();
};
// What fastify-plugin does: the hook applies outside the plugin's own context too.
(keywardPlugin as unknown as Record<symbol, unknown>)[Symbol.for('skip-override')] = true;
