// Kiln's JavaScript API, the dataset's half: load photos, edit and clean them, show a batch.
// Kiln (kiln.js) extends this with the learner's methods; the plumbing is in worker-link.js.

import { pathOf } from './files.js';
import { WorkerLink } from './worker-link.js';

/** @import { AddResult, Change, CleanerResult, DatasetFile, DatasetOptions, InputFile, Summary } from './kiln-types.js' */

// Files go to the worker as Blobs (handles, cheap to post) and are read there: reading and
// posting 10,000 files' bytes from here blocked the page for seconds.
export function toEntry(/** @type {InputFile} */ f) {
  return f instanceof Blob ? { name: pathOf(f), blob: f } : { name: f.name, blob: f.blob };
}

export class DatasetLink extends WorkerLink {
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
   * Put the dataset back as it was (`before`: `lastDataset` and `lastEdits` then) after a
   * change of several steps failed midway (openProject): built again from the same files and
   * edits, or none when there was none.
   * @protected
   * @param {{dataset: {entries: {name: string, blob: Blob}[], options: DatasetOptions} | null, edits: import('./kiln-types.js').Edit[]}} before
   */
  async putBack({ dataset, edits }) {
    // A worker that died on the way is restarted first (with the half-built dataset).
    await this.restarting;
    if (dataset) await this.sendDataset(dataset.entries, dataset.options, edits);
    else await this.call('dropDataset');
    this.lastDataset = dataset;
    this.lastEdits = edits;
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
}
