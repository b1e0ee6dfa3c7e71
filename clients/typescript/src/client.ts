// `new Keyward({ baseUrl, sdkKey })`: the management API and VerifyKey over the
// generated Connect clients, with plain-object inputs, one error class and
// retries for idempotent calls.
import { createClient, type Client, type Interceptor, type Transport } from '@connectrpc/connect';
import { createConnectTransport } from '@connectrpc/connect-node';
import type { DescService, MessageInitShape } from '@bufbuild/protobuf';
import { durationFromMs, timestampDate, timestampFromDate, type Timestamp } from '@bufbuild/protobuf/wkt';
import { AuditService } from '../../../gen/keyward/v1/audit_service_pb.js';
import type { AuditEvent } from '../../../gen/keyward/v1/audit_event_pb.js';
import { KeyState, RefillInterval, type ApiKey, type ApiKeySchema } from '../../../gen/keyward/v1/key_pb.js';
import { KeyService, VerifyCode, type VerifyKeyResponse } from '../../../gen/keyward/v1/key_service_pb.js';
import { PortalService } from '../../../gen/keyward/v1/portal_service_pb.js';
import type { Scope } from '../../../gen/keyward/v1/scope_pb.js';
import { ScopeService } from '../../../gen/keyward/v1/scope_service_pb.js';
import { SdkKeyService, type SdkKey } from '../../../gen/keyward/v1/sdk_key_service_pb.js';
import { TokenService } from '../../../gen/keyward/v1/token_service_pb.js';
import { UsageService } from '../../../gen/keyward/v1/usage_service_pb.js';
import type { Webhook } from '../../../gen/keyward/v1/webhook_pb.js';
import { WebhookService } from '../../../gen/keyward/v1/webhook_service_pb.js';
import type { Workspace } from '../../../gen/keyward/v1/workspace_pb.js';
import { WorkspaceService } from '../../../gen/keyward/v1/workspace_service_pb.js';
import { KeywardError } from './errors.js';
import { toGrants, type GrantInput, type Permission } from './grants.js';
import { retryInterceptor } from './retry.js';

export interface KeywardOptions {
  /** Where Keyward listens, e.g. `http://127.0.0.1:8080`. */
  baseUrl: string;
  /** An SDK key (`kws_…`), sent as `authorization: Bearer` on every call. */
  sdkKey?: string;
  /** Deadline of each call, retries included (default 10 000 ms). */
  timeoutMs?: number;
  /** Retries of idempotent calls that failed with UNAVAILABLE (default 2; 0 turns them off). */
  retries?: number;
  /** HTTP/2 (h2c, one multiplexed connection; the default) or HTTP/1.1. */
  httpVersion?: '1.1' | '2';
  /** More Connect interceptors, run inside the retries (each attempt). */
  interceptors?: Interceptor[];
}

/** One page of a list and the token of the next ('' on the last page). */
export interface Page<T> {
  items: T[];
  nextPageToken: string;
}
export interface PageRequest {
  pageSize?: number;
  pageToken?: string;
}

export type VerifyCodeName =
  | 'valid'
  | 'not_found'
  | 'disabled'
  | 'expired'
  | 'revoked'
  | 'insufficient_permissions'
  | 'rate_limited'
  | 'usage_exceeded'
  | (string & {});
export type KeyStateName = 'active' | 'disabled' | 'expired' | 'revoked' | 'unspecified';

export interface RateLimitStatus {
  name: string;
  limit: number;
  /** What is left in the current window, after this request. */
  remaining: number;
  /** When the current window ends. */
  resetTime: Date;
  /** Whether this limit refused the request. */
  exceeded: boolean;
}

/** VerifyKey's answer as plain values. A key that does not pass is `valid: false` with a `code`, not an error. */
export interface VerifyResult {
  valid: boolean;
  code: VerifyCodeName;
  keyId: string;
  workspaceId: string;
  customerId: string;
  name: string;
  permissions: string[];
  metadata: Record<string, string>;
  expireTime: Date | undefined;
  state: KeyStateName;
  rateLimits: RateLimitStatus[];
  /** Uses left after this request; undefined for a key with unlimited uses. */
  remainingUses: number | undefined;
}

export interface VerifyOptions {
  /** Permissions the request needs, `scope:action`. */
  permissions?: readonly Permission[];
  /** Only keys of this workspace pass. */
  workspaceId?: string;
  /** What the request costs a key with limits (default 1; 0 checks without consuming). */
  cost?: number;
}

