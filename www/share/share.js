// The page "Download as a web page" makes (www/share-page.js zips it): one trained model that
// predicts photos and the live camera, all in this page. Beside it in the zip: model.kiln,
// about.json (where the model came from), Kiln's JS API with its worker (kiln.js, worker.js
// and what they import) and Kiln's one-thread build (pkg/). It needs no server headers: Kiln
// runs here on WebGPU or on one CPU thread, neither of which needs cross-origin isolation, so
// any static host serves it (python3 -m http.server). In the zip this file sits beside kiln.js:
// share-page.js rewrites the import below to './kiln.js'.
import { ARCHS, Kiln, filesFromDrop } from '../kiln.js';

/** @import { ModelOptions, Prediction } from '../kiln-types.js' */
/** @typedef {{trained?: string | null, trainImages?: number | null, from?: string | null}} About */

const $ = (/** @type {string} */ id) => /** @type {HTMLElement} */ (document.getElementById(id));
const photos = /** @type {HTMLInputElement} */ ($('photos'));
const start = /** @type {HTMLButtonElement} */ ($('camera-start'));
const stop = /** @type {HTMLButtonElement} */ ($('camera-stop'));
const video = /** @type {HTMLVideoElement} */ ($('video'));

/** The model's classes, once loaded. @type {string[]} */
let classes = [];
/** @type {Kiln | null} */
let kiln = null;

function showError(/** @type {unknown} */ e) {
  $('error').textContent = e instanceof Error ? e.message : String(e);
  $('error').hidden = false;
  console.error(e);
}
const clearError = () => { $('error').hidden = true; };

/** A file next to this page, or an Error that names it. */
async function sibling(/** @type {string} */ name) {
  const r = await fetch(name);
  if (!r.ok) throw new Error(`${name} is missing next to this page (${r.status}): this page shows a model exported from Kiln with "Download as a web page"; serve the whole unzipped folder.`);
  return r;
}

/** The one-line note on where the model came from, e.g. "Tiny ResNet, 64 px, trained with Kiln
 * on 2025-06-01 with 1,437 training images." */
function aboutText(/** @type {ModelOptions | null} */ options, /** @type {About} */ about) {
  const arch = options?.arch ? ARCHS[options.arch]?.name ?? options.arch : null;
  let trained = 'trained with Kiln';
  if (about.trained) trained += ` on ${about.trained}`;
  if (about.trainImages) trained += ` with ${about.trainImages.toLocaleString('en')} training images`;
  if (about.from) trained += ` (from ${about.from})`;
  return `${[arch, options?.size && `${options.size} px`, trained].filter(Boolean).join(', ')}.`;
}

/** Probability bars, likeliest first: every class up to ten, else the five likeliest. Each bar
 * is a <meter> holding the probability as the model gave it. */
function bars(/** @type {HTMLElement} */ box, /** @type {number[]} */ probs) {
  const ranked = Array.from(probs, (p, i) => /** @type {[number, number]} */ ([p, i])).sort((a, b) => b[0] - a[0]);
  const pct = (/** @type {number} */ p) => `${(p * 100).toFixed(1)}%`;
  box.replaceChildren(...(ranked.length <= 10 ? ranked : ranked.slice(0, 5)).map(([p, i]) => {
    const row = document.createElement('div');
    row.className = 'bar';
    const name = document.createElement('span');
    name.textContent = classes[i];
    const meter = document.createElement('meter');
    Object.assign(meter, { min: 0, max: 1, value: p, title: `${classes[i]}: ${pct(p)}` });
    meter.dataset.class = classes[i];
    const value = document.createElement('span');
    value.textContent = pct(p);
    row.append(name, meter, value);
    return row;
  }));
}

const headline = (/** @type {Prediction} */ p) => `${p.label} (${(p.probs[p.index] * 100).toFixed(1)}%)`;

/** Photos are predicted one after another, in the order given; newest on top. */
let photoQueue = Promise.resolve();
function predictPhotos(/** @type {File[]} */ files) {
  clearError();
  photoQueue = photoQueue.then(async () => {
    for (const file of files) {
      const item = document.createElement('li');
      item.className = 'prediction';
      const img = document.createElement('img');
      img.src = URL.createObjectURL(file);
      img.alt = file.name;
      const label = document.createElement('p');
      label.className = 'big';
      label.textContent = 'predicting…';
      const name = document.createElement('p');
      name.className = 'muted file';
      name.textContent = file.name;
      const box = document.createElement('div');
      const text = document.createElement('div');
      text.append(label, name, box);
      item.append(img, text);
      $('results').prepend(item);
      try {
        const p = await /** @type {Kiln} */ (kiln).predict(file);
        label.textContent = headline(p);
        img.alt = `${file.name}, predicted ${p.label}`;
        bars(box, p.probs);
        item.dataset.done = 'true';
      } catch (e) {
        label.textContent = 'not classified';
        name.textContent = `${file.name} could not be classified: ${e instanceof Error ? e.message : e}`;
        item.dataset.done = 'error';
      }
    }
  });
}

/** The live camera: one run from Start to Stop. @type {{stream: MediaStream, stopped: boolean, count: number} | null} */
let live = null;

/** What went wrong asking for the camera, in words. */
function cameraMessage(/** @type {any} */ e) {
  if (e?.name === 'NotAllowedError' || e?.name === 'SecurityError') return 'The camera was not allowed: let this page use the camera (the camera icon in the address bar, or the browser\'s site settings), then press Start the camera again.';
  if (e?.name === 'NotFoundError' || e?.name === 'OverconstrainedError') return 'No camera was found on this device.';
  if (e?.name === 'NotReadableError' || e?.name === 'AbortError') return 'The camera could not be started: another app may be using it. Close it, then press Start the camera again.';
  return `The camera could not be started: ${e?.message || e}`;
}

