// Plain HTTP endpoints served on the RPC port beside gRPC, gRPC-Web and
// Connect (connect-node hands every path it has no RPC for to `httpEndpoints`):
//   /v1/authorize[/...]     forward auth for gateways (src/http/forward-auth.ts)
//   /.well-known/jwks.json  public keys of exchanged tokens (TokenService)
//   /openapi.json           the OpenAPI 3.1 document of the Connect JSON API (src/http/openapi.ts)
//   /metrics                Prometheus metrics (src/metrics/), unless KEYWARD_METRICS_PORT serves them apart
//   /healthz                the process is alive: always 200
//   /readyz                 200 when the database answers and every migration is applied, else 503
//   /console/, /portal/     the operator console and the customer portal (src/http/static-assets.ts)
//   /v1/...                 REST paths of the RPCs (src/http/rest.ts), beside /v1/authorize
//   /                       JSON links to the console, the OpenAPI document and the docs;
//                           a browser (Accept: text/html) is redirected to /console/
import type { ConnectNodeAdapterOptions } from '@connectrpc/connect-node';
import type { DatabaseProbe } from '../health/database-probe.js';
import type { SigningKeys } from '../tokens/signing-keys.js';
import { httpFailureOf } from './failure.js';
import { sendJson } from './json-reply.js';
import { AUTHORIZE_PATH, forwardAuth, type ForwardAuthDeps } from './forward-auth.js';
import type { RestTranscoder } from './rest.js';
import { serveStatic, staticAppOf, type StaticApp } from './static-assets.js';
import type { Metrics } from '../metrics/metrics.js';
import type { ClientAddress } from '../auth/client-address.js';

/** What the plain HTTP endpoints use (the App has them all). */
export interface EndpointDeps extends ForwardAuthDeps {
  probe: Pick<DatabaseProbe, 'status' | 'isDraining'>;
  signingKeys: Pick<SigningKeys, 'publicKeys'>;
  browserApps: readonly StaticApp[];
  openApiJson(): string;
  /** GET /metrics, unless served on a port of its own (KEYWARD_METRICS_PORT); absent without metrics. */
  metrics?: Pick<Metrics, 'text' | 'contentType'> | undefined;
  metricsOnMainPort?: boolean;
  /** The caller's address (TrustedProxies.clientAddress): the gateway's, for throttling its failed SDK key checks. */
  clientAddress: ClientAddress;
}

/** What connect-node's adapter hands its fallback: an HTTP/1.1 or HTTP/2 (compat) request and response. */
type Fallback = NonNullable<ConnectNodeAdapterOptions['fallback']>;
type Req = Parameters<Fallback>[0];
type Res = Parameters<Fallback>[1];

const JWKS_PATH = '/.well-known/jwks.json';

/** The project has no documentation site: the docs are the source tree's files and the OpenAPI document. */
const DOCS = 'README.md and SECURITY.md in the Keyward source; every RPC and REST path: /openapi.json';

export function httpEndpoints(app: EndpointDeps, rest: RestTranscoder) {
  return (req: Req, res: Res): void => {
    const path = (req.url ?? '/').split('?')[0]!;
    if (path.startsWith('/v1/') && path !== AUTHORIZE_PATH && !path.startsWith(`${AUTHORIZE_PATH}/`)) {
      rest.serve(req, res);
      return;
    }
    // Bodies mean nothing here; read and drop them so a kept-alive connection stays usable.
    req.resume();
    void route(app, req, res, path).catch((e: unknown) => {
      const f = httpFailureOf(e, app.log, { path });
      sendJson(req, res, f.status, { code: f.code, message: f.message });
    });
  };
}

async function route(app: EndpointDeps, req: Req, res: Res, path: string): Promise<void> {
  // Forward auth takes any method: nginx's auth_request and Envoy send the
  // original request's method, Traefik and Caddy their own.
  if (path === AUTHORIZE_PATH || path.startsWith(`${AUTHORIZE_PATH}/`)) {
    const a = await forwardAuth(app, req.headers, app.clientAddress(req.socket?.remoteAddress, req.headers['x-forwarded-for']));
    sendJson(req, res, a.status, a.body, a.headers);
    return;
  }
  const readOnly = req.method === 'GET' || req.method === 'HEAD';
  if (path === '/healthz' && readOnly) {
    sendJson(req, res, 200, { status: 'ok' });
    return;
  }
  if (path === '/readyz' && readOnly) {
    const s = await app.probe.status();
    const ready = s.reachable && s.migrated && !app.probe.isDraining;
    const why = app.probe.isDraining ? 'shutting down' : !s.reachable ? 'database unreachable' : !s.migrated ? 'migrations pending' : undefined;
    sendJson(req, res, ready ? 200 : 503, ready ? { status: 'ready' } : { status: 'not ready', reason: why });
    return;
  }
  if (path === JWKS_PATH && readOnly) {
    const keys = await app.signingKeys.publicKeys();
    // Verifiers may cache it briefly: a new key appears at most a minute late,
    // and a verifier that meets an unknown kid fetches again (jose does).
    sendJson(req, res, 200, { keys }, { 'cache-control': 'public, max-age=60' });
    return;
  }
  if (path === '/metrics' && readOnly && app.metrics && app.metricsOnMainPort) {
    await sendMetrics(app.metrics, req, res);
    return;
  }
  if (path === '/openapi.json' && readOnly) {
    const text = app.openApiJson();
    res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'public, max-age=300', 'content-length': Buffer.byteLength(text) });
    if (req.method === 'HEAD') res.end();
    else res.end(text);
    return;
  }
  const ui = staticAppOf(app.browserApps, path);
  if (ui && readOnly) {
    const a = await serveStatic(ui, path);
    res.writeHead(a.status, { ...a.headers, 'content-length': Buffer.byteLength(a.body) });
    if (req.method === 'HEAD') res.end();
    else res.end(a.body);
    return;
  }
  if (path === '/' && readOnly) {
    if (/\btext\/html\b/.test(req.headers.accept ?? '')) {
      sendJson(req, res, 302, { code: 'found', message: 'the console is at /console/' }, { location: '/console/' });
      return;
    }
    sendJson(req, res, 200, {
      name: 'Keyward',
      message: 'An API-key service. Call the REST paths under /v1/ or the RPCs with an SDK key: "authorization: Bearer kws_..."',
      links: { console: '/console/', openapi: '/openapi.json', docs: DOCS, health: '/healthz', jwks: JWKS_PATH },
    });
    return;
  }
  if (!readOnly && (path === '/' || path === '/healthz' || path === '/readyz' || path === JWKS_PATH || path === '/openapi.json' || ui)) {
    sendJson(req, res, 405, { code: 'unimplemented', message: `${path} takes GET, not ${req.method}` }, { allow: 'GET, HEAD' });
    return;
  }
  sendJson(req, res, 404, {
    code: 'not_found',
    message: `no such path: ${path}. RPCs are POST /keyward.v1.<Service>/<Method>, REST paths start with /v1/; both are listed in /openapi.json`,
  });
}

/** The Prometheus text of `metrics` (also what the separate metrics port, KEYWARD_METRICS_PORT, answers). */
export async function sendMetrics(metrics: Pick<Metrics, 'text' | 'contentType'>, req: { method?: string | undefined }, res: Res): Promise<void> {
  const text = await metrics.text();
  res.writeHead(200, { 'content-type': metrics.contentType, 'cache-control': 'no-store', 'content-length': Buffer.byteLength(text) });
  if (req.method === 'HEAD') res.end();
  else res.end(text);
}
