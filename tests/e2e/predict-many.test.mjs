// Issue 29, item 1: sort a whole folder of photos with the trained model, in the page.
// Train the tiny model on crops of the sample photos, export it, then on Predict:
//  - drop 60 files (58 photos, a text file named .jpg, a PNG cut short): 58 rows whose classes
//    are `kiln predict`'s on the same files, the two bad files named with their reasons;
//    Download sorted gives a zip whose folders and bytes are `kiln predict --sort-into`'s,
//    with predictions.csv in the CLI's columns;
//  - a picked folder of nested folders, two files of one name among them: the CSV's file
//    column and order are the CLI's on that folder, the second name gets " (2)" as there;
//    the same zip through the File System Access API (a stream to a file);
//  - sorting, filtering and the unsure threshold in the table;
//  - no control that starts work is usable while predicting; Cancel keeps the rows so far,
//    and Download sorted covers them; Cancel while the zip is written stops it;
//  - the JS API: kiln.predictMany's batches in the files' order, progress, and a loop left
//    early or aborted stopping the worker's run.
// KILN_MANY_FILES=10000 (a bench, not CI): that many photos in nested folders: the longest
// main-thread task from the pick on, while predicting, sorting, filtering and zipping, must
// stay within 100 ms (KILN_MAX_LONG_TASK_MS), and the worker's memory is printed.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { checklist, e2e, photoCrops, readyPage, root, trainTinyEpoch, waitIdle } from './harness.mjs';

const many = Number(process.env.KILN_MANY_FILES || 0);
const log = (...a) => console.log('[e2e predict-many]', ...a);
const kiln = join(root, 'target/release/kiln');
const dir = mkdtempSync(join(tmpdir(), 'kiln-predict-many-'));

// Training photos: crops of the six sample photos (train/ and valid/ folders). Photos to sort:
// other crops of them, at another size, under new names.
const train = photoCrops(join(dir, 'train'), { side: 40 });
const others = photoCrops(join(dir, 'others'), { side: 56, cropsPerCell: 2 });
const pool = [];
for (const split of ['train', 'valid']) {
  for (const cls of readdirSync(join(others, split)).sort()) {
    for (const f of readdirSync(join(others, split, cls)).sort()) pool.push(readFileSync(join(others, split, cls, f)));
  }
}
const good = Array.from({ length: 58 }, (_, i) => [`photo_${String(i).padStart(2, '0')}.png`, pool[(i * 7) % pool.length]]);
const cut = pool[1].subarray(0, Math.floor(pool[1].length / 2));
const bad = [['notes.jpg', Buffer.from('shopping list: eggs, flour\n')], ['cut.png', cut]];
// A: 60 files in one folder, dropped. B: nested folders, picked, with one name twice.
const flat = join(dir, 'flat');
mkdirSync(flat);
for (const [name, bytes] of [...good, ...bad]) writeFileSync(join(flat, name), bytes);
const nested = join(dir, 'nested');
good.forEach(([name, bytes], i) => {
  const sub = join(nested, `album ${i % 3}`, i % 2 ? 'trip' : '');
  mkdirSync(sub, { recursive: true });
  writeFileSync(join(sub, name), bytes);
});
mkdirSync(join(nested, 'again'), { recursive: true });
writeFileSync(join(nested, 'again', good[4][0]), good[4][1]);

/** `kiln predict` on `paths` (relative to `cwd`): its CSV rows by file, and its --sort-into tree. */
function cli(cwd, paths, model, threshold) {
  const csv = join(dir, `cli-${Math.random().toString(36).slice(2)}.csv`);
  const into = `${csv}.sorted`;
  const r = spawnSync(kiln, ['predict', model, ...paths, '--device', 'cpu', '--csv', csv, '--sort-into', into, '--threshold', String(threshold)], { cwd, encoding: 'utf8' });
  assert.ok(r.status === 0 || /could not be predicted/.test(r.stderr), `kiln predict failed: ${r.stderr}`);
  return { csv: readFileSync(csv, 'utf8'), tree: tree(into), stderr: r.stderr };
}

