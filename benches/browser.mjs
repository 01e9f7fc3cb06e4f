// `node benches/browser.mjs`: per-step training time of the same tiny model in headless
// Chromium on WebGPU (SwiftShader here) and on the CPU backend in wasm, plus cold start and the
// wasm size. Compare with `cargo bench --bench train -- tiny` (native CPU). Needs the page built
// (scripts/build-web.sh).
import { spawn } from 'node:child_process';
import { existsSync, statSync, readFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const root = new URL('../', import.meta.url).pathname;
const wasm = join(root, 'www/pkg/kiln_bg.wasm');
const raw = readFileSync(wasm);
console.log(`wasm: ${(raw.length / 1048576).toFixed(1)} MiB raw, ${(gzipSync(raw, { level: 9 }).length / 1048576).toFixed(1)} MiB gzip -9`);

const port = 19000 + Math.floor(Math.random() * 1000);
const server = spawn('python3', ['-m', 'http.server', String(port), '--bind', '127.0.0.1', '--directory', join(root, 'www')], { stdio: 'ignore' });
const browser = await chromium.launch({
  executablePath: ['/usr/lib/chromium/chromium', '/usr/bin/chromium'].find(existsSync),
  args: ['--enable-unsafe-webgpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-sandbox'],
});
const steps = Number(process.env.STEPS || 12);
try {
  for (const backend of (process.argv[2] || 'webgpu,cpu').split(',')) {
    const page = await browser.newPage();
    for (let i = 0; i < 50; i++) {
      try { await page.goto(`http://127.0.0.1:${port}/bench.html`); break; } catch { await new Promise((r) => setTimeout(r, 200)); }
    }
    const r = await page.evaluate(async ({ backend, steps }) => {
      const t0 = performance.now();
      const { Kiln } = await import('./kiln.js');
      const kiln = await Kiln.create({ backend });
      const files = (await kiln.sampleFiles()).slice(0, 16 * (steps + 1) * 5 / 4);
      await kiln.loadDataset(files, { presize: 36, validPct: 0.2 });
      await kiln.createLearner({ arch: 'tiny', size: 32, batchSize: 16, hidden: 64, doFlip: false });
      const times = [];
      let first = null;
      let last = null;
      await kiln.fitOneCycle(1, 1e-2, {
        onBatch: (b) => {
          const now = performance.now();
          if (first === null) first = now - t0;
          else times.push(now - last);
          last = now;
        },
      });
      kiln.dispose();
      times.sort((a, b) => a - b);
      return { backend: kiln.info.backend, adapter: kiln.info.adapter, first, median: times[Math.floor(times.length / 2)], n: times.length };
    }, { backend, steps });
    console.log(`${backend}: ${r.adapter}; cold start to first training step ${(r.first / 1000).toFixed(1)} s; median step ${(r.median).toFixed(0)} ms over ${r.n} steps (tiny ResNet, 32 px, batch 16)`);
    await page.close();
  }
} finally {
  await browser.close();
  server.kill();
}
