import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import type { ServiceImpl } from '@connectrpc/connect';
import type { PortalService } from '../../gen/keyward/v1/portal_service_pb.js';
import type { PortalSessions } from '../domain/portal-sessions.js';
import { principalOf } from './context.js';
import { durationToMs, grantsFromProto, grantsToProto } from './convert.js';

export function portalService(sessions: PortalSessions): ServiceImpl<typeof PortalService> {
  return {
    async createPortalSession(req, ctx) {
      const { session, token } = await sessions.create(principalOf(ctx), {
        workspaceId: req.workspaceId,
        customerId: req.customerId,
        allowedGrants: grantsFromProto(req.allowedGrants),
        ttlMs: durationToMs(req.ttl),
      });
      return { token, expireTime: timestampFromDate(session.expireTime) };
    },
    async getPortalSession(_req, ctx) {
      const d = await sessions.describe(principalOf(ctx));
      return { session: { ...d, allowedGrants: grantsToProto(d.allowedGrants), expireTime: timestampFromDate(d.expireTime) } };
    },
  };
}
