// An OpenAPI 3.1 document of the Connect JSON API, made from the service
// descriptors (and the comments in proto/), so that any HTTP client, Postman
// or Swagger UI can call Keyward: every unary RPC is `POST
// /keyward.v1.Service/Method` with the request message as a JSON body.
// Served at /openapi.json; committed as docs/openapi.json (bin/openapi.js
// writes it, a test checks it is current).
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { VERSION } from '../version.js';
import { restRoutes } from './rest-routes.js';
import { ScalarType, type DescMethod, type DescEnum, type DescField, type DescMessage, type DescService } from '@bufbuild/protobuf';

type Schema = Record<string, unknown>;

const PROTO_DIR = path.resolve(import.meta.dirname, '../../proto');

/** Connect's HTTP status for each error code a Keyward RPC answers with. */
const ERROR_STATUSES: [status: string, codes: string][] = [
  ['400', 'invalid_argument, failed_precondition'],
  ['401', 'unauthenticated'],
  ['403', 'permission_denied'],
  ['404', 'not_found'],
  ['409', 'already_exists'],
  ['429', 'resource_exhausted'],
  ['500', 'internal'],
  ['503', 'unavailable'],
  ['504', 'deadline_exceeded'],
];

/** proto3 JSON of the well-known types Keyward uses. */
const WELL_KNOWN: Record<string, Schema> = {
  'google.protobuf.Timestamp': { type: 'string', format: 'date-time', description: 'RFC 3339, UTC: 2026-12-06T20:48:01Z' },
  'google.protobuf.Duration': { type: 'string', pattern: '^-?[0-9]+(\\.[0-9]{1,9})?s$', description: 'Seconds with an s suffix: 3600s, 1.5s' },
  'google.protobuf.FieldMask': { type: 'string', description: 'Field paths in lowerCamelCase, comma-separated: name,expireTime' },
  'google.protobuf.Empty': { type: 'object', additionalProperties: false },
};

function scalarSchema(t: ScalarType): Schema {
  switch (t) {
    case ScalarType.STRING:
      return { type: 'string' };
    case ScalarType.BOOL:
      return { type: 'boolean' };
    case ScalarType.BYTES:
      return { type: 'string', contentEncoding: 'base64' };
    case ScalarType.DOUBLE:
    case ScalarType.FLOAT:
      return { type: 'number' };
    case ScalarType.INT64:
    case ScalarType.SINT64:
    case ScalarType.SFIXED64:
    case ScalarType.UINT64:
    case ScalarType.FIXED64:
      // proto3 JSON writes 64-bit integers as strings and reads both.
      return { type: ['string', 'integer'], format: 'int64', pattern: '^-?[0-9]+$' };
    default:
      return { type: 'integer', format: t === ScalarType.UINT32 || t === ScalarType.FIXED32 ? 'uint32' : 'int32' };
  }
}

/** `// comments` right above each `message`, field, `service` and `rpc` of the proto files, by full name. */
function protoComments(): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (dir: string) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.proto')) read(readFileSync(p, 'utf8'));
    }
  };
  const read = (text: string) => {
    const pkg = /^package\s+([\w.]+);/m.exec(text)?.[1] ?? '';
    // One entry per open brace: a message, service or enum name, or '' for
    // other blocks (an rpc's options, oneofs), which add nothing to names.
    const scope: string[] = [];
    let comment: string[] = [];
    for (const raw of text.split('\n')) {
      const line = raw.trim();
      if (line.startsWith('//')) {
        comment.push(line.replace(/^\/\/\s?/, ''));
        continue;
      }
      const block = /^(message|service|enum)\s+(\w+)/.exec(line);
      const rpc = /^rpc\s+(\w+)\s*\(/.exec(line);
      const field = /^(?:repeated\s+|optional\s+)?(?:map<[^>]+>|[\w.]+)\s+(\w+)\s*=\s*\d+/.exec(line);
      const name = block?.[2] ?? rpc?.[1] ?? field?.[1];
      if (name && comment.length) out.set([pkg, ...scope.filter((s) => s !== ''), name].join('.'), comment.join(' ').trim());
      const code = line.replace(/"[^"]*"/g, '');
      for (const ch of code) {
        if (ch === '{') scope.push(block ? block[2]! : '');
        else if (ch === '}') scope.pop();
      }
      comment = [];
    }
  };
  walk(PROTO_DIR);
  return out;
}

