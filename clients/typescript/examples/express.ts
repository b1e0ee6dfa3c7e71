// Protecting an Express app with Keyward, one line per route.
//   KEYWARD_URL=http://127.0.0.1:8080 KEYWARD_SDK_KEY=kws_... PORT=3000 node bin/run-ts.js clients/typescript/examples/express.ts
// The SDK key needs only the scope api_keys:verify. In your app, import from
// '@keyward/client/express' instead of '../src/middleware/express.js'.
import type { AddressInfo } from 'node:net';
import express from 'express';
import { keywardExpress } from '../src/middleware/express.js';

const auth = keywardExpress({ baseUrl: process.env.KEYWARD_URL ?? 'http://127.0.0.1:8080', sdkKey: process.env.KEYWARD_SDK_KEY });

const app = express();
app.get('/transfers', auth('balance_transfers:read'), (req, res) => {
  res.json({ customer: req.keyward!.customerId, transfers: [] });
});
app.post('/transfers', auth('balance_transfers:create'), (req, res) => {
  res.status(201).json({ customer: req.keyward!.customerId, created: true });
});

const server = app.listen(Number(process.env.PORT ?? 3000), '127.0.0.1', () => {
  console.log(`listening on http://127.0.0.1:${(server.address() as AddressInfo).port}`);
});
