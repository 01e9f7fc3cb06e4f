// 4. Predict, many photos: sort a whole folder with the model. Results stream in from the
// worker (kiln.predictMany) into a table that draws only the rows in view, so 10,000 photos
// never block the page: thumbnails are decoded for visible rows only (a few hundred kept),
// sorting and filtering work on the rows' numbers, and nothing holds a photo's bytes (the
// Files are handles; Download sorted reads them again, sort-zip.js).
import { pathOf } from './kiln.js';
import { $, el } from './dom.js';
import { NONE_OF_THESE, modelThresh, page, shownClasses, update } from './state.js';

/** Each row is one photo: `n` its place in the order predicted, `p` and `p2` the top and
 * runner-up probabilities, `probs` every class's (in `sorting.classes` order). */
export const sorting = { classes: [], rank: [], rows: [], bad: [], total: 0, done: 0, cancelled: false, multi: false };
/** The rows shown: filtered and sorted. */
let view = [];
let order = { key: 'n', dir: 1 };
const ROW = 44;
const THUMB = 72;
const collator = new Intl.Collator(undefined, { numeric: true });

export const threshold = () => {
  const t = Number($('sort-threshold').value);
  return t >= 0 && t <= 1 ? t : 0;
};

/** With one sigmoid per class (the table's model, `sorting.multi`): Predict's class threshold
 * slider, which the rows' classes follow; null for a softmax model. */
export const classThreshold = () => (sorting.multi ? Number($('predict-thresh').value) : null);
/** A row's classes: its one class, or with one sigmoid per class those above `t` (none: none of these). */
export const rowClasses = (r, t = classThreshold()) => (t === null ? [r.label] : !(r.p > t) ? [] : shownClasses(r, sorting.classes, t));
/** As `kiln predict --sort-into`: unsure when below the unsure threshold, or of several classes. */
export const isUnsure = (r) => {
  const c = rowClasses(r);
  return c.length > 1 || (c.length === 1 && r.p < threshold());
};

/**
 * Files in the order `kiln predict` takes a folder: by path, folder by folder, each name
 * compared as the CLI compares them (code units, which is UTF-8's order but for astral
 * characters); hidden files and folders (.DS_Store, .git/) are left out.
 */
export function photoOrder(files) {
  // With each '/' as U+0000, below any character of a name, one string comparison orders paths
  // folder by folder (10,000 paths split and compared part by part took too long).
  const keyed = [];
  for (const f of files) {
    const path = pathOf(f);
    if (!/(^|\/)\./.test(path)) keyed.push({ f, key: path.replaceAll('/', '\0') });
  }
  keyed.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  return keyed.map((k) => k.f);
}

/** Set while predicting: Cancel aborts it (between chunks in the worker, or before they start). */
let stop = null;
export const cancelPredicting = () => stop?.abort();

/** Runs in the 'predicting' phase: every photo in `files` through the model, batch by batch. */
export async function sortPhotos(files) {
  if (page.modelClasses === null) throw new Error('Train a model (or import one) before predicting.');
  const photos = photoOrder(files);
  if (!photos.length) throw new Error(`Only hidden files were found (${files.slice(0, 3).map(pathOf).join(', ')}): drop photos or folders of photos.`);
  reset(page.modelClasses, photos.length, modelThresh() !== null);
  const t0 = performance.now();
  status(`predicting 0 of ${count(photos.length)}…`);
  try {
    const onProgress = ({ done, total }) => {
      sorting.done = done;
      $('sort-progress').value = done / total;
      if (!page.cancelling) status(`predicting ${num(done)} of ${count(total)}…`);
    };
    stop = new AbortController();
    for await (const batch of page.kiln.predictMany(photos, { onProgress, signal: stop.signal })) addResults(batch);
  } catch (e) {
    throw new Error(`Predicting stopped after ${num(sorting.done)} of ${count(photos.length)}: ${e.message}`);
  } finally {
    stop = null;
    update({ sorted: sorting.rows.length });
    refresh();
  }
  sorting.cancelled = sorting.done < photos.length;
  if (sorting.cancelled) $('sort-progress').value = sorting.done / photos.length;
  const s = ((performance.now() - t0) / 1000).toFixed(1);
  status(sorting.cancelled
    ? `cancelled after ${num(sorting.done)} of ${count(photos.length)}: the table and Download sorted cover those`
    : `all ${count(photos.length)} done in ${s} s`);
}

const num = (n) => n.toLocaleString('en');
const count = (n) => `${num(n)} photo${n === 1 ? '' : 's'}`;
const status = (text) => { $('sort-status').textContent = text; };
const pct = (p) => `${(p * 100).toFixed(1)}%`;

