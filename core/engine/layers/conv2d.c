/* conv2d.c: 2-D convolution (torch.nn.Conv2d: stride, zero padding, groups)
 * as im2col + one OpenBLAS sgemm per group over a chunk of images.
 *
 * Folding the images of a chunk into the gemm's N dimension gives OpenBLAS
 * one large product instead of n small ones; the price is a transpose
 * between [out_c][n*P] and NCHW, which is memory-bound and cheap next to
 * the gemm. Chunks bound the workspace for large inputs.
 *
 * Small feature maps (SqueezeNet's fire modules) take the other mode: images
 * in parallel, each thread running a single-threaded gemm straight into the
 * NCHW output (1x1 convolutions need no im2col at all), weight gradients
 * summed per thread and reduced in thread order, so a given thread count
 * always gives the same bits. The per-image bodies (im2col_image, col2im_image)
 * are serial: they already run on one thread of the images' team. */
#include <cblas.h>
#include <omp.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "layers.h"

/* Largest im2col buffer we build at once, in floats (32 MiB), unless one image
 * alone needs more (a chunk holds at least one image). */
#define CONV_CHUNK_FLOATS ((size_t)8 << 20)

int conv2d_infer(tb_conv2d_shape *s)
{
    if (s->groups < 1 || s->in_c % s->groups || s->out_c % s->groups) return -1;
    if (s->kh < 1 || s->kw < 1 || s->stride_h < 1 || s->stride_w < 1 || s->pad_h < 0 || s->pad_w < 0) return -1;
    s->out_h = (s->in_h + 2 * s->pad_h - s->kh) / s->stride_h + 1;
    s->out_w = (s->in_w + 2 * s->pad_w - s->kw) / s->stride_w + 1;
    if (s->in_h + 2 * s->pad_h < s->kh || s->in_w + 2 * s->pad_w < s->kw) return -1;
    return s->out_h >= 1 && s->out_w >= 1 ? 0 : -1;
}

static size_t col_rows(const tb_conv2d_shape *s) { return (size_t)(s->in_c / s->groups) * s->kh * s->kw; }

/* Images per chunk so that the column buffer stays under CONV_CHUNK_FLOATS. */
static int chunk_images(const tb_conv2d_shape *s, int n)
{
    size_t per_image = col_rows(s) * (size_t)s->out_h * s->out_w;
    size_t fit = CONV_CHUNK_FLOATS / (per_image ? per_image : 1);
    if (fit < 1) fit = 1;
    return fit < (size_t)n ? (int)fit : n;
}

/* Per-image mode whenever there are at least as many images as threads: one
 * image's gemm is big enough to run well single-threaded, and it saves the
 * batch transposes (measured faster for the small CNN at 28x28 and for
 * SqueezeNet at 64x64 and 224x224). Fewer images than threads (a last batch,
 * evaluation of one sample) leave threads idle, so the batched gemm, which
 * OpenBLAS parallelises, serves them. TB_CONV_MODE=batched|image forces one
 * (for benchmarks and tests). */
static int forced_mode(void)
{
    /* read once: this runs for every convolution of every step, from
     * several executor workers at once (hence the atomic) */
    static atomic_int mode = -2; /* -2 unread, -1 automatic, 0 batched, 1 per image */
    int m = atomic_load_explicit(&mode, memory_order_relaxed);
    if (m == -2) {
        const char *force = getenv("TB_CONV_MODE");
        m = force && !strcmp(force, "batched") ? 0 : force && !strcmp(force, "image") ? 1 : -1;
        atomic_store_explicit(&mode, m, memory_order_relaxed);
    }
    return m;
}

static int per_image(int n)
{
    int mode = forced_mode();
    return mode >= 0 ? mode : n >= omp_get_max_threads();
}

static int is_pointwise(const tb_conv2d_shape *s)
{
    return s->kh == 1 && s->kw == 1 && s->stride_h == 1 && s->stride_w == 1 && s->pad_h == 0 && s->pad_w == 0;
}

size_t conv2d_workspace_floats(const tb_conv2d_shape *s, int n)
{
    if (n < 1) n = 1;
    size_t cols = (size_t)chunk_images(s, n) * s->out_h * s->out_w;
    size_t out_rows = (size_t)(s->out_c / s->groups);
    /* column buffer + gemm output / gathered gradient */
    size_t batched = col_rows(s) * cols + out_rows * cols;
    /* per image: a column buffer and a weight-gradient partial per thread */
    size_t threads = (size_t)omp_get_max_threads();
    size_t weights = (size_t)s->out_c * col_rows(s);
    size_t image = threads * (col_rows(s) * (size_t)s->out_h * s->out_w + weights + (size_t)s->out_c);
    return batched > image ? batched : image;
}

