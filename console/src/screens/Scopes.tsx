import { useState } from 'react';
import type { Scope } from '../../../gen/keyward/v1/scope_pb.js';
import { useSession } from '../session.js';
import { useAction, useLoad } from '../hooks.js';
import { formatDate, parseActions, STANDARD_ACTIONS } from '../format.js';
import { Code, isCode } from '../api.js';
import { useToast } from '../toast.js';
import { Button, Card, ConfirmDialog, Dialog, Empty, ErrorBanner, Field, Loading, Notice, Pager, TableScroll, usePages } from '../components/ui.js';

type Open = { kind: 'create' } | { kind: 'edit'; scope: Scope } | { kind: 'delete'; scope: Scope } | null;

/** A workspace's scopes: the resources its keys are granted actions on. */
export function Scopes({ workspaceId }: { workspaceId: string }) {
  const { api, can } = useSession();
  const toast = useToast();
  const pages = usePages();
  const list = useLoad(() => api.scopes.listScopes({ workspaceId, pageSize: 100, pageToken: pages.token }), [workspaceId, pages.token]);
  const [open, setOpen] = useState<Open>(null);
  const writable = can('workspace_scopes:write');
  const rows = list.data?.scopes ?? [];
  return (
    <Card
      title="Scopes"
      actions={
        writable ? (
          <Button variant="primary" small onClick={() => setOpen({ kind: 'create' })}>
            New scope
          </Button>
        ) : null
      }
    >
      <p className="card-intro muted">
        A scope is a resource of your API, e.g. <code>inference</code>, and declares the actions keys may be granted on it: by default <code>read</code>,{' '}
        <code>create</code>, <code>update</code> and <code>delete</code>, or its own, such as <code>read</code> and <code>write</code>. A key is granted
        actions, checked as <code>inference:write</code>, or the whole scope, checked as <code>inference</code>.
      </p>
      <ErrorBanner error={list.error} title="Could not load scopes" />
      {list.loading && !list.data ? (
        <Loading />
      ) : rows.length === 0 ? (
        <Empty title="No scopes yet">Create a scope before granting keys permissions.</Empty>
      ) : (
        <TableScroll label="Scopes">
          <table className="table">
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Actions</th>
                <th scope="col">Description</th>
                <th scope="col">Created</th>
                <th scope="col">
                  <span className="sr-only">Edit or delete</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {rows.map((s) => (
                <tr key={s.id}>
                  <td>
                    <code className="chip">{s.name}</code>
                  </td>
                  <td>
                    <ul className="perm-list" aria-label={`Actions of ${s.name}`}>
                      {s.actions.map((a) => (
                        <li key={a}>
                          <code className="chip chip-soft">{a}</code>
                        </li>
                      ))}
                    </ul>
                  </td>
                  <td className="wrap">{s.description || <span className="muted">—</span>}</td>
                  <td className="nowrap">{formatDate(s.createTime)}</td>
                  <td className="row-actions">
                    {writable ? (
                      <>
                        <Button small variant="ghost" onClick={() => setOpen({ kind: 'edit', scope: s })} aria-label={`Edit scope ${s.name}`}>
                          Edit
                        </Button>
                        <Button
                          small
                          variant="ghost"
                          className="text-danger"
                          onClick={() => setOpen({ kind: 'delete', scope: s })}
                          aria-label={`Delete scope ${s.name}`}
                        >
                          Delete
                        </Button>
                      </>
                    ) : null}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </TableScroll>
      )}
      <Pager page={pages.page} hasNext={!!list.data?.nextPageToken} onPrev={pages.prev} onNext={() => pages.next(list.data!.nextPageToken)} />
      {open?.kind === 'create' || open?.kind === 'edit' ? (
        <ScopeForm
          workspaceId={workspaceId}
          scope={open.kind === 'edit' ? open.scope : undefined}
          onClose={() => setOpen(null)}
          onDone={(s) => {
            setOpen(null);
            toast(open.kind === 'create' ? `Scope ${s.name} created` : 'Scope saved');
            list.reload();
          }}
        />
      ) : null}
      {open?.kind === 'delete' ? (
        <ConfirmDialog
          title="Delete scope"
          confirmLabel="Delete scope"
          onClose={() => setOpen(null)}
          onConfirm={async () => {
            await api.scopes.deleteScope({ id: open.scope.id });
            toast(`Scope ${open.scope.name} deleted`);
            list.reload();
          }}
        >
          <p>
            Delete <code>{open.scope.name}</code>? Keys lose the permissions they had on it.
          </p>
        </ConfirmDialog>
      ) : null}
    </Card>
  );
}

function ScopeForm({ workspaceId, scope, onDone, onClose }: { workspaceId: string; scope?: Scope; onDone(s: Scope): void; onClose(): void }) {
  const { api } = useSession();
  const [name, setName] = useState(scope?.name ?? '');
  const [description, setDescription] = useState(scope?.description ?? '');
  const [actionsText, setActionsText] = useState((scope?.actions ?? []).join(', '));
  const [formError, setFormError] = useState<string | null>(null);
  const { busy, error, run } = useAction();
  const actions = parseActions(actionsText);
  const removed = scope ? scope.actions.filter((a) => !actions.includes(a)) : [];
  const submit = async () => {
    setFormError(null);
    if (scope && actions.length === 0) return setFormError('A scope declares at least one action.');
    const res = await run(async () => {
      if (!scope) return api.scopes.createScope({ scope: { workspaceId, name: name.trim(), description, actions } });
      const paths = [
        ...(name.trim() !== scope.name ? ['name'] : []),
        ...(description !== scope.description ? ['description'] : []),
        ...(actions.join(',') !== scope.actions.join(',') ? ['actions'] : []),
      ];
      if (paths.length === 0) return { scope };
      return api.scopes.updateScope({ scope: { id: scope.id, name: name.trim(), description, actions }, updateMask: { paths } });
    });
    if (res?.scope) onDone(res.scope);
  };
  return (
    <Dialog
      title={scope ? 'Edit scope' : 'New scope'}
      onClose={onClose}
      onSubmit={submit}
      footer={
        <>
          <Button onClick={onClose}>Cancel</Button>
          <Button type="submit" variant="primary" busy={busy}>
            {scope ? 'Save' : 'Create scope'}
          </Button>
        </>
      }
    >
      <Field label="Name" hint="Lower case: letters, digits, _ . -, starting with a letter.">
        <input className="input mono" value={name} onChange={(e) => setName(e.target.value)} maxLength={64} autoComplete="off" spellCheck={false} />
      </Field>
      <Field
        label="Actions"
        hint={
          scope ? (
            'Separated by commas or spaces. An action still granted to a key cannot be removed.'
          ) : (
            <>
              Separated by commas or spaces, e.g. <code>read, write</code>. Empty: {STANDARD_ACTIONS.join(', ')}.
            </>
          )
        }
      >
        <input
          className="input mono"
          value={actionsText}
          onChange={(e) => setActionsText(e.target.value)}
          placeholder={scope ? undefined : STANDARD_ACTIONS.join(', ')}
          autoComplete="off"
          spellCheck={false}
        />
      </Field>
      {actions.length > 0 ? (
        <ul className="perm-list scope-preview" aria-label="Permissions this scope offers">
          {actions.map((a) => (
            <li key={a}>
              <code className="chip chip-soft">{`${name.trim() || 'scope'}:${a}`}</code>
            </li>
          ))}
        </ul>
      ) : null}
      <Field label="Description">
        <textarea className="input" rows={3} value={description} onChange={(e) => setDescription(e.target.value)} />
      </Field>
      {removed.length > 0 && !error ? (
        <Notice tone="warning">
          Removing{' '}
          {removed.map((a, i) => (
            <span key={a}>
              {i > 0 ? ', ' : ''}
              <code>{a}</code>
            </span>
          ))}
          : keys that still have {removed.length === 1 ? 'it' : 'them'} must lose {removed.length === 1 ? 'it' : 'them'} first (edit or revoke those keys).
        </Notice>
      ) : null}
      {formError ? <Notice tone="warning">{formError}</Notice> : null}
      <ErrorBanner error={error} title={error && isCode(error, Code.FailedPrecondition) ? 'An action is still in use' : undefined} />
    </Dialog>
  );
}
