// Issue 29, item 2: clean the data with the model (fastai's ImageClassifierCleaner).
// Crops of the sample photos with two training photos mislabelled on purpose (moved into
// another class's folder); load, train (EfficientNet-Lite0's head on its bundled ImageNet body,
// two epochs: natively both photos then rank first to third in their class for five model
// seeds, where a motorcycle crop put under chelsea ranked anywhere and the tiny model from
// random weights ranked them anywhere), then on Clean:
//  - each mislabelled photo is among the first rows (hardest first) of the class it was put in;
//  - relabel one to its true class, delete the other (choices kept across a class switch),
//    Apply: the summary's counts change by exactly that, the worker's dataset too;
//  - while the losses are computed nothing that starts work is usable;
//  - Train again works on the cleaned data (the tiny model, one epoch; the cleaner then shows
//    the relabelled photo in its new class and the deleted one nowhere);
//  - Download changes gives kiln-changes.csv with exactly those two rows, and
//    `kiln summary DIR --changes that.csv` gives the page's per-class counts;
//  - through the JS API a change naming an unknown file is an Error naming it, and changes nothing;
//  - the same files relabelled with other options keep the changes; a labelling they no longer
//    fit drops them and says so.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, renameSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { checklist, e2e, photoCrops, readyPage, root, setOption, waitIdle, workerState } from './harness.mjs';

const log = (...a) => console.log('[e2e cleaner]', ...a);
const kiln = join(root, 'target/release/kiln');
const dir = mkdtempSync(join(tmpdir(), 'kiln-cleaner-'));
const crops = photoCrops(dir, { side: 40, cropsPerCell: 3 });
const top = basename(crops);
// Two training photos put in the wrong class's folder (crops of the photo's middle, where its
// subject is): the page names them from the folder it was given (crops/train/<class>/<file>).
const MOVES = [['chelsea', 'rocket'], ['astronaut', 'coffee']].map(([truth, wrong]) => {
  const file = `${truth}_r1c2_0.png`;
  renameSync(join(crops, 'train', truth, file), join(crops, 'train', wrong, file));
  return { truth, wrong, path: `${top}/train/${wrong}/${file}` };
});
const [relabelled, deleted] = MOVES;
const TOP_K = 3;

/** The class cards' counts: {class: [train, valid]}. */
const shownCounts = (page) => page.$$eval('#gallery .class-card', (cards) => Object.fromEntries(cards.map((c) => {
  const m = c.querySelector('.muted').textContent.match(/\((\d+) train, (\d+) valid\)/);
  return [c.querySelector('h4').textContent, [Number(m[1]), Number(m[2])]];
})));

/** `kiln summary` on the folder (with `args`): {class: [train, valid]} from its table, and its text. */
function cliSummary(args = []) {
  const r = spawnSync(kiln, ['summary', crops, ...args], { encoding: 'utf8' });
  assert.equal(r.status, 0, `kiln summary failed: ${r.stderr}`);
  const lines = r.stdout.split('\n');
  const head = lines.findIndex((l) => /^\s+class\s+train\s+valid\s*$/.test(l));
  assert.ok(head >= 0, r.stdout);
  const counts = {};
  for (const l of lines.slice(head + 1)) {
    const m = l.match(/^\s+(\S+)\s+(\d+)\s+(\d+)\s*$/);
    if (!m) break;
    counts[m[1]] = [Number(m[2]), Number(m[3])];
  }
  return { counts, text: r.stdout };
}

/** Every photo of `cls` in the Clean grid, page after page, in order: its file, alt text, and
 * whether a change to it is applied; the grid is left on its first page. */
async function gridFor(page, cls) {
  await page.selectOption('#clean-class', cls);
  const rows = [];
  for (;;) {
    rows.push(...await page.$$eval('#clean-grid figure', (figs) => figs.map((f) => ({ file: f.querySelector('select').dataset.file, alt: f.querySelector('img').alt, applied: f.querySelector('select').dataset.applied === 'true' }))));
    if (await page.isDisabled('#clean-next')) break;
    await page.click('#clean-next');
  }
  // Back to the first page (Previous pages back too).
  while (!(await page.isDisabled('#clean-prev'))) await page.click('#clean-prev');
  return rows;
}

/** Train on the loaded photos (see the header; training again needs only to work: the tiny
 * model, 1 epoch). */
async function train(page, epochs = 2, arch = 'efficientnet_lite0', size = 64) {
  await page.selectOption('#arch', arch);
  await page.fill('#size', String(size));
  await page.fill('#bs', '16');
  await page.selectOption('#method', 'fit_one_cycle');
  await page.fill('#epochs', String(epochs));
  await page.fill('#lr', '0.003');
  await page.click('#train');
  await page.waitForFunction((n) => document.querySelectorAll('#epochs-table tbody tr').length === n && document.body.dataset.phase === 'idle', epochs, { timeout: 300_000 });
  assert.equal(await page.isVisible('#error'), false, await page.textContent('#error'));
}

