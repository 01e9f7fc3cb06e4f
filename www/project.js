// The Project bar: Save project (a .kilnproj: the dataset as it was built, with its photos and
// edits, the model, the Settings and the training charts; the CLI reads and writes it too),
// Open project, and "Continue where you left off": after each change (a load, an edit, a
// training run) the project is kept in the browser's own storage (the origin private file
// system), written in the background, and offered again on the next visit.
import { $, download, guard, setStatus } from './dom.js';
import { LEARNER_FIELDS, isIdle, modelThresh, onIdle, page, render, run, showLearnerFields, update } from './state.js';
import { showSummary } from './dataset.js';
import { showWeights, syncMethod } from './settings.js';
import { restoreTraining, trainingRecord } from './training.js';
import { fileName } from './download-name.js';
import { peekManifest, photoCount } from './kiln-project.js';

/** Every Settings field by id, the labelling and split options too: a project keeps them. */
export const SETTINGS = ['arch', 'pretrained', 'size', 'bs', 'method', 'epochs', 'freeze-epochs', 'lr', 'flip', 'multi-label', 'fp16', 'presize', 'label-regex', 'valid-pct', 'seed', ...LEARNER_FIELDS];
/** The dataset options' fields and their keys: the dataset the project builds has the last word. */
const OPTION_FIELDS = { presize: 'presize', 'valid-pct': 'validPct', seed: 'seed', 'label-regex': 'labelRegex' };
/** The file the browser keeps the project in, and how long after a change it is written. */
const KEPT = 'kiln-project.kilnproj';
const KEEP_AFTER_MS = 1500;
const HERE = 'the project kept in this browser';

const say = (text) => { $('project-status').textContent = text; };
function note(text) {
  $('project-note').textContent = text;
  $('project-note').hidden = !text;
}
const mib = (bytes) => `${(bytes / 2 ** 20).toFixed(1)} MiB`;
const plural = (n, one) => `${n.toLocaleString('en')} ${one}${n === 1 ? '' : 's'}`;

function readSettings() {
  const fields = Object.fromEntries(SETTINGS.map((id) => [id, $(id).type === 'checkbox' ? $(id).checked : $(id).value]));
  // A model with one sigmoid per class: Predict's class threshold as the user left it.
  return modelThresh() === null ? fields : { ...fields, 'predict-thresh': Number($('predict-thresh').value) };
}

/** A project's Settings in their fields (values a field cannot take are left out), then the
 * dataset options as the dataset was built with them. A project saved without vision_learner's
 * options (before them, or by the CLI) has its model's (`modelOptions`), or fastai's defaults. */
function showSettings(settings, options, modelOptions) {
  update({ pretrainedBeforeTiny: null });
  if (!settings || !('ps' in settings)) showLearnerFields(modelOptions ?? {});
  for (const id of SETTINGS) {
    const v = settings?.[id];
    // A labels CSV holds "Allow none of these" on (dataset.js): the user's own choice stays.
    if (id === 'multi-label' && options.labelsCsv) continue;
    const e = $(id);
    if (v === undefined || v === null) continue;
    if (e.type === 'checkbox') {
      if (typeof v === 'boolean' && !(id === 'fp16' && e.disabled)) e.checked = v;
    } else if (e.tagName === 'SELECT') {
      if ([...e.options].some((o) => o.value === String(v))) e.value = String(v);
    } else if (['string', 'number'].includes(typeof v)) e.value = String(v);
  }
  for (const [id, key] of Object.entries(OPTION_FIELDS)) {
    const v = options[key] ?? '';
    const same = key === 'labelRegex' ? $(id).value.trim() === v : Number($(id).value) === Number(v) && $(id).value.trim() !== '';
    if (!same) $(id).value = String(v);
  }
  // A tiny model's project says 'not pretrained' (it has no such weights): a later switch to
  // an architecture that has them ticks the box again, as the photo defaults do.
  if ($('arch').value === 'tiny') update({ pretrainedBeforeTiny: $('pretrained').defaultChecked });
  syncMethod();
  showWeights();
}

/** The training charts and epoch table, and how many epochs of the model's history they show. */
const chartsNow = (epochs) => ({ ...trainingRecord(), epochs });

/** A project's charts, if they are the page's (series of numbers or null, rows of texts). */
function chartsOf(c) {
  const series = (a, n) => Array.isArray(a) && a.length === n && a.every((s) => Array.isArray(s) && s.length === a[0].length && s.every((v) => v === null || typeof v === 'number'));
  const ok = c && typeof c === 'object' && series(c.loss, 5) && series(c.metric, 3) && Array.isArray(c.rows) && c.rows.every((r) => Array.isArray(r) && r.every((v) => typeof v === 'string'));
  return ok ? c : { loss: [[], [], [], [], []], metric: [[], [], []], rows: [], epochs: 0 };
}

/** Runs in the 'saving-project' phase, from Save project's click: where the browser can save
 * a stream, the picker opens before anything is awaited (the click must still count). */
