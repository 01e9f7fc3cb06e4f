// Issue 29, item 3: samples you manage. Crops of the sample photos, one folder per class; five
// classes loaded, then on the loaded dataset:
//  - a pick adds (a new class folder, more photos of a class, a duplicate name, a bad file):
//    the counts grow by exactly the new photos, split among themselves; every file already
//    there keeps its label and split (the worker's kiln.datasetFiles() before and after); the
//    duplicate and the bad file are named;
//  - a class's thumbnails page through (every photo once, named in its alt text);
//  - a photo moved to another class and another removed: the counts change by exactly that;
//  - a class renamed (Escape cancels, Enter saves) and one deleted after the page asks: the
//    cards and counts follow; through the JS API a rename to a taken name is an Error naming
//    it and changes nothing;
//  - another split seed (a re-label) and a worker restart keep the added files and the edits;
//  - while an edit runs nothing that starts work is usable; Train works on the edited dataset;
//  - "Start a new dataset" replaces it.
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checklist, colourFolders, e2e, photoCrops, readyPage, root, setOption, takeError, trainTinyEpoch, waitIdle, workerState } from './harness.mjs';

const log = (...a) => console.log('[e2e samples]', ...a);
const dir = mkdtempSync(join(tmpdir(), 'kiln-samples-'));
const crops = photoCrops(dir, { side: 40, cropsPerCell: 3 });
// Both folders are called photos/, so the page names their files alike (photos/<class>/<file>).
const base = join(dir, 'base', 'photos');
const more = join(dir, 'more', 'photos');
const classes = readdirSync(join(crops, 'train')).sort();
const NEW = 'china';
const MORE = 'coffee';
const HELD = 8;
const added = [];
let nBase = 0;
for (const c of classes) {
  const files = ['train', 'valid'].flatMap((s) => readdirSync(join(crops, s, c)).map((f) => [s, f])).sort((a, b) => a[1].localeCompare(b[1]));
  const held = c === NEW ? files.length : c === MORE ? HELD : 0;
  files.forEach(([s, f], i) => {
    const to = i >= files.length - held ? more : base;
    mkdirSync(join(to, c), { recursive: true });
    copyFileSync(join(crops, s, c, f), join(to, c, f));
    if (to === more) added.push(`photos/${c}/${f}`);
    else nBase += 1;
  });
}
// A name the dataset holds already, and a file that is no image.
const dupName = readdirSync(join(base, 'rocket'))[0];
mkdirSync(join(more, 'rocket'));
copyFileSync(join(base, 'rocket', dupName), join(more, 'rocket', dupName));
const duplicate = `photos/rocket/${dupName}`;
writeFileSync(join(more, MORE, 'broken.png'), 'not a png at all');
const broken = `photos/${MORE}/broken.png`;
const colours = colourFolders(join(dir, 'colours'), { red: 12, green: 12, blue: 12 });

/** The class cards' counts: {class: [train, valid]}. */
const shownCounts = (page) => page.$$eval('#gallery .class-card', (cards) => Object.fromEntries(cards.map((c) => {
  const m = c.querySelector('.muted').textContent.match(/\((\d+) train, (\d+) valid\)/);
  return [c.querySelector('h4').textContent, [Number(m[1]), Number(m[2])]];
})));
/** The worker's dataset, file by file: {file: [label, split]}. */
const workerFiles = (page) => page.evaluate(async () => Object.fromEntries((await window.kiln.datasetFiles()).map((r) => [r.file, [r.label, r.split]])));
const card = (name) => `#gallery .class-card[data-class="${name}"]`;
const total = (counts) => Object.values(counts).reduce((n, [t, v]) => n + t + v, 0);

/** Every photo of `cls`'s card, page after page (Next, then Previous back to the first). */
async function pageThrough(page, cls) {
  const seen = [];
  let pages = 0;
  for (;;) {
    pages += 1;
    seen.push(...await page.$$eval(`${card(cls)} figure`, (figs) => figs.map((f) => ({ file: f.dataset.file, alt: f.querySelector('img').alt }))));
    if (!(await page.locator(`${card(cls)} .next`).count()) || await page.isDisabled(`${card(cls)} .next`)) break;
    await page.click(`${card(cls)} .next`);
  }
  while (await page.locator(`${card(cls)} .prev`).count() && !(await page.isDisabled(`${card(cls)} .prev`))) await page.click(`${card(cls)} .prev`);
  return { seen, pages };
}

