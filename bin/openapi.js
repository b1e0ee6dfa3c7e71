#!/usr/bin/env node
// Writes docs/openapi.json, the OpenAPI 3.1 document of the Connect JSON API
// that the server also serves at /openapi.json (src/http/openapi.ts):
//   node bin/openapi.js          (npm run openapi, after changing proto/)
// test/e2e/openapi.test.ts fails when the committed file is not current.
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { register } from 'tsx/esm/api';

register();
const root = path.resolve(import.meta.dirname, '..');
const { KEYWARD_SERVICES } = await import(pathToFileURL(path.join(root, 'src/app.ts')).href);
const { openApiDocument } = await import(pathToFileURL(path.join(root, 'src/http/openapi.ts')).href);
writeFileSync(path.join(root, 'docs/openapi.json'), `${JSON.stringify(openApiDocument(KEYWARD_SERVICES), null, 2)}\n`);
process.stderr.write('wrote docs/openapi.json\n');
