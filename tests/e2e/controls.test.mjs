// While Kiln works, nothing that starts work can be used: drop a pets-style dataset, then pick a
// folder set, press Train, and at every batch no control but Cancel (and the settings read at
// the next Train) is enabled; a drop is refused with a message. After the run the right controls
// come back; a second click on Train starts no second run; cancel, then train again; predict.
// (Issue 27: after a second dataset, Train stayed enabled during training.)
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { e2e, epochTable, open } from './harness.mjs';
import { png } from './png.mjs';

const log = (...a) => console.log('[e2e controls]', ...a);

const colours = { red: [210, 30, 30], green: [30, 170, 40], blue: [30, 40, 210] };
const noisy = (c, seed) => (x, y) => c.map((v, k) => Math.max(0, Math.min(255, v + (((x * 31 + y * 17 + seed * 7 + k * 5) % 41) - 20))));
const dir = mkdtempSync(join(tmpdir(), 'kiln-controls-'));
for (const [name, c] of Object.entries(colours)) {
  mkdirSync(join(dir, name));
  for (let i = 0; i < 12; i++) writeFileSync(join(dir, name, `${name}_${i}.png`), png(24, 20, noisy(c, i)));
}
// Pets-style names: the class is the name before _<number> (cat breeds upper-case).
const pets = ['Persian', 'Bengal', 'beagle'].flatMap((breed, b) => Array.from({ length: 8 }, (_, i) => [`${breed}_${i + 1}.png`, png(16, 16, noisy(Object.values(colours)[b], i)).toString('base64')]));

// Settings that start nothing: the next Train reads them. Every other button, input and select
// must be disabled while Kiln works, so a control added later is covered too.
const PASSIVE = ['cancel', 'epochs', 'bs', 'size', 'method', 'freeze-epochs', 'lr', 'flip', 'fp16'];
// What must be usable again once a run is over (with a dataset and a trained model).
const AFTER = ['train', 'lr-find', 'show-batch', 'interpret', 'export', 'export-onnx', 'export-pytorch', 'sample', 'pick-folder', 'pick-files', 'import', 'predict-file', 'weights-file', 'arch', 'label-regex', 'valid-pct', 'seed', 'presize'];