await e2e([], async ({ browser, base: url }) => {
  const c = checklist('e2e samples');
  const page = await readyPage(browser, url);
  // Which controls are enabled whenever the phase changes (passive settings aside).
  await page.evaluate(() => {
    window.samples = [];
    const passive = ['epochs', 'bs', 'size', 'method', 'freeze-epochs', 'lr', 'flip', 'fp16'];
    new MutationObserver(() => window.samples.push({
      phase: document.body.dataset.phase,
      enabled: [...document.querySelectorAll('button, input, select')].filter((x) => !x.disabled && !passive.includes(x.id)).map((x) => x.id || x.getAttribute('aria-label') || x.textContent),
    })).observe(document.body, { attributes: true, attributeFilter: ['data-phase'] });
  });
  await page.setInputFiles('#pick-folder', base);
  const [baseTrain, baseValid] = [nBase - Math.floor(nBase * 0.2), Math.floor(nBase * 0.2)];
  await page.waitForFunction((want) => document.querySelector('#split').textContent.startsWith(want), `5 classes · ${baseTrain} training and ${baseValid} validation images`, { timeout: 60_000 });
  const counts0 = await shownCounts(page);
  const files0 = await workerFiles(page);
  const nNew = added.length;
  const [wantTrain, wantValid] = [nNew - Math.floor(nNew * 0.2), Math.floor(nNew * 0.2)];

  await c.check('a pick onto the dataset adds to it: counts grow by exactly the new photos; the others keep their split', async () => {
    assert.equal(await page.isVisible('#drop-mode'), true, 'the add / new choice is shown');
    assert.equal(await page.isChecked('#mode-add'), true, 'adding is the default');
    await page.setInputFiles('#pick-folder', more);
    await waitIdle(page, 60_000);
    assert.equal(await takeError(page), '');
    const report = await page.textContent('#samples-status');
    log(report);
    assert.match(report, new RegExp(`^${nNew} photos added: ${wantTrain} to train, ${wantValid} to valid; new class ${NEW}; 2 skipped: `));
    assert.ok(report.includes(`${duplicate} already in the dataset`), 'the duplicate is named');
    assert.ok(report.includes(broken), 'the bad file is named');
    const files1 = await workerFiles(page);
    for (const [f, was] of Object.entries(files0)) assert.deepEqual(files1[f], was, `${f} keeps its label and split`);
    assert.deepEqual(Object.keys(files1).filter((f) => !(f in files0)).sort(), [...added].sort(), 'exactly the new photos were added');
    const counts1 = await shownCounts(page);
    assert.equal(total(counts1), total(counts0) + nNew);
    assert.deepEqual(Object.keys(counts1).sort(), [...Object.keys(counts0), NEW].sort());
    const t = (cts) => Object.values(cts).reduce((n, [x]) => n + x, 0);
    assert.equal(t(counts1) - t(counts0), wantTrain, 'the new photos split among themselves');
    assert.equal(counts1[MORE][0] + counts1[MORE][1], counts0[MORE][0] + counts0[MORE][1] + HELD);
    assert.match(await page.textContent('#split'), new RegExp(`^6 classes · ${baseTrain + wantTrain} training and ${baseValid + wantValid} validation images`));
    const w = (await workerState(page)).dataset;
    assert.deepEqual([w.nTrain, w.nValid], [baseTrain + wantTrain, baseValid + wantValid]);
    const skipped = await page.textContent('#skipped');
    assert.match(skipped, new RegExp(`${duplicate.replaceAll('.', '\\.')}\\s*already in the dataset`));
    assert.ok(skipped.includes(broken));
  });
  const counts1 = await shownCounts(page);

  await c.check('a class\'s thumbnails page through: every photo once, its file and class in the alt text', async () => {
    const { seen, pages } = await pageThrough(page, NEW);
    const want = Object.entries(await workerFiles(page)).filter(([, [l]]) => l === NEW).map(([f]) => f).sort();
    assert.equal(pages, Math.ceil(want.length / 12));
    assert.deepEqual(seen.map((s) => s.file).sort(), want);
    for (const s of seen) assert.match(s.alt, new RegExp(`^${s.file.replaceAll('.', '\\.')}, class ${NEW} \\((training|validation)\\)$`));
    assert.match(await page.textContent(`${card(NEW)} .page`), new RegExp(`^1–12 of ${want.length} · page 1 of ${pages}$`));
    assert.equal(await page.isDisabled(`${card(NEW)} .prev`), true);
    const loaded = await page.$eval(`${card(NEW)} img`, (img) => img.decode().then(() => img.naturalWidth));
    assert.ok(loaded > 0, 'the thumbnail shows the photo');
  });

  const moved = Object.entries(await workerFiles(page)).find(([f, [l]]) => l === MORE && f in files0)[0];
  const removed = Object.entries(await workerFiles(page)).find(([, [l]]) => l === 'astronaut')[0];
  await c.check('a photo moved to another class and one removed: the counts change by exactly that', async () => {
    const split = files0[moved][1] === 'train' ? 0 : 1;
    // Move without a class chosen says so; the classes are in the list once it is used.
    await page.click(`figure[data-file="${moved}"] .move`);
    await waitIdle(page);
    assert.match(await takeError(page), /Choose the class to move/);
    await page.focus(`figure[data-file="${moved}"] select`);
    assert.equal(await page.locator(`figure[data-file="${moved}"] select option`).count(), Object.keys(counts1).length);
    await page.selectOption(`figure[data-file="${moved}"] select`, 'rocket');
    await page.click(`figure[data-file="${moved}"] .move`);
    await waitIdle(page);
    const rsplit = files0[removed][1] === 'train' ? 0 : 1;
    await page.click(`figure[data-file="${removed}"] .remove`);
    await waitIdle(page);
    assert.equal(await takeError(page), '');
    const want = structuredClone(counts1);
    want[MORE][split] -= 1;
    want.rocket[split] += 1;
    want.astronaut[rsplit] -= 1;
    assert.deepEqual(await shownCounts(page), want);
    const files = await workerFiles(page);
    assert.deepEqual(files[moved], ['rocket', files0[moved][1]], 'moved, in its split');
    assert.equal(files[removed], undefined, 'removed');
    assert.match(await page.textContent('#split'), /· 2 changes of yours$/);
    assert.equal(await page.locator(`${card(MORE)} figure[data-file="${moved}"]`).count(), 0);
  });

  await c.check('a class renamed (Escape cancels, Enter saves) and one deleted after the page asks: cards and counts follow', async () => {
    const before = await shownCounts(page);
    await page.click(`${card('chelsea')} .rename`);
    await page.keyboard.press('Escape');
    assert.equal(await page.locator(`${card('chelsea')} input`).count(), 0, 'Escape closes the field');
    assert.equal(await page.evaluate(() => document.activeElement.getAttribute('aria-label')), 'Rename class chelsea', 'the focus goes back to Rename');
    await page.click(`${card('chelsea')} .rename`);
    await page.fill(`${card('chelsea')} input`, 'cat');
    await page.keyboard.press('Enter');
    await waitIdle(page);
    assert.equal(await takeError(page), '');
    await page.click(`${card('motorcycle-left')} .delete`);
    assert.match(await page.textContent(`${card('motorcycle-left')} .confirm`), /Delete class motorcycle-left and its \d+ images from the dataset\? Your files stay\./);
    await page.click(`${card('motorcycle-left')} .confirm .cancel`);
    assert.equal(await page.locator(`${card('motorcycle-left')}`).count(), 1, 'Keep it keeps it');
    await page.click(`${card('motorcycle-left')} .delete`);
    await page.click(`${card('motorcycle-left')} .confirm-delete`);
    await waitIdle(page);
    assert.equal(await takeError(page), '');
    const want = structuredClone(before);
    want.cat = want.chelsea;
    delete want.chelsea;
    delete want['motorcycle-left'];
    assert.deepEqual(await shownCounts(page), want);
    assert.match(await page.getAttribute(`${card('cat')} figure img`, 'alt'), /, class cat \(/);
    assert.match(await page.textContent('#split'), /^5 classes/);
    assert.match(await page.textContent('#skipped'), /photos\/motorcycle-left\/\S+\s*deleted in Clean or Photos/);
    assert.deepEqual([...(await workerState(page)).dataset.classes].sort(), Object.keys(want).sort());
  });
  const edited = await shownCounts(page);
  const editedFiles = await workerFiles(page);

  await c.check('JS API: renameClass to a taken name is an Error naming it, and changes nothing', async () => {
    const r = await page.evaluate(async () => {
      let message = null;
      try { await window.kiln.renameClass('cat', 'rocket'); } catch (e) { message = e instanceof Error ? e.message : `not an Error: ${e}`; }
      const s = await window.kiln.summary();
      return { message, classes: s.classes.map((x) => x.name) };
    });
    log('taken name:', r.message);
    assert.match(r.message || '', /rocket/);
    assert.deepEqual(r.classes, Object.keys(edited).sort());
    assert.deepEqual(await workerFiles(page), editedFiles);
  });

  await c.check('another split seed (a re-label) and a worker restart keep the added files and the edits', async () => {
    await page.click('.options > summary');
    await setOption(page, 'seed', '7');
    assert.equal(await takeError(page), '');
    const files = await workerFiles(page);
    assert.deepEqual(Object.keys(files).sort(), Object.keys(editedFiles).sort(), 'the same photos');
    for (const [f, [l]] of Object.entries(editedFiles)) assert.equal(files[f][0], l, `${f}'s class`);
    const counts = await shownCounts(page);
    assert.deepEqual(Object.keys(counts).sort(), Object.keys(edited).sort());
    for (const k of Object.keys(counts)) assert.equal(counts[k][0] + counts[k][1], edited[k][0] + edited[k][1], k);
    assert.equal(await page.isVisible('#data-warnings'), false, 'nothing was dropped');
    assert.equal((await workerState(page)).dataset.options.seed, 7);
    assert.ok(Object.entries(files).some(([f, [, sp]]) => sp !== editedFiles[f][1]), 'the split is another');
    const restarted = await page.evaluate(async () => {
      await window.kiln.restart();
      return Object.fromEntries((await window.kiln.datasetFiles()).map((r) => [r.file, [r.label, r.split]]));
    });
    assert.deepEqual(restarted, files, 'a restarted worker has the same dataset');
  });

  await c.check('while photos were added or edited nothing that starts work was usable', async () => {
    const during = (await page.evaluate(() => window.samples)).filter((s) => ['adding', 'editing'].includes(s.phase));
    assert.deepEqual([...new Set(during.map((s) => s.phase))].sort(), ['adding', 'editing']);
    for (const s of during) assert.deepEqual(s.enabled, [], `${s.phase}`);
  });

  await c.check('Train works on the edited dataset', async () => {
    await trainTinyEpoch(page);
    const w = await workerState(page);
    assert.deepEqual([...w.learner.classes].sort(), Object.keys(edited).sort());
    assert.equal(w.dataset.nTrain + w.dataset.nValid, total(edited));
  });

  await c.check('a labelling the edits no longer fit drops them, said; the added photos stay', async () => {
    await setOption(page, 'label-regex', '^(\\w)');
    assert.equal(await takeError(page), '');
    assert.match(await page.textContent('#data-warnings'), /Your edits \(2 changes, 1 class renamed, 1 class deleted\) no longer apply .*\(the photos you added are still in it\)/s);
    assert.equal(Object.keys(await workerFiles(page)).length, nBase + nNew);
    await setOption(page, 'label-regex', '');
    const counts = await shownCounts(page);
    assert.deepEqual(Object.keys(counts), [...classes]);
    assert.equal(total(counts), nBase + nNew, 'every photo loaded or added, no edits');
    mkdirSync(join(root, 'test-results'), { recursive: true });
    await page.locator('#data-section').screenshot({ path: join(root, 'test-results', 'samples.png') });
  });

  await c.check('"Start a new dataset" replaces it', async () => {
    await page.check('#mode-new');
    await page.setInputFiles('#pick-folder', colours);
    await page.waitForFunction(() => /^3 classes · 29 training and 7 validation/.test(document.querySelector('#split').textContent), null, { timeout: 60_000 });
    assert.deepEqual(Object.keys(await shownCounts(page)), ['blue', 'green', 'red']);
    assert.equal(Object.keys(await workerFiles(page)).length, 36);
    assert.equal(await page.isChecked('#mode-add'), true, 'the next photos add to the new dataset');
    assert.equal(await page.isVisible('#samples-status'), false);
    assert.equal(await page.isVisible('#changes-box'), false);
  });

  await c.check('no page errors', async () => assert.deepEqual(page.errors, []));
  c.done();
});
