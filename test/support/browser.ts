// Debian's Chromium for the console's and the portal's browser tests, driven
// by playwright-core (a test tool's own browser download cannot work here).
import { existsSync } from 'node:fs';
import { chromium, type Browser } from 'playwright-core';
import { announceSkip, ensureDebianPackages } from './debian.js';

const CHROMIUM = '/usr/bin/chromium';
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

/** Installs Chromium with apt-get when it is missing; returns why `suite` must be skipped, or undefined. */
export function chromiumMissing(suite: string): string | undefined {
  const missing = ensureDebianPackages(['chromium'], () => existsSync(CHROMIUM));
  if (missing) announceSkip(suite, `${missing}; install Debian's chromium to run them`);
  return missing;
}

export function launchChromium(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM, args: ARGS });
}
