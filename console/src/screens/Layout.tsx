import type { ReactNode } from 'react';
import { useSession } from '../session.js';
import { href, useRoute } from '../router.js';
import { Button } from '../components/ui.js';

/** The shell: a left navigation (a top bar on small screens) and the page. */
export function Layout({ children }: { children: ReactNode }) {
  const { can, me, signOut } = useSession();
  const route = useRoute();
  const section = route[0] ?? 'workspaces';
  const active = (s: string) => (section === s || (s === 'workspaces' && section === 'keys') ? 'page' : undefined);
  return (
    <div className="shell">
      <aside className="sidebar">
        <a className="brand" href={href('workspaces')}>
          <span className="brand-mark" aria-hidden="true">
            K
          </span>
          <span>Keyward</span>
        </a>
        <nav className="nav" aria-label="Main">
          <a className="nav-link" href={href('workspaces')} aria-current={active('workspaces')}>
            Workspaces
          </a>
          {can('audit:read') ? (
            <a className="nav-link" href={href('audit')} aria-current={active('audit')}>
              Audit log
            </a>
          ) : null}
          {can('sdk_keys:write') ? (
            <a className="nav-link" href={href('sdk-keys')} aria-current={active('sdk-keys')}>
              SDK keys
            </a>
          ) : null}
        </nav>
        <div className="sidebar-footer">
          <div className="whoami">
            <span className="whoami-label">Signed in as</span>
            <span className="whoami-name" title={me?.id}>
              {me ? me.name || me.id : 'SDK key'}
            </span>
            <span className="whoami-scopes">{me ? me.scopes.join(' ') : 'scopes unknown'}</span>
            {me && me.workspaceIds.length > 0 ? <span className="whoami-scopes">{me.workspaceIds.length} workspace(s) only</span> : null}
          </div>
          <Button small onClick={signOut}>
            Sign out
          </Button>
        </div>
      </aside>
      <main className="content" id="main">
        {children}
      </main>
    </div>
  );
}
