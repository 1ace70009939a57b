#!/usr/bin/env python3
"""PyTorch peer of `tunebench bench`: the same network, batch and optimizer,
timed the same way (forward, cross-entropy, backward, SGD step on a fixed
synthetic batch). Prints one line in the same format.

Run with Debian's python3-torch: /usr/bin/python3 bench/torch_bench.py --model small_cnn
"""
import argparse
import resource
import time

import torch
import torch.nn as nn


def small_cnn(c, h, w, classes):
    return nn.Sequential(
        nn.Sequential(nn.Conv2d(c, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                      nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)),
        nn.Flatten(),
        nn.Sequential(nn.Linear(64 * (h // 4) * (w // 4), 128), nn.ReLU(), nn.Linear(128, classes)),
    )


def quickstart_cnn(c, h, w, classes):
    """configs/quickstart.ini's network (the cnn plugin with batch_norm, units 128, dropout 0.25)."""
    def block(cin, cout):
        return [nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(), nn.MaxPool2d(2)]
    return nn.Sequential(
        nn.Sequential(*block(c, 32), *block(32, 64)),
        nn.Flatten(),
        nn.Sequential(nn.Linear(64 * (h // 4) * (w // 4), 128), nn.ReLU(), nn.Dropout(0.25),
                      nn.Linear(128, classes)),
    )


def build(name, c, h, w, classes):
    if name == "small_cnn":
        return small_cnn(c, h, w, classes)
    if name == "quickstart_cnn":
        return quickstart_cnn(c, h, w, classes)
    import torchvision.models as tvm  # only for the SqueezeNets
    if name == "squeezenet1_0":
        return tvm.squeezenet1_0(num_classes=classes)
    if name == "squeezenet1_1":
        return tvm.squeezenet1_1(num_classes=classes)
    raise SystemExit(f"unknown model {name}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="small_cnn")
    ap.add_argument("--input", default="1x28x28")
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(1)
    c, h, w = (int(v) for v in a.input.split("x"))
    model = build(a.model, c, h, w, a.classes)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(a.batch, c, h, w)
    y = torch.randint(0, a.classes, (a.batch,))
    loss_fn = nn.CrossEntropyLoss()
    for s in range(a.warmup + a.steps):
        if s == a.warmup:
            t0 = time.perf_counter()
        opt.zero_grad(set_to_none=False)
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
    secs = time.perf_counter() - t0
    ips = a.steps * a.batch / secs
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(f"torch {torch.__version__} bench: model {a.model} input {a.input} batch {a.batch} "
          f"threads {torch.get_num_threads()}: {ips:.1f} img/s, peak RSS {rss:.1f} MiB")


if __name__ == "__main__":
    main()
