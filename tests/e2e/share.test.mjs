// Issue 30, item 5: "Download as a web page". A tiny model trained on the sample digits; the
// zip the button gives, unzipped here and served by a plain static server (python3 -m
// http.server: no COOP/COEP), opens in a fresh context without one request off its origin,
// says what the model is, predicts a photo as the main page did (the label, and every
// probability to 1e-6), and its live camera (Chromium's fake device) predicts frame after frame
// until Stop, which ends the camera's tracks. A camera the user refuses is said in words.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { checklist, e2e, open, readyPage, root, waitIdle } from './harness.mjs';

const log = (...a) => console.log('[e2e share]', ...a);
const dir = mkdtempSync(join(tmpdir(), 'kiln-share-'));

/** The entries of a zip (client-zip writes them STORED, sizes in the central directory). */
function unzip(buf) {
  let eocd = buf.length - 22;
  while (eocd >= 0 && buf.readUInt32LE(eocd) !== 0x06054b50) eocd--;
  assert.ok(eocd >= 0, 'no end of central directory: not a zip');
  const count = buf.readUInt16LE(eocd + 10);
  let at = buf.readUInt32LE(eocd + 16);
  const entries = [];
  for (let i = 0; i < count; i++) {
    assert.equal(buf.readUInt32LE(at), 0x02014b50, 'central directory entry');
    const method = buf.readUInt16LE(at + 10);
    let size = buf.readUInt32LE(at + 20);
    const [nameLen, extraLen, commentLen] = [buf.readUInt16LE(at + 28), buf.readUInt16LE(at + 30), buf.readUInt16LE(at + 32)];
    let offset = buf.readUInt32LE(at + 42);
    const name = buf.subarray(at + 46, at + 46 + nameLen).toString('utf8');
    // Zip64: the real sizes and offset in the extra field (id 1), in this order, where 0xffffffff.
    for (let e = at + 46 + nameLen; e < at + 46 + nameLen + extraLen; e += 4 + buf.readUInt16LE(e + 2)) {
      if (buf.readUInt16LE(e) !== 1) continue;
      let k = e + 4;
      if (size === 0xffffffff) { size = Number(buf.readBigUInt64LE(k)); k += 8; }
      if (buf.readUInt32LE(at + 24) === 0xffffffff) k += 8;
      if (offset === 0xffffffff) offset = Number(buf.readBigUInt64LE(k));
    }
    assert.equal(method, 0, `${name} is STORED`);
    assert.equal(buf.readUInt32LE(offset), 0x04034b50, `${name}: local header`);
    const start = offset + 30 + buf.readUInt16LE(offset + 26) + buf.readUInt16LE(offset + 28);
    entries.push({ name, bytes: buf.subarray(start, start + size) });
    at += 46 + nameLen + extraLen + commentLen;
  }
  return entries;
}

/** `python3 -m http.server` on `folder`: the plainest static server, none of serve.py's headers. */
async function plainServer(folder) {
  const port = 22000 + Math.floor(Math.random() * 4000);
  const proc = spawn('python3', ['-m', 'http.server', String(port), '--bind', '127.0.0.1', '--directory', folder], { stdio: 'ignore' });
  const base = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 100; i++) {
    try { return { proc, base, head: await fetch(`${base}/`) }; } catch { await new Promise((r) => setTimeout(r, 100)); }
  }
  proc.kill();
  throw new Error('python3 -m http.server did not start');
}

