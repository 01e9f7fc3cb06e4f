// Everyone can use it (issue 29, item 4): (a) axe-core (injected by the test, never shipped)
// finds no serious or critical violation in any section of the page in the states a user sees
// them: fresh, the sample loaded (its gallery), show_batch and lr_find, after training (charts,
// epoch table, interpretation), Clean open, a prediction, the sort table; the charts and images
// have text equivalents. (b) A keyboard-only run (Tab, Shift+Tab, Enter, Space, arrows) loads
// the sample, trains and predicts a photo, with a visible focus ring on the controls it uses.
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PHOTOS, checklist, e2e, readyPage, root, waitIdle } from './harness.mjs';

const { check, done } = checklist('e2e accessibility');
const AXE = join(root, 'node_modules/axe-core/axe.min.js');
const photos = PHOTOS.map((p) => join(root, 'assets/photos', p));

/** axe on the whole page: serious and critical violations fail, the others are printed. */
async function axe(page, state) {
  if (!(await page.evaluate(() => 'axe' in window))) await page.addScriptTag({ path: AXE });
  const found = await page.evaluate(async () => (await window.axe.run(document, { resultTypes: ['violations'] })).violations
    .map((v) => ({ id: v.id, impact: v.impact, nodes: v.nodes.map((n) => n.target.join(' ')) })));
  const bad = found.filter((v) => ['serious', 'critical'].includes(v.impact));
  for (const v of found.filter((x) => !bad.includes(x))) console.log(`[e2e accessibility] info (${state}): ${v.impact} ${v.id} on ${v.nodes.length}: ${v.nodes.slice(0, 2).join(', ')}`);
  assert.deepEqual(bad.map((v) => `${v.impact} ${v.id}: ${v.nodes.slice(0, 3).join(', ')}`), [], `axe, ${state}`);
}

/** Tab (or Shift+Tab) until the focused element matches `selector`; only the keyboard moves it. */
async function tabTo(page, selector, { back = false, max = 1500 } = {}) {
  for (let i = 0; i < max; i++) {
    if (await page.evaluate((s) => document.activeElement?.matches(s), selector)) return;
    await page.keyboard.press(back ? 'Shift+Tab' : 'Tab');
  }
  throw new Error(`Tab never reached ${selector}`);
}

/** Presses `key` on `page`'s focused picker or drop zone and returns the file chooser it opens.
 * One listener for the whole run: a listener per press (waitForEvent) turns Playwright's chooser
 * interception on and off, and once in a few runs a press fell in between (no chooser event
 * although the input got its click). */
function chooserOn(page) {
  const seen = [];
  page.on('filechooser', (c) => seen.push(c));
  return async (key) => {
    const before = seen.length;
    await page.keyboard.press(key);
    for (let waited = 0; seen.length === before; waited += 50) {
      if (waited > 5000) throw new Error(`${key} opened no file chooser`);
      await new Promise((r) => setTimeout(r, 50));
    }
    return seen[seen.length - 1];
  };
}

/** The focused control shows a ring: its outline (or its label's, for a visually hidden picker). */
const focusRing = (page) => page.evaluate(() => {
  const a = document.activeElement;
  const shown = a.classList.contains('sr') ? a.closest('label') : a;
  const s = getComputedStyle(shown);
  return a.matches(':focus-visible') && s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) >= 2;
});

