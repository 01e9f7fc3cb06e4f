// Long runs at CI size: steps, then cancel/restart cycles, then create/dispose cycles, in
// headless Chromium on the threaded CPU build. The Rust heap's live bytes come back to the same
// figure (no leak), the wasm memory's high-water mark stays within 25 % of its size after warm-up
// (pool threads allocate in whatever order they run, so fragmentation moves it a little from run
// to run: CI once saw 14.1 -> 15.3 MiB), every cancel is honoured, a restarted worker gets the
// last epoch's model back, and no worker is left behind. The bench runs the same at full size
// (`node benches/browser.mjs soak`: 500 steps, 50 cancels).
import assert from 'node:assert/strict';
import { createDisposeCycles, e2e, open, soak, workersAfterSettling } from './harness.mjs';

const steps = Number(process.env.KILN_SOAK_STEPS || 200);
const cancels = Number(process.env.KILN_SOAK_CANCELS || 20);
const log = (...a) => console.log('[e2e soak]', ...a);
await e2e([], async ({ browser, base }) => {
  const page = await browser.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await open(page, `${base}/bench.html`);
  const r = await soak(page, { steps, cancels });
  const mib = (b) => (b / 1048576).toFixed(1);
  const at = (m) => `live heap ${mib(m.liveHeapBytes)} MiB, wasm ${mib(m.wasmBytes)} MiB`;
  log(`after 50 steps: ${at(r.warm)}; after ${r.steps}: ${at(r.afterSteps)}; after ${cancels} cancel/restart cycles: ${at(r.afterCancels)} (live heap change ${r.afterSteps.liveHeapBytes - r.warm.liveHeapBytes} / ${r.afterCancels.liveHeapBytes - r.warm.liveHeapBytes} bytes)`);
  // Between steps nothing a step made is still held: a leak of even a few bytes a step shows.
  const slack = 64 * 1024;
  assert.ok(r.afterSteps.liveHeapBytes <= r.warm.liveHeapBytes + slack, 'the Rust heap leaked over the steps');
  assert.ok(r.afterCancels.liveHeapBytes <= r.warm.liveHeapBytes + slack, 'the Rust heap leaked over the cancel/restart cycles');
  assert.ok(r.afterSteps.wasmBytes <= r.warm.wasmBytes * 1.25, 'wasm memory grew over the steps');
  assert.ok(r.afterCancels.wasmBytes <= r.warm.wasmBytes * 1.25, 'wasm memory grew over the cancel/restart cycles');
  assert.equal(r.cancelled, cancels, 'every cancel stops training within a batch');
  assert.deepEqual(r.after, r.before, 'after a worker restart, the model of the last finished epoch is back');
  log(`restart keeps the last epoch's model: ${JSON.stringify(r.after).slice(0, 80)}`);

  await createDisposeCycles(page, 2);
  const early = await workersAfterSettling(page);
  await createDisposeCycles(page, 6);
  const late = await workersAfterSettling(page);
  log(`workers alive after 2 / 8 create-dispose cycles: ${early} / ${late}`);
  assert.ok(late <= early, 'a disposed Kiln left workers behind');
  assert.deepEqual(errors, []);
  log('ok');
});
