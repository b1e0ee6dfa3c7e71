// A flood of wrong SDK key secrets must not cost a bcrypt each: wrong tokens
// are remembered, each caller address and each SDK key id has a small bucket
// of failed checks, and the address is X-Forwarded-For's only from a trusted
// proxy, so an attacker behind a shared proxy cannot lock out good clients.
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
async function withServer(test: (ts: TestServer) => Promise<void>, env: Record<string, string> = {}): Promise<void> {
  const ts = await startTestServer({ KEYWARD_SDK_KEY_FAILURE_BURST: String(BURST), KEYWARD_SDK_KEY_FAILURES_PER_SECOND: String(PER_SECOND), ...env });
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

/** The outcome of one call: OK, or the code's name (with the message, for RESOURCE_EXHAUSTED). */
async function outcome(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'OK';
  } catch (e) {
    const err = ConnectError.from(e);
    return err.code === Code.ResourceExhausted ? `ResourceExhausted: ${err.rawMessage}` : Code[err.code]!;
  }
}

/** ListWorkspaces with `token`, claiming `forwardedFor` (if any), over connect-json. */
function signIn(ts: TestServer, token: string, forwardedFor?: string, protocol: ProtocolName = 'connect-json') {
  const headers: Record<string, string> = { authorization: `Bearer ${token}` };
  if (forwardedFor !== undefined) headers['x-forwarded-for'] = forwardedFor;
  return client(WorkspaceService, ts, { protocol, token: null }).listWorkspaces({}, { headers });
}

const BY_ADDRESS = 'ResourceExhausted: too many failed SDK key checks from this address; try again later';
const BY_KEY_ID = 'ResourceExhausted: too many failed checks of this SDK key id; try again later';

/** The value of a counter on /metrics. */
async function counter(ts: TestServer, name: string): Promise<number> {
  const text = await (await fetch(`${ts.baseUrl}/metrics`)).text();
  const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
  if (!m) throw new Error(`${name} is not on /metrics`);
  return Number(m[1]);
}

