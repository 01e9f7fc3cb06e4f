// The page's state in one place: `phase` is what Kiln is doing, the rest is what the page holds.
// Controls are enabled and disabled here only: render() derives every one of them from the
// phase and the data after each change, so no code path can leave a control that starts work
// enabled while work runs (a second Train click used to start a second run).
import { $ } from './dom.js';

/** Phases in which Kiln works; Cancel stops these: training and lr_find between batches,
 * predicting many photos between chunks, saving the sorted zip at once. */
const CANCELLABLE = ['training', 'finding-lr', 'predicting', 'saving'];
const WORK = [...CANCELLABLE, 'reading', 'recording', 'live', 'loading', 'adding', 'editing', 'importing', 'augmenting', 'interpreting', 'cleaning', 'exporting', 'saving-project', 'opening', 'switching'];
/** How the phases that are not cancelled end (the busy message says it). */
const ENDS = { live: 'turn Live off', recording: 'let go of Hold to record' };

/** The transitions allowed: idle starts any work, work returns to idle (or goes on to a
 * related step), nothing else. A transition outside this table is a bug in the page. */
const NEXT = {
  starting: ['idle', 'failed'],
  failed: [],
  idle: WORK,
  // A drop is read first; what it holds decides what happens next.
  reading: ['loading', 'adding', 'importing', 'predicting', 'opening', 'idle'],
  // Camera frames recorded while Hold to record is held then join the dataset as a drop's
  // photos do (or wait in the page for a second class: a classifier needs two).
  recording: ['adding', 'loading', 'idle'],
  // Training ends by interpreting the validation set.
  training: ['interpreting', 'idle'],
};
for (const p of WORK) NEXT[p] ??= ['idle'];

/** What each phase is called in the busy message. */
const DOING = {
  starting: 'still starting', failed: 'not running (it failed to start)', reading: 'reading the dropped files',
  loading: 'loading a dataset', adding: 'adding photos to the dataset', editing: 'changing the dataset', importing: 'importing a file', augmenting: 'augmenting a batch',
  'finding-lr': 'finding a learning rate', training: 'training', interpreting: 'interpreting the validation set',
  predicting: 'predicting', exporting: 'exporting the model', saving: 'writing the sorted photos',
  cleaning: 'cleaning the data (the losses per image, or your changes)',
  recording: 'recording photos from the camera', live: 'classifying the camera live',
  'saving-project': 'saving the project', opening: 'opening a project',
  switching: 'moving to the backend measured faster for this model',
};

