// The camera: a small layer over getUserMedia (open a camera, release it, grab a square frame
// as a JPEG, record at a steady rate while a button is held) that the Photos section (samples
// as Teachable Machine takes them) and Predict's Live (live.js) share, and the Photos section's
// camera box. Only one camera view is open at a time, and every one is released when the page
// is hidden or left: a camera light that stays on in a background tab is a privacy bug.
import { $, guard } from './dom.js';
import { page, run, update } from './state.js';

/** The side frames are captured at (smaller when the camera's shorter side is). */
export const FRAME_SIZE = 224;
const sleep = (ms) => new Promise((r) => setTimeout(r, Math.max(0, ms)));

/**
 * A camera's stream: `deviceId` picks one (from the picker), else `facing` says which way
 * it should look ('user', the default, or 'environment'). Rejects with cameraError's message.
 * @param {{deviceId?: string, facing?: 'user' | 'environment'}} [opts]
 * @returns {Promise<MediaStream>}
 */
export async function openCamera({ deviceId, facing = 'user' } = {}) {
  if (!navigator.mediaDevices?.getUserMedia) throw cameraError(null);
  const video = { width: { ideal: 640 }, height: { ideal: 480 }, ...(deviceId ? { deviceId: { exact: deviceId } } : { facingMode: facing }) };
  try {
    return await navigator.mediaDevices.getUserMedia({ video, audio: false });
  } catch (e) {
    throw cameraError(e);
  }
}

/** Release a stream: every track stopped (the camera light goes off). */
export function stopStream(/** @type {MediaStream | null} */ stream) {
  for (const t of stream?.getTracks() || []) t.stop();
}

/** Why the camera could not be used, in the page's words, with what to do instead. */
export function cameraError(/** @type {any} */ e) {
  const name = e?.name;
  const why = !navigator.mediaDevices?.getUserMedia ? 'this browser gives the page no camera (it needs a secure page: https, or localhost)'
    : name === 'NotAllowedError' || name === 'SecurityError' ? 'permission to use it was denied'
    : name === 'NotFoundError' || name === 'OverconstrainedError' ? 'no camera was found'
    : name === 'NotReadableError' || name === 'AbortError' ? 'it is in use by another app, or the system refused it'
    : e?.message || String(e);
  const todo = name === 'NotFoundError' || name === 'OverconstrainedError' ? 'Connect a camera, or drop photos instead.'
    : name === 'NotReadableError' || name === 'AbortError' ? 'Close the other app that uses it, or drop photos instead.'
    : "Allow camera access in the browser's site settings, or drop photos instead.";
  return new Error(`Kiln could not use the camera: ${why}. ${todo}`);
}

/** Whether a stream's camera faces the user (its preview is then mirrored, as a mirror is):
 * desktop webcams often say nothing, and face the user. */
function facesUser(/** @type {MediaStream} */ stream) {
  const track = stream.getVideoTracks()[0];
  const facing = track?.getSettings().facingMode;
  return facing ? facing === 'user' : !/back|rear|environment/i.test(track?.label || '');
}

/**
 * The newest frame of `video`, centre-cropped to a square of `size` px (or the shorter side,
 * whichever is smaller), as a JPEG. Never mirrored: the model sees what the camera sees.
 * @param {HTMLVideoElement} video
 * @returns {Promise<Blob>}
 */
export function captureFrame(video, size = FRAME_SIZE, quality = 0.9) {
  const w = video.videoWidth;
  const h = video.videoHeight;
  if (!w || !h) return Promise.reject(new Error('The camera shows no picture yet.'));
  const side = Math.min(w, h);
  const out = Math.min(size, side);
  const canvas = document.createElement('canvas');
  canvas.width = canvas.height = out;
  /** @type {CanvasRenderingContext2D} */ (canvas.getContext('2d')).drawImage(video, (w - side) / 2, (h - side) / 2, side, side, 0, 0, out, out);
  return new Promise((res, rej) => canvas.toBlob((b) => (b ? res(b) : rej(new Error('The browser could not encode a camera frame.'))), 'image/jpeg', quality));
}

/**
 * Frames of `video` at a steady `fps` until `released` settles, in order. A tick that comes
 * late (a busy page) is skipped, never made up in a burst.
 * @param {HTMLVideoElement} video
 * @param {Promise<unknown>} released
 * @param {{fps?: number, size?: number, onFrame?: (n: number) => void}} [opts]
 * @returns {Promise<Blob[]>}
 */
