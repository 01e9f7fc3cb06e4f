// 5. Interpret: fastai's ClassificationInterpretation on the validation set: the confusion
// matrix as a heat map, the most confused pairs, the top losses; with one sigmoid per class,
// each class's hits, misses and wrong calls (for photos of several labels, or none, instead of
// the matrix).
import { $, el, paint } from './dom.js';
import { page } from './state.js';

/** Runs in the 'interpreting' phase (after training, or from its button). */
export async function interpret() {
  $('interpret-status').textContent = 'predicting the validation set…';
  try {
    const r = await page.kiln.interpret({ k: 9, minVal: 1 });
    $('interpretation').hidden = false;
    const max = Math.max(1, ...r.confusion.flat());
    const head = el('tr', {}, el('th', {}, el('span', { className: 'sr', textContent: 'actual \\ predicted' })), ...r.classes.map((c) => el('th', { scope: 'col', textContent: c, title: c })));
    const rows = r.confusion.map((row, a) => el('tr', {},
      el('th', { scope: 'row', textContent: r.classes[a], title: r.classes[a] }),
      ...row.map((v, p) => {
        const t = v / max;
        const rgb = [247 - 239 * t, 251 - 203 * t, 255 - 148 * t];
        return el('td', {
          textContent: v,
          title: `actual ${r.classes[a]}, predicted ${r.classes[p]}: ${v}`,
          style: { background: `rgb(${rgb})`, color: ink(rgb) },
        });
      })));
    $('confusion').replaceChildren(head, ...rows);
    // A photo of several labels (or none) has no one cell: the matrix is for one label a photo.
    $('confusion-box').hidden = !!r.multiLabel;
    perClass(r);
    const confused = r.mostConfused.slice(0, 10).map((c) => el('li', { textContent: `${c.actual} taken for ${c.predicted}: ${c.count}×` }));
    $('most-confused').replaceChildren(...(confused.length ? confused : [el('li', { textContent: 'nothing confused: every validation image is right' })]));
    $('top-losses').replaceChildren(...r.topLosses.map((t, i) => topLoss(t, r.topLossImages?.[i])));
    const correct = r.confusion.reduce((s, row, i) => s + row[i], 0);
    const sum = (k) => (r.perClass || []).reduce((n, c) => n + c[k], 0);
    $('interpret-status').textContent = r.multiLabel
      ? `${r.nValid} validation images: ${sum('tp')} of ${sum('tp') + sum('fn')} labels found, ${sum('fp')} given wrongly (threshold ${r.thresh.toFixed(2)})`
      : `${correct} of ${r.nValid} validation images right`;
  } catch (e) {
    $('interpret-status').textContent = '';
    throw e;
  }
}

/** A sigmoid model's table: each class's hits (tp), misses (fn), wrong calls (fp), precision
 * and recall at its threshold; hidden for a softmax (`thresh` null). */
function perClass(r) {
  const sigmoid = r.thresh !== null && r.thresh !== undefined && Array.isArray(r.perClass);
  $('per-class-box').hidden = !sigmoid;
  if (!sigmoid) return $('per-class').tBodies[0].replaceChildren();
  $('per-class-note').textContent = `(one sigmoid each, threshold ${r.thresh.toFixed(2)}, ${r.nValid} validation images)`;
  // Precision and recall of nothing (no photo given, or of, the class) are not numbers: a dash.
  const ratio = (n, d) => (d ? (n / d).toFixed(2) : '—');
  $('per-class').tBodies[0].replaceChildren(...r.perClass.map((c) => el('tr', {},
    el('th', { scope: 'row', textContent: c.class, title: c.class }),
    ...[c.tp, c.fn, c.fp, ratio(c.tp, c.tp + c.fp), ratio(c.tp, c.tp + c.fn)].map((v) => el('td', { textContent: String(v) })))));
}

/** Black or white text, whichever contrasts more with `rgb` (WCAG: at least 4.58:1 either way). */
function ink(rgb) {
  const [r, g, b] = rgb.map((c) => (c /= 255) <= 0.04045 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4);
  const lum = 0.2126 * r + 0.7152 * g + 0.0722 * b;
  return (lum + 0.05) / 0.05 >= 1.05 / (lum + 0.05) ? '#000' : '#fff';
}

/** One top loss: the image the model saw, and a caption in text (not drawn into the image). */
function topLoss(t, image) {
  const canvas = el('canvas', { title: t.name });
  // The image's text equivalent, as fastai titles it.
  canvas.setAttribute('role', 'img');
  canvas.setAttribute('aria-label', `${t.name}: predicted ${t.predicted}, actual ${t.actual}, loss ${t.loss.toFixed(2)}`);
  if (image) paint(canvas, image);
  const line = (label, value) => el('div', {}, `${label} `, el('b', { textContent: value }));
  return el('figure', {}, canvas, el('figcaption', {},
    line('predicted', t.predicted),
    line('actual', t.actual),
    line('loss', t.loss.toFixed(2)),
    line('probability of actual', t.probActual.toFixed(2))));
}
