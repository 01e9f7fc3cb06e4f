// Kiln's Web Worker: owns the wasm module, the dataset and the learner, so training never
// blocks the page. It answers {id, method, args} messages with {id, result} or {id, error},
// and streams training events as {event}.
//
// Which build and device it runs on: worker-backend.js.
import { ARCHS } from './kiln.js';
import { gpu, measureAgain, pickBackend, stopMeasuring } from './worker-backend.js';

/** The loaded build's exports (Backend, Dataset, Learner, CancelToken, …). */
let wasm = null;
const state = { backend: null, dataset: null, datasetOptions: null, learner: null, cancel: null, learnerOptions: null, sorting: null };
// Files of the dataset being sent (kiln.js posts them in chunks, then calls loadDataset or
// addFiles), and of the photos to predict (then predictMany).
const staged = [];
const toPredict = [];
// Pretrained weights: the user's (converted to a Kiln backbone once, on import) and the
// bundled EfficientNet-Lite0, a static asset next to the page fetched on first use.
const weights = { user: null, bundled: null, prefetch: null };
const BUNDLED = { arch: 'efficientnet_lite0', url: new URL('./weights/efficientnet_lite0.kiln', import.meta.url) };

async function pretrainedFor(arch) {
  if (weights.user && weights.user.arch === arch) return { bytes: weights.user.bytes, from: weights.user.name };
  if (arch === BUNDLED.arch) {
    if (!weights.bundled) {
      const r = (await weights.prefetch) || await fetch(BUNDLED.url);
      weights.prefetch = null;
      if (!r.ok) throw new Error(`the bundled EfficientNet-Lite0 weights are missing (${r.status} for ${BUNDLED.url.pathname}); rebuild the page with scripts/build-web.sh`);
      weights.bundled = new Uint8Array(await r.arrayBuffer());
    }
    return { bytes: weights.bundled, from: 'ImageNet (bundled)' };
  }
  const { name, torchvision } = ARCHS[arch] || { name: arch };
  const file = torchvision ? `torchvision's ${torchvision}` : 'its weights';
  throw new Error(`no pretrained ${name} weights are loaded: download ${file} (see Kiln's README), then drop it onto the page or use "Use your own weights"; or untick "Start from pretrained weights"`);
}

function need(name) {
  if (!state[name]) {
    const what = { backend: 'call init() first', dataset: 'load a dataset first', learner: 'create or load a model first' };
    throw new Error(`no ${name}: ${what[name]}`);
  }
  return state[name];
}

function replace(name, value) {
  if (state[name] && state[name].free) state[name].free();
  state[name] = value;
}

// Every learner sends the page a snapshot after each epoch, which a restarted worker loads.
function setLearner(learner) {
  replace('learner', learner);
  learner.snapshotEachEpoch = true;
}

// Long runs stream events to the page and can be cancelled from it between batches.
async function cancellable(run) {
  need('learner');
  state.cancel = new wasm.CancelToken();
  try {
    // A snapshot's bytes are handed over, not copied.
    return await run((event) => self.postMessage({ event }, event.type === 'snapshot' ? [event.bytes.buffer] : []), state.cancel);
  } finally {
    state.cancel.free();
    state.cancel = null;
  }
}

/** Staged files' bytes, as the wasm Dataset takes them. */
const readFiles = (files) => Promise.all(files.map(async (f) => ({ name: f.name, bytes: new Uint8Array(await f.blob.arrayBuffer()) })));

/** One edit (kiln.js's Edit, an add with its files' bytes) made to `dataset`. */
function edit(dataset, e) {
  if (e.changes) return dataset.applyChanges(e.changes);
  if (e.add) return dataset.addFiles(e.add);
  if (e.rename) return dataset.renameClass(e.rename[0], e.rename[1]);
  return dataset.removeClass(e.removeClass);
}

