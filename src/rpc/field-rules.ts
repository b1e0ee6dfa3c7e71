// Rules every request field obeys, checked from the descriptors at the edge
// so that no field can be forgotten (a NUL in ListKeys.customer_id once
// reached PostgreSQL): a string may not contain NUL, which PostgreSQL text
// cannot hold. Field-specific rules (lengths, patterns) stay in the domain;
// Timestamps have one conversion (toTime in convert.ts) that names the field.
import type { Interceptor } from '@connectrpc/connect';
import type { DescField, DescMessage, Message } from '@bufbuild/protobuf';
import { KeyService } from '../../gen/keyward/v1/key_service_pb.js';
import { invalidArgument } from '../domain/errors.js';

type Fields = Record<string, unknown>;

const hasNul = (v: unknown): v is string => typeof v === 'string' && v.includes('\u0000');

/** A field's value; a oneof member's only when it is the case set. */
function fieldValue(f: DescField, message: Fields): unknown {
  if (!f.oneof) return message[f.localName];
  const o = message[f.oneof.localName] as { case?: string; value?: unknown } | undefined;
  return o?.case === f.localName ? o.value : undefined;
}

/** The path (`key.metadata["a"]`, `grants[2].scope`) of the first string field holding a NUL, or undefined. */
export function firstNulField(desc: DescMessage, message: Fields, prefix = ''): string | undefined {
  for (const f of desc.fields) {
    const path = prefix ? `${prefix}.${f.name}` : f.name;
    const v = fieldValue(f, message);
    if (v === undefined || v === null) continue;
    switch (f.fieldKind) {
      case 'scalar':
        if (hasNul(v)) return path;
        break;
      case 'message': {
        const inner = firstNulField(f.message, v as Fields, path);
        if (inner) return inner;
        break;
      }
      case 'list': {
        const items = v as unknown[];
        for (let i = 0; i < items.length; i++) {
          if (f.listKind === 'scalar' && hasNul(items[i])) return `${path}[${i}]`;
          if (f.listKind === 'message') {
            const inner = firstNulField(f.message, items[i] as Fields, `${path}[${i}]`);
            if (inner) return inner;
          }
        }
        break;
      }
      case 'map':
        for (const [k, item] of Object.entries(v as Record<string, unknown>)) {
          const at = `${path}[${JSON.stringify(k.replaceAll('\u0000', '\\0').slice(0, 32))}]`;
          if (hasNul(k) || (f.mapKind === 'scalar' && hasNul(item))) return at;
          if (f.mapKind === 'message') {
            const inner = firstNulField(f.message, item as Fields, at);
            if (inner) return inner;
          }
        }
        break;
    }
  }
  return undefined;
}

/**
 * Refuses a request with a NUL in any string field, naming it, before the
 * handler runs. VerifyKey is left to its own checks (a key with a NUL is not
 * well formed; a permission with one is not `scope:action`), as its HTTP/2
 * fast path does: it is the hot path.
 */
export function fieldRulesInterceptor(): Interceptor {
  return (next) => async (req) => {
    if (!req.stream && req.method !== KeyService.method.verifyKey) {
      const field = firstNulField(req.method.input, req.message as Message as unknown as Fields);
      if (field) throw invalidArgument(field, 'must not contain NUL characters');
    }
    return next(req);
  };
}
