/* conv2d.c: 2-D convolution (torch.nn.Conv2d: stride, zero padding, groups)
 * over batch-minor activations [c][n][h][w], the CPU backend's layout.
 *
 * With the images of a batch side by side in each channel's row, a
 * convolution over a run of images is one sgemm per group:
 *     out_g [ocg][run*P] = W_g [ocg][K] x col [K][run*P]
 * where col is the im2col matrix (K = in_c/groups * kh * kw rows, P output
 * pixels per image). A 1x1 convolution with stride 1 and no padding reads its
 * input as col directly, with no copy at all. Other convolutions build col a
 * chunk of images at a time, small enough to stay in cache while the gemm
 * packs it, and the gemm writes each chunk straight into the output through
 * its leading dimension (n*P). Such gemms have hundreds to thousands of
 * columns where the per-image ones of [n][c][h][w] had as few as 9
 * (SqueezeNet's last fire modules at 64 px), and OpenBLAS reaches its peak
 * on them. Threads split the batch (conv2d_cn_forward).
 *
 * Large planes gain nothing from this (224 px: a single image's gemm already
 * has thousands of columns) and lose a little to the output rows' long
 * stride, so networks whose convolutions work mostly on large planes stay
 * NCHW (net.c); conv2d_forward/backward run each image through the same code:
 * for one image the two layouts are the same bytes.
 *
 * 3x3 convolutions with stride 1 and padding 1 on planes of 3x3 and more,
 * with 16 input channels or more, take Winograd's F(2x2, 3x3) instead
 * (conv2d_winograd.c): 2.25x fewer multiplies, over smaller gemms. The rule
 * is winograd_applies; tb_conv2d_shape.algorithm forces either path (tests,
 * bench/conv_algorithms.c). */
#include <cblas.h>
#include <omp.h>
#include <stddef.h>
#include <string.h>

#include "activation_rules.h"
#include "conv2d_winograd.h"
#include "layers.h"

/* The column buffer's target size in floats (2 MiB, about what a core's L2
 * and its share of L3 keep while the gemm packs it); a chunk holds at least
 * one image. */
#define CONV_CHUNK_FLOATS ((size_t)512 << 10)

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

static int is_pointwise(const tb_conv2d_shape *s)
{
    return s->kh == 1 && s->kw == 1 && s->stride_h == 1 && s->stride_w == 1 && s->pad_h == 0 && s->pad_w == 0;
}

/* Images per chunk of the column buffer. */
/* Images per chunk of a column buffer (at least one). */
static int chunk_images(const tb_conv2d_shape *s)
{
    size_t per_image = col_rows(s) * (size_t)s->out_h * s->out_w;
    size_t fit = CONV_CHUNK_FLOATS / (per_image ? per_image : 1);
    return fit < 1 ? 1 : fit > (size_t)1 << 20 ? 1 << 20 : (int)fit;
}

/* a ReLU in place over the convolution's output (tb_conv2d_shape.relu) */
static void relu_in_place(float *x, size_t count)
{
#pragma omp simd
    for (size_t j = 0; j < count; j++) x[j] = tb_relu_value(x[j]);
}

/* One thread's column buffer, in floats (0 for 1x1 convolutions). */
static size_t col_floats(const tb_conv2d_shape *s)
{
    return is_pointwise(s) ? 0 : col_rows(s) * (size_t)chunk_images(s) * s->out_h * s->out_w;
}

/* One thread's scratch for a batch of n: a column buffer, or the Winograd
 * path's chunk buffers (which take both directions or neither). */
static size_t thread_floats(const tb_conv2d_shape *s, int n)
{
    return winograd_applies(s) ? winograd_thread_floats(s, n) : col_floats(s);
}

/* Scratch shared by a call's threads, at the start of the workspace: the
 * Winograd path's transformed filters. */
static size_t shared_floats(const tb_conv2d_shape *s)
{
    return winograd_applies(s) ? winograd_shared_floats(s) : 0;
}

/* Threads that share a batch of n: each takes a contiguous run of images. */
static int team_for(int n)
{
    const int T = omp_get_max_threads();
    return n < T ? n : T;
}

