// The gRPC health checking protocol (grpc.health.v1.Health). The server, and
// every service it names, is SERVING while the database answers and NOT_SERVING
// when it does not or while the process shuts down (DatabaseProbe).
import { Code, ConnectError, type ServiceImpl } from '@connectrpc/connect';
import { type Health, HealthCheckResponse_ServingStatus as Status } from '../../gen/grpc/health/v1/health_pb.js';
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
    // A Watch open when shutdown starts gets NOT_SERVING within a second, then ends.
    async *watch(req, ctx) {
      let last: Status | undefined;
      while (!ctx.signal.aborted) {
        const status = known.has(req.service) ? await current() : Status.SERVICE_UNKNOWN;
        if (status !== last) {
          last = status;
          yield { status };
        }
        // A draining server has said NOT_SERVING; ending the stream lets shutdown finish.
        if (probe.isDraining) return;
        await sleep(WATCH_INTERVAL_MS, [ctx.signal, probe.drainSignal]);
      }
    },
  };
}

/** Waits `ms`, or less if one of the signals aborts (the call ends, the server starts draining). */
function sleep(ms: number, signals: AbortSignal[]): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      for (const s of signals) s.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    for (const s of signals) s.addEventListener('abort', done, { once: true });
  });
}
