#!/usr/bin/env bash
# Checks Kiln's ONNX and fastai/PyTorch exports in Python's own stack (not part of CI: it
# installs torch, fastai, timm and onnxruntime from PyPI into out/venv-bench, ~3 GB):
#   bash scripts/check-exports.sh [ARCH ...]
#   (default: efficientnet_lite0 resnet18 resnet34 resnet50 efficientnet_lite0+multi; ARCH+multi
#   trains one sigmoid per class, --multi-label)
# For each architecture: trains a small model on crops of the bundled photos with the CLI,
# (one class per photo),
# exports both formats, then tests/fixtures/check_exports.py loads the state dict strictly into
# fastai's vision_learner and runs the ONNX in onnxruntime, comparing classes with `kiln predict`.
set -euo pipefail
cd "$(dirname "$0")/.."
archs=("${@:-efficientnet_lite0 resnet18 resnet34 resnet50 efficientnet_lite0+multi}")
read -r -a archs <<< "${archs[*]}"
venv=out/venv-bench
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -c "import fastai, timm, onnx, onnxruntime, safetensors" 2>/dev/null ||
  "$venv/bin/pip" install -q torch torchvision timm fastai onnx onnxruntime safetensors
bash scripts/fetch-assets.sh
cargo build --release --quiet
kiln=target/release/kiln
work=out/export-check
# Crops already at the training size: Kiln's, fastai's and this script's preprocessing are then
# all the identity, so differences come from the models alone.
presize=64 size=64
rm -rf "$work" && mkdir -p "$work"
$kiln samples --photos assets/photos --side $size --crops-per-cell 2 -o "$work/crops" >/dev/null
status=0
for name in "${archs[@]}"; do
  echo "== $name"
  arch=${name%+multi}
  multi=()
  [ "$name" != "$arch" ] && multi=(--multi-label)
  if [ "$arch" = efficientnet_lite0 ]; then
    $kiln fine-tune "$work/crops" --arch "$arch" --presize $presize --size $size --bs 16 --epochs 2 --device cpu "${multi[@]}" -o "$work/$name.kiln" >/dev/null
  else  # no ResNet weights ship offline: from scratch
    $kiln train "$work/crops" --arch "$arch" --no-pretrained --presize $presize --size $size --bs 16 --epochs 4 --lr 3e-3 --device cpu "${multi[@]}" -o "$work/$name.kiln" >/dev/null
  fi
  $kiln export "$work/$name.kiln" --format onnx -o "$work/$name.onnx"
  $kiln export "$work/$name.kiln" --format pytorch -o "$work/$name.safetensors"
  $kiln predict "$work/$name.kiln" --device cpu "$work"/crops/valid/*/*_0.png > "$work/$name.predict.txt"
  "$venv/bin/python" tests/fixtures/check_exports.py "$work" "$name" $presize $size 2>&1 | grep -v -i "warn" || status=1
done
exit $status
