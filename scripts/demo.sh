#!/usr/bin/env bash
# The main job for now: write the bundled sample set, fine-tune on it with the CLI, predict.
set -euo pipefail
cd "$(dirname "$0")/.."
out=out/demo
mkdir -p "$out"
cargo build --release
kiln=target/release/kiln
$kiln samples -o "$out/digits"
$kiln summary "$out/digits" --presize 36
$kiln show-batch "$out/digits" --presize 36 --size 32 --no-flip -o "$out/show_batch.png"
$kiln train "$out/digits" --presize 36 --size 32 --arch tiny --epochs 6 --lr 1e-2 --bs 32 --no-flip -o "$out/digits.kiln" "$@"
$kiln predict "$out/digits.kiln" "$out"/digits/3/digit_3.png "$out"/digits/7/digit_7.png
