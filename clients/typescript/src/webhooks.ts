// For webhook receivers: checks that a delivery came from Keyward. Keyward
// signs each delivery's body with the webhook's signing secret (`whsec_…`,
// returned by WebhookService.SetWebhook) in the `keyward-signature` header:
// `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`, as Stripe does.
import { createHmac, timingSafeEqual } from 'node:crypto';

/** The header that carries the signature. */
export const WEBHOOK_SIGNATURE_HEADER = 'keyward-signature';
/** The header that carries the event id (the same on every redelivery: deduplicate on it). */
export const WEBHOOK_EVENT_ID_HEADER = 'keyward-event-id';

/**
 * True if `header` (the `keyward-signature` value) signs `body` (the raw
 * request body, exactly as received) with `secret`, and its timestamp is
 * within `toleranceSeconds` of `now` (replayed deliveries are refused).
 */
export function verifyWebhookSignature(secret: string, body: string, header: string, toleranceSeconds = 300, now = Date.now()): boolean {
  const parts = new Map(header.split(',').map((p) => p.split('=', 2) as [string, string]));
  const t = Number(parts.get('t'));
  const v1 = parts.get('v1');
  if (!Number.isInteger(t) || !v1 || Math.abs(now / 1000 - t) > toleranceSeconds) return false;
  const expected = createHmac('sha256', secret).update(`${t}.${body}`).digest();
  const given = Buffer.from(v1, 'hex');
  return given.length === expected.length && timingSafeEqual(given, expected);
}
