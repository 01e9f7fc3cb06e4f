// 3. Train: fine_tune or fit_one_cycle with live charts (loss per batch, accuracy and error rate
// per epoch), fastai's epoch table, progress, and Cancel.
import uPlot from './vendor/uPlot.esm.js';
import { ARCHS } from './kiln.js';
import { $, chartWidth, el, fmtTime, guard, setStatus } from './dom.js';
import { page, setPhase, trainPlan, update } from './state.js';
import { learnerOptions, showCompute } from './settings.js';
import { addSkipped } from './dataset.js';
import { interpret } from './interpret.js';
import { cancelSaving } from './sort-zip.js';
import { cancelPredicting } from './sort.js';

const charts = { loss: null, metric: null };
let lossData;
let metricData;
let step = 0;
/** The last epoch (the model's running number) the metric chart's x axis reaches. */
let lastEpoch = 1;
/** The run's epochs in each phase: fine_tune's frozen and unfrozen ones share one progress bar. */
let phases = { frozen: 0, unfrozen: 0, fit: 0 };
/** Whether a one-cycle fit trains every layer (Train more after unfreeze): its loss is drawn as unfrozen. */
let fitUnfrozen = false;

export function makeCharts() {
  charts.loss?.destroy();
  charts.metric?.destroy();
  const lossEl = $('loss-chart');
  const metricEl = $('metric-chart');
  lossEl.replaceChildren();
  metricEl.replaceChildren();
  lossData = [[], [], [], [], []];
  metricData = [[], [], []];
  step = 0;
  lastEpoch = 1;
  charts.loss = new uPlot({
    width: chartWidth(lossEl), height: 220,
    scales: { x: { time: false } },
    axes: [{ label: 'batch' }, {}],
    series: [{ label: 'batch' },
      { label: 'train (raw)', stroke: '#f3b38a', width: 1 },
      { label: 'smoothed, frozen / one-cycle', stroke: '#c2410c', width: 2 },
      { label: 'smoothed, unfrozen', stroke: '#7c3aed', width: 2 },
      { label: 'valid', stroke: '#1d4ed8', width: 2, spanGaps: true, points: { show: true, size: 6 } }],
  }, lossData, lossEl);
  charts.metric = new uPlot({
    width: chartWidth(metricEl), height: 220,
    // x is the model's epoch number: a model trained more goes on where it was.
    scales: { x: { time: false, range: () => [0, Math.max(1, lastEpoch)] }, y: { range: [0, 1] } },
    axes: [{ label: 'epoch' }, {}],
    series: [{ label: 'epoch' },
      { label: 'accuracy', stroke: '#15803d', width: 2, points: { show: true, size: 6 } },
      { label: 'error_rate', stroke: '#b91c1c', width: 2, points: { show: true, size: 6 } }],
  }, metricData, metricEl);
  describeCharts();
}

/** The charts' text equivalents (their boxes are role=img): what they show, in numbers. */
function describeCharts() {
  const [, raw, frozen, unfrozen, valid] = lossData;
  const smooth = raw.map((_, i) => frozen[i] ?? unfrozen[i]).filter((v) => v != null);
  const vals = valid.filter((v) => v != null);
  const f = (v) => v.toFixed(4);
  $('loss-chart').setAttribute('aria-label', smooth.length
    ? `Loss per batch: ${smooth.length} batches, smoothed training loss from ${f(smooth[0])} to ${f(smooth[smooth.length - 1])}${vals.length ? `; validation loss ${vals.map(f).join(', ')} after each epoch` : ''}.`
    : 'Loss per batch: no training yet.');
  const n = metricData[0].length;
  $('metric-chart').setAttribute('aria-label', n
    ? `Validation per epoch: after epoch ${metricData[0][n - 1] + 1}, accuracy ${f(metricData[1][n - 1])} and error_rate ${f(metricData[2][n - 1])} (every epoch's values are in the table below).`
    : 'Validation per epoch: no training yet.');
}

export function resizeTrainingCharts() {
  charts.loss?.setSize({ width: chartWidth($('loss-chart')), height: 220 });
  charts.metric?.setSize({ width: chartWidth($('metric-chart')), height: 220 });
}

/** fastai's epoch table row: phase, epoch, train_loss, valid_loss, error_rate, accuracy, time.
 * The epoch is the model's running number (`number`): Train more goes on from the last one. */
function epochRow(e) {
  const f = (v) => (v ?? NaN).toFixed(6);
  const cells = [e.phase, e.number, f(e.trainLoss), f(e.validLoss), f(e.errorRate), f(e.accuracy), fmtTime(e.seconds)];
  return el('tr', {}, ...cells.map((v) => el('td', { textContent: v })));
}

