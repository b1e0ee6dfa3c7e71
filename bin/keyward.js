#!/usr/bin/env node
// Entry point for `npx keyward ...` and `npm start`: runs the TypeScript
// sources directly through tsx, so there is no build step to forget.
import { register } from 'tsx/esm/api';

register();
// Before anything imports MikroORM (see the module).
await import('../src/db/load-orm.ts');
await import('../src/cli.ts');
