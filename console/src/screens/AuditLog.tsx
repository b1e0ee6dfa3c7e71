// The audit log: who changed what, newest first, with its filters.
import { useState, type InputHTMLAttributes } from 'react';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import type { AuditEvent } from '../../../gen/keyward/v1/audit_event_pb.js';
import { useSession } from '../session.js';
import { useLoad } from '../hooks.js';
import { href } from '../router.js';
import { formatTime, shortId } from '../format.js';
import { Badge, Button, Card, Empty, ErrorBanner, Field, Loading, PageHeader, Pager, TableScroll, usePages } from '../components/ui.js';
import type { Tone } from '../format.js';

const ACTIONS = [
  'workspace.create',
  'workspace.update',
  'workspace.delete',
  'scope.create',
  'scope.update',
  'scope.delete',
  'key.create',
  'key.update',
  'key.rotate',
  'key.revoke',
  'key.delete',
  'key.used_expired',
  'key.used_revoked',
  'webhook.set',
  'webhook.delete',
  'sdk_key.create',
  'sdk_key.revoke',
  'sdk_key.auth_failed',
];
const RESOURCE_TYPES = ['workspace', 'scope', 'key', 'webhook', 'sdk_key'];

interface Filters {
  workspaceId: string;
  resourceType: string;
  resourceId: string;
  actor: string;
  action: string;
  from: string;
  to: string;
}
const NONE: Filters = { workspaceId: '', resourceType: '', resourceId: '', actor: '', action: '', from: '', to: '' };

function actionTone(action: string): Tone {
  if (/delete|revoke|auth_failed|used_/.test(action)) return 'red';
  if (/create/.test(action)) return 'green';
  if (/rotate/.test(action)) return 'amber';
  return 'blue';
}

function useAudit(filters: Filters, token: string, pageSize: number) {
  const { api } = useSession();
  return useLoad(
    () =>
      api.audit.listAuditEvents({
        workspaceId: filters.workspaceId.trim(),
        resourceType: filters.resourceType,
        resourceId: filters.resourceId.trim(),
        actor: filters.actor.trim(),
        action: filters.action.trim(),
        startTime: filters.from ? timestampFromDate(new Date(`${filters.from}T00:00:00`)) : undefined,
        endTime: filters.to ? timestampFromDate(new Date(new Date(`${filters.to}T00:00:00`).getTime() + 86_400_000)) : undefined,
        pageSize,
        pageToken: token,
      }),
    [filters, token],
  );
}

export function AuditLog() {
  const pages = usePages();
  const [draft, setDraft] = useState<Filters>(NONE);
  const [filters, setFilters] = useState<Filters>(NONE);
  const res = useAudit(filters, pages.token, 50);
  const apply = (f: Filters) => {
    setFilters(f);
    pages.reset();
  };
  const input = (k: keyof Filters, label: string, props: InputHTMLAttributes<HTMLInputElement> = {}) => (
    <Field label={label}>
      <input className="input" value={draft[k]} onChange={(e) => setDraft({ ...draft, [k]: e.target.value })} {...props} />
    </Field>
  );
  return (
    <>
      <PageHeader title="Audit log" subtitle="Every change made through the API, the CLI or this console, and every refused SDK key." />
      <Card>
        <form
          className="filters filters-wide"
          aria-label="Filter audit events"
          onSubmit={(e) => {
            e.preventDefault();
            apply(draft);
          }}
        >
          {input('workspaceId', 'Workspace ID', { placeholder: 'Any', spellCheck: false })}
          <Field label="Resource type">
            <select className="input" value={draft.resourceType} onChange={(e) => setDraft({ ...draft, resourceType: e.target.value })}>
              <option value="">Any</option>
              {RESOURCE_TYPES.map((t) => (
                <option key={t} value={t}>
                  {t}
                </option>
              ))}
            </select>
          </Field>
          {input('resourceId', 'Resource ID', { placeholder: 'Any', spellCheck: false })}
          {input('action', 'Action', { placeholder: 'Any', list: 'audit-actions', spellCheck: false })}
          {input('actor', 'Actor', { placeholder: 'SDK key id or cli', spellCheck: false })}
          {input('from', 'From', { type: 'date' })}
          {input('to', 'To', { type: 'date' })}
          <datalist id="audit-actions">
            {ACTIONS.map((a) => (
              <option key={a} value={a} />
            ))}
          </datalist>
          <div className="filters-actions">
            <Button type="submit" variant="primary">
              Apply
            </Button>
            <Button
              variant="ghost"
              onClick={() => {
                setDraft(NONE);
                apply(NONE);
              }}
            >
              Clear
            </Button>
          </div>
        </form>
        <ErrorBanner error={res.error} title="Could not load the audit log" />
        <EventsTable events={res.data?.events} loading={res.loading} showWorkspace />
        <Pager page={pages.page} hasNext={!!res.data?.nextPageToken} onPrev={pages.prev} onNext={() => pages.next(res.data!.nextPageToken)} />
      </Card>
    </>
  );
}

