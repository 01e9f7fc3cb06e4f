// Kiln's JavaScript API. Everything runs in a dedicated Web Worker (worker.js), so the page
// stays responsive; every method is async and rejects with an Error whose message says what
// went wrong. Types: kiln.d.ts (generated from these JSDoc comments by `tsc`).

import { pathOf } from './files.js';
import { Queue } from './queue.js';

export { pathOf, filesFromDrop } from './files.js';

/**
 * @typedef {{name: string, train: number, valid: number, examples: string[]}} ClassCount
 * @typedef {{name: string, reason: {kind: string, detail?: string}}} Skipped
 * @typedef {{classes: ClassCount[], nTrain: number, nValid: number, labelRule: string, split: string, skipped: Skipped[]}} Summary
 * @typedef {{labelRegex?: string, validPct?: number, seed?: number, presize?: number, maxPixels?: number}} DatasetOptions
 * @typedef {{arch?: 'efficientnet_lite0'|'resnet18'|'resnet34'|'tiny', pretrained?: boolean, size?: number, batchSize?: number, microBatch?: number, seed?: number, doFlip?: boolean, widths?: number[], hidden?: number, fp16?: boolean}} LearnerOptions
 * @typedef {LearnerOptions & {presize: number}} ModelOptions
 * @typedef {{arch: string, imagenetClasses: number | null, name: string}} ImportedWeights
 * @typedef {'fit'|'frozen'|'unfrozen'|'lr_find'} Phase
 * @typedef {{phase: Phase, epoch: number, iter: number, totalIters: number, loss: number, smoothLoss: number, lrs: number[], mom: number, elapsedS: number}} BatchEvent
 * @typedef {{phase: Phase, epoch: number, trainLoss: number, validLoss: number, errorRate: number, accuracy: number, seconds: number}} EpochEvent
 * @typedef {{baseLr?: number, freezeEpochs?: number, lrMult?: number, pctStart?: number, div?: number}} FineTuneOptions
 * @typedef {{startLr?: number, endLr?: number, numIt?: number, stopDiv?: boolean}} LrFindOptions
 * @typedef {{lr: number, point: [number, number]}} Suggestion
 * @typedef {{lrs: number[], losses: number[], suggestions: {minimum: Suggestion, steep: Suggestion, valley: Suggestion, slide: Suggestion} | null, cancelled: boolean}} LrFindResult
 * @typedef {{actual: string, predicted: string, count: number}} Confusion
 * @typedef {{index: number, name: string, predicted: string, actual: string, loss: number, probActual: number}} TopLoss
 * @typedef {{classes: string[], confusion: number[][], mostConfused: Confusion[], topLosses: TopLoss[], nValid: number, topLossImages: ImageData[]}} InterpretResult
 * @typedef {{epochs: EpochEvent[], cancelled: boolean}} FitReport
 * @typedef {{label: string, index: number, probs: number[]}} Prediction
 * @typedef {{probs: number[][], targets: number[], losses: number[]}} Preds
 * @typedef {{name: string, file: Blob, label: string, index: number, probs: number[]}} PhotoPrediction
 * @typedef {{name: string, file: Blob, error: string}} PhotoError
 * @typedef {PhotoPrediction | PhotoError} PhotoResult
 * @typedef {{done: number, total: number}} PredictProgress
 * @typedef {{onProgress?: (p: PredictProgress) => void, signal?: AbortSignal, batchSize?: number}} PredictManyOptions
 * @typedef {{onBatch?: (e: BatchEvent) => void, onEpoch?: (e: EpochEvent) => void, onSkipped?: (e: Skipped) => void}} FitCallbacks
 * @typedef {{backend: string, adapter: string, notices: string[], threads: number, simd: 'relaxed' | 'simd128' | null, fp16Unavailable: string | null}} BackendInfo
 * @typedef {File | {name: string, blob: Blob}} InputFile
 */

/**
 * The architectures Kiln builds: display names, and for ResNets the torchvision file a user
 * brings (no registry ships ResNet ImageNet weights; EfficientNet-Lite0's are bundled).
 * @type {Record<string, {name: string, torchvision?: string}>}
 */
export const ARCHS = {
  efficientnet_lite0: { name: 'EfficientNet-Lite0' },
  resnet34: { name: 'ResNet-34', torchvision: 'resnet34-b627a593.pth' },
  resnet18: { name: 'ResNet-18', torchvision: 'resnet18-f37072fd.pth' },
  tiny: { name: 'Tiny ResNet' },
};

// Files go to the worker as Blobs (handles, cheap to post) and are read there: reading and
// posting 10,000 files' bytes from here blocked the page for seconds.
function toEntry(/** @type {InputFile} */ f) {
  return f instanceof Blob ? { name: pathOf(f), blob: f } : { name: f.name, blob: f.blob };
}

