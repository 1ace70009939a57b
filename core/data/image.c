/* image.c: bilinear resizing of uint8 images, bit for bit as Pillow's
 * Image.resize(size, Image.BILINEAR) (libImaging/Resample.c), which is what
 * torchvision's Resize and RandomResizedCrop do to a PIL image.
 *
 * Pillow's algorithm, reproduced here:
 *   - separable: a horizontal pass into an intermediate uint8 image (only the
 *     rows the vertical pass reads), then a vertical pass; a pass whose size
 *     does not change is skipped;
 *   - per output pixel o of an axis of in -> out samples: scale = in / out,
 *     filterscale = max(scale, 1) (the triangle widens when shrinking: that is
 *     the antialiasing), support = filterscale, centre = (o + 0.5) * scale,
 *     source range [(int)(centre - support + 0.5), (int)(centre + support + 0.5))
 *     clipped to the image, weights tri((x - centre + 0.5) / filterscale)
 *     normalised to sum 1 in double;
 *   - weights to fixed point with 22 fractional bits (rounded half away from
 *     zero), sums started at 2^21 and shifted back, clipped to [0, 255].
 * tests/test_image.c checks the result against Pillow's output. */
#include "image.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define PRECISION_BITS (32 - 8 - 2)
#define ROUND_HALF (1 << (PRECISION_BITS - 1))

/* Up to this many bytes of working memory live on the stack, so the common
 * sizes (up to about 224 x 224 per plane) never allocate. */
#define STACK_WORKSPACE 65536

static double triangle(double x)
{
    if (x < 0.0) x = -x;
    return x < 1.0 ? 1.0 - x : 0.0;
}

/* The geometry of one axis, in Pillow's double arithmetic. */
typedef struct axis {
    int in, out;
    double scale, filterscale, support;
    int ksize; /* coefficients stored per output sample */
} axis;

static axis axis_make(int in, int out)
{
    axis a;
    a.in = in;
    a.out = out;
    a.scale = (double)in / (double)out;
    a.filterscale = a.scale < 1.0 ? 1.0 : a.scale;
    a.support = 1.0 * a.filterscale; /* the bilinear filter's support is 1 */
    a.ksize = (int)ceil(a.support) * 2 + 1;
    return a;
}

/* Source range of output sample o: first index *xmin, *count samples. */
static void axis_range(const axis *a, int o, double *center, int *xmin, int *count)
{
    double c = ((double)o + 0.5) * a->scale;
    int lo = (int)(c - a->support + 0.5);
    if (lo < 0) lo = 0;
    int hi = (int)(c + a->support + 0.5);
    if (hi > a->in) hi = a->in;
    *center = c;
    *xmin = lo;
    *count = hi - lo;
}

/* Fixed-point weights of output sample o into k[0..count) (count <= ksize). */
static void axis_weights(const axis *a, int o, int *xmin, int *count, int32_t *k)
{
    double center;
    axis_range(a, o, &center, xmin, count);
    const double ss = 1.0 / a->filterscale;
    double ww = 0.0;
    for (int x = 0; x < *count; x++) ww += triangle(((double)(x + *xmin) - center + 0.5) * ss);
    for (int x = 0; x < *count; x++) {
        double w = triangle(((double)(x + *xmin) - center + 0.5) * ss);
        if (ww != 0.0) w /= ww;
        double f = w * (double)(1 << PRECISION_BITS);
        k[x] = (int32_t)(w < 0.0 ? -0.5 + f : 0.5 + f);
    }
}

static inline uint8_t clip8(int32_t v)
{
    v >>= PRECISION_BITS;
    return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
}

/* Without working memory (when an allocation fails): the same sums, with the
 * weights recomputed for every output pixel. Slow but identical. */
