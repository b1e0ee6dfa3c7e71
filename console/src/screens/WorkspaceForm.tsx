import { useState } from 'react';
import type { Workspace } from '../../../gen/keyward/v1/workspace_pb.js';
import { useSession } from '../session.js';
import { useAction } from '../hooks.js';
import { Button, Dialog, ErrorBanner, Field } from '../components/ui.js';

/** Creates a workspace, or renames one / changes its key prefix. */
export function WorkspaceForm({ workspace, onDone, onClose }: { workspace?: Workspace; onDone(ws: Workspace): void; onClose(): void }) {
  const { api } = useSession();
  const [name, setName] = useState(workspace?.name ?? '');
  const [prefix, setPrefix] = useState(workspace?.keyPrefix ?? '');
  const { busy, error, run } = useAction();
  const submit = async () => {
    const res = await run(async () => {
      if (!workspace) return api.workspaces.createWorkspace({ workspace: { name: name.trim(), keyPrefix: prefix.trim() } });
      const paths: string[] = [];
      if (name.trim() !== workspace.name) paths.push('name');
      if (prefix.trim() !== workspace.keyPrefix) paths.push('key_prefix');
      if (paths.length === 0) return { workspace };
      return api.workspaces.updateWorkspace({
        workspace: { id: workspace.id, name: name.trim(), keyPrefix: prefix.trim() },
        updateMask: { paths },
      });
    });
    if (res?.workspace) onDone(res.workspace);
  };
  return (
    <Dialog
      title={workspace ? 'Edit workspace' : 'New workspace'}
      onClose={onClose}
      onSubmit={submit}
      footer={
        <>
          <Button onClick={onClose}>Cancel</Button>
          <Button type="submit" variant="primary" busy={busy}>
            {workspace ? 'Save' : 'Create workspace'}
          </Button>
        </>
      }
    >
      <Field label="Name">
        <input className="input" value={name} onChange={(e) => setName(e.target.value)} required maxLength={120} />
      </Field>
      <Field
        label="Key prefix"
        hint={
          <>
            Starts every key of this workspace, e.g. <code>{prefix || 'kw'}_3xGv…</code>. Lower-case letters and digits, at most 16; empty means <code>kw</code>
            .{workspace ? ' Existing keys keep their prefix.' : ''}
          </>
        }
      >
        <input
          className="input mono"
          value={prefix}
          onChange={(e) => setPrefix(e.target.value)}
          pattern="[a-z][a-z0-9]{0,15}"
          maxLength={16}
          placeholder="kw"
          autoComplete="off"
          spellCheck={false}
        />
      </Field>
      <ErrorBanner error={error} />
    </Dialog>
  );
}
