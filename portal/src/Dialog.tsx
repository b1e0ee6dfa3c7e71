import { useEffect, useId, useRef, type ReactNode } from 'react';

export interface DialogProps {
  title: string;
  /** Called on Escape and by the dialog's own close controls. */
  onClose: () => void;
  children: ReactNode;
  /** `alert` for dialogs that ask to confirm something destructive. */
  role?: 'dialog' | 'alertdialog';
  /** A shorter or wider dialog. */
  size?: 'sm' | 'md';
}

/**
 * A modal on the native <dialog>: the browser keeps focus inside, puts it in
 * the top layer over any host-page z-index, and sends Escape as `cancel`.
 * Focus goes to the first `[data-autofocus]` control, or the first control,
 * and back to where it was when the dialog closes.
 */
export function Dialog({ title, onClose, children, role = 'dialog', size = 'md' }: DialogProps) {
  const ref = useRef<HTMLDialogElement>(null);
  const titleId = useId();
  const close = useRef(onClose);
  close.current = onClose;

  useEffect(() => {
    const dialog = ref.current;
    if (!dialog) return;
    const previous = document.activeElement instanceof HTMLElement ? document.activeElement : null;
    if (!dialog.open) dialog.showModal();
    const first = dialog.querySelector<HTMLElement>('[data-autofocus]');
    first?.focus();
    return () => {
      if (dialog.open) dialog.close();
      if (previous?.isConnected) previous.focus();
    };
  }, []);

  return (
    <dialog
      ref={ref}
      className={`kw-dialog kw-dialog-${size}`}
      role={role === 'alertdialog' ? 'alertdialog' : undefined}
      aria-labelledby={titleId}
      onCancel={(e) => {
        e.preventDefault();
        close.current();
      }}
    >
      <div className="kw-dialog-header">
        <h2 id={titleId} className="kw-dialog-title">
          {title}
        </h2>
        <button type="button" className="kw-icon-button" aria-label="Close" onClick={() => close.current()}>
          <svg viewBox="0 0 16 16" width="16" height="16" aria-hidden="true" focusable="false">
            <path d="M4 4l8 8M12 4l-8 8" stroke="currentColor" strokeWidth="1.6" strokeLinecap="round" fill="none" />
          </svg>
        </button>
      </div>
      {children}
    </dialog>
  );
}
