// Issue 28, the dataset's side: what the page shows is what the worker holds.
//  1. The sample's preset does not stick to the user's photos: new photos bring the photo
//     defaults back (what the user changed is kept and named); a Presize smaller than the
//     image size is said next to the size.
//  3. A class without training images is named in a visible warning, Train is refused with
//     the reason beside it, and a class of one is "1 image".
//  4. One folder of pets-style files is labelled by the file names; a label regex typed
//     afterwards re-labels the loaded files.
//  5. A labelling or split option that fails rolls its control back to what produced the
//     loaded dataset; the status does not say it is still reading; the worker keeps that set.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checklist, colourFolders, e2e, noisy, readyPage, setOption, takeError, waitIdle, workerState } from './harness.mjs';
import { png } from './png.mjs';

const dir = mkdtempSync(join(tmpdir(), 'kiln-data-state-'));
const colours = colourFolders(join(dir, 'colours'), { red: 12, green: 12, blue: 12 });
const kite = colourFolders(join(dir, 'kite'), { red: 12, green: 12, kite: 1 });
const pets = join(dir, 'pets');
mkdirSync(pets);
['Persian', 'Bengal', 'beagle'].forEach((breed, b) => {
  for (let i = 1; i <= 8; i++) writeFileSync(join(pets, `${breed}_${i}.png`), png(16, 16, noisy([[210, 30, 30], [30, 170, 40], [30, 40, 210]][b], i)));
});

const split = (page) => page.textContent('#split');
const values = (page) => page.evaluate(() => Object.fromEntries(['arch', 'size', 'bs', 'method', 'epochs', 'lr', 'presize', 'valid-pct', 'label-regex'].map((id) => [id, document.getElementById(id).value]).concat([['flip', document.getElementById('flip').checked]])));

