#!/usr/bin/env python3
"""Reference for tests/test_models.c: the model plugins "squeezenet" and "cnn"
against torchvision's SqueezeNet 1.0/1.1 and the equivalent torch.nn module of
the cnn plugin (the Sequential written out in plugins/models/cnn.c).

Weights are not stored: every state_dict tensor is filled with a formula the
C test reproduces. For tensor number t (0-based, state_dict order) and element
i (flattened, C order), with s = sin(0.7 * i + 1.3 * t) computed in float64
and the result rounded to float32:

    weight with ndim >= 2      (2 / sqrt(fan_in)) * s,  fan_in = prod(shape[1:])
    weight with ndim 1 (BN)    1 + 0.2 * s
    bias                       0.05 * s
    running_mean               0.1 * s
    running_var                1 + 0.5 * s          (always >= 0.5)
    num_batches_tracked        0

(2/sqrt(fan_in) times a sine of mean square 1/2 gives kaiming's variance
2/fan_in, so activations neither vanish nor explode through SqueezeNet's 26
convolutions.) The input is x[i] = sin(0.37 * i + phase) over the flattened
batch [n, C, H, W], targets y[b] = (3 * b + 1) % classes.

The phase is chosen per case (0.11 + 0.1 k, the first k that qualifies) so
that no decision of the network hangs on rounding: a ReLU whose input is
within rounding of 0, or a max-pooling window whose two largest values are
within rounding of each other, routes the gradient differently in two correct
float32 implementations and changes a weight gradient by percents (seen:
one pre-activation of -1.5e-8 in torch, +1e-8 in tunebench, among values of
1e-2, moved a gradient by 7%). "Within rounding" is 6 times the RMS
difference between torch's float32 and float64 values of that tensor; the
case records how many such near-decisions its input has (near_decisions, 0
unless no phase of 200 was clean).

One training-mode forward (dropout p = 0, BatchNorm with batch statistics),
cross-entropy (mean) and backward, by torch in float64 on the float32 weights
and input: the exact answer a float32 implementation approximates. How far
torch's own float32 run is from it is recorded too, per gradient tensor, so
the C test can hold tunebench to max(1e-4, a few times torch's own error).
Written to tests/fixtures/models.h5, one group per case:

    attrs   plugin, options ("key=value;..." for the plugin's section), batch,
            channels, height, width, classes, train (1: training-mode forward and
            backward; 0: eval-mode forward only), trainable (torch's
            sum of numel over parameters), x_phase (see above), x_sum,
            near_decisions, f32_dev_logits (max |torch f32 - f64| / max |f64|),
            and for squeezenet min_size (the smallest square input torch
            accepts, found by trying sizes)
    keys    [n] fixed-length strings, state_dict order
    ndim    [n] int32; shape [n, 4] int64 (unused dimensions 1)
    is_param [n] int32 (0 for buffers)
    logits  [batch, classes] float64; loss scalar float64; y [batch] int32
    grad_sum, grad_sumsq, grad_sumabs, grad_maxabs  [n] float64 (0 for buffers)
    grad_head [n, 16] float64: first 16 gradient elements (0-padded)
    grad_dev [n] float64: max |torch f32 - f64| / max |f64| of the gradient
            (0 for buffers and for gradients that are rounding noise)
    after_sum [n] float64, after_head [n, 16] float64: every tensor after the
            forward (running statistics updated; num_batches_tracked 1)

Run with Debian's python3-torch: /usr/bin/python3 tests/reference/gen_models.py
"""
import copy
import math
import os
from collections import OrderedDict

import h5py
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

HEAD = 16


