#!/usr/bin/env bash
# The CLI demo: write the bundled sample set, summarise it, show a batch, train, predict.
set -euo pipefail
cd "$(dirname "$0")/.."
out=out/demo
# Headless machines have no XDG_RUNTIME_DIR; the Vulkan loader complains without one.
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}"
mkdir -p "$out"
cargo build --release
kiln=target/release/kiln
$kiln samples -o "$out/digits"
$kiln summary "$out/digits" --presize 36
$kiln show-batch "$out/digits" --presize 36 --size 32 --no-flip -o "$out/show_batch.png"
$kiln train "$out/digits" --presize 36 --size 32 --arch tiny --epochs 6 --lr 1e-2 --bs 32 --no-flip -o "$out/digits.kiln" "$@"
$kiln predict "$out/digits.kiln" "$out"/digits/3/digit_3.png "$out"/digits/7/digit_7.png

# Pretrained: the bundled EfficientNet-Lite0 names ImageNet classes (285 Egyptian cat, 967
# espresso), then fine_tune on crops of real photos, against the same run from random weights.
bash scripts/fetch-assets.sh
$kiln weights predict assets/photos/chelsea.png assets/photos/coffee.png
$kiln samples --photos assets/photos --side 64 -o "$out/photos"
$kiln fine-tune "$out/photos" --presize 64 --size 64 --bs 16 --epochs 3 -o "$out/photos.kiln"
$kiln fine-tune "$out/photos" --presize 64 --size 64 --bs 16 --epochs 3 --no-pretrained -o "$out/photos-random.kiln"
