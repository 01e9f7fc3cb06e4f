// `node benches/browser.mjs [sections…]`: the page's figures in headless Chromium, in one run,
// printed as a table. Needs the page built (scripts/build-web.sh) and the native CLI and bench
// (cargo build --release; the native reference runs `cargo bench --bench train -- browser-ref`).
// Sections (default: all):
//   size     each build's .wasm, raw and gzip -9
//   steps    ResNet-18, ResNet-50 and EfficientNet-Lite0 (KILN_BENCH_ARCHS, comma-separated,
//            picks others) at 224 px, batch 16, frozen and unfrozen steps
//            (fine_tune's two phases, median after warm-up) on the CPU backend with 1 thread
//            and with all threads, against the native flex step at the same thread count
//   relaxed  the relaxed-SIMD build's steps (fused multiply-add kernels) against the plain-SIMD
//            .wasm (what Safari loads; `simd: 'plain'`): all threads, and one thread
//   webgpu-models  ResNet-18's and EfficientNet-Lite0's steps on WebGPU at 64 px, batch 4
//   webgpu   the tiny model's step on WebGPU and on the CPU (SwiftShader's WebGPU is a software
//            renderer: at 224 px a step takes minutes, so WebGPU is timed on the tiny model)
//   default  the page as a user meets it: a 144-photo, 6-class folder set, default settings,
//            Train → trained model; time to the end of the frozen epoch and in all, peak memory
//   cold     page load → the first training step of the default model on the CPU backend
//   soak     wasm memory after 50 and after 500 steps of the tiny model (must stay flat), then
//            after 50 cancel/restart cycles; workers left after 20 create/dispose cycles
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, mkdirSync, rmSync, readdirSync, renameSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { join } from 'node:path';
import { createDisposeCycles, launch, open, photoCrops, root, serve, soak, workersAfterSettling } from '../tests/e2e/harness.mjs';

const sections = process.argv.slice(2).length ? process.argv.slice(2) : ['size', 'steps', 'relaxed', 'webgpu', 'default', 'cold', 'soak'];
const rows = [];
const row = (what, value, note = '') => { rows.push([what, value, note]); console.log(`  ${what}: ${value}${note ? `  (${note})` : ''}`); };
const median = (v) => { const s = [...v].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]; };
const secs = (x) => (x == null || Number.isNaN(x) ? 'n/a' : `${x.toFixed(2)} s`);
const mib = (b) => `${(b / 1048576).toFixed(0)} MiB`;

// KILN_BENCH_WWW: serve another build's copy of www/ (a before/after in one session).
const www = process.env.KILN_BENCH_WWW || join(root, 'www');

if (sections.includes('size')) {
  for (const build of ['pkg/kiln_bg.wasm', 'pkg-threads/kiln_bg.wasm', 'pkg-threads-relaxed/kiln_bg.wasm']) {
    const raw = readFileSync(join(www, build));
    row(`wasm size, ${build}`, `${(raw.length / 1048576).toFixed(1)} MiB raw, ${(gzipSync(raw, { level: 9 }).length / 1048576).toFixed(2)} MiB gzip -9`);
  }
}

// The same server and browser as the end-to-end tests (tests/e2e/harness.mjs), on other ports.
const browser = await launch(['--enable-unsafe-webgpu', '--enable-precise-memory-info']);
const { server, base } = serve(www, 22000);

async function benchPage() {
  const page = await browser.newPage();
  page.on('pageerror', (e) => console.error('page error:', e.message));
  await open(page, `${base}/bench.html`);
  return page;
}

