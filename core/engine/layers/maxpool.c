/* maxpool.c: torch.nn.MaxPool2d (padding, ceil_mode; dilation 1). */
#include <math.h>
#include <stdint.h>
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

/* Windows of output row oy, columns [lo, hi), that lie inside the input, for
 * the shapes the faster paths below do not take (padded or unusual windows):
 * branch-free (random comparisons defeat the branch predictor). Same
 * first-maximum rule; returns non-zero if a NaN was seen. */
static int pool_row_inside(float *drow, int32_t *irow, const float *src, int W, int ys, int lo, int hi, int sw,
                           int pw, int kh, int kw)
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

/* Whole-plane path for windows that all lie inside the input (no padding):
 * separable, first a horizontal pass at stride 1 over the flattened rows (one
 * long vectorised loop; a window straddling a row end is computed but never
 * used), then a vertical pass at the output positions. Both use torch's rule,
 * take v when (v > best) || isnan(v), scanning left to right and then top to
 * bottom: the horizontal pass keeps each row's first maximum (or last NaN),
 * the vertical pass the first row whose maximum beats the rows above (or the
 * last row with a NaN), so the index is torch's first maximum in row-major
 * window order and a NaN wins as in torch, without a second exact pass.
 * Output rows go in bands so the scratch fits on the stack. */
#define PLANE_CAP 4096
/* torch's rule for one candidate v at index a */
#define POOL_TAKE(v, a)                        \
    do {                                       \
        const float v_ = (v);                  \
        const int t_ = (v_ > best) | (v_ != v_); \
        best = t_ ? v_ : best;                 \
        at = t_ ? (a) : at;                    \
    } while (0)

/* horizontal pass: hv/hi[f] = window of kw elements starting at src[f] (flat index base + f) */
static void pool_hpass(float *restrict hv, int32_t *restrict hi, const float *restrict src, int32_t base, int n,
                       int kw)
{
    if (kw == 3) {
#pragma omp simd
        for (int f = 0; f < n; f++) {
            float best = src[f];
            int32_t at = base + f;
            POOL_TAKE(src[f + 1], base + f + 1);
            POOL_TAKE(src[f + 2], base + f + 2);
            hv[f] = best;
            hi[f] = at;
        }
    } else if (kw == 2) {
#pragma omp simd
        for (int f = 0; f < n; f++) {
            float best = src[f];
            int32_t at = base + f;
            POOL_TAKE(src[f + 1], base + f + 1);
            hv[f] = best;
            hi[f] = at;
        }
    } else {
        for (int f = 0; f < n; f++) {
            float best = src[f];
            int32_t at = base + f;
            for (int x = 1; x < kw; x++) POOL_TAKE(src[f + x], base + f + x);
            hv[f] = best;
            hi[f] = at;
        }
    }
}

/* vertical pass for one output row: vv/vi[x] = column x of rows 0..kh-1 of hv/hi (row length W), x < n */
static void pool_vpass(float *restrict vv, int32_t *restrict vi, const float *restrict hv,
                       const int32_t *restrict hi, int W, int n, int kh)
{
    if (kh == 3) {
#pragma omp simd
        for (int x = 0; x < n; x++) {
            float best = hv[x];
            int32_t at = hi[x];
            POOL_TAKE(hv[W + x], hi[W + x]);
            POOL_TAKE(hv[2 * W + x], hi[2 * W + x]);
            vv[x] = best;
            vi[x] = at;
        }
    } else if (kh == 2) {
#pragma omp simd
        for (int x = 0; x < n; x++) {
            float best = hv[x];
            int32_t at = hi[x];
            POOL_TAKE(hv[W + x], hi[W + x]);
            vv[x] = best;
            vi[x] = at;
        }
    } else {
        for (int x = 0; x < n; x++) {
            float best = hv[x];
            int32_t at = hi[x];
            for (int y = 1; y < kh; y++) POOL_TAKE(hv[y * W + x], hi[y * W + x]);
            vv[x] = best;
            vi[x] = at;
        }
    }
}

