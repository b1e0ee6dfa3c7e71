import { Code } from '@connectrpc/connect';
import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';
import { KeywardKeys } from './KeywardKeys.js';
import { forgetPortalToken, takePortalToken } from './session-token.js';
import './page.css';

const token = takePortalToken();
const embedded = window.self !== window.top;
document.documentElement.classList.toggle('kw-page-embedded', embedded);

function Page() {
  return (
    <main className="kw-page">
      {token ? (
        <KeywardKeys
          token={token}
          baseUrl={location.origin}
          onError={(e) => {
            if (e.code === Code.Unauthenticated) forgetPortalToken();
          }}
        />
      ) : (
        <div className="kw-root">
          <div className="kw-card kw-empty" role="alert">
            <h1 className="kw-empty-title">No key management session</h1>
            <p className="kw-hint">This link has expired or is incomplete. Open key management again from your account settings.</p>
          </div>
        </div>
      )}
    </main>
  );
}

createRoot(document.getElementById('root')!).render(
  <StrictMode>
    <Page />
  </StrictMode>,
);
