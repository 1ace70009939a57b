#!/usr/bin/python3
"""Reference outputs of the layers issue 18 added to the builder, computed by
PyTorch (CPU, float32): tanh, sigmoid, leaky ReLU, GELU (both forms) and
BatchNorm1d. Identity needs no fixture (it copies; tests/test_net.c checks it).

Run with the system interpreter that has torch, h5py and numpy (Debian:
apt-get install python3-torch python3-h5py):

    /usr/bin/python3 tests/reference/gen_activations.py

Writes tests/fixtures/activations.h5, read by tests/test_layers.c. It leaves
tests/fixtures/layers.h5 (gen_layers.py) alone. Layout: one group per case,
/<layer>/<case>, float32 datasets and float64 attributes:

  tanh, sigmoid   input dout | out din                attrs count
  leaky_relu      input dout | out din                attrs count negative_slope
  gelu            input dout | out din                attrs count tanh (0: approximate='none', 1: 'tanh')
  batchnorm1d_train input gamma beta running_mean_in running_var_in dout
                  | out save_mean save_invstd running_mean running_var din dgamma dbeta
                  attrs n c eps momentum num_batches_tracked (after the step)
  batchnorm1d_eval  input gamma beta running_mean running_var | out   attrs n c eps
  net_mlp         an nn.Sequential through every new layer (tests/test_net.c):
                  params/<key> x y | logits loss grad/<key> after/<key> (buffers
                  after one training step); attr state_dict_keys
  lenet5          attr state_dict_keys of the classic LeNet-5 as an nn.Sequential
                  (docs/examples/lenet5, tests/test_examples.sh)

Every case's root attribute torch_version records the torch that wrote it.
The BatchNorm1d cases run the module nn.BatchNorm1d itself (its state_dict
keys are written as the attribute state_dict_keys, ','-separated, which
tests/test_net.c compares with the builder's names).
"""
import os

import h5py
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

torch.manual_seed(20261207)
torch.set_num_threads(1)
torch.set_default_dtype(torch.float32)

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "fixtures", "activations.h5")


def f32(t):
    return np.ascontiguousarray(t.detach().cpu().numpy().astype(np.float32))


class Writer:
    def __init__(self, path):
        self.f = h5py.File(path, "w", libver="earliest", track_order=False)
        self.f.attrs["torch_version"] = np.string_(torch.__version__)

    def case(self, layer, name, attrs, arrays, text=None):
        g = self.f.require_group(layer).create_group(name)
        for k, v in attrs.items():
            g.attrs[k] = np.float64(v)
        for k, v in (text or {}).items():
            g.attrs[k] = np.string_(v)
        for k, v in arrays.items():
            g.create_dataset(k, data=f32(v), track_times=False)

    def close(self):
        self.f.close()


def leaf(t):
    return t.detach().clone().requires_grad_(True)


# Inputs: a normal spread, exact zeros (the kinks and ties of leaky ReLU),
# values where the functions saturate, and NaN / +-inf where torch defines them.
def mixed(n, scale):
    x = torch.randn(n) * scale
    x[::9] = 0.0
    return x


SPECIAL = [0.0, -0.0, 1e-6, -1e-6, 8.0, -8.0, 20.0, -20.0, 90.0, -90.0, 1e4, -1e4,
           float("inf"), float("-inf"), float("nan")]


def elementwise_case(w, layer, name, x0, fn, attrs=None):
    x = leaf(x0)
    y = fn(x)
    dout = torch.randn_like(y)
    y.backward(dout)
    a = dict(count=x.numel())
    a.update(attrs or {})
    w.case(layer, name, a, dict(input=x, dout=dout, out=y, din=x.grad))


def bn1d_train_case(w, name, n, c, momentum, eps=1e-5, steps=1):
    bn = nn.BatchNorm1d(c, eps=eps, momentum=momentum)
    with torch.no_grad():
        bn.weight.copy_(1.0 + 0.3 * torch.randn(c))
        bn.bias.copy_(0.3 * torch.randn(c))
        bn.running_mean.copy_(0.2 * torch.randn(c))
        bn.running_var.copy_(0.5 + torch.rand(c))
        bn.num_batches_tracked.fill_(steps - 1)
    rm0, rv0 = bn.running_mean.clone(), bn.running_var.clone()
    x = leaf(torch.randn(n, c) * (0.5 + torch.rand(c)) + torch.randn(c))
    _, save_mean, save_invstd = torch.native_batch_norm(
        x.detach(), bn.weight.detach(), bn.bias.detach(), rm0.clone(), rv0.clone(), True, momentum, eps)
    bn.train()
    y = bn(x)
    dout = torch.randn_like(y)
    y.backward(dout)
    w.case("batchnorm1d_train", name,
           dict(n=n, c=c, eps=eps, momentum=momentum, num_batches_tracked=int(bn.num_batches_tracked)),
           dict(input=x, gamma=bn.weight, beta=bn.bias, running_mean_in=rm0, running_var_in=rv0, dout=dout,
                out=y, save_mean=save_mean, save_invstd=save_invstd, running_mean=bn.running_mean,
                running_var=bn.running_var, din=x.grad, dgamma=bn.weight.grad, dbeta=bn.bias.grad),
           text=dict(state_dict_keys=",".join(bn.state_dict().keys())))


