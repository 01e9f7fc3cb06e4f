// Projects (.kilnproj), the page's side of the format the CLI reads and writes (src/project.rs
// describes it): one zip of stored entries, `kiln-project.json` first (the dataset's recipe:
// the files first given, the options, every edit since; the page's Settings and charts), then
// `photos/NAME` for each file first given and each file added, then `model.kiln` when there is
// a model. Kiln's saveProject and openProject (kiln.js) use these. The zip libraries are loaded
// on first use: a page that never saves or opens a project (the shared page) never fetches them.

/** @import { DatasetOptions, Edit, EpochEvent, ModelOptions, OpenProjectOptions, ProjectEdit, ProjectManifest, Summary } from './kiln-types.js' */

/** Kiln's version (Cargo.toml's), said in the manifest's `savedBy`. */
export const VERSION = '0.1.0';
export const MANIFEST = 'kiln-project.json';
const PHOTOS = 'photos/';
const MODEL = 'model.kiln';
/** The format this page writes and reads (src/project.rs's FORMAT). */
const FORMAT = 1;

// The vendored libraries (client-zip writes, zip.js reads, checking each entry's CRC-32).
// Named in variables: tsc types them as `any` rather than type-checking minified code.
const CLIENT_ZIP = './vendor/client-zip.js';
const ZIP_JS = './vendor/zip.js';

/** zip.js, configured to work on this thread (its codec workers are not shipped). */
async function zipJs() {
  const zip = await import(ZIP_JS);
  zip.configure({ useWebWorkers: false });
  return zip;
}

/** A clear error, as the CLI words them (src/project.rs's ProjectError). */
const foreign = (/** @type {string} */ why) => new Error(`this is not a Kiln project (${why}): open a .kilnproj file saved by Kiln's page or \`kiln --save-project\``);
const damaged = (/** @type {string} */ why) => new Error(`the project is damaged (${why}): nothing was changed; open another copy if you have one`);

/**
 * The manifest for the dataset as it was built (`dataset`, `edits`: Kiln's recipe, which a
 * restarted worker replays too) and the photos to write, each once: a name given twice (a
 * duplicate the dataset skipped) is written once, as the format names each photo once.
 * @param {{entries: {name: string, blob: Blob}[], options: DatasetOptions}} dataset
 * @param {Edit[]} edits
 * @param {{settings?: Record<string, unknown>, charts?: unknown, model: boolean}} rest
 * @returns {{manifest: ProjectManifest, photos: {name: string, blob: Blob}[]}}
 */
export function manifestOf(dataset, edits, { settings = {}, charts = null, model }) {
  const seen = new Set();
  /** @type {{name: string, blob: Blob}[]} */
  const photos = [];
  const take = (/** @type {{name: string, blob: Blob}[]} */ entries) => entries.filter((e) => {
    if (seen.has(e.name)) return false;
    seen.add(e.name);
    photos.push(e);
    return true;
  }).map((e) => e.name);
  const files = take(dataset.entries);
  /** @type {ProjectEdit[]} */
  const recipe = edits.map((e) => ('add' in e ? { add: take(e.add) } : e));
  const manifest = {
    kind: /** @type {const} */ ('kiln-project'),
    format: FORMAT,
    dataset: { options: dataset.options, files, edits: recipe },
    model,
    settings: /** @type {Record<string, any>} */ (settings),
    charts,
    savedBy: `kiln ${VERSION} (page)`,
  };
  return { manifest, photos };
}

/**
 * The project as a streaming Response (client-zip): the manifest, each photo read from its
 * Blob only when the zip reaches it (10,000 photos are never held twice), then the model.
 * @param {{manifest: ProjectManifest, photos: {name: string, blob: Blob}[], model: Uint8Array | Blob | null}} project
 * @returns {Promise<Response>}
 */
