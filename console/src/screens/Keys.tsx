import { useState } from 'react';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { KeyState, type ApiKey } from '../../../gen/keyward/v1/key_pb.js';
import { useSession } from '../session.js';
import { useLoad } from '../hooks.js';
import { href } from '../router.js';
import { KEY_STATES, keyHint, formatDate, formatTime, permissions, relative, stateLabel, stateTone } from '../format.js';
import { Badge, Button, Card, Empty, ErrorBanner, Field, Loading, Pager, SecretDialog, TableScroll, usePages } from '../components/ui.js';
import { KeyForm } from './KeyForm.js';

interface Filters {
  customerId: string;
  state: KeyState;
  expireBefore: string;
}

const NO_FILTERS: Filters = { customerId: '', state: KeyState.UNSPECIFIED, expireBefore: '' };

/** A workspace's API keys: filters, paging, and the create form. */
export function Keys({ workspaceId }: { workspaceId: string }) {
  const { api, can } = useSession();
  const pages = usePages();
  const [draft, setDraft] = useState<Filters>(NO_FILTERS);
  const [filters, setFilters] = useState<Filters>(NO_FILTERS);
  const [creating, setCreating] = useState(false);
  const [created, setCreated] = useState<{ key: ApiKey; secret: string } | null>(null);
  const list = useLoad(
    () =>
      api.keys.listKeys({
        workspaceId,
        customerId: filters.customerId.trim(),
        state: filters.state,
        expireBefore: filters.expireBefore ? timestampFromDate(new Date(`${filters.expireBefore}T00:00:00`)) : undefined,
        pageSize: 25,
        pageToken: pages.token,
      }),
    [workspaceId, filters, pages.token],
  );
  const writable = can('api_keys:write');
  const rows = list.data?.keys ?? [];
  const filtered = filters.customerId !== '' || filters.state !== KeyState.UNSPECIFIED || filters.expireBefore !== '';
  const apply = (f: Filters) => {
    setFilters(f);
    pages.reset();
  };
  return (
    <Card
      title="API keys"
      actions={
        writable ? (
          <Button variant="primary" small onClick={() => setCreating(true)}>
            Create key
          </Button>
        ) : null
      }
    >
      <form
        className="filters"
        aria-label="Filter keys"
        onSubmit={(e) => {
          e.preventDefault();
          apply(draft);
        }}
      >
        <Field label="Customer ID">
          <input className="input" value={draft.customerId} onChange={(e) => setDraft({ ...draft, customerId: e.target.value })} placeholder="Any customer" />
        </Field>
        <Field label="State">
          <select
            className="input"
            value={draft.state}
            onChange={(e) => {
              const f = { ...draft, state: Number(e.target.value) as KeyState };
              setDraft(f);
              apply(f);
            }}
          >
            <option value={KeyState.UNSPECIFIED}>Any state</option>
            {KEY_STATES.map((s) => (
              <option key={s.value} value={s.value}>
                {s.label}
              </option>
            ))}
          </select>
        </Field>
        <Field label="Expiring before">
          <input
            className="input"
            type="date"
            value={draft.expireBefore}
            onChange={(e) => {
              const f = { ...draft, expireBefore: e.target.value };
              setDraft(f);
              apply(f);
            }}
          />
        </Field>
        <div className="filters-actions">
          <Button type="submit">Apply</Button>
          {filtered ? (
            <Button
              variant="ghost"
              onClick={() => {
                setDraft(NO_FILTERS);
                apply(NO_FILTERS);
              }}
            >
              Clear
            </Button>
          ) : null}
        </div>
      </form>
      <ErrorBanner error={list.error} title="Could not load keys" />
      {list.loading && !list.data ? (
        <Loading />
      ) : rows.length === 0 ? (
        <Empty title={filtered ? 'No key matches these filters' : 'No keys yet'}>
          {filtered ? 'Change or clear the filters.' : writable ? 'Create a key for one of your customers.' : null}
        </Empty>
      ) : (
        <TableScroll label="API keys">
          <table className="table" data-testid="keys-table">
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Customer</th>
                <th scope="col">Key</th>
                <th scope="col">Permissions</th>
                <th scope="col">Created</th>
                <th scope="col">Last used</th>
                <th scope="col">Expires</th>
                <th scope="col">State</th>
              </tr>
            </thead>
            <tbody>
              {rows.map((k) => (
                <KeyRow key={k.id} k={k} />
              ))}
            </tbody>
          </table>
        </TableScroll>
      )}
      <Pager page={pages.page} hasNext={!!list.data?.nextPageToken} onPrev={pages.prev} onNext={() => pages.next(list.data!.nextPageToken)} />
      {creating ? (
        <KeyForm
          workspaceId={workspaceId}
          onClose={() => setCreating(false)}
          onCreated={(key, secret) => {
            setCreating(false);
            setCreated({ key, secret });
            list.reload();
          }}
        />
      ) : null}
      {created ? (
        <SecretDialog title="Your new API key" secret={created.secret} onClose={() => setCreated(null)}>
          <p>
            Key <strong>{created.key.name || created.key.id}</strong>
            {created.key.customerId ? (
              <>
                {' '}
                for customer <strong>{created.key.customerId}</strong>
              </>
            ) : null}{' '}
            was created. Give it to your customer over a secure channel.
          </p>
        </SecretDialog>
      ) : null}
    </Card>
  );
}

function KeyRow({ k }: { k: ApiKey }) {
  const perms = permissions(k);
  return (
    <tr>
      <td className="cell-name">
        <a className="row-link" href={href('keys', k.id)}>
          {k.name || <span className="muted">Unnamed</span>}
        </a>
      </td>
      <td className="nowrap">{k.customerId || <span className="muted">—</span>}</td>
      <td className="nowrap">
        <code className="chip" title={k.maskedKey}>
          {keyHint(k)}
        </code>
      </td>
      <td>
        <div className="perm-list">
          {perms.slice(0, 3).map((p) => (
            <code key={p} className="chip chip-soft">
              {p}
            </code>
          ))}
          {perms.length > 3 ? <span className="muted small">+{perms.length - 3}</span> : null}
          {perms.length === 0 ? <span className="muted">none</span> : null}
        </div>
      </td>
      <td className="nowrap" title={formatTime(k.createTime)}>
        {formatDate(k.createTime)}
      </td>
      <td className="nowrap" title={formatTime(k.lastUsedTime, 'never')}>
        {relative(k.lastUsedTime)}
      </td>
      <td className="nowrap" title={formatTime(k.expireTime, 'never')}>
        {k.expireTime ? formatDate(k.expireTime) : <span className="muted">never</span>}
      </td>
      <td>
        <Badge tone={stateTone(k.state)}>{stateLabel(k.state)}</Badge>
      </td>
    </tr>
  );
}
