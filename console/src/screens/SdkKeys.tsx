// SDK keys: the management credentials of services and operators.
import { useState } from 'react';
import type { SdkKey } from '../../../gen/keyward/v1/sdk_key_service_pb.js';
import { SDK_SCOPES, useSession } from '../session.js';
import { useAction, useLoad } from '../hooks.js';
import { formatDate, formatTime, relative, shortId } from '../format.js';
import { useToast } from '../toast.js';
import {
  Badge,
  Button,
  Card,
  ConfirmDialog,
  Dialog,
  Empty,
  ErrorBanner,
  Loading,
  PageHeader,
  Pager,
  SecretDialog,
  TableScroll,
  usePages,
} from '../components/ui.js';

export function SdkKeys() {
  const { api, can, me } = useSession();
  const toast = useToast();
  const pages = usePages();
  const list = useLoad(() => api.sdkKeys.listSdkKeys({ pageSize: 50, pageToken: pages.token }), [pages.token]);
  const [creating, setCreating] = useState(false);
  const [token, setToken] = useState<{ key: SdkKey; token: string } | null>(null);
  const [revoking, setRevoking] = useState<SdkKey | null>(null);
  const rows = list.data?.sdkKeys ?? [];
  if (!can('sdk_keys:write')) {
    return (
      <>
        <PageHeader title="SDK keys" />
        <Empty title="Not allowed">Managing SDK keys needs an SDK key with the sdk_keys:write scope.</Empty>
      </>
    );
  }
  return (
    <>
      <PageHeader
        title="SDK keys"
        subtitle="Credentials for your services and gateways to call Keyward. Each has scopes and may be restricted to workspaces."
        actions={
          <Button variant="primary" onClick={() => setCreating(true)}>
            New SDK key
          </Button>
        }
      />
      <Card>
        <ErrorBanner error={list.error} title="Could not load SDK keys" />
        {list.loading && !list.data ? (
          <Loading />
        ) : rows.length === 0 ? (
          <Empty title="No SDK keys" />
        ) : (
          <TableScroll label="SDK keys">
            <table className="table" data-testid="sdk-keys-table">
              <thead>
                <tr>
                  <th scope="col">Name</th>
                  <th scope="col">ID</th>
                  <th scope="col">Scopes</th>
                  <th scope="col">Workspaces</th>
                  <th scope="col">Created</th>
                  <th scope="col">Last used</th>
                  <th scope="col">State</th>
                  <th scope="col">
                    <span className="sr-only">Actions</span>
                  </th>
                </tr>
              </thead>
              <tbody>
                {rows.map((k) => (
                  <tr key={k.id}>
                    <td>
                      {k.name}
                      {me?.id === k.id ? <span className="muted small"> (you)</span> : null}
                    </td>
                    <td className="mono muted nowrap" title={k.id}>
                      {shortId(k.id)}
                    </td>
                    <td>
                      <div className="perm-list">
                        {k.scopes.map((s) => (
                          <code key={s} className="chip chip-soft">
                            {s}
                          </code>
                        ))}
                      </div>
                    </td>
                    <td className="nowrap">
                      {k.workspaceIds.length ? (
                        k.workspaceIds.map((w) => (
                          <div key={w} className="mono small" title={w}>
                            {shortId(w)}
                          </div>
                        ))
                      ) : (
                        <span className="muted">all</span>
                      )}
                    </td>
                    <td className="nowrap">{formatDate(k.createTime)}</td>
                    <td className="nowrap" title={formatTime(k.lastUsedTime, 'never')}>
                      {relative(k.lastUsedTime)}
                    </td>
                    <td>{k.revokeTime ? <Badge tone="red">Revoked</Badge> : <Badge tone="green">Active</Badge>}</td>
                    <td className="row-actions">
                      {!k.revokeTime ? (
                        <Button small variant="ghost" className="text-danger" onClick={() => setRevoking(k)} aria-label={`Revoke SDK key ${k.name}`}>
                          Revoke
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
      {creating ? (
        <CreateSdkKey
          onClose={() => setCreating(false)}
          onCreated={(key, t) => {
            setCreating(false);
            setToken({ key, token: t });
            list.reload();
          }}
        />
      ) : null}
      {token ? (
        <SecretDialog title="Your new SDK key" secret={token.token} onClose={() => setToken(null)}>
          <p>
            Send it as <code>authorization: Bearer …</code> from <strong>{token.key.name}</strong>. Store it in your secret manager.
          </p>
        </SecretDialog>
      ) : null}
      {revoking ? (
        <ConfirmDialog
          title="Revoke SDK key"
          confirmLabel="Revoke SDK key"
          onClose={() => setRevoking(null)}
          onConfirm={async () => {
            await api.sdkKeys.revokeSdkKey({ id: revoking.id });
            toast(`SDK key ${revoking.name} revoked`);
            list.reload();
          }}
        >
          <p>
            Revoke <strong>{revoking.name}</strong>? Every call made with it fails from now on, on every replica.
            {me?.id === revoking.id ? ' This is the key you are signed in with: you will be signed out.' : ''}
          </p>
        </ConfirmDialog>
      ) : null}
    </>
  );
}

function CreateSdkKey({ onClose, onCreated }: { onClose(): void; onCreated(key: SdkKey, token: string): void }) {
  const { api, me, can } = useSession();
  const [name, setName] = useState('');
  const [scopes, setScopes] = useState<Set<string>>(new Set());
  const [restrict, setRestrict] = useState<Set<string>>(new Set());
  const { busy, error, run } = useAction();
  const workspaces = useLoad(() => (can('workspace:read') ? api.workspaces.listWorkspaces({ pageSize: 1000 }) : Promise.resolve(undefined)), []);
  const isAll = !me || me.scopes.includes('*');
  const holds = (s: string) => isAll || (me?.scopes.includes(s) ?? false);
  const restrictedCaller = (me?.workspaceIds.length ?? 0) > 0;
  const toggle = (set: Set<string>, v: string, on: boolean) => {
    const n = new Set(set);
    if (on) n.add(v);
    else n.delete(v);
    return n;
  };
  const submit = async () => {
    const res = await run(() => api.sdkKeys.createSdkKey({ sdkKey: { name: name.trim(), scopes: [...scopes], workspaceIds: [...restrict] } }));
    if (res?.sdkKey) onCreated(res.sdkKey, res.token);
  };
  return (
    <Dialog
      title="New SDK key"
      onClose={onClose}
      onSubmit={submit}
      wide
      footer={
        <>
          <Button onClick={onClose}>Cancel</Button>
          <Button type="submit" variant="primary" busy={busy} disabled={!name.trim() || scopes.size === 0}>
            Create SDK key
          </Button>
        </>
      }
    >
      <label className="field">
        <span className="field-label">Name</span>
        <input className="input" value={name} onChange={(e) => setName(e.target.value)} maxLength={120} placeholder="billing-service" />
      </label>
      <fieldset className="fieldset">
        <legend>Scopes</legend>
        <div className="scope-grid">
          <label className="check">
            <input type="checkbox" checked={scopes.has('*')} disabled={!holds('*')} onChange={(e) => setScopes(toggle(scopes, '*', e.target.checked))} />
            <span className="scope-line">
              <code>*</code> <span className="muted">Everything, now and in the future</span>
            </span>
          </label>
          {SDK_SCOPES.map((s) => (
            <label className="check" key={s.scope}>
              <input
                type="checkbox"
                checked={scopes.has(s.scope)}
                disabled={!holds(s.scope)}
                onChange={(e) => setScopes(toggle(scopes, s.scope, e.target.checked))}
              />
              <span className="scope-line">
                <code>{s.scope}</code> <span className="muted">{s.label}</span>
              </span>
            </label>
          ))}
        </div>
      </fieldset>
      <fieldset className="fieldset">
        <legend>Workspaces</legend>
        <p className="muted small">
          {restrictedCaller ? 'Your key is restricted: pick at least one of its workspaces.' : 'None picked means every workspace, including future ones.'}
        </p>
        {workspaces.error ? <ErrorBanner error={workspaces.error} title="Could not load workspaces" /> : null}
        <div className="scope-grid">
          {(workspaces.data?.workspaces ?? []).map((w) => (
            <label className="check" key={w.id}>
              <input type="checkbox" checked={restrict.has(w.id)} onChange={(e) => setRestrict(toggle(restrict, w.id, e.target.checked))} />
              <span>
                {w.name} <span className="mono muted small">{shortId(w.id)}</span>
              </span>
            </label>
          ))}
        </div>
      </fieldset>
      <ErrorBanner error={error} />
    </Dialog>
  );
}
