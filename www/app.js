// The page: wires the controls to Kiln's JS API (kiln.js). All heavy work runs in the worker.
import { Kiln, filesFromDrop, ARCHS, BACKENDS, SIMD } from './kiln.js';
import uPlot from './vendor/uPlot.esm.js';

// Offline after the first visit: www/sw.js caches the page, both builds and the bundled weights.
if ('serviceWorker' in navigator) navigator.serviceWorker.register('sw.js').catch((e) => console.warn('no offline cache:', e.message));

const $ = (id) => document.getElementById(id);
const state = { kiln: null, files: [], urls: new Map(), trained: false, busy: false, lossChart: null, metricChart: null, weights: null };

function showError(e) {
  const box = $('error');
  box.textContent = e instanceof Error ? e.message : String(e);
  box.hidden = false;
  // The box sticks to the top of the window (style.css), so it is seen wherever the user is.
  console.error(e);
}
function clearError() { $('error').hidden = true; }

async function guard(fn) {
  clearError();
  try { return await fn(); } catch (e) { showError(e); }
}

function setBusy(busy) {
  state.busy = busy;
  const haveData = state.files.length > 0;
  $('train').disabled = busy || !haveData;
  $('show-batch').disabled = busy || !haveData;
  $('lr-find').disabled = busy || !haveData;
  $('interpret').disabled = busy || !haveData || !state.trained;
  $('sample').disabled = busy;
  for (const id of ['export', 'export-onnx', 'export-pytorch']) $(id).disabled = busy || !state.trained;
  $('cancel').disabled = !busy;
  for (const id of ['pick-folder', 'pick-files', 'import', 'predict-file', 'weights-file', 'arch']) $(id).disabled = busy;
  $('pretrained').disabled = busy || $('arch').value === 'tiny';
}

// ---- 1. Photos ----------------------------------------------------------------------------

function pathOf(f) { return f.kiln_path || f.webkitRelativePath || f.name; }

function datasetOptions() {
  const opts = { validPct: Number($('valid-pct').value), presize: Number($('presize').value) };
  const re = $('label-regex').value.trim();
  if (re) opts.labelRegex = re;
  return opts;
}

async function loadFiles(files) {
  files = files.filter((f) => !pathOf(f).split('/').some((p) => p.startsWith('.')));
  if (!files.length) throw new Error('No files found in what was dropped. Drop folders of images, or image files.');
  $('status').textContent = `reading ${files.length} files…`;
  const summary = await state.kiln.loadDataset(files, datasetOptions());
  state.files = files;
  for (const url of state.urls.values()) URL.revokeObjectURL(url);
  state.urls.clear();
  renderSummary(summary);
  $('status').textContent = '';
  setBusy(false);
}

function renderSummary(s) {
  $('dataset').hidden = false;
  $('split').textContent = `${s.classes.length} classes · ${s.n_train} training and ${s.n_valid} validation images · labels: ${s.label_rule} · split: ${s.split}`;
  const byPath = new Map(state.files.map((f) => [pathOf(f), f]));
  const gallery = $('gallery');
  gallery.replaceChildren();
  for (const c of s.classes) {
    const card = document.createElement('div');
    card.className = 'class-card';
    const h = document.createElement('h4');
    h.textContent = c.name;
    const counts = document.createElement('div');
    counts.className = 'muted';
    counts.textContent = `${c.train + c.valid} images (${c.train} train, ${c.valid} valid)`;
    const thumbs = document.createElement('div');
    thumbs.className = 'thumbs';
    for (const name of c.examples) {
      const f = byPath.get(name);
      if (!f) continue;
      const img = document.createElement('img');
      const url = URL.createObjectURL(f);
      state.urls.set(name, url);
      img.src = url;
      img.alt = name;
      img.loading = 'lazy';
      thumbs.append(img);
    }
    card.append(h, counts, thumbs);
    gallery.append(card);
  }
  const box = $('skipped-box');
  box.hidden = s.skipped.length === 0;
  $('skipped-title').textContent = `${s.skipped.length} file(s) skipped`;
  const body = $('skipped').tBodies[0];
  body.replaceChildren(...s.skipped.map(skipRow));
}

