// Beyond one label (the page): a photo may have several labels, or none.
//  - a folder with a labels CSV (fastai's from_csv: fname, labels separated by spaces) loads
//    with each photo's set of labels: the summary says how many photos have several labels and
//    how many none, a photo the CSV does not list is skipped saying so, and "Allow none of
//    these" is ticked and fixed, with a note saying why;
//  - the tiny model trained on red, blue, magenta ("blue red") and green ("") photos predicts
//    an unseen magenta photo as "blue, red" and a green one as "none of these"; Interpret shows
//    each class's hits, misses and wrong calls in a table instead of the confusion matrix;
//  - a single-label folder next (a new dataset): the box is free again, as it was, and Train
//    trains a softmax;
//  - the same photo in two class folders is one photo with both labels while the box is on,
//    two photos while it is off (the box re-labels the loaded photos);
//  - a broken CSV (no labels column; a bad is_valid on line 3) is an error naming the CSV (and
//    the line), and loads nothing;
//  - a project keeps the box (with no CSV, no model) and, with a CSV and a sigmoid model,
//    Predict's class threshold.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checklist, colourFolders, e2e, readyPage, root, takeError, waitIdle } from './harness.mjs';
import { png } from './png.mjs';

const log = (...a) => console.log('[e2e multi-label]', ...a);
const dir = mkdtempSync(join(tmpdir(), 'kiln-multi-label-'));
const solid = (c) => png(12, 10, () => c);

// 16 photos of each colour (as the core's test): red, blue, magenta (both), green (neither);
// their labels in colours/labels.csv beside them, and one photo the CSV does not list.
const COLOURS = [['r', (v) => [v, 20, 20], 'red'], ['b', (v) => [20, 20, v], 'blue'], ['m', (v) => [v, 20, v], 'blue red'], ['g', (v) => [20, v, 20], '']];
mkdirSync(join(dir, 'colours'));
let csv = 'fname,labels\n';
for (let i = 0; i < 16; i++) {
  for (const [kind, colour, labels] of COLOURS) {
    writeFileSync(join(dir, 'colours', `${kind}${i}.png`), solid(colour(180 + i * 4)));
    csv += `${kind}${i}.png,${labels}\n`;
  }
}
writeFileSync(join(dir, 'colours', 'labels.csv'), csv);
writeFileSync(join(dir, 'colours', 'extra.png'), solid([200, 200, 20]));
// Photos to predict, of colours the model never saw exactly.
writeFileSync(join(dir, 'magenta.png'), solid([230, 20, 230]));
writeFileSync(join(dir, 'green.png'), solid([20, 230, 20]));
// Broken CSVs: no labels column; is_valid "maybe" on line 3.
for (const [name, text] of [['nolabels', 'fname,colour\nr0.png,red\nb0.png,blue\n'], ['badline', 'fname,labels,is_valid\nr0.png,red,False\nb0.png,blue,maybe\n']]) {
  mkdirSync(join(dir, name));
  writeFileSync(join(dir, name, 'r0.png'), solid([200, 20, 20]));
  writeFileSync(join(dir, name, 'b0.png'), solid([20, 20, 200]));
  writeFileSync(join(dir, name, 'labels.csv'), text);
}
// One label a photo: three colour folders.
colourFolders(join(dir, 'single'), { red: 12, green: 12, blue: 12 }, 16);
// Copies: red/ and blue/ hold 8 photos of their own and the same 4 magenta photos (same name,
// same bytes): 24 files, 20 photos when copies merge.
for (const [folder, colour] of [['red', [200, 20, 20]], ['blue', [20, 20, 200]]]) {
  mkdirSync(join(dir, 'copies', folder), { recursive: true });
  for (let i = 0; i < 8; i++) writeFileSync(join(dir, 'copies', folder, `${folder}${i}.png`), png(12, 10, (x, y) => colour.map((v) => v - ((x + y + i) % 5))));
  for (let i = 0; i < 4; i++) writeFileSync(join(dir, 'copies', folder, `m${i}.png`), solid([180 + i * 10, 20, 180 + i * 10]));
}

/** axe-core (injected by the test, as accessibility.test.mjs does): serious and critical violations. */
async function axe(page) {
  if (!(await page.evaluate(() => 'axe' in window))) await page.addScriptTag({ path: join(root, 'node_modules/axe-core/axe.min.js') });
  return page.evaluate(async () => (await window.axe.run(document, { resultTypes: ['violations'] })).violations
    .filter((v) => ['serious', 'critical'].includes(v.impact)).map((v) => `${v.impact} ${v.id}: ${v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join(', ')}`));
}