/** Why the edits in `steps` were not made again (`why`: the one that failed), in words. */
function droppedMessage(steps, why) {
  const n = steps.filter((e) => e.changes).reduce((k, e) => k + e.changes.length, 0);
  const renamed = steps.filter((e) => e.rename).length;
  const removed = steps.filter((e) => e.removeClass !== undefined).length;
  const plural = (k, one, many) => `${k} ${k === 1 ? one : many}`;
  const parts = [n && plural(n, 'change', 'changes'), renamed && plural(renamed, 'class renamed', 'classes renamed'), removed && plural(removed, 'class deleted', 'classes deleted')].filter(Boolean);
  // Changes alone are said as before the samples could be edited; anything more is listed.
  const one = parts.length === 1 && n === 1;
  const what = renamed || removed ? `edits (${parts.join(', ')})` : `${parts[0]} from Clean or Photos`;
  const kept = steps.some((e) => e.add) ? ' (the photos you added are still in it)' : '';
  return `Your ${what} no longer appl${one ? 'ies' : 'y'} to the photos as labelled now, so the dataset was loaded without ${one ? 'it' : 'them'}${kept} (${why}). Make ${one ? 'it' : 'them'} again, or set the labelling options back.`;
}

/** The photos of one predictMany chunk: at most `count` files and (past the first) `maxBytes`. */
function nextChunk(files, start, count, maxBytes) {
  let end = start + 1;
  let bytes = files[start].blob.size;
  while (end < files.length && end - start < count && bytes + files[end].blob.size <= maxBytes) bytes += files[end++].blob.size;
  return files.slice(start, end);
}

/** One chunk's results, in order: a file that can no longer be read (moved or deleted since
 * it was dropped) gets its reason without going to the core. */
async function predictChunk(learner, chunk) {
  const read = await Promise.all(chunk.map(async (f) => {
    try {
      return { name: f.name, bytes: new Uint8Array(await f.blob.arrayBuffer()) };
    } catch (e) {
      return { name: f.name, error: `the browser could not read it (${e.message || e.name}): it may have been moved or deleted since it was dropped` };
    }
  }));
  const ok = read.filter((r) => !r.error);
  const predicted = ok.length ? await learner.predictBatch(ok) : [];
  let k = 0;
  return read.map((r) => (r.error ? r : predicted[k++]));
}