export const page = {
  /** @type {string} one of NEXT's keys */
  phase: 'starting',
  /** @type {import('./kiln.js').Kiln | null} */
  kiln: null,
  /** The loaded dataset's files (those added since too) and class names (empty: none
   * loaded). A new array after each change of the dataset: Clean's view is of the old one. @type {File[]} */
  files: [],
  /** Of those, the files added to it since it was loaded (a re-label keeps them). @type {File[]} */
  added: [],
  /** @type {string[]} */
  datasetClasses: [],
  /** The options that built the loaded dataset (a failed change rolls its field back to them). @type {{validPct: number, presize: number, seed: number, labelRegex?: string, multiLabel?: boolean, labelsCsv?: string | null} | null} */
  datasetOptions: null,
  /** The files of the last load, loaded or not: the labelling options re-label these (a
   * labels CSV among them too). @type {File[]} */
  lastFiles: [],
  /** The labels CSV of the last load (fastai's from_csv: file names and their labels,
   * several a photo): its name and text, and the files of the load it came with (`of`); or null (labels from folders or names). @type {{name: string, text: string, of: File[]} | null} */
  labelsCsv: null,
  /** While a labels CSV gives the photos sets of labels, "Allow none of these" is on and fixed
   * (a softmax cannot learn sets): the user's own choice before, given back after; else null. @type {boolean | null} */
  csvLock: null,
  /** Why the loaded dataset cannot train (a class without training images); null when it can. @type {string | null} */
  dataProblem: null,
  /** The sample's preset while it is in the Settings (new photos bring the photo defaults back). @type {Record<string, string | boolean> | null} */
  preset: null,
  /** The model's class names: null until one is trained or imported. @type {string[] | null} */
  modelClasses: null,
  /** Where the model came from: 'trained' here, or 'imported' from a file. @type {'trained' | 'imported' | null} */
  modelOrigin: null,
  /** The imported model's file name and settings ({arch, size, batchSize, doFlip, presize, …}). */
  modelName: '',
  /** @type {Record<string, any> | null} */
  modelOptions: null,
  /** A model trained here: whether it has one sigmoid per class, and its threshold (the
   * Settings' checkbox when it was made); an imported model's are in modelOptions. @type {{multiLabel: boolean, thresh: number} | null} */
  trainedOptions: null,
  /** Whether the model is in a file (exported, or imported from one): leaving the page asks otherwise. */
  modelSaved: true,
  /** Pretrained weights the user brought: {arch, name}. */
  weights: null,
  /** The pretrained box's state before the tiny model (which has none) unticked it. @type {boolean | null} */
  pretrainedBeforeTiny: null,
  /** Counts the models trained (or trained further) and imported here: Clean's view is of one. */
  modelVersion: 0,
  /** Clean's view (cleaner.js): made for these `files` and this `modelVersion`, else out of
   * date; its rows per split and the choices not yet applied. @type {{files: File[], modelVersion: number, modelClasses: string[], pending: Map<string, {file: string, oldLabel: string, newLabel: string | null}>, pageNo: number, pages: number, [k: string]: any} | null} */
  cleaner: null,
  /** How many of the cleaner's changes the loaded dataset has (Download changes needs some). */
  changeCount: 0,
  /** Photos sorted by the model (Predict's table): Download sorted needs some. */
  sorted: 0,
  /** The Photos camera preview (camera.js) shows a picture: Hold to record can use it. */
  cameraReady: false,
  /** Cancel was pressed; the run stops after its current batch. */
  cancelling: false,
  /** The model's state from kiln.history(): epochs trained so far (every fit, across saves)
   * and whether its body is frozen; null with no model. @type {{epochs: number, frozen: boolean} | null} */
  modelState: null,
  /** Kiln's settings for the loaded photos' size (kiln.proposeSettings; null for the sample or
   * no dataset): `offer` is null where fastai's defaults suit the data; `declined` when the user
   * chose fastai's defaults over it (kept while the dataset only changes size). See followData.
   * @type {{nTrain: number, offer: import('./kiln.js').SmallDataProposal | null, declined: boolean} | null} */
  sizing: null,
};

export const isIdle = () => page.phase === 'idle';

/** Move to `phase` (see NEXT) and redraw the controls. */
export function setPhase(phase) {
  if (!(NEXT[page.phase] || []).includes(phase)) throw new Error(`internal error: the page cannot go from ${page.phase} to ${phase}`);
  const was = page.phase;
  page.phase = phase;
  if (phase === 'idle') page.cancelling = false;
  // Before the work's first call to Kiln.
  if (was === 'idle') for (const fn of busyListeners) fn();
  render();
  if (phase === 'idle') for (const fn of idleListeners) fn();
}

/** Called each time the page is idle again (project.js keeps the project after a change). */
const idleListeners = [];
export const onIdle = (fn) => { idleListeners.push(fn); };
/** Called each time work starts (app.js stops measuring the backends, which it would skew). */
const busyListeners = [];
export const onBusy = (fn) => { busyListeners.push(fn); };

/** The one way to start work: refused unless idle; back to idle when `work` settles. */
export async function run(phase, work) {
  if (!isIdle()) throw new Error(`Kiln is ${DOING[page.phase] || page.phase}: ${ENDS[page.phase] || `wait for it${CANCELLABLE.includes(page.phase) ? ' or press Cancel' : ''}`}, then try again.`);
  setPhase(phase);
  try {
    return await work();
  } finally {
    setPhase('idle');
  }
}

/** Change what the page holds (dataset, model, weights) and redraw the controls. */
export function update(changes) {
  Object.assign(page, changes);
  render();
}