export async function projectZip({ manifest, photos, model }) {
  const { downloadZip } = await import(CLIENT_ZIP);
  const json = `${JSON.stringify(manifest, null, 2)}\n`;
  function* entries() {
    yield { name: MANIFEST, input: json };
    for (const p of photos) {
      const lastModified = p.blob instanceof File && p.blob.lastModified ? new Date(p.blob.lastModified) : undefined;
      yield { name: PHOTOS + p.name, input: p.blob, lastModified };
    }
    if (model) yield { name: MODEL, input: model instanceof Blob ? model : new Blob([/** @type {BlobPart} */ (model)]) };
  }
  return downloadZip(entries());
}

/** Why zip.js could not read the zip's table of contents: a file cut short (it starts as a
 * project does, with its manifest) or one that is no zip at all. */
async function unreadable(/** @type {Blob} */ file, /** @type {Error} */ e) {
  const head = new Uint8Array(await file.slice(0, 30 + MANIFEST.length).arrayBuffer());
  const view = new DataView(head.buffer);
  const local = head.length >= 30 && view.getUint32(0, true) === 0x04034b50;
  const name = local ? new TextDecoder().decode(head.subarray(30, 30 + view.getUint16(26, true))) : '';
  if (name === MANIFEST) return damaged(`it is cut short: it ends before the zip's table of contents (${e.message}), so the download or copy did not finish`);
  return foreign(local ? `a zip file without ${MANIFEST} first` : `not a zip file, or one cut short: ${e.message}`);
}

const notAsSaved = (/** @type {string} */ name) => damaged(`${name} is not as it was saved: its bytes do not match the zip's checksum (CRC-32)`);

/** An entry's bytes as a Blob through zip.js, its CRC-32 checked (entries that are not
 * simply stored: compressed or encrypted by another tool). */
async function entryBlob(/** @type {any} */ entry, /** @type {any} */ zip) {
  try {
    return await entry.getData(new zip.BlobWriter(), { checkSignature: true });
  } catch (e) {
    const msg = /** @type {Error} */ (e).message;
    if (/crc/i.test(msg)) throw notAsSaved(entry.filename);
    throw damaged(`${entry.filename} cannot be read: ${msg}`);
  }
}

