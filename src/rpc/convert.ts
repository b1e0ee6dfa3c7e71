import { create } from '@bufbuild/protobuf';
import { durationFromMs, timestampDate, timestampFromDate, type Duration, type Timestamp } from '@bufbuild/protobuf/wkt';
import {
  Action,
  ApiKeySchema,
  KeyState,
  RefillInterval,
  type ApiKey as ApiKeyMsg,
  type Grant as GrantMsg,
  type Refill as RefillMsg,
} from '../../gen/keyward/v1/key_pb.js';
import { ScopeSchema } from '../../gen/keyward/v1/scope_pb.js';
import { WorkspaceSchema } from '../../gen/keyward/v1/workspace_pb.js';
import { VerifyCode, VerifyKeyResponseSchema, type VerifyKeyRequest } from '../../gen/keyward/v1/key_service_pb.js';
import { AuditEventSchema } from '../../gen/keyward/v1/audit_event_pb.js';
import { WebhookSchema } from '../../gen/keyward/v1/webhook_pb.js';
import { DeliveryState, WebhookDeliverySchema } from '../../gen/keyward/v1/webhook_service_pb.js';
import type { Delivery } from '../domain/webhooks.js';
import type { AuditEvent, Scope, SdkKey, Webhook, Workspace } from '../db/entities.js';
import { SdkKeySchema as SdkKeyMsgSchema } from '../../gen/keyward/v1/sdk_key_service_pb.js';
import type { UsageCount, UsageReport } from '../domain/usage.js';
import { invalidArgument } from '../domain/errors.js';
import type { KeyInput, KeyView } from '../domain/keys.js';
import type { KeyState as DomainKeyState } from '../domain/key-state.js';
import { permissionStrings, WHOLE_SCOPE, type GrantSpec } from '../domain/permissions.js';
import type { RateLimitInput, RefillInput, RefillSpec } from '../domain/limits.js';
import type { VerifyCode as DomainVerifyCode, VerifyInput, VerifyResult } from '../verify/verifier.js';
import type { LimitOutcome } from '../verify/contract.js';

// Mapping between protobuf messages and domain values: the only place that
// knows both.

const ts = (d: Date | null | undefined) => (d ? timestampFromDate(d) : undefined);

/** The range google.protobuf.Timestamp allows, and PostgreSQL's timestamptz stores: years 1 to 9999 (UTC). */
const MIN_TIMESTAMP_SECONDS = -62_135_596_800n; // 0001-01-01T00:00:00Z
const MAX_TIMESTAMP_SECONDS = 253_402_300_799n; // 9999-12-31T23:59:59Z

/** The one conversion of every request Timestamp: outside years 1..9999 or with bad nanos it is INVALID_ARGUMENT naming the field. */
export function toTime(field: string, t: Timestamp | undefined): Date | undefined {
  if (!t) return undefined;
  if (t.seconds < MIN_TIMESTAMP_SECONDS || t.seconds > MAX_TIMESTAMP_SECONDS || t.nanos < 0 || t.nanos > 999_999_999) {
    throw invalidArgument(field, 'is not a valid timestamp (years 1 to 9999, nanos 0 to 999999999)');
  }
  return timestampDate(t);
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
    actions: s.actions,
    createTime: ts(s.createTime),
    updateTime: ts(s.updateTime),
  });

/** The standard actions' enum values; other actions travel by name (Grant.custom_actions). */
const ACTION_TO_PROTO: Readonly<Record<string, Action>> = {
  read: Action.READ,
  create: Action.CREATE,
  update: Action.UPDATE,
  delete: Action.DELETE,
};
const ACTION_FROM_PROTO = new Map(Object.entries(ACTION_TO_PROTO).map(([name, a]) => [a, name]));

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

/** Grant messages as the domain's: actions by name, the whole scope as WHOLE_SCOPE. */
export function grantsFromProto(grants: readonly GrantMsg[]): GrantSpec[] {
  return grants.map((g) => ({
    scope: g.scope,
    // Unknown and UNSPECIFIED values are passed on as-is for the domain to reject.
    actions: [...g.actions.map((a) => ACTION_FROM_PROTO.get(a) ?? `action ${a}`), ...g.customActions, ...(g.allActions ? [WHOLE_SCOPE] : [])],
  }));
}

export function grantsToProto(grants: readonly GrantSpec[]) {
  return grants.map((g) => ({
    scope: g.scope,
    actions: g.actions.flatMap((a) => ACTION_TO_PROTO[a] ?? []),
    customActions: g.actions.filter((a) => ACTION_TO_PROTO[a] === undefined && a !== WHOLE_SCOPE),
    allActions: g.actions.includes(WHOLE_SCOPE),
  }));
}

/** An int64 as a JS number; values past 2^53 become unsafe integers, which the domain rejects. */
const int = (n: bigint) => Number(n);

/** A duration in whole milliseconds; NaN if it has a fraction of a millisecond or mixed signs. */
export function durationToMs(d: Duration | undefined): number | undefined {
  if (!d) return undefined;
  if (d.nanos % 1_000_000 !== 0 || (d.seconds > 0n && d.nanos < 0) || (d.seconds < 0n && d.nanos > 0)) return NaN;
  return Number(d.seconds) * 1000 + d.nanos / 1_000_000;
}

const REFILL_TO_PROTO: Record<RefillSpec['interval'], RefillInterval> = {
  daily: RefillInterval.DAILY,
  monthly: RefillInterval.MONTHLY,
};

function refillFromProto(r: RefillMsg | undefined): RefillInput | undefined {
  if (!r) return undefined;
  const interval = r.interval === RefillInterval.DAILY ? 'daily' : r.interval === RefillInterval.MONTHLY ? 'monthly' : undefined;
  return { amount: int(r.amount), interval, dayOfMonth: r.dayOfMonth };
}

