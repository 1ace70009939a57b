#!/usr/bin/python3
"""Reference outputs of every layer kernel, computed by PyTorch (CPU, float32).

Run with the system interpreter that has torch (1.13), h5py and numpy:

    /usr/bin/python3 tests/reference/gen_layers.py

Writes tests/fixtures/layers.h5, read by tests/test_layers.c. Layout: one group
per case, /<layer>/<case>, holding float32 datasets (int32 for max-pool
indices) and the case's shape parameters as float64 attributes:

  conv2d    input weight [bias] dout | out din dweight [dbias]
            attrs n in_c in_h in_w out_c out_h out_w kh kw stride_h stride_w
                  pad_h pad_w groups has_bias
  linear    input weight [bias] dout | out din dweight [dbias]
            attrs n in_features out_features has_bias
  relu      input dout | out din                        attrs count
  maxpool   input dout | out argmax din                 (pool attrs below)
  avgpool   input dout | out din                        (pool attrs below)
            pool attrs n c in_h in_w out_h out_w kh kw stride_h stride_w
                       pad_h pad_w ceil_mode count_include_pad
  adaptive_avgpool input dout | out din                 attrs n c in_h in_w out_h out_w
  concat    in0..in{k-1} dout | out din0..din{k-1}      attrs n hw n_inputs c0..c{k-1}
  batchnorm_train input gamma beta running_mean_in running_var_in dout
            | out save_mean save_invstd running_mean running_var din dgamma dbeta
            attrs n c h w hw eps momentum
  batchnorm_eval input gamma beta running_mean running_var | out
            attrs n c h w hw eps

Dropout is not here: its mask comes from tunebench's Philox stream, which torch
cannot reproduce; tests/test_layers.c checks it on its own.
"""
import os

import h5py
import numpy as np
import torch
import torch.nn.functional as F

torch.manual_seed(20240611)
torch.set_num_threads(1)
torch.set_default_dtype(torch.float32)

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "fixtures", "layers.h5")


def f32(t):
    return np.ascontiguousarray(t.detach().cpu().numpy().astype(np.float32))


class Writer:
    def __init__(self, path):
        self.f = h5py.File(path, "w", libver="earliest", track_order=False)

    def case(self, layer, name, attrs, arrays):
        g = self.f.require_group(layer).create_group(name)
        for k, v in attrs.items():
            g.attrs[k] = np.float64(v)
        for k, v in arrays.items():
            if v is None:
                continue
            if isinstance(v, torch.Tensor) and v.dtype == torch.int64:
                data = np.ascontiguousarray(v.numpy().astype(np.int32))
            else:
                data = f32(v)
            g.create_dataset(k, data=data, track_times=False)

    def close(self):
        self.f.close()


def leaf(t):
    return t.detach().clone().requires_grad_(True)


def grad_of(t):
    return t.grad if t is not None and t.grad is not None else None


