// The /portal page: `npx vite build portal` (from the repo root) writes
// portal/dist, which the Keyward server serves at /portal/.
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';
import react from '@vitejs/plugin-react';

const root = fileURLToPath(new URL('.', import.meta.url));
/** Where `vite dev` / `vite preview` forward API calls (a running `npm start`). */
const api = process.env.KEYWARD_URL ?? 'http://127.0.0.1:8080';
/** The policy the Keyward server sends with the portal, so `vite preview` shows violations too. */
const csp =
  "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors *; base-uri 'none'";
const proxy = { '/keyward.v1.': { target: api, changeOrigin: true } };

export default defineConfig({
  root,
  base: '/portal/',
  plugins: [react()],
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    // Files only, nothing inlined: the server's CSP allows 'self' alone.
    assetsInlineLimit: 0,
  },
  server: { fs: { allow: ['..'] }, proxy },
  preview: { headers: { 'content-security-policy': csp }, proxy },
});
