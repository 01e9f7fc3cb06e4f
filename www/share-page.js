// 7. Model, "Download as a web page": a zip holding a small static folder that predicts photos
// and the live camera with the model. The page is www/share/ (index.html, share.js,
// share.css, README.txt); beside it go Kiln's JS API with its worker, Kiln's one-thread build
// (pkg/: WebGPU, or the CPU on one thread, which need no cross-origin isolation, unlike
// pkg-threads/), the model and a note on where it came from. The files are fetched from this
// page's own origin (offline, the service worker has them) and zipped here with client-zip.
import { makeZip } from './vendor/client-zip.js';

/** The shared page's own files, in www/share/; the zip has them at its top. */
const PAGE = ['index.html', 'share.js', 'share.css', 'README.txt'];

/** What the shared page runs of Kiln: kiln.js and its imports, worker.js and its imports, and
 * the one-thread build. tests/e2e/share.test.mjs serves a zip's folder alone: a file missing
 * here fails there. */
export const KILN_FILES = ['kiln.js', 'kiln-dataset.js', 'files.js', 'queue.js', 'worker-link.js', 'kiln-types.js', 'worker.js', 'worker-backend.js', 'probe-worker.js', 'relaxed-simd.js', 'pkg/kiln.js', 'pkg/kiln_bg.wasm'];

/** share.js imports Kiln from the folder above it; in the zip, kiln.js is beside it. */
const IMPORT = "from '../kiln.js';";

/** @typedef {{trained: string | null, trainImages: number | null, from: string | null}} About */

/** A file of this page, fetched from its origin. */
async function own(/** @type {string} */ path) {
  const r = await fetch(new URL(path, import.meta.url));
  if (!r.ok) throw new Error(`${path} could not be fetched from this page's server (${r.status}): the page's build is incomplete`);
  return r;
}

/**
 * The zip: `folder/` with the page, Kiln, `model.kiln` (the model's `.kiln` bytes) and
 * `about.json` (`about`: the day it was trained, on how many images, or the file it was
 * imported from; null where not known).
 * @param {{model: Blob, about: About, folder: string}} o
 * @returns {Promise<Blob>}
 */
export async function sharePageZip({ model, about, folder }) {
  const [page, kiln] = await Promise.all([Promise.all(PAGE.map((f) => own(`share/${f}`))), Promise.all(KILN_FILES.map(own))]);
  /** @type {{name: string, input: Response | Blob | string}[]} */
  const entries = await Promise.all(PAGE.map(async (f, i) => {
    if (f !== 'share.js') return { name: `${folder}/${f}`, input: page[i] };
    const text = await page[i].text();
    if (text.split(IMPORT).length !== 2) throw new Error(`internal error: share/share.js must import Kiln once, as ${IMPORT}`);
    return { name: `${folder}/${f}`, input: text.replace(IMPORT, "from './kiln.js';") };
  }));
  entries.push(...KILN_FILES.map((f, i) => ({ name: `${folder}/${f}`, input: kiln[i] })));
  entries.push({ name: `${folder}/model.kiln`, input: model }, { name: `${folder}/about.json`, input: `${JSON.stringify(about, null, 2)}\n` });
  // A Blob the browser holds (and pages to disk when large), not the page's memory.
  return new Response(makeZip(entries)).blob();
}