/** The model's threshold when it has one sigmoid per class (fastai's multi-label: a photo may
 * be of none of its classes), else null (softmax, or no model). */
export function modelThresh() {
  if (page.modelClasses === null) return null;
  const o = page.modelOrigin === 'imported' || page.modelOptions ? page.modelOptions : page.trainedOptions;
  return o?.multiLabel ? Number(o.thresh ?? 0.5) : null;
}

/** Predict's threshold slider (shown for a one-sigmoid-per-class model), else null. */
export function classThresh() {
  return modelThresh() === null ? null : Number($('predict-thresh').value);
}

/** The classes a prediction shows: those above `t` in the model's order, as the core's
 * `labels` (none is "none of these"), or with a softmax model (`t` null) its one class. */
export function shownClasses(p, classes, t) {
  if (t === null) return [classes[p.index]];
  return classes.filter((_, i) => p.probs[i] > t);
}
export const NONE_OF_THESE = 'none of these';

/** Which model the slider was last set for: a new one sets it to the model's own threshold
 * (and an imported one's kind to the Settings' checkbox). */
let followed = -1;
function followModel() {
  if (page.modelVersion === followed || page.modelClasses === null) return;
  followed = page.modelVersion;
  const t = modelThresh();
  if (t !== null) {
    $('predict-thresh').value = String(t);
    $('predict-thresh-value').textContent = Number($('predict-thresh').value).toFixed(2);
  }
  // (While a labels CSV holds the box on, the model's kind is what it goes back to after.)
  if (page.modelOrigin === 'imported' && page.modelOptions) {
    if (page.csvLock !== null) page.csvLock = !!page.modelOptions.multiLabel;
    else $('multi-label').checked = !!page.modelOptions.multiLabel;
  }
}

const sorted = (names) => JSON.stringify([...names].sort());
const sameClasses = (a, b) => !!a && !!b && sorted(a) === sorted(b);