function deviceLostMessage(/** @type {string} */ why) {
  return `the GPU stopped working (${why}). Kiln moved to the CPU backend, with your dataset and the model as it was after the last finished epoch: train again to continue.`;
}

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

export class Kiln {
  /** @private */
  constructor(/** @type {URL | string} */ workerUrl, /** @type {string} */ backend) {
    // Internal: how to reach and restart the worker, and what a restarted one gets back.
    /** @private */ this.workerUrl = workerUrl;
    /** @private */ this.backendPref = backend;
    /** @private @type {Worker | null} */ this.worker = null;
    /** @private */ this.nextId = 1;
    /** @private @type {Map<number, {resolve: (v: any) => void, reject: (e: Error) => void}>} */ this.pending = new Map();
    /** @private @type {FitCallbacks} */ this.callbacks = {};
    /** @private @type {((e: any) => void) | null} where predictMany's batches go */ this.onPredictions = null;
    /** @private @type {{entries: {name: string, blob: Blob}[], options: DatasetOptions} | null} */ this.lastDataset = null;
    /** @private @type {Uint8Array | null} the model after the last finished epoch, as .kiln bytes */ this.lastModel = null;
    /** @private @type {{blob: Blob, name: string} | null} */ this.lastWeights = null;
    /** @private @type {number | undefined} */ this.threads = undefined;
    /** @private @type {'auto' | 'plain'} */ this.simd = 'auto';
    /** @type {Promise<void> | null} set while the worker restarts (after a crash or a lost GPU) */
    this.restarting = null;
    /** @type {((info: BackendInfo, message: string) => void) | null} called after the worker moved to another backend */
    this.onRestart = null;
    /** @type {BackendInfo | null} where Kiln runs (set once `create` resolves) */
    this.info = null;
  }

  /**
   * Start the worker and pick a backend: 'auto' (WebGPU when an adapter exists, else the CPU),
   * 'webgpu' or 'cpu'.
   * `threads` caps the CPU backend's threads (default: every core, at most 8; threads need a
   * cross-origin isolated page, else one thread is used and `info.notices` says why).
   * `simd: 'plain'` keeps the threaded CPU build off relaxed SIMD's fused multiply-add (whose
   * rounding depends on the hardware), for results that are the same on every machine.
   * @param {{backend?: 'auto'|'webgpu'|'cpu', threads?: number, simd?: 'auto'|'plain', workerUrl?: URL | string}} [opts]
   * @returns {Promise<Kiln>}
   */
  static async create(opts = {}) {
    checkOption('backend', BACKENDS, opts.backend);
    checkOption('simd', SIMD, opts.simd);
    const k = new Kiln(opts.workerUrl || new URL('./worker.js', import.meta.url), opts.backend || 'auto');
    k.threads = opts.threads;
    k.simd = opts.simd || 'auto';
    await k.start();
    return k;
  }

  /** @private */
  async start() {
    this.worker = new Worker(this.workerUrl, { type: 'module' });
    this.worker.onmessage = ({ data }) => this.receive(data);
    this.worker.onerror = (e) => this.crash(new Error(`the Kiln worker failed: ${e.message || 'could not load (is the page served over http?)'}`));
    this.info = await this.call('init', { backend: this.backendPref, threads: this.threads, simd: this.simd });
  }

  /** @private */
  receive(/** @type {any} */ data) {
    if (data.event) {
      const e = data.event;
      if (e.type === 'batch') this.callbacks.onBatch?.(e);
      else if (e.type === 'epoch') this.callbacks.onEpoch?.(e);
      else if (e.type === 'skipped') this.callbacks.onSkipped?.(e);
      else if (e.type === 'snapshot') this.lastModel = e.bytes;
      else if (e.type === 'predictions') this.onPredictions?.(e);
      else if (e.type === 'deviceLost') this.deviceLost(e.message);
      return;
    }
    const p = this.pending.get(data.id);
    if (!p) return;
    this.pending.delete(data.id);
    if ('error' in data) {
      if (data.deviceLost) {
        p.reject(new Error(deviceLostMessage(data.deviceLost)));
        return this.deviceLost(data.deviceLost);
      }
      p.reject(new Error(data.error));
      if (data.fatal) this.restart();
    } else p.resolve(data.result);
  }

  /**
   * The GPU device was lost (driver reset, GPU removed): move to the CPU backend, keeping the
   * dataset and the model as it was after the last finished epoch. Calls in flight fail with
   * a message that says so; `onRestart(info, message)` tells the page.
   * @private
   */
  async deviceLost(/** @type {string} */ why) {
    if (this.backendPref === 'cpu') return this.restarting;
    this.backendPref = 'cpu';
    const message = deviceLostMessage(why);
    await this.restart(new Error(message));
    this.onRestart?.(/** @type {BackendInfo} */ (this.info), message);
  }