function reasonText(r) {
  // Truncated, corrupt and unsupported files carry a full sentence of their own.
  if (['truncated', 'corrupt', 'unsupported'].includes(r.kind)) return r.detail;
  const words = { empty: 'empty file', no_label: 'no label', undecodable: 'not a readable image', too_large: 'too large', outside_split: 'outside the train/ and valid/ folders' };
  return (words[r.kind] || r.kind) + (r.detail ? `: ${r.detail}` : '');
}

function skipRow(s) {
  const tr = document.createElement('tr');
  const a = document.createElement('td');
  a.textContent = s.name;
  const b = document.createElement('td');
  b.textContent = reasonText(s.reason);
  tr.append(a, b);
  return tr;
}

// ---- 2. Settings and show_batch -----------------------------------------------------------

function learnerOptions() {
  const arch = $('arch').value;
  return { arch, pretrained: $('pretrained').checked && arch !== 'tiny', size: Number($('size').value), batchSize: Number($('bs').value), doFlip: $('flip').checked, hidden: arch === 'tiny' ? 64 : 512, fp16: $('fp16').checked };
}

// ---- Pretrained weights ---------------------------------------------------------------------


/** Says which weights the next model starts from. */
function showWeights() {
  const arch = $('arch').value;
  const box = $('weights-status');
  // Tiny has no pretrained weights: show the box unticked, and restore the choice after.
  const tiny = arch === 'tiny';
  if (tiny && !$('pretrained').disabled) state.wantPretrained = $('pretrained').checked;
  if (!tiny && $('pretrained').disabled && !state.busy) $('pretrained').checked = state.wantPretrained ?? true;
  $('pretrained').disabled = tiny || state.busy;
  if (tiny) $('pretrained').checked = false;
  box.classList.remove('warn');
  if (tiny) box.textContent = 'The tiny ResNet always starts from random weights.';
  else if (!$('pretrained').checked) box.textContent = `${ARCHS[arch].name} from random weights (training from scratch needs far more data).`;
  else if (state.weights && state.weights.arch === arch) box.textContent = `${ARCHS[arch].name} from ${state.weights.name}.`;
  else if (arch === 'efficientnet_lite0') box.textContent = 'EfficientNet-Lite0 pretrained on ImageNet (bundled with Kiln, Apache-2.0).';
  else {
    box.textContent = `No ${ARCHS[arch].name} weights yet: download torchvision's ${ARCHS[arch].torchvision} (see the README), then drop it anywhere on the page or use the button below; or untick pretrained.`;
    box.classList.add('warn');
  }
}

/** A dropped .kiln: a trained model to use, or a pretrained backbone to train from. */
async function importKiln(file) {
  try {
    await importModel(file);
  } catch (e) {
    if (/pretrained backbone/.test(e.message)) await importWeights(file);
    else throw e;
  }
}

const WEIGHT_FILE = /\.(pth|pt|bin|safetensors)$/i;

async function importWeights(file) {
  setBusy(true);
  $('weights-status').textContent = `reading ${file.name}…`;
  try {
    const w = await state.kiln.importWeights(file);
    state.weights = w;
    $('arch').value = w.arch;
    $('pretrained').checked = true;
  } finally {
    setBusy(false);
    showWeights();
  }
}