const methods = {
  /** `probe`: the model 'auto' times each backend on ({arch, size}; EfficientNet-Lite0 at 224
   * by default); `measured`: figures kiln.useDevice moves to, which the restart follows. */
  async init({ backend = 'auto', threads, simd = 'auto', prefetch = true, probe, measured } = {}) {
    // The default model's weights download while the wasm compiles.
    if (prefetch) weights.prefetch = fetch(BUNDLED.url).catch(() => null);
    const picked = await pickBackend(backend, threads, simd, probe, measured);
    wasm = picked.module;
    replace('backend', picked.backend);
    return {
      backend: picked.backend.kind,
      adapter: picked.adapter,
      notices: picked.notices,
      threads: picked.threads,
      simd: picked.simd ?? null,
      fp16Unavailable: picked.backend.fp16Unavailable ?? null,
      device: picked.device,
    };
  },
  /** 'auto' measured again for another model (kiln.measureDevice): the figures and the choice,
   * or null where this worker did not choose by measuring or stopMeasuring stopped it. Nothing
   * is loaded here, and other calls are answered meanwhile. */
  measureDevice({ probe }) {
    return measureAgain(probe);
  },
  stopMeasuring() {
    return stopMeasuring();
  },
  sampleFiles() {
    return wasm.sampleDigits();
  },
  stageFiles({ files }) {
    staged.push(...files);
  },
  /** `edits`: what was done to the same files built with other options, in order, made again
   * (`{add: n}`: the next n staged files after the loaded ones were added). Where one no longer
   * applies, the dataset keeps only the added files and `changesDropped` says why. */
  async loadDataset({ options, edits = [] }) {
    const files = staged.splice(0);
    const nAdded = edits.reduce((n, e) => n + (e.add ?? 0), 0);
    const entries = await readFiles(files.slice(0, files.length - nAdded));
    let at = files.length - nAdded;
    const steps = [];
    for (const e of edits) {
      if (e.add === undefined) steps.push(e);
      else steps.push({ add: await readFiles(files.slice(at, (at += e.add))) });
    }
    let dataset = new wasm.Dataset(entries, options);
    let changesDropped = null;
    try {
      for (const e of steps) edit(dataset, e);
    } catch (e) {
      // All or none: a fresh build with the added files only (adding never fails).
      dataset.free();
      dataset = new wasm.Dataset(entries, options);
      for (const a of steps.filter((x) => x.add)) edit(dataset, a);
      changesDropped = droppedMessage(steps, e.message);
    }
    replace('dataset', dataset);
    // What the dataset was built with (the page's tests compare it with the page's fields).
    state.datasetOptions = { ...options };
    return { ...state.dataset.summary(), changesDropped };
  },
  /** No dataset, as before the first load (a project that failed to open is undone so). */
  dropDataset() {
    replace('dataset', null);
    state.datasetOptions = null;
  },
  /** The staged files added to the dataset: `{added: {train, valid, newClasses, skipped}, summary}`. */
  async addFiles() {
    const files = staged.splice(0);
    const dataset = need('dataset');
    return dataset.addFiles(await readFiles(files));
  },
  renameClass({ from, to }) {
    return need('dataset').renameClass(from, to);
  },
  removeClass({ name }) {
    return need('dataset').removeClass(name);
  },
  files() {
    return need('dataset').files();
  },
  summary() {
    return need('dataset').summary();
  },
  applyChanges({ changes }) {
    return need('dataset').applyChanges(changes);
  },
  changes() {
    return need('dataset').changes();
  },
  changesCsv() {
    return need('dataset').changesCsv();
  },
  cleaner({ split = 'train' } = {}) {
    return need('learner').cleaner(need('dataset'), split);
  },
  showBatch({ n = 16, size = 224, seed = 0, doFlip = true } = {}) {
    return need('dataset').showBatch(need('backend'), n, size, BigInt(seed), doFlip);
  },
  /** A project's manifest, checked by the core (see kiln-project.js). */
  checkProject({ bytes }) {
    return wasm.checkProjectManifest(bytes);
  },
  proposeSettings() {
    return wasm.proposeSettings(need('dataset').summary().nTrain);
  },
  async createLearner({ options }) {
    const { pretrained = true, ...opts } = options || {};
    const arch = opts.arch || BUNDLED.arch;
    const p = pretrained && arch !== 'tiny' ? await pretrainedFor(arch) : null;
    setLearner(new wasm.Learner(need('backend'), need('dataset'), opts, p ? p.bytes : undefined));
    state.learnerOptions = { arch, size: opts.size ?? 224, batchSize: opts.batchSize ?? 64, microBatch: state.learner.microBatch };
    return { classes: state.learner.classes, pretrained: p ? p.from : null, microBatch: state.learner.microBatch };
  },
  async importWeights({ bytes, name }) {
    const r = await wasm.importWeights(bytes, name, undefined);
    weights.user = { arch: r.arch, bytes: r.bytes, name };
    return { arch: r.arch, imagenetClasses: r.imagenetClasses, name };
  },
  clearWeights() {
    weights.user = null;
    return true;
  },
  fitOneCycle({ epochs, options }) {
    return cancellable((emit, cancel) => need('learner').fitOneCycle(need('dataset'), epochs, options, emit, cancel));
  },
  /** fastai's freeze() or unfreeze(); answers whether the body is frozen now. */
  setFrozen({ frozen }) {
    const l = need('learner');
    if (frozen) l.freeze(); else l.unfreeze();
    return l.frozen;
  },
  history() {
    return { history: need('learner').history, frozen: state.learner.frozen };
  },
  fineTune({ epochs, options }) {
    return cancellable((emit, cancel) => need('learner').fineTune(need('dataset'), epochs, options, emit, cancel));
  },
  lrFind({ options }) {
    return cancellable((emit, cancel) => need('learner').lrFind(need('dataset'), options, emit, cancel));
  },
  interpret({ k = 9, minVal = 1 } = {}) {
    return need('learner').interpret(need('dataset'), k, minVal);
  },
  memory() {
    return {
      wasmBytes: wasm ? wasm.memoryBytes() : 0,
      liveHeapBytes: wasm ? wasm.liveHeapBytes() : 0,
      jsHeapBytes: self.performance?.memory?.usedJSHeapSize ?? null,
    };
  },
  cancel() {
    if (state.cancel) state.cancel.cancel();
    if (state.sorting) state.sorting.cancelled = true;
    return !!(state.cancel || state.sorting);
  },
  predict({ bytes }) {
    return need('learner').predict(bytes);
  },
  getPreds() {
    return need('learner').getPreds(need('dataset'));
  },
  stagePredict({ files, first }) {
    // A run that was stopped while its files were sent leaves them here: the next one starts afresh.
    if (first) toPredict.length = 0;
    toPredict.push(...files);
  },
  /** The staged photos in chunks of `batchSize` (and at most 64 MiB of files), each one batch
   * on the device, read only when its turn comes: each chunk's results go to the page as an
   * event. Cancel stops between chunks. */
  async predictMany({ batchSize = 32 }) {
    const files = toPredict.splice(0);
    const learner = need('learner');
    const run = { cancelled: false };
    state.sorting = run;
    let done = 0;
    try {
      while (done < files.length && !run.cancelled) {
        const chunk = nextChunk(files, done, Math.max(1, batchSize), 64 * 2 ** 20);
        const results = await predictChunk(learner, chunk);
        self.postMessage({ event: { type: 'predictions', start: done, results, done: done + chunk.length, total: files.length } });
        done += chunk.length;
        // A turn of the event loop, so a cancel message is read before the next chunk.
        await new Promise((r) => setTimeout(r, 0));
      }
      return { done, total: files.length, cancelled: done < files.length };
    } finally {
      state.sorting = null;
    }
  },
  async export() {
    return await need('learner').export();
  },
  exportOnnx() {
    return need('learner').exportOnnx();
  },
  exportPyTorch() {
    return need('learner').exportPyTorch();
  },
  /** Test-only (www/kiln-testing.js): what the next fit trains on: the dataset (its classes,
   * split and the options it was built with) and the model (its classes and settings). */
  trainingState() {
    const d = state.dataset && state.dataset.summary();
    const l = state.learner;
    return {
      dataset: d && { classes: d.classes.map((c) => c.name), nTrain: d.nTrain, nValid: d.nValid, options: state.datasetOptions },
      learner: l && { classes: l.classes, options: l.options ?? state.learnerOptions },
    };
  },
  /** Test-only (www/kiln-testing.js): GPU buffers created and destroyed so far, and the bytes of those not destroyed. */
  gpuBuffers() {
    return { ...gpu.buffers };
  },
  /** Test-only (www/kiln-testing.js): destroy the GPU device, as a driver reset would. */
  loseDevice() {
    if (gpu.devices.length) gpu.lost = 'the device was destroyed';
    for (const d of gpu.devices) d.destroy();
    return gpu.devices.length;
  },
  load({ bytes }) {
    setLearner(wasm.Learner.load(need('backend'), bytes));
    // The model's own settings (null from a build without them).
    const options = state.learner.options ?? null;
    if (options) state.learnerOptions = { arch: options.arch, size: options.size, batchSize: options.batchSize, microBatch: state.learner.microBatch };
    return { classes: state.learner.classes, options };
  },
};

