// Where Kiln's worker (worker.js) runs its wasm: the build and the device, and the GPU devices'
// bookkeeping.
//
// Two builds of the same core (scripts/build-web.sh): pkg/ has WebGPU and a one-thread SIMD CPU
// backend; pkg-threads/ is CPU-only with a rayon pool on Web Workers (wasm threads need
// SharedArrayBuffer, i.e. a cross-origin isolated page, and burn-wgpu does not build with
// atomics); pkg-threads-relaxed/ is the same with relaxed SIMD's fused multiply-add. The worker
// picks the device first ('auto' by measuring both, below), then loads the build that runs it.
import { hasRelaxedSimd } from './relaxed-simd.js';
import { ARCHS } from './kiln.js';

// The GPU devices wgpu opens: a lost device (driver reset, GPU removed, or destroyed on
// purpose by loseDevice) is reported to the page, which moves Kiln to the CPU backend.
/** The devices wgpu opened, their buffers (created, destroyed, bytes live), and why the device
 * was lost (null while it works). */
export const gpu = { devices: [], buffers: { created: 0, destroyed: 0, bytes: 0 }, lost: /** @type {string | null} */ (null) };
if (self.GPUAdapter) {
  const request = GPUAdapter.prototype.requestDevice;
  GPUAdapter.prototype.requestDevice = async function (...args) {
    const device = await request.apply(this, args);
    gpu.devices.push(device);
    // Buffer bookkeeping for the soak (gpuBuffers): cubecl pools its buffers, so the count of
    // live ones must level off after warm-up.
    const create = device.createBuffer.bind(device);
    device.createBuffer = (desc) => {
      const buffer = create(desc);
      gpu.buffers.created += 1;
      gpu.buffers.bytes += desc.size;
      const destroy = buffer.destroy.bind(buffer);
      buffer.destroy = () => { gpu.buffers.destroyed += 1; gpu.buffers.bytes -= desc.size; destroy(); };
      return buffer;
    };
    device.lost.then((info) => {
      gpu.lost ??= info.message || info.reason || 'device lost';
      self.postMessage({ event: { type: 'deviceLost', message: gpu.lost } });
    });
    return device;
  };
}
// With the GPU gone, the wasm side may panic outside any call (in a GPU callback): that is the
// device loss, which the page handles, not a crash of its own.
for (const type of ['error', 'unhandledrejection']) {
  self.addEventListener(type, (e) => {
    if (!gpu.lost) return;
    e.preventDefault();
    self.postMessage({ event: { type: 'deviceLost', message: gpu.lost } });
  });
}

/** The build loaded (its exports: Backend, Dataset, Learner, CancelToken, …), once one is. */
let wasm = null;

/** The three builds by name: each one's JS glue, its .wasm beside it. */
const BUILDS = { pkg: './pkg/kiln.js', threads: './pkg-threads/kiln.js', relaxed: './pkg-threads-relaxed/kiln.js' };

/** Load `build` (a key of BUILDS); the threaded ones get a pool of `threads`. */
export async function loadBuild(build, threads = 1) {
  // Each .wasm comes with its own JS glue, which the pool's workers import too.
  const m = await import(BUILDS[build]);
  await m.default();
  // Start (and warm) the pool once: the first parallel kernels of a fresh pool run slowly.
  if (build !== 'pkg') await m.initThreadPool(threads);
  wasm = m;
  return m;
}

/** Whether wasm threads can run here (shared memory needs a cross-origin isolated page). */
const isolated = () => self.crossOriginIsolated && typeof SharedArrayBuffer !== 'undefined';

/** How many threads the CPU backend gets, and why not more (or none). */
function cpuThreads(requested) {
  const cores = self.navigator.hardwareConcurrency || 1;
  // gemm's kernels stop scaling well past 8 threads in wasm, and every pool thread holds its
  // own stack and a copy of the module's instance.
  const n = Math.max(1, Math.min(requested || cores, cores, 8));
  if (n === 1) return { n, why: cores === 1 ? 'this machine reports one core' : 'one thread was asked for' };
  if (!isolated()) {
    return { n: 1, why: 'the page is not cross-origin isolated (its server must send Cross-Origin-Opener-Policy: same-origin and Cross-Origin-Embedder-Policy: require-corp; scripts/serve.py does), so wasm threads are unavailable' };
  }
  return { n, why: null };
}

