// The page's state in one place: `phase` is what Kiln is doing, the rest is what the page holds.
// Controls are enabled and disabled here only: render() derives every one of them from the
// phase and the data after each change, so no code path can leave a control that starts work
// enabled while work runs (a second Train click used to start a second run).
import { $ } from './dom.js';

/** Phases in which Kiln works; Cancel stops the first two between batches. */
const CANCELLABLE = ['training', 'finding-lr'];
const WORK = [...CANCELLABLE, 'reading', 'loading', 'importing', 'augmenting', 'interpreting', 'predicting', 'exporting'];

/** The transitions allowed: idle starts any work, work returns to idle (or goes on to a
 * related step), nothing else. A transition outside this table is a bug in the page. */
const NEXT = {
  starting: ['idle', 'failed'],
  failed: [],
  idle: WORK,
  // A drop is read first; what it holds decides what happens next.
  reading: ['loading', 'importing', 'predicting', 'idle'],
  // Training ends by interpreting the validation set.
  training: ['interpreting', 'idle'],
};
for (const p of WORK) NEXT[p] ??= ['idle'];

/** What each phase is called in the busy message. */
const DOING = {
  starting: 'still starting', failed: 'not running (it failed to start)', reading: 'reading the dropped files',
  loading: 'loading a dataset', importing: 'importing a file', augmenting: 'augmenting a batch',
  'finding-lr': 'finding a learning rate', training: 'training', interpreting: 'interpreting the validation set',
  predicting: 'predicting', exporting: 'exporting the model',
};

export const page = {
  /** @type {string} one of NEXT's keys */
  phase: 'starting',
  /** @type {import('./kiln.js').Kiln | null} */
  kiln: null,
  /** The loaded dataset's files and class names (empty: none loaded). @type {File[]} */
  files: [],
  /** @type {string[]} */
  datasetClasses: [],
  /** The model's class names: null until one is trained or imported. @type {string[] | null} */
  modelClasses: null,
  /** Pretrained weights the user brought: {arch, name}. */
  weights: null,
  /** The pretrained box's state before the tiny model (which has none) unticked it. @type {boolean | null} */
  pretrainedBeforeTiny: null,
  /** Cancel was pressed; the run stops after its current batch. */
  cancelling: false,
};

export const isIdle = () => page.phase === 'idle';

/** Move to `phase` (see NEXT) and redraw the controls. */
export function setPhase(phase) {
  if (!(NEXT[page.phase] || []).includes(phase)) throw new Error(`internal error: the page cannot go from ${page.phase} to ${phase}`);
  page.phase = phase;
  if (phase === 'idle') page.cancelling = false;
  render();
}

/** The one way to start work: refused unless idle; back to idle when `work` settles. */
export async function run(phase, work) {
  if (!isIdle()) throw new Error(`Kiln is ${DOING[page.phase] || page.phase}: wait for it${CANCELLABLE.includes(page.phase) ? ' or press Cancel' : ''}, then try again.`);
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

const sorted = (names) => JSON.stringify([...names].sort());
const sameClasses = (a, b) => !!a && !!b && sorted(a) === sorted(b);

/** Every control's enabled state, from the phase and the data. */
export function render() {
  const idle = isIdle();
  const data = page.files.length > 0;
  const model = page.modelClasses !== null;
  const enable = (ids, on) => { for (const id of ids) $(id).disabled = !on; };
  // Work on the dataset.
  enable(['train', 'show-batch', 'lr-find'], idle && data);
  // Interpretation runs the model on the dataset: their classes must agree.
  enable(['interpret'], idle && data && model && sameClasses(page.modelClasses, page.datasetClasses));
  enable(['export', 'export-onnx', 'export-pytorch'], idle && model);
  // Inputs that start work when used (the dataset options reload the dataset on change; the
  // architecture picks which weights the next model gets).
  enable(['sample', 'pick-folder', 'pick-files', 'import', 'predict-file', 'weights-file', 'arch', 'label-regex', 'valid-pct', 'presize'], idle);
  $('pretrained').disabled = !idle || $('arch').value === 'tiny';
  // Half precision only where the GPU has it (kiln.info says why not).
  $('fp16').disabled = !!page.kiln?.info?.fp16Unavailable || page.kiln === null;
  for (const b of document.querySelectorAll('#suggestions button')) b.disabled = !idle;
  $('cancel').disabled = !CANCELLABLE.includes(page.phase) || page.cancelling;
  // For CSS (drop zones and picker labels look disabled) and for tests.
  document.body.dataset.phase = page.phase;
}