size_t conv2d_cn_workspace_floats(const tb_conv2d_shape *s, int n)
{
    if (n < 1) n = 1;
    const size_t T = (size_t)omp_get_max_threads();
    /* a column buffer per thread, and a weight and bias gradient per thread when they share a batch */
    const size_t partials = team_for(n) > 1 ? T * ((size_t)s->out_c * col_rows(s) + s->out_c) : 0;
    return shared_floats(s) + T * thread_floats(s, n) + partials;
}

/* Row r = (c, ky, kx) of col [K][nc*P] for images [i0, i0+nc): input row
 * oy*stride - pad + ky of each image, shifted by kx, zero where the window
 * hangs over the padding. In [c][n][h][w] the planes of one channel's images
 * are consecutive, so one call covers the whole chunk (SqueezeNet's late
 * planes are 3x3: per-plane calls would cost more than the copying). */
/* Output rows [*oy0, *oy1) of a stride-1 convolution whose input row
 * oy - pad_h + ky is inside the plane. */
static void rows_inside(const tb_conv2d_shape *s, int ky, int *oy0, int *oy1)
{
    const int y0 = ky - s->pad_h;
    *oy0 = y0 < 0 ? -y0 : 0;
    *oy1 = s->in_h - y0 < s->out_h ? s->in_h - y0 : s->out_h;
    if (*oy1 < *oy0) *oy1 = *oy0;
}

/* A stride-1 convolution whose output rows are as wide as its input rows
 * (3x3 with padding 1): row (ky, kx) of one image's columns is its input
 * plane shifted by (ky - pad_h) rows and (kx - pad_w) columns, so the rows
 * inside are one contiguous copy, after which the columns that wrapped
 * around a row end (x < lo or x >= hi) are zeroed. On 7x7 planes this is
 * several times faster than row by row. */
static int same_width(const tb_conv2d_shape *s)
{
    return s->stride_h == 1 && s->stride_w == 1 && s->out_w == s->in_w;
}

static void im2col_row(float *dst, const float *planes, const tb_conv2d_shape *s, int nc, int ky, int kx)
{
    const int H = s->in_h, W = s->in_w, OH = s->out_h, OW = s->out_w, sw = s->stride_w;
    const int x0 = kx - s->pad_w;
    /* output columns whose input column is inside [0, W) */
    int lo = x0 < 0 ? (-x0 + sw - 1) / sw : 0, hi = W - x0 > 0 ? (W - x0 + sw - 1) / sw : 0;
    if (hi > OW) hi = OW;
    if (lo > hi) lo = hi;
    if (same_width(s)) {
        int oy0, oy1;
        rows_inside(s, ky, &oy0, &oy1);
        const ptrdiff_t shift = (ptrdiff_t)(ky - s->pad_h) * W + x0;
        for (int i = 0; i < nc; i++, dst += (size_t)OH * OW) {
            const float *plane = planes + (size_t)i * H * W;
            memset(dst, 0, sizeof(float) * (size_t)oy0 * OW);
            memset(dst + (size_t)oy1 * OW, 0, sizeof(float) * (size_t)(OH - oy1) * OW);
            if (oy0 == oy1 || lo == hi) {
                memset(dst + (size_t)oy0 * OW, 0, sizeof(float) * (size_t)(oy1 - oy0) * OW);
                continue;
            }
            /* dst [oy0*W + lo, (oy1-1)*W + hi) <- plane [same + shift]: inside the plane at both ends */
            const size_t a = (size_t)oy0 * W + lo, b = (size_t)(oy1 - 1) * W + hi;
            memcpy(dst + a, plane + a + shift, sizeof(float) * (b - a));
            for (int oy = oy0; oy < oy1; oy++) {
                float *row = dst + (size_t)oy * OW;
                for (int ox = 0; ox < lo; ox++) row[ox] = 0.0f;
                for (int ox = hi; ox < OW; ox++) row[ox] = 0.0f;
            }
        }
        return;
    }
    for (int i = 0; i < nc; i++) {
        const float *plane = planes + (size_t)i * H * W;
        for (int oy = 0; oy < OH; oy++, dst += OW) {
            const int iy = oy * s->stride_h - s->pad_h + ky;
            if (iy < 0 || iy >= H) {
                for (int ox = 0; ox < OW; ox++) dst[ox] = 0.0f;
                continue;
            }
            const float *src = plane + (size_t)iy * W + x0;
            for (int ox = 0; ox < lo; ox++) dst[ox] = 0.0f;
            if (sw == 1)
                for (int ox = lo; ox < hi; ox++) dst[ox] = src[ox];
            else if (sw == 2) /* a constant stride vectorises (SqueezeNet's first layer) */
                for (int ox = lo; ox < hi; ox++) dst[ox] = src[2 * ox];
            else
                for (int ox = lo; ox < hi; ox++) dst[ox] = src[ox * sw];
            for (int ox = hi; ox < OW; ox++) dst[ox] = 0.0f;
        }
    }
}

