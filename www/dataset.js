// 1. Photos: load a dataset from picked or dropped files (or the sample set) and show its summary.
// The functions here do the work; the caller runs them in a phase (state.js's run()).
import { pathOf } from './kiln.js';
import { $, el, setStatus } from './dom.js';
import { followData, learnerChanges, page, showLearnerFields, update } from './state.js';
import { showWeights, syncMethod } from './settings.js';

/** The class cards (samples.js, which imports this module, hands it in): given a summary, it
 * fetches what they need and returns the function that draws them. */
let classCards = async (/** @type {any} */ _summary) => () => {};
export const onClasses = (fn) => { classCards = fn; };

/** The Settings the sample sets, and their names for the notices. */
const SAMPLE = { arch: 'tiny', size: '32', presize: '36', bs: '32', method: 'fit_one_cycle', epochs: '6', lr: '0.01', flip: false };
const LABELS = { arch: 'Architecture', size: 'Image size', presize: 'Presize', bs: 'Batch size', method: 'Method', epochs: 'Epochs', lr: 'Learning rate', flip: 'Random horizontal flips' };
/** The dataset options' fields, with the names the page shows. */
const OPTION_FIELDS = { 'label-regex': ['labelRegex', 'Label regex'], 'valid-pct': ['validPct', 'Validation fraction'], seed: ['seed', 'Split seed'], presize: ['presize', 'Presize'], 'multi-label': ['multiLabel', 'Allow “none of these”'] };

const fieldValue = (id) => ($(id).type === 'checkbox' ? $(id).checked : $(id).value);
function setField(id, v) { if ($(id).type === 'checkbox') $(id).checked = v; else $(id).value = v; }
/** A field's value as the page ships it (index.html): the photo defaults. */
function shipped(id) {
  const e = $(id);
  if (e.type === 'checkbox') return e.defaultChecked;
  if (e.tagName === 'SELECT') return ([...e.options].find((o) => o.defaultSelected) || e.options[0]).value;
  return e.defaultValue;
}
const shown = (id, v) => (typeof v === 'boolean' ? (v ? 'on' : 'off') : $(id).tagName === 'SELECT' ? $(id).selectedOptions[0]?.text ?? v : v);

/** The dataset options from their fields, checked in the page's words, for `photos` and
 * their labels CSV (`csv`, or null). */
function datasetOptions(photos, csv) {
  const text = (id) => $(id).value.trim();
  const validPct = Number(text('valid-pct'));
  if (text('valid-pct') === '' || !(validPct >= 0 && validPct < 1)) {
    throw new Error(`Validation fraction must be at least 0 and less than 1, such as 0.2 to hold out a fifth of the photos (it is ${text('valid-pct') || 'empty'}).`);
  }
  const presize = Number(text('presize'));
  if (!Number.isInteger(presize) || presize < 16) throw new Error(`Presize must be a whole number of pixels, 16 or more, such as 460 (it is ${text('presize') || 'empty'}).`);
  const seed = Number(text('seed'));
  if (!Number.isInteger(seed) || seed < 0) throw new Error(`Split seed must be a whole number, 0 or more, such as 42 (it is ${text('seed') || 'empty'}).`);
  const opts = { validPct, presize, seed };
  const re = text('label-regex');
  if (re && csv) throw new Error(`${csv.name} gives the photos' labels, and so would Label by regex (${re}): clear the regex (Labelling and split options) to label them by the CSV, or choose the photos without it.`);
  if (re) opts.labelRegex = re;
  // A labels CSV gives sets of labels (it implies multiLabel). Without one, "Allow none of
  // these" makes copies of a photo in several class folders one photo with each label: the
  // option is given only where such copies may be (same name and size), so the box changes
  // nothing, and reloads nothing, for other photos.
  if (csv) opts.labelsCsv = csv.text;
  else if (multiLabelChoice() && hasCopies(photos)) opts.multiLabel = true;
  return opts;
}

/** The user's "Allow none of these": the box, or what it was before a labels CSV held it on. */
const multiLabelChoice = () => page.csvLock ?? $('multi-label').checked;

/** Whether two of `files` may be copies of one photo (the same name and size in two folders). */
function hasCopies(files) {
  const seen = new Set();
  for (const f of files) {
    const key = `${pathOf(f).split('/').pop()}\0${f.size}`;
    if (seen.has(key)) return true;
    seen.add(key);
  }
  return false;
}

/** A labels CSV (fastai's from_csv: a file-name column, a column of labels separated by spaces,
 * optionally is_valid), never a photo. */
export const isCsv = (f) => /\.csv$/i.test(pathOf(f));

