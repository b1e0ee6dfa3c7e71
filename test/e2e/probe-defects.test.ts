// Defects an outside probe found (issue 18), each with the test that would
// have caught it: timestamps PostgreSQL cannot store, a NUL in a list filter
// taken for a database outage, and an HTTP/1.1 request whose first TCP
// segment is a lone `P` answered in HTTP/2.
import net from 'node:net';
import { Code, ConnectError } from '@connectrpc/connect';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AuditService } from '../../gen/keyward/v1/audit_service_pb.js';
import { KeyService } from '../../gen/keyward/v1/key_service_pb.js';
import { UsageService } from '../../gen/keyward/v1/usage_service_pb.js';
import { WorkspaceService } from '../../gen/keyward/v1/workspace_service_pb.js';
import { isConnectionError } from '../../src/db/errors.js';
import { client, PROTOCOLS, startTestServer, type TestServer } from '../support/server.js';

let ts: TestServer;
let ws: string;
let keyId: string;

beforeAll(async () => {
  ts = await startTestServer();
  ws = (await client(WorkspaceService, ts).createWorkspace({ workspace: { name: 'probe' } })).workspace!.id;
  keyId = (await client(KeyService, ts).createKey({ key: { workspaceId: ws, name: 'k' } })).key!.id;
});
afterAll(async () => {
  await ts?.close();
});

async function refusal(p: Promise<unknown>): Promise<ConnectError> {
  try {
    await p;
  } catch (e) {
    return ConnectError.from(e);
  }
  throw new Error('expected the call to fail');
}

const serverTroubles = () => ts.logs.filter((l) => /"level":"(warn|error)"/.test(l) && /unavailable|request failed/.test(l));

describe('timestamps outside years 1 to 9999', () => {
  const outside = [253_402_300_800n, -62_135_596_801n, 9_223_372_036_854_775_807n, -9_223_372_036_854_775_808n];

  it('are INVALID_ARGUMENT naming the field, in every request that takes one, over every protocol', async () => {
    for (const protocol of PROTOCOLS) {
      const K = client(KeyService, ts, { protocol });
      for (const seconds of outside) {
        const t = { seconds, nanos: 0 };
        // Made one at a time, each awaited at once: a rejection is never left unhandled.
        const calls: [string, () => Promise<unknown>][] = [
          ['expire_before', () => K.listKeys({ workspaceId: ws, expireBefore: t })],
          ['key.expire_time', () => K.createKey({ key: { workspaceId: ws, name: 'x', expireTime: t } })],
          ['key.expire_time', () => K.updateKey({ key: { id: keyId, expireTime: t }, updateMask: { paths: ['expire_time'] } })],
          ['start_time', () => client(UsageService, ts, { protocol }).getKeyUsage({ keyId, startTime: t })],
          ['end_time', () => client(UsageService, ts, { protocol }).getWorkspaceUsage({ workspaceId: ws, startTime: { seconds: 0n }, endTime: t })],
          ['start_time', () => client(AuditService, ts, { protocol }).listAuditEvents({ startTime: t })],
        ];
        for (const [field, call] of calls) {
          // Connect JSON cannot even carry most of these (RFC 3339 has 4-digit years): the client refuses to encode them.
          const e = await refusal(call());
          if (protocol === 'connect-json' && e.code !== Code.InvalidArgument) continue;
          expect(e.code, `${protocol} ${field} ${seconds}: ${e.rawMessage}`).toBe(Code.InvalidArgument);
          if (!/cannot encode|invalid google.protobuf.Timestamp/.test(e.rawMessage)) expect(e.rawMessage.startsWith(field), e.rawMessage).toBe(true);
        }
      }
    }
    expect(serverTroubles()).toEqual([]);
  });

  it('the ends of the range itself are accepted', async () => {
    const K = client(KeyService, ts, { protocol: 'grpc' });
    for (const seconds of [253_402_300_799n, -62_135_596_800n]) {
      const r = await K.listKeys({ workspaceId: ws, expireBefore: { seconds, nanos: 0 } });
      expect(r.keys).toBeDefined();
    }
  });
});