/* col [K][nc*P] for images [i0, i0+nc) of group g of in [in_c][n][H][W]. */
static void im2col(float *col, const float *in, const tb_conv2d_shape *s, int n, int i0, int nc, int g)
{
    const int K = (int)col_rows(s), kk = s->kh * s->kw, cg = s->in_c / s->groups;
    const size_t HW = (size_t)s->in_h * s->in_w, N = (size_t)nc * s->out_h * s->out_w;
    for (int r = 0; r < K; r++) {
        const int c = r / kk, k = r % kk;
        im2col_row(col + (size_t)r * N, in + ((size_t)(g * cg + c) * n + i0) * HW, s, nc, k / s->kw, k % s->kw);
    }
}

/* The adjoint of im2col: the planes of images [i0, i0+nc) of group g of din
 * (= or +=) from dcol [K][nc*P], each summed in a fixed order. dcol is
 * scratch: a same-width convolution zeroes its entries that belong to the
 * padding, then adds each image's rows inside as one contiguous range (the
 * adjoint of im2col_row's copy). */
static void col2im(float *din, float *dcol, const tb_conv2d_shape *s, int n, int i0, int nc, int g,
                   int accumulate)
{
    const int cg = s->in_c / s->groups, H = s->in_h, W = s->in_w, OH = s->out_h, OW = s->out_w;
    const int kk = s->kh * s->kw, sw = s->stride_w;
    const size_t P = (size_t)OH * OW, N = (size_t)nc * P;
    for (int c = 0; c < cg; c++) {
        float *planes = din + ((size_t)(g * cg + c) * n + i0) * H * W;
        if (!accumulate) memset(planes, 0, sizeof(float) * nc * H * W);
        for (int k = 0; k < kk; k++) {
            const int ky = k / s->kw, kx = k % s->kw, x0 = kx - s->pad_w;
            int lo = x0 < 0 ? (-x0 + sw - 1) / sw : 0, hi = W - x0 > 0 ? (W - x0 + sw - 1) / sw : 0;
            if (hi > OW) hi = OW;
            if (lo > hi) lo = hi;
            float *src = dcol + ((size_t)c * kk + k) * N;
            if (same_width(s)) {
                int oy0, oy1;
                rows_inside(s, ky, &oy0, &oy1);
                if (oy0 == oy1 || lo == hi) continue;
                const ptrdiff_t shift = (ptrdiff_t)(ky - s->pad_h) * W + x0;
                const size_t a = (size_t)oy0 * W + lo, b = (size_t)(oy1 - 1) * W + hi;
                for (int i = 0; i < nc; i++, src += P) {
                    for (int oy = oy0; oy < oy1; oy++) {
                        float *row = src + (size_t)oy * OW;
                        for (int ox = 0; ox < lo; ox++) row[ox] = 0.0f;
                        for (int ox = hi; ox < OW; ox++) row[ox] = 0.0f;
                    }
                    float *dst = planes + (size_t)i * H * W + a + shift;
                    const float *from = src + a;
                    for (size_t j = 0; j < b - a; j++) dst[j] += from[j];
                }
                continue;
            }
            for (int i = 0; i < nc; i++) {
                float *plane = planes + (size_t)i * H * W;
                for (int oy = 0; oy < OH; oy++, src += OW) {
                    const int iy = oy * s->stride_h - s->pad_h + ky;
                    if (iy < 0 || iy >= H) continue;
                    float *dst = plane + (size_t)iy * W + x0;
                    if (sw == 1)
                        for (int ox = lo; ox < hi; ox++) dst[ox] += src[ox];
                    else
                        for (int ox = lo; ox < hi; ox++) dst[ox * sw] += src[ox];
                }
            }
        }
    }
}