/** Every control's enabled state, from the phase and the data. */
export function render() {
  const idle = isIdle();
  const data = page.files.length > 0;
  const model = page.modelClasses !== null;
  const enable = (ids, on) => { for (const id of ids) $(id).disabled = !on; };
  // Work on the dataset.
  enable(['show-batch'], idle && data);
  // A class without training images cannot be learned: the core refuses, the page says why first.
  enable(['train', 'lr-find'], idle && data && !page.dataProblem);
  $('train-why').textContent = data && page.dataProblem ? page.dataProblem : '';
  $('train-why').hidden = !(data && page.dataProblem);
  // Interpretation runs the model on the dataset: their classes must agree.
  enable(['interpret'], idle && data && model && sameClasses(page.modelClasses, page.datasetClasses));
  enable(['export', 'export-onnx', 'export-pytorch', 'export-page'], idle && model);
  // A project is a dataset (and its model); Open, or Continue the one the browser kept.
  enable(['save-project'], idle && data);
  enable(['open-project', 'resume-continue', 'resume-dismiss'], idle);
  // Clean: the model's losses on the dataset (classes must agree, as for Interpret); its view
  // only while it is of this dataset and model. Each image's choice, unless already applied.
  enable(['clean'], idle && data && model && sameClasses(page.modelClasses, page.datasetClasses));
  const c = page.cleaner;
  const view = cleanerCurrent();
  $('cleaner').hidden = !view;
  $('clean-stale').hidden = !c || view;
  enable(['clean-class', 'clean-split'], idle && view);
  enable(['clean-prev'], idle && view && c.pageNo > 0);
  enable(['clean-next'], idle && view && c.pageNo < c.pages - 1);
  enable(['clean-apply'], idle && view && c.pending.size > 0);
  for (const s of document.querySelectorAll('#clean-grid select')) s.disabled = !(idle && view) || s.dataset.applied === 'true';
  enable(['clean-download'], idle && data && page.changeCount > 0);
  enable(['sort-download'], idle && page.sorted > 0);
  // The class cards' controls (samples.js): paging, moving and removing photos, renaming and
  // deleting classes; `data-off` marks a page button at its end. Add or start anew on a drop.
  for (const x of document.querySelectorAll('#gallery button, #gallery select, #gallery input')) x.disabled = !idle || x.dataset.off === 'true';
  $('drop-mode').hidden = !data;
  enable(['mode-add', 'mode-new'], idle);
  // Inputs that start work when used (the dataset options reload the dataset on change; the
  // architecture picks which weights the next model gets).
  enable(['sample', 'pick-folder', 'pick-files', 'import', 'predict-file', 'predict-folder', 'predict-camera', 'weights-file', 'arch', 'label-regex', 'valid-pct', 'seed', 'presize'], idle);
  $('pretrained').disabled = !idle || $('arch').value === 'tiny';
  // The next model's loss (softmax, or one sigmoid per class): off during work, as Architecture,
  // and fixed on while a labels CSV gives the photos sets of labels (the note says why).
  enable(['multi-label'], idle && page.csvLock === null);
  $('multi-label-why').hidden = page.csvLock === null;
  // Half precision only where the GPU has it (kiln.info says why not).
  $('fp16').disabled = !!page.kiln?.info?.fp16Unavailable || page.kiln === null;
  for (const b of document.querySelectorAll('#suggestions button, #more-suggestions button')) b.disabled = !idle;
  // Train more: the model trained further as it is (trained here or imported), on a dataset of
  // its classes; its fields start nothing but stay off during work, as every such control.
  const more = data && model && sameClasses(page.modelClasses, page.datasetClasses) && !page.dataProblem;
  enable(['more-train', 'more-lr-find'], idle && more);
  enable(['more-unfreeze', 'more-epochs', 'more-from', 'more-to'], idle);
  $('more-state').textContent = moreState(model, data, more);
  renderProposal(idle);
  $('cancel').disabled = !CANCELLABLE.includes(page.phase) || page.cancelling;
  // Predict's own Cancel, for its runs; its table's view (sort, filter, threshold) starts no
  // work but stays off during other work, as every control outside the passive settings.
  $('sort-cancel').disabled = !['predicting', 'saving'].includes(page.phase) || page.cancelling;
  enable(['sort-filter', 'sort-threshold', 'sort-by-file', 'sort-by-class', 'sort-by-p', 'sort-by-second'], idle || page.phase === 'predicting');
  // The class threshold of a one-sigmoid-per-class model re-derives what is shown (the single
  // prediction, Live's, the table's) from the probabilities kept: no work, so Live too.
  followModel();
  $('thresh-box').hidden = modelThresh() === null;
  enable(['predict-thresh'], modelThresh() !== null && (idle || ['predicting', 'live'].includes(page.phase)));
  // vision_learner's options: the next model's, off during work as Architecture is; the loss
  // follows "Allow none of these" (after followModel set it), and is fixed with it while a labels
  // CSV holds it on. The note says which differ from fastai's defaults, whatever set them.
  syncLoss();
  enable(LEARNER_FIELDS.filter((id) => id !== 'loss-func').concat('learner-defaults'), idle);
  enable(['loss-func'], idle && page.csvLock === null);
  $('lin-ftrs').placeholder = String(defaultHidden($('arch').value));
  const learner = learnerChanges();
  const learnerText = learner.length ? `vision_learner options changed from fastai's defaults: ${learner.join(', ')}.` : '';
  if ($('learner-note-text').textContent !== learnerText) $('learner-note-text').textContent = learnerText;
  $('learner-note').hidden = !learner.length;
  // The Photos camera (camera.js): Hold to record stays usable while it records (letting go
  // ends the recording there). The open preview's own controls start no work: it can be
  // closed while Kiln trains, say, but not mid-recording. Live (live.js) is work of its own:
  // it starts while idle with a model, and its toggle (and its camera picker) stops or steers
  // it; nothing else can start while it runs.
  const recording = page.phase === 'recording';
  enable(['camera-record'], page.cameraReady && (idle || recording));
  enable(['camera-new'], idle);
  enable(['camera-class', 'camera-device', 'camera-close'], idle || (page.cameraReady && !recording));
  const live = page.phase === 'live';
  enable(['live'], (idle && model) || live);
  enable(['live-camera'], live);
  $('live').setAttribute('aria-pressed', String(live));
  $('live-hint').textContent = live ? 'Live is on: press Live camera again to stop it and release the camera.' : 'Classifies the camera\'s picture continuously, once a model is trained or imported.';
  // For CSS (drop zones and picker labels look disabled) and for tests.
  document.body.dataset.phase = page.phase;
  const plan = trainPlan();
  $('train-plan').textContent = plan.text;
  $('train-plan').hidden = !plan.text;
  const presize = page.datasetOptions?.presize;
  const size = Number($('size').value);
  $('size-hint').hidden = !(data && presize && size > presize);
  $('size-hint').textContent = `Presize is ${presize} px (Labelling and split options), smaller than the image size of ${size} px: the photos are enlarged before training. Set Presize to ${size} px or more.`;
}