export async function saveProject() {
  const name = fileName('kilnproj', '', page.modelClasses || page.datasetClasses);
  const picked = window.showSaveFilePicker
    ? window.showSaveFilePicker({ suggestedName: name, types: [{ description: 'Kiln project', accept: { 'application/zip': ['.kilnproj'] } }] })
    : null;
  let handle = null;
  try {
    handle = await picked;
  } catch (e) {
    if (e.name === 'AbortError') return;
    handle = null;
  }
  const model = page.modelClasses !== null;
  say(`writing ${name}…`);
  try {
    const epochs = model ? (await page.kiln.history()).history.length : 0;
    const zip = await page.kiln.saveProject({ settings: readSettings(), charts: chartsNow(epochs), model });
    let size;
    if (handle) {
      await zip.body.pipeTo(await handle.createWritable());
      size = (await handle.getFile()).size;
    } else {
      // A Blob the browser holds (and pages to disk when large), not the page's memory.
      const blob = await zip.blob();
      size = blob.size;
      download(blob, name);
    }
    // The model is in a file now: leaving the page no longer loses it.
    if (model) update({ modelSaved: true });
    say(`saved ${name}: ${plural(page.files.length, 'photo')}${model ? `, the model after ${plural(epochs, 'epoch')}` : ''}, ${mib(size)}`);
  } catch (e) {
    say('');
    throw new Error(`${name} could not be written: ${e.message}`);
  }
}

/** Runs in the 'opening' phase: the project replaces the dataset, the Settings, the charts
 * and (when it has one) the model. Nothing changes if it is refused. */
export async function openProject(file, label = file.name) {
  say(`opening ${label}…`);
  let opened;
  try {
    opened = await page.kiln.openProject(file, { onProgress: ({ done, total }) => say(`opening ${label}: ${done.toLocaleString('en')} of ${plural(total, 'photo')} checked…`) });
  } catch (e) {
    say('');
    throw new Error(`${label} could not be opened: ${e.message}`);
  }
  const { summary, settings, charts, model, history, files, added, options } = opened;
  showSettings(settings, options, model?.options);
  // The labels CSV the dataset was built with, kept for a re-label of the same photos.
  const labelsCsv = options.labelsCsv ? { name: `the labels CSV of ${label}`, text: options.labelsCsv, of: files } : null;
  update({ lastFiles: files, added, files: [...files, ...added], datasetOptions: options, preset: null, labelsCsv });
  $('mode-add').checked = true;
  await showSummary(summary);
  const kept = chartsOf(charts);
  if (model) {
    const { frozen } = await page.kiln.history();
    update({ modelClasses: model.classes, modelOrigin: 'imported', modelName: label, modelOptions: model.options, modelSaved: true, modelVersion: page.modelVersion + 1, modelState: { epochs: history.length, frozen } });
    $('model-status').textContent = `loaded the model of ${label}: ${model.classes.length} classes, ${plural(history.length, 'epoch')} trained`;
    // The Settings as saved have the last word on "Allow none of these" (state.js set it from
    // the model; a project the CLI wrote says nothing of it), unless a labels CSV holds it on.
    if (typeof settings?.['multi-label'] === 'boolean' && page.csvLock === null) $('multi-label').checked = settings['multi-label'];
    // The loss as saved too (it follows the box, which the model set meanwhile).
    const loss = settings?.['loss-func'];
    if ([...$('loss-func').options].some((o) => o.value === loss)) $('loss-func').value = loss;
    render();
    // Predict's class threshold as it was saved (the model's own otherwise, state.js).
    const t = Number(settings?.['predict-thresh']);
    if (modelThresh() !== null && settings?.['predict-thresh'] !== undefined && t >= 0 && t <= 1) {
      $('predict-thresh').value = String(t);
      $('predict-thresh').dispatchEvent(new Event('input'));
    }
  }
  // Epochs the model trained past the charts (the CLI went on with it) are added to them.
  if (model || kept.rows.length) restoreTraining(kept, history.slice(Math.min(Number.isInteger(kept.epochs) ? kept.epochs : 0, history.length)));
  $('interpretation').hidden = true;
  $('settings-note').textContent = `The Settings are those saved in ${label}.`;
  $('settings-note').hidden = false;
  setStatus('');
  say(`opened ${label}: ${plural(files.length + added.length, 'photo')}, ${model ? `the model after ${plural(history.length, 'epoch')}` : 'no model'}`);
}

// ---- Continue where you left off ----

/** The browser's own storage for this page (null where it has none). */
async function storage() {
  try {
    return navigator.storage?.getDirectory ? await navigator.storage.getDirectory() : null;
  } catch {
    return null;
  }
}

const keeper = {
  /** A project from an earlier visit waits for Continue or Dismiss: until then it is not replaced. */
  waiting: false,
  /** What was kept last (the dataset's files, the model, the options) and the writing now. */
  kept: null,
  timer: 0,
  writing: false,
  again: false,
};
const stateKey = () => [page.files, page.modelVersion, page.datasetOptions];
const sameKey = (a, b) => !!a && a.every((x, i) => x === b[i]);

