// The one path webhook events leave by (src/webhooks/sender.ts), against
// real local sockets, with the resolver under the test's control: the host is
// resolved once, checked, and the connection goes to that checked address
// only, so DNS rebinding between the check and the connection reaches nothing.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifyWebhookSignature } from '../../clients/typescript/src/webhooks.js';
import { SecretBox } from '../../src/credentials/secret-box.js';
import type { ResolveHost } from '../../src/webhooks/address-guard.js';
import { EVENT_ID_HEADER, SIGNATURE_HEADER, WebhookSender } from '../../src/webhooks/sender.js';

const SECRET = 'whsec_sender-test-secret';
const PUBLIC = '93.184.216.34';
const PAYLOAD = JSON.stringify({ id: 'evt', type: 'webhook.test', data: { test: true } });

interface Hit {
  host: string | undefined;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** A receiver on 127.0.0.1 that records every request; `status` decides the answer. */
class Receiver {
  readonly hits: Hit[] = [];
  status = 200;
  location: string | undefined;
  private readonly server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      this.hits.push({ host: req.headers.host, headers: req.headers, body });
      if (this.location) res.setHeader('location', this.location);
      res.statusCode = this.status;
      res.end('a body nobody reads');
    });
  });
  port = 0;
  async start() {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', () => r()));
    this.port = (this.server.address() as AddressInfo).port;
    return this;
  }
  close() {
    return new Promise<void>((r) => this.server.close(() => r()));
  }
}

/** A resolver answering `answers` in turn (the last one again after), recording what it was asked. */
function scriptedResolver(...answers: string[][]): ResolveHost & { asked: string[] } {
  const asked: string[] = [];
  const resolve = async (host: string) => {
    asked.push(host);
    return answers[Math.min(asked.length - 1, answers.length - 1)]!;
  };
  return Object.assign(resolve, { asked });
}

const sender = (resolve: ResolveHost, allowPrivateNetworks = false, timeoutMs = 1000) =>
  new WebhookSender({ timeoutMs, allowPrivateNetworks, secrets: new SecretBox(undefined), resolve });

let rx: Receiver;
beforeAll(async () => {
  rx = await new Receiver().start();
});
afterAll(async () => {
  await rx?.close();
});

