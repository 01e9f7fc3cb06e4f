// 3b. Train more: the book's training by hand after fine_tune, on the model as it is (trained
// here, or imported): unfreeze(), lr_find on this model, then fit_one_cycle(epochs,
// lr_max=slice(from, to)). The epoch table and charts go on from the model's history; Cancel
// and the interpretation after it are Train's (the same 'training' phase, state.js).
import { $, setStatus } from './dom.js';
import { page, setPhase, update } from './state.js';
import { callbacks, modelState, startRun } from './training.js';
import { drawLrFind, lrFindProgress, sayDone } from './lr-find.js';
import { interpret } from './interpret.js';

/** Train more's fields, checked in the page's words. */
function moreOptions() {
  const text = (id) => $(id).value.trim();
  const said = (id) => text(id) || 'empty';
  const epochs = Number(text('more-epochs'));
  if (text('more-epochs') === '' || !Number.isInteger(epochs) || epochs < 1) {
    throw new Error(`Train more's Epochs must be a whole number, 1 or more, such as 6 (it is ${said('more-epochs')}).`);
  }
  const lr = (id, name) => {
    const v = Number(text(id));
    if (text(id) === '' || !(v > 0 && v < 10)) throw new Error(`Train more's learning rate "${name}" must be a number more than 0 and less than 10, such as ${id === 'more-from' ? '1e-6' : '1e-4'} (it is ${said(id)}).`);
    return v;
  };
  const from = lr('more-from', 'from');
  const to = lr('more-to', 'to');
  if (from > to) {
    throw new Error(`Train more's learning rate "from" (${text('more-from')}, for the first layers) must not be more than "to" (${text('more-to')}, for the head): fastai's slice(from, to) spreads the rates from one to the other.`);
  }
  return { epochs, from, to, unfreeze: $('more-unfreeze').checked, slice: `slice(${text('more-from')}, ${text('more-to')})` };
}

/** Freeze or unfreeze the model as ticked; the state line follows. */
async function setFrozen(unfreeze) {
  const frozen = unfreeze ? await page.kiln.unfreeze() : await page.kiln.freeze();
  update({ modelState: { epochs: page.modelState?.epochs ?? 0, frozen } });
  return frozen;
}

/** Runs in the 'training' phase: (un)freeze as ticked, fit_one_cycle on the model, then
 * interpret the validation set as Train does. */
export async function trainMore() {
  const o = moreOptions();
  const what = `fit_one_cycle(${o.epochs}, lr_max=${o.slice})${o.unfreeze ? ' after unfreeze()' : ', body frozen'}`;
  setStatus('preparing the model…');
  try {
    const frozen = await setFrozen(o.unfreeze);
    if (page.cancelling) return setStatus('cancelled before training started');
    startRun({ fit: o.epochs }, true, { unfrozen: !frozen });
    setStatus(`training more: ${what}`);
    const report = await page.kiln.fitOneCycle(o.epochs, { lrMax: [o.from, o.to] }, callbacks);
    // Cancelled or not, the model keeps what it learned; it is not in a file until exported.
    const now = await modelState();
    update({ modelOrigin: 'trained', modelSaved: false, modelVersion: page.modelVersion + 1, modelState: { epochs: now.epochs, frozen: now.frozen } });
    setStatus(`${report.cancelled ? 'cancelled — the model keeps what it learned so far' : 'done'} · trained more: ${what}`);
    $('model-status').textContent = `model ready (${page.modelClasses.length} classes, ${now.epochs} epochs): export it to keep it`;
  } catch (e) {
    setStatus('');
    throw e;
  }
  setPhase('interpreting');
  await interpret();
}

/** Runs in the 'finding-lr' phase: lr_find on the model as Train more will train it (unfrozen
 * first if ticked); the model and its epoch table are left as they were. */
export async function lrFindMore() {
  const unfreeze = $('more-unfreeze').checked;
  setStatus('lr_find on this model…');
  try {
    await setFrozen(unfreeze);
    if (page.cancelling) return setStatus('lr_find cancelled before it started');
    const r = await page.kiln.lrFind({}, lrFindProgress);
    drawLrFind(r, { box: 'more-lr-box', chart: 'more-lr-chart', suggestions: 'more-suggestions', pick: 'more-to', to: ' as "to"' });
    sayDone(r, `lr_find on this model (${unfreeze ? 'unfrozen' : 'frozen'})`);
  } catch (e) {
    setStatus('');
    throw e;
  }
}
