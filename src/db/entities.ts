import { defineEntity, p } from '@mikro-orm/core';
import { newId } from '../ids.js';

// Every table's schema is written by hand in src/db/migrations; these
// definitions map the same columns for the ORM.

const id = () =>
  p
    .uuid()
    .primary()
    .onCreate(() => newId());
const createTime = () => p.datetime().onCreate(() => new Date());
const updateTime = () =>
  p
    .datetime()
    .onCreate(() => new Date())
    .onUpdate(() => new Date());

/** A rate limit as api_keys.rate_limits keeps it. */
export interface StoredRateLimit {
  name: string;
  limit: number;
  duration_ms: number;
}

const WorkspaceSchema = defineEntity({
  name: 'Workspace',
  tableName: 'workspaces',
  properties: {
    id: id(),
    name: p.text(),
    keyPrefix: p.text(),
    createTime: createTime(),
    updateTime: updateTime(),
    deleteTime: p.datetime().nullable(),
  },
});
export class Workspace extends WorkspaceSchema.class {}
WorkspaceSchema.setClass(Workspace);

const ScopeSchema = defineEntity({
  name: 'Scope',
  tableName: 'scopes',
  properties: {
    id: id(),
    workspaceId: p.uuid(),
    name: p.text(),
    description: p.text(),
    /** The actions keys may be granted on the scope (src/domain/permissions.ts). */
    actions: p.json<string[]>(),
    createTime: createTime(),
    updateTime: updateTime(),
  },
});
export class Scope extends ScopeSchema.class {}
ScopeSchema.setClass(Scope);

const ApiKeySchema = defineEntity({
  name: 'ApiKey',
  tableName: 'api_keys',
  properties: {
    id: id(),
    workspaceId: p.uuid(),
    customerId: p.text(),
    name: p.text(),
    description: p.text(),
    enabled: p.boolean(),
    maskedKey: p.text(),
    start: p.text(),
    metadata: p.json<Record<string, string>>(),
    expireTime: p.datetime().nullable(),
    lastUsedTime: p.datetime().nullable(),
    revokeTime: p.datetime().nullable(),
    createTime: createTime(),
    updateTime: updateTime(),
    rateLimits: p.json<StoredRateLimit[]>(),
    // Written by VerifyKey with raw SQL (src/verify/usage-limits.ts) as well.
    remainingUses: p.bigint('number').nullable(),
    refillAmount: p.bigint('number').nullable(),
    refillInterval: p.text().nullable(),
    refillDay: p.smallint().nullable(),
    lastRefillTime: p.datetime().nullable(),
    // Optimistic locking: concurrent updates of one key cannot lose writes.
    version: p.integer().version(),
  },
});
export class ApiKey extends ApiKeySchema.class {}
ApiKeySchema.setClass(ApiKey);

/** A secret of a key, kept only as SHA-256. A rotated-out secret has an expire_time. */
const ApiKeySecretSchema = defineEntity({
  name: 'ApiKeySecret',
  tableName: 'api_key_secrets',
  properties: {
    hash: p.text().primary(),
    apiKeyId: p.uuid(),
    expireTime: p.datetime().nullable(),
    createTime: createTime(),
  },
});
export class ApiKeySecret extends ApiKeySecretSchema.class {}
ApiKeySecretSchema.setClass(ApiKeySecret);

const ApiKeyGrantSchema = defineEntity({
  name: 'ApiKeyGrant',
  tableName: 'api_key_grants',
  properties: {
    apiKeyId: p.uuid().primary(),
    scopeId: p.uuid().primary(),
    actions: p.json<string[]>(),
  },
});
export class ApiKeyGrant extends ApiKeyGrantSchema.class {}
ApiKeyGrantSchema.setClass(ApiKeyGrant);

const SdkKeySchema = defineEntity({
  name: 'SdkKey',
  tableName: 'sdk_keys',
  properties: {
    id: id(),
    name: p.text(),
    secretHash: p.text(),
    scopes: p.json<string[]>(),
    workspaceIds: p.json<string[]>(),
    createTime: createTime(),
    revokeTime: p.datetime().nullable(),
    /** Written at most once a minute per process (src/auth/sdk-key-auth.ts). */
    lastUsedTime: p.datetime().nullable(),
  },
});
export class SdkKey extends SdkKeySchema.class {}
SdkKeySchema.setClass(SdkKey);

/** A grant as portal_sessions.allowed_grants keeps it. */
interface StoredGrant {
  scope: string;
  actions: string[];
}

/** A customer's browser session of the portal; the token is kept only as SHA-256. */
const PortalSessionSchema = defineEntity({
  name: 'PortalSession',
  tableName: 'portal_sessions',
  properties: {
    id: id(),
    tokenHash: p.text(),
    workspaceId: p.uuid(),
    customerId: p.text(),
    allowedGrants: p.json<StoredGrant[]>(),
    /** The SDK key that minted it. */
    createdBy: p.text(),
    createTime: createTime(),
    expireTime: p.datetime(),
  },
});
export class PortalSession extends PortalSessionSchema.class {}
PortalSessionSchema.setClass(PortalSession);

const AuditEventSchema = defineEntity({
  name: 'AuditEvent',
  tableName: 'audit_events',
  properties: {
    id: id(),
    time: p.datetime().onCreate(() => new Date()),
    actor: p.text(),
    action: p.text(),
    resourceType: p.text(),
    resourceId: p.text(),
    workspaceId: p.uuid().nullable(),
    details: p.json<Record<string, unknown>>().nullable(),
    /** The x-request-id of the RPC that made the change; null for the CLI and aggregated events. */
    requestId: p.text().nullable(),
    /** How many times an aggregated security event happened in its minute; 1 for changes. */
    count: p.integer().default(1),
    /** kind|subject|minute of an aggregated security event; null for changes. */
    aggregateKey: p.text().nullable(),
  },
});
export class AuditEvent extends AuditEventSchema.class {}
AuditEventSchema.setClass(AuditEvent);

/** A workspace's webhook. The signing secret is stored as is: signing needs it. */
const WebhookSchema = defineEntity({
  name: 'Webhook',
  tableName: 'webhooks',
  properties: {
    workspaceId: p.uuid().primary(),
    url: p.text(),
    secret: p.text(),
    expiringNoticeDays: p.integer(),
    createTime: createTime(),
    updateTime: updateTime(),
  },
});
export class Webhook extends WebhookSchema.class {}
WebhookSchema.setClass(Webhook);

export const entities = [
  WorkspaceSchema,
  ScopeSchema,
  ApiKeySchema,
  ApiKeySecretSchema,
  ApiKeyGrantSchema,
  PortalSessionSchema,
  SdkKeySchema,
  AuditEventSchema,
  WebhookSchema,
];
