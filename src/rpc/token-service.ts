import type { ServiceImpl } from '@connectrpc/connect';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { TokenService } from '../../gen/keyward/v1/token_service_pb.js';
import type { TokenIssuer } from '../tokens/token-issuer.js';
import { principalOf } from './context.js';
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
  };
}