/** What Train more would train, or why it cannot. */
function moreState(model, data, more) {
  if (!model) return 'Train more goes on training a model: Train one first, or import a .kiln (Model).';
  if (!data) return 'Load photos of the model\'s classes to train it more.';
  if (!sameClasses(page.modelClasses, page.datasetClasses)) return `The model's classes (${page.modelClasses.join(', ')}) differ from this dataset's: Train more needs photos of its classes.`;
  const st = page.modelState;
  if (!st) return '';
  const how = st.frozen ? 'The model is frozen: only the head trains' : 'The model is unfrozen: every layer trains';
  return `${how}. It has trained ${st.epochs} epoch${st.epochs === 1 ? '' : 's'} so far.${more ? '' : ' (Train more is off: see above.)'}`;
}

/** fastai's defaults for the Settings a small-data proposal changes (index.html ships them). */
export const FASTAI = { bs: 64, method: 'fine_tune', epochs: 1, 'freeze-epochs': 1 };
const offerFields = (o) => ({ bs: o.batchSize, method: 'fine_tune', epochs: o.epochs, 'freeze-epochs': o.freezeEpochs });
const settingsAre = (f) => Object.entries(f).every(([id, v]) => (typeof v === 'number' ? Number($(id).value) === v : $(id).value === v));
/** Set those Settings; a change of Method goes through its own handler (settings.js). */
function setSettings(f) {
  const method = $('method').value;
  for (const [id, v] of Object.entries(f)) $(id).value = String(v);
  if ($('method').value !== method) $('method').dispatchEvent(new Event('change'));
}

/**
 * The one transition of "settings follow the data": the loaded photos have `nTrain` training
 * images (a new dataset when `fresh`, else the same one grown or shrunk) and Kiln offers `offer`
 * (null: fastai's defaults suit them). Settings Kiln chose (fastai's defaults, unless the user
 * chose them over an offer for this dataset, or the last offer) follow; the user's own, and an
 * imported model's that Train continues, stay, and the notice offers the proposal instead.
 * @returns {boolean} whether the Settings changed
 */
export function followData(nTrain, offer, { fresh }) {
  const was = page.sizing;
  const declined = !fresh && !!was?.declined;
  const kilnSet = (settingsAre(FASTAI) && !declined) || (!!was?.offer && settingsAre(offerFields(was.offer)));
  const keepModel = page.modelOrigin === 'imported' && sameClasses(page.modelClasses, page.datasetClasses);
  const to = offer ? offerFields(offer) : FASTAI;
  const change = kilnSet && !keepModel && !settingsAre(to);
  if (change) setSettings(to);
  update({ sizing: { nTrain, offer, declined } });
  return change;
}

/** The notice's button: Kiln's proposal, or fastai's defaults (kept while the dataset grows). */
export function useSizing(which) {
  const s = page.sizing;
  if (!s?.offer) return;
  setSettings(which === 'fastai' ? FASTAI : offerFields(s.offer));
  update({ sizing: { ...s, declined: which === 'fastai' } });
}