/**
 * `files` as photos and their labels CSV: the one nearest the top of what was dropped or
 * chosen (read as text), or for the files of the last load again the one read then (or the
 * project's). An error if CSVs sit side by side there, or there are no photos beside it.
 * @returns {Promise<{photos: File[], csv: {name: string, text: string} | null}>}
 */
async function withLabels(files) {
  const csvs = files.filter(isCsv);
  const photos = files.filter((f) => !isCsv(f));
  const kept = page.labelsCsv?.of === files ? page.labelsCsv : null;
  if (!csvs.length || kept) return { photos, csv: kept && { name: kept.name, text: kept.text } };
  const depth = (f) => pathOf(f).split('/').length;
  const top = Math.min(...csvs.map(depth));
  const first = csvs.filter((f) => depth(f) === top);
  if (first.length > 1) {
    throw new Error(`${first.length} CSV files sit side by side (${first.slice(0, 3).map(pathOf).join(', ')}): keep the one labels CSV (a file-name column, fname, and a labels column, labels) beside the photos and move the others away.`);
  }
  const name = pathOf(first[0]);
  if (!photos.length) throw new Error(`Only the CSV ${name} was found: choose or drop it together with the photos it names (the folder that holds both).`);
  let text;
  try {
    text = await first[0].text();
  } catch (e) {
    throw new Error(`${name} could not be read (${e.message || e.name}): it may have changed since it was chosen; choose or drop the folder again.`);
  }
  update({ labelsCsv: { name, text, of: files } });
  return { photos, csv: { name, text } };
}

/** The core's error about a labels CSV, naming the file (`name`) instead of "the labels CSV". */
function csvError(e, name) {
  const msg = String(e?.message ?? e);
  if (/the labels CSV/i.test(msg)) return new Error(msg.replace(/the labels CSV/i, name));
  return /labels CSV/i.test(msg) ? new Error(`${name}: ${msg}`) : e;
}

/** While a labels CSV gives the loaded photos sets of labels, "Allow none of these" is on and
 * fixed (a softmax cannot learn them; state.js disables it and shows why); other data gives the
 * user's own choice back. */
function holdMultiLabel(s) {
  const hold = !!s.multiLabel && !!page.datasetOptions?.labelsCsv;
  if (hold && page.csvLock === null) {
    update({ csvLock: $('multi-label').checked });
    $('multi-label').checked = true;
  } else if (!hold && page.csvLock !== null) {
    $('multi-label').checked = page.csvLock;
    update({ csvLock: null });
  }
}

/** Whether "Allow none of these" as it is now would build the loaded photos otherwise: copies
 * of a photo merged into one, or apart again (app.js re-labels them then). */
export function multiLabelChanges() {
  const o = page.datasetOptions;
  if (!o || o.labelsCsv || page.csvLock !== null) return false;
  const photos = page.lastFiles.filter((f) => !isCsv(f));
  return !!o.multiLabel !== ($('multi-label').checked && hasCopies(photos));
}

/** `files` without hidden files and folders (.DS_Store, .git/), which are never photos; an
 * error if nothing is left. */
export function visibleFiles(files) {
  const visible = files.filter((f) => !pathOf(f).split('/').some((p) => p.startsWith('.')));
  if (!visible.length) {
    throw new Error(files.length
      ? `Only hidden files were found (${files.slice(0, 3).map((f) => pathOf(f)).join(', ')}): choose folders of photos, one per class, or photos named like Maine_Coon_157.jpg.`
      : 'No files were found there. Choose or drop folders of photos (one folder per class), or photos named like Maine_Coon_157.jpg.');
  }
  return visible;
}

/** Build the dataset from `files`; the old one stays if this one fails. With `restore`, photos
 * after the sample bring back the photo defaults of every setting left as the sample set it.
 * The files of the last load again (a re-label) keep the files added since, and the edits. */
export async function loadFiles(files, { restore = true } = {}) {
  const same = files === page.lastFiles;
  const visible = same ? files : visibleFiles(files);
  const back = restore && page.preset ? Object.keys(SAMPLE).filter((id) => fieldValue(id) === page.preset[id]) : [];
  if (back.includes('presize')) setField('presize', shipped('presize'));
  let options;
  try {
    // Other files: what was added belongs to the dataset they replace.
    if (!same) update({ lastFiles: visible, added: [] });
    const { photos, csv } = await withLabels(visible);
    options = datasetOptions(photos, csv);
    setStatus(`reading ${photos.length} file${photos.length === 1 ? '' : 's'}…`);
    const summary = await page.kiln.loadDataset(photos, options).catch((e) => { throw csv ? csvError(e, csv.name) : e; });
    update({ files: [...photos, ...page.added], datasetClasses: summary.classes.map((c) => c.name), datasetOptions: options });
    // A new dataset: the next photos are added to it unless the user says otherwise.
    if (!same) $('mode-add').checked = true;
    await showSummary(summary, { follow: false });
    if (restore && page.preset) restoreDefaults(back);
    // Then Kiln's proposal for the photos' size, on top of the photo defaults.
    await fitToData(summary, !same);
    setStatus(summary.changesDropped ? 'loaded without your changes from Clean (see Photos)' : '');
  } catch (e) {
    if (back.includes('presize')) setField('presize', SAMPLE.presize);
    setStatus(page.files.length ? `not loaded: the dataset is unchanged (${describe()})` : 'no dataset loaded');
    throw e;
  }
}

