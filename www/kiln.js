// Kiln's JavaScript API. Everything runs in a dedicated Web Worker (worker.js), so the page
// stays responsive; every method is async and rejects with an Error whose message says what
// went wrong. Types: kiln.d.ts (generated from these JSDoc comments and kiln-types.js by `tsc`).
// The plumbing (calls, events, restarts) is in worker-link.js; the dataset's methods are in
// kiln-dataset.js; Kiln extends both with the learner's.

import { DatasetLink, toEntry } from './kiln-dataset.js';
import { Queue } from './queue.js';

export { pathOf, filesFromDrop } from './files.js';

export * from './kiln-types.js';
/** @import { AddResult, BackendInfo, Change, CleanerResult, DatasetFile, DatasetOptions, DeviceChoice, EpochEvent, FineTuneOptions, FitOneCycleOptions, FitCallbacks, FitReport, ImportedWeights, InputFile, InterpretResult, LearnerOptions, LrFindOptions, LrFindResult, ModelOptions, OpenedProject, OpenProjectOptions, PhotoResult, PredictManyOptions, Prediction, Preds, ProbeModel, SaveProjectOptions, SmallDataProposal, Summary } from './kiln-types.js' */

/**
 * The architectures Kiln builds: display names, and for ResNets the torchvision file a user
 * brings (no registry ships ResNet ImageNet weights; EfficientNet-Lite0's are bundled).
 * @type {Record<string, {name: string, torchvision?: string}>}
 */
export const ARCHS = {
  efficientnet_lite0: { name: 'EfficientNet-Lite0' },
  resnet34: { name: 'ResNet-34', torchvision: 'resnet34-b627a593.pth' },
  resnet18: { name: 'ResNet-18', torchvision: 'resnet18-f37072fd.pth' },
  resnet50: { name: 'ResNet-50', torchvision: 'resnet50-11ad3fa6.pth' },
  resnet101: { name: 'ResNet-101', torchvision: 'resnet101-cd907fc2.pth' },
  resnet152: { name: 'ResNet-152', torchvision: 'resnet152-f82ba261.pth' },
  tiny: { name: 'Tiny ResNet' },
};

/** What `Kiln.create` accepts (the page's `?backend=` and `?simd=` say the same). */
export const BACKENDS = ['auto', 'webgpu', 'cpu'];
export const SIMD = ['auto', 'plain'];

/** A clear error for an option value `Kiln.create` does not know.
 * @param {string} name @param {string[]} known @param {unknown} value */
function checkOption(name, known, value) {
  if (value !== undefined && !known.includes(/** @type {string} */ (value))) {
    throw new Error(`Kiln.create: ${name} must be ${known.map((k) => `'${k}'`).join(', ')} or left out, not ${JSON.stringify(value)}`);
  }
}

export class Kiln extends DatasetLink {
  /** @private */
  constructor(/** @type {URL | string} */ workerUrl, /** @type {string} */ backend) {
    super();
    this.workerUrl = workerUrl;
    this.backendPref = backend;
    /** @private @type {ProbeModel | undefined} the model 'auto' measures the backends on */
    this.probeModel = undefined;
    /** @private @type {DeviceChoice | undefined} while useDevice moves Kiln: what it measured */
    this.measured = undefined;
  }

  /**
   * Start the worker and pick a backend: 'auto', 'webgpu' or 'cpu'. 'auto' with a WebGPU
   * adapter (a software one too) measures: one training pass of `probe`'s model (EfficientNet-Lite0
   * at 224 px by default: the Settings' architecture and image size) on the CPU, then on WebGPU,
   * each in a throwaway worker, and takes the faster; `info.device` has both timings and the
   * reason. The result is kept per adapter, build, model and size, so it is measured once.
   * Without an adapter 'auto' is the CPU.
   * `threads` caps the CPU backend's threads (default: every core, at most 8; threads need a
   * cross-origin isolated page, else one thread is used and `info.notices` says why).
   * `simd: 'plain'` keeps the threaded CPU build off relaxed SIMD's fused multiply-add (whose
   * rounding depends on the hardware), for results that are the same on every machine.
   * `prefetchWeights: false` does not fetch the bundled EfficientNet-Lite0 weights while the
   * wasm compiles (a page that only predicts with its own model has no use for them).
   * @param {{backend?: 'auto'|'webgpu'|'cpu', threads?: number, simd?: 'auto'|'plain', prefetchWeights?: boolean, workerUrl?: URL | string, probe?: ProbeModel}} [opts]
   * @returns {Promise<Kiln>}
   */
  static async create(opts = {}) {
    checkOption('backend', BACKENDS, opts.backend);
    checkOption('simd', SIMD, opts.simd);
    const k = new Kiln(opts.workerUrl || new URL('./worker.js', import.meta.url), opts.backend || 'auto');
    k.threads = opts.threads;
    k.simd = opts.simd || 'auto';
    k.prefetchWeights = opts.prefetchWeights ?? true;
    k.probeModel = opts.probe && { ...opts.probe };
    await k.start();
    return k;
  }

