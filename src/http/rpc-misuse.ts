// Plain-HTTP habits on the RPC paths: connect-node answers a GET, or a POST
// without a content type it speaks, with an empty 405 or 415. A person trying
// `curl` learns nothing from that; these answers say what to send instead.
// Only requests that connect-node would refuse anyway are answered here; the
// VerifyKey fast path (HTTP/2, its own stream handler) never comes this way.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Http2ServerRequest, Http2ServerResponse } from 'node:http2';
import { contentTypeRegExp as connectType } from '@connectrpc/connect/protocol-connect';
import { contentTypeRegExp as grpcType } from '@connectrpc/connect/protocol-grpc';
import { contentTypeRegExp as grpcWebType } from '@connectrpc/connect/protocol-grpc-web';
import { sendJson } from './json-reply.js';

type Req = IncomingMessage | Http2ServerRequest;
type Res = ServerResponse | Http2ServerResponse;
type Handler = (req: Req, res: Res) => void;

const HOW =
  'send POST with "content-type: application/json" and the request message as JSON (or use a gRPC, gRPC-Web or Connect client); REST paths for every RPC are listed in /openapi.json';

/** Whether connect-node speaks this content type (any of its three protocols). */
function spoken(type: string | undefined): boolean {
  return type !== undefined && (connectType.test(type) || grpcType.test(type) || grpcWebType.test(type));
}

/** Wraps the RPC handler: a wrong method or content type on an RPC path gets a JSON error saying what to send. */
export function withRpcMisuseAnswers(rpcPaths: ReadonlySet<string>, handler: Handler): Handler {
  return (req, res) => {
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q === -1 ? url : url.slice(0, q);
    if (!rpcPaths.has(path) || (req.method === 'POST' && spoken(req.headers['content-type']))) {
      handler(req, res);
      return;
    }
    req.resume();
    if (req.method !== 'POST') {
      sendJson(req, res, 405, { code: 'unimplemented', message: `${path} is an RPC and takes POST, not ${req.method}: ${HOW}` }, { allow: 'POST' });
      return;
    }
    const type = req.headers['content-type'];
    sendJson(req, res, 415, {
      code: 'invalid_argument',
      message: `${type === undefined ? 'no content type' : `content type "${type}" is not supported`}: ${HOW}`,
    });
  };
}
