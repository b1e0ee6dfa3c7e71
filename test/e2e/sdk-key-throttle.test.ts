// A flood of wrong SDK key secrets must not cost a bcrypt each: wrong tokens
// are remembered, and each remote address has a small bucket of failed checks.
import { Code, ConnectError } from '@connectrpc/connect';
import { describe, expect, it } from 'vitest';
import { KeyService } from '../../gen/keyward/v1/key_service_pb.js';
import { WorkspaceService } from '../../gen/keyward/v1/workspace_service_pb.js';
import { formatSdkKey, newSdkKeySecret, parseSdkKey } from '../../src/credentials/sdk-key.js';
import { expectError } from '../support/rpc.js';
import { client, startTestServer, type ProtocolName, type TestServer } from '../support/server.js';

const BURST = 3;
// One more check every 5 s: a slow machine does not get a check back in the middle of a step.
const PER_SECOND = 0.2;

const wrongSecretFor = (token: string) => formatSdkKey(parseSdkKey(token)!.id, newSdkKeySecret());

async function codes(calls: Promise<unknown>[]): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const r of await Promise.allSettled(calls)) {
    const name = r.status === 'fulfilled' ? 'OK' : Code[ConnectError.from(r.reason).code];
    out[name] = (out[name] ?? 0) + 1;
  }
  return out;
}

/** Runs a test against its own server, so that no test waits for another's bucket to refill. */
async function withServer(test: (ts: TestServer) => Promise<void>): Promise<void> {
  const ts = await startTestServer({ KEYWARD_SDK_KEY_FAILURE_BURST: String(BURST), KEYWARD_SDK_KEY_FAILURES_PER_SECOND: String(PER_SECOND) });
  try {
    await test(ts);
  } finally {
    await ts.close();
  }
}

describe('failed SDK key checks', () => {
  it('the same wrong token, sent many times, costs one bcrypt', () =>
    withServer(async (ts) => {
      const token = await ts.sdkKey(['*']);
      const wrong = wrongSecretFor(token);
      const stats = ts.internals.auth.stats;
      const before = stats.bcryptChecks;
      const W = client(WorkspaceService, ts, { token: wrong });
      // One after another, so the single-flight of concurrent checks is not what saves them.
      for (let i = 0; i < 30; i++) await expectError(W.listWorkspaces({}), Code.Unauthenticated);
      expect(stats.bcryptChecks - before).toBe(1);
    }));

  it.each<ProtocolName>(['connect-json', 'grpc'])(
    'a flood of distinct wrong secrets over %s costs at most the burst, then RESOURCE_EXHAUSTED; remembered keys keep working',
    (protocol) =>
      withServer(async (ts) => {
        const fresh = await ts.sdkKey(['*']);
        const victim = await ts.sdkKey(['*']);
        // The admin key is remembered before the flood.
        await client(WorkspaceService, ts, { protocol }).listWorkspaces({});
        const stats = ts.internals.auth.stats;
        const before = stats.bcryptChecks;
        const started = Date.now();
        // One connection; each call carries its own wrong secret.
        const K = client(KeyService, ts, { protocol, token: null });
        const W = client(WorkspaceService, ts, { protocol, token: null });
        const flood = Array.from({ length: 200 }, (_, i) => {
          const headers = { authorization: `Bearer ${wrongSecretFor(victim)}` };
          return i % 2 ? K.verifyKey({ key: 'kw_nothing' }, { headers }) : W.listWorkspaces({}, { headers });
        });
        const got = await codes(flood);
        const elapsedS = (Date.now() - started) / 1000;
        expect(Object.keys(got).sort()).toEqual(['ResourceExhausted', 'Unauthenticated']);
        const spent = stats.bcryptChecks - before;
        expect(spent).toBeLessThanOrEqual(BURST + Math.ceil(elapsedS * PER_SECOND) + 1);
        expect(got.Unauthenticated).toBe(spent);
        expect(spent).toBeLessThan(50);

        // While throttled: a remembered key works, a key not yet checked is refused without a check ...
        expect((await client(WorkspaceService, ts, { protocol }).listWorkspaces({})).workspaces).toBeDefined();
        const beforeFresh = stats.bcryptChecks;
        const e = await expectError(client(WorkspaceService, ts, { protocol, token: fresh }).listWorkspaces({}), Code.ResourceExhausted);
        expect(e.rawMessage).toMatch(/too many failed SDK key checks/);
        expect(stats.bcryptChecks).toBe(beforeFresh);
        // ... and once the bucket has refilled a little, it is checked and works.
        await new Promise((r) => setTimeout(r, 1000 / PER_SECOND + 100));
        await client(WorkspaceService, ts, { protocol, token: fresh }).listWorkspaces({});
      }),
    60_000,
  );

  it('forward auth: a gateway flooding wrong SDK keys gets 429 gateway_throttled once its bucket is empty', () =>
    withServer(async (ts) => {
      const victim = await ts.sdkKey(['api_keys:verify']);
      const statuses: Record<string, number> = {};
      for (let i = 0; i < BURST + 3; i++) {
        const res = await fetch(`${ts.baseUrl}/v1/authorize`, { headers: { 'x-keyward-sdk-key': wrongSecretFor(victim), 'x-api-key': 'kw_x' } });
        const code = res.headers.get('x-keyward-code');
        statuses[`${res.status} ${code}`] = (statuses[`${res.status} ${code}`] ?? 0) + 1;
        if (res.status === 429) expect(res.headers.get('retry-after')).toBe(String(1 / PER_SECOND));
      }
      expect(statuses['401 gateway_unauthenticated']).toBeLessThanOrEqual(BURST + 1);
      expect(statuses['429 gateway_throttled']).toBeGreaterThanOrEqual(2);
    }));
});
