#!/usr/bin/env bash
# Builds the page: the core for wasm32 twice (settings in wasm-pack.toml; Cargo.toml's `web`
# and `web-gpu` profiles: size-optimised but for the CPU kernels), wasm-bindgen and
# wasm-opt on each, the npm packages, the generated TypeScript types, and the bundled
# pretrained backbone as a static asset.
#   www/pkg/          WebGPU + the CPU backend on one thread, with wasm SIMD (stable Rust)
#   www/pkg-threads-relaxed/  the CPU backend on a rayon pool of Web Workers, with wasm SIMD
#                     and relaxed SIMD's fused multiply-add (gemm, the 1x1 and depthwise
#                     convolutions), for engines that have it (nightly Rust: std is rebuilt
#                     with atomics, offline, from rust-src)
#   www/pkg-threads/  the same module with plain SIMD only, derived from it (crates/plain-simd)
# Installs the wasm32 target, rust-src for the nightly, the wasm-bindgen CLI (pinned to the
# crate's version in Cargo.lock), the npm packages (binaryen's wasm-opt among them) and the
# assets only when missing.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/fetch-assets.sh

setting() { python3 -c 'import sys, tomllib; v = tomllib.load(open("wasm-pack.toml", "rb"))[sys.argv[1]][sys.argv[2]]; print(",".join(v) if isinstance(v, list) else v)' "$1" "$2"; }
features=$(setting build features)
target=$(setting build target)
out_dir=$(setting build out_dir)
relaxed_features=$(setting threads features)
relaxed_out_dir=$(setting threads out_dir)
threads_out_dir=$(setting threads plain_out_dir)
nightly=$(setting threads toolchain)
nightly_date=$(setting threads toolchain_date)
target_dir="${CARGO_TARGET_DIR:-target}"

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
rustup target list --installed | grep -qx wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown
rustup component list --toolchain "$nightly" --installed 2>/dev/null | grep -q '^rust-src' || rustup component add rust-src --toolchain "$nightly"
have_date=$(rustc +"$nightly" --version | sed -E 's/.* ([0-9]{4}-[0-9]{2}-[0-9]{2})\)$/\1/')
[ "$have_date" = "$nightly_date" ] || echo "== note: the threaded build was verified with nightly $nightly_date; this machine's is $have_date"
# Shared memory needs atomics in every crate, std included, and these exports for
# wasm-bindgen-rayon's thread start-up. Own target dir: other flags, other toolchain.
threaded() { # features
  RUSTFLAGS="-C target-feature=+atomics,+bulk-memory,+mutable-globals,+simd128 \
    -C link-arg=--shared-memory -C link-arg=--import-memory -C link-arg=--max-memory=4294967296 \
    -C link-arg=--export=__wasm_init_tls -C link-arg=--export=__tls_size \
    -C link-arg=--export=__tls_align -C link-arg=--export=__tls_base" \
    cargo +"$nightly" build --profile web --lib --target wasm32-unknown-unknown -Z build-std=std,panic_abort \
    --no-default-features --features "$1" --target-dir "$target_dir/threads"
}
want=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/"/, "", $3); print $3 }' Cargo.lock)
have=$(wasm-bindgen --version 2>/dev/null | awk '{print $2}' || true)
if [ "$have" != "$want" ]; then
  echo "== installing wasm-bindgen-cli $want (once; a few minutes)"
  # No TLS (rustls): nothing it does needs HTTPS (scripts/test.sh says why).
  cargo install wasm-bindgen-cli --no-default-features --version "$want"
fi
bash scripts/npm-deps.sh

# wasm-bindgen, then wasm-opt (binaryen from npm: Debian's binaryen 108 breaks wasm-bindgen's
# externref table). -O1 gave the smallest gzip here (the WebGPU build: none 4053 KiB, -O1 3920,
# -O2 4142; -Oz was larger than none too) and ~10 % less code to compile than none. The name section (function names for stack
# traces) is ~7 MB; panic messages survive without it.
bindgen() { # wasm out_dir [extra wasm-opt flags]
  # wasm-ld wraps every export in a call to all static constructors unless an export calls
  # them itself (src/web/mod.rs's start does): a cost on every call into the module.
  if grep -q -a 'command_export' "$1"; then
    echo "build-web.sh: $1 was linked as a command (exports named *.command_export run every static constructor on each call): the start function must call __wasm_call_ctors" >&2
    exit 1
  fi
  wasm-bindgen --target "$target" --out-dir "$2" --remove-name-section --remove-producers-section "$1"
  # npm's binaryen runs on one core (84 s for the WebGPU build here): it runs beside the next
  # build.
  optimise "$2/kiln_bg.wasm" ${3:-} &
  optimising+=($!)
  # wasm-bindgen-rayon's pool workers start the module with init's old positional arguments,
  # which the current glue accepts with a console warning per worker: pass the options object.
  local helper
  for helper in "$2"/snippets/wasm-bindgen-rayon-*/src/workerHelpers*.js; do
    [ -e "$helper" ] || continue
    sed -i 's/await pkg\.default(data\.module, data\.memory);/await pkg.default({ module_or_path: data.module, memory: data.memory });/' "$helper"
    grep -q 'module_or_path' "$helper" || { echo "build-web.sh: wasm-bindgen-rayon's worker start-up changed ($helper): update the init call patch" >&2; exit 1; }
  done
}
built() { # wasm
  echo "== built $1: $(( $(stat -c %s "$1") / 1024 )) KiB raw, $(( $(gzip -9 -c "$1" | wc -c) / 1024 )) KiB gzip -9"
}
optimising=()
optimise() { # wasm [extra wasm-opt flags]
  local wasm=$1
  node_modules/.bin/wasm-opt -O1 ${2:-} --enable-simd --enable-bulk-memory --enable-threads --enable-mutable-globals \
    --enable-nontrapping-float-to-int --enable-sign-ext --enable-reference-types --enable-multivalue \
    "$wasm" -o "$wasm.opt"
  mv "$wasm.opt" "$wasm"
  built "$wasm"
}

