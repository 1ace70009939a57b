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
 * The tiles of a thread's images go in chunks, so its buffers stay 2-8 MiB
 * whatever the plane size, numbered one of two ways (chunk_images decides,
 * from the shape and the batch):
 *   by rows:   image, tile row, tile column; a chunk is a range of that order
 *              (chunk_tiles), walked as runs along tile rows, which the
 *              transforms vectorise. For wide planes and one image at a time
 *              (the NCHW layout at 224 px).
 *   by images: tile row, tile column, image; a chunk is all tiles of a group
 *              of images (chunk_images), and the transforms vectorise across
 *              the images, through a copy of each channel with the images
 *              side by side. For the narrow planes of batch-minor activations
 *              (SqueezeNet at 64 px: 14x14, 7x7), whose tile rows are too short
 *              for the vector unit.
 * Every sum has a fixed order: the same bits for the same thread count. */
#include <cblas.h>
#include <string.h>

#include "activation_rules.h"
#include "conv2d_winograd.h"

/* Floats of one thread's two chunk buffers together, [16][C][T] + [16][K][T],
 * by rows; by images up to 4 times that (chunk_images). */
#define WINOGRAD_CHUNK_FLOATS ((size_t)1 << 19)
#define XI 16 /* positions of a 4x4 transformed tile */
#define WINOGRAD_MIN_PLANE 3
#define WINOGRAD_MIN_CHANNELS 16
/* By images: images per vector, and planes up to this many tiles wide */
#define WINOGRAD_IMAGE_VECTOR 16
#define WINOGRAD_IMAGES_MAX_TILES_W 8

static int winograd_fits(const tb_conv2d_shape *s)
{
    return s->kh == 3 && s->kw == 3 && s->stride_h == 1 && s->stride_w == 1 && s->pad_h == 1 && s->pad_w == 1 &&
           s->groups == 1;
}

/* Whether the path is taken. Its gemms are smaller than im2col's (the
 * forward's inner dimension is the input channels, not 9x that), and tiles
 * over the edge of an odd plane compute outputs that are thrown away (a 3x3
 * plane: 16 computed for 9). Measured on SqueezeNet's shapes at 64 and 224
 * px and the quickstart CNN's (build/bench_conv_algorithms,
 * docs/performance.md), both directions pay alike, from 3x3 planes up (1.15-1.6x
 * im2col), but not with fewer than 16 input channels (a first layer with 1
 * to 8 channels makes its gemms rank-1 to rank-8 products: 0.2x im2col with
 * 1, 0.87x with 8). Smaller planes are not measured; on a 1x1 plane a tile
 * does 16 multiplies for 9. A fixed rule of the shape, never a timing: the
 * same network always takes the same path, so its results are the same
 * bits. */
int winograd_applies(const tb_conv2d_shape *s)
{
    if (!winograd_fits(s) || s->algorithm == TB_CONV_IM2COL) return 0;
    if (s->algorithm == TB_CONV_WINOGRAD) return 1;
    return s->out_h >= WINOGRAD_MIN_PLANE && s->out_w >= WINOGRAD_MIN_PLANE && s->in_c >= WINOGRAD_MIN_CHANNELS;
}

static int tiles_h(const tb_conv2d_shape *s) { return (s->out_h + 1) / 2; }
static int tiles_w(const tb_conv2d_shape *s) { return (s->out_w + 1) / 2; }

static size_t plane_tiles(const tb_conv2d_shape *s) { return (size_t)tiles_h(s) * tiles_w(s); }

/* Tiles whose two buffers fit WINOGRAD_CHUNK_FLOATS, at least 64 columns
 * for the gemms. */
static size_t budget_tiles(const tb_conv2d_shape *s)
{
    const size_t per_tile = (size_t)XI * (s->in_c + s->out_c), t = WINOGRAD_CHUNK_FLOATS / per_tile;
    return t < 64 ? 64 : t;
}

/* By rows: tiles per chunk, the budget but never more than a batch needs. */
static size_t chunk_tiles(const tb_conv2d_shape *s, int n)
{
    const size_t t = budget_tiles(s), all = (size_t)n * plane_tiles(s);
    return t < all ? t : all;
}