/** The field at a path of proto field names. */
function fieldPath(m: DescMessage, names: readonly string[]): DescField {
  let cur: DescMessage | undefined = m;
  let f: DescField | undefined;
  for (const n of names) {
    f = cur?.fields.find((x) => x.name === n);
    cur = f?.fieldKind === 'message' ? f.message : undefined;
  }
  if (!f) throw new Error(`${m.typeName} has no field ${names.join('.')}`);
  return f;
}

/** How a field is written as a query parameter, or undefined if it cannot be (a nested message). */
function queryParamSchema(f: DescField): Schema | undefined {
  switch (f.fieldKind) {
    case 'scalar':
      return scalarSchema(f.scalar);
    case 'enum':
      return { type: 'string', enum: f.enum.values.map((v) => v.name) };
    case 'message':
      return WELL_KNOWN[f.message.typeName];
    case 'list':
      if (f.listKind === 'scalar') return { type: 'array', items: scalarSchema(f.scalar) };
      if (f.listKind === 'enum') return { type: 'array', items: { type: 'string', enum: f.enum.values.map((v) => v.name) } };
      return undefined;
    default:
      return undefined;
  }
}

export function openApiDocument(services: readonly DescService[], opts: { serverUrl?: string } = {}): Schema {
  const comments = protoComments();
  const schemas: Record<string, Schema> = {};
  const ref = (typeName: string) => ({ $ref: `#/components/schemas/${typeName}` });

  function enumSchema(e: DescEnum): Schema {
    if (!schemas[e.typeName]) {
      schemas[e.typeName] = { type: 'string', enum: e.values.map((v) => v.name), description: comments.get(e.typeName) };
    }
    return ref(e.typeName);
  }

  function messageSchema(m: DescMessage): Schema {
    const known = WELL_KNOWN[m.typeName];
    if (known) return known;
    if (!schemas[m.typeName]) {
      const properties: Record<string, Schema> = {};
      schemas[m.typeName] = { type: 'object', properties, additionalProperties: false, description: comments.get(m.typeName) };
      for (const f of m.fields) {
        const description = comments.get(`${m.typeName}.${f.name}`);
        properties[f.jsonName] = description ? { ...fieldSchema(f), description } : fieldSchema(f);
      }
    }
    return ref(m.typeName);
  }

  function fieldSchema(f: DescField): Schema {
    switch (f.fieldKind) {
      case 'scalar':
        return scalarSchema(f.scalar);
      case 'enum':
        return enumSchema(f.enum);
      case 'message':
        return messageSchema(f.message);
      case 'list':
        return {
          type: 'array',
          items: f.listKind === 'scalar' ? scalarSchema(f.scalar) : f.listKind === 'enum' ? enumSchema(f.enum) : messageSchema(f.message),
        };
      case 'map':
        return {
          type: 'object',
          additionalProperties: f.mapKind === 'scalar' ? scalarSchema(f.scalar) : f.mapKind === 'enum' ? enumSchema(f.enum) : messageSchema(f.message),
        };
    }
  }

  const errorResponses = Object.fromEntries(ERROR_STATUSES.map(([status]) => [status, { $ref: `#/components/responses/Error${status}` }]));
  const paths: Record<string, Schema> = {};
  for (const s of services) {
    for (const m of s.methods) {
      if (m.methodKind !== 'unary') continue;
      paths[`/${s.typeName}/${m.name}`] = {
        post: {
          operationId: `${s.name}_${m.name}`,
          tags: [s.name],
          summary: m.name.replace(/([a-z])([A-Z])/g, '$1 $2'),
          description: comments.get(`${s.typeName}.${m.name}`),
          parameters: [{ name: 'Connect-Protocol-Version', in: 'header', required: false, schema: { type: 'string', enum: ['1'] } }],
          requestBody: { required: true, content: { 'application/json': { schema: messageSchema(m.input) } } },
          responses: { '200': { description: 'OK', content: { 'application/json': { schema: messageSchema(m.output) } } }, ...errorResponses },
        },
      };
    }
  }
  const bindings = new Map<DescMethod, number>();
  for (const route of restRoutes(services)) {
    const { service: s, method: m } = route;
    const pathBound = new Set<string>();
    const parameters: Schema[] = [];
    const openApiPath =
      '/' +
      route.segments
        .map((seg) => {
          if ('literal' in seg) return seg.literal;
          const f = fieldPath(m.input, seg.variable);
          const name = seg.variable[seg.variable.length - 1]!;
          pathBound.add(seg.variable.join('.'));
          parameters.push({ name, in: 'path', required: true, description: comments.get(`${f.parent.typeName}.${f.name}`), schema: fieldSchema(f) });
          return `{${name}}`;
        })
        .join('/') +
      (route.verb === undefined ? '' : `:${route.verb}`);
    const bodyField = route.body === undefined || route.body === '*' ? undefined : m.input.fields.find((f) => f.name === route.body);
    // Query parameters: the request's top-level fields that neither the path nor the body binds.
    if (route.body !== '*') {
      for (const f of m.input.fields) {
        if (f === bodyField || pathBound.has(f.name)) continue;
        const schema = queryParamSchema(f);
        if (schema) parameters.push({ name: f.name, in: 'query', required: false, description: comments.get(`${m.input.typeName}.${f.name}`), schema });
      }
    }
    let requestBody: Schema | undefined;
    if (route.body === '*') {
      requestBody = { required: false, content: { 'application/json': { schema: messageSchema(m.input) } } };
    } else if (bodyField?.fieldKind === 'message') {
      // The body is the named field's message; the request's other top-level fields may sit beside its fields (flat JSON).
      messageSchema(bodyField.message);
      const properties: Record<string, Schema> = { ...(schemas[bodyField.message.typeName]!.properties as Record<string, Schema>) };
      for (const f of m.input.fields) {
        if (f !== bodyField && !pathBound.has(f.name)) properties[f.jsonName] = fieldSchema(f);
      }
      requestBody = {
        required: true,
        description: `The ${bodyField.message.name}${m.input.fields.length > 1 ? `, with ${m.input.name}'s other fields beside its own` : ''}.`,
        content: { 'application/json': { schema: { type: 'object', properties, additionalProperties: false } } },
      };
    }
    const item = (paths[openApiPath] ??= {});
    const verb = route.httpMethod.toLowerCase();
    // The first binding is `Service_Method_rest`, additional ones `_rest_2`, `_rest_3`...
    const n = (bindings.get(m) ?? 0) + 1;
    bindings.set(m, n);
    item[verb] = {
      operationId: `${s.name}_${m.name}_rest${n > 1 ? `_${n}` : ''}`,
      tags: [s.name],
      summary: `${m.name.replace(/([a-z])([A-Z])/g, '$1 $2')} (REST)`,
      description: comments.get(`${s.typeName}.${m.name}`),
      parameters,
      ...(requestBody ? { requestBody } : {}),
      responses: { '200': { description: 'OK', content: { 'application/json': { schema: messageSchema(m.output) } } }, ...errorResponses },
    };
  }
  schemas['connect.Error'] = {
    type: 'object',
    required: ['code'],
    properties: {
      code: {
        type: 'string',
        enum: [
          'invalid_argument',
          'failed_precondition',
          'unauthenticated',
          'permission_denied',
          'not_found',
          'already_exists',
          'resource_exhausted',
          'internal',
          'unavailable',
          'deadline_exceeded',
          'unimplemented',
        ],
      },
      message: { type: 'string', description: 'What went wrong; a bad field is named first: `key.name: must be at most 120 characters`' },
      details: { type: 'array', items: { type: 'object' } },
    },
  };
  return {
    openapi: '3.1.0',
    info: {
      title: 'Keyward',
      version: VERSION,
      description:
        'The Connect protocol with JSON: every RPC is a POST of its request message as proto3 JSON (lowerCamelCase fields, 64-bit integers as strings, enums by name, times as RFC 3339) to /<package>.<Service>/<Method>. gRPC and gRPC-Web clients generated from proto/ reach the same RPCs on the same port. The same RPCs also have REST paths under /v1/ (their google.api.http options in proto/): path variables and query parameters (snake_case or lowerCamelCase names, `a.b` for nested fields, repeated by repeating), a flat JSON body, the same answers and the same errors.',
      license: { name: 'Apache-2.0', identifier: 'Apache-2.0' },
    },
    servers: [{ url: opts.serverUrl ?? 'http://localhost:8080' }],
    security: [{ bearer: [] }],
    tags: services.map((s) => ({ name: s.name, description: comments.get(s.typeName) })),
    paths,
    components: {
      responses: Object.fromEntries(
        ERROR_STATUSES.map(([status, codes]) => [`Error${status}`, { description: codes, content: { 'application/json': { schema: ref('connect.Error') } } }]),
      ),
      securitySchemes: {
        bearer: {
          type: 'http',
          scheme: 'bearer',
          description: 'An SDK key (kws_...); the portal RPCs also take a customer portal token (kwp_...).',
        },
      },
      schemas: Object.fromEntries(Object.entries(schemas).sort(([a], [b]) => a.localeCompare(b))),
    },
  };
}