/** fine_tune(1) on the digits at presize 256, 224 px, batch 16: median step per phase. */
async function browserSteps(arch, backend, threads, simd = 'auto') {
  const page = await benchPage();
  const r = await page.evaluate(async ({ arch, backend, threads, simd }) => {
    const { Kiln } = await import('./kiln.js');
    const kiln = await Kiln.create({ backend, threads, simd });
    const files = (await kiln.sampleFiles()).slice(0, 112);
    await kiln.loadDataset(files, { presize: 256, validPct: 0.143 });
    await kiln.createLearner({ arch, pretrained: false, size: 224, batchSize: 16 });
    const times = {};
    let last = null;
    await kiln.fineTune(1, { freezeEpochs: 1 }, {
      onBatch: (b) => {
        const now = performance.now();
        if (last && last.phase === b.phase) (times[b.phase] ||= []).push((now - last.t) / 1000);
        last = { phase: b.phase, t: now };
      },
    });
    const mem = await kiln.memory();
    kiln.dispose();
    return { times, threads: kiln.info.threads, simd: kiln.info.simd, mem };
  }, { arch, backend, threads, simd });
  await page.close();
  const m = (p) => median((r.times[p] || []).slice(1));
  return { frozen: m('frozen'), unfrozen: m('unfrozen'), threads: r.threads, simd: r.simd, mem: r.mem.wasmBytes };
}

function nativeSteps(threads) {
  const out = spawnSync('cargo', ['bench', '-q', '--bench', 'train', '--', 'browser-ref'], { cwd: root, env: { ...process.env, RAYON_NUM_THREADS: String(threads) }, encoding: 'utf8' });
  if (out.status !== 0) throw new Error(`native reference failed: ${out.stderr}`);
  return Object.fromEntries(out.stdout.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l)).map((j) => [j.arch, j]));
}

// Threads the page uses here: every core, at most 8 (www/worker.js).
const cores = Math.min(8, Number(spawnSync('nproc', { encoding: 'utf8' }).stdout.trim()) || 1);

