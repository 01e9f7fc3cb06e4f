// Small helpers the page's modules share.

export const $ = (id) => document.getElementById(id);

/**
 * An element with properties and children: el('td', { title: 'x' }, 'text').
 * `style` may be an object of CSS properties.
 */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  const { style, ...rest } = props;
  Object.assign(node, rest);
  if (style) Object.assign(node.style, style);
  node.append(...children);
  return node;
}

export function showError(e) {
  const box = $('error');
  box.textContent = e instanceof Error ? e.message : String(e);
  box.hidden = false;
  // The box sticks to the top of the window (style.css), so it is seen wherever the user is.
  console.error(e);
}

export function clearError() { $('error').hidden = true; }

/** Run a user action: its error, if any, goes to the error box instead of the console only. */
export async function guard(fn) {
  clearError();
  try { return await fn(); } catch (e) { showError(e); }
}

export const setStatus = (text) => { $('status').textContent = text; };

export function chartWidth(node) { return Math.max(260, node.clientWidth || 300); }

export const fmtTime = (s) => `${String(Math.floor(s / 60)).padStart(2, '0')}:${String(Math.floor(s % 60)).padStart(2, '0')}`;

/** Save `blob` as a download named `name` (the browser's own download, no picker). */
export function download(blob, name) {
  const a = el('a', { href: URL.createObjectURL(blob), download: name });
  document.body.append(a);
  a.click();
  a.remove();
  // Revoked later: the browser reads the file after the click.
  setTimeout(() => URL.revokeObjectURL(a.href), 60_000);
}

/** Paint RGBA ImageData into a canvas, sized to it. */
export function paint(canvas, img) {
  canvas.width = img.width;
  canvas.height = img.height;
  canvas.getContext('2d').putImageData(img, 0, 0);
}
