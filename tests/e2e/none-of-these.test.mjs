// Issue 32, item 1 (the page): "Allow none of these" in Settings trains one sigmoid per class
// (fastai's multi-label recipe). Train the tiny model on the digits 0–4 with it, then on
// Predict, photos of 5–9 (digits it never saw):
//  - the epoch table's metric column is accuracy_multi; the many-photos table shows some of
//    them as "none of these", and one of those, predicted alone, says "none of these";
//  - the class threshold slider starts at the model's 0.5; moving it below that photo's top
//    probability shows the class, moving it up again removes it, with no new prediction (the
//    probabilities shown stay the same); the table follows it, and Download sorted puts photos
//    of no class in none-of-these/ with an empty class in predictions.csv, as the CLI does;
//  - the Settings checkbox is labelled and reached and ticked from the keyboard;
//  - with it off (a softmax), the same photo gets a class and Predict has no slider.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checklist, e2e, readyPage, root, waitIdle } from './harness.mjs';

const log = (...a) => console.log('[e2e none-of-these]', ...a);
const dir = mkdtempSync(join(tmpdir(), 'kiln-none-of-these-'));
const made = spawnSync(join(root, 'target/release/kiln'), ['samples', '-o', join(dir, 'digits')], { encoding: 'utf8' });
assert.equal(made.status, 0, `kiln samples failed (build the CLI: cargo build --release): ${made.stderr}`);
// The dataset: 100 photos of each of 0–4. The photos to predict: 8 of each of 5–9.
const byName = (a, b) => a.localeCompare(b, 'en', { numeric: true });
for (const d of ['0', '1', '2', '3', '4']) {
  mkdirSync(join(dir, 'train', d), { recursive: true });
  for (const f of readdirSync(join(dir, 'digits', d)).sort(byName).slice(0, 100)) cpSync(join(dir, 'digits', d, f), join(dir, 'train', d, f));
}
mkdirSync(join(dir, 'others'));
for (const d of ['5', '6', '7', '8', '9']) {
  for (const f of readdirSync(join(dir, 'digits', d)).sort(byName).slice(0, 8)) cpSync(join(dir, 'digits', d, f), join(dir, 'others', `${d}_${f}`));
}

/** Settings for a quick run: the tiny model at 32 px, fit_one_cycle(4), lr 0.01, batch 16. */
async function train(page, multi) {
  await page.selectOption('#arch', 'tiny');
  await page.fill('#size', '32');
  await page.fill('#bs', '16');
  await page.selectOption('#method', 'fit_one_cycle');
  await page.fill('#epochs', '4');
  await page.fill('#lr', '0.01');
  await page.setChecked('#flip', false);
  await page.setChecked('#multi-label', multi);
  await page.click('#train');
  await page.waitForFunction(() => document.querySelectorAll('#epochs-table tbody tr').length === 4, null, { timeout: 600_000 });
  await waitIdle(page, 600_000);
  assert.equal(await page.isVisible('#error'), false, await page.textContent('#error'));
}

/** Predict one photo on the page; its label and bars' texts. */
async function predictOne(page, path) {
  await page.setInputFiles('#predict-file', path);
  await waitIdle(page);
  assert.equal(await page.isVisible('#error'), false, await page.textContent('#error'));
  return shown(page);
}
const shown = (page) => page.evaluate(() => ({
  label: document.querySelector('#predict-label').textContent,
  bars: [...document.querySelectorAll('#bars .bar')].map((b) => b.textContent),
}));

/** Move the slider to `v` as a user does (an input event), and wait for the page to redraw. */
async function slide(page, v) {
  await page.$eval('#predict-thresh', (s, v) => { s.value = String(v); s.dispatchEvent(new Event('input', { bubbles: true })); }, v);
  await page.waitForFunction((v) => document.querySelector('#predict-thresh-value').textContent === Number(v).toFixed(2), v);
}

/** A zip's entries (python's zipfile): name → text for predictions.csv, names for the rest. */
function unzip(path) {
  const r = spawnSync('python3', ['-c', 'import sys, zipfile, json; z = zipfile.ZipFile(sys.argv[1]); print(json.dumps({"names": z.namelist(), "csv": z.read("predictions.csv").decode()}))', path], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout);
}

