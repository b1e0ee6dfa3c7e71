import type { ServiceImpl } from '@connectrpc/connect';
import type { UsageService } from '../../gen/keyward/v1/usage_service_pb.js';
import type { UsageReports } from '../domain/usage.js';
import { principalOf } from './context.js';
import { toTime, usageReportToProto } from './convert.js';

export function usageService(reports: UsageReports): ServiceImpl<typeof UsageService> {
  return {
    async getKeyUsage(req, ctx) {
      const range = { start: toTime('start_time', req.startTime), end: toTime('end_time', req.endTime) };
      return usageReportToProto(await reports.keyUsage(principalOf(ctx), req.keyId, range));
    },
    async getWorkspaceUsage(req, ctx) {
      const range = { start: toTime('start_time', req.startTime), end: toTime('end_time', req.endTime) };
      return usageReportToProto(await reports.workspaceUsage(principalOf(ctx), req.workspaceId, range));
    },
  };
}