static void resize_direct(uint8_t *dst, const uint8_t *src, const axis *ax, const axis *ay, int hpass, int vpass)
{
    int32_t kh[64], kv[64];
    for (int yy = 0; yy < ay->out; yy++) {
        int ymin = yy, ycount = 1;
        if (vpass) {
            if (ay->ksize > 64) { /* only reachable for enormous shrink factors: fall back to nearest */
                double c;
                axis_range(ay, yy, &c, &ymin, &ycount);
                ymin += ycount / 2;
                ycount = 1;
                kv[0] = 1 << PRECISION_BITS;
            } else {
                axis_weights(ay, yy, &ymin, &ycount, kv);
            }
        } else {
            kv[0] = 1 << PRECISION_BITS;
        }
        for (int xx = 0; xx < ax->out; xx++) {
            int xmin = xx, xcount = 1;
            if (hpass) {
                if (ax->ksize > 64) {
                    double c;
                    axis_range(ax, xx, &c, &xmin, &xcount);
                    xmin += xcount / 2;
                    xcount = 1;
                    kh[0] = 1 << PRECISION_BITS;
                } else {
                    axis_weights(ax, xx, &xmin, &xcount, kh);
                }
            } else {
                kh[0] = 1 << PRECISION_BITS;
            }
            int32_t acc = ROUND_HALF;
            for (int y = 0; y < ycount; y++) {
                const uint8_t *row = src + (size_t)(ymin + y) * (size_t)ax->in;
                int32_t h = ROUND_HALF;
                for (int x = 0; x < xcount; x++) h += (int32_t)row[xmin + x] * kh[x];
                acc += (int32_t)clip8(h) * kv[y];
            }
            dst[(size_t)yy * (size_t)ax->out + (size_t)xx] = clip8(acc);
        }
    }
}

void tb_resize_u8(uint8_t *dst, int dh, int dw, const uint8_t *src, int sh, int sw, int channels)
{
    if (!dst || !src || dh <= 0 || dw <= 0 || sh <= 0 || sw <= 0 || channels <= 0) return;
    const size_t splane = (size_t)sh * (size_t)sw, dplane = (size_t)dh * (size_t)dw;
    const int hpass = dw != sw, vpass = dh != sh;
    if (!hpass && !vpass) {
        memcpy(dst, src, splane * (size_t)channels);
        return;
    }
    const axis ax = axis_make(sw, dw), ay = axis_make(sh, dh);

    /* working memory: bounds and weights of both axes, the intermediate rows */
    const size_t nbh = hpass ? 2 * (size_t)dw : 0, nkh = hpass ? (size_t)dw * (size_t)ax.ksize : 0;
    const size_t nbv = vpass ? 2 * (size_t)dh : 0, nkv = vpass ? (size_t)dh * (size_t)ay.ksize : 0;
    const size_t nacc = vpass ? (size_t)dw : 0;
    const size_t ints = nbh + nkh + nbv + nkv + nacc;
    const size_t tmp_bytes = hpass && vpass ? (size_t)sh * (size_t)dw : 0; /* upper bound on the rows used */
    const size_t need = ints * sizeof(int32_t) + tmp_bytes;
    _Alignas(16) unsigned char stack[STACK_WORKSPACE];
    unsigned char *heap = NULL, *ws = stack;
    if (need > sizeof stack) {
        heap = malloc(need);
        if (!heap) {
            for (int c = 0; c < channels; c++)
                resize_direct(dst + (size_t)c * dplane, src + (size_t)c * splane, &ax, &ay, hpass, vpass);
            return;
        }
        ws = heap;
    }
    int32_t *bh = (int32_t *)(void *)ws, *kh = bh + nbh, *bv = kh + nkh, *kv = bv + nbv;
    int32_t *acc = kv + nkv;
    uint8_t *tmp = (uint8_t *)(acc + nacc);

    for (int o = 0; hpass && o < dw; o++) {
        int xmin, count;
        axis_weights(&ax, o, &xmin, &count, kh + (size_t)o * (size_t)ax.ksize);
        bh[2 * o] = xmin;
        bh[2 * o + 1] = count;
    }
    int yfirst = 0, ylast = sh;
    for (int o = 0; vpass && o < dh; o++) {
        int ymin, count;
        axis_weights(&ay, o, &ymin, &count, kv + (size_t)o * (size_t)ay.ksize);
        bv[2 * o] = ymin;
        bv[2 * o + 1] = count;
    }
    if (vpass) {
        yfirst = bv[0];
        ylast = bv[2 * dh - 2] + bv[2 * dh - 1];
    }

    for (int c = 0; c < channels; c++) {
        const uint8_t *in = src + (size_t)c * splane;
        uint8_t *out = dst + (size_t)c * dplane;
        /* horizontal pass: rows [yfirst, ylast) into tmp (or straight into out) */
        const uint8_t *vin = in; /* what the vertical pass reads, row 0 = source row yfirst */
        int vin_first = 0;
        if (hpass) {
            uint8_t *hout = vpass ? tmp : out;
            for (int y = yfirst; y < ylast; y++) {
                const uint8_t *row = in + (size_t)y * (size_t)sw;
                uint8_t *orow = hout + (size_t)(y - yfirst) * (size_t)dw;
                for (int xx = 0; xx < dw; xx++) {
                    const int32_t *k = kh + (size_t)xx * (size_t)ax.ksize;
                    const uint8_t *p = row + bh[2 * xx];
                    const int n = bh[2 * xx + 1];
                    int32_t ss = ROUND_HALF;
                    for (int x = 0; x < n; x++) ss += (int32_t)p[x] * k[x];
                    orow[xx] = clip8(ss);
                }
            }
            vin = hout;
            vin_first = yfirst;
        }
        if (vpass) {
            for (int yy = 0; yy < dh; yy++) {
                const int32_t *k = kv + (size_t)yy * (size_t)ay.ksize;
                const int ymin = bv[2 * yy] - vin_first, n = bv[2 * yy + 1];
                uint8_t *orow = out + (size_t)yy * (size_t)dw;
                for (int xx = 0; xx < dw; xx++) acc[xx] = ROUND_HALF;
                for (int y = 0; y < n; y++) {
                    const uint8_t *row = vin + (size_t)(ymin + y) * (size_t)dw;
                    const int32_t w = k[y];
                    for (int xx = 0; xx < dw; xx++) acc[xx] += (int32_t)row[xx] * w;
                }
                for (int xx = 0; xx < dw; xx++) orow[xx] = clip8(acc[xx]);
            }
        }
    }
    free(heap);
}

