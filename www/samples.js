// 1. Photos, as samples you manage (Teachable Machine's per-class samples): photos dropped or
// chosen onto a loaded dataset are added to it; each class shows its photos in pages, each
// photo can be moved to another class or removed, a class renamed or deleted. Only the
// worker's dataset changes, never the user's files; kiln.js makes the same edits again when the
// labelling options re-label the photos. The functions that change the dataset run in a phase
// (state.js's run()). Photos from the camera (camera.js) are added the same way.
import { pathOf } from './kiln.js';
import { $, el, guard, setStatus } from './dom.js';
import { page, render, run, setPhase, update } from './state.js';
import { images, isCsv, loadFiles, onClasses, reasonText, showSummary, visibleFiles } from './dataset.js';
import { openRecorder, wireCamera } from './camera.js';

const PER_PAGE = 12;
const SPLIT = { train: 'training', valid: 'validation' };
/** The summary on show, and each class's photos ({file, label, split}) from the worker. */
let shown = null;
let byClass = new Map();
/** The page each class's card shows, and its thumbnails' object URLs (revoked on redraw). */
const pageOf = new Map();
const urlsOf = new Map();
/** The card being renamed or asked to confirm a deletion: {kind: 'rename'|'delete', name}. */
let editing = null;
/** Camera photos recorded before any dataset, of one class: they wait for a second class (a
 * classifier needs two), recorded or dropped, and then make the dataset with it. @type {File[]} */
let waiting = [];

/** Whether photos dropped or chosen now are added to the loaded dataset (the default) rather
 * than starting a new one. */
export const adding = () => page.files.length > 0 && $('mode-add').checked;

/** Runs in the 'adding' phase: `files` join the loaded dataset, split among themselves; the
 * others keep their split and are not read again. Says what was added and what was skipped. */
export async function addPhotos(files) {
  const visible = visibleFiles(files);
  // A labels CSV labels a whole dataset as it is built: it cannot relabel one loaded already.
  const csv = visible.find(isCsv);
  if (csv) throw new Error(`${pathOf(csv)} is a labels CSV: it labels a dataset as it is made, not photos added to one. Choose “Start a new dataset” (Photos you drop or choose next), then drop or choose the folder with it again.`);
  setStatus(`adding ${visible.length} file${visible.length === 1 ? '' : 's'}…`);
  try {
    const { added, summary } = await page.kiln.addFiles(visible);
    // A file named as one the dataset holds is not in it: its thumbnail stays the first one's.
    const dup = new Set(added.skipped.filter((x) => x.reason.kind === 'duplicate').map((x) => x.name));
    const fresh = visible.filter((f) => !dup.has(pathOf(f)));
    update({ files: [...page.files, ...fresh], added: [...page.added, ...fresh] });
    await showSummary(summary);
    say(addedText(added));
  } finally {
    setStatus('');
  }
}

/** "12 photos added: 10 to train, 2 to valid; new class bird; 1 skipped: cat/3.png already in the dataset". */
function addedText(a) {
  const n = a.train + a.valid;
  const parts = [`${n} photo${n === 1 ? '' : 's'} added: ${a.train} to train, ${a.valid} to valid`];
  if (a.newClasses.length) parts.push(`new class${a.newClasses.length === 1 ? '' : 'es'} ${a.newClasses.join(', ')}`);
  if (a.skipped.length) {
    const named = a.skipped.slice(0, 3).map((x) => `${x.name} ${x.reason.kind === 'duplicate' ? 'already in the dataset' : reasonText(x.reason)}`);
    const more = a.skipped.length > 3 ? `, and ${a.skipped.length - 3} more (see the skipped files)` : '';
    parts.push(`${a.skipped.length} skipped: ${named.join(', ')}${more}`);
  }
  return parts.join('; ');
}

function say(text) {
  $('samples-status').textContent = text;
  $('samples-status').hidden = !text;
}

