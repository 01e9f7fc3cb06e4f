// 6. Clean: fastai's ImageClassifierCleaner. One class's training or validation photos, those
// the model finds hardest (highest loss) first, each with keep / delete / another class. The
// choices wait (across classes, splits and pages) until Apply changes the worker's dataset,
// never the user's files; Download changes gives the CSV the CLI's --changes reads.
import { pathOf } from './kiln.js';
import { $, download, el, guard } from './dom.js';
import { cleanerCurrent, isIdle, page, render, run, update } from './state.js';
import { showSummary } from './dataset.js';

const PER_PAGE = 24;
/** Thumbnails' object URLs, revoked when the grid is drawn again. */
const urls = [];
const SPLITS = { train: 'training', valid: 'validation' };

/** Runs in the 'cleaning' phase (Find the hardest photos): the model's loss on every photo of
 * the chosen split; choices not applied yet stay if the view was of this dataset and model. */
export async function openCleaner() {
  const c = page.cleaner;
  const keep = cleanerCurrent() ? c.pending : new Map();
  $('clean-grid').replaceChildren();
  update({ cleaner: { files: page.files, modelVersion: page.modelVersion, modelClasses: page.modelClasses, rows: {}, applied: new Map(), pending: keep, pageNo: 0, pages: 0 } });
  try {
    await computeSplit($('clean-split').value);
  } catch (e) {
    update({ cleaner: c });
    throw e;
  }
  const classes = page.datasetClasses;
  const was = $('clean-class').value;
  $('clean-class').replaceChildren(...classes.map((name) => el('option', { value: name, textContent: name })));
  if (classes.includes(was)) $('clean-class').value = was;
  drawGrid();
}

/** The rows of `split` (the worker's, highest loss first), and which files were changed. */
async function computeSplit(split) {
  const c = page.cleaner;
  $('clean-status').textContent = `computing the model's loss on every ${SPLITS[split]} photo…`;
  try {
    const r = await page.kiln.cleaner({ split });
    c.rows[split] = r.rows;
    c.applied = new Map((await page.kiln.changes()).map((ch) => [ch.file, ch]));
    $('clean-status').textContent = '';
  } catch (e) {
    $('clean-status').textContent = '';
    throw e;
  }
}

/** The current page of the chosen class's photos, each with its choice. */
function drawGrid() {
  const c = page.cleaner;
  const split = $('clean-split').value;
  const label = $('clean-class').value;
  c.split = split;
  const rows = (c.rows[split] || []).filter((r) => r.label === label);
  c.pages = Math.max(1, Math.ceil(rows.length / PER_PAGE));
  c.pageNo = Math.min(c.pageNo, c.pages - 1);
  for (const url of urls.splice(0)) URL.revokeObjectURL(url);
  const byPath = new Map(page.files.map((f) => [pathOf(f), f]));
  const shown = rows.slice(c.pageNo * PER_PAGE, (c.pageNo + 1) * PER_PAGE);
  $('clean-grid').replaceChildren(...(shown.length
    ? shown.map((r, i) => item(r, c.pageNo * PER_PAGE + i + 1, byPath.get(r.file)))
    : [el('p', { className: 'muted', textContent: `No ${SPLITS[split]} photos of ${label}.` })]));
  $('clean-page').textContent = `${label}: ${rows.length} ${SPLITS[split]} photo${rows.length === 1 ? '' : 's'}, hardest first · page ${c.pageNo + 1} of ${c.pages}`;
  showPending();
  // The new choices (and the page buttons) enabled as the phase allows.
  render();
}