  /** @protected @returns {Promise<any>} */
  call(/** @type {string} */ method, /** @type {any} */ args = {}, /** @type {Transferable[]} */ transfer = []) {
    // The worker's start (a restart's too) measures on the model last asked for.
    return super.call(method, method === 'init' ? { ...args, probe: this.probeModel, measured: this.measured } : args, transfer);
  }

  /**
   * 'auto' for another model (the Settings' architecture or image size changed): both backends
   * timed on it, each in a throwaway worker, and the faster (at once where its figures are
   * kept). Nothing moves: `useDevice` does. Other calls go on meanwhile, but work skews the
   * timings: `stopMeasuring` stops it. Null where Kiln did not choose by measuring (backend
   * 'webgpu' or 'cpu', no WebGPU adapter, or after a lost GPU) or where it was stopped.
   * @param {ProbeModel} probe
   * @returns {Promise<DeviceChoice | null>}
   */
  async measureDevice(probe) {
    if (this.backendPref !== 'auto' || !this.info?.device) return null;
    return this.call('measureDevice', { probe: { ...probe } });
  }

  /** Stop a `measureDevice` in flight: its probe workers end, nothing is kept, it resolves
   * null. @returns {Promise<boolean>} whether one was running */
  stopMeasuring() {
    return this.call('stopMeasuring');
  }

  /**
   * Run on the backend `device` (from `measureDevice`) chose, as `info.device` says. Where that
   * is the other backend, Kiln moves there as after a lost GPU: the worker restarts with the
   * dataset, weights and model it had, so call it while nothing else runs (a restart fails the
   * calls in flight).
   * @param {DeviceChoice} device
   * @returns {Promise<BackendInfo>}
   */
  async useDevice(device) {
    const info = /** @type {BackendInfo} */ (this.info);
    if (this.backendPref !== 'auto' || !info.device) return info;
    // A restart (this one or a later one) measures on this model.
    this.probeModel = { arch: /** @type {ProbeModel['arch']} */ (device.arch), size: device.size };
    if (device.chosen === info.backend) {
      this.info = { ...info, device };
      return this.info;
    }
    // The new worker follows these figures rather than measuring again.
    this.measured = device;
    try {
      await this.restart(new Error(`Kiln moved to ${device.chosen === 'webgpu' ? 'WebGPU' : 'the CPU'}, measured faster for this model`));
    } finally {
      this.measured = undefined;
    }
    return /** @type {BackendInfo} */ (this.info);
  }

  /**
   * Settings for a small training set. fastai's defaults (batch 64, fine_tune(1)) assume
   * thousands of photos; on a few hundred they take a handful of optimiser steps. This proposes a
   * batch size and fine_tune epochs that take at least ~30, with a sentence saying why; null
   * where fastai's defaults already take enough.
   * @returns {Promise<SmallDataProposal | null>}
   */
  proposeSettings() {
    return this.call('proposeSettings');
  }

  /**
   * A new model for the dataset's classes. With `pretrained` (the default) its body starts
   * from pretrained weights, frozen as in fastai: the bundled EfficientNet-Lite0 (ImageNet), or
   * the weights given to `importWeights` for their architecture. `pretrained` in the result
   * says where they came from (null: random weights).
   * @param {LearnerOptions} [options]
   * `microBatch` is how many images go through the model at once: the batch is split into
   * passes of that size when it would not fit the device's memory (gradients are
   * accumulated, so the optimiser still sees `batchSize`).
   * @returns {Promise<{classes: string[], pretrained: string | null, microBatch: number}>}
   */
  createLearner(options = {}) {
    this.lastModel = null;
    return this.call('createLearner', { options });
  }