describe('a NUL in a list filter', () => {
  it('is INVALID_ARGUMENT naming customer_id, and no database outage is logged', async () => {
    for (const protocol of PROTOCOLS) {
      const e = await refusal(client(KeyService, ts, { protocol }).listKeys({ workspaceId: ws, customerId: 'cus\u0000x' }));
      expect(e.code, `${protocol}: ${e.rawMessage}`).toBe(Code.InvalidArgument);
      expect(e.rawMessage).toMatch(/^customer_id: /);
    }
    expect(serverTroubles()).toEqual([]);
  });

  it('in any string field of any request it is INVALID_ARGUMENT naming the field (checked from the descriptors)', async () => {
    const nul = 'x\u0000y';
    const calls: [string, () => Promise<unknown>][] = [
      ['action', () => client(AuditService, ts, { protocol: 'grpc' }).listAuditEvents({ action: nul })],
      ['key.metadata["plan"]', () => client(KeyService, ts, { protocol: 'grpc' }).createKey({ key: { workspaceId: ws, name: 'n', metadata: { plan: nul } } })],
      [
        'key.grants[0].scope',
        () => client(KeyService, ts, { protocol: 'connect-binary' }).createKey({ key: { workspaceId: ws, grants: [{ scope: nul, actions: [1] }] } }),
      ],
      ['page_token', () => client(WorkspaceService, ts, { protocol: 'grpc-web' }).listWorkspaces({ pageToken: nul })],
    ];
    for (const [field, call] of calls) {
      const e = await refusal(call());
      expect(e.code, `${field}: ${e.rawMessage}`).toBe(Code.InvalidArgument);
      expect(e.rawMessage).toBe(`${field}: must not contain NUL characters`);
    }
    expect(serverTroubles()).toEqual([]);
  });

  it('a protocol violation reported by PostgreSQL is not an outage; a lost connection is', () => {
    expect(isConnectionError({ code: '08P01', message: 'invalid message format' })).toBe(false);
    expect(isConnectionError({ code: '08006', message: 'connection failure' })).toBe(true);
    expect(isConnectionError({ code: 'ECONNREFUSED', message: 'connect ECONNREFUSED' })).toBe(true);
  });
});

describe('the protocol sniff', () => {
  /** Sends `first`, waits, sends `rest`, and returns what the server answered (up to its close). */
  function exchange(first: string, rest: string): Promise<string> {
    return new Promise((resolve, reject) => {
      const s = net.connect(ts.server.port, '127.0.0.1');
      s.setNoDelay(true);
      let answer = '';
      s.setEncoding('latin1');
      s.on('data', (d) => (answer += d));
      s.on('end', () => resolve(answer));
      s.on('error', reject);
      s.on('connect', () => {
        s.write(first);
        setTimeout(() => s.end(rest), 100);
      });
    });
  }

  it('an HTTP/1.1 request whose first segment is a lone "P" is answered in HTTP/1.1', async () => {
    const body = '{}';
    const request = [
      'POST /keyward.v1.WorkspaceService/ListWorkspaces HTTP/1.1',
      'Host: keyward',
      'Content-Type: application/json',
      `Content-Length: ${body.length}`,
      'Connection: close',
      '',
      body,
    ].join('\r\n');
    const answer = await exchange(request.slice(0, 1), request.slice(1));
    expect(answer.slice(0, 9)).toBe('HTTP/1.1 ');
    expect(answer).toContain('unauthenticated');
  });

  it('so is one whose first segment is "PRI " but then is not the HTTP/2 preface', async () => {
    const answer = await exchange('PRI ', '/ HTTP/1.1\r\nHost: keyward\r\nConnection: close\r\n\r\n');
    expect(answer.slice(0, 9)).toBe('HTTP/1.1 ');
  });
});
