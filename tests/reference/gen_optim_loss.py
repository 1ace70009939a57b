#!/usr/bin/python3
"""Reference losses and optimizer trajectories, computed by PyTorch (CPU, float32).

Run with the system interpreter that has torch (1.13), h5py and numpy:

    /usr/bin/python3 tests/reference/gen_optim_loss.py

Writes tests/fixtures/optim_loss.h5, read by tests/test_loss.c and
tests/test_optim.c. Layout (float32 datasets, int32 targets, float64 attributes):

  /loss/<loss>/<case>        loss in cross_entropy nll l1 mse,
                             case in random large ties
      logits [n, classes]  targets [n] (int32)  loss [1]  grad [n, classes]
      attrs n classes

  /optim/<optimizer>         attrs ncases
  /optim/<optimizer>/c<k>    one configuration, k = 0 .. ncases-1
      params0 [n]          the parameters before the first step
      grads [steps, n]     the gradient given at each step
      params [steps, n]    the parameters after each step
      state/<key> [n]      torch's state tensors after the last step
      attrs n steps, every field of tb_optim_config by its name (lr weight_decay
            momentum dampening nesterov beta1 beta2 amsgrad eps lr_decay
            initial_accumulator_value rho alpha centered lambd t0; fields the
            optimizer does not read are 0), final_step, and for asgd
            final_eta final_mu (torch's float32 scalar state)

Every optimizer runs torch's single-tensor path (foreach=False), the one
core/engine/optim.c transcribes.
"""
import os

import h5py
import numpy as np
import torch
import torch.nn.functional as F

torch.manual_seed(20240612)
torch.set_num_threads(1)
torch.set_default_dtype(torch.float32)

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "fixtures", "optim_loss.h5")

N_PARAMS = 53  # odd, so vector kernels also run their tail
STEPS = 6
# Gradient scale per step: varying magnitudes make amsgrad's max matter.
GRAD_SCALES = [1.0, 0.3, 2.0, 0.05, 1.5, 0.7]

CONFIG_FIELDS = ["lr", "weight_decay", "momentum", "dampening", "nesterov", "beta1", "beta2", "amsgrad",
                 "eps", "lr_decay", "initial_accumulator_value", "rho", "alpha", "centered", "lambd", "t0"]


def f32(t):
    return np.ascontiguousarray(t.detach().cpu().numpy().astype(np.float32))


# ---- losses ------------------------------------------------------------------

def loss_value(kind, logits, targets):
    classes = logits.shape[1]
    if kind == "cross_entropy":
        return F.cross_entropy(logits, targets)
    if kind == "nll":
        return F.nll_loss(logits, targets)  # raw outputs, no log-softmax
    onehot = F.one_hot(targets, classes).to(torch.float32)
    if kind == "l1":
        return F.l1_loss(logits, onehot)
    return F.mse_loss(logits, onehot)


def loss_cases():
    n, classes = 5, 7
    targets = torch.randint(0, classes, (n,))
    yield "random", torch.randn(n, classes) * 2.0, targets
    # Large magnitudes: a naive exp() overflows; the row max dominates.
    large = torch.randn(n, classes) * 30.0
    large[0, 3] = 1000.0
    large[1, :] = -500.0 + torch.randn(classes)
    large[2, targets[2]] = 200.0
    yield "large", large, targets
    # Exact ties: x == one_hot(t) elementwise in places (l1's sign(0) = 0),
    # equal logits across a row (cross_entropy's uniform softmax), zeros.
    ties = torch.randn(n, classes)
    ties[0, :] = 0.0
    ties[0, targets[0]] = 1.0
    ties[1, :] = 0.25
    ties[2, targets[2]] = 1.0
    ties[3, :] = 0.0
    ties[4, (targets[4] + 1) % classes] = 1.0
    yield "ties", ties, targets


def write_losses(f):
    for name, logits, targets in loss_cases():
        for kind in ["cross_entropy", "nll", "l1", "mse"]:
            x = logits.clone().requires_grad_(True)
            loss = loss_value(kind, x, targets)
            loss.backward()
            g = f.require_group("loss/" + kind).create_group(name)
            g.attrs["n"] = np.float64(logits.shape[0])
            g.attrs["classes"] = np.float64(logits.shape[1])
            g["logits"] = f32(logits)
            g["targets"] = targets.numpy().astype(np.int32)
            g["loss"] = f32(loss.reshape(1))
            g["grad"] = f32(x.grad)


# ---- optimizers --------------------------------------------------------------

def make_optimizer(kind, p, c):
    """torch optimizer for config c (a dict of tb_optim_config fields)."""
    if kind == "sgd":
        return torch.optim.SGD([p], lr=c["lr"], momentum=c["momentum"], dampening=c["dampening"],
                               weight_decay=c["weight_decay"], nesterov=bool(c["nesterov"]), foreach=False)
    if kind == "adam":
        return torch.optim.Adam([p], lr=c["lr"], betas=(c["beta1"], c["beta2"]), eps=c["eps"],
                                weight_decay=c["weight_decay"], amsgrad=bool(c["amsgrad"]), foreach=False)
    if kind == "adagrad":
        return torch.optim.Adagrad([p], lr=c["lr"], lr_decay=c["lr_decay"], weight_decay=c["weight_decay"],
                                   initial_accumulator_value=c["initial_accumulator_value"], eps=c["eps"],
                                   foreach=False)
    if kind == "adadelta":
        return torch.optim.Adadelta([p], lr=c["lr"], rho=c["rho"], eps=c["eps"], weight_decay=c["weight_decay"],
                                    foreach=False)
    if kind == "rmsprop":
        return torch.optim.RMSprop([p], lr=c["lr"], alpha=c["alpha"], eps=c["eps"], weight_decay=c["weight_decay"],
                                   momentum=c["momentum"], centered=bool(c["centered"]), foreach=False)
    if kind == "asgd":
        return torch.optim.ASGD([p], lr=c["lr"], lambd=c["lambd"], alpha=c["alpha"], t0=c["t0"],
                                weight_decay=c["weight_decay"], foreach=False)
    raise ValueError(kind)