echo "== building the core for wasm32 (features: $features)"
cargo build --profile web-gpu --lib --target wasm32-unknown-unknown --no-default-features --features "$features"
bindgen "$target_dir/wasm32-unknown-unknown/web-gpu/kiln.wasm" "$out_dir"

echo "== building the multi-threaded CPU core for wasm32 with relaxed SIMD (features: $relaxed_features; nightly, std rebuilt with atomics)"
threaded "$relaxed_features"
relaxed_wasm="$target_dir/threads/wasm32-unknown-unknown/web/kiln.wasm"
rm -rf "$relaxed_out_dir"
bindgen "$relaxed_wasm" "$relaxed_out_dir" --enable-relaxed-simd
for pid in "${optimising[@]}"; do
  wait "$pid" || { echo "build-web.sh: wasm-opt failed (above)" >&2; exit 1; }
done
# The plain-SIMD file (Safari, engines without relaxed SIMD) is the same module with each fused
# multiply-add unfused, which relaxed SIMD's spec allows: derived in a second from the bound and
# optimised relaxed file, not compiled, bound or optimised again. The rewrite keeps every import
# and export, so the relaxed folder's JS glue is the plain one's too.
echo "== deriving the plain-SIMD threaded core from it (crates/plain-simd)"
rm -rf "$threads_out_dir"
cp -r "$relaxed_out_dir" "$threads_out_dir"
cargo run --release -q -p plain-simd -- "$relaxed_out_dir/kiln_bg.wasm" "$threads_out_dir/kiln_bg.wasm"
built "$threads_out_dir/kiln_bg.wasm"

# The default backbone, converted once per build by the wasm just built (so the file always
# matches the reader), served next to the page: nothing is downloaded at run time.
node scripts/convert-weights.mjs assets/efficientnet-lite0-57934424.pth assets/efficientnet_lite0.kiln
mkdir -p www/weights
cp assets/efficientnet_lite0.kiln www/weights/efficientnet_lite0.kiln

mkdir -p www/vendor
cp node_modules/uplot/dist/uPlot.esm.js node_modules/uplot/dist/uPlot.min.css node_modules/uplot/LICENSE www/vendor/
# client-zip (MIT) writes Predict's "Download sorted" zip as a stream.
cp node_modules/client-zip/index.js www/vendor/client-zip.js
# Their own type declarations, so tsc checks Kiln's calls against them, not their minified code.
cp node_modules/client-zip/index.d.ts www/vendor/client-zip.d.ts
cp node_modules/client-zip/LICENSE.txt www/vendor/client-zip-LICENSE.txt
# zip.js (BSD-3-Clause) reads projects: each entry's CRC-32 checked, large archives (Zip64) too.
cp node_modules/@zip.js/zip.js/dist/zip-core-external.min.js www/vendor/zip.js
cp node_modules/@zip.js/zip.js/index.d.ts www/vendor/zip.d.ts
cp node_modules/@zip.js/zip.js/LICENSE www/vendor/zip-js-LICENSE
# Declarations are generated: stale ones would win over the .js they describe.
for js in www/*.js; do rm -f "${js%.js}.d.ts"; done
npx tsc -p www/tsconfig.json

# What the service worker (www/sw.js) caches for offline use: every file the page can load,
# including the thread pool's hashed helper script.
(cd www && find . -type f ! -name '*.d.ts' ! -name 'precache.json' ! -name 'tsconfig.json' ! -name 'bench.html' ! -name 'LICENSE' | sed 's|^\./||' | sort |
  python3 -c 'import json, sys; print(json.dumps([l.strip() for l in sys.stdin]))') > www/precache.json