/** Every file under `d`: relative path → bytes. */
function tree(d) {
  const out = new Map();
  const walk = (p) => { for (const e of readdirSync(p)) { const q = join(p, e); if (statSync(q).isDirectory()) walk(q); else out.set(relative(d, q), readFileSync(q)); } };
  walk(d);
  return out;
}

/** A zip's files (python's zipfile checks every CRC): relative path → bytes. */
function unzip(zipPath) {
  const to = `${zipPath}.d`;
  const r = spawnSync('python3', ['-c', 'import sys, zipfile; z = zipfile.ZipFile(sys.argv[1]); bad = z.testzip(); assert bad is None, bad; z.extractall(sys.argv[2])', zipPath, to], { encoding: 'utf8' });
  assert.equal(r.status, 0, `the zip does not read: ${r.stderr}`);
  return tree(to);
}

const parseCsv = (text) => text.trimEnd().split('\n').map((l) => l.split(','));

/** The two trees hold the same paths with the same bytes. */
function sameTree(got, want, what) {
  assert.deepEqual([...got.keys()].sort(), [...want.keys()].sort(), `${what}: the same files`);
  for (const [k, v] of want) assert.ok(got.get(k).equals(v), `${what}: ${k} has the original bytes`);
}

/** A threshold no probability is within 0.02 of (native and wasm may differ in the last
 * digits), with some photos below it where one allows. */
function safeThreshold(probs) {
  const ok = (t) => probs.every((p) => Math.abs(p - t) > 0.02);
  const some = [0.6, 0.7, 0.5, 0.8, 0.4, 0.9, 0.3].filter(ok);
  return some.find((t) => probs.some((p) => p < t)) ?? some[0] ?? 0;
}

