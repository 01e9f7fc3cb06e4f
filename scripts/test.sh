#!/usr/bin/env bash
# Runs every test. Installs what it needs first, and skips each install when already present.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# lavapipe (Mesa's Vulkan on the CPU), so the wgpu test has an adapter on GPU-less machines.
if ! dpkg -s mesa-vulkan-drivers >/dev/null 2>&1; then
  echo "== installing mesa-vulkan-drivers (lavapipe)"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mesa-vulkan-drivers >/dev/null
fi
rustup target list --installed | grep -qx wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown

export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}"
# Shader compiles dominate on lavapipe; the smallest autotune keeps the wgpu test short.
export CUBECL_AUTOTUNE_LEVEL="${CUBECL_AUTOTUNE_LEVEL:-minimal}"

echo "== the core compiles for the browser (wasm32, features from wasm-pack.toml)"
wasm_features=$(python3 -c 'import tomllib; print(",".join(tomllib.load(open("wasm-pack.toml", "rb"))["build"]["features"]))')
cargo check --lib --no-default-features --features "$wasm_features" --target wasm32-unknown-unknown

echo "== native tests (release: training on the CPU backend is unusable unoptimised)"
cargo test --release --all-targets
