/** Asks this app's own backend (server.mjs) for a portal session of the signed-in user. */
export async function fetchPortalSession(): Promise<{ token: string; baseUrl: string }> {
  const res = await fetch('/api/keyward-session', { method: 'POST' });
  if (!res.ok) throw new Error(`session: HTTP ${res.status}`);
  return res.json();
}
