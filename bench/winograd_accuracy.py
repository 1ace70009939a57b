#!/usr/bin/env python3
"""Why tunebench's Winograd path is F(2x2, 3x3) and not F(4x4, 3x3).

Runs a 3x3 convolution (stride 1, padding 1) in float32 by direct summation,
by F(2x2, 3x3) and by F(4x4, 3x3) with two sets of interpolation points, and
measures each against the float64 result with tests/test_layers.c's
tolerance for conv fixtures: |x - ref| <= 1e-5 |ref| + 1e-6 max|ref|.
Prints, per method, the largest error as a share of that tolerance over the
shapes below (SqueezeNet's 3x3 convolutions at 64 px, channels cut to keep it
quick). A share over 1.0 fails the fixtures before PyTorch's own float32
rounding is even added.

    /usr/bin/python3 bench/winograd_accuracy.py      # numpy only, about 20 s

The matrices are built from the points by Cook-Toom (as Lavin & Gray and
the wincnn generator do), so a point set is one line below."""
from fractions import Fraction as Fr

import numpy as np


def winograd_matrices(points, m, r=3):
    """A^T [m][n], G [n][r], B^T [n][n] of F(m, r) on the finite points and infinity."""
    n = m + r - 1
    at, g, bt = np.zeros((m, n)), np.zeros((n, r)), np.zeros((n, n))
    for j, p in enumerate(points):
        at[:, j] = [float(p ** i) for i in range(m)]
        others = [q for q in points if q != p]
        scale = np.prod([p - q for q in others])
        g[j] = [float(p ** k / scale) for k in range(r)]
        coeffs = np.poly1d([float(q) for q in others], r=True).coeffs[::-1]
        bt[j, : len(coeffs)] = coeffs
    at[m - 1, n - 1] = g[n - 1, r - 1] = 1.0
    coeffs = np.poly1d([float(q) for q in points], r=True).coeffs[::-1]
    bt[n - 1, : len(coeffs)] = coeffs
    return at, g, bt


def winograd_conv(d, w, at, g, bt):
    """float32 F(m, 3) convolution of d [C][H][W] by w [K][C][3][3], padding 1.
    The filters are transformed in float64 and rounded once (the best case:
    G's thirds and sixths are not floats); A^T and B^T of these points are."""
    m, n = at.shape
    assert (at.astype(np.float32) == at).all() and (bt.astype(np.float32) == bt).all()
    at, bt = at.astype(np.float32), bt.astype(np.float32)
    c, h, wd = d.shape
    th, tw = -(-h // m), -(-wd // m)
    pad = np.zeros((c, th * m + 2, tw * m + 2), np.float32)
    pad[:, 1 : h + 1, 1 : wd + 1] = d
    u = np.einsum("ij,kcjl,ml->imkc", g, w.astype(np.float64), g).astype(np.float32)  # [n][n][K][C]
    windows = np.stack(
        [np.stack([pad[:, y * m : y * m + n, x * m : x * m + n] for x in range(tw)], -1) for y in range(th)], -2
    )  # [C][n][n][th][tw]
    v = np.einsum("ij,cjlyx,ml->imcyx", bt, windows, bt, dtype=np.float32)
    prod = np.einsum("imkc,imcyx->imkyx", u, v, dtype=np.float32)
    y = np.einsum("ij,jlkyx,ml->kyixm", at, prod, at, dtype=np.float32)  # [K][th][m][tw][m]
    return y.reshape(w.shape[0], th * m, tw * m)[:, :h, :wd]


def direct_conv(d, w, dtype):
    c, h, wd = d.shape
    pad = np.zeros((c, h + 2, wd + 2), dtype)
    pad[:, 1 : h + 1, 1 : wd + 1] = d
    out = np.zeros((w.shape[0], h, wd), dtype)
    for ky in range(3):
        for kx in range(3):
            out += np.einsum("kc,chw->khw", w[:, :, ky, kx].astype(dtype), pad[:, ky : ky + h, kx : kx + wd])
    return out


def main():
    rng = np.random.default_rng(2026)
    f2 = winograd_matrices([Fr(0), Fr(1), Fr(-1)], 2)
    methods = {
        "direct (im2col + gemm), float32": lambda d, w: direct_conv(d, w, np.float32),
        "F(2x2,3x3), points 0 1 -1 (tunebench)": lambda d, w: winograd_conv(d, w, *f2),
    }
    for label, pts in (("0 1 -1 2 -2 (Lavin & Gray)", [0, 1, -1, 2, -2]),
                       ("0 1 -1 2 -1/2", [0, 1, -1, 2, Fr(-1, 2)]),
                       ("0 1 -1 1/2 -1/2", [0, 1, -1, Fr(1, 2), Fr(-1, 2)])):
        mats = winograd_matrices([Fr(p) for p in pts], 4)
        methods["F(4x4,3x3), points " + label] = lambda d, w, mats=mats: winograd_conv(d, w, *mats)
    shapes = [(16, 64, 14), (32, 64, 14), (48, 64, 7), (64, 64, 7), (64, 64, 3)]  # C, K, plane
    worst = dict.fromkeys(methods, 0.0)
    for c, k, hw in shapes:
        for _ in range(3):
            d = rng.standard_normal((c, hw, hw)).astype(np.float32)
            w = (rng.standard_normal((k, c, 3, 3)) / np.sqrt(9 * c)).astype(np.float32)
            ref = direct_conv(d.astype(np.float64), w.astype(np.float64), np.float64)
            tol = 1e-5 * np.abs(ref) + 1e-6 * np.abs(ref).max()
            for name, run in methods.items():
                worst[name] = max(worst[name], float((np.abs(run(d, w) - ref) / tol).max()))
    print("largest error as a share of test_layers' conv tolerance (over 1.0 fails):")
    for name, share in worst.items():
        print(f"  {share:5.2f}  {name}")


if __name__ == "__main__":
    main()
