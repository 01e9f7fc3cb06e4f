// WebGPU device loss in the middle of training (SwiftShader's WebGPU in headless Chromium; the
// device is destroyed as a driver reset would): the running call fails with a clear message,
// Kiln moves to the CPU backend without a page reload, the model of the last finished epoch is
// kept, and training continues there.
import assert from 'node:assert/strict';
import { e2e, open } from './harness.mjs';

const log = (...a) => console.log('[e2e device loss]', ...a);
await e2e(['--enable-unsafe-webgpu'], async ({ browser, base }) => {
  const page = await browser.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  if (process.env.DEBUG) page.on('console', (m) => console.log('  page:', m.text()));
  await open(page, `${base}/bench.html`);
  const r = await page.evaluate(async () => {
    const { Kiln } = await import('./kiln.js');
    const { gpuBuffers, loseDevice } = await import('./kiln-testing.js');
    const kiln = await Kiln.create({ backend: 'webgpu' });
    const first = kiln.info.backend;
    // Two classes of small noisy colour images.
    const image = async (rgb, seed) => {
      const c = new OffscreenCanvas(16, 16);
      const g = c.getContext('2d');
      for (let y = 0; y < 16; y++) for (let x = 0; x < 16; x++) {
        const n = ((x * 31 + y * 17 + seed * 7) % 41) - 20;
        g.fillStyle = `rgb(${rgb.map((v) => Math.max(0, Math.min(255, v + n))).join(',')})`;
        g.fillRect(x, y, 1, 1);
      }
      return c.convertToBlob({ type: 'image/png' });
    };
    const files = [];
    for (const [name, rgb] of [['red', [210, 30, 30]], ['blue', [30, 40, 210]]]) {
      for (let i = 0; i < 10; i++) files.push({ name: `${name}/${name}_${i}.png`, blob: await image(rgb, i) });
    }
    await kiln.loadDataset(files, { presize: 16, validPct: 0.2, seed: 1 });
    await kiln.createLearner({ arch: 'tiny', size: 16, batchSize: 8, hidden: 16, doFlip: false });
    console.log('dataset and learner ready');
    await kiln.fitOneCycle(1, 3e-3);
    console.log('first epoch done');
    // No GPU buffers leak: after warm-up, more epochs create no more live buffers.
    await kiln.fitOneCycle(1, 3e-3);
    const warm = await gpuBuffers(kiln);
    await kiln.fitOneCycle(4, 3e-3);
    const soaked = await gpuBuffers(kiln);
    const probe = files[0].blob;
    const before = await kiln.predict(probe);
    console.log('predicted');
    let message = null;
    let batches = 0;
    try {
      await kiln.fitOneCycle(3, 3e-3, { onBatch: () => { if (++batches === 1) loseDevice(kiln); } });
    } catch (e) {
      message = e.message;
    }
    await kiln.restarting;
    const now = kiln.info.backend;
    const after = await kiln.predict(probe);
    const again = await kiln.fitOneCycle(1, 3e-3);
    kiln.dispose();
    return { first, message, now, before, after, againEpochs: again.epochs.length, warm, soaked };
  });
  const live = (b) => b.created - b.destroyed;
  log(`GPU buffers after 2 epochs: ${live(r.warm)} live (${(r.warm.bytes / 2 ** 20).toFixed(1)} MiB, ${r.warm.created} created); after 4 more: ${live(r.soaked)} live (${(r.soaked.bytes / 2 ** 20).toFixed(1)} MiB, ${r.soaked.created} created)`);
  assert.ok(r.soaked.bytes <= r.warm.bytes * 1.05, 'GPU memory in buffers grew over the epochs');
  log(`started on ${r.first}; after the loss: ${r.now}; message: ${r.message}`);
  assert.equal(r.first, 'webgpu');
  assert.match(r.message || '', /GPU stopped working.*CPU backend.*last finished epoch/);
  assert.equal(r.now, 'cpu', 'Kiln moved to the CPU backend');
  const diff = Math.max(...r.before.probs.map((p, i) => Math.abs(p - r.after.probs[i])));
  log(`prediction before (WebGPU) ${r.before.label} ${r.before.probs.map((p) => p.toFixed(4))}, after (CPU) ${r.after.label}: max |Δp| ${diff.toExponential(1)}`);
  assert.equal(r.after.label, r.before.label);
  assert.ok(diff < 1e-3, 'the model of the last finished epoch is kept');
  assert.equal(r.againEpochs, 1, 'training continues on the CPU');
  assert.deepEqual(errors, []);
  log('ok');
});
