// Shared test fixtures: workspaces and keys made through the API, key strings
// built independently of src/ (checksums, typos, unknown keys), VerifyKey
// assertions, and a plain HTTP request. Test files bind their own defaults to
// these in one line rather than declaring the helpers again.
import { randomBytes, randomUUID } from 'node:crypto';
import http from 'node:http';
import zlib from 'node:zlib';
import type { MessageInitShape } from '@bufbuild/protobuf';
import { timestampDate } from '@bufbuild/protobuf/wkt';
import type { Client } from '@connectrpc/connect';
import { expect } from 'vitest';
import type { ApiKey, ApiKeySchema } from '../../gen/keyward/v1/key_pb.js';
import { KeyService, VerifyCode, type VerifyKeyResponse } from '../../gen/keyward/v1/key_service_pb.js';
import { ScopeService } from '../../gen/keyward/v1/scope_service_pb.js';
import { WorkspaceService } from '../../gen/keyward/v1/workspace_service_pb.js';
import { client, type TestServer } from './server.js';

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** A protobuf Timestamp as epoch milliseconds (undefined stays undefined). */
export const ms = (t: { seconds: bigint; nanos: number } | undefined) => (t ? timestampDate(t as never).getTime() : undefined);

// ---------------------------------------------------------------------------
// Key strings, computed independently of src/.

const BASE62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

/** Checksum of a key body: base62 of zlib's CRC32, 6 chars. */
export function checksumOf(body: string): string {
  let n = zlib.crc32(body);
  let out = '';
  while (n > 0) {
    out = BASE62[n % 62] + out;
    n = Math.floor(n / 62);
  }
  return out.padStart(6, '0');
}

/** `{prefix}_{body}{checksum}`: a key with the right checksum for `body`. */
export function wellFormedKey(prefix: string, body: string): string {
  return `${prefix}_${body}${checksumOf(body)}`;
}

/** A key of the right shape and checksum that was never issued. */
export function wellFormedUnknownKey(prefix = 'kw'): string {
  return wellFormedKey(prefix, [...randomBytes(43)].map((b) => BASE62[b % 62]).join(''));
}

/** A key's prefix, 43-character body and 6-character checksum; throws if it is not a key. */
export function splitKey(secret: string) {
  const m = /^([a-z][a-z0-9]{0,15})_([0-9A-Za-z]{43})([0-9A-Za-z]{6})$/.exec(secret);
  if (!m) throw new Error(`not a key: ${secret}`);
  return { prefix: m[1]!, body: m[2]!, checksum: m[3]! };
}

/** The key with character `at` of its body changed to the next base62 character. */
export function typo(secret: string, at: number): string {
  const i = secret.indexOf('_') + 1 + at;
  const c = secret[i]!;
  const replacement = BASE62[(BASE62.indexOf(c) + 1) % 62]!;
  return secret.slice(0, i) + replacement + secret.slice(i + 1);
}

// ---------------------------------------------------------------------------
// Workspaces and keys, through the API.

/** Where KeyService calls go: a server (its admin SDK key, Connect JSON) or a given client. */
export type KeysVia = TestServer | Client<typeof KeyService>;

const keysOf = (via: KeysVia): Client<typeof KeyService> => ('baseUrl' in via ? client(KeyService, via) : via);

/** A fresh workspace (a unique name unless given, with the given scopes), so that each test is independent of the others. */
export async function newWorkspace(ts: TestServer, opts: { name?: string; keyPrefix?: string; scopes?: string[] } = {}): Promise<string> {
  const { workspace } = await client(WorkspaceService, ts).createWorkspace({
    workspace: { name: opts.name ?? `ws-${randomUUID()}`, keyPrefix: opts.keyPrefix ?? '' },
  });
  const scopes = client(ScopeService, ts);
  for (const name of opts.scopes ?? []) await scopes.createScope({ scope: { workspaceId: workspace!.id, name } });
  return workspace!.id;
}

/** Creates a key; its id, its secret (given only now) and the key as created. */
export async function newKey(via: KeysVia, key: MessageInitShape<typeof ApiKeySchema>): Promise<{ id: string; secret: string; key: ApiKey }> {
  const res = await keysOf(via).createKey({ key });
  return { id: res.key!.id, secret: res.secret, key: res.key! };
}

export async function getKey(via: KeysVia, id: string): Promise<ApiKey> {
  return (await keysOf(via).getKey({ id })).key!;
}

export function verify(via: KeysVia, key: string, requiredPermissions: string[] = [], workspaceId = ''): Promise<VerifyKeyResponse> {
  return keysOf(via).verifyKey({ key, requiredPermissions, workspaceId });
}

/** Verifies `key` and asserts the code; a NOT_FOUND answer must reveal nothing about any key. */
export async function expectVerify(
  via: KeysVia,
  key: string,
  code: VerifyCode,
  requiredPermissions: string[] = [],
  workspaceId = '',
): Promise<VerifyKeyResponse> {
  const res = await verify(via, key, requiredPermissions, workspaceId);
  expect(VerifyCode[res.code]).toBe(VerifyCode[code]);
  expect(res.valid).toBe(code === VerifyCode.VALID);
  if (code === VerifyCode.NOT_FOUND) {
    // Nothing about a key that was not found is revealed.
    expect(res.keyId).toBe('');
    expect(res.workspaceId).toBe('');
    expect(res.permissions).toEqual([]);
  }
  return res;
}

// ---------------------------------------------------------------------------
// Plain HTTP/1.1.

export interface HttpReply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** A plain HTTP/1.1 request; the body is read as UTF-8. Fails after `timeoutMs` of silence. */
export function httpRequest(
  url: string,
  opts: { method?: string; headers?: Record<string, string>; body?: string; timeoutMs?: number } = {},
): Promise<HttpReply> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: opts.method ?? 'GET', headers: opts.headers, timeout: opts.timeoutMs ?? 10_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body }));
    });
    req.on('timeout', () => req.destroy(new Error(`timeout: ${url}`)));
    req.on('error', reject);
    req.end(opts.body);
  });
}
