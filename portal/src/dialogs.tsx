import { useId, useRef, useState, type FormEvent } from 'react';
import type { ApiKey, Grant } from '../../gen/keyward/v1/key_pb.js';
import { Dialog } from './Dialog.js';
import { formatDateTime, offersOf } from './format.js';

export interface CreateKeyInput {
  name: string;
  description: string;
  permissions: string[];
  expiresInDays: number | null;
}

const EXPIRY_CHOICES: { days: number | null; label: string }[] = [
  { days: null, label: 'Never' },
  { days: 30, label: '30 days' },
  { days: 90, label: '90 days' },
];

export function CreateKeyDialog(props: { allowedGrants: Grant[]; busy: boolean; onCreate: (input: CreateKeyInput) => void; onClose: () => void }) {
  const id = useId();
  const [name, setName] = useState('');
  const [description, setDescription] = useState('');
  const [expiry, setExpiry] = useState<number | null>(null);
  const [selected, setSelected] = useState<Set<string>>(new Set());

  const toggle = (p: string, on: boolean) =>
    setSelected((s) => {
      const next = new Set(s);
      if (on) next.add(p);
      else next.delete(p);
      return next;
    });

  const offers = offersOf(props.allowedGrants);
  // In the order offered: each scope's whole-scope choice, then its actions.
  const order = offers.flatMap((o) => [...(o.whole ? [o.scope] : []), ...o.actions.map((a) => `${o.scope}:${a}`)]);

  const submit = (e: FormEvent) => {
    e.preventDefault();
    if (!name.trim()) return;
    props.onCreate({
      name: name.trim(),
      description: description.trim(),
      permissions: order.filter((p) => selected.has(p)),
      expiresInDays: expiry,
    });
  };

  return (
    <Dialog title="Create API key" onClose={props.onClose}>
      <form className="kw-form" onSubmit={submit}>
        <div className="kw-dialog-body">
          <div className="kw-field">
            <label htmlFor={`${id}-name`} className="kw-label">
              Name
            </label>
            <input
              id={`${id}-name`}
              className="kw-input"
              value={name}
              onChange={(e) => setName(e.target.value)}
              maxLength={120}
              required
              autoComplete="off"
              placeholder="e.g. Production server"
              data-autofocus
            />
          </div>
          <div className="kw-field">
            <label htmlFor={`${id}-description`} className="kw-label">
              Description <span className="kw-optional">optional</span>
            </label>
            <textarea
              id={`${id}-description`}
              className="kw-input kw-textarea"
              value={description}
              onChange={(e) => setDescription(e.target.value)}
              maxLength={1000}
              rows={2}
            />
          </div>
          <fieldset className="kw-fieldset">
            <legend className="kw-label">Permissions</legend>
            {offers.length === 0 ? (
              <p className="kw-hint">No permissions can be granted to keys created here.</p>
            ) : (
              <div className="kw-grants">
                {offers.map((o) => (
                  <fieldset className="kw-grant-row" key={o.scope} aria-labelledby={`${id}-scope-${o.scope}`}>
                    <span className="kw-grant-scope" id={`${id}-scope-${o.scope}`}>
                      {o.scope}
                    </span>
                    <span className="kw-grant-actions">
                      {o.actions.map((a) => {
                        const p = `${o.scope}:${a}`;
                        return (
                          <label className="kw-check" key={p}>
                            <input
                              type="checkbox"
                              name="permission"
                              value={p}
                              checked={selected.has(p)}
                              onChange={(e) => toggle(p, e.target.checked)}
                              aria-label={p}
                            />
                            <span aria-hidden="true">{a}</span>
                          </label>
                        );
                      })}
                      {o.whole && (
                        <label className="kw-check" title={`Everything ${o.scope} allows: the permission ${o.scope}`}>
                          <input
                            type="checkbox"
                            name="permission"
                            value={o.scope}
                            checked={selected.has(o.scope)}
                            onChange={(e) => toggle(o.scope, e.target.checked)}
                            aria-label={`${o.scope} (all actions)`}
                          />
                          <span aria-hidden="true">all actions</span>
                        </label>
                      )}
                    </span>
                  </fieldset>
                ))}
              </div>
            )}
          </fieldset>
          <fieldset className="kw-fieldset">
            <legend className="kw-label">Expires</legend>
            <div className="kw-segmented">
              {EXPIRY_CHOICES.map((c) => (
                <label className="kw-segment" key={c.label}>
                  <input type="radio" name={`${id}-expiry`} checked={expiry === c.days} onChange={() => setExpiry(c.days)} />
                  <span>{c.label}</span>
                </label>
              ))}
            </div>
          </fieldset>
        </div>
        <div className="kw-dialog-footer">
          <button type="button" className="kw-button" onClick={props.onClose}>
            Cancel
          </button>
          <button type="submit" className="kw-button kw-button-primary" disabled={props.busy || !name.trim()}>
            {props.busy ? 'Creating…' : 'Create key'}
          </button>
        </div>
      </form>
    </Dialog>
  );
}

