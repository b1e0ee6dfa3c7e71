import { Code, ConnectError } from '@connectrpc/connect';
import { durationFromMs, timestampFromDate } from '@bufbuild/protobuf/wkt';
import { Fragment, useCallback, useEffect, useId, useMemo, useRef, useState, type ReactElement, type ReactNode } from 'react';
import { KeyState, type ApiKey } from '../../gen/keyward/v1/key_pb.js';
import type { PortalSession } from '../../gen/keyward/v1/portal_service_pb.js';
import type { GetKeyUsageResponse } from '../../gen/keyward/v1/usage_service_pb.js';
import { createPortalClients } from './client.js';
import { ConfirmDialog, CreateKeyDialog, EditKeyDialog, RotateKeyDialog, SecretDialog, type CreateKeyInput } from './dialogs.js';
import { dateOf, formatDateTime, formatShortDate, formatRelative, formatTime, keyPermissions, stateLabel } from './format.js';
import { UsageChart } from './UsageChart.js';
import './keyward.css';

export interface KeywardKeysProps {
  /** A portal token (`kwp_...`) minted by your backend with PortalService.CreatePortalSession. */
  token: string;
  /** Where Keyward answers, e.g. `https://keys.example.com`. Its CORS list must include this page's origin. */
  baseUrl: string;
  /** Heading of the panel; defaults to "API keys". */
  title?: string;
  /** Called with every error the component shows (failed calls, an expired session). */
  onError?: (error: ConnectError) => void;
}

type DialogState =
  | { kind: 'create' }
  | { kind: 'secret'; secret: string; keyName: string; rotated: boolean; graceUntil?: Date }
  | { kind: 'edit'; key: ApiKey }
  | { kind: 'rotate'; key: ApiKey }
  | { kind: 'revoke'; key: ApiKey }
  | { kind: 'delete'; key: ApiKey };

type Notice = { tone: 'error' | 'success'; text: string };

const DAY = 86_400_000;

function byNewest(a: ApiKey, b: ApiKey): number {
  return (dateOf(b.createTime)?.getTime() ?? 0) - (dateOf(a.createTime)?.getTime() ?? 0);
}

