// The operator console in a real browser (Debian's chromium driven by
// playwright-core) against a real Keyward server: what an operator does,
// from sign-in to revocation, and the once-only secret dialog.
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { KeyService, VerifyCode } from '../../gen/keyward/v1/key_service_pb.js';
import { ScopeService } from '../../gen/keyward/v1/scope_service_pb.js';
import { WorkspaceService } from '../../gen/keyward/v1/workspace_service_pb.js';
import { Action } from '../../gen/keyward/v1/key_pb.js';
import { WebhookService } from '../../gen/keyward/v1/webhook_service_pb.js';
import { client, startTestServer, type TestServer } from '../../test/support/server.js';
import { recordSecret, recordText } from '../../test/support/hygiene.js';
import { chromiumMissing, launchChromium } from '../../test/support/browser.js';

const consoleDir = fileURLToPath(new URL('..', import.meta.url));
const shots = path.join(consoleDir, 'test', 'screenshots');

const missing = chromiumMissing('console browser tests');

/** A screenshot for people to look at: without the passing toasts. */
async function shot(page: Page, name: string, fullPage = false): Promise<void> {
  // Through the CSSOM: the page's CSP refuses injected <style> elements.
  const toasts = (visibility: string) =>
    page.evaluate((v) => document.querySelectorAll<HTMLElement>('.toasts').forEach((t) => (t.style.visibility = v)), visibility);
  await toasts('hidden');
  await page.screenshot({ path: path.join(shots, name), fullPage, animations: 'disabled' });
  await toasts('');
}

/** Elements reaching past the right edge, except inside table scrollers (which scroll in their own box). */
function overflowingOf(page: Page): Promise<string[]> {
  return page.evaluate(() => {
    const width = document.documentElement.clientWidth;
    const out: string[] = [];
    for (const el of document.querySelectorAll<HTMLElement>('body *')) {
      if (el.closest('.table-scroll')) continue;
      const r = el.getBoundingClientRect();
      if (r.width > 0 && r.right > width + 0.5) out.push(`${el.tagName}.${el.className}: ${Math.round(r.right)}`);
    }
    if (document.documentElement.scrollWidth > width) out.push(`document: ${document.documentElement.scrollWidth}`);
    return out;
  });
}

