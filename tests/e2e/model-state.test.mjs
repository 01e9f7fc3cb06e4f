// Issue 28, the model's side: Cancel, an imported model and a cancelled lr_find.
//  2. Cancel pressed during the last frozen batch is acknowledged at once ("cancelling…",
//     Cancel disabled) and honoured before the first unfrozen batch; the status says
//     cancelled, the model is kept.
//  6. After Import, the Settings show the model's; the Train section says before Train whether
//     it continues the imported model (same classes) or starts a new one (and why), and Train
//     does what it said.
//  7. A cancelled lr_find says "cancelled" (not that the loss diverged) and keeps its curve.
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checklist, colourFolders, e2e, epochTable, readyPage, takeError, waitIdle, workerState } from './harness.mjs';

const dir = mkdtempSync(join(tmpdir(), 'kiln-model-state-'));
const colours = colourFolders(join(dir, 'colours'), { red: 12, green: 12, blue: 12 });
// For Cancel: one training batch an epoch, and a validation set long enough to press Cancel in
// (the page hears of the frozen batch only once it is done; the unfrozen phase follows validation).
const many = colourFolders(join(dir, 'many'), { red: 60, green: 60, blue: 60 }, 64);
const twoColours = colourFolders(join(dir, 'two'), { red: 10, yellow: 10 });
const settings = (page) => page.evaluate(() => Object.fromEntries(['arch', 'size', 'bs', 'presize'].map((id) => [id, document.getElementById(id).value]).concat([['flip', document.getElementById('flip').checked]])));

