// 2. Settings: the learner's options, which weights it starts from, where it runs, and the
// augmented-batch preview (show_batch).
import { ARCHS } from './kiln.js';
import { $, clearError, paint } from './dom.js';
import { BCE, LEARNER_FIELDS, checkedLearnerFields, page, showLearnerFields, update, useSizing } from './state.js';

/** The next model's options. "Allow none of these" is fastai's multi-label recipe: one sigmoid
 * per class (BCEWithLogitsLossFlat, threshold 0.5) instead of a softmax over the classes. The
 * vision_learner options (the head, the loss, weight decay, momentums) are checked first: a
 * value out of range is an error naming its field. */
export function learnerOptions() {
  const arch = $('arch').value;
  const multi = $('multi-label').checked ? { multiLabel: true, thresh: 0.5 } : {};
  const learner = checkedLearnerFields();
  return { arch, pretrained: $('pretrained').checked && arch !== 'tiny', size: Number($('size').value), batchSize: Number($('bs').value), doFlip: $('flip').checked, fp16: $('fp16').checked, ...multi, ...learner };
}

/** Says which weights the next model starts from. */
export function showWeights() {
  const arch = $('arch').value;
  const box = $('weights-status');
  const tiny = arch === 'tiny';
  // Tiny has no pretrained weights: the box shows unticked, and the choice comes back after.
  if (tiny) {
    if (page.pretrainedBeforeTiny === null) update({ pretrainedBeforeTiny: $('pretrained').checked });
    $('pretrained').checked = false;
  } else if (page.pretrainedBeforeTiny !== null) {
    $('pretrained').checked = page.pretrainedBeforeTiny;
    update({ pretrainedBeforeTiny: null });
  }
  box.classList.remove('warn');
  if (tiny) box.textContent = 'The tiny ResNet always starts from random weights.';
  else if (!$('pretrained').checked) box.textContent = `${ARCHS[arch].name} from random weights (training from scratch needs far more data).`;
  else if (page.weights && page.weights.arch === arch) box.textContent = `${ARCHS[arch].name} from ${page.weights.name}.`;
  else if (arch === 'efficientnet_lite0') box.textContent = 'EfficientNet-Lite0 pretrained on ImageNet (bundled with Kiln, Apache-2.0).';
  else {
    box.textContent = `No ${ARCHS[arch].name} weights yet: download torchvision's ${ARCHS[arch].torchvision} (see the README), then drop it anywhere on the page or use the button below; or untick pretrained.`;
    box.classList.add('warn');
  }
}

/** Files taken as pretrained weights when dropped. */
export const WEIGHT_FILE = /\.(pth|pt|bin|safetensors)$/i;

/** Pretrained weights (a checkpoint or a Kiln backbone) for the next model of their architecture. */
export async function importWeights(file) {
  $('weights-status').textContent = `reading ${file.name}…`;
  try {
    const w = await page.kiln.importWeights(file);
    $('arch').value = w.arch;
    $('pretrained').checked = true;
    update({ weights: w, pretrainedBeforeTiny: null });
  } finally {
    showWeights();
  }
}

export async function showBatch() {
  $('status').textContent = 'augmenting a batch…';
  try {
    const img = await page.kiln.showBatch({ n: 16, size: Number($('size').value), seed: Math.floor(Math.random() * 1e9), doFlip: $('flip').checked });
    const canvas = $('batch');
    paint(canvas, img);
    // Small images (digits, tests) are shown enlarged, in whole pixels.
    const scale = Math.max(1, Math.floor(640 / img.width));
    canvas.style.width = `${img.width * scale}px`;
    canvas.hidden = false;
    // The class names are drawn into the picture: the label says them too, in the grid's order.
    const cols = Math.ceil(Math.sqrt(img.labels.length));
    canvas.setAttribute('aria-label', `show_batch: ${img.labels.length} augmented training images at ${$('size').value} px, ${cols} a row, titled ${img.labels.join(', ')}`);
  } finally {
    $('status').textContent = '';
  }
}

/** Where training runs, and how a batch is split to fit memory (null: not known until the next model). */
export function showCompute(microBatch) {
  const info = page.kiln?.info;
  if (!info) return;
  const simd = info.simd === 'relaxed' ? 'WebAssembly SIMD with relaxed fused multiply-add' : 'WebAssembly SIMD';
  const where = info.backend === 'webgpu' ? `WebGPU (${info.adapter})` : `CPU, ${info.threads} thread${info.threads === 1 ? '' : 's'}, ${simd}`;
  const bs = Number($('bs').value);
  const passes = microBatch ? Math.ceil(bs / microBatch) : 1;
  const split = passes > 1
    ? ` · each batch of ${bs} runs as ${passes} passes of ${Math.ceil(bs / passes)} images to fit memory (gradients are accumulated, so training still sees batches of ${bs})`
    : microBatch ? ` · batches of ${bs} in one pass` : '';
  $('compute').textContent = `Runs on ${where}${split}.`;
}

