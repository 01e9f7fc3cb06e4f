// vision_learner's options in Settings (fastai's names, collapsed under "vision_learner options"):
//  - labelled, reached by the keyboard, axe-clean; BCEWithLogitsLossFlat is "Allow none of these"
//    (choosing one sets the other, both ways);
//  - a value out of range (ps 1.5) is an error naming ps, and nothing trains;
//  - set away from fastai's defaults (LabelSmoothingCrossEntropy, lin_ftrs [128, 64], ps 0.2,
//    concat_pool off, first_bn off, bn_final on, wd 0.05, wd_bn_bias on, train_bn off, moms 0.9,
//    0.8, 0.9), a note in the Settings says so; ResNet-18 from random weights at 32 px trains one
//    fit_one_cycle epoch with them (the worker's model has them), and the fastai/PyTorch export's
//    vision_learner call names every one;
//  - the exported .kiln on a fresh page sets them back in the Settings (and the note); Train says
//    it continues the model, and that a changed ps starts a new one; "Use fastai's defaults"
//    puts them back;
//  - a saved project keeps them; the sample's preset puts fastai's defaults back, and says so.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checklist, colourFolders, e2e, readyPage, root, takeError, waitIdle, workerState } from './harness.mjs';

const log = (...a) => console.log('[e2e learner-options]', ...a);
const dir = mkdtempSync(join(tmpdir(), 'kiln-learner-options-'));
const colours = colourFolders(join(dir, 'colours'), { red: 8, green: 8, blue: 8 }, 24);
const AXE = join(root, 'node_modules/axe-core/axe.min.js');

/** The options set in this test, by field id, and the note they give. */
const CHANGED = { 'loss-func': 'LabelSmoothingCrossEntropy', 'lin-ftrs': '128, 64', ps: '0.2', 'concat-pool': false, 'first-bn': false, 'bn-final': true, 'lin-first': true, wd: '0.05', 'wd-bn-bias': true, 'train-bn': false, 'mom-1': '0.9', 'mom-2': '0.8', 'mom-3': '0.9' };
const NOTE = "vision_learner options changed from fastai's defaults: loss_func LabelSmoothingCrossEntropy, lin_ftrs [128, 64], ps 0.2, concat_pool off, first_bn off, bn_final on, lin_first on, wd 0.05, wd_bn_bias on, train_bn off, moms (0.9, 0.8, 0.9).";
const DEFAULTS = { 'loss-func': 'CrossEntropyLossFlat', 'lin-ftrs': '', ps: '0.5', 'concat-pool': true, 'first-bn': true, 'bn-final': false, 'lin-first': false, wd: '0.01', 'wd-bn-bias': false, 'train-bn': true, 'mom-1': '0.95', 'mom-2': '0.85', 'mom-3': '0.95' };
/** The fields as the page shows them. */
const fields = (page) => page.evaluate((ids) => Object.fromEntries(ids.map((id) => {
  const e = document.getElementById(id);
  return [id, e.type === 'checkbox' ? e.checked : e.value];
})), Object.keys(DEFAULTS));
const note = async (page) => ((await page.isVisible('#learner-note')) ? page.textContent('#learner-note-text') : '');

async function setFields(page, values) {
  for (const [id, v] of Object.entries(values)) {
    if (typeof v === 'boolean') await page.setChecked(`#${id}`, v);
    else if (id === 'loss-func') await page.selectOption(`#${id}`, v);
    else await page.fill(`#${id}`, v);
  }
}

/** axe on the whole page: serious and critical violations fail. */
async function axe(page) {
  await page.addScriptTag({ path: AXE });
  const found = await page.evaluate(async () => (await window.axe.run(document, { resultTypes: ['violations'] })).violations
    .map((v) => ({ id: v.id, impact: v.impact, nodes: v.nodes.map((n) => n.target.join(' ')) })));
  const bad = found.filter((v) => ['serious', 'critical'].includes(v.impact));
  assert.deepEqual(bad.map((v) => `${v.impact} ${v.id}: ${v.nodes.slice(0, 3).join(', ')}`), []);
}

/** The `fastai` entry of a .safetensors file's metadata (an 8-byte length, then the JSON header). */
function fastaiMetadata(path) {
  const buf = readFileSync(path);
  const n = Number(buf.readBigUInt64LE(0));
  return JSON.parse(buf.subarray(8, 8 + n).toString('utf8')).__metadata__?.fastai ?? '';
}

