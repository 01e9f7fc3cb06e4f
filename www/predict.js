// 4. Predict: a new photo's class, with probability bars for the five likeliest; many photos
// (or folders) are sorted into a table instead (sort.js); Live classifies the camera (live.js).
import { $, el } from './dom.js';
import { page } from './state.js';
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
  img.alt = `${file.name}, predicted ${p.label}`;
  $('prediction').hidden = false;
  showProbs(p, $('predict-label'), $('bars'));
}

/** A prediction as its label (class and probability) and bars for the five likeliest classes;
 * Live (live.js) draws each frame's with it. */
export function showProbs(p, label, bars) {
  label.textContent = `${p.label} (${(p.probs[p.index] * 100).toFixed(1)}%)`;
  const ranked = p.probs.map((pr, i) => [pr, i]).sort((a, b) => b[0] - a[0]).slice(0, 5);
  const pct = (pr) => `${(pr * 100).toFixed(1)}%`;
  bars.replaceChildren(...ranked.map(([pr, i]) => el('div', { className: 'bar' },
    el('span', { textContent: page.modelClasses[i] }),
    el('div', { className: 'track' }, el('div', { className: 'fill', style: { width: pct(pr) } })),
    el('span', { textContent: pct(pr) }))));
}
