// Files in: the path a file is labelled by, and every file under a drop (folders walked).
// Part of Kiln's API: kiln.js re-exports both.

/**
 * The path a file is labelled by: its folder path when it came from a folder (a picked folder's
 * `webkitRelativePath`, or the path `filesFromDrop` and `sampleFiles` give it), else its name.
 * @param {File} f
 * @returns {string}
 */
export function pathOf(f) {
  return /** @type {any} */ (f).kilnPath || f.webkitRelativePath || f.name;
}

/**
 * Every file under the dropped items, with its folder path (for labels by folder).
 * @param {DataTransfer} dt
 * @returns {Promise<File[]>}
 */
export async function filesFromDrop(dt) {
  /** @type {File[]} */
  const out = [];
  /** @param {any} entry @param {string} prefix */
  async function walk(entry, prefix) {
    if (entry.isFile) {
      /** @type {File} */
      const file = await new Promise((res, rej) => entry.file(res, rej));
      Object.defineProperty(file, 'kilnPath', { value: prefix + file.name });
      out.push(file);
    } else if (entry.isDirectory) {
      const reader = entry.createReader();
      for (;;) {
        /** @type {any[]} */
        const batch = await new Promise((res, rej) => reader.readEntries(res, rej));
        if (!batch.length) break;
        for (const e of batch) await walk(e, prefix + entry.name + '/');
      }
    }
  }
  const entries = [...dt.items].map((i) => i.webkitGetAsEntry && i.webkitGetAsEntry()).filter(Boolean);
  if (entries.length) for (const e of entries) await walk(e, '');
  else out.push(...dt.files);
  return out;
}