async function showBatch() {
  setBusy(true);
  $('status').textContent = 'augmenting a batch…';
  try {
    const img = await state.kiln.showBatch({ n: 16, size: Number($('size').value), seed: Math.floor(Math.random() * 1e9), doFlip: $('flip').checked });
    const canvas = $('batch');
    canvas.width = img.width;
    canvas.height = img.height;
    canvas.getContext('2d').putImageData(img, 0, 0);
    // Small images (digits, tests) are shown enlarged, in whole pixels.
    const scale = Math.max(1, Math.floor(640 / img.width));
    canvas.style.width = `${img.width * scale}px`;
    canvas.hidden = false;
  } finally {
    $('status').textContent = '';
    setBusy(false);
  }
}

// ---- 3. Training with live charts ---------------------------------------------------------

function chartWidth(el) { return Math.max(260, el.clientWidth || 300); }

function makeCharts(epochs = 1) {
  state.lossChart?.destroy();
  state.metricChart?.destroy();
  const lossEl = $('loss-chart');
  const metricEl = $('metric-chart');
  lossEl.replaceChildren();
  metricEl.replaceChildren();
  state.lossData = [[], [], [], [], []];
  state.metricData = [[], [], []];
  state.step = 0;
  state.epochCount = 0;
  state.lossChart = new uPlot({
    width: chartWidth(lossEl), height: 220,
    scales: { x: { time: false } },
    axes: [{ label: 'batch' }, {}],
    series: [{ label: 'batch' },
      { label: 'train (raw)', stroke: '#f3b38a', width: 1 },
      { label: 'smoothed, frozen / one-cycle', stroke: '#c2410c', width: 2 },
      { label: 'smoothed, unfrozen', stroke: '#7c3aed', width: 2 },
      { label: 'valid', stroke: '#1d4ed8', width: 2, spanGaps: true, points: { show: true, size: 6 } }],
  }, state.lossData, lossEl);
  state.metricChart = new uPlot({
    width: chartWidth(metricEl), height: 220,
    scales: { x: { time: false, range: [0, Math.max(1, epochs - 1)] }, y: { range: [0, 1] } },
    axes: [{ label: 'epoch' }, {}],
    series: [{ label: 'epoch' },
      { label: 'accuracy', stroke: '#15803d', width: 2, points: { show: true, size: 6 } },
      { label: 'error_rate', stroke: '#b91c1c', width: 2, points: { show: true, size: 6 } }],
  }, state.metricData, metricEl);
}

const fmtTime = (s) => `${String(Math.floor(s / 60)).padStart(2, '0')}:${String(Math.floor(s % 60)).padStart(2, '0')}`;

function epochRow(e) {
  const tr = document.createElement('tr');
  for (const v of [e.phase, e.epoch, e.train_loss.toFixed(6), e.valid_loss.toFixed(6), e.error_rate.toFixed(6), e.accuracy.toFixed(6), fmtTime(e.seconds)]) {
    const td = document.createElement('td');
    td.textContent = v;
    tr.append(td);
  }
  return tr;
}

function totalEpochs() {
  const epochs = Number($('epochs').value);
  return $('method').value === 'fine_tune' ? epochs + Number($('freeze-epochs').value) : epochs;
}

const callbacks = {
  onBatch: (b) => {
    const d = state.lossData;
    d[0].push(state.step++);
    d[1].push(b.loss);
    d[2].push(b.phase === 'unfrozen' ? null : b.smooth_loss);
    d[3].push(b.phase === 'unfrozen' ? b.smooth_loss : null);
    d[4].push(null);
    state.lossChart.setData(d);
    $('progress').value = (b.iter + 1) / b.total_iters;
    const phase = b.phase === 'fit' ? '' : `${b.phase} · `;
    $('status').textContent = `${phase}epoch ${b.epoch + 1} · batch ${b.iter + 1}/${b.total_iters} · loss ${b.smooth_loss.toFixed(4)} · lr ${b.lrs[b.lrs.length - 1].toExponential(2)} · ${b.elapsed_s.toFixed(0)} s`;
  },
  onEpoch: (e) => {
    const d = state.lossData;
    d[0].push(state.step - 0.5); d[1].push(null); d[2].push(null); d[3].push(null); d[4].push(Number.isFinite(e.valid_loss) ? e.valid_loss : null);
    state.lossChart.setData(d);
    state.metricData[0].push(state.epochCount++);
    state.metricData[1].push(e.accuracy);
    state.metricData[2].push(e.error_rate);
    state.metricChart.setData(state.metricData);
    $('epochs-table').tBodies[0].append(epochRow(e));
  },
  onSkipped: (s) => $('skipped').tBodies[0].append(skipRow(s)),
};

