// One API key: details, actions, hourly usage and its audit trail.
import { useState } from 'react';
import { KeyState, RefillInterval, type ApiKey } from '../../../gen/keyward/v1/key_pb.js';
import { useSession } from '../session.js';
import { useAction, useLoad } from '../hooks.js';
import { href, navigate } from '../router.js';
import { keyHint, durationMs, formatCount, formatDuration, formatTime, permissions, relative, stateLabel, stateTone } from '../format.js';
import { useToast } from '../toast.js';
import { Badge, Button, Card, ConfirmDialog, Dialog, ErrorBanner, Field, Loading, Notice, PageHeader, SecretDialog } from '../components/ui.js';
import { KeyForm } from './KeyForm.js';
import { KeyUsage } from './Usage.js';
import { AuditTrail } from './AuditLog.js';

type Open = 'edit' | 'rotate' | 'revoke' | 'delete' | null;

export function KeyPage({ id }: { id: string }) {
  const { api, can } = useSession();
  const toast = useToast();
  const loaded = useLoad(() => api.keys.getKey({ id }), [id]);
  // Bumped by every change made here, so the audit trail and usage reload too.
  const [version, setVersion] = useState(0);
  const res = { ...loaded, reload: () => (loaded.reload(), setVersion((v) => v + 1)) };
  const [open, setOpen] = useState<Open>(null);
  const [secret, setSecret] = useState<string | null>(null);
  const toggling = useAction();
  const key = res.data?.key;
  if (res.error && !key) {
    return (
      <>
        <PageHeader back={<a href={href('workspaces')}>← Workspaces</a>} title="API key" />
        <ErrorBanner error={res.error} title="Could not load the key" />
      </>
    );
  }
  if (!key) return <Loading />;
  const writable = can('api_keys:write');
  const toggleEnabled = async () => {
    const enabled = key.enabled === false;
    const r = await toggling.run(() => api.keys.updateKey({ key: { id: key.id, enabled }, updateMask: { paths: ['enabled'] } }));
    if (r) {
      toast(enabled ? 'Key enabled' : 'Key disabled: it verifies as DISABLED until enabled again');
      res.reload();
    }
  };
  const revoked = key.state === KeyState.REVOKED;
  return (
    <>
      <PageHeader
        back={<a href={href('workspaces', key.workspaceId, 'keys')}>← API keys</a>}
        title={
          <span className="title-with-badge">
            {key.name || 'Unnamed key'} <Badge tone={stateTone(key.state)}>{stateLabel(key.state)}</Badge>
          </span>
        }
        subtitle={<span className="mono">{key.maskedKey}</span>}
        actions={
          writable ? (
            <>
              <Button onClick={() => setOpen('edit')} disabled={revoked}>
                Edit
              </Button>
              <Button onClick={() => void toggleEnabled()} disabled={revoked} busy={toggling.busy}>
                {key.enabled === false ? 'Enable' : 'Disable'}
              </Button>
              <Button onClick={() => setOpen('rotate')} disabled={revoked}>
                Rotate
              </Button>
              <Button variant="danger" onClick={() => setOpen('revoke')} disabled={revoked}>
                Revoke
              </Button>
              <Button variant="ghost" className="text-danger" onClick={() => setOpen('delete')}>
                Delete
              </Button>
            </>
          ) : null
        }
      />
      <ErrorBanner error={res.error} title="Could not refresh the key" />
      <ErrorBanner error={toggling.error} />
      <div className="grid-2">
        <Card title="Details">
          <KeyDetails k={key} />
        </Card>
        <Card title="Limits and metadata">
          <KeyLimits k={key} />
        </Card>
      </div>
      <KeyUsage keyId={key.id} key={`usage-${version}`} />
      {can('audit:read') ? <AuditTrail resourceId={key.id} workspaceId={key.workspaceId} title="Audit trail" key={`audit-${version}`} /> : null}

      {open === 'edit' ? (
        <KeyForm
          workspaceId={key.workspaceId}
          existing={key}
          onClose={() => setOpen(null)}
          onUpdated={() => {
            setOpen(null);
            toast('Key saved');
            res.reload();
          }}
        />
      ) : null}
      {open === 'rotate' ? (
        <RotateDialog
          k={key}
          onClose={() => setOpen(null)}
          onRotated={(s) => {
            setOpen(null);
            setSecret(s);
            res.reload();
          }}
        />
      ) : null}
      {secret !== null ? (
        <SecretDialog title="The rotated key" secret={secret} onClose={() => setSecret(null)}>
          <p>
            <strong>{key.name || key.id}</strong> has a new secret. Replace the old one wherever it is used before its grace period ends.
          </p>
        </SecretDialog>
      ) : null}
      {open === 'revoke' ? (
        <ConfirmDialog
          title="Revoke key"
          confirmLabel="Revoke key"
          onClose={() => setOpen(null)}
          onConfirm={async () => {
            await api.keys.revokeKey({ id: key.id });
            toast('Key revoked');
            res.reload();
          }}
        >
          <p>
            Revoke <strong>{key.name || key.id}</strong>? It stops verifying at once, on every gateway. A revoked key cannot be restored.
          </p>
        </ConfirmDialog>
      ) : null}
      {open === 'delete' ? (
        <ConfirmDialog
          title="Delete key"
          confirmLabel="Delete key"
          onClose={() => setOpen(null)}
          onConfirm={async () => {
            await api.keys.deleteKey({ id: key.id });
            toast('Key deleted');
            navigate('workspaces', key.workspaceId, 'keys');
          }}
        >
          <p>
            Delete <strong>{key.name || key.id}</strong>? It stops verifying (as NOT_FOUND) and disappears from lists; the audit log keeps a record.
          </p>
        </ConfirmDialog>
      ) : null}
    </>
  );
}