/** Why the module died: running out of wasm32's 4 GiB says so, with what to change. */
function fatalMessage(message) {
  let bytes = 0;
  try { bytes = wasm ? wasm.memoryBytes() : 0; } catch { /* the instance is gone */ }
  const o = state.learnerOptions;
  if (bytes > 3.5 * 2 ** 30 && o) {
    return `out of memory: the worker reached ${(bytes / 2 ** 30).toFixed(1)} GiB of WebAssembly's 4 GiB training ${ARCHS[o.arch]?.name || o.arch} at batch size ${o.batchSize} (${o.microBatch} images a pass), image size ${o.size} px. `
      + 'Try a smaller image size, or fewer images a pass (microBatch); Kiln restarted its worker with your dataset and the model as it was after the last finished epoch.';
  }
  return `internal error (${message}); Kiln restarted its worker with your dataset, please retry`;
}

self.onmessage = async ({ data: { id, method, args } }) => {
  try {
    if (!methods[method]) throw new Error(`unknown method ${method}`);
    const result = await methods[method](args || {});
    self.postMessage({ id, result });
  } catch (e) {
    // A Rust panic surfaces as a WebAssembly.RuntimeError and leaves the module unusable:
    // say so, so the client starts a fresh worker.
    const message = e instanceof Error ? e.message : String(e);
    // With the GPU gone, whatever failed failed because of it: the page moves to the CPU.
    if (gpu.lost) return self.postMessage({ id, error: `the GPU stopped working (${gpu.lost})`, fatal: true, deviceLost: gpu.lost });
    const fatal = e instanceof WebAssembly.RuntimeError;
    self.postMessage({ id, error: fatal ? fatalMessage(message) : message, fatal });
  }
};
