#!/usr/bin/env bash
# Kiln's CPU training step against PyTorch's, side by side in one run (issue 13's table):
# ResNet-18, ResNet-50 and EfficientNet-Lite0 at 224 px, batch 16, unfrozen and frozen, with 1 thread and
# all threads; augmentation and data loading on lines of their own. Medians after warm-up.
#   bash scripts/bench-cpu.sh               Kiln's figures (PyTorch too if its venv exists)
#   bash scripts/bench-cpu.sh --with-torch  first creates the venv out/venv-bench
#                                           (pip: torch torchvision timm, CPU; ~3 GB)
# KILN_BENCH_STEPS (default 5) sets the timed steps per line; KILN_BENCH_ARCHS (comma-separated,
# default resnet18,resnet50,efficientnet_lite0) the architectures.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=out/venv-bench
if [[ "${1:-}" == "--with-torch" && ! -x $venv/bin/python ]]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q torch torchvision timm
fi
bin=$(cargo bench --bench train --no-run --message-format=json 2>/dev/null | python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "train" and m.get("executable"):
        print(m["executable"])')
all=$(nproc)
steps=${KILN_BENCH_STEPS:-5}
out=$(mktemp)
for t in 1 "$all"; do
    RAYON_NUM_THREADS=$t "$bin" steps 2>/dev/null | tee -a "$out"
    if [[ -x $venv/bin/python ]]; then
        "$venv/bin/python" benches/torch_step.py "$t" "$steps" | tee -a "$out"
    fi
done
python3 - "$out" "$venv" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
get = lambda impl, r: next((x["ms"] for x in rows if x["impl"] == impl and all(x[k] == r[k] for k in ("what", "arch", "frozen", "threads"))), None)
print("\n| 224 px, batch 16 | threads | Kiln (flex) ms | PyTorch ms | Kiln / PyTorch |\n|---|---|---|---|---|")
for r in rows:
    if r["impl"] != "kiln":
        continue
    name = r["arch"] + (" frozen body" if r["frozen"] else "") if r["what"] == "step" else {"augment": "augmentation (warp + lighting, on its own)", "load": "loading (decode + presize 16 JPEGs)"}[r["what"]]
    t = get("pytorch", r)
    print(f"| {name} | {r['threads']} | {r['ms']:.0f} | {t:.0f} | {r['ms'] / t:.2f}× |" if t else f"| {name} | {r['threads']} | {r['ms']:.0f} | – | – |")
threads = sorted({r["threads"] for r in rows})
if len(threads) == 2:
    for impl in ("kiln", "pytorch"):
        for r in rows:
            if r["impl"] == impl and r["what"] == "step" and r["threads"] == threads[0]:
                hi = get(impl, dict(r, threads=threads[1]))
                if hi:
                    print(f"{impl}: {r['arch']}{' frozen' if r['frozen'] else ''} {threads[0]} → {threads[1]} threads: {r['ms'] / hi:.2f}×")
if not any(r["impl"] == "pytorch" for r in rows):
    print(f"(no PyTorch figures: run `bash scripts/bench-cpu.sh --with-torch` to create {sys.argv[2]} and compare)")
PY
rm -f "$out"
