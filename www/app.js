// The page: wires the controls to Kiln's JS API (kiln.js). All heavy work runs in the worker.
// Each section of the page has its module; state.js holds what the page is doing and which
// controls that allows. Every action that starts work goes through run(phase, …) there.
import { ARCHS, Kiln, filesFromDrop, BACKENDS, SIMD } from './kiln.js';
import { $, clearError, guard, showError } from './dom.js';
import { page, isIdle, onBusy, onIdle, render, run, setPhase, update } from './state.js';
import { loadSample, multiLabelChanges, relabel } from './dataset.js';
import { addPhotos, adding, loadWithCamera, wireSamples } from './samples.js';
import { WEIGHT_FILE, importWeights, probeModel, showBatch, showCompute, showDevice, showWeights, wireSettings } from './settings.js';
import { lrFind, resizeLrChart } from './lr-find.js';
import { makeCharts, resizeTrainingCharts, train, wireCancel } from './training.js';
import { lrFindMore, trainMore } from './train-more.js';
import { interpret } from './interpret.js';
import { applyChanges, downloadChanges, openCleaner, wireCleaner } from './cleaner.js';
import { predictFiles, wireThreshold } from './predict.js';
import { wireLive } from './live.js';
import { wireSorting } from './sort.js';
import { downloadSorted } from './sort-zip.js';
import { exportModel, exportPage, importKiln, importModel, trainNoted } from './model.js';
import { offerContinue, openProject, saveProject, wireProject } from './project.js';

// Offline after the first visit: www/sw.js caches the page, both builds and the bundled weights.
if ('serviceWorker' in navigator) navigator.serviceWorker.register('sw.js').catch((e) => console.warn('no offline cache:', e.message));

/** A click that starts work: `work` runs in `phase`, its error goes to the error box. */
const onClick = (id, phase, work) => $(id).addEventListener('click', () => guard(() => run(phase, work)));

/** A file picker that starts work; emptied after use, so picking the same file again fires again.
 * A folder with nothing in it gives no files: `empty` says so. `phase` may be a function. */
const onPick = (id, phase, use, empty) => $(id).addEventListener('change', (e) => {
  const files = [...e.target.files];
  e.target.value = '';
  if (files.length) guard(() => run(typeof phase === 'function' ? phase() : phase, () => use(files)));
  else if (empty) guard(() => { throw new Error(empty); });
});

/** Photos picked or dropped for the dataset: added to the loaded one, or a new one (the choice
 * beside the drop zone) with any camera photos waiting for a second class. */
const photoPhase = () => (adding() ? 'adding' : 'loading');
const takePhotos = (files) => (adding() ? addPhotos(files) : loadWithCamera(files));

function wire() {
  onPick('pick-folder', photoPhase, takePhotos, 'The folder you chose is empty (no files in it or its subfolders): choose a folder that holds one folder of photos per class, or photos named like Maine_Coon_157.jpg.');
  onPick('pick-files', photoPhase, takePhotos);
  onPick('weights-file', 'importing', (f) => importWeights(f[0]));
  onPick('predict-file', 'predicting', predictFiles);
  onPick('predict-folder', 'predicting', predictFiles, 'The folder you chose is empty (no files in it or its subfolders): choose a folder of photos to sort.');
  onPick('predict-camera', 'predicting', predictFiles);
  onPick('import', 'importing', (f) => importModel(f[0]));
  onClick('sample', 'loading', loadSample);
  onClick('show-batch', 'augmenting', showBatch);
  onClick('lr-find', 'finding-lr', lrFind);
  onClick('train', 'training', () => trainNoted(train));
  onClick('more-train', 'training', () => trainNoted(trainMore));
  onClick('more-lr-find', 'finding-lr', lrFindMore);
  onClick('interpret', 'interpreting', interpret);
  onClick('clean', 'cleaning', openCleaner);
  onClick('clean-apply', 'cleaning', applyChanges);
  onClick('clean-download', 'cleaning', downloadChanges);
  onClick('export', 'exporting', () => exportModel('kiln'));
  onClick('export-onnx', 'exporting', () => exportModel('onnx'));
  onClick('export-pytorch', 'exporting', () => exportModel('pytorch'));
  onClick('export-page', 'exporting', exportPage);
  onClick('sort-download', 'saving', downloadSorted);
  onClick('save-project', 'saving-project', saveProject);
  onPick('open-project', 'opening', (f) => openProject(f[0]));
  // The labelling and split options re-label the files of the last load (loaded or refused);
  // a change that fails rolls its field back. Disabling the focused input as the load starts
  // fires its change event again: that one is the load already running.
  for (const id of ['label-regex', 'valid-pct', 'seed', 'presize']) {
    $(id).addEventListener('change', () => isIdle() && page.lastFiles.length && guard(() => run('loading', () => relabel(id))));
  }
  // "Allow none of these" labels too: copies of a photo in several class folders are one photo
  // with each label while it is on, apart again when it is off (only where there are copies).
  $('multi-label').addEventListener('change', () => isIdle() && page.lastFiles.length && multiLabelChanges() && guard(() => run('loading', () => relabel('multi-label'))));
  // A model trained here and not yet exported is lost with the page: ask first.
  window.addEventListener('beforeunload', (e) => {
    if (page.modelClasses === null || page.modelSaved) return;
    e.preventDefault();
    e.returnValue = '';
  });
  wireSettings();
  wireCancel();
  wireSorting();
  wireCleaner();
  wireSamples();
  wireLive();
  wireThreshold();
  wireProject();
  $('error').addEventListener('click', clearError);
  wireDrop();
  // A drop zone's keyboard route: Enter or Space on the zone itself opens its photo picker.
  for (const [zone, input] of [['dropzone', 'pick-files'], ['predict-drop', 'predict-file']]) {
    $(zone).addEventListener('keydown', (e) => {
      if (e.target !== $(zone) || !['Enter', ' '].includes(e.key) || $(input).disabled) return;
      e.preventDefault();
      $(input).click();
    });
  }
  window.addEventListener('resize', () => { resizeTrainingCharts(); resizeLrChart(); });
}

