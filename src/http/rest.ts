// REST paths on the RPC port: gRPC transcoding (AIP-127) of the
// `google.api.http` options declared in proto/, so that
//   POST /v1/workspaces/{workspace_id}/api-keys  {"name": "My API Key"}
// reaches KeyService/CreateKey. No RPC is implemented twice: a REST request is
// turned into the RPC's Connect JSON request and handed to the same
// connect-es handler (the app's routes, interceptors — request id and error
// mapping, SDK key and portal token auth —, request gate, size limit, JSON
// options and deadline header), and the handler's answer is passed back as
// is: the response message as proto3 JSON, or Connect's error JSON
// `{code, message, details}` with Connect's HTTP status for the code.
//
// What a request may carry (as grpc-gateway and Envoy's transcoder read it):
// - path variables `{field}` and `{a.b}` (one segment each), and a `:verb`
//   after the last segment;
// - query parameters for the fields the path and body do not bind: `a.b=x`
//   for nested fields, repeated by repeating the parameter, enums by name,
//   times as RFC 3339, durations as `3600s`, field masks as `a,b`;
// - a JSON body: the whole request (`body: "*"`) or one field of it
//   (`body: "key"`: the body is the ApiKey). With a named body, a top-level
//   field of the request that the body message does not have may be given
//   in the same object (`{"name": "k", "expires_in_days": 90}`), so the seeds'
//   flat bodies work; any other unknown field is a 400 naming it;
// - with a named body and no `update_mask`, an UPDATE's mask is the body's
//   top-level fields (a PATCH changes what it sends).
import { createConnectRouter, createContextValues, type ConnectRouter, type Interceptor } from '@connectrpc/connect';
import type { UniversalHandler } from '@connectrpc/connect/protocol';
import { ScalarType, type DescField, type DescMessage, type DescService, type JsonValue } from '@bufbuild/protobuf';
import type { HandlerContext } from '@connectrpc/connect';
import type { ConnectNodeAdapterOptions } from '@connectrpc/connect-node';
import { peerKey } from '../rpc/context.js';
import type { ClientAddress } from '../auth/client-address.js';
import type { OutgoingHttpHeaders } from 'node:http';
import { sendJson } from './json-reply.js';
import { RestError, RestRouter, restRoutes, type Match } from './rest-routes.js';

/** What connect-node's adapter hands its fallback: an HTTP/1.1 or HTTP/2 (compat) request and response. */
type Fallback = NonNullable<ConnectNodeAdapterOptions['fallback']>;
type Req = Parameters<Fallback>[0];
type Res = Parameters<Fallback>[1];
type JsonObject = { [k: string]: JsonValue };

/** The JSON name of `f` (what query parameters and inferred masks are written with). */
const jsonNameOf = (f: DescField) => f.jsonName;

/** A top-level field of `m` by its proto or its JSON name. */
const fieldNamed = (m: DescMessage, name: string) => m.fields.find((f) => f.name === name || f.jsonName === name);

/** Sets `value` at a path of JSON names in `obj`, making objects on the way. */
function setPath(obj: JsonObject, names: readonly string[], value: JsonValue): void {
  let o = obj;
  for (const n of names.slice(0, -1)) {
    const next = o[n];
    if (typeof next !== 'object' || next === null || Array.isArray(next)) o[n] = {};
    o = o[n] as JsonObject;
  }
  o[names[names.length - 1]!] = value;
}

/**
 * A query parameter's or path variable's text as the proto3 JSON value of
 * `f`: booleans and 32-bit numbers become JSON booleans and numbers when they
 * read as such (anything else is left a string, which the handler's JSON
 * parser then refuses naming the field); everything else is a string in
 * proto3 JSON already.
 */
function scalarJson(f: DescField | undefined, text: string): JsonValue {
  if (!f || (f.fieldKind !== 'scalar' && f.fieldKind !== 'list')) return text;
  const scalar = f.fieldKind === 'scalar' ? f.scalar : f.listKind === 'scalar' ? f.scalar : undefined;
  if (scalar === ScalarType.BOOL) return text === 'true' ? true : text === 'false' ? false : text;
  if (scalar === ScalarType.STRING || scalar === ScalarType.BYTES || scalar === undefined) return text;
  if (
    /^-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?$/.test(text) &&
    (scalar === ScalarType.INT32 ||
      scalar === ScalarType.UINT32 ||
      scalar === ScalarType.SINT32 ||
      scalar === ScalarType.FIXED32 ||
      scalar === ScalarType.SFIXED32 ||
      scalar === ScalarType.DOUBLE ||
      scalar === ScalarType.FLOAT)
  ) {
    return Number(text);
  }
  return text;
}

