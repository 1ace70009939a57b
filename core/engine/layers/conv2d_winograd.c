/* conv2d_winograd.c: 3x3 convolutions with stride 1 and padding 1 (every 3x3
 * convolution of SqueezeNet) by Winograd's minimal filtering F(2x2, 3x3)
 * (Lavin & Gray 2016), the way oneDNN and NNPACK run them.
 *
 * Each 2x2 block of outputs ("tile") is A^T [ U (.) V ] A, where U = G g G^T
 * is the 4x4 transform of a 3x3 filter and V = B^T d B that of the 4x4 input
 * window under the tile. Summed over input channels, the 16 positions of the
 * 4x4 products are 16 independent sgemms:
 *     M[xi] [K][T] = U[xi] [K][C] x V[xi] [C][T]       (T tiles side by side)
 * 16 multiplies per tile where im2col + gemm does 36: 2.25x fewer FLOPs, with
 * transforms that only add and halve (exact but for rounding, which stays
 * within the PyTorch fixtures' tolerances: tests/test_layers.c).
 *
 * Backward, by the same identities:
 *   weight: dU[xi] [K][C] = Z[xi] [K][T] x V[xi]^T, Z = A dY A^T per tile,
 *           dg = G^T dU G;
 *   input:  the forward with the filter turned by 180 degrees and in/out
 *           channels exchanged (stride 1, padding 1: the gradient of a 3x3
 *           correlation is a 3x3 correlation of dY, same size).
 *
 * Tiles are numbered across a run of images (image, tile row, tile column)
 * and taken in chunks of at most chunk_tiles(), so one thread's buffers stay
 * a few MiB whatever the plane size. Every sum has a fixed order: the same
 * bits for the same thread count. */
#include <cblas.h>
#include <string.h>

#include "activation_rules.h"
#include "conv2d_winograd.h"

/* Floats of one thread's two chunk buffers together, [16][C][T] + [16][K][T]. */
#define WINOGRAD_CHUNK_FLOATS ((size_t)1 << 19)
#define XI 16 /* positions of a 4x4 transformed tile */
#define WINOGRAD_MIN_PLANE 10
#define WINOGRAD_MIN_FORWARD_CHANNELS 16
#define WINOGRAD_MIN_BACKWARD_CHANNELS 32

static int winograd_fits(const tb_conv2d_shape *s)
{
    return s->kh == 3 && s->kw == 3 && s->stride_h == 1 && s->stride_w == 1 && s->pad_h == 1 && s->pad_w == 1 &&
           s->groups == 1;
}

/* Whether the path is taken. Its gemms are smaller than im2col's: the
 * forward's inner dimension is the input channels, not 9x that, and the
 * weight gradient's products are [K][C] each; and tiles over the edge of an
 * odd plane compute outputs that are thrown away (a 3x3 plane: 16 computed
 * for 9). Measured on SqueezeNet's shapes at 64 and 224 px
 * (docs/performance.md): the forward pays from planes of about 10x10 up
 * with 16 input channels or more (a first layer with 1 to 8 channels makes
 * its gemms rank-1 to rank-8 products: 0.2x im2col with 1, 0.87x with 8),
 * the backward needs 32 input channels (with 16 its weight gradient's
 * [K][16] products lose what the rest gains). A fixed rule of the shape,
 * never a timing: the same network always takes the same path, so its
 * results are the same bits. */
int winograd_applies(const tb_conv2d_shape *s, int backward)
{
    if (!winograd_fits(s) || s->algorithm == TB_CONV_IM2COL) return 0;
    if (s->algorithm == TB_CONV_WINOGRAD) return 1;
    return s->out_h >= WINOGRAD_MIN_PLANE && s->out_w >= WINOGRAD_MIN_PLANE &&
           s->in_c >= (backward ? WINOGRAD_MIN_BACKWARD_CHANNELS : WINOGRAD_MIN_FORWARD_CHANNELS);
}

static int tiles_h(const tb_conv2d_shape *s) { return (s->out_h + 1) / 2; }
static int tiles_w(const tb_conv2d_shape *s) { return (s->out_w + 1) / 2; }

/* Tiles per chunk: the two buffers within WINOGRAD_CHUNK_FLOATS, at least 64
 * columns for the gemms, and never more than a whole batch could need. */