/** Self-service API keys for one customer of yours, on a portal token. */
export function KeywardKeys({ token, baseUrl, title = 'API keys', onError }: KeywardKeysProps): ReactElement {
  const api = useMemo(() => createPortalClients(baseUrl, token), [baseUrl, token]);
  const [session, setSession] = useState<PortalSession>();
  const [keys, setKeys] = useState<ApiKey[]>();
  const [expired, setExpired] = useState(false);
  const [fatal, setFatal] = useState<string>();
  const [dialog, setDialog] = useState<DialogState | null>(null);
  const [busy, setBusy] = useState(false);
  const [notice, setNotice] = useState<Notice | null>(null);
  const [open, setOpen] = useState<string | null>(null);
  const [usage, setUsage] = useState<Record<string, GetKeyUsageResponse | 'error'>>({});
  const [now, setNow] = useState(() => Date.now());
  const titleId = useId();
  const onErrorRef = useRef(onError);
  onErrorRef.current = onError;

  /** Turns a failure into what the user sees; true if the session is gone. */
  const fail = useCallback((e: unknown, doing: string): boolean => {
    const err = ConnectError.from(e);
    onErrorRef.current?.(err);
    if (err.code === Code.Unauthenticated) {
      setExpired(true);
      setDialog(null);
      return true;
    }
    const why =
      err.code === Code.Unavailable || err.code === Code.Unknown
        ? 'Keyward could not be reached. Check your connection and try again.'
        : err.code === Code.NotFound
          ? 'That key no longer exists.'
          : err.code === Code.PermissionDenied
            ? 'This session is not allowed to do that.'
            : err.rawMessage || 'Something went wrong.';
    setNotice({ tone: 'error', text: `Could not ${doing}: ${why}` });
    return false;
  }, []);

  const say = useCallback((text: string) => setNotice({ tone: 'success', text }), []);

  useEffect(() => {
    if (notice?.tone !== 'success') return;
    const t = setTimeout(() => setNotice(null), 5000);
    return () => clearTimeout(t);
  }, [notice]);

  const loadKeys = useCallback(
    async (s: PortalSession) => {
      const all: ApiKey[] = [];
      let pageToken = '';
      do {
        const res = await api.keys.listKeys({ workspaceId: s.workspaceId, customerId: s.customerId, pageSize: 100, pageToken });
        all.push(...res.keys);
        pageToken = res.nextPageToken;
      } while (pageToken && all.length < 1000);
      setKeys(all.sort(byNewest));
    },
    [api],
  );

  // Load the session, then the keys.
  useEffect(() => {
    let live = true;
    setSession(undefined);
    setKeys(undefined);
    setExpired(false);
    setFatal(undefined);
    (async () => {
      try {
        const res = await api.portal.getPortalSession({});
        if (!live) return;
        if (!res.session) throw new ConnectError('no session', Code.Unauthenticated);
        setSession(res.session);
        await loadKeys(res.session);
      } catch (e) {
        if (!live) return;
        const err = ConnectError.from(e);
        onErrorRef.current?.(err);
        if (err.code === Code.Unauthenticated) setExpired(true);
        else setFatal(err.code === Code.Unavailable || err.code === Code.Unknown ? 'Keyward could not be reached.' : err.rawMessage);
      }
    })();
    return () => {
      live = false;
    };
  }, [api, loadKeys]);

  // The session ends at its expire_time even without a failed call; relative times tick each minute.
  useEffect(() => {
    const end = dateOf(session?.expireTime)?.getTime();
    const tick = setInterval(() => setNow(Date.now()), 30_000);
    const timer = end !== undefined ? setTimeout(() => setExpired(true), Math.max(0, Math.min(end - Date.now(), 2 ** 31 - 1))) : undefined;
    return () => {
      clearInterval(tick);
      if (timer) clearTimeout(timer);
    };
  }, [session]);

  const loadUsage = useCallback(
    async (id: string) => {
      try {
        const res = await api.usage.getKeyUsage({ keyId: id, startTime: timestampFromDate(new Date(Date.now() - DAY)) });
        setUsage((u) => ({ ...u, [id]: res }));
      } catch (e) {
        const err = ConnectError.from(e);
        if (err.code === Code.Unauthenticated) fail(e, 'load usage');
        else setUsage((u) => ({ ...u, [id]: 'error' }));
      }
    },
    [api, fail],
  );

  const toggle = (id: string) => {
    const next = open === id ? null : id;
    setOpen(next);
    if (next) {
      setNow(Date.now());
      void loadUsage(next);
    }
  };

  const replace = (k: ApiKey) => setKeys((list) => list?.map((x) => (x.id === k.id ? k : x)));

  const act = async (doing: string, fn: () => Promise<void>) => {
    setBusy(true);
    setNotice(null);
    try {
      await fn();
    } catch (e) {
      fail(e, doing);
    } finally {
      setBusy(false);
    }
  };

  const create = (input: CreateKeyInput) =>
    act('create the key', async () => {
      if (!session) return;
      const res = await api.keys.createKey({
        key: {
          workspaceId: session.workspaceId,
          customerId: session.customerId,
          name: input.name,
          description: input.description,
          scopes: input.permissions,
          expireTime: input.expiresInDays ? timestampFromDate(new Date(Date.now() + input.expiresInDays * DAY)) : undefined,
        },
      });
      if (res.key) setKeys((list) => [res.key!, ...(list ?? [])]);
      setDialog({ kind: 'secret', secret: res.secret, keyName: res.key?.name ?? input.name, rotated: false });
    });

  const save = (key: ApiKey, v: { name: string; description: string; enabled: boolean }) =>
    act('save the key', async () => {
      const res = await api.keys.updateKey({
        key: { id: key.id, name: v.name, description: v.description, enabled: v.enabled },
        updateMask: { paths: ['name', 'description', 'enabled'] },
      });
      if (res.key) replace(res.key);
      setDialog(null);
      say('Key saved.');
    });

  const setEnabled = (key: ApiKey, enabled: boolean) =>
    act(enabled ? 'enable the key' : 'disable the key', async () => {
      const res = await api.keys.updateKey({ key: { id: key.id, enabled }, updateMask: { paths: ['enabled'] } });
      if (res.key) replace(res.key);
      say(enabled ? 'Key enabled.' : 'Key disabled.');
    });

  const rotate = (key: ApiKey, graceMs: number) =>
    act('rotate the key', async () => {
      const res = await api.keys.rotateKey({ id: key.id, gracePeriod: graceMs > 0 ? durationFromMs(graceMs) : undefined });
      if (res.key) replace(res.key);
      setDialog({
        kind: 'secret',
        secret: res.secret,
        keyName: res.key?.name ?? key.name,
        rotated: true,
        graceUntil: graceMs > 0 ? new Date(Date.now() + graceMs) : undefined,
      });
    });

  const revoke = (key: ApiKey) =>
    act('revoke the key', async () => {
      const res = await api.keys.revokeKey({ id: key.id });
      if (res.key) replace(res.key);
      setDialog(null);
      say(`“${key.name}” was revoked.`);
    });

  const remove = (key: ApiKey) =>
    act('delete the key', async () => {
      await api.keys.deleteKey({ id: key.id });
      setKeys((list) => list?.filter((x) => x.id !== key.id));
      if (open === key.id) setOpen(null);
      setDialog(null);
      say(`“${key.name}” was deleted.`);
    });

  const closeDialog = () => setDialog(null);

  let body: ReactNode;
  if (expired) {
    body = (
      <div className="kw-empty kw-expired" role="alert">
        <p className="kw-empty-title">Your session has expired</p>
        <p className="kw-hint">For your security, key management sessions are short. Reload the page to continue.</p>
        {window.self === window.top && (
          <button type="button" className="kw-button kw-button-primary" onClick={() => location.reload()}>
            Reload page
          </button>
        )}
      </div>
    );
  } else if (fatal) {
    body = (
      <div className="kw-empty" role="alert">
        <p className="kw-empty-title">Your keys could not be loaded</p>
        <p className="kw-hint">{fatal}</p>
      </div>
    );
  } else if (!session || !keys) {
    body = (
      <div className="kw-empty" aria-busy="true">
        <p className="kw-hint">Loading keys…</p>
      </div>
    );
  } else if (keys.length === 0) {
    body = (
      <div className="kw-empty">
        <p className="kw-empty-title">No API keys yet</p>
        <p className="kw-hint">Create a key to start making requests.</p>
        <button type="button" className="kw-button kw-button-primary" onClick={() => setDialog({ kind: 'create' })}>
          Create key
        </button>
      </div>
    );
  } else {
    body = (
      <table className="kw-table">
        <thead>
          <tr>
            <th scope="col">Name</th>
            <th scope="col">Key</th>
            <th scope="col">Permissions</th>
            <th scope="col">Created</th>
            <th scope="col">Last used</th>
            <th scope="col">Expires</th>
            <th scope="col">Status</th>
            <th scope="col">
              <span className="kw-visually-hidden">Actions</span>
            </th>
          </tr>
        </thead>
        <tbody>
          {keys.map((k) => (
            <KeyRow
              key={k.id}
              apiKey={k}
              now={now}
              open={open === k.id}
              usage={usage[k.id]}
              busy={busy}
              onToggle={() => toggle(k.id)}
              onEdit={() => setDialog({ kind: 'edit', key: k })}
              onRotate={() => setDialog({ kind: 'rotate', key: k })}
              onRevoke={() => setDialog({ kind: 'revoke', key: k })}
              onDelete={() => setDialog({ kind: 'delete', key: k })}
              onEnable={(on) => setEnabled(k, on)}
            />
          ))}
        </tbody>
      </table>
    );
  }

  const expireAt = dateOf(session?.expireTime);
  return (
    <section className="kw-root" aria-labelledby={titleId}>
      <header className="kw-header">
        <div>
          <h2 id={titleId} className="kw-title">
            {title}
          </h2>
          <p className="kw-subtitle">Keys authenticate your requests. Keep them secret; rotate or revoke any key you suspect is exposed.</p>
        </div>
        {session && !expired && keys && keys.length > 0 && (
          <button type="button" className="kw-button kw-button-primary" onClick={() => setDialog({ kind: 'create' })}>
            <svg viewBox="0 0 16 16" width="14" height="14" aria-hidden="true" focusable="false">
              <path d="M8 3v10M3 8h10" stroke="currentColor" strokeWidth="1.8" strokeLinecap="round" />
            </svg>
            Create key
          </button>
        )}
      </header>
      <div className="kw-notice-slot" aria-live="polite">
        {notice && (
          <div className={`kw-notice kw-notice-${notice.tone}`} role={notice.tone === 'error' ? 'alert' : 'status'}>
            <span>{notice.text}</span>
            <button type="button" className="kw-icon-button" aria-label="Dismiss" onClick={() => setNotice(null)}>
              <svg viewBox="0 0 16 16" width="14" height="14" aria-hidden="true" focusable="false">
                <path d="M4 4l8 8M12 4l-8 8" stroke="currentColor" strokeWidth="1.6" strokeLinecap="round" fill="none" />
              </svg>
            </button>
          </div>
        )}
      </div>
      <div className="kw-card">{body}</div>
      {session && !expired && (
        <p className="kw-footer">
          Signed in as <span className="kw-mono">{session.customerId}</span>
          {expireAt && <> · session ends at {formatTime(expireAt)}</>}
        </p>
      )}

      {dialog?.kind === 'create' && session && <CreateKeyDialog allowedGrants={session.allowedGrants} busy={busy} onCreate={create} onClose={closeDialog} />}
      {dialog?.kind === 'secret' && (
        <SecretDialog secret={dialog.secret} keyName={dialog.keyName} rotated={dialog.rotated} graceUntil={dialog.graceUntil} onClose={closeDialog} />
      )}
      {dialog?.kind === 'edit' && <EditKeyDialog apiKey={dialog.key} busy={busy} onSave={(v) => save(dialog.key, v)} onClose={closeDialog} />}
      {dialog?.kind === 'rotate' && <RotateKeyDialog apiKey={dialog.key} busy={busy} onRotate={(g) => rotate(dialog.key, g)} onClose={closeDialog} />}
      {dialog?.kind === 'revoke' && (
        <ConfirmDialog
          title="Revoke API key"
          body={`Requests using “${dialog.key.name}” will be refused immediately. A revoked key cannot be restored.`}
          confirmLabel={busy ? 'Revoking…' : 'Revoke key'}
          busy={busy}
          onConfirm={() => revoke(dialog.key)}
          onClose={closeDialog}
        />
      )}
      {dialog?.kind === 'delete' && (
        <ConfirmDialog
          title="Delete API key"
          body={`“${dialog.key.name}” stops working and is removed from this list. This cannot be undone.`}
          confirmLabel={busy ? 'Deleting…' : 'Delete key'}
          busy={busy}
          onConfirm={() => remove(dialog.key)}
          onClose={closeDialog}
        />
      )}
    </section>
  );
}