await e2e([], async ({ browser, base }) => {
  const c = checklist('e2e none-of-these');
  const page = await readyPage(browser, base);
  // Download sorted as a Blob download (no File System Access picker in a headless browser).
  await page.evaluate(() => { delete Window.prototype.showSaveFilePicker; delete window.showSaveFilePicker; });

  await c.check('the Settings checkbox is labelled, off by default, and ticked from the keyboard', async () => {
    const box = page.getByRole('checkbox', { name: 'Allow “none of these” (one sigmoid per class)' });
    assert.equal(await box.count(), 1, 'one checkbox with that name');
    assert.equal(await box.isChecked(), false, 'off by default (softmax)');
    await page.focus('#flip');
    await page.keyboard.press('Tab');
    assert.equal(await page.evaluate(() => document.activeElement.id), 'multi-label', 'Tab after the flips reaches it');
    await page.keyboard.press('Space');
    assert.equal(await box.isChecked(), true, 'Space ticks it');
    await page.keyboard.press('Space');
    assert.equal(await box.isChecked(), false, 'and unticks it');
  });

  // The digits at their own 32 px: presize 36 before they load.
  await page.click('details.options summary');
  await page.fill('#presize', '36');
  await page.setInputFiles('#pick-folder', join(dir, 'train'));
  await page.waitForFunction(() => /training and \d+ validation images/.test(document.querySelector('#split').textContent), null, { timeout: 60_000 });
  await waitIdle(page);
  const t0 = Date.now();
  await train(page, true);
  log(`trained with one sigmoid per class in ${((Date.now() - t0) / 1000).toFixed(1)} s; last epoch: ${(await page.$$eval('#epochs-table tbody tr', (trs) => trs.at(-1).textContent))}`);

  await c.check('the epoch table\'s metric column is accuracy_multi', async () => {
    assert.equal(await page.textContent('#metric-head'), 'accuracy_multi');
  });

  // Count the model's runs from here on: the slider must start none.
  await page.evaluate(() => {
    window.runs = 0;
    const k = window.kiln;
    for (const m of ['predict', 'predictMany']) { const f = k[m].bind(k); k[m] = (...a) => { window.runs += 1; return f(...a); }; }
  });

  // The photos of 5–9 in the table: those it calls none of these, with their top probability.
  await page.setInputFiles('#predict-folder', join(dir, 'others'));
  await waitIdle(page);
  assert.equal(await page.isVisible('#error'), false, await page.textContent('#error'));
  const rows = () => page.$$eval('#sort-table tr.row', (trs) => trs.map((tr) => ({ file: tr.querySelector('td.file').textContent, label: tr.querySelector('td.label').firstChild.textContent, p: parseFloat(tr.querySelector('td.num').textContent) / 100 })));
  // Only those of none of these, likeliest first: the rows drawn are the top of that list.
  await page.click('#sort-by-p');
  await page.selectOption('#sort-filter', 'none');
  await page.waitForFunction(() => /showing \d+$/.test(document.querySelector('#sort-counts').textContent));
  const counts = await page.textContent('#sort-counts');
  const none = await rows();
  const nNone = Number(counts.match(/showing (\d+)$/)[1]);
  log(`${nNone} of 40 photos of 5–9 are none of these (${counts}); likeliest: ${JSON.stringify(none.slice(0, 3))}`);
  // The photo to look at: none of these, with a top probability the slider can go below.
  const pick = none.filter((r) => r.p > 0.06)[0];
  await c.check('the table shows some photos of 5–9 as none of these, and the slider starts at the model\'s 0.5', async () => {
    assert.ok(nNone >= 1 && none.length >= 1 && none.every((r) => r.label === 'none of these'), `none of these: ${nNone}; rows drawn: ${JSON.stringify(none.slice(0, 5))}`);
    assert.match(counts, new RegExp(`none of these ${nNone}`));
    assert.ok(pick, `a none-of-these photo with a top probability over 6% (${JSON.stringify(none)})`);
    assert.equal(await page.isVisible('#thresh-box'), true, 'the slider is shown');
    assert.equal(await page.inputValue('#predict-thresh'), '0.5');
    assert.equal(await page.textContent('#predict-thresh-value'), '0.50');
  });

  const name = pick.file.split('/').pop();
  const photo = join(dir, 'others', name);
  const runsBefore = await page.evaluate(() => window.runs);
  const first = await predictOne(page, photo);
  log(`${pick.file} alone: ${first.label} | ${first.bars.join(' | ')}`);
  const runs = await page.evaluate(() => window.runs);

  await c.check('that photo alone says none of these', async () => {
    assert.equal(runs, runsBefore + 1, 'one prediction');
    assert.match(first.label, /^none of these/);
    assert.match(await page.getAttribute('#predict-img', 'alt'), /predicted none of these$/);
  });

  const below = Math.max(0.05, Math.floor((pick.p - 0.005) / 0.05) * 0.05);
  await c.check(`the slider down to ${below.toFixed(2)} shows its class, up again removes it, with no new prediction`, async () => {
    await slide(page, below);
    const down = await shown(page);
    log(`at ${below.toFixed(2)}: ${down.label}`);
    assert.doesNotMatch(down.label, /none of these/);
    assert.match(down.label, /^[0-4] \(/, 'a class of the model');
    assert.deepEqual(down.bars, first.bars, 'the same probabilities in the bars');
    // The table follows: that photo's row is no longer among those of none of these.
    const noneNow = (v) => page.waitForFunction(({ f, v, n }) => {
      const counts = document.querySelector('#sort-counts').textContent.match(/none of these (\d+)/);
      const drawn = [...document.querySelectorAll('#sort-table tr.row td.file')].map((td) => td.textContent);
      return counts && (v < 0.5 ? Number(counts[1]) < n && !drawn.includes(f) : Number(counts[1]) > n);
    }, { f: pick.file, v, n: nNone });
    await noneNow(below);
    log(`the table at ${below.toFixed(2)}: ${await page.textContent('#sort-counts')}`);
    await slide(page, 0.95);
    const up = await shown(page);
    assert.match(up.label, /^none of these/);
    await noneNow(0.95);
    log(`the table at 0.95: ${await page.textContent('#sort-counts')}`);
    assert.deepEqual(up.bars, first.bars, 'the same bars');
    assert.equal(await page.evaluate(() => window.runs), runs, 'the model did not run again');
    await slide(page, 0.5);
  });

  await c.check('Download sorted: none-of-these/ for photos of no class, an empty class in predictions.csv', async () => {
    await slide(page, below);
    const [d] = await Promise.all([page.waitForEvent('download', { timeout: 60_000 }), page.click('#sort-download')]);
    const path = join(dir, 'sorted.zip');
    await d.saveAs(path);
    await waitIdle(page);
    const zip = unzip(path);
    const lines = zip.csv.trimEnd().split('\n').map((l) => l.split(','));
    assert.deepEqual(lines[0].slice(0, 3), ['file', 'class', 'probability']);
    const byFile = new Map(lines.slice(1).map((l) => [l[0], l]));
    assert.equal(byFile.size, 40);
    // Each row's class column: the classes above the slider in the model's order, separated by
    // spaces (the CLI's); probabilities within 1e-4 of the threshold are left unchecked.
    for (const [file, l] of byFile) {
      const probs = l.slice(3).map(Number);
      const want = probs.map((p, i) => [p, lines[0][3 + i]]).filter(([p]) => p > below + 1e-6).map(([, cl]) => cl).join(' ');
      if (probs.every((p) => Math.abs(p - below) > 1e-4)) assert.equal(l[1], want, `${file}: class`);
      const folder = zip.names.find((n) => n.endsWith(`/${file.split('/').pop()}`)).split('/')[0];
      const wantFolder = want === '' ? 'none-of-these' : want.includes(' ') || Number(l[2]) < 0.5 ? 'unsure' : want;
      if (probs.every((p) => Math.abs(p - below) > 1e-4)) assert.equal(folder, wantFolder, `${file}: folder`);
    }
    assert.notEqual(byFile.get(pick.file)[1], '', 'the picked photo has a class at the low threshold');
    await slide(page, 0.95);
    const [d2] = await Promise.all([page.waitForEvent('download', { timeout: 60_000 }), page.click('#sort-download')]);
    await d2.saveAs(join(dir, 'sorted-high.zip'));
    await waitIdle(page);
    const high = unzip(join(dir, 'sorted-high.zip'));
    assert.ok(high.names.includes(`none-of-these/${name}`), 'at 0.95 the picked photo is in none-of-these/');
    assert.equal(high.csv.split('\n').find((l) => l.startsWith(`${pick.file},`)).split(',')[1], '', 'with an empty class');
    assert.equal(await page.evaluate(() => window.runs), runs, 'the model did not run again');
    await slide(page, 0.5);
  });

  await c.check('with the option off (softmax), the same photo gets a class and there is no slider', async () => {
    await train(page, false);
    assert.equal(await page.textContent('#metric-head'), 'accuracy');
    const soft = await predictOne(page, photo);
    log(`softmax: ${pick.file}: ${soft.label}`);
    assert.match(soft.label, /^[0-4] \(\d+\.\d%\)$/);
    assert.equal(await page.isVisible('#thresh-box'), false);
  });

  await c.check('no page errors', async () => assert.deepEqual(page.errors, []));
  c.done();
});
