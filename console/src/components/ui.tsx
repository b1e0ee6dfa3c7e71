// Small building blocks shared by the screens.
import { cloneElement, useEffect, useId, useLayoutEffect, useRef, useState, type ButtonHTMLAttributes, type ReactElement, type ReactNode } from 'react';
import { describeError } from '../api.js';
import type { Tone } from '../format.js';

type Variant = 'primary' | 'secondary' | 'danger' | 'ghost';

export function Button({
  variant = 'secondary',
  small,
  busy,
  className,
  children,
  ...rest
}: ButtonHTMLAttributes<HTMLButtonElement> & { variant?: Variant; small?: boolean; busy?: boolean }) {
  return (
    <button
      type="button"
      {...rest}
      disabled={rest.disabled || busy}
      aria-busy={busy || undefined}
      className={['btn', `btn-${variant}`, small ? 'btn-sm' : '', className ?? ''].join(' ').trim()}
    >
      {busy ? <span className="spinner" aria-hidden="true" /> : null}
      {children}
    </button>
  );
}

export function Badge({ tone, children }: { tone: Tone; children: ReactNode }) {
  return <span className={`badge badge-${tone}`}>{children}</span>;
}

/** A server error: its code and message, announced to screen readers. */
export function ErrorBanner({ error, title }: { error: unknown; title?: string }) {
  if (!error) return null;
  const { code, message } = describeError(error);
  return (
    <div className="alert alert-error" role="alert">
      <strong>{title ?? 'The server refused'}</strong> <code className="alert-code">{code}</code>
      <div className="alert-message">{message}</div>
    </div>
  );
}

export function Notice({ tone = 'info', children }: { tone?: 'info' | 'warning'; children: ReactNode }) {
  return <div className={`alert alert-${tone}`}>{children}</div>;
}

/** A labelled form control: a <label for> and, for the hint, aria-describedby. */
export function Field({
  label,
  hint,
  children,
  className,
}: {
  label: string;
  hint?: ReactNode;
  children: ReactElement<{ id?: string; 'aria-describedby'?: string }>;
  className?: string;
}) {
  const id = useId();
  const hintId = `${id}-hint`;
  return (
    <div className={`field ${className ?? ''}`}>
      <label className="field-label" htmlFor={id}>
        {label}
      </label>
      {cloneElement(children, { id, 'aria-describedby': hint ? hintId : undefined })}
      {hint ? (
        <span className="field-hint" id={hintId}>
          {hint}
        </span>
      ) : null}
    </div>
  );
}

export function PageHeader({ title, subtitle, actions, back }: { title: ReactNode; subtitle?: ReactNode; actions?: ReactNode; back?: ReactNode }) {
  return (
    <header className="page-header">
      {back ? <div className="page-back">{back}</div> : null}
      <div className="page-header-row">
        <div className="page-title-block">
          <h1 className="page-title">{title}</h1>
          {subtitle ? <p className="page-subtitle">{subtitle}</p> : null}
        </div>
        {actions ? <div className="page-actions">{actions}</div> : null}
      </div>
    </header>
  );
}

export function Card({ title, actions, children, className }: { title?: ReactNode; actions?: ReactNode; children: ReactNode; className?: string }) {
  return (
    <section className={`card ${className ?? ''}`}>
      {title || actions ? (
        <div className="card-header">
          {title ? <h2 className="card-title">{title}</h2> : <span />}
          {actions ? <div className="card-actions">{actions}</div> : null}
        </div>
      ) : null}
      {children}
    </section>
  );
}

export function Empty({ title, children }: { title: string; children?: ReactNode }) {
  return (
    <div className="empty">
      <p className="empty-title">{title}</p>
      {children ? <div className="empty-body">{children}</div> : null}
    </div>
  );
}

export function Loading({ label = 'Loading…' }: { label?: string }) {
  return (
    <div className="loading" role="status">
      <span className="spinner" aria-hidden="true" /> {label}
    </div>
  );
}