function KeyDetails({ k }: { k: ApiKey }) {
  const perms = permissions(k);
  return (
    <dl className="details">
      <dt>Key</dt>
      <dd>
        <code className="chip" title={k.maskedKey}>
          {keyHint(k)}
        </code>
      </dd>
      <dt>Customer</dt>
      <dd>{k.customerId || <span className="muted">—</span>}</dd>
      <dt>Description</dt>
      <dd className="wrap">{k.description || <span className="muted">—</span>}</dd>
      <dt>Permissions</dt>
      <dd>
        <div className="perm-list">
          {perms.length ? (
            perms.map((p) => (
              <code key={p} className="chip chip-soft">
                {p}
              </code>
            ))
          ) : (
            <span className="muted">none</span>
          )}
        </div>
      </dd>
      <dt>Created</dt>
      <dd>{formatTime(k.createTime)}</dd>
      <dt>Last used</dt>
      <dd title={formatTime(k.lastUsedTime, 'never')}>{relative(k.lastUsedTime)}</dd>
      <dt>Expires</dt>
      <dd>{k.expireTime ? `${formatTime(k.expireTime)} (${relative(k.expireTime)})` : 'never'}</dd>
      {k.revokeTime ? (
        <>
          <dt>Revoked</dt>
          <dd>{formatTime(k.revokeTime)}</dd>
        </>
      ) : null}
      <dt>ID</dt>
      <dd className="mono small">{k.id}</dd>
    </dl>
  );
}

function KeyLimits({ k }: { k: ApiKey }) {
  const meta = Object.entries(k.metadata);
  return (
    <dl className="details">
      <dt>Rate limits</dt>
      <dd>
        {k.rateLimits.length ? (
          <ul className="plain-list">
            {k.rateLimits.map((r) => (
              <li key={r.name}>
                <code>{r.name}</code>: {formatCount(r.limit)} per {formatDuration(durationMs(r.duration))}
              </li>
            ))}
          </ul>
        ) : (
          <span className="muted">none</span>
        )}
      </dd>
      <dt>Remaining uses</dt>
      <dd>{k.remainingUses !== undefined ? formatCount(k.remainingUses) : <span className="muted">unlimited</span>}</dd>
      {k.refill ? (
        <>
          <dt>Refill</dt>
          <dd>
            to {formatCount(k.refill.amount)} {k.refill.interval === RefillInterval.DAILY ? 'every day' : `every month on day ${k.refill.dayOfMonth || 1}`}
          </dd>
        </>
      ) : null}
      <dt>Metadata</dt>
      <dd>
        {meta.length ? (
          <ul className="plain-list">
            {meta.map(([mk, v]) => (
              <li key={mk}>
                <code>{mk}</code> = {v}
              </li>
            ))}
          </ul>
        ) : (
          <span className="muted">none</span>
        )}
      </dd>
    </dl>
  );
}

const GRACE: { label: string; ms: number }[] = [
  { label: 'None: the old secret stops working now', ms: 0 },
  { label: '1 hour', ms: 3_600_000 },
  { label: '24 hours', ms: 86_400_000 },
  { label: '7 days', ms: 7 * 86_400_000 },
];

function RotateDialog({ k, onClose, onRotated }: { k: ApiKey; onClose(): void; onRotated(secret: string): void }) {
  const { api } = useSession();
  const [grace, setGrace] = useState(0);
  const { busy, error, run } = useAction();
  const submit = async () => {
    const res = await run(() => api.keys.rotateKey({ id: k.id, gracePeriod: { seconds: BigInt(grace / 1000), nanos: 0 } }));
    if (res) onRotated(res.secret);
  };
  return (
    <Dialog
      title="Rotate key"
      onClose={onClose}
      onSubmit={submit}
      footer={
        <>
          <Button onClick={onClose}>Cancel</Button>
          <Button type="submit" variant="primary" busy={busy}>
            Rotate key
          </Button>
        </>
      }
    >
      <p>
        <strong>{k.name || k.id}</strong> gets a new secret; its id, permissions and limits stay.
      </p>
      <Field label="Grace period for the old secret">
        <select className="input" value={grace} onChange={(e) => setGrace(Number(e.target.value))}>
          {GRACE.map((g) => (
            <option key={g.ms} value={g.ms}>
              {g.label}
            </option>
          ))}
        </select>
      </Field>
      {grace === 0 ? <Notice tone="warning">Requests still using the old secret will fail immediately.</Notice> : null}
      <ErrorBanner error={error} />
    </Dialog>
  );
}