/** The field at a path of proto or JSON names, or undefined. */
function lookup(m: DescMessage, names: readonly string[]): { field: DescField; jsonPath: string[] } | undefined {
  let cur: DescMessage | undefined = m;
  let field: DescField | undefined;
  const jsonPath: string[] = [];
  for (const n of names) {
    field = cur ? fieldNamed(cur, n) : undefined;
    if (!field) return undefined;
    jsonPath.push(jsonNameOf(field));
    cur = field.fieldKind === 'message' ? field.message : undefined;
  }
  return field ? { field, jsonPath } : undefined;
}

/**
 * The RPC's request as proto3 JSON, from a REST request's path variables,
 * query and body. Throws RestError 400 for what cannot be mapped (malformed
 * JSON, a body that is no object, an unknown query parameter); wrongly typed
 * values are left for the handler's JSON parser, whose message names the field.
 */
function requestJson(match: Match, query: URLSearchParams, body: JsonValue | undefined): JsonObject {
  const { route, vars } = match;
  const input = route.method.input;
  const out: JsonObject = {};
  const bound = new Set<string>();
  if (route.body !== undefined) {
    const b = body ?? {};
    if (typeof b !== 'object' || b === null || Array.isArray(b)) throw new RestError(400, 'invalid_argument', 'the body must be a JSON object');
    if (route.body === '*') {
      Object.assign(out, b);
      for (const f of input.fields) bound.add(f.name);
    } else {
      const bodyField = input.fields.find((f) => f.name === route.body)!;
      const inner: JsonObject = {};
      const sent: DescField[] = [];
      for (const [k, v] of Object.entries(b)) {
        const own = bodyField.message ? fieldNamed(bodyField.message, k) : undefined;
        const top = own ? undefined : fieldNamed(input, k);
        if (own) sent.push(own);
        if (top && top !== bodyField) {
          out[k] = v;
          bound.add(top.name);
        } else inner[k] = v; // an unknown field goes to the body message, whose parser names it
      }
      out[jsonNameOf(bodyField)] = inner;
      bound.add(bodyField.name);
      // An update without a mask changes the fields it sends.
      const mask = input.fields.find((f) => f.name === 'update_mask' && f.fieldKind === 'message' && f.message.typeName === 'google.protobuf.FieldMask');
      if (mask && !query.has('update_mask') && !query.has(mask.jsonName) && !('update_mask' in b) && !(mask.jsonName in b)) {
        const pathBound = new Set(vars.filter(([p]) => p[0] === bodyField.name && p.length === 2).map(([p]) => p[1]));
        out[mask.jsonName] = sent
          .filter((f) => !pathBound.has(f.name))
          .map(jsonNameOf)
          .join(',');
      }
    }
  }
  for (const key of new Set(query.keys())) {
    const names = key.split('.');
    const found = lookup(input, names);
    if (!found) throw new RestError(400, 'invalid_argument', `unknown query parameter "${key}": ${input.typeName} has no such field`);
    if (bound.has(found.field.name) && names.length === 1) continue;
    const values = query.getAll(key);
    const f = found.field;
    const repeated = f.fieldKind === 'list';
    setPath(
      out,
      found.jsonPath,
      repeated
        ? values
            .flatMap((v) => v.split(','))
            .filter((v) => v !== '')
            .map((v) => scalarJson(f, v))
        : scalarJson(f, values[values.length - 1]!),
    );
  }
  for (const [names, value] of vars) {
    const found = lookup(input, names)!;
    setPath(out, found.jsonPath, scalarJson(found.field, value));
  }
  return out;
}

const JSON_TYPE = /^application\/json(?:\s*;\s*charset=utf-?8)?\s*$/i;

/** Headers a REST caller may send that mean the same to the RPC. */
const PASSED_HEADERS = ['authorization', 'x-request-id', 'connect-timeout-ms'] as const;
/** Headers of the RPC's answer passed back. */
const RETURNED_HEADERS = ['x-request-id', 'retry-after'] as const;

export interface TranscoderOptions {
  routes: (router: ConnectRouter) => void;
  interceptors: Interceptor[];
  requestGate?: (ctx: HandlerContext) => void | Promise<void>;
  readMaxBytes: number;
  jsonOptions: { ignoreUnknownFields: boolean };
  services: readonly DescService[];
  shutdownSignal?: AbortSignal;
  /**
   * The Retry-After of a 429 (RESOURCE_EXHAUSTED: too many failed SDK key
   * checks from the caller's address), when the RPC's answer names none.
   */
  retryAfterSeconds?: () => number;
  /** The caller's address (TrustedProxies.clientAddress), for throttling failed credential checks. */
  clientAddress: ClientAddress;
}