/** One photo: the image, its loss, the model's guess, and the choice for it. */
function item(r, rank, file) {
  const c = page.cleaner;
  const applied = c.applied.get(r.file);
  const img = el('img', { alt: `${r.file}, labelled ${r.label}`, loading: 'lazy' });
  if (file) {
    img.src = URL.createObjectURL(file);
    urls.push(img.src);
  }
  const choice = el('select', {},
    el('option', { value: 'keep', textContent: `keep as ${r.label}` }),
    el('option', { value: 'delete', textContent: 'delete' }),
    ...c.modelClasses.filter((k) => k !== r.label).map((k) => el('option', { value: `to:${k}`, textContent: `relabel ${k}` })));
  choice.dataset.file = r.file;
  const pending = c.pending.get(r.file);
  choice.value = !pending ? 'keep' : pending.newLabel === null ? 'delete' : `to:${pending.newLabel}`;
  // A file is changed once: the CLI refuses a CSV that changes one file twice.
  if (applied) choice.dataset.applied = 'true';
  choice.addEventListener('change', () => decide(r, choice.value));
  const line = (text, value) => el('div', {}, `${text} `, el('b', { textContent: value }));
  const name = r.file.split('/').pop();
  return el('figure', { className: applied ? 'applied' : '' }, img, el('figcaption', {},
    el('div', { className: 'file', title: r.file, textContent: `${rank}. ${name}` }),
    line('loss', r.loss.toFixed(2)),
    line('predicted', r.predicted),
    line(`probability of ${r.label}`, r.probLabel.toFixed(2)),
    applied ? el('div', { className: 'muted', textContent: applied.newLabel === null ? 'deleted' : `relabelled from ${applied.oldLabel}` }) : '',
    el('label', {}, el('span', { className: 'sr', textContent: `What to do with ${r.file}` }), choice)));
}

/** A choice made: kept until Apply (keep takes a pending one back). */
function decide(r, value) {
  const c = page.cleaner;
  if (value === 'keep') c.pending.delete(r.file);
  else c.pending.set(r.file, { file: r.file, oldLabel: r.label, newLabel: value === 'delete' ? null : value.slice(3) });
  showPending();
  render();
}

function showPending() {
  const n = page.cleaner.pending.size;
  $('clean-pending').textContent = n ? `${n} choice${n === 1 ? '' : 's'} to apply (kept while you switch class, split or page)` : '';
}

/** Runs in the 'cleaning' phase: the pending choices change the dataset in the worker (all or
 * none); the summary shows the new counts, and the views follow without computing again. */
export async function applyChanges() {
  const c = page.cleaner;
  const changes = [...c.pending.values()];
  const summary = await page.kiln.applyChanges(changes);
  c.pending.clear();
  for (const ch of changes) c.applied.set(ch.file, ch);
  // Deleted photos leave the views; relabelled ones move to their class (their loss is for
  // the old label: Find the hardest photos again to see the model's loss on the new one).
  const byFile = new Map(changes.map((x) => [x.file, x]));
  for (const split of Object.keys(c.rows)) {
    c.rows[split] = c.rows[split].flatMap((r) => {
      const ch = byFile.get(r.file);
      if (!ch) return [r];
      return ch.newLabel === null ? [] : [{ ...r, label: ch.newLabel }];
    });
  }
  await showSummary(summary);
  const relabelled = changes.filter((x) => x.newLabel !== null).length;
  $('clean-status').textContent = `applied: ${relabelled} relabelled, ${changes.length - relabelled} deleted (${summary.changes} in all, listed under Photos); Train now learns from the cleaned photos`;
  drawGrid();
}

/** Runs in the 'cleaning' phase: every change so far as kiln-changes.csv. */
export async function downloadChanges() {
  const csv = await page.kiln.changesCsv();
  download(new Blob([csv], { type: 'text/csv' }), 'kiln-changes.csv');
  $('clean-status').textContent = `saved kiln-changes.csv (${page.changeCount} change${page.changeCount === 1 ? '' : 's'})`;
}

/** The class, split and page controls; a split not computed yet is computed first. */
export function wireCleaner() {
  $('clean-class').addEventListener('change', () => { page.cleaner.pageNo = 0; drawGrid(); });
  $('clean-split').addEventListener('change', () => guard(async () => {
    const c = page.cleaner;
    const split = $('clean-split').value;
    c.pageNo = 0;
    try {
      if (!c.rows[split] && isIdle()) await run('cleaning', () => computeSplit(split));
    } catch (e) {
      $('clean-split').value = c.split;
      throw e;
    }
    drawGrid();
  }));
  const turn = (by) => { page.cleaner.pageNo += by; drawGrid(); };
  $('clean-prev').addEventListener('click', () => turn(-1));
  $('clean-next').addEventListener('click', () => turn(1));
}