/** Previous/next over page tokens. */
export function Pager({ page, hasNext, onPrev, onNext }: { page: number; hasNext: boolean; onPrev(): void; onNext(): void }) {
  if (page === 0 && !hasNext) return null;
  return (
    <nav className="pager" aria-label="Pages">
      <Button small onClick={onPrev} disabled={page === 0}>
        ← Previous
      </Button>
      <span className="pager-page">Page {page + 1}</span>
      <Button small onClick={onNext} disabled={!hasNext}>
        Next →
      </Button>
    </nav>
  );
}

/** Page tokens visited, for previous/next. */
export function usePages() {
  const [tokens, setTokens] = useState<string[]>(['']);
  const page = tokens.length - 1;
  return {
    page,
    token: tokens[page] ?? '',
    next: (t: string) => setTokens((ts) => [...ts, t]),
    prev: () => setTokens((ts) => (ts.length > 1 ? ts.slice(0, -1) : ts)),
    reset: () => setTokens(['']),
  };
}

/**
 * A modal dialog on the native <dialog>: the page behind is inert, focus
 * moves into it, Escape closes it, focus returns where it was.
 */
export function Dialog({
  title,
  onClose,
  children,
  footer,
  wide,
  onSubmit,
  closeLabel = 'Close',
}: {
  title: string;
  onClose(): void;
  children: ReactNode;
  footer?: ReactNode;
  wide?: boolean;
  /** Makes the body a form; the footer's submit button submits it. */
  onSubmit?(): void;
  closeLabel?: string;
}) {
  const ref = useRef<HTMLDialogElement>(null);
  const titleId = useId();
  const onCloseRef = useRef(onClose);
  onCloseRef.current = onClose;
  useEffect(() => {
    const d = ref.current;
    const opener = document.activeElement as HTMLElement | null;
    if (d && !d.open) d.showModal();
    const first = d?.querySelector<HTMLElement>('[data-autofocus], input:not([type=hidden]):not([readonly]), select, textarea');
    (first ?? d?.querySelector<HTMLElement>('button'))?.focus();
    return () => {
      d?.close();
      opener?.focus?.();
    };
  }, []);
  const body = (
    <>
      <div className="dialog-header">
        <h2 id={titleId} className="dialog-title">
          {title}
        </h2>
        <button type="button" className="icon-btn" aria-label={closeLabel} onClick={() => onCloseRef.current()}>
          ×
        </button>
      </div>
      <div className="dialog-body">{children}</div>
      {footer ? <div className="dialog-footer">{footer}</div> : null}
    </>
  );
  return (
    <dialog
      ref={ref}
      className={`dialog ${wide ? 'dialog-wide' : ''}`}
      aria-labelledby={titleId}
      onCancel={(e) => {
        e.preventDefault();
        onCloseRef.current();
      }}
    >
      {onSubmit ? (
        <form
          noValidate
          onSubmit={(e) => {
            e.preventDefault();
            onSubmit();
          }}
        >
          {body}
        </form>
      ) : (
        body
      )}
    </dialog>
  );
}

/** Asks before a destructive action; with `typed`, the user must type that text first. */
export function ConfirmDialog({
  title,
  children,
  confirmLabel,
  typed,
  onConfirm,
  onClose,
}: {
  title: string;
  children: ReactNode;
  confirmLabel: string;
  typed?: string;
  onConfirm(): Promise<unknown>;
  onClose(): void;
}) {
  const [text, setText] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const ready = typed === undefined || text === typed;
  const submit = async () => {
    if (!ready) return;
    setBusy(true);
    setError(null);
    try {
      await onConfirm();
      onClose();
    } catch (e) {
      setError(e);
      setBusy(false);
    }
  };
  return (
    <Dialog
      title={title}
      onClose={onClose}
      onSubmit={submit}
      footer={
        <>
          <Button onClick={onClose}>Cancel</Button>
          <Button type="submit" variant="danger" busy={busy} disabled={!ready}>
            {confirmLabel}
          </Button>
        </>
      }
    >
      <div className="confirm-text">{children}</div>
      {typed !== undefined ? (
        <Field label={`Type ${typed} to confirm`}>
          <input className="input" value={text} onChange={(e) => setText(e.target.value)} autoComplete="off" spellCheck={false} />
        </Field>
      ) : null}
      <ErrorBanner error={error} />
    </Dialog>
  );
}

