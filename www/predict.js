// 4. Predict: a new photo's class, with probability bars for the five likeliest; many photos
// (or folders) are sorted into a table instead (sort.js); Live classifies the camera (live.js).
// A model with one sigmoid per class shows every class above Predict's threshold slider, or
// "none of these": moving the slider re-derives that from the probabilities kept, at once.
import { $, el } from './dom.js';
import { NONE_OF_THESE, classThresh, page, shownClasses } from './state.js';
import { sortPhotos } from './sort.js';

/** Runs in the 'predicting' phase: one photo is shown with its bars, more go to the table. */
export function predictFiles(files) {
  return files.length === 1 ? predict(files[0]) : sortPhotos(files);
}

/** Runs in the 'predicting' phase. */
export async function predict(file) {
  if (page.modelClasses === null) throw new Error('Train a model (or import one) before predicting.');
  let p;
  try {
    p = await page.kiln.predict(file);
  } catch (e) {
    throw new Error(`${file.name} could not be classified: ${e.message}`);
  }
  const img = $('predict-img');
  if (img.src) URL.revokeObjectURL(img.src);
  img.src = URL.createObjectURL(file);
  $('prediction').hidden = false;
  showProbs(p, $('predict-label'), $('bars'), () => { img.alt = `${file.name}, predicted ${predictedClasses(p)}`; });
}

const pct = (pr) => `${(pr * 100).toFixed(1)}%`;

/** What a prediction shows as its class: the class and its probability; with one sigmoid per
 * class, each class above the threshold (or "none of these", with the likeliest). */
export function predictedText(p) {
  const t = classThresh();
  if (t === null) return `${p.label} (${pct(p.probs[p.index])})`;
  const shown = shownClasses(p, page.modelClasses, t);
  if (!shown.length) return `${NONE_OF_THESE} (likeliest: ${page.modelClasses[p.index]}, ${pct(p.probs[p.index])})`;
  return shown.map((c) => `${c} (${pct(p.probs[page.modelClasses.indexOf(c)])})`).join(', ');
}

/** The classes alone (what screen readers hear): the class, those above the threshold, or "none of these". */
export function predictedClasses(p) {
  const t = classThresh();
  if (t === null) return p.label;
  return shownClasses(p, page.modelClasses, t).join(', ') || NONE_OF_THESE;
}

/** The predictions on show, by their label element (the single one, Live's): the slider draws
 * them again, if they are of the current model. */
const onShow = new Map();

/** A prediction as its label (class and probability) and bars for the five likeliest classes;
 * Live (live.js) draws each frame's with it. `said(p)` follows each time it is drawn. */
export function showProbs(p, label, bars, said = () => {}) {
  onShow.set(label, { p, bars, said, version: page.modelVersion });
  const text = predictedText(p);
  label.textContent = text;
  said(p);
  const t = classThresh();
  const ranked = p.probs.map((pr, i) => [pr, i]).sort((a, b) => b[0] - a[0]).slice(0, 5);
  bars.replaceChildren(...ranked.map(([pr, i]) => el('div', { className: `bar${t !== null && !(pr > t) ? ' below' : ''}` },
    el('span', { textContent: page.modelClasses[i] }),
    el('div', { className: 'track' }, el('div', { className: 'fill', style: { width: pct(pr) } }),
      ...(t === null ? [] : [el('div', { className: 'cut', style: { left: pct(t) } })])),
    el('span', { textContent: pct(pr) }))));
}

/** A prediction no longer on show (Live's last, when Live starts again). */
export const forgetShown = (label) => { onShow.delete(label); };

/** The threshold slider: its value said, and every prediction on show derived again (no model run). */
export function wireThreshold() {
  $('predict-thresh').addEventListener('input', () => {
    $('predict-thresh-value').textContent = Number($('predict-thresh').value).toFixed(2);
    for (const [label, s] of onShow) if (s.version === page.modelVersion && label.isConnected) showProbs(s.p, label, s.bars, s.said);
  });
}
