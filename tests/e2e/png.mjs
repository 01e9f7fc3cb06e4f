// PNG fixtures made in code (never downloaded): chunks with their CRCs, and whole RGB images.
import { deflateSync, crc32 } from 'node:zlib';

/** One PNG chunk: length, type, data, CRC-32 of type + data. */
export function chunk(type, data) {
  const len = Buffer.alloc(4); len.writeUInt32BE(data.length);
  const td = Buffer.concat([Buffer.from(type), data]);
  const crc = Buffer.alloc(4); crc.writeUInt32BE(crc32(td));
  return Buffer.concat([len, td, crc]);
}

export const SIGNATURE = Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]);

/** An 8-bit RGB PNG of w × h whose pixel (x, y) is pixel(x, y) = [r, g, b]. */
export function png(w, h, pixel) {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0); ihdr.writeUInt32BE(h, 4); ihdr[8] = 8; ihdr[9] = 2;
  const raw = Buffer.alloc(h * (1 + 3 * w));
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) raw.set(pixel(x, y), y * (1 + 3 * w) + 1 + 3 * x);
  return Buffer.concat([SIGNATURE, chunk('IHDR', ihdr), chunk('IDAT', deflateSync(raw)), chunk('IEND', Buffer.alloc(0))]);
}