static size_t chunk_tiles(const tb_conv2d_shape *s, int n)
{
    size_t per_tile = (size_t)XI * (s->in_c + s->out_c), t = WINOGRAD_CHUNK_FLOATS / per_tile;
    if (t < 64) t = 64;
    size_t all = (size_t)n * tiles_h(s) * tiles_w(s);
    return t < all ? t : all;
}

size_t winograd_shared_floats(const tb_conv2d_shape *s) { return (size_t)XI * s->in_c * s->out_c; }

static int padded_w(const tb_conv2d_shape *s);
static size_t padded_floats(const tb_conv2d_shape *s);

/* The chunk's two buffers, the weight gradient dU and a padded plane (which
 * also holds output_transform's two lines). */
size_t winograd_thread_floats(const tb_conv2d_shape *s, int n)
{
    return chunk_tiles(s, n) * XI * (s->in_c + s->out_c) + (size_t)XI * s->in_c * s->out_c + padded_floats(s);
}

/* ---- the transforms (F(2x2, 3x3): B^T, G and A^T of Lavin & Gray) ---- */

/* U = G g G^T of one 3x3 filter g (row-major), written at u[xi * stride]. */
static void filter_transform(float *u, size_t stride, const float *g)
{
    float t[4][3];
    for (int j = 0; j < 3; j++) {
        const float g0 = g[j], g1 = g[3 + j], g2 = g[6 + j];
        t[0][j] = g0;
        t[1][j] = 0.5f * (g0 + g1 + g2);
        t[2][j] = 0.5f * (g0 - g1 + g2);
        t[3][j] = g2;
    }
    for (int i = 0; i < 4; i++) {
        u[(4 * i + 0) * stride] = t[i][0];
        u[(4 * i + 1) * stride] = 0.5f * (t[i][0] + t[i][1] + t[i][2]);
        u[(4 * i + 2) * stride] = 0.5f * (t[i][0] - t[i][1] + t[i][2]);
        u[(4 * i + 3) * stride] = t[i][2];
    }
}

void winograd_filters(float *u, const float *weight, const tb_conv2d_shape *s, int rotated)
{
    const int K = s->out_c, C = s->in_c;
    const size_t KC = (size_t)K * C;
    for (int k = 0; k < K; k++)
        for (int c = 0; c < C; c++) {
            const float *g = weight + ((size_t)k * C + c) * 9;
            if (!rotated) {
                filter_transform(u + (size_t)k * C + c, KC, g);
            } else {
                /* [C][K] of the filter turned by 180 degrees: the input gradient's */
                float r[9];
                for (int q = 0; q < 9; q++) r[q] = g[8 - q];
                filter_transform(u + (size_t)c * K + k, KC, r);
            }
        }
}

/* The planes a chunk reads and writes: channel c of image i at
 * base + c * channel_stride + i * h * w. */
typedef struct planes {
    size_t channel_stride;
    int h, w;
} planes;

/* Where tile g of a run of images is: image, tile row, tile column. */
typedef struct tile_at {
    int i, ty, tx;
} tile_at;

static tile_at tile_of(const tb_conv2d_shape *s, size_t g)
{
    const size_t tw = (size_t)tiles_w(s), tt = tw * tiles_h(s);
    tile_at at = {(int)(g / tt), (int)(g % tt / tw), (int)(g % tw)};
    return at;
}

/* Tiles [g0, g0 + nt) go by runs along one tile row: the run that starts
 * at tile g0 + t, where it is (at) and its length. */
static size_t run_at(const tb_conv2d_shape *s, size_t g0, size_t t, size_t nt, tile_at *at)
{
    *at = tile_of(s, g0 + t);
    const size_t len = (size_t)tiles_w(s) - at->tx;
    return len < nt - t ? len : nt - t;
}

/* plane with a border of zeros: row y, column x of the plane at
 * pad[(y + 1) * pw + x + 1], for y < 2 * tiles_h + 1, x < 2 * tiles_w + 1.
 * A tile's window is then always inside, with no bounds to check. */