/** Serves REST requests by handing them to the RPCs' own Connect handlers. */
export class RestTranscoder {
  readonly router: RestRouter;
  private readonly handlers = new Map<string, UniversalHandler>();
  private readonly readMaxBytes: number;
  private readonly retryAfterSeconds: (() => number) | undefined;
  private readonly clientAddress: ClientAddress;

  constructor(opts: TranscoderOptions) {
    this.router = new RestRouter(restRoutes(opts.services));
    const router = createConnectRouter({
      grpc: false,
      grpcWeb: false,
      connect: true,
      interceptors: opts.interceptors,
      requestGate: opts.requestGate,
      readMaxBytes: opts.readMaxBytes,
      jsonOptions: opts.jsonOptions,
      shutdownSignal: opts.shutdownSignal,
    });
    opts.routes(router);
    for (const h of router.handlers) this.handlers.set(h.requestPath, h);
    this.readMaxBytes = opts.readMaxBytes;
    this.retryAfterSeconds = opts.retryAfterSeconds;
    this.clientAddress = opts.clientAddress;
  }

  /** Answers one REST request; every failure is a JSON error. */
  serve(req: Req, res: Res): void {
    void this.answer(req, res).catch((e: unknown) => {
      const r = e instanceof RestError ? e : new RestError(500, 'internal', 'internal error');
      // An unread body is dropped, so a kept-alive connection stays usable.
      req.resume();
      sendJson(req, res, r.status, { code: r.code, message: r.message }, r.headers);
    });
  }

  private async answer(req: Req, res: Res): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://rest.invalid');
    const match = this.router.match(req.method ?? 'GET', url.pathname);
    let body: JsonValue | undefined;
    if (match.route.body !== undefined) body = await readJsonBody(req, this.readMaxBytes);
    else req.resume();
    const json = requestJson(match, url.searchParams, body);
    const { service, method } = match.route;
    const handler = this.handlers.get(`/${service.typeName}/${method.name}`);
    if (!handler) throw new RestError(501, 'unimplemented', `${service.typeName}/${method.name} is not served`);
    const header = new Headers({ 'content-type': 'application/json', 'connect-protocol-version': '1' });
    for (const h of PASSED_HEADERS) {
      const v = req.headers[h];
      if (typeof v === 'string') header.set(h, v);
    }
    const abort = new AbortController();
    res.once('close', () => {
      if (!res.writableFinished) abort.abort();
    });
    const answer = await handler({
      httpVersion: req.httpVersion,
      url: `http://rest.invalid/${service.typeName}/${method.name}`,
      method: 'POST',
      header,
      body: oneChunk(Buffer.from(JSON.stringify(json))),
      signal: abort.signal,
      contextValues: createContextValues().set(peerKey, this.clientAddress(req.socket?.remoteAddress, req.headers['x-forwarded-for'])),
    });
    const chunks: Uint8Array[] = [];
    if (answer.body) for await (const c of answer.body) chunks.push(c);
    const out = Buffer.concat(chunks);
    const headers: OutgoingHttpHeaders = { 'content-type': 'application/json', 'cache-control': 'no-store', 'content-length': out.length };
    for (const h of RETURNED_HEADERS) {
      const v = answer.header?.get(h) ?? answer.trailer?.get(h);
      if (v) headers[h] = v;
    }
    if (answer.status === 429 && headers['retry-after'] === undefined && this.retryAfterSeconds) headers['retry-after'] = String(this.retryAfterSeconds());
    res.writeHead(answer.status, headers);
    res.end(out);
  }
}

async function* oneChunk(b: Uint8Array): AsyncIterable<Uint8Array> {
  yield b;
}

/** The request body as JSON: empty means none; anything but JSON is a 415 saying what to send. */
async function readJsonBody(req: Req, maxBytes: number): Promise<JsonValue | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  // Read to the end even past the limit (leaving the loop early would destroy
  // the request, and with it an HTTP/1.1 connection, before the answer).
  for await (const c of req as AsyncIterable<Buffer>) {
    size += c.length;
    if (size <= maxBytes) chunks.push(c);
  }
  if (size > maxBytes) throw new RestError(413, 'resource_exhausted', `the body is larger than ${maxBytes} bytes (KEYWARD_MAX_REQUEST_BYTES)`);
  const text = Buffer.concat(chunks).toString('utf8');
  const type = req.headers['content-type'];
  if (text.trim() === '') return undefined;
  if (type === undefined || !JSON_TYPE.test(type)) {
    throw new RestError(
      415,
      'invalid_argument',
      `send the body as JSON with "content-type: application/json" (got ${type === undefined ? 'no content type' : `"${type}"`})`,
    );
  }
  try {
    return JSON.parse(text) as JsonValue;
  } catch (e) {
    throw new RestError(400, 'invalid_argument', `the body is not valid JSON: ${(e as Error).message}`);
  }
}
