import type { ServiceImpl } from '@connectrpc/connect';
import type { ScopeService } from '../../gen/keyward/v1/scope_service_pb.js';
import type { Scope } from '../../gen/keyward/v1/scope_pb.js';
import type { ScopeInput, Scopes } from '../domain/scopes.js';
import { principalOf } from './context.js';
import { scopeToProto } from './convert.js';

const scopeInput = (s: Scope | undefined): ScopeInput => ({
  workspaceId: s?.workspaceId ?? '',
  name: s?.name ?? '',
  description: s?.description ?? '',
  actions: s?.actions ?? [],
});

export function scopeService(scopes: Scopes): ServiceImpl<typeof ScopeService> {
  return {
    async createScope(req, ctx) {
      return { scope: scopeToProto(await scopes.create(principalOf(ctx), scopeInput(req.scope))) };
    },
    async getScope(req, ctx) {
      return { scope: scopeToProto(await scopes.get(principalOf(ctx), req.id)) };
    },
    async listScopes(req, ctx) {
      const page = await scopes.list(principalOf(ctx), req.workspaceId, req);
      return { scopes: page.items.map(scopeToProto), nextPageToken: page.nextPageToken };
    },
    async updateScope(req, ctx) {
      const updated = await scopes.update(principalOf(ctx), req.scope?.id ?? '', scopeInput(req.scope), req.updateMask?.paths ?? []);
      return { scope: scopeToProto(updated) };
    },
    async deleteScope(req, ctx) {
      await scopes.delete(principalOf(ctx), req.id);
      return {};
    },
  };
}