/** The CPU backend as it runs here: its build, threads (and why not more) and SIMD kind. */
function cpuPlan(threadsWanted, simd) {
  const t = cpuThreads(threadsWanted);
  // Only the threaded build comes in a relaxed-SIMD variant; one thread on an isolated page
  // runs it too, with a pool of one: its FMA kernels took EfficientNet-Lite0's frozen step from
  // 1.89 to 1.36 s against the one-thread build (benches/browser.mjs relaxed).
  const relaxed = isolated() && simd !== 'plain' && hasRelaxedSimd();
  // 'relaxed': the kernels on relaxed SIMD's fused multiply-add; 'simd128': plain 128-bit SIMD.
  return { build: relaxed ? 'relaxed' : t.n > 1 ? 'threads' : 'pkg', threads: t.n, why: t.why, simd: relaxed ? 'relaxed' : 'simd128' };
}

const adapterName = (info) => [info.vendor, info.architecture, info.description].filter(Boolean).join(' ') || 'WebGPU';

/** What 'auto' measures with: the adapter and the CPU plan (set by pickBackend, for measureAgain). */
let auto = null;

/** `probe`: the model 'auto' measures on; `measured`: its figures, already measured (a worker
 * restarted to move to the winner takes them instead of measuring again). */
export async function pickBackend(pref, threadsWanted, simd, probe, measured) {
  const notices = [];
  /** 'auto' with an adapter: both backends measured (worker.js returns it as info.device). */
  let device = null;
  if (pref !== 'cpu') {
    const gpu = self.navigator && self.navigator.gpu;
    const adapter = gpu ? await gpu.requestAdapter().catch(() => null) : null;
    const info = (adapter && adapter.info) || {};
    // Any adapter, a software one (SwiftShader) too: the measurement decides.
    if (adapter && pref === 'auto') {
      auto = { info, cpu: cpuPlan(threadsWanted, simd) };
      device = measured ?? await measure(auto, probe);
    }
    if (adapter && (pref === 'webgpu' || device?.chosen === 'webgpu')) {
      try {
        await loadBuild('pkg');
        const backend = await wasm.Backend.create('webgpu');
        if (info.isFallbackAdapter && pref === 'webgpu') notices.push('WebGPU runs on a software adapter here: training works but is very slow.');
        return { module: wasm, backend, notices, adapter: adapterName(info), threads: 1, device };
      } catch (e) {
        notices.push(`WebGPU failed to start (${e.message}); using the CPU backend.`);
        if (device) device = { ...device, chosen: 'cpu', reason: `the CPU: WebGPU was faster in the probe but failed to start (${e.message})` };
      }
    } else if (!adapter) {
      notices.push(gpu ? 'No WebGPU adapter was found; using the CPU backend (slower).' : 'This browser has no WebGPU; using the CPU backend (slower).');
    }
  }
  const plan = wasm ? { build: 'pkg', threads: 1, why: 'WebGPU failed after its build was loaded', simd: 'simd128' } : cpuPlan(threadsWanted, simd);
  if (!wasm) await loadBuild(plan.build, plan.threads);
  if (plan.why) notices.push(`The CPU backend runs on one thread: ${plan.why}.`);
  return { module: wasm, backend: await wasm.Backend.create('cpu'), notices, adapter: 'CPU (wasm)', threads: plan.threads, simd: plan.simd, device };
}

// ---- 'auto': measure, don't guess ----
// A GPU usually wins, but an integrated one against a laptop's cores is a real contest and a
// software adapter loses by far; only the work itself tells. Each candidate times one training
// pass of the Settings' model (Backend.probe: a micro-batch forward and backward at the
// training size, after an untimed pass that compiles its kernels) in a throwaway worker, the CPU
// first, then WebGPU against the CPU's time. The result is kept per adapter, build, model, size
// and CPU threads, so it is measured once.

/** The model measured when the page says none. */
const DEFAULT_PROBE = { arch: 'efficientnet_lite0', size: 224 };
/** A first pass this many times the CPU's time ends a probe (Backend.probe's GIVE_UP). */
const GIVE_UP = 4;
/** WebGPU's passes may take GIVE_UP × the CPU's time, at least this, plus the CPU's time for
 * the timed pass. A real GPU compiles its shaders in its first pass (a second or more), so it
 * gets Backend.probe's own floor; a software adapter compiles and runs on the CPU cores the CPU
 * candidate just used, so losing to them by GIVE_UP× is already the measurement. */
