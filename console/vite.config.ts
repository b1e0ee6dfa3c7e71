import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';
import react from '@vitejs/plugin-react';

const root = fileURLToPath(new URL('.', import.meta.url));
/** Where `vite dev` / `vite preview` forward API calls (a running `npm start`). */
const api = process.env.KEYWARD_URL ?? 'http://127.0.0.1:8080';
/** The policy the Keyward server sends with the console, so `vite preview` shows CSP violations too. */
const csp =
  "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";
const proxy = { '/keyward.v1.': { target: api, changeOrigin: true } };

export default defineConfig({
  root,
  base: '/console/',
  plugins: [react()],
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    // One stylesheet, no inline assets: the server's CSP allows only 'self'.
    assetsInlineLimit: 0,
    chunkSizeWarningLimit: 1200,
  },
  server: { fs: { allow: ['..'] }, proxy },
  preview: { headers: { 'content-security-policy': csp }, proxy },
});
