import type { ServiceImpl } from '@connectrpc/connect';
import type { WebhookService } from '../../gen/keyward/v1/webhook_service_pb.js';
import type { Webhooks } from '../domain/webhooks.js';
import { principalOf } from './context.js';
import { deliveryToProto, webhookToProto } from './convert.js';

export function webhookService(webhooks: Webhooks): ServiceImpl<typeof WebhookService> {
  return {
    async setWebhook(req, ctx) {
      const w = req.webhook;
      const input = { workspaceId: w?.workspaceId ?? '', url: w?.url ?? '', expiringNoticeDays: w?.expiringNoticeDays ?? 0 };
      const { webhook, signingSecret } = await webhooks.set(principalOf(ctx), input, req.rotateSecret);
      return { webhook: webhookToProto(webhook), signingSecret };
    },
    async getWebhook(req, ctx) {
      return { webhook: webhookToProto(await webhooks.get(principalOf(ctx), req.workspaceId)) };
    },
    async deleteWebhook(req, ctx) {
      await webhooks.delete(principalOf(ctx), req.workspaceId);
      return {};
    },
    async listWebhookDeliveries(req, ctx) {
      const page = await webhooks.deliveries(principalOf(ctx), req.workspaceId, req);
      return { deliveries: page.items.map(deliveryToProto), nextPageToken: page.nextPageToken };
    },
    async redeliverWebhookEvent(req, ctx) {
      return { delivery: deliveryToProto(await webhooks.redeliver(principalOf(ctx), req.workspaceId, req.eventId)) };
    },
    async sendTestEvent(req, ctx) {
      const { delivery, ...outcome } = await webhooks.sendTestEvent(principalOf(ctx), req.workspaceId);
      return { ...outcome, delivery: deliveryToProto(delivery) };
    },
  };
}