await e2e([], async ({ browser, base }) => {
  const dir = mkdtempSync(join(tmpdir(), 'kiln-a11y-'));
  // (a) axe in every state.
  const page = await readyPage(browser, base, { bypassCSP: true });
  await check('axe: fresh page', () => axe(page, 'fresh'));
  await page.click('#sample');
  await waitIdle(page);
  await page.waitForSelector('#gallery .class-card');
  await check('axe: sample loaded, its gallery', () => axe(page, 'sample loaded'));
  await page.fill('#epochs', '1');
  await page.click('#show-batch');
  await waitIdle(page);
  await page.click('#lr-find');
  await waitIdle(page);
  await check('axe: show_batch and lr_find', () => axe(page, 'show_batch, lr_find'));
  await check('show_batch and lr_find have text equivalents', async () => {
    // Each image's class as text, in the grid's order: 16 titles, each one of the classes.
    const label = await page.getAttribute('#batch', 'aria-label');
    const m = label.match(/^show_batch: 16 augmented training images at \d+ px, 4 a row, titled (.+)$/);
    assert.ok(m, label);
    const classes = await page.$$eval('#gallery .class-card h4', (hs) => hs.map((h) => h.textContent));
    const titles = m[1].split(', ');
    assert.ok(titles.length === 16 && titles.every((t) => classes.includes(t)), `${titles} vs ${classes}`);
    assert.match(await page.getAttribute('#lr-chart', 'aria-label'), /lr_find: smoothed loss at \d+ learning rates .*suggestions: /);
  });
  await page.click('#train');
  await page.waitForSelector('#interpretation:not([hidden])', { timeout: 300_000 });
  await waitIdle(page);
  await check('axe: trained (charts, epoch table, interpretation)', () => axe(page, 'trained'));
  await check('the charts and top losses have text equivalents', async () => {
    assert.match(await page.getAttribute('#loss-chart', 'aria-label'), /^Loss per batch: \d+ batches, smoothed training loss from \d\.\d{4} to \d\.\d{4}; validation loss \d\.\d{4}/);
    assert.match(await page.getAttribute('#metric-chart', 'aria-label'), /^Validation per epoch: after epoch 1, accuracy \d\.\d{4} and error_rate \d\.\d{4}/);
    const tops = await page.$$eval('#top-losses canvas', (cs) => cs.map((c) => [c.getAttribute('role'), c.getAttribute('aria-label')]));
    assert.ok(tops.length > 0, 'top losses shown');
    for (const [role, label] of tops) { assert.equal(role, 'img'); assert.match(label, /: predicted \d, actual \d, loss \d/); }
    assert.deepEqual(await page.$$eval('#epochs-table thead th', (ths) => ths.length), 7);
  });
  await page.click('#clean');
  await waitIdle(page);
  await page.waitForSelector('#cleaner:not([hidden])');
  await check('axe: Clean open', () => axe(page, 'clean'));
  await page.setInputFiles('#predict-file', photos[0]);
  await page.waitForSelector('#prediction:not([hidden])', { timeout: 60_000 });
  await check('axe: a prediction', () => axe(page, 'prediction'));
  await check('the predicted photo has alt text', async () => assert.match(await page.getAttribute('#predict-img', 'alt'), /^chelsea\.png, predicted \d$/));
  await page.setInputFiles('#predict-file', photos);
  await page.waitForFunction((n) => document.querySelectorAll('#sort-table tr.row').length === n, photos.length, { timeout: 60_000 });
  await waitIdle(page);
  await check('axe: the sort table', () => axe(page, 'sort table'));
  await check('the sort table is a table with column headers', async () => {
    assert.deepEqual(await page.$$eval('#sort-table thead th', (ths) => ths.map((t) => t.textContent)), ['Photo', 'File', 'Class', 'Probability', 'Runner-up']);
  });
  assert.deepEqual(page.errors, []);
  await page.context().close();

  // (b) The keyboard only: no click, no fill.
  const kb = await readyPage(browser, base);
  const chooser = chooserOn(kb);
  const rings = [];
  const ring = async (what) => { if (!(await focusRing(kb))) rings.push(what); };
  await check('keyboard: Enter on the photos drop zone opens a file chooser', async () => {
    await tabTo(kb, '#dropzone');
    await ring('drop zone');
    assert.equal((await chooser('Enter')).isMultiple(), true);
  });
  await check('keyboard: "Choose a folder" is reached by Tab and opens on Space', async () => {
    await tabTo(kb, '#pick-folder');
    await ring('Choose a folder');
    await chooser('Space');
  });
  await check('keyboard: Try sample data loads the digits', async () => {
    await tabTo(kb, '#sample');
    await ring('Try sample data');
    await kb.keyboard.press('Enter');
    await kb.waitForFunction(() => /^10 classes/.test(document.querySelector('#split').textContent), null, { timeout: 60_000 });
    await waitIdle(kb);
  });
  await check('keyboard: one epoch (arrows), Train (Space), the epoch table fills', async () => {
    await tabTo(kb, '#epochs');
    await ring('Epochs');
    for (let i = 0; i < 5; i++) await kb.keyboard.press('ArrowDown');
    assert.equal(await kb.inputValue('#epochs'), '1');
    await tabTo(kb, '#train');
    await ring('Train');
    await kb.keyboard.press('Space');
    await kb.waitForFunction(() => document.querySelectorAll('#epochs-table tbody tr').length === 1, null, { timeout: 300_000 });
    await kb.waitForSelector('#interpretation:not([hidden])', { timeout: 120_000 });
    await waitIdle(kb);
  });
  await check('keyboard: Shift+Tab back to Epochs, then Enter on "choose photos" predicts one', async () => {
    await tabTo(kb, '#epochs', { back: true });
    await tabTo(kb, '#predict-file');
    await ring('choose photos');
    const digit = join(dir, 'digit.png');
    writeFileSync(digit, Buffer.from(await kb.evaluate(async () => [...new Uint8Array(await (await window.kiln.sampleFiles())[0].arrayBuffer())])));
    await (await chooser('Enter')).setFiles(digit);
    await kb.waitForSelector('#prediction:not([hidden])', { timeout: 60_000 });
    assert.match(await kb.textContent('#predict-label'), /^\d \(\d+\.\d%\)$/);
  });
  await check('keyboard: Enter on the predict drop zone opens a file chooser', async () => {
    await tabTo(kb, '#predict-drop', { back: true });
    await ring('predict drop zone');
    await chooser('Enter');
  });
  await check('keyboard: every control used showed a focus ring', () => assert.deepEqual(rings, []));
  assert.equal(await kb.isVisible('#error'), false, await kb.textContent('#error'));
  assert.deepEqual(kb.errors, []);
  done();
  console.log('[e2e accessibility] ok');
});
