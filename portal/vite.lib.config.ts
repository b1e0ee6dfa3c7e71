// The @keyward/portal library: `npx vite build --config portal/vite.lib.config.ts`
// writes portal/dist-lib/ with
//   keyward-portal.js   ES module; react, react-dom and the Connect/protobuf runtimes stay external
//   keyward-portal.css  the component's stylesheet (import it once)
//   index.d.ts          type declarations (index.d.ts, KeywardKeys.d.ts)
import { fileURLToPath } from 'node:url';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import ts from 'typescript';
import { defineConfig, type Plugin } from 'vite';
import react from '@vitejs/plugin-react';

const root = fileURLToPath(new URL('.', import.meta.url));
const entry = path.join(root, 'src/index.ts');


/** Packages the host app provides (see package.json's peerDependencies and dependencies). */
const external = [/^react($|\/)/, /^react-dom($|\/)/, /^@connectrpc\/connect($|\/)/, /^@connectrpc\/connect-web($|\/)/, /^@bufbuild\/protobuf($|\/)/];

/**
 * Emits the declarations of the public surface: src/index.ts and the files it
 * re-exports from, each declared on its own (ts.transpileDeclaration, the
 * isolatedDeclarations emitter), so exported functions carry explicit types.
 */
function declarations(files: string[]): Plugin {
  return {
    name: 'keyward-portal-dts',
    apply: 'build',
    generateBundle() {
      for (const f of files) {
        const fileName = path.join(root, 'src', f);
        const out = ts.transpileDeclaration(readFileSync(fileName, 'utf8'), {
          fileName,
          compilerOptions: { jsx: ts.JsxEmit.ReactJSX, module: ts.ModuleKind.ESNext, moduleResolution: ts.ModuleResolutionKind.Bundler, isolatedDeclarations: true },
          reportDiagnostics: true,
        });
        if (out.diagnostics?.length) {
          this.error(ts.formatDiagnostics(out.diagnostics, { getCanonicalFileName: (n) => n, getCurrentDirectory: () => root, getNewLine: () => '\n' }));
        }
        // The stylesheet ships as keyward-portal.css; a declaration has no use for its import.
        const source = out.outputText.replace(/^import '[^']+\.css';\n/gm, '');
        this.emitFile({ type: 'asset', fileName: f.replace(/\.tsx?$/, '.d.ts'), source });
      }
    },
  };
}

export default defineConfig({
  root,
  plugins: [react(), declarations(['index.ts', 'KeywardKeys.tsx'])],
  build: {
    outDir: 'dist-lib',
    emptyOutDir: true,
    copyPublicDir: false,
    assetsInlineLimit: 0,
    lib: {
      entry,
      formats: ['es'],
      fileName: () => 'keyward-portal.js',
      cssFileName: 'keyward-portal',
    },
    rolldownOptions: { external },
    sourcemap: true,
  },
});
