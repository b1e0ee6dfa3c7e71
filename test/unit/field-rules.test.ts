import { create } from '@bufbuild/protobuf';
import { describe, expect, it } from 'vitest';
import { Action } from '../../gen/keyward/v1/key_pb.js';
import { CreateKeyRequestSchema, ListKeysRequestSchema } from '../../gen/keyward/v1/key_service_pb.js';
import { ListAuditEventsRequestSchema } from '../../gen/keyward/v1/audit_service_pb.js';
import { CreateSdkKeyRequestSchema } from '../../gen/keyward/v1/sdk_key_service_pb.js';
import { firstNulField } from '../../src/rpc/field-rules.js';

const nul = 'a\u0000b';

describe('firstNulField', () => {
  it('finds a NUL in any string field, however deep, and names it', () => {
    const cases: [unknown, string][] = [
      [create(ListKeysRequestSchema, { workspaceId: 'w', customerId: nul }), 'customer_id'],
      [create(ListKeysRequestSchema, { pageToken: nul }), 'page_token'],
      [create(CreateKeyRequestSchema, { key: { name: nul } }), 'key.name'],
      [create(CreateKeyRequestSchema, { key: { grants: [{ scope: 'ok', actions: [Action.READ] }, { scope: nul }] } }), 'key.grants[1].scope'],
      [create(CreateKeyRequestSchema, { key: { metadata: { plan: nul } } }), 'key.metadata["plan"]'],
      [create(CreateKeyRequestSchema, { key: { metadata: { [nul]: 'x' } } }), 'key.metadata["a\\\\0b"]'],
      [create(CreateKeyRequestSchema, { key: { rateLimits: [{ name: nul }] } }), 'key.rate_limits[0].name'],
      [create(CreateSdkKeyRequestSchema, { sdkKey: { scopes: ['*', nul] } }), 'sdk_key.scopes[1]'],
      [create(ListAuditEventsRequestSchema, { action: nul }), 'action'],
    ];
    for (const [msg, path] of cases) {
      const m = msg as { $typeName: string };
      const desc = [ListKeysRequestSchema, CreateKeyRequestSchema, CreateSdkKeyRequestSchema, ListAuditEventsRequestSchema].find(
        (d) => d.typeName === m.$typeName,
      )!;
      expect(firstNulField(desc, m as never), path).toBe(path);
    }
  });

  it('passes requests without one', () => {
    const ok = create(CreateKeyRequestSchema, { key: { name: 'n', customerId: 'c', metadata: { a: 'b' }, grants: [{ scope: 's', actions: [Action.READ] }] } });
    expect(firstNulField(CreateKeyRequestSchema, ok as never)).toBeUndefined();
    expect(firstNulField(ListKeysRequestSchema, create(ListKeysRequestSchema) as never)).toBeUndefined();
  });
});