/* The forward of images [i0, i1) on the calling thread: gemms over the run's
 * columns of each channel row (leading dimension n*P). The bias goes in
 * first, a chunk at a time while it is in cache, and the gemms add to it
 * (with beta 0 OpenBLAS would clear the output in a pass of its own). */
static void forward_images(float *out, const float *in, const float *weight, const float *bias,
                           const tb_conv2d_shape *s, int n, int i0, int i1, float *col, const float *u)
{
    if (u) {
        winograd_forward_images(out, in, u, bias, s, n, i0, i1, col);
        return;
    }
    const int G = s->groups, ocg = s->out_c / G, cg = s->in_c / G, K = (int)col_rows(s);
    const size_t P = (size_t)s->out_h * s->out_w, NP = (size_t)n * P, in_rows = (size_t)n * s->in_h * s->in_w;
    const float beta = bias ? 1.0f : 0.0f;
    /* a 1x1 convolution reads its input as col and takes the whole run at
     * once: cutting it into runs whose outputs stay in cache for the ReLU
     * measured no faster, and smaller gemms change the last bits */
    const int chunk = is_pointwise(s) ? i1 - i0 : chunk_images(s);
    for (int c0 = i0; c0 < i1; c0 += chunk) {
        const int nc = i1 - c0 < chunk ? i1 - c0 : chunk;
        const size_t N = (size_t)nc * P;
        if (bias)
            for (int oc = 0; oc < s->out_c; oc++) {
                float *row = out + (size_t)oc * NP + (size_t)c0 * P;
                for (size_t j = 0; j < N; j++) row[j] = bias[oc];
            }
        for (int g = 0; g < G; g++) {
            const float *x = in + (size_t)g * cg * in_rows + (size_t)c0 * P;
            int ldx = (int)NP;
            if (!is_pointwise(s)) {
                im2col(col, in, s, n, c0, nc, g);
                x = col;
                ldx = (int)N;
            }
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, ocg, (int)N, K, 1.0f,
                        weight + (size_t)g * ocg * K, K, x, ldx, beta, out + (size_t)g * ocg * NP + (size_t)c0 * P,
                        (int)NP);
        }
        if (s->relu)
            for (int oc = 0; oc < s->out_c; oc++) relu_in_place(out + (size_t)oc * NP + (size_t)c0 * P, N);
    }
}

/* The backward of images [i0, i1) on the calling thread: their weight
 * gradient into dw (beta_w 0: overwrite, 1: add), their input gradient into
 * din (= or +=, may be NULL). */
static void backward_images(float *din, float *dw, float beta_w, const float *dout, const float *in,
                            const float *weight, const tb_conv2d_shape *s, int n, int i0, int i1,
                            int accumulate_din, float *col, const float *u)
{
    if (u) {
        winograd_backward_images(din, 0.0f, dout, in, u, s, n, i0, i1, accumulate_din, col);
        winograd_weight_gradient(dw, beta_w, s, n, col);
        return;
    }
    const int G = s->groups, ocg = s->out_c / G, cg = s->in_c / G, K = (int)col_rows(s);
    const size_t P = (size_t)s->out_h * s->out_w, NP = (size_t)n * P, in_rows = (size_t)n * s->in_h * s->in_w;
    const int chunk = is_pointwise(s) ? i1 - i0 : chunk_images(s);
    for (int c0 = i0; c0 < i1; c0 += chunk, beta_w = 1.0f) {
        const int nc = i1 - c0 < chunk ? i1 - c0 : chunk;
        const int N = (int)(nc * P);
        for (int g = 0; g < G; g++) {
            const float *dy = dout + (size_t)g * ocg * NP + (size_t)c0 * P;
            const float *w = weight + (size_t)g * ocg * K;
            if (is_pointwise(s)) {
                const float *x = in + (size_t)g * cg * in_rows + (size_t)c0 * P;
                /* dW_g [ocg][cg] (+)= dy [ocg][N] x x^T [N][cg] */
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, ocg, cg, N, 1.0f, dy, (int)NP, x, (int)NP,
                            beta_w, dw + (size_t)g * ocg * K, K);
                /* dx_g [cg][N] (= or +=) W_g^T [cg][ocg] x dy [ocg][N] */
                if (din)
                    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, cg, N, ocg, 1.0f, w, K, dy, (int)NP,
                                accumulate_din ? 1.0f : 0.0f, din + (size_t)g * cg * in_rows + (size_t)c0 * P,
                                (int)NP);
                continue;
            }
            im2col(col, in, s, n, c0, nc, g);
            /* dW_g [ocg][K] (+)= dy [ocg][N] x col^T [N][K]; chunks in order */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, ocg, K, N, 1.0f, dy, (int)NP, col, N, beta_w,
                        dw + (size_t)g * ocg * K, K);
            if (!din) continue;
            /* dcol [K][N] = W_g^T [K][ocg] x dy [ocg][N], in the column buffer */
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, K, N, ocg, 1.0f, w, K, dy, (int)NP, 0.0f, col, N);
            col2im(din, col, s, n, c0, nc, g, accumulate_din);
        }
    }
}