/** The proposal's notice in the Settings, from the offer and the Settings as they are now. */
function renderProposal(idle) {
  const offer = page.sizing?.offer;
  $('proposal').hidden = !offer;
  $('proposal-use').disabled = !idle || !offer;
  if (!offer) return;
  const applied = settingsAre(offerFields(offer));
  const fastai = !applied && settingsAre(FASTAI);
  const ep = (n) => `${n} epoch${n === 1 ? '' : 's'}`;
  const mine = `batch ${offer.batchSize} and fine_tune(${offer.epochs}) (${ep(offer.freezeEpochs)} frozen, then ${ep(offer.epochs)} unfrozen)`;
  $('proposal-text').textContent = applied ? `For this small dataset Kiln set ${mine}. ${offer.why}`
    : fastai ? `The Settings are fastai's defaults (batch 64, fine_tune(1)). ${offer.why}`
      : `Kiln proposes ${mine} for this small dataset. ${offer.why}`;
  $('proposal-use').textContent = applied ? 'Use fastai\'s defaults (batch 64, fine_tune(1))' : fastai ? 'Use Kiln\'s proposal' : 'Use these';
  $('proposal-use').dataset.use = applied ? 'fastai' : 'offer';
}

/** Whether Clean's view is of the loaded dataset and the current model. */
export const cleanerCurrent = () => !!page.cleaner && page.modelClasses !== null && page.cleaner.files === page.files && page.cleaner.modelVersion === page.modelVersion;

// ---- vision_learner's options (Settings, "vision_learner options") ----

/** Their fields: the loss, the head (lin_ftrs, ps, concat_pool, first_bn, bn_final) and the
 * optimiser (wd, wd_bn_bias, train_bn, moms). index.html ships fastai's defaults. */
export const LEARNER_FIELDS = ['loss-func', 'lin-ftrs', 'ps', 'concat-pool', 'first-bn', 'bn-final', 'lin-first', 'wd', 'wd-bn-bias', 'train-bn', 'mom-1', 'mom-2', 'mom-3'];
export const BCE = 'BCEWithLogitsLossFlat';
const SMOOTH = 'LabelSmoothingCrossEntropy';
const MOMS = ['mom-1', 'mom-2', 'mom-3'];
/** fastai's vision_learner defaults (lin_ftrs: see defaultHidden). */
export const FASTAI_LEARNER = { lossFunc: 'CrossEntropyLossFlat', ps: 0.5, concatPool: true, firstBn: true, bnFinal: false, linFirst: false, wd: 0.01, wdBnBias: false, trainBn: true, moms: [0.95, 0.85, 0.95] };
/** The head's hidden width while lin_ftrs is empty: fastai's 512, Kiln's 64 for the tiny ResNet. */
export const defaultHidden = (arch) => (arch === 'tiny' ? 64 : 512);
/** The flags by option key: the page's label and fastai's name. */
const FLAGS = [['concatPool', 'Concat pool', 'concat_pool'], ['firstBn', 'First BatchNorm', 'first_bn'], ['bnFinal', 'Final BatchNorm', 'bn_final'], ['linFirst', 'Linear first', 'lin_first'], ['wdBnBias', 'Weight decay on BatchNorm and bias', 'wd_bn_bias'], ['trainBn', 'Train BatchNorm while frozen', 'train_bn']];
const IDS = { concatPool: 'concat-pool', firstBn: 'first-bn', bnFinal: 'bn-final', linFirst: 'lin-first', wdBnBias: 'wd-bn-bias', trainBn: 'train-bn' };

/** lin_ftrs as typed: widths separated by commas or spaces; empty: the architecture's one. */
const linWidths = () => {
  const lin = $('lin-ftrs').value.trim();
  return lin === '' ? [defaultHidden($('arch').value)] : lin.split(/[\s,]+/).filter(Boolean).map(Number);
};
const fieldNumber = (id) => ($(id).value.trim() === '' ? NaN : Number($(id).value));
/** A field's text as the user typed it, for the note and the errors. */
const typed = (id) => $(id).value.trim() || 'empty';