describe('callers behind a proxy', () => {
  it('without KEYWARD_TRUSTED_PROXIES, X-Forwarded-For is ignored: claiming a new address per call buys no new budget', () =>
    withServer(
      async (ts) => {
        const victim = await ts.sdkKey(['*']);
        const fresh = await ts.sdkKey(['*']);
        const stats = ts.internals.auth.stats;
        const before = stats.bcryptChecks;
        const started = Date.now();
        const got: string[] = [];
        for (let i = 0; i < BURST + 3; i++) got.push(await outcome(signIn(ts, wrongSecretFor(victim), `203.0.113.${i + 1}`)));
        const allowance = BURST + Math.ceil(((Date.now() - started) / 1000) * PER_SECOND);
        expect(stats.bcryptChecks - before).toBeLessThanOrEqual(allowance);
        expect(got.filter((o) => o === 'Unauthenticated').length).toBe(stats.bcryptChecks - before);
        expect(got.filter((o) => o === BY_ADDRESS).length).toBe(got.length - (stats.bcryptChecks - before));
        expect(got.at(-1)).toBe(BY_ADDRESS);
        // A key not checked yet, claiming yet another address, shares the throttled one.
        expect(await outcome(signIn(ts, fresh, '198.51.100.7'))).toBe(BY_ADDRESS);
        // No refill within the test, however slow the machine (the allowance above still counts one).
      },
      { KEYWARD_SDK_KEY_FAILURES_PER_SECOND: '0.001' },
    ));

  it('from a trusted proxy, the right-most untrusted X-Forwarded-For address is the caller: an attacker behind it is throttled, a good client behind it is not, over every transport', () =>
    withServer(
      async (ts) => {
        const victim = await ts.sdkKey(['*']);
        const attacker = '203.0.113.9';
        const good = '198.51.100.7';
        // The attacker writes its own X-Forwarded-For; the proxy appends the address it saw.
        const viaProxy = (claimed: string, real: string) => `${claimed}, ${real}`;
        const got: string[] = [];
        for (let i = 0; i < BURST + 2; i++) got.push(await outcome(signIn(ts, wrongSecretFor(victim), viaProxy(`192.0.2.${i + 1}`, attacker))));
        expect(got.at(-1)).toBe(BY_ADDRESS);
        // Claiming the good client's address does not get its budget either.
        expect(await outcome(signIn(ts, wrongSecretFor(victim), viaProxy(good, attacker)))).toBe(BY_ADDRESS);

        // Each transport: a key not checked yet is throttled from the attacker's address and works from the good client's.
        type Try = (token: string, forwardedFor: string) => Promise<string>;
        const verifyOverGrpc: Try = (token, xff) =>
          outcome(
            client(KeyService, ts, { protocol: 'grpc', token: null }).verifyKey(
              { key: 'kw_nothing' },
              { headers: { authorization: `Bearer ${token}`, 'x-forwarded-for': xff } },
            ),
          );
        const rest: Try = async (token, xff) => {
          const res = await fetch(`${ts.baseUrl}/v1/workspaces`, { headers: { authorization: `Bearer ${token}`, 'x-forwarded-for': xff } });
          return res.status === 200 ? 'OK' : String(res.status);
        };
        const forwardAuth: Try = async (token, xff) => {
          const res = await fetch(`${ts.baseUrl}/v1/authorize`, { headers: { 'x-keyward-sdk-key': token, 'x-api-key': 'kw_x', 'x-forwarded-for': xff } });
          const code = res.headers.get('x-keyward-code') ?? '';
          return code.startsWith('gateway_') ? code : 'OK';
        };
        const transports: [string, Try, string][] = [
          ['connect-json', (t, x) => outcome(signIn(ts, t, x)), BY_ADDRESS],
          ['grpc (the VerifyKey fast path)', verifyOverGrpc, BY_ADDRESS],
          ['REST', rest, '429'],
          ['forward auth', forwardAuth, 'gateway_throttled'],
        ];
        const servedFast = ts.internals.fastPathStats.served;
        for (const [name, call, throttled] of transports) {
          expect(`${name}: ${await call(await ts.sdkKey(['*']), viaProxy(good, attacker))}`).toBe(`${name}: ${throttled}`);
          expect(`${name}: ${await call(await ts.sdkKey(['*']), viaProxy(attacker, good))}`).toBe(`${name}: OK`);
        }
        expect(ts.internals.fastPathStats.served).toBeGreaterThan(servedFast);
      },
      // No refill within the test, however slow the machine: each wrong secret is a bcrypt.
      { KEYWARD_TRUSTED_PROXIES: '10.0.0.0/8, 127.0.0.1', KEYWARD_SDK_KEY_FAILURES_PER_SECOND: '0.001' },
    ));

  it('an attacker guessing one key id at a shared address (no trusted proxy) is stopped by the id budget before the address budget: good clients at that address keep authenticating', () =>
    withServer(
      async (ts) => {
        const victim = await ts.sdkKey(['*']);
        const stats = ts.internals.auth.stats;
        const before = { checks: stats.bcryptChecks, throttled: stats.throttled, byId: stats.throttledById };
        const metricBefore = await counter(ts, 'keyward_sdk_key_throttled_total');
        const got: string[] = [];
        for (let i = 0; i < 12; i++) got.push(await outcome(signIn(ts, wrongSecretFor(victim))));
        // Two checks (the id's burst; its refill is one per 20 s), then refused for the id, without a check.
        expect(got.slice(0, 2)).toEqual(['Unauthenticated', 'Unauthenticated']);
        expect(got.slice(2).every((o) => o === BY_KEY_ID || o === 'Unauthenticated')).toBe(true);
        const checks = stats.bcryptChecks - before.checks;
        expect(got.filter((o) => o === 'Unauthenticated').length).toBe(checks);
        expect(checks).toBeLessThan(BURST);
        // The address budget (3) still has room: keys never checked before, at the same address, pass.
        for (let i = 0; i < 3; i++) expect(await outcome(signIn(ts, await ts.sdkKey(['*'])))).toBe('OK');
        // The victim's own right secret, from the attacker's address, is refused while the id is throttled.
        expect(await outcome(signIn(ts, victim))).toBe(BY_KEY_ID);
        // Counted: every RESOURCE_EXHAUSTED once, in the stats and on /metrics.
        const refused = got.filter((o) => o === BY_KEY_ID).length + 1;
        expect(stats.throttledById - before.byId).toBe(refused);
        expect(stats.throttled - before.throttled).toBe(refused);
        expect((await counter(ts, 'keyward_sdk_key_throttled_total')) - metricBefore).toBe(refused);
      },
      { KEYWARD_SDK_KEY_ID_FAILURE_BURST: '2', KEYWARD_SDK_KEY_ID_FAILURES_PER_SECOND: '0.05' },
    ));

  it('the id budget counts wrong secrets from every address; the right secret still passes from an address that did not guess', () =>
    withServer(
      async (ts) => {
        const victim = await ts.sdkKey(['*']);
        const stats = ts.internals.auth.stats;
        const from = (a: string, token: string) => outcome(signIn(ts, token, a));
        expect([await from('203.0.113.1', wrongSecretFor(victim)), await from('203.0.113.1', wrongSecretFor(victim))]).toEqual([
          'Unauthenticated',
          'Unauthenticated',
        ]);
        // The id's budget is spent: its guesser is refused for it without a check ...
        const before = stats.bcryptChecks;
        expect(await from('203.0.113.1', wrongSecretFor(victim))).toBe(BY_KEY_ID);
        expect(stats.bcryptChecks).toBe(before);
        // ... a second guesser gets one check, then is refused too ...
        expect(await from('203.0.113.2', wrongSecretFor(victim))).toBe('Unauthenticated');
        expect(await from('203.0.113.2', wrongSecretFor(victim))).toBe(BY_KEY_ID);
        // ... the guessers' own budgets were not drained by the refusals: another key from there passes ...
        expect(await from('203.0.113.1', await ts.sdkKey(['*']))).toBe('OK');
        // ... and the key's holder, elsewhere, is checked and passes.
        expect(await from('198.51.100.3', victim)).toBe('OK');
      },
      { KEYWARD_TRUSTED_PROXIES: '127.0.0.1', KEYWARD_SDK_KEY_ID_FAILURE_BURST: '2', KEYWARD_SDK_KEY_ID_FAILURES_PER_SECOND: '0.05' },
    ));
});