function scheduleKeep() {
  clearTimeout(keeper.timer);
  if (keeper.waiting || !page.files.length || sameKey(keeper.kept, stateKey())) return;
  // Said for tests: the browser's copy is of the page as it is (set again once written).
  delete document.body.dataset.projectKept;
  keeper.timer = setTimeout(keep, KEEP_AFTER_MS);
}

/** Write the project to the browser's storage, in the background: the photos stream from
 * their Blobs and the model is the one after the last finished epoch, so the worker is asked
 * only for its history (at once, while it is idle). The file is replaced only once the new
 * one is complete: a failure keeps the last one. */
async function keep() {
  if (!isIdle() || keeper.waiting || !page.files.length) return;
  if (keeper.writing) { keeper.again = true; return; }
  const key = stateKey();
  if (sameKey(keeper.kept, key)) return;
  keeper.writing = true;
  // Said, so nobody reloads thinking it is kept when it is not yet.
  $('project-kept').textContent = 'keeping a copy in this browser…';
  // About what the project takes: its photos (the model and manifest are small beside them).
  const size = page.files.reduce((n, f) => n + f.size, 0);
  // The history is asked now, before any await, while nothing runs (the worker answers at
  // once; a run started next would hold the learner). saveProject then takes the recipe and
  // the model's snapshot as they are: if a change slipped in between, the next idle keeps again.
  const model = page.modelClasses !== null;
  const history = model ? page.kiln.history().catch(() => null) : Promise.resolve(null);
  try {
    const epochs = (await history)?.history.length ?? 0;
    const zip = await page.kiln.saveProject({ settings: readSettings(), charts: chartsNow(epochs), model: model && 'snapshot' });
    const dir = await storage();
    if (!dir) { $('project-kept').textContent = ''; return; }
    const file = await dir.getFileHandle(KEPT, { create: true });
    await zip.body.pipeTo(await file.createWritable());
    keeper.kept = key;
    note('');
    document.body.dataset.projectKept = String(Date.now());
    $('project-kept').textContent = `kept in this browser at ${new Date().toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })}`;
  } catch (e) {
    // Not retried for the same state; the next change tries again.
    keeper.kept = key;
    $('project-kept').textContent = '';
    note(await keepFailed(e, size));
  } finally {
    keeper.writing = false;
    if (keeper.again) { keeper.again = false; scheduleKeep(); }
  }
}

/** Why the project could not be kept, in the page's words. */
async function keepFailed(e, size) {
  if (e?.name !== 'QuotaExceededError') return `The browser could not keep this project (${e?.message || e}); the copy it kept before is unchanged. Save project keeps it in a file.`;
  const est = await navigator.storage.estimate?.().catch(() => null);
  const room = est?.quota ? ` (it lets this page use ${mib(est.quota)}, ${mib(Math.max(0, est.quota - (est.usage || 0)))} of it free${size ? `, and the project takes about ${mib(size)}` : ''})` : '';
  return `The browser has no room to keep this project${room}; the copy it kept before is unchanged. Save project keeps it in a file.`;
}

/** On load: a project kept by an earlier visit is offered with what it holds and when it was kept. */
export async function offerContinue() {
  // Nothing is kept (written over it) until this has looked.
  keeper.waiting = true;
  const dir = await storage();
  const handle = dir && await dir.getFileHandle(KEPT).catch(() => null);
  const file = handle && await handle.getFile().catch(() => null);
  if (!file?.size) {
    keeper.waiting = false;
    return scheduleKeep();
  }
  const m = await peekManifest(file).catch(() => null);
  const when = new Date(file.lastModified).toLocaleString('en', { dateStyle: 'medium', timeStyle: 'short' });
  const epochs = Number.isInteger(m?.charts?.epochs) ? m.charts.epochs : null;
  const model = !m ? '' : m.model ? `, model after ${epochs === null ? 'training' : plural(epochs, 'epoch')}` : ', no model yet';
  $('resume-text').textContent = `Continue where you left off (${m ? plural(photoCount(m), 'photo') : 'a project'}${model}, saved ${when})?`;
  $('resume').hidden = false;
}

/** Continue: open the kept project (it stays kept if it cannot be opened). */
async function continueKept() {
  const dir = await storage();
  const handle = dir && await dir.getFileHandle(KEPT).catch(() => null);
  if (!handle) throw new Error(`${HERE} is no longer there (the browser's storage was cleared).`);
  await openProject(await handle.getFile(), HERE);
  $('resume').hidden = true;
  keeper.waiting = false;
  keeper.kept = stateKey();
}

export function wireProject() {
  onIdle(scheduleKeep);
  $('resume-continue').addEventListener('click', () => guard(() => run('opening', continueKept)));
  $('resume-dismiss').addEventListener('click', () => {
    $('resume').hidden = true;
    keeper.waiting = false;
    scheduleKeep();
    $('open-project').focus();
  });
}