/* By images: images per chunk, or 0 where the tiles go by rows. A batch
 * (batch-minor activations, n > 1) of planes up to 16 wide: as many whole
 * planes as the budget holds, in multiples of a vector and at least one
 * vector, unless that is over 4 budgets (then by rows); never more images
 * than the batch has. Which way is decided by the shape alone, so the
 * scratch a batch needs (winograd_thread_floats) never shrinks as the batch
 * grows: a workspace sized for the largest batch holds every smaller one.
 * A fixed rule of the shape and the batch, so the same network always sums
 * in the same order. */
static int chunk_images(const tb_conv2d_shape *s, int n)
{
    if (n < 2 || tiles_w(s) > WINOGRAD_IMAGES_MAX_TILES_W) return 0;
    const size_t tt = plane_tiles(s), budget = budget_tiles(s), fit = budget / tt;
    const size_t k = fit < WINOGRAD_IMAGE_VECTOR ? WINOGRAD_IMAGE_VECTOR : fit / WINOGRAD_IMAGE_VECTOR * WINOGRAD_IMAGE_VECTOR;
    if (k * tt > 4 * budget) return 0;
    return k < (size_t)n ? (int)k : n;
}

/* Tiles the chunk buffers hold, either way. */
static size_t chunk_capacity(const tb_conv2d_shape *s, int n)
{
    const int k = chunk_images(s, n);
    return k ? (size_t)k * plane_tiles(s) : chunk_tiles(s, n);
}

/* Floats from one of a chunk buffer's 16 slabs [rows][nt] to the next: a
 * little more than rows * nt, so that the 16 streams a transform reads or
 * writes at once are never a power of two apart, which puts them all in the
 * same cache sets (with 16 images of 7x7 planes and 256 channels they were
 * 256 KiB apart, and the transforms ran at a third of their speed). */
#define SLAB_SKEW 16
static size_t slab(int rows, size_t nt) { return (size_t)rows * nt + SLAB_SKEW; }

size_t winograd_shared_floats(const tb_conv2d_shape *s) { return (size_t)XI * s->in_c * s->out_c; }

static int padded_w(const tb_conv2d_shape *s);
static size_t padded_floats(const tb_conv2d_shape *s);
static size_t runs_floats(size_t nt);

/* Floats of the scratch after dU: by rows, the chunk's run list, a padded
 * plane and output_transform's [4][chunk]; by images, the channel's padded
 * planes side by side, [4][chunk] and a table of the plane's outputs. */
static size_t scratch_floats(const tb_conv2d_shape *s, int n)
{
    const size_t cap = chunk_capacity(s, n), k = (size_t)chunk_images(s, n);
    return runs_floats(cap) + padded_floats(s) * (k ? k : 1) + 4 * cap + (size_t)s->out_h * s->out_w;
}

/* The chunk's two buffers, the weight gradient dU and the scratch. */
size_t winograd_thread_floats(const tb_conv2d_shape *s, int n)
{
    const size_t cap = chunk_capacity(s, n);
    return XI * (slab(s->in_c, cap) + slab(s->out_c, cap)) + (size_t)XI * s->in_c * s->out_c + scratch_floats(s, n);
}

/* ---- the transforms (F(2x2, 3x3): B^T, G and A^T of Lavin & Gray) ---- */

/* U = G g G^T of the 3x3 filter with element G3(row, column); result xi to
 * PUT(xi, value). A macro for the reason given at INPUT_TILE below: the
 * callers' loops over filters vectorise. */
#define FILTER_TILE(G3, PUT)                                                                                      \
    do {                                                                                                          \
        float t_[4][3];                                                                                           \
        for (int j_ = 0; j_ < 3; j_++) {                                                                          \
            t_[0][j_] = G3(0, j_);                                                                                \
            t_[1][j_] = 0.5f * (G3(0, j_) + G3(1, j_) + G3(2, j_));                                               \
            t_[2][j_] = 0.5f * (G3(0, j_) - G3(1, j_) + G3(2, j_));                                               \
            t_[3][j_] = G3(2, j_);                                                                                \
        }                                                                                                         \
        for (int i_ = 0; i_ < 4; i_++) {                                                                          \
            PUT(4 * i_ + 0, t_[i_][0]);                                                                           \
            PUT(4 * i_ + 1, 0.5f * (t_[i_][0] + t_[i_][1] + t_[i_][2]));                                          \
            PUT(4 * i_ + 2, 0.5f * (t_[i_][0] - t_[i_][1] + t_[i_][2]));                                          \
            PUT(4 * i_ + 3, t_[i_][2]);                                                                           \
        }                                                                                                         \
    } while (0)

