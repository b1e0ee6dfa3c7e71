// The delivery state of a workspace's recent webhook events, with a way to
// send one again.
import { DeliveryState, type WebhookDelivery } from '../../../gen/keyward/v1/webhook_service_pb.js';
import { useSession } from '../session.js';
import { useLoad } from '../hooks.js';
import { formatTime, relative, shortId, type Tone } from '../format.js';
import { useToast } from '../toast.js';
import { Badge, Button, Card, Empty, ErrorBanner, Loading, Pager, TableScroll, usePages } from '../components/ui.js';

const STATES: Record<DeliveryState, { label: string; tone: Tone }> = {
  [DeliveryState.UNSPECIFIED]: { label: 'Unknown', tone: 'gray' },
  [DeliveryState.PENDING]: { label: 'Retrying', tone: 'amber' },
  [DeliveryState.DELIVERED]: { label: 'Delivered', tone: 'green' },
  [DeliveryState.FAILED]: { label: 'Failed', tone: 'red' },
};

function when(d: WebhookDelivery): string {
  if (d.state === DeliveryState.DELIVERED) return `delivered ${relative(d.deliveredTime)}`;
  if (d.state === DeliveryState.FAILED) return `gave up ${relative(d.failedTime)}`;
  return d.attempts === 0 ? 'sending now' : `next attempt ${formatTime(d.nextAttemptTime)}`;
}

export function WebhookDeliveries({ workspaceId }: { workspaceId: string }) {
  const { api, can } = useSession();
  const toast = useToast();
  const pages = usePages();
  const list = useLoad(() => api.webhooks.listWebhookDeliveries({ workspaceId, pageSize: 20, pageToken: pages.token }), [workspaceId, pages.token]);
  const rows = list.data?.deliveries ?? [];
  const redeliver = async (d: WebhookDelivery) => {
    try {
      await api.webhooks.redeliverWebhookEvent({ workspaceId, eventId: d.eventId });
      toast(`Sending ${d.eventType} again`);
      list.reload();
    } catch (e) {
      toast(e instanceof Error ? e.message : String(e));
    }
  };
  return (
    <Card
      title="Recent deliveries"
      actions={
        <Button small onClick={list.reload}>
          Refresh
        </Button>
      }
    >
      <ErrorBanner error={list.error} title="Could not load deliveries" />
      {list.loading && !list.data ? (
        <Loading />
      ) : rows.length === 0 ? (
        <Empty title="No events yet">Events appear here when keys expire soon, are rotated or revoked, or run out of uses.</Empty>
      ) : (
        <TableScroll label="Webhook deliveries">
          <table className="table">
            <thead>
              <tr>
                <th scope="col">Event</th>
                <th scope="col">Key</th>
                <th scope="col">State</th>
                <th scope="col">Attempts</th>
                <th scope="col">Last error</th>
                <th scope="col">
                  <span className="sr-only">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {rows.map((d) => (
                <tr key={d.eventId}>
                  <td>
                    <code className="chip">{d.eventType}</code>
                    <div className="muted small nowrap">{formatTime(d.createTime)}</div>
                  </td>
                  <td className="nowrap">{d.keyId ? <a href={`#/keys/${d.keyId}`}>{shortId(d.keyId)}</a> : '—'}</td>
                  <td>
                    <Badge tone={STATES[d.state].tone}>{STATES[d.state].label}</Badge>
                    <div className="muted small">{when(d)}</div>
                  </td>
                  <td>{d.attempts}</td>
                  <td className="wrap break-anywhere">{d.lastError || <span className="muted">—</span>}</td>
                  <td className="row-actions">
                    {/* A test event (SendTestEvent) is sent once, never again. */}
                    {can('workspace:write') && d.eventType !== 'webhook.test' ? (
                      <Button small variant="ghost" onClick={() => void redeliver(d)} aria-label={`Send ${d.eventType} event ${shortId(d.eventId)} again`}>
                        Redeliver
                      </Button>
                    ) : null}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </TableScroll>
      )}
      <Pager page={pages.page} hasNext={!!list.data?.nextPageToken} onPrev={pages.prev} onNext={() => pages.next(list.data!.nextPageToken)} />
    </Card>
  );
}