/** Drops anywhere load a dataset (or add to the loaded one), except on the predict area, which predicts (one photo) or
 * sorts (more, or folders); a single checkpoint or .kiln file is imported wherever it lands, a .kilnproj opened. */
function wireDrop() {
  let depth = 0;
  const endDrag = () => { depth = 0; document.body.classList.remove('dragging'); };
  window.addEventListener('dragenter', (e) => { e.preventDefault(); depth++; document.body.classList.add('dragging'); });
  window.addEventListener('dragleave', () => { if (--depth <= 0) endDrag(); });
  window.addEventListener('dragover', (e) => e.preventDefault());
  window.addEventListener('drop', (e) => {
    e.preventDefault();
    endDrag();
    if (!isIdle()) return showError(new Error('Kiln is busy: wait for it (or press Cancel) before dropping files.'));
    const onPredict = e.target.closest && e.target.closest('#predict-section');
    // The drop's items must be read in this event, before anything awaits.
    const dropped = filesFromDrop(e.dataTransfer);
    guard(() => run('reading', async () => {
      const files = await dropped;
      const one = files.length === 1 ? files[0] : null;
      if (one && WEIGHT_FILE.test(one.name)) { setPhase('importing'); await importWeights(one); }
      else if (one && /\.(kiln|onnx)$/i.test(one.name)) { setPhase('importing'); await importKiln(one); }
      else if (one && /\.kilnproj$/i.test(one.name)) { setPhase('opening'); await openProject(one); }
      else if (onPredict) { setPhase('predicting'); if (files.length) await predictFiles(files); }
      else { setPhase(photoPhase()); await takePhotos(files); }
    }));
  });
}

/** Settings in the page's address that it did not understand, said on the page. */
const addressNotices = [];

/** `?name=` from the address when it is one of `known`; otherwise a notice and undefined. */
function fromAddress(params, name, known, fallback) {
  const value = params.get(name);
  if (value === null || known.includes(value)) return value ?? undefined;
  addressNotices.push(`The address asks for ?${name}=${value}, which Kiln does not know (${known.map((k) => `?${name}=${k}`).join(', ')}): using ${fallback}.`);
  return undefined;
}

function showBackend(info, why = '') {
  $('backend').textContent = info.backend === 'webgpu' ? `WebGPU · ${info.adapter}` : `CPU (WebAssembly, ${info.threads} thread${info.threads === 1 ? '' : 's'})`;
  showCompute(null);
  // fastai's to_fp16: only where the GPU has half precision (state.js disables it); otherwise say why.
  if (info.fp16Unavailable) $('fp16').checked = false;
  $('fp16-why').textContent = info.fp16Unavailable ? `— not available: ${info.fp16Unavailable}` : '— f16 activations and gradients, f32 weights (this GPU has shader-f16)';
  showNotices(info, why);
}