const GPU_FLOOR_MS = 10_000;
const SOFTWARE_FLOOR_MS = 1500;
/** Beyond these a probe is stuck, not slow: loading its build and opening its device; the
 * CPU's passes. */
const LOAD_LIMIT_MS = 30_000;
const CPU_LIMIT_MS = 120_000;
/** Where the results are kept (the Cache API, which a worker has; localStorage it has not). */
const PROBE_CACHE = 'kiln-device-probe';

/** The measurement measureAgain is making, which stopMeasuring stops: `ends` finish its
 * running probe workers. */
let again = null;

/** 'auto' again for another model (the Settings changed): the measurement, nothing loaded; null
 * unless this worker chose by measuring, or when stopMeasuring stopped it. */
export async function measureAgain(probe) {
  if (!auto) return null;
  const run = { stopped: false, ends: new Set() };
  again = run;
  try {
    return await measure(auto, probe, run);
  } finally {
    if (again === run) again = null;
  }
}

/** Stop measureAgain (the page started work, which would skew the timings and be slowed by
 * them): its probe workers are terminated, nothing is kept, it answers null. */
export function stopMeasuring() {
  if (!again) return false;
  again.stopped = true;
  for (const end of again.ends) end({ stopped: true });
  return true;
}

/** Both backends timed on `probe`'s model (or the figures kept from an earlier time), and the
 * winner; null where `run` was stopped. */
async function measure({ info, cpu }, probe, run = null) {
  const model = { arch: probe?.arch || DEFAULT_PROBE.arch, size: Number(probe?.size) || DEFAULT_PROBE.size };
  const key = await cacheKey(info, cpu, model);
  const kept = await fromCache(key);
  if (kept) return { ...kept, cached: true, probeMs: 0 };
  if (run?.stopped) return null;
  const t0 = performance.now();
  const c = await runProbe({ build: cpu.build, threads: cpu.threads, kind: 'cpu' }, model, undefined, undefined, run);
  let g = null;
  let limitMs = 0;
  if (c.stopped || run?.stopped) return null;
  if (!c.error) {
    const cpuMs = c.stepMs ?? c.firstMs;
    limitMs = Math.round(Math.max(GIVE_UP * cpuMs, info.isFallbackAdapter ? SOFTWARE_FLOOR_MS : GPU_FLOOR_MS) + cpuMs);
    g = await runProbe({ build: 'pkg', threads: 1, kind: 'webgpu' }, model, cpuMs, limitMs, run);
    if (g.stopped || run?.stopped) return null;
  }
  const report = { ...decide(info, model, c, g, limitMs), ...model, cached: false, probeMs: Math.round(performance.now() - t0) };
  // A timeout is a measurement; a probe that failed (a missing file, a driver error) is not,
  // nor a real GPU's timeout (its shader compiles may be cached by the browser next time).
  if (!c.error && !g.error && !(g.timedOut && !info.isFallbackAdapter)) await toCache(key, report);
  return report;
}

/** The choice and its one-line reason, from the CPU's probe `c` and WebGPU's `g` (null when
 * the CPU's failed). */