static int padded_w(const tb_conv2d_shape *s) { return 2 * tiles_w(s) + 2; }
static size_t padded_floats(const tb_conv2d_shape *s) { return (size_t)(2 * tiles_h(s) + 2) * padded_w(s); }

static void pad_plane(float *pad, const float *plane, const tb_conv2d_shape *s, int h, int w)
{
    const int pw = padded_w(s), ph = 2 * tiles_h(s) + 2;
    memset(pad, 0, sizeof(float) * pw);
    for (int y = 0; y < h; y++) {
        float *row = pad + (size_t)(y + 1) * pw;
        row[0] = 0.0f;
        memcpy(row + 1, plane + (size_t)y * w, sizeof(float) * w);
        for (int x = w + 1; x < pw; x++) row[x] = 0.0f;
    }
    memset(pad + (size_t)(h + 1) * pw, 0, sizeof(float) * pw * (ph - h - 1));
}

/* Channel c's plane of image i (of p's planes at base) into pad, unless it
 * is the one there already (*padded: the image pad holds, -1 for none). */
static void pad_image(float *pad, int *padded, const float *base, int c, int i, planes p, const tb_conv2d_shape *s)
{
    if (*padded == i) return;
    pad_plane(pad, base + (size_t)c * p.channel_stride + (size_t)i * p.h * p.w, s, p.h, p.w);
    *padded = i;
}

/* v [16][rows][nt] (row r at v + r * nt) from the 4x4 windows, padding 1, of
 * tiles [g0, g0 + nt) of each of the rows channels of src. */
static void input_transform(float *v, const float *src, planes p, int rows, const tb_conv2d_shape *s, size_t g0,
                            size_t nt, float *pad)
{
    const size_t ld = (size_t)rows * nt;
    const int pw = padded_w(s);
    for (int c = 0; c < rows; c++) {
        float *vc = v + (size_t)c * nt;
        int padded = -1;
        for (size_t t = 0, len; t < nt; t += len) {
            tile_at at;
            len = run_at(s, g0, t, nt, &at);
            pad_image(pad, &padded, src, c, at.i, p, s);
            /* window rows 2ty-1 .. 2ty+2 of the plane are rows 2ty .. 2ty+3 of pad */
            const float *restrict r0 = pad + (size_t)(2 * at.ty) * pw + 2 * at.tx;
            const float *restrict r1 = r0 + pw, *restrict r2 = r1 + pw, *restrict r3 = r2 + pw;
            float *restrict o = vc + t;
#pragma omp simd
            for (size_t j = 0; j < len; j++) {
                const size_t x = 2 * j;
                float b[4][4]; /* B^T d, by columns q */
                for (int q = 0; q < 4; q++) {
                    b[0][q] = r0[x + q] - r2[x + q];
                    b[1][q] = r1[x + q] + r2[x + q];
                    b[2][q] = r2[x + q] - r1[x + q];
                    b[3][q] = r1[x + q] - r3[x + q];
                }
                for (int i = 0; i < 4; i++) {
                    o[(4 * i + 0) * ld + j] = b[i][0] - b[i][2];
                    o[(4 * i + 1) * ld + j] = b[i][1] + b[i][2];
                    o[(4 * i + 2) * ld + j] = b[i][2] - b[i][1];
                    o[(4 * i + 3) * ld + j] = b[i][1] - b[i][3];
                }
            }
        }
    }
}

/* z [16][rows][nt] = A y A^T of each tile's 2x2 block of dout (outputs past
 * the edge, computed by a tile but not part of the output, count as 0). */
