import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';
import { KeywardKeys } from '@keyward/portal';
import '@keyward/portal/style.css';
import './host.css';
import { fetchPortalSession } from './session';

const root = createRoot(document.getElementById('keys')!);
fetchPortalSession().then(
  ({ token, baseUrl }) =>
    root.render(
      <StrictMode>
        <KeywardKeys token={token} baseUrl={baseUrl} title="API keys" onError={(e) => console.warn('keyward:', e.code, e.rawMessage)} />
      </StrictMode>,
    ),
  (e: Error) => root.render(<p role="alert">Could not start a key session: {e.message}</p>),
);
