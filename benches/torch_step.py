"""PyTorch's side of `scripts/bench-cpu.sh`: the same model steps Kiln's `steps` bench times.

ResNet-18/50 (torchvision; KILN_BENCH_ARCHS picks others) and EfficientNet-Lite0 (timm's tf_efficientnet_lite0, the variant that
computes what Kiln's does) under fastai's head, 10 classes, batch 16 at 224 px, random weights;
forward + cross-entropy + backward + AdamW (fastai's defaults: betas 0.9/0.99, eps 1e-5, wd 0.01).
Frozen = fastai's phase 1: body weights without gradients, BatchNorm still training (train_bn).
Prints one JSON line per step kind, like the Kiln bench.
Usage: torch_step.py THREADS [STEPS [DEVICE [BATCH]]]  (DEVICE cpu or cuda, BATCH 16 by default)
"""

import json
import os
import statistics
import sys
import time

import timm
import torch
import torch.nn as nn
import torchvision

threads = int(sys.argv[1])
steps = int(sys.argv[2]) if len(sys.argv) > 2 else 5
device = sys.argv[3] if len(sys.argv) > 3 else "cpu"
bs = int(sys.argv[4]) if len(sys.argv) > 4 else 16
torch.set_num_threads(threads)
torch.manual_seed(0)


class ConcatPool(nn.Module):
    def forward(self, x):
        return torch.cat([x.amax(dim=(2, 3)), x.mean(dim=(2, 3))], 1)


def head(nf, n):
    return nn.Sequential(
        ConcatPool(), nn.BatchNorm1d(2 * nf), nn.Dropout(0.25), nn.Linear(2 * nf, 512, bias=False),
        nn.ReLU(inplace=True), nn.BatchNorm1d(512), nn.Dropout(0.5), nn.Linear(512, n, bias=False))


def model(arch):
    if arch.startswith("resnet"):
        net = getattr(torchvision.models, arch)()
        body = nn.Sequential(*list(net.children())[:-2])
        nf = net.fc.in_features
    else:
        net = timm.create_model("tf_efficientnet_lite0", pretrained=False)
        body = nn.Sequential(net.conv_stem, net.bn1, net.blocks, net.conv_head, net.bn2)
        nf = 1280
    return nn.Sequential(body, head(nf, 10))


def timed(fn, n):
    times = []
    for i in range(2 + n):
        t = time.perf_counter()
        fn()
        if i >= 2:
            times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


x = torch.rand(bs, 3, 224, 224, device=device)
y = (torch.arange(bs) % 10).to(device)
for arch in os.environ.get("KILN_BENCH_ARCHS", "resnet18,resnet50,efficientnet_lite0").split(","):
    for frozen in [False, True]:
        m = model(arch).to(device).train()
        if frozen:
            for mod in m[0].modules():
                is_bn = isinstance(mod, nn.modules.batchnorm._BatchNorm)
                for p in mod.parameters(recurse=False):
                    p.requires_grad_(is_bn)
        opt = torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], lr=1e-4, betas=(0.9, 0.99), eps=1e-5, weight_decay=0.01)

        def step():
            opt.zero_grad(set_to_none=True)
            loss = nn.functional.cross_entropy(m(x), y)
            loss.backward()
            opt.step()
            loss.item()

        ms = timed(step, steps)
        print(json.dumps({"impl": "pytorch", "what": "step", "arch": arch, "frozen": frozen, "threads": threads, "ms": round(ms, 1), "device": device, "bs": bs}), flush=True)