# ---------------------------------------------------------------- conv2d
def conv_case(w, name, n, in_c, in_hw, out_c, k, stride=1, pad=0, groups=1, bias=True):
    in_h, in_w = in_hw
    x = leaf(torch.randn(n, in_c, in_h, in_w))
    wt = leaf(torch.randn(out_c, in_c // groups, k, k) * (1.0 / (in_c // groups * k * k)) ** 0.5)
    b = leaf(torch.randn(out_c) * 0.5) if bias else None
    y = F.conv2d(x, wt, b, stride=stride, padding=pad, groups=groups)
    dout = torch.randn_like(y)
    y.backward(dout)
    w.case("conv2d", name,
           dict(n=n, in_c=in_c, in_h=in_h, in_w=in_w, out_c=out_c, out_h=y.shape[2], out_w=y.shape[3],
                kh=k, kw=k, stride_h=stride, stride_w=stride, pad_h=pad, pad_w=pad, groups=groups,
                has_bias=int(bias)),
           dict(input=x, weight=wt, bias=b, dout=dout, out=y, din=x.grad, dweight=wt.grad,
                dbias=grad_of(b)))


# ---------------------------------------------------------------- linear
def linear_case(w, name, n, fin, fout, bias=True):
    x = leaf(torch.randn(n, fin))
    wt = leaf(torch.randn(fout, fin) * fin ** -0.5)
    b = leaf(torch.randn(fout) * 0.5) if bias else None
    y = F.linear(x, wt, b)
    dout = torch.randn_like(y)
    y.backward(dout)
    w.case("linear", name, dict(n=n, in_features=fin, out_features=fout, has_bias=int(bias)),
           dict(input=x, weight=wt, bias=b, dout=dout, out=y, din=x.grad, dweight=wt.grad,
                dbias=grad_of(b)))


# ---------------------------------------------------------------- relu
def relu_case(w, name, x0):
    x = leaf(x0)
    y = torch.relu(x)
    dout = torch.randn_like(y)
    y.backward(dout)
    w.case("relu", name, dict(count=x.numel()), dict(input=x, dout=dout, out=y, din=x.grad))


# ---------------------------------------------------------------- pooling
def pool_attrs(n, c, in_hw, out, k, stride, pad, ceil, cip):
    return dict(n=n, c=c, in_h=in_hw[0], in_w=in_hw[1], out_h=out.shape[2], out_w=out.shape[3],
                kh=k, kw=k, stride_h=stride, stride_w=stride, pad_h=pad, pad_w=pad,
                ceil_mode=int(ceil), count_include_pad=int(cip))


def maxpool_case(w, name, n, c, in_hw, k, stride, pad, ceil, ties, x0=None):
    if x0 is None and ties:
        # small integers: many windows hold their maximum twice; torch takes the
        # first one in row-major window order and routes the gradient there.
        x0 = torch.randint(-3, 4, (n, c) + tuple(in_hw)).float()
    elif x0 is None:
        x0 = torch.randn(n, c, *in_hw)
    x = leaf(x0)
    y, idx = F.max_pool2d(x, k, stride, pad, ceil_mode=ceil, return_indices=True)
    dout = torch.randn_like(y)
    y.backward(dout)
    w.case("maxpool", name, pool_attrs(n, c, in_hw, y, k, stride, pad, ceil, 1),
           dict(input=x, dout=dout, out=y, argmax=idx, din=x.grad))


def avgpool_case(w, name, n, c, in_hw, k, stride, pad, ceil, cip):
    x = leaf(torch.randn(n, c, *in_hw))
    y = F.avg_pool2d(x, k, stride, pad, ceil_mode=ceil, count_include_pad=cip)
    dout = torch.randn_like(y)
    y.backward(dout)
    w.case("avgpool", name, pool_attrs(n, c, in_hw, y, k, stride, pad, ceil, cip),
           dict(input=x, dout=dout, out=y, din=x.grad))


def adaptive_case(w, name, n, c, in_hw, out_hw):
    x = leaf(torch.randn(n, c, *in_hw))
    y = F.adaptive_avg_pool2d(x, out_hw)
    dout = torch.randn_like(y)
    y.backward(dout)
    w.case("adaptive_avgpool", name,
           dict(n=n, c=c, in_h=in_hw[0], in_w=in_hw[1], out_h=out_hw[0], out_w=out_hw[1]),
           dict(input=x, dout=dout, out=y, din=x.grad))


# ---------------------------------------------------------------- concat
def concat_case(w, name, n, hw, chans):
    xs = [leaf(torch.randn(n, c, hw)) for c in chans]
    y = torch.cat(xs, dim=1)
    dout = torch.randn_like(y)
    y.backward(dout)
    attrs = dict(n=n, hw=hw, n_inputs=len(chans))
    arrays = dict(out=y, dout=dout)
    for i, (c, x) in enumerate(zip(chans, xs)):
        attrs["c%d" % i] = c
        arrays["in%d" % i] = x
        arrays["din%d" % i] = x.grad
    w.case("concat", name, attrs, arrays)


# ---------------------------------------------------------------- batchnorm
def bn_train_case(w, name, n, c, hw2, momentum, eps=1e-5):
    h, wd = hw2
    # per-channel offsets and scales so that the statistics are non-trivial
    x = leaf(torch.randn(n, c, h, wd) * (0.5 + torch.rand(c)).view(1, c, 1, 1)
             + torch.randn(c).view(1, c, 1, 1))
    gamma = leaf(1.0 + 0.3 * torch.randn(c))
    beta = leaf(0.3 * torch.randn(c))
    rm0 = 0.2 * torch.randn(c)
    rv0 = 0.5 + torch.rand(c)
    # torch's native op also returns what the kernel must save for backward
    _, save_mean, save_invstd = torch.native_batch_norm(
        x.detach(), gamma.detach(), beta.detach(), rm0.clone(), rv0.clone(), True, momentum, eps)
    rm, rv = rm0.clone(), rv0.clone()
    y = F.batch_norm(x, rm, rv, gamma, beta, training=True, momentum=momentum, eps=eps)
    dout = torch.randn_like(y)
    y.backward(dout)
    w.case("batchnorm_train", name, dict(n=n, c=c, h=h, w=wd, hw=h * wd, eps=eps, momentum=momentum),
           dict(input=x, gamma=gamma, beta=beta, running_mean_in=rm0, running_var_in=rv0, dout=dout,
                out=y, save_mean=save_mean, save_invstd=save_invstd, running_mean=rm, running_var=rv,
                din=x.grad, dgamma=gamma.grad, dbeta=beta.grad))


def bn_eval_case(w, name, n, c, hw2, eps=1e-5):
    h, wd = hw2
    x = torch.randn(n, c, h, wd) * 1.5 + 0.5
    gamma = 1.0 + 0.3 * torch.randn(c)
    beta = 0.3 * torch.randn(c)
    rm = 0.5 * torch.randn(c)
    rv = 0.3 + 2.0 * torch.rand(c)
    y = F.batch_norm(x, rm, rv, gamma, beta, training=False, eps=eps)
    w.case("batchnorm_eval", name, dict(n=n, c=c, h=h, w=wd, hw=h * wd, eps=eps),
           dict(input=x, gamma=gamma, beta=beta, running_mean=rm, running_var=rv, out=y))


def main():
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    w = Writer(OUT)

    conv_case(w, "plain_3x3", 2, 3, (6, 6), 4, 3, stride=1, pad=1)
    conv_case(w, "s2_p0_9x7", 2, 3, (9, 7), 4, 3, stride=2, pad=0)
    conv_case(w, "k5_s2_p1_11x9", 2, 2, (11, 9), 3, 5, stride=2, pad=1)
    conv_case(w, "groups2", 2, 4, (5, 6), 6, 3, stride=1, pad=1, groups=2)
    conv_case(w, "groups2_s2", 3, 6, (7, 7), 4, 3, stride=2, pad=1, groups=2)
    conv_case(w, "k1", 2, 5, (5, 4), 3, 1)
    conv_case(w, "nobias", 2, 3, (6, 5), 4, 3, stride=1, pad=1, bias=False)
    conv_case(w, "k7_s2_squeezenet1_0", 2, 3, (17, 17), 4, 7, stride=2, pad=0)
    conv_case(w, "in_c1", 3, 1, (5, 5), 3, 3, stride=1, pad=1)

    linear_case(w, "bias", 3, 7, 5, bias=True)
    linear_case(w, "nobias", 2, 6, 4, bias=False)

    x = torch.randn(2, 3, 4, 4)
    x.view(-1)[::7] = 0.0          # exact zeros: gradient must be 0 there
    relu_case(w, "mixed", x)
    # NaN propagates forward; torch's threshold_backward (grad if !(out <= 0))
    # lets the gradient through where the output is NaN.
    relu_case(w, "nan", torch.tensor([float("nan"), 0.0, -1.5, 2.0, -0.0, 3.0]))

    maxpool_case(w, "k3_s2_ceil_8x8", 2, 3, (8, 8), 3, 2, 0, True, ties=False)
    maxpool_case(w, "k3_s2_ceil_13x13", 2, 2, (13, 13), 3, 2, 0, True, ties=False)
    maxpool_case(w, "k3_s2_ceil_14x10_ties", 2, 2, (14, 10), 3, 2, 0, True, ties=True)
    maxpool_case(w, "k2_s2_floor_7x9", 2, 3, (7, 9), 2, 2, 0, False, ties=False)
    maxpool_case(w, "k3_s2_p1_8x8_ties", 2, 2, (8, 8), 3, 2, 1, False, ties=True)
    # ceil mode would start a last window inside the right padding: dropped
    maxpool_case(w, "k2_s2_p1_ceil_5x5", 2, 2, (5, 5), 2, 2, 1, True, ties=False)
    maxpool_case(w, "k3_s1_ties", 2, 2, (6, 6), 3, 1, 0, False, ties=True)

    avgpool_case(w, "k2_s2", 2, 3, (6, 8), 2, 2, 0, False, True)
    avgpool_case(w, "k3_s2_p1_ceil_cip", 2, 2, (8, 8), 3, 2, 1, True, True)
    avgpool_case(w, "k3_s2_p1_ceil_nocip", 2, 2, (8, 8), 3, 2, 1, True, False)
    avgpool_case(w, "k3_s2_p1_ceil_cip_7x10", 2, 2, (7, 10), 3, 2, 1, True, True)
    avgpool_case(w, "k3_s2_p1_ceil_nocip_7x10", 2, 2, (7, 10), 3, 2, 1, True, False)
    avgpool_case(w, "k3_s2_ceil_8x8", 2, 2, (8, 8), 3, 2, 0, True, True)

    adaptive_case(w, "to_1x1", 2, 3, (6, 5), (1, 1))
    adaptive_case(w, "5x7_to_3x2", 2, 3, (5, 7), (3, 2))
    adaptive_case(w, "4x4_to_3x3", 2, 2, (4, 4), (3, 3))
    adaptive_case(w, "3x3_to_5x4", 2, 2, (3, 3), (5, 4))

    concat_case(w, "two", 2, 12, [3, 5])
    concat_case(w, "three", 3, 6, [2, 1, 4])

    bn_train_case(w, "m0.1", 3, 4, (5, 5), 0.1)
    bn_train_case(w, "m0.3_eps1e-3", 2, 3, (4, 6), 0.3, eps=1e-3)
    bn_train_case(w, "hw1", 4, 5, (1, 1), 0.1)
    bn_eval_case(w, "default", 2, 4, (3, 5))
    bn_eval_case(w, "eps1e-3", 3, 2, (4, 4), eps=1e-3)

    # 3x3, stride 1, padding 1: the shapes conv2d may run by Winograd F(2x2, 3x3)
    # (tests/test_layers.c runs them by both algorithms). Last, so that the
    # cases above keep their random draws.
    conv_case(w, "winograd_odd_7x5", 3, 5, (7, 5), 6, 3, stride=1, pad=1)
    conv_case(w, "winograd_1x2", 2, 3, (1, 2), 2, 3, stride=1, pad=1)
    conv_case(w, "winograd_deep_11x10", 2, 40, (11, 10), 24, 3, stride=1, pad=1)

    # stride-2 pools (maxpool.c's stride-2 path: outputs 6 or more wide) with
    # ties, NaN and -inf:
    # two NaN in one window (torch reports the last), a NaN next to a tie, a
    # window of -inf only and a whole plane of -inf (the first element wins).
    x = torch.randint(-3, 4, (2, 3, 9, 15)).float()
    x[0, 0, 1, 1] = float("nan")
    x[0, 0, 2, 2] = float("nan")
    x[0, 1, 4, 7] = float("nan")
    x[1, 0, 0:3, 0:3] = float("-inf")
    x[1, 2] = float("-inf")
    maxpool_case(w, "k3_s2_ceil_9x15_nan_inf", 2, 3, (9, 15), 3, 2, 0, True, ties=True, x0=x)
    maxpool_case(w, "k2_s2_ceil_7x13_ties", 2, 2, (7, 13), 2, 2, 0, True, ties=True)
    maxpool_case(w, "k3_s2_floor_10x14", 3, 2, (10, 14), 3, 2, 0, False, ties=False)

    w.close()
    print("wrote %s (%d bytes)" % (os.path.normpath(OUT), os.path.getsize(OUT)))


if __name__ == "__main__":
    main()