/** An epoch's validation metrics on the metric chart, at its running number. */
function plotEpoch(e) {
  metricData[0].push(e.number);
  metricData[1].push(e.accuracy);
  metricData[2].push(e.errorRate);
}

/**
 * The charts, table and progress bar for a run with `phases`' epochs: a new model's start
 * over; the same model trained further (`continues`) goes on after its `page.modelState.epochs`.
 * `unfrozen`: a one-cycle fit of every layer.
 */
export function startRun(runPhases, continues, { unfrozen = false } = {}) {
  fitUnfrozen = unfrozen;
  if (!continues) {
    makeCharts();
    $('epochs-table').tBodies[0].replaceChildren();
  }
  phases = { frozen: 0, unfrozen: 0, fit: 0, ...runPhases };
  const first = continues ? page.modelState?.epochs ?? $('epochs-table').tBodies[0].rows.length : 0;
  lastEpoch = first + phases.frozen + phases.unfrozen + phases.fit - 1;
  charts.metric.setData(metricData);
  $('progress').value = 0;
}

/** The model's saved epochs (a loaded .kiln's history) in the table and the metric chart. */
export function showHistory(history) {
  makeCharts();
  for (const e of history) plotEpoch(e);
  lastEpoch = history.length ? history[history.length - 1].number : 1;
  charts.metric.setData(metricData);
  $('epochs-table').tBodies[0].replaceChildren(...history.map(epochRow));
  describeCharts();
}

/** The model's epochs so far and whether it is frozen (state.js's modelState). */
export async function modelState() {
  const h = await page.kiln.history();
  return { epochs: h.history.length, frozen: h.frozen, history: h.history };
}

export const callbacks = {
  onBatch: (b) => {
    const unfrozen = b.phase === 'unfrozen' || (b.phase === 'fit' && fitUnfrozen);
    lossData[0].push(step++);
    lossData[1].push(b.loss);
    lossData[2].push(unfrozen ? null : b.smoothLoss);
    lossData[3].push(unfrozen ? b.smoothLoss : null);
    lossData[4].push(null);
    charts.loss.setData(lossData);
    // `iter` counts the phase's batches: place them on the whole run's bar.
    const perEpoch = b.totalIters / Math.max(1, phases[b.phase] || 1);
    const before = b.phase === 'unfrozen' ? phases.frozen * perEpoch : 0;
    const all = (phases.frozen + phases.unfrozen + phases.fit) * perEpoch || b.totalIters;
    $('progress').value = Math.min(1, (before + b.iter + 1) / all);
    // Once Cancel is pressed the status keeps saying so until the run stops.
    if (page.cancelling) return;
    const phase = b.phase === 'fit' ? '' : `${b.phase} · `;
    setStatus(`${phase}epoch ${b.epoch + 1} · batch ${b.iter + 1}/${b.totalIters} · loss ${b.smoothLoss.toFixed(4)} · lr ${b.lrs[b.lrs.length - 1].toExponential(2)} · ${b.elapsedS.toFixed(0)} s`);
  },
  onEpoch: (e) => {
    lossData[0].push(step - 0.5); lossData[1].push(null); lossData[2].push(null); lossData[3].push(null);
    lossData[4].push(Number.isFinite(e.validLoss) ? e.validLoss : null);
    charts.loss.setData(lossData);
    plotEpoch(e);
    charts.metric.setData(metricData);
    $('epochs-table').tBodies[0].append(epochRow(e));
    describeCharts();
  },
  onSkipped: addSkipped,
};

/** The charts' data and the epoch table's rows (cell texts), as a project keeps them (project.js). */
export function trainingRecord() {
  return { loss: lossData, metric: metricData, rows: [...$('epochs-table').tBodies[0].rows].map((tr) => [...tr.cells].map((td) => td.textContent)) };
}

/** Show a kept record again (`record` checked by the caller: arrays of numbers or null, rows
 * of cell texts); `more`: epochs the model trained since (elsewhere: the CLI), drawn as
 * training draws them. */
export function restoreTraining(record, more = []) {
  makeCharts();
  lossData = record.loss.map((s) => s.slice());
  metricData = record.metric.map((s) => s.slice());
  step = lossData[0].reduce((n, x) => Math.max(n, Math.floor(x) + 1), 0);
  // The metric chart's x axis runs to the model's last epoch (its running number).
  lastEpoch = Math.max(1, metricData[0].at(-1) ?? 0, ...more.map((e) => e.number));
  charts.loss.setData(lossData);
  charts.metric.setData(metricData);
  $('epochs-table').tBodies[0].replaceChildren(...record.rows.map((r) => el('tr', {}, ...r.map((v) => el('td', { textContent: v })))));
  for (const e of more) callbacks.onEpoch(e);
  describeCharts();
}