void winograd_filters(float *u, const float *weight, const tb_conv2d_shape *s, int rotated)
{
    const int K = s->out_c, C = s->in_c;
    const size_t KC = (size_t)K * C;
    /* 9, but as the shape's: a stride the compiler does not know makes the
     * loops over filters gathers, where 9 made them not vectorise at all */
    const size_t taps = (size_t)s->kh * s->kw;
    if (!rotated) {
        /* [16][K][C]: a row of filters k at a time, across c */
        for (int k = 0; k < K; k++) {
            const float *restrict g = weight + (size_t)k * C * taps;
            float *restrict uk = u + (size_t)k * C;
#pragma omp simd
            for (int c = 0; c < C; c++) {
#define G3(r, q) g[(size_t)c * taps + 3 * (r) + (q)]
#define PUT(xi, value) uk[(xi) * KC + c] = (value)
                FILTER_TILE(G3, PUT);
#undef G3
#undef PUT
            }
        }
        return;
    }
    /* [16][C][K] of the filters turned by 180 degrees, the input gradient's:
     * a row c at a time, across k */
    for (int c = 0; c < C; c++) {
        const float *restrict g = weight + (size_t)c * taps;
        float *restrict uc = u + (size_t)c * K;
#pragma omp simd
        for (int k = 0; k < K; k++) {
#define G3(r, q) g[(size_t)k * C * taps + 8 - 3 * (r) - (q)]
#define PUT(xi, value) uc[(xi) * KC + k] = (value)
            FILTER_TILE(G3, PUT);
#undef G3
#undef PUT
        }
    }
}

/* The planes a chunk reads and writes: channel c of image i at
 * base + c * channel_stride + i * h * w. */
typedef struct planes {
    size_t channel_stride;
    int h, w;
} planes;

/* Tiles [g0, g0 + nt) of a chunk go by runs along one tile row: a run
 * starts at tile g0 + t, is len tiles long and lies in image i, tile row ty,
 * from tile column tx. Listed once per chunk (chunk_runs) for every
 * channel's transforms, rather than found anew (two divisions) for each. */
typedef struct tile_run {
    int t, len, i, ty, tx;
} tile_run;

/* Floats a chunk's run list takes (at most one run per tile). */
static size_t runs_floats(size_t nt) { return nt * (sizeof(tile_run) / sizeof(float)); }

static int chunk_runs(tile_run *runs, const tb_conv2d_shape *s, size_t g0, size_t nt)
{
    const size_t tw = (size_t)tiles_w(s), tt = tw * tiles_h(s);
    int count = 0;
    for (size_t t = 0; t < nt; count++) {
        const size_t g = g0 + t, tx = g % tw, len = tw - tx < nt - t ? tw - tx : nt - t;
        runs[count] = (tile_run){(int)t, (int)len, (int)(g / tt), (int)(g % tt / tw), (int)tx};
        t += len;
    }
    return count;
}

/* plane with a border of zeros: row y, column x of the plane at
 * pad[(y + 1) * pw + x + 1], for y < 2 * tiles_h + 1, x < 2 * tiles_w + 1.
 * A tile's window is then always inside, with no bounds to check. */
static int padded_w(const tb_conv2d_shape *s) { return 2 * tiles_w(s) + 2; }
static size_t padded_floats(const tb_conv2d_shape *s) { return (size_t)(2 * tiles_h(s) + 2) * padded_w(s); }

/* The pad's border (and, for an odd plane, the overhang of the last tiles)
 * is zero and never written by pad_image, so a transform zeroes its pad
 * once and then copies only the planes' insides. */
