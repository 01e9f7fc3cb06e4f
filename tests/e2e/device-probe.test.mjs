// The backend choice 'auto' decides by measurement (headless Chromium here: no GPU, WebGPU on
// SwiftShader, a software adapter):
//  - the first visit times one training pass of the Settings' model (EfficientNet-Lite0 at
//    224 px) on the CPU, then on WebGPU, each in a throwaway probe worker, and takes the faster:
//    the CPU here; kiln.info.device has both timings (or WebGPU's timeout) and the reason, which
//    the Settings and the notice show;
//  - a reload takes the kept result: no probe worker, nothing measured;
//  - another architecture or image size in the Settings is measured again, in the background
//    while the page stays usable (going back is kept); work started meanwhile stops it, and it
//    is measured once the page is idle again; never during training;
//  - one CPU thread is another key: measured again, and the choice is the faster measured.
// Only real measurements: nothing here fakes a timing.
import assert from 'node:assert/strict';
import { checklist, e2e, open } from './harness.mjs';

const log = (...a) => console.log('[e2e device-probe]', ...a);

/** The choice must be the faster of the two measured (a WebGPU that timed out lost), and the
 * reason must give both figures. */
function measuredChoice(d) {
  assert.ok(d, 'no measurement in kiln.info.device (is there a WebGPU adapter? --enable-unsafe-webgpu)');
  assert.ok(d.cpu && d.cpu.firstMs > 0, `the CPU's timing: ${JSON.stringify(d.cpu)}`);
  assert.ok(d.webgpu && (d.webgpu.timedOut || d.webgpu.firstMs > 0), `WebGPU's timing: ${JSON.stringify(d.webgpu)}`);
  const ms = (p) => p.stepMs ?? p.firstMs;
  const faster = d.webgpu.timedOut || ms(d.webgpu) >= ms(d.cpu) ? 'cpu' : 'webgpu';
  assert.equal(d.chosen, faster, `chose ${d.chosen}, but measured ${JSON.stringify(d)}`);
  assert.match(d.reason, /CPU \d+ ms/);
  assert.match(d.reason, d.webgpu.timedOut ? /WebGPU did not finish in \d+ ms/ : /WebGPU \d+ ms/);
}

const timing = (d) => `CPU ${d.cpu ? `first ${Math.round(d.cpu.firstMs)} ms, step ${d.cpu.stepMs === null ? '-' : `${Math.round(d.cpu.stepMs)} ms`}` : '-'}; WebGPU ${!d.webgpu ? '-' : d.webgpu.timedOut ? `timed out after ${d.webgpu.limitMs} ms` : `first ${Math.round(d.webgpu.firstMs)} ms, step ${d.webgpu.stepMs === null ? '-' : `${Math.round(d.webgpu.stepMs)} ms`}`}; probing ${d.probeMs} ms${d.cached ? ' (kept)' : ''}`;