await e2e([], async ({ browser, base }) => {
  const c = checklist('e2e learner-options');
  const page = await readyPage(browser, base, { bypassCSP: true });
  // Save project as a Blob download (no File System Access picker in a headless browser).
  await page.evaluate(() => { delete Window.prototype.showSaveFilePicker; delete window.showSaveFilePicker; });

  await c.check('fresh: fastai\'s defaults, collapsed, no note', async () => {
    assert.deepEqual(await fields(page), DEFAULTS);
    assert.equal(await page.isVisible('#ps'), false, 'collapsed');
    assert.equal(await note(page), '');
  });

  await c.check('the box opens from the keyboard and Tab reaches each option, labelled with fastai\'s names', async () => {
    await page.focus('#multi-label');
    for (let i = 0; i < 5 && !(await page.evaluate(() => document.activeElement.matches('#learner-box > summary'))); i++) await page.keyboard.press('Tab');
    assert.equal(await page.evaluate(() => document.activeElement.matches('#learner-box > summary')), true, 'Tab after "Allow none of these" reaches the box');
    await page.keyboard.press('Enter');
    assert.equal(await page.isVisible('#ps'), true, 'Enter opens it');
    const order = [];
    for (let i = 0; i < 13; i++) {
      await page.keyboard.press('Tab');
      order.push(await page.evaluate(() => document.activeElement.id));
    }
    assert.deepEqual(order, ['loss-func', 'lin-ftrs', 'ps', 'wd', 'concat-pool', 'first-bn', 'bn-final', 'lin-first', 'wd-bn-bias', 'train-bn', 'mom-1', 'mom-2', 'mom-3']);
    const labels = { 'Loss function (loss_func)': 'loss-func', 'Head hidden width (lin_ftrs)': 'lin-ftrs', 'Dropout (ps)': 'ps', 'Weight decay (wd)': 'wd', 'Concat pool (concat_pool: average and max)': 'concat-pool', 'First BatchNorm (first_bn)': 'first-bn', 'Final BatchNorm (bn_final)': 'bn-final', 'Linear layers before their BatchNorm (lin_first)': 'lin-first', 'Weight decay on BatchNorm and bias (wd_bn_bias)': 'wd-bn-bias', 'Train BatchNorm while frozen (train_bn)': 'train-bn', Start: 'mom-1', Peak: 'mom-2', End: 'mom-3' };
    for (const [name, id] of Object.entries(labels)) assert.equal(await page.getByLabel(name, { exact: true }).getAttribute('id'), id, name);
    assert.equal(await page.getByRole('group', { name: /^Momentums \(moms\)/ }).count(), 1, 'the momentums are a named group');
  });

  await c.check('BCEWithLogitsLossFlat and "Allow none of these" set each other', async () => {
    const box = () => page.isChecked('#multi-label');
    await page.selectOption('#loss-func', 'BCEWithLogitsLossFlat');
    assert.equal(await box(), true, 'choosing BCEWithLogitsLossFlat ticks the box');
    await page.selectOption('#loss-func', 'LabelSmoothingCrossEntropy');
    assert.equal(await box(), false, 'another loss unticks it');
    await page.click('#multi-label');
    assert.equal(await page.inputValue('#loss-func'), 'BCEWithLogitsLossFlat', 'ticking the box chooses BCEWithLogitsLossFlat');
    await page.click('#multi-label');
    assert.equal(await page.inputValue('#loss-func'), 'LabelSmoothingCrossEntropy', 'unticking it gives the loss chosen before back');
    await page.selectOption('#loss-func', 'CrossEntropyLossFlat');
    assert.equal(await note(page), '');
  });

  // Three colours of 24 px photos, presized to 32.
  await page.click('details.options summary');
  await page.fill('#presize', '32');
  await page.setInputFiles('#pick-folder', colours);
  await page.waitForFunction(() => /^3 classes/.test(document.querySelector('#split').textContent), null, { timeout: 60_000 });
  await waitIdle(page);
  await page.selectOption('#arch', 'resnet18');
  await page.setChecked('#pretrained', false);
  await page.fill('#size', '32');
  await page.fill('#bs', '8');
  await page.selectOption('#method', 'fit_one_cycle');
  await page.fill('#epochs', '1');
  await page.fill('#lr', '0.002');
  await setFields(page, CHANGED);

  await c.check('a note in the Settings names every option changed', async () => {
    assert.equal(await note(page), NOTE);
  });
  await c.check('axe: the options open, the note shown', () => axe(page));

  await c.check('ps 1.5 is an error naming ps, and nothing trains', async () => {
    await page.fill('#ps', '1.5');
    assert.match(await note(page), /ps 1\.5/);
    await page.click('#train');
    await waitIdle(page);
    const error = await takeError(page);
    assert.match(error, /Dropout ps must be at least 0 and below 1.*\(it is 1\.5/);
    assert.equal(await page.$$eval('#epochs-table tbody tr', (r) => r.length), 0);
    await page.fill('#ps', '0.2');
  });

  const t0 = Date.now();
  await page.click('#train');
  await page.waitForFunction(() => /^done/.test(document.querySelector('#status').textContent) || !document.querySelector('#error').hidden, null, { timeout: 300_000 });
  await waitIdle(page);
  log(`trained ResNet-18 one epoch in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  await c.check('ResNet-18 trains with them', async () => {
    assert.equal(await takeError(page), '');
    const o = (await workerState(page)).learner.options;
    assert.deepEqual({ arch: o.arch, lossFunc: o.lossFunc, linFtrs: o.linFtrs, ps: o.ps, concatPool: o.concatPool, firstBn: o.firstBn, bnFinal: o.bnFinal, linFirst: o.linFirst, wd: o.wd, wdBnBias: o.wdBnBias, trainBn: o.trainBn, moms: o.moms },
      { arch: 'resnet18', lossFunc: 'LabelSmoothingCrossEntropy', linFtrs: [128, 64], ps: 0.2, concatPool: false, firstBn: false, bnFinal: true, linFirst: true, wd: 0.05, wdBnBias: true, trainBn: false, moms: [0.9, 0.8, 0.9] });
  });

  await c.check('the fastai/PyTorch export\'s vision_learner call names them', async () => {
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('#export-pytorch')]);
    const path = join(dir, 'model.safetensors');
    await download.saveAs(path);
    const meta = fastaiMetadata(path);
    log(meta.slice(0, 400));
    for (const arg of ["vision_learner(dls, 'resnet18'", 'pretrained=False', 'concat_pool=False', 'lin_ftrs=[128, 64]', 'ps=0.2', 'first_bn=False', 'bn_final=True', 'lin_first=True', 'loss_func=LabelSmoothingCrossEntropy(eps=0.1)', 'wd=0.05', 'wd_bn_bias=True', 'train_bn=False', 'moms=(0.9, 0.8, 0.9)']) {
      assert.ok(meta.includes(arg), `${arg} in ${meta}`);
    }
  });

  const kiln = join(dir, 'model.kiln');
  const [exported] = await Promise.all([page.waitForEvent('download'), page.click('#export')]);
  await exported.saveAs(kiln);
  const project = join(dir, 'colours.kilnproj');
  const [saved] = await Promise.all([page.waitForEvent('download'), page.click('#save-project')]);
  await saved.saveAs(project);
  await waitIdle(page);

  const page2 = await readyPage(browser, base);
  await page2.setInputFiles('#import', kiln);
  await waitIdle(page2, 60_000);
  await c.check('an imported .kiln sets them back in the Settings, and the note says so', async () => {
    assert.equal(await takeError(page2), '');
    assert.deepEqual(await fields(page2), { ...DEFAULTS, ...CHANGED });
    assert.equal(await note(page2), NOTE);
    assert.match(await page2.textContent('#settings-note'), /imported model's: ResNet-18.*vision_learner options loss_func LabelSmoothingCrossEntropy, lin_ftrs \[128, 64\], ps 0\.2/);
  });
  await page2.click('details.options summary');
  await page2.setInputFiles('#pick-folder', colours);
  await page2.waitForFunction(() => /^3 classes/.test(document.querySelector('#split').textContent), null, { timeout: 60_000 });
  await waitIdle(page2);
  await c.check('Train says it continues the model; a changed ps starts a new one', async () => {
    assert.match(await page2.textContent('#train-plan'), /continues model\.kiln/);
    await page2.click('#learner-box > summary');
    await page2.fill('#ps', '0.3');
    assert.match(await page2.textContent('#train-plan'), /new model .*Dropout \(ps\) differs from the model's/);
  });
  await c.check('"Use fastai\'s defaults" puts them back', async () => {
    await page2.click('#learner-defaults');
    assert.deepEqual(await fields(page2), DEFAULTS);
    assert.equal(await note(page2), '');
  });
  await page2.close();

  const page3 = await readyPage(browser, base);
  await page3.setInputFiles('#open-project', project);
  await waitIdle(page3, 120_000);
  await c.check('a saved project keeps them', async () => {
    assert.equal(await takeError(page3), '');
    assert.deepEqual(await fields(page3), { ...DEFAULTS, ...CHANGED });
    assert.equal(await note(page3), NOTE);
  });
  await page3.click('#sample');
  await waitIdle(page3, 120_000);
  await c.check('the sample puts fastai\'s defaults back, and says so', async () => {
    assert.equal(await takeError(page3), '');
    assert.deepEqual(await fields(page3), DEFAULTS);
    assert.equal(await note(page3), '');
    assert.match(await page3.textContent('#settings-note'), /vision_learner options are back to fastai's defaults \(they were loss_func LabelSmoothingCrossEntropy, lin_ftrs \[128, 64\], ps 0\.2/);
  });
  await c.check('no page errors', () => assert.deepEqual([...page.errors, ...page3.errors], []));
  c.done();
});