await e2e([], async ({ browser, base }) => {
  const c = checklist('e2e model-state');
  const page = await readyPage(browser, base);
  await page.click('.options summary');
  await page.fill('#valid-pct', '0.5');
  await page.fill('#presize', '64');
  await page.setInputFiles('#pick-folder', many);
  await page.waitForFunction(() => /^3 classes · 90 training and 90 validation/.test(document.querySelector('#split').textContent), null, { timeout: 60_000 });
  // A tiny model, and one batch an epoch (90 training images, batches of 128).
  await page.selectOption('#arch', 'tiny');
  await page.fill('#size', '64');
  await page.fill('#bs', '128');
  await page.selectOption('#method', 'fine_tune');
  await page.fill('#epochs', '1');
  await page.fill('#freeze-epochs', '1');

  // 2. Cancel pressed as the one frozen batch is reported.
  await page.evaluate(() => {
    window.seen = [];
    window.ack = null;
    // Every batch the worker reports, whatever the status line shows.
    window.batches = [];
    const withCallbacks = window.kiln.withCallbacks.bind(window.kiln);
    window.kiln.withCallbacks = (cb, work) => withCallbacks({ ...cb, onBatch: (b) => { window.batches.push(b.phase); cb.onBatch?.(b); } }, work);
    const status = document.querySelector('#status');
    new MutationObserver(() => {
      const text = status.textContent;
      window.seen.push(text);
      if (window.ack === null && /frozen · epoch 1 · batch 1\/1/.test(text)) {
        document.querySelector('#cancel').click();
        window.ack = { status: status.textContent, cancelDisabled: document.querySelector('#cancel').disabled };
      }
    }).observe(status, { childList: true, characterData: true, subtree: true });
  });
  await page.click('#train');
  await waitIdle(page);
  await c.check('2: Cancel is acknowledged at once', async () => {
    const ack = await page.evaluate(() => window.ack);
    assert.ok(ack, 'the frozen batch was seen');
    assert.match(ack.status, /^cancelling…/);
    assert.equal(ack.cancelDisabled, true);
  });
  await c.check('2: Cancel is honoured before the unfrozen phase; the model is kept', async () => {
    const batches = await page.evaluate(() => window.batches);
    assert.deepEqual(batches, ['frozen'], `no unfrozen batch ran: ${batches}`);
    assert.ok(!(await epochTable(page)).some((r) => r[0] === 'unfrozen'), 'no unfrozen epoch');
    assert.match(await page.textContent('#status'), /cancelled.*keeps/);
    assert.equal(await page.isDisabled('#export'), false, 'the model can be exported');
    assert.equal(await takeError(page), '');
  });

  // 6. A finished model, exported, imported into a fresh page.
  // Set without a change event (which would re-label the loaded set): the next load reads them.
  await page.evaluate(() => { document.querySelector('#valid-pct').value = '0.2'; document.querySelector('#presize').value = '24'; });
  await page.check('#mode-new');
  await page.setInputFiles('#pick-folder', colours);
  await page.waitForFunction(() => /^3 classes · 29 training/.test(document.querySelector('#split').textContent), null, { timeout: 60_000 });
  await page.fill('#size', '16');
  await page.fill('#bs', '64');
  await page.selectOption('#method', 'fit_one_cycle');
  await page.click('#train');
  await page.waitForFunction(() => /^done/.test(document.querySelector('#status').textContent), null, { timeout: 120_000 });
  await waitIdle(page);
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('#export')]);
  const saved = join(dir, 'colours.kiln');
  await download.saveAs(saved);
  const page2 = await readyPage(browser, base);
  await page2.setInputFiles('#import', saved);
  await waitIdle(page2, 60_000);
  await c.check('6: after Import the Settings show the model\'s', async () => {
    assert.equal(await takeError(page2), '');
    assert.deepEqual(await settings(page2), { arch: 'tiny', size: '16', bs: '64', presize: '24', flip: true });
  });
  await page2.setInputFiles('#pick-folder', colours);
  await page2.waitForFunction(() => /^3 classes/.test(document.querySelector('#split').textContent), null, { timeout: 60_000 });
  await c.check('6: before Train, the page says Train continues the imported model', async () => {
    assert.equal(await page2.isVisible('#train-plan'), true);
    assert.match(await page2.textContent('#train-plan'), /continues .*colours\.kiln/);
    assert.equal((await workerState(page2)).dataset.options.presize, 24, 'the photos are presized as the model was trained');
  });
  await c.check('6: Train continues from the imported model', async () => {
    await page2.click('#train');
    await page2.waitForFunction(() => /^(done|cancelled)/.test(document.querySelector('#status').textContent), null, { timeout: 120_000 });
    await waitIdle(page2);
    assert.equal(await takeError(page2), '');
    const status = await page2.textContent('#status');
    assert.match(status, /continued .*colours\.kiln/);
    assert.doesNotMatch(status, /random weights|pretrained/);
    const w = await workerState(page2);
    assert.equal(w.learner.options.size, 16);
    assert.equal(w.learner.options.arch, 'tiny');
  });
  await c.check('6: with other classes, the page says Train starts a new model, and why', async () => {
    await page2.setInputFiles('#import', saved);
    await waitIdle(page2, 60_000);
    await page2.check('#mode-new');
    await page2.setInputFiles('#pick-folder', twoColours);
    await page2.waitForFunction(() => /^2 classes/.test(document.querySelector('#split').textContent), null, { timeout: 60_000 });
    assert.match(await page2.textContent('#train-plan'), /new model.*classes/s);
  });
  await page2.close();

  // 7. lr_find, cancelled after a few steps.
  await page.selectOption('#method', 'fine_tune');
  await page.evaluate(() => {
    const status = document.querySelector('#status');
    window.lrAck = null;
    new MutationObserver(() => {
      if (window.lrAck === null && /lr_find · step 8\//.test(status.textContent)) {
        document.querySelector('#cancel').click();
        window.lrAck = status.textContent;
      }
    }).observe(status, { childList: true, characterData: true, subtree: true });
  });
  await page.click('#lr-find');
  await waitIdle(page, 120_000);
  await c.check('7: a cancelled lr_find says cancelled and keeps its curve', async () => {
    assert.equal(await takeError(page), '');
    assert.match(await page.evaluate(() => window.lrAck), /^cancelling…/);
    const status = await page.textContent('#status');
    assert.match(status, /lr_find cancelled/);
    assert.doesNotMatch(status, /diverged/);
    assert.equal(await page.isVisible('#lr-find-box'), true);
    const inked = await page.evaluate(() => {
      const canvas = document.querySelector('#lr-chart canvas');
      const d = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
      let n = 0;
      for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++;
      return n;
    });
    assert.ok(inked > 200, `the partial curve is drawn (${inked} pixels)`);
  });
  await c.check('no page errors', () => assert.deepEqual(page.errors, []));
  c.done();
});