DEFAULTS = {
    "sgd": dict(lr=0.01),
    "adam": dict(lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8),
    "adagrad": dict(lr=1e-2, eps=1e-10),
    "adadelta": dict(lr=1.0, rho=0.9, eps=1e-6),
    "rmsprop": dict(lr=1e-2, alpha=0.99, eps=1e-8),
    "asgd": dict(lr=1e-2, lambd=1e-4, alpha=0.75, t0=1e6),
}

# Non-default configurations covering every option of every optimizer.
CONFIGS = {
    "sgd": [
        dict(lr=0.05),
        dict(lr=0.03, momentum=0.9, dampening=0.1),
        dict(lr=0.02, momentum=0.8, nesterov=1),
        dict(lr=0.04, momentum=0.5, dampening=0.3, weight_decay=0.01),
        dict(lr=0.05, momentum=0.9, nesterov=1, weight_decay=0.1),
    ],
    "adam": [
        dict(),
        dict(lr=0.01, beta1=0.8, beta2=0.99, eps=1e-6),
        dict(lr=0.005, beta1=0.85, beta2=0.95, weight_decay=0.05),
        dict(lr=0.02, beta1=0.9, beta2=0.9, eps=1e-7, weight_decay=0.01, amsgrad=1),
        dict(lr=0.01, beta1=0.5, beta2=0.6, amsgrad=1),
    ],
    "adagrad": [
        dict(lr=0.1),
        dict(lr=0.05, lr_decay=0.1, initial_accumulator_value=0.5),
        dict(lr=0.2, weight_decay=0.02, eps=1e-6, lr_decay=0.01, initial_accumulator_value=0.1),
    ],
    "adadelta": [
        dict(),
        dict(lr=0.5, rho=0.8, eps=1e-4, weight_decay=0.03),
        dict(lr=2.0, rho=0.95, eps=1e-5),
    ],
    "rmsprop": [
        dict(lr=0.01, alpha=0.9),
        dict(lr=0.005, momentum=0.7),
        dict(lr=0.01, centered=1),
        dict(lr=0.003, alpha=0.95, eps=1e-6, weight_decay=0.02, momentum=0.5, centered=1),
    ],
    "asgd": [
        dict(),
        dict(lr=0.05, lambd=1e-3, alpha=0.6, t0=2),
        dict(lr=0.1, lambd=0.01, alpha=0.9, t0=3, weight_decay=0.05),
    ],
}


def full_config(kind, overrides):
    c = {k: 0.0 for k in CONFIG_FIELDS}
    c.update(DEFAULTS[kind])
    c.update(overrides)
    return c


def run_optimizer(kind, c):
    p0 = torch.randn(N_PARAMS)
    p0[0] = 0.0  # an exact zero parameter
    grads = torch.stack([torch.randn(N_PARAMS) * s for s in GRAD_SCALES])
    grads[:, 1] = 0.0  # a parameter that never gets a gradient
    grads[2, 2] = 0.0
    p = p0.clone().requires_grad_(True)
    opt = make_optimizer(kind, p, c)
    after = []
    for s in range(STEPS):
        p.grad = grads[s].clone()
        opt.step()
        after.append(p.detach().clone())
    return p0, grads, torch.stack(after), opt.state[p]


def write_optimizers(f):
    for kind, configs in CONFIGS.items():
        top = f.require_group("optim/" + kind)
        top.attrs["ncases"] = np.float64(len(configs))
        for k, overrides in enumerate(configs):
            c = full_config(kind, overrides)
            p0, grads, after, state = run_optimizer(kind, c)
            g = top.create_group("c%d" % k)
            for name in CONFIG_FIELDS:
                g.attrs[name] = np.float64(c[name])
            g.attrs["n"] = np.float64(N_PARAMS)
            g.attrs["steps"] = np.float64(STEPS)
            g["params0"] = f32(p0)
            g["grads"] = f32(grads)
            g["params"] = f32(after)
            st = g.create_group("state")
            for key, value in state.items():
                if key == "step":
                    g.attrs["final_step"] = np.float64(float(value))
                elif key in ("eta", "mu"):
                    g.attrs["final_" + key] = np.float64(float(value))
                elif value is not None:  # sgd without momentum keeps momentum_buffer = None
                    st[key] = f32(value)
            if "step" not in state:  # sgd keeps no step count
                g.attrs["final_step"] = np.float64(STEPS)


def main():
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with h5py.File(OUT, "w", libver="earliest", track_order=False) as f:
        write_losses(f)
        write_optimizers(f)
    print("wrote", os.path.normpath(OUT), os.path.getsize(OUT), "bytes")


if __name__ == "__main__":
    main()
