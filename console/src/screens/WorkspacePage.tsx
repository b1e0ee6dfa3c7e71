import { useState } from 'react';
import { useSession, type SdkScope } from '../session.js';
import { useLoad } from '../hooks.js';
import { href, navigate } from '../router.js';
import { formatDate } from '../format.js';
import { useToast } from '../toast.js';
import { Button, Card, ErrorBanner, Loading, PageHeader } from '../components/ui.js';
import { Keys } from './Keys.js';
import { Scopes } from './Scopes.js';
import { WorkspaceUsage } from './Usage.js';
import { Webhook } from './Webhook.js';
import { WorkspaceForm } from './WorkspaceForm.js';
import { DeleteWorkspace } from './Workspaces.js';
import type { Workspace } from '../../../gen/keyward/v1/workspace_pb.js';

const TABS: { id: string; label: string; scope: SdkScope }[] = [
  { id: 'keys', label: 'API keys', scope: 'api_keys:read' },
  { id: 'scopes', label: 'Scopes', scope: 'workspace_scopes:read' },
  { id: 'usage', label: 'Usage', scope: 'api_keys:read' },
  { id: 'webhook', label: 'Webhook', scope: 'workspace:read' },
  { id: 'settings', label: 'Settings', scope: 'workspace:read' },
];

export function WorkspacePage({ id, tab }: { id: string; tab: string }) {
  const { api, can } = useSession();
  const ws = useLoad(() => api.workspaces.getWorkspace({ id }), [id]);
  const workspace = ws.data?.workspace;
  const tabs = TABS.filter((t) => can(t.scope));
  // A tab the key may not open (or a mistyped one) shows the first it may.
  if (!tabs.some((t) => t.id === tab)) tab = tabs[0]?.id ?? 'settings';
  return (
    <>
      <PageHeader
        back={<a href={href('workspaces')}>← Workspaces</a>}
        title={workspace?.name ?? (ws.loading ? 'Workspace' : 'Workspace')}
        subtitle={
          workspace ? (
            <>
              Keys start with <code className="chip">{workspace.keyPrefix}_</code> · <span className="mono">{workspace.id}</span>
            </>
          ) : null
        }
      />
      <ErrorBanner error={ws.error} title="Could not load the workspace" />
      <nav className="tabs" aria-label="Workspace">
        {tabs.map((t) => (
          <a key={t.id} className="tab" href={href('workspaces', id, t.id)} aria-current={tab === t.id ? 'page' : undefined}>
            {t.label}
          </a>
        ))}
      </nav>
      {tab === 'keys' ? <Keys workspaceId={id} /> : null}
      {tab === 'scopes' ? <Scopes workspaceId={id} /> : null}
      {tab === 'usage' ? <WorkspaceUsage workspaceId={id} /> : null}
      {tab === 'webhook' ? <Webhook workspaceId={id} /> : null}
      {tab === 'settings' ? workspace ? <Settings workspace={workspace} onChanged={ws.reload} /> : <Loading /> : null}
    </>
  );
}

function Settings({ workspace, onChanged }: { workspace: Workspace; onChanged(): void }) {
  const { can } = useSession();
  const toast = useToast();
  const [open, setOpen] = useState<'edit' | 'delete' | null>(null);
  const writable = can('workspace:write');
  return (
    <div className="stack">
      <Card
        title="General"
        actions={
          writable ? (
            <Button small onClick={() => setOpen('edit')}>
              Edit
            </Button>
          ) : null
        }
      >
        <dl className="details">
          <dt>Name</dt>
          <dd>{workspace.name}</dd>
          <dt>Key prefix</dt>
          <dd>
            <code className="chip">{workspace.keyPrefix}_</code>
          </dd>
          <dt>ID</dt>
          <dd className="mono">{workspace.id}</dd>
          <dt>Created</dt>
          <dd>{formatDate(workspace.createTime)}</dd>
          <dt>Updated</dt>
          <dd>{formatDate(workspace.updateTime)}</dd>
        </dl>
      </Card>
      {writable ? (
        <Card title="Danger zone" className="card-danger">
          <div className="danger-row">
            <p>Delete this workspace and revoke every key it issued. This cannot be undone.</p>
            <Button variant="danger" onClick={() => setOpen('delete')}>
              Delete workspace
            </Button>
          </div>
        </Card>
      ) : null}
      {open === 'edit' ? (
        <WorkspaceForm
          workspace={workspace}
          onClose={() => setOpen(null)}
          onDone={() => {
            setOpen(null);
            toast('Workspace saved');
            onChanged();
          }}
        />
      ) : null}
      {open === 'delete' ? <DeleteWorkspace ws={workspace} onClose={() => setOpen(null)} onDeleted={() => navigate('workspaces')} /> : null}
    </div>
  );
}
