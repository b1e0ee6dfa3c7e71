import { createHmac } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import { isIP, type LookupFunction } from 'node:net';
import type { SecretBox } from '../credentials/secret-box.js';
import type { SendOutcome, WebhookTarget } from '../domain/webhooks.js';
import { checkDestination, resolveWithDns, type ResolveHost } from './address-guard.js';

export const SIGNATURE_HEADER = 'keyward-signature';
export const EVENT_ID_HEADER = 'keyward-event-id';

/**
 * `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`, as Stripe signs its
 * webhooks. Receivers check it with verifyWebhookSignature of the TypeScript
 * client (clients/typescript/src/webhooks.ts).
 */
function signWebhook(secret: string, body: string, timestampSeconds: number): string {
  const v1 = createHmac('sha256', secret).update(`${timestampSeconds}.${body}`).digest('hex');
  return `t=${timestampSeconds},v1=${v1}`;
}

export interface WebhookSenderOptions {
  /** How long a receiver may take to answer, resolution and connection included. */
  timeoutMs: number;
  /** Whether receivers may be on loopback, private or link-local addresses. */
  allowPrivateNetworks: boolean;
  /** Opens the stored signing secrets. */
  secrets: SecretBox;
  /** Resolves receivers' host names; the system resolver unless a test controls it. */
  resolve?: ResolveHost;
}

/**
 * Posts one signed event to a receiver: the one way every webhook event
 * leaves the process (the outbox worker's deliveries and SendTestEvent). The
 * host is resolved once and every address checked (address-guard.ts); the
 * connection then goes only to those addresses (its `lookup` answers them and
 * nothing else), while TLS still checks the certificate against the host
 * name. Redirects are not followed, the body of the answer is not read.
 */
export class WebhookSender {
  private readonly resolve: ResolveHost;

  constructor(private readonly opts: WebhookSenderOptions) {
    this.resolve = opts.resolve ?? resolveWithDns;
  }

  async send(target: WebhookTarget, eventId: string, payload: string): Promise<SendOutcome> {
    const started = performance.now();
    const outcome = (httpStatus: number, error: string): SendOutcome => ({
      delivered: error === '',
      httpStatus,
      error,
      durationMs: Math.round(performance.now() - started),
    });
    const signal = AbortSignal.timeout(this.opts.timeoutMs);
    let where = '';
    try {
      const url = new URL(target.url);
      const destination = await Promise.race([checkDestination(url, this.resolve, this.opts.allowPrivateNetworks), aborted(signal)]);
      if (destination.refused !== undefined) return outcome(0, destination.refused);
      where = ` (${destination.addresses.join(', ')})`;
      const headers = {
        'content-type': 'application/json',
        'content-length': Buffer.byteLength(payload),
        'user-agent': 'keyward-webhooks',
        [EVENT_ID_HEADER]: eventId,
        [SIGNATURE_HEADER]: signWebhook(this.opts.secrets.open(target.secret), payload, Math.floor(Date.now() / 1000)),
      };
      const status = await postPinned(url, destination.addresses, headers, payload, signal);
      return outcome(status, status >= 200 && status <= 299 ? '' : `HTTP ${status}`);
    } catch (e) {
      if (signal.aborted) return outcome(0, `no answer within ${this.opts.timeoutMs} ms${where}`);
      return outcome(0, errorText(e));
    }
  }
}

/** Rejects when `signal` aborts (a resolver that never answers still times out). */
function aborted(signal: AbortSignal): Promise<never> {
  return new Promise((_, reject) => signal.addEventListener('abort', () => reject(signal.reason), { once: true }));
}

/** POSTs `body` to `url`, connecting only to `addresses`; the answer's status. */
function postPinned(url: URL, addresses: string[], headers: http.OutgoingHttpHeaders, body: string, signal: AbortSignal): Promise<number> {
  const lookup: LookupFunction = (_host, options, callback) => {
    if (options.all)
      callback(
        null,
        addresses.map((address) => ({ address, family: isIP(address) })),
      );
    else callback(null, addresses[0]!, isIP(addresses[0]!));
  };
  return new Promise((resolve, reject) => {
    const req = (url.protocol === 'https:' ? https : http).request(url, { method: 'POST', headers, lookup, agent: false, signal }, (res) => {
      resolve(res.statusCode ?? 0);
      res.destroy();
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** What went wrong, as the network said it (`connect ECONNREFUSED 1.2.3.4:443`). */
function errorText(e: unknown): string {
  if (e instanceof AggregateError && e.errors.length > 0) return e.errors.map(errorText).join('; ');
  const err = e as Error;
  return err.message || (err as NodeJS.ErrnoException).code || String(e);
}