/** The loaded dataset in a few words, for the status line. */
const describe = () => `${page.datasetClasses.length} classes, ${$('split').textContent.split(' · ')[1] || ''}`.replace(/, $/, '');

/**
 * A labelling or split option changed (`id`): re-label the files of the last load with it. If
 * that fails, the field goes back to the value that built the loaded dataset, and the error
 * and the status say so.
 */
export async function relabel(id) {
  const [key, label] = OPTION_FIELDS[id];
  const value = fieldValue(id);
  const said = (v) => (typeof v === 'boolean' ? (v ? 'on' : 'off') : v || '(empty)');
  try {
    await loadFiles(page.lastFiles, { restore: false });
  } catch (e) {
    const old = page.datasetOptions;
    if (!old) throw e;
    // The box goes back as it was; a field to the value that built the dataset.
    const was = typeof value === 'boolean' ? !value : String(old[key] ?? '');
    setField(id, was);
    setStatus(`${label} ${said(value)} not applied: the dataset is unchanged (${describe()})`);
    throw new Error(`${label} ${said(value)} could not be used, so it is back to ${said(was)}: ${e.message}`);
  }
}

/** Why this dataset cannot train, naming the classes without training images; null if it can. */
function problem(s) {
  const none = s.classes.filter((c) => c.train === 0).map((c) => `"${c.name}"`);
  if (!none.length) return null;
  const one = none.length === 1;
  return `Train is off: ${none.join(', ')} ${one ? 'has' : 'have'} no training images, so the model could not learn ${one ? 'it' : 'them'}. Add more images of ${one ? 'it' : 'each'}, or lower the Validation fraction (Labelling and split options).`;
}

/** After the sample, new photos: the photo defaults for the settings in `back`; a notice says
 * what changed and what the user's own choices kept. */
function restoreDefaults(back) {
  for (const id of back) setField(id, shipped(id));
  const kept = Object.keys(SAMPLE).filter((id) => !back.includes(id));
  syncMethod();
  showWeights();
  update({ preset: null });
  const now = back.map((id) => `${LABELS[id]} ${shown(id, fieldValue(id))}`).join(', ');
  const mine = kept.map((id) => `${LABELS[id]} ${shown(id, fieldValue(id))}`).join(', ');
  const learner = learnerChanges();
  const options = learner.length ? ` vision_learner options kept as you set them: ${learner.join(', ')}.` : '';
  note((back.length ? `New photos: the Settings are back to the photo defaults (${now}) from the sample's.${mine ? ` Kept as you set them: ${mine}.` : ''}` : `New photos: the Settings are as you set them (${mine}), not the photo defaults.`) + options);
}

function note(text) {
  $('settings-note').textContent = text;
  $('settings-note').hidden = !text;
}

/** Settings that follow the data: after photos load (`fresh`: a new dataset) or change size,
 * Kiln's proposal for their size (kiln.proposeSettings) goes through state.js's followData.
 * The sample keeps its preset. */
async function fitToData(s, fresh) {
  if (page.preset) return update({ sizing: null });
  if (!fresh && page.sizing?.nTrain === s.nTrain) return;
  const offer = await page.kiln.proposeSettings();
  if (followData(s.nTrain, offer, { fresh }) && !$('settings-note').hidden && page.modelOrigin !== 'imported') {
    note(`${$('settings-note').textContent} Then Kiln's proposal for the dataset's size applied (below).`);
  }
}

/** The bundled digits, with settings that suit them. */
export async function loadSample() {
  // Digits are 32 px scans: small settings train in seconds; flips would mirror the digits.
  // With no pretrained body for this tiny model, plain one-cycle training learns fastest.
  // vision_learner's options go back to fastai's defaults (the preset trains with them): said,
  // when some were changed.
  const learner = learnerChanges();
  for (const [id, v] of Object.entries(SAMPLE)) setField(id, v);
  showLearnerFields({});
  syncMethod();
  showWeights();
  update({ preset: { ...SAMPLE } });
  const back = learner.length ? ` vision_learner options are back to fastai's defaults (they were ${learner.join(', ')}).` : '';
  note(`The sample's Settings: Tiny ResNet, 32 px, Presize 36, batch 32, fit_one_cycle for 6 epochs at 0.01, no flips (they suit 8×8 digits).${back} Photos you add next bring the photo defaults back.`);
  await loadFiles(await page.kiln.sampleFiles(), { restore: false });
  // Photos dropped after the digits start a new dataset: digits and photos do not mix.
  $('mode-new').checked = true;
}

