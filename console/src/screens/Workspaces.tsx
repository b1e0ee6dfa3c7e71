import { useState } from 'react';
import type { Workspace } from '../../../gen/keyward/v1/workspace_pb.js';
import { useSession } from '../session.js';
import { useLoad } from '../hooks.js';
import { href, navigate } from '../router.js';
import { formatDate } from '../format.js';
import { useToast } from '../toast.js';
import { Button, Card, ConfirmDialog, Empty, ErrorBanner, Loading, PageHeader, Pager, TableScroll, usePages } from '../components/ui.js';
import { WorkspaceForm } from './WorkspaceForm.js';

type Open = { kind: 'create' } | { kind: 'edit'; ws: Workspace } | { kind: 'delete'; ws: Workspace } | null;

export function Workspaces() {
  const { api, can } = useSession();
  const toast = useToast();
  const pages = usePages();
  const list = useLoad(() => api.workspaces.listWorkspaces({ pageSize: 50, pageToken: pages.token }), [pages.token]);
  const [open, setOpen] = useState<Open>(null);
  const writable = can('workspace:write');
  const rows = list.data?.workspaces ?? [];
  return (
    <>
      <PageHeader
        title="Workspaces"
        subtitle="Each workspace issues its own keys, with its own scopes, prefix and webhook."
        actions={
          writable ? (
            <Button variant="primary" onClick={() => setOpen({ kind: 'create' })}>
              New workspace
            </Button>
          ) : null
        }
      />
      <ErrorBanner error={list.error} title="Could not load workspaces" />
      <Card>
        {list.loading && !list.data ? (
          <Loading />
        ) : rows.length === 0 ? (
          <Empty title="No workspaces yet">{writable ? 'Create one to start issuing API keys.' : 'Your SDK key cannot create workspaces.'}</Empty>
        ) : (
          <TableScroll label="Workspaces">
            <table className="table">
              <thead>
                <tr>
                  <th scope="col">Name</th>
                  <th scope="col">Key prefix</th>
                  <th scope="col">ID</th>
                  <th scope="col">Created</th>
                  <th scope="col">
                    <span className="sr-only">Actions</span>
                  </th>
                </tr>
              </thead>
              <tbody>
                {rows.map((ws) => (
                  <tr key={ws.id}>
                    <td>
                      <a className="row-link" href={href('workspaces', ws.id, 'keys')}>
                        {ws.name}
                      </a>
                    </td>
                    <td>
                      <code className="chip">{ws.keyPrefix}_</code>
                    </td>
                    <td className="mono muted nowrap">{ws.id}</td>
                    <td className="nowrap">{formatDate(ws.createTime)}</td>
                    <td className="row-actions">
                      {writable ? (
                        <>
                          <Button small variant="ghost" onClick={() => setOpen({ kind: 'edit', ws })} aria-label={`Edit ${ws.name}`}>
                            Edit
                          </Button>
                          <Button
                            small
                            variant="ghost"
                            className="text-danger"
                            onClick={() => setOpen({ kind: 'delete', ws })}
                            aria-label={`Delete ${ws.name}`}
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
      </Card>
      {open?.kind === 'create' || open?.kind === 'edit' ? (
        <WorkspaceForm
          workspace={open.kind === 'edit' ? open.ws : undefined}
          onClose={() => setOpen(null)}
          onDone={(ws) => {
            setOpen(null);
            if (open.kind === 'create') {
              toast(`Workspace ${ws.name} created`);
              navigate('workspaces', ws.id, 'keys');
            } else {
              toast('Workspace saved');
              list.reload();
            }
          }}
        />
      ) : null}
      {open?.kind === 'delete' ? <DeleteWorkspace ws={open.ws} onClose={() => setOpen(null)} onDeleted={list.reload} /> : null}
    </>
  );
}

export function DeleteWorkspace({ ws, onClose, onDeleted }: { ws: Workspace; onClose(): void; onDeleted(): void }) {
  const { api } = useSession();
  const toast = useToast();
  return (
    <ConfirmDialog
      title="Delete workspace"
      confirmLabel="Delete workspace"
      typed={ws.name}
      onClose={onClose}
      onConfirm={async () => {
        await api.workspaces.deleteWorkspace({ id: ws.id });
        toast(`Workspace ${ws.name} deleted`);
        onDeleted();
      }}
    >
      <p>
        Deleting <strong>{ws.name}</strong> revokes every key it issued, at once. Gateways will reject them. This cannot be undone.
      </p>
    </ConfirmDialog>
  );
}