static void gradient_transform(float *z, const float *dout, planes p, int rows, const tb_conv2d_shape *s, size_t g0,
                               size_t nt, float *pad)
{
    const size_t ld = (size_t)rows * nt;
    const int pw = padded_w(s);
    for (int k = 0; k < rows; k++) {
        float *zk = z + (size_t)k * nt;
        int padded = -1;
        for (size_t t = 0, len; t < nt; t += len) {
            tile_at at;
            len = run_at(s, g0, t, nt, &at);
            pad_image(pad, &padded, dout, k, at.i, p, s);
            const float *restrict y0 = pad + (size_t)(2 * at.ty + 1) * pw + 1 + 2 * at.tx, *restrict y1 = y0 + pw;
            float *restrict o = zk + t;
#pragma omp simd
            for (size_t j = 0; j < len; j++) {
                const size_t x = 2 * j;
                const float a[4][2] = {{y0[x], y0[x + 1]},
                                       {y0[x] + y1[x], y0[x + 1] + y1[x + 1]},
                                       {y0[x] - y1[x], y0[x + 1] - y1[x + 1]},
                                       {-y1[x], -y1[x + 1]}}; /* A y */
                for (int i = 0; i < 4; i++) {
                    o[(4 * i + 0) * ld + j] = a[i][0];
                    o[(4 * i + 1) * ld + j] = a[i][0] + a[i][1];
                    o[(4 * i + 2) * ld + j] = a[i][0] - a[i][1];
                    o[(4 * i + 3) * ld + j] = -a[i][1];
                }
            }
        }
    }
}

/* The 2x2 outputs A^T m A of each tile, from m [16][rows][nt], into the rows
 * channels of dst: bias added (may be NULL) and written (through a ReLU
 * with relu), or added to what is there (accumulate). A run's two output
 * rows go through line [2][2 * len] first, then the columns inside the plane
 * to dst. */
static void output_transform(float *dst, const float *m, planes p, int rows, const tb_conv2d_shape *s, size_t g0,
                             size_t nt, const float *bias, int accumulate, int relu, float *line)
{
    const size_t ld = (size_t)rows * nt, hw = (size_t)p.h * p.w, lw = 2 * (size_t)tiles_w(s);
    for (int k = 0; k < rows; k++) {
        const float *mk = m + (size_t)k * nt;
        const float b = bias ? bias[k] : 0.0f;
        for (size_t t = 0, len; t < nt; t += len) {
            tile_at at;
            len = run_at(s, g0, t, nt, &at);
            const float *restrict a = mk + t;
            float *restrict l = line;
#pragma omp simd
            for (size_t j = 0; j < len; j++) {
                float r[2][4]; /* A^T m */
                for (int q = 0; q < 4; q++) {
                    r[0][q] = a[q * ld + j] + a[(4 + q) * ld + j] + a[(8 + q) * ld + j];
                    r[1][q] = a[(4 + q) * ld + j] - a[(8 + q) * ld + j] - a[(12 + q) * ld + j];
                }
                for (int i = 0; i < 2; i++) {
                    l[i * lw + 2 * j] = r[i][0] + r[i][1] + r[i][2];
                    l[i * lw + 2 * j + 1] = r[i][1] - r[i][2] - r[i][3];
                }
            }
            float *plane = dst + (size_t)k * p.channel_stride + (size_t)at.i * hw;
            const int x0 = 2 * at.tx, x1 = x0 + 2 * (int)len < p.w ? x0 + 2 * (int)len : p.w;
            for (int i = 0; i < 2 && 2 * at.ty + i < p.h; i++) {
                float *out = plane + (size_t)(2 * at.ty + i) * p.w;
                const float *src = line + i * lw - x0;
                if (accumulate)
                    for (int x = x0; x < x1; x++) out[x] += src[x];
                else if (relu)
                    for (int x = x0; x < x1; x++) out[x] = tb_relu_value(src[x] + b);
                else
                    for (int x = x0; x < x1; x++) out[x] = src[x] + b;
            }
        }
    }
}

/* m[xi] [rows_a][nt] = u[xi] [rows_a][inner] x v[xi] [inner][nt], xi = 0..15. */
static void batched_products(float *m, const float *u, const float *v, int rows_a, int inner, size_t nt)
{
    for (int xi = 0; xi < XI; xi++)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows_a, (int)nt, inner, 1.0f,
                    u + (size_t)xi * rows_a * inner, inner, v + (size_t)xi * inner * nt, (int)nt, 0.0f,
                    m + (size_t)xi * rows_a * nt, (int)nt);
}

