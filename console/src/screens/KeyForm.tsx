// Create or edit an API key: identity, permissions, expiry, limits, metadata.
import { useState } from 'react';
import type { MessageInitShape } from '@bufbuild/protobuf';
import { timestampDate, timestampFromDate } from '@bufbuild/protobuf/wkt';
import { RefillInterval, type ApiKey, type ApiKeySchema } from '../../../gen/keyward/v1/key_pb.js';
import { useSession } from '../session.js';
import { useAction, useLoad } from '../hooks.js';
import { durationMs, permissions, splitPermission } from '../format.js';
import { Button, Dialog, ErrorBanner, Field, Loading, Notice } from '../components/ui.js';

type Unit = 'second' | 'minute' | 'hour' | 'day';
const UNIT_MS: Record<Unit, number> = { second: 1000, minute: 60_000, hour: 3_600_000, day: 86_400_000 };

/** A stable identity for a rate-limit or metadata row while the form is open (React's key; never sent). */
let lastRowId = 0;
const rowId = () => ++lastRowId;

interface LimitRow {
  id: number;
  name: string;
  limit: string;
  every: string;
  unit: Unit;
}

interface FormState {
  name: string;
  description: string;
  customerId: string;
  enabled: boolean;
  /** Permission strings: `inference:write`, or `admin` for the whole scope. */
  perms: string[];
  expiry: 'none' | '30' | '90' | 'date';
  expiryDate: string;
  limits: LimitRow[];
  usesLimited: boolean;
  remainingUses: string;
  refill: 'none' | 'daily' | 'monthly';
  refillAmount: string;
  refillDay: string;
  metadata: MetaRow[];
}

interface MetaRow {
  id: number;
  k: string;
  v: string;
}