/** After each summary (dataset.js): the worker's list of photos; the returned function draws
 * them in the class cards. */
async function classCards(s) {
  const rows = await page.kiln.datasetFiles();
  return () => drawCards(s, rows);
}

function drawCards(s, rows) {
  shown = s;
  // What the last add or edit did is said after this; a load (or re-label) says nothing here.
  say('');
  byClass = new Map(s.classes.map((c) => [c.name, []]));
  // A photo of several classes (labels separated by spaces) shows in each one's card.
  for (const r of rows) for (const l of labelsOf(r, s)) byClass.get(l)?.push(r);
  if (editing && !byClass.has(editing.name)) editing = null;
  for (const urls of urlsOf.values()) for (const u of urls) URL.revokeObjectURL(u);
  urlsOf.clear();
  const files = filesByPath();
  $('gallery').replaceChildren(...s.classes.map((c) => card(c, files)));
  render();
}

/** A photo's classes: its label, or in a multi-label dataset each of its labels (none for a
 * photo of none of the classes). */
const labelsOf = (r, s) => (s.multiLabel && !byClass.has(r.label) ? r.label.split(' ').filter(Boolean) : [r.label]);

/** The page's File for each name the dataset gives (the first of a name). */
function filesByPath() {
  const m = new Map();
  for (const f of page.files) if (!m.has(pathOf(f))) m.set(pathOf(f), f);
  return m;
}

/** Draw one class's card again (another page of it, or its rename or delete step). */
function redraw(name, focus) {
  const old = document.querySelector(`#gallery .class-card[data-class="${CSS.escape(name)}"]`);
  const c = shown.classes.find((x) => x.name === name);
  if (!old || !c) return;
  const next = card(c, filesByPath());
  old.replaceWith(next);
  render();
  if (focus) next.querySelector(focus)?.focus();
}

/** Open a card's rename field or delete step (`next`), or close it (null); one card at a time. */
function edit(next, focus) {
  const was = editing?.name;
  editing = next;
  if (was && was !== next?.name) redraw(was, next ? null : focus);
  if (next) redraw(next.name, focus);
}

/** A class: its name and counts, rename and delete, and one page of its photos. */
function card(c, files) {
  for (const u of urlsOf.get(c.name) || []) URL.revokeObjectURL(u);
  urlsOf.set(c.name, []);
  const photos = byClass.get(c.name) || [];
  const pages = Math.max(1, Math.ceil(photos.length / PER_PAGE));
  const p = Math.min(pageOf.get(c.name) || 0, pages - 1);
  pageOf.set(c.name, p);
  const node = el('div', { className: 'class-card' },
    el('div', { className: 'class-head' }, el('h4', { textContent: c.name }),
      button('Camera', `Camera photos of ${c.name}`, () => openRecorder(c.name), 'cam'),
      button('Rename', `Rename class ${c.name}`, () => edit({ kind: 'rename', name: c.name }, 'input'), 'rename'),
      button('Delete', `Delete class ${c.name}`, () => edit({ kind: 'delete', name: c.name }, '.confirm button'), 'delete')),
    el('div', { className: 'muted', textContent: `${images(c.train + c.valid)} (${c.train} train, ${c.valid} valid)` }));
  node.dataset.class = c.name;
  if (editing?.name === c.name) node.append(editing.kind === 'rename' ? renameForm(c.name) : confirmDelete(c));
  const slice = photos.slice(p * PER_PAGE, (p + 1) * PER_PAGE);
  node.append(el('div', { className: 'thumbs' }, ...slice.map((r) => thumb(r, files.get(r.file), c.name))));
  if (pages > 1) {
    // The focus stays on the button pressed, or goes to the other one at either end.
    const turn = (by) => () => {
      const off = by < 0 ? p + by === 0 : p + by === pages - 1;
      pageOf.set(c.name, p + by);
      redraw(c.name, (by < 0) !== off ? '.prev' : '.next');
    };
    const prev = button('Previous', `Previous photos of ${c.name}`, turn(-1), 'prev');
    const next = button('Next', `Next photos of ${c.name}`, turn(1), 'next');
    prev.dataset.off = String(p === 0);
    next.dataset.off = String(p === pages - 1);
    node.append(el('div', { className: 'pager' }, prev, el('span', { className: 'page muted', textContent: `${p * PER_PAGE + 1}–${p * PER_PAGE + slice.length} of ${photos.length} · page ${p + 1} of ${pages}` }), next));
  }
  return node;
}

