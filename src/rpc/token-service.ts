import type { ServiceImpl } from '@connectrpc/connect';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import type { TokenService } from '../../gen/keyward/v1/token_service_pb.js';
import type { TokenIssuer } from '../tokens/token-issuer.js';
import { peerKey, principalOf } from './context.js';
import { verifyCodeToProto } from './convert.js';

export function tokenService(tokens: TokenIssuer): ServiceImpl<typeof TokenService> {
  return {
    async exchangeKey(req, ctx) {
      const input = { key: req.key, requiredPermissions: req.requiredPermissions, workspaceId: req.workspaceId };
      const r = await tokens.exchange(principalOf(ctx), input);
      return {
        code: verifyCodeToProto(r.code),
        keyId: r.key?.id ?? '',
        ...(r.token && { token: r.token.jwt, expireTime: timestampFromDate(r.token.expireTime), signingKeyId: r.token.signingKeyId }),
      };
    },
    // No SDK key: the API key in the authorization header is the credential
    // (authInterceptor lets only this RPC through unauthenticated).
    async exchangeOwnKey(req, ctx) {
      const r = await tokens.exchangeOwn(ctx.requestHeader.get('authorization'), ctx.values.get(peerKey), {
        requiredPermissions: req.requiredPermissions,
        workspaceId: req.workspaceId,
      });
      return {
        token: r.token.jwt,
        expireTime: timestampFromDate(r.token.expireTime),
        keyId: r.key.id,
        signingKeyId: r.token.signingKeyId,
        workspaceId: r.key.workspaceId,
        permissions: r.permissions,
      };
    },
  };
}