export function SecretDialog(props: { secret: string; keyName: string; rotated: boolean; graceUntil?: Date; onClose: () => void }) {
  const id = useId();
  const input = useRef<HTMLTextAreaElement>(null);
  const [copied, setCopied] = useState<'yes' | 'failed' | null>(null);

  const copy = async () => {
    try {
      await navigator.clipboard.writeText(props.secret);
      setCopied('yes');
    } catch {
      // Clipboard API refused (e.g. an iframe without clipboard-write): select it for Ctrl+C.
      input.current?.select();
      const ok = document.execCommand?.('copy') ?? false;
      setCopied(ok ? 'yes' : 'failed');
    }
  };

  return (
    <Dialog title={props.rotated ? 'Save your new API key' : 'Save your API key'} onClose={props.onClose}>
      <div className="kw-dialog-body">
        <div className="kw-callout kw-callout-warning" role="note">
          <svg viewBox="0 0 16 16" width="16" height="16" aria-hidden="true" focusable="false" className="kw-callout-icon">
            <path d="M8 1.5l7 12.5H1L8 1.5z" fill="none" stroke="currentColor" strokeWidth="1.4" strokeLinejoin="round" />
            <path d="M8 6v3.5M8 11.5v.5" stroke="currentColor" strokeWidth="1.6" strokeLinecap="round" />
          </svg>
          <p>
            This is the only time the key is shown. Copy it now and store it somewhere safe: it cannot be shown again. If you lose it, rotate the key to get a
            new one.
          </p>
        </div>
        <div className="kw-field">
          <label htmlFor={`${id}-secret`} className="kw-label">
            API key for “{props.keyName}”
          </label>
          <div className="kw-secret">
            <textarea
              id={`${id}-secret`}
              ref={input}
              className="kw-input kw-mono kw-secret-value"
              value={props.secret}
              readOnly
              rows={2}
              spellCheck={false}
              autoComplete="off"
              onFocus={(e) => e.currentTarget.select()}
            />
            <button type="button" className="kw-button kw-button-primary" onClick={copy} data-autofocus>
              {copied === 'yes' ? 'Copied' : 'Copy'}
            </button>
          </div>
          <p className="kw-hint" role="status">
            {copied === 'yes' ? 'Copied to the clipboard.' : copied === 'failed' ? 'Copy failed: select the key and press Ctrl+C.' : ''}
          </p>
        </div>
        {props.rotated && (
          <p className="kw-hint">
            {props.graceUntil ? `The previous key keeps working until ${formatDateTime(props.graceUntil)}.` : 'The previous key has stopped working.'}
          </p>
        )}
      </div>
      <div className="kw-dialog-footer">
        <button type="button" className="kw-button" onClick={props.onClose}>
          I have saved it
        </button>
      </div>
    </Dialog>
  );
}

