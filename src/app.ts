import type { MikroORM } from '@mikro-orm/postgresql';
import type { ConnectRouter } from '@connectrpc/connect';
import { connectNodeAdapter } from '@connectrpc/connect-node';
import { KeyService } from '../gen/keyward/v1/key_service_pb.js';
import { ScopeService } from '../gen/keyward/v1/scope_service_pb.js';
import { WorkspaceService } from '../gen/keyward/v1/workspace_service_pb.js';
import { SdkKeyAuthenticator } from './auth/sdk-key-auth.js';
import { Keys } from './domain/keys.js';
import { Scopes } from './domain/scopes.js';
import { SdkKeys } from './domain/sdk-keys.js';
import { Workspaces } from './domain/workspaces.js';
import type { Logger } from './log.js';
import { authInterceptor, errorInterceptor } from './rpc/interceptors.js';
import { keyService } from './rpc/key-service.js';
import { scopeService } from './rpc/scope-service.js';
import { workspaceService } from './rpc/workspace-service.js';
import { LastUsedRecorder } from './verify/usage.js';
import { KeyVerifier } from './verify/verifier.js';

export interface AppOptions {
  usageFlushMs: number;
  maxRequestBytes: number;
  maxRequestTimeoutMs: number;
}

/** Everything a request can reach, built once per process. */
export class App {
  readonly workspaces: Workspaces;
  readonly scopes: Scopes;
  readonly keys: Keys;
  readonly sdkKeys: SdkKeys;
  readonly auth: SdkKeyAuthenticator;
  readonly usage: LastUsedRecorder;
  readonly verifier: KeyVerifier;

  constructor(
    readonly orm: MikroORM,
    readonly log: Logger,
    readonly opts: AppOptions,
  ) {
    this.workspaces = new Workspaces(orm);
    this.scopes = new Scopes(orm);
    this.keys = new Keys(orm);
    this.sdkKeys = new SdkKeys(orm);
    this.auth = new SdkKeyAuthenticator(orm);
    this.usage = new LastUsedRecorder(orm, log, opts.usageFlushMs);
    this.verifier = new KeyVerifier(orm, this.usage);
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
      // connect-node reads up to 4 GiB by default.
      readMaxBytes: this.opts.maxRequestBytes,
      maxTimeoutMs: this.opts.maxRequestTimeoutMs,
      shutdownSignal,
    });
  }
}