/** The loaded dataset's summary (after a load, Clean's changes or an edit of the samples) in
 * the page, and what follows from it: its classes, whether it can train, how many changes it
 * has, and (`follow`; a load does it itself, after its presets) Settings that fit its size. */
export async function showSummary(s, { follow = true } = {}) {
  // The cards' photos are fetched first: the split line and the cards change together.
  const drawCards = await classCards(s);
  const rows = s.multiLabel ? await page.kiln.datasetFiles() : null;
  update({ dataProblem: problem(s), changeCount: s.changes || 0, datasetClasses: s.classes.map((c) => c.name) });
  holdMultiLabel(s);
  renderSummary(s, rows);
  drawCards();
  const changes = s.changes ? await page.kiln.changes() : [];
  const to = (c) => (c.newLabel === null ? 'deleted' : `relabelled ${c.newLabel}`);
  $('changes-box').hidden = changes.length === 0;
  $('changes-title').textContent = `${changes.length} change(s) of yours from Clean or Photos (your files are untouched)`;
  $('changes').tBodies[0].replaceChildren(...changes.map((c) => el('tr', {}, ...[c.file, c.oldLabel, to(c)].map((t) => el('td', { textContent: t })))));
  if (follow) await fitToData(s, false);
}

function renderSummary(s, rows) {
  $('dataset').hidden = false;
  const changed = s.changes ? ` · ${s.changes} change${s.changes === 1 ? '' : 's'} of yours` : '';
  $('split').textContent = `${s.classes.length} classes · ${s.nTrain} training and ${s.nValid} validation images · labels: ${s.labelRule} · split: ${s.split}${changed}`;
  $('label-sets').hidden = !s.multiLabel;
  $('label-sets').textContent = s.multiLabel ? labelSets(s, rows) : '';
  const warnings = [s.changesDropped, ...(s.warnings || [])].filter(Boolean);
  $('data-warnings').replaceChildren(...warnings.map((w) => el('li', { textContent: w })));
  $('data-warnings').hidden = warnings.length === 0;
  $('skipped-box').hidden = s.skipped.length === 0;
  $('skipped-title').textContent = `${s.skipped.length} file(s) skipped`;
  $('skipped').tBodies[0].replaceChildren(...s.skipped.map(skipRow));
}

/** A multi-label dataset in words: how many photos have several labels, and how many none. */
function labelSets(s, rows) {
  const n = s.nTrain + s.nValid;
  const several = rows.filter((r) => r.label.includes(' ')).length;
  const none = s.unlabelled ?? rows.filter((r) => r.label === '').length;
  const from = page.datasetOptions?.labelsCsv
    ? `labels from ${page.labelsCsv?.name || 'a labels CSV'}`
    : 'a photo in several class folders is one photo with each folder\'s label';
  const has = (k) => (k === 1 ? 'has' : 'have');
  return `Several labels a photo (${from}): ${several} of the ${n} photos ${has(several)} two or more labels, ${none} ${has(none)} none of the classes (“none of these”). Each class is a yes or no of its own, so the class counts count labels, not photos.`;
}

export function reasonText(r) {
  // Truncated, corrupt and unsupported files carry a full sentence of their own.
  if (['truncated', 'corrupt', 'unsupported'].includes(r.kind)) return r.detail;
  const words = { empty: 'empty file', no_label: 'no label', removed: 'deleted in Clean or Photos (your file is untouched)', duplicate: 'already in the dataset (a file of the same name)', undecodable: 'not a readable image', too_large: 'too large', outside_split: 'outside the train/ and valid/ folders' };
  return (words[r.kind] || r.kind) + (r.detail ? `: ${r.detail}` : '');
}

/** A file that failed to decode during training joins the skipped-files table. */
export function addSkipped(s) {
  const body = $('skipped').tBodies[0];
  body.append(skipRow(s));
  $('skipped-box').hidden = false;
  $('skipped-title').textContent = `${body.rows.length} file(s) skipped`;
}

function skipRow(s) {
  return el('tr', {}, el('td', { textContent: s.name }), el('td', { textContent: reasonText(s.reason) }));
}

export const images = (n) => `${n} image${n === 1 ? '' : 's'}`;