  /**
   * Bring pretrained weights: a torchvision/timm checkpoint (.pth/.pt, zip or legacy pickle),
   * a .safetensors file, or a Kiln backbone. The architecture is recognised from the keys;
   * later learners of that architecture start from these weights.
   * @param {Blob} blob
   * @param {string} [name]
   * @returns {Promise<ImportedWeights>}
   */
  async importWeights(blob, name = blob instanceof File ? blob.name : 'weights') {
    const imported = await this.sendWeights(blob, name);
    this.lastWeights = { blob, name };
    return imported;
  }

  /**
   * The worker's memory: WebAssembly linear memory (it only grows, so this is its peak; wasm32
   * stops at 4 GiB), the bytes the Rust heap holds now (what a leak would grow), and the
   * worker's JS heap where the browser reports it.
   * @returns {Promise<{wasmBytes: number, liveHeapBytes: number, jsHeapBytes: number | null}>}
   */
  memory() {
    return this.call('memory');
  }

  /** Forget imported weights (EfficientNet-Lite0's bundled ones stay). @returns {Promise<boolean>} */
  clearWeights() {
    this.lastWeights = null;
    return this.call('clearWeights');
  }

  /**
   * fastai's fit_one_cycle on the model as it is (frozen or not: see `freeze`/`unfreeze`), as
   * the book trains by hand after fine_tune. `lrMax` is one rate for every layer, `[hi]`
   * (fastai's `slice(hi)`) or `[lo, hi]` (`slice(lo, hi)`: discriminative rates from the first
   * layers to the head); a plain number is `{lrMax: number}`. Epochs are numbered on from the
   * model's history (`EpochEvent.number`). `cancel()` stops it between batches and keeps the model.
   * @param {number} epochs
   * @param {number | FitOneCycleOptions} [options]
   * @param {FitCallbacks} [callbacks]
   * @returns {Promise<FitReport>}
   */
  fitOneCycle(epochs, options = {}, callbacks = {}) {
    const opts = typeof options === 'number' ? { lrMax: options } : options;
    return this.withCallbacks(callbacks, () => this.call('fitOneCycle', { epochs, options: opts }));
  }

  /** fastai's freeze(): only the head (and BatchNorm) trains. @returns {Promise<boolean>} frozen */
  freeze() {
    return this.call('setFrozen', { frozen: true });
  }

  /** fastai's unfreeze(): every layer trains. @returns {Promise<boolean>} frozen (false) */
  unfreeze() {
    return this.call('setFrozen', { frozen: false });
  }

  /**
   * The model's epoch table so far (every fit, across saves and reloads) and whether its body
   * is frozen now.
   * @returns {Promise<{history: EpochEvent[], frozen: boolean}>}
   */
  history() {
    return this.call('history');
  }

  /**
   * fastai's fine_tune: `freezeEpochs` (1) of the head alone, then `epochs` of everything with
   * discriminative learning rates. Batch and epoch events carry `phase` ('frozen'/'unfrozen').
   * @param {number} epochs
   * @param {FineTuneOptions} [options]
   * @param {FitCallbacks} [callbacks]
   * @returns {Promise<FitReport>}
   */
  fineTune(epochs, options = {}, callbacks = {}) {
    return this.withCallbacks(callbacks, () => this.call('fineTune', { epochs, options }));
  }

  /**
   * fastai's lr_find; the model is left as it was. Progress arrives through `onBatch`.
   * `cancel()` stops it: it resolves with the curve so far and `cancelled: true`.
   * @param {LrFindOptions} [options]
   * @param {FitCallbacks} [callbacks]
   * @returns {Promise<LrFindResult>}
   */
  lrFind(options = {}, callbacks = {}) {
    return this.withCallbacks(callbacks, () => this.call('lrFind', { options }));
  }

