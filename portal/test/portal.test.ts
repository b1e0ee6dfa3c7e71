// The customer portal in a real browser against a real server: the /portal
// page on a portal token, and the @keyward/portal component embedded in a
// host app on another origin (directly, and as an iframe of /portal).
import { once } from 'node:events';
import { mkdirSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { createClient, type Client } from '@connectrpc/connect';
import { createConnectTransport } from '@connectrpc/connect-node';
import { durationFromMs } from '@bufbuild/protobuf/wkt';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { chromiumMissing, launchChromium } from '../../test/support/browser.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Action } from '../../gen/keyward/v1/key_pb.js';
import { KeyService, VerifyCode } from '../../gen/keyward/v1/key_service_pb.js';
import { PortalService } from '../../gen/keyward/v1/portal_service_pb.js';
import { ScopeService } from '../../gen/keyward/v1/scope_service_pb.js';
import { WorkspaceService } from '../../gen/keyward/v1/workspace_service_pb.js';
import { recordSecret, recordText } from '../../test/support/hygiene.js';
import { startTestServer, type TestServer } from '../../test/support/server.js';
import { createHostServer, type HostConfig } from '../example/server.mjs';
import { ensurePortalBuilds, PORTAL_DIR } from './support/build.js';

/** Waits for what the page shows; generous for a loaded 2-core CI machine. */
const poll = <T>(fn: () => Promise<T> | T) => expect.poll(fn, { timeout: 10_000, interval: 50 });
const SHOTS = path.join(PORTAL_DIR, 'test/screenshots');
const missing = !!chromiumMissing('portal browser tests');

describe.skipIf(missing)('customer portal in a browser', () => {
  let ts: TestServer;
  let browser: Browser;
  let hostServer: ReturnType<typeof createHostServer>;
  let hostUrl = '';
  let hostConfig: HostConfig;
  let keys: Client<typeof KeyService>;
  let portal: Client<typeof PortalService>;
  let workspaceId = '';
  let tokenA = '';
  let keyOfB = { id: '', name: 'B’s production key' };
  const CUSTOMER_A = 'cus_alpha';
  const CUSTOMER_B = 'cus_bravo';
  const problems: string[] = [];

  /** A page that fails the test on script errors and CSP violations. */
  async function newPage(viewport = { width: 1280, height: 800 }): Promise<{ context: BrowserContext; page: Page }> {
    const context = await browser.newContext({ viewport, deviceScaleFactor: 1 });
    const page = await context.newPage();
    page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
    page.on('console', (m) => {
      if (m.type() === 'error' && !/status of 40[134] /.test(m.text())) problems.push(`console: ${m.text()}`);
    });
    return { context, page };
  }

  const portalUrl = (token: string) => `${ts.baseUrl}/portal#token=${token}`;

  async function verify(secret: string) {
    return keys.verifyKey({ key: secret, workspaceId });
  }

  async function secretFromDialog(page: Page): Promise<string> {
    const dialog = page.getByRole('dialog', { name: /Save your (new )?API key/ });
    await poll(() => dialog.isVisible()).toBe(true);
    const secret = await dialog.getByLabel(/API key for/).inputValue();
    expect(secret).toMatch(/^acme_/);
    recordSecret(secret);
    return secret;
  }

  function row(page: Page, name: string) {
    return page.locator('tr.kw-row', { has: page.locator('.kw-name', { hasText: name }) });
  }

  beforeAll(async () => {
    ensurePortalBuilds();
    mkdirSync(SHOTS, { recursive: true });

    // The host app's origin must be known before Keyward starts: it goes into KEYWARD_PORTAL_ORIGINS.
    hostServer = createHostServer(() => hostConfig);
    hostServer.listen(0, '127.0.0.1');
    await once(hostServer, 'listening');
    hostUrl = `http://127.0.0.1:${(hostServer.address() as AddressInfo).port}`;

    ts = await startTestServer({ KEYWARD_PORTAL_ORIGINS: hostUrl, KEYWARD_USAGE_FLUSH_MS: '50' });
    const transport = createConnectTransport({
      baseUrl: ts.baseUrl,
      httpVersion: '1.1',
      interceptors: [
        (next) => (req) => {
          req.header.set('authorization', `Bearer ${ts.adminToken}`);
          return next(req);
        },
      ],
    });
    keys = createClient(KeyService, transport);
    const workspaces = createClient(WorkspaceService, transport);
    const scopes = createClient(ScopeService, transport);
    portal = createClient(PortalService, transport);

    const ws = await workspaces.createWorkspace({ workspace: { name: 'Acme API', keyPrefix: 'acme' } });
    workspaceId = ws.workspace!.id;
    for (const name of ['orders', 'invoices', 'admin']) {
      await scopes.createScope({ scope: { workspaceId, name, description: `${name} of the Acme API` } });
    }
    // A scope with actions of its own: inference:read, inference:write.
    await scopes.createScope({ scope: { workspaceId, name: 'inference', actions: ['read', 'write'] } });
    const allowedGrants = [
      { scope: 'orders', actions: [Action.READ, Action.CREATE] },
      { scope: 'invoices', actions: [Action.READ] },
    ];
    const session = async (customerId: string) => {
      const s = await portal.createPortalSession({ workspaceId, customerId, allowedGrants, ttl: durationFromMs(15 * 60_000) });
      recordSecret(s.token);
      return s.token;
    };
    tokenA = await session(CUSTOMER_A);
    hostConfig = {
      keywardUrl: ts.baseUrl,
      sdkKey: ts.adminToken,
      workspaceId,
      customerId: CUSTOMER_A,
      allowedGrants: ['orders:read', 'orders:create', 'invoices:read'],
    };

    // B's key, made by the company's backend: A must never see or reach it.
    const b = await keys.createKey({
      key: { workspaceId, customerId: CUSTOMER_B, name: keyOfB.name, grants: [{ scope: 'orders', actions: [Action.READ] }] },
    });
    keyOfB = { id: b.key!.id, name: b.key!.name };
    // A's existing key, used a few times so that its usage chart has bars.
    const a = await keys.createKey({
      key: {
        workspaceId,
        customerId: CUSTOMER_A,
        name: 'Production server',
        description: 'Checkout service, eu-west-1',
        grants: [
          { scope: 'orders', actions: [Action.READ, Action.CREATE] },
          { scope: 'invoices', actions: [Action.READ] },
        ],
      },
    });
    for (let i = 0; i < 12; i++) await keys.verifyKey({ key: a.secret, workspaceId, requiredPermissions: i % 4 === 3 ? ['admin:read'] : [] });

    browser = await launchChromium();
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    if (hostServer?.listening) {
      hostServer.closeAllConnections();
      await new Promise((r) => hostServer.close(r));
    }
    await ts?.close();
    for (const p of problems) recordText('portal-browser-problem', p);
  });

  it('opens /portal#token=..., drops the token from the URL and lists only A’s keys', async () => {
    const { context, page } = await newPage();
    await page.goto(portalUrl(tokenA));
    await poll(() => row(page, 'Production server').count()).toBe(1);
    expect(page.url()).not.toContain('#');
    expect(page.url()).not.toContain(tokenA);
    expect(await page.evaluate(() => location.hash)).toBe('');
    // B's key is not listed.
    expect(await page.getByText(keyOfB.name).count()).toBe(0);
    await poll(() => page.locator('.kw-footer').textContent()).toContain(CUSTOMER_A);

    // A reload keeps the session (sessionStorage), still without a token in the URL.
    await page.reload();
    await poll(() => row(page, 'Production server').count()).toBe(1);
    expect(page.url()).not.toContain(tokenA);
    await page.screenshot({ path: path.join(SHOTS, 'portal-desktop.png') });
    await context.close();
  });

  it('A creates a key within the allowed grants; the secret is shown once and verifies as A’s', async () => {
    const { context, page } = await newPage();
    await page.goto(portalUrl(tokenA));
    await page.getByRole('button', { name: 'Create key' }).click();
    const form = page.getByRole('dialog', { name: 'Create API key' });
    await form.getByLabel('Name').fill('Reporting job');
    await form.getByLabel('Description').fill('Nightly export to the warehouse');
    // Exactly the allowed grants are offered: nothing on `admin`, no orders:update.
    const offered = await form.locator('input[name="permission"]').evaluateAll((els) => els.map((e) => (e as HTMLInputElement).value));
    expect(offered.sort()).toEqual(['invoices:read', 'orders:create', 'orders:read']);
    await form.getByLabel('orders:read').check();
    await form.getByLabel('invoices:read').check();
    await form.getByText('90 days').click();
    await page.screenshot({ path: path.join(SHOTS, 'portal-create-dialog.png') });
    await form.getByRole('button', { name: 'Create key' }).click();

    const secret = await secretFromDialog(page);
    await page.screenshot({ path: path.join(SHOTS, 'portal-secret-dialog.png') });
    // The copy button puts exactly the secret on the clipboard.
    await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: ts.baseUrl });
    await page.getByRole('button', { name: 'Copy' }).click();
    await poll(() => page.getByRole('button', { name: 'Copied' }).count()).toBe(1);
    expect(await page.evaluate(() => navigator.clipboard.readText())).toBe(secret);
    const v = await verify(secret);
    expect(VerifyCode[v.code]).toBe('VALID');
    expect(v.customerId).toBe(CUSTOMER_A);
    expect([...v.permissions].sort()).toEqual(['invoices:read', 'orders:read']);
    expect(v.expireTime).toBeDefined();

    // Escape closes the dialog, and the secret is gone from the page for good.
    await page.keyboard.press('Escape');
    await poll(() => page.getByRole('dialog').count()).toBe(0);
    const html = await page.content();
    expect(html).not.toContain(secret);
    const r = row(page, 'Reporting job');
    await poll(() => r.count()).toBe(1);
    expect(await r.locator('.kw-badge').textContent()).toBe('Active');
    expect(await r.locator('.kw-key').textContent()).toMatch(new RegExp(`^acme_\\*+${secret.slice(-4)}$`));
    await context.close();
  });

  it('A edits, rotates, revokes and deletes its key and sees each change', async () => {
    const { context, page } = await newPage();
    await page.goto(portalUrl(tokenA));
    const r = () => row(page, 'Reporting job');
    await poll(() => r().count()).toBe(1);

    // Edit the name.
    await r()
      .getByRole('button', { name: /^Manage/ })
      .click();
    await page
      .getByRole('group', { name: /Actions for/ })
      .getByRole('button', { name: 'Edit' })
      .click();
    const edit = page.getByRole('dialog', { name: 'Edit API key' });
    await edit.getByLabel('Name').fill('Reporting job (nightly)');
    await edit.getByRole('button', { name: 'Save' }).click();
    await poll(() => row(page, 'Reporting job (nightly)').count()).toBe(1);
    const r2 = () => row(page, 'Reporting job (nightly)');

    // Rotate with no grace period: a new secret, shown once; the old one stops at once.
    const before = await keys.listKeys({ workspaceId, customerId: CUSTOMER_A });
    const id = before.keys.find((k) => k.name === 'Reporting job (nightly)')!.id;
    await page
      .getByRole('group', { name: /Actions for/ })
      .getByRole('button', { name: 'Rotate' })
      .click();
    const rotate = page.getByRole('dialog', { name: 'Rotate API key' });
    await rotate.getByLabel(/Immediately/).check();
    await rotate.getByRole('button', { name: 'Rotate key' }).click();
    const rotated = await secretFromDialog(page);
    const v = await verify(rotated);
    expect(VerifyCode[v.code]).toBe('VALID');
    expect(v.keyId).toBe(id);
    await page.getByRole('button', { name: 'I have saved it' }).click();

    // Revoke, confirmed: the badge says so and the key stops verifying.
    await page
      .getByRole('group', { name: /Actions for/ })
      .getByRole('button', { name: 'Revoke' })
      .click();
    const confirm = page.getByRole('alertdialog', { name: 'Revoke API key' });
    await confirm.getByRole('button', { name: 'Revoke key' }).click();
    await poll(() => r2().locator('.kw-badge').textContent()).toBe('Revoked');
    expect(VerifyCode[(await verify(rotated)).code]).toBe('REVOKED');
    await poll(() => page.getByRole('status').textContent()).toContain('revoked');
    await page.screenshot({ path: path.join(SHOTS, 'portal-revoked.png') });

    // Delete, confirmed: the row goes, and so does the key.
    await page
      .getByRole('group', { name: /Actions for/ })
      .getByRole('button', { name: 'Delete' })
      .click();
    await page.getByRole('alertdialog', { name: 'Delete API key' }).getByRole('button', { name: 'Delete key' }).click();
    await poll(() => r2().count()).toBe(0);
    expect(VerifyCode[(await verify(rotated)).code]).toBe('NOT_FOUND');
    await context.close();
  });

  it('shows a key’s usage of the last 24 hours', async () => {
    const { context, page } = await newPage();
    await page.goto(portalUrl(tokenA));
    const r = row(page, 'Production server');
    await poll(() => r.count()).toBe(1);
    await r.getByRole('button', { name: /^Manage/ }).click();
    const chart = page.locator('.kw-usage-bars');
    await poll(() => chart.getAttribute('aria-label')).toMatch(/12 verifications/);
    expect(await chart.getAttribute('aria-label')).toMatch(/9 valid, 3 missing permission/);
    expect(await page.locator('.kw-usage-seg').count()).toBeGreaterThan(0);
    await page.screenshot({ path: path.join(SHOTS, 'portal-usage.png') });
    await context.close();
  });

  it('A cannot reach B’s key by id, even by editing its own requests', async () => {
    const { context, page } = await newPage();
    await page.goto(portalUrl(tokenA));
    await poll(() => row(page, 'Production server').count()).toBe(1);
    const results = await page.evaluate(
      async ({ token, idOfB, ws }) => {
        const call = async (method: string, body: unknown) => {
          const res = await fetch(`/keyward.v1.KeyService/${method}`, {
            method: 'POST',
            headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
            body: JSON.stringify(body),
          });
          return { status: res.status, body: await res.json() };
        };
        return {
          get: await call('GetKey', { id: idOfB }),
          revoke: await call('RevokeKey', { id: idOfB }),
          update: await call('UpdateKey', { key: { id: idOfB, name: 'mine now' }, updateMask: 'name' }),
          usage: await fetch('/keyward.v1.UsageService/GetKeyUsage', {
            method: 'POST',
            headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
            body: JSON.stringify({ keyId: idOfB, startTime: new Date(Date.now() - 86_400_000).toISOString() }),
          }).then(async (r) => ({ status: r.status, body: await r.json() })),
          listOfB: await call('ListKeys', { workspaceId: ws, customerId: 'cus_bravo' }),
        };
      },
      { token: tokenA, idOfB: keyOfB.id, ws: workspaceId },
    );
    for (const k of ['get', 'revoke', 'update', 'usage'] as const) {
      expect(results[k].status, k).toBe(404);
      expect(results[k].body.code, k).toBe('not_found');
    }
    // Asking for B's list either fails or yields none of B's keys.
    const listed = (results.listOfB.body.keys ?? []) as { id: string }[];
    expect(listed.map((k) => k.id)).not.toContain(keyOfB.id);
    const still = await keys.getKey({ id: keyOfB.id });
    expect(still.key!.name).toBe(keyOfB.name);
    await context.close();
  });

  it('is readable at 360 px', async () => {
    const { context, page } = await newPage({ width: 360, height: 780 });
    await page.goto(portalUrl(tokenA));
    await poll(() => row(page, 'Production server').count()).toBe(1);
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    expect(overflow).toBeLessThanOrEqual(0);
    await page.screenshot({ path: path.join(SHOTS, 'portal-mobile.png'), fullPage: true });
    await page.getByRole('button', { name: 'Create key' }).click();
    await page.getByRole('dialog', { name: 'Create API key' }).getByLabel('Name').fill('Phone');
    await page.screenshot({ path: path.join(SHOTS, 'portal-mobile-create.png') });
    await context.close();
  });

  it('offers the custom actions and whole scopes a session allows, and shows permissions as strings', async () => {
    const CUSTOMER_C = 'cus_charlie';
    const s = await portal.createPortalSession({
      workspaceId,
      customerId: CUSTOMER_C,
      allowedGrants: [
        { scope: 'inference', actions: [Action.READ], customActions: ['write'] },
        { scope: 'admin', allActions: true },
      ],
      ttl: durationFromMs(15 * 60_000),
    });
    recordSecret(s.token);
    const { context, page } = await newPage();
    await page.goto(portalUrl(s.token));
    await poll(() => page.getByText('No API keys yet').count()).toBeGreaterThan(0);
    await page.getByRole('button', { name: 'Create key' }).first().click();
    const form = page.getByRole('dialog', { name: 'Create API key' });
    await form.getByLabel('Name').fill('Model runner');
    // What the session allows, and only that: the scope's own action, and admin as a whole.
    const offered = await form.locator('input[name="permission"]').evaluateAll((els) => els.map((e) => (e as HTMLInputElement).value));
    expect(offered).toEqual(['inference:read', 'inference:write', 'admin']);
    await form.getByLabel('inference:write').check();
    await form.getByLabel('admin (all actions)').check();
    await page.screenshot({ path: path.join(SHOTS, 'portal-custom-create.png') });
    await form.getByRole('button', { name: 'Create key' }).click();
    const secret = await secretFromDialog(page);
    const v = await keys.verifyKey({ key: secret, workspaceId, requiredPermissions: ['inference:write', 'admin:delete'] });
    expect(VerifyCode[v.code]).toBe('VALID');
    expect([...v.permissions].sort()).toEqual(['admin', 'inference:write']);
    expect(v.customerId).toBe(CUSTOMER_C);
    await page.getByRole('button', { name: 'I have saved it' }).click();

    const r = row(page, 'Model runner');
    await poll(() => r.count()).toBe(1);
    expect(await r.locator('.kw-chip').allTextContents()).toEqual(['admin', 'inference:write']);
    await r.getByRole('button', { name: /^Manage/ }).click();
    await page.screenshot({ path: path.join(SHOTS, 'portal-custom-keys.png') });

    // At 360 px: the same, without sideways scrolling.
    await page.setViewportSize({ width: 360, height: 780 });
    await poll(() => r.evaluate((el) => getComputedStyle(el).display)).toBe('grid');
    expect(await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth)).toBeLessThanOrEqual(0);
    await page.screenshot({ path: path.join(SHOTS, 'portal-custom-mobile.png'), fullPage: true });
    await page.getByRole('button', { name: 'Create key' }).click();
    await page.getByRole('dialog', { name: 'Create API key' }).getByLabel('admin (all actions)').check();
    await page.screenshot({ path: path.join(SHOTS, 'portal-custom-mobile-create.png') });
    await context.close();
  });

  it('is usable by keyboard: dialogs take focus, Escape closes them, focus returns', async () => {
    const { context, page } = await newPage();
    await page.goto(portalUrl(tokenA));
    await poll(() => row(page, 'Production server').count()).toBe(1);
    const createButton = page.getByRole('button', { name: 'Create key' });
    await createButton.focus();
    await page.keyboard.press('Enter');
    const focused = () => page.evaluate(() => document.activeElement?.getAttribute('aria-label') ?? document.activeElement?.id ?? '');
    await poll(() =>
      page
        .getByRole('dialog', { name: 'Create API key' })
        .getByLabel('Name')
        .evaluate((e) => e === document.activeElement),
    ).toBe(true);
    await page.keyboard.type('Keyboard key');
    await page.keyboard.press('Tab'); // description
    await page.keyboard.press('Tab'); // first permission
    expect(await focused()).toBe('orders:read');
    await page.keyboard.press('Space');
    expect(await page.getByLabel('orders:read').isChecked()).toBe(true);
    await page.keyboard.press('Escape');
    await poll(() => page.getByRole('dialog').count()).toBe(0);
    expect(await createButton.evaluate((e) => e === document.activeElement)).toBe(true);

    // The row's disclosure opens with Enter and says so.
    const manage = row(page, 'Production server').getByRole('button', { name: /^Manage/ });
    await manage.focus();
    await page.keyboard.press('Enter');
    expect(await manage.getAttribute('aria-expanded')).toBe('true');
    await poll(() => page.getByRole('group', { name: /Actions for Production server/ }).isVisible()).toBe(true);
    await context.close();
  });

  it('an unknown or expired token shows that the session has expired', async () => {
    const { context, page } = await newPage();
    await page.goto(portalUrl('kwp_notarealtokenatall0000000000000000'));
    await poll(() => page.getByRole('alert').textContent()).toContain('Your session has expired');
    expect(page.url()).not.toContain('kwp_');
    await page.screenshot({ path: path.join(SHOTS, 'portal-expired.png') });
    // The refused token is forgotten: a reload does not retry it.
    await page.reload();
    await poll(() => page.getByRole('alert').textContent()).toContain('No key management session');
    expect(await page.evaluate(() => sessionStorage.length)).toBe(0);
    await context.close();
  });

  it('embeds in a host app on another origin (CORS) with the library build', async () => {
    const { context, page } = await newPage({ width: 1280, height: 860 });
    const crossOrigin: string[] = [];
    page.on('request', (r) => {
      if (r.url().startsWith(ts.baseUrl)) crossOrigin.push(r.url());
    });
    await page.goto(`${hostUrl}/`);
    await poll(() => row(page, 'Production server').count()).toBe(1);
    expect(await page.getByText(keyOfB.name).count()).toBe(0);
    expect(crossOrigin.some((u) => u.endsWith('/keyward.v1.KeyService/ListKeys'))).toBe(true);
    // The host's theme reaches the component through the CSS variables.
    const accent = await page.getByRole('button', { name: 'Create key' }).evaluate((b) => getComputedStyle(b).backgroundColor);
    expect(accent).toBe('rgb(15, 118, 110)');
    await page.screenshot({ path: path.join(SHOTS, 'embedded-host.png') });
    // The component follows its container's width: in the host's narrow layout it becomes cards.
    await page.setViewportSize({ width: 360, height: 780 });
    await poll(() => row(page, 'Production server').evaluate((r) => getComputedStyle(r).display)).toBe('grid');
    expect(await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth)).toBeLessThanOrEqual(0);
    await page.screenshot({ path: path.join(SHOTS, 'embedded-host-mobile.png'), fullPage: true });
    await context.close();
  });

  it('frames /portal from the host app (frame-ancestors allows the configured origin)', async () => {
    const { context, page } = await newPage({ width: 1280, height: 860 });
    await page.goto(`${hostUrl}/iframe.html`);
    const frame = page.frameLocator('#keyward-portal');
    await poll(() => frame.locator('tr.kw-row', { hasText: 'Production server' }).count()).toBe(1);
    await page.screenshot({ path: path.join(SHOTS, 'embedded-iframe.png') });
    await context.close();
  });

  it('saw no script errors or CSP violations', () => {
    expect(problems).toEqual([]);
  });
});