/* The sum of P floats in a fixed order: BIAS_LANES running sums (lane l
 * takes elements l, l + BIAS_LANES, ...), added lane by lane, then the tail.
 * One running sum would chain every add to the previous one, a few cycles
 * each: SqueezeNet 1.1's first convolution spent 2.4 ms a step here. */
#define BIAS_LANES 16
static float sum_plane(const float *src, size_t P)
{
    float lane[BIAS_LANES] = {0};
    size_t p = 0;
    for (; p + BIAS_LANES <= P; p += BIAS_LANES)
        for (int l = 0; l < BIAS_LANES; l++) lane[l] += src[p + l];
    float part = 0.0f;
    for (int l = 0; l < BIAS_LANES; l++) part += lane[l];
    for (; p < P; p++) part += src[p];
    return part;
}

/* dbias[oc] += the sum over images of channel oc's P values, image i's at
 * dout + i * image_stride + oc * channel_stride: per image in float
 * (sum_plane), the images in double, in order. */
static void bias_grad(float *dbias, const float *dout, size_t image_stride, size_t channel_stride, size_t P, int n,
                      int oc)
{
    double sum = 0.0;
    for (int i = 0; i < n; i++) sum += sum_plane(dout + (size_t)i * image_stride + (size_t)oc * channel_stride, P);
    dbias[oc] += (float)sum;
}

/* ReLU's backward over a convolution whose output the ReLU overwrote in
 * place (net.c): dout masked by out (tb_relu_grad), and
 * dbias += the bias gradient of the masked dout, each plane summed while it
 * is in cache, in bias_grad's order (the same bits as conv2d's backward). */
void conv2d_relu_backward(float *dout, const float *out, float *dbias, const tb_conv2d_shape *s, int n,
                          int batch_minor)
{
    const size_t P = (size_t)s->out_h * s->out_w;
    const size_t image_stride = batch_minor ? P : (size_t)s->out_c * P;
    const size_t channel_stride = batch_minor ? (size_t)n * P : P;
#pragma omp parallel for schedule(static)
    for (int oc = 0; oc < s->out_c; oc++) {
        double sum = 0.0;
        for (int i = 0; i < n; i++) {
            const size_t at = (size_t)i * image_stride + (size_t)oc * channel_stride;
            float *restrict d = dout + at;
            const float *restrict o = out + at;
#pragma omp simd
            for (size_t p = 0; p < P; p++) d[p] = tb_relu_grad(d[p], o[p]);
            if (dbias) sum += sum_plane(d, P);
        }
        if (dbias) dbias[oc] += (float)sum;
    }
}

/* Inside a team of nt threads, after each has written its weight gradient
 * into its slot of partials [nt][wsize]: dweight += the slots summed in
 * thread order (the same bits for the same thread count), and the bias
 * gradient (dout's layout given by bias_grad's strides). */