export interface RateLimitInput {
  name: string;
  limit: number;
  /** The window, from 1 s to 31 days. */
  durationMs: number;
}
export interface RefillInput {
  amount: number;
  interval: 'daily' | 'monthly';
  /** For monthly refills: 1–31, clamped to the month's last day. */
  dayOfMonth?: number;
}

/** The fields of a key; `null` clears a field in `keys.update`. */
export interface KeyFields {
  customerId?: string;
  name?: string;
  description?: string;
  /** `['balance_transfers:read', 'invoices:create']` or `{ scope, actions }`. */
  grants?: GrantInput[];
  enabled?: boolean;
  metadata?: Record<string, string>;
  expireTime?: Date | null;
  /** Shorthand for `expireTime`: that many days from now. */
  expiresInDays?: number;
  rateLimits?: RateLimitInput[];
  remainingUses?: number | null;
  refill?: RefillInput | null;
}
export interface CreateKeyInput extends KeyFields {
  workspaceId: string;
}
export interface ListKeysInput extends PageRequest {
  workspaceId?: string;
  customerId?: string;
  state?: Exclude<KeyStateName, 'unspecified'>;
  /** Only keys that expire before this time. */
  expireBefore?: Date;
}
export interface ListAuditInput extends PageRequest {
  workspaceId?: string;
  resourceType?: string;
  resourceId?: string;
  actor?: string;
  action?: string;
  startTime?: Date;
  endTime?: Date;
}
export interface TimeRange {
  startTime: Date;
  endTime?: Date;
}

type KeyInit = MessageInitShape<typeof ApiKeySchema>;

/** A generated client whose every method throws KeywardError. */
function guarded<S extends DescService>(service: S, transport: Transport): Client<S> {
  const client = createClient(service, transport) as unknown as Record<string, (...a: unknown[]) => Promise<unknown>>;
  const out: Record<string, unknown> = {};
  for (const m of service.methods) {
    const call = client[m.localName]!;
    out[m.localName] = async (...args: unknown[]) => {
      try {
        return await call(...args);
      } catch (e) {
        throw KeywardError.from(e);
      }
    };
  }
  return out as Client<S>;
}

/** Every item of every page. */
async function* allPages<T>(first: PageRequest, list: (p: PageRequest) => Promise<Page<T>>): AsyncGenerator<T> {
  let pageToken = first.pageToken ?? '';
  do {
    const page = await list({ pageSize: first.pageSize, pageToken });
    yield* page.items;
    pageToken = page.nextPageToken;
  } while (pageToken !== '');
}

const ts = (d: Date | undefined) => (d === undefined ? undefined : timestampFromDate(d));
const date = (t: Timestamp | undefined) => (t === undefined ? undefined : timestampDate(t));
const DAY_MS = 86_400_000;

/** `VERIFY_CODE_RATE_LIMITED` → `rate_limited`. */
export function verifyCodeName(code: VerifyCode): VerifyCodeName {
  return (VerifyCode[code] ?? `code_${code}`).toLowerCase();
}
function keyStateName(s: KeyState): KeyStateName {
  return (KeyState[s] ?? 'UNSPECIFIED').toLowerCase() as KeyStateName;
}
const STATES: Record<Exclude<KeyStateName, 'unspecified'>, KeyState> = {
  active: KeyState.ACTIVE,
  disabled: KeyState.DISABLED,
  expired: KeyState.EXPIRED,
  revoked: KeyState.REVOKED,
};

export function toVerifyResult(r: VerifyKeyResponse): VerifyResult {
  return {
    valid: r.valid,
    code: verifyCodeName(r.code),
    keyId: r.keyId,
    workspaceId: r.workspaceId,
    customerId: r.customerId,
    name: r.name,
    permissions: [...r.permissions],
    metadata: { ...r.metadata },
    expireTime: date(r.expireTime),
    state: keyStateName(r.state),
    rateLimits: r.rateLimits.map((l) => ({
      name: l.name,
      limit: Number(l.limit),
      remaining: Number(l.remaining),
      resetTime: date(l.resetTime) ?? new Date(0),
      exceeded: l.exceeded,
    })),
    remainingUses: r.remainingUses === undefined ? undefined : Number(r.remainingUses),
  };
}

