// The server of the KeyService tests (test/e2e/keys-*.test.ts): each file
// calls useKeysServer() to start its own before its tests and stop it after;
// the bindings below are set from then on.
import type { Client } from '@connectrpc/connect';
import { afterAll, beforeAll } from 'vitest';
import { KeyService } from '../../gen/keyward/v1/key_service_pb.js';
import { WorkspaceService } from '../../gen/keyward/v1/workspace_service_pb.js';
import { client, startTestServer, type TestServer } from './server.js';

export let ts: TestServer;
/** KeyService and WorkspaceService with the admin SDK key, over Connect JSON. */
export let keys: Client<typeof KeyService>;
export let workspaces: Client<typeof WorkspaceService>;

export function useKeysServer(): void {
  beforeAll(async () => {
    // Usage is written every 100 ms, so last_used_time shows up quickly.
    ts = await startTestServer({ KEYWARD_USAGE_FLUSH_MS: '100' });
    keys = client(KeyService, ts);
    workspaces = client(WorkspaceService, ts);
  });
  afterAll(async () => {
    await ts?.close();
  });
}
