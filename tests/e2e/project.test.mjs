// Issue 30, item 3 (the page): projects. ~1,000 small photos in class folders (and one file
// that is no image), loaded, then edited (a pick adds a class, a photo moved to another class
// in the samples view, a class renamed), a tiny model trained at 32 px; Save project's
// download, opened in a FRESH browser context, gives the same summary, Settings, charts and
// epoch table, and the same predictions (within 1e-6). The CLI trains the project one epoch
// further (`kiln fit P P --save-project Q`): Q opens with one more epoch row, the CLI's, and
// the same summary. A photo with one byte changed, a project cut short, a foreign zip and a
// project whose model is not a model are refused with a clear message, the page keeping what
// it had (summary, Settings, model). The project kept in the browser (OPFS) is offered after
// a reload and Continue restores the same state; a full storage is said, not fatal.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checklist, e2e, epochTable, noisy, readyPage, root, takeError, waitIdle } from './harness.mjs';
import { png } from './png.mjs';

const log = (...a) => console.log('[e2e project]', ...a);
const dir = mkdtempSync(join(tmpdir(), 'kiln-project-'));
const base = join(dir, 'base', 'shapes');
const more = join(dir, 'more', 'shapes');
const PALETTE = { red: [210, 30, 30], green: [30, 170, 40], blue: [30, 40, 210], yellow: [200, 180, 20], purple: [150, 40, 160] };
const PER_CLASS = 240;
/** Photos by path as the page names them (shapes/<class>/<file>). */
const photos = {};
for (const [name, c] of Object.entries(PALETTE)) {
  const to = name === 'purple' ? more : base;
  mkdirSync(join(to, name), { recursive: true });
  const n = name === 'purple' ? 40 : PER_CLASS;
  for (let i = 0; i < n; i++) {
    const bytes = png(24, 24, noisy(c, i));
    writeFileSync(join(to, name, `${name}_${i}.png`), bytes);
    photos[`shapes/${name}/${name}_${i}.png`] = bytes;
  }
}
writeFileSync(join(base, 'red', 'broken.png'), 'not a png at all');
const PROBES = ['shapes/red/red_3.png', 'shapes/green/green_7.png', 'shapes/blue/blue_11.png', 'shapes/yellow/yellow_2.png', 'shapes/purple/purple_5.png'];
const SETTINGS = ['arch', 'pretrained', 'size', 'bs', 'method', 'epochs', 'freeze-epochs', 'lr', 'flip', 'fp16', 'presize', 'label-regex', 'valid-pct', 'seed'];
const cargoVersion = readFileSync(join(root, 'Cargo.toml'), 'utf8').match(/^version = "(.+)"/m)[1];

/** What the page shows of its project: summary, class cards, changes, Settings, table, charts. */
const shown = (page) => page.evaluate(async (ids) => {
  const { trainingRecord } = await import('./training.js');
  const { loss, metric } = trainingRecord();
  return {
    split: document.querySelector('#split').textContent,
    skipped: document.querySelector('#skipped-title').textContent,
    changes: document.querySelector('#changes-title').textContent,
    cards: [...document.querySelectorAll('#gallery .class-card')].map((c) => `${c.querySelector('h4').textContent}: ${c.querySelector('.muted').textContent}`),
    settings: Object.fromEntries(ids.map((id) => { const e = document.getElementById(id); return [id, e.type === 'checkbox' ? e.checked : e.value]; })),
    table: [...document.querySelectorAll('#epochs-table tbody tr')].map((tr) => [...tr.children].map((t) => t.textContent)),
    charts: { loss, metric, lossLabel: document.querySelector('#loss-chart').getAttribute('aria-label'), metricLabel: document.querySelector('#metric-chart').getAttribute('aria-label') },
  };
}, SETTINGS);
/** The model's probabilities for the probe photos. */
const predictions = (page) => page.evaluate(async (list) => {
  const out = [];
  for (const b64 of list) out.push((await window.kiln.predict(new Blob([Uint8Array.from(atob(b64), (c) => c.charCodeAt(0))]))).probs);
  return out;
}, PROBES.map((p) => photos[p].toString('base64')));
function samePredictions(a, b) {
  assert.equal(a.length, b.length);
  a.forEach((p, i) => p.forEach((v, k) => assert.ok(Math.abs(v - b[i][k]) <= 1e-6, `${PROBES[i]}: class ${k} ${v} vs ${b[i][k]}`)));
}
/** Open a project file with Open project; the error box's text ('' if none). */
async function openFile(page, file) {
  await page.setInputFiles('#open-project', file);
  await page.waitForTimeout(100);
  await waitIdle(page, 300_000);
  return takeError(page);
}
/** Where a stored entry's data starts in a zip (its local header's name, then its extra field). */
function dataOffset(zip, name) {
  const at = zip.indexOf(Buffer.from(name));
  assert.equal(zip.readUInt32LE(at - 30), 0x04034b50, `${name}: a local header`);
  return at + zip.readUInt16LE(at - 4) + zip.readUInt16LE(at - 2);
}
/** A zip of stored entries written by Python's zipfile: `entries` [[name, bytes]]. */
function pyZip(out, entries) {
  const list = join(dir, `entries-${Date.now()}.json`);
  writeFileSync(list, JSON.stringify(entries.map(([n, b]) => [n, Buffer.from(b).toString('base64')])));
  const r = spawnSync('python3', ['-c', 'import sys, json, base64, zipfile\nwith zipfile.ZipFile(sys.argv[2], "w", zipfile.ZIP_STORED) as z:\n  for n, b in json.load(open(sys.argv[1])): z.writestr(n, base64.b64decode(b))', list, out], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return out;
}
/** Every entry of a zip, with Python's zipfile: [[name, bytes]] in order. */
function pyUnzip(file) {
  const r = spawnSync('python3', ['-c', 'import sys, json, base64, zipfile\nz = zipfile.ZipFile(sys.argv[1])\nprint(json.dumps([[i.filename, base64.b64encode(z.read(i)).decode()] for i in z.infolist()]))', file], { encoding: 'utf8', maxBuffer: 1 << 28 });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout).map(([n, b]) => [n, Buffer.from(b, 'base64')]);
}

