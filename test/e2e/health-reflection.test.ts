// gRPC health checking and server reflection, called with @grpc/grpc-js (an
// independent implementation) and `buf curl --reflect`; /healthz and /readyz.
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { createFileRegistry, fromBinary } from '@bufbuild/protobuf';
import { FileDescriptorProtoSchema, FileDescriptorSetSchema, type FileDescriptorProto } from '@bufbuild/protobuf/wkt';
import { create } from '@bufbuild/protobuf';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Action } from '../../gen/keyward/v1/key_pb.js';
import { KeyService } from '../../gen/keyward/v1/key_service_pb.js';
import { ScopeService } from '../../gen/keyward/v1/scope_service_pb.js';
import { WorkspaceService } from '../../gen/keyward/v1/workspace_service_pb.js';
import { client, startTestServer, type TestServer } from '../support/server.js';

const ROOT = path.resolve(import.meta.dirname, '../..');
const PROTO = path.join(ROOT, 'proto');
const loadOpts = { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true, includeDirs: [PROTO] };
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type AnyClient = any;

function grpcClient(protoFile: string, service: string, ts: TestServer): AnyClient {
  const def = protoLoader.loadSync(path.join(PROTO, protoFile), loadOpts);
  const pkg = grpc.loadPackageDefinition(def) as AnyClient;
  const Ctor = service.split('.').reduce((o: AnyClient, k) => o[k], pkg);
  return new Ctor(`127.0.0.1:${ts.server.port}`, grpc.credentials.createInsecure());
}

const unary = <T>(c: AnyClient, method: string, req: unknown) =>
  new Promise<T>((resolve, reject) =>
    c[method](req, { deadline: Date.now() + 10_000 }, (err: grpc.ServiceError | null, res: T) => (err ? reject(err) : resolve(res))),
  );

let ts: TestServer;

beforeAll(async () => {
  ts = await startTestServer();
});

afterAll(async () => {
  await ts?.close();
});

describe('grpc.health.v1.Health (grpc-js client, no SDK key)', () => {
  let health: AnyClient;
  beforeAll(() => {
    health = grpcClient('grpc/health/v1/health.proto', 'grpc.health.v1.Health', ts);
  });
  afterAll(() => health?.close());

  it('Check: the server and each of its services are SERVING', async () => {
    for (const service of ['', 'keyward.v1.KeyService', 'keyward.v1.TokenService', 'grpc.health.v1.Health']) {
      expect(await unary(health, 'Check', { service })).toEqual({ status: 'SERVING' });
    }
  });

  it('Check of an unknown service is NOT_FOUND', async () => {
    await expect(unary(health, 'Check', { service: 'nope.v1.Nothing' })).rejects.toMatchObject({ code: grpc.status.NOT_FOUND });
  });

  it('List names every service', async () => {
    const r = await unary<{ statuses: Record<string, { status: string }> }>(health, 'List', {});
    expect(Object.keys(r.statuses)).toEqual(expect.arrayContaining(['', 'keyward.v1.KeyService', 'grpc.reflection.v1.ServerReflection']));
  });

  it('Watch sends the current status at once; an unknown service is SERVICE_UNKNOWN', async () => {
    for (const [service, status] of [
      ['', 'SERVING'],
      ['nope.v1.Nothing', 'SERVICE_UNKNOWN'],
    ]) {
      const call = health.Watch({ service });
      const first = await new Promise((resolve, reject) => {
        call.once('data', resolve);
        call.once('error', reject);
      });
      expect(first).toEqual({ status });
      call.cancel();
      await new Promise((r) => call.once('error', r).once('end', r).once('close', r));
    }
  });
});

