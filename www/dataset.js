// 1. Photos: load a dataset from picked or dropped files (or the sample set) and show its summary.
// The functions here do the work; the caller runs them in a phase (state.js's run()).
import { pathOf } from './kiln.js';
import { $, el } from './dom.js';
import { page, update } from './state.js';
import { showWeights } from './settings.js';

/** Thumbnails' object URLs, revoked when the dataset they show is replaced. */
const urls = [];

function datasetOptions() {
  const opts = { validPct: Number($('valid-pct').value), presize: Number($('presize').value) };
  const re = $('label-regex').value.trim();
  if (re) opts.labelRegex = re;
  return opts;
}

/** Build the dataset from `files`; the old one stays if this one fails. */
export async function loadFiles(files) {
  // Hidden files and folders (.DS_Store, .git/) are never photos.
  files = files.filter((f) => !pathOf(f).split('/').some((p) => p.startsWith('.')));
  if (!files.length) throw new Error('No files found in what was dropped. Drop folders of images, or image files.');
  $('status').textContent = `reading ${files.length} files…`;
  try {
    const summary = await page.kiln.loadDataset(files, datasetOptions());
    update({ files, datasetClasses: summary.classes.map((c) => c.name) });
    renderSummary(summary);
  } finally {
    $('status').textContent = '';
  }
}

/** The bundled digits, with settings that suit them. */
export async function loadSample() {
  // Digits are 32 px scans: small settings train in seconds; flips would mirror the digits.
  // With no pretrained body for this tiny model, plain one-cycle training learns fastest.
  $('arch').value = 'tiny'; $('size').value = 32; $('presize').value = 36; $('bs').value = 32;
  $('method').value = 'fit_one_cycle'; $('freeze-label').hidden = true;
  $('epochs').value = 6; $('lr').value = 0.01; $('flip').checked = false;
  showWeights();
  await loadFiles(await page.kiln.sampleFiles());
}

function renderSummary(s) {
  $('dataset').hidden = false;
  $('split').textContent = `${s.classes.length} classes · ${s.nTrain} training and ${s.nValid} validation images · labels: ${s.labelRule} · split: ${s.split}`;
  for (const url of urls.splice(0)) URL.revokeObjectURL(url);
  const byPath = new Map(page.files.map((f) => [pathOf(f), f]));
  $('gallery').replaceChildren(...s.classes.map((c) => {
    const thumbs = c.examples.filter((name) => byPath.has(name)).map((name) => {
      const url = URL.createObjectURL(byPath.get(name));
      urls.push(url);
      return el('img', { src: url, alt: name, loading: 'lazy' });
    });
    return el('div', { className: 'class-card' },
      el('h4', { textContent: c.name }),
      el('div', { className: 'muted', textContent: `${c.train + c.valid} images (${c.train} train, ${c.valid} valid)` }),
      el('div', { className: 'thumbs' }, ...thumbs));
  }));
  $('skipped-box').hidden = s.skipped.length === 0;
  $('skipped-title').textContent = `${s.skipped.length} file(s) skipped`;
  $('skipped').tBodies[0].replaceChildren(...s.skipped.map(skipRow));
}

function reasonText(r) {
  // Truncated, corrupt and unsupported files carry a full sentence of their own.
  if (['truncated', 'corrupt', 'unsupported'].includes(r.kind)) return r.detail;
  const words = { empty: 'empty file', no_label: 'no label', undecodable: 'not a readable image', too_large: 'too large', outside_split: 'outside the train/ and valid/ folders' };
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
