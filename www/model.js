// 7. Model: export in one of Kiln's formats (.kiln, ONNX, fastai/PyTorch) or as a web page
// (share-page.js), and import a .kiln.
import { $, download, setStatus } from './dom.js';
import { learnerChanges, page, showLearnerFields, update } from './state.js';
import { importWeights, showWeights, syncMethod } from './settings.js';
import { loadFiles } from './dataset.js';
import { modelState, showHistory } from './training.js';
import { sharePageZip } from './share-page.js';
import { fileName } from './download-name.js';

const FORMATS = {
  kiln: { method: 'export', ext: 'kiln' },
  onnx: { method: 'exportOnnx', ext: 'onnx' },
  pytorch: { method: 'exportPyTorch', ext: 'safetensors' },
};

/** Runs in the 'exporting' phase: the file is made in the worker, then downloaded. */
export async function exportModel(format) {
  const { method, ext } = FORMATS[format];
  const file = fileName(ext);
  const blob = await page.kiln[method]();
  download(blob, file);
  // The model is in a file now: leaving the page no longer loses it.
  update({ modelSaved: true });
  $('model-status').textContent = `exported ${file}, ${(blob.size / 1024).toFixed(0)} KiB`;
}

/** The model trained here last: its `page.modelVersion`, the day and how many training images. */
let trained = null;

/** Train (training.js's `train`), then note when and on how many images, for the web page's note. */
export async function trainNoted(train) {
  const before = page.modelVersion;
  try {
    await train();
  } finally {
    if (page.modelVersion !== before && page.modelOrigin === 'trained') {
      const images = await page.kiln.summary().then((s) => s.nTrain, () => null);
      trained = { version: page.modelVersion, day: new Date().toISOString().slice(0, 10), images };
    }
  }
}

/** Runs in the 'exporting' phase: "Download as a web page", a zip of a folder with a page that
 * predicts photos and the live camera with the model (share-page.js). */
export async function exportPage() {
  const file = fileName('zip', '-page');
  $('model-status').textContent = `writing ${file}…`;
  const model = await page.kiln.export();
  const here = trained && trained.version === page.modelVersion;
  const about = here
    ? { trained: trained.day, trainImages: trained.images, from: null }
    : { trained: null, trainImages: null, from: page.modelOrigin === 'imported' ? page.modelName : null };
  let zip;
  try {
    zip = await sharePageZip({ model, about, folder: file.replace(/\.zip$/, '') });
  } catch (e) {
    $('model-status').textContent = '';
    throw new Error(`${file} could not be written: ${e.message}`);
  }
  download(zip, file);
  // The zip holds the model's .kiln file: leaving the page no longer loses it.
  update({ modelSaved: true });
  $('model-status').textContent = `saved ${file}, ${(zip.size / 2 ** 20).toFixed(1)} MiB: unzip it and serve the folder (python3 -m http.server, or any static host)`;
}

/** Runs in the 'importing' phase: a trained model to predict with or train on. The Settings
 * become the model's, and a loaded dataset is presized as its photos were. */
export async function importModel(file) {
  let loaded;
  try {
    loaded = await page.kiln.load(file);
  } catch (e) {
    throw new Error(`${file.name} could not be imported as a model: ${e.message}`);
  }
  const { classes, options } = loaded;
  if (options) showModelSettings(options);
  // The model's own epochs (every fit it had, saved in the file) start the table: Train more
  // and a continuing Train go on from them.
  const { epochs, frozen, history } = await modelState();
  showHistory(history);
  update({ modelClasses: classes, modelOrigin: 'imported', modelName: file.name, modelOptions: options, modelSaved: true, preset: null, modelVersion: page.modelVersion + 1, modelState: { epochs, frozen } });
  $('model-status').textContent = `loaded ${file.name}: ${classes.length} classes (${classes.slice(0, 5).join(', ')}${classes.length > 5 ? ', …' : ''})`;
  if (options && page.files.length && page.datasetOptions && page.datasetOptions.presize !== options.presize) {
    await loadFiles(page.files, { restore: false });
  }
}

/** The Settings the imported model was trained with. */
function showModelSettings(o) {
  if (o.arch) $('arch').value = o.arch;
  if (o.size) $('size').value = String(o.size);
  if (o.batchSize) $('bs').value = String(o.batchSize);
  if (typeof o.doFlip === 'boolean') $('flip').checked = o.doFlip;
  if (o.presize) $('presize').value = String(o.presize);
  if (!$('fp16').disabled) $('fp16').checked = !!o.fp16;
  // vision_learner's options as the model was built and trained (fastai's defaults for those
  // a model from before them does not say); "Allow none of these" follows it in state.js.
  showLearnerFields(o);
  syncMethod();
  showWeights();
  const learner = learnerChanges(!!o.multiLabel);
  $('settings-note').textContent = `The Settings are the imported model's: ${$('arch').selectedOptions[0].text}, ${o.size} px, batch ${o.batchSize}, flips ${o.doFlip ? 'on' : 'off'}, Presize ${o.presize}; vision_learner options ${learner.length ? learner.join(', ') : 'at fastai\'s defaults'}.`;
  $('settings-note').hidden = false;
  setStatus('');
}

/** A dropped .kiln: a trained model to use, or a pretrained backbone to train from. */
export async function importKiln(file) {
  try {
    await importModel(file);
  } catch (e) {
    if (/pretrained backbone/.test(e.message)) await importWeights(file);
    else throw e;
  }
}