static void zero_pad(float *pad, const tb_conv2d_shape *s) { memset(pad, 0, sizeof(float) * padded_floats(s)); }

/* Channel c's plane of image i (of p's planes at base) into pad's inside,
 * unless it is the one there already (*padded: the image pad holds, -1 for
 * none). */
static void pad_image(float *pad, int *padded, const float *base, int c, int i, planes p, const tb_conv2d_shape *s)
{
    if (*padded == i) return;
    const float *plane = base + (size_t)c * p.channel_stride + (size_t)i * p.h * p.w;
    const int pw = padded_w(s);
    for (int y = 0; y < p.h; y++) {
        float *restrict row = pad + (size_t)(y + 1) * pw + 1;
        const float *restrict from = plane + (size_t)y * p.w;
        for (int x = 0; x < p.w; x++) row[x] = from[x];
    }
    *padded = i;
}

/* ---- one tile's transforms, shared by both tilings ----
 * Macros over the callers' own loads and stores, written out inside their
 * omp simd loops: gcc vectorises these loops only while every value stays a
 * scalar of the loop body (an array or struct handed to a function, even an
 * inlined one, keeps it from vectorising them at all). */

/* B^T d B of the 4x4 window with element D(row, column); result xi goes to
 * PUT(xi, value). */
#define INPUT_TILE(D, PUT)                                                                                        \
    do {                                                                                                          \
        float b_[4][4]; /* B^T d, by columns */                                                                   \
        for (int q_ = 0; q_ < 4; q_++) {                                                                          \
            b_[0][q_] = D(0, q_) - D(2, q_);                                                                      \
            b_[1][q_] = D(1, q_) + D(2, q_);                                                                      \
            b_[2][q_] = D(2, q_) - D(1, q_);                                                                      \
            b_[3][q_] = D(1, q_) - D(3, q_);                                                                      \
        }                                                                                                         \
        for (int i_ = 0; i_ < 4; i_++) {                                                                          \
            PUT(4 * i_ + 0, b_[i_][0] - b_[i_][2]);                                                               \
            PUT(4 * i_ + 1, b_[i_][1] + b_[i_][2]);                                                               \
            PUT(4 * i_ + 2, b_[i_][2] - b_[i_][1]);                                                               \
            PUT(4 * i_ + 3, b_[i_][1] - b_[i_][3]);                                                               \
        }                                                                                                         \
    } while (0)

/* A y A^T of the 2x2 block of the output gradient with element Y(row, column);
 * result xi to PUT(xi, value). */
#define GRADIENT_TILE(Y, PUT)                                                                                     \
    do {                                                                                                          \
        const float a_[4][2] = {{Y(0, 0), Y(0, 1)},                                                               \
                                {Y(0, 0) + Y(1, 0), Y(0, 1) + Y(1, 1)},                                           \
                                {Y(0, 0) - Y(1, 0), Y(0, 1) - Y(1, 1)},                                           \
                                {-Y(1, 0), -Y(1, 1)}}; /* A y */                                                  \
        for (int i_ = 0; i_ < 4; i_++) {                                                                          \
            PUT(4 * i_ + 0, a_[i_][0]);                                                                           \
            PUT(4 * i_ + 1, a_[i_][0] + a_[i_][1]);                                                               \
            PUT(4 * i_ + 2, a_[i_][0] - a_[i_][1]);                                                               \
            PUT(4 * i_ + 3, -a_[i_][1]);                                                                          \
        }                                                                                                         \
    } while (0)

/* A^T m A, the 2x2 outputs of the 16 products M(xi); output (row, column) to
 * PUT(row, column, value). */
#define OUTPUT_TILE(M, PUT)                                                                                       \
    do {                                                                                                          \
        float r_[2][4]; /* A^T m */                                                                               \
        for (int q_ = 0; q_ < 4; q_++) {                                                                          \
            r_[0][q_] = M(q_) + M(4 + q_) + M(8 + q_);                                                            \
            r_[1][q_] = M(4 + q_) - M(8 + q_) - M(12 + q_);                                                       \
        }                                                                                                         \
        for (int i_ = 0; i_ < 2; i_++) {                                                                          \
            PUT(i_, 0, r_[i_][0] + r_[i_][1] + r_[i_][2]);                                                        \
            PUT(i_, 1, r_[i_][1] - r_[i_][2] - r_[i_][3]);                                                        \
        }                                                                                                         \
    } while (0)