async function train() {
  const epochs = Number($('epochs').value);
  const lr = Number($('lr').value);
  if (!(epochs >= 1)) throw new Error(`Epochs must be at least 1 (got ${$('epochs').value}).`);
  if (!(lr > 0 && lr < 10)) throw new Error(`Learning rate must be between 0 and 10 (got ${$('lr').value}).`);
  setBusy(true);
  $('status').textContent = 'preparing the model…';
  try {
    const created = await state.kiln.createLearner(learnerOptions());
    state.classes = created.classes;
    showCompute(created.microBatch);
    // A failed start (e.g. missing weights) leaves the last run's charts and table in place.
    makeCharts(totalEpochs());
    $('epochs-table').tBodies[0].replaceChildren();
    $('progress').value = 0;
    const origin = `${ARCHS[$('arch').value].name} ${created.pretrained ? `started from pretrained weights: ${created.pretrained}` : 'started from random weights'}`;
    $('status').textContent = origin;
    const report = $('method').value === 'fine_tune'
      ? await state.kiln.fineTune(epochs, { baseLr: lr, freezeEpochs: Number($('freeze-epochs').value) }, callbacks)
      : await state.kiln.fitOneCycle(epochs, lr, callbacks);
    state.trained = true;
    $('status').textContent = `${report.cancelled ? 'cancelled — the model keeps what it learned so far' : 'done'} · ${origin}`;
    $('model-status').textContent = 'model ready';
  } catch (e) {
    $('status').textContent = '';
    throw e;
  } finally {
    setBusy(false);
  }
  await interpret();
}

// ---- LR finder ----------------------------------------------------------------------------

async function lrFind() {
  setBusy(true);
  $('status').textContent = 'lr_find…';
  try {
    showCompute((await state.kiln.createLearner(learnerOptions())).microBatch);
    const r = await state.kiln.lrFind({}, {
      onBatch: (b) => { $('status').textContent = `lr_find · step ${b.iter + 1}/${b.total_iters} · lr ${b.lrs[0].toExponential(2)} · loss ${b.smooth_loss.toFixed(4)}`; },
    });
    drawLrFind(r);
    $('status').textContent = r.suggestions ? 'lr_find done: pick a suggestion' : 'lr_find: the loss diverged too soon to suggest a rate';
  } finally {
    setBusy(false);
  }
}

const suggestionColours = { minimum: '#b91c1c', steep: '#15803d', valley: '#c2410c', slide: '#7c3aed' };