/** A new run: the old table goes (its thumbnails closed), the filter lists the model's classes. */
function reset(classes, total, multi) {
  // Each class's place in alphabetical order, for sorting by class.
  const rank = classes.map((c) => classes.filter((d) => collator.compare(d, c) < 0).length);
  Object.assign(sorting, { classes: [...classes], rank, rows: [], bad: [], total, done: 0, cancelled: false, multi });
  view = [];
  rowEls.clear();
  wanted.clear();
  drawn = { first: -1, rows: [], threshold: '' };
  update({ sorted: 0 });
  const filter = $('sort-filter');
  const keep = filter.value;
  filter.replaceChildren(el('option', { value: '', textContent: 'every class' }),
    ...classes.map((c) => el('option', { value: `class:${c}`, textContent: c })),
    ...(multi ? [el('option', { value: 'none', textContent: NONE_OF_THESE })] : []),
    el('option', { value: 'unsure', textContent: 'unsure (below the threshold)' }));
  filter.value = [...filter.options].some((o) => o.value === keep) ? keep : '';
  $('sort-bad').tBodies[0].replaceChildren();
  $('sort-bad-box').hidden = true;
  $('sorting').hidden = false;
  $('prediction').hidden = true;
  $('sort-progress').value = 0;
  $('sort-wrap').scrollTop = 0;
  refresh();
}

function addResults(batch) {
  const fresh = [];
  for (const r of batch) {
    const path = pathOf(r.file) || r.name;
    if (r.error !== undefined) {
      sorting.bad.push({ path, error: r.error });
      $('sort-bad').tBodies[0].append(el('tr', {}, el('td', { textContent: path }), el('td', { textContent: r.error })));
      continue;
    }
    let second = -1;
    for (let i = 0; i < r.probs.length; i++) if (i !== r.index && (second < 0 || r.probs[i] > r.probs[second])) second = i;
    const row = { n: sorting.rows.length, path, file: r.file, label: r.label, index: r.index, p: r.probs[r.index], second, p2: second < 0 ? 0 : r.probs[second], probs: Float32Array.from(r.probs) };
    sorting.rows.push(row);
    fresh.push(row);
  }
  if (sorting.bad.length) {
    $('sort-bad-box').hidden = false;
    $('sort-bad-title').textContent = `${sorting.bad.length} file${sorting.bad.length === 1 ? '' : 's'} could not be read`;
  }
  // In the order predicted, new rows only need appending; any other order sorts again.
  if (order.key === 'n' && order.dir === 1) {
    const keep = matcher();
    for (const r of fresh) if (keep(r)) view.push(r);
    counts();
    schedule();
  } else refresh();
}

/** Which rows the filter shows. */
function matcher() {
  const f = $('sort-filter').value;
  if (f === 'unsure') return isUnsure;
  const t = classThreshold();
  if (f === 'none') return (r) => rowClasses(r, t).length === 0;
  if (f.startsWith('class:')) {
    const c = f.slice(6);
    return (r) => rowClasses(r, t).includes(c);
  }
  return () => true;
}

// Comparisons of numbers and code units only: a collator over 10,000 rows took too long.
const KEYS = {
  n: (a, b) => a.n - b.n,
  file: (a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : a.n - b.n),
  class: (a, b) => classRank(a) - classRank(b) || b.p - a.p || a.n - b.n,
  p: (a, b) => a.p - b.p || a.n - b.n,
  second: (a, b) => a.p2 - b.p2 || a.n - b.n,
};

/** A row's place by class: its likeliest class's, after every class when it is none of them. */
function classRank(r) {
  const t = classThreshold();
  return t !== null && !(r.p > t) ? sorting.classes.length : sorting.rank[r.index];
}

/** Filter and sort every row again (10,000 rows: a few ms), then draw. */
let refreshing = 0;
function refresh() {
  if (refreshing) return;
  refreshing = requestAnimationFrame(() => {
    refreshing = 0;
    const keep = matcher();
    const cmp = KEYS[order.key];
    view = sorting.rows.filter(keep).sort(order.dir === 1 ? cmp : (a, b) => cmp(b, a));
    counts();
    draw();
  });
}

/** The counts line: per class, unsure, unreadable. */
function counts() {
  const per = new Map([...sorting.classes, NONE_OF_THESE].map((c) => [c, 0]));
  let unsure = 0;
  const t = threshold();
  const ct = classThreshold();
  for (const r of sorting.rows) {
    const cs = rowClasses(r, ct);
    for (const c of cs.length ? cs : [NONE_OF_THESE]) per.set(c, per.get(c) + 1);
    if (cs.length > 1 || (cs.length === 1 && r.p < t)) unsure += 1;
  }
  const classes = [...per].filter(([, n]) => n).map(([c, n]) => `${c} ${n.toLocaleString('en')}`).join(', ');
  const parts = [`${count(sorting.rows.length)}${classes ? `: ${classes}` : ''}`];
  if (t > 0 || ct !== null) parts.push(`${unsure.toLocaleString('en')} unsure (${ct === null ? '' : 'several classes, or '}below ${pct(t)})`);
  if (sorting.bad.length) parts.push(`${sorting.bad.length.toLocaleString('en')} could not be read`);
  if (view.length !== sorting.rows.length) parts.push(`showing ${view.length.toLocaleString('en')}`);
  $('sort-counts').textContent = parts.join(' · ');
}

let drawing = 0;
const schedule = () => { drawing ||= requestAnimationFrame(() => { drawing = 0; draw(); }); };