/** The notices over the page (`why`: the last move's), and the Settings' line on 'auto'. */
function showNotices(info, why = '') {
  // 'auto' measured both and WebGPU lost: the measurement says why (the Settings show it too).
  const measured = info.device?.chosen === 'cpu' ? `Training runs on ${info.device.reason}.` : '';
  const notices = [why, ...addressNotices, ...info.notices, measured].filter(Boolean);
  $('notice').textContent = notices.join(' ');
  $('notice').hidden = notices.length === 0;
  showDevice(info.device);
}

/** The model being measured for ('arch size') while a measurement runs; one whose
 * measurement failed (not tried again until the Settings change). */
let measuring = '';
let failed = '';
/** Whether work stopped the measurement running. */
let stopped = false;
const modelKey = (m) => `${m.arch} ${m.size}`;

/**
 * Backend 'auto' follows the Settings' model: once its architecture or image size changed, both
 * backends are timed on it in the background (at once where kept), while nothing else runs:
 * work started meanwhile stops the measurement (onBusy), which goes on once the page is idle
 * again. Where the other backend wins, Kiln moves there as after a lost GPU, in a phase of its
 * own, never during training.
 */
async function followDevice() {
  const kiln = page.kiln;
  const device = kiln?.info?.device;
  const model = probeModel();
  if (!kiln || !device || !model || !isIdle() || measuring) return;
  const key = modelKey(model);
  if (key === modelKey(device) || key === failed) return;
  measuring = key;
  stopped = false;
  failed = '';
  showDevice(null, model);
  let found = null;
  try {
    found = await kiln.measureDevice(model);
  } catch (e) {
    failed = key;
    console.warn('measuring the backends failed:', e.message);
  } finally {
    measuring = '';
  }
  const now = probeModel();
  if (!found || !isIdle() || !now || modelKey(now) !== modelKey(found)) {
    showDevice(kiln.info?.device ?? null);
    // Stopped by work, or the Settings or the page moved on: again (once idle; kept figures
    // are instant).
    if (found || stopped) setTimeout(followDevice);
    return;
  }
  const before = kiln.info?.backend;
  if (found.chosen === before) return showNotices(await kiln.useDevice(found));
  // Not guard(): an error box from the user's last action stays up.
  const info = await run('switching', () => kiln.useDevice(found)).catch((e) => { showError(e); return null; });
  if (!info) return showDevice(kiln.info?.device ?? null);
  showBackend(info, `Kiln moved to ${info.backend === 'webgpu' ? 'WebGPU' : 'the CPU'}, measured faster for ${ARCHS[found.arch]?.name ?? found.arch} at ${found.size} px.`);
  render();
}

async function main() {
  wire();
  render();
  showWeights();
  makeCharts();
  const params = new URLSearchParams(location.search);
  const backend = fromAddress(params, 'backend', BACKENDS, 'the automatic choice');
  const simd = fromAddress(params, 'simd', SIMD, 'the default');
  let threads = params.get('threads') ?? undefined;
  if (threads !== undefined && !/^[1-9]\d*$/.test(threads)) {
    addressNotices.push(`The address asks for ?threads=${threads}, which is not a whole number of threads: using every core.`);
    threads = undefined;
  }
  try {
    // 'auto' measures both backends on the model the Settings hold now.
    update({ kiln: await Kiln.create({ backend, threads: threads && Number(threads), simd, probe: probeModel() ?? undefined }) });
  } catch (e) {
    $('backend').textContent = 'failed to start';
    setPhase('failed');
    return showError(e);
  }
  // The page's Kiln, for the browser console (and the end-to-end tests' memory checks).
  window.kiln = page.kiln;
  showBackend(page.kiln.info);
  // A lost GPU moves Kiln to the CPU (the failed call shows the error): say where it runs now.
  page.kiln.onRestart = (info, message) => { showBackend(info, message); render(); };
  // 'auto' follows the Settings' model (a change by the page itself, such as the sample's
  // preset or an imported model's settings, shows once it is idle).
  for (const id of ['arch', 'size']) $(id).addEventListener('change', followDevice);
  onIdle(() => setTimeout(followDevice));
  onBusy(() => {
    if (!measuring) return;
    stopped = true;
    page.kiln.stopMeasuring().catch(() => {});
  });
  setPhase('idle');
  document.body.dataset.ready = 'true';
  // A project kept by an earlier visit: offered, never replaced before the user chooses.
  offerContinue().catch((e) => console.warn('no kept project:', e.message));
}

main();