await e2e(['--enable-unsafe-webgpu'], async ({ browser, base }) => {
  const t0 = Date.now();
  const c = checklist('device-probe');
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  page.setDefaultTimeout(30_000);
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  // Every probe worker started (nested in Kiln's worker), and when.
  let probes = 0;
  const probeTimes = [];
  const countProbes = (p) => p.on('worker', (w) => {
    if (new URL(w.url()).pathname !== '/probe-worker.js') return;
    probes += 1;
    probeTimes.push(Date.now());
  });
  countProbes(page);
  const info = () => page.evaluate(() => window.kiln.info);
  /** From now on: the page's phases in order, with when each began (state.js writes each into
   * body[data-phase]), and what the Settings' line on 'auto' said. */
  const watch = () => page.evaluate(() => {
    window.phases = [[document.body.dataset.phase, Date.now()]];
    window.deviceTexts = [];
    new MutationObserver(() => { if (window.phases.at(-1)[0] !== document.body.dataset.phase) window.phases.push([document.body.dataset.phase, Date.now()]); })
      .observe(document.body, { attributes: true, attributeFilter: ['data-phase'] });
    const line = document.querySelector('#device-choice');
    new MutationObserver(() => window.deviceTexts.push(line.textContent)).observe(line, { childList: true, characterData: true, subtree: true });
  });
  const watched = () => page.evaluate(() => ({ phases: window.phases, texts: window.deviceTexts }));
  const names = (phases) => phases.map(([p]) => p).join(' → ');

  await open(page, `${base}/?backend=auto`);
  await page.waitForSelector('body[data-ready=true]', { timeout: 90_000 });
  const first = await info();
  log(`first visit: ${first.backend}; ${timing(first.device)}`);
  log(`reason: ${first.device?.reason}`);
  await c.check('the first visit measures both (two probe workers) and picks the CPU by measurement', async () => {
    measuredChoice(first.device);
    assert.equal(first.device.chosen, 'cpu');
    assert.equal(first.backend, 'cpu');
    assert.equal(first.device.cached, false);
    assert.ok(first.device.probeMs > 0);
    assert.deepEqual([first.device.arch, first.device.size], ['efficientnet_lite0', 224]);
    assert.equal(probes, 2, `${probes} probe workers`);
    assert.match(first.device.reason, /^the CPU, .*EfficientNet-Lite0 at 224 px/);
  });
  await c.check('Settings show the choice, both timings and the reason; the notice says it too', async () => {
    assert.ok(await page.isVisible('#device-choice'));
    const shown = await page.textContent('#device-choice');
    assert.ok(shown.includes(first.device.reason), shown);
    assert.match(shown, /Measured in \d+\.\d s/);
    assert.match(await page.textContent('#backend'), /^CPU/);
    assert.ok((await page.textContent('#notice')).includes(`Training runs on ${first.device.reason}`));
  });

  // A reload: the kept result, nothing measured.
  const before = probes;
  await page.reload();
  await page.waitForSelector('body[data-ready=true]', { timeout: 60_000 });
  const again = await info();
  log(`reload: ${again.backend}; ${timing(again.device)}`);
  await c.check('a reload takes the kept result: no probe worker, probeMs 0, the same choice', async () => {
    assert.equal(again.device?.cached, true);
    assert.equal(again.device.probeMs, 0);
    assert.equal(probes, before, `${probes - before} probe workers on the reload`);
    assert.equal(again.backend, first.backend);
    assert.deepEqual({ ...again.device, cached: false, probeMs: 0 }, { ...first.device, probeMs: 0 });
    assert.match(await page.textContent('#device-choice'), /Measured on an earlier visit/);
  });

  // Another model in the Settings: measured again, once, in the background: the page stays
  // idle. (The size is set first without its change event, so one change asks for Tiny ResNet
  // at 32 px.)
  await watch();
  const setModel = async (arch, size) => {
    await page.evaluate((v) => { document.querySelector('#size').value = v; }, size);
    await page.selectOption('#arch', arch);
  };
  const measured = (arch, size) => page.waitForFunction(([a, n]) => window.kiln.info.device?.arch === a && window.kiln.info.device.size === n && !/^Measuring/.test(document.querySelector('#device-choice').textContent), [arch, size], { timeout: 60_000 });
  await setModel('tiny', '32');
  await measured('tiny', 32);
  const tiny = await info();
  const tinySeen = await watched();
  log(`Tiny ResNet at 32 px: ${tiny.backend}; ${timing(tiny.device)}`);
  await c.check('a change of architecture and size measures that model in the background and runs on the faster', async () => {
    measuredChoice(tiny.device);
    assert.equal(tiny.device.cached, false);
    assert.equal(tiny.backend, tiny.device.chosen);
    assert.equal(probes - before, 2, `${probes - before} probe workers`);
    // On the CPU already: no move, so no phase at all (a move to WebGPU would be 'switching').
    assert.equal(names(tinySeen.phases), tiny.backend === 'cpu' ? 'idle' : 'idle → switching → idle');
    assert.ok(tinySeen.texts.some((t) => t === 'Measuring the CPU and WebGPU on Tiny ResNet at 32 px…'), tinySeen.texts.join(' | '));
    assert.match(await page.textContent('#device-choice'), /Tiny ResNet at 32 px/);
    assert.match(await page.textContent('#backend'), tiny.backend === 'cpu' ? /^CPU/ : /^WebGPU/);
  });
  const afterTiny = probes;
  await setModel('efficientnet_lite0', '224');
  await measured('efficientnet_lite0', 224);
  await c.check('going back to a measured model takes the kept result', async () => {
    const back = (await info()).device;
    assert.equal(back.cached, true);
    assert.equal(probes, afterTiny, `${probes - afterTiny} probe workers`);
  });

  // Work stops a measurement (it would skew the timings); it goes on once the page is idle.
  // (The sample's preset is Tiny ResNet at 32 px, kept from above; loading it stops the
  // measurement of ResNet-18 at 48 px asked for just before.)
  await watch();
  await setModel('resnet18', '48');
  await page.click('#sample');
  await page.waitForFunction(() => !document.querySelector('#train').disabled && window.kiln.info.device?.arch === 'tiny' && document.body.dataset.phase === 'idle', null, { timeout: 60_000 });
  const stoppedSeen = await watched();
  await c.check('loading photos stops the measurement it started during; nothing of it is kept', async () => {
    assert.ok(stoppedSeen.texts.includes('Measuring the CPU and WebGPU on ResNet-18 at 48 px…'), stoppedSeen.texts.join(' | '));
    assert.ok(!stoppedSeen.texts.some((t) => /ResNet-18 at 48 px: /.test(t)), stoppedSeen.texts.join(' | '));
    assert.equal((await info()).device.cached, true);
  });

  // Never during training: a size changed while it trains is measured once it is idle.
  await page.fill('#epochs', '1');
  await watch();
  await page.click('#train');
  await page.waitForFunction(() => document.body.dataset.phase === 'training');
  await page.fill('#size', '28');
  await page.dispatchEvent('#size', 'change');
  const during = await page.evaluate(() => document.body.dataset.phase);
  await page.waitForFunction(() => document.querySelectorAll('#epochs-table tbody tr').length === 1, null, { timeout: 120_000 });
  await measured('tiny', 28);
  const { phases } = await watched();
  log(`phases around training: ${names(phases)}`);
  await c.check('a size changed during training is measured only after it, and Train works after', async () => {
    assert.equal(during, 'training');
    const t = phases.findIndex(([p]) => p === 'training');
    const idle = phases.findIndex(([p], i) => i > t && p === 'idle');
    assert.ok(t >= 0 && idle > t, names(phases));
    const busy = probeTimes.filter((ms) => ms >= phases[t][1] && ms < phases[idle][1]);
    assert.equal(busy.length, 0, `${busy.length} probe workers started during training`);
    assert.ok(probeTimes.some((ms) => ms >= phases[idle][1]), 'measured after training');
    measuredChoice((await info()).device);
    assert.equal(await page.isDisabled('#train'), false);
    assert.equal(await page.isVisible('#error'), false, await page.textContent('#error'));
  });

  // One CPU thread: another key, measured again; the choice is still the faster measured.
  const one = await context.newPage();
  one.on('pageerror', (e) => errors.push(e.message));
  countProbes(one);
  const beforeOne = probes;
  await open(one, `${base}/?backend=auto&threads=1`);
  await one.waitForSelector('body[data-ready=true]', { timeout: 90_000 });
  const single = await one.evaluate(() => window.kiln.info);
  log(`one CPU thread: ${single.backend}; ${timing(single.device)}`);
  await c.check('one CPU thread is measured again and the faster measured is chosen', async () => {
    assert.equal(single.threads, 1);
    assert.equal(single.device?.cached, false);
    assert.equal(probes - beforeOne, 2, `${probes - beforeOne} probe workers`);
    measuredChoice(single.device);
  });

  await c.check('no page errors', async () => assert.deepEqual(errors, []));
  log(`${((Date.now() - t0) / 1000).toFixed(1)} s`);
  c.done();
});