/** What the page says of its dataset and the "none of these" box. */
const data = (page) => page.evaluate(() => ({
  split: document.querySelector('#split').textContent,
  sets: document.querySelector('#label-sets').hidden ? null : document.querySelector('#label-sets').textContent,
  cards: [...document.querySelectorAll('#gallery .class-card')].map((c) => `${c.querySelector('h4').textContent}: ${c.querySelector('.muted').textContent}`),
  checked: document.querySelector('#multi-label').checked,
  disabled: document.querySelector('#multi-label').disabled,
  why: document.querySelector('#multi-label-why').hidden ? null : document.querySelector('#multi-label-why').textContent,
}));
const photos = (split) => { const m = split.match(/(\d+) training and (\d+) validation images/); return Number(m[1]) + Number(m[2]); };

/** Choose a folder as a new dataset; wait until the page is idle again. */
async function loadFolder(page, path) {
  if (await page.isVisible('#drop-mode')) await page.check('#mode-new');
  await page.setInputFiles('#pick-folder', path);
  await page.waitForTimeout(100);
  await waitIdle(page, 120_000);
}

/** The tiny model at 16 px, fit_one_cycle(`epochs`) at `lr`, batch 16, no flips: Train. */
async function train(page, epochs, lr) {
  await page.selectOption('#arch', 'tiny');
  await page.fill('#size', '16');
  await page.fill('#bs', '16');
  await page.selectOption('#method', 'fit_one_cycle');
  await page.fill('#epochs', String(epochs));
  await page.fill('#lr', String(lr));
  await page.setChecked('#flip', false);
  await page.click('#train');
  await page.waitForFunction((n) => document.querySelectorAll('#epochs-table tbody tr').length === n || !document.querySelector('#error').hidden, epochs, { timeout: 600_000 });
  await waitIdle(page, 600_000);
  assert.equal(await page.isVisible('#error'), false, await page.textContent('#error'));
}

/** Predict one photo: its label and the image's alt text (the classes alone). */
async function predictOne(page, path) {
  await page.setInputFiles('#predict-file', path);
  await page.waitForTimeout(100);
  await waitIdle(page);
  assert.equal(await page.isVisible('#error'), false, await page.textContent('#error'));
  return { label: await page.textContent('#predict-label'), alt: await page.getAttribute('#predict-img', 'alt') };
}

/** Save project as a download, to `name` in the test's folder. */
async function saveProject(page, name) {
  const [d] = await Promise.all([page.waitForEvent('download', { timeout: 60_000 }), page.click('#save-project')]);
  const path = join(dir, name);
  await d.saveAs(path);
  await waitIdle(page);
  return path;
}
async function openProject(page, path) {
  await page.setInputFiles('#open-project', path);
  await page.waitForTimeout(100);
  await waitIdle(page, 120_000);
  assert.equal(await page.isVisible('#error'), false, await page.textContent('#error'));
}