await e2e(['--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream'], async ({ browser, base }) => {
  const c = checklist('e2e share');
  await c.check('the shared page type-checks against kiln.d.ts (npx tsc -p www/share/tsconfig.json)', async () => {
    const tsc = spawnSync('npx', ['tsc', '-p', 'www/share/tsconfig.json'], { cwd: root, encoding: 'utf8' });
    assert.equal(tsc.status, 0, tsc.stdout + tsc.stderr);
  });

  // The main page: the sample digits, its tiny model for one epoch.
  const page = await readyPage(browser, base);
  await page.click('#sample');
  await page.waitForFunction(() => /^10 classes · 1438 training/.test(document.querySelector('#split').textContent), null, { timeout: 60_000 });
  await page.fill('#epochs', '1');
  const t0 = Date.now();
  await page.click('#train');
  await page.waitForFunction(() => document.querySelectorAll('#epochs-table tbody tr').length === 1, null, { timeout: 300_000 });
  await waitIdle(page);
  assert.equal(await page.isVisible('#error'), false, await page.textContent('#error'));
  log(`trained in ${((Date.now() - t0) / 1000).toFixed(1)} s; ${await page.textContent('#backend')}`);
  // The photo: one of the digits, predicted on the main page (its label as shown, its probabilities as the API gives them).
  const photo = Buffer.from(await page.evaluate(async () => [...new Uint8Array(await (await window.kiln.sampleFiles())[0].arrayBuffer())]));
  const photoPath = join(dir, 'digit.png');
  writeFileSync(photoPath, photo);
  await page.setInputFiles('#predict-file', photoPath);
  await page.waitForSelector('#prediction:not([hidden])', { timeout: 60_000 });
  await waitIdle(page);
  const mainLabel = await page.textContent('#predict-label');
  const main = await page.evaluate(async (bytes) => ({ ...(await window.kiln.predict(new Blob([new Uint8Array(bytes)]))), info: window.kiln.info }), [...photo]);
  log(`main page: ${mainLabel} (${main.info.backend}, ${main.info.threads} threads, ${main.info.simd})`);

  // Download as a web page, its files fetched through the page's service worker (sw.js).
  await page.waitForFunction(() => navigator.serviceWorker.controller !== null, null, { timeout: 30_000 });
  const [download] = await Promise.all([page.waitForEvent('download', { timeout: 120_000 }), page.click('#export-page')]);
  const name = download.suggestedFilename();
  const zipPath = join(dir, name);
  await download.saveAs(zipPath);
  await waitIdle(page);
  const zip = readFileSync(zipPath);
  log(`${name}: ${(zip.length / 2 ** 20).toFixed(1)} MiB; ${await page.textContent('#model-status')}`);
  const folder = name.replace(/\.zip$/, '');
  const entries = unzip(zip);
  await c.check('the zip is named after the model, a folder of the page, Kiln\'s one-thread build and the model', async () => {
    assert.match(name, /^0-1-2-and-7-more-\d{4}-\d\d-\d\d-page\.zip$/);
    const names = entries.map((e) => e.name).sort();
    assert.ok(names.every((n) => n.startsWith(`${folder}/`)), names.join(' '));
    const inside = names.map((n) => n.slice(folder.length + 1));
    for (const f of ['index.html', 'share.js', 'share.css', 'README.txt', 'model.kiln', 'about.json', 'kiln.js', 'worker.js', 'pkg/kiln.js', 'pkg/kiln_bg.wasm']) assert.ok(inside.includes(f), `${f} in ${inside}`);
    assert.ok(!inside.some((f) => f.startsWith('pkg-threads') || f.startsWith('weights/') || f.endsWith('.d.ts')), `${inside}`);
    const file = (f) => entries.find((e) => e.name === `${folder}/${f}`).bytes;
    assert.deepEqual(file('pkg/kiln_bg.wasm'), readFileSync(join(root, 'www/pkg/kiln_bg.wasm')), 'the served wasm, byte for byte');
    assert.equal(file('model.kiln').subarray(0, 4).toString(), 'KILN');
    assert.match(file('share.js').toString(), /from '\.\/kiln\.js';/);
  });
  for (const e of entries) {
    mkdirSync(dirname(join(dir, 'unzipped', e.name)), { recursive: true });
    writeFileSync(join(dir, 'unzipped', e.name), e.bytes);
  }

  // The folder alone, on a plain static server, in a fresh context.
  const served = await plainServer(join(dir, 'unzipped', folder));
  try {
    assert.equal(served.head.headers.get('cross-origin-embedder-policy'), null);
    assert.equal(served.head.headers.get('cross-origin-opener-policy'), null);
    const context = await browser.newContext();
    const requests = [];
    const failed = [];
    context.on('request', (r) => requests.push(r.url()));
    context.on('response', (r) => { if (r.status() >= 400) failed.push(`${r.status()} ${r.url()}`); });
    const shared = await context.newPage();
    shared.setDefaultTimeout(10_000);
    const errors = [];
    shared.on('pageerror', (e) => errors.push(e.message));
    const t1 = Date.now();
    await open(shared, `${served.base}/`);
    await shared.waitForSelector('body[data-ready=true]', { timeout: 120_000 });
    log(`shared page ready in ${((Date.now() - t1) / 1000).toFixed(1)} s: ${await shared.textContent('#backend')}; ${await shared.textContent('#about')}`);

    await c.check('it runs without cross-origin isolation, on the one-thread build', async () => {
      assert.equal(await shared.evaluate(() => window.crossOriginIsolated), false);
      const info = await shared.evaluate(() => window.kiln.info);
      assert.equal(info.threads, 1);
      assert.notEqual(info.simd, 'relaxed');
      assert.equal(await shared.$('#needs-server'), null, 'served: no word about file://');
    });
    await c.check('opened from the disk (file://), it says to serve it instead of hanging', async () => {
      // A context of its own: its file:// requests are not the served page's.
      const ctx = await shared.context().browser().newContext();
      const disk = await ctx.newPage();
      await disk.goto(`file://${join(dir, 'unzipped', folder, 'index.html')}`);
      await disk.waitForSelector('#needs-server', { state: 'visible' });
      await disk.waitForFunction(() => getComputedStyle(document.querySelector('#needs-server')).opacity === '1', null, { timeout: 10_000 });
      assert.match(await disk.textContent('#needs-server'), /web server, not as a file: .*python3 -m http\.server/s);
      await ctx.close();
    });
    await c.check('it names the classes and where the model came from', async () => {
      assert.equal(await shared.textContent('#classes'), '0, 1, 2, 3, 4, 5, 6, 7, 8, 9');
      const day = new Date().toISOString().slice(0, 10);
      assert.equal(await shared.textContent('#about'), `Tiny ResNet, 32 px, trained with Kiln on ${day} with 1,438 training images.`);
    });
    await c.check('a chosen photo: the label and every probability the main page gave (1e-6)', async () => {
      await shared.setInputFiles('#photos', photoPath);
      await shared.waitForSelector('#results li[data-done=true]', { timeout: 60_000 });
      assert.equal(await shared.textContent('#results li .big'), mainLabel);
      const meters = await shared.$$eval('#results li meter', (ms) => ms.map((m) => [m.dataset.class, m.value]));
      const classes = await shared.evaluate(() => document.querySelector('#classes').textContent.split(', '));
      assert.equal(meters.length, main.probs.length, 'a bar per class');
      const worst = Math.max(...meters.map(([k, v]) => Math.abs(v - main.probs[classes.indexOf(k)])));
      log(`largest probability difference from the main page: ${worst.toExponential(2)}`);
      assert.ok(worst <= 1e-6, `${worst}`);
    });
    await c.check('the live camera: predictions keep coming; Stop ends the tracks', async () => {
      await shared.click('#camera-start');
      const t2 = Date.now();
      await shared.waitForFunction(() => Number(document.querySelector('#live').dataset.predictions) >= 2, null, { timeout: 20_000 });
      log(`two camera predictions in ${((Date.now() - t2) / 1000).toFixed(1)} s: ${await shared.textContent('#live-label')}`);
      assert.match(await shared.textContent('#live-label'), /^\d \(\d+\.\d%\)$/);
      await shared.evaluate(() => { window.tracks = document.querySelector('#video').srcObject.getTracks(); });
      await shared.click('#camera-stop');
      const after = await shared.evaluate(() => ({ states: window.tracks.map((t) => t.readyState), n: document.querySelector('#live').dataset.predictions }));
      assert.ok(after.states.length >= 1 && after.states.every((s) => s === 'ended'), `${after.states}`);
      await shared.waitForTimeout(1500);
      assert.equal(await shared.evaluate(() => document.querySelector('#live').dataset.predictions), after.n, 'no prediction after Stop');
      assert.equal(await shared.isDisabled('#camera-start'), false);
      assert.equal(await shared.textContent('#camera-status'), 'stopped');
      await shared.screenshot({ path: join(root, 'test-results', 'share.png'), fullPage: true });
    });
    await c.check('a refused camera is said in words', async () => {
      const denied = await context.newPage();
      await denied.addInitScript(() => {
        navigator.mediaDevices.getUserMedia = () => Promise.reject(new DOMException('Permission denied', 'NotAllowedError'));
      });
      await open(denied, `${served.base}/`);
      await denied.waitForSelector('body[data-ready=true]', { timeout: 120_000 });
      await denied.click('#camera-start');
      await denied.waitForSelector('#error:not([hidden])');
      assert.match(await denied.textContent('#error'), /^The camera was not allowed: let this page use the camera/);
      assert.equal(await denied.isDisabled('#camera-start'), false);
      await denied.close();
    });
    await c.check('no request left the served origin', async () => {
      const origin = new URL(served.base).origin;
      const off = requests.filter((u) => new URL(u).origin !== origin);
      assert.deepEqual(off, []);
      // The worker's own fetches are seen too: the wasm it loads.
      assert.ok(requests.some((u) => u.endsWith('/pkg/kiln_bg.wasm')) && requests.some((u) => u.endsWith('/model.kiln')), requests.join(' '));
      log(`${requests.length} requests, all to ${origin}; failed: ${failed.join(', ') || 'none'}`);
      // Nothing fails: the page starts Kiln without fetching the bundled weights (it never trains).
      assert.deepEqual(failed, []);
      assert.deepEqual(errors, []);
    });
    await context.close();
  } finally {
    served.proc.kill();
  }
  await c.check('an imported model\'s page names the file it came from', async () => {
    const [kilnFile] = await Promise.all([page.waitForEvent('download'), page.click('#export')]);
    const saved = join(dir, kilnFile.suggestedFilename());
    await kilnFile.saveAs(saved);
    await waitIdle(page);
    await page.setInputFiles('#import', saved);
    await waitIdle(page);
    const [again] = await Promise.all([page.waitForEvent('download', { timeout: 120_000 }), page.click('#export-page')]);
    const about = unzip(readFileSync(await again.path())).find((e) => e.name.endsWith('/about.json'));
    assert.deepEqual(JSON.parse(about.bytes.toString()), { trained: null, trainImages: null, from: kilnFile.suggestedFilename() });
  });
  await c.check('www/share/ on its own (no model beside it) says what is missing', async () => {
    const bare = await page.context().newPage();
    await open(bare, `${base}/share/`);
    await bare.waitForSelector('#error:not([hidden])', { timeout: 30_000 });
    assert.match(await bare.textContent('#error'), /^model\.kiln is missing next to this page \(404\)/);
    await bare.close();
  });
  c.done();
  log('ok');
});
