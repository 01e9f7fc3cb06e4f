// Issue 30, items 1 and 2: the camera, on Chromium's fake camera (auto-accepted, no prompt).
//  - Photos: a class's Camera button opens the preview; holding Hold to record (mouse, or Space
//    from the keyboard) for ~1 s adds ≥ 5 photos to the class, named cat/camera-0001.jpg … and
//    numbered on; closing the preview, or the page being hidden, ends every track;
//  - a dataset from the camera alone: the first class waits for a second, then both make it;
//  - Live, on a fake camera playing frames of one photo (a Y4M made here from chelsea.png):
//    after training on that photo's crops and another's, it names the photo's class and
//    updates ≥ 3 times in 3 s, saying the rate; nothing else starts while it runs, it is off
//    and disabled while training runs; off, or the page hidden, ends every track;
//  - camera permission denied: the page says so plainly, and still trains and predicts from files.
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checklist, e2e, launch, photoCrops, readyPage, root, takeError, waitIdle } from './harness.mjs';
import { photoFrames, y4m } from './y4m.mjs';

const log = (...a) => console.log('[e2e camera]', ...a);
const FAKE = ['--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream'];
const dir = mkdtempSync(join(tmpdir(), 'kiln-camera-'));
// Crops of two photos, one folder per class (photos/chelsea/…, photos/rocket/…).
const crops = photoCrops(dir, { side: 48, cropsPerCell: 2, photos: ['chelsea.png', 'rocket.jpg'] });
const photos = join(dir, 'photos-by-class', 'photos');
for (const s of ['train', 'valid']) {
  for (const c of readdirSync(join(crops, s))) {
    mkdirSync(join(photos, c), { recursive: true });
    for (const f of readdirSync(join(crops, s, c))) copyFileSync(join(crops, s, c, f), join(photos, c, f));
  }
}
const count = (c) => readdirSync(join(photos, c)).length;

const card = (name) => `#gallery .class-card[data-class="${name}"]`;
/** A class card's photo count (train + valid). */
const shownCount = (page, name) => page.$eval(`${card(name)} .muted`, (m) => { const x = m.textContent.match(/\((\d+) train, (\d+) valid\)/); return Number(x[1]) + Number(x[2]); });
/** Hold the record button for `ms` with the mouse (or `key` from the keyboard), then wait for the photos to be added. */
async function hold(page, ms, key = null) {
  await page.waitForFunction(() => !document.querySelector('#camera-record').disabled);
  if (key) {
    await page.focus('#camera-record');
    await page.keyboard.down(key);
    await page.waitForTimeout(ms);
    await page.keyboard.up(key);
  } else {
    await page.hover('#camera-record');
    await page.mouse.down();
    await page.waitForTimeout(ms);
    await page.mouse.up();
  }
  await waitIdle(page, 60_000);
}
/** The states of the tracks of the stream on `video` now, and a handle to read them later. */
const keepStream = (page, video) => page.evaluate((v) => { window.kept = document.querySelector(v).srcObject; return window.kept?.getTracks().map((t) => t.readyState) || []; }, video);
const keptTracks = (page) => page.evaluate(() => window.kept.getTracks().map((t) => t.readyState));
/** The page hidden, as when its tab is left (visibilityState is 'hidden' from then on). */
const hidePage = (page) => page.evaluate(() => {
  Object.defineProperty(document, 'visibilityState', { value: 'hidden', configurable: true });
  document.dispatchEvent(new Event('visibilitychange'));
});
/** axe-core (injected, never shipped) on the whole page: no serious or critical violation. */
async function axe(page, state) {
  if (!(await page.evaluate(() => 'axe' in window))) await page.addScriptTag({ path: join(root, 'node_modules/axe-core/axe.min.js') });
  const found = await page.evaluate(async () => (await window.axe.run(document, { resultTypes: ['violations'] })).violations
    .filter((v) => ['serious', 'critical'].includes(v.impact)).map((v) => `${v.impact} ${v.id}: ${v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join(', ')}`));
  assert.deepEqual(found, [], `axe, ${state}`);
}
/** Small, quick settings: the tiny model at 32 px, fit_one_cycle for EPOCHS epochs. */
const EPOCHS = 6;
async function trainQuick(page) {
  await page.selectOption('#arch', 'tiny');
  await page.fill('#size', '32');
  await page.fill('#bs', '16');
  await page.selectOption('#method', 'fit_one_cycle');
  await page.fill('#epochs', String(EPOCHS));
  await page.fill('#lr', '0.01');
  await page.click('#train');
  await waitIdle(page);
  assert.equal(await takeError(page), '');
  const rows = await page.$$eval('#epochs-table tbody tr', (r) => r.map((x) => x.innerText.replaceAll('\t', ' ')));
  log('trained:', rows.at(-1), '·', await page.textContent('#status'));
  assert.equal(rows.length, EPOCHS, await page.textContent('#status'));
}
/** A page whose dataset is the crops (Presize 64: they are 48 px). */
async function withPhotos(page) {
  await page.evaluate(() => { document.querySelector('#presize').value = '64'; });
  await page.setInputFiles('#pick-folder', photos);
  await page.waitForSelector(`${card('rocket')}`, { timeout: 60_000 });
  await waitIdle(page);
}

