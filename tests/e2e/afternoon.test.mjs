// Issue 28's afternoon: one page, used the way a person spends an afternoon with it: the sample,
// their photos, Train, Cancel, Train again, an option change that fails, Import, Train, an
// lr_find cancelled. After every step the visible Settings, the status line and what the
// worker trains on (its dataset's options and classes, its model's settings) must agree.
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cancelAt, colourFolders, e2e, epochTable, readyPage, takeError, waitIdle, workerState } from './harness.mjs';

const log = (...a) => console.log('[e2e afternoon]', ...a);
const dir = mkdtempSync(join(tmpdir(), 'kiln-afternoon-'));
const colours = colourFolders(join(dir, 'colours'), { red: 12, green: 12, blue: 12 });

/** The page's fields, the status, the summary line, and the worker's dataset and model. */
async function look(page) {
  const fields = await page.evaluate(() => {
    const v = (id) => document.getElementById(id).value;
    return { arch: v('arch'), size: Number(v('size')), bs: Number(v('bs')), presize: Number(v('presize')), validPct: Number(v('valid-pct')), seed: Number(v('seed')), labelRegex: v('label-regex'), flip: document.getElementById('flip').checked };
  });
  const classes = await page.$$eval('.class-card h4', (hs) => hs.map((h) => h.textContent));
  return { fields, classes, status: await page.textContent('#status'), split: await page.textContent('#split'), worker: await workerState(page) };
}

/** After a step: the page is idle, says `status`, and shows what the worker holds. With
 * `model`, the worker's model has the Settings shown (the next Train continues or uses them). */
async function agree(page, step, { status, error = null, model = false }) {
  await waitIdle(page);
  const shownError = await takeError(page);
  if (error) assert.match(shownError, error, `${step}: the error`);
  else assert.equal(shownError, '', `${step}: no error`);
  const s = await look(page);
  assert.match(s.status, status, `${step}: the status`);
  const d = s.worker.dataset;
  assert.ok(d, `${step}: the worker has a dataset`);
  assert.deepEqual({ validPct: d.options.validPct, presize: d.options.presize, seed: d.options.seed, labelRegex: d.options.labelRegex ?? '' },
    { validPct: s.fields.validPct, presize: s.fields.presize, seed: s.fields.seed, labelRegex: s.fields.labelRegex }, `${step}: the dataset options shown are the worker's`);
  assert.deepEqual([...s.classes].sort(), [...d.classes].sort(), `${step}: the classes shown are the worker's`);
  assert.ok(s.split.includes(`${d.nTrain} training and ${d.nValid} validation images`), `${step}: the split shown (${s.split}) is the worker's (${d.nTrain}/${d.nValid})`);
  if (model) {
    const o = s.worker.learner?.options;
    assert.ok(o, `${step}: the worker has a model`);
    assert.deepEqual({ arch: o.arch, size: o.size, bs: o.batchSize }, { arch: s.fields.arch, size: s.fields.size, bs: s.fields.bs }, `${step}: the model's settings are the ones shown`);
  }
  log(`${step}: ok · ${s.status}`);
  return s;
}

await e2e([], async ({ browser, base }) => {
  const page = await readyPage(browser, base);
  await page.click('.options summary');

  // The sample, with its preset.
  await page.click('#sample');
  let s = await agree(page, 'sample', { status: /^$/ });
  assert.equal(s.fields.arch, 'tiny');
  assert.equal(s.classes.length, 10);

  // The user's photos: the photo defaults come back, then a small configuration for speed.
  await page.setInputFiles('#pick-folder', colours);
  s = await agree(page, 'photos', { status: /^$/ });
  assert.deepEqual([s.fields.arch, s.fields.size, s.fields.presize], ['efficientnet_lite0', 224, 460]);
  await page.selectOption('#arch', 'tiny');
  await page.fill('#size', '16');
  await page.fill('#bs', '8');
  await page.fill('#presize', '24');
  await page.dispatchEvent('#presize', 'change');
  await agree(page, 'presize 24', { status: /^$/ });
  await page.selectOption('#method', 'fine_tune');
  await page.fill('#epochs', '1');
  await page.fill('#freeze-epochs', '1');

  // Train.
  await page.click('#train');
  await agree(page, 'train', { status: /^done · Tiny ResNet started from random weights/, model: true });
  assert.deepEqual((await epochTable(page)).map((r) => r[0]), ['frozen', 'unfrozen']);

  // Cancel a long run: acknowledged at once, honoured before the next batch.
  await page.fill('#epochs', '50');
  let ack = cancelAt(page, /unfrozen · epoch 1 · batch 2\//);
  await page.click('#train');
  ack = await ack;
  assert.match(ack.status, /^cancelling…/);
  assert.equal(ack.cancelDisabled, true);
  await agree(page, 'cancel', { status: /^cancelled — the model keeps what it learned/, model: true });
  assert.ok((await epochTable(page)).length < 5, 'the run stopped early');

  // Train again.
  await page.fill('#epochs', '1');
  await page.click('#train');
  await agree(page, 'train again', { status: /^done/, model: true });

  // An option change that fails: the field rolls back, the worker keeps its split.
  await page.fill('#valid-pct', '0');
  await page.dispatchEvent('#valid-pct', 'change');
  s = await agree(page, 'validation fraction 0', { status: /not applied.*unchanged/, error: /Validation fraction 0.*back to 0\.2/s, model: true });
  assert.equal(s.fields.validPct, 0.2);

  // Export, then import the file: the Settings are the model's, and Train continues it.
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('#export')]);
  const saved = join(dir, download.suggestedFilename());
  await download.saveAs(saved);
  await page.fill('#size', '32');
  await page.fill('#bs', '16');
  await page.setInputFiles('#import', saved);
  s = await agree(page, 'import', { status: /^$/, model: true });
  assert.deepEqual([s.fields.size, s.fields.bs, s.fields.presize], [16, 8, 24]);
  assert.match(await page.textContent('#train-plan'), /continues/);
  await page.click('#train');
  await agree(page, 'train the imported model', { status: /^done · continued /, model: true });

  // lr_find, cancelled: the curve so far stays; the model is lr_find's new one.
  ack = cancelAt(page, /lr_find · step 6\//);
  await page.click('#lr-find');
  assert.match((await ack).status, /^cancelling…/);
  await agree(page, 'lr_find cancelled', { status: /^lr_find cancelled after \d+ steps/, model: true });
  assert.equal(await page.isVisible('#lr-find-box'), true);
  assert.equal(await page.isDisabled('#export'), true, 'lr_find replaced the model: nothing to export');
  assert.deepEqual(page.errors, []);
  log('ok');
});