export async function captureWhile(video, released, { fps = 10, size = FRAME_SIZE, onFrame } = {}) {
  let done = false;
  released.then(() => { done = true; });
  const step = 1000 / fps;
  const t0 = performance.now();
  /** @type {Promise<Blob | null>[]} */
  const frames = [];
  let n = 0;
  for (let k = 0; !done;) {
    if (video.readyState >= HTMLMediaElement.HAVE_CURRENT_DATA) frames.push(captureFrame(video, size).then((b) => { onFrame?.(++n); return b; }, () => null));
    k = Math.max(k + 1, Math.ceil((performance.now() - t0) / step));
    await Promise.race([released, sleep(t0 + k * step - performance.now())]);
  }
  return /** @type {Blob[]} */ ((await Promise.all(frames)).filter(Boolean));
}

/**
 * Hold-to-press: `onHold(released)` runs when `button` is pressed (mouse, pen or touch, or
 * Space / Enter from the keyboard) with a promise that settles when it is let go (or loses the
 * focus or the pointer). Returns a function that ends a hold from outside.
 * @param {HTMLButtonElement} button
 * @param {(released: Promise<void>) => void} onHold
 */
export function holdButton(button, onHold) {
  /** @type {(() => void) | null} */
  let release = null;
  const up = () => {
    if (!release) return;
    const r = release;
    release = null;
    button.classList.remove('held');
    r();
  };
  const down = () => {
    if (release || button.disabled) return;
    button.classList.add('held');
    onHold(new Promise((r) => { release = r; }));
  };
  button.addEventListener('pointerdown', (e) => {
    if (e.button !== 0) return;
    // The pointer stays this button's until it is lifted, wherever it moves.
    button.setPointerCapture(e.pointerId);
    down();
  });
  for (const t of ['pointerup', 'pointercancel', 'lostpointercapture', 'blur']) button.addEventListener(t, up);
  const key = (/** @type {KeyboardEvent} */ e) => e.key === ' ' || e.key === 'Enter';
  // The keys' own click (Enter on keydown, Space on keyup) would be a second press.
  button.addEventListener('keydown', (e) => { if (key(e)) { e.preventDefault(); if (!e.repeat) down(); } });
  button.addEventListener('keyup', (e) => { if (key(e)) { e.preventDefault(); up(); } });
  // A long touch opens no menu.
  button.addEventListener('contextmenu', (e) => e.preventDefault());
  return up;
}

/** The open views, released together when the page is hidden or left. @type {Set<CameraView>} */
const views = new Set();
const hide = () => { for (const v of [...views]) v.close('hidden'); };
document.addEventListener('visibilitychange', () => { if (document.visibilityState === 'hidden') hide(); });
window.addEventListener('pagehide', hide);

/** A camera shown in a <video>, with a <select> of the cameras to switch between. The stream
 * stays on the video (its srcObject) while the view is open. */
export class CameraView {
  /**
   * @param {HTMLVideoElement} video
   * @param {HTMLSelectElement} picker
   * @param {{opened?: () => void, failed?: (e: Error) => void, closed: (why: string) => void}} on
   *   `closed` once the camera is released: why is 'closed' (the page closed it), 'hidden' (the
   *   page was hidden or left), 'other' (another view opened) or 'failed' (a camera would not
   *   open: `failed` says why); `opened` and `failed` follow a camera chosen in the picker
   */
  constructor(video, picker, on) {
    this.video = video;
    this.picker = picker;
    this.on = on;
    /** Bumped by every start and close: a camera that opens after its view closed is released. */
    this.turn = 0;
    picker.addEventListener('change', () => this.start(picker.value).then((ok) => ok && on.opened?.(), (e) => on.failed?.(e)));
  }

  get stream() { return /** @type {MediaStream | null} */ (this.video.srcObject); }