/** A button; `label` (its accessible name, null: its text) begins with the text it shows. */
function button(text, label, onClick, className = '') {
  const b = el('button', { type: 'button', textContent: text, className });
  if (label) b.setAttribute('aria-label', label);
  b.addEventListener('click', onClick);
  return b;
}

/** A photo: the image, its name and split, and moving it to another class or removing it. */
function thumb(r, file, name) {
  const labels = labelsOf(r, shown);
  const img = el('img', { alt: `${r.file}, ${labels.length === 1 ? 'class' : 'classes'} ${labels.join(', ')} (${SPLIT[r.split]})`, loading: 'lazy' });
  if (file) {
    img.src = URL.createObjectURL(file);
    urlsOf.get(name).push(img.src);
  }
  // (A photo of several classes moved to one has that class alone.)
  const others = shown.classes.map((c) => c.name).filter((k) => k !== name);
  const to = el('select', { className: 'to' }, el('option', { value: '', textContent: 'another class…' }));
  // The classes are filled in when the select is first used: a page of photos in each of many
  // classes would otherwise hold thousands of options.
  const fill = () => { if (to.options.length === 1) to.append(...others.map((k) => el('option', { value: k, textContent: k }))); };
  to.addEventListener('focus', fill);
  to.addEventListener('pointerdown', fill);
  const short = r.file.split('/').pop();
  const fig = el('figure', {}, img, el('figcaption', {},
    el('div', { className: 'file', title: r.file, textContent: short }),
    el('div', { className: 'muted', textContent: SPLIT[r.split] }),
    el('label', {}, el('span', { className: 'sr', textContent: `Move ${r.file} to` }), to),
    el('div', { className: 'acts' },
      button('Move', `Move ${r.file} to the class chosen`, () => (to.value ? act(() => change(r, to.value), () => name) : guard(() => chooseFirst(r.file))), 'move'),
      button('Remove', `Remove ${r.file} from the dataset`, () => act(() => change(r, null), () => name), 'remove'))));
  fig.dataset.file = r.file;
  if (!others.length) to.dataset.off = 'true';
  return fig;
}

/** Move pressed before a class was chosen. */
function chooseFirst(file) {
  throw new Error(`Choose the class to move ${file} to (the list beside Move), then press Move.`);
}

/** An edit runs in the 'editing' phase; then the focus goes to `selector` in the card of class
 * `name()` (the cards were drawn again), or to the first card when that class is gone. */
function act(work, name, selector = '.thumbs button') {
  return guard(async () => {
    await run('editing', work);
    const node = document.querySelector(`#gallery .class-card[data-class="${CSS.escape(name())}"]`);
    (node?.querySelector(selector) || node?.querySelector('button') || document.querySelector('#gallery button'))?.focus();
  });
}

/** Move a photo to class `to`, or remove it (`to` null): one of Clean's changes, applied now. */
async function change(r, to) {
  const summary = await page.kiln.applyChanges([{ file: r.file, oldLabel: r.label, newLabel: to }]);
  await edited(summary, to === null ? `Removed ${r.file} from the dataset (the file itself is untouched).` : `Moved ${r.file} from ${r.label} to ${to}.`);
}