async function startCamera() {
  clearError();
  if (!navigator.mediaDevices?.getUserMedia) return showError('The camera needs a secure page: open this page over https://, or from localhost or 127.0.0.1.');
  start.disabled = true;
  $('camera-status').textContent = 'asking for the camera…';
  /** @type {MediaStream} */
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: 'environment' }, audio: false });
  } catch (e) {
    start.disabled = false;
    $('camera-status').textContent = '';
    return showError(cameraMessage(e));
  }
  const run = { stream, stopped: false, count: 0 };
  live = run;
  video.srcObject = stream;
  await video.play().catch(() => {});
  stop.disabled = false;
  $('live').hidden = false;
  $('camera-status').textContent = 'live';
  // A camera that goes away by itself (unplugged, permission taken back) stops the run too.
  for (const t of stream.getTracks()) t.addEventListener('ended', () => stopCamera('the camera stopped'));
  classifyFrames(run).catch((e) => { stopCamera('stopped'); showError(`The camera's picture could not be classified: ${e.message}`); });
}

const nextFrame = () => new Promise((r) => requestAnimationFrame(() => r(undefined)));

/** The newest frame, at most 640 px on its long side, as a JPEG. */
function grab(/** @type {HTMLCanvasElement} */ canvas) {
  const k = Math.min(1, 640 / Math.max(video.videoWidth, video.videoHeight));
  canvas.width = Math.round(video.videoWidth * k);
  canvas.height = Math.round(video.videoHeight * k);
  /** @type {CanvasRenderingContext2D} */ (canvas.getContext('2d')).drawImage(video, 0, 0, canvas.width, canvas.height);
  return new Promise((res, rej) => canvas.toBlob((b) => (b ? res(b) : rej(new Error('the frame could not be encoded'))), 'image/jpeg', 0.92));
}

/** Classifies the newest frame, then the newest after that: one prediction at a time. */
async function classifyFrames(/** @type {{stream: MediaStream, stopped: boolean, count: number}} */ run) {
  const canvas = document.createElement('canvas');
  while (!run.stopped) {
    if (video.readyState < HTMLMediaElement.HAVE_CURRENT_DATA || !video.videoWidth) { await nextFrame(); continue; }
    const p = await /** @type {Kiln} */ (kiln).predict(await grab(canvas));
    if (run.stopped) break;
    run.count += 1;
    $('live').dataset.predictions = String(run.count);
    $('live-label').textContent = headline(p);
    bars($('live-bars'), p.probs);
    await nextFrame();
  }
}

/** Stop: the loop ends after the prediction in flight and the camera's tracks are stopped. */
function stopCamera(/** @type {string} */ why = 'stopped') {
  const run = live;
  if (!run) return;
  run.stopped = true;
  live = null;
  for (const t of run.stream.getTracks()) t.stop();
  video.srcObject = null;
  $('live').hidden = true;
  stop.disabled = true;
  start.disabled = false;
  $('camera-status').textContent = why;
}

function wire() {
  $('error').addEventListener('click', clearError);
  photos.addEventListener('change', () => {
    const files = [...(photos.files || [])];
    photos.value = '';
    if (files.length) predictPhotos(files);
  });
  $('drop').addEventListener('keydown', (e) => {
    if (e.target !== $('drop') || !['Enter', ' '].includes(e.key) || photos.disabled) return;
    e.preventDefault();
    photos.click();
  });
  window.addEventListener('dragover', (e) => e.preventDefault());
  window.addEventListener('drop', (e) => {
    e.preventDefault();
    if (!kiln || !e.dataTransfer) return showError('The model is still loading: drop the photos again in a moment.');
    filesFromDrop(e.dataTransfer).then((files) => predictPhotos(files), showError);
  });
  start.addEventListener('click', () => { startCamera().catch(showError); });
  stop.addEventListener('click', () => stopCamera());
  window.addEventListener('pagehide', () => stopCamera());
}

async function main() {
  // Served: say nothing about file:// (see index.html's #needs-server).
  document.getElementById('needs-server')?.remove();
  wire();
  const [model, about] = await Promise.all([
    sibling('model.kiln').then((r) => r.blob()),
    sibling('about.json').then((r) => r.json()).catch(() => ({})),
  ]);
  // One thread and plain SIMD: the build in pkg/, the one that runs without cross-origin
  // isolation (WebGPU, where the browser has a real GPU, is in the same build).
  const k = await Kiln.create({ backend: 'auto', threads: 1, simd: 'plain', prefetchWeights: false });
  const info = /** @type {import('../kiln-types.js').BackendInfo} */ (k.info);
  const loaded = await k.load(model);
  classes = loaded.classes;
  kiln = k;
  // For the browser console (and the end-to-end test).
  Object.assign(window, { kiln });
  $('backend').textContent = info.backend === 'webgpu' ? `WebGPU · ${info.adapter}` : 'CPU (WebAssembly)';
  $('title').textContent = `${classes.length <= 6 ? classes.join(' · ') : `${classes.length} classes`} — image classifier`;
  document.title = `${classes.slice(0, 6).join(', ')}${classes.length > 6 ? ', …' : ''} — image classifier`;
  $('classes').textContent = classes.join(', ');
  $('about').textContent = aboutText(loaded.options, about);
  photos.disabled = false;
  start.disabled = false;
  document.body.dataset.ready = 'true';
}

main().catch((e) => {
  $('backend').textContent = 'failed to start';
  $('about').textContent = '';
  showError(e);
});