/** The model the backend choice 'auto' measures: the Settings' architecture and image size;
 * null while the size is not a whole number of pixels the core takes. */
export function probeModel() {
  const size = Number($('size').value);
  return Number.isInteger(size) && size >= 16 ? { arch: $('arch').value, size } : null;
}

/** Which backend 'auto' chose and why (the measured figures), or that it is measuring now
 * (`measuring`: the model); hidden where the backend was not chosen by measuring. */
export function showDevice(device, measuring = null) {
  const p = $('device-choice');
  const name = (m) => `${ARCHS[m.arch]?.name ?? m.arch} at ${m.size} px`;
  if (measuring) p.textContent = `Measuring the CPU and WebGPU on ${name(measuring)}…`;
  else if (device) {
    const when = device.cached ? 'Measured on an earlier visit' : `Measured in ${(device.probeMs / 1000).toFixed(1)} s`;
    p.textContent = `Backend “auto” chose ${device.reason}. ${when}, kept for this browser, build, model and size.`;
  }
  p.hidden = !measuring && !device;
}

/** The method's explanation and the frozen epochs field follow the Method select. */
export function syncMethod() {
  const ft = $('method').value === 'fine_tune';
  $('freeze-label').hidden = !ft;
  $('method-hint').textContent = ft ? 'the new head first (body frozen), then all layers' : 'all layers, one cycle of the learning rate';
}

/** Wire the settings that change what the page shows (not what it does). */
export function wireSettings() {
  $('method').addEventListener('change', () => {
    syncMethod();
    $('lr').value = $('method').value === 'fine_tune' ? 0.002 : 0.001;
  });
  // What Train will do with an imported model, the Presize hint and the small-data notice
  // (Kiln's proposal or fastai's defaults, state.js) follow these.
  for (const id of ['size', 'bs', 'flip', 'multi-label', 'pretrained', 'epochs', 'freeze-epochs']) $(id).addEventListener('input', () => update({}));
  $('method').addEventListener('change', () => update({}));
  // The notice's one button puts Kiln's proposal, or fastai's defaults, in the Settings.
  $('proposal-use').addEventListener('click', () => {
    $('settings-note').hidden = true;
    useSizing($('proposal-use').dataset.use);
  });
  // The notice of where the Settings came from (the sample, the photo defaults, an imported
  // model) no longer holds once the user changes one.
  for (const id of ['arch', 'size', 'bs', 'method', 'epochs', 'freeze-epochs', 'lr', 'flip', 'multi-label', 'pretrained', 'presize']) {
    $(id).addEventListener('input', () => { $('settings-note').hidden = true; });
  }
  // vision_learner's options: the note of those changed from fastai's defaults, and what Train
  // will do with an imported model, follow them (state.js's render).
  for (const id of LEARNER_FIELDS.filter((x) => x !== 'loss-func')) $(id).addEventListener('input', () => { $('settings-note').hidden = true; update({}); });
  // BCEWithLogitsLossFlat is "Allow none of these": choosing it ticks the box, another loss
  // unticks it, as if the box were clicked (it re-labels copies of a photo, app.js); the box
  // sets the select back (state.js's render, which is why the select's own input event, which
  // comes first, redraws nothing).
  $('loss-func').addEventListener('change', () => {
    $('settings-note').hidden = true;
    const bce = $('loss-func').value === BCE;
    if (bce !== $('multi-label').checked) {
      $('multi-label').checked = bce;
      for (const type of ['input', 'change']) $('multi-label').dispatchEvent(new Event(type));
    }
    update({});
  });
  $('learner-defaults').addEventListener('click', () => {
    showLearnerFields({});
    $('settings-note').hidden = true;
    update({});
  });
  // The box's enabled state follows the architecture (state.js's render).
  $('arch').addEventListener('change', () => { clearError(); showWeights(); update({}); });
  $('pretrained').addEventListener('change', () => { clearError(); showWeights(); });
  // How a batch is split is known again only when the next model is made: drop the old split.
  for (const id of ['arch', 'bs', 'size']) $(id).addEventListener('input', () => showCompute(null));
}