function drawLrFind(r) {
  const box = $('lr-find-box');
  box.hidden = false;
  const el = $('lr-chart');
  state.lrChart?.destroy();
  el.replaceChildren();
  const names = r.suggestions ? Object.keys(suggestionColours) : [];
  // One series for the curve, one per suggestion (a single marked point each).
  const data = [r.lrs, r.losses.map((v) => (Number.isFinite(v) ? v : null))];
  for (const name of names) {
    const [lr, loss] = r.suggestions[name].point;
    const i = r.lrs.reduce((best, x, j) => (Math.abs(Math.log(x / lr)) < Math.abs(Math.log(r.lrs[best] / lr)) ? j : best), 0);
    data.push(r.lrs.map((_, j) => (j === i ? loss : null)));
  }
  state.lrChart = new uPlot({
    width: chartWidth(el), height: 240,
    scales: { x: { time: false, distr: 3 } },
    axes: [{ label: 'learning rate (log)', values: (u, v) => v.map((x) => (x == null ? '' : x.toExponential(0))) }, { label: 'loss' }],
    series: [{ label: 'lr', value: (u, v) => (v == null ? '--' : v.toExponential(2)) },
      { label: 'smoothed loss', stroke: '#1d4ed8', width: 2 },
      ...names.map((n) => ({ label: n, stroke: suggestionColours[n], width: 0, points: { show: true, size: 10, fill: suggestionColours[n] } }))],
  }, data, el);
  $('suggestions').replaceChildren(...names.map((n) => {
    const b = document.createElement('button');
    b.type = 'button';
    b.dataset.lr = r.suggestions[n].lr;
    b.style.borderColor = suggestionColours[n];
    b.textContent = `${n === 'minimum' ? 'minimum/10' : n}: ${r.suggestions[n].lr.toExponential(2)}`;
    b.addEventListener('click', () => { $('lr').value = Number(r.suggestions[n].lr.toPrecision(3)); $('lr').dispatchEvent(new Event('change')); });
    return b;
  }));
}

// ---- Interpretation -----------------------------------------------------------------------

async function interpret() {
  setBusy(true);
  $('interpret-status').textContent = 'predicting the validation set…';
  try {
    const r = await state.kiln.interpret({ k: 9, minVal: 1 });
    $('interpretation').hidden = false;
    const max = Math.max(1, ...r.confusion.flat());
    const table = $('confusion');
    const head = document.createElement('tr');
    head.append(document.createElement('th'), ...r.classes.map((c) => { const th = document.createElement('th'); th.textContent = c; th.title = c; return th; }));
    const rows = r.confusion.map((row, a) => {
      const tr = document.createElement('tr');
      const th = document.createElement('th');
      th.textContent = r.classes[a];
      th.title = r.classes[a];
      tr.append(th, ...row.map((v, p) => {
        const td = document.createElement('td');
        const t = v / max;
        td.textContent = v;
        td.title = `actual ${r.classes[a]}, predicted ${r.classes[p]}: ${v}`;
        td.style.background = `rgb(${247 - 239 * t}, ${251 - 203 * t}, ${255 - 148 * t})`;
        td.style.color = t > 0.5 ? '#fff' : 'inherit';
        return td;
      }));
      return tr;
    });
    table.replaceChildren(head, ...rows);
    $('most-confused').replaceChildren(...(r.mostConfused.length ? r.mostConfused.slice(0, 10).map((c) => {
      const li = document.createElement('li');
      li.textContent = `${c.actual} taken for ${c.predicted}: ${c.count}×`;
      return li;
    }) : [Object.assign(document.createElement('li'), { textContent: 'nothing confused: every validation image is right' })]));
    const canvas = $('top-losses');
    canvas.width = r.topLossesImage.width;
    canvas.height = r.topLossesImage.height;
    canvas.getContext('2d').putImageData(r.topLossesImage, 0, 0);
    const correct = r.confusion.reduce((s, row, i) => s + row[i], 0);
    $('interpret-status').textContent = `${correct} of ${r.nValid} validation images right`;
  } catch (e) {
    $('interpret-status').textContent = '';
    throw e;
  } finally {
    setBusy(false);
  }
}

// ---- 4. Predict ---------------------------------------------------------------------------

async function predict(file) {
  if (!state.trained) throw new Error('Train a model (or import one) before predicting.');
  const p = await state.kiln.predict(file);
  const img = $('predict-img');
  if (img.src) URL.revokeObjectURL(img.src);
  img.src = URL.createObjectURL(file);
  $('prediction').hidden = false;
  $('predict-label').textContent = `${p.label} (${(p.probs[p.index] * 100).toFixed(1)}%)`;
  const ranked = p.probs.map((pr, i) => [pr, i]).sort((a, b) => b[0] - a[0]).slice(0, 5);
  $('bars').replaceChildren(...ranked.map(([pr, i]) => {
    const row = document.createElement('div');
    row.className = 'bar';
    const name = document.createElement('span');
    name.textContent = state.classes[i];
    const track = document.createElement('div');
    track.className = 'track';
    const fill = document.createElement('div');
    fill.className = 'fill';
    fill.style.width = `${(pr * 100).toFixed(1)}%`;
    track.append(fill);
    const val = document.createElement('span');
    val.textContent = `${(pr * 100).toFixed(1)}%`;
    row.append(name, track, val);
    return row;
  }));
}

