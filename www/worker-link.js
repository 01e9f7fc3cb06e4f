// Kiln's end of the worker (worker.js): calls and their answers, the events a fit or
// predictMany sends, and restarting the worker after a crash or a lost GPU with the dataset,
// weights and model it had. Kiln (kiln.js) extends it with the API's methods.

/** @import { BackendInfo, DatasetOptions, Edit, FitCallbacks, ImportedWeights, Summary } from './kiln-types.js' */

function deviceLostMessage(/** @type {string} */ why) {
  return `the GPU stopped working (${why}). Kiln moved to the CPU backend, with your dataset and the model as it was after the last finished epoch: train again to continue.`;
}

export class WorkerLink {
  constructor() {
    // Internal: how to reach and restart the worker (Kiln's constructor sets both), and what a
    // restarted one gets back.
    /** @protected @type {URL | string} */ this.workerUrl = '';
    /** @protected @type {string} */ this.backendPref = 'auto';
    /** @protected @type {Worker | null} */ this.worker = null;
    /** @private */ this.nextId = 1;
    /** @private @type {Map<number, {resolve: (v: any) => void, reject: (e: Error) => void}>} */ this.pending = new Map();
    /** @private @type {FitCallbacks} */ this.callbacks = {};
    /** @protected @type {((e: any) => void) | null} where predictMany's batches go */ this.onPredictions = null;
    /** @protected @type {{entries: {name: string, blob: Blob}[], options: DatasetOptions} | null} */ this.lastDataset = null;
    /** @protected @type {Edit[]} what was done to it since, in order (changes, files added, classes renamed or removed) */ this.lastEdits = [];
    /** @protected @type {Uint8Array | null} the model after the last finished epoch, as .kiln bytes */ this.lastModel = null;
    /** @protected @type {{blob: Blob, name: string} | null} */ this.lastWeights = null;
    /** @protected @type {number | undefined} */ this.threads = undefined;
    /** @protected @type {'auto' | 'plain'} */ this.simd = 'auto';
    /** @protected whether the worker fetches the bundled weights as it starts */ this.prefetchWeights = true;
    /** @type {Promise<void> | null} set while the worker restarts (after a crash or a lost GPU) */
    this.restarting = null;
    /** @type {((info: BackendInfo, message: string) => void) | null} called after the worker moved to another backend */
    this.onRestart = null;
    /** @type {BackendInfo | null} where Kiln runs (set once `create` resolves) */
    this.info = null;
  }

  /** @protected */
  async start() {
    this.worker = new Worker(this.workerUrl, { type: 'module' });
    this.worker.onmessage = ({ data }) => this.receive(data);
    this.worker.onerror = (e) => this.crash(new Error(`the Kiln worker failed: ${e.message || 'could not load (is the page served over http?)'}`));
    this.info = await this.call('init', { backend: this.backendPref, threads: this.threads, simd: this.simd, prefetch: this.prefetchWeights });
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

  /** @protected */
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
    if (this.lastDataset) await this.sendDataset(this.lastDataset.entries, this.lastDataset.options, this.lastEdits);
    if (this.lastWeights) await this.sendWeights(this.lastWeights.blob, this.lastWeights.name);
    // The model as it was after the last finished epoch (training sends one after each).
    if (this.lastModel && this.lastDataset) await this.call('load', { bytes: this.lastModel });
  }

  /** @protected @returns {Promise<any>} */
  call(/** @type {string} */ method, /** @type {any} */ args = {}, /** @type {Transferable[]} */ transfer = []) {
    if (!this.worker) return Promise.reject(new Error('Kiln was disposed'));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker?.postMessage({ id, method, args }, transfer);
    });
  }

  /** Events go to `callbacks` until `work` settles (the worker runs one fit at a time).
   * @protected @template T @param {FitCallbacks} callbacks @param {() => Promise<T>} work @returns {Promise<T>} */
  async withCallbacks(callbacks, work) {
    this.callbacks = callbacks;
    try {
      return await work();
    } finally {
      this.callbacks = {};
    }
  }

  /**
   * Post the files in chunks, each its own message: cloning a Blob handle into a message costs
   * ~0.2 ms of the page's main thread, so 10,000 in one message blocked it for seconds.
   * `edits` (changes, files added, classes renamed or removed, in order) are made again; where
   * one no longer applies, the dataset keeps only the files added and `changesDropped` says why.
   * @protected @returns {Promise<Summary>}
   */
  async sendDataset(/** @type {{name: string, blob: Blob}[]} */ entries, /** @type {DatasetOptions} */ options, /** @type {Edit[]} */ edits = []) {
    // The added files are staged after the loaded ones, in order; the edit says how many.
    const added = edits.flatMap((e) => ('add' in e ? e.add : []));
    await this.stage([...entries, ...added]);
    return this.call('loadDataset', { options, edits: edits.map((e) => ('add' in e ? { add: e.add.length } : e)) });
  }

  /** Files to the worker in chunks of 100 (see sendDataset), for loadDataset or addFiles.
   * @protected */
  async stage(/** @type {{name: string, blob: Blob}[]} */ entries) {
    for (let i = 0; i < entries.length; i += 100) await this.call('stageFiles', { files: entries.slice(i, i + 100) });
  }

  /** @protected @returns {Promise<ImportedWeights>} */
  async sendWeights(/** @type {Blob} */ blob, /** @type {string} */ name) {
    const bytes = new Uint8Array(await blob.arrayBuffer());
    return this.call('importWeights', { bytes, name }, [bytes.buffer]);
  }
}