/** The proto ApiKey of plain fields, and the update_mask paths they name. */
function keyMessage(f: KeyFields & { workspaceId?: string; id?: string }): { key: KeyInit; paths: string[] } {
  const key: KeyInit = {};
  const paths: string[] = [];
  const set = <K extends keyof KeyInit>(path: string, k: K, v: KeyInit[K]) => {
    paths.push(path);
    if (v !== undefined) (key as Record<string, unknown>)[k as string] = v;
  };
  if (f.id !== undefined) key.id = f.id;
  if (f.workspaceId !== undefined) key.workspaceId = f.workspaceId;
  if (f.customerId !== undefined) set('customer_id', 'customerId', f.customerId);
  if (f.name !== undefined) set('name', 'name', f.name);
  if (f.description !== undefined) set('description', 'description', f.description);
  if (f.grants !== undefined) set('grants', 'grants', toGrants(f.grants));
  if (f.enabled !== undefined) set('enabled', 'enabled', f.enabled);
  if (f.metadata !== undefined) set('metadata', 'metadata', f.metadata);
  if (f.expiresInDays !== undefined) set('expire_time', 'expireTime', ts(new Date(Date.now() + f.expiresInDays * DAY_MS)));
  else if (f.expireTime !== undefined) set('expire_time', 'expireTime', ts(f.expireTime ?? undefined));
  if (f.rateLimits !== undefined) {
    set(
      'rate_limits',
      'rateLimits',
      f.rateLimits.map((l) => ({ name: l.name, limit: BigInt(l.limit), duration: durationFromMs(l.durationMs) })),
    );
  }
  if (f.remainingUses !== undefined) set('remaining_uses', 'remainingUses', f.remainingUses === null ? undefined : BigInt(f.remainingUses));
  if (f.refill !== undefined) {
    const r = f.refill;
    set(
      'refill',
      'refill',
      r === null
        ? undefined
        : {
            amount: BigInt(r.amount),
            interval: r.interval === 'daily' ? RefillInterval.DAILY : RefillInterval.MONTHLY,
            dayOfMonth: r.dayOfMonth ?? 0,
          },
    );
  }
  return { key, paths };
}

/** update_mask paths of the plain fields given (undefined = left alone). */
function maskOf(fields: Record<string, unknown>, names: Record<string, string>): string[] {
  return Object.keys(names)
    .filter((k) => fields[k] !== undefined)
    .map((k) => names[k]!);
}

export class Keyward {
  /** Where Keyward listens, as given. */
  readonly baseUrl: string;
  /** The generated Connect clients, for what the helpers do not cover. Errors are KeywardError. */
  readonly raw: {
    workspaces: Client<typeof WorkspaceService>;
    scopes: Client<typeof ScopeService>;
    keys: Client<typeof KeyService>;
    usage: Client<typeof UsageService>;
    audit: Client<typeof AuditService>;
    webhooks: Client<typeof WebhookService>;
    tokens: Client<typeof TokenService>;
    sdkKeys: Client<typeof SdkKeyService>;
    portal: Client<typeof PortalService>;
  };

  constructor(options: KeywardOptions) {
    this.baseUrl = options.baseUrl;
    const interceptors: Interceptor[] = [retryInterceptor({ retries: options.retries ?? 2 })];
    if (options.sdkKey) {
      const authorization = `Bearer ${options.sdkKey}`;
      interceptors.push((next) => (req) => {
        req.header.set('authorization', authorization);
        return next(req);
      });
    }
    interceptors.push(...(options.interceptors ?? []));
    const transport = createConnectTransport({
      baseUrl: options.baseUrl,
      httpVersion: options.httpVersion ?? '2',
      useBinaryFormat: true,
      defaultTimeoutMs: options.timeoutMs ?? 10_000,
      interceptors,
    });
    this.raw = {
      workspaces: guarded(WorkspaceService, transport),
      scopes: guarded(ScopeService, transport),
      keys: guarded(KeyService, transport),
      usage: guarded(UsageService, transport),
      audit: guarded(AuditService, transport),
      webhooks: guarded(WebhookService, transport),
      tokens: guarded(TokenService, transport),
      sdkKeys: guarded(SdkKeyService, transport),
      portal: guarded(PortalService, transport),
    };
  }

  readonly workspaces = {
    create: async (w: { name: string; keyPrefix?: string }): Promise<Workspace> => (await this.raw.workspaces.createWorkspace({ workspace: w })).workspace!,
    get: async (id: string): Promise<Workspace> => (await this.raw.workspaces.getWorkspace({ id })).workspace!,
    list: async (p: PageRequest = {}): Promise<Page<Workspace>> => {
      const r = await this.raw.workspaces.listWorkspaces(p);
      return { items: r.workspaces, nextPageToken: r.nextPageToken };
    },
    listAll: (p: PageRequest = {}): AsyncIterable<Workspace> => allPages(p, this.workspaces.list),
    update: async (id: string, f: { name?: string; keyPrefix?: string }): Promise<Workspace> =>
      (
        await this.raw.workspaces.updateWorkspace({
          workspace: { id, ...f },
          updateMask: { paths: maskOf(f, { name: 'name', keyPrefix: 'key_prefix' }) },
        })
      ).workspace!,
    delete: async (id: string): Promise<void> => {
      await this.raw.workspaces.deleteWorkspace({ id });
    },
  };