/** The events of one resource (a key's page). */
export function AuditTrail({ resourceId, workspaceId, title }: { resourceId: string; workspaceId: string; title: string }) {
  const pages = usePages();
  const [filters] = useState<Filters>({ ...NONE, resourceId, workspaceId });
  const res = useAudit(filters, pages.token, 20);
  return (
    <Card title={title}>
      <ErrorBanner error={res.error} title="Could not load the audit trail" />
      <EventsTable events={res.data?.events} loading={res.loading} />
      <Pager page={pages.page} hasNext={!!res.data?.nextPageToken} onPrev={pages.prev} onNext={() => pages.next(res.data!.nextPageToken)} />
    </Card>
  );
}

function EventsTable({ events, loading, showWorkspace }: { events: AuditEvent[] | undefined; loading: boolean; showWorkspace?: boolean }) {
  if (!events) return loading ? <Loading /> : null;
  if (events.length === 0) return <Empty title="No events match" />;
  return (
    <TableScroll label="Audit events">
      <table className="table">
        <thead>
          <tr>
            <th scope="col">Time</th>
            <th scope="col">Action</th>
            <th scope="col">Resource</th>
            {showWorkspace ? <th scope="col">Workspace</th> : null}
            <th scope="col">Actor</th>
            <th scope="col">Request</th>
          </tr>
        </thead>
        <tbody>
          {events.map((e) => (
            <tr key={e.id}>
              <td className="nowrap">{formatTime(e.time)}</td>
              <td className="nowrap">
                <Badge tone={actionTone(e.action)}>{e.action}</Badge>
                {e.count > 1n ? <span className="muted small"> ×{String(e.count)}</span> : null}
              </td>
              <td className="nowrap">
                <span className="muted">{e.resourceType}</span>{' '}
                {e.resourceType === 'key' && e.resourceId && !e.action.endsWith('delete') ? (
                  <a className="mono" href={href('keys', e.resourceId)} title={e.resourceId}>
                    {shortId(e.resourceId)}
                  </a>
                ) : (
                  <span className="mono" title={e.resourceId}>
                    {shortId(e.resourceId)}
                  </span>
                )}
              </td>
              {showWorkspace ? (
                <td className="nowrap">
                  {e.workspaceId ? (
                    <a className="mono" href={href('workspaces', e.workspaceId, 'keys')} title={e.workspaceId}>
                      {shortId(e.workspaceId)}
                    </a>
                  ) : (
                    <span className="muted">—</span>
                  )}
                </td>
              ) : null}
              <td className="mono nowrap" title={e.actor}>
                {shortId(e.actor)}
              </td>
              <td className="mono muted nowrap" title={e.requestId}>
                {e.requestId ? shortId(e.requestId) : '—'}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </TableScroll>
  );
}