  /**
   * Confusion matrix (rows actual, columns predicted), most confused pairs and top losses on
   * the validation set, with each top loss's image (`topLossImages`, the same order).
   * @param {{k?: number, minVal?: number}} [opts]
   * @returns {Promise<InterpretResult>}
   */
  async interpret(opts = {}) {
    const r = await this.call('interpret', opts);
    // One image per top loss, in `topLosses`' order: the centre crop the model saw.
    r.topLossImages = (r.topLossImages || []).map((/** @type {{width: number, height: number, rgba: Uint8Array<ArrayBuffer>}} */ { width, height, rgba }) => new ImageData(new Uint8ClampedArray(rgba.buffer, rgba.byteOffset, rgba.byteLength), width, height));
    return r;
  }

  /** Stop a running fit or lr_find after its current batch, or predictMany after its batch in
   * flight. @returns {Promise<boolean>} whether one was running */
  cancel() {
    return this.call('cancel');
  }

  /**
   * @param {Blob} image
   * @returns {Promise<Prediction>}
   */
  async predict(image) {
    const bytes = new Uint8Array(await image.arrayBuffer());
    return this.call('predict', { bytes }, [bytes.buffer]);
  }

  /**
   * Sort many photos with the model: an async iterator of batches of results, in the order of
   * `files`, each `{name, file, label, index, probs}` (probs in the model's class order,
   * `classes`) or `{name, file, error}` for a file that could not be read (the reason in words).
   * The worker reads each batch's files only when its turn comes (at most `batchSize`, 32 by
   * default, and 64 MiB a batch), so any number of photos fits in memory.
   * `onProgress({done, total})` follows each batch. Aborting `signal`, `cancel()` or leaving
   * the loop stops it after the batch in flight; the iterator then ends (it does not throw),
   * having yielded every result so far.
   * ```js
   * for await (const batch of kiln.predictMany(files, { onProgress, signal })) show(batch);
   * ```
   * @param {InputFile[]} files
   * @param {PredictManyOptions} [options]
   * @returns {AsyncGenerator<PhotoResult[], void, undefined>}
   */
  async *predictMany(files, { onProgress, signal, batchSize = 32 } = {}) {
    const entries = files.map(toEntry);
    if (signal?.aborted || !entries.length) return;
    // Handles in chunks (a handle costs ~0.2 ms of this thread to post): the main thread never
    // blocks on 10,000 of them.
    for (let i = 0; i < entries.length; i += 50) await this.call('stagePredict', { files: entries.slice(i, i + 50), first: i === 0 });
    if (signal?.aborted) return;
    const queue = new Queue((/** @type {{start: number, results: any[], done: number, total: number}} */ e) => onProgress?.({ done: e.done, total: e.total }));
    this.onPredictions = (/** @type {any} */ e) => queue.push(e);
    const abort = () => { this.cancel().catch(() => {}); };
    signal?.addEventListener('abort', abort);
    // The worker's events arrive before its answer, so the queue is complete once it has answered.
    const run = queue.until(this.call('predictMany', { batchSize }));
    try {
      for await (const e of queue) yield e.results.map((r, k) => ({ ...r, file: entries[e.start + k].blob }));
    } finally {
      signal?.removeEventListener('abort', abort);
      // Left early (break, or an error in the loop's body): stop the worker, and wait for it.
      if (!queue.settled) { await this.cancel().catch(() => {}); await run; }
      this.onPredictions = null;
    }
  }

  /**
   * fastai's `get_preds` over the validation set: each image's probabilities (in `classes`
   * order), its target class index, and its cross-entropy loss, in the dataset's order.
   * @returns {Promise<Preds>}
   */
  getPreds() {
    return this.call('getPreds');
  }

  /**
   * The model as a `.kiln` file (the CLI reads it too).
   * @returns {Promise<Blob>}
   */
  export() {
    return this.fileFrom('export');
  }

  /**
   * The model as ONNX (opset 18), to run in an app with onnxruntime or any ONNX runtime.
   * Input `image`: RGB float32 in [0, 1], NCHW `[N, 3, H, W]`: a photo centre-cropped to a
   * square, at any size (the graph resizes it as Kiln does, then applies ImageNet
   * normalisation). Output `probabilities`
   * `[N, classes]`; the class names are in the model's metadata (`classes`).
   * @returns {Promise<Blob>}
   */
  exportOnnx() {
    return this.fileFrom('exportOnnx');
  }

