// The /portal page's token: taken from the URL fragment (`/portal#token=kwp_...`;
// a fragment never reaches a server, so the token is in no access log),
// removed from the address bar at once, and kept in sessionStorage so a reload
// of this tab still works. It is never put in a query string or a cookie.
const STORAGE_KEY = 'keyward.portal.token';

export function takePortalToken(loc: Location = location, hist: History = history, store: Storage | undefined = safeSessionStorage()): string | null {
  const hash = new URLSearchParams(loc.hash.replace(/^#/, ''));
  const fromHash = hash.get('token');
  if (fromHash !== null) {
    hash.delete('token');
    const rest = hash.toString();
    hist.replaceState(hist.state, '', `${loc.pathname}${loc.search}${rest ? `#${rest}` : ''}`);
    if (/^kwp_\S+$/.test(fromHash)) {
      store?.setItem(STORAGE_KEY, fromHash);
      return fromHash;
    }
    store?.removeItem(STORAGE_KEY);
    return null;
  }
  return store?.getItem(STORAGE_KEY) ?? null;
}

function safeSessionStorage(): Storage | undefined {
  try {
    return window.sessionStorage;
  } catch {
    // Storage can be blocked (third-party iframe with strict settings): the page still works until reloaded.
    return undefined;
  }
}

/** Forgets the stored token (it expired or was refused), so a reload does not retry it. */
export function forgetPortalToken(store: Storage | undefined = safeSessionStorage()): void {
  store?.removeItem(STORAGE_KEY);
}