  readonly scopes = {
    /** `actions`: what keys may be granted on the scope; unset: read, create, update, delete. */
    create: async (s: { workspaceId: string; name: string; description?: string; actions?: string[] }): Promise<Scope> =>
      (await this.raw.scopes.createScope({ scope: s })).scope!,
    get: async (id: string): Promise<Scope> => (await this.raw.scopes.getScope({ id })).scope!,
    list: async (f: { workspaceId: string } & PageRequest): Promise<Page<Scope>> => {
      const r = await this.raw.scopes.listScopes(f);
      return { items: r.scopes, nextPageToken: r.nextPageToken };
    },
    listAll: (f: { workspaceId: string } & PageRequest): AsyncIterable<Scope> => allPages(f, (p) => this.scopes.list({ ...f, ...p })),
    update: async (id: string, f: { name?: string; description?: string; actions?: string[] }): Promise<Scope> =>
      (
        await this.raw.scopes.updateScope({
          scope: { id, ...f },
          updateMask: { paths: maskOf(f, { name: 'name', description: 'description', actions: 'actions' }) },
        })
      ).scope!,
    delete: async (id: string): Promise<void> => {
      await this.raw.scopes.deleteScope({ id });
    },
  };

  readonly keys = {
    /** Issues a key. `secret` is shown only now: hand it to the customer. */
    create: async (input: CreateKeyInput): Promise<{ key: ApiKey; secret: string }> => {
      const r = await this.raw.keys.createKey({ key: keyMessage(input).key });
      return { key: r.key!, secret: r.secret };
    },
    get: async (id: string): Promise<ApiKey> => (await this.raw.keys.getKey({ id })).key!,
    list: async (f: ListKeysInput = {}): Promise<Page<ApiKey>> => {
      const r = await this.raw.keys.listKeys({
        workspaceId: f.workspaceId,
        customerId: f.customerId,
        state: f.state === undefined ? undefined : STATES[f.state],
        expireBefore: ts(f.expireBefore),
        pageSize: f.pageSize,
        pageToken: f.pageToken,
      });
      return { items: r.keys, nextPageToken: r.nextPageToken };
    },
    listAll: (f: ListKeysInput = {}): AsyncIterable<ApiKey> => allPages(f, (p) => this.keys.list({ ...f, ...p })),
    /** Changes the fields given (a `null` clears expireTime, remainingUses or refill). */
    update: async (id: string, fields: KeyFields): Promise<ApiKey> => {
      const { key, paths } = keyMessage({ ...fields, id });
      return (await this.raw.keys.updateKey({ key, updateMask: { paths } })).key!;
    },
    /** A new secret; the old one keeps verifying for `gracePeriodMs` (default 0: at once invalid). */
    rotate: async (id: string, opts: { gracePeriodMs?: number } = {}): Promise<{ key: ApiKey; secret: string }> => {
      const r = await this.raw.keys.rotateKey({ id, gracePeriod: durationFromMs(opts.gracePeriodMs ?? 0) });
      return { key: r.key!, secret: r.secret };
    },
    revoke: async (id: string): Promise<ApiKey> => (await this.raw.keys.revokeKey({ id })).key!,
    delete: async (id: string): Promise<void> => {
      await this.raw.keys.deleteKey({ id });
    },
    /** Checks a key (needs an SDK key with `api_keys:verify`). Never throws for a key that does not pass. */
    verify: async (key: string, opts: VerifyOptions = {}): Promise<VerifyResult> =>
      toVerifyResult(
        await this.raw.keys.verifyKey({
          key,
          requiredPermissions: [...(opts.permissions ?? [])],
          workspaceId: opts.workspaceId ?? '',
          cost: opts.cost === undefined ? undefined : BigInt(opts.cost),
        }),
      ),
  };

  readonly usage = {
    key: async (keyId: string, r: TimeRange) => this.raw.usage.getKeyUsage({ keyId, startTime: ts(r.startTime), endTime: ts(r.endTime) }),
    workspace: async (workspaceId: string, r: TimeRange) =>
      this.raw.usage.getWorkspaceUsage({ workspaceId, startTime: ts(r.startTime), endTime: ts(r.endTime) }),
  };

