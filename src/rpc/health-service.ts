// The gRPC health checking protocol (grpc.health.v1.Health). The server, and
// every service it names, is SERVING while the database answers and NOT_SERVING
// when it does not or while the process shuts down (DatabaseProbe).
import { Code, ConnectError, type HandlerContext, type ServiceImpl } from '@connectrpc/connect';
import { Health, HealthCheckResponse_ServingStatus as Status } from '../../gen/grpc/health/v1/health_pb.js';
import type { DatabaseProbe } from '../health/database-probe.js';

/** How often a Watch stream looks at the status again. */
const WATCH_INTERVAL_MS = 1000;

export function healthService(probe: DatabaseProbe, serviceNames: readonly string[]): ServiceImpl<typeof Health> {
  const known = new Set(['', ...serviceNames]);
  const current = async (): Promise<Status> => {
    if (probe.isDraining) return Status.NOT_SERVING;
    return (await probe.status()).reachable ? Status.SERVING : Status.NOT_SERVING;
  };
  return {
    async check(req) {
      if (!known.has(req.service)) throw new ConnectError(`unknown service ${JSON.stringify(req.service)}`, Code.NotFound);
      return { status: await current() };
    },
    async list() {
      const status = await current();
      return { statuses: Object.fromEntries([...known].map((name) => [name, { status }])) };
    },
    // Sends the status at once and again whenever it changes; an unknown
    // service is SERVICE_UNKNOWN (the stream stays open, as the protocol asks).
    async *watch(req, ctx) {
      let last: Status | undefined;
      while (!ctx.signal.aborted) {
        const status = known.has(req.service) ? await current() : Status.SERVICE_UNKNOWN;
        if (status !== last) {
          last = status;
          yield { status };
        }
        await sleep(WATCH_INTERVAL_MS, ctx);
      }
    },
  };
}

function sleep(ms: number, ctx: HandlerContext): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      ctx.signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    ctx.signal.addEventListener('abort', done, { once: true });
  });
}