static void pool_plane_inside(float *dst, int32_t *idx, const float *src, const tb_pool_shape *s, int band)
{
    const int W = s->in_w, OW = s->out_w, OH = s->out_h, sh = s->stride_h, sw = s->stride_w, kh = s->kh, kw = s->kw;
    float hv[PLANE_CAP];
    int32_t hi[PLANE_CAP];
    for (int oy0 = 0; oy0 < OH; oy0 += band) {
        const int oy1 = oy0 + band < OH ? oy0 + band : OH;
        const int r0 = oy0 * sh, rows = (oy1 - 1) * sh + kh - r0;
        pool_hpass(hv, hi, src + (size_t)r0 * W, r0 * W, rows * W - (kw - 1), kw);
        for (int oy = oy0; oy < oy1; oy++) {
            float vv[PLANE_CAP];
            int32_t vi[PLANE_CAP];
            pool_vpass(vv, vi, hv + (oy - oy0) * sh * W, hi + (oy - oy0) * sh * W, W, (OW - 1) * sw + 1, kh);
            float *drow = dst + oy * OW;
            int32_t *irow = idx + oy * OW;
            for (int ox = 0; ox < OW; ox++) {
                drow[ox] = vv[ox * sw];
                irow[ox] = vi[ox * sw];
            }
        }
    }
}

/* g whole planes at once (g * HW <= PLANE_CAP): consecutive planes form one
 * tall image, so both passes are single long loops at stride 1 (windows that
 * straddle a row or plane boundary are computed but never used); the outputs
 * are then picked at off[o], the window origins of one plane. */
static void pool_planes_inside(float *dst, int32_t *idx, const float *src, const tb_pool_shape *s, int g,
                               const int32_t *off)
{
    const int W = s->in_w, HW = s->in_h * W, OHW = s->out_h * s->out_w, kh = s->kh, kw = s->kw;
    float hv[PLANE_CAP], vv[PLANE_CAP];
    int32_t hi[PLANE_CAP], vi[PLANE_CAP];
    const int nh = g * HW - (kw - 1);
    pool_hpass(hv, hi, src, 0, nh, kw);
    pool_vpass(vv, vi, hv, hi, W, nh - (kh - 1) * W, kh);
    for (int p = 0; p < g; p++) {
        const float *pv = vv + p * HW;
        const int32_t *pi = vi + p * HW;
        const int32_t base = p * HW;
        float *d = dst + (size_t)p * OHW;
        int32_t *ix = idx + (size_t)p * OHW;
        for (int o = 0; o < OHW; o++) {
            d[o] = pv[off[o]];
            ix[o] = pi[off[o]] - base;
        }
    }
}

/* Stride-2 pooling with 2x2 or 3x3 windows and no padding (SqueezeNet's
 * pools, ceil mode or not): the paths above run their horizontal and
 * vertical passes at every input position, four times the windows there
 * are. Here g planes are copied into scratch rows of pitch 2 * (out_w + 1)
 * (-inf beyond the plane, as the ceil-mode path does), so that window
 * column 2 * ox of every row is flat position 2 * q: the horizontal pass runs
 * at stride 2 as one long loop over all rows of the group (one column per
 * row is computed and never used), the vertical one over its results at
 * stride 1, and the outputs are picked at the even rows. Each pass keeps the
 * offset (0..k-1) of the element it took and uses torch's rule, so the index
 * is torch's first maximum (or last NaN) in window order, as above. */
#define S2_SCRATCH 4096
static int s2_pitch(const tb_pool_shape *s) { return 2 * (s->out_w + 1); }
static int s2_rows(const tb_pool_shape *s) { return 2 * (s->out_h - 1) + s->kh; }
static int s2_applies(const tb_pool_shape *s)
{
    /* on narrow outputs (3 wide: SqueezeNet's last pool at 64 px) the
     * per-row picking costs more than the passes save: measured 0.82 ->
     * 0.97 ms, so those stay on the whole-plane paths */
    return s->stride_h == 2 && s->stride_w == 2 && s->kh == s->kw && (s->kh == 2 || s->kh == 3) && s->pad_h == 0 &&
           s->pad_w == 0 && s->out_w >= 6 && s2_rows(s) * s2_pitch(s) <= S2_SCRATCH;
}

