#!/usr/bin/env bash
# Fuzz every reader of untrusted bytes with cargo-fuzz (libFuzzer) on the nightly toolchain:
#   bash scripts/fuzz.sh [SECONDS per target, default 300] [TARGET ...]
# Targets (fuzz/fuzz_targets/): decode (verify + decode + presize), label (regex and folder
# rules), checkpoint (PyTorch zip, legacy pickle, safetensors), kiln_file (.kiln reader).
# Seeds are made here from the repository's own fixtures; corpora and crashes stay in out/fuzz/.
# A crash is a bug: fix it and add a regression test to the normal suite (e.g. the .kiln
# header that declared a 10^12-wide layer: tests/core/learner.rs, bad_settings_and_model_files…).
# The test command runs every target briefly (15 s each).
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-300}
shift || true
targets=("${@:-decode label checkpoint kiln_file}")
read -r -a targets <<< "${targets[*]}"
nightly=nightly  # the toolchain the threaded web build uses (wasm-pack.toml)
# Short runs (the test command's 15 s) build with 16 codegen units: half the cold build time
# (4.9 vs ~9 min here) for somewhat slower executions; long runs keep cargo-fuzz's single unit.
if [ "$secs" -le 60 ]; then build=(--codegen-units 16); target_dir=target/fuzz-quick; else build=(); target_dir=target/fuzz; fi
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
out=out/fuzz
mkdir -p "$out"

# Seeds: real and generated images, label patterns, small checkpoints, a tiny .kiln.
seeds() {
    local t=$1 dir=$out/seeds/$1
    [[ -d $dir ]] && return
    mkdir -p "$dir"
    case $t in
        decode)
            [[ -x target/release/kiln ]] || cargo build --release --quiet
            target/release/kiln samples -o "$out/digits" >/dev/null
            # (no `find | head`: under pipefail, head closing early fails find with SIGPIPE)
            local pngs
            mapfile -t pngs < <(find "$out/digits" -name '*.png' | sort)
            cp "${pngs[@]:0:20}" "$dir/"
            for f in assets/photos/*; do head -c 60000 "$f" > "$dir/$(basename "$f")"; done 2>/dev/null || true
            ;;
        label)
            printf '^(.+)_\\d+\\.jpg$\nimages/Maine_Coon_157.jpg' > "$dir/pets"
            printf '(\\w+)\ntrain/cats/x.png' > "$dir/folder"
            ;;
        checkpoint)
            for f in zip legacy safetensors; do
                python3 tests/fixtures/torch_checkpoint.py "$out/full.$f" --format "$f" --arch resnet18 >/dev/null
                head -c 65536 "$out/full.$f" > "$dir/resnet18.$f"
                rm -f "$out/full.$f"
            done
            ;;
        kiln_file)
            [[ -x target/release/kiln ]] || cargo build --release --quiet
            [[ -d $out/digits ]] || target/release/kiln samples -o "$out/digits" >/dev/null
            target/release/kiln train "$out/digits" --arch tiny --size 16 --presize 16 --bs 32 --epochs 1 --device cpu -o "$dir/tiny.kiln" >/dev/null
            ;;
    esac
}

for t in "${targets[@]}"; do
    seeds "$t"
    mkdir -p "$out/corpus/$t" "$out/artifacts/$t"
    echo "== fuzz $t for ${secs}s"
    (cd fuzz && cargo "+$nightly" fuzz run "$t" "../$out/corpus/$t" "../$out/seeds/$t" \
        --target-dir "../$target_dir" -s none --release "${build[@]}" -- \
        -max_total_time="$secs" -max_len="$([[ $t == kiln_file ]] && echo 1048576 || echo 65536)" -rss_limit_mb=2048 -timeout=20 \
        -artifact_prefix="../$out/artifacts/$t/" -print_final_stats=1) 2>&1 |
        grep -E "^#[0-9]+[[:space:]]+(DONE|INITED)|stat::number_of_executed_units|stat::peak_rss|SUMMARY|panicked|ERROR|crash-" | tail -8
done