/** Runs in the 'training' phase and ends by interpreting the validation set. */
export async function train() {
  const epochs = Number($('epochs').value);
  const lr = Number($('lr').value);
  const fine = $('method').value === 'fine_tune';
  const freeze = Number($('freeze-epochs').value);
  const said = (id) => $(id).value.trim() || 'empty';
  if (!Number.isInteger(epochs) || epochs < 1) throw new Error(`Epochs must be a whole number, 1 or more (it is ${said('epochs')}): set how many times training goes through the photos.`);
  if (fine && (!Number.isInteger(freeze) || freeze < 0)) throw new Error(`Frozen epochs must be a whole number, 0 or more (it is ${said('freeze-epochs')}).`);
  if (!(lr > 0 && lr < 10)) throw new Error(`Learning rate must be more than 0 and less than 10, such as 0.002 (it is ${said('lr')}); lr_find suggests one.`);
  setStatus('preparing the model…');
  try {
    // An imported model with this dataset's classes and its own Settings is trained on (the
    // Train section says so before); anything else starts a new model.
    const plan = trainPlan();
    const options = learnerOptions();
    const created = plan.continues
      ? { classes: page.modelClasses, pretrained: null, microBatch: null }
      : await page.kiln.createLearner(options);
    // One sigmoid per class: fastai names the metric accuracy_multi (the run's model's kind).
    const multi = plan.continues ? !!page.modelOptions?.multiLabel : !!options.multiLabel;
    const origin = plan.continues
      ? `continued ${page.modelName}`
      : `${ARCHS[$('arch').value].name} ${created.pretrained ? `started from pretrained weights: ${created.pretrained}` : 'started from random weights'}`;
    // A new model: until it has trained, nothing can be predicted or exported from it.
    if (!plan.continues) update({ modelClasses: null, modelOrigin: null, modelOptions: null, modelState: null });
    if (created.microBatch) showCompute(created.microBatch);
    if (page.cancelling) return setStatus('cancelled before training started');
    // A failed start (e.g. missing weights) leaves the last run's charts and table in place; a
    // continued model's go on.
    startRun(fine ? { frozen: freeze, unfrozen: epochs } : { fit: epochs }, plan.continues);
    $('metric-head').textContent = multi ? 'accuracy_multi' : 'accuracy';
    setStatus(origin);
    const report = fine
      ? await page.kiln.fineTune(epochs, { baseLr: lr, freezeEpochs: freeze }, callbacks)
      : await page.kiln.fitOneCycle(epochs, lr, callbacks);
    // Cancelled or not, the model keeps what it learned; it is not in a file until exported.
    const { epochs: n, frozen } = await modelState();
    update({ modelClasses: created.classes, modelOrigin: 'trained', trainedOptions: plan.continues ? null : { multiLabel: multi, thresh: options.thresh ?? 0.5 }, modelSaved: false, modelVersion: page.modelVersion + 1, modelState: { epochs: n, frozen } });
    setStatus(`${report.cancelled ? 'cancelled — the model keeps what it learned so far' : 'done'} · ${origin}`);
    $('model-status').textContent = `model ready (${created.classes.length} classes): export it to keep it`;
  } catch (e) {
    setStatus('');
    throw e;
  }
  setPhase('interpreting');
  await interpret();
}

/** Cancel stops a fit or lr_find before its next batch (enabled only while one runs): said
 * at once, and Cancel stays disabled until the run has stopped. */
export function wireCancel() {
  $('cancel').addEventListener('click', () => guard(async () => {
    // Predict's run stops the same way, whichever Cancel is pressed.
    if (page.phase === 'predicting' || page.phase === 'saving') return cancelSorting();
    update({ cancelling: true });
    setStatus('cancelling… (stopping before the next batch)');
    await page.kiln.cancel();
  }));
  $('sort-cancel').addEventListener('click', () => guard(cancelSorting));
}

/** Cancel while predicting many photos (they stop after the chunk in flight; the rows so far
 * stay) or writing their zip (stopped at once, no file kept). */
async function cancelSorting() {
  update({ cancelling: true });
  if (page.phase === 'saving') return cancelSaving();
  $('sort-status').textContent = 'cancelling… (stopping after the photos in flight)';
  cancelPredicting();
}
