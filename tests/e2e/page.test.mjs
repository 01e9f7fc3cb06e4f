// End to end: serve www/, drive Debian's Chromium with playwright-core (never a downloaded
// browser), and use the page as a person would. Screenshots go to test-results/.
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { png } from './png.mjs';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { e2e, open, photoCrops, root, trainTinyEpoch } from './harness.mjs';

const ort = createRequire(import.meta.url)('onnxruntime-node');

const out = join(root, 'test-results');
mkdirSync(out, { recursive: true });
const backend = process.env.KILN_E2E_BACKEND || 'auto';
const log = (...a) => console.log(`[e2e ${backend}]`, ...a);

const colours = { red: [210, 30, 30], green: [30, 170, 40], blue: [30, 40, 210] };
const noisy = (c, seed) => (x, y) => c.map((v, k) => Math.max(0, Math.min(255, v + (((x * 31 + y * 17 + seed * 7 + k * 5) % 41) - 20))));

// A folder of class folders, with one corrupt file.
const dir = mkdtempSync(join(tmpdir(), 'kiln-e2e-'));
const photos = join(dir, 'photos');
for (const [name, c] of Object.entries(colours)) {
  mkdirSync(join(photos, name), { recursive: true });
  for (let i = 0; i < 12; i++) writeFileSync(join(photos, name, `${name}_${i}.png`), png(24, 20, noisy(c, i)));
}
writeFileSync(join(photos, 'blue', 'broken.png'), Buffer.from('\x89PNG\r\n\x1a\nnot really'));
const probe = png(24, 24, noisy(colours.green, 99));

