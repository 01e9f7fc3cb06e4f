// Kiln's JavaScript API. Everything runs in a dedicated Web Worker (worker.js), so the page
// stays responsive; every method is async and rejects with an Error whose message says what
// went wrong. Types: kiln.d.ts (generated from these JSDoc comments and kiln-types.js by `tsc`).
// The plumbing (calls, events, restarts) is in worker-link.js, which Kiln extends.

import { pathOf } from './files.js';
import { Queue } from './queue.js';
import { WorkerLink } from './worker-link.js';

export { pathOf, filesFromDrop } from './files.js';

export * from './kiln-types.js';
/** @import { AddResult, BackendInfo, Change, CleanerResult, DatasetFile, DatasetOptions, FineTuneOptions, FitCallbacks, FitReport, ImportedWeights, InputFile, InterpretResult, LearnerOptions, LrFindOptions, LrFindResult, ModelOptions, PhotoResult, PredictManyOptions, Prediction, Preds, Summary } from './kiln-types.js' */

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

export class Kiln extends WorkerLink {
  /** @private */
  constructor(/** @type {URL | string} */ workerUrl, /** @type {string} */ backend) {
    super();
    this.workerUrl = workerUrl;
    this.backendPref = backend;
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
   * The same files again (other options) keep what was done to the dataset since, made again
   * in order: the files added (split among themselves anew), the changes, the classes renamed
   * and removed. Where one of these no longer applies, the dataset keeps only the added files
   * and `summary.changesDropped` says why.
   * @param {InputFile[]} files
   * @param {DatasetOptions} [options]
   * @returns {Promise<Summary>}
   */
  async loadDataset(files, options = {}) {
    const entries = files.map(toEntry);
    const last = this.lastDataset?.entries;
    const same = !!last && last.length === entries.length && last.every((e, i) => e.blob === entries[i].blob && e.name === entries[i].name);
    const edits = same ? this.lastEdits : [];
    const summary = await this.sendDataset(entries, options, edits);
    this.lastDataset = { entries, options };
    this.lastEdits = summary.changesDropped ? edits.filter((e) => 'add' in e) : edits;
    return summary;
  }

  /**
   * Add files to the loaded dataset (a class more, or more photos of one): labelled by its
   * rule and checked as at load time, then split among themselves with its validation fraction
   * and seed. The files already in it keep their label and split and are not read again. A
   * file whose name the dataset holds already is skipped (reason kind `duplicate`), as are bad
   * files; `added` counts what went to each split and names the new classes.
   * @param {InputFile[]} files
   * @returns {Promise<AddResult>}
   */
  async addFiles(files) {
    const entries = files.map(toEntry);
    await this.stage(entries);
    const result = await this.call('addFiles');
    this.lastEdits = [...this.lastEdits, { add: entries }];
    return result;
  }

  /**
   * Rename a class of the loaded dataset. Rejects with an Error naming the class (and changes
   * nothing) if `from` is unknown or `to` is taken, empty or holds a '/'.
   * @param {string} from
   * @param {string} to
   * @returns {Promise<Summary>}
   */
  async renameClass(from, to) {
    const summary = await this.call('renameClass', { from, to });
    this.lastEdits = [...this.lastEdits, { rename: /** @type {[string, string]} */ ([from, to]) }];
    return summary;
  }

  /**
   * Take a class and its photos out of the loaded dataset (they are listed in
   * `summary.skipped`, reason kind `removed`; the files stay). Rejects if fewer than two
   * classes, or an empty split, would be left.
   * @param {string} name
   * @returns {Promise<Summary>}
   */
  async removeClass(name) {
    const summary = await this.call('removeClass', { name });
    this.lastEdits = [...this.lastEdits, { removeClass: name }];
    return summary;
  }

  /**
   * Every photo of the loaded dataset with its class and split, training photos first; `file`
   * is the name the dataset gave it (`pathOf` of the file loaded).
   * @returns {Promise<DatasetFile[]>}
   */
  datasetFiles() {
    return this.call('files');
  }

  /** @returns {Promise<Summary>} */
  summary() {
    return this.call('summary');
  }

  /**
   * fastai's ImageClassifierCleaner: every image of the training (`'train'`, the default) or
   * validation (`'valid'`) set with the model's loss on it, highest loss first; filter `rows`
   * by `label` for one class's, still in that order. `file` is the name the dataset gave it
   * (`pathOf` of the file loaded). Needs a model whose classes are the dataset's.
   * @param {{split?: 'train'|'valid'}} [opts]
   * @returns {Promise<CleanerResult>}
   */
  cleaner({ split = 'train' } = {}) {
    return this.call('cleaner', { split });
  }

  /**
   * Relabel files (`newLabel` one of the dataset's classes) or take them out of the dataset
   * (`newLabel: null`): the dataset changes, the files do not. All or none: a bad change
   * rejects with an Error naming its file and nothing changes. Relabelled files keep their
   * split, every other file stays where it was; changes add up over calls (`summary.changes`
   * counts them) and are applied again when the same files are loaded with other options.
   * The next learner (and fit) trains on the changed dataset.
   * @param {Change[]} changes
   * @returns {Promise<Summary>}
   */
  async applyChanges(changes) {
    const summary = await this.call('applyChanges', { changes });
    this.lastEdits = [...this.lastEdits, { changes: changes.map((c) => ({ file: c.file, oldLabel: c.oldLabel, newLabel: c.newLabel ?? null })) }];
    return summary;
  }

  /** Every change applied to the loaded dataset so far, in order. @returns {Promise<Change[]>} */
  changes() {
    return this.call('changes');
  }

  /**
   * The changes as CSV (`file,old_label,action,new_label`, action `relabel` or `delete`), which
   * the CLI applies to the same folder: `kiln summary DIR --changes FILE`, `kiln fine-tune … --changes FILE`.
   * @returns {Promise<string>}
   */
  changesCsv() {
    return this.call('changesCsv');
  }

  /**
   * Augmented training samples as one labelled grid, ready for a canvas; `labels` gives each
   * image's class as text, in the grid's order (left to right, top to bottom).
   * @param {{n?: number, size?: number, seed?: number, doFlip?: boolean}} [opts]
   * @returns {Promise<ImageData & {labels: string[]}>}
   */
  async showBatch(opts = {}) {
    const { width, height, rgba, labels } = await this.call('showBatch', opts);
    return Object.assign(new ImageData(new Uint8ClampedArray(rgba.buffer, rgba.byteOffset, rgba.byteLength), width, height), { labels });
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