  /** @private */
  crash(/** @type {Error} */ err) {
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
  }

  /**
   * A panic (e.g. out of memory) leaves the wasm instance unusable: start a fresh worker with
   * the same dataset, weights and the model from the end of the last finished epoch.
   */
  restart(/** @type {Error} */ why = new Error('the Kiln worker was restarted')) {
    if (!this.restarting) this.restarting = this.restartNow(why).finally(() => { this.restarting = null; });
    return this.restarting;
  }

  /** @private */
  async restartNow(/** @type {Error} */ why) {
    this.worker?.terminate();
    this.crash(why);
    await this.start();
    if (this.lastDataset) await this.sendDataset(this.lastDataset.entries, this.lastDataset.options);
    if (this.lastWeights) await this.importWeights(this.lastWeights.blob, this.lastWeights.name);
    // The model as it was after the last finished epoch (training sends one after each).
    if (this.lastModel && this.lastDataset) await this.call('load', { bytes: this.lastModel });
  }

  /** @private @returns {Promise<any>} */
  call(/** @type {string} */ method, /** @type {any} */ args = {}, /** @type {Transferable[]} */ transfer = []) {
    if (!this.worker) return Promise.reject(new Error('Kiln was disposed'));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker?.postMessage({ id, method, args }, transfer);
    });
  }

  /** Events go to `callbacks` until `work` settles (the worker runs one fit at a time).
   * @private @template T @param {FitCallbacks} callbacks @param {() => Promise<T>} work @returns {Promise<T>} */
  async withCallbacks(callbacks, work) {
    this.callbacks = callbacks;
    try {
      return await work();
    } finally {
      this.callbacks = {};
    }
  }

  /** The bundled sample set (scikit-learn's handwritten digits, BSD-3) as PNG Files. */
  async sampleFiles() {
    /** @type {{name: string, bytes: Uint8Array}[]} */
    const entries = await this.call('sampleFiles');
    return entries.map((e) => {
      const f = new File([/** @type {BlobPart} */ (e.bytes)], e.name.split('/').pop() || e.name, { type: 'image/png' });
      Object.defineProperty(f, 'kilnPath', { value: e.name });
      return f;
    });
  }

  /**
   * Build the dataset from files: labels by folder (webkitRelativePath, or paths from dropped
   * folders) or by `options.labelRegex` on the file name. Bad files are listed, not fatal.
   * @param {InputFile[]} files
   * @param {DatasetOptions} [options]
   * @returns {Promise<Summary>}
   */
  async loadDataset(files, options = {}) {
    const entries = files.map(toEntry);
    const summary = await this.sendDataset(entries, options);
    this.lastDataset = { entries, options };
    return summary;
  }

  /**
   * Post the files in chunks, each its own message: cloning a Blob handle into a message costs
   * ~0.2 ms of the page's main thread, so 10,000 in one message blocked it for seconds.
   * @private
   */
  async sendDataset(/** @type {{name: string, blob: Blob}[]} */ entries, /** @type {DatasetOptions} */ options) {
    for (let i = 0; i < entries.length; i += 100) await this.call('stageFiles', { files: entries.slice(i, i + 100) });
    return this.call('loadDataset', { options });
  }

  /** @returns {Promise<Summary>} */
  summary() {
    return this.call('summary');
  }

  /**
   * Augmented training samples as one labelled grid, ready for a canvas.
   * @param {{n?: number, size?: number, seed?: number, doFlip?: boolean}} [opts]
   * @returns {Promise<ImageData>}
   */
  async showBatch(opts = {}) {
    const { width, height, rgba } = await this.call('showBatch', opts);
    return new ImageData(new Uint8ClampedArray(rgba.buffer, rgba.byteOffset, rgba.byteLength), width, height);
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
    const bytes = new Uint8Array(await blob.arrayBuffer());
    const imported = await this.call('importWeights', { bytes, name }, [bytes.buffer]);
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
   * fastai's fit_one_cycle. Progress arrives through the callbacks; `cancel()` stops it between
   * batches and keeps the model.
   * @param {number} epochs
   * @param {number} lr
   * @param {FitCallbacks} [callbacks]
   * @returns {Promise<FitReport>}
   */
  fitOneCycle(epochs, lr, callbacks = {}) {
    return this.withCallbacks(callbacks, () => this.call('fitOneCycle', { epochs, lr }));
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
    this.onPredictions = (e) => queue.push(e);
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
   * The model as ONNX (opset 17), to run in an app with onnxruntime or any ONNX runtime.
   * Input `image`: RGB float32 in [0, 1], NCHW `[N, 3, size, size]` (a photo centre-cropped to
   * a square and resized); ImageNet normalisation is inside the graph. Output `probabilities`
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
