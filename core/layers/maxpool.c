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

/* Stride-2 windows of 2 or 3 columns inside the input, output columns
 * [lo, hi): each input row is split into its even and odd columns so that
 * every window element is a contiguous load (E[j], O[j], E[j+1]) and the
 * loop vectorises. Rows are visited in order and a value replaces the best
 * only when strictly greater: torch's first maximum. Returns non-zero if a
 * NaN was seen (the caller then redoes the plane exactly). */
#define S2_MAX 1024
static int pool_row_s2(float *drow, int32_t *irow, const float *src, int W, int ys, int lo, int hi, int pw,
                       int kh, int kw)
{
    float even[S2_MAX + 1], odd[S2_MAX + 1], best[S2_MAX];
    int32_t at[S2_MAX];
    const int n = hi - lo, start = 2 * lo - pw; /* input column of the first window's first element */
    int nan_seen = 0;
    for (int y = 0; y < kh; y++) {
        const float *row = src + (ys + y) * W + start;
        const int32_t base = (ys + y) * W + start;
        /* n windows need columns start .. start + 2n (+1 for kw 3) */
        for (int j = 0; j < n + (kw == 3); j++) {
            even[j] = row[2 * j];
            odd[j] = j < n ? row[2 * j + 1] : 0.0f;
        }
        if (y == 0) {
#pragma omp simd
            for (int j = 0; j < n; j++) {
                best[j] = even[j];
                at[j] = base + 2 * j;
            }
        } else {
#pragma omp simd
            for (int j = 0; j < n; j++) {
                int take = even[j] > best[j];
                best[j] = take ? even[j] : best[j];
                at[j] = take ? base + 2 * j : at[j];
            }
        }
#pragma omp simd
        for (int j = 0; j < n; j++) {
            int take = odd[j] > best[j];
            best[j] = take ? odd[j] : best[j];
            at[j] = take ? base + 2 * j + 1 : at[j];
        }
        if (kw == 3) {
#pragma omp simd
            for (int j = 0; j < n; j++) {
                int take = even[j + 1] > best[j];
                best[j] = take ? even[j + 1] : best[j];
                at[j] = take ? base + 2 * j + 2 : at[j];
            }
        }
#pragma omp simd reduction(| : nan_seen)
        for (int j = 0; j < n + (kw == 3); j++) nan_seen |= (even[j] != even[j]) | (odd[j] != odd[j]);
    }
    for (int j = 0; j < n; j++) {
        drow[lo + j] = best[j];
        irow[lo + j] = at[j];
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
        if (sw == 2 && (kw == 2 || kw == 3) && kh <= 3 && hi - lo <= S2_MAX)
            nan_seen |= pool_row_s2(drow, irow, src, W, ys, lo, hi, s->pad_w, kh, kw);
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
