// The threaded CPU build ships two .wasm files: gemm on relaxed SIMD's fused multiply-add, and
// plain 128-bit SIMD for engines that reject relaxed SIMD (Safari today). Checked here: an
// engine without relaxed SIMD accepts the plain file and rejects the relaxed one (node 20's V8
// is such an engine; Chromium's can no longer switch it off), and the page trains on the plain
// file on every core when asked (`?simd=plain`). page.test.mjs checks that a stock Chromium
// gets the relaxed one. Also: settings in the address that Kiln does not know (`?backend=gpu`)
// are said on the page and replaced by the defaults, and the JS API refuses them by name; and one
// thread (`?threads=1`) still gets the relaxed build, with a pool of one.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { e2e, open, root, trainTinyEpoch } from './harness.mjs';
import { png } from './png.mjs';
import { hasRelaxedSimd } from '../../www/relaxed-simd.js';

const log = (...a) => console.log('[e2e simd]', ...a);

// The check www/worker.js makes before it picks a .wasm.
if (!hasRelaxedSimd()) {
  const valid = (f) => WebAssembly.validate(readFileSync(join(root, 'www', f)));
  assert.equal(valid('pkg-threads/kiln_bg.wasm'), true, 'an engine without relaxed SIMD rejects the plain threaded build');
  assert.equal(valid('pkg-threads-relaxed/kiln_bg.wasm'), false, 'the relaxed build validates without relaxed SIMD: it has none');
  log(`node ${process.version} (no relaxed SIMD): accepts pkg-threads/, rejects pkg-threads-relaxed/`);
} else {
  log(`node ${process.version} has relaxed SIMD: the engine check needs one without (node 20 without flags)`);
}

const dir = mkdtempSync(join(tmpdir(), 'kiln-simd-'));
for (const [name, c] of Object.entries({ red: [210, 30, 30], blue: [30, 40, 210] })) {
  mkdirSync(join(dir, name));
  for (let i = 0; i < 10; i++) writeFileSync(join(dir, name, `${name}_${i}.png`), png(20, 20, (x, y) => c.map((v) => (v + x * 3 + y * 5 + i) % 256)));
}

await e2e([], async ({ browser, base }) => {
  const page = await (await browser.newContext()).newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await open(page, `${base}/?backend=cpu&simd=plain`);
  await page.waitForSelector('body[data-ready=true]', { timeout: 60_000 });
  const cores = await page.evaluate(() => navigator.hardwareConcurrency);
  const compute = await page.textContent('#compute');
  log(await page.textContent('#backend'), '·', compute);
  assert.doesNotMatch(compute, /relaxed/);
  assert.match(compute, /WebAssembly SIMD/);
  if (cores > 1) assert.match(await page.textContent('#backend'), /CPU \(WebAssembly, \d+ threads\)/);

  await page.setInputFiles('#pick-folder', dir);
  await page.waitForFunction(() => /^2 classes/.test(document.querySelector('#split').textContent), null, { timeout: 60_000 });
  await trainTinyEpoch(page);
  assert.deepEqual(errors, []);
  log('plain-SIMD threaded build trains');

  // `?backend=gpu` (the CLI says --device gpu) used to fall through to WebGPU, even a software one.
  const guess = await (await browser.newContext()).newPage();
  await open(guess, `${base}/?backend=gpu&simd=fast&threads=two`);
  await guess.waitForSelector('body[data-ready=true]', { timeout: 60_000 });
  const notice = await guess.textContent('#notice');
  log('notice:', notice);
  assert.match(notice, /\?backend=gpu, which Kiln does not know \(\?backend=auto, \?backend=webgpu, \?backend=cpu\): using the automatic choice/);
  assert.match(notice, /\?simd=fast, which Kiln does not know/);
  assert.match(notice, /\?threads=two, which is not a whole number/);
  const refused = await guess.evaluate(async () => {
    const { Kiln } = await import('./kiln.js');
    return Kiln.create({ backend: 'gpu' }).then(() => 'created', (e) => e.message);
  });
  assert.equal(refused, `Kiln.create: backend must be 'auto', 'webgpu', 'cpu' or left out, not "gpu"`);

  // One thread on a cross-origin isolated page: the relaxed build with a pool of one (its FMA
  // kernels exist only there), and it trains.
  const one = await (await browser.newContext()).newPage();
  one.on('pageerror', (e) => errors.push(e.message));
  await open(one, `${base}/?backend=cpu&threads=1`);
  await one.waitForSelector('body[data-ready=true]', { timeout: 60_000 });
  const oneCompute = await one.textContent('#compute');
  log('threads=1:', await one.textContent('#backend'), '·', oneCompute);
  assert.match(oneCompute, /1 thread, WebAssembly SIMD with relaxed fused multiply-add/);
  await one.setInputFiles('#pick-folder', dir);
  await one.waitForFunction(() => /^2 classes/.test(document.querySelector('#split').textContent), null, { timeout: 60_000 });
  await trainTinyEpoch(one);
  assert.deepEqual(errors, []);
  log('one thread trains on the relaxed build (a pool of one)');
});
