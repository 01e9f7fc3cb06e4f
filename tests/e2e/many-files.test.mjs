// Many files dropped at once, as people do with whole photo folders: real small photos mixed
// with truncated, empty, huge-dimension, non-image, unicode-named, deeply nested and
// duplicate-named files. KILN_MANY_FILES sets the count (CI: 1,000; the bench: 10,000).
// Checks: every bad file is named with its reason; nothing is lost between what was dropped and
// what the summary counts; the main thread never blocks for more than 100 ms (Long Tasks API);
// an epoch trains at a small image size; the time to the summary and the memory are printed.
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync, readdirSync, existsSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chunk, SIGNATURE } from './png.mjs';
import assert from 'node:assert/strict';
import { e2e, open, root } from './harness.mjs';

const total = Number(process.env.KILN_MANY_FILES || 1000);
const log = (...a) => console.log(`[many-files ${total}]`, ...a);

// Real photo crops from the bundled photos (one class per photo), 32 px, via the CLI.
const dir = mkdtempSync(join(tmpdir(), 'kiln-many-'));
const cropsPerCell = Math.max(1, Math.ceil((total * 0.93) / 160));
const made = spawnSync(join(root, 'target/release/kiln'), ['samples', '--photos', join(root, 'assets/photos'), '--side', '32', '--crops-per-cell', String(cropsPerCell), '-o', join(dir, 'crops')], { encoding: 'utf8' });
assert.equal(made.status, 0, made.stderr);
const crops = [];
for (const split of ['train', 'valid']) {
  for (const cls of readdirSync(join(dir, 'crops', split))) {
    for (const f of readdirSync(join(dir, 'crops', split, cls))) crops.push({ cls, path: join(dir, 'crops', split, cls, f) });
  }
}

// A complete PNG whose header claims 100,000 × 100,000 pixels (a decompression bomb's header).
function bombPng() {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(100000, 0); ihdr.writeUInt32BE(100000, 4); ihdr[8] = 8; ihdr[9] = 2;
  return Buffer.concat([SIGNATURE, chunk('IHDR', ihdr), chunk('IDAT', Buffer.from([0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01])), chunk('IEND', Buffer.alloc(0))]);
}

// The tree: class folders nested four deep; every 100th file has a unicode name; every 50th
// good file reuses a name from another folder; the bad files are spread through the classes.
const tree = join(dir, 'drop');
const bad = [];
let written = 0;
const deep = (cls, i) => join(tree, `album ${i % 3}`, '2024', `trip-${i % 2}`, cls);
for (let i = 0; written < total; i++) {
  const c = crops[i % crops.length];
  const folder = deep(c.cls, i);
  mkdirSync(folder, { recursive: true });
  const kind = i % 31;
  let name;
  let bytes;
  if (kind === 3) { name = `cut_${i}.png`; const b = readFileSync(c.path); bytes = b.subarray(0, Math.floor(b.length / 2)); bad.push(name); }
  else if (kind === 7) { name = `empty_${i}.jpg`; bytes = Buffer.alloc(0); bad.push(name); }
  else if (kind === 11) { name = `notes_${i}.txt`; bytes = Buffer.from('shopping list\n'); bad.push(name); }
  else if (kind === 13) { name = `huge_${i}.png`; bytes = bombPng(); bad.push(name); }
  else if (kind === 17) { name = `IMG_${i}.HEIC`; bytes = Buffer.concat([Buffer.from([0, 0, 0, 24]), Buffer.from('ftypheic'), Buffer.alloc(12)]); bad.push(name); }
  else {
    name = i % 100 === 5 ? `фото_猫_${i}.png` : i % 50 === 9 ? 'IMG_0001.png' : `${c.cls}_${i}.png`;
    bytes = readFileSync(c.path);
  }
  const path = join(folder, name);
  if (existsSync(path)) continue;
  writeFileSync(path, bytes);
  written++;
}
log(`${written} files (${bad.length} bad) in ${tree}`);

