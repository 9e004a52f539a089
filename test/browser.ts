/**
 * A real browser for the page tests: Debian's chromium (installed by
 * global-setup.ts, nothing downloaded), driven headless by playwright-core,
 * with a fresh profile folder. Closed, and its profile removed, after the test.
 */
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { afterEach } from 'vitest';
import { ROOT } from './helpers.js';

/** The system browser. */
export const CHROMIUM = '/usr/bin/chromium';

/** Where tests keep screenshots for a person to look at (git-ignored). */
export const ARTIFACTS = path.join(ROOT, 'test-artifacts');

const open: Array<{ context: BrowserContext; dir: string }> = [];
afterEach(async () => {
  for (const { context, dir } of open.splice(0)) {
    await context.close();
    await fs.rm(dir, { recursive: true, force: true });
  }
});

/** A page in a fresh headless chromium, with every console error and page error collected in `errors`. */
export async function openPage(
  options: { httpCredentials?: { username: string; password: string } } = {},
): Promise<{ page: Page; errors: string[] }> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'imgdl-chromium-'));
  const context = await chromium.launchPersistentContext(dir, {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
    ],
    viewport: { width: 1040, height: 900 },
    ...options,
  });
  open.push({ context, dir });
  const page = context.pages()[0] ?? (await context.newPage());
  page.setDefaultTimeout(10_000);
  const errors: string[] = [];
  page.on('console', (message) => message.type() === 'error' && errors.push(message.text()));
  page.on('pageerror', (error) => errors.push(error.message));
  return { page, errors };
}

/** Saves a full-page screenshot as test-artifacts/NAME.png; resolves to its path. */
export async function screenshot(page: Page, name: string): Promise<string> {
  await fs.mkdir(ARTIFACTS, { recursive: true });
  const file = path.join(ARTIFACTS, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}