/* Row r of col [K, nc*P] for image i (K = (cin/g)*kh*kw), from the channels of group g. */
static void im2col_row(float *col, const float *in, const tb_conv2d_shape *s, int nc, int g, int r, int i)
{
    const int cg = s->in_c / s->groups, H = s->in_h, W = s->in_w, OH = s->out_h, OW = s->out_w;
    const int P = OH * OW;
    const size_t N = (size_t)nc * P;
    int c = r / (s->kh * s->kw), ky = (r / s->kw) % s->kh, kx = r % s->kw;
    const float *plane = in + ((size_t)i * s->in_c + (size_t)g * cg + c) * H * W;
    float *dst = col + (size_t)r * N + (size_t)i * P;
    for (int oy = 0; oy < OH; oy++) {
        int iy = oy * s->stride_h - s->pad_h + ky;
        float *row = dst + (size_t)oy * OW;
        if (iy < 0 || iy >= H) {
            memset(row, 0, sizeof(float) * OW);
            continue;
        }
        const float *src = plane + (size_t)iy * W;
        int x0 = kx - s->pad_w;
        if (s->stride_w == 1) {
            /* contiguous run with zero edges */
            int lo = x0 < 0 ? -x0 : 0;
            int hi = OW;
            if (x0 + hi > W) hi = W - x0;
            if (hi < lo) hi = lo;
            for (int ox = 0; ox < lo; ox++) row[ox] = 0.0f;
            if (hi > lo) memcpy(row + lo, src + x0 + lo, sizeof(float) * (hi - lo));
            for (int ox = hi; ox < OW; ox++) row[ox] = 0.0f;
        } else {
            for (int ox = 0; ox < OW; ox++) {
                int ix = ox * s->stride_w + x0;
                row[ox] = (ix >= 0 && ix < W) ? src[ix] : 0.0f;
            }
        }
    }
}

/* col [K, nc*P] from images in[0..nc) channels of group g, rows in parallel. */
static void im2col(float *col, const float *in, const tb_conv2d_shape *s, int nc, int g)
{
    const int K = (s->in_c / s->groups) * s->kh * s->kw;
#pragma omp parallel for schedule(static) collapse(2)
    for (int r = 0; r < K; r++)
        for (int i = 0; i < nc; i++) im2col_row(col, in, s, nc, g, r, i);
}

/* col [K, P] of one image, on the calling thread (the per-image mode runs
 * inside a parallel region already). */
static void im2col_image(float *col, const float *in, const tb_conv2d_shape *s, int g)
{
    const int K = (s->in_c / s->groups) * s->kh * s->kw;
    for (int r = 0; r < K; r++) im2col_row(col, in, s, 1, g, r, 0);
}

/* Plane c of group g of image i of din from dcol [K, nc*P]. */
static void col2im_plane(float *din, const float *dcol, const tb_conv2d_shape *s, int nc, int g, int accumulate,
                         int i, int c)
{
    const int cg = s->in_c / s->groups, H = s->in_h, W = s->in_w, OH = s->out_h, OW = s->out_w;
    const int P = OH * OW, kk = s->kh * s->kw;
    const size_t N = (size_t)nc * P;
    float *plane = din + ((size_t)i * s->in_c + (size_t)g * cg + c) * H * W;
    if (!accumulate) memset(plane, 0, sizeof(float) * H * W);
    for (int k = 0; k < kk; k++) {
        int ky = k / s->kw, kx = k % s->kw;
        const float *src = dcol + ((size_t)c * kk + k) * N + (size_t)i * P;
        for (int oy = 0; oy < OH; oy++) {
            int iy = oy * s->stride_h - s->pad_h + ky;
            if (iy < 0 || iy >= H) continue;
            float *dst = plane + (size_t)iy * W;
            const float *srow = src + (size_t)oy * OW;
            int x0 = kx - s->pad_w;
            if (s->stride_w == 1) {
                int lo = x0 < 0 ? -x0 : 0;
                int hi = OW;
                if (x0 + hi > W) hi = W - x0;
                for (int ox = lo; ox < hi; ox++) dst[ox + x0] += srow[ox];
            } else {
                for (int ox = 0; ox < OW; ox++) {
                    int ix = ox * s->stride_w + x0;
                    if (ix >= 0 && ix < W) dst[ix] += srow[ox];
                }
            }
        }
    }
}

/* din planes of group g for images [0..nc) from dcol [K, nc*P]; each plane is
 * written by one thread in a fixed order, so the sum is deterministic. */