await e2e(['--enable-precise-memory-info'], async ({ browser, base }) => {
  const c = checklist('e2e predict-many');
  const page = await readyPage(browser, base);
  await page.addInitScript(() => { delete Window.prototype.showSaveFilePicker; delete window.showSaveFilePicker; });
  await page.evaluate(() => { delete Window.prototype.showSaveFilePicker; delete window.showSaveFilePicker; });
  await page.setInputFiles('#pick-folder', train);
  await page.waitForFunction(() => /training and \d+ validation images/.test(document.querySelector('#split').textContent), null, { timeout: 60_000 });
  await trainTinyEpoch(page);
  const [exported] = await Promise.all([page.waitForEvent('download'), page.click('#export')]);
  const model = join(dir, 'model.kiln');
  await exported.saveAs(model);
  // Which controls are enabled at each change of Predict's status line (passive settings aside).
  await page.evaluate(() => {
    window.samples = [];
    const passive = ['epochs', 'bs', 'size', 'method', 'freeze-epochs', 'lr', 'flip', 'fp16', 'cancel', 'sort-cancel', 'sort-filter', 'sort-threshold', 'sort-by-file', 'sort-by-class', 'sort-by-p', 'sort-by-second'];
    new MutationObserver(() => window.samples.push({
      status: document.querySelector('#sort-status').textContent, phase: document.body.dataset.phase,
      enabled: [...document.querySelectorAll('button, input, select')].filter((x) => !x.disabled && !passive.includes(x.id)).map((x) => x.id || x.textContent),
    })).observe(document.querySelector('#sort-status'), { childList: true, characterData: true, subtree: true });
  });
  const download = async (what) => {
    const [d] = await Promise.all([page.waitForEvent('download', { timeout: 120_000 }), page.click('#sort-download')]);
    const path = join(dir, `${what}.zip`);
    await d.saveAs(path);
    await waitIdle(page);
    assert.match(d.suggestedFilename(), /^sorted-.*\.zip$/);
    return unzip(path);
  };

  // A: 60 files dropped on Predict.
  const cliA = cli(flat, readdirSync(flat).sort(), model, 0);
  const cliRows = parseCsv(cliA.csv);
  const threshold = safeThreshold(cliRows.slice(1).map((r) => Number(r[2])));
  log(`kiln predict: ${cliRows.length - 1} rows; unsure threshold ${threshold}; stderr: ${cliA.stderr.trim().replace(/\n/g, ' | ')}`);
  const cliSorted = cli(flat, readdirSync(flat).sort(), model, threshold).tree;
  await page.evaluate(async (files) => {
    const dt = new DataTransfer();
    for (const [name, b64] of files) dt.items.add(new File([Uint8Array.from(atob(b64), (ch) => ch.charCodeAt(0))], name));
    document.querySelector('#predict-drop').dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
  }, [...good, ...bad].map(([n, b]) => [n, b.toString('base64')]));
  await waitIdle(page);
  assert.equal(await page.isVisible('#error'), false, await page.textContent('#error'));
  await page.fill('#sort-threshold', String(threshold));

  await c.check('A: 58 rows, the two bad files named with their reasons', async () => {
    assert.match(await page.textContent('#sort-counts'), /^58 photos: /);
    assert.match(await page.textContent('#sort-counts'), /2 could not be read/);
    const badRows = await page.$$eval('#sort-bad tbody tr', (trs) => trs.map((tr) => [...tr.children].map((t) => t.textContent)));
    assert.deepEqual(badRows.map(([n]) => n).sort(), ['cut.png', 'notes.jpg']);
    for (const [name, why] of badRows) assert.ok(why.length > 10, `${name}: ${why}`);
    log('bad files:', badRows.map((r) => r.join(': ')).join(' | '));
    assert.match(await page.textContent('#sort-status'), /all 60 photos done in/);
  });
  const zipA = await download('a');
  await c.check('A: predictions.csv has the CLI\'s columns and its classes for every photo', async () => {
    const rows = parseCsv(zipA.get('predictions.csv').toString());
    assert.deepEqual(rows[0], cliRows[0], 'header');
    const want = new Map(cliRows.slice(1).map((r) => [r[0], r]));
    assert.equal(rows.length - 1, 58);
    for (const r of rows.slice(1)) {
      const w = want.get(r[0]);
      assert.ok(w, `${r[0]} is in the CLI's CSV`);
      assert.equal(r[1], w[1], `${r[0]}: class`);
      for (let k = 2; k < r.length; k++) assert.ok(Math.abs(Number(r[k]) - Number(w[k])) < 1e-3, `${r[0]} column ${k}: ${r[k]} vs ${w[k]}`);
    }
    assert.deepEqual(rows.slice(1).map((r) => r[0]), cliRows.slice(1).map((r) => r[0]), 'the same order');
  });
  await c.check('A: the zip\'s folders and bytes are kiln predict --sort-into\'s', async () => {
    const photos = new Map([...zipA].filter(([k]) => k !== 'predictions.csv'));
    sameTree(photos, cliSorted, 'zip vs --sort-into');
    if (threshold > 0) assert.ok([...photos.keys()].some((k) => k.startsWith('unsure/')), 'some photos are unsure');
  });
  await c.check('the table: sorted by probability, filtered by class, unsure rows flagged', async () => {
    await page.click('#sort-by-p');
    // Drawn at the next frame: the first row is the likeliest photo, and they go down from there.
    const top = Math.max(...cliRows.slice(1).map((r) => Number(r[2])));
    await page.waitForFunction((top) => Math.abs(parseFloat(document.querySelector('#sort-table tr.row td.num').textContent) - top * 100) < 0.2, top);
    const ps = await page.$$eval('#sort-table tr.row td.num', (tds) => tds.map((t) => parseFloat(t.textContent)));
    assert.ok(ps.length >= 5, `${ps.length} rows drawn`);
    assert.deepEqual(ps, [...ps].sort((a, b) => b - a), 'descending');
    const first = cliRows.slice(1).map((r) => r[1]).sort()[0];
    await page.selectOption('#sort-filter', `class:${first}`);
    await page.waitForFunction(() => /showing/.test(document.querySelector('#sort-counts').textContent));
    const labels = await page.$$eval('#sort-table tr.row td.label', (tds) => tds.map((t) => t.firstChild.textContent));
    const n = cliRows.filter((r) => r[1] === first).length;
    assert.ok(labels.length > 0 && labels.every((l) => l === first), labels.join());
    assert.match(await page.textContent('#sort-counts'), new RegExp(`showing ${n}$`));
    await page.selectOption('#sort-filter', '');
    // Every row under 99.9 % is flagged at a threshold of 1, none at 0.
    await page.fill('#sort-threshold', '1');
    await page.waitForFunction(() => [...document.querySelectorAll('#sort-table tr.row')].every((tr) => !!tr.querySelector('.flag') === (parseFloat(tr.querySelector('td.num').textContent) < 99.9 || !!tr.querySelector('.flag'))) && document.querySelectorAll('#sort-table tr.row .flag').length > 0);
    await page.fill('#sort-threshold', '0');
    await page.waitForFunction(() => document.querySelectorAll('#sort-table tr.row .flag').length === 0);
    await page.fill('#sort-threshold', String(threshold));
    mkdirSync(join(root, 'test-results'), { recursive: true });
    await page.locator('#predict-section').screenshot({ path: join(root, 'test-results', 'predict-many.png') });
  });
  await c.check('the table fits a phone', async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    await page.locator('#predict-section').screenshot({ path: join(root, 'test-results', 'predict-many-phone.png') });
    const over = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    assert.ok(over <= 0, `the page is ${over} px wider than the phone`);
    await page.setViewportSize({ width: 1280, height: 900 });
  });

  // B: nested folders picked, one name twice; the zip through the File System Access API.
  await c.check('B: a picked folder: the CLI\'s file column and order, and " (2)" for a second name', async () => {
    await page.evaluate(() => {
      window.saved = [];
      window.showSaveFilePicker = async () => ({ createWritable: async () => new WritableStream({ write: (ch) => { window.saved.push(new Uint8Array(ch)); } }) });
    });
    await page.setInputFiles('#predict-folder', nested);
    await waitIdle(page);
    assert.equal(await page.isVisible('#error'), false, await page.textContent('#error'));
    await page.click('#sort-download');
    await waitIdle(page);
    const bytes = await page.evaluate(() => { const b = window.saved.flatMap((c) => Array.from(c)); delete window.showSaveFilePicker; return b; });
    writeFileSync(join(dir, 'b.zip'), Buffer.from(bytes));
    const zip = unzip(join(dir, 'b.zip'));
    const want = cli(dir, ['nested'], model, threshold);
    const rows = parseCsv(zip.get('predictions.csv').toString());
    const cliB = parseCsv(want.csv);
    assert.deepEqual(rows.map((r) => r[0]), cliB.map((r) => r[0]), 'file column');
    assert.deepEqual(rows.map((r) => r[1]), cliB.map((r) => r[1]), 'classes');
    zip.delete('predictions.csv');
    sameTree(zip, want.tree, 'zip vs --sort-into');
    assert.ok([...zip.keys()].some((k) => / \(2\)\.png$/.test(k)), 'a second photo_04.png is renamed');
  });

  await c.check('while predicting nothing that starts work is usable; Cancel keeps the rows so far', async () => {
    const big = join(dir, 'big');
    for (let k = 0; k < 12; k++) cpSync(nested, join(big, `copy ${k}`), { recursive: true });
    const total = 12 * 59;
    // Cancel as soon as the first photos are in.
    await page.evaluate(() => {
      const obs = new MutationObserver(() => {
        if (!/predicting [1-9]/.test(document.querySelector('#sort-status').textContent)) return;
        obs.disconnect();
        document.querySelector('#sort-cancel').click();
      });
      obs.observe(document.querySelector('#sort-status'), { childList: true, characterData: true, subtree: true });
    });
    await page.evaluate(() => { window.samples = []; });
    await page.setInputFiles('#predict-folder', big);
    await waitIdle(page);
    const status = await page.textContent('#sort-status');
    const m = status.match(/cancelled after ([\d,]+) of ([\d,]+) photos/);
    assert.ok(m, status);
    const done = Number(m[1].replaceAll(',', ''));
    assert.ok(done > 0 && done < total, status);
    const samples = await page.evaluate(() => window.samples);
    const during = samples.filter((s) => s.phase === 'predicting');
    assert.ok(during.length >= 2, `${during.length} samples while predicting`);
    for (const s of during) assert.deepEqual(s.enabled, [], `enabled at "${s.status}"`);
    const zip = await download('cancelled');
    const rows = parseCsv(zip.get('predictions.csv').toString()).slice(1);
    assert.equal(rows.length, done, 'the CSV has every photo predicted before Cancel');
    assert.equal(zip.size - 1, done, 'so has the zip');
    assert.match(await page.textContent('#sort-status'), /before Cancel/);
  });

  await c.check('Cancel stops writing the zip, and says it was not written', async () => {
    // A slow disk: each write takes 30 ms; Cancel once the first has landed.
    await page.evaluate(() => {
      window.writes = 0;
      window.showSaveFilePicker = async () => ({ createWritable: async () => new WritableStream({ write: () => new Promise((r) => { window.writes += 1; setTimeout(r, 30); }) }) });
    });
    await page.click('#sort-download');
    await page.waitForFunction(() => window.writes > 0);
    await page.click('#sort-cancel');
    await waitIdle(page);
    assert.match(await page.textContent('#sort-status'), /cancelled: sorted-.*\.zip was not written/);
    assert.equal(await page.isVisible('#error'), false, await page.textContent('#error'));
    assert.equal(await page.isDisabled('#sort-download'), false, 'Download sorted can be pressed again');
    await page.evaluate(() => { delete window.showSaveFilePicker; });
  });

  await c.check('JS API: predictMany yields every file in order; leaving the loop or aborting stops it', async () => {
    const r = await page.evaluate(async () => {
      const { pathOf } = await import('./kiln.js');
      const files = (await window.kiln.sampleFiles()).slice(0, 300);
      const all = [];
      const progress = [];
      for await (const batch of window.kiln.predictMany(files.slice(0, 40), { batchSize: 16, onProgress: (p) => progress.push(p.done) })) all.push(...batch);
      let left = 0;
      for await (const batch of window.kiln.predictMany(files, { batchSize: 16 })) { left += batch.length; break; }
      const stop = new AbortController();
      let aborted = 0;
      for await (const batch of window.kiln.predictMany(files, { batchSize: 16, signal: stop.signal, onProgress: () => stop.abort() })) aborted += batch.length;
      const after = [];
      for await (const batch of window.kiln.predictMany(files.slice(0, 20))) after.push(...batch);
      return {
        inOrder: all.every((x, i) => x.name === pathOf(files[i]) && x.file === files[i] && typeof x.label === 'string' && x.probs.length > 1),
        n: all.length, progress, left, aborted, after: after.length, same: after.every((x, i) => x.label === all[i].label),
      };
    });
    log('predictMany:', JSON.stringify(r));
    assert.equal(r.n, 40);
    assert.ok(r.inOrder, 'results in the order of the files, with their File handles');
    assert.deepEqual(r.progress, [16, 32, 40]);
    assert.equal(r.left, 16);
    assert.ok(r.aborted >= 16 && r.aborted < 300, `an aborted run stopped after ${r.aborted}`);
    assert.equal(r.after, 20, 'a run after the stopped ones sees only its own files');
    assert.ok(r.same, 'and the same classes');
  });

  await c.check('no page errors', async () => assert.deepEqual(page.errors, []));
  if (many) await bench(page);
  c.done();
});

