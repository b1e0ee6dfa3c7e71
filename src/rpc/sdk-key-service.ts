import type { ServiceImpl } from '@connectrpc/connect';
import type { SdkKeyService } from '../../gen/keyward/v1/sdk_key_service_pb.js';
import type { SdkKeys } from '../domain/sdk-keys.js';
import { principalOf } from './context.js';
import { sdkKeyToProto } from './convert.js';

export function sdkKeyService(sdkKeys: SdkKeys): ServiceImpl<typeof SdkKeyService> {
  return {
    async getCurrentSdkKey(_req, ctx) {
      return { sdkKey: sdkKeyToProto(await sdkKeys.current(principalOf(ctx))) };
    },
    async createSdkKey(req, ctx) {
      const k = req.sdkKey;
      const issued = await sdkKeys.create({ name: k?.name ?? '', scopes: k?.scopes ?? [], workspaceIds: k?.workspaceIds ?? [] }, principalOf(ctx));
      return { sdkKey: sdkKeyToProto(issued.sdkKey), token: issued.token };
    },
    async listSdkKeys(req, ctx) {
      const page = await sdkKeys.listVisible(principalOf(ctx), req);
      return { sdkKeys: page.items.map(sdkKeyToProto), nextPageToken: page.nextPageToken };
    },
    async revokeSdkKey(req, ctx) {
      return { sdkKey: sdkKeyToProto(await sdkKeys.revoke(req.id, principalOf(ctx))) };
    },
  };
}
