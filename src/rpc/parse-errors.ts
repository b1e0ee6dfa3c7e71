import { Code, ConnectError, type HandlerContext } from '@connectrpc/connect';

/**
 * connect-es answers a request body that is not a valid protobuf message with
 * INTERNAL ("parse binary: ..."), before any interceptor runs. That is the
 * caller's mistake, so it must be INVALID_ARGUMENT. This request gate runs
 * before the body is read and watches the call's abort signal, which every
 * protocol handler (Connect, gRPC, gRPC-Web) aborts with the parse error just
 * before it serializes that error; the code is corrected in place.
 */
export function binaryParseErrorIsInvalidArgument(ctx: HandlerContext): void {
  ctx.signal.addEventListener(
    'abort',
    () => {
      const e: unknown = ctx.signal.reason;
      if (e instanceof ConnectError && e.code === Code.Internal && e.rawMessage.startsWith('parse binary:')) {
        (e as { code: Code }).code = Code.InvalidArgument;
      }
    },
    { once: true },
  );
}