void winograd_forward_images(float *out, const float *in, const float *u, const float *bias,
                             const tb_conv2d_shape *s, int n, int i0, int i1, float *tws)
{
    const int C = s->in_c, K = s->out_c;
    const size_t tt = (size_t)tiles_h(s) * tiles_w(s), chunk = chunk_tiles(s, n);
    const planes pin = {(size_t)n * s->in_h * s->in_w, s->in_h, s->in_w};
    const planes pout = {(size_t)n * s->out_h * s->out_w, s->out_h, s->out_w};
    float *v = tws, *m = tws + chunk * XI * C, *pad = m + chunk * XI * K + (size_t)XI * K * C;
    for (size_t g0 = i0 * tt, end = i1 * tt; g0 < end; g0 += chunk) {
        const size_t nt = end - g0 < chunk ? end - g0 : chunk;
        input_transform(v, in, pin, C, s, g0, nt, pad);
        batched_products(m, u, v, K, C, nt);
        output_transform(out, m, pout, K, s, g0, nt, bias, 0, s->relu, pad);
    }
}

/* The thread's weight gradient in the transformed domain, [16][K][C]. */
static float *thread_du(const tb_conv2d_shape *s, int n, float *tws)
{
    return tws + chunk_tiles(s, n) * XI * (s->in_c + s->out_c);
}

void winograd_backward_images(float *din, float beta_du, const float *dout, const float *in,
                              const float *u_rotated, const tb_conv2d_shape *s, int n, int i0, int i1,
                              int accumulate_din, float *tws)
{
    const int C = s->in_c, K = s->out_c;
    const size_t tt = (size_t)tiles_h(s) * tiles_w(s), chunk = chunk_tiles(s, n), KC = (size_t)K * C;
    const planes pin = {(size_t)n * s->in_h * s->in_w, s->in_h, s->in_w};
    const planes pout = {(size_t)n * s->out_h * s->out_w, s->out_h, s->out_w};
    float *v = tws, *z = tws + chunk * XI * C, *du = z + chunk * XI * K, *pad = du + XI * KC;
    float beta = beta_du;
    if (i0 >= i1 && beta == 0.0f) memset(du, 0, sizeof(float) * XI * KC); /* no images: a zero gradient */
    for (size_t g0 = i0 * tt, end = i1 * tt; g0 < end; g0 += chunk, beta = 1.0f) {
        const size_t nt = end - g0 < chunk ? end - g0 : chunk;
        /* dU[xi] [K][C] (+)= Z[xi] [K][nt] x V[xi]^T [nt][C], chunks in order */
        input_transform(v, in, pin, C, s, g0, nt, pad);
        gradient_transform(z, dout, pout, K, s, g0, nt, pad);
        for (int xi = 0; xi < XI; xi++)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, K, C, (int)nt, 1.0f, z + (size_t)xi * K * nt,
                        (int)nt, v + (size_t)xi * C * nt, (int)nt, beta, du + (size_t)xi * KC, C);
        if (!din) continue;
        /* din: the forward of dout with the turned filters, z and v reused */
        input_transform(z, dout, pout, K, s, g0, nt, pad);
        batched_products(v, u_rotated, z, C, K, nt);
        output_transform(din, v, pin, C, s, g0, nt, NULL, accumulate_din, 0, pad);
    }
}

void winograd_weight_gradient(float *dw, float beta_w, const tb_conv2d_shape *s, int n, float *tws)
{
    const size_t KC = (size_t)s->out_c * s->in_c;
    const float *du = thread_du(s, n, tws);
    /* dw (= or +=) G^T dU G per filter */
    for (size_t f = 0; f < KC; f++) {
        float a[4][4], t[3][4];
        for (int xi = 0; xi < XI; xi++) a[xi / 4][xi % 4] = du[(size_t)xi * KC + f];
        for (int j = 0; j < 4; j++) {
            t[0][j] = a[0][j] + 0.5f * (a[1][j] + a[2][j]);
            t[1][j] = 0.5f * (a[1][j] - a[2][j]);
            t[2][j] = 0.5f * (a[1][j] + a[2][j]) + a[3][j];
        }
        float *g = dw + f * 9;
        for (int i = 0; i < 3; i++) {
            const float r[3] = {t[i][0] + 0.5f * (t[i][1] + t[i][2]), 0.5f * (t[i][1] - t[i][2]),
                                0.5f * (t[i][1] + t[i][2]) + t[i][3]};
            for (int j = 0; j < 3; j++) g[3 * i + j] = beta_w != 0.0f ? g[3 * i + j] + r[j] : r[j];
        }
    }
}