export function EditKeyDialog(props: {
  apiKey: ApiKey;
  busy: boolean;
  onSave: (v: { name: string; description: string; enabled: boolean }) => void;
  onClose: () => void;
}) {
  const id = useId();
  const [name, setName] = useState(props.apiKey.name);
  const [description, setDescription] = useState(props.apiKey.description);
  const [enabled, setEnabled] = useState(props.apiKey.enabled ?? true);
  return (
    <Dialog title="Edit API key" onClose={props.onClose}>
      <form
        className="kw-form"
        onSubmit={(e) => {
          e.preventDefault();
          if (name.trim()) props.onSave({ name: name.trim(), description: description.trim(), enabled });
        }}
      >
        <div className="kw-dialog-body">
          <div className="kw-field">
            <label htmlFor={`${id}-name`} className="kw-label">
              Name
            </label>
            <input
              id={`${id}-name`}
              className="kw-input"
              value={name}
              onChange={(e) => setName(e.target.value)}
              maxLength={120}
              required
              autoComplete="off"
              data-autofocus
            />
          </div>
          <div className="kw-field">
            <label htmlFor={`${id}-description`} className="kw-label">
              Description <span className="kw-optional">optional</span>
            </label>
            <textarea
              id={`${id}-description`}
              className="kw-input kw-textarea"
              value={description}
              onChange={(e) => setDescription(e.target.value)}
              maxLength={1000}
              rows={2}
            />
          </div>
          <label className="kw-switch-row">
            {/* biome-ignore lint/a11y/useAriaPropsForRole: a native checkbox exposes its checked state as the switch's aria-checked (HTML-AAM); ARIA in HTML says not to set aria-checked on it, and jsx-a11y exempts this pattern */}
            <input type="checkbox" className="kw-switch" role="switch" checked={enabled} onChange={(e) => setEnabled(e.target.checked)} />
            <span>
              <span className="kw-switch-label">Enabled</span>
              <span className="kw-hint">A disabled key is refused until you enable it again.</span>
            </span>
          </label>
        </div>
        <div className="kw-dialog-footer">
          <button type="button" className="kw-button" onClick={props.onClose}>
            Cancel
          </button>
          <button type="submit" className="kw-button kw-button-primary" disabled={props.busy || !name.trim()}>
            {props.busy ? 'Saving…' : 'Save'}
          </button>
        </div>
      </form>
    </Dialog>
  );
}

const GRACE_CHOICES: { ms: number; label: string; hint: string }[] = [
  { ms: 0, label: 'Immediately', hint: 'The current key stops working now.' },
  { ms: 3_600_000, label: 'In 1 hour', hint: 'Both keys work for an hour.' },
  { ms: 86_400_000, label: 'In 24 hours', hint: 'Both keys work for a day.' },
];

export function RotateKeyDialog(props: { apiKey: ApiKey; busy: boolean; onRotate: (graceMs: number) => void; onClose: () => void }) {
  const id = useId();
  const [grace, setGrace] = useState(0);
  return (
    <Dialog title="Rotate API key" onClose={props.onClose}>
      <form
        className="kw-form"
        onSubmit={(e) => {
          e.preventDefault();
          props.onRotate(grace);
        }}
      >
        <div className="kw-dialog-body">
          <p className="kw-text">“{props.apiKey.name}” gets a new secret, shown once. Its name, permissions and usage stay the same.</p>
          <fieldset className="kw-fieldset">
            <legend className="kw-label">The current key stops working</legend>
            <div className="kw-choices">
              {GRACE_CHOICES.map((c, i) => (
                <label className="kw-choice" key={c.ms}>
                  <input
                    type="radio"
                    name={`${id}-grace`}
                    checked={grace === c.ms}
                    onChange={() => setGrace(c.ms)}
                    {...(i === 0 ? { 'data-autofocus': true } : {})}
                  />
                  <span>
                    <span className="kw-choice-label">{c.label}</span>
                    <span className="kw-hint">{c.hint}</span>
                  </span>
                </label>
              ))}
            </div>
          </fieldset>
        </div>
        <div className="kw-dialog-footer">
          <button type="button" className="kw-button" onClick={props.onClose}>
            Cancel
          </button>
          <button type="submit" className="kw-button kw-button-primary" disabled={props.busy}>
            {props.busy ? 'Rotating…' : 'Rotate key'}
          </button>
        </div>
      </form>
    </Dialog>
  );
}

export function ConfirmDialog(props: { title: string; body: string; confirmLabel: string; busy: boolean; onConfirm: () => void; onClose: () => void }) {
  return (
    <Dialog title={props.title} onClose={props.onClose} role="alertdialog" size="sm">
      <div className="kw-dialog-body">
        <p className="kw-text">{props.body}</p>
      </div>
      <div className="kw-dialog-footer">
        <button type="button" className="kw-button" onClick={props.onClose} data-autofocus>
          Cancel
        </button>
        <button type="button" className="kw-button kw-button-danger" onClick={props.onConfirm} disabled={props.busy}>
          {props.confirmLabel}
        </button>
      </div>
    </Dialog>
  );
}
