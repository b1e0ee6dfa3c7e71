import { create } from '@bufbuild/protobuf';
import { timestampDate, timestampFromDate, type Timestamp } from '@bufbuild/protobuf/wkt';
import { Action, ApiKeySchema, KeyState, type ApiKey as ApiKeyMsg, type Grant as GrantMsg } from '../../gen/keyward/v1/key_pb.js';
import { ScopeSchema } from '../../gen/keyward/v1/scope_pb.js';
import { WorkspaceSchema } from '../../gen/keyward/v1/workspace_pb.js';
import { VerifyCode, VerifyKeyResponseSchema } from '../../gen/keyward/v1/key_service_pb.js';
import type { Scope, Workspace } from '../db/entities.js';
import { invalidArgument } from '../domain/errors.js';
import type { KeyInput, KeyView } from '../domain/keys.js';
import type { Action as DomainAction, KeyState as DomainKeyState } from '../domain/key-state.js';
import type { VerifyCode as DomainVerifyCode, VerifyResult } from '../verify/verifier.js';

// Mapping between protobuf messages and domain values: the only place that
// knows both.

const ts = (d: Date | null | undefined) => (d ? timestampFromDate(d) : undefined);

export function toTime(field: string, t: Timestamp | undefined): Date | undefined {
  if (!t) return undefined;
  const d = timestampDate(t);
  if (Number.isNaN(d.getTime()) || t.nanos < 0 || t.nanos > 999_999_999) throw invalidArgument(field, 'is not a valid timestamp');
  return d;
}

export const workspaceToProto = (w: Workspace) =>
  create(WorkspaceSchema, {
    id: w.id,
    name: w.name,
    keyPrefix: w.keyPrefix,
    createTime: ts(w.createTime),
    updateTime: ts(w.updateTime),
  });

export const scopeToProto = (s: Scope) =>
  create(ScopeSchema, {
    id: s.id,
    workspaceId: s.workspaceId,
    name: s.name,
    description: s.description,
    createTime: ts(s.createTime),
    updateTime: ts(s.updateTime),
  });

const ACTION_TO_PROTO: Record<DomainAction, Action> = {
  read: Action.READ,
  create: Action.CREATE,
  update: Action.UPDATE,
  delete: Action.DELETE,
};

const STATE_TO_PROTO: Record<DomainKeyState, KeyState> = {
  active: KeyState.ACTIVE,
  disabled: KeyState.DISABLED,
  expired: KeyState.EXPIRED,
  revoked: KeyState.REVOKED,
};

export function keyStateFromProto(s: KeyState): DomainKeyState | undefined {
  if (s === KeyState.UNSPECIFIED) return undefined;
  const found = (Object.keys(STATE_TO_PROTO) as DomainKeyState[]).find((k) => STATE_TO_PROTO[k] === s);
  if (!found) throw invalidArgument('state', 'is not a known key state');
  return found;
}

function actionFromProto(a: Action): string {
  const found = (Object.keys(ACTION_TO_PROTO) as DomainAction[]).find((k) => ACTION_TO_PROTO[k] === a);
  // Unknown and UNSPECIFIED values are passed on as-is for the domain to reject.
  return found ?? `action ${a}`;
}

export function keyToProto(v: KeyView): ApiKeyMsg {
  const k = v.key;
  return create(ApiKeySchema, {
    id: k.id,
    workspaceId: k.workspaceId,
    customerId: k.customerId,
    name: k.name,
    description: k.description,
    grants: v.grants.map((g) => ({ scope: g.scope, actions: g.actions.map((a) => ACTION_TO_PROTO[a]) })),
    enabled: k.enabled,
    state: STATE_TO_PROTO[v.state],
    maskedKey: k.maskedKey,
    start: k.start,
    metadata: k.metadata,
    expireTime: ts(k.expireTime),
    lastUsedTime: ts(k.lastUsedTime),
    revokeTime: ts(k.revokeTime),
    createTime: ts(k.createTime),
    updateTime: ts(k.updateTime),
  });
}

export function keyInputFromProto(k: ApiKeyMsg | undefined): KeyInput {
  return {
    workspaceId: k?.workspaceId ?? '',
    customerId: k?.customerId ?? '',
    name: k?.name ?? '',
    description: k?.description ?? '',
    grants: (k?.grants ?? []).map((g: GrantMsg) => ({ scope: g.scope, actions: g.actions.map(actionFromProto) })),
    enabled: k?.enabled,
    metadata: k?.metadata ?? {},
    expireTime: toTime('key.expire_time', k?.expireTime),
  };
}

const CODE_TO_PROTO: Record<DomainVerifyCode, VerifyCode> = {
  valid: VerifyCode.VALID,
  not_found: VerifyCode.NOT_FOUND,
  disabled: VerifyCode.DISABLED,
  expired: VerifyCode.EXPIRED,
  revoked: VerifyCode.REVOKED,
  insufficient_permissions: VerifyCode.INSUFFICIENT_PERMISSIONS,
};

export function verifyCodeToProto(code: DomainVerifyCode): VerifyCode {
  return CODE_TO_PROTO[code];
}

export function verifyResultToProto(r: VerifyResult) {
  const k = r.key;
  return create(VerifyKeyResponseSchema, {
    valid: r.code === 'valid',
    code: CODE_TO_PROTO[r.code],
    ...(k && {
      keyId: k.id,
      workspaceId: k.workspaceId,
      customerId: k.customerId,
      name: k.name,
      permissions: k.permissions,
      metadata: k.metadata,
      expireTime: ts(k.expireTime),
      state: STATE_TO_PROTO[k.state],
    }),
  });
}