/* best of k candidates src[q * step_q + j * step_j], j = 0..k-1, for q < nq,
 * and which j: torch's rule, one long loop that vectorises. Inlined with k,
 * step_q and (for the row pass) step_j constant: with a variable stride gcc
 * keeps only a branchy scalar loop for k = 2 (the quickstart CNN's 2x2 pools
 * ran at 9.7 ms a step instead of 1.4). */
static inline __attribute__((always_inline)) void s2_pass_k(float *restrict best_out, int32_t *restrict which,
                                                            const float *restrict src, int nq, const int step_q,
                                                            int step_j, const int k)
{
#pragma omp simd
    for (int q = 0; q < nq; q++) {
        const float *c = src + (size_t)q * step_q;
        float best = c[0];
        int32_t at = 0;
        POOL_TAKE(c[step_j], 1);
        if (k == 3) POOL_TAKE(c[2 * step_j], 2);
        best_out[q] = best;
        which[q] = at;
    }
}

/* along rows, at even columns */
static void s2_row_pass(float *restrict best_out, int32_t *restrict which, const float *restrict src, int nq, int k)
{
    if (k == 3)
        s2_pass_k(best_out, which, src, nq, 2, 1, 3);
    else
        s2_pass_k(best_out, which, src, nq, 2, 1, 2);
}

/* down the columns of the row pass's results, rows ow1 apart */
static void s2_column_pass(float *restrict best_out, int32_t *restrict which, const float *restrict src, int nq,
                           int ow1, int k)
{
    if (k == 3)
        s2_pass_k(best_out, which, src, nq, 1, ow1, 3);
    else
        s2_pass_k(best_out, which, src, nq, 1, ow1, 2);
}

static void pool_planes_s2(float *dst, int32_t *idx, const float *src, const tb_pool_shape *s, int g)
{
    const int H = s->in_h, W = s->in_w, OH = s->out_h, OW = s->out_w, k = s->kh;
    const int pitch = s2_pitch(s), rows = s2_rows(s), ow1 = OW + 1, copy_w = W < pitch ? W : pitch;
    const int copy_h = H < rows ? H : rows;
    float xs[S2_SCRATCH + 2], hv[S2_SCRATCH / 2], vv[S2_SCRATCH / 2];
    int32_t hdx[S2_SCRATCH / 2], vdy[S2_SCRATCH / 2];
    for (int p = 0; p < g; p++)
        for (int y = 0; y < rows; y++) {
            float *row = xs + ((size_t)p * rows + y) * pitch;
            const int inside = y < copy_h ? copy_w : 0;
            if (inside) memcpy(row, src + (size_t)p * H * W + (size_t)y * W, sizeof(float) * inside);
            for (int x = inside; x < pitch; x++) row[x] = -INFINITY;
        }
    xs[g * rows * pitch] = xs[g * rows * pitch + 1] = -INFINITY; /* read by the last row's unused column */
    const int nq = g * rows * ow1;
    s2_row_pass(hv, hdx, xs, nq, k);
    s2_column_pass(vv, vdy, hv, nq - (k - 1) * ow1, ow1, k);
    for (int p = 0; p < g; p++)
        for (int oy = 0; oy < OH; oy++) {
            const int q0 = (p * rows + 2 * oy) * ow1;
            float *d = dst + ((size_t)p * OH + oy) * OW;
            int32_t *ix = idx + ((size_t)p * OH + oy) * OW;
            for (int ox = 0; ox < OW; ox++) {
                const int dy = vdy[q0 + ox];
                d[ox] = vv[q0 + ox];
                ix[ox] = (2 * oy + dy) * W + 2 * ox + hdx[q0 + ox + dy * ow1];
            }
        }
}