await e2e([], async ({ browser, base }) => {
  const c = checklist('e2e cleaner');
  const page = await readyPage(browser, base);
  await page.setInputFiles('#pick-folder', crops);
  await page.waitForFunction(() => /^6 classes · 216 training and 72 validation images/.test(document.querySelector('#split').textContent), null, { timeout: 60_000 });
  const before = await shownCounts(page);
  assert.deepEqual(before, cliSummary().counts, 'before cleaning, the page and the CLI agree');
  assert.equal(await page.isDisabled('#clean'), true, 'Clean needs a model');
  await train(page);

  // Which controls are enabled whenever Clean's status changes (passive settings aside).
  await page.evaluate(() => {
    window.samples = [];
    const passive = ['epochs', 'bs', 'size', 'method', 'freeze-epochs', 'lr', 'flip', 'fp16'];
    new MutationObserver(() => window.samples.push({
      phase: document.body.dataset.phase,
      enabled: [...document.querySelectorAll('button, input, select')].filter((x) => !x.disabled && !passive.includes(x.id)).map((x) => x.id || x.textContent),
    })).observe(document.querySelector('#clean-status'), { childList: true, characterData: true, subtree: true });
  });
  await page.click('#clean');
  await waitIdle(page);
  assert.equal(await page.isVisible('#error'), false, await page.textContent('#error'));

  await c.check('while the losses are computed nothing that starts work is usable', async () => {
    const during = (await page.evaluate(() => window.samples)).filter((s) => s.phase === 'cleaning');
    assert.ok(during.length >= 1, 'the cleaning phase was seen');
    for (const s of during) assert.deepEqual(s.enabled, []);
  });
  await c.check(`each mislabelled photo is among the first ${TOP_K} of the class it was put in`, async () => {
    for (const m of MOVES) {
      const rows = await gridFor(page, m.wrong);
      assert.equal(rows.length, before[m.wrong][0], `every training photo of ${m.wrong}`);
      const rank = rows.findIndex((r) => r.file === m.path);
      log(`${m.path} (truly ${m.truth}): row ${rank + 1} of ${rows.length} in ${m.wrong}`);
      assert.ok(rank >= 0 && rank < TOP_K, `${m.path} is row ${rank + 1}`);
      assert.equal(rows[rank].alt, `${m.path}, labelled ${m.wrong}`, 'the alt text names the file and its label');
    }
    await page.selectOption('#clean-class', 'china');
    assert.match(await page.textContent('#clean-page'), /^china: 36 training photos, hardest first · page 1 of 2$/);
    const caption = await page.textContent('#clean-grid figure figcaption');
    assert.match(caption, /loss \d+\.\d\d.*predicted \S+.*probability of china \d\.\d\d/s);
  });

  await c.check('relabel one and delete the other (kept across a class switch); Apply changes the counts by exactly that', async () => {
    await gridFor(page, relabelled.wrong);
    await page.selectOption(`#clean-grid select[data-file="${relabelled.path}"]`, `to:${relabelled.truth}`);
    await gridFor(page, deleted.wrong);
    await page.selectOption(`#clean-grid select[data-file="${deleted.path}"]`, 'delete');
    await gridFor(page, relabelled.wrong);
    assert.equal(await page.inputValue(`#clean-grid select[data-file="${relabelled.path}"]`), `to:${relabelled.truth}`, 'the choice is still there');
    assert.match(await page.textContent('#clean-pending'), /^2 choices to apply/);
    mkdirSync(join(root, 'test-results'), { recursive: true });
    await page.locator('#clean-section').screenshot({ path: join(root, 'test-results', 'cleaner.png') });
    await page.click('#clean-apply');
    await waitIdle(page);
    assert.equal(await page.isVisible('#error'), false, await page.textContent('#error'));
    const want = structuredClone(before);
    want[relabelled.wrong][0] -= 1;
    want[relabelled.truth][0] += 1;
    want[deleted.wrong][0] -= 1;
    assert.deepEqual(await shownCounts(page), want);
    assert.match(await page.textContent('#split'), /^6 classes · 215 training and 72 validation images .* 2 changes of yours$/);
    const w = (await workerState(page)).dataset;
    assert.deepEqual([w.nTrain, w.nValid], [215, 72], 'the worker\'s dataset');
    assert.match(await page.textContent('#skipped'), new RegExp(`${deleted.path.replaceAll('.', '\\.')}\\s*deleted in Clean`));
    assert.equal(await page.locator('#changes tbody tr').count(), 2);
    // The relabelled photo is in its class's view now, no longer to be changed.
    const moved = (await gridFor(page, relabelled.truth)).find((r) => r.file === relabelled.path);
    assert.ok(moved && moved.applied, 'the relabelled photo shows in its new class, applied');
    assert.ok(!(await gridFor(page, deleted.wrong)).some((r) => r.file === deleted.path), 'the deleted photo is gone');
  });
  const counts = await shownCounts(page);

  await c.check('JS API: a change naming an unknown file is an Error naming it, and changes nothing', async () => {
    // A good change and a bad one: neither is applied.
    const good = `${top}/train/rocket/${readdirSync(join(crops, 'train', 'rocket')).find((f) => f.startsWith('rocket'))}`;
    const r = await page.evaluate(async ([good, top]) => {
      const csv = await window.kiln.changesCsv();
      let message = null;
      try {
        await window.kiln.applyChanges([{ file: good, oldLabel: 'rocket', newLabel: 'chelsea' }, { file: `${top}/train/rocket/no-such-photo.png`, oldLabel: 'rocket', newLabel: null }]);
      } catch (e) {
        message = e instanceof Error ? e.message : `not an Error: ${e}`;
      }
      const s = await window.kiln.summary();
      return { message, nTrain: s.nTrain, changes: s.changes, listed: (await window.kiln.changes()).length, same: csv === await window.kiln.changesCsv() };
    }, [good, top]);
    log('bad change:', r.message);
    assert.match(r.message || '', /no-such-photo\.png/);
    assert.deepEqual([r.nTrain, r.changes, r.listed, r.same], [215, 2, 2, true]);
  });

  await c.check('Train again works, on the cleaned data', async () => {
    await train(page, 1, 'tiny', 16);
    const w = await workerState(page);
    assert.deepEqual([w.dataset.nTrain, w.learner.classes.length], [215, 6]);
    assert.equal(await page.isVisible('#cleaner'), false, 'the old view is hidden after training');
    await page.click('#clean');
    await waitIdle(page);
    assert.ok((await gridFor(page, relabelled.truth)).some((r) => r.file === relabelled.path), `${relabelled.path} is a ${relabelled.truth} now`);
    assert.ok(!(await gridFor(page, relabelled.wrong)).some((r) => r.file === relabelled.path));
    const after = await gridFor(page, deleted.wrong);
    assert.equal(after.length, counts[deleted.wrong][0], `every training photo of ${deleted.wrong}`);
    assert.ok(!after.some((r) => r.file === deleted.path));
  });

  await c.check('Download changes: kiln-changes.csv with exactly those two rows; the CLI with it gives the page\'s counts', async () => {
    const [d] = await Promise.all([page.waitForEvent('download'), page.click('#clean-download')]);
    assert.equal(d.suggestedFilename(), 'kiln-changes.csv');
    const csvPath = join(dir, 'kiln-changes.csv');
    await d.saveAs(csvPath);
    const rows = readFileSync(csvPath, 'utf8').trimEnd().split('\n').map((l) => l.split(','));
    assert.deepEqual(rows, [
      ['file', 'old_label', 'action', 'new_label'],
      [relabelled.path, relabelled.wrong, 'relabel', relabelled.truth],
      [deleted.path, deleted.wrong, 'delete', ''],
    ]);
    const cli = cliSummary(['--changes', csvPath]);
    assert.deepEqual(cli.counts, counts, 'kiln summary --changes has the page\'s counts');
    assert.match(cli.text, /Changes: 2 of yours applied/);
    assert.notDeepEqual(cliSummary().counts, counts, 'and without --changes it does not');
  });

  await c.check('the same files with other options keep the changes; a labelling they do not fit drops them, said', async () => {
    await page.click('.options > summary');
    await setOption(page, 'seed', '7');
    assert.deepEqual(await shownCounts(page), counts, 'another split seed: the changes are applied again');
    assert.match(await page.textContent('#split'), /2 changes of yours$/);
    await setOption(page, 'label-regex', '^(.+)_r\\d+c\\d+_\\d+\\.png$');
    assert.equal(await page.isVisible('#error'), false, await page.textContent('#error'));
    assert.match(await page.textContent('#data-warnings'), new RegExp(`2 changes from Clean or Photos no longer apply.*labelled "${relabelled.truth}" here`, 's'));
    assert.match(await page.textContent('#split'), /216 training and 72 validation images · labels: regex/);
    assert.equal(await page.isVisible('#changes-box'), false);
    assert.equal(await page.isDisabled('#clean-download'), true, 'no changes to download');
    await setOption(page, 'label-regex', '');
    assert.deepEqual(await shownCounts(page), before, 'dropped for good: back to the folders\' labels');
  });

  await c.check('no page errors', async () => assert.deepEqual(page.errors, []));
  c.done();
});
