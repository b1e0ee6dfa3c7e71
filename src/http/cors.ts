// CORS for the customer portal embedded on a company's own origins
// (KEYWARD_PORTAL_ORIGINS): only the RPCs a portal token may call, and only
// for the listed origins. Everything else gets no CORS headers, so a browser
// on another origin cannot read any other answer.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Http2ServerRequest, Http2ServerResponse } from 'node:http2';
import { cors } from '@connectrpc/connect';

type Req = IncomingMessage | Http2ServerRequest;
type Res = ServerResponse | Http2ServerResponse;
type Handler = (req: Req, res: Res) => void;

// POST and GET for the RPCs; the portal's REST paths also take PATCH and DELETE.
const ALLOW_METHODS = [...new Set([...cors.allowedMethods, 'PATCH', 'DELETE'])].join(', ');
const ALLOW_HEADERS = [...cors.allowedHeaders, 'Authorization', 'X-Request-Id'].join(', ');
const EXPOSE_HEADERS = [...cors.exposedHeaders, 'X-Request-Id'].join(', ');
/** How long a browser may reuse a preflight answer. */
const MAX_AGE_SECONDS = 7200;

/**
 * Wraps `handler`: a request to a path `isPortalPath` accepts (the portal's
 * RPCs and their REST paths) from one of `origins` gets the CORS headers, and
 * its preflight (OPTIONS) is answered here.
 */
export function withPortalCors(origins: readonly string[], isPortalPath: (path: string) => boolean, handler: Handler): Handler {
  if (origins.length === 0) return handler;
  const allowed = new Set(origins);
  return (req, res) => {
    const origin = req.headers.origin;
    const path = (req.url ?? '/').split('?')[0]!;
    if (origin === undefined || !allowed.has(origin) || !isPortalPath(path)) {
      handler(req, res);
      return;
    }
    res.setHeader('Access-Control-Allow-Origin', origin);
    res.setHeader('Vary', 'Origin');
    if (req.method === 'OPTIONS') {
      res.writeHead(204, {
        'Access-Control-Allow-Methods': ALLOW_METHODS,
        'Access-Control-Allow-Headers': ALLOW_HEADERS,
        'Access-Control-Max-Age': String(MAX_AGE_SECONDS),
        'Content-Length': '0',
      });
      res.end();
      return;
    }
    res.setHeader('Access-Control-Expose-Headers', EXPOSE_HEADERS);
    handler(req, res);
  };
}