// www/ served on a free port, Debian's Chromium with WebGPU on (tests/e2e/harness.mjs).
await e2e(['--enable-unsafe-webgpu'], async ({ browser, base }) => {
  const url = `${base}/?backend=${backend}`;
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, acceptDownloads: true });
  const page = await context.newPage();
  const errors = [];
  // Nothing leaves the machine: every request the page, its workers and the wasm make stays
  // on the page's own origin (the server also sends a same-origin Content-Security-Policy).
  const foreign = [];
  context.on('request', (r) => { if (!r.url().startsWith(`${base}/`) && !r.url().startsWith('blob:') && !r.url().startsWith('data:')) foreign.push(r.url()); });
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
  await open(page, url);
  await page.waitForSelector('body[data-ready=true]', { timeout: 60_000 });
  log('backend:', await page.textContent('#backend'));
  // Here WebGPU is SwiftShader, a software adapter: 'auto' takes the CPU and says why.
  if (backend === 'webgpu') assert.match(await page.textContent('#backend'), /WebGPU/);
  if (backend === 'auto') {
    assert.match(await page.textContent('#backend'), /CPU/);
    assert.match(await page.textContent('#notice'), /software fallback/);
  }

  // The page as a user meets it: real photos in class folders, nothing changed in Settings
  // (EfficientNet-Lite0 pretrained, 224 px, batch 64, fine_tune 1), Train. On the CPU backend
  // a batch of 64 at 224 px does not fit wasm32's 4 GiB in one pass: it must train anyway,
  // in micro-batches, on every core the page can use.
  if (backend === 'auto') {
    const cores = await page.evaluate(() => navigator.hardwareConcurrency);
    if (cores > 1) assert.match(await page.textContent('#backend'), new RegExp(`CPU \\(WebAssembly, ${Math.min(cores, 8)} threads\\)`));
    // Chromium has relaxed SIMD: the threaded build's gemm runs on its fused multiply-add
    // (tests/e2e/simd.test.mjs covers an engine without it).
    if (cores > 1) assert.match(await page.textContent('#compute'), /relaxed fused multiply-add/);
    await page.setInputFiles('#pick-folder', photoCrops(join(dir, 'real')));
    await page.waitForFunction(() => /^6 classes/.test(document.querySelector('#split').textContent), null, { timeout: 60_000 });
    // For these 72 training photos Kiln proposes batch 16 and fine_tune(7) (train-more.test.mjs
    // checks it); this run is about fastai's batch of 64, which the notice puts back in one click.
    await page.click('#proposal-use');
    assert.equal(await page.inputValue('#bs'), '64');
    const t = Date.now();
    await page.click('#train');
    await page.waitForFunction(() => document.querySelectorAll('#epochs-table tbody tr').length === 2 && !document.querySelector('#train').disabled, null, { timeout: 900_000 });
    log(`the page's defaults (EfficientNet-Lite0, 224 px, batch 64, fine_tune 1) on 96 photo crops: ${((Date.now() - t) / 1000).toFixed(1)} s; ${await page.textContent('#compute')}`);
    assert.equal(await page.isVisible('#error'), false, `training with the defaults failed: ${await page.textContent('#error')}`);
    assert.match(await page.textContent('#compute'), /passes of \d+ images to fit memory/);
    // Another batch size: the last run's split no longer applies, so Settings stop showing it.
    await page.fill('#bs', '32');
    assert.doesNotMatch(await page.textContent('#compute'), /passes of/);
    await page.fill('#bs', '64');
    const memory = await page.evaluate(() => window.kiln?.memory());
    if (memory) log(`worker memory after training: wasm ${(memory.wasmBytes / 2 ** 20).toFixed(0)} MiB`);
  }

  // The bundled sample set loads through the same path as a user's files.
  await page.click('#sample');
  await page.waitForFunction(() => /10 classes/.test(document.querySelector('#split').textContent));
  assert.match(await page.textContent('#split'), /1438 training and 359 validation images/);
  // A page of 12 photos a class (samples.js).
  assert.equal(await page.locator('#gallery .class-card img').count(), 120);

  // 1. Pick a folder: classes from folder names, the corrupt file listed with its reason.
  await page.setInputFiles('#pick-folder', photos);
  await page.waitForFunction(() => /^3 classes/.test(document.querySelector('#split').textContent));
  assert.equal(await page.locator('#gallery .class-card').count(), 3);
  assert.match(await page.textContent('#split'), /3 classes · 29 training and 7 validation images/);
  assert.match(await page.textContent('#skipped-title'), /1 file\(s\) skipped/);
  assert.match(await page.textContent('#skipped'), /broken\.png.*not a readable image/s);

  // Dropping files anywhere replaces the dataset (with Start a new dataset chosen; adding to
  // it is the default); pets-style names label them.
  await page.check('#mode-new');
  await page.evaluate(async (files) => {
    const dt = new DataTransfer();
    for (const [name, b64] of files) dt.items.add(new File([Uint8Array.from(atob(b64), (c) => c.charCodeAt(0))], name, { type: 'image/png' }));
    document.querySelector('#settings-section').dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
  }, Object.entries(colours).flatMap(([name, c]) => Array.from({ length: 8 }, (_, i) => [`${name}_${i}.png`, png(16, 16, noisy(c, i)).toString('base64')])));
  await page.waitForFunction(() => /24 training|19 training|20 training/.test(document.querySelector('#split').textContent));
  assert.match(await page.textContent('#split'), /3 classes/);
  assert.match(await page.textContent('#split'), /regex/);
  // Back to the folder for training.
  await page.check('#mode-new');
  await page.setInputFiles('#pick-folder', photos);
  await page.waitForFunction(() => /29 training/.test(document.querySelector('#split').textContent));
  await page.screenshot({ path: join(out, `${backend}-1-dataset.png`), fullPage: true });

  // 2. A tiny configuration, and the augmented batch preview.
  await page.selectOption('#arch', 'tiny');
  await page.click('.options summary');
  await page.fill('#presize', '24');
  await page.dispatchEvent('#presize', 'change');
  await page.waitForFunction(() => /29 training/.test(document.querySelector('#split').textContent));
  await page.fill('#size', '16');
  await page.fill('#bs', '8');
  await page.fill('#epochs', '1');
  await page.fill('#lr', '0.01');
  await page.click('#show-batch');
  await page.waitForSelector('#batch:not([hidden])', { timeout: 180_000 });
  const batchSize = await page.evaluate(() => [document.querySelector('#batch').width, document.querySelector('#batch').height]);
  assert.ok(batchSize[0] > 100 && batchSize[1] > 50, `show_batch canvas ${batchSize}`);

  // lr_find: the curve with its suggestions; clicking one sets the learning rate. (Skipped on
  // SwiftShader's WebGPU, where its 100 steps take minutes; the CPU run covers it.)
  const withLrFind = backend !== 'webgpu';
  if (withLrFind) {
  await page.click('#lr-find');
  await page.waitForSelector('#suggestions button', { timeout: 480_000 });
  assert.equal(await page.locator('#suggestions button').count(), 4);
  const valley = page.locator('#suggestions button', { hasText: 'valley' });
  const suggested = Number(await valley.getAttribute('data-lr'));
  assert.ok(suggested > 0 && suggested < 10, `valley ${suggested}`);
  await valley.click();
  assert.ok(Math.abs(Number(await page.inputValue('#lr')) / suggested - 1) < 0.01, 'the clicked suggestion becomes the LR');
  }

  // 3. Train with fine_tune (the default; the sample preset above chose fit_one_cycle): a frozen epoch, then an unfrozen one; the charts,
  // the epoch table and the interpretation fill.
  await page.selectOption('#method', 'fine_tune');
  await page.fill('#lr', '0.01');
  const t0 = Date.now();
  await page.click('#train');
  await page.waitForFunction(() => document.querySelectorAll('#epochs-table tbody tr').length === 2, null, { timeout: 480_000 });
  await page.waitForFunction(() => !document.querySelector('#train').disabled);
  log(`fine_tune (1 frozen + 1 unfrozen epoch) in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  const rows = await page.$$eval('#epochs-table tbody tr', (trs) => trs.map((tr) => [...tr.children].map((t) => t.textContent)));
  assert.deepEqual(rows.map((r) => r[0]), ['frozen', 'unfrozen']);
  for (const v of rows.flatMap((r) => r.slice(2, 6))) assert.ok(Number.isFinite(Number(v)), `epoch table value ${v}`);
  assert.equal(await page.evaluate(() => document.querySelector('#progress').value), 1);
  await page.screenshot({ path: join(out, `${backend}-2-trained.png`), fullPage: true });
  const charts = withLrFind ? ['#lr-chart', '#loss-chart', '#metric-chart'] : ['#loss-chart', '#metric-chart'];
  const inked = await page.evaluate((ids) => ids.map((id) => document.querySelector(`${id} canvas`)).map((c) => {
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let n = 0;
    for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++;
    return n;
  }), charts);
  assert.ok(inked.length === charts.length && inked.every((n) => n > 200), `charts ${charts} drew lines: ${inked}`);
  // Interpretation: a 3×3 heat map summing to the validation size, top losses drawn.
  await page.waitForSelector('#interpretation:not([hidden])', { timeout: 120_000 });
  const cells = await page.$$eval('#confusion td', (tds) => tds.map((t) => Number(t.textContent)));
  assert.equal(cells.length, 9);
  assert.equal(cells.reduce((a, b) => a + b, 0), 7);
  assert.ok((await page.locator('#most-confused li').count()) >= 1);
  // Top losses: one captioned image each (tests/e2e/messages.test.mjs checks them closely).
  assert.ok((await page.locator('#top-losses figure canvas').count()) >= 1);
  await page.screenshot({ path: join(out, `${backend}-2-trained.png`), fullPage: true });

  // 4. Predict a dropped photo: probability bars for every class.
  await page.evaluate(async (b64) => {
    const dt = new DataTransfer();
    dt.items.add(new File([Uint8Array.from(atob(b64), (c) => c.charCodeAt(0))], 'new-photo.png', { type: 'image/png' }));
    document.querySelector('#predict-drop').dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
  }, probe.toString('base64'));
  await page.waitForSelector('#prediction:not([hidden])', { timeout: 60_000 });
  assert.equal(await page.locator('#bars .bar').count(), 3);
  const label = await page.textContent('#predict-label');
  log('prediction:', label);
  assert.match(label, /^(red|green|blue) \(\d+\.\d%\)$/);

  // 5. Export, then import the file back: the same prediction.
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('#export')]);
  const saved = join(dir, 'model.kiln');
  await download.saveAs(saved);
  assert.equal(readFileSync(saved).subarray(0, 4).toString(), 'KILN');
  await page.setInputFiles('#import', saved);
  await page.waitForFunction(() => /loaded model\.kiln: 3 classes/.test(document.querySelector('#model-status').textContent));
  await page.setInputFiles('#predict-file', { name: 'again.png', mimeType: 'image/png', buffer: probe });
  await page.waitForFunction((prev) => document.querySelector('#predict-label').textContent === prev, label);
  await page.screenshot({ path: join(out, `${backend}-3-predicted.png`), fullPage: true });

  // Mixed precision (fp16) needs a GPU with shader-f16: neither SwiftShader nor the CPU has it.
  assert.equal(await page.isDisabled('#fp16'), true);
  assert.match(await page.textContent('#fp16-why'), /not available: .*mixed precision \(fp16\)/);

  // Download ONNX: onnxruntime (npm) runs it, a probability per class for each image.
  const [onnxDownload] = await Promise.all([page.waitForEvent('download'), page.click('#export-onnx')]);
  // Downloads are named from the classes and the date.
  assert.match(onnxDownload.suggestedFilename(), /^blue-green-red-\d{4}-\d{2}-\d{2}\.onnx$/);
  const onnxPath = join(dir, 'model.onnx');
  await onnxDownload.saveAs(onnxPath);
  const session = await ort.InferenceSession.create(onnxPath);
  assert.deepEqual([session.inputNames, session.outputNames], [['image'], ['probabilities']]);
  const grey = new ort.Tensor('float32', new Float32Array(2 * 3 * 16 * 16).fill(0.5), [2, 3, 16, 16]);
  const { probabilities } = await session.run({ image: grey });
  assert.deepEqual(probabilities.dims, [2, 3]);
  assert.ok(Math.abs(probabilities.data.slice(0, 3).reduce((a, b) => a + b, 0) - 1) < 1e-5);
  log(`ONNX download (${readFileSync(onnxPath).length} bytes) runs in onnxruntime-node: grey image → ${Array.from(probabilities.data.slice(0, 3), (p) => p.toFixed(3))}`);
  // Given back where a model is expected, the ONNX file is refused with what to give instead.
  await page.setInputFiles('#import', onnxPath);
  await page.waitForSelector('#error:not([hidden])');
  assert.match(await page.textContent('#error'), /an ONNX model .*not a Kiln model: Kiln reads the \.kiln file/);
  await page.evaluate(() => { document.querySelector('#error').hidden = true; });
  // The tiny ResNet has no fastai counterpart: the fastai/PyTorch download says so.
  await page.click('#export-pytorch');
  await page.waitForSelector('#error:not([hidden])');
  assert.match(await page.textContent('#error'), /no model for: export it as ONNX instead/);
  await page.evaluate(() => { document.querySelector('#error').hidden = true; });

  // Cancel: a long fit stops after the current batch and the page says the model is kept.
  await page.fill('#epochs', '200');
  await page.click('#train');
  await page.waitForFunction(() => document.querySelector('#progress').value > 0 && document.querySelector('#progress').value < 1, null, { timeout: 180_000 });
  await page.click('#cancel');
  await page.waitForFunction(() => /cancelled/.test(document.querySelector('#status').textContent), null, { timeout: 180_000 });
  await page.waitForFunction(() => !document.querySelector('#train').disabled && !document.querySelector('#export').disabled, null, { timeout: 120_000 });
  assert.ok((await page.locator('#epochs-table tbody tr').count()) < 201);

  // 6. Pretrained weights (CPU run only: EfficientNet on SwiftShader takes minutes; the wasm
  // tests run it on WebGPU). The default is the bundled EfficientNet-Lite0.
  if (backend !== 'webgpu') {
    await page.selectOption('#arch', 'efficientnet_lite0');
    assert.match(await page.textContent('#weights-status'), /EfficientNet-Lite0 pretrained on ImageNet \(bundled/);
    await page.fill('#size', '32');
    await page.fill('#epochs', '1');
    await page.fill('#lr', '0.002');
    const t1 = Date.now();
    await page.click('#train');
    await page.waitForFunction(() => /pretrained weights: ImageNet \(bundled\)/.test(document.querySelector('#status').textContent), null, { timeout: 120_000 });
    await page.waitForFunction(() => document.querySelectorAll('#epochs-table tbody tr').length === 2 && !document.querySelector('#train').disabled, null, { timeout: 480_000 });
    log(`fine_tune from the bundled EfficientNet-Lite0 in ${((Date.now() - t1) / 1000).toFixed(1)} s`);
    // Download for fastai / PyTorch: a safetensors state dict in fastai's timm layout.
    const [ptDownload] = await Promise.all([page.waitForEvent('download'), page.click('#export-pytorch')]);
    assert.match(ptDownload.suggestedFilename(), /^blue-green-red-\d{4}-\d{2}-\d{2}\.safetensors$/);
    const ptPath = join(dir, 'model.safetensors');
    await ptDownload.saveAs(ptPath);
    const st = readFileSync(ptPath);
    const header = JSON.parse(st.subarray(8, 8 + Number(st.readBigUInt64LE(0))).toString());
    assert.deepEqual(header['0.model.conv_stem.weight'].shape, [32, 3, 3, 3]);
    assert.deepEqual(header['1.8.weight'].shape, [3, 512]);
    assert.equal(header['0.model.bn2.num_batches_tracked'].dtype, 'I64');
    assert.match(header.__metadata__.fastai, /'tf_efficientnet_lite0', n_out=3/);
    log(`fastai/PyTorch download: ${Object.keys(header).length - 1} tensors in fastai's layout`);

    // A ResNet needs the user's weights: a clear error names torchvision's file…
    await page.selectOption('#arch', 'resnet34');
    assert.match(await page.textContent('#weights-status'), /resnet34-b627a593\.pth/);
    await page.click('#train');
    await page.waitForSelector('#error:not([hidden])');
    assert.match(await page.textContent('#error'), /no pretrained ResNet-34 weights.*resnet34-b627a593\.pth/);
    // The failed start keeps the last run's epoch table; the error is in view at the top.
    assert.equal(await page.locator('#epochs-table tbody tr').count(), 2);
    assert.ok(await page.evaluate(() => { const r = document.querySelector('#error').getBoundingClientRect(); return r.top >= 0 && r.bottom <= window.innerHeight; }), 'the error is visible without scrolling');
    // …and a torchvision-layout checkpoint (written by the fixture script) is recognised.
    const ckpt = join(dir, 'resnet18-fixture.pth');
    const py = spawnSync('python3', [join(root, 'tests/fixtures/torch_checkpoint.py'), ckpt, '--format', 'zip', '--arch', 'resnet18']);
    assert.equal(py.status, 0, String(py.stderr));
    await page.setInputFiles('#weights-file', ckpt);
    await page.waitForFunction(() => /ResNet-18 from resnet18-fixture\.pth/.test(document.querySelector('#weights-status').textContent), null, { timeout: 120_000 });
    assert.equal(await page.inputValue('#arch'), 'resnet18');
    await page.click('#train');
    await page.waitForFunction(() => /pretrained weights: resnet18-fixture\.pth/.test(document.querySelector('#status').textContent), null, { timeout: 120_000 });
    await page.waitForFunction(() => document.querySelectorAll('#epochs-table tbody tr').length === 2 && !document.querySelector('#train').disabled, null, { timeout: 480_000 });
    const ptRows = await page.$$eval('#epochs-table tbody tr', (trs) => trs.map((tr) => [...tr.children].map((t) => t.textContent)));
    for (const v of ptRows.flatMap((r) => r.slice(2, 6))) assert.ok(Number.isFinite(Number(v)), `epoch table value ${v}`);
    await page.screenshot({ path: join(out, `${backend}-5-pretrained.png`), fullPage: true });
    // Garbage as weights: an error naming the file.
    await page.setInputFiles('#weights-file', { name: 'junk.pth', mimeType: 'application/octet-stream', buffer: Buffer.from('not a checkpoint') });
    await page.waitForSelector('#error:not([hidden])');
    assert.match(await page.textContent('#error'), /junk\.pth.*PyTorch checkpoint/);
    await page.evaluate(() => { document.querySelector('#error').hidden = true; });
    // A Kiln backbone file (what `kiln weights import` writes) is accepted too.
    await page.setInputFiles('#weights-file', join(root, 'www/weights/efficientnet_lite0.kiln'));
    await page.waitForFunction(() => /EfficientNet-Lite0 from efficientnet_lite0\.kiln/.test(document.querySelector('#weights-status').textContent), null, { timeout: 120_000 });
    assert.equal(await page.inputValue('#arch'), 'efficientnet_lite0');
    // Picking the same file again works (the picker is emptied after each use).
    await page.selectOption('#arch', 'resnet18');
    await page.setInputFiles('#weights-file', join(root, 'www/weights/efficientnet_lite0.kiln'));
    await page.waitForFunction(() => document.querySelector('#arch').value === 'efficientnet_lite0', null, { timeout: 120_000 });
  }

  // Phone width: still usable, no horizontal scroll.
  await page.setViewportSize({ width: 390, height: 844 });
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 1, `page scrolls sideways by ${overflow}px at phone width`);
  await page.screenshot({ path: join(out, `${backend}-4-phone.png`), fullPage: true });

  assert.equal(await page.isVisible('#error'), false, `page shows an error: ${await page.textContent('#error')}`);
  assert.deepEqual(foreign, [], 'requests outside the page\'s origin');
  // Only the errors provoked above reach the console (a CSP violation would be one).
  assert.deepEqual(errors.filter((e) => !/favicon|no pretrained ResNet-34 weights|junk\.pth|export it as ONNX instead|an ONNX model/.test(e)), []);

  // A static host without cross-origin isolation headers: no wasm threads, so the page loads
  // the one-thread build, says why, and still trains.
  if (backend === 'auto') {
    const plainPort = Number(new URL(base).port) + 1000;
    const plain = spawn('python3', ['-m', 'http.server', String(plainPort), '--bind', '127.0.0.1', '--directory', join(root, 'www')], { stdio: 'ignore' });
    try {
      const p2 = await context.newPage();
      await open(p2, `http://127.0.0.1:${plainPort}/?backend=cpu`);
      await p2.waitForSelector('body[data-ready=true]', { timeout: 60_000 });
      assert.match(await p2.textContent('#backend'), /CPU \(WebAssembly, 1 thread\)/);
      assert.match(await p2.textContent('#notice'), /one thread: the page is not cross-origin isolated/);
      await p2.setInputFiles('#pick-folder', photos);
      await p2.waitForFunction(() => /29 training/.test(document.querySelector('#split').textContent));
      await trainTinyEpoch(p2);
      await p2.close();
      log('not cross-origin isolated: one-thread build trains');
    } finally {
      plain.kill();
    }
  }
  log('ok');
});
