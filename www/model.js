// 6. Model: export in one of Kiln's formats (.kiln, ONNX, fastai/PyTorch) and import a .kiln.
import { $, el } from './dom.js';
import { page, update } from './state.js';
import { importWeights } from './settings.js';

const FORMATS = {
  kiln: { method: 'export', file: 'model.kiln' },
  onnx: { method: 'exportOnnx', file: 'model.onnx' },
  pytorch: { method: 'exportPyTorch', file: 'model.safetensors' },
};

/** Runs in the 'exporting' phase: the file is made in the worker, then downloaded. */
export async function exportModel(format) {
  const { method, file } = FORMATS[format];
  const blob = await page.kiln[method]();
  const a = el('a', { href: URL.createObjectURL(blob), download: file });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 10_000);
  $('model-status').textContent = `exported ${file}, ${(blob.size / 1024).toFixed(0)} KiB`;
}

/** Runs in the 'importing' phase: a trained model to predict with (or train on). */
export async function importModel(file) {
  const { classes } = await page.kiln.load(file);
  update({ modelClasses: classes });
  $('model-status').textContent = `loaded ${file.name}: ${classes.length} classes (${classes.slice(0, 5).join(', ')}${classes.length > 5 ? ', …' : ''})`;
}

/** A dropped .kiln: a trained model to use, or a pretrained backbone to train from. */
export async function importKiln(file) {
  try {
    await importModel(file);
  } catch (e) {
    if (/pretrained backbone/.test(e.message)) await importWeights(file);
    else throw e;
  }
}
