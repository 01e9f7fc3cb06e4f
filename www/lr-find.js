// lr_find: loss against learning rate on a log axis, the four suggestions marked; clicking a
// suggestion sets a learning rate. Settings' lr_find runs on a fresh model; Train more's
// (train-more.js) draws its run on the current model here too.
import uPlot from './vendor/uPlot.esm.js';
import { $, chartWidth, el, setStatus } from './dom.js';
import { page, render, update } from './state.js';
import { learnerOptions, showCompute } from './settings.js';

/** The charts drawn, by their box's id (Settings' lr_find, and Train more's on the model). */
const charts = new Map();
const colours = { minimum: '#b91c1c', steep: '#15803d', valley: '#c2410c', slide: '#7c3aed' };

/** Runs on a fresh model of the current settings (the trained one is replaced). */
export async function lrFind() {
  setStatus('lr_find…');
  try {
    showCompute((await page.kiln.createLearner(learnerOptions())).microBatch);
    // lr_find runs on a new model: the one trained or imported before is gone.
    update({ modelClasses: null, modelOrigin: null, modelOptions: null, modelState: null });
    if (page.cancelling) return setStatus('lr_find cancelled before it started');
    const r = await page.kiln.lrFind({}, lrFindProgress);
    drawLrFind(r, { box: 'lr-find-box', chart: 'lr-chart', suggestions: 'suggestions', pick: 'lr' });
    sayDone(r);
  } catch (e) {
    setStatus('');
    throw e;
  }
}

/** lr_find's progress in the status line (once Cancel is pressed it keeps saying so). */
export const lrFindProgress = {
  onBatch: (b) => page.cancelling || setStatus(`lr_find · step ${b.iter + 1}/${b.totalIters} · lr ${b.lrs[0].toExponential(2)} · loss ${b.smoothLoss.toFixed(4)}`),
};

/** The status after lr_find (`r`): done, cancelled, or no suggestion to pick. */
export function sayDone(r, what = 'lr_find') {
  const picks = suggestionNames(r).length ? ': pick a suggestion' : '';
  if (r.cancelled) setStatus(`${what} cancelled after ${r.lrs.length} step${r.lrs.length === 1 ? '' : 's'}: the curve so far is drawn${picks}`);
  else setStatus(picks ? `${what} done${picks}` : `${what} done, but the loss rose too soon to suggest a rate: read one off the curve, where it falls fastest`);
}

/**
 * lr_find's result `r` drawn in the element `chart` (inside `box`, shown), with a button per
 * suggestion in `suggestions`; clicking one puts its rate in the field `pick` (`to` ends each
 * button's text, e.g. ' as "to"').
 * @param {any} r @param {{box: string, chart: string, suggestions: string, pick: string, to?: string}} where
 */
export function drawLrFind(r, where) {
  $(where.box).hidden = false;
  const box = $(where.chart);
  charts.get(where.chart)?.destroy();
  box.replaceChildren();
  const names = suggestionNames(r);
  // One series for the curve, one per suggestion (a single marked point each).
  const data = [r.lrs, r.losses.map((v) => (Number.isFinite(v) ? v : null))];
  for (const name of names) {
    const [lr, loss] = r.suggestions[name].point;
    const i = r.lrs.reduce((best, x, j) => (Math.abs(Math.log(x / lr)) < Math.abs(Math.log(r.lrs[best] / lr)) ? j : best), 0);
    data.push(r.lrs.map((_, j) => (j === i ? loss : null)));
  }
  const chart = new uPlot({
    width: chartWidth(box), height: 240,
    scales: { x: { time: false, distr: 3 } },
    axes: [{ label: 'learning rate (log)', values: (u, v) => v.map((x) => (x == null ? '' : x.toExponential(0))) }, { label: 'loss' }],
    series: [{ label: 'lr', value: (u, v) => (v == null ? '--' : v.toExponential(2)) },
      { label: 'smoothed loss', stroke: '#1d4ed8', width: 2 },
      ...names.map((n) => ({ label: n, stroke: colours[n], width: 0, points: { show: true, size: 10, fill: colours[n] } }))],
  }, data, box);
  charts.set(where.chart, chart);
  // The chart's text equivalent (its box is role=img).
  const e = (x) => (x == null ? '--' : x.toExponential(2));
  const ok = r.losses.map((l, j) => [l, r.lrs[j]]).filter(([l]) => Number.isFinite(l));
  const [minLoss, atLr] = ok.reduce((m, x) => (x[0] < m[0] ? x : m), [Infinity, NaN]);
  box.setAttribute('aria-label', `lr_find: smoothed loss at ${r.lrs.length} learning rates from ${e(r.lrs[0])} to ${e(r.lrs[r.lrs.length - 1])}${ok.length ? `, lowest ${minLoss.toFixed(4)} at ${e(atLr)}` : ''}; suggestions: ${names.map((n) => `${n} ${e(r.suggestions[n].lr)}`).join(', ') || 'none'}.`);
  $(where.suggestions).replaceChildren(...names.map((n) => {
    const { lr } = r.suggestions[n];
    const b = el('button', { type: 'button', textContent: `${n === 'minimum' ? 'minimum/10' : n}: ${lr.toExponential(2)}${where.to || ''}`, style: { borderColor: colours[n] } });
    b.dataset.lr = lr;
    b.addEventListener('click', () => { $(where.pick).value = Number(lr.toPrecision(3)); $(where.pick).dispatchEvent(new Event('change')); });
    return b;
  }));
  render();
}

/** The suggestions lr_find made (none when it stopped too early, some when cancelled). */
const suggestionNames = (r) => Object.keys(colours).filter((n) => r.suggestions && r.suggestions[n]);

export function resizeLrChart() {
  for (const [id, chart] of charts) chart.setSize({ width: chartWidth($(id)), height: 240 });
}