def cnn(C, H, W, classes, filters=(32, 64), kernel_size=3, padding=-1, stride=1, pooling="max", pool_size=2,
        batch_norm=False, conv_dropout=0.0, units=(128,), dropout=0.0):
    """The cnn plugin's network as a torch module (copy of the comment in plugins/models/cnn.c)."""
    pad = kernel_size // 2 if padding == -1 else padding
    features, c, h, w = [], C, H, W
    for f in filters:
        features.append(nn.Conv2d(c, f, kernel_size, stride=stride, padding=pad))
        h, w = (h + 2 * pad - kernel_size) // stride + 1, (w + 2 * pad - kernel_size) // stride + 1
        if batch_norm:
            features.append(nn.BatchNorm2d(f))
        features.append(nn.ReLU())
        if pooling == "max":
            features.append(nn.MaxPool2d(pool_size))
        elif pooling == "avg":
            features.append(nn.AvgPool2d(pool_size))
        if pooling != "none":
            h, w = h // pool_size, w // pool_size
        if conv_dropout > 0:
            features.append(nn.Dropout(conv_dropout))
        c = f
    classifier, n = [], c * h * w
    for u in units:
        classifier += [nn.Linear(n, u), nn.ReLU()]
        if dropout > 0:
            classifier.append(nn.Dropout(dropout))
        n = u
    classifier.append(nn.Linear(n, classes))
    return nn.Sequential(OrderedDict(features=nn.Sequential(*features), flatten=nn.Flatten(),
                                     classifier=nn.Sequential(*classifier)))


def formula(key, shape, t):
    n = int(np.prod(shape)) if len(shape) else 1
    s = np.sin(0.7 * np.arange(n, dtype=np.float64) + 1.3 * t)
    suffix = key.rsplit(".", 1)[1]
    if suffix == "num_batches_tracked":
        return None
    if suffix == "weight" and len(shape) >= 2:
        fan_in = int(np.prod(shape[1:]))
        v = (2.0 / math.sqrt(fan_in)) * s
    elif suffix == "weight":
        v = 1.0 + 0.2 * s
    elif suffix == "bias":
        v = 0.05 * s
    elif suffix == "running_mean":
        v = 0.1 * s
    elif suffix == "running_var":
        v = 1.0 + 0.5 * s
    else:
        raise ValueError(key)
    return v.astype(np.float32).reshape(shape)


def fill(model):
    with torch.no_grad():
        for t, (k, v) in enumerate(model.state_dict().items()):
            w = formula(k, tuple(v.shape), t)
            if w is None:
                v.zero_()
            else:
                v.copy_(torch.from_numpy(w))


def make_input(batch, C, H, W, classes, phase):
    n = batch * C * H * W
    x = np.sin(0.37 * np.arange(n, dtype=np.float64) + phase).astype(np.float32).reshape(batch, C, H, W)
    y = np.array([(3 * b + 1) % classes for b in range(batch)], dtype=np.int64)
    return torch.from_numpy(x), torch.from_numpy(y)


def run(model, x, y, train):
    """Forward (+ backward when train); returns logits, loss, grads by key, state after."""
    model.train(train)
    for p in model.parameters():
        p.grad = None
    logits = model(x)
    loss = nn.functional.cross_entropy(logits, y)
    grads = {}
    if train:
        loss.backward()
        grads = {k: p.grad.detach().clone() for k, p in model.named_parameters()}
    after = {k: v.detach().clone() for k, v in model.state_dict().items()}
    return logits.detach(), loss.detach(), grads, after


def record_decisions(model, x):
    """Inputs of every ReLU and MaxPool2d in one forward, in order."""
    seen = []
    hooks = [m.register_forward_pre_hook(lambda mod, inp: seen.append((mod, inp[0].detach().clone())))
             for m in model.modules() if isinstance(m, (nn.ReLU, nn.MaxPool2d))]
    model(x)
    for h in hooks:
        h.remove()
    return seen


def top2_per_window(pool, v):
    k, s = pool.kernel_size, pool.stride
    oh, ow = F.max_pool2d(v, k, s, ceil_mode=pool.ceil_mode).shape[2:]
    need_h, need_w = (oh - 1) * s + k, (ow - 1) * s + k
    vp = F.pad(v, (0, max(0, need_w - v.shape[3]), 0, max(0, need_h - v.shape[2])), value=float("-inf"))
    w = vp.unfold(2, k, s).unfold(3, k, s)[:, :, :oh, :ow].reshape(v.shape[0], v.shape[1], oh, ow, k * k)
    top = w.topk(2, dim=-1).values
    return top[..., 0], top[..., 1]


