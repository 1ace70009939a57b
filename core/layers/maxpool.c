/* maxpool.c: torch.nn.MaxPool2d (padding, ceil_mode; dilation 1). */
#include <math.h>
#include <string.h>

#include "layers.h"

/* torch's rule: take v when (v > best) || isnan(v), so the first maximum
 * wins and the last NaN is reported. Output row oy, columns [ox0, ox1). */
static void pool_row_exact(float *dst, int32_t *idx, const float *src, const tb_pool_shape *s, int oy, int ox0,
                           int ox1)
{
    const int H = s->in_h, W = s->in_w;
    int y0 = oy * s->stride_h - s->pad_h, y1 = y0 + s->kh;
    y0 = y0 < 0 ? 0 : y0;
    y1 = y1 > H ? H : y1;
    for (int ox = ox0; ox < ox1; ox++) {
        int x0 = ox * s->stride_w - s->pad_w, x1 = x0 + s->kw;
        x0 = x0 < 0 ? 0 : x0;
        x1 = x1 > W ? W : x1;
        float best = -INFINITY;
        int32_t at = y0 * W + x0;
        for (int y = y0; y < y1; y++) {
            for (int x = x0; x < x1; x++) {
                float v = src[y * W + x];
                if (v > best || isnan(v)) {
                    best = v;
                    at = y * W + x;
                }
            }
        }
        dst[oy * s->out_w + ox] = best;
        idx[oy * s->out_w + ox] = at;
    }
}

/* Windows of output row oy, columns [lo, hi), that lie inside the input:
 * branch-free so the compiler vectorises over ox (random comparisons defeat
 * the branch predictor). Inlined with constant kh/kw for the common 2x2 and
 * 3x3 windows with stride 2. Same first-maximum rule; returns non-zero if a NaN was seen. */
static inline __attribute__((always_inline)) int pool_row_inside(float *drow, int32_t *irow, const float *src,
                                                                 int W, int ys, int lo, int hi, const int sw,
                                                                 int pw, const int kh, const int kw)
{
    int nan_seen = 0;
#pragma omp simd reduction(| : nan_seen)
    for (int ox = lo; ox < hi; ox++) {
        const int xs = ox * sw - pw;
        const float *win = src + ys * W + xs;
        float best = win[0];
        int32_t at = ys * W + xs;
        for (int y = 0; y < kh; y++) {
            for (int x = 0; x < kw; x++) {
                float v = win[y * W + x];
                int take = v > best;
                best = take ? v : best;
                at = take ? (ys + y) * W + xs + x : at;
                nan_seen |= v != v;
            }
        }
        drow[ox] = best;
        irow[ox] = at;
    }
    return nan_seen;
}

/* One plane: inside windows by pool_row_inside, border windows exactly.
 * Returns non-zero if a NaN was seen; the caller then redoes the plane exactly. */
static int pool_plane(float *dst, int32_t *idx, const float *src, const tb_pool_shape *s)
{
    const int H = s->in_h, W = s->in_w, OW = s->out_w, kh = s->kh, kw = s->kw, sw = s->stride_w;
    /* ox with xs = ox*sw - pad_w >= 0 and xs + kw <= W */
    /* floor division: a plane narrower than the kernel has no inside window */
    const int room = W - kw + s->pad_w;
    int lo = (s->pad_w + sw - 1) / sw, hi = room < 0 ? 0 : room / sw + 1;
    if (hi > OW) hi = OW;
    if (lo > hi) lo = hi;
    int nan_seen = 0;
    for (int oy = 0; oy < s->out_h; oy++) {
        const int ys = oy * s->stride_h - s->pad_h;
        if (ys < 0 || ys + kh > H) {
            pool_row_exact(dst, idx, src, s, oy, 0, OW);
            continue;
        }
        pool_row_exact(dst, idx, src, s, oy, 0, lo);
        pool_row_exact(dst, idx, src, s, oy, hi, OW);
        float *drow = dst + oy * OW;
        int32_t *irow = idx + oy * OW;
        /* constant stride too: strided loads become shuffles instead of gathers */
        if (kh == 2 && kw == 2 && sw == 2)
            nan_seen |= pool_row_inside(drow, irow, src, W, ys, lo, hi, 2, s->pad_w, 2, 2);
        else if (kh == 3 && kw == 3 && sw == 2)
            nan_seen |= pool_row_inside(drow, irow, src, W, ys, lo, hi, 2, s->pad_w, 3, 3);
        else
            nan_seen |= pool_row_inside(drow, irow, src, W, ys, lo, hi, sw, s->pad_w, kh, kw);
    }
    return nan_seen;
}

void maxpool_forward(float *out, int32_t *argmax, const float *in, const tb_pool_shape *s, int n)
{
    const int HW = s->in_h * s->in_w, OHW = s->out_h * s->out_w;
    const int planes = n * s->c;
#pragma omp parallel for schedule(static)
    for (int pl = 0; pl < planes; pl++) {
        const float *src = in + (size_t)pl * HW;
        float *dst = out + (size_t)pl * OHW;
        int32_t *idx = argmax + (size_t)pl * OHW;
        if (pool_plane(dst, idx, src, s))
            for (int oy = 0; oy < s->out_h; oy++) pool_row_exact(dst, idx, src, s, oy, 0, s->out_w);
    }
}

void maxpool_backward(float *din, const float *dout, const int32_t *argmax, const tb_pool_shape *s, int n,
                      int accumulate_din)
{
    const int HW = s->in_h * s->in_w, OHW = s->out_h * s->out_w;
    const int planes = n * s->c;
#pragma omp parallel for schedule(static)
    for (int pl = 0; pl < planes; pl++) {
        float *dst = din + (size_t)pl * HW;
        const float *g = dout + (size_t)pl * OHW;
        const int32_t *idx = argmax + (size_t)pl * OHW;
        if (!accumulate_din) memset(dst, 0, sizeof(float) * HW);
        for (int o = 0; o < OHW; o++) dst[idx[o]] += g[o];
    }
}
