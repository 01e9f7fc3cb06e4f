// A throwaway worker for the backend choice 'auto' (worker-backend.js): it loads one
// candidate's build, opens its device, says so (the deadline on the passes starts then), times
// one training pass of the model with Backend.probe and answers; its owner then terminates it,
// so the probe's wasm instance, thread pool and GPU device go with it.
import { loadBuild } from './worker-backend.js';

self.onmessage = async ({ data: { build, threads, kind, options, beatMs } }) => {
  try {
    const m = await loadBuild(build, threads);
    const backend = await m.Backend.create(kind);
    self.postMessage({ ready: true });
    const p = await backend.probe(options, 2, beatMs);
    self.postMessage({ result: { firstMs: p.firstMs, stepMs: p.stepMs ?? null } });
  } catch (e) {
    self.postMessage({ error: e instanceof Error ? e.message : String(e) });
  }
};
