// The README's ten-line example. In your app: import { Keyward } from '@keyward/client';
//   KEYWARD_URL=http://127.0.0.1:8080 KEYWARD_SDK_KEY=kws_... node bin/run-ts.js clients/typescript/examples/quickstart.ts
import { Keyward } from '../src/index.js';

const kw = new Keyward({ baseUrl: process.env.KEYWARD_URL ?? 'http://localhost:8080', sdkKey: process.env.KEYWARD_SDK_KEY });
const ws = await kw.workspaces.create({ name: `acme-${Date.now()}`, keyPrefix: 'acme' });
await kw.scopes.create({ workspaceId: ws.id, name: 'balance_transfers' });
const { key, secret } = await kw.keys.create({ workspaceId: ws.id, customerId: 'cus_42', name: 'production', grants: ['balance_transfers:read'], expiresInDays: 90 });
const verdict = await kw.keys.verify(secret, { permissions: ['balance_transfers:read'] });
console.log(verdict.valid, verdict.customerId); // true cus_42
await kw.keys.revoke(key.id);
console.log((await kw.keys.verify(secret)).code); // revoked