function decide(info, model, c, g, limitMs) {
  const work = `a training pass of ${ARCHS[model.arch]?.name ?? model.arch} at ${model.size} px`;
  const soft = info.isFallbackAdapter ? ' (this browser\'s WebGPU is a software fallback: no GPU found)' : '';
  const gpuName = `WebGPU (${adapterName(info)})`;
  const ms = (p) => p.stepMs ?? p.firstMs;
  const fmt = (p) => (p.stepMs !== null ? `${Math.round(p.stepMs)} ms` : `${Math.round(p.firstMs)} ms for its first pass (kernels compiled), not timed further`);
  const timing = (p) => ({ firstMs: p.firstMs, stepMs: p.stepMs });
  if (c.error) {
    // Nothing to compare: a real GPU as a rule, the CPU against a software adapter.
    const chosen = info.isFallbackAdapter ? 'cpu' : 'webgpu';
    return { chosen, cpu: null, webgpu: null, reason: `${chosen === 'cpu' ? 'the CPU' : gpuName}, not measured: the CPU's probe failed (${c.error})${soft}` };
  }
  if (g.error) return { chosen: 'cpu', cpu: timing(c), webgpu: null, reason: `the CPU: WebGPU failed its probe (${g.error}); the CPU took ${fmt(c)} for ${work}` };
  if (g.timedOut) {
    const over = Math.floor(limitMs / ms(c));
    return { chosen: 'cpu', cpu: timing(c), webgpu: { firstMs: null, stepMs: null, timedOut: true, limitMs }, reason: `the CPU, over ${over}× faster on ${work}: WebGPU did not finish in ${limitMs} ms, CPU ${fmt(c)}${soft}` };
  }
  const gpuWins = ms(g) < ms(c);
  const ratio = Math.max(ms(g), ms(c)) / Math.max(1e-3, Math.min(ms(g), ms(c)));
  const times = ratio >= 10 ? Math.round(ratio) : ratio.toFixed(1);
  return { chosen: gpuWins ? 'webgpu' : 'cpu', cpu: timing(c), webgpu: timing(g), reason: `${gpuWins ? gpuName : 'the CPU'}, ${times}× faster on ${work}: WebGPU ${fmt(g)}, CPU ${fmt(c)}${soft}` };
}

/**
 * One candidate's probe in a worker of its own, terminated after: `{firstMs, stepMs}`,
 * `{timedOut: true}` once `limitMs` pass after its device opened (WebGPU), or `{error}`;
 * `{stopped: true}` where `run` was stopped.
 */
function runProbe(candidate, model, beatMs, limitMs, run) {
  return new Promise((resolve) => {
    const w = new Worker(new URL('./probe-worker.js', import.meta.url), { type: 'module' });
    let timer = 0;
    const end = (r) => { clearTimeout(timer); w.terminate(); run?.ends.delete(end); resolve(r); };
    run?.ends.add(end);
    const limit = (ms, r) => { clearTimeout(timer); timer = setTimeout(() => end(r), ms); };
    limit(LOAD_LIMIT_MS, { error: `its build did not start in ${LOAD_LIMIT_MS / 1000} s` });
    w.onmessage = ({ data }) => {
      if (data.ready) limit(limitMs ?? CPU_LIMIT_MS, limitMs ? { timedOut: true } : { error: `no answer in ${CPU_LIMIT_MS / 1000} s` });
      else if (data.result) end(data.result);
      else if (data.error) end({ error: data.error });
    };
    w.onerror = (e) => { e.preventDefault(); end({ error: e.message || 'probe-worker.js could not be loaded' }); };
    w.postMessage({ ...candidate, options: model, beatMs });
  });
}

/** A build's identity: its .wasm's headers (a rebuild has other kernels, so is measured
 * again). Offline, the service worker's copy has the same headers. */
async function buildStamp(build) {
  const url = new URL(BUILDS[build].replace(/kiln\.js$/, 'kiln_bg.wasm'), import.meta.url);
  let r = await fetch(url, { method: 'HEAD', cache: 'no-store' }).catch(() => null);
  if (!r?.ok) r = (await self.caches?.match(url).catch(() => undefined)) ?? r;
  const h = (name) => r?.headers.get(name) ?? '';
  return `${build} ${h('etag')} ${h('last-modified')} ${h('content-length')}`;
}

async function cacheKey(info, cpu, model) {
  const builds = await Promise.all([...new Set([cpu.build, 'pkg'])].map(buildStamp));
  const adapter = [info.vendor, info.architecture, info.description, !!info.isFallbackAdapter];
  return JSON.stringify({ adapter, builds, threads: cpu.threads, simd: cpu.simd, ...model });
}

/** The cache entry's address: a made-up URL on the page's origin, never fetched. */
const cacheUrl = (key) => new URL(`device-probe?${new URLSearchParams({ key })}`, import.meta.url).href;

async function fromCache(key) {
  try {
    const r = await (await self.caches.open(PROBE_CACHE)).match(cacheUrl(key));
    return r ? await r.json() : null;
  } catch {
    return null; // no Cache API here (an insecure origin): measured each time
  }
}

async function toCache(key, report) {
  try {
    await (await self.caches.open(PROBE_CACHE)).put(cacheUrl(key), new Response(JSON.stringify(report), { headers: { 'content-type': 'application/json' } }));
  } catch { /* measured again next time */ }
}