  readonly audit = {
    list: async (f: ListAuditInput = {}): Promise<Page<AuditEvent>> => {
      const r = await this.raw.audit.listAuditEvents({ ...f, startTime: ts(f.startTime), endTime: ts(f.endTime) });
      return { items: r.events, nextPageToken: r.nextPageToken };
    },
    listAll: (f: ListAuditInput = {}): AsyncIterable<AuditEvent> => allPages(f, (p) => this.audit.list({ ...f, ...p })),
  };

  readonly webhooks = {
    /** Sets the workspace's webhook; `signingSecret` is returned when it is new (first set, or `rotateSecret`). */
    set: async (w: { workspaceId: string; url: string; expiringNoticeDays?: number; rotateSecret?: boolean }) => {
      const { rotateSecret, ...webhook } = w;
      const r = await this.raw.webhooks.setWebhook({ webhook, rotateSecret });
      return { webhook: r.webhook!, signingSecret: r.signingSecret };
    },
    get: async (workspaceId: string): Promise<Webhook> => (await this.raw.webhooks.getWebhook({ workspaceId })).webhook!,
    delete: async (workspaceId: string): Promise<void> => {
      await this.raw.webhooks.deleteWebhook({ workspaceId });
    },
  };

  readonly tokens = {
    /**
     * Exchanges an API key for a short-lived JWT (needs an SDK key with
     * `api_keys:verify`). A key that does not pass throws KeywardError with its
     * verify code (`revoked`, `not_found`, ...).
     */
    exchange: async (key: string, opts: { permissions?: readonly Permission[]; workspaceId?: string } = {}) => {
      const r = await this.raw.tokens.exchangeKey({
        key,
        requiredPermissions: [...(opts.permissions ?? [])],
        workspaceId: opts.workspaceId ?? '',
      });
      const code = verifyCodeName(r.code);
      if (code !== 'valid' || r.token === '') throw new KeywardError(code, `the API key was not exchanged: ${code}`);
      return { token: r.token, expireTime: date(r.expireTime)!, keyId: r.keyId, signingKeyId: r.signingKeyId };
    },
    /**
     * Exchanges the client's own credential, an API key given as `sdkKey`
     * (`new Keyward({ baseUrl, sdkKey: apiKey })`), for a JWT of that key:
     * TokenService.ExchangeOwnKey, which needs no SDK key. A refused key
     * throws KeywardError (`unauthenticated`, `permission_denied`, `resource_exhausted`).
     */
    exchangeOwn: async (opts: { permissions?: readonly Permission[]; workspaceId?: string } = {}) => {
      const r = await this.raw.tokens.exchangeOwnKey({ requiredPermissions: [...(opts.permissions ?? [])], workspaceId: opts.workspaceId ?? '' });
      return { token: r.token, expireTime: date(r.expireTime)!, keyId: r.keyId, signingKeyId: r.signingKeyId };
    },
  };

  readonly sdkKeys = {
    current: async (): Promise<SdkKey> => (await this.raw.sdkKeys.getCurrentSdkKey({})).sdkKey!,
    create: async (k: { name: string; scopes: string[]; workspaceIds?: string[] }): Promise<{ sdkKey: SdkKey; token: string }> => {
      const r = await this.raw.sdkKeys.createSdkKey({ sdkKey: k });
      return { sdkKey: r.sdkKey!, token: r.token };
    },
    list: async (p: PageRequest = {}): Promise<Page<SdkKey>> => {
      const r = await this.raw.sdkKeys.listSdkKeys(p);
      return { items: r.sdkKeys, nextPageToken: r.nextPageToken };
    },
    listAll: (p: PageRequest = {}): AsyncIterable<SdkKey> => allPages(p, this.sdkKeys.list),
    revoke: async (id: string): Promise<SdkKey> => (await this.raw.sdkKeys.revokeSdkKey({ id })).sdkKey!,
  };

  readonly portal = {
    /** A `kwp_…` token for one customer's browser (see portal/README.md). */
    createSession: async (s: { workspaceId: string; customerId: string; allowedGrants: GrantInput[]; ttlSeconds?: number }) => {
      const r = await this.raw.portal.createPortalSession({
        workspaceId: s.workspaceId,
        customerId: s.customerId,
        allowedGrants: toGrants(s.allowedGrants),
        ttl: s.ttlSeconds === undefined ? undefined : durationFromMs(s.ttlSeconds * 1000),
      });
      return { token: r.token, expireTime: date(r.expireTime)! };
    },
  };
}
