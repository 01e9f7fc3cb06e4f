// Issue 28: messages for the person in front of the page, and the smaller items.
// (Train: the tiny model at 16 px, batches of 8: three batches an epoch.)
//  8. Leaving the page with a trained model that was not exported asks first; once exported,
//     it does not.
//  9. Top losses are a grid of images with text captions (predicted, actual, loss,
//     probability) readable on a laptop and a phone, wrapping on narrow screens.
// 10. Messages in the page's words, naming the file or field and what to do: an empty folder,
//     Validation fraction 1, Epochs left empty, a PNG imported as a model, a text file named
//     .jpg given to Predict.
// 11. The Method select shows its whole text at 1280 and 1920 px; the progress bar covers
//     fine_tune's two phases once; downloads are named from the classes and the date; no
//     "deprecated parameters" warnings from wasm-bindgen's init.
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checklist, colourFolders, e2e, readyPage, takeError, waitIdle } from './harness.mjs';
import { png } from './png.mjs';

const dir = mkdtempSync(join(tmpdir(), 'kiln-messages-'));
const colours = colourFolders(join(dir, 'colours'), { red: 12, green: 12, blue: 12 });
const backticks = /`/;

await e2e([], async ({ browser, base }) => {
  const c = checklist('e2e messages');
  const page = await readyPage(browser, base, { viewport: { width: 1920, height: 1000 } });
  // Worker consoles too (the pool's workers are where wasm-bindgen-rayon starts the module).
  const warnings = page.warnings;
  page.context().on('console', (m) => { if (m.page() !== page && m.type() === 'warning') warnings.push(m.text()); });

  await c.check('11: the Method select shows its whole text at 1920 and 1280 px', async () => {
    for (const width of [1920, 1280]) {
      await page.setViewportSize({ width, height: 1000 });
      const fit = await page.evaluate(() => {
        const s = document.querySelector('#method');
        const ctx = document.createElement('canvas').getContext('2d');
        ctx.font = getComputedStyle(s).font;
        // Room for the text: the box less its padding and the drop-down arrow (~20 px).
        const room = s.clientWidth - parseFloat(getComputedStyle(s).paddingLeft) - parseFloat(getComputedStyle(s).paddingRight) - 20;
        return [...s.options].map((o) => [o.text, Math.ceil(ctx.measureText(o.text).width), room]);
      });
      for (const [text, need, room] of fit) assert.ok(need <= room, `at ${width} px "${text}" needs ${need} px, the select has ${room}`);
    }
  });

  await c.check('10: an empty folder picked first is said', async () => {
    // A folder with nothing in it gives the picker no files (Playwright cannot pick an empty
    // folder, so the change event comes without any, as Chromium sends it).
    await page.evaluate(() => document.querySelector('#pick-folder').dispatchEvent(new Event('change')));
    await waitIdle(page, 30_000);
    const error = await takeError(page);
    assert.match(error, /empty|no files/i);
    assert.match(error, /folder/);
  });

  await page.setInputFiles('#pick-folder', colours);
  await page.waitForFunction(() => /^3 classes · 29 training/.test(document.querySelector('#split').textContent), null, { timeout: 60_000 });
  await c.check('10: Validation fraction 1 is refused in the page\'s words', async () => {
    await page.click('.options summary');
    await page.fill('#valid-pct', '1');
    await page.dispatchEvent('#valid-pct', 'change');
    await waitIdle(page, 30_000);
    const error = await takeError(page);
    assert.match(error, /validation fraction/i);
    assert.doesNotMatch(error, /validPct|\[0, 1\)/);
    assert.equal(await page.inputValue('#valid-pct'), '0.2');
  });
  await page.selectOption('#arch', 'tiny');
  await page.fill('#size', '16');
  await page.fill('#bs', '8');
  await page.selectOption('#method', 'fine_tune');
  await page.fill('#freeze-epochs', '1');
  await c.check('10: Epochs left empty is said in the page\'s words', async () => {
    await page.fill('#epochs', '');
    await page.click('#train');
    await waitIdle(page, 30_000);
    const error = await takeError(page);
    assert.match(error, /Epochs/);
    assert.doesNotMatch(error, /\(got \)/);
  });

  // Train: one frozen and one unfrozen epoch of 4 batches each.
  await page.fill('#epochs', '1');
  await page.evaluate(() => {
    window.progress = [];
    const status = document.querySelector('#status');
    new MutationObserver(() => {
      if (/batch \d+\/\d+/.test(status.textContent)) window.progress.push([status.textContent, document.querySelector('#progress').value]);
    }).observe(status, { childList: true, characterData: true, subtree: true });
  });
  await page.click('#train');
  await page.waitForFunction(() => document.querySelectorAll('#epochs-table tbody tr').length === 2, null, { timeout: 300_000 });
  await waitIdle(page);
  await page.waitForSelector('#interpretation:not([hidden])', { timeout: 60_000 });
  await c.check('11: one progress bar covers both phases', async () => {
    const seen = await page.evaluate(() => window.progress);
    assert.ok(seen.length >= 6, `batches seen: ${seen.length}`);
    for (let i = 1; i < seen.length; i++) assert.ok(seen[i][1] >= seen[i - 1][1], `progress went back at "${seen[i][0]}": ${seen[i - 1][1]} → ${seen[i][1]}`);
    const lastFrozen = seen.filter(([s]) => /^frozen/.test(s)).pop();
    assert.ok(lastFrozen[1] > 0.3 && lastFrozen[1] < 0.7, `the frozen phase ends half way: ${lastFrozen[1]}`);
    assert.equal(await page.evaluate(() => document.querySelector('#progress').value), 1);
  });

  const topLosses = () => page.evaluate(() => [...document.querySelectorAll('#top-losses figure')].map((f) => {
    const img = f.querySelector('canvas');
    const cap = f.querySelector('figcaption');
    return { top: Math.round(f.getBoundingClientRect().top), imgWidth: img.getBoundingClientRect().width, pixels: [img.width, img.height], text: cap.textContent, font: parseFloat(getComputedStyle(cap).fontSize) };
  }));
  await c.check('9: top losses are images with readable text captions', async () => {
    const figs = await topLosses();
    assert.ok(figs.length >= 3, `top losses shown: ${figs.length}`);
    for (const f of figs) {
      assert.ok(f.pixels[0] >= 64 && f.pixels[0] === f.pixels[1], `the model's square crop is drawn: ${f.pixels}`);
      assert.ok(f.imgWidth >= 64, `image ${f.imgWidth} px wide`);
      assert.ok(f.font >= 12, `caption ${f.font} px`);
      assert.match(f.text, /predicted\s*(red|green|blue).*actual\s*(red|green|blue).*loss\s*\d+\.\d+.*probability[^\d]*\d/s);
    }
  });

  await c.check('8: leaving with a trained model that was not exported asks first', async () => {
    let dialog = null;
    page.once('dialog', (d) => { dialog = d.type(); d.dismiss(); });
    await page.evaluate(() => { location.reload(); }).catch(() => {});
    await page.waitForTimeout(1000);
    assert.equal(dialog, 'beforeunload');
    assert.equal(await page.isVisible('#interpretation'), true, 'the page stayed');
  });

  await c.check('11: downloads are named from the classes and the date', async () => {
    const day = new Date().toISOString().slice(0, 10);
    for (const [id, ext] of [['export', 'kiln'], ['export-onnx', 'onnx']]) {
      const [download] = await Promise.all([page.waitForEvent('download'), page.click(`#${id}`)]);
      assert.equal(download.suggestedFilename(), `blue-green-red-${day}.${ext}`);
      await waitIdle(page, 30_000);
    }
  });

  await c.check('10: a PNG imported as a model is refused naming the file', async () => {
    await page.setInputFiles('#import', { name: 'holiday.png', mimeType: 'image/png', buffer: png(8, 8, () => [1, 2, 3]) });
    await waitIdle(page, 30_000);
    const error = await takeError(page);
    assert.match(error, /holiday\.png/);
    assert.match(error, /\.kiln/);
    assert.doesNotMatch(error, backticks);
  });
  await c.check('10: a text file named .jpg given to Predict is refused naming the file', async () => {
    await page.setInputFiles('#predict-file', { name: 'notes.jpg', mimeType: 'image/jpeg', buffer: Buffer.from('shopping list: eggs, flour') });
    await waitIdle(page, 30_000);
    const error = await takeError(page);
    console.log('[e2e messages] predict says:', error);
    assert.match(error, /notes\.jpg/);
    assert.doesNotMatch(error, backticks);
  });

  await c.check('9: on a phone the captions stay readable and the grid wraps', async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    const figs = await topLosses();
    const rows = new Set(figs.map((f) => f.top)).size;
    assert.ok(rows >= 2, `the grid wraps: ${rows} row(s) of ${figs.length}`);
    for (const f of figs) assert.ok(f.font >= 12, `caption ${f.font} px`);
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 1, `the page scrolls sideways by ${overflow} px`);
  });

  await c.check('8: once exported, leaving does not ask', async () => {
    let dialog = null;
    page.once('dialog', (d) => { dialog = d.type(); d.dismiss(); });
    await page.evaluate(() => { location.reload(); }).catch(() => {});
    await page.waitForSelector('body[data-ready=true]', { timeout: 60_000 });
    assert.equal(dialog, null);
  });

  await c.check('11: no "deprecated parameters" warnings on load', () => {
    assert.deepEqual([...new Set(warnings.filter((w) => /deprecated/.test(w)))], []);
  });
  await c.check('no page errors', () => assert.deepEqual(page.errors, []));
  c.done();
});