def near_decisions(model, model64, x, K=6.0):
    """ReLU inputs within K rms-rounding of 0 and max-pool windows whose top two values are that close."""
    # on copies: a training-mode forward updates BatchNorm's running statistics
    model, model64 = copy.deepcopy(model).train(True), copy.deepcopy(model64).train(True)
    a, b = record_decisions(model, x), record_decisions(model64, x.double())
    count = 0
    for (mod, v32), (_, v64) in zip(a, b):
        err = (v32.double() - v64).pow(2).mean().sqrt().item() + 1e-30
        if isinstance(mod, nn.ReLU):
            count += int((v64.abs() < K * err).sum())
        else:
            t1, t2 = top2_per_window(mod, v64)
            count += int(((t1 > 0) & (t1 - t2 < K * err)).sum())
    return count


def min_square_input(model, C):
    model.eval()
    for h in range(1, 512):
        try:
            with torch.no_grad():
                model(torch.zeros(1, C, h, h))
            return h
        except RuntimeError:
            continue
    raise RuntimeError("no minimum found")


def write_case(f, name, model, plugin, options, batch, C, H, W, classes, train=True, min_size=None):
    model = model.float()
    fill(model)
    # the same weights in float64, for the float32-vs-float64 yardstick
    model64 = copy.deepcopy(model).double()
    best = None
    for k in range(200):
        phase = 0.11 + 0.1 * k
        x, y = make_input(batch, C, H, W, classes, phase)
        near = near_decisions(model, model64, x) if train else 0
        if best is None or near < best[0]:
            best = (near, phase)
        if near == 0:
            break
    near, phase = best
    x, y = make_input(batch, C, H, W, classes, phase)
    logits32, _, grads32, _ = run(model, x, y, train)
    # the reference: torch's computation in float64 on the same (float32) weights and input
    logits, loss, grads, after = run(model64, x.double(), y, train)

    sd = model.state_dict()
    params = dict(model.named_parameters())
    keys = list(sd.keys())
    n = len(keys)
    g = f.create_group(name)
    g.attrs["plugin"] = plugin
    g.attrs["options"] = options
    for k, v in (("batch", batch), ("channels", C), ("height", H), ("width", W), ("classes", classes),
                 ("train", int(train))):
        g.attrs[k] = np.int64(v)
    g.attrs["trainable"] = np.int64(sum(p.numel() for p in model.parameters()))
    g.attrs["x_sum"] = float(x.double().sum())
    g.attrs["x_phase"] = float(phase)
    g.attrs["near_decisions"] = np.int64(near)
    if min_size is not None:
        g.attrs["min_size"] = np.int64(min_size)
    g["keys"] = np.array([k.encode() for k in keys], dtype="S128")
    g["ndim"] = np.array([sd[k].dim() for k in keys], dtype=np.int32)
    shape = np.ones((n, 4), dtype=np.int64)
    for i, k in enumerate(keys):
        shape[i, :sd[k].dim()] = list(sd[k].shape)
    g["shape"] = shape
    g["is_param"] = np.array([int(k in params) for k in keys], dtype=np.int32)
    g["y"] = y.numpy().astype(np.int32)
    g["logits"] = logits.numpy()
    g["loss"] = np.float64(loss.item())
    gs, gsq, gabs, gmax, gdev = (np.zeros(n) for _ in range(5))
    ghead = np.zeros((n, HEAD))
    asum = np.zeros(n)
    ahead = np.zeros((n, HEAD))
    # a tensor whose gradient is rounding noise (a conv bias followed by BatchNorm: exactly 0 in
    # exact arithmetic) has no deviation to measure (grad_dev 0)
    gscale = max((grads[k].abs().max().item() for k in grads), default=1.0)
    for i, k in enumerate(keys):
        a = after[k].double().flatten().numpy()
        asum[i] = a.sum()
        ahead[i, :min(HEAD, a.size)] = a[:HEAD]
        if k in grads:
            gv = grads[k].flatten().numpy()
            gs[i], gsq[i], gabs[i], gmax[i] = gv.sum(), (gv * gv).sum(), np.abs(gv).sum(), np.abs(gv).max()
            ghead[i, :min(HEAD, gv.size)] = gv[:HEAD]
            if gmax[i] > 1e-9 * gscale:
                gdev[i] = np.abs(grads32[k].double().flatten().numpy() - gv).max() / gmax[i]
    g["grad_sum"], g["grad_sumsq"], g["grad_sumabs"], g["grad_maxabs"] = gs, gsq, gabs, gmax
    g["grad_dev"] = gdev
    g["grad_head"] = ghead
    g["after_sum"] = asum
    g["after_head"] = ahead
    dev_logits = float((logits32.double() - logits).abs().max() / logits.abs().max())
    g.attrs["f32_dev_logits"] = dev_logits
    print(f"{name}: {n} tensors, {g.attrs['trainable']} trainable parameters, loss {loss.item():.6f}, "
          f"logits max |{logits.abs().max().item():.4g}|, torch float32 vs float64: logits {dev_logits:.2e}, "
          f"grads {gdev.max():.2e}, input phase {phase:.2f} ({near} near-decisions)"
          + (f", min input {min_size}" if min_size else ""))


