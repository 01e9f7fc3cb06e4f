// Download sorted: one .zip with a folder per predicted class (and unsure/ for photos below the
// threshold or, with one sigmoid per class, of several classes; none-of-these/ for none) holding each original file byte for byte, plus predictions.csv with the columns
// of `kiln predict --csv`. client-zip (vendor/, from npm) writes it as a stream that pulls one
// file at a time from its File handle: straight to disk where the browser can save a stream
// (the File System Access API), else into a Blob, which Chromium pages to disk.
import { makeZip } from './vendor/client-zip.js';
import { $, download } from './dom.js';
import { page } from './state.js';
import { fileName } from './download-name.js';
import { classThreshold, rowClasses, sorting } from './sort.js';

/** Where `kiln predict --sort-into` puts photos below `--threshold`. */
export const UNSURE = 'unsure';
/** Where it puts photos of no class (a model with one sigmoid per class). */
export const NONE = 'none-of-these';

/** A photo's folder, as `kiln predict --sort-into` picks it: its class; unsure/ below the
 * unsure threshold or when of several classes; none-of-these/ when of none (`t`: the class
 * threshold of a one-sigmoid-per-class model, null for softmax). */
export function folderOf(r, threshold, t) {
  const c = rowClasses(r, t);
  if (!c.length) return NONE;
  return c.length === 1 && r.p >= threshold ? c[0] : UNSURE;
}

/** One CSV field, quoted when it holds a comma, a quote or a line break (RFC 4180), as the CLI does. */
const field = (s) => (/[,"\n\r]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s);

/** predictions.csv, as text made a piece at a time: `file,class,probability`, then each
 * class's probability in the model's order, six decimals; a row per photo in the order
 * predicted. Same as `kiln predict --csv`: with one sigmoid per class (`t`, the class
 * threshold), `class` lists the classes above it separated by spaces (empty: none of these). */
export async function* predictionsCsv(rows, classes, t = null) {
  yield `${['file', 'class', 'probability', ...classes].map(field).join(',')}\n`;
  for (let i = 0; i < rows.length; i += 500) {
    // 500 rows at a time, each in its own task: 10,000 at once held the page too long.
    if (i) await yieldToPage();
    let text = '';
    for (const r of rows.slice(i, i + 500)) text += `${[field(r.path), field(rowClasses(r, t).join(' ')), r.p.toFixed(6), ...Array.from(r.probs, (v) => v.toFixed(6))].join(',')}\n`;
    yield text;
  }
}

/** A folder name from a class name: no slashes, no `.`/`..`. */
const folderName = (s) => (/^\.*$/.test(s) ? `_${s}` : s.replace(/[/\\]/g, '_'));

/**
 * The zip's entries, made as the zip asks for them: a name taken in a folder gets
 * `name (2).ext`, `name (3).ext`, … as `kiln predict --sort-into` does.
 */
function* entries(rows, classes, threshold, t, onFile) {
  const taken = new Set();
  for (const r of rows) {
    const folder = folderName(folderOf(r, threshold, t));
    const base = r.path.split('/').pop();
    const dot = base.lastIndexOf('.');
    const [stem, ext] = dot > 0 ? [base.slice(0, dot), base.slice(dot)] : [base, ''];
    let name = `${folder}/${base}`;
    for (let n = 2; taken.has(name); n++) name = `${folder}/${stem} (${n})${ext}`;
    taken.add(name);
    onFile();
    yield { name, input: r.file, lastModified: r.file.lastModified ? new Date(r.file.lastModified) : undefined };
  }
  yield { name: 'predictions.csv', input: predictionsCsv(rows, classes, t) };
}

/** Set while a zip is being written: Cancel stops it. */
let stop = null;
export const cancelSaving = () => stop?.abort();

/** Runs in the 'saving' phase, from Download sorted's click: the picker (where the browser has
 * one) must open before anything is awaited, while the click still counts as the user's. */
export async function downloadSorted() {
  const raw = $('sort-threshold').value.trim();
  const threshold = raw === '' ? 0 : Number(raw);
  if (!(threshold >= 0 && threshold <= 1)) throw new Error(`The unsure threshold must be a probability from 0 to 1, such as 0.6 (it is ${raw}).`);
  const rows = sorting.rows.slice();
  const t = classThreshold();
  if (!rows.length) throw new Error('No photos have been sorted yet: drop photos or folders on Predict first.');
  const suggestedName = `sorted-${fileName('zip')}`;
  const picked = window.showSaveFilePicker
    ? window.showSaveFilePicker({ suggestedName, types: [{ description: 'Zip archive', accept: { 'application/zip': ['.zip'] } }] })
    : null;
  let handle = null;
  try {
    handle = await picked;
  } catch (e) {
    if (e.name === 'AbortError') return; // the user closed the picker
    handle = null; // no picker here (e.g. refused): a Blob download instead
  }
  let written = 0;
  const say = (text) => { $('sort-status').textContent = text; };
  const onFile = () => { written += 1; if (written % 25 === 0 || written === rows.length) say(`writing ${suggestedName}: ${written.toLocaleString('en')} of ${rows.length.toLocaleString('en')} photos…`); };
  stop = new AbortController();
  say(`writing ${suggestedName}…`);
  try {
    const zip = makeZip(entries(rows, sorting.classes, threshold, t, onFile)).pipeThrough(breather(), { signal: stop.signal });
    if (handle) {
      await zip.pipeTo(await handle.createWritable(), { signal: stop.signal });
    } else {
      // A Blob the browser holds (and pages to disk when large), not the page's memory.
      const blob = await new Response(zip).blob();
      download(blob, suggestedName);
    }
  } catch (e) {
    if (stop.signal.aborted) return say(`cancelled: ${suggestedName} was not written`);
    throw new Error(`${suggestedName} could not be written: ${e.message}`);
  } finally {
    stop = null;
  }
  const at = rows.map((r) => folderOf(r, threshold, t));
  const unsure = at.filter((f) => f === UNSURE).length;
  const none = at.filter((f) => f === NONE).length;
  const folders = new Set(at.filter((f) => f !== UNSURE && f !== NONE)).size;
  const where = [folders && `${folders} class folder${folders === 1 ? '' : 's'}`, unsure && `${unsure.toLocaleString('en')} in ${UNSURE}/`, none && `${none.toLocaleString('en')} in ${NONE}/`].filter(Boolean).join(', ');
  say(`saved ${suggestedName}: ${rows.length.toLocaleString('en')} photo${rows.length === 1 ? '' : 's'} (${where}) and predictions.csv${sorting.cancelled ? ', the photos predicted before Cancel' : ''}`);
}

const yieldToPage = () => (globalThis.scheduler?.yield ? globalThis.scheduler.yield() : new Promise((r) => setTimeout(r, 0)));

/** Passes the zip through, giving the page's event loop a turn every 30 ms: client-zip writes
 * a central directory entry per file in one go at the end (10,000 files held the page 0.7 s). */
function breather() {
  let since = performance.now();
  return new TransformStream({
    async transform(chunk, out) {
      out.enqueue(chunk);
      if (performance.now() - since > 30) {
        await yieldToPage();
        since = performance.now();
      }
    },
  });
}
