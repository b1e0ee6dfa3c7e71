import type { ServiceImpl } from '@connectrpc/connect';
import { durationMs } from '@bufbuild/protobuf/wkt';
import type { KeyService, CreateKeyRequest } from '../../gen/keyward/v1/key_service_pb.js';
import { ConnectError } from '@connectrpc/connect';
import { codeToString } from '@connectrpc/connect/protocol-connect';
import { DomainError, invalidArgument } from '../domain/errors.js';
import type { VerifyMetrics, VerifyProtocol } from '../metrics/verify-metrics.js';
import type { Keys } from '../domain/keys.js';
import type { RelativeExpiry } from '../domain/key-fields.js';
import { cappedTimeoutMs, deadlineAt } from '../verify/deadline.js';
import type { VerifyCall } from '../verify/verify-call.js';
import { principalOf } from './context.js';
import { keyInputFromProto, keyStateFromProto, keyToProto, toTime, verifyInputFromProto, verifyResultToProto } from './convert.js';

/** CreateKey's relative expiry: `expires_in_days` or `expires_in`, at most one of them. */
function relativeExpiryOf(req: CreateKeyRequest): RelativeExpiry | undefined {
  const d = req.expiresIn;
  if (req.expiresInDays !== 0 && d) throw invalidArgument('expires_in', 'must not be set together with expires_in_days (set one of them)');
  if (req.expiresInDays !== 0) return { field: 'expires_in_days', ms: req.expiresInDays * 86_400_000 };
  if (!d) return undefined;
  if (d.nanos < -999_999_999 || d.nanos > 999_999_999) throw invalidArgument('expires_in', 'is not a valid duration');
  // A negative duration is refused as such (durationMs would round a sub-millisecond one to 0).
  return { field: 'expires_in', ms: d.seconds < 0n || d.nanos < 0 ? -1 : durationMs(d) };
}

/** connect-es's protocol names, as the metrics name them. */
const STOCK_PROTOCOLS: Record<string, VerifyProtocol> = { grpc: 'grpc', 'grpc-web': 'grpc_web', connect: 'connect' };

/** `deadlineCapMs`: the longest deadline VerifyKey honours (KEYWARD_MAX_REQUEST_TIMEOUT_MS). */
export function keyService(keys: Keys, verifyCall: VerifyCall, deadlineCapMs: number, metrics?: Pick<VerifyMetrics, 'record'>): ServiceImpl<typeof KeyService> {
  return {
    async createKey(req, ctx) {
      const { view, secret } = await keys.create(principalOf(ctx), keyInputFromProto(req.key), { expiresIn: relativeExpiryOf(req) });
      return { key: keyToProto(view), secret };
    },
    async importKeys(req, ctx) {
      const items = req.keys.map((k) => ({
        key: keyInputFromProto(k.key),
        plaintext: k.secret.case === 'plaintext' ? k.secret.value : '',
        sha256: k.secret.case === 'sha256' ? k.secret.value : '',
      }));
      return { keys: (await keys.import(principalOf(ctx), req.workspaceId, items)).map(keyToProto) };
    },
    async getKey(req, ctx) {
      return { key: keyToProto(await keys.get(principalOf(ctx), req.id)) };
    },
    async listKeys(req, ctx) {
      const filter = {
        workspaceId: req.workspaceId,
        customerId: req.customerId,
        state: keyStateFromProto(req.state),
        expireBefore: toTime('expire_before', req.expireBefore),
      };
      const page = await keys.list(principalOf(ctx), filter, req);
      return { keys: page.items.map(keyToProto), nextPageToken: page.nextPageToken };
    },
    async updateKey(req, ctx) {
      const view = await keys.update(principalOf(ctx), req.key?.id ?? '', keyInputFromProto(req.key), req.updateMask?.paths ?? []);
      return { key: keyToProto(view) };
    },
    async rotateKey(req, ctx) {
      const g = req.gracePeriod;
      if (g && (g.nanos < -999_999_999 || g.nanos > 999_999_999)) throw invalidArgument('grace_period', 'is not a valid duration');
      // durationMs rounds to milliseconds, which would let a sub-millisecond negative duration pass as 0.
      if (g && (g.seconds < 0n || g.nanos < 0)) throw invalidArgument('grace_period', 'must not be negative');
      const { view, secret } = await keys.rotate(principalOf(ctx), req.id, g ? durationMs(g) : 0);
      return { key: keyToProto(view), secret };
    },
    async revokeKey(req, ctx) {
      return { key: keyToProto(await keys.revoke(principalOf(ctx), req.id)) };
    },
    async deleteKey(req, ctx) {
      await keys.delete(principalOf(ctx), req.id);
      return {};
    },
    async verifyKey(req, ctx) {
      // The auth interceptor has authenticated the caller.
      const start = performance.now();
      const timeoutMs = cappedTimeoutMs(ctx.timeoutMs(), deadlineCapMs);
      const deadline = timeoutMs === undefined ? undefined : deadlineAt(timeoutMs);
      let code = 'internal';
      try {
        const result = await verifyCall.verify(principalOf(ctx), verifyInputFromProto(req), deadline);
        code = result.code;
        return verifyResultToProto(result);
      } catch (e) {
        code = e instanceof DomainError ? e.kind : codeToString(ConnectError.from(e).code);
        throw e;
      } finally {
        metrics?.record('stock', STOCK_PROTOCOLS[ctx.protocolName] ?? 'http', code, (performance.now() - start) / 1000);
      }
    },
  };
}