function isoDate(d: Date): string {
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}`;
}

function fromKey(k: ApiKey | undefined): FormState {
  const limits: LimitRow[] = (k?.rateLimits ?? []).map((r) => {
    const ms = durationMs(r.duration);
    const unit = (['day', 'hour', 'minute', 'second'] as Unit[]).find((u) => ms % UNIT_MS[u] === 0) ?? 'second';
    return { id: rowId(), name: r.name, limit: String(r.limit), every: String(ms / UNIT_MS[unit]), unit };
  });
  const expire = k?.expireTime ? timestampDate(k.expireTime) : undefined;
  return {
    name: k?.name ?? '',
    description: k?.description ?? '',
    customerId: k?.customerId ?? '',
    enabled: k?.enabled ?? true,
    perms: k ? permissions(k) : [],
    expiry: expire ? 'date' : 'none',
    expiryDate: expire ? isoDate(expire) : '',
    limits,
    usesLimited: k?.remainingUses !== undefined,
    remainingUses: k?.remainingUses !== undefined ? String(k.remainingUses) : '',
    refill: k?.refill?.interval === RefillInterval.DAILY ? 'daily' : k?.refill?.interval === RefillInterval.MONTHLY ? 'monthly' : 'none',
    refillAmount: k?.refill ? String(k.refill.amount) : '',
    refillDay: k?.refill?.dayOfMonth ? String(k.refill.dayOfMonth) : '1',
    metadata: Object.entries(k?.metadata ?? {}).map(([kk, v]) => ({ id: rowId(), k: kk, v })),
  };
}

class FormError extends Error {}

function int(label: string, s: string): bigint {
  if (!/^\d+$/.test(s.trim())) throw new FormError(`${label} must be a whole number`);
  return BigInt(s.trim());
}

type KeyInit = MessageInitShape<typeof ApiKeySchema>;

/** The permissions to send: a whole scope absorbs its single actions (as the server does), sorted as the server lists them. */
function toMessageScopes(perms: readonly string[]): string[] {
  const whole = new Set(perms.filter((p) => !p.includes(':')));
  return [...new Set(perms.filter((p) => whole.has(p) || !whole.has(splitPermission(p).scope)))].sort();
}

/** The message fields each update_mask path carries. */
function toMessage(f: FormState, now = Date.now()): { key: KeyInit; parts: Record<string, unknown> } {
  const scopes = toMessageScopes(f.perms);
  let expireTime: Date | undefined;
  if (f.expiry === '30' || f.expiry === '90') expireTime = new Date(now + Number(f.expiry) * 86_400_000);
  if (f.expiry === 'date') {
    if (!f.expiryDate) throw new FormError('Pick an expiry date');
    expireTime = new Date(`${f.expiryDate}T00:00:00`);
  }
  const rateLimits = f.limits.map((r, i) => {
    if (!r.name.trim()) throw new FormError(`Rate limit ${i + 1} needs a name`);
    const ms = Number(int(`Rate limit ${r.name} window`, r.every)) * UNIT_MS[r.unit];
    return {
      name: r.name.trim(),
      limit: int(`Rate limit ${r.name} limit`, r.limit),
      duration: { seconds: BigInt(Math.floor(ms / 1000)), nanos: (ms % 1000) * 1e6 },
    };
  });
  const remainingUses = f.usesLimited ? int('Remaining uses', f.remainingUses) : undefined;
  let refill: KeyInit['refill'];
  if (f.refill !== 'none') {
    if (!f.usesLimited) throw new FormError('A refill needs a limited number of uses');
    refill = {
      amount: int('Refill amount', f.refillAmount),
      interval: f.refill === 'daily' ? RefillInterval.DAILY : RefillInterval.MONTHLY,
      dayOfMonth: f.refill === 'monthly' ? Number(int('Refill day', f.refillDay)) : 0,
    };
  }
  const metadata: Record<string, string> = {};
  for (const { k, v } of f.metadata) {
    if (!k.trim()) continue;
    metadata[k.trim()] = v;
  }
  const parts: Record<string, unknown> = {
    name: f.name.trim(),
    description: f.description,
    customer_id: f.customerId.trim(),
    enabled: f.enabled,
    scopes,
    expire_time: expireTime?.getTime(),
    rate_limits: rateLimits,
    remaining_uses: remainingUses,
    refill,
    metadata,
  };
  const key: KeyInit = {
    name: f.name.trim(),
    description: f.description,
    customerId: f.customerId.trim(),
    enabled: f.enabled,
    scopes,
    expireTime: expireTime ? timestampFromDate(expireTime) : undefined,
    rateLimits,
    remainingUses,
    refill,
    metadata,
  };
  return { key, parts };
}

const json = (v: unknown) => JSON.stringify(v, (_, x) => (typeof x === 'bigint' ? x.toString() : x));

export function KeyForm({
  workspaceId,
  existing,
  onCreated,
  onUpdated,
  onClose,
}: {
  workspaceId: string;
  existing?: ApiKey;
  onCreated?(key: ApiKey, secret: string): void;
  onUpdated?(key: ApiKey): void;
  onClose(): void;
}) {
  const { api, can } = useSession();
  const [f, setF] = useState<FormState>(() => fromKey(existing));
  const [initial] = useState<FormState>(() => fromKey(existing));
  const [expiryTouched, setExpiryTouched] = useState(false);
  const [formError, setFormError] = useState<string | null>(null);
  const { busy, error, run } = useAction();
  const scopes = useLoad(
    () => (can('workspace_scopes:read') ? api.scopes.listScopes({ workspaceId, pageSize: 1000 }) : Promise.resolve(undefined)),
    [workspaceId],
  );
  const set = <K extends keyof FormState>(k: K, v: FormState[K]) => setF((s) => ({ ...s, [k]: v }));

  /** Adds or removes one permission string (`inference:write`, or `admin` for the whole scope). */
  const toggle = (perm: string, on: boolean) =>
    setF((s) => {
      const cur = new Set(s.perms);
      if (on) cur.add(perm);
      else cur.delete(perm);
      return { ...s, perms: [...cur] };
    });

  const submit = async () => {
    setFormError(null);
    let msg: ReturnType<typeof toMessage>;
    let before: ReturnType<typeof toMessage> | undefined;
    try {
      msg = toMessage(f);
      before = existing ? toMessage({ ...initial, expiry: 'none' }) : undefined;
    } catch (e) {
      if (e instanceof FormError) return setFormError(e.message);
      throw e;
    }
    if (!existing) {
      const res = await run(() => api.keys.createKey({ key: { ...msg.key, workspaceId } }));
      if (res?.key) onCreated?.(res.key, res.secret);
      return;
    }
    const paths = Object.keys(msg.parts).filter((p) => {
      if (p === 'expire_time') return expiryTouched;
      return json(msg.parts[p]) !== json(before!.parts[p]);
    });
    if (paths.length === 0) return onClose();
    const res = await run(() => api.keys.updateKey({ key: { ...msg.key, id: existing.id }, updateMask: { paths } }));
    if (res?.key) onUpdated?.(res.key);
  };

  const scopeRows = scopes.data?.scopes ?? [];
  // Per scope, the actions it declares; permissions the key has beyond them (a scope that no longer
  // loads, an action no longer declared) still show, so an edit keeps or drops them knowingly.
  const offered = new Map<string, string[]>(scopeRows.map((r) => [r.name, [...r.actions]]));
  for (const p of f.perms) {
    const { scope, action } = splitPermission(p);
    const list = offered.get(scope) ?? [];
    if (action !== undefined && !list.includes(action)) list.push(action);
    offered.set(scope, list);
  }
  const has = new Set(f.perms);
  const chosen = toMessageScopes(f.perms);
  return (
    <Dialog
      title={existing ? `Edit ${existing.name || 'key'}` : 'Create API key'}
      onClose={onClose}
      onSubmit={submit}
      wide
      footer={
        <>
          <Button onClick={onClose}>Cancel</Button>
          <Button type="submit" variant="primary" busy={busy}>
            {existing ? 'Save changes' : 'Create key'}
          </Button>
        </>
      }
    >
      <div className="form-grid">
        <Field label="Name">
          <input className="input" value={f.name} onChange={(e) => set('name', e.target.value)} maxLength={120} placeholder="Production key" />
        </Field>
        <Field label="Customer ID" hint="Your identifier for the customer who owns the key.">
          <input className="input" value={f.customerId} onChange={(e) => set('customerId', e.target.value)} maxLength={255} placeholder="cus_123" />
        </Field>
      </div>
      <Field label="Description">
        <textarea className="input" rows={2} value={f.description} onChange={(e) => set('description', e.target.value)} maxLength={1000} />
      </Field>
      <div className="form-grid">
        <Field label="Expires">
          <select
            className="input"
            value={f.expiry}
            onChange={(e) => {
              setExpiryTouched(true);
              set('expiry', e.target.value as FormState['expiry']);
            }}
          >
            <option value="none">Never</option>
            <option value="30">In 30 days</option>
            <option value="90">In 90 days</option>
            <option value="date">On a date…</option>
          </select>
        </Field>
        {f.expiry === 'date' ? (
          <Field label="Expiry date" hint="At 00:00, your local time.">
            <input
              className="input"
              type="date"
              value={f.expiryDate}
              min={isoDate(new Date(Date.now() + 86_400_000))}
              onChange={(e) => {
                setExpiryTouched(true);
                set('expiryDate', e.target.value);
              }}
            />
          </Field>
        ) : null}
      </div>

      {existing ? (
        <label className="check">
          <input type="checkbox" checked={f.enabled} onChange={(e) => set('enabled', e.target.checked)} />
          <span>Enabled (a disabled key verifies as DISABLED until enabled again)</span>
        </label>
      ) : null}

      <fieldset className="fieldset">
        <legend>Permissions</legend>
        {scopes.loading ? (
          <Loading label="Loading scopes…" />
        ) : scopes.error ? (
          <ErrorBanner error={scopes.error} title="Could not load scopes" />
        ) : offered.size === 0 ? (
          <p className="muted">This workspace has no scopes yet: the key will have no permissions. Add scopes on the Scopes tab.</p>
        ) : (
          <>
            <fieldset className="grant-table" aria-label="Grants">
              {[...offered].map(([scope, actions]) => {
                const whole = has.has(scope);
                return (
                  <div className="grant-row" key={scope}>
                    <code className="grant-scope">{scope}</code>
                    <div className="grant-actions">
                      {actions.map((a) => (
                        <label key={a} className="check check-inline">
                          <input
                            type="checkbox"
                            checked={whole || has.has(`${scope}:${a}`)}
                            disabled={whole}
                            onChange={(e) => toggle(`${scope}:${a}`, e.target.checked)}
                            aria-label={`${scope}:${a}`}
                          />
                          <span aria-hidden="true">{a}</span>
                        </label>
                      ))}
                      <label className="check check-inline grant-whole" title={`Every action of ${scope}, now or later, and the permission ${scope}`}>
                        <input type="checkbox" checked={whole} onChange={(e) => toggle(scope, e.target.checked)} aria-label={`${scope} (whole scope)`} />
                        <span aria-hidden="true">whole scope</span>
                      </label>
                    </div>
                  </div>
                );
              })}
            </fieldset>
            <div className="grant-summary">
              <span className="muted small">Granted:</span>
              <span className="perm-list" data-testid="granted">
                {chosen.length ? (
                  chosen.map((p) => (
                    <code key={p} className="chip chip-soft">
                      {p}
                    </code>
                  ))
                ) : (
                  <span className="muted small">nothing</span>
                )}
              </span>
            </div>
          </>
        )}
      </fieldset>

      <fieldset className="fieldset">
        <legend>Rate limits</legend>
        {f.limits.length === 0 ? <p className="muted small">No rate limit: the key may be used as often as the gateway allows.</p> : null}
        {f.limits.map((r, i) => {
          const upd = (patch: Partial<Omit<LimitRow, 'id'>>) =>
            set(
              'limits',
              f.limits.map((x, j) => (j === i ? { ...x, ...patch } : x)),
            );
          return (
            <div className="limit-row" key={r.id}>
              <Field label="Name">
                <input className="input mono" value={r.name} onChange={(e) => upd({ name: e.target.value })} placeholder="per_minute" />
              </Field>
              <Field label="Limit">
                <input className="input" inputMode="numeric" value={r.limit} onChange={(e) => upd({ limit: e.target.value })} placeholder="100" />
              </Field>
              <Field label="Per">
                <input className="input" inputMode="numeric" value={r.every} onChange={(e) => upd({ every: e.target.value })} />
              </Field>
              <Field label="Unit">
                <select className="input" value={r.unit} onChange={(e) => upd({ unit: e.target.value as Unit })}>
                  <option value="second">second(s)</option>
                  <option value="minute">minute(s)</option>
                  <option value="hour">hour(s)</option>
                  <option value="day">day(s)</option>
                </select>
              </Field>
              <Button
                small
                variant="ghost"
                className="limit-remove"
                aria-label={`Remove rate limit ${r.name || i + 1}`}
                onClick={() =>
                  set(
                    'limits',
                    f.limits.filter((_, j) => j !== i),
                  )
                }
              >
                Remove
              </Button>
            </div>
          );
        })}
        {f.limits.length < 5 ? (
          <Button
            small
            onClick={() => set('limits', [...f.limits, { id: rowId(), name: f.limits.length ? '' : 'per_minute', limit: '', every: '1', unit: 'minute' }])}
          >
            Add rate limit
          </Button>
        ) : null}
      </fieldset>

      <fieldset className="fieldset">
        <legend>Usage limit</legend>
        <label className="check">
          <input type="checkbox" checked={f.usesLimited} onChange={(e) => set('usesLimited', e.target.checked)} />
          <span>Limit the number of uses</span>
        </label>
        {f.usesLimited ? (
          <div className="form-grid form-grid-3">
            <Field label="Remaining uses">
              <input className="input" inputMode="numeric" value={f.remainingUses} onChange={(e) => set('remainingUses', e.target.value)} placeholder="1000" />
            </Field>
            <Field label="Refill">
              <select className="input" value={f.refill} onChange={(e) => set('refill', e.target.value as FormState['refill'])}>
                <option value="none">No refill</option>
                <option value="daily">Daily (00:00 UTC)</option>
                <option value="monthly">Monthly</option>
              </select>
            </Field>
            {f.refill !== 'none' ? (
              <Field label="Refill to">
                <input className="input" inputMode="numeric" value={f.refillAmount} onChange={(e) => set('refillAmount', e.target.value)} placeholder="1000" />
              </Field>
            ) : null}
            {f.refill === 'monthly' ? (
              <Field label="Day of month">
                <input className="input" type="number" min={1} max={31} value={f.refillDay} onChange={(e) => set('refillDay', e.target.value)} />
              </Field>
            ) : null}
          </div>
        ) : null}
      </fieldset>

      <fieldset className="fieldset">
        <legend>Metadata</legend>
        <p className="muted small">Returned by VerifyKey to your gateway, e.g. a plan or a tenant id.</p>
        {f.metadata.map((m, i) => {
          const upd = (patch: Partial<Omit<MetaRow, 'id'>>) =>
            set(
              'metadata',
              f.metadata.map((x, j) => (j === i ? { ...x, ...patch } : x)),
            );
          return (
            <div className="meta-row" key={m.id}>
              <Field label="Key">
                <input className="input mono" value={m.k} onChange={(e) => upd({ k: e.target.value })} maxLength={128} />
              </Field>
              <Field label="Value">
                <input className="input" value={m.v} onChange={(e) => upd({ v: e.target.value })} maxLength={1024} />
              </Field>
              <Button
                small
                variant="ghost"
                className="limit-remove"
                aria-label={`Remove metadata ${m.k || i + 1}`}
                onClick={() =>
                  set(
                    'metadata',
                    f.metadata.filter((_, j) => j !== i),
                  )
                }
              >
                Remove
              </Button>
            </div>
          );
        })}
        <Button small onClick={() => set('metadata', [...f.metadata, { id: rowId(), k: '', v: '' }])}>
          Add metadata
        </Button>
      </fieldset>
      {formError ? <Notice tone="warning">{formError}</Notice> : null}
      <ErrorBanner error={error} />
    </Dialog>
  );
}