  /** Open the camera `deviceId` (default: the user-facing one) in the video; one view at a
   * time. Resolves false when the view was closed meanwhile (the camera is released then). */
  async start(/** @type {string} */ deviceId = '') {
    for (const v of views) if (v !== this) v.close('other');
    // The old camera goes first: a phone may not open two at once.
    stopStream(this.stream);
    const turn = ++this.turn;
    let stream;
    try {
      stream = await openCamera({ deviceId: deviceId || undefined });
    } catch (e) {
      if (turn === this.turn) this.close('failed');
      throw e;
    }
    if (turn !== this.turn) {
      stopStream(stream);
      return false;
    }
    views.add(this);
    this.video.srcObject = stream;
    this.video.classList.toggle('mirror', facesUser(stream));
    await this.video.play().catch(() => {});
    await this.fillPicker(stream);
    return true;
  }

  /** The picker lists every camera (their names once permission is given), this one chosen. */
  async fillPicker(/** @type {MediaStream} */ stream) {
    const cams = (await navigator.mediaDevices.enumerateDevices()).filter((d) => d.kind === 'videoinput');
    const current = stream.getVideoTracks()[0]?.getSettings().deviceId;
    this.picker.replaceChildren(...cams.map((d, i) => new Option(d.label || `Camera ${i + 1}`, d.deviceId, false, d.deviceId === current)));
  }

  /** Release the camera (every track stopped) and say why. */
  close(/** @type {string} */ why = 'closed') {
    const open = views.delete(this) || !!this.stream;
    this.turn += 1;
    stopStream(this.stream);
    this.video.srcObject = null;
    if (open) this.on.closed(why);
  }
}

// The Photos section's camera box: a preview, the class the photos go to, Hold to record.
/** @type {CameraView | null} */
let view = null;
let endHold = () => {};
/** What recorded frames become (samples.js): photos of class `name`. Runs in 'recording'. @type {(name: string, frames: Blob[]) => Promise<void>} */
let save = async () => {};

const classField = () => /** @type {HTMLInputElement} */ ($('camera-class'));
const note = (/** @type {string} */ text) => { $('camera-note').textContent = text; $('camera-note').hidden = !text; };

/** Open the camera box for class `name` ('' for a new class, named in its field). */
export async function openRecorder(/** @type {string} */ name) {
  classField().value = name;
  $('camera-box').hidden = false;
  $('camera-count').textContent = '';
  note('');
  $('camera-box').scrollIntoView({ block: 'nearest' });
  if (!name) $('camera-class').focus();
  if (!view?.stream) {
    try {
      if (!(await view?.start())) return;
    } catch (e) {
      return note(/** @type {Error} */ (e).message);
    }
    update({ cameraReady: true });
  }
  if (name) $('camera-record').focus();
}

/** Record into the class in the field while the button is held; then the frames join it. */
function record(/** @type {Promise<void>} */ released) {
  return guard(async () => {
    const name = classField().value.trim();
    if (!name || name.includes('/') || name.startsWith('.')) throw new Error('Name the class the camera photos are of first (the Class field beside the camera; no slash, not starting with a dot).');
    await run('recording', async () => {
      const count = (/** @type {number} */ n) => { $('camera-count').textContent = `recording ${name}: ${n} photo${n === 1 ? '' : 's'}…`; };
      count(0);
      const frames = await captureWhile(/** @type {HTMLVideoElement} */ ($('camera-video')), released, { onFrame: count });
      $('camera-count').textContent = `${frames.length} photo${frames.length === 1 ? '' : 's'} of ${name} recorded`;
      if (frames.length) await save(name, frames);
    });
  });
}

/** Wire the camera box; `saveFrames` makes recorded frames photos of a class (samples.js). */
export function wireCamera(/** @type {(name: string, frames: Blob[]) => Promise<void>} */ saveFrames) {
  save = saveFrames;
  view = new CameraView(/** @type {HTMLVideoElement} */ ($('camera-video')), /** @type {HTMLSelectElement} */ ($('camera-device')), {
    opened: () => { note(''); update({ cameraReady: true }); },
    failed: (e) => note(e.message),
    closed: (why) => {
      endHold();
      update({ cameraReady: false });
      // A camera that would not open leaves the box open, saying why; otherwise it closes.
      if (why !== 'failed') $('camera-box').hidden = true;
    },
  });
  endHold = holdButton(/** @type {HTMLButtonElement} */ ($('camera-record')), record);
  $('camera-new').addEventListener('click', () => openRecorder(''));
  $('camera-close').addEventListener('click', () => {
    view?.close();
    $('camera-box').hidden = true;
    $('camera-new').focus();
  });
}