/** The options as the fields say them (NaN where a number field holds none). The loss is
 * BCEWithLogitsLossFlat while "Allow none of these" is ticked (`multi`). */
export function learnerFields(multi = $('multi-label').checked) {
  const linFtrs = linWidths();
  return {
    lossFunc: multi ? BCE : $('loss-func').value,
    hidden: linFtrs[0],
    linFtrs,
    ps: fieldNumber('ps'),
    ...Object.fromEntries(FLAGS.map(([key]) => [key, $(IDS[key]).checked])),
    wd: fieldNumber('wd'),
    moms: MOMS.map(fieldNumber),
  };
}

/** The options for the next model, checked in the page's words: an error names the field. */
export function checkedLearnerFields() {
  const v = learnerFields();
  const where = 'Settings, vision_learner options';
  const lin = $('lin-ftrs').value.trim();
  if (lin !== '' && !v.linFtrs.every((w) => Number.isInteger(w) && w >= 1)) throw new Error(`Head hidden width (lin_ftrs) must be whole numbers, 1 or more, such as fastai's 512 or 1024, 512, or empty for the default (it is ${lin}; ${where}).`);
  if (!(v.ps >= 0 && v.ps < 1)) throw new Error(`Dropout ps must be at least 0 and below 1, such as fastai's 0.5 (it is ${typed('ps')}; ${where}).`);
  if (!(v.wd >= 0 && v.wd < 1)) throw new Error(`Weight decay wd must be at least 0 and below 1, such as fastai's 0.01 (it is ${typed('wd')}; ${where}).`);
  if (!v.moms.every((m) => m >= 0 && m < 1)) throw new Error(`Momentums moms must each be at least 0 and below 1, such as fastai's 0.95, 0.85, 0.95 (they are ${MOMS.map(typed).join(', ')}; ${where}).`);
  return v;
}

/** The options that differ from fastai's defaults, in fastai's words ("ps 0.2", "concat_pool
 * off"). BCEWithLogitsLossFlat is not among them: it is "Allow none of these", shown by its box. */
export function learnerChanges(multi = $('multi-label').checked) {
  const v = learnerFields(multi);
  const d = FASTAI_LEARNER;
  const out = [];
  if (v.lossFunc === SMOOTH) out.push(`loss_func ${SMOOTH}`);
  if (v.linFtrs.length !== 1 || v.hidden !== defaultHidden($('arch').value)) out.push(`lin_ftrs [${v.linFtrs.join(', ')}]`);
  if (v.ps !== d.ps) out.push(`ps ${typed('ps')}`);
  for (const [key, , name] of FLAGS.slice(0, 4)) if (v[key] !== d[key]) out.push(`${name} ${v[key] ? 'on' : 'off'}`);
  if (v.wd !== d.wd) out.push(`wd ${typed('wd')}`);
  for (const [key, , name] of FLAGS.slice(4)) if (v[key] !== d[key]) out.push(`${name} ${v[key] ? 'on' : 'off'}`);
  if (v.moms.some((m, i) => m !== d.moms[i])) out.push(`moms (${MOMS.map(typed).join(', ')})`);
  return out;
}

/** The fields from a model's options `o` (an option it lacks at fastai's default; {}: all of
 * them). A sigmoid model's loss is "Allow none of these", which follows the model (followModel). */
export function showLearnerFields(o = {}) {
  const has = (k) => o[k] !== undefined && o[k] !== null;
  const v = { ...FASTAI_LEARNER, ...Object.fromEntries(Object.keys(FASTAI_LEARNER).filter(has).map((k) => [k, o[k]])) };
  $('loss-func').value = v.lossFunc === SMOOTH ? SMOOTH : FASTAI_LEARNER.lossFunc;
  lossChoice = $('loss-func').value;
  $('lin-ftrs').value = Array.isArray(o.linFtrs) && o.linFtrs.length > 1 ? o.linFtrs.join(', ') : has('hidden') && o.hidden !== defaultHidden(o.arch ?? $('arch').value) ? String(o.hidden) : '';
  $('ps').value = String(v.ps);
  $('wd').value = String(v.wd);
  for (const [key] of FLAGS) $(IDS[key]).checked = !!v[key];
  MOMS.forEach((id, i) => { $(id).value = String(v.moms[i] ?? FASTAI_LEARNER.moms[i]); });
}