await e2e(['--enable-precise-memory-info'], async ({ browser, base }) => {
  const page = await browser.newPage();
  await page.addInitScript(() => {
    // How the page hands dropped files to its worker: the largest number in one message, and how
    // many messages carried files.
    window.filesPosted = { largest: 0, messages: 0 };
    const post = Worker.prototype.postMessage;
    Worker.prototype.postMessage = function (data, ...rest) {
      const files = data?.args?.files;
      if (Array.isArray(files)) {
        window.filesPosted.largest = Math.max(window.filesPosted.largest, files.length);
        window.filesPosted.messages += 1;
      }
      return post.call(this, data, ...rest);
    };
    window.longTasks = [];
    new PerformanceObserver((list) => { for (const e of list.getEntries()) window.longTasks.push({ start: e.startTime, end: e.startTime + e.duration }); }).observe({ type: 'longtask', buffered: true });
    // When the page's own handler receives the files (the browser has built the FileList).
    addEventListener('change', () => { window.filesAt ??= performance.now(); }, true);
  });
  await open(page, `${base}/?backend=cpu`);
  await page.waitForSelector('body[data-ready=true]', { timeout: 60_000 });
  await page.evaluate(() => { window.longTasks = []; });
  const t0 = Date.now();
  await page.setInputFiles('#pick-folder', tree);
  await page.waitForFunction(() => /classes · \d+ training and \d+ validation images/.test(document.querySelector('#split').textContent), null, { timeout: 600_000 });
  const summaryS = (Date.now() - t0) / 1000;
  const split = await page.textContent('#split');
  const [, nTrain, nValid] = split.match(/(\d+) training and (\d+) validation images/).map(Number);
  const skippedText = await page.textContent('#skipped');
  const skippedRows = await page.locator('#skipped tbody tr').count();
  log(`summary after ${summaryS.toFixed(1)} s: ${split.trim()}; ${skippedRows} skipped`);
  // Nothing lost: every dropped file is either in the dataset or listed with a reason.
  assert.equal(nTrain + nValid + skippedRows, written, `dropped ${written}, counted ${nTrain + nValid} + ${skippedRows} skipped`);
  assert.equal(skippedRows, bad.length, 'exactly the bad files are skipped');
  for (const name of bad) assert.ok(skippedText.includes(name), `${name} is not listed`);
  const rows = await page.$$eval('#skipped tbody tr', (trs) => trs.map((tr) => [...tr.children].map((t) => t.textContent)));
  const reasonOf = (prefix) => rows.filter(([name]) => name.split('/').pop().startsWith(prefix)).map(([, why]) => why);
  for (const [prefix, want] of [['cut_', /PNG cut short/], ['IMG_', /HEIC\/HEIF.*export it as JPEG/], ['huge_', /too large/], ['empty_', /empty file/], ['notes_', /not a readable image/]]) {
    const reasons = reasonOf(prefix);
    assert.ok(reasons.length > 0 && reasons.every((r) => want.test(r)), `${prefix}* reasons: ${[...new Set(reasons)].slice(0, 3).join(' | ')}`);
  }

  // An epoch at a small image size.
  await page.selectOption('#arch', 'tiny');
  await page.fill('#size', '16');
  await page.fill('#bs', '64');
  await page.fill('#epochs', '1');
  await page.selectOption('#method', 'fit_one_cycle');
  const t1 = Date.now();
  await page.click('#train');
  await page.waitForFunction(() => document.querySelectorAll('#epochs-table tbody tr').length === 1 && !document.querySelector('#train').disabled, null, { timeout: 900_000 });
  assert.equal(await page.isVisible('#error'), false, await page.textContent('#error'));
  log(`one epoch (tiny ResNet, 16 px, batch 64) in ${((Date.now() - t1) / 1000).toFixed(1)} s`);

  // The task in which the browser builds the FileList of every dropped file (here from
  // playwright's setInputFiles) is the browser's; Kiln's part starts when its handler runs.
  const { longest, browserTask } = await page.evaluate(() => {
    const dur = (t) => t.end - t.start;
    const ours = window.longTasks.filter((t) => t.start >= window.filesAt);
    const before = window.longTasks.filter((t) => t.start < window.filesAt);
    // The handler's own synchronous part runs inside the browser's task: profiled at a few ms.
    return { longest: Math.max(0, ...ours.map(dur), ...before.map((t) => Math.max(0, t.end - window.filesAt))), browserTask: Math.max(0, ...before.map(dur)) };
  });
  const memory = await page.evaluate(() => window.kiln.memory());
  const heap = await page.evaluate(() => performance.memory?.usedJSHeapSize ?? null);
  log(`main thread: longest task ${longest.toFixed(0)} ms from Kiln's handler on (the browser's own FileList task before it: ${browserTask.toFixed(0)} ms); worker wasm memory ${(memory.wasmBytes / 2 ** 20).toFixed(0)} MiB; page JS heap ${heap ? (heap / 2 ** 20).toFixed(0) : 'n/a'} MiB`);
  // Issue 12's target: no task of Kiln's over 100 ms. Posting every file to the worker in one
  // message cost ~0.2 ms a file on this thread, so the page posts Blob handles 100 at a time:
  // that is what the test holds it to. The time itself is a figure (a busy machine stretches
  // it), checked only where KILN_MAX_LONG_TASK_MS asks (the bench's 10,000-file run).
  const posted = await page.evaluate(() => window.filesPosted);
  log(`files posted to the worker in ${posted.messages} messages, at most ${posted.largest} in one`);
  assert.ok(posted.largest > 0 && posted.largest <= 100, `the page posted ${posted.largest} files in one message (at most 100)`);
  assert.ok(posted.messages >= Math.ceil(total / 100), `${posted.messages} messages carried ${total} files`);
  if (process.env.KILN_MAX_LONG_TASK_MS) {
    const limit = Number(process.env.KILN_MAX_LONG_TASK_MS);
    assert.ok(longest <= limit, `the main thread was blocked for ${longest.toFixed(0)} ms (limit ${limit} ms)`);
  }
  log('ok');
});