  /**
   * The model's weights as a PyTorch state dict (`.safetensors`) in the layout of fastai's
   * `vision_learner` for the same architecture, to keep training in a notebook (see the README).
   * ResNet-18/34 and EfficientNet-Lite0; the tiny custom ResNet has no fastai counterpart.
   * @returns {Promise<Blob>}
   */
  exportPyTorch() {
    return this.fileFrom('exportPyTorch');
  }

  /**
   * Load a `.kiln` model file: its classes, and the settings it was trained with (`options`,
   * with the `presize` its photos were resized to), which training it further uses.
   * @param {Blob} blob
   * @returns {Promise<{classes: string[], options: ModelOptions | null}>}
   */
  async load(blob) {
    const bytes = new Uint8Array(await blob.arrayBuffer());
    const copy = bytes.slice();
    const result = await this.call('load', { bytes }, [bytes.buffer]);
    // Kept only once it loaded: a refused file must not come back after a restart.
    this.lastModel = copy;
    return result;
  }

  /**
   * The project (`.kilnproj`, the CLI reads it too): the dataset's recipe (the files as first
   * given, the options, every edit since), `settings` and `charts` (the page's, kept as given),
   * each photo, and the model (`model`: the model now, `'snapshot'` the one after the last
   * finished epoch, which needs nothing of the worker, or false: none). A streaming Response:
   * the photos are read from their Blobs as the zip is written, one at a time.
   * @param {SaveProjectOptions} [options]
   * @returns {Promise<Response>}
   */
  async saveProject({ settings = {}, charts = null, model = true } = {}) {
    if (!this.lastDataset) throw new Error('saveProject: no dataset is loaded (a project is a dataset and its model): load photos first');
    const { dataset, edits } = { dataset: this.lastDataset, edits: this.lastEdits };
    /** @type {Uint8Array | Blob | null} */
    let bytes = model === 'snapshot' ? this.lastModel : null;
    if (model === true) bytes = await this.export().catch((e) => { if (/^no learner/.test(e.message)) return null; throw e; });
    const { manifestOf, projectZip } = await import('./kiln-project.js');
    const { manifest, photos } = manifestOf(dataset, edits, { settings, charts, model: !!bytes });
    return projectZip({ manifest, photos, model: bytes });
  }

  /**
   * Open a project: all of it is checked first (the manifest by the core, as the CLI checks
   * it, and every photo's and the model's CRC-32), and a damaged, cut or foreign file is
   * refused with the dataset and model unchanged. Then the dataset is built through
   * loadDataset and each edit as it was made, and the model loaded; if that fails midway,
   * the previous dataset is put back (and the model, which only a successful load replaces).
   * `files`/`added` are the photos as Files named by the recipe (`pathOf`).
   * @param {Blob} file
   * @param {OpenProjectOptions} [options]
   * @returns {Promise<OpenedProject>}
   */
  async openProject(file, options = {}) {
    const { readProject, rebuild } = await import('./kiln-project.js');
    const project = await readProject(file, (bytes) => this.call('checkProject', { bytes }, [bytes.buffer]), options);
    const before = { dataset: this.lastDataset, edits: this.lastEdits };
    try {
      return await rebuild(this, project);
    } catch (e) {
      try {
        await this.putBack(before);
      } catch (e2) {
        throw new Error(`${/** @type {Error} */ (e).message}; putting the previous dataset back failed too (${/** @type {Error} */ (e2).message})`);
      }
      throw new Error(`${/** @type {Error} */ (e).message}. The dataset and model you had are back as they were.`);
    }
  }

  /** @private @returns {Promise<Blob>} a file the worker makes as bytes */
  async fileFrom(/** @type {string} */ method) {
    return new Blob([await this.call(method)], { type: 'application/octet-stream' });
  }

  /** Stop the worker and free everything. */
  dispose() {
    this.worker?.terminate();
    this.worker = null;
    this.crash(new Error('Kiln was disposed'));
  }
}
