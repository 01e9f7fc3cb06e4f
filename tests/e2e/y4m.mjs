// A fake camera made from real photos: Chromium's --use-file-for-fake-video-capture plays a
// YUV4MPEG2 file in a loop. The photo is decoded by a browser page (canvas), its frames written
// here as 4:2:0 YUV (BT.601, studio range, what the fake camera hands on as I420).

/**
 * `n` RGBA frames of `side` × `side` px: a square from the middle of the photo `bytes`, panned a
 * little from frame to frame (a hand-held camera), decoded in `page` (any page: about:blank).
 * @returns {Promise<Uint8Array[]>}
 */
export async function photoFrames(page, bytes, { side = 240, n = 10 } = {}) {
  const b64 = await page.evaluate(async ({ b64, side, n }) => {
    const img = await createImageBitmap(new Blob([Uint8Array.from(atob(b64), (c) => c.charCodeAt(0))]));
    const ctx = new OffscreenCanvas(side, side).getContext('2d');
    const s = Math.min(img.width, img.height) * 0.9;
    const all = new Uint8Array(n * side * side * 4);
    for (let i = 0; i < n; i++) {
      const a = (2 * Math.PI * i) / n;
      ctx.drawImage(img, (img.width - s) / 2 + Math.cos(a) * s * 0.03, (img.height - s) / 2 + Math.sin(a) * s * 0.03, s, s, 0, 0, side, side);
      all.set(ctx.getImageData(0, 0, side, side).data, i * side * side * 4);
    }
    let bin = '';
    for (let i = 0; i < all.length; i += 0x8000) bin += String.fromCharCode(...all.subarray(i, i + 0x8000));
    return btoa(bin);
  }, { b64: Buffer.from(bytes).toString('base64'), side, n });
  const all = Buffer.from(b64, 'base64');
  const size = side * side * 4;
  return Array.from({ length: n }, (_, i) => all.subarray(i * size, (i + 1) * size));
}

/** A Y4M file (C420) of RGBA `frames`, each `w` × `h` (both even), at `fps` frames a second. */
export function y4m(w, h, fps, frames) {
  const header = Buffer.from(`YUV4MPEG2 W${w} H${h} F${fps}:1 Ip A1:1 C420jpeg\n`);
  const parts = [header];
  for (const rgba of frames) {
    const y = Buffer.alloc(w * h);
    const u = Buffer.alloc((w / 2) * (h / 2));
    const v = Buffer.alloc((w / 2) * (h / 2));
    for (let j = 0; j < h; j++) {
      for (let i = 0; i < w; i++) {
        const k = 4 * (j * w + i);
        y[j * w + i] = ((66 * rgba[k] + 129 * rgba[k + 1] + 25 * rgba[k + 2] + 128) >> 8) + 16;
      }
    }
    // Chroma from each 2 × 2 block's mean colour.
    for (let j = 0; j < h / 2; j++) {
      for (let i = 0; i < w / 2; i++) {
        let r = 0; let g = 0; let b = 0;
        for (const [dx, dy] of [[0, 0], [1, 0], [0, 1], [1, 1]]) {
          const k = 4 * ((2 * j + dy) * w + 2 * i + dx);
          r += rgba[k]; g += rgba[k + 1]; b += rgba[k + 2];
        }
        [r, g, b] = [r / 4, g / 4, b / 4];
        u[j * (w / 2) + i] = Math.round(((-38 * r - 74 * g + 112 * b + 128) / 256) + 128);
        v[j * (w / 2) + i] = Math.round(((112 * r - 94 * g - 18 * b + 128) / 256) + 128);
      }
    }
    parts.push(Buffer.from('FRAME\n'), y, u, v);
  }
  return Buffer.concat(parts);
}