await e2e([], async ({ browser, base }) => {
  const page = await readyPage(browser, base);
  const c = checklist('e2e data-state');
  await page.click('.options summary');

  // 1. The sample, one setting changed by hand, then a folder of photos.
  await page.click('#sample');
  await page.waitForFunction(() => /^10 classes/.test(document.querySelector('#split').textContent), null, { timeout: 60_000 });
  const preset = await values(page);
  assert.equal(preset.arch, 'tiny');
  assert.equal(preset.presize, '36');
  await page.fill('#epochs', '3');
  await page.setInputFiles('#pick-folder', colours);
  await page.waitForFunction(() => /^3 classes/.test(document.querySelector('#split').textContent), null, { timeout: 60_000 });
  await c.check('1: photos after the sample bring the photo defaults back, keeping what was changed', async () => {
    const v = await values(page);
    assert.deepEqual({ ...v, epochs: undefined }, { arch: 'efficientnet_lite0', size: '224', bs: '64', method: 'fine_tune', epochs: undefined, lr: '0.002', presize: '460', 'valid-pct': '0.2', 'label-regex': '', flip: true });
    assert.equal(v.epochs, '3', 'the epochs the user set are kept');
    assert.equal(await page.isVisible('#settings-note'), true, 'a notice says what changed');
    assert.match(await page.textContent('#settings-note'), /photo defaults.*Epochs/s);
    const w = await workerState(page);
    assert.equal(w.dataset.options.presize, 460, 'the worker loaded the photos at the photo Presize');
  });
  await c.check('1: a Presize smaller than the image size is said beside the size', async () => {
    await setOption(page, 'presize', '36');
    await page.fill('#size', '64');
    assert.equal(await page.isVisible('#size-hint'), true);
    assert.match(await page.textContent('#size-hint'), /Presize.*36.*64/);
    await page.fill('#size', '32');
    assert.equal(await page.isVisible('#size-hint'), false);
    await setOption(page, 'presize', '460');
  });

  // 3. A class of one image, and a validation fraction that leaves a class no training image.
  // Each folder from here on is a new dataset (adding to the loaded one is the default).
  await page.check('#mode-new');
  await page.setInputFiles('#pick-folder', kite);
  await page.waitForFunction(() => /^3 classes/.test(document.querySelector('#split').textContent), null, { timeout: 60_000 });
  await c.check('3: one image is "1 image"', async () => {
    const card = await page.locator('.class-card[data-class="kite"]').textContent();
    assert.match(card, /1 image \(/);
    // Its one image is used for training: its accuracy cannot be measured, which is said.
    if (/\(1 train, 0 valid\)/.test(card)) assert.match(await page.textContent('#data-warnings'), /kite.*no validation images/s);
  });
  await setOption(page, 'valid-pct', '0.9');
  await c.check('3: a class without training images is named, and Train is refused with the reason', async () => {
    const cards = await page.$$eval('.class-card', (cs) => cs.map((x) => x.textContent));
    const empty = cards.filter((t) => /\(0 train/.test(t)).map((t) => t.match(/^(red|green|kite)/)[1]);
    assert.ok(empty.length >= 1, `a class has no training image at 0.9: ${cards}`);
    const warning = await page.textContent('#data-warnings');
    assert.equal(await page.isVisible('#data-warnings'), true, 'the warning is visible');
    assert.equal(await page.getAttribute('#data-warnings', 'role'), 'alert');
    for (const name of empty) assert.match(warning, new RegExp(`${name}.*no training images`, 's'));
    assert.equal(await page.isDisabled('#train'), true, 'Train is refused');
    assert.equal(await page.isDisabled('#lr-find'), true, 'lr_find is refused');
    assert.match(await page.textContent('#train-why'), new RegExp(empty[0]));
    assert.equal(await page.isVisible('#train-why'), true);
  });
  await setOption(page, 'valid-pct', '0.2');
  await c.check('3: at 0.2 every class can be learned again', async () => {
    assert.equal(await page.isDisabled('#train'), /\(0 train/.test(await page.textContent('#gallery')));
    if (!(await page.isDisabled('#train'))) assert.equal(await page.isVisible('#train-why'), false);
  });

  // 4. One folder of pets-style files, picked as a folder; then a label regex.
  await page.check('#mode-new');
  await page.setInputFiles('#pick-folder', pets);
  await waitIdle(page, 60_000);
  await c.check('4: one folder of pets-style files is labelled by the file names', async () => {
    assert.equal(await takeError(page), '');
    assert.match(await split(page), /^3 classes · /);
    assert.match(await page.textContent('#gallery'), /Persian.*|Bengal/);
  });
  await c.check('4: a label regex typed afterwards re-labels the loaded files', async () => {
    await setOption(page, 'label-regex', '^(\\w)');
    assert.equal(await takeError(page), '');
    const names = await page.$$eval('.class-card h4', (hs) => hs.map((h) => h.textContent).sort());
    assert.deepEqual(names, ['B', 'P', 'b']);
    assert.deepEqual([...(await workerState(page)).dataset.classes].sort(), ['B', 'P', 'b']);
    await setOption(page, 'label-regex', '');
    assert.match(await split(page), /^3 classes/);
  });

  // 5. Failed option changes on a loaded set: the control rolls back, the status tells the truth.
  await page.evaluate(() => { document.querySelector('#label-regex').value = ''; });
  await page.check('#mode-new');
  await page.setInputFiles('#pick-folder', colours);
  await page.waitForFunction(() => /^3 classes · 29 training and 7 validation/.test(document.querySelector('#split').textContent), null, { timeout: 60_000 });
  for (const [id, bad, good] of [['valid-pct', '0', '0.2'], ['label-regex', '^(x)?', ''], ['label-regex', '([', '']]) {
    await c.check(`5: ${id} = ${bad} fails and rolls back to ${JSON.stringify(good)}`, async () => {
      await setOption(page, id, bad);
      const error = await takeError(page);
      assert.notEqual(error, '', 'the failure is said');
      assert.equal(await page.inputValue(`#${id}`), good, 'the control is back to what produced the loaded set');
      assert.doesNotMatch(await page.textContent('#status'), /reading/);
      assert.match(await page.textContent('#status'), /kept|not applied|unchanged/);
      assert.match(await split(page), /29 training and 7 validation/);
      const w = await workerState(page);
      assert.equal(w.dataset.nTrain, 29);
      assert.equal(w.dataset.options.validPct, 0.2);
      assert.equal(w.dataset.options.labelRegex ?? '', '');
      assert.equal(await page.isDisabled('#train'), false);
    });
  }
  await c.check('no page errors', () => assert.deepEqual(page.errors, []));
  c.done();
});