async function copyText(text: string, fallbackInput: HTMLInputElement | null): Promise<boolean> {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    if (!fallbackInput) return false;
    fallbackInput.select();
    try {
      return document.execCommand('copy');
    } catch {
      return false;
    }
  }
}

/**
 * Shows a secret once, with a copy button and a warning. The parent drops
 * the secret from its state when this closes, so it never shows again.
 */
export function SecretDialog({
  title,
  secret,
  children,
  onClose,
  hashed = true,
}: {
  title: string;
  secret: string;
  children?: ReactNode;
  onClose(): void;
  /** Whether Keyward keeps only a hash of it (API and SDK keys), or the secret itself (webhook signing secrets). */
  hashed?: boolean;
}) {
  const input = useRef<HTMLInputElement>(null);
  const [copied, setCopied] = useState<'yes' | 'failed' | null>(null);
  return (
    <Dialog
      title={title}
      onClose={onClose}
      wide
      footer={
        <Button variant="primary" onClick={onClose} data-autofocus>
          I have saved it
        </Button>
      }
    >
      <Notice tone="warning">
        <strong>Copy it now.</strong> This secret is shown only once
        {hashed ? ': Keyward stores only a hash of it and cannot show it again.' : ' and cannot be shown again; rotate it if it is lost.'}
      </Notice>
      {children}
      <div className="secret-row">
        <input
          ref={input}
          className="input mono secret-input"
          readOnly
          value={secret}
          aria-label="Secret"
          data-secret
          spellCheck={false}
          onFocus={(e) => e.currentTarget.select()}
        />
        <Button
          variant="primary"
          onClick={async () => setCopied((await copyText(secret, input.current)) ? 'yes' : 'failed')}
          aria-label="Copy secret to clipboard"
        >
          {copied === 'yes' ? 'Copied' : 'Copy'}
        </Button>
      </div>
      <p className="field-hint" role="status">
        {copied === 'yes' ? 'Copied to the clipboard.' : copied === 'failed' ? 'Copy failed: select the text and copy it by hand.' : ''}
      </p>
    </Dialog>
  );
}

/**
 * A table that scrolls sideways inside its own box on narrow screens: a named region (a labelled
 * <section>) that joins the tab order only while it actually scrolls, so that keyboard users can
 * scroll it with the arrow keys then, and meet no empty tab stop when the table fits.
 */
export function TableScroll({ label, children }: { label: string; children: ReactNode }) {
  const box = useRef<HTMLElement>(null);
  const [scrolls, setScrolls] = useState(false);
  // After every render (the rows may have changed) and on every resize of the box or the table.
  useLayoutEffect(() => {
    const el = box.current;
    if (el) setScrolls(el.scrollWidth > el.clientWidth);
  });
  useEffect(() => {
    const el = box.current;
    if (!el) return;
    const observer = new ResizeObserver(() => setScrolls(el.scrollWidth > el.clientWidth));
    observer.observe(el);
    for (const child of el.children) observer.observe(child);
    return () => observer.disconnect();
  }, []);
  return (
    <section ref={box} className="table-scroll" aria-label={label} tabIndex={scrolls ? 0 : undefined}>
      {children}
    </section>
  );
}

/** Small toast messages ("Key revoked"), announced politely. */
export function Toasts({ items }: { items: { id: number; text: string }[] }) {
  return (
    <div className="toasts" role="status" aria-live="polite">
      {items.map((t) => (
        <div key={t.id} className="toast">
          {t.text}
        </div>
      ))}
    </div>
  );
}
