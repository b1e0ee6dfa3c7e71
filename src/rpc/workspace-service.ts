import type { ServiceImpl } from '@connectrpc/connect';
import type { WorkspaceService } from '../../gen/keyward/v1/workspace_service_pb.js';
import type { Workspaces } from '../domain/workspaces.js';
import { principalOf } from './context.js';
import { workspaceToProto } from './convert.js';

export function workspaceService(workspaces: Workspaces): ServiceImpl<typeof WorkspaceService> {
  return {
    async createWorkspace(req, ctx) {
      const w = req.workspace;
      return { workspace: workspaceToProto(await workspaces.create(principalOf(ctx), { name: w?.name ?? '', keyPrefix: w?.keyPrefix ?? '' })) };
    },
    async getWorkspace(req, ctx) {
      return { workspace: workspaceToProto(await workspaces.get(principalOf(ctx), req.id)) };
    },
    async listWorkspaces(req, ctx) {
      const page = await workspaces.list(principalOf(ctx), req);
      return { workspaces: page.items.map(workspaceToProto), nextPageToken: page.nextPageToken };
    },
    async updateWorkspace(req, ctx) {
      const w = req.workspace;
      const updated = await workspaces.update(
        principalOf(ctx),
        w?.id ?? '',
        { name: w?.name ?? '', keyPrefix: w?.keyPrefix ?? '' },
        req.updateMask?.paths ?? [],
      );
      return { workspace: workspaceToProto(updated) };
    },
    async deleteWorkspace(req, ctx) {
      await workspaces.delete(principalOf(ctx), req.id);
      return {};
    },
  };
}