/** CRC-32 (the zip's, IEEE 802.3). */
const CRC_TABLE = Uint32Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c;
});
function crc32(/** @type {Uint8Array} */ bytes) {
  let c = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) c = CRC_TABLE[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/**
 * The entries' bytes as Blobs (copies: the project file may be replaced later, the
 * browser's kept copy is), each CRC-32 checked. Stored entries are cut out of the file read a
 * few MiB at a time (zip.js's own reader takes ~7 ms an entry); others go through zip.js.
 * @param {Blob} file @param {any[]} wanted zip.js entries @param {any[]} all every entry (their offsets bound each other) @param {any} zip
 * @param {(done: number) => void} [progress]
 * @returns {Promise<Map<string, Blob>>} by entry name
 */
async function readEntries(file, wanted, all, zip, progress) {
  // Where each entry ends at the latest: where the next one starts.
  const starts = [...new Set(all.map((e) => /** @type {number} */ (e.offset)))].sort((a, b) => a - b);
  const ends = new Map(starts.map((o, k) => [o, starts[k + 1] ?? file.size]));
  const next = (/** @type {number} */ offset) => /** @type {number} */ (ends.get(offset));
  const out = new Map();
  const stored = wanted.filter((e) => e.compressionMethod === 0 && !e.encrypted).sort((a, b) => a.offset - b.offset);
  for (const e of wanted) if (!stored.includes(e)) out.set(e.filename, await entryBlob(e, zip));
  const WINDOW = 8 * 2 ** 20;
  let i = 0;
  while (i < stored.length) {
    const from = stored[i].offset;
    let to = next(from);
    let j = i + 1;
    while (j < stored.length && next(stored[j].offset) - from <= WINDOW) to = next(stored[j++].offset);
    const bytes = new Uint8Array(await file.slice(from, to).arrayBuffer());
    const view = new DataView(bytes.buffer);
    for (const e of stored.slice(i, j)) {
      const at = e.offset - from;
      if (at + 30 > bytes.length || view.getUint32(at, true) !== 0x04034b50) throw damaged(`${e.filename}: its local header is not where the zip's table of contents says`);
      const start = at + 30 + view.getUint16(at + 26, true) + view.getUint16(at + 28, true);
      const data = bytes.subarray(start, start + e.compressedSize);
      if (data.length < e.compressedSize) throw damaged(`${e.filename} is cut short`);
      if (crc32(data) !== e.signature >>> 0) throw notAsSaved(e.filename);
      out.set(e.filename, new Blob([data]));
    }
    progress?.(out.size);
    i = j;
  }
  return out;
}

/**
 * The checked manifest with the numbers as written: the core's JSON parser may round a
 * decimal to the next double (1.2575292587280273 came back …271), so the charts, Settings and
 * options are taken from the same text parsed here (the core filled in what was left out).
 * @param {ProjectManifest} checked @param {Uint8Array} bytes @returns {ProjectManifest}
 */
function exact(checked, bytes) {
  const raw = JSON.parse(new TextDecoder().decode(bytes));
  const given = raw.dataset?.options || {};
  const options = Object.fromEntries(Object.entries(checked.dataset.options).map(([k, v]) => [k, k in given ? given[k] : v]));
  return { ...checked, dataset: { ...checked.dataset, options }, settings: raw.settings ?? checked.settings, charts: raw.charts ?? checked.charts };
}

/**
 * Read a project and check all of it before anything changes: the zip, the manifest (by the
 * core, as the CLI checks it: `check`), every photo's CRC-32 and the model's.
 * @param {Blob} file
 * @param {(bytes: Uint8Array) => Promise<ProjectManifest>} check
 * @param {OpenProjectOptions} [options]
 * @returns {Promise<{manifest: ProjectManifest, photos: Map<string, Blob>, model: Blob | null}>}
 */
export async function readProject(file, check, { onProgress } = {}) {
  const zip = await zipJs();
  const reader = new zip.ZipReader(new zip.BlobReader(file));
  try {
    /** @type {any[]} */
    let entries;
    try {
      entries = await reader.getEntries();
    } catch (e) {
      throw await unreadable(file, /** @type {Error} */ (e));
    }
    const byName = new Map(entries.filter((e) => !e.directory).map((e) => [/** @type {string} */ (e.filename), e]));
    const json = byName.get(MANIFEST);
    if (!json) throw foreign(`it has no ${MANIFEST}`);
    const bytes = new Uint8Array(await (/** @type {Blob} */ ((await readEntries(file, [json], entries, zip)).get(MANIFEST))).arrayBuffer());
    const manifest = exact(await check(bytes.slice()), bytes);
    const names = [...manifest.dataset.files, ...manifest.dataset.edits.flatMap((e) => ('add' in e ? e.add : []))];
    const wanted = names.map((name) => {
      const entry = byName.get(PHOTOS + name);
      if (!entry) throw damaged(`${PHOTOS}${name} is missing`);
      return entry;
    });
    const modelEntry = manifest.model ? byName.get(MODEL) : null;
    if (manifest.model && !modelEntry) throw damaged(`its manifest says it holds a model, but ${MODEL} is missing`);
    if (modelEntry) wanted.push(modelEntry);
    const blobs = await readEntries(file, wanted, entries, zip, (done) => onProgress?.({ done: Math.min(done, names.length), total: names.length }));
    const photos = new Map(names.map((name) => [name, /** @type {Blob} */ (blobs.get(PHOTOS + name))]));
    return { manifest, photos, model: modelEntry ? /** @type {Blob} */ (blobs.get(MODEL)) : null };
  } finally {
    await reader.close().catch(() => {});
  }
}

/** A photo of the project as a File named by its recipe name (`pathOf` gives that name). */
function photoFile(/** @type {string} */ name, /** @type {Blob} */ blob) {
  const ext = name.split('.').pop()?.toLowerCase() || '';
  const type = { png: 'image/png', jpg: 'image/jpeg', jpeg: 'image/jpeg', webp: 'image/webp', gif: 'image/gif', bmp: 'image/bmp' }[ext] || '';
  const file = new File([blob], name.split('/').pop() || name, { type });
  Object.defineProperty(file, 'kilnPath', { value: name });
  return file;
}

/** An edit in a few words, for an error. */
function said(/** @type {ProjectEdit} */ e) {
  if ('changes' in e) return `${e.changes.length} change(s) of labels`;
  if ('add' in e) return `${e.add.length} photo(s) added`;
  if ('rename' in e) return `class ${e.rename[0]} renamed ${e.rename[1]}`;
  return `class ${e.removeClass} deleted`;
}

/**
 * Build the project's dataset through Kiln's own methods (load, then each edit as it was
 * made, so a restarted worker replays it the same way), then load its model.
 * @param {Pick<import('./kiln.js').Kiln, 'loadDataset' | 'applyChanges' | 'addFiles' | 'renameClass' | 'removeClass' | 'load' | 'history'>} kiln
 * @param {{manifest: ProjectManifest, photos: Map<string, Blob>, model: Blob | null}} project
 */
export async function rebuild(kiln, { manifest, photos, model }) {
  const file = (/** @type {string} */ name) => photoFile(name, /** @type {Blob} */ (photos.get(name)));
  const files = manifest.dataset.files.map(file);
  /** @type {File[]} */
  const added = [];
  const options = Object.fromEntries(Object.entries(manifest.dataset.options).filter(([, v]) => v !== null));
  /** @type {Summary} */
  let summary = await kiln.loadDataset(files, options);
  for (const [i, e] of manifest.dataset.edits.entries()) {
    try {
      if ('changes' in e) summary = await kiln.applyChanges(e.changes);
      else if ('add' in e) {
        const more = e.add.map(file);
        added.push(...more);
        if (more.length) summary = (await kiln.addFiles(more)).summary;
      } else if ('rename' in e) summary = await kiln.renameClass(e.rename[0], e.rename[1]);
      else summary = await kiln.removeClass(e.removeClass);
    } catch (err) {
      throw new Error(`edit ${i + 1} of the project (${said(e)}) no longer applies: ${/** @type {Error} */ (err).message}`);
    }
  }
  /** @type {{classes: string[], options: ModelOptions | null} | null} */
  let loaded = null;
  /** @type {EpochEvent[]} */
  let history = [];
  if (model) {
    try {
      loaded = await kiln.load(model);
    } catch (err) {
      throw new Error(`its ${MODEL} could not be loaded: ${/** @type {Error} */ (err).message}`);
    }
    history = (await kiln.history()).history;
  }
  return { summary, settings: manifest.settings, charts: manifest.charts, model: loaded, history, files, added, options, manifest };
}

/**
 * A project's manifest as written, read without the core's checks: enough to describe a
 * project (how many photos, whether a model) before it is opened.
 * @param {Blob} file
 * @returns {Promise<ProjectManifest | null>} null where it has none
 */
export async function peekManifest(file) {
  const zip = await zipJs();
  const reader = new zip.ZipReader(new zip.BlobReader(file));
  try {
    const entry = (await reader.getEntries()).find((/** @type {any} */ e) => e.filename === MANIFEST);
    return entry ? JSON.parse(await (await entryBlob(entry, zip)).text()) : null;
  } finally {
    await reader.close().catch(() => {});
  }
}

/** How many photos a manifest names. */
export const photoCount = (/** @type {ProjectManifest} */ m) => m.dataset.files.length + m.dataset.edits.reduce((/** @type {number} */ n, e) => n + ('add' in e ? e.add.length : 0), 0);