/** KILN_MANY_FILES photos in nested folders: long tasks, memory, times. */
async function bench(page) {
  const big = join(dir, 'many');
  for (let i = 0; i < many; i++) {
    const sub = join(big, `album ${Math.floor(i / 500)}`);
    if (i % 500 === 0) mkdirSync(sub, { recursive: true });
    writeFileSync(join(sub, `IMG_${String(i).padStart(5, '0')}.png`), pool[i % pool.length]);
  }
  await page.evaluate(() => {
    window.longTasks = [];
    new PerformanceObserver((l) => { for (const e of l.getEntries()) window.longTasks.push({ start: e.startTime, end: e.startTime + e.duration }); }).observe({ type: 'longtask' });
    addEventListener('change', () => { window.filesAt ??= performance.now(); }, true);
  });
  const before = await page.evaluate(() => window.kiln.memory());
  const t0 = Date.now();
  await page.setInputFiles('#predict-folder', big);
  await waitIdle(page, 3_600_000);
  const predictS = (Date.now() - t0) / 1000;
  const mark = (name) => page.evaluate((n) => { (window.marks ??= {})[n] = performance.now(); }, name);
  await mark('predicted');
  const after = await page.evaluate(() => window.kiln.memory());
  const t1 = Date.now();
  for (const id of ['#sort-by-file', '#sort-by-p', '#sort-by-class']) await page.click(id);
  await page.selectOption('#sort-filter', { index: 1 });
  await page.selectOption('#sort-filter', '');
  await page.evaluate(() => { const w = document.querySelector('#sort-wrap'); w.scrollTop = w.scrollHeight; });
  const viewS = (Date.now() - t1) / 1000;
  await mark('viewed');
  const t2 = Date.now();
  const [d] = await Promise.all([page.waitForEvent('download', { timeout: 3_600_000 }), page.click('#sort-download')]);
  await d.saveAs(join(dir, 'many.zip'));
  const zipS = (Date.now() - t2) / 1000;
  const { longest, n, by } = await page.evaluate(() => {
    const ours = window.longTasks.filter((t) => t.end > window.filesAt);
    // Long tasks by step: predicting (from the pick), sorting and filtering, the zip.
    const by = {};
    for (const t of ours) {
      const step = t.start < window.marks.predicted ? 'predicting' : t.start < window.marks.viewed ? 'sort/filter/scroll' : 'zip';
      by[step] ??= { n: 0, longest: 0 };
      by[step].n += 1;
      by[step].longest = Math.max(by[step].longest, Math.round(t.end - Math.max(t.start, window.filesAt)));
    }
    return { longest: Math.max(0, ...ours.map((t) => t.end - Math.max(t.start, window.filesAt))), n: ours.length, by };
  });
  log('long tasks by step:', JSON.stringify(by));
  const heap = await page.evaluate(() => performance.memory?.usedJSHeapSize ?? null);
  log(`${many} photos: predicted in ${predictS.toFixed(1)} s; sort/filter/scroll ${viewS.toFixed(1)} s; zip (${(statSync(join(dir, 'many.zip')).size / 2 ** 20).toFixed(0)} MiB) in ${zipS.toFixed(1)} s`);
  log(`main thread: ${n} long tasks, longest ${longest.toFixed(0)} ms; worker wasm memory ${(before.wasmBytes / 2 ** 20).toFixed(0)} → ${(after.wasmBytes / 2 ** 20).toFixed(0)} MiB, live heap ${(after.liveHeapBytes / 2 ** 20).toFixed(0)} MiB, worker JS heap ${after.jsHeapBytes ? (after.jsHeapBytes / 2 ** 20).toFixed(0) : 'n/a'} MiB; page JS heap ${heap ? (heap / 2 ** 20).toFixed(0) : 'n/a'} MiB`);
  assert.match(await page.textContent('#sort-counts'), new RegExp(`^${many.toLocaleString('en')} photos`));
  // Memory stays bounded: the worker holds one batch of files at a time (its wasm memory only
  // grows, so `after` is its peak), the page only rows of numbers and a few hundred thumbnails.
  const grew = (after.wasmBytes - before.wasmBytes) / 2 ** 20;
  assert.ok(grew < 512, `the worker's wasm memory grew by ${grew.toFixed(0)} MiB over ${many} photos`);
  const limit = Number(process.env.KILN_MAX_LONG_TASK_MS || 100);
  assert.ok(longest <= limit, `the main thread was blocked for ${longest.toFixed(0)} ms (limit ${limit} ms)`);
}