/* Writes y to *out: plus bias (through a ReLU with relu), or added to it. */
static inline void put_output(float *out, float y, float bias, int accumulate, int relu)
{
    if (accumulate)
        *out += y;
    else
        *out = relu ? tb_relu_value(y + bias) : y + bias;
}

/* ---- by rows ---- */

/* One of the two transforms that read planes, into t [16][rows][nt] (row r
 * at t + r * nt), for the chunk's tiles of each of the rows channels of src:
 *   input:    B^T d B of each tile's 4x4 window, padding 1;
 *   gradient: A y A^T of each tile's 2x2 block of dout (outputs past the
 *             edge, computed by a tile but not part of the output, count
 *             as 0). */
typedef enum { INPUT, GRADIENT } plane_transform;

/* By rows: each run of tiles along a tile row of each channel's padded plane. */
static void rows_transform(float *t, plane_transform kind, const float *src, planes p, int rows,
                           const tb_conv2d_shape *s, const tile_run *runs, int nruns, size_t nt, float *pad)
{
    const size_t ld = slab(rows, nt);
    const int pw = padded_w(s);
    zero_pad(pad, s);
    for (int c = 0; c < rows; c++) {
        float *tc = t + (size_t)c * nt;
        int padded = -1;
        for (const tile_run *run = runs; run < runs + nruns; run++) {
            pad_image(pad, &padded, src, c, run->i, p, s);
            /* window rows 2ty-1 .. 2ty+2 of the plane are rows 2ty .. 2ty+3 of
             * pad; a block's, rows 2ty+1 .. 2ty+2 from column 2tx+1 */
            const float *restrict r0 = pad + (size_t)(2 * run->ty) * pw + 2 * run->tx;
            float *restrict o = tc + run->t;
            const int len = run->len;
#define PUT(xi, value) o[(xi) * ld + j] = (value)
#define WINDOW(r, q) r0[(size_t)(r) * pw + 2 * j + (q)]
#define BLOCK(r, q) WINDOW((r) + 1, (q) + 1)
            if (kind == INPUT) {
#pragma omp simd
                for (int j = 0; j < len; j++) INPUT_TILE(WINDOW, PUT);
            } else {
#pragma omp simd
                for (int j = 0; j < len; j++) GRADIENT_TILE(BLOCK, PUT);
            }
#undef BLOCK
#undef WINDOW
#undef PUT
        }
    }
}

/* y [4][nt] = the 2x2 outputs A^T m A of each of nt tiles (output (0,0),
 * (0,1), (1,0), (1,1)), from one channel's products a[xi * ld + j]: one pass
 * over all tiles, which vectorises whatever the plane's width. */
static void output_tiles(float *restrict y, const float *restrict a, size_t ld, size_t nt)
{
#pragma omp simd
    for (size_t j = 0; j < nt; j++) {
#define PRODUCT(xi) a[(xi) * ld + j]
#define PUT(r, q, value) y[(2 * (r) + (q)) * nt + j] = (value)
        OUTPUT_TILE(PRODUCT, PUT);
#undef PRODUCT
#undef PUT
    }
}

/* The 2x2 outputs A^T m A of each tile, from m [16][rows][nt], into the rows
 * channels of dst: bias added (may be NULL) and written (through a ReLU
 * with relu), or added to what is there (accumulate). A channel's tiles go
 * through output_tiles into y, then each run of tiles to its two output
 * rows, columns past the plane dropped. */