export function keyToProto(v: KeyView): ApiKeyMsg {
  const k = v.key;
  const refill = v.refill;
  return create(ApiKeySchema, {
    id: k.id,
    workspaceId: k.workspaceId,
    customerId: k.customerId,
    name: k.name,
    description: k.description,
    grants: grantsToProto(v.grants),
    scopes: permissionStrings(v.grants),
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
    rateLimits: v.rateLimits.map((l) => ({ name: l.name, limit: BigInt(l.limit), duration: durationFromMs(l.durationMs) })),
    remainingUses: v.usage === null ? undefined : BigInt(v.usage.remainingUses),
    refill: refill
      ? {
          amount: BigInt(refill.amount),
          interval: REFILL_TO_PROTO[refill.interval],
          dayOfMonth: refill.dayOfMonth ?? 0,
          lastRefillTime: ts(v.usage?.lastRefillTime),
        }
      : undefined,
  });
}

export function keyInputFromProto(k: ApiKeyMsg | undefined): KeyInput {
  return {
    workspaceId: k?.workspaceId ?? '',
    customerId: k?.customerId ?? '',
    name: k?.name ?? '',
    description: k?.description ?? '',
    grants: grantsFromProto(k?.grants ?? []),
    permissions: k?.scopes ?? [],
    enabled: k?.enabled,
    metadata: k?.metadata ?? {},
    expireTime: toTime('key.expire_time', k?.expireTime),
    rateLimits: (k?.rateLimits ?? []).map((l): RateLimitInput => ({ name: l.name, limit: int(l.limit), durationMs: durationToMs(l.duration) })),
    remainingUses: k?.remainingUses === undefined ? undefined : int(k.remainingUses),
    refill: refillFromProto(k?.refill),
  };
}

/** What VerifyKey verifies, from its request (cost undefined when unset). */
export const verifyInputFromProto = (r: VerifyKeyRequest): VerifyInput => ({
  key: r.key,
  requiredPermissions: r.requiredPermissions,
  workspaceId: r.workspaceId,
  cost: r.cost === undefined ? undefined : Number(r.cost),
});

const CODE_TO_PROTO: Record<DomainVerifyCode, VerifyCode> = {
  valid: VerifyCode.VALID,
  not_found: VerifyCode.NOT_FOUND,
  disabled: VerifyCode.DISABLED,
  expired: VerifyCode.EXPIRED,
  revoked: VerifyCode.REVOKED,
  insufficient_permissions: VerifyCode.INSUFFICIENT_PERMISSIONS,
  rate_limited: VerifyCode.RATE_LIMITED,
  usage_exceeded: VerifyCode.USAGE_EXCEEDED,
};

function limitsToProto(o: LimitOutcome) {
  return {
    rateLimits: o.rateLimits.map((l) => ({
      name: l.name,
      limit: BigInt(l.limit),
      remaining: BigInt(l.remaining),
      resetTime: timestampFromDate(new Date(l.resetMs)),
      exceeded: l.exceeded,
    })),
    remainingUses: o.remainingUses === undefined ? undefined : BigInt(o.remainingUses),
  };
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
    ...(r.limits && limitsToProto(r.limits)),
  });
}

/** A stored verify code as the proto enum; a code this build does not know is UNSPECIFIED. */
export function verifyCodeToProto(code: string): VerifyCode {
  return (CODE_TO_PROTO as Record<string, VerifyCode>)[code] ?? VerifyCode.UNSPECIFIED;
}

const usageCountsToProto = (counts: UsageCount[]) => counts.map((c) => ({ code: verifyCodeToProto(c.code), count: BigInt(c.count) }));

export function usageReportToProto(r: UsageReport) {
  return {
    buckets: r.buckets.map((b) => ({ startTime: ts(b.hour), counts: usageCountsToProto(b.counts), total: BigInt(b.total) })),
    totals: usageCountsToProto(r.totals),
    total: BigInt(r.total),
  };
}

export const auditEventToProto = (e: AuditEvent) =>
  create(AuditEventSchema, {
    id: e.id,
    time: ts(e.time),
    actor: e.actor,
    action: e.action,
    resourceType: e.resourceType,
    resourceId: e.resourceId,
    workspaceId: e.workspaceId ?? '',
    requestId: e.requestId ?? '',
    count: BigInt(e.count),
  });

export const webhookToProto = (w: Webhook) =>
  create(WebhookSchema, {
    workspaceId: w.workspaceId,
    url: w.url,
    expiringNoticeDays: w.expiringNoticeDays,
    createTime: ts(w.createTime),
    updateTime: ts(w.updateTime),
  });

export const sdkKeyToProto = (k: SdkKey) =>
  create(SdkKeyMsgSchema, {
    id: k.id,
    name: k.name,
    scopes: k.scopes,
    workspaceIds: k.workspaceIds,
    createTime: ts(k.createTime),
    lastUsedTime: ts(k.lastUsedTime),
    revokeTime: ts(k.revokeTime),
  });

const DELIVERY_STATE_TO_PROTO: Record<Delivery['state'], DeliveryState> = {
  pending: DeliveryState.PENDING,
  delivered: DeliveryState.DELIVERED,
  failed: DeliveryState.FAILED,
};

export const deliveryToProto = (d: Delivery) =>
  create(WebhookDeliverySchema, {
    eventId: d.eventId,
    eventType: d.eventType,
    keyId: d.keyId,
    state: DELIVERY_STATE_TO_PROTO[d.state],
    attempts: d.attempts,
    lastError: d.lastError,
    nextAttemptTime: ts(d.nextAttemptTime),
    deliveredTime: ts(d.deliveredTime),
    failedTime: ts(d.failedTime),
    createTime: ts(d.createTime),
  });