static void sum_thread_gradients(float *dweight, const float *partials, size_t wsize, int nt, float *dbias,
                                 const float *dout, size_t image_stride, size_t channel_stride,
                                 const tb_conv2d_shape *s, int n)
{
#pragma omp for schedule(static)
    for (size_t k = 0; k < wsize; k++) {
        float sum = 0.0f;
        for (int u = 0; u < nt; u++) sum += partials[(size_t)u * wsize + k];
        dweight[k] += sum;
    }
    if (dbias) {
        const size_t P = (size_t)s->out_h * s->out_w;
#pragma omp for schedule(static)
        for (int oc = 0; oc < s->out_c; oc++) bias_grad(dbias, dout, image_stride, channel_stride, P, n, oc);
    }
}

/* The Winograd path's transformed filters, at the workspace's start, made
 * once per call before the threads start: the forward's, or (rotated) the
 * backward's; NULL where the path is not taken. */
static const float *prepare_filters(float *ws, const float *weight, const tb_conv2d_shape *s, int rotated)
{
    if (!winograd_applies(s)) return NULL;
    winograd_filters(ws, weight, s, rotated);
    return ws;
}

/* The backward's: the turned filters serve only the input gradient, so
 * without din they are not made (the pointer still selects the path). */
static const float *prepare_backward(float *ws, const float *weight, const tb_conv2d_shape *s, const float *din)
{
    if (!din) return winograd_applies(s) ? ws : NULL;
    return prepare_filters(ws, weight, s, 1);
}

/* Threads split the batch into contiguous runs of images, each running
 * single-threaded gemms (OpenBLAS does not thread inside a parallel region)
 * on its run's columns: one parallel region per call, no barrier between
 * the gemms, which matters when the cores are shared with other runs. A
 * batch smaller than the thread count (an evaluation of one sample) runs on
 * the calling thread, where OpenBLAS threads each gemm itself. */
void conv2d_cn_forward(float *out, const float *in, const float *weight, const float *bias,
                       const tb_conv2d_shape *s, int n, float *ws)
{
    const int team = team_for(n);
    const float *u = prepare_filters(ws, weight, s, 0);
    float *tws = ws + shared_floats(s);
    if (team <= 1) {
        forward_images(out, in, weight, bias, s, n, 0, n, tws, u);
        return;
    }
    const size_t tf = thread_floats(s, n);
#pragma omp parallel num_threads(team)
    {
        const int t = omp_get_thread_num(), nt = omp_get_num_threads();
        forward_images(out, in, weight, bias, s, n, (int)((long)n * t / nt), (int)((long)n * (t + 1) / nt),
                       tws + (size_t)t * tf, u);
    }
}

void conv2d_cn_backward(float *din, float *dweight, float *dbias, const float *dout, const float *in,
                        const float *weight, const tb_conv2d_shape *s, int n, int accumulate_din, float *ws)
{
    const size_t P = (size_t)s->out_h * s->out_w, NP = (size_t)n * P;
    const int team = team_for(n);
    const float *u = prepare_backward(ws, weight, s, din);
    float *tws = ws + shared_floats(s);
    if (team <= 1) {
        if (dbias)
            for (int oc = 0; oc < s->out_c; oc++) bias_grad(dbias, dout, P, NP, P, n, oc);
        backward_images(din, dweight, 1.0f, dout, in, weight, s, n, 0, n, accumulate_din, tws, u);
        return;
    }
    /* each thread's weight gradient in a slot of its own, summed in thread
     * order: the same bits for the same thread count */
    const size_t tf = thread_floats(s, n), wsize = (size_t)s->out_c * col_rows(s);
    float *partials = tws + (size_t)omp_get_max_threads() * tf;
#pragma omp parallel num_threads(team)
    {
        const int t = omp_get_thread_num(), nt = omp_get_num_threads();
        backward_images(din, partials + (size_t)t * wsize, 0.0f, dout, in, weight, s, n,
                        (int)((long)n * t / nt), (int)((long)n * (t + 1) / nt), accumulate_din,
                        tws + (size_t)t * tf, u);
#pragma omp barrier
        sum_thread_gradients(dweight, partials, wsize, nt, dbias, dout, P, NP, s, n);
    }
}

/* ---- NCHW: threads split the batch as above, and each runs its images one
 * at a time through the same code (for one image the two layouts are the
 * same bytes): the layout of networks whose planes are large ---- */

size_t conv2d_workspace_floats(const tb_conv2d_shape *s, int n) { return conv2d_cn_workspace_floats(s, n); }