static void rows_output_transform(float *dst, const float *m, planes p, int rows, const tile_run *runs, int nruns,
                                  size_t nt, const float *bias, int accumulate, int relu, float *y)
{
    const size_t ld = slab(rows, nt), hw = (size_t)p.h * p.w;
    for (int k = 0; k < rows; k++) {
        const float b = bias ? bias[k] : 0.0f;
        output_tiles(y, m + (size_t)k * nt, ld, nt);
        for (const tile_run *run = runs; run < runs + nruns; run++) {
            float *plane = dst + (size_t)k * p.channel_stride + (size_t)run->i * hw;
            /* the run's outputs: columns 2 tx .. x_end of the plane (an odd width ends on a half tile) */
            const int x0 = 2 * run->tx, x_end = x0 + 2 * run->len < p.w ? x0 + 2 * run->len : p.w;
            for (int i = 0; i < 2 && 2 * run->ty + i < p.h; i++) {
                float *out = plane + (size_t)(2 * run->ty + i) * p.w;
                const float *left = y + 2 * i * nt + run->t - run->tx, *right = left + nt;
                for (int x = x0; x < x_end; x++) put_output(out + x, (x & 1 ? right : left)[x / 2], b, accumulate, relu);
            }
        }
    }
}

/* ---- by images ---- */

/* Channel c of images [ia, ia + nb) of src into the inside of side, the
 * padded planes with the images side by side and each row's even and odd
 * columns apart: column x of row y of the padded plane (x, y from 0 at the
 * border) of image i at side[((2 y + x % 2) * pw / 2 + x / 2) * nb + i].
 * So the windows of a whole tile row, all images, are one stride-1 run for
 * every window element. The border is zero (zeroed by the caller once per
 * call; never written here). */
static size_t side_at(int y, int x, int pw, int nb) { return ((size_t)(2 * y + x % 2) * (pw / 2) + x / 2) * nb; }

static void side_by_side(float *side, const float *src, planes p, int c, int ia, int nb, const tb_conv2d_shape *s)
{
    const int pw = padded_w(s);
    const size_t hw = (size_t)p.h * p.w;
    const float *images = src + (size_t)c * p.channel_stride + (size_t)ia * hw;
    for (int y = 0; y < p.h; y++)
        for (int x = 0; x < p.w; x++) {
            /* the pixel of every image: a gather, stride hw, into consecutive floats */
            const float *restrict from = images + (size_t)y * p.w + x;
            float *restrict to = side + side_at(y + 1, x + 1, pw, nb);
#pragma omp simd
            for (int i = 0; i < nb; i++) to[i] = from[(size_t)i * hw];
        }
}

/* By images: t [16][rows][nt] of the tiles of images [ia, ia + nb), nt =
 * tiles * nb, tile (ty, tx) of image ia + i at column (ty * tiles_w + tx) *
 * nb + i; a whole tile row of all the images at a time. */
static void images_transform(float *t, plane_transform kind, const float *src, planes p, int rows,
                             const tb_conv2d_shape *s, int ia, int nb, float *side)
{
    const int tw = tiles_w(s), th = tiles_h(s), pw = padded_w(s), run = tw * nb;
    const size_t nt = plane_tiles(s) * nb, ld = slab(rows, nt);
    memset(side, 0, sizeof(float) * padded_floats(s) * nb);
    for (int c = 0; c < rows; c++) {
        side_by_side(side, src, p, c, ia, nb, s);
        for (int ty = 0; ty < th; ty++) {
            /* element (r, q) of the window of tile (ty, tx), image i, at
             * w[r][q][tx * nb + i]; a block's (r, q) is the window's (r+1, q+1) */
            const float *w[4][4];
            for (int r = 0; r < 4; r++)
                for (int q = 0; q < 4; q++) w[r][q] = side + side_at(2 * ty + r, q, pw, nb);
            float *restrict o = t + (size_t)c * nt + (size_t)ty * run;
#define PUT(xi, value) o[(xi) * ld + j] = (value)
#define WINDOW(r, q) w[r][q][j]
#define BLOCK(r, q) w[(r) + 1][(q) + 1][j]
            if (kind == INPUT) {
#pragma omp simd
                for (int j = 0; j < run; j++) INPUT_TILE(WINDOW, PUT);
            } else {
#pragma omp simd
                for (int j = 0; j < run; j++) GRADIENT_TILE(BLOCK, PUT);
            }
#undef BLOCK
#undef WINDOW
#undef PUT
        }
    }
}

/* The outputs of images [ia, ia + nb) from m [16][rows][nt] (numbered as
 * images_transform) into dst, as rows_output_transform: a channel's tiles
 * through output_tiles into y, then each image's plane from y through at,
 * where output (oy, ox) of image i is y[at[oy * w + ox] + i]. */
