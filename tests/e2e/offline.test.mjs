// Offline after the first load: visit the page once, cut the network, reload, and Kiln still
// starts (the threaded build, its thread pool and the bundled weights come from www/sw.js's
// cache). A reload while online afterwards still works too. The server is stopped as well as
// the browser set offline: Chromium 148's offline emulation lets the service worker's own
// fetches through to the network.
import assert from 'node:assert/strict';
import { e2e, open } from './harness.mjs';

const log = (...a) => console.log('[e2e offline]', ...a);

await e2e([], async ({ browser, base, server }) => {
  const context = await browser.newContext();
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await open(page, `${base}/`);
  await page.waitForSelector('body[data-ready=true]', { timeout: 60_000 });
  const online = await page.textContent('#backend');
  log('first load:', online);
  // The service worker has installed and cached every file the build lists (the page, both
  // builds with the thread pool's helper, the weights).
  const cached = await page.evaluate(async () => {
    await navigator.serviceWorker.ready;
    const want = (await (await fetch('precache.json')).json()).map((f) => `/${f}`);
    let keys = [];
    for (let i = 0; i < 200; i++) {
      keys = (await (await caches.open('kiln-v1')).keys()).map((r) => new URL(r.url).pathname);
      if (want.every((f) => keys.includes(f))) return keys;
      await new Promise((r) => setTimeout(r, 100));
    }
    return { missing: want.filter((f) => !keys.includes(f)) };
  });
  assert.ok(Array.isArray(cached), `the service worker did not cache: ${JSON.stringify(cached.missing)}`);
  log(`cached ${cached.length} files`);

  await context.setOffline(true);
  await server.stop();
  await page.reload();
  await page.waitForSelector('body[data-ready=true]', { timeout: 60_000 });
  assert.equal(await page.textContent('#backend'), online, 'offline, Kiln starts on the same backend');
  // The bundled pretrained weights are there too: a learner can be made from them.
  const weights = await page.evaluate(async () => (await fetch('weights/efficientnet_lite0.kiln')).status);
  assert.equal(weights, 200);
  const fetchFails = await page.evaluate(async () => fetch('not-cached.txt').then(() => false, () => true));
  assert.ok(fetchFails, 'offline, an uncached file fails as a network error');
  log('offline reload: ready,', await page.textContent('#backend'));

  await context.setOffline(false);
  server.start();
  await open(page, `${base}/`);
  await page.waitForSelector('body[data-ready=true]', { timeout: 60_000 });
  assert.deepEqual(errors, []);
  log('ok');
});
