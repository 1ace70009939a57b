#!/usr/bin/env python3
"""PyTorch peer of `tunebench bench --device cuda`: torchvision's SqueezeNet 1.0
or 1.1 (10 classes, dropout 0.5), one training step = forward, cross-entropy,
backward, SGD (lr 0.01, momentum 0.9) step, on one synthetic batch that is
already on the device. Warm-up steps are not timed; the timed steps are
bracketed by torch.cuda.synchronize(). Prints one line, e.g.

    torch squeezenet1_1 cuda deterministic fp32 batch 64 224x224: 1234.5 img/s (steps 50)

Modes (cuDNN's convolution algorithm choice):
  deterministic  cudnn.deterministic = True, cudnn.benchmark = False and
                 torch.use_deterministic_algorithms(True) with
                 CUBLAS_WORKSPACE_CONFIG=:4096:8: what tunebench's GPU backend
                 promises (bitwise repeatable runs). Where an operation of the
                 network has no deterministic CUDA implementation (PyTorch
                 raises for it), the run goes on with warn_only=True and the
                 line ends with "[warn_only: <the error>]".
  benchmark      cudnn.deterministic = False, cudnn.benchmark = True: cuDNN
                 times the candidate algorithms and keeps the fastest (the
                 fastest PyTorch gets, not repeatable).
Math: FP32 unless --tf32 (cudnn.allow_tf32 and cuda.matmul.allow_tf32).

Needs PyTorch 1.13 or 2.x; torchvision is used when present, else the same
architecture is built here (torchvision/models/squeezenet.py layer for layer).
CPU smoke test (Debian's python3-torch): /usr/bin/python3 bench/torch_gpu_bench.py --device cpu --batch 2 --steps 1
"""
import argparse
import os
import sys
import time


def parse_input(text):
    try:
        c, h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError("--input must be CxHxW, e.g. 3x224x224")
    if min(c, h, w) < 1 or c > 4096 or h > 8192 or w > 8192:
        raise argparse.ArgumentTypeError("--input sizes must be in [1, 8192] (channels up to 4096)")
    return c, h, w


def positive(text):
    v = int(text)
    if v < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return v


def non_negative(text):
    v = int(text)
    if v < 0:
        raise argparse.ArgumentTypeError("must be at least 0")
    return v


def squeezenet_inline(version, channels, classes, dropout):
    """torchvision.models.squeezenet.SqueezeNet(version, num_classes, dropout),
    with `channels` input channels (torchvision's is fixed at 3)."""
    import torch
    import torch.nn as nn
    import torch.nn.init as init

    class Fire(nn.Module):
        def __init__(self, inplanes, squeeze_planes, expand1x1_planes, expand3x3_planes):
            super().__init__()
            self.inplanes = inplanes
            self.squeeze = nn.Conv2d(inplanes, squeeze_planes, kernel_size=1)
            self.squeeze_activation = nn.ReLU(inplace=True)
            self.expand1x1 = nn.Conv2d(squeeze_planes, expand1x1_planes, kernel_size=1)
            self.expand1x1_activation = nn.ReLU(inplace=True)
            self.expand3x3 = nn.Conv2d(squeeze_planes, expand3x3_planes, kernel_size=3, padding=1)
            self.expand3x3_activation = nn.ReLU(inplace=True)

        def forward(self, x):
            x = self.squeeze_activation(self.squeeze(x))
            return torch.cat([self.expand1x1_activation(self.expand1x1(x)),
                              self.expand3x3_activation(self.expand3x3(x))], 1)

    class SqueezeNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.num_classes = classes
            if version == "1_0":
                self.features = nn.Sequential(
                    nn.Conv2d(channels, 96, kernel_size=7, stride=2),
                    nn.ReLU(inplace=True),
                    nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True),
                    Fire(96, 16, 64, 64),
                    Fire(128, 16, 64, 64),
                    Fire(128, 32, 128, 128),
                    nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True),
                    Fire(256, 32, 128, 128),
                    Fire(256, 48, 192, 192),
                    Fire(384, 48, 192, 192),
                    Fire(384, 64, 256, 256),
                    nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True),
                    Fire(512, 64, 256, 256),
                )
            elif version == "1_1":
                self.features = nn.Sequential(
                    nn.Conv2d(channels, 64, kernel_size=3, stride=2),
                    nn.ReLU(inplace=True),
                    nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True),
                    Fire(64, 16, 64, 64),
                    Fire(128, 16, 64, 64),
                    nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True),
                    Fire(128, 32, 128, 128),
                    Fire(256, 32, 128, 128),
                    nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True),
                    Fire(256, 48, 192, 192),
                    Fire(384, 48, 192, 192),
                    Fire(384, 64, 256, 256),
                    Fire(512, 64, 256, 256),
                )
            else:
                raise ValueError("unsupported SqueezeNet version %s: 1_0 or 1_1 expected" % version)
            final_conv = nn.Conv2d(512, classes, kernel_size=1)
            self.classifier = nn.Sequential(
                nn.Dropout(p=dropout), final_conv, nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d((1, 1)))
            for m in self.modules():
                if isinstance(m, nn.Conv2d):
                    if m is final_conv:
                        init.normal_(m.weight, mean=0.0, std=0.01)
                    else:
                        init.kaiming_uniform_(m.weight)
                    if m.bias is not None:
                        init.constant_(m.bias, 0)

        def forward(self, x):
            x = self.features(x)
            x = self.classifier(x)
            return torch.flatten(x, 1)

    return SqueezeNet()