await e2e(FAKE, async ({ browser, base }) => {
  const c = checklist('e2e camera');
  // The fake stream for Live: ten frames of chelsea.png (a hand-held pan), decoded by the browser.
  const blank = await browser.newPage();
  const frames = await photoFrames(blank, readFileSync(join(root, 'assets/photos/chelsea.png')), { side: 240, n: 10 });
  await blank.close();
  const video = join(dir, 'chelsea.y4m');
  writeFileSync(video, y4m(240, 240, 10, frames));

  const page = await readyPage(browser, base);
  await c.check('a dataset from the camera alone: the first class waits for a second, then both make it', async () => {
    await page.click('#camera-new');
    assert.equal(await page.evaluate(() => document.activeElement.id), 'camera-class', 'the focus is on the class name');
    await page.fill('#camera-class', 'green');
    await hold(page, 1000);
    assert.match(await page.textContent('#samples-status'), /^\d+ images of green from the camera, waiting for a second class/);
    assert.equal(await page.isVisible('#dataset'), false);
    await page.fill('#camera-class', 'pattern');
    // From the keyboard: Space held down on the button.
    await hold(page, 1000, 'Space');
    assert.equal(await takeError(page), '');
    await page.waitForSelector(card('pattern'));
    const n = { green: await shownCount(page, 'green'), pattern: await shownCount(page, 'pattern') };
    log('camera-only dataset:', n);
    assert.ok(n.green >= 5 && n.pattern >= 5, JSON.stringify(n));
    assert.match(await page.textContent('#split'), /^2 classes · /);
    const files = await page.evaluate(async () => (await window.kiln.datasetFiles()).map((r) => r.file).sort());
    assert.equal(files[0], 'green/camera-0001.jpg');
    assert.equal(files.length, n.green + n.pattern);
  });

  await c.check('a class\'s Camera button: ~1 s held adds ≥ 5 photos, numbered on; closing the preview ends every track', async () => {
    const before = await shownCount(page, 'green');
    await page.click(`${card('green')} .cam`);
    assert.equal(await page.inputValue('#camera-class'), 'green');
    await hold(page, 1000);
    assert.equal(await takeError(page), '');
    const after = await shownCount(page, 'green');
    log(`green: ${before} → ${after} photos (${await page.textContent('#samples-status')})`);
    assert.ok(after - before >= 5, `${after - before} added`);
    const names = await page.evaluate(async () => (await window.kiln.datasetFiles()).filter((r) => r.label === 'green').map((r) => r.file).sort());
    assert.equal(names[before], `green/camera-${String(before + 1).padStart(4, '0')}.jpg`, 'the numbering goes on');
    assert.match(await page.getAttribute(`${card('green')} figure img`, 'alt'), /^green\/camera-\d{4}\.jpg, class green \((training|validation)\)$/);
    const cams = await page.$$eval('#camera-device option', (o) => o.map((x) => x.textContent));
    log('cameras:', cams);
    assert.ok(cams.length >= 1 && cams.every(Boolean));
    assert.deepEqual(await keepStream(page, '#camera-video'), ['live']);
    await page.click('#camera-close');
    assert.deepEqual(await keptTracks(page), ['ended']);
    assert.equal(await page.isVisible('#camera-box'), false);
  });

  await c.check('the page hidden releases the preview\'s camera', async () => {
    await page.click('#camera-new');
    await page.waitForFunction(() => !document.querySelector('#camera-record').disabled);
    assert.deepEqual(await keepStream(page, '#camera-video'), ['live']);
    await hidePage(page);
    assert.deepEqual(await keptTracks(page), ['ended']);
    assert.equal(await page.isDisabled('#camera-record'), true);
  });
  assert.deepEqual(page.errors, []);
  await page.context().close();

  await c.check('camera permission denied: said plainly; the page still trains and predicts from files', async () => {
    const denied = await readyPage(browser, base);
    await denied.addInitScript(() => {
      navigator.mediaDevices.getUserMedia = () => Promise.reject(new DOMException('Permission denied', 'NotAllowedError'));
    });
    await denied.reload();
    await denied.waitForSelector('body[data-ready=true]', { timeout: 60_000 });
    await denied.click('#camera-new');
    await denied.waitForSelector('#camera-note:not([hidden])');
    const said = await denied.textContent('#camera-note');
    log(said);
    assert.equal(said, 'Kiln could not use the camera: permission to use it was denied. Allow camera access in the browser\'s site settings, or drop photos instead.');
    assert.equal(await denied.isDisabled('#camera-record'), true);
    await denied.click('#camera-close');
    await withPhotos(denied);
    await trainQuick(denied);
    await denied.click('#live');
    await denied.waitForSelector('#live-note:not([hidden])');
    assert.match(await denied.textContent('#live-note'), /^Kiln could not use the camera: permission to use it was denied\./);
    await waitIdle(denied);
    assert.equal(await denied.getAttribute('#live', 'aria-pressed'), 'false');
    await denied.setInputFiles('#predict-file', join(photos, 'rocket', readdirSync(join(photos, 'rocket'))[0]));
    await waitIdle(denied);
    assert.equal(await takeError(denied), '');
    assert.match(await denied.textContent('#predict-label'), /^(chelsea|rocket) \(\d+\.\d%\)$/);
    assert.deepEqual(denied.errors, []);
    await denied.context().close();
  });

  // Live, on a second browser whose fake camera plays chelsea.png's frames.
  const playing = await launch([...FAKE, `--use-file-for-fake-video-capture=${video}`]);
  try {
    const live = await readyPage(playing, base, { bypassCSP: true });
    await withPhotos(live);
    await c.check('the fake camera shows the photo: its frames join chelsea from its card', async () => {
      const before = await shownCount(live, 'chelsea');
      await live.click(`${card('chelsea')} .cam`);
      await hold(live, 1000);
      assert.equal(await takeError(live), '');
      const after = await shownCount(live, 'chelsea');
      assert.ok(after - before >= 5, `${after - before} added`);
      assert.equal(before, count('chelsea'));
      await axe(live, 'the camera box open');
    });
    await trainQuick(live);
    await live.evaluate(() => {
      window.phases = [];
      new MutationObserver(() => window.phases.push({ phase: document.body.dataset.phase, live: !document.querySelector('#live').disabled, train: !document.querySelector('#train').disabled }))
        .observe(document.body, { attributes: true, attributeFilter: ['data-phase'] });
    });

    await c.check('Live names the class of the photo the camera shows, ≥ 3 updates in 3 s, the rate said', async () => {
      await live.click('#live');
      await live.waitForSelector('#live-bars .bar', { timeout: 60_000 });
      assert.equal(await live.isVisible('#camera-box'), false, 'the Photos camera was closed for Live');
      assert.equal(await live.getAttribute('#live', 'aria-pressed'), 'true');
      const updates = await live.evaluate(() => new Promise((res) => {
        let n = 0;
        const seen = [];
        const o = new MutationObserver(() => { n += 1; seen.push(document.querySelector('#live-label').textContent); });
        o.observe(document.querySelector('#live-bars'), { childList: true });
        setTimeout(() => { o.disconnect(); res({ n, seen }); }, 3000);
      }));
      const rate = await live.textContent('#live-rate');
      log(`Live: ${updates.n} updates in 3 s, ${rate}; last ${updates.seen.at(-1)}`);
      assert.ok(updates.n >= 3, `${updates.n} updates`);
      assert.match(rate, /^\d+\.\d predictions\/s$/);
      const named = updates.seen.filter((s) => s.startsWith('chelsea ')).length;
      assert.ok(named >= updates.n * 0.8, `chelsea in ${named} of ${updates.n}: ${updates.seen.join(', ')}`);
      assert.equal(await live.textContent('#live-said'), 'chelsea');
      await axe(live, 'Live on');
    });

    await c.check('while Live runs nothing else starts; off ends every track', async () => {
      assert.equal(await live.isDisabled('#train'), true);
      assert.equal(await live.isDisabled(`${card('chelsea')} .cam`), true);
      assert.equal(await live.isDisabled('#camera-new'), true);
      assert.deepEqual(await keepStream(live, '#live-video'), ['live']);
      await live.click('#live');
      await waitIdle(live);
      assert.deepEqual(await keptTracks(live), ['ended']);
      assert.equal(await live.getAttribute('#live', 'aria-pressed'), 'false');
      assert.equal(await live.isVisible('#live-box'), false);
    });

    await c.check('Live is off and disabled while training runs', async () => {
      await live.fill('#epochs', '1');
      await live.click('#train');
      await live.waitForFunction(() => document.querySelectorAll('#epochs-table tbody tr').length === 1, null, { timeout: 300_000 });
      await waitIdle(live);
      const seen = await live.evaluate(() => window.phases);
      const training = seen.filter((s) => s.phase === 'training');
      assert.ok(training.length >= 1);
      assert.ok(training.every((s) => !s.live), 'Live disabled while training');
      assert.ok(seen.filter((s) => s.phase === 'live').every((s) => !s.train), 'Train disabled while Live runs');
      assert.equal(await live.isDisabled('#live'), false, 'usable again after training');
    });

    await c.check('the page hidden stops Live and releases its camera', async () => {
      await live.click('#live');
      await live.waitForSelector('#live-bars .bar', { timeout: 60_000 });
      assert.deepEqual(await keepStream(live, '#live-video'), ['live']);
      await hidePage(live);
      await waitIdle(live);
      assert.deepEqual(await keptTracks(live), ['ended']);
      assert.match(await live.textContent('#live-note'), /^Live stopped: the page was hidden/);
    });
    await c.check('no page errors', async () => assert.deepEqual(live.errors, []));
  } finally {
    await playing.close();
  }
  c.done();
});