def main():
    torch.manual_seed(0)
    torch.set_num_threads(1)
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "models.h5")
    with h5py.File(out, "w") as f:
        f.attrs["torch"] = str(torch.__version__)
        f.attrs["torchvision"] = str(torchvision.__version__)
        sq = torchvision.models.squeezenet
        for version, ctor, (batch, H, W) in (("1_1", sq.squeezenet1_1, (2, 64, 64)),
                                             ("1_0", sq.squeezenet1_0, (1, 47, 55))):
            m = ctor(num_classes=10, dropout=0.0)
            mn = min_square_input(ctor(num_classes=10, dropout=0.0), 3)
            write_case(f, f"squeezenet{version}", m, "squeezenet", f"version={version};dropout=0",
                       batch, 3, H, W, 10, min_size=mn)
            # the smallest input torch accepts: the last pooling reads a 2x2 map in ceil mode
            # with one input channel (the first convolution replaced; the keys stay torchvision's)
            m = ctor(num_classes=5, dropout=0.0)
            c0 = m.features[0]
            m.features[0] = nn.Conv2d(1, c0.out_channels, c0.kernel_size, stride=c0.stride)
            write_case(f, f"squeezenet{version}_min", m, "squeezenet", f"version={version};dropout=0",
                       1, 1, mn, mn, 5, min_size=mn)
        # the cnn family: defaults-like with max pooling on Fashion-MNIST's shape
        write_case(f, "cnn_max", cnn(1, 28, 28, 10, filters=(8, 16), units=(32,)), "cnn",
                   "filters=8,16;units=32", 4, 1, 28, 28, 10)
        # batch norm, average pooling, 5x5 kernels with padding 1, two hidden layers
        write_case(f, "cnn_bn_avg",
                   cnn(3, 32, 32, 7, filters=(6, 12, 16), kernel_size=5, padding=1, pooling="avg",
                       batch_norm=True, units=(24, 16)),
                   "cnn", "filters=6,12,16;kernel_size=5;padding=1;pooling=avg;batch_norm=true;units=24,16",
                   4, 3, 32, 32, 7)
        # dropout modules present (keys shift), stride 2, no pooling, no hidden layer, xavier init;
        # compared in eval mode (dropout is the identity, BN uses the running statistics)
        write_case(f, "cnn_dropout_eval",
                   cnn(2, 20, 24, 3, filters=(5, 7), stride=2, pooling="none", batch_norm=True,
                       conv_dropout=0.25, units=()),
                   "cnn", "filters=5,7;stride=2;pooling=none;batch_norm=true;conv_dropout=0.25;units=;"
                   "init=xavier_uniform", 3, 2, 20, 24, 3, train=False)
    print("wrote", os.path.normpath(out), os.path.getsize(out), "bytes")


if __name__ == "__main__":
    main()