await e2e([], async ({ browser, base }) => {
  const c = checklist('e2e multi-label');
  const page = await readyPage(browser, base, { bypassCSP: true });
  await page.evaluate(() => { delete Window.prototype.showSaveFilePicker; delete window.showSaveFilePicker; });
  // Photos of 12 × 10 px: presize 16 before they load.
  await page.click('details.options summary');
  await page.fill('#presize', '16');

  await c.check('a CSV without a labels column: an error naming the CSV, nothing loaded', async () => {
    await loadFolder(page, join(dir, 'nolabels'));
    const e = await takeError(page);
    log(`no labels column: ${e}`);
    assert.match(e, /nolabels\/labels\.csv/);
    assert.match(e, /labels/);
    assert.equal(await page.isVisible('#dataset'), false, 'no dataset');
  });

  await c.check('a bad is_valid on line 3: an error naming the CSV and the line', async () => {
    await loadFolder(page, join(dir, 'badline'));
    const e = await takeError(page);
    log(`bad line: ${e}`);
    assert.match(e, /line 3 of badline\/labels\.csv/);
    assert.equal(await page.isVisible('#dataset'), false, 'no dataset');
  });

  await loadFolder(page, join(dir, 'colours'));
  const csvData = await data(page);
  log(`the CSV's dataset: ${csvData.split} | ${csvData.sets} | ${csvData.cards.join(' | ')}`);

  await c.check('the CSV\'s dataset: several labels a photo, 16 with none, the unlisted photo skipped', async () => {
    assert.equal(await page.isVisible('#error'), false, await page.textContent('#error'));
    assert.equal(photos(csvData.split), 64, 'the 64 listed photos (the CSV is not a photo)');
    assert.match(csvData.sets, /labels from colours\/labels\.csv/);
    assert.match(csvData.sets, /16 of the 64 photos have two or more labels, 16 have none of the classes/);
    assert.deepEqual(csvData.cards.map((t) => t.split(':')[0]), ['blue', 'red']);
    assert.ok(csvData.cards.every((t) => /: 32 images/.test(t)), 'each class: 16 photos of it and 16 magenta');
    const skipped = await page.$$eval('#skipped tbody tr', (trs) => trs.map((tr) => tr.textContent));
    assert.equal(skipped.length, 1, JSON.stringify(skipped));
    assert.match(skipped[0], /extra\.png.*not in the labels CSV/);
  });

  await c.check('"Allow none of these" is ticked and fixed, and the page says why', async () => {
    assert.equal(csvData.checked, true);
    assert.equal(csvData.disabled, true);
    assert.match(csvData.why, /these photos have several labels \(or none\), so each class gets its own yes\/no/);
    assert.match(await page.getAttribute('#multi-label', 'aria-describedby'), /multi-label-why/);
  });

  const t0 = Date.now();
  await train(page, 12, 0.02);
  log(`trained 12 epochs in ${((Date.now() - t0) / 1000).toFixed(1)} s; last: ${await page.$$eval('#epochs-table tbody tr', (trs) => trs.at(-1).textContent)}`);

  await c.check('the model: a magenta photo is "blue, red", a green one "none of these"', async () => {
    assert.equal(await page.textContent('#metric-head'), 'accuracy_multi');
    const magenta = await predictOne(page, join(dir, 'magenta.png'));
    log(`magenta: ${magenta.label} | ${magenta.alt}`);
    assert.match(magenta.alt, /predicted blue, red$/);
    assert.match(magenta.label, /^blue \(\d+\.\d%\), red \(\d+\.\d%\)$/);
    const green = await predictOne(page, join(dir, 'green.png'));
    log(`green: ${green.label} | ${green.alt}`);
    assert.match(green.alt, /predicted none of these$/);
    assert.match(green.label, /^none of these/);
  });

  await c.check('Interpret: each class\'s hits, misses and wrong calls in a table, not the matrix', async () => {
    // Training ends by interpreting the validation set.
    await page.waitForSelector('#interpretation:not([hidden])', { timeout: 60_000 });
    assert.equal(await page.isVisible('#per-class'), true);
    assert.equal(await page.isVisible('#confusion-box'), false, 'no confusion matrix for sets of labels');
    const head = await page.$$eval('#per-class thead th', (ths) => ths.map((t) => [t.getAttribute('scope'), t.textContent]));
    assert.deepEqual(head.map((h) => h[1].split(' ')[0]), ['Class', 'Hits', 'Missed', 'Wrong', 'Precision', 'Recall']);
    assert.ok(head.every((h) => h[0] === 'col'));
    const rows = await page.$$eval('#per-class tbody tr', (trs) => trs.map((tr) => [tr.querySelector('th[scope=row]')?.textContent, ...[...tr.querySelectorAll('td')].map((t) => t.textContent)]));
    const status = await page.textContent('#interpret-status');
    log(`per class: ${JSON.stringify(rows)}; ${status}; note ${await page.textContent('#per-class-note')}`);
    assert.deepEqual(rows.map((r) => r[0]), ['blue', 'red']);
    for (const [, tp, fn, fp, precision, recall] of rows) {
      assert.ok([tp, fn, fp].every((v) => /^\d+$/.test(v)), 'counts');
      assert.match(precision, /^(\d\.\d\d|—)$/);
      assert.match(recall, /^(\d\.\d\d|—)$/);
    }
    assert.match(status, /validation images: \d+ of \d+ labels found, \d+ given wrongly \(threshold 0\.50\)/);
    const captions = await page.$$eval('#top-losses figcaption', (fs) => fs.map((f) => f.textContent));
    log(`top losses: ${captions.slice(0, 3).join(' | ')}`);
    assert.ok(captions.length > 0, 'top losses shown');
  });

  await c.check('axe: the several-labels note, the fixed box and the per-class table', async () => {
    assert.deepEqual(await axe(page), []);
  });

  // Predict's threshold, kept by the project.
  await page.$eval('#predict-thresh', (s) => { s.value = '0.4'; s.dispatchEvent(new Event('input', { bubbles: true })); });
  const csvProject = await saveProject(page, 'colours.kilnproj');

  await loadFolder(page, join(dir, 'single'));
  const single = await data(page);
  log(`then one label a photo: ${single.split} | ${single.cards.join(' | ')}`);
  await c.check('a single-label folder next: the box is free again, off as it was, no note', async () => {
    assert.equal(await page.isVisible('#error'), false, await page.textContent('#error'));
    assert.equal(photos(single.split), 36);
    assert.equal(single.sets, null, 'no several-labels note');
    assert.equal(single.checked, false);
    assert.equal(single.disabled, false);
    assert.equal(single.why, null);
  });

  await c.check('and Train trains a softmax on it', async () => {
    await train(page, 2, 0.01);
    assert.equal(await page.textContent('#metric-head'), 'accuracy');
    assert.equal(await page.isVisible('#thresh-box'), false, 'no class threshold for a softmax');
    await page.waitForSelector('#interpretation:not([hidden])', { timeout: 60_000 });
    assert.equal(await page.isVisible('#confusion-box'), true, 'the confusion matrix');
    assert.equal(await page.isVisible('#per-class-box'), false, 'no per-class table for a softmax');
  });

  await loadFolder(page, join(dir, 'copies'));
  const apart = await data(page);
  await page.check('#multi-label');
  await page.waitForTimeout(100);
  await waitIdle(page, 120_000);
  const merged = await data(page);
  log(`copies, box off: ${apart.split} | ${apart.cards.join(' | ')}; on: ${merged.split} | ${merged.sets} | ${merged.cards.join(' | ')}`);
  await c.check('the same photo in two class folders: two photos with the box off, one with both labels with it on', async () => {
    assert.equal(await page.isVisible('#error'), false, await page.textContent('#error'));
    assert.equal(photos(apart.split), 24);
    assert.equal(apart.sets, null);
    assert.equal(photos(merged.split), 20);
    assert.match(merged.sets, /several class folders/);
    assert.match(merged.sets, /4 of the 20 photos have two or more labels, 0 have none/);
    assert.ok(merged.cards.every((t) => /: 12 images/.test(t)), merged.cards.join(' | '));
    assert.equal(merged.disabled, false, 'the box itself merged them: it stays free');
    // A merged photo shows in both cards, its alt text naming both classes.
    const alts = await page.$$eval('#gallery img', (imgs) => imgs.map((i) => i.alt).filter((a) => /m0\.png/.test(a)));
    assert.equal(alts.length, 2, JSON.stringify(alts));
    assert.ok(alts.every((a) => /classes blue, red/.test(a)), JSON.stringify(alts));
  });

  const copiesProject = await saveProject(page, 'copies.kilnproj');
  await page.uncheck('#multi-label');
  await page.waitForTimeout(100);
  await waitIdle(page, 120_000);
  await c.check('the box off again: two photos again', async () => {
    assert.equal(photos((await data(page)).split), 24);
  });

  await c.check('a project keeps the box (no CSV; its model is another dataset\'s softmax): opened, the copies are one photo again', async () => {
    await openProject(page, copiesProject);
    const d = await data(page);
    log(`copies project: ${d.split} | ${d.sets}`);
    assert.equal(d.checked, true);
    assert.equal(d.disabled, false);
    assert.equal(photos(d.split), 20);
  });

  await c.check('a project with a labels CSV and a sigmoid model: the box fixed on, Predict\'s threshold as saved', async () => {
    await page.uncheck('#multi-label');
    await page.waitForTimeout(100);
    await waitIdle(page, 120_000);
    await openProject(page, csvProject);
    const d = await data(page);
    log(`colours project: ${d.split} | ${d.sets}`);
    assert.equal(photos(d.split), 64);
    assert.equal(d.checked, true);
    assert.equal(d.disabled, true);
    assert.match(d.sets, /16 of the 64 photos have two or more labels/);
    assert.equal(await page.inputValue('#predict-thresh'), '0.4');
    assert.equal(await page.textContent('#predict-thresh-value'), '0.40');
    // A re-label of the project's photos (another split seed) still reads its CSV.
    await page.fill('#seed', '7');
    await page.dispatchEvent('#seed', 'change');
    await page.waitForTimeout(100);
    await waitIdle(page, 120_000);
    assert.equal(await page.isVisible('#error'), false, await page.textContent('#error'));
    assert.equal(photos((await data(page)).split), 64);
  });

  await c.check('no page errors', async () => assert.deepEqual(page.errors, []));
  c.done();
});