static void col2im(float *din, const float *dcol, const tb_conv2d_shape *s, int nc, int g, int accumulate)
{
    const int cg = s->in_c / s->groups;
#pragma omp parallel for schedule(static) collapse(2)
    for (int i = 0; i < nc; i++)
        for (int c = 0; c < cg; c++) col2im_plane(din, dcol, s, nc, g, accumulate, i, c);
}

/* col2im of one image on the calling thread (same order per plane, same bits). */
static void col2im_image(float *din, const float *dcol, const tb_conv2d_shape *s, int g, int accumulate)
{
    const int cg = s->in_c / s->groups;
    for (int c = 0; c < cg; c++) col2im_plane(din, dcol, s, 1, g, accumulate, 0, c);
}

static void forward_per_image(float *out, const float *in, const float *weight, const float *bias,
                              const tb_conv2d_shape *s, int n, float *ws)
{
    const int G = s->groups, ocg = s->out_c / G, cg = s->in_c / G, P = s->out_h * s->out_w;
    const int K = (int)col_rows(s), pointwise = is_pointwise(s);
    const size_t in_img = (size_t)s->in_c * s->in_h * s->in_w, out_img = (size_t)s->out_c * P;
#pragma omp parallel
    {
        float *col = ws + (size_t)omp_get_thread_num() * K * P;
#pragma omp for schedule(static)
        for (int i = 0; i < n; i++) {
            for (int g = 0; g < G; g++) {
                const float *x = in + (size_t)i * in_img + (size_t)g * cg * P; /* pointwise: P == H*W */
                if (!pointwise) {
                    im2col_image(col, in + (size_t)i * in_img, s, g);
                    x = col;
                }
                float *y = out + (size_t)i * out_img + (size_t)g * ocg * P;
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, ocg, P, K, 1.0f,
                            weight + (size_t)g * ocg * K, K, x, P, 0.0f, y, P);
                if (bias)
                    for (int o = 0; o < ocg; o++) {
                        const float b = bias[g * ocg + o];
                        for (int p = 0; p < P; p++) y[(size_t)o * P + p] += b;
                    }
            }
        }
    }
}

static void backward_per_image(float *din, float *dweight, float *dbias, const float *dout, const float *in,
                               const float *weight, const tb_conv2d_shape *s, int n, int accumulate_din, float *ws)
{
    const int G = s->groups, ocg = s->out_c / G, cg = s->in_c / G, P = s->out_h * s->out_w;
    const int K = (int)col_rows(s), pointwise = is_pointwise(s);
    const size_t in_img = (size_t)s->in_c * s->in_h * s->in_w, out_img = (size_t)s->out_c * P;
    const size_t wsize = (size_t)s->out_c * K;
    const int T = omp_get_max_threads(); /* the workspace holds T slots (conv2d_workspace_floats) */
    float *partials = ws + (size_t)T * K * P; /* [T][wsize + out_c] */
#pragma omp parallel num_threads(T)
    {
        /* the team may be smaller than T (nested in another parallel region,
         * dynamic threads): only its slots are cleared, so only they are summed */
        const int team = omp_get_num_threads(), t = omp_get_thread_num();
        float *col = ws + (size_t)t * K * P, *dw = partials + (size_t)t * (wsize + s->out_c), *db = dw + wsize;
        memset(dw, 0, sizeof(float) * (wsize + s->out_c));
#pragma omp for schedule(static)
        for (int i = 0; i < n; i++) {
            for (int g = 0; g < G; g++) {
                const float *dy = dout + (size_t)i * out_img + (size_t)g * ocg * P;
                const float *x = in + (size_t)i * in_img + (size_t)g * cg * P;
                if (!pointwise) {
                    im2col_image(col, in + (size_t)i * in_img, s, g);
                    x = col;
                }
                /* dW_g [ocg, K] += dy [ocg, P] x x^T [P, K] */
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, ocg, K, P, 1.0f, dy, P, x, P, 1.0f,
                            dw + (size_t)g * ocg * K, K);
                if (dbias)
                    for (int o = 0; o < ocg; o++) {
                        float sum = 0.0f;
                        for (int p = 0; p < P; p++) sum += dy[(size_t)o * P + p];
                        db[g * ocg + o] += sum;
                    }
                if (!din) continue;
                float *dx = din + (size_t)i * in_img + (size_t)g * cg * P;
                if (pointwise) { /* dx [cg, P] (=|+=) W_g^T [cg, ocg] x dy [ocg, P] */
                    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, K, P, ocg, 1.0f,
                                weight + (size_t)g * ocg * K, K, dy, P, accumulate_din ? 1.0f : 0.0f, dx, P);
                } else {
                    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, K, P, ocg, 1.0f,
                                weight + (size_t)g * ocg * K, K, dy, P, 0.0f, col, P);
                    col2im_image(din + (size_t)i * in_img, col, s, g, accumulate_din);
                }
            }
        }
        /* sum the partials in thread order: deterministic for a given thread count */