/** The loss chosen before "Allow none of these" made it BCEWithLogitsLossFlat: unticking the
 * box gives it back. */
let lossChoice = FASTAI_LEARNER.lossFunc;
/** The loss select and "Allow none of these" agree, whichever was set last (settings.js ties a
 * choice in the select to the box). */
function syncLoss() {
  const select = $('loss-func');
  if (select.value !== BCE) lossChoice = select.value;
  if ($('multi-label').checked) select.value = BCE;
  else if (select.value === BCE) select.value = lossChoice;
}

/** The imported model's vision_learner options that the Settings change, by the page's names
 * (none for a model from before the options). */
function learnerDiffers(o) {
  if (!('ps' in o)) return [];
  const v = learnerFields();
  const out = [];
  if ((v.lossFunc === SMOOTH) !== (o.lossFunc === SMOOTH)) out.push('Loss function (loss_func)');
  const theirs = Array.isArray(o.linFtrs) ? o.linFtrs : [o.hidden];
  if (v.linFtrs.join() !== theirs.join()) out.push('Head hidden width (lin_ftrs)');
  if (v.ps !== o.ps) out.push('Dropout (ps)');
  if (v.wd !== o.wd) out.push('Weight decay (wd)');
  for (const [key, label, name] of FLAGS) if (key in o && v[key] !== !!o[key]) out.push(`${label} (${name})`);
  if (Array.isArray(o.moms) && v.moms.some((m, i) => m !== o.moms[i])) out.push('Momentums (moms)');
  return out;
}

/** The Settings that must match an imported model for Train to continue it. */
const MODEL_FIELDS = [['arch', 'arch', 'Architecture', String], ['size', 'size', 'Image size', Number], ['bs', 'batchSize', 'Batch size', Number], ['flip', 'doFlip', 'Random horizontal flips', Boolean], ['multi-label', 'multiLabel', '“None of these”', Boolean]];

/**
 * What Train will do, said before it is pressed: continue the imported model when the dataset
 * has its classes and the Settings are its own, else start a new model, and why.
 * @returns {{continues: boolean, text: string}}
 */
export function trainPlan() {
  if (page.modelOrigin !== 'imported' || page.modelClasses === null) {
    const further = sameClasses(page.modelClasses, page.datasetClasses) ? ' Train more (below) trains it further instead.' : '';
    const text = page.modelClasses !== null && !page.modelSaved ? `Train starts a new model: the one trained here is replaced (export it first to keep it).${further}` : '';
    return { continues: false, text };
  }
  const name = page.modelName;
  if (!page.files.length) return { continues: false, text: `Imported ${name}: load photos of its classes (${page.modelClasses.join(', ')}) and Train continues it.` };
  const fresh = $('pretrained').checked && $('arch').value !== 'tiny' ? 'from the pretrained weights' : 'from random weights';
  if (!sameClasses(page.modelClasses, page.datasetClasses)) {
    return { continues: false, text: `Train starts a new model ${fresh}, not ${name}: its classes (${page.modelClasses.join(', ')}) differ from this dataset's (${page.datasetClasses.join(', ')}).` };
  }
  const o = page.modelOptions || {};
  const changed = MODEL_FIELDS.filter(([id, key, , as]) => key in o && as($(id).type === 'checkbox' ? $(id).checked : $(id).value) !== as(o[key])).map(([, , label]) => label).concat(learnerDiffers(o));
  if (changed.length) return { continues: false, text: `Train starts a new model ${fresh}, not ${name}: ${changed.join(', ')} differ${changed.length === 1 ? 's' : ''} from the model's.` };
  return { continues: true, text: `Train continues ${name} (the imported model) on this dataset.` };
}
