// Signs in with an SDK key, learns what it may do, and routes the screens.
import { useCallback, useEffect, useMemo, useRef, useState } from 'react';
import { createApi, storedToken, storeToken } from './api.js';
import type { SdkKey } from '../../gen/keyward/v1/sdk_key_service_pb.js';
import { SessionContext, sessionFor } from './session.js';
import { ToastContext } from './toast.js';
import { Toasts, Loading } from './components/ui.js';
import { SignIn } from './screens/SignIn.js';
import { Layout } from './screens/Layout.js';
import { Routes } from './screens/Routes.js';

interface SignedIn {
  token: string;
  me: SdkKey | null;
}

/** Asks the server who the key is: its scopes and workspaces decide what the console offers. */
async function whoAmI(token: string): Promise<SdkKey | null> {
  const res = await createApi(token).sdkKeys.getCurrentSdkKey({});
  return res.sdkKey ?? null;
}

export function App() {
  const [signedIn, setSignedIn] = useState<SignedIn | null>(null);
  const [restoring, setRestoring] = useState(() => storedToken() !== null);
  const [expired, setExpired] = useState(false);
  const [toasts, setToasts] = useState<{ id: number; text: string }[]>([]);
  const nextToast = useRef(1);

  const signOut = useCallback(() => {
    storeToken(null);
    setSignedIn(null);
  }, []);

  const signIn = useCallback(async (token: string) => {
    const me = await whoAmI(token);
    storeToken(token);
    setExpired(false);
    setSignedIn({ token, me });
  }, []);

  // A key kept in sessionStorage (a reload of the tab) is checked again.
  useEffect(() => {
    const token = storedToken();
    if (!token) return;
    signIn(token)
      .catch(() => storeToken(null))
      .finally(() => setRestoring(false));
  }, [signIn]);

  const session = useMemo(() => {
    if (!signedIn) return null;
    const api = createApi(signedIn.token, () => {
      storeToken(null);
      setExpired(true);
      setSignedIn(null);
    });
    return sessionFor(api, signedIn.me, signOut);
  }, [signedIn, signOut]);

  const toast = useCallback((text: string) => {
    const id = nextToast.current++;
    setToasts((ts) => [...ts, { id, text }]);
    window.setTimeout(() => setToasts((ts) => ts.filter((t) => t.id !== id)), 4000);
  }, []);

  if (restoring) return <Loading label="Signing in…" />;
  if (!session) return <SignIn onSignIn={signIn} expired={expired} />;
  return (
    <SessionContext.Provider value={session}>
      <ToastContext.Provider value={toast}>
        <Layout>
          <Routes />
        </Layout>
        <Toasts items={toasts} />
      </ToastContext.Provider>
    </SessionContext.Provider>
  );
}