// ---- 5. Export / import -------------------------------------------------------------------

/** Export in one of Kiln's formats (.kiln, ONNX, fastai/PyTorch) and download it. */
async function exportModel(format) {
  const { method, file } = {
    kiln: { method: 'export', file: 'model.kiln' },
    onnx: { method: 'exportOnnx', file: 'model.onnx' },
    pytorch: { method: 'exportPyTorch', file: 'model.safetensors' },
  }[format];
  setBusy(true);
  try {
    const blob = await state.kiln[method]();
    const a = document.createElement('a');
    a.href = URL.createObjectURL(blob);
    a.download = file;
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 10_000);
    $('model-status').textContent = `exported ${file}, ${(blob.size / 1024).toFixed(0)} KiB`;
  } finally {
    setBusy(false);
  }
}

async function importModel(file) {
  const { classes } = await state.kiln.load(file);
  state.classes = classes;
  state.trained = true;
  $('model-status').textContent = `loaded ${file.name}: ${classes.length} classes (${classes.slice(0, 5).join(', ')}${classes.length > 5 ? ', …' : ''})`;
  setBusy(false);
}

// ---- wiring -------------------------------------------------------------------------------

function wire() {
  // Each picker is emptied after use, so picking the same file again fires again.
  const onPick = (id, use) => $(id).addEventListener('change', (e) => {
    const files = [...e.target.files];
    e.target.value = '';
    if (files.length) guard(() => use(files));
  });
  onPick('pick-folder', loadFiles);
  onPick('pick-files', loadFiles);
  onPick('weights-file', (f) => importWeights(f[0]));
  $('sample').addEventListener('click', () => guard(async () => {
    // Digits are 32 px scans: small settings train in seconds; flips would mirror the digits.
    // With no pretrained body for this tiny model, plain one-cycle training learns fastest.
    $('arch').value = 'tiny'; $('size').value = 32; $('presize').value = 36; $('bs').value = 32;
    $('method').value = 'fit_one_cycle'; $('freeze-label').hidden = true;
    $('epochs').value = 6; $('lr').value = 0.01; $('flip').checked = false;
    showWeights();
    await loadFiles(await state.kiln.sampleFiles());
  }));
  for (const id of ['label-regex', 'valid-pct', 'presize']) {
    $(id).addEventListener('change', () => state.files.length && guard(() => loadFiles(state.files)));
  }
  $('show-batch').addEventListener('click', () => guard(showBatch));
  $('lr-find').addEventListener('click', () => guard(lrFind));
  $('interpret').addEventListener('click', () => guard(interpret));
  $('method').addEventListener('change', () => {
    const ft = $('method').value === 'fine_tune';
    $('freeze-label').hidden = !ft;
    $('lr').value = ft ? 0.002 : 0.001;
  });
  $('arch').addEventListener('change', () => { clearError(); showWeights(); });
  // How a batch is split is known again only when the next model is made: drop the old split.
  for (const id of ['arch', 'bs', 'size']) $(id).addEventListener('input', () => showCompute(null));
  $('pretrained').addEventListener('change', () => { clearError(); showWeights(); });
  $('error').addEventListener('click', clearError);
  $('train').addEventListener('click', () => guard(train));
  $('cancel').addEventListener('click', () => guard(() => state.kiln.cancel()));
  onPick('predict-file', (f) => predict(f[0]));
  $('export').addEventListener('click', () => guard(() => exportModel('kiln')));
  $('export-onnx').addEventListener('click', () => guard(() => exportModel('onnx')));
  $('export-pytorch').addEventListener('click', () => guard(() => exportModel('pytorch')));
  onPick('import', (f) => importModel(f[0]));

  // Drops anywhere load a dataset, except on the predict area, which predicts.
  let depth = 0;
  window.addEventListener('dragenter', (e) => { e.preventDefault(); depth++; document.body.classList.add('dragging'); });
  window.addEventListener('dragleave', () => { if (--depth <= 0) { depth = 0; document.body.classList.remove('dragging'); } });
  window.addEventListener('dragover', (e) => e.preventDefault());
  window.addEventListener('drop', (e) => {
    e.preventDefault();
    depth = 0;
    document.body.classList.remove('dragging');
    if (state.busy) return showError(new Error('Kiln is busy; wait for it or press Cancel before dropping new files.'));
    const onPredict = e.target.closest && e.target.closest('#predict-section');
    guard(async () => {
      const files = await filesFromDrop(e.dataTransfer);
      if (files.length === 1 && WEIGHT_FILE.test(files[0].name)) await importWeights(files[0]);
      else if (files.length === 1 && /\.(kiln|onnx)$/i.test(files[0].name)) await importKiln(files[0]);
      else if (onPredict) {
        if (files.length) await predict(files[0]);
      } else await loadFiles(files);
    });
  });
  window.addEventListener('resize', () => {
    for (const [chart, el] of [[state.lossChart, $('loss-chart')], [state.metricChart, $('metric-chart')], [state.lrChart, $('lr-chart')]]) {
      chart?.setSize({ width: chartWidth(el), height: 220 });
    }
  });
}