void maxpool_forward(float *out, int32_t *argmax, const float *in, const tb_pool_shape *s, int n)
{
    if (s2_applies(s)) {
        const int planes = n * s->c, g = S2_SCRATCH / (s2_rows(s) * s2_pitch(s)), groups = (planes + g - 1) / g;
        const int HW = s->in_h * s->in_w, OHW = s->out_h * s->out_w;
#pragma omp parallel for schedule(static)
        for (int gr = 0; gr < groups; gr++) {
            const int p0 = gr * g, np = planes - p0 < g ? planes - p0 : g;
            pool_planes_s2(out + (size_t)p0 * OHW, argmax + (size_t)p0 * OHW, in + (size_t)p0 * HW, s, np);
        }
        return;
    }
    const int HW = s->in_h * s->in_w, OHW = s->out_h * s->out_w;
    const int planes = n * s->c;
    /* output rows per band of the whole-plane path; 0: not applicable */
    int band = 0;
    if (s->pad_h == 0 && s->pad_w == 0 && (s->out_h - 1) * s->stride_h + s->kh <= s->in_h &&
        (s->out_w - 1) * s->stride_w + s->kw <= s->in_w && s->kh * s->in_w <= PLANE_CAP) {
        band = ((PLANE_CAP / s->in_w) - s->kh) / s->stride_h + 1;
        if (band > s->out_h) band = s->out_h;
    }
    if (band > 0 && HW <= PLANE_CAP) {
        const int g = PLANE_CAP / HW, groups = (planes + g - 1) / g;
        int32_t off[PLANE_CAP];
        for (int oy = 0; oy < s->out_h; oy++)
            for (int ox = 0; ox < s->out_w; ox++)
                off[oy * s->out_w + ox] = oy * s->stride_h * s->in_w + ox * s->stride_w;
#pragma omp parallel for schedule(static)
        for (int gr = 0; gr < groups; gr++) {
            const int p0 = gr * g, np = planes - p0 < g ? planes - p0 : g;
            pool_planes_inside(out + (size_t)p0 * OHW, argmax + (size_t)p0 * OHW, in + (size_t)p0 * HW, s, np, off);
        }
        return;
    }
    if (band > 0) {
#pragma omp parallel for schedule(static)
        for (int pl = 0; pl < planes; pl++)
            pool_plane_inside(out + (size_t)pl * OHW, argmax + (size_t)pl * OHW, in + (size_t)pl * HW, s, band);
        return;
    }
    /* ceil_mode windows hanging over the bottom or right edge, no padding
     * (SqueezeNet 1.0's second pool: 14x14 -> 7x7 at 64 px, 54x54 -> 27x27 at
     * 224): the planes are copied into scratch extended with -inf and pooled
     * whole as above. -inf never wins torch's comparison against a window's
     * first element, which is always inside (pool_out_size), so the values
     * and indices are torch's; indices are mapped back to the plane's width. */
    const int PH = (s->out_h - 1) * s->stride_h + s->kh, PW = (s->out_w - 1) * s->stride_w + s->kw;
    if (s->pad_h == 0 && s->pad_w == 0 && PH >= s->in_h && PW >= s->in_w && PH * PW <= PLANE_CAP / 2) {
        tb_pool_shape ext = *s;
        ext.in_h = PH;
        ext.in_w = PW;
        const int H = s->in_h, W = s->in_w, PHW = PH * PW, g = PLANE_CAP / PHW, groups = (planes + g - 1) / g;
        int32_t off[PLANE_CAP];
        for (int oy = 0; oy < s->out_h; oy++)
            for (int ox = 0; ox < s->out_w; ox++) off[oy * s->out_w + ox] = oy * s->stride_h * PW + ox * s->stride_w;
#pragma omp parallel for schedule(static)
        for (int gr = 0; gr < groups; gr++) {
            const int p0 = gr * g, np = planes - p0 < g ? planes - p0 : g;
            float scratch[PLANE_CAP];
            for (int p = 0; p < np; p++)
                for (int y = 0; y < PH; y++) {
                    float *row = scratch + p * PHW + y * PW;
                    const int inside = y < H ? W : 0;
                    if (inside) memcpy(row, in + (size_t)(p0 + p) * HW + (size_t)y * W, sizeof(float) * W);
                    for (int x = inside; x < PW; x++) row[x] = -INFINITY;
                }
            int32_t *idx = argmax + (size_t)p0 * OHW;
            pool_planes_inside(out + (size_t)p0 * OHW, idx, scratch, &ext, np, off);
            for (int o = 0; o < np * OHW; o++) idx[o] = idx[o] / PW * W + idx[o] % PW;
        }
        return;
    }
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
