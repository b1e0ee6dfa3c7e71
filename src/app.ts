import type { MikroORM } from '@mikro-orm/postgresql';
import { createContextValues, type ConnectRouter } from '@connectrpc/connect';
import { compressionBrotli, compressionGzip, connectNodeAdapter } from '@connectrpc/connect-node';
import { KeyService } from '../gen/keyward/v1/key_service_pb.js';
import { ScopeService } from '../gen/keyward/v1/scope_service_pb.js';
import { WorkspaceService } from '../gen/keyward/v1/workspace_service_pb.js';
import { DEFAULT_SDK_KEY_AUTH, SdkKeyAuthenticator } from './auth/sdk-key-auth.js';
import { Keys } from './domain/keys.js';
import { Scopes } from './domain/scopes.js';
import { SdkKeys } from './domain/sdk-keys.js';
import { Workspaces } from './domain/workspaces.js';
import type { Logger } from './log.js';
import { peerKey } from './rpc/context.js';
import { authInterceptor, errorInterceptor } from './rpc/interceptors.js';
import { binaryParseErrorIsInvalidArgument } from './rpc/parse-errors.js';
import { keyService } from './rpc/key-service.js';
import { scopeService } from './rpc/scope-service.js';
import { workspaceService } from './rpc/workspace-service.js';
import { LastUsedRecorder } from './verify/usage.js';
import { KeyVerifier, newKeyCache, type KeyRecord } from './verify/verifier.js';
import type { KeyCache } from './verify/key-cache.js';
import { ChangeBus } from './domain/changes.js';
import type { Config } from './config.js';

export type AppOptions = Pick<
  Config,
  | 'usageFlushMs'
  | 'maxRequestBytes'
  | 'maxRequestTimeoutMs'
  | 'verifyCacheSize'
  | 'verifyCacheTtlMs'
  | 'verifyNegativeTtlMs'
  | 'sdkKeyFailureBurst'
  | 'sdkKeyFailuresPerSecond'
>;

/** Everything a request can reach, built once per process. */
export class App {
  readonly workspaces: Workspaces;
  readonly scopes: Scopes;
  readonly keys: Keys;
  readonly sdkKeys: SdkKeys;
  readonly auth: SdkKeyAuthenticator;
  readonly usage: LastUsedRecorder;
  readonly verifier: KeyVerifier;
  readonly changes: ChangeBus;
  readonly keyCache: KeyCache<KeyRecord>;
  /** VerifyKey calls the HTTP/2 fast path answered, and calls it handed to connect-node. */
  readonly fastPathStats = { served: 0, handedOver: 0 };

  constructor(
    readonly orm: MikroORM,
    readonly log: Logger,
    readonly opts: AppOptions,
    /** Whether other processes share the database (announce changes to them). */
    shared: boolean,
  ) {
    this.changes = new ChangeBus(shared);
    this.workspaces = new Workspaces(orm, this.changes);
    this.scopes = new Scopes(orm, this.changes);
    this.keys = new Keys(orm, this.changes);
    this.sdkKeys = new SdkKeys(orm, this.changes);
    this.auth = new SdkKeyAuthenticator(orm, {
      ...DEFAULT_SDK_KEY_AUTH,
      failureBurst: opts.sdkKeyFailureBurst,
      failuresPerSecond: opts.sdkKeyFailuresPerSecond,
    });
    this.usage = new LastUsedRecorder(orm, log, opts.usageFlushMs);
    this.keyCache = newKeyCache({
      maxEntries: opts.verifyCacheSize,
      positiveTtlMs: opts.verifyCacheTtlMs,
      negativeTtlMs: opts.verifyNegativeTtlMs,
    });
    this.verifier = new KeyVerifier(orm, this.keyCache, this.usage);
    this.changes.subscribe((c) => {
      if (c.keys) this.keyCache.evictKeys(c.keys);
      if (c.workspace) this.keyCache.evictWorkspace(c.workspace);
      if (c.sdkKey) this.auth.forget(c.sdkKey);
    });
  }

  routes = (router: ConnectRouter): void => {
    router.service(WorkspaceService, workspaceService(this.workspaces));
    router.service(ScopeService, scopeService(this.scopes));
    router.service(KeyService, keyService(this.keys, this.verifier));
  };

  /** The request handler for both the HTTP/2 and the HTTP/1.1 server. */
  handler(shutdownSignal?: AbortSignal) {
    return connectNodeAdapter({
      routes: this.routes,
      interceptors: [errorInterceptor(this.log), authInterceptor(this.auth)],
      // Invalid protobuf bytes are the caller's mistake, not INTERNAL.
      requestGate: binaryParseErrorIsInvalidArgument,
      // Failed SDK key checks are throttled per remote address.
      contextValues: (req) => createContextValues().set(peerKey, req.socket?.remoteAddress ?? ''),
      ...this.protocolOptions(),
      shutdownSignal,
    });
  }

  /** Limits and encodings of every protocol handler; the VerifyKey fast path uses the same. */
  protocolOptions() {
    return {
      // connect-node's default, spelled out so the fast path negotiates alike.
      acceptCompression: [compressionGzip, compressionBrotli],
      // connect-node reads up to 4 GiB by default.
      readMaxBytes: this.opts.maxRequestBytes,
      maxTimeoutMs: this.opts.maxRequestTimeoutMs,
      // A misspelled field must not pass silently: `{"requiredPermission": [...]}`
      // would otherwise verify with no permission check at all.
      jsonOptions: { ignoreUnknownFields: false },
    };
  }
}