/** Where training runs, and how a batch is split to fit memory (Settings). */
function showCompute(microBatch) {
  const info = state.kiln?.info;
  if (!info) return;
  const simd = info.simd === 'relaxed' ? 'WebAssembly SIMD with relaxed fused multiply-add' : 'WebAssembly SIMD';
  const where = info.backend === 'webgpu' ? `WebGPU (${info.adapter})` : `CPU, ${info.threads} thread${info.threads === 1 ? '' : 's'}, ${simd}`;
  const bs = Number($('bs').value);
  const passes = microBatch ? Math.ceil(bs / microBatch) : 1;
  const split = passes > 1
    ? ` · each batch of ${bs} runs as ${passes} passes of ${Math.ceil(bs / passes)} images to fit memory (gradients are accumulated, so training still sees batches of ${bs})`
    : microBatch ? ` · batches of ${bs} in one pass` : '';
  $('compute').textContent = `Runs on ${where}${split}.`;
}

async function main() {
  wire();
  setBusy(false);
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
    state.kiln = await Kiln.create({ backend, threads: threads && Number(threads), simd });
  } catch (e) {
    $('backend').textContent = 'failed to start';
    return showError(e);
  }
  // The page's Kiln, for the browser console (and the end-to-end test's memory check).
  window.kiln = state.kiln;
  showBackend(state.kiln.info);
  // A lost GPU moves Kiln to the CPU (the failed call shows the error): say where it runs now.
  state.kiln.onRestart = (info, message) => showBackend(info, message);
  document.body.dataset.ready = 'true';
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
  // fastai's to_fp16: only where the GPU has half precision; otherwise say why.
  $('fp16').disabled = !!info.fp16Unavailable;
  if (info.fp16Unavailable) $('fp16').checked = false;
  $('fp16-why').textContent = info.fp16Unavailable ? `— not available: ${info.fp16Unavailable}` : '— f16 activations and gradients, f32 weights (this GPU has shader-f16)';
  const notices = [why, ...addressNotices, ...info.notices].filter(Boolean);
  $('notice').textContent = notices.join(' ');
  $('notice').hidden = notices.length === 0;
}

main();