describe('shutdown', () => {
  it('an open Watch hears NOT_SERVING and ends, so the server stops without waiting out its grace period', async () => {
    const own = await startTestServer({ KEYWARD_SHUTDOWN_GRACE_MS: '60000' });
    const health = grpcClient('grpc/health/v1/health.proto', 'grpc.health.v1.Health', own);
    const seen: string[] = [];
    const watch = health.Watch({ service: '' });
    const ended = new Promise<void>((resolve) => {
      watch.on('data', (m: { status: string }) => seen.push(m.status));
      watch.on('end', () => resolve());
      watch.on('error', () => resolve());
    });
    try {
      await expect.poll(() => seen[0], { timeout: 5000 }).toBe('SERVING');
      const started = Date.now();
      await own.close();
      await ended;
      expect(seen.at(-1)).toBe('NOT_SERVING');
      // Well under the grace period (the rest is closing the database, slow on a busy machine).
      expect(Date.now() - started).toBeLessThan(30_000);
    } finally {
      health.close();
    }
  }, 90_000);
});

describe('/healthz and /readyz', () => {
  it('are 200 while the database answers', async () => {
    for (const p of ['/healthz', '/readyz']) {
      const r = await fetch(`${ts.baseUrl}${p}`);
      expect(r.status, p).toBe(200);
    }
    expect((await fetch(`${ts.baseUrl}/nope`)).status).toBe(404);
  });
});

// Making the database unreachable needs a server of our own: with Postgres,
// the test database stops taking connections and loses its open ones.
describe.skipIf(!process.env.DATABASE_URL)('when the database is unreachable (PostgreSQL)', () => {
  it('Health reports NOT_SERVING (Check and Watch), /readyz 503, /healthz still 200; SERVING again once it is back', async () => {
    const own = await startTestServer();
    const health = grpcClient('grpc/health/v1/health.proto', 'grpc.health.v1.Health', own);
    const dbName = new URL(own.server.db.url).pathname.slice(1);
    const admin = new pg.Client({ connectionString: process.env.DATABASE_URL });
    await admin.connect();
    const watch = health.Watch({ service: '' });
    const seen: string[] = [];
    watch.on('data', (m: { status: string }) => seen.push(m.status));
    watch.on('error', () => {});
    try {
      await expect.poll(() => seen[0], { timeout: 5000 }).toBe('SERVING');
      await admin.query(`alter database ${dbName} with allow_connections false`);
      await admin.query('select pg_terminate_backend(pid) from pg_stat_activity where datname = $1', [dbName]);
      await expect
        .poll(async () => (await unary<{ status: string }>(health, 'Check', { service: '' })).status, { timeout: 10_000, interval: 200 })
        .toBe('NOT_SERVING');
      expect((await fetch(`${own.baseUrl}/readyz`)).status).toBe(503);
      expect((await fetch(`${own.baseUrl}/healthz`)).status).toBe(200);
      await expect.poll(() => seen.at(-1), { timeout: 5000 }).toBe('NOT_SERVING');
      await admin.query(`alter database ${dbName} with allow_connections true`);
      await expect
        .poll(async () => (await unary<{ status: string }>(health, 'Check', { service: '' })).status, { timeout: 15_000, interval: 300 })
        .toBe('SERVING');
      await expect.poll(() => seen.at(-1), { timeout: 5000 }).toBe('SERVING');
    } finally {
      watch.cancel();
      health.close();
      await admin.query(`alter database ${dbName} with allow_connections true`).catch(() => {});
      await admin.end();
      await own.close();
    }
  }, 60_000);
});

