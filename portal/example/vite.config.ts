// A host app of another company's origin, built against the library build
// (portal/dist-lib) as an npm install of @keyward/portal would be:
//   npx vite build --config portal/vite.lib.config.ts
//   npx vite build --config portal/example/vite.config.ts
//   KEYWARD_URL=... KEYWARD_SDK_KEY=... WORKSPACE_ID=... CUSTOMER_ID=... node portal/example/server.mjs
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';
import react from '@vitejs/plugin-react';

const here = (p: string) => fileURLToPath(new URL(p, import.meta.url));

export default defineConfig({
  root: here('.'),
  plugins: [react()],
  resolve: {
    alias: [
      { find: /^@keyward\/portal\/style\.css$/, replacement: here('../dist-lib/keyward-portal.css') },
      { find: /^@keyward\/portal$/, replacement: here('../dist-lib/keyward-portal.js') },
    ],
  },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    assetsInlineLimit: 0,
    rolldownOptions: { input: { index: here('index.html'), iframe: here('iframe.html') } },
  },
});