/** What draw() last put in the table: the same rows at the same threshold are left alone. */
let drawn = { first: -1, rows: [], threshold: '' };

/** The rows in view (and a few around them) between two spacers as tall as the rest. */
function draw() {
  const wrap = $('sort-wrap');
  const body = $('sort-table').tBodies[0];
  const first = Math.max(0, Math.floor(wrap.scrollTop / ROW) - 4);
  const shown = view.slice(first, first + Math.ceil((wrap.clientHeight || 400) / ROW) + 8);
  const t = `${threshold()} ${classThreshold()}`;
  const below = (view.length - first - shown.length) * ROW;
  if (first === drawn.first && t === drawn.threshold && shown.length === drawn.rows.length && shown.every((r, i) => r === drawn.rows[i]) && body.rows.length) {
    // Rows streaming in below the view change only the lower spacer.
    body.lastElementChild.firstElementChild.style.height = `${below}px`;
    return;
  }
  drawn = { first, rows: shown, threshold: t };
  const spacer = (h) => el('tr', { className: 'spacer' }, el('td', { colSpan: 5, style: { height: `${h}px` } }));
  wanted.clear();
  body.replaceChildren(spacer(first * ROW), ...shown.map(rowElement), spacer(below));
  pump();
}

// Table rows, kept for the last 400 photos drawn (each with its thumbnail painted once, from a
// bitmap decoded off the main thread at 72 px and closed at once); rows in view first.
const rowEls = new Map();
const wanted = new Set();
let decoding = 0;

function rowElement(r) {
  let tr = rowEls.get(r);
  if (tr) rowEls.delete(r);
  else {
    tr = el('tr', { className: 'row', title: r.path },
      // The thumbnail is decoration: the next cell names the photo.
      el('td', {}, el('canvas', { width: THUMB, height: THUMB, ariaHidden: 'true' })),
      el('td', { className: 'file', textContent: r.path }),
      el('td', { className: 'label' }),
      el('td', { className: 'num', textContent: pct(r.p) }),
      el('td', { className: 'second', textContent: r.second < 0 ? '—' : `${sorting.classes[r.second]} ${pct(r.p2)}` }));
    tr.thumb = 'none';
  }
  rowEls.set(r, tr);
  for (const [old] of rowEls) {
    if (rowEls.size <= 400) break;
    rowEls.delete(old);
  }
  if (tr.thumb === 'none') wanted.add(r);
  const unsure = isUnsure(r);
  const cs = rowClasses(r);
  const text = cs.join(', ') || NONE_OF_THESE;
  if (tr.unsure !== unsure || tr.shown !== text) {
    tr.unsure = unsure;
    tr.shown = text;
    tr.classList.toggle('unsure', unsure);
    const why = cs.length > 1 ? 'several classes' : `below the threshold of ${pct(threshold())}`;
    const flag = unsure ? [' ', el('span', { className: 'flag', textContent: 'unsure', title: why })] : [];
    tr.children[2].replaceChildren(text, ...flag);
  }
  return tr;
}

function pump() {
  while (decoding < 3 && wanted.size) {
    const r = wanted.values().next().value;
    wanted.delete(r);
    const tr = rowEls.get(r);
    if (!tr || tr.thumb !== 'none') continue;
    tr.thumb = 'decoding';
    decoding += 1;
    createImageBitmap(r.file, { resizeWidth: THUMB, resizeQuality: 'medium' })
      .then((bm) => { paintThumb(tr.querySelector('canvas'), bm); bm.close(); }, () => {})
      .finally(() => { tr.thumb = 'done'; decoding -= 1; pump(); });
  }
}

/** The bitmap's centre square, as the model sees a photo. */
function paintThumb(canvas, bm) {
  const s = Math.min(bm.width, bm.height);
  canvas.getContext('2d').drawImage(bm, (bm.width - s) / 2, (bm.height - s) / 2, s, s, 0, 0, THUMB, THUMB);
}

/** The table's controls: sort by a column (again: the other way), filter, threshold, scroll. */
export function wireSorting() {
  for (const b of document.querySelectorAll('#sort-table th button')) {
    b.addEventListener('click', () => {
      const key = b.dataset.key;
      order = order.key === key ? { key, dir: -order.dir } : { key, dir: key === 'p' || key === 'second' ? -1 : 1 };
      for (const th of document.querySelectorAll('#sort-table th')) th.removeAttribute('aria-sort');
      b.parentElement.setAttribute('aria-sort', order.dir === 1 ? 'ascending' : 'descending');
      refresh();
    });
  }
  $('sort-filter').addEventListener('change', refresh);
  // Flags follow the threshold as it is typed (a value outside 0–1 flags nothing; Download
  // sorted refuses it, sort-zip.js).
  $('sort-threshold').addEventListener('input', refresh);
  // The classes of a one-sigmoid-per-class model's rows follow Predict's class threshold.
  $('predict-thresh').addEventListener('input', () => { if (sorting.multi) refresh(); });
  $('sort-wrap').addEventListener('scroll', schedule, { passive: true });
}
