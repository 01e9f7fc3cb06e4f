#!/usr/bin/env bash
# Builds the page: the core for wasm32 with wasm-bindgen, the npm packages, the generated
# TypeScript types, and the bundled pretrained backbone as a static asset. Installs the wasm32
# target, the wasm-bindgen CLI (pinned to the crate's version in Cargo.lock) and the assets
# only when missing.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/fetch-assets.sh

setting() { python3 -c 'import sys, tomllib; v = tomllib.load(open("wasm-pack.toml", "rb"))["build"][sys.argv[1]]; print(",".join(v) if isinstance(v, list) else v)' "$1"; }
features=$(setting features)
target=$(setting target)
out_dir=$(setting out_dir)

rustup target list --installed | grep -qx wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown
want=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/"/, "", $3); print $3 }' Cargo.lock)
have=$(wasm-bindgen --version 2>/dev/null | awk '{print $2}' || true)
if [ "$have" != "$want" ]; then
  echo "== installing wasm-bindgen-cli $want (once; a few minutes)"
  cargo install wasm-bindgen-cli --version "$want"
fi
if [ ! -d node_modules/uplot ] || [ ! -d node_modules/typescript ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi

echo "== building the core for wasm32 (features: $features)"
cargo build --release --lib --target wasm32-unknown-unknown --no-default-features --features "$features"
# The name section (function names for stack traces) is ~7 MB; panic messages survive without it.
wasm-bindgen --target "$target" --out-dir "$out_dir" --remove-name-section --remove-producers-section "${CARGO_TARGET_DIR:-target}/wasm32-unknown-unknown/release/kiln.wasm"

# The default backbone, converted once per build by the wasm just built (so the file always
# matches the reader), served next to the page: nothing is downloaded at run time.
node scripts/convert-weights.mjs assets/efficientnet-lite0-57934424.pth assets/efficientnet_lite0.kiln
mkdir -p www/weights
cp assets/efficientnet_lite0.kiln www/weights/efficientnet_lite0.kiln

mkdir -p www/vendor
cp node_modules/uplot/dist/uPlot.esm.js node_modules/uplot/dist/uPlot.min.css node_modules/uplot/LICENSE www/vendor/
npx tsc -p www/tsconfig.json
wasm="$out_dir/kiln_bg.wasm"
echo "== built $wasm: $(( $(stat -c %s "$wasm") / 1024 )) KiB raw, $(( $(gzip -9 -c "$wasm" | wc -c) / 1024 )) KiB gzip -9"
