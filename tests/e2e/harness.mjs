// What the end-to-end tests share: www/ served by scripts/serve.py on a free port, Debian's
// Chromium (never a downloaded browser) through playwright-core, pages opened once the server
// answers, and one exit code, with the browser and the server always stopped.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';

export const root = new URL('../../', import.meta.url).pathname;

/** Open `url` in `page`, retrying while the server starts. */
export async function open(page, url) {
  for (let i = 0; i < 50; i++) {
    try { return await page.goto(url); } catch { await new Promise((r) => setTimeout(r, 200)); }
  }
  return page.goto(url);
}

/** Run `body({ browser, base })` against a fresh server and browser; exit 1 if it throws. */
export async function e2e(/** @type {string[]} */ args, body) {
  const executablePath = ['/usr/lib/chromium/chromium', '/usr/bin/chromium'].find(existsSync);
  assert.ok(executablePath, 'Debian chromium is not installed (apt-get install chromium)');
  const port = 18000 + Math.floor(Math.random() * 4000);
  const server = spawn('python3', [join(root, 'scripts/serve.py'), '--port', String(port), '--dir', join(root, 'www'), '--quiet'], { stdio: 'ignore' });
  const browser = await chromium.launch({ executablePath, args: ['--no-sandbox', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', ...args] });
  let failed = false;
  try {
    await body({ browser, base: `http://127.0.0.1:${port}` });
  } catch (e) {
    failed = true;
    console.error(e);
  } finally {
    await browser.close();
    server.kill();
  }
  process.exit(failed ? 1 : 0);
}

/** On `page`'s loaded dataset: the tiny model, 16 px, batch 8, one epoch of fine_tune (a frozen
 * and an unfrozen row), Train; it must finish without an error. */
export async function trainTinyEpoch(page) {
  await page.selectOption('#arch', 'tiny');
  await page.fill('#size', '16');
  await page.fill('#bs', '8');
  await page.fill('#epochs', '1');
  await page.click('#train');
  await page.waitForFunction(() => document.querySelectorAll('#epochs-table tbody tr').length === 2 && !document.querySelector('#train').disabled, null, { timeout: 300_000 });
  assert.equal(await page.isVisible('#error'), false, await page.textContent('#error'));
}
