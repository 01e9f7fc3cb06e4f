// Converts a checkpoint to a Kiln backbone with the page's own wasm build (the same core the
// CLI's `kiln weights import` runs), so the page build needs no native compile:
//   node scripts/convert-weights.mjs IN.pth OUT.kiln
import { readFileSync, writeFileSync } from 'node:fs';
import { basename } from 'node:path';
import { initSync, importWeights } from '../www/pkg/kiln.js';

const [input, output] = process.argv.slice(2);
if (!input || !output) {
  console.error('usage: node scripts/convert-weights.mjs IN.pth OUT.kiln');
  process.exit(2);
}
initSync({ module: readFileSync(new URL('../www/pkg/kiln_bg.wasm', import.meta.url)) });
try {
  const r = await importWeights(readFileSync(input), basename(input), undefined);
  writeFileSync(output, r.bytes);
  const head = r.imagenetClasses ? ` with its ${r.imagenetClasses}-class classifier` : '';
  console.log(`${input}: ${r.arch} weights${head} → ${output} (${(r.bytes.length / 2 ** 20).toFixed(1)} MiB)`);
} catch (e) {
  console.error(`error: ${e.message || e}`);
  process.exit(1);
}