static void images_output_transform(float *dst, const float *m, planes p, int rows, const tb_conv2d_shape *s,
                                    int ia, int nb, const float *bias, int accumulate, int relu, float *y, int *at)
{
    const int tw = tiles_w(s);
    const size_t nt = plane_tiles(s) * nb, ld = slab(rows, nt), hw = (size_t)p.h * p.w;
    for (int oy = 0; oy < p.h; oy++)
        for (int ox = 0; ox < p.w; ox++)
            at[oy * p.w + ox] = (int)((size_t)(2 * (oy & 1) + (ox & 1)) * nt + (size_t)((oy / 2) * tw + ox / 2) * nb);
    for (int k = 0; k < rows; k++) {
        const float b = bias ? bias[k] : 0.0f;
        output_tiles(y, m + (size_t)k * nt, ld, nt);
        for (int i = 0; i < nb; i++) {
            float *restrict plane = dst + (size_t)k * p.channel_stride + (size_t)(ia + i) * hw;
            const float *yi = y + i;
            for (size_t q = 0; q < hw; q++) put_output(plane + q, yi[at[q]], b, accumulate, relu);
        }
    }
}

/* m[xi] [rows_a][nt] = u[xi] [rows_a][inner] x v[xi] [inner][nt], xi = 0..15. */
static void batched_products(float *m, const float *u, const float *v, int rows_a, int inner, size_t nt)
{
    for (int xi = 0; xi < XI; xi++)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows_a, (int)nt, inner, 1.0f,
                    u + (size_t)xi * rows_a * inner, inner, v + xi * slab(inner, nt), (int)nt, 0.0f,
                    m + xi * slab(rows_a, nt), (int)nt);
}

/* ---- chunks, either way ---- */

/* A chunk of nt tiles: by images, images [ia, ia + nb); by rows (nb 0),
 * tiles [g0, g0 + nt) as nruns runs. */
typedef struct chunk {
    size_t g0, nt;
    int ia, nb, nruns;
    tile_run *runs;
} chunk;

/* The first chunk of images [i0, i1) (first), or the one after *ch; 0 when
 * there is none. */
static int next_chunk(chunk *ch, const tb_conv2d_shape *s, int n, int i0, int i1, int first)
{
    const size_t tt = plane_tiles(s);
    const int k = chunk_images(s, n);
    if (k) {
        ch->ia = first ? i0 : ch->ia + ch->nb;
        if (ch->ia >= i1) return 0;
        ch->nb = i1 - ch->ia < k ? i1 - ch->ia : k;
        ch->nt = tt * ch->nb;
        return 1;
    }
    const size_t cap = chunk_tiles(s, n), end = (size_t)i1 * tt;
    ch->g0 = first ? (size_t)i0 * tt : ch->g0 + ch->nt;
    if (ch->g0 >= end) return 0;
    ch->nt = end - ch->g0 < cap ? end - ch->g0 : cap;
    ch->nb = 0;
    ch->nruns = chunk_runs(ch->runs, s, ch->g0, ch->nt);
    return 1;
}

/* The thread's scratch (after the chunk buffers and dU): the run list, then
 * the rest (scratch_floats). */
typedef struct scratch {
    tile_run *runs;
    float *planes; /* a padded plane, or the images' side by side */
    float *y;      /* [4][chunk] */
    int *at;       /* by images: where each output is in y */
} scratch;

static scratch scratch_at(float *base, const tb_conv2d_shape *s, int n)
{
    const size_t cap = chunk_capacity(s, n), k = (size_t)chunk_images(s, n);
    scratch sc;
    sc.runs = (tile_run *)base;
    sc.planes = base + runs_floats(cap);
    sc.y = sc.planes + padded_floats(s) * (k ? k : 1);
    sc.at = (int *)(sc.y + 4 * cap);
    return sc;
}

