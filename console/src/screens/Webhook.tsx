// A workspace's webhook: where key events are POSTed, and its signing secret.
import { useEffect, useState } from 'react';
import { useSession } from '../session.js';
import { useAction, useLoad } from '../hooks.js';
import { Code, isCode } from '../api.js';
import { formatTime } from '../format.js';
import { useToast } from '../toast.js';
import { Badge, Button, Card, ConfirmDialog, ErrorBanner, Field, Loading, SecretDialog } from '../components/ui.js';
import { WebhookDeliveries } from './WebhookDeliveries.js';

export function Webhook({ workspaceId }: { workspaceId: string }) {
  const { api, can } = useSession();
  const toast = useToast();
  const res = useLoad(async () => {
    try {
      return (await api.webhooks.getWebhook({ workspaceId })).webhook ?? null;
    } catch (e) {
      if (isCode(e, Code.NotFound)) return null;
      throw e;
    }
  }, [workspaceId]);
  const hook = res.data;
  const [url, setUrl] = useState('');
  const [days, setDays] = useState('7');
  const [secret, setSecret] = useState<string | null>(null);
  const [deleting, setDeleting] = useState(false);
  /** Bumped after a test event, so the deliveries list shows it. */
  const [tests, setTests] = useState(0);
  const { busy, error, run } = useAction();
  const writable = can('workspace:write');

  useEffect(() => {
    setUrl(hook?.url ?? '');
    setDays(String(hook?.expiringNoticeDays || 7));
  }, [hook]);

  const save = async (rotateSecret: boolean) => {
    const r = await run(() =>
      api.webhooks.setWebhook({
        webhook: {
          workspaceId,
          url: rotateSecret && hook ? hook.url : url.trim(),
          expiringNoticeDays: Number(rotateSecret && hook ? hook.expiringNoticeDays : days) || 0,
        },
        rotateSecret,
      }),
    );
    if (!r) return;
    if (r.signingSecret) setSecret(r.signingSecret);
    toast(rotateSecret ? 'Signing secret rotated' : 'Webhook saved');
    res.reload();
  };

  const sendTest = async () => {
    const r = await run(() => api.webhooks.sendTestEvent({ workspaceId }));
    if (!r) return;
    toast(
      r.delivered
        ? `Test event delivered: HTTP ${r.httpStatus} in ${r.durationMs} ms`
        : `Test event not delivered: ${r.error}${r.durationMs ? ` (after ${r.durationMs} ms)` : ''}`,
    );
    setTests((n) => n + 1);
  };

  if (res.loading && res.data === undefined) return <Loading />;
  return (
    <div className="stack">
      <Card title={<span className="title-with-badge">Webhook {hook ? <Badge tone="green">Active</Badge> : <Badge tone="gray">Not set</Badge>}</span>}>
        <p className="card-intro muted">
          Keyward POSTs signed JSON events here: <code>key.expiring</code>, <code>key.revoked</code>, <code>key.rotated</code> and{' '}
          <code>key.usage_exhausted</code>. Verify the <code>keyward-signature</code> header with the signing secret.
        </p>
        <ErrorBanner error={res.error} title="Could not load the webhook" />
        <form
          className="webhook-form"
          onSubmit={(e) => {
            e.preventDefault();
            void save(false);
          }}
        >
          <Field label="Endpoint URL">
            <input
              className="input"
              type="url"
              value={url}
              onChange={(e) => setUrl(e.target.value)}
              placeholder="https://example.com/keyward/events"
              disabled={!writable}
            />
          </Field>
          <Field label="Expiry notice (days)" hint="key.expiring is sent this many days before a key expires (1–365).">
            <input className="input input-narrow" type="number" min={1} max={365} value={days} onChange={(e) => setDays(e.target.value)} disabled={!writable} />
          </Field>
          {writable ? (
            <div className="form-actions">
              <Button type="submit" variant="primary" busy={busy} disabled={!url.trim()}>
                {hook ? 'Save webhook' : 'Set webhook'}
              </Button>
              {hook ? (
                <>
                  <Button onClick={() => void sendTest()} disabled={busy}>
                    Send test event
                  </Button>
                  <Button onClick={() => void save(true)} disabled={busy}>
                    Rotate signing secret
                  </Button>
                  <Button variant="ghost" className="text-danger" onClick={() => setDeleting(true)}>
                    Delete webhook
                  </Button>
                </>
              ) : null}
            </div>
          ) : null}
        </form>
        <ErrorBanner error={error} />
        {hook ? (
          <p className="muted small webhook-times">
            Set {formatTime(hook.createTime)} · updated {formatTime(hook.updateTime)}
          </p>
        ) : null}
      </Card>
      {hook ? <WebhookDeliveries key={tests} workspaceId={workspaceId} /> : null}
      {secret !== null ? (
        <SecretDialog title="Webhook signing secret" secret={secret} hashed={false} onClose={() => setSecret(null)}>
          <p>
            Use it to check the HMAC-SHA256 in each event's <code>keyward-signature</code> header.
          </p>
        </SecretDialog>
      ) : null}
      {deleting ? (
        <ConfirmDialog
          title="Delete webhook"
          confirmLabel="Delete webhook"
          onClose={() => setDeleting(false)}
          onConfirm={async () => {
            await api.webhooks.deleteWebhook({ workspaceId });
            toast('Webhook deleted');
            res.reload();
          }}
        >
          <p>Stop sending events to {hook?.url}? Events not yet delivered are dropped.</p>
        </ConfirmDialog>
      ) : null}
    </div>
  );
}
