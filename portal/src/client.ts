// The browser's view of Keyward: a portal token as bearer, the Connect
// protocol over fetch, and only the RPCs a portal token may call.
import { createClient, type Client, type Interceptor } from '@connectrpc/connect';
import { createConnectTransport } from '@connectrpc/connect-web';
import { KeyService } from '../../gen/keyward/v1/key_service_pb.js';
import { PortalService } from '../../gen/keyward/v1/portal_service_pb.js';
import { UsageService } from '../../gen/keyward/v1/usage_service_pb.js';

export interface PortalClients {
  portal: Client<typeof PortalService>;
  keys: Client<typeof KeyService>;
  usage: Client<typeof UsageService>;
}

export function createPortalClients(baseUrl: string, token: string): PortalClients {
  const bearer: Interceptor = (next) => (req) => {
    req.header.set('authorization', `Bearer ${token}`);
    return next(req);
  };
  const transport = createConnectTransport({
    baseUrl: baseUrl.replace(/\/+$/, ''),
    interceptors: [bearer],
    // No cookies: the token is the only credential, so the server needs no
    // Access-Control-Allow-Credentials and a host page's cookies never leak.
    fetch: (input, init) => globalThis.fetch(input, { ...init, credentials: 'omit' }),
  });
  return {
    portal: createClient(PortalService, transport),
    keys: createClient(KeyService, transport),
    usage: createClient(UsageService, transport),
  };
}
