// 4. Predict, live: the camera's picture classified continuously (Teachable Machine's
// preview). One loop grabs the newest frame, waits for the model's answer and draws it, then
// grabs the next: frames that come meanwhile are dropped, never queued, so at most one
// prediction is in flight and the answer is always about a recent picture; no frame is
// classified twice (a fast model waits for the camera). Live is work of its own (state.js's
// 'live' phase): nothing else starts while it runs, and it starts only while Kiln is idle
// with a model, so training and the rest never run beside it.
import { $, guard } from './dom.js';
import { page, run } from './state.js';
import { CameraView, FRAME_SIZE, captureFrame } from './camera.js';
import { forgetShown, predictedClasses, showProbs } from './predict.js';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
/** @type {CameraView} */
let view;
/** The running session: `on` goes false when it is to stop (toggled off, the camera released). */
let session = null;

const note = (text) => { $('live-note').textContent = text; $('live-note').hidden = !text; };

/** Runs in the 'live' phase until toggled off, the page is hidden, or a prediction fails. */
async function live() {
  note('');
  // The last session's answer is not about this picture.
  forgetShown($('live-label'));
  $('live-label').textContent = '';
  $('live-bars').replaceChildren();
  const s = { on: true };
  session = s;
  $('live-box').hidden = false;
  try {
    try {
      if (!(await view.start())) return;
    } catch (e) {
      return note(e.message);
    }
    await loop(s);
  } finally {
    session = null;
    view.close();
    $('live-box').hidden = true;
  }
}

/** Predict the newest frame, draw it, again; the rate achieved is said each second. */
async function loop(s) {
  const video = /** @type {HTMLVideoElement} */ ($('live-video'));
  // The model's own input size when it is larger (an imported 320 px model, say).
  const size = Math.max(FRAME_SIZE, Number(page.modelOptions?.size) || 0);
  let n = 0;
  let since = performance.now();
  let said = '';
  $('live-rate').textContent = 'starting…';
  const timer = setInterval(() => {
    const now = performance.now();
    $('live-rate').textContent = `${(n * 1000 / (now - since)).toFixed(1)} predictions/s`;
    n = 0;
    since = now;
  }, 1000);
  const frames = frameCounter(video);
  let seen = -1;
  try {
    while (s.on && view.stream) {
      // A frame already classified is not classified again: wait for the camera's next one.
      if (frames && frames.n === seen) await frames.next();
      seen = frames ? frames.n : seen;
      let frame;
      try {
        frame = await captureFrame(video, size);
      } catch {
        // No picture yet (the camera is starting, or switching to another).
        await sleep(50);
        continue;
      }
      const p = await page.kiln.predict(frame);
      if (!s.on) break;
      // Screen readers hear the class when it changes (a frame, or the threshold), not every frame.
      showProbs(p, $('live-label'), $('live-bars'), (q) => {
        const now = predictedClasses(q);
        if (now !== said) $('live-said').textContent = said = now;
      });
      n += 1;
    }
  } finally {
    frames?.stop();
    clearInterval(timer);
    $('live-rate').textContent = '';
  }
}

/** Counts the frames `video` shows (requestVideoFrameCallback; null where the browser lacks
 * it). `next()` waits for the next one, or 250 ms at most. */
function frameCounter(video) {
  if (!('requestVideoFrameCallback' in video)) return null;
  let n = 0;
  let on = true;
  let wake = null;
  const tick = () => {
    n += 1;
    wake?.();
    if (on) video.requestVideoFrameCallback(tick);
  };
  video.requestVideoFrameCallback(tick);
  return {
    get n() { return n; },
    next: () => new Promise((r) => { wake = r; setTimeout(r, 250); }),
    stop: () => { on = false; },
  };
}

export function wireLive() {
  view = new CameraView(/** @type {HTMLVideoElement} */ ($('live-video')), /** @type {HTMLSelectElement} */ ($('live-camera')), {
    failed: (e) => note(e.message),
    closed: (why) => {
      if (session) session.on = false;
      if (why === 'hidden') note('Live stopped: the page was hidden, so the camera was released. Press Live to start again.');
    },
  });
  $('live').addEventListener('click', () => {
    if (session) return view.close();
    guard(() => run('live', live));
  });
}