def build_model(name, channels, classes, dropout, source):
    """(model, where it came from): torchvision's when it is there (and the input has
    3 channels), else the inline copy."""
    version = {"squeezenet1_0": "1_0", "squeezenet1_1": "1_1"}[name]
    if source in ("auto", "torchvision") and channels == 3:
        try:
            import torchvision.models as tvm
            fn = getattr(tvm, name)
            try:
                return fn(num_classes=classes, dropout=dropout), "torchvision " + _tv_version()
            except TypeError:  # torchvision < 0.13 has no dropout argument (its default is 0.5)
                if dropout != 0.5:
                    raise
                return fn(num_classes=classes), "torchvision " + _tv_version()
        except ImportError:
            if source == "torchvision":
                sys.exit("torch_gpu_bench.py: --model-source torchvision, but torchvision is not installed")
    elif source == "torchvision":
        sys.exit("torch_gpu_bench.py: torchvision's SqueezeNet takes 3 input channels, not %d" % channels)
    return squeezenet_inline(version, channels, classes, dropout), "inline (torchvision architecture)"


def _tv_version():
    try:
        import torchvision
        return torchvision.__version__
    except Exception:  # pragma: no cover
        return "?"


def main():
    ap = argparse.ArgumentParser(
        description="Times SqueezeNet training steps in PyTorch on a GPU (the peer of tunebench bench --device cuda).",
        epilog="Prints: torch MODEL DEVICE MODE PRECISION batch B HxW: N img/s (steps S)")
    ap.add_argument("--model", choices=["squeezenet1_0", "squeezenet1_1"], default="squeezenet1_1")
    ap.add_argument("--batch", type=positive, default=64, help="batch size (default 64)")
    ap.add_argument("--input", type=parse_input, default=(3, 224, 224), help="CxHxW (default 3x224x224)")
    ap.add_argument("--classes", type=positive, default=10, help="output classes (default 10)")
    ap.add_argument("--dropout", type=float, default=0.5, help="classifier dropout (default 0.5, as torchvision)")
    ap.add_argument("--steps", type=positive, default=50, help="timed steps (default 50)")
    ap.add_argument("--warmup", type=non_negative, default=10,
                    help="untimed steps first (default 10; benchmark mode autotunes in the first)")
    ap.add_argument("--mode", choices=["deterministic", "benchmark"], default="deterministic")
    ap.add_argument("--tf32", action="store_true", help="allow TF32 tensor-core math (default: FP32)")
    ap.add_argument("--device", default="cuda", help="cuda, cuda:N or cpu (cpu: a smoke test only)")
    ap.add_argument("--model-source", choices=["auto", "torchvision", "inline"], default="auto",
                    help="torchvision's model (auto: when installed) or the inline copy")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=0, help="CPU threads for --device cpu (0: torch's default)")
    ap.add_argument("--verbose", action="store_true", help="versions, GPU and model source on stderr")
    a = ap.parse_args()
    if not 0.0 <= a.dropout <= 1.0:
        ap.error("--dropout must be in [0, 1]")

    if a.mode == "deterministic":
        # read when cuBLAS creates its handle: set before torch touches the GPU
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")

    import torch
    import torch.nn as nn

    dev = torch.device(a.device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        sys.exit("torch_gpu_bench.py: torch %s sees no CUDA device (use --device cpu for a smoke test)"
                 % torch.__version__)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if a.threads > 0:
        torch.set_num_threads(a.threads)

    deterministic = a.mode == "deterministic"
    torch.backends.cudnn.enabled = True
    torch.backends.cudnn.deterministic = deterministic
    torch.backends.cudnn.benchmark = not deterministic
    torch.backends.cudnn.allow_tf32 = a.tf32
    torch.backends.cuda.matmul.allow_tf32 = a.tf32
    warn_only_note = ""
    if deterministic:
        torch.use_deterministic_algorithms(True)

    torch.manual_seed(a.seed)
    c, h, w = a.input
    model, source = build_model(a.model, c, a.classes, a.dropout, a.model_source)
    model = model.to(dev).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()
    gen = torch.Generator(device="cpu").manual_seed(a.seed)
    x = torch.randn(a.batch, c, h, w, generator=gen).to(dev)
    y = torch.randint(0, a.classes, (a.batch,), generator=gen).to(dev)

    def step():
        opt.zero_grad(set_to_none=False)  # tunebench zeroes its gradients every step too
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        return loss

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    # the first step finds out whether every operation has a deterministic implementation
    try:
        step()
    except RuntimeError as e:
        if not (deterministic and "deterministic" in str(e)):
            raise
        import warnings
        warnings.filterwarnings("ignore", message=".*does not have a deterministic implementation.*")
        torch.use_deterministic_algorithms(True, warn_only=True)
        first = str(e).split(",")[0].strip()
        warn_only_note = " [warn_only: %s]" % first
        step()
    for _ in range(max(a.warmup - 1, 0)):
        step()
    sync()
    t0 = time.perf_counter()
    for _ in range(a.steps):
        loss = step()
    sync()
    secs = time.perf_counter() - t0
    if not torch.isfinite(loss).item():
        print("torch_gpu_bench.py: the loss is not finite after the timed steps", file=sys.stderr)
    ips = a.steps * a.batch / secs
    if a.verbose:
        info = ["torch %s" % torch.__version__, "model from %s" % source]
        if dev.type == "cuda":
            info += ["CUDA %s" % torch.version.cuda, "cuDNN %s" % torch.backends.cudnn.version(),
                     torch.cuda.get_device_name(dev),
                     "peak memory %.1f MiB" % (torch.cuda.max_memory_allocated(dev) / 1048576.0)]
        print("# " + ", ".join(info), file=sys.stderr)
    print("torch %s %s %s %s batch %d %dx%d: %.1f img/s (steps %d)%s"
          % (a.model, a.device, a.mode, "tf32" if a.tf32 else "fp32", a.batch, h, w, ips, a.steps,
             warn_only_note))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