/** Inline rename: Enter saves, Escape cancels. */
function renameForm(name) {
  const input = el('input', { type: 'text', value: name, spellcheck: false });
  input.setAttribute('aria-label', `New name for class ${name}`);
  const save = () => act(() => rename(name, input.value), () => input.value.trim(), '.rename');
  const cancel = () => edit(null, '.rename');
  input.addEventListener('keydown', (e) => {
    if (e.key === 'Enter') { e.preventDefault(); save(); }
    if (e.key === 'Escape') { e.preventDefault(); cancel(); }
  });
  return el('div', { className: 'class-edit' }, input, button('Save', `Save the new name of ${name}`, save, 'save'), button('Cancel', `Cancel renaming ${name}`, cancel, 'cancel'));
}

async function rename(from, to) {
  const summary = await page.kiln.renameClass(from, to);
  const name = to.trim();
  editing = null;
  pageOf.set(name, pageOf.get(from) || 0);
  await edited(summary, `Renamed class ${from} to ${name}.`);
}

/** Delete a class: the page asks first, in the card. */
function confirmDelete(c) {
  const n = c.train + c.valid;
  const cancel = () => edit(null, '.delete');
  return el('div', { className: 'confirm', role: 'group' },
    el('p', { textContent: `Delete class ${c.name} and its ${images(n)} from the dataset? Your files stay.` }),
    button(`Delete ${c.name}`, null, () => act(() => removeClass(c.name), () => c.name), 'confirm-delete'),
    button('Keep it', null, cancel, 'cancel'));
}

async function removeClass(name) {
  const summary = await page.kiln.removeClass(name);
  editing = null;
  await edited(summary, `Deleted class ${name} from the dataset (its files are untouched).`);
}

async function edited(summary, text) {
  // A new array: Clean's view is of the dataset as it was (state.js's cleanerCurrent).
  update({ files: [...page.files] });
  await showSummary(summary);
  say(text);
}

/** Runs in the 'recording' phase: frames from the camera become photos of class `name`,
 * named `name/camera-0001.jpg`, … (numbered on from the class's camera photos), and join the
 * dataset as dropped photos do; with no dataset yet, the first class's wait for a second. */
async function saveFrames(name, frames) {
  const folder = `${name}/`;
  const theirs = [...(byClass.get(name) || []).map((r) => r.file), ...[...page.files, ...waiting].map(pathOf).filter((p) => p.startsWith(folder))];
  let n = Math.max(0, ...theirs.map((p) => Number(p.match(/(?:^|\/)camera-(\d+)\.jpg$/)?.[1] || 0)));
  const files = frames.map((b) => {
    const file = new File([b], `camera-${String(++n).padStart(4, '0')}.jpg`, { type: 'image/jpeg' });
    Object.defineProperty(file, 'kilnPath', { value: folder + file.name });
    return file;
  });
  const all = [...waiting, ...files];
  // The camera adds to the loaded dataset, whichever way the drop choice is set: its box
  // records for one of the dataset's classes, or a new one beside them.
  if (page.files.length) {
    setPhase('adding');
    await addPhotos(all);
    waiting = [];
    return;
  }
  if (new Set(all.map((f) => pathOf(f).split('/')[0])).size < 2) {
    waiting = all;
    return say(`${images(all.length)} of ${name} from the camera, waiting for a second class (a classifier needs two): record another class (a new name in Class) or drop a folder of photos, and Kiln makes the dataset from both.`);
  }
  setPhase('loading');
  await loadWithCamera([], files);
}

/** Build a new dataset from `files` (dataset.js's loadFiles) with the camera photos waiting
 * for one and those just `recorded`; if it fails, they go on waiting. */
export async function loadWithCamera(files, recorded = []) {
  const held = [...waiting, ...recorded];
  waiting = [];
  try {
    await loadFiles([...held, ...files]);
  } catch (e) {
    waiting = held;
    throw e;
  }
}

/** The class cards follow each summary; the camera box's frames become photos. */
export function wireSamples() {
  onClasses(classCards);
  wireCamera(saveFrames);
}
