// The REST routes of the RPCs: each method's `google.api.http` rule (proto/)
// as a path template, and the router that matches a request's method and path
// to one, binding its path variables. Used by the transcoder (rest.ts) and
// the OpenAPI document (openapi.ts).
import { getOption, hasOption, type DescField, type DescMessage, type DescMethod, type DescService } from '@bufbuild/protobuf';
import { http } from '../../gen/google/api/annotations_pb.js';
import type { HttpRule } from '../../gen/google/api/http_pb.js';
import type { OutgoingHttpHeaders } from 'node:http';

type Segment = { literal: string } | { variable: string[] };

/** One HTTP binding of an RPC. */
export interface RestRoute {
  /** GET, POST, PUT, PATCH or DELETE. */
  httpMethod: string;
  /** As declared: `/v1/workspaces/{key.workspace_id}/api-keys`. */
  template: string;
  segments: Segment[];
  /** The custom method after the last segment (`rotate` of `/v1/api-keys/{id}:rotate`). */
  verb: string | undefined;
  /** `*`, a top-level field name, or undefined (no body). */
  body: string | undefined;
  service: DescService;
  method: DescMethod;
}

/** Every binding of the `google.api.http` options of `services`' methods. */
export function restRoutes(services: readonly DescService[]): RestRoute[] {
  const out: RestRoute[] = [];
  for (const service of services) {
    for (const method of service.methods) {
      if (!hasOption(method, http)) continue;
      const rule = getOption(method, http);
      for (const r of [rule, ...rule.additionalBindings]) out.push(routeOf(service, method, r));
    }
  }
  return out;
}

function routeOf(service: DescService, method: DescMethod, rule: HttpRule): RestRoute {
  const p = rule.pattern;
  if (p.case === undefined || p.case === 'custom') throw new Error(`${method.name}: only get, put, post, patch and delete bindings are supported`);
  const template = p.value;
  const where = `${service.typeName}.${method.name} (${template})`;
  if (!template.startsWith('/')) throw new Error(`${where}: the path must start with /`);
  const colon = template.lastIndexOf(':');
  const hasVerb = colon > template.lastIndexOf('/') && colon > template.lastIndexOf('}');
  const path = hasVerb ? template.slice(0, colon) : template;
  const segments = path
    .slice(1)
    .split('/')
    .map((s): Segment => {
      const v = /^\{([a-z_][a-z0-9_.]*)(?:=\*)?\}$/.exec(s);
      if (v) {
        const names = v[1]!.split('.');
        fieldAt(method.input, names, where);
        return { variable: names };
      }
      if (!/^[A-Za-z0-9._~-]+$/.test(s)) throw new Error(`${where}: unsupported path segment ${s}`);
      return { literal: s };
    });
  const body = rule.body === '' ? undefined : rule.body;
  if (body !== undefined && body !== '*') {
    const f = method.input.fields.find((x) => x.name === body);
    if (f?.fieldKind !== 'message') throw new Error(`${where}: body ${body} is not a message field of ${method.input.typeName}`);
  }
  return { httpMethod: p.case.toUpperCase(), template, segments, verb: hasVerb ? template.slice(colon + 1) : undefined, body, service, method };
}

/** The field a dotted path names, through singular message fields. */
function fieldAt(message: DescMessage, names: readonly string[], where: string): DescField {
  let m: DescMessage | undefined = message;
  let f: DescField | undefined;
  for (const n of names) {
    f = m?.fields.find((x) => x.name === n);
    if (!f) throw new Error(`${where}: ${names.join('.')} is not a field of ${message.typeName}`);
    m = f.fieldKind === 'message' ? f.message : undefined;
  }
  return f!;
}

/** A request failing before it reaches an RPC: said in the same JSON shape as Connect's errors. */
export class RestError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly headers: OutgoingHttpHeaders = {},
  ) {
    super(message);
  }
}

export interface Match {
  route: RestRoute;
  /** Path variable values, decoded, by field path. */
  vars: [string[], string][];
}

/** The routes, indexed for matching a method and a path. */
export class RestRouter {
  constructor(readonly routes: readonly RestRoute[]) {}

  /** The route for `httpMethod` and `path`; a RestError 404 or 405 (naming the methods that path takes) if none. */
  match(httpMethod: string, path: string): Match {
    const allowed = new Set<string>();
    for (const route of this.routes) {
      const vars = matchPath(route, path);
      if (!vars) continue;
      if (route.httpMethod === httpMethod) return { route, vars };
      allowed.add(route.httpMethod);
    }
    if (allowed.size > 0) {
      const methods = [...allowed].sort().join(', ');
      throw new RestError(405, 'unimplemented', `${path} takes ${methods}, not ${httpMethod}`, { allow: methods });
    }
    throw new RestError(404, 'not_found', `no such path: ${path} (the REST paths are listed in /openapi.json)`);
  }

  /** Whether some route matches `path`, whatever its method. */
  has(path: string, test: (r: RestRoute) => boolean = () => true): boolean {
    return this.routes.some((r) => test(r) && matchPath(r, path) !== undefined);
  }
}

function matchPath(route: RestRoute, path: string): [string[], string][] | undefined {
  let rest = path;
  if (route.verb !== undefined) {
    if (!rest.endsWith(`:${route.verb}`)) return undefined;
    rest = rest.slice(0, -route.verb.length - 1);
  }
  const parts = rest.slice(1).split('/');
  if (!rest.startsWith('/') || parts.length !== route.segments.length) return undefined;
  const vars: [string[], string][] = [];
  for (let i = 0; i < parts.length; i++) {
    const s = route.segments[i]!;
    const part = parts[i]!;
    if ('literal' in s) {
      if (part !== s.literal) return undefined;
    } else {
      if (part === '') return undefined;
      let value: string;
      try {
        value = decodeURIComponent(part);
      } catch {
        return undefined;
      }
      vars.push([s.variable, value]);
    }
  }
  return vars;
}