function StateBadge({ state }: { state: KeyState }) {
  const tone = state === KeyState.ACTIVE ? 'ok' : state === KeyState.DISABLED ? 'muted' : state === KeyState.EXPIRED ? 'warn' : 'danger';
  return <span className={`kw-badge kw-badge-${tone}`}>{stateLabel(state)}</span>;
}

function Permissions({ list, limit }: { list: string[]; limit?: number }) {
  if (list.length === 0) return <span className="kw-muted">None</span>;
  const shown = limit ? list.slice(0, limit) : list;
  return (
    <span className="kw-chips">
      {shown.map((p) => (
        <code className="kw-chip" key={p}>
          {p}
        </code>
      ))}
      {list.length > shown.length && (
        <span className="kw-chip kw-chip-more" title={list.slice(shown.length).join(', ')}>
          +{list.length - shown.length}
        </span>
      )}
    </span>
  );
}

function KeyRow(props: {
  apiKey: ApiKey;
  now: number;
  open: boolean;
  usage: GetKeyUsageResponse | 'error' | undefined;
  busy: boolean;
  onToggle: () => void;
  onEdit: () => void;
  onRotate: () => void;
  onRevoke: () => void;
  onDelete: () => void;
  onEnable: (enabled: boolean) => void;
}) {
  const k = props.apiKey;
  const perms = keyPermissions(k);
  const revoked = k.state === KeyState.REVOKED;
  const created = dateOf(k.createTime);
  const lastUsed = dateOf(k.lastUsedTime);
  const expires = dateOf(k.expireTime);
  const revokedAt = dateOf(k.revokeTime);
  const detailsId = `kw-key-${k.id}`;
  return (
    <Fragment>
      <tr className={`kw-row${props.open ? ' kw-row-open' : ''}${revoked ? ' kw-row-revoked' : ''}`} data-key-id={k.id}>
        <td data-label="Name" className="kw-cell-name">
          <span className="kw-name">{k.name || 'Untitled key'}</span>
          {k.description && <span className="kw-description">{k.description}</span>}
        </td>
        <td data-label="Key">
          <code className="kw-key">{k.maskedKey || `${k.start}…`}</code>
        </td>
        <td data-label="Permissions">
          <Permissions list={perms} limit={2} />
        </td>
        <td data-label="Created">
          <time dateTime={created?.toISOString()} title={formatDateTime(created)}>
            {created ? formatShortDate(created, props.now) : '—'}
          </time>
        </td>
        <td data-label="Last used">
          <time dateTime={lastUsed?.toISOString()} title={lastUsed ? formatDateTime(lastUsed) : undefined}>
            {formatRelative(lastUsed, props.now)}
          </time>
        </td>
        <td data-label="Expires">
          <time dateTime={expires?.toISOString()} title={expires ? formatDateTime(expires) : undefined}>
            {expires ? formatShortDate(expires, props.now) : 'Never'}
          </time>
        </td>
        <td data-label="Status">
          <StateBadge state={k.state} />
        </td>
        <td className="kw-cell-actions">
          <button
            type="button"
            className="kw-button kw-button-ghost kw-button-sm kw-manage"
            aria-expanded={props.open}
            aria-controls={detailsId}
            aria-label={`Manage ${k.name || 'key'}`}
            onClick={props.onToggle}
          >
            <span className="kw-manage-text">Manage</span>
            <svg className="kw-chevron" viewBox="0 0 16 16" width="14" height="14" aria-hidden="true" focusable="false">
              <path d="M4 6l4 4 4-4" stroke="currentColor" strokeWidth="1.6" fill="none" strokeLinecap="round" strokeLinejoin="round" />
            </svg>
          </button>
        </td>
      </tr>
      {props.open && (
        <tr className="kw-details-row" id={detailsId}>
          <td colSpan={8}>
            <div className="kw-details">
              <dl className="kw-facts">
                <div>
                  <dt>Key</dt>
                  <dd>
                    <code className="kw-key">{k.maskedKey}</code>
                  </dd>
                </div>
                <div>
                  <dt>Key ID</dt>
                  <dd>
                    <code className="kw-mono kw-small">{k.id}</code>
                  </dd>
                </div>
                <div>
                  <dt>Permissions</dt>
                  <dd>
                    <Permissions list={perms} />
                  </dd>
                </div>
                <div>
                  <dt>Created</dt>
                  <dd>{formatDateTime(created)}</dd>
                </div>
                <div>
                  <dt>Last used</dt>
                  <dd>{lastUsed ? formatDateTime(lastUsed) : 'Never'}</dd>
                </div>
                <div>
                  <dt>{revokedAt ? 'Revoked' : 'Expires'}</dt>
                  <dd>{revokedAt ? formatDateTime(revokedAt) : expires ? formatDateTime(expires) : 'Never'}</dd>
                </div>
              </dl>
              <div className="kw-details-usage">
                {props.usage === undefined ? (
                  <p className="kw-hint">Loading usage…</p>
                ) : props.usage === 'error' ? (
                  <p className="kw-hint">Usage is not available right now.</p>
                ) : (
                  <UsageChart usage={props.usage} now={props.now} />
                )}
              </div>
            </div>
            <fieldset className="kw-actions" aria-label={`Actions for ${k.name || 'key'}`}>
              <button type="button" className="kw-button kw-button-sm" onClick={props.onEdit}>
                Edit
              </button>
              {!revoked && (
                <>
                  <button type="button" className="kw-button kw-button-sm" onClick={props.onRotate}>
                    Rotate
                  </button>
                  <button type="button" className="kw-button kw-button-sm" disabled={props.busy} onClick={() => props.onEnable(!(k.enabled ?? true))}>
                    {(k.enabled ?? true) ? 'Disable' : 'Enable'}
                  </button>
                </>
              )}
              <span className="kw-actions-spacer" />
              {!revoked && (
                <button type="button" className="kw-button kw-button-sm kw-button-danger-ghost" onClick={props.onRevoke}>
                  Revoke
                </button>
              )}
              <button type="button" className="kw-button kw-button-sm kw-button-danger-ghost" onClick={props.onDelete}>
                Delete
              </button>
            </fieldset>
          </td>
        </tr>
      )}
    </Fragment>
  );
}
