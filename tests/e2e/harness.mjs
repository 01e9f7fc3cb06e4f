// What the end-to-end tests and benches/browser.mjs share: www/ served by scripts/serve.py on a
// free port, Debian's Chromium (never a downloaded browser) through playwright-core, pages
// opened once the server answers, one exit code with the browser and the server always
// stopped, and the in-page runs both the soak test and the bench make.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';
import { png } from './png.mjs';

export const root = new URL('../../', import.meta.url).pathname;

/** Serve `dir` (www/ by default, or $KILN_E2E_WWW: another copy of the page, e.g. an older
 * one to see a test fail on it) on `port`, or a free one in [from, from + 4000). */
export function serve(dir = process.env.KILN_E2E_WWW || join(root, 'www'), from = 18000, port = from + Math.floor(Math.random() * 4000)) {
  const server = spawn('python3', [join(root, 'scripts/serve.py'), '--port', String(port), '--dir', dir, '--quiet'], { stdio: 'ignore' });
  return { server, base: `http://127.0.0.1:${port}`, port };
}

/** Debian's Chromium, quiet on a closed network (no QUIC, updates, sync or first-run pages). */
export function launch(/** @type {string[]} */ args = []) {
  const executablePath = ['/usr/lib/chromium/chromium', '/usr/bin/chromium'].find(existsSync);
  assert.ok(executablePath, 'Debian chromium is not installed (apt-get install chromium)');
  return chromium.launch({ executablePath, args: ['--no-sandbox', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', ...args] });
}

/** Open `url` in `page`, retrying while the server starts. */
export async function open(page, url) {
  for (let i = 0; i < 50; i++) {
    try { return await page.goto(url); } catch { await new Promise((r) => setTimeout(r, 200)); }
  }
  return page.goto(url);
}

/** Run `body({ browser, base, server })` against a fresh server and browser; exit 1 if it
 * throws. `server.stop()` and `server.start()` take the server away and back (same address). */
export async function e2e(/** @type {string[]} */ args, body) {
  const browser = await launch(args);
  let { server: proc, base, port } = serve();
  const server = {
    stop: () => new Promise((res) => { proc.once('exit', res); proc.kill(); }),
    start: () => { proc = serve(undefined, undefined, port).server; },
  };
  let failed = false;
  try {
    await body({ browser, base, server });
  } catch (e) {
    failed = true;
    console.error(e);
  } finally {
    await browser.close();
    proc.kill();
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

/** The six bundled photos the page tests train on (one class per photo). */
export const PHOTOS = ['chelsea.png', 'coffee.png', 'astronaut.png', 'rocket.jpg', 'motorcycle_left.png', 'china.jpg'];

/** Crops of `photos` in `dir`/crops (train/ and valid/ of one class per photo), made by the
 * native CLI (cargo build --release); returns that folder. */
export function photoCrops(dir, { side = 160, cropsPerCell = 1, photos = PHOTOS } = {}) {
  mkdirSync(join(dir, 'photos'), { recursive: true });
  for (const p of photos) writeFileSync(join(dir, 'photos', p), readFileSync(join(root, 'assets/photos', p)));
  const made = spawnSync(join(root, 'target/release/kiln'), ['samples', '--photos', join(dir, 'photos'), '--side', String(side), '--crops-per-cell', String(cropsPerCell), '-o', join(dir, 'crops')], { encoding: 'utf8' });
  assert.equal(made.status, 0, `kiln samples failed (build the CLI: cargo build --release): ${made.stderr}`);
  return join(dir, 'crops');
}

/** The epoch table as text: [phase, epoch, train_loss, valid_loss, error_rate, accuracy, time]. */
export const epochTable = (page) => page.$$eval('#epochs-table tbody tr', (trs) => trs.map((tr) => [...tr.children].map((t) => t.textContent)));

/**
 * The soak, in `page` (bench.html) on the threaded CPU build: the tiny model on the digits for
 * `steps` steps, then `cancels` fits each cancelled after 3 batches, then a worker restart.
 * Memory (the worker's, and the page's JS heap with --enable-precise-memory-info) after ~50
 * steps (the first epoch's end), after the steps and after the cancels; how many cancels
 * stopped within a batch; a prediction before and after the restart.
 */
export function soak(page, { steps, cancels }) {
  return page.evaluate(async ({ steps, cancels }) => {
    const { Kiln } = await import('./kiln.js');
    const kiln = await Kiln.create({ backend: 'cpu' });
    await kiln.loadDataset((await kiln.sampleFiles()), { presize: 36, validPct: 0.1 });
    await kiln.createLearner({ arch: 'tiny', size: 32, batchSize: 16, hidden: 64, doFlip: false });
    const snapshot = async () => ({ ...(await kiln.memory()), pageJsHeapBytes: performance.memory?.usedJSHeapSize ?? null });
    let n = 0;
    let warm = null;
    const cb = { onBatch: () => { n += 1; } };
    while (n < steps) {
      await kiln.fitOneCycle(1, 1e-2, cb);
      if (warm === null && n >= 50) warm = await snapshot();
    }
    const afterSteps = await snapshot();
    let cancelled = 0;
    for (let i = 0; i < cancels; i++) {
      let seen = 0;
      const report = await kiln.fitOneCycle(3, 1e-2, { onBatch: () => { if (++seen === 3) kiln.cancel(); } });
      if (report.cancelled && seen <= 4) cancelled += 1;
    }
    const afterCancels = await snapshot();
    // A worker that dies (out of memory) restarts with the dataset and the model as it was
    // after the last finished epoch: one more epoch, then the restart an OOM triggers.
    await kiln.fitOneCycle(1, 1e-3);
    const probe = (await kiln.sampleFiles())[0];
    const before = await kiln.predict(probe);
    await kiln.restart();
    const after = await kiln.predict(probe);
    kiln.dispose();
    return { steps: n, warm, afterSteps, afterCancels, cancelled, before, after };
  }, { steps, cancels });
}

/** `k` cycles of Kiln.create → load the digits → dispose in `page`; the page's JS heap after. */
export function createDisposeCycles(page, k) {
  return page.evaluate(async (k) => {
    const { Kiln } = await import('./kiln.js');
    for (let i = 0; i < k; i++) {
      const kiln = await Kiln.create({ backend: 'cpu' });
      await kiln.loadDataset((await kiln.sampleFiles()), { presize: 36, validPct: 0.1 });
      kiln.dispose();
    }
    return performance.memory?.usedJSHeapSize ?? null;
  }, k);
}

/** Workers alive in `page` once Chromium has reaped terminated ones (asynchronously, with
 * their nested pool workers). */
export async function workersAfterSettling(page) {
  await new Promise((res) => setTimeout(res, 2000));
  return page.workers().length;
}

/**
 * Checks that go on after a failure, so one run says which of an issue's items fail: each
 * `check(name, fn)` logs ok or FAIL; `done()` throws if any failed.
 */
export function checklist(tag) {
  const failed = [];
  return {
    async check(name, fn) {
      try {
        await fn();
        console.log(`[${tag}] ok   ${name}`);
      } catch (e) {
        failed.push(name);
        console.log(`[${tag}] FAIL ${name}: ${String(e.message).split('\n').slice(0, Number(process.env.KILN_E2E_LINES || 3)).join(' ')}`);
      }
    },
    done() { if (failed.length) throw new Error(`${failed.length} check(s) failed: ${failed.join('; ')}`); },
  };
}

/** Class folders of noisy solid-colour PNGs under `dir`: `{red: 12, kite: 1}` → dir/red/red_0.png … */
export function colourFolders(dir, counts, side = 20) {
  const palette = [[210, 30, 30], [30, 170, 40], [30, 40, 210], [200, 180, 20], [150, 40, 160]];
  Object.entries(counts).forEach(([name, n], c) => {
    mkdirSync(join(dir, name), { recursive: true });
    for (let i = 0; i < n; i++) writeFileSync(join(dir, name, `${name}_${i}.png`), png(side, side, noisy(palette[c % palette.length], i)));
  });
  return dir;
}

/** A solid colour with a little deterministic noise, for png(). */
export const noisy = (c, seed) => (x, y) => c.map((v, k) => Math.max(0, Math.min(255, v + (((x * 31 + y * 17 + seed * 7 + k * 5) % 41) - 20))));

/** A fresh page on `base` (`query` e.g. '?backend=cpu'), ready to use; page errors collected in `page.errors`.
 * `bypassCSP` lets a test inject a script of its own (axe-core) past the page's CSP. */
export async function readyPage(browser, base, { query = '?backend=cpu', viewport = { width: 1280, height: 900 }, bypassCSP = false } = {}) {
  const context = await browser.newContext({ viewport, acceptDownloads: true, bypassCSP });
  const page = await context.newPage();
  // A missing element fails a check in seconds, not the default 30 s.
  page.setDefaultTimeout(10_000);
  page.errors = [];
  page.warnings = [];
  page.on('pageerror', (e) => page.errors.push(e.message));
  page.on('console', (m) => { if (m.type() === 'warning') page.warnings.push(m.text()); });
  await open(page, `${base}/${query}`);
  await page.waitForSelector('body[data-ready=true]', { timeout: 60_000 });
  return page;
}

/** Wait until the page is idle again (no work running). */
export const waitIdle = (page, timeout = 300_000) => page.waitForFunction(() => document.body.dataset.phase === 'idle', null, { timeout });

/** Set an option field and fire its change, as leaving the field does; wait for the page to settle. */
export async function setOption(page, id, value) {
  await page.fill(`#${id}`, value);
  await page.dispatchEvent(`#${id}`, 'change');
  await page.waitForTimeout(100);
  await waitIdle(page, 60_000);
}

/** The error box's text when shown, else ''; then hide it. */
export async function takeError(page) {
  const shown = await page.isVisible('#error');
  const text = shown ? await page.textContent('#error') : '';
  if (shown) await page.click('#error');
  return text;
}

/** What the worker holds: the dataset's classes, split sizes and options, and the model's classes and options. */
export const workerState = (page) => page.evaluate(async () => (await import('./kiln-testing.js')).trainingState(window.kiln));

/** Press Cancel as soon as the status matches `pattern` (batches take milliseconds here, too
 * short to catch by polling); resolves to the status and Cancel's state right after the click. */
export function cancelAt(page, pattern) {
  return page.evaluate((source) => new Promise((resolve) => {
    const status = document.querySelector('#status');
    const observer = new MutationObserver(() => {
      if (!new RegExp(source).test(status.textContent)) return;
      observer.disconnect();
      document.querySelector('#cancel').click();
      resolve({ status: status.textContent, cancelDisabled: document.querySelector('#cancel').disabled });
    });
    observer.observe(status, { childList: true, characterData: true, subtree: true });
  }), pattern.source);
}
