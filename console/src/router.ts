// Hash routing under /console/: `#/workspaces/ID/keys`. The server needs no
// fallback and no route ever carries a secret.
import { useEffect, useState } from 'react';

function current(): string[] {
  const h = window.location.hash.replace(/^#\/?/, '');
  const path = h.split('?')[0] ?? '';
  return path.split('/').filter(Boolean).map(decodeURIComponent);
}

/** The path segments of the current route. */
export function useRoute(): string[] {
  const [route, setRoute] = useState(current);
  useEffect(() => {
    const on = () => setRoute(current());
    window.addEventListener('hashchange', on);
    return () => window.removeEventListener('hashchange', on);
  }, []);
  return route;
}

export function href(...parts: string[]): string {
  return `#/${parts.map(encodeURIComponent).join('/')}`;
}

export function navigate(...parts: string[]): void {
  window.location.hash = href(...parts).slice(1);
}
