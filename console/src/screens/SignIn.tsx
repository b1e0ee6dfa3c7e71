import { useState } from 'react';
import { Button, ErrorBanner, Field, Notice } from '../components/ui.js';

/** Paste an SDK key. It is kept in this tab's sessionStorage only. */
export function SignIn({ onSignIn, expired }: { onSignIn(token: string): Promise<void>; expired: boolean }) {
  const [token, setToken] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const submit = async () => {
    const t = token.trim();
    if (!t) return;
    setBusy(true);
    setError(null);
    try {
      await onSignIn(t);
    } catch (e) {
      setError(e);
      setBusy(false);
    }
  };
  return (
    <main className="signin">
      <div className="signin-card">
        <div className="brand brand-large">
          <span className="brand-mark" aria-hidden="true">
            K
          </span>
          <span>Keyward</span>
        </div>
        <h1 className="signin-title">Sign in to the console</h1>
        <p className="muted">
          Paste an SDK key (<code>kws_…</code>). <code>npm start</code> prints an admin key once, on its first start; more are made with{' '}
          <code>keyward sdk-key create</code> or on the SDK keys screen.
        </p>
        {expired ? <Notice tone="warning">The server no longer accepts that SDK key. Sign in again.</Notice> : null}
        <form
          onSubmit={(e) => {
            e.preventDefault();
            void submit();
          }}
        >
          <Field label="SDK key" hint="Kept only in this browser tab (sessionStorage) until you sign out or close it.">
            <input
              className="input mono"
              type="password"
              name="sdk-key"
              autoComplete="off"
              spellCheck={false}
              value={token}
              onChange={(e) => setToken(e.target.value)}
              placeholder="kws_…"
            />
          </Field>
          <ErrorBanner error={error} title="Sign-in failed" />
          <Button type="submit" variant="primary" busy={busy} disabled={!token.trim()} className="btn-block">
            Sign in
          </Button>
        </form>
      </div>
    </main>
  );
}