def bn1d_eval_case(w, name, n, c, eps=1e-5):
    bn = nn.BatchNorm1d(c, eps=eps)
    with torch.no_grad():
        bn.weight.copy_(1.0 + 0.3 * torch.randn(c))
        bn.bias.copy_(0.3 * torch.randn(c))
        bn.running_mean.copy_(0.5 * torch.randn(c))
        bn.running_var.copy_(0.3 + 2.0 * torch.rand(c))
    bn.eval()
    x = torch.randn(n, c) * 1.5 + 0.5
    with torch.no_grad():
        y = bn(x)
    w.case("batchnorm1d_eval", name, dict(n=n, c=c, eps=eps),
           dict(input=x, gamma=bn.weight, beta=bn.bias, running_mean=bn.running_mean,
                running_var=bn.running_var, out=y))


# A whole nn.Sequential through every new layer, for tests/test_net.c: the
# builder's Sequential indices must give these keys, and forward, loss and
# backward through the net must match (BatchNorm1d in training mode).
def mlp_model():
    return nn.Sequential(
        nn.Flatten(),                      # 0
        nn.Linear(12, 10),                 # 1
        nn.BatchNorm1d(10),                # 2
        nn.GELU(),                         # 3
        nn.Linear(10, 8),                  # 4
        nn.LeakyReLU(0.2),                 # 5
        nn.Linear(8, 8),                   # 6
        nn.Tanh(),                         # 7
        nn.Linear(8, 6),                   # 8
        nn.Sigmoid(),                      # 9
        nn.Identity(),                     # 10
        nn.Linear(6, 7),                   # 11
        nn.GELU(approximate="tanh"),       # 12
        nn.Linear(7, 4))                   # 13


def net_case(f):
    model = mlp_model()
    with torch.no_grad():
        model[2].weight.copy_(1.0 + 0.3 * torch.randn(10))
        model[2].bias.copy_(0.3 * torch.randn(10))
    model.train()
    g = f.create_group("net_mlp")
    g.attrs["state_dict_keys"] = np.string_(",".join(model.state_dict().keys()))
    for k, v in model.state_dict().items():
        if v.dtype.is_floating_point:
            g.create_dataset("params/" + k, data=f32(v), track_times=False)
    x = torch.randn(5, 3, 2, 2)
    y = torch.tensor([0, 3, 1, 2, 3])
    logits = model(x)
    loss = F.cross_entropy(logits, y)
    loss.backward()
    g.create_dataset("x", data=f32(x), track_times=False)
    g.create_dataset("y", data=y.numpy().astype(np.int32), track_times=False)
    g.create_dataset("logits", data=f32(logits), track_times=False)
    g.create_dataset("loss", data=np.array([loss.item()], dtype=np.float32), track_times=False)
    for k, p in model.named_parameters():
        g.create_dataset("grad/" + k, data=f32(p.grad), track_times=False)
    for k, b in model.named_buffers():
        if b.dtype.is_floating_point:
            g.create_dataset("after/" + k, data=f32(b), track_times=False)


# The classic LeNet-5 as a torch.nn.Sequential (docs/examples/lenet5): its keys.
def lenet5_keys(f):
    model = nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2), nn.Tanh(), nn.AvgPool2d(2),
        nn.Conv2d(6, 16, 5), nn.Tanh(), nn.AvgPool2d(2),
        nn.Flatten(),
        nn.Linear(16 * 5 * 5, 120), nn.Tanh(),
        nn.Linear(120, 84), nn.Tanh(),
        nn.Linear(84, 10))
    f.create_group("lenet5").attrs["state_dict_keys"] = np.string_(",".join(model.state_dict().keys()))


def main():
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    w = Writer(OUT)
    special = torch.tensor(SPECIAL)

    elementwise_case(w, "tanh", "mixed", mixed(96, 2.0), torch.tanh)
    elementwise_case(w, "tanh", "special", special, torch.tanh)
    elementwise_case(w, "sigmoid", "mixed", mixed(96, 3.0), torch.sigmoid)
    elementwise_case(w, "sigmoid", "special", special, torch.sigmoid)
    for slope, tag in ((0.01, "default"), (0.2, "0.2"), (-0.5, "negative"), (1.5, "1.5")):
        elementwise_case(w, "leaky_relu", "mixed_" + tag, mixed(96, 2.0),
                         lambda x, s=slope: F.leaky_relu(x, s), dict(negative_slope=slope))
    elementwise_case(w, "leaky_relu", "special", special, lambda x: F.leaky_relu(x, 0.01),
                     dict(negative_slope=0.01))
    # GELU's backward is NaN at +-inf (x * pdf = inf * 0) in torch too; the
    # special case keeps to finite values and NaN.
    finite_special = special[torch.isfinite(special) | torch.isnan(special)]
    for approx, tanh in (("none", 0), ("tanh", 1)):
        elementwise_case(w, "gelu", "mixed_" + approx, mixed(96, 3.0),
                         lambda x, a=approx: F.gelu(x, approximate=a), dict(tanh=tanh))
        elementwise_case(w, "gelu", "special_" + approx, finite_special,
                         lambda x, a=approx: F.gelu(x, approximate=a), dict(tanh=tanh))

    bn1d_train_case(w, "m0.1", 8, 5, 0.1)
    bn1d_train_case(w, "m0.3_eps1e-3", 6, 3, 0.3, eps=1e-3, steps=4)
    bn1d_train_case(w, "n2", 2, 4, 0.1)
    bn1d_eval_case(w, "default", 5, 4)
    bn1d_eval_case(w, "eps1e-3", 3, 6, eps=1e-3)

    net_case(w.f)
    lenet5_keys(w.f)
    w.close()
    print("wrote %s (%d bytes)" % (os.path.normpath(OUT), os.path.getsize(OUT)))


if __name__ == "__main__":
    main()