describe.skipIf(!!missing)('operator console', () => {
  let ts: TestServer;
  let browser: Browser;
  const errors: string[] = [];

  beforeAll(async () => {
    mkdirSync(shots, { recursive: true });
    ts = await startTestServer({ KEYWARD_USAGE_FLUSH_MS: '100' });
    browser = await launchChromium();
  });

  afterAll(async () => {
    await browser?.close();
    await ts?.close();
  });

  async function newPage(width: number, height = 900): Promise<{ context: BrowserContext; page: Page }> {
    const context = await browser.newContext({ viewport: { width, height }, baseURL: ts.baseUrl });
    await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: ts.baseUrl });
    const page = await context.newPage();
    page.setDefaultTimeout(10_000);
    // What the page logs is scanned for secrets like every server log; errors fail the test.
    page.on('console', (m) => {
      recordText('console-browser-log', m.text());
      if (m.type() === 'error' && !/status of (4\d\d)/.test(m.text())) errors.push(m.text());
    });
    page.on('pageerror', (e) => errors.push(e.message));
    return { context, page };
  }

  async function signIn(page: Page, token: string): Promise<void> {
    await page.goto('/console/');
    await page.getByLabel('SDK key').fill(token);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { name: 'Workspaces', level: 1 }).waitFor();
  }

  it('walks an operator through workspaces, scopes, a key, its secret, rotation, usage and revocation', async () => {
    const keys = client(KeyService, ts);
    const { context, page } = await newPage(1280);
    await signIn(page, ts.adminToken);
    expect(page.url()).not.toContain('kws_');

    // A workspace.
    await page.getByRole('button', { name: 'New workspace' }).click();
    let dialog = page.getByRole('dialog');
    await dialog.getByLabel('Name').fill('Acme production');
    await dialog.getByLabel('Key prefix').fill('acme');
    await page.getByRole('button', { name: 'Create workspace' }).click();
    await page.getByRole('heading', { name: 'Acme production' }).waitFor();

    // A scope.
    await page.getByRole('link', { name: 'Scopes' }).click();
    await page.getByRole('button', { name: 'New scope' }).click();
    dialog = page.getByRole('dialog');
    // A name the server refuses: its code and message are shown, the dialog stays.
    await dialog.getByLabel('Name').fill('Balance Transfers');
    await dialog.getByRole('button', { name: 'Create scope' }).click();
    const refusal = dialog.getByRole('alert');
    await refusal.waitFor();
    expect(await refusal.textContent()).toContain('INVALID_ARGUMENT');
    await shot(page, 'error.png');
    await dialog.getByLabel('Name').fill('balance_transfers');
    await dialog.getByLabel('Description').fill('Move money between balances');
    await page.getByRole('button', { name: 'Create scope' }).click();
    await page.getByRole('cell', { name: 'balance_transfers', exact: true }).waitFor();

    // A key with a grant, its secret shown once.
    await page.getByRole('link', { name: 'API keys' }).click();
    await page.getByRole('button', { name: 'Create key' }).click();
    dialog = page.getByRole('dialog');
    await dialog.getByLabel('Name', { exact: true }).fill('Production server');
    await dialog.getByLabel('Customer ID').fill('cus_1001');
    await dialog.getByLabel('balance_transfers:read').check();
    await dialog.getByLabel('balance_transfers:create').check();
    await dialog.getByLabel('Expires', { exact: true }).selectOption('90');
    await shot(page, 'create-key-form.png');
    await dialog.getByRole('button', { name: 'Create key', exact: true }).click();
    const secretBox = page.locator('[data-secret]');
    await secretBox.waitFor();
    const secret = await secretBox.inputValue();
    expect(secret).toMatch(/^acme_[0-9A-Za-z]{40,}$/);
    expect(await page.getByRole('dialog').textContent()).toContain('shown only once');
    const copy = page.getByRole('button', { name: 'Copy secret to clipboard' });
    expect(await copy.isVisible()).toBe(true);
    await copy.click();
    await page.getByText('Copied to the clipboard.').waitFor();
    const copied = await page.evaluate(() => navigator.clipboard.readText());
    expect(copied).toBe(secret);
    await shot(page, 'create-key-secret.png');

    const verified = await keys.verifyKey({ key: copied, requiredPermissions: ['balance_transfers:read'] });
    expect(verified.code).toBe(VerifyCode.VALID);
    expect(verified.customerId).toBe('cus_1001');

    await page.getByRole('button', { name: 'I have saved it' }).click();
    await page.locator('[data-secret]').waitFor({ state: 'detached' });
    expect(await page.content()).not.toContain(secret);
    const stored = await page.evaluate(() => JSON.stringify({ ...sessionStorage }) + JSON.stringify({ ...localStorage }) + document.cookie);
    expect(stored).not.toContain(secret);

    const row = page.getByRole('row', { name: /Production server/ });
    await row.waitFor();
    expect(await row.textContent()).toContain('cus_1001');
    expect(await row.textContent()).toContain('balance_transfers:read');
    expect(await row.getByText('Active').isVisible()).toBe(true);
    await shot(page, 'keys-list.png');

    // Some traffic, then the key's page shows it as stacked bars.
    for (let i = 0; i < 4; i++) await keys.verifyKey({ key: secret, requiredPermissions: ['balance_transfers:read'] });
    await keys.verifyKey({ key: secret, requiredPermissions: ['balance_transfers:delete'] });
    await row.getByRole('link', { name: 'Production server' }).click();
    await page.getByRole('heading', { name: /Production server/ }).waitFor();
    // Counts reach the database within KEYWARD_USAGE_FLUSH_MS: refresh until all six are there.
    const chart = page.getByRole('img', { name: /Valid: 5\b/ }).and(page.getByRole('img', { name: /Insufficient permissions: 1\b/ }));
    for (let i = 0; i < 40 && (await chart.count()) === 0; i++) {
      await page.waitForTimeout(250);
      await page.getByRole('button', { name: 'Refresh' }).click();
    }
    expect(await chart.count()).toBe(1);
    expect(await page.locator('[data-testid=usage-chart] .recharts-bar-rectangle path').count()).toBeGreaterThan(0);
    // The audit trail names the creation.
    await page.getByText('key.create').first().waitFor();

    // Rotate with a grace period: a new secret, once; the old one still verifies for now.
    await page.getByRole('button', { name: 'Rotate' }).click();
    await page.getByLabel('Grace period for the old secret').selectOption({ label: '1 hour' });
    await page.getByRole('button', { name: 'Rotate key' }).click();
    await page.locator('[data-secret]').waitFor();
    const rotated = await page.locator('[data-secret]').inputValue();
    expect(rotated).not.toBe(secret);
    expect((await keys.verifyKey({ key: rotated })).code).toBe(VerifyCode.VALID);
    expect((await keys.verifyKey({ key: secret })).code).toBe(VerifyCode.VALID);
    await page.keyboard.press('Escape');
    await page.locator('[data-secret]').waitFor({ state: 'detached' });
    expect(await page.content()).not.toContain(rotated);
    await page.getByText('key.rotate').first().waitFor();
    await shot(page, 'key-page.png', true);

    // Revoke, confirmed: the page and the table say REVOKED, and so does VerifyKey.
    await page.getByRole('button', { name: 'Revoke', exact: true }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Revoke key' }).click();
    await page
      .getByRole('heading', { name: /Production server/ })
      .getByText('Revoked')
      .waitFor();
    expect((await keys.verifyKey({ key: rotated })).code).toBe(VerifyCode.REVOKED);
    await page.getByRole('link', { name: '← API keys' }).click();
    await page
      .getByRole('row', { name: /Production server/ })
      .getByText('Revoked')
      .waitFor();

    // Workspaces list, the audit log and (when the server has it) SDK keys.
    await page.getByRole('link', { name: 'Workspaces', exact: true }).click();
    await page.getByRole('cell', { name: 'Acme production', exact: true }).waitFor();
    await shot(page, 'workspaces.png');
    await page.getByRole('link', { name: 'Audit log' }).click();
    await page.getByText('key.revoke').first().waitFor();
    await shot(page, 'audit-log.png');
    {
      await page.getByRole('link', { name: 'SDK keys' }).click();
      await page.getByRole('button', { name: 'New SDK key' }).click();
      dialog = page.getByRole('dialog');
      await dialog.getByLabel('Name').fill('edge-gateway');
      await dialog.getByRole('checkbox', { name: /api_keys:verify/ }).check();
      await shot(page, 'sdk-key-form.png');
      await page.getByRole('button', { name: 'Create SDK key' }).click();
      const token = await page.locator('[data-secret]').inputValue();
      expect(token).toMatch(/^kws_/);
      recordSecret(token);
      await page.getByRole('button', { name: 'I have saved it' }).click();
      await page.getByRole('row', { name: /edge-gateway/ }).waitFor();
      expect(await page.content()).not.toContain(token);
      await shot(page, 'sdk-keys.png');
    }

    // Deleting a workspace asks for its name first.
    await page.getByRole('link', { name: 'Workspaces', exact: true }).click();
    await page.getByRole('button', { name: 'Delete Acme production' }).click();
    dialog = page.getByRole('dialog');
    const confirm = dialog.getByRole('button', { name: 'Delete workspace' });
    expect(await confirm.isDisabled()).toBe(true);
    await dialog.getByLabel('Type Acme production to confirm').fill('Acme');
    expect(await confirm.isDisabled()).toBe(true);
    await dialog.getByLabel('Type Acme production to confirm').fill('Acme production');
    await confirm.click();
    await page.getByText('No workspaces yet').waitFor();

    // Sign out forgets the SDK key.
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByRole('heading', { name: 'Sign in to the console' }).waitFor();
    expect(await page.evaluate(() => sessionStorage.length)).toBe(0);
    await page.reload();
    await page.getByRole('heading', { name: 'Sign in to the console' }).waitFor();
    expect(errors).toEqual([]);
    await context.close();
  }, 50_000);

  it('fits a 360 px screen: only the table scrolls sideways', async () => {
    const ws = (await client(WorkspaceService, ts).createWorkspace({ workspace: { name: 'Narrow', keyPrefix: 'nr' } })).workspace!;
    await client(ScopeService, ts).createScope({ scope: { workspaceId: ws.id, name: 'invoices' } });
    const keys = client(KeyService, ts);
    for (const [name, customerId] of [
      ['Mobile app', 'cus_2001'],
      ['Reporting job with a long name', 'cus_2002'],
    ]) {
      await keys.createKey({ key: { workspaceId: ws.id, name, customerId, grants: [{ scope: 'invoices', actions: [Action.READ, Action.UPDATE] }] } });
    }
    const { context, page } = await newPage(360, 740);
    await signIn(page, ts.adminToken);
    const overflowing = () => overflowingOf(page);
    expect(await overflowing()).toEqual([]);
    await shot(page, 'workspaces-360px.png', true);
    const keyId = (await keys.listKeys({ workspaceId: ws.id })).keys[0]!.id;
    await page.goto(`/console/#/keys/${keyId}`);
    await page.getByRole('heading', { name: 'Details' }).waitFor();
    expect(await overflowing()).toEqual([]);
    await shot(page, 'key-page-360px.png', true);
    await page.goto(`/console/#/workspaces/${ws.id}/webhook`);
    await page.getByLabel('Endpoint URL').waitFor();
    expect(await overflowing()).toEqual([]);
    await shot(page, 'webhook-360px.png', true);
    await page.goto(`/console/#/workspaces/${ws.id}/keys`);
    await page.getByRole('row', { name: /Mobile app/ }).waitFor();
    expect(await overflowing()).toEqual([]);
    // The table itself is wider than the screen and scrolls in its own box.
    const scroller = await page.locator('.table-scroll').evaluate((el) => ({ scroll: el.scrollWidth, client: el.clientWidth }));
    expect(scroller.scroll).toBeGreaterThan(scroller.client);
    // A named region, in the tab order while it scrolls: keyboard users scroll it with the arrow keys.
    expect(await page.getByRole('region', { name: 'API keys' }).getAttribute('tabindex')).toBe('0');
    await shot(page, 'keys-360px.png', true);

    // A key without workspace:write sees no way to create workspaces (the server would refuse anyway).
    {
      const reader = await ts.sdkKey(['workspace:read', 'api_keys:read']);
      await page.getByRole('button', { name: 'Sign out' }).click();
      await signIn(page, reader);
      expect(await page.getByRole('button', { name: 'New workspace' }).count()).toBe(0);
      expect(await page.getByRole('link', { name: 'SDK keys' }).count()).toBe(0);
    }
    expect(errors).toEqual([]);
    await context.close();
  }, 30_000);

  it('grants the actions a scope declares, and whole scopes, shown as permission strings', async () => {
    const keys = client(KeyService, ts);
    const ws = (await client(WorkspaceService, ts).createWorkspace({ workspace: { name: 'Models', keyPrefix: 'md' } })).workspace!;
    await client(ScopeService, ts).createScope({ scope: { workspaceId: ws.id, name: 'admin', description: 'Everything else' } });
    const { context, page } = await newPage(1280);
    await signIn(page, ts.adminToken);

    // A scope with its own actions, made in the UI; the list shows each scope's actions.
    await page.goto(`/console/#/workspaces/${ws.id}/scopes`);
    await page.getByRole('cell', { name: 'admin', exact: true }).waitFor();
    await page.getByRole('button', { name: 'New scope' }).click();
    let dialog = page.getByRole('dialog');
    await dialog.getByLabel('Name').fill('inference');
    await dialog.getByLabel('Actions').fill('read, write');
    await dialog.getByLabel('Description').fill('Model inference');
    await shot(page, 'scope-form-actions.png');
    await dialog.getByRole('button', { name: 'Create scope' }).click();
    await page.getByRole('cell', { name: 'inference', exact: true }).waitFor();
    const actionsOf = (scope: string) =>
      page
        .getByRole('list', { name: `Actions of ${scope}` })
        .getByRole('listitem')
        .allTextContents();
    expect(await actionsOf('inference')).toEqual(['read', 'write']);
    expect(await actionsOf('admin')).toEqual(['read', 'create', 'update', 'delete']);
    await shot(page, 'scopes.png');
    // The table fits: its scroll box is no tab stop.
    await expect.poll(() => page.getByRole('region', { name: 'Scopes' }).getAttribute('tabindex')).toBeNull();

    // A key with inference:write and the whole admin scope, picked from what each scope declares.
    await page.getByRole('link', { name: 'API keys' }).click();
    await page.getByRole('button', { name: 'Create key' }).click();
    dialog = page.getByRole('dialog');
    await dialog.getByLabel('Name', { exact: true }).fill('Model runner');
    expect(await dialog.getByLabel('inference:create').count()).toBe(0);
    await dialog.getByLabel('inference:write').check();
    await dialog.getByLabel('admin (whole scope)').check();
    // The whole scope includes its actions: they show checked and cannot be picked one by one.
    expect(await dialog.getByLabel('admin:delete').isChecked()).toBe(true);
    expect(await dialog.getByLabel('admin:delete').isDisabled()).toBe(true);
    expect(await dialog.getByTestId('granted').locator('code').allTextContents()).toEqual(['admin', 'inference:write']);
    await shot(page, 'create-key-permissions.png');
    await dialog.getByRole('button', { name: 'Create key', exact: true }).click();
    const secret = await page.locator('[data-secret]').inputValue();
    recordSecret(secret);
    const verified = await keys.verifyKey({ key: secret, requiredPermissions: ['inference:write', 'admin:delete', 'admin'] });
    expect(verified.code).toBe(VerifyCode.VALID);
    expect([...verified.permissions].sort()).toEqual(['admin', 'inference:write']);
    expect((await keys.verifyKey({ key: secret, requiredPermissions: ['inference:read'] })).code).toBe(VerifyCode.INSUFFICIENT_PERMISSIONS);
    await page.getByRole('button', { name: 'I have saved it' }).click();

    const row = page.getByRole('row', { name: /Model runner/ });
    // The list reloads after the dialog closes: wait for the new row.
    await expect.poll(() => row.locator('.perm-list code').allTextContents()).toEqual(['admin', 'inference:write']);
    await row.getByRole('link', { name: 'Model runner' }).click();
    await page.getByRole('heading', { name: /Model runner/ }).waitFor();
    const details = page.locator('.card', { has: page.getByRole('heading', { name: 'Details' }) }).locator('.perm-list code');
    await expect.poll(() => details.allTextContents()).toEqual(['admin', 'inference:write']);
    await shot(page, 'key-page-permissions.png');

    // Editing the key replaces its permissions: the whole scope traded for one action.
    await page.getByRole('button', { name: 'Edit', exact: true }).click();
    dialog = page.getByRole('dialog');
    expect(await dialog.getByLabel('inference:write').isChecked()).toBe(true);
    expect(await dialog.getByLabel('admin (whole scope)').isChecked()).toBe(true);
    await dialog.getByLabel('admin (whole scope)').uncheck();
    await dialog.getByLabel('admin:read').check();
    await dialog.getByRole('button', { name: 'Save changes' }).click();
    await expect.poll(() => details.allTextContents()).toEqual(['admin:read', 'inference:write']);
    expect((await keys.getKey({ id: verified.keyId })).key!.scopes).toEqual(['admin:read', 'inference:write']);

    // Removing an action a live key still has: the server's FAILED_PRECONDITION, shown in the dialog.
    await page.goto(`/console/#/workspaces/${ws.id}/scopes`);
    await page.getByRole('button', { name: 'Edit scope inference' }).click();
    dialog = page.getByRole('dialog');
    expect(await dialog.getByLabel('Actions').inputValue()).toBe('read, write');
    await dialog.getByLabel('Actions').fill('read');
    await dialog.getByRole('button', { name: 'Save' }).click();
    const refusal = dialog.getByRole('alert');
    await refusal.waitFor();
    expect(await refusal.textContent()).toContain('FAILED_PRECONDITION');
    expect(await refusal.textContent()).toContain('inference:write is still granted');
    await shot(page, 'scope-action-in-use.png');
    // Adding one is fine.
    await dialog.getByLabel('Actions').fill('read, write, stream');
    await dialog.getByRole('button', { name: 'Save' }).click();
    await expect.poll(() => actionsOf('inference')).toEqual(['read', 'write', 'stream']);
    await context.close();

    // The same screens at 360 px: nothing overflows outside table scrollers.
    const narrow = await newPage(360, 740);
    await signIn(narrow.page, ts.adminToken);
    await narrow.page.goto(`/console/#/workspaces/${ws.id}/scopes`);
    await narrow.page.getByRole('cell', { name: 'inference', exact: true }).waitFor();
    expect(await overflowingOf(narrow.page)).toEqual([]);
    await shot(narrow.page, 'scopes-360px.png', true);
    await narrow.page.getByRole('button', { name: 'Edit scope inference' }).click();
    expect(await overflowingOf(narrow.page)).toEqual([]);
    await shot(narrow.page, 'scope-form-360px.png');
    await narrow.page.keyboard.press('Escape');
    await narrow.page.goto(`/console/#/keys/${verified.keyId}`);
    await narrow.page.getByRole('heading', { name: 'Details' }).waitFor();
    expect(await overflowingOf(narrow.page)).toEqual([]);
    await shot(narrow.page, 'key-permissions-360px.png', true);
    await narrow.page.getByRole('button', { name: 'Edit', exact: true }).click();
    await narrow.page.getByRole('dialog').getByLabel('admin (whole scope)').check();
    await narrow.page.getByRole('dialog').getByTestId('granted').scrollIntoViewIfNeeded();
    expect(await overflowingOf(narrow.page)).toEqual([]);
    await shot(narrow.page, 'edit-key-permissions-360px.png');
    expect(errors).toEqual([]);
    await narrow.context.close();
  }, 60_000);

  it('shows the delivery state of a workspace’s webhook events and sends one again', async () => {
    const W = client(WorkspaceService, ts);
    const workspaceId = (await W.createWorkspace({ workspace: { name: 'Hooks' } })).workspace!.id;
    // A receiver on loopback is refused by the address guard: the event stays pending with the reason.
    await client(WebhookService, ts).setWebhook({ webhook: { workspaceId, url: 'http://127.0.0.1:9/keyward' } });
    const keys = client(KeyService, ts);
    const key = await keys.createKey({ key: { workspaceId, name: 'soon revoked' } });
    recordSecret(key.secret);
    await keys.revokeKey({ id: key.key!.id });

    const { context, page } = await newPage(1280);
    await signIn(page, ts.adminToken);
    await page.goto(`/console/#/workspaces/${workspaceId}/webhook`);
    const row = page.getByRole('row', { name: /key\.revoked/ });
    await row.waitFor();
    await expect.poll(async () => (await row.textContent()) ?? '', { timeout: 10_000 }).toMatch(/Retrying/);
    await page.getByRole('button', { name: 'Refresh' }).click();
    await expect.poll(async () => (await row.textContent()) ?? '', { timeout: 10_000 }).toMatch(/refused: 127\.0\.0\.1/);
    await shot(page, 'webhook-deliveries.png', true);
    await row.getByRole('button', { name: /again/ }).click();
    await page.getByText('Sending key.revoked again').waitFor();
    // A test event: its outcome at once, then in the list, with no Redeliver (it is never sent again).
    await page.getByRole('button', { name: 'Send test event' }).click();
    await page.getByText(/Test event not delivered: refused: 127\.0\.0\.1/).waitFor();
    const testRow = page.getByRole('row', { name: /webhook\.test/ });
    await testRow.waitFor();
    expect(await testRow.getByRole('button', { name: /again/ }).count()).toBe(0);
    await shot(page, 'webhook-test-event.png', true);
    expect(errors).toEqual([]);
    await context.close();
  }, 30_000);
});