describe('WebhookSender', () => {
  it('connects to the address it checked, not to what the name resolves to later (DNS rebinding)', async () => {
    // Public at the check, loopback for any later lookup (as a rebinding DNS server answers).
    const resolve = scriptedResolver([PUBLIC], ['127.0.0.1']);
    const before = rx.hits.length;
    const out = await sender(resolve, false, 500).send({ url: `http://rebind.example.test:${rx.port}/hook`, secret: SECRET }, 'evt', PAYLOAD);
    // One lookup only, and the loopback receiver saw nothing.
    expect(resolve.asked).toEqual(['rebind.example.test']);
    expect(rx.hits.length).toBe(before);
    // What the public address does is the network's business (it refuses or
    // does not answer; an egress proxy may answer for it): a failure to reach
    // it names it.
    if (out.httpStatus === 0) expect(out.error).toContain(PUBLIC);
  });

  it('refuses a name that resolves to a private address: nothing is sent', async () => {
    for (const answer of [['127.0.0.1'], [PUBLIC, '10.0.0.7'], ['::ffff:127.0.0.1']]) {
      const before = rx.hits.length;
      const out = await sender(scriptedResolver(answer)).send({ url: `http://internal.example.test:${rx.port}/hook`, secret: SECRET }, 'evt', PAYLOAD);
      expect(out).toMatchObject({ delivered: false, httpStatus: 0 });
      expect(out.error).toMatch(/^refused: internal\.example\.test resolves to a private or non-public address/);
      expect(rx.hits.length).toBe(before);
    }
  });

  it('with private networks allowed, posts the signed event to the resolved address under the URL host name', async () => {
    // The name exists only in this resolver: the connection can only have used its answer.
    const resolve = scriptedResolver(['127.0.0.1']);
    const out = await sender(resolve, true).send({ url: `http://only-here.example.test:${rx.port}/hook?x=1`, secret: SECRET }, 'evt_1', PAYLOAD);
    expect(out).toMatchObject({ delivered: true, httpStatus: 200, error: '' });
    expect(out.durationMs).toBeGreaterThanOrEqual(0);
    expect(resolve.asked).toEqual(['only-here.example.test']);
    const hit = rx.hits.at(-1)!;
    expect(hit.host).toBe(`only-here.example.test:${rx.port}`);
    expect(hit.body).toBe(PAYLOAD);
    expect(hit.headers['content-type']).toBe('application/json');
    expect(hit.headers[EVENT_ID_HEADER]).toBe('evt_1');
    expect(verifyWebhookSignature(SECRET, hit.body, hit.headers[SIGNATURE_HEADER] as string)).toBe(true);
  });

  it('reports a receiver error, a redirect (not followed) and a closed port as outcomes', async () => {
    const s = sender(scriptedResolver(['127.0.0.1']), true);
    const target = { url: `http://127.0.0.1:${rx.port}/hook`, secret: SECRET };
    rx.status = 500;
    try {
      expect(await s.send(target, 'evt', PAYLOAD)).toMatchObject({ delivered: false, httpStatus: 500, error: 'HTTP 500' });
      rx.status = 302;
      rx.location = `http://127.0.0.1:${rx.port}/elsewhere`;
      const before = rx.hits.length;
      expect(await s.send(target, 'evt', PAYLOAD)).toMatchObject({ delivered: false, httpStatus: 302, error: 'HTTP 302' });
      expect(rx.hits.slice(before).map((h) => h.headers[EVENT_ID_HEADER])).toEqual(['evt']);
    } finally {
      rx.status = 200;
      rx.location = undefined;
    }
    const closed = await closedPort();
    const out = await s.send({ url: `http://127.0.0.1:${closed}/hook`, secret: SECRET }, 'evt', PAYLOAD);
    expect(out).toMatchObject({ delivered: false, httpStatus: 0 });
    expect(out.error).toContain(`ECONNREFUSED 127.0.0.1:${closed}`);
  });

  it('over https, connects to the checked address but sends the host name as SNI and checks the certificate against it', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'keyward-sender-'));
    const seen: string[] = [];
    const tls = https.createServer(
      {
        ...selfSignedCertificate(dir, 'hooks.example.test'),
        SNICallback: (name, cb) => {
          seen.push(name);
          cb(null);
        },
      },
      (_req, res) => res.end(),
    );
    try {
      await new Promise<void>((r) => tls.listen(0, '127.0.0.1', () => r()));
      const port = (tls.address() as AddressInfo).port;
      const out = await sender(scriptedResolver(['127.0.0.1']), true).send({ url: `https://hooks.example.test:${port}/hook`, secret: SECRET }, 'evt', PAYLOAD);
      // The certificate is not from a trusted authority: verified, and refused.
      expect(out).toMatchObject({ delivered: false, httpStatus: 0 });
      expect(out.error).toMatch(/self[- ]signed certificate/);
      expect(seen).toEqual(['hooks.example.test']);
    } finally {
      await new Promise<void>((r) => tls.close(() => r()));
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

/** A port nothing listens on: one just closed. */
async function closedPort(): Promise<number> {
  const s = http.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

function selfSignedCertificate(dir: string, name: string): { key: Buffer; cert: Buffer } {
  const key = path.join(dir, 'key.pem');
  const cert = path.join(dir, 'cert.pem');
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      key,
      '-out',
      cert,
      '-days',
      '1',
      '-subj',
      `/CN=${name}`,
      '-addext',
      `subjectAltName=DNS:${name}`,
    ],
    { stdio: 'ignore' },
  );
  return { key: readFileSync(key), cert: readFileSync(cert) };
}
