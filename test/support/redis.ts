import { randomBytes } from 'node:crypto';
import net from 'node:net';

/** Where the Redis tests look: REDIS_URL, else the usual local port. */
export const TEST_REDIS_URL = process.env.REDIS_URL || 'redis://127.0.0.1:6379';

/** Whether a Redis answers PING at `url` within a second. */
export function redisAnswers(url = TEST_REDIS_URL): Promise<boolean> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const socket = net.connect({ host: hostname || '127.0.0.1', port: Number(port || 6379) });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1000, () => done(false));
    socket.on('error', () => done(false));
    socket.on('connect', () => socket.write('PING\r\n'));
    socket.on('data', (d) => done(d.toString().startsWith('+PONG')));
  });
}

/** A key prefix of its own for one test file, so that tests never share counters. */
export const uniqueRedisPrefix = (name: string) => `keyward-test:${name}:${randomBytes(4).toString('hex')}:`;

/** The start of a fixed window of `durationMs` with at least `marginMs` left, waiting if the current one ends sooner. */
export async function awayFromWindowEnd(durationMs: number, marginMs = 15_000): Promise<void> {
  const left = durationMs - (Date.now() % durationMs);
  if (left < marginMs) await new Promise((r) => setTimeout(r, left + 50));
}

/** The end of the current fixed window of `durationMs`. */
export const currentWindowEnd = (durationMs: number) => new Date((Math.floor(Date.now() / durationMs) + 1) * durationMs);