/* Double weights of output sample o, normalised to sum 1 (Pillow's float path). */
static void axis_weights_f(const axis *a, int o, int *xmin, int *count, double *k)
{
    double center;
    axis_range(a, o, &center, xmin, count);
    const double ss = 1.0 / a->filterscale;
    double ww = 0.0;
    for (int x = 0; x < *count; x++) {
        k[x] = triangle(((double)(x + *xmin) - center + 0.5) * ss);
        ww += k[x];
    }
    if (ww != 0.0)
        for (int x = 0; x < *count; x++) k[x] /= ww;
}

/* One axis of one plane: out[r][o] = sum k * in[r][...] along the axis. The
 * stride pairs say how to step: (in_step, out_step) between samples of the
 * axis, (in_line, out_line) between lines. k: room for a->ksize weights. */
static void resize_axis_f32(float *out, const float *in, const axis *a, int lines, size_t in_step, size_t in_line,
                            size_t out_step, size_t out_line, double *k)
{
    for (int o = 0; o < a->out; o++) {
        int xmin, n;
        axis_weights_f(a, o, &xmin, &n, k);
        for (int l = 0; l < lines; l++) {
            const float *p = in + (size_t)l * in_line + (size_t)xmin * in_step;
            double ss = 0.0;
            for (int x = 0; x < n; x++) ss += (double)p[(size_t)x * in_step] * k[x];
            out[(size_t)l * out_line + (size_t)o * out_step] = (float)ss;
        }
    }
}

int tb_resize_f32(float *dst, int dh, int dw, const float *src, int sh, int sw, int channels)
{
    if (!dst || !src || dh <= 0 || dw <= 0 || sh <= 0 || sw <= 0 || channels <= 0) return -1;
    const size_t splane = (size_t)sh * (size_t)sw, dplane = (size_t)dh * (size_t)dw;
    const int hpass = dw != sw, vpass = dh != sh;
    if (!hpass && !vpass) {
        memcpy(dst, src, splane * (size_t)channels * sizeof *src);
        return 0;
    }
    const axis ax = axis_make(sw, dw), ay = axis_make(sh, dh);
    /* one allocation per call: the kernel weights (either axis), then the intermediate plane */
    const size_t nk = (size_t)(ax.ksize > ay.ksize ? ax.ksize : ay.ksize);
    const size_t ntmp = hpass && vpass ? (size_t)sh * (size_t)dw : 0;
    double *k = malloc(nk * sizeof *k + ntmp * sizeof(float));
    if (!k) return -1;
    float *tmp = (float *)(void *)(k + nk);
    for (int c = 0; c < channels; c++) {
        const float *in = src + (size_t)c * splane;
        float *out = dst + (size_t)c * dplane;
        const float *vin = in;
        if (hpass) {
            float *hout = vpass ? tmp : out;
            resize_axis_f32(hout, in, &ax, sh, 1, (size_t)sw, 1, (size_t)dw, k);
            vin = hout;
        }
        if (vpass) resize_axis_f32(out, vin, &ay, dw, (size_t)dw, 1, (size_t)dw, 1, k);
    }
    free(k);
    return 0;
}
