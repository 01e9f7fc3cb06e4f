// Where Kiln's worker (worker.js) runs its wasm: the build and the device, and the GPU devices'
// bookkeeping.
//
// Two builds of the same core (scripts/build-web.sh): pkg/ has WebGPU and a one-thread SIMD CPU
// backend; pkg-threads/ is CPU-only with a rayon pool on Web Workers (wasm threads need
// SharedArrayBuffer, i.e. a cross-origin isolated page, and burn-wgpu does not build with
// atomics); pkg-threads-relaxed/ is the same with relaxed SIMD's fused multiply-add. The worker
// picks the device first, then loads the build that runs it.
import { hasRelaxedSimd } from './relaxed-simd.js';

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

/** `relaxed`: the threaded build with relaxed SIMD instead of the plain one. */
async function loadBuild(threaded, threads, relaxed = false) {
  // Each .wasm comes with its own JS glue, which the pool's workers import too.
  const m = await import(!threaded ? './pkg/kiln.js' : relaxed ? './pkg-threads-relaxed/kiln.js' : './pkg-threads/kiln.js');
  await m.default();
  // Start (and warm) the pool once: the first parallel kernels of a fresh pool run slowly.
  if (threaded) await m.initThreadPool(threads);
  wasm = m;
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

export async function pickBackend(pref, threadsWanted, simd) {
  const notices = [];
  if (pref !== 'cpu') {
    const gpu = self.navigator && self.navigator.gpu;
    const adapter = gpu ? await gpu.requestAdapter().catch(() => null) : null;
    const info = (adapter && adapter.info) || {};
    // A software adapter (SwiftShader) trains ~100x slower than Kiln's CPU backend in wasm
    // (benches/browser.mjs), so 'auto' only takes WebGPU from a real GPU.
    if (adapter && info.isFallbackAdapter && pref === 'auto') {
      notices.push('This browser\'s WebGPU is a software fallback (no GPU found), far slower than the CPU for training: using the CPU backend. Add ?backend=webgpu to the address to use it anyway.');
    } else if (adapter) {
      try {
        await loadBuild(false);
        const backend = await wasm.Backend.create('webgpu');
        if (info.isFallbackAdapter) notices.push('WebGPU runs on a software adapter here: training works but is very slow.');
        return { module: wasm, backend, notices, adapter: [info.vendor, info.architecture, info.description].filter(Boolean).join(' ') || 'WebGPU', threads: 1 };
      } catch (e) {
        notices.push(`WebGPU failed to start (${e.message}); using the CPU backend.`);
      }
    } else if (pref === 'webgpu' || pref === 'auto') {
      notices.push(gpu ? 'No WebGPU adapter was found; using the CPU backend (slower).' : 'This browser has no WebGPU; using the CPU backend (slower).');
    }
  }
  const t = wasm ? { n: 1, why: 'WebGPU failed after its build was loaded' } : cpuThreads(threadsWanted);
  // Only the threaded build comes in a relaxed-SIMD variant; one thread on an isolated page
  // runs it too, with a pool of one: its FMA kernels took EfficientNet-Lite0's frozen step from
  // 1.89 to 1.36 s against the one-thread build (benches/browser.mjs relaxed).
  const relaxed = !wasm && isolated() && simd !== 'plain' && hasRelaxedSimd();
  if (!wasm) await loadBuild(t.n > 1 || relaxed, t.n, relaxed);
  if (t.why) notices.push(`The CPU backend runs on one thread: ${t.why}.`);
  // 'relaxed': the kernels on relaxed SIMD's fused multiply-add; 'simd128': plain 128-bit SIMD.
  return { module: wasm, backend: await wasm.Backend.create('cpu'), notices, adapter: 'CPU (wasm)', threads: t.n, simd: relaxed ? 'relaxed' : 'simd128' };
}