try {
  if (sections.includes('steps')) {
    for (const threads of [1, cores]) {
      const native = nativeSteps(threads);
      for (const arch of (process.env.KILN_BENCH_ARCHS || 'resnet18,resnet50,efficientnet_lite0').split(',')) {
        const b = await browserSteps(arch, 'cpu', threads);
        for (const phase of ['frozen', 'unfrozen']) {
          const n = native[arch][`${phase}_s`];
          row(`${arch} ${phase} step, 224 px, batch 16, CPU ${b.threads} thread(s)`, `browser ${secs(b[phase])}, native ${secs(n)}`, `browser/native ${(b[phase] / n).toFixed(2)}×; ${b.simd === 'relaxed' ? 'relaxed-SIMD build' : 'plain-SIMD build'}; wasm memory ${mib(b.mem)}`);
        }
      }
    }
  }

  if (sections.includes('relaxed')) {
    // All threads for both models; one thread (a pool of one against pkg/, the build a page
    // without cross-origin isolation gets) for the default model.
    for (const [arch, threads] of [['resnet18', cores], ['efficientnet_lite0', cores], ['efficientnet_lite0', 1]]) {
      const r = await browserSteps(arch, 'cpu', threads);
      const p = await browserSteps(arch, 'cpu', threads, 'plain');
      if (r.simd !== 'relaxed' || p.simd !== 'simd128') throw new Error(`expected the relaxed and the plain .wasm, got ${r.simd} and ${p.simd}`);
      for (const phase of ['frozen', 'unfrozen']) {
        row(`${arch} ${phase} step, CPU ${r.threads} thread(s): relaxed SIMD vs plain SIMD`, `${secs(r[phase])} vs ${secs(p[phase])}`, `relaxed/plain ${(r[phase] / p[phase]).toFixed(2)}×`);
      }
    }
  }

  if (sections.includes('webgpu-models')) {
    // ResNet-18 and EfficientNet-Lite0 on WebGPU at 64 px, batch 4 (SwiftShader here: a software
    // adapter, so small), the steps of one epoch after the first; KILN_BENCH_WWW compares builds.
    for (const arch of ['resnet18', 'efficientnet_lite0']) {
      const page = await benchPage();
      const r = await page.evaluate(async ({ arch }) => {
        const { Kiln } = await import('./kiln.js');
        const kiln = await Kiln.create({ backend: 'webgpu' });
        await kiln.loadDataset((await kiln.sampleFiles()).slice(0, 45), { presize: 72, validPct: 0.2 });
        await kiln.createLearner({ arch, size: 64, batchSize: 4, doFlip: false, pretrained: false });
        const times = [];
        let last = performance.now();
        await kiln.fitOneCycle(1, 1e-3, { onBatch: () => { const now = performance.now(); times.push(now - last); last = now; } });
        kiln.dispose();
        const first = times.shift();
        times.sort((a, b) => a - b);
        return { adapter: kiln.info.adapter, first, median: times[Math.floor(times.length / 2)], n: times.length };
      }, { arch });
      await page.close();
      row(`${arch} step on WebGPU, 64 px, batch 4`, `${(r.median / 1000).toFixed(2)} s`, `first ${(r.first / 1000).toFixed(1)} s, median of ${r.n}; ${r.adapter}`);
    }
  }

  if (sections.includes('webgpu')) {
    for (const backend of ['webgpu', 'cpu']) {
      const page = await benchPage();
      const r = await page.evaluate(async ({ backend }) => {
        const { Kiln } = await import('./kiln.js');
        const kiln = await Kiln.create({ backend });
        await kiln.loadDataset((await kiln.sampleFiles()).slice(0, 16 * 13 * 5 / 4), { presize: 36, validPct: 0.2 });
        await kiln.createLearner({ arch: 'tiny', size: 32, batchSize: 16, hidden: 64, doFlip: false });
        const times = [];
        let last = null;
        await kiln.fitOneCycle(1, 1e-2, { onBatch: () => { const now = performance.now(); if (last) times.push(now - last); last = now; } });
        kiln.dispose();
        times.sort((a, b) => a - b);
        return { adapter: kiln.info.adapter, threads: kiln.info.threads, median: times[Math.floor(times.length / 2)] };
      }, { backend });
      await page.close();
      row(`tiny ResNet step, 32 px, batch 16, ${backend}`, `${r.median.toFixed(0)} ms`, `${r.adapter}, ${r.threads} thread(s)`);
    }
  }

  if (sections.includes('default')) {
    // 144 real-photo crops in 6 class folders (24 each), made by the CLI from the bundled photos.
    const dir = join(root, 'out/bench-photos');
    if (!existsSync(join(dir, 'set'))) {
      rmSync(dir, { recursive: true, force: true });
      photoCrops(dir, { side: 320, cropsPerCell: 2 });
      for (const split of ['train', 'valid']) {
        for (const cls of readdirSync(join(dir, 'crops', split))) {
          mkdirSync(join(dir, 'set', cls), { recursive: true });
          for (const f of readdirSync(join(dir, 'crops', split, cls))) {
            if (readdirSync(join(dir, 'set', cls)).length < 24) renameSync(join(dir, 'crops', split, cls, f), join(dir, 'set', cls, f));
          }
        }
      }
    }
    const page = await browser.newPage();
    page.on('pageerror', (e) => console.error('page error:', e.message));
    const t0 = Date.now();
    await open(page, `${base}/`);
    await page.waitForSelector('body[data-ready=true]', { timeout: 120_000 });
    await page.setInputFiles('#pick-folder', join(dir, 'set'));
    await page.waitForFunction(() => /^6 classes/.test(document.querySelector('#split').textContent), null, { timeout: 120_000 });
    const backendText = await page.textContent('#backend');
    const tTrain = Date.now();
    await page.click('#train');
    await page.waitForFunction(() => document.querySelectorAll('#epochs-table tbody tr').length >= 1, null, { timeout: 1_800_000 });
    const tFrozen = Date.now();
    // The defaults' epoch count follows the photo count (Kiln's small-data proposal): done is
    // Train usable again with the status saying so, however many rows that took.
    await page.waitForFunction(() => !document.querySelector('#train').disabled && /^done/.test(document.querySelector('#status').textContent), null, { timeout: 1_800_000 });
    const tDone = Date.now();
    const compute = await page.textContent('#compute');
    const accuracy = await page.$$eval('#epochs-table tbody tr', (trs) => trs.map((tr) => [...tr.children].map((t) => t.textContent).join(' ')));
    const error = await page.textContent('#error').catch(() => '');
    row('page defaults, 144 photos / 6 classes: Train → end of frozen epoch', secs((tFrozen - tTrain) / 1000), backendText);
    row('page defaults, 144 photos / 6 classes: Train → done', secs((tDone - tTrain) / 1000), `${accuracy.length} epochs; ${compute.trim()} ${accuracy.at(-1) || ''} ${error || ''}`.trim());
    row('page defaults: page load → trained model', secs((tDone - t0) / 1000));
    await page.close();
  }

  if (sections.includes('cold')) {
    // performance.now() counts from the navigation's start, so these include fetching the page.
    for (const batchSize of [64, 16]) {
      const page = await browser.newPage();
      await open(page, `${base}/bench.html`);
      const r = await page.evaluate(async (batchSize) => {
        const { Kiln } = await import('./kiln.js');
        const kiln = await Kiln.create({ backend: 'cpu' });
        const created = performance.now();
        await kiln.loadDataset((await kiln.sampleFiles()).slice(0, 200), { presize: 256 });
        await kiln.createLearner({ batchSize });
        const learner = performance.now();
        let first = null;
        await new Promise((resolve) => {
          kiln.fineTune(1, {}, { onBatch: () => { if (first === null) { first = performance.now(); kiln.cancel(); resolve(); } } }).then(resolve, resolve);
        });
        kiln.dispose();
        return { created: created / 1000, learner: learner / 1000, first: first / 1000, threads: kiln.info.threads };
      }, batchSize);
      await page.close();
      if (batchSize === 64) {
        row('cold start: page → Kiln ready (fetch, compile, thread pool)', secs(r.created), `${r.threads} thread(s)`);
        row('cold start: page → default model created (bundled weights fetched and loaded)', secs(r.learner));
      }
      row(`cold start: page → first training step done, default model, batch ${batchSize} (CPU)`, secs(r.first), `EfficientNet-Lite0 pretrained, 224 px; the step itself is ${secs(r.first - r.learner)}`);
    }
  }

  if (sections.includes('soak')) {
    // The soak test's run (tests/e2e/soak.test.mjs) at full size.
    const page = await benchPage();
    const r = await soak(page, { steps: 500, cancels: 50 });
    const heaps = (...m) => (m[0].pageJsHeapBytes ? m.map((x) => mib(x.pageJsHeapBytes)).join(' / ') : 'n/a');
    row(`soak: wasm memory after ~50 / ${r.steps} tiny steps`, `${mib(r.warm.wasmBytes)} / ${mib(r.afterSteps.wasmBytes)}`, `${((r.afterSteps.wasmBytes / r.warm.wasmBytes - 1) * 100).toFixed(1)} % growth; live Rust heap ${mib(r.warm.liveHeapBytes)} / ${mib(r.afterSteps.liveHeapBytes)}; page JS heap ${heaps(r.warm, r.afterSteps)}`);
    row('soak: then 50 × (fit, cancel after 3 batches, restart)', `wasm ${mib(r.afterCancels.wasmBytes)} (${((r.afterCancels.wasmBytes / r.afterSteps.wasmBytes - 1) * 100).toFixed(1)} % vs after the steps)`, `${r.cancelled}/50 stopped within a batch; page JS heap ${heaps(r.afterCancels)}`);
    row('soak: worker restart keeps the last epoch\'s model', JSON.stringify(r.after) === JSON.stringify(r.before) ? 'same prediction' : 'DIFFERENT prediction');
    // Workers: create/dispose cycles must leave no worker behind (the count after 5 cycles and
    // after 20 must match).
    const heap5 = await createDisposeCycles(page, 5);
    const workers5 = await workersAfterSettling(page);
    const heap20 = await createDisposeCycles(page, 15);
    const workers20 = await workersAfterSettling(page);
    row('soak: Kiln.create → load the sample set → dispose, after 5 / 20 cycles', `workers alive ${workers5} / ${workers20}`, `page JS heap ${heap5 ? `${mib(heap5)} / ${mib(heap20)}` : 'n/a'}`);
    await page.close();
  }
} finally {
  await browser.close();
  server.kill();
}

console.log('\n| figure | value | note |\n|---|---|---|');
for (const [w, v, n] of rows) console.log(`| ${w} | ${v} | ${n} |`);