describe('server reflection (grpc-js client, no SDK key)', () => {
  async function ask(version: 'v1' | 'v1alpha', requests: object[]): Promise<AnyClient[]> {
    const c = grpcClient(`grpc/reflection/${version}/reflection.proto`, `grpc.reflection.${version}.ServerReflection`, ts);
    try {
      const call = c.ServerReflectionInfo();
      const answers: AnyClient[] = [];
      const done = new Promise<void>((resolve, reject) => {
        call.on('data', (d: AnyClient) => answers.push(d));
        call.on('end', resolve);
        call.on('error', reject);
      });
      for (const r of requests) call.write(r);
      call.end();
      await done;
      return answers;
    } finally {
      c.close();
    }
  }

  it.each(['v1', 'v1alpha'] as const)('%s: lists services and returns descriptors a client can build every Keyward type from', async (version) => {
    const [list, bySymbol, byMethod, byFile, missing] = await ask(version, [
      { list_services: '' },
      { file_containing_symbol: 'keyward.v1.KeyService' },
      { file_containing_symbol: 'keyward.v1.TokenService.ExchangeKey' },
      { file_by_filename: 'keyward/v1/key.proto' },
      { file_containing_symbol: 'keyward.v1.Nothing' },
    ]);
    expect(list.list_services_response.service.map((s: { name: string }) => s.name).sort()).toEqual([
      'grpc.health.v1.Health',
      'grpc.reflection.v1.ServerReflection',
      'grpc.reflection.v1alpha.ServerReflection',
      'keyward.v1.AuditService',
      'keyward.v1.KeyService',
      'keyward.v1.PortalService',
      'keyward.v1.ScopeService',
      'keyward.v1.SdkKeyService',
      'keyward.v1.TokenService',
      'keyward.v1.UsageService',
      'keyward.v1.WebhookService',
      'keyward.v1.WorkspaceService',
    ]);
    const files = (a: AnyClient) => (a.file_descriptor_response.file_descriptor_proto as Buffer[]).map((b) => fromBinary(FileDescriptorProtoSchema, b));
    const keyService = files(bySymbol);
    expect(keyService[0]!.name).toBe('keyward/v1/key_service.proto');
    expect(keyService.map((f) => f.name)).toEqual(expect.arrayContaining(['keyward/v1/key.proto', 'google/protobuf/timestamp.proto']));
    expect(files(byMethod)[0]!.name).toBe('keyward/v1/token_service.proto');
    expect(files(byFile)[0]!.name).toBe('keyward/v1/key.proto');
    expect(missing.error_response).toMatchObject({ error_code: grpc.status.NOT_FOUND });
    expect(bySymbol.original_request.file_containing_symbol).toBe('keyward.v1.KeyService');
    // What a reflection client does: build a registry from the answers and find the types.
    const pool = new Map([...keyService, ...files(byMethod)].map((f) => [f.name, f]));
    const sorted: FileDescriptorProto[] = [];
    const visit = (name: string) => {
      const f = pool.get(name)!;
      if (sorted.includes(f)) return;
      f.dependency.forEach(visit);
      sorted.push(f);
    };
    pool.forEach((_f, name) => visit(name));
    const registry = createFileRegistry(create(FileDescriptorSetSchema, { file: sorted }));
    expect(registry.getService('keyward.v1.KeyService')?.methods.map((m) => m.name)).toContain('VerifyKey');
    expect(registry.getMessage('keyward.v1.ExchangeKeyResponse')?.fields.map((f) => f.name)).toContain('token');
  });

  it('buf curl --reflect calls VerifyKey with no local schema', async () => {
    const W = client(WorkspaceService, ts);
    const ws = (await W.createWorkspace({ workspace: { name: 'reflected' } })).workspace!.id;
    await client(ScopeService, ts).createScope({ scope: { workspaceId: ws, name: 'things' } });
    const { secret } = await client(KeyService, ts).createKey({
      key: { workspaceId: ws, customerId: 'c', name: 'r', grants: [{ scope: 'things', actions: [Action.READ] }] },
    });
    const { stdout } = await promisify(execFile)(
      path.join(ROOT, 'node_modules/.bin/buf'),
      [
        'curl',
        '--protocol',
        'grpc',
        '--http2-prior-knowledge',
        '--reflect',
        '-H',
        `authorization: Bearer ${ts.adminToken}`,
        '-d',
        JSON.stringify({ key: secret, requiredPermissions: ['things:read'] }),
        `${ts.baseUrl}/keyward.v1.KeyService/VerifyKey`,
      ],
      { timeout: 30_000, cwd: '/' },
    );
    expect(JSON.parse(stdout)).toMatchObject({ valid: true, code: 'VERIFY_CODE_VALID', workspaceId: ws });
  });
});
