#!/usr/bin/env bash
# Issue 31's GPU figures in one short run on a lent GPU machine (Kiln's tests never need one).
#
#   bash scripts/bench-gpu.sh prepare   # here: builds the CLI and the bench binary into out/gpu/,
#                                       # with the 144 bench photos and Vulkan's loader packages
#   bash scripts/bench-gpu.sh run       # there, from the repository root, carrying out/gpu:
#                                       # prints every figure and leaves them in $OUT (or out/gpu/)
#
# `run` takes about 5 minutes on an H100: the step table (ResNet-18 and EfficientNet-Lite0 at
# 224 px, batch 16 and 64; kernels chosen by shape, burn's upstream no-autotune kernels, and
# autotune) with the machine's CPU backend in the same run, PyTorch's CUDA step where torch is
# installed there, the CLI's default fine-tune on the bench photos with `--device auto` (the
# probe's choice and cost) and with `--device gpu`, and the first-step cost of each strategy.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=out/gpu

case "${1:-}" in
prepare)
  mkdir -p "$dir"
  cargo build --release
  cargo bench --no-run
  cp target/release/kiln "$dir/kiln"
  cp "$(ls -t target/release/deps/train-* | grep -v '\.d$' | head -1)" "$dir/train"
  [ -d out/bench-photos/set ] || node benches/browser.mjs default
  rm -rf "$dir/set" && cp -r out/bench-photos/set "$dir/set"
  cp benches/torch_step.py "$dir/"
  # The Vulkan loader (the GPU machine may lack it; its NVIDIA driver brings the ICD).
  mkdir -p "$dir/deb" /tmp/amd64/partial
  o='-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64'
  # shellcheck disable=SC2086
  apt-get $o update -qq && (cd "$dir/deb" && apt-get $o download libvulkan1 >/dev/null)
  du -sh "$dir"
  echo "carry $dir; run: bash scripts/bench-gpu.sh run"
  ;;
run)
  out="${OUT:-$dir}"
  ldconfig -p | grep -q libvulkan.so.1 || { for f in "$dir"/deb/*.deb; do dpkg -x "$f" /; done; ldconfig; }
  [ -e /usr/share/vulkan/icd.d/nvidia_icd.json ] || [ ! -e /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json ] ||
    export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
  nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee "$out/gpu.txt" || true
  export KILN_CACHE_DIR="$out/cache" RAYON_NUM_THREADS="${RAYON_NUM_THREADS:-$(nproc)}"
  # The step table: strategies, then the CPU backend in the same process.
  KILN_BENCH_ARCHS=resnet18,efficientnet_lite0 KILN_BENCH_BS=16,64 KILN_BENCH_STEPS=5 \
    timeout 300 "$dir/train" gpu-steps 2>"$out/steps.err" | tee "$out/steps.jsonl" || echo "steps: exit $?"
  if python3 -c 'import torch, torchvision, timm; assert torch.cuda.is_available()' 2>/dev/null; then
    for bs in 16 64; do KILN_BENCH_ARCHS=resnet18,efficientnet_lite0 timeout 90 python3 "$dir/torch_step.py" "$(nproc)" 5 cuda "$bs" | tee -a "$out/torch.jsonl"; done
  else
    echo "no PyTorch+torchvision+timm with CUDA here: no reference row" | tee "$out/torch.jsonl"
  fi
  # The CLI's defaults end to end: auto (the probe, then training), then the GPU forced.
  for dev in auto gpu; do
    start=$(date +%s.%N)
    timeout 240 "$dir/kiln" fine-tune "$dir/set" --device "$dev" -o "$out/fine-tune-$dev.kiln" >"$out/fine-tune-$dev.txt" 2>&1 || echo "fine-tune $dev: exit $?"
    echo "fine-tune --device $dev: $(echo "$(date +%s.%N) - $start" | bc) s" | tee -a "$out/fine-tune.txt"
    grep -E "^device|error_rate|^(frozen|unfrozen)" "$out/fine-tune-$dev.txt" | tee -a "$out/fine-tune.txt"
  done
  ;;
*)
  echo "usage: bash scripts/bench-gpu.sh prepare|run" >&2
  exit 2
  ;;
esac