/* One image of a thread's run, whose weight gradient goes into dw (beta_w
 * 0: =, 1: +=). im2col adds each image's as it goes; Winograd sums them in
 * the transformed domain and turns the sum into dw after the run's last
 * image, one transform per run instead of one per image. */
static void nchw_backward_image(float *din, float *dw, int first, int last, float beta_w, const float *dout,
                                const float *in, const float *weight, const tb_conv2d_shape *s, int accumulate_din,
                                float *tws, const float *u)
{
    if (!u) {
        backward_images(din, dw, first ? beta_w : 1.0f, dout, in, weight, s, 1, 0, 1, accumulate_din, tws, NULL);
        return;
    }
    winograd_backward_images(din, first ? 0.0f : 1.0f, dout, in, u, s, 1, 0, 1, accumulate_din, tws);
    if (last) winograd_weight_gradient(dw, beta_w, s, 1, tws);
}

void conv2d_forward(float *out, const float *in, const float *weight, const float *bias,
                    const tb_conv2d_shape *s, int n, float *ws)
{
    const size_t in_img = (size_t)s->in_c * s->in_h * s->in_w, out_img = (size_t)s->out_c * s->out_h * s->out_w;
    const int team = team_for(n);
    const float *u = prepare_filters(ws, weight, s, 0);
    float *tws = ws + shared_floats(s);
    const size_t tf = thread_floats(s, n);
#pragma omp parallel num_threads(team > 1 ? team : 1) if (team > 1)
    {
        const int t = omp_get_thread_num(), nt = omp_get_num_threads();
        for (int i = (int)((long)n * t / nt); i < (int)((long)n * (t + 1) / nt); i++)
            forward_images(out + i * out_img, in + i * in_img, weight, bias, s, 1, 0, 1, tws + (size_t)t * tf, u);
    }
}

void conv2d_backward(float *din, float *dweight, float *dbias, const float *dout, const float *in,
                     const float *weight, const tb_conv2d_shape *s, int n, int accumulate_din, float *ws)
{
    const size_t in_img = (size_t)s->in_c * s->in_h * s->in_w, P = (size_t)s->out_h * s->out_w;
    const size_t out_img = (size_t)s->out_c * P;
    const int team = team_for(n);
    const float *u = prepare_backward(ws, weight, s, din);
    float *tws = ws + shared_floats(s);
    const size_t tf = thread_floats(s, n), wsize = (size_t)s->out_c * col_rows(s);
    if (team <= 1) {
        if (dbias)
            for (int oc = 0; oc < s->out_c; oc++) bias_grad(dbias, dout, out_img, P, P, n, oc);
        for (int i = 0; i < n; i++)
            nchw_backward_image(din ? din + i * in_img : NULL, dweight, i == 0, i == n - 1, 1.0f,
                                dout + i * out_img, in + i * in_img, weight, s, accumulate_din, tws, u);
        return;
    }
    float *partials = tws + (size_t)omp_get_max_threads() * tf;
#pragma omp parallel num_threads(team)
    {
        const int t = omp_get_thread_num(), nt = omp_get_num_threads();
        const int i0 = (int)((long)n * t / nt), i1 = (int)((long)n * (t + 1) / nt);
        for (int i = i0; i < i1; i++)
            nchw_backward_image(din ? din + i * in_img : NULL, partials + (size_t)t * wsize, i == i0, i == i1 - 1,
                                0.0f, dout + i * out_img, in + i * in_img, weight, s, accumulate_din,
                                tws + (size_t)t * tf, u);
#pragma omp barrier
        sum_thread_gradients(dweight, partials, wsize, nt, dbias, dout, out_img, P, s, n);
    }
}

/* ---- layout changes ---------------------------------------------------------- */

void swap_outer_axes(float *out, const float *in, int a, int b, size_t inner, int accumulate)
{
#pragma omp parallel for schedule(static) collapse(2)
    for (int j = 0; j < b; j++)
        for (int i = 0; i < a; i++) {
            const float *src = in + ((size_t)i * b + j) * inner;
            float *dst = out + ((size_t)j * a + i) * inner;
            if (accumulate)
                for (size_t k = 0; k < inner; k++) dst[k] += src[k];
            else
                memcpy(dst, src, sizeof(float) * inner);
        }
}
