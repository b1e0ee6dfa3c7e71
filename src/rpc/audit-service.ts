import type { ServiceImpl } from '@connectrpc/connect';
import type { AuditService } from '../../gen/keyward/v1/audit_service_pb.js';
import type { AuditLog } from '../domain/audit.js';
import { principalOf } from './context.js';
import { auditEventToProto, toTime } from './convert.js';

export function auditService(log: AuditLog): ServiceImpl<typeof AuditService> {
  return {
    async listAuditEvents(req, ctx) {
      const filter = {
        workspaceId: req.workspaceId,
        resourceType: req.resourceType,
        resourceId: req.resourceId,
        actor: req.actor,
        action: req.action,
        startTime: toTime('start_time', req.startTime),
        endTime: toTime('end_time', req.endTime),
      };
      const page = await log.list(principalOf(ctx), filter, req);
      return { events: page.items.map(auditEventToProto), nextPageToken: page.nextPageToken };
    },
  };
}