await e2e([], async ({ browser, base: url }) => {
  const c = checklist('e2e project');
  const a = await readyPage(browser, url);
  await a.addInitScript(() => { delete Window.prototype.showSaveFilePicker; delete window.showSaveFilePicker; });
  await a.evaluate(() => { delete Window.prototype.showSaveFilePicker; delete window.showSaveFilePicker; });
  // Small photos: presize 36 before the first load (no dataset yet, so nothing reloads).
  await a.click('details.options > summary');
  await a.fill('#presize', '36');
  await a.setInputFiles('#pick-folder', base);
  await waitIdle(a, 120_000);
  assert.equal(await takeError(a), '');
  await a.setInputFiles('#pick-folder', more);
  await waitIdle(a, 120_000);
  assert.equal(await takeError(a), '');
  // A photo moved to another class in the samples view, and a class renamed.
  const moved = await a.getAttribute('#gallery .class-card[data-class="red"] figure', 'data-file');
  await a.focus(`figure[data-file="${moved}"] select`);
  await a.selectOption(`figure[data-file="${moved}"] select`, 'green');
  await a.click(`figure[data-file="${moved}"] .move`);
  await waitIdle(a);
  await a.click('#gallery .class-card[data-class="yellow"] .rename');
  await a.fill('#gallery .class-card[data-class="yellow"] input', 'gold');
  await a.keyboard.press('Enter');
  await waitIdle(a);
  assert.equal(await takeError(a), '');
  await a.selectOption('#arch', 'tiny');
  await a.fill('#size', '32');
  await a.fill('#bs', '32');
  await a.fill('#epochs', '1');
  await a.fill('#lr', '0.01');
  await a.uncheck('#flip');
  let t = Date.now();
  await a.click('#train');
  await a.waitForFunction(() => document.querySelectorAll('#epochs-table tbody tr').length === 2, null, { timeout: 300_000 });
  await waitIdle(a);
  assert.equal(await takeError(a), '');
  log(`trained 2 epochs on ${(await a.textContent('#split')).split(' · ')[1]} in ${((Date.now() - t) / 1000).toFixed(1)} s`);
  const before = await shown(a);
  const predsA = await predictions(a);
  log(before.split);

  t = Date.now();
  const [download] = await Promise.all([a.waitForEvent('download'), a.click('#save-project')]);
  const P = join(dir, 'P.kilnproj');
  await download.saveAs(P);
  await waitIdle(a);
  const pBytes = readFileSync(P);
  log(`Save project: ${download.suggestedFilename()}, ${(pBytes.length / 2 ** 20).toFixed(2)} MiB in ${((Date.now() - t) / 1000).toFixed(1)} s`);
  const entries = pyUnzip(P);
  const manifest = JSON.parse(entries[0][1].toString());

  await c.check('the download is a project: manifest first, each photo, then the model, stored', async () => {
    assert.match(download.suggestedFilename(), /^[\w-]+-\d{4}-\d\d-\d\d\.kilnproj$/);
    assert.equal(entries[0][0], 'kiln-project.json');
    assert.equal(entries.at(-1)[0], 'model.kiln');
    assert.equal(manifest.kind, 'kiln-project');
    assert.equal(manifest.savedBy, `kiln ${cargoVersion} (page)`);
    assert.equal(manifest.model, true);
    assert.equal(manifest.dataset.files.length, 4 * PER_CLASS + 1);
    assert.deepEqual(manifest.dataset.edits.map((e) => Object.keys(e)[0]), ['add', 'changes', 'rename']);
    assert.deepEqual(manifest.dataset.edits[2].rename, ['yellow', 'gold']);
    assert.equal(entries.length, 1 + 4 * PER_CLASS + 1 + 40 + 1);
    for (const [name, bytes] of entries.slice(1, -1)) {
      const p = name.slice('photos/'.length);
      if (photos[p]) assert.ok(bytes.equals(photos[p]), `${name} byte for byte`);
    }
    // Stored: a local header's method is 0.
    assert.equal(pBytes.readUInt16LE(8), 0);
    assert.equal(manifest.settings.arch, 'tiny');
    assert.equal(manifest.charts.rows.length, 2);
  });

  // A fresh context: nothing of page A's.
  const b = await readyPage(browser, url);
  await c.check('opened in a fresh browser: the same summary, Settings, charts, epoch table and predictions', async () => {
    t = Date.now();
    assert.equal(await openFile(b, P), '');
    log(`Open project: ${((Date.now() - t) / 1000).toFixed(1)} s; ${await b.textContent('#project-status')}`);
    const after = await shown(b);
    for (const k of Object.keys(before)) if (k !== 'charts') assert.deepEqual(after[k], before[k], k);
    for (const k of Object.keys(before.charts)) assert.deepEqual(after.charts[k], before.charts[k], `charts.${k}`);
    samePredictions(await predictions(b), predsA);
    // Train more knows the opened model: its epochs so far.
    assert.match(await b.textContent('#more-state'), new RegExp(`trained ${before.table.length} epochs so far`));
    // The tiny model's project unticks "pretrained"; an architecture that has weights ticks it again.
    await b.selectOption('#arch', 'efficientnet_lite0');
    assert.equal(await b.isChecked('#pretrained'), true, 'pretrained again after a tiny project');
    await b.selectOption('#arch', 'tiny');
    assert.equal(await b.isEnabled('#train'), true);
    assert.match(await b.textContent('#train-plan'), /Train continues P\.kilnproj/);
  });

  // The CLI trains it one epoch further and saves Q.
  const Q = join(dir, 'Q.kilnproj');
  t = Date.now();
  const cli = spawnSync(join(root, 'target/release/kiln'), ['fit', P, P, '--epochs', '1', '--device', 'cpu', '--save-project', Q, '-o', join(dir, 'q.kiln')], { encoding: 'utf8' });
  log(`kiln fit: ${((Date.now() - t) / 1000).toFixed(1)} s`);
  await c.check('the CLI continues the project: Q opens with one more epoch row, the CLI\'s, and the same summary', async () => {
    assert.equal(cli.status, 0, cli.stderr);
    const rows = cli.stdout.split('\n').filter((l) => /^\s*\S+\s+\d+\s+\d+\.\d{6}\s+\d+\.\d{6}\s+\d+\.\d{6}\s+\d+\.\d{6}/.test(l));
    assert.ok(rows.length >= 1, `the CLI printed an epoch row:\n${cli.stdout}`);
    const last = rows.at(-1).trim().split(/\s+/);
    assert.equal(await openFile(b, Q), '');
    const after = await shown(b);
    assert.equal(after.split, before.split);
    assert.deepEqual(after.cards, before.cards);
    assert.equal(after.table.length, before.table.length + 1);
    assert.deepEqual(after.table.slice(0, -1), before.table);
    assert.deepEqual(after.table.at(-1).slice(2, 6), last.slice(2, 6), `the last row is the CLI's: ${rows.at(-1)}`);
    assert.equal(after.charts.metric[0].length, 3);
    assert.match(after.charts.metricLabel, /after epoch 3/);
  });

  // The book's next step on the reopened project: unfreeze, fit_one_cycle with a slice (the
  // checks below then keep a model of 4 epochs).
  await c.check('Train more on the reopened project numbers on from its epochs', async () => {
    const rows = (await shown(b)).table.length;
    await b.setChecked('#more-unfreeze', true);
    await b.fill('#more-epochs', '1');
    await b.fill('#more-from', '1e-5');
    await b.fill('#more-to', '1e-3');
    await b.click('#more-train');
    await b.waitForFunction((n) => document.querySelectorAll('#epochs-table tbody tr').length === n + 1 && !document.querySelector('#train').disabled, rows, { timeout: 120_000 });
    const table = (await shown(b)).table;
    assert.deepEqual(table.map((r) => r[1]), table.map((_, i) => String(i)), 'epochs 0, 1, … in order');
    assert.equal(table.at(-1)[0], 'fit');
    assert.match(await b.textContent('#more-state'), /unfrozen/);
  });

  // Refused files: the page keeps the project it has (Q's).
  const kept = await shown(b);
  const keptPreds = await predictions(b);
  const refuse = async (name, bytes, pattern) => {
    const file = join(dir, name);
    writeFileSync(file, bytes);
    const message = await openFile(b, file);
    log(`${name}: ${message}`);
    assert.match(message, pattern);
    assert.deepEqual(await shown(b), kept, 'the page keeps its project');
    samePredictions(await predictions(b), keptPreds);
  };
  await c.check('a photo with one byte changed is refused, naming it; nothing changes', async () => {
    const bad = Buffer.from(pBytes);
    bad[dataOffset(bad, 'photos/shapes/blue/blue_9.png') + 40] ^= 0x55;
    await refuse('changed.kilnproj', bad, /^changed\.kilnproj could not be opened: the project is damaged \(photos\/shapes\/blue\/blue_9\.png is not as it was saved: its bytes do not match the zip's checksum \(CRC-32\)\): nothing was changed/);
  });
  await c.check('a project cut short is refused as such; nothing changes', async () => {
    await refuse('cut.kilnproj', pBytes.subarray(0, Math.floor(pBytes.length * 0.6)), /^cut\.kilnproj could not be opened: the project is damaged \(it is cut short/);
  });
  await c.check('a foreign zip is refused as not a project; nothing changes', async () => {
    const foreign = readFileSync(pyZip(join(dir, 'foreign.zip'), [['notes.txt', Buffer.from('hello')], ['cat.png', photos[PROBES[0]]]]));
    await refuse('foreign.kilnproj', foreign, /^foreign\.kilnproj could not be opened: this is not a Kiln project/);
    await refuse('text.kilnproj', Buffer.from('just some text, no zip'), /^text\.kilnproj could not be opened: this is not a Kiln project \(not a zip file/);
  });
  await c.check('a project whose model is not a model: the dataset is built, then put back with the model', async () => {
    const junk = readFileSync(pyZip(join(dir, 'junk.zip'), entries.map(([n, bytes]) => [n, n === 'model.kiln' ? Buffer.from('not a model') : bytes])));
    await refuse('junk-model.kilnproj', junk, /could not be opened: its model\.kiln could not be loaded: .*The dataset and model you had are back as they were\./);
  });

  await c.check('the browser keeps the project: after a reload, Continue restores the same state', async () => {
    // Kept once the last change is written (the attribute goes while a change waits to be).
    await b.waitForFunction(() => document.body.dataset.projectKept, null, { timeout: 60_000 });
    const state = await shown(b);
    await b.reload();
    await b.waitForSelector('body[data-ready=true]', { timeout: 60_000 });
    await b.waitForSelector('#resume:not([hidden])', { timeout: 30_000 });
    const text = await b.textContent('#resume-text');
    log(text);
    assert.match(text, new RegExp(`^Continue where you left off \\(${(4 * PER_CLASS + 1 + 40).toLocaleString('en')} photos, model after 4 epochs, saved .+\\)\\?$`));
    await b.click('#resume-continue');
    await b.waitForTimeout(100);
    await waitIdle(b, 300_000);
    assert.equal(await takeError(b), '');
    assert.equal(await b.isHidden('#resume'), true);
    assert.deepEqual(await shown(b), state);
    samePredictions(await predictions(b), keptPreds);
  });

  await c.check('a full storage is said in the page\'s words, and the kept copy stays', async () => {
    const lastModified = () => b.evaluate(async () => (await (await (await navigator.storage.getDirectory()).getFileHandle('kiln-project.kilnproj')).getFile()).lastModified);
    const was = await lastModified();
    await b.evaluate(() => {
      window.realCreateWritable = FileSystemFileHandle.prototype.createWritable;
      FileSystemFileHandle.prototype.createWritable = async function () {
        return new WritableStream({ write() { throw new DOMException('The quota has been exceeded.', 'QuotaExceededError'); } });
      };
    });
    await b.click('#gallery .class-card[data-class="gold"] .rename');
    await b.fill('#gallery .class-card[data-class="gold"] input', 'amber');
    await b.keyboard.press('Enter');
    await waitIdle(b);
    await b.waitForSelector('#project-note:not([hidden])', { timeout: 30_000 });
    const note = await b.textContent('#project-note');
    log(note);
    assert.match(note, /^The browser has no room to keep this project.*; the copy it kept before is unchanged\. Save project keeps it in a file\.$/);
    assert.equal(await takeError(b), '');
    assert.equal(await lastModified(), was);
    await b.evaluate(() => { FileSystemFileHandle.prototype.createWritable = window.realCreateWritable; });
  });

  await c.check('no page errors', async () => {
    assert.deepEqual([...a.errors, ...b.errors], []);
  });
  c.done();
});