static void transform_planes(float *t, plane_transform kind, const float *src, planes p, int rows,
                             const tb_conv2d_shape *s, const chunk *ch, const scratch *sc)
{
    if (ch->nb)
        images_transform(t, kind, src, p, rows, s, ch->ia, ch->nb, sc->planes);
    else
        rows_transform(t, kind, src, p, rows, s, ch->runs, ch->nruns, ch->nt, sc->planes);
}

static void transform_output(float *dst, const float *m, planes p, int rows, const tb_conv2d_shape *s,
                             const chunk *ch, const scratch *sc, const float *bias, int accumulate, int relu)
{
    if (ch->nb)
        images_output_transform(dst, m, p, rows, s, ch->ia, ch->nb, bias, accumulate, relu, sc->y, sc->at);
    else
        rows_output_transform(dst, m, p, rows, ch->runs, ch->nruns, ch->nt, bias, accumulate, relu, sc->y);
}

void winograd_forward_images(float *out, const float *in, const float *u, const float *bias,
                             const tb_conv2d_shape *s, int n, int i0, int i1, float *tws)
{
    const int C = s->in_c, K = s->out_c;
    const size_t cap = chunk_capacity(s, n);
    const planes pin = {(size_t)n * s->in_h * s->in_w, s->in_h, s->in_w};
    const planes pout = {(size_t)n * s->out_h * s->out_w, s->out_h, s->out_w};
    float *v = tws, *m = tws + XI * slab(C, cap);
    const scratch sc = scratch_at(m + XI * slab(K, cap) + (size_t)XI * K * C, s, n);
    chunk ch = {.runs = sc.runs};
    for (int more = next_chunk(&ch, s, n, i0, i1, 1); more; more = next_chunk(&ch, s, n, i0, i1, 0)) {
        transform_planes(v, INPUT, in, pin, C, s, &ch, &sc);
        batched_products(m, u, v, K, C, ch.nt);
        transform_output(out, m, pout, K, s, &ch, &sc, bias, 0, s->relu);
    }
}

/* The thread's weight gradient in the transformed domain, [16][K][C]. */
static float *thread_du(const tb_conv2d_shape *s, int n, float *tws)
{
    const size_t cap = chunk_capacity(s, n);
    return tws + XI * (slab(s->in_c, cap) + slab(s->out_c, cap));
}

void winograd_backward_images(float *din, float beta_du, const float *dout, const float *in,
                              const float *u_rotated, const tb_conv2d_shape *s, int n, int i0, int i1,
                              int accumulate_din, float *tws)
{
    const int C = s->in_c, K = s->out_c;
    const size_t cap = chunk_capacity(s, n), KC = (size_t)K * C;
    const planes pin = {(size_t)n * s->in_h * s->in_w, s->in_h, s->in_w};
    const planes pout = {(size_t)n * s->out_h * s->out_w, s->out_h, s->out_w};
    float *v = tws, *z = tws + XI * slab(C, cap), *du = thread_du(s, n, tws);
    const scratch sc = scratch_at(du + XI * KC, s, n);
    float beta = beta_du;
    if (i0 >= i1 && beta == 0.0f) memset(du, 0, sizeof(float) * XI * KC); /* no images: a zero gradient */
    chunk ch = {.runs = sc.runs};
    for (int more = next_chunk(&ch, s, n, i0, i1, 1); more; more = next_chunk(&ch, s, n, i0, i1, 0), beta = 1.0f) {
        const int nt = (int)ch.nt;
        /* dU[xi] [K][C] (+)= Z[xi] [K][nt] x V[xi]^T [nt][C], chunks in order */
        transform_planes(v, INPUT, in, pin, C, s, &ch, &sc);
        transform_planes(z, GRADIENT, dout, pout, K, s, &ch, &sc);
        for (int xi = 0; xi < XI; xi++)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, K, C, nt, 1.0f, z + xi * slab(K, ch.nt), nt,
                        v + xi * slab(C, ch.nt), nt, beta, du + (size_t)xi * KC, C);
        if (!din) continue;
        /* din: the forward of dout with the turned filters, z and v reused */
        transform_planes(z, INPUT, dout, pout, K, s, &ch, &sc);
        batched_products(v, u_rotated, z, C, K, ch.nt);
        transform_output(din, v, pin, C, s, &ch, &sc, NULL, accumulate_din, 0);
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