#pragma omp for schedule(static)
        for (size_t k = 0; k < wsize + (size_t)s->out_c; k++) {
            float sum = 0.0f;
            for (int u = 0; u < team; u++) sum += partials[(size_t)u * (wsize + s->out_c) + k];
            if (k < wsize) dweight[k] += sum;
            else if (dbias) dbias[k - wsize] += sum;
        }
    }
}

void conv2d_forward(float *out, const float *in, const float *weight, const float *bias,
                    const tb_conv2d_shape *s, int n, float *ws)
{
    if (per_image(n)) {
        forward_per_image(out, in, weight, bias, s, n, ws);
        return;
    }
    const int G = s->groups, ocg = s->out_c / G, P = s->out_h * s->out_w;
    const int K = (int)col_rows(s), chunk = chunk_images(s, n);
    const size_t in_img = (size_t)s->in_c * s->in_h * s->in_w, out_img = (size_t)s->out_c * P;
    for (int i0 = 0; i0 < n; i0 += chunk) {
        const int nc = n - i0 < chunk ? n - i0 : chunk;
        const int N = nc * P;
        float *col = ws, *tmp = ws + (size_t)K * N;
        for (int g = 0; g < G; g++) {
            im2col(col, in + (size_t)i0 * in_img, s, nc, g);
            /* tmp [ocg, N] = W_g [ocg, K] x col [K, N] */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, ocg, N, K, 1.0f,
                        weight + (size_t)g * ocg * K, K, col, N, 0.0f, tmp, N);
#pragma omp parallel for schedule(static) collapse(2)
            for (int i = 0; i < nc; i++) {
                for (int o = 0; o < ocg; o++) {
                    const int oc = g * ocg + o;
                    const float b = bias ? bias[oc] : 0.0f;
                    const float *src = tmp + (size_t)o * N + (size_t)i * P;
                    float *dst = out + (size_t)(i0 + i) * out_img + (size_t)oc * P;
                    for (int p = 0; p < P; p++) dst[p] = src[p] + b;
                }
            }
        }
    }
}

void conv2d_backward(float *din, float *dweight, float *dbias, const float *dout, const float *in,
                     const float *weight, const tb_conv2d_shape *s, int n, int accumulate_din, float *ws)
{
    if (per_image(n)) {
        backward_per_image(din, dweight, dbias, dout, in, weight, s, n, accumulate_din, ws);
        return;
    }
    const int G = s->groups, ocg = s->out_c / G, P = s->out_h * s->out_w;
    const int K = (int)col_rows(s), chunk = chunk_images(s, n);
    const size_t in_img = (size_t)s->in_c * s->in_h * s->in_w, out_img = (size_t)s->out_c * P;

    if (dbias) {
        /* one channel per thread, images in order: deterministic */
#pragma omp parallel for schedule(static)
        for (int oc = 0; oc < s->out_c; oc++) {
            double sum = 0.0;
            for (int i = 0; i < n; i++) {
                const float *src = dout + (size_t)i * out_img + (size_t)oc * P;
                float part = 0.0f;
                for (int p = 0; p < P; p++) part += src[p];
                sum += part;
            }
            dbias[oc] += (float)sum;
        }
    }

    for (int i0 = 0; i0 < n; i0 += chunk) {
        const int nc = n - i0 < chunk ? n - i0 : chunk;
        const int N = nc * P;
        float *col = ws, *dout_t = ws + (size_t)K * N;
        for (int g = 0; g < G; g++) {
            /* dout_t [ocg, N] gathered from NCHW */
#pragma omp parallel for schedule(static) collapse(2)
            for (int o = 0; o < ocg; o++) {
                for (int i = 0; i < nc; i++) {
                    memcpy(dout_t + (size_t)o * N + (size_t)i * P,
                           dout + (size_t)(i0 + i) * out_img + (size_t)(g * ocg + o) * P, sizeof(float) * P);
                }
            }
            im2col(col, in + (size_t)i0 * in_img, s, nc, g);
            /* dW_g [ocg, K] += dout_t [ocg, N] x col^T [N, K] */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, ocg, K, N, 1.0f, dout_t, N, col, N, 1.0f,
                        dweight + (size_t)g * ocg * K, K);
            if (din) {
                /* dcol [K, N] = W_g^T [K, ocg] x dout_t [ocg, N]; reuses the column buffer */
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, K, N, ocg, 1.0f,
                            weight + (size_t)g * ocg * K, K, dout_t, N, 0.0f, col, N);
                col2im(din + (size_t)i0 * in_img, col, s, nc, g, accumulate_din);
            }
        }
    }
}