await e2e([], async ({ browser, base }) => {
  const page = await browser.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await open(page, `${base}/?backend=cpu`);
  await page.waitForSelector('body[data-ready=true]', { timeout: 60_000 });
  // Records, at every change of the status line (each batch, each step of the work), which
  // controls outside PASSIVE are enabled, and whether Cancel is.
  await page.evaluate((passive) => {
    window.samples = [];
    const sample = () => window.samples.push({
      status: document.querySelector('#status').textContent,
      enabled: [...document.querySelectorAll('button, input, select')].filter((c) => !c.disabled && !passive.includes(c.id)).map((c) => c.id || c.textContent),
      cancel: !document.querySelector('#cancel').disabled,
    });
    new MutationObserver(sample).observe(document.querySelector('#status'), { childList: true, characterData: true, subtree: true });
  }, PASSIVE);
  const takeSamples = () => page.evaluate(() => window.samples.splice(0));
  const enabledNow = () => page.evaluate(() => [...document.querySelectorAll('button, input, select')].filter((c) => !c.disabled).map((c) => c.id || c.textContent));

  // Nothing loaded: only the ways to load data (and passive settings) are enabled.
  const fresh = await enabledNow();
  for (const id of ['train', 'lr-find', 'show-batch', 'interpret', 'export', 'cancel']) assert.ok(!fresh.includes(id), `${id} is enabled with no data`);

  // 1. A pets-style drop, then a folder set.
  await page.evaluate(async (files) => {
    const dt = new DataTransfer();
    for (const [name, b64] of files) dt.items.add(new File([Uint8Array.from(atob(b64), (c) => c.charCodeAt(0))], name, { type: 'image/png' }));
    document.querySelector('#data-section').dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
  }, pets);
  await page.waitForFunction(() => /^3 classes .*regex/.test(document.querySelector('#split').textContent), null, { timeout: 60_000 });
  assert.match(await page.textContent('#gallery'), /Persian.*Bengal|Bengal.*Persian/s);
  await takeSamples();
  // A new dataset, not photos added to the loaded one (the default).
  await page.check('#mode-new');
  await page.setInputFiles('#pick-folder', dir);
  await page.waitForFunction(() => /^3 classes · 29 training and 7 validation images · labels: parent folder/.test(document.querySelector('#split').textContent), null, { timeout: 60_000 });
  // While the folder set loaded ('reading 36 files…'), nothing could start: in particular not Train.
  const loading = (await takeSamples()).filter((s) => /^reading/.test(s.status));
  assert.ok(loading.length >= 1, 'the load was seen');
  for (const s of loading) assert.deepEqual(s.enabled, [], `enabled while loading: ${s.enabled}`);

  // 2. Train (fine_tune: 3 frozen epochs, then 3 unfrozen), clicked twice in a row.
  await page.selectOption('#arch', 'tiny');
  await page.fill('#size', '16');
  await page.fill('#bs', '8');
  await page.fill('#epochs', '3');
  await page.fill('#freeze-epochs', '3');
  await page.evaluate(() => { const b = document.querySelector('#train'); b.click(); b.click(); });
  await page.waitForFunction(() => document.querySelectorAll('#epochs-table tbody tr').length === 6 && document.body.dataset.phase === 'idle', null, { timeout: 300_000 });
  const during = await takeSamples();
  const batches = during.filter((s) => /batch \d+\/\d+/.test(s.status));
  log(`${during.length} samples during the run, ${batches.length} at batches`);
  assert.ok(batches.length >= 6, 'batches were seen');
  for (const s of during) assert.deepEqual(s.enabled, [], `enabled during the run at "${s.status}": ${s.enabled}`);
  assert.ok(batches.every((s) => s.cancel), 'Cancel is enabled at every batch');
  // One run, not two: one table of 6 epochs, no "busy" error, the dataset unchanged.
  assert.deepEqual((await epochTable(page)).map((r) => r[0]), ['frozen', 'frozen', 'frozen', 'unfrozen', 'unfrozen', 'unfrozen']);
  assert.equal(await page.isVisible('#error'), false, await page.textContent('#error'));
  assert.match(await page.textContent('#split'), /29 training/);
  await page.waitForSelector('#interpretation:not([hidden])');
  const after = await enabledNow();
  for (const id of AFTER) assert.ok(after.includes(id), `${id} is not enabled again after training`);
  assert.ok(!after.includes('cancel'), 'Cancel is enabled with nothing to cancel');

  // 3. Cancel a long run, then train again.
  await page.fill('#epochs', '200');
  await page.click('#train');
  await page.waitForFunction(() => /unfrozen · epoch \d+ · batch/.test(document.querySelector('#status').textContent), null, { timeout: 180_000 });
  // A drop mid-run is refused with a message, and the dataset stays.
  await page.evaluate(() => {
    const dt = new DataTransfer();
    dt.items.add(new File(['x'], 'Other_1.png', { type: 'image/png' }));
    document.querySelector('#data-section').dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
  });
  assert.match(await page.textContent('#error'), /Kiln is busy/);
  await page.click('#error');
  await page.click('#cancel');
  // Pressed once: Cancel is disabled until the run stops.
  assert.equal(await page.isDisabled('#cancel'), true);
  await page.waitForFunction(() => /cancelled/.test(document.querySelector('#status').textContent) && document.body.dataset.phase === 'idle', null, { timeout: 180_000 });
  assert.ok((await epochTable(page)).length < 203, 'the run stopped early');
  assert.match(await page.textContent('#split'), /29 training/);
  for (const s of await takeSamples()) assert.deepEqual(s.enabled, [], `enabled during the cancelled run at "${s.status}": ${s.enabled}`);
  await page.fill('#epochs', '1');
  await page.fill('#freeze-epochs', '1');
  await page.click('#train');
  await page.waitForFunction(() => document.querySelectorAll('#epochs-table tbody tr').length === 2 && document.body.dataset.phase === 'idle', null, { timeout: 300_000 });
  for (const s of await takeSamples()) assert.deepEqual(s.enabled, [], `enabled during the second run at "${s.status}": ${s.enabled}`);
  const rows = await epochTable(page);
  for (const v of rows.flatMap((r) => r.slice(2, 6))) assert.ok(Number.isFinite(Number(v)), `epoch table value ${v}`);

  // 4. Predict a file with the model.
  await page.setInputFiles('#predict-file', join(dir, 'green', 'green_3.png'));
  await page.waitForSelector('#prediction:not([hidden])', { timeout: 60_000 });
  assert.match(await page.textContent('#predict-label'), /^(red|green|blue) \(\d+\.\d%\)$/);
  assert.equal(await page.locator('#bars .bar').count(), 3);
  assert.equal(await page.isVisible('#error'), false, await page.textContent('#error'));
  assert.deepEqual(errors, []);
  log('ok');
});
