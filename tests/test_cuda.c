/* test_cuda.c: the CUDA backend (core/engine/cuda/) against the CPU backend, op by op,
 * then a small network trained on both.
 *
 * What the CUDA backend promises, and how it is checked here:
 *  - bitwise identical to the CPU (every bit, a NaN matching any NaN): relu,
 *    max pooling (values and argmax), average and adaptive average pooling,
 *    concat, dropout (values and mask), batch norm in eval mode, copy_or_add,
 *    all_finite and every optimizer (parameters, state and scalars after each step);
 *  - losses: the value within a relative 1e-6 of the CPU's (about 1 ulp of a
 *    float sum), dlogits within 1e-6 relative + 1e-9 absolute per element;
 *  - leaky ReLU bitwise; tanh, sigmoid and GELU (libdevice's tanhf/expf/erff
 *    against glibc's) within TOL_ACT relative-to-max-abs, forward and backward;
 *  - convolution, linear and batch norm in training mode (cuDNN/cuBLAS reduce
 *    in another order): relative-to-max-abs error max|gpu - cpu| / max|cpu|
 *    <= 1e-4 per output buffer (TOL_FP32; FP32 math, TF32 off);
 *  - training: the same steps twice on the GPU give bitwise identical
 *    parameters; the CPU from the same seed agrees to 1e-3 relative-to-max-abs
 *    per tensor after 5 SGD steps (TOL_TRAIN);
 *  - errors: failed() is 0 after normal use; a 1 MiB memory budget makes a
 *    64 MiB alloc return NULL and tb_net_build of a big net fail with
 *    TB_ENOMEM, and small allocations keep working afterwards.
 *
 * Needs a CUDA device: without one, main prints one "SKIP" line and exits 77
 * (ctest reports the test skipped). The tests run in this process (CK_NOFORK):
 * tb_cuda_device_count initialises the driver in main, and CUDA cannot be used
 * in a child forked after that, so Check's per-test fork is off and the
 * backends are created once for all tests. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/backend.h"
#include "engine/device.h"
#include "engine/net.h"
#include "base/rng.h"
#include "tb_test.h"
#include "engine/train.h"

#define TOL_FP32 1e-4  /* conv2d, linear, batchnorm training: max|gpu-cpu| / max|cpu| */
#define TOL_TRAIN 1e-3 /* parameters after 5 training steps, per tensor, same measure */
#define LOSS_RTOL 1e-6 /* loss value and dlogits, relative */
#define LOSS_ATOL 1e-9 /* dlogits, absolute */

static tb_backend *gpu, *cpu;

/* ---- helpers ------------------------------------------------------------------ */

static void *xmalloc(size_t bytes)
{
    void *p = malloc(bytes ? bytes : 1);
    ck_assert(p != NULL);
    return p;
}

/* Input data: normal(offset, scale) from a seeded Philox stream; sub picks the stream. */
static void fill_normal(float *p, size_t n, uint32_t sub, float scale, float offset)
{
    tb_rng r;
    tb_rng_init(&r, 20240917, TB_STREAM_SEARCH, sub);
    for (size_t i = 0; i < n; i++) p[i] = offset + scale * tb_rng_normal(&r);
}

static float *new_normal(size_t n, uint32_t sub, float scale, float offset)
{
    float *p = xmalloc(n * sizeof *p);
    fill_normal(p, n, sub, scale, offset);
    return p;
}

static void *dev_alloc(tb_backend *be, size_t bytes)
{
    void *p = be->ops->alloc(be, bytes ? bytes : 4);
    ck_assert_msg(p != NULL, "%s: alloc of %zu bytes failed", be->device, bytes);
    return p;
}

static void *host_copy(tb_backend *be, const void *dev, size_t bytes)
{
    void *h = xmalloc(bytes);
    if (bytes) be->ops->to_host(be, h, dev, bytes);
    return h;
}

/* The CUDA backend has not failed (its first failure would explain a wrong result). */
static void check_gpu_ok(void)
{
    tb_status st = TB_OK;
    char msg[512] = "";
    int failed = gpu->ops->failed(gpu, &st, msg, sizeof msg);
    ck_assert_msg(failed == 0, "the CUDA backend failed (status %d): %s", (int)st, msg);
}

/* One buffer on each backend, with the same initial contents. */
typedef struct pair {
    void *c, *g;
    size_t bytes;
} pair;
#define FC(p) ((float *)(p).c)
#define FG(p) ((float *)(p).g)

/* host NULL: zeroed (alloc's contract) */
static pair pair_new(const void *host, size_t bytes)
{
    pair p = {dev_alloc(cpu, bytes), dev_alloc(gpu, bytes), bytes};
    if (host && bytes) {
        cpu->ops->to_device(cpu, p.c, host, bytes);
        gpu->ops->to_device(gpu, p.g, host, bytes);
    }
    return p;
}
static pair pair_f32(const float *host, size_t n) { return pair_new(host, n * sizeof(float)); }
static pair pair_normal(size_t n, uint32_t sub, float scale, float offset)
{
    float *h = new_normal(n, sub, scale, offset);
    pair p = pair_f32(h, n);
    free(h);
    return p;
}
static void pair_free(pair *p)
{
    cpu->ops->free(cpu, p->c);
    gpu->ops->free(gpu, p->g);
    p->c = p->g = NULL;
}

/* Bitwise equality of float buffers; a NaN matches any NaN. */
static void check_same_f32(const pair *p, const char *what)
{
    check_gpu_ok();
    const size_t n = p->bytes / sizeof(float);
    float *c = host_copy(cpu, p->c, p->bytes), *g = host_copy(gpu, p->g, p->bytes);
    size_t diffs = 0, first = 0;
    for (size_t i = 0; i < n; i++) {
        if (isnan(c[i]) && isnan(g[i])) continue;
        if (memcmp(&c[i], &g[i], sizeof(float)) != 0 && diffs++ == 0) first = i;
    }
    float cv = n ? c[first] : 0, gv = n ? g[first] : 0;
    uint32_t cb, gb;
    memcpy(&cb, &cv, 4);
    memcpy(&gb, &gv, 4);
    free(c);
    free(g);
    ck_assert_msg(diffs == 0, "%s: %zu of %zu floats differ from the CPU's; first [%zu]: cuda %.9g (0x%08x), cpu %.9g (0x%08x)",
                  what, diffs, n, first, (double)gv, gb, (double)cv, cb);
}

/* Bitwise equality of int32 (elem 4) or uint8 (elem 1) buffers. */
static void check_same_ints(const pair *p, size_t elem, const char *what)
{
    check_gpu_ok();
    const size_t n = p->bytes / elem;
    unsigned char *c = host_copy(cpu, p->c, p->bytes), *g = host_copy(gpu, p->g, p->bytes);
    size_t diffs = 0, first = 0;
    for (size_t i = 0; i < n; i++)
        if (memcmp(c + i * elem, g + i * elem, elem) != 0 && diffs++ == 0) first = i;
    long long cv = 0, gv = 0;
    if (n) {
        if (elem == 4) {
            int32_t a, b;
            memcpy(&a, c + first * 4, 4);
            memcpy(&b, g + first * 4, 4);
            cv = a, gv = b;
        } else {
            cv = c[first], gv = g[first];
        }
    }
    free(c);
    free(g);
    ck_assert_msg(diffs == 0, "%s: %zu of %zu elements differ from the CPU's; first [%zu]: cuda %lld, cpu %lld", what,
                  diffs, n, first, gv, cv);
}

/* max|g - c| / max|c| over n floats (NaN where only one side is NaN or Inf differs). */
static double rel_max_err(const float *g, const float *c, size_t n, size_t *worst)
{
    double maxabs = 0, maxdiff = 0;
    *worst = 0;
    for (size_t i = 0; i < n; i++) {
        if (isnan(c[i]) && isnan(g[i])) continue;
        if (isnan(c[i]) || isnan(g[i]) || (isinf(c[i]) && c[i] != g[i])) {
            *worst = i;
            return NAN;
        }
        if (isinf(c[i])) continue;
        double d = fabs((double)g[i] - (double)c[i]);
        if (fabs((double)c[i]) > maxabs) maxabs = fabs((double)c[i]);
        if (d > maxdiff) {
            maxdiff = d;
            *worst = i;
        }
    }
    return maxabs > 0 ? maxdiff / maxabs : maxdiff;
}

/* Relative-to-max-abs error within tol. */
static void check_close(const pair *p, double tol, const char *what)
{
    check_gpu_ok();
    const size_t n = p->bytes / sizeof(float);
    float *c = host_copy(cpu, p->c, p->bytes), *g = host_copy(gpu, p->g, p->bytes);
    size_t w;
    double e = rel_max_err(g, c, n, &w);
    double gv = n ? g[w] : 0, cv = n ? c[w] : 0;
    free(c);
    free(g);
    ck_assert_msg(e <= tol, "%s: max|cuda-cpu|/max|cpu| = %.3g > %g; worst [%zu]: cuda %.9g, cpu %.9g", what, e, tol, w,
                  gv, cv);
}

/* ---- element-wise ops: bitwise ------------------------------------------------- */

START_TEST(test_relu)
{
    const size_t n = 100003;
    float *in = new_normal(n, 1, 1.0f, 0.0f);
    const float special[] = {NAN, -0.0f, 0.0f, INFINITY, -INFINITY, 1e-40f, -1e-40f, -NAN, 1.0f, -1.0f};
    memcpy(in, special, sizeof special);
    in[n - 1] = NAN;
    pair x = pair_f32(in, n), out = pair_f32(NULL, n);
    cpu->ops->relu_forward(cpu, FC(out), FC(x), n);
    gpu->ops->relu_forward(gpu, FG(out), FG(x), n);
    check_same_f32(&out, "relu forward");

    /* backward from the same forward output on both */
    float *out_h = host_copy(cpu, out.c, out.bytes);
    float *dout_h = new_normal(n, 2, 1.0f, 0.0f);
    dout_h[1] = NAN;
    dout_h[9] = NAN; /* at an input of -1: blocked */
    pair o = pair_f32(out_h, n), dout = pair_f32(dout_h, n);
    for (int acc = 0; acc <= 1; acc++) {
        pair din = pair_normal(n, 3 + (uint32_t)acc, 1.0f, 0.0f);
        cpu->ops->relu_backward(cpu, FC(din), FC(dout), FC(o), n, acc);
        gpu->ops->relu_backward(gpu, FG(din), FG(dout), FG(o), n, acc);
        check_same_f32(&din, acc ? "relu backward, accumulate_din 1" : "relu backward, accumulate_din 0");
        pair_free(&din);
    }
    pair_free(&x), pair_free(&out), pair_free(&o), pair_free(&dout);
    free(in), free(out_h), free(dout_h);
    check_gpu_ok();
}
END_TEST

/* tanh, sigmoid, leaky ReLU and GELU: the same float operations on both
 * (layers/activation_rules.h, -fmad=false), so leaky ReLU (a compare and a
 * multiply) is bitwise identical; tanh, sigmoid and GELU call tanhf, expf and
 * erff, which CUDA's libdevice and glibc each round within 2 ulp their own
 * way, so those are held to TOL_ACT (max|gpu-cpu| / max|cpu|), far above a
 * few ulp and far below a wrong formula. Backward reads the CPU's forward
 * output (tanh, sigmoid) or the input (leaky ReLU, GELU) on both. */
#define TOL_ACT 1e-5
static const char *const act_names[] = {"tanh", "sigmoid", "leaky_relu(0.2)", "gelu", "gelu(tanh)"};

START_TEST(test_activation)
{
    const size_t n = 100003;
    const int kind = _i;
    float *in = new_normal(n, 40 + (uint32_t)kind, 3.0f, 0.0f);
    const float special[] = {NAN, -0.0f, 0.0f, 1e-40f, -1e-40f, 9.0f, -9.0f, 30.0f, -30.0f, 1.0f, -1.0f};
    memcpy(in, special, sizeof special);
    pair x = pair_f32(in, n), out = pair_f32(NULL, n);
    char what[96];
    for (int b = 0; b < 2; b++) {
        tb_backend *be = b ? gpu : cpu;
        float *o = b ? FG(out) : FC(out);
        const float *xi = b ? FG(x) : FC(x);
        switch (kind) {
        case 0: be->ops->tanh_forward(be, o, xi, n); break;
        case 1: be->ops->sigmoid_forward(be, o, xi, n); break;
        case 2: be->ops->leaky_relu_forward(be, o, xi, n, 0.2f); break;
        default: be->ops->gelu_forward(be, o, xi, n, kind == 4); break;
        }
    }
    snprintf(what, sizeof what, "%s forward", act_names[kind]);
    if (kind == 2) check_same_f32(&out, what);
    else check_close(&out, TOL_ACT, what);

    float *out_h = host_copy(cpu, out.c, out.bytes), *dout_h = new_normal(n, 50 + (uint32_t)kind, 1.0f, 0.0f);
    pair o = pair_f32(out_h, n), dout = pair_f32(dout_h, n);
    for (int acc = 0; acc <= 1; acc++) {
        pair din = pair_normal(n, 60 + (uint32_t)acc, 1.0f, 0.0f);
        for (int b = 0; b < 2; b++) {
            tb_backend *be = b ? gpu : cpu;
            float *d = b ? FG(din) : FC(din);
            const float *dy = b ? FG(dout) : FC(dout), *y = b ? FG(o) : FC(o), *xi = b ? FG(x) : FC(x);
            switch (kind) {
            case 0: be->ops->tanh_backward(be, d, dy, y, n, acc); break;
            case 1: be->ops->sigmoid_backward(be, d, dy, y, n, acc); break;
            case 2: be->ops->leaky_relu_backward(be, d, dy, xi, n, 0.2f, acc); break;
            default: be->ops->gelu_backward(be, d, dy, xi, n, kind == 4, acc); break;
            }
        }
        snprintf(what, sizeof what, "%s backward, accumulate_din %d", act_names[kind], acc);
        if (kind == 2) check_same_f32(&din, what);
        else check_close(&din, TOL_ACT, what);
        pair_free(&din);
    }
    pair_free(&x), pair_free(&out), pair_free(&o), pair_free(&dout);
    free(in), free(out_h), free(dout_h);
    check_gpu_ok();
}
END_TEST

START_TEST(test_copy_or_add)
{
    const size_t n = 100003;
    pair src = pair_normal(n, 10, 1.0f, 0.0f);
    for (int acc = 0; acc <= 1; acc++) {
        pair dst = pair_normal(n, 11, 3.0f, 0.5f);
        cpu->ops->copy_or_add(cpu, FC(dst), FC(src), n, acc);
        gpu->ops->copy_or_add(gpu, FG(dst), FG(src), n, acc);
        check_same_f32(&dst, acc ? "copy_or_add, add" : "copy_or_add, copy");
        /* a sub-range leaves the rest alone */
        cpu->ops->copy_or_add(cpu, FC(dst) + 5, FC(src) + 17, 1001, acc);
        gpu->ops->copy_or_add(gpu, FG(dst) + 5, FG(src) + 17, 1001, acc);
        check_same_f32(&dst, acc ? "copy_or_add, add of a sub-range" : "copy_or_add, copy of a sub-range");
        pair_free(&dst);
    }
    pair_free(&src);
    check_gpu_ok();
}
END_TEST

START_TEST(test_all_finite)
{
    const size_t n = ((size_t)1 << 22) + 3; /* 16 MiB */
    float *h = new_normal(n, 20, 100.0f, 0.0f);
    float *d = gpu->ops->alloc(gpu, n * sizeof *d);
    ck_assert_ptr_nonnull(d);
    gpu->ops->to_device(gpu, d, h, n * sizeof *d);
    ck_assert_int_eq(cpu->ops->all_finite(cpu, h, n), 1);
    ck_assert_int_eq(gpu->ops->all_finite(gpu, d, n), 1);
    const float bad[] = {NAN, INFINITY, -INFINITY};
    const size_t where[] = {n - 1, 0, n / 2 + 1};
    for (size_t w = 0; w < TB_ARRAY_LEN(where); w++) {
        for (size_t b = 0; b < TB_ARRAY_LEN(bad); b++) {
            const size_t i = where[w];
            float keep = h[i];
            h[i] = bad[b];
            gpu->ops->to_device(gpu, d + i, &h[i], sizeof *d);
            ck_assert_int_eq(cpu->ops->all_finite(cpu, h, n), 0);
            ck_assert_msg(gpu->ops->all_finite(gpu, d, n) == 0, "all_finite missed %g at [%zu] of %zu", (double)bad[b],
                          i, n);
            /* a count that stops before it does not see it */
            if (i > 0) ck_assert_int_eq(gpu->ops->all_finite(gpu, d, i), 1);
            h[i] = keep;
            gpu->ops->to_device(gpu, d + i, &h[i], sizeof *d);
        }
    }
    ck_assert_int_eq(gpu->ops->all_finite(gpu, d, n), 1);
    ck_assert_int_eq(gpu->ops->all_finite(gpu, d, 1), 1);
    gpu->ops->free(gpu, d);
    free(h);
    check_gpu_ok();
}
END_TEST

/* ---- pooling: bitwise ----------------------------------------------------------- */

typedef struct pool_case {
    const char *name;
    int c, in_h, in_w, kh, kw, sh, sw, ph, pw, ceil_mode, n;
} pool_case;

static const pool_case pool_cases[] = {
    {"13x13_k3_s2_p1_ceil", 3, 13, 13, 3, 3, 2, 2, 1, 1, 1, 3},
    {"12x12_k2_s2", 4, 12, 12, 2, 2, 2, 2, 0, 0, 0, 3},
    {"9x11_k3_s2_ceil", 2, 9, 11, 3, 3, 2, 2, 0, 0, 1, 3},
    {"8x8_k3_s1_p1", 3, 8, 8, 3, 3, 1, 1, 1, 1, 0, 2},
    {"7x7_k2x3_s1x2_p1_ceil", 2, 7, 7, 2, 3, 1, 2, 1, 1, 1, 2},
    {"6x6_k3_s2_p1_ceil", 2, 6, 6, 3, 3, 2, 2, 1, 1, 1, 2},
    {"55x55_k3_s2_ceil", 4, 55, 55, 3, 3, 2, 2, 0, 0, 1, 2},
};

static tb_pool_shape make_pool(const pool_case *pc, int count_include_pad)
{
    tb_pool_shape s = {.c = pc->c, .in_h = pc->in_h, .in_w = pc->in_w, .kh = pc->kh, .kw = pc->kw,
                       .stride_h = pc->sh, .stride_w = pc->sw, .pad_h = pc->ph, .pad_w = pc->pw,
                       .ceil_mode = pc->ceil_mode, .count_include_pad = count_include_pad};
    ck_assert_msg(pool_infer(&s) == 0, "%s: invalid pool shape", pc->name);
    return s;
}

START_TEST(test_maxpool)
{
    const pool_case *pc = &pool_cases[_i];
    tb_pool_shape s = make_pool(pc, 1);
    const int n = pc->n;
    const size_t in_n = (size_t)n * s.c * s.in_h * s.in_w, out_n = (size_t)n * s.c * s.out_h * s.out_w;
    const size_t plane = (size_t)s.in_h * s.in_w;
    /* values on a 0.5 grid: many ties, so the first-maximum rule matters; a few
     * NaNs and infinities; one plane entirely -inf */
    float *in = new_normal(in_n, 30 + (uint32_t)_i, 2.0f, 0.0f);
    for (size_t i = 0; i < in_n; i++) in[i] = roundf(in[i]) * 0.5f;
    for (size_t i = 0; i < plane; i++) in[(size_t)(n * s.c - 1) * plane + i] = -INFINITY; /* the last plane */
    in[5] = NAN;
    in[plane + 17] = NAN;
    in[plane + 18] = NAN;
    in[2 * plane + 3] = INFINITY;
    pair x = pair_f32(in, in_n), out = pair_f32(NULL, out_n), idx = pair_new(NULL, out_n * sizeof(int32_t));
    cpu->ops->maxpool_forward(cpu, FC(out), idx.c, FC(x), &s, n);
    gpu->ops->maxpool_forward(gpu, FG(out), idx.g, FG(x), &s, n);
    char what[160];
    snprintf(what, sizeof what, "maxpool %s forward", pc->name);
    check_same_f32(&out, what);
    snprintf(what, sizeof what, "maxpool %s argmax", pc->name);
    check_same_ints(&idx, 4, what);

    /* backward through the CPU's argmax on both (overlapping windows add up) */
    int32_t *idx_h = host_copy(cpu, idx.c, idx.bytes);
    pair arg = pair_new(idx_h, idx.bytes), dout = pair_normal(out_n, 40 + (uint32_t)_i, 1.0f, 0.0f);
    for (int acc = 0; acc <= 1; acc++) {
        pair din = pair_normal(in_n, 50 + (uint32_t)_i, 1.0f, 0.0f);
        cpu->ops->maxpool_backward(cpu, FC(din), FC(dout), arg.c, &s, n, acc);
        gpu->ops->maxpool_backward(gpu, FG(din), FG(dout), arg.g, &s, n, acc);
        snprintf(what, sizeof what, "maxpool %s backward, accumulate_din %d", pc->name, acc);
        check_same_f32(&din, what);
        pair_free(&din);
    }
    pair_free(&x), pair_free(&out), pair_free(&idx), pair_free(&arg), pair_free(&dout);
    free(in), free(idx_h);
    check_gpu_ok();
}
END_TEST

/* _i: case * 2 + count_include_pad */
START_TEST(test_avgpool)
{
    const pool_case *pc = &pool_cases[_i / 2];
    const int cip = _i % 2;
    tb_pool_shape s = make_pool(pc, cip);
    const int n = pc->n;
    const size_t in_n = (size_t)n * s.c * s.in_h * s.in_w, out_n = (size_t)n * s.c * s.out_h * s.out_w;
    pair x = pair_normal(in_n, 60 + (uint32_t)_i, 1.0f, 0.5f), out = pair_f32(NULL, out_n);
    cpu->ops->avgpool_forward(cpu, FC(out), FC(x), &s, n);
    gpu->ops->avgpool_forward(gpu, FG(out), FG(x), &s, n);
    char what[160];
    snprintf(what, sizeof what, "avgpool %s count_include_pad %d forward", pc->name, cip);
    check_same_f32(&out, what);
    pair dout = pair_normal(out_n, 70 + (uint32_t)_i, 1.0f, 0.0f);
    for (int acc = 0; acc <= 1; acc++) {
        pair din = pair_normal(in_n, 80 + (uint32_t)_i, 1.0f, 0.0f);
        cpu->ops->avgpool_backward(cpu, FC(din), FC(dout), &s, n, acc);
        gpu->ops->avgpool_backward(gpu, FG(din), FG(dout), &s, n, acc);
        snprintf(what, sizeof what, "avgpool %s count_include_pad %d backward, accumulate_din %d", pc->name, cip, acc);
        check_same_f32(&din, what);
        pair_free(&din);
    }
    pair_free(&x), pair_free(&out), pair_free(&dout);
    check_gpu_ok();
}
END_TEST

static const struct adaptive_case {
    int c, in_h, in_w, out_h, out_w, n;
} adaptive_cases[] = {
    {3, 13, 13, 4, 4, 2}, {2, 7, 5, 3, 2, 3}, {4, 6, 6, 1, 1, 2},   {2, 3, 3, 5, 4, 2},
    {2, 10, 10, 5, 5, 2}, {3, 13, 11, 4, 3, 2}, {16, 13, 13, 1, 1, 4},
};

START_TEST(test_adaptive_avgpool)
{
    const struct adaptive_case *ac = &adaptive_cases[_i];
    tb_pool_shape s = {.c = ac->c, .in_h = ac->in_h, .in_w = ac->in_w, .out_h = ac->out_h, .out_w = ac->out_w};
    const int n = ac->n;
    const size_t in_n = (size_t)n * s.c * s.in_h * s.in_w, out_n = (size_t)n * s.c * s.out_h * s.out_w;
    pair x = pair_normal(in_n, 90 + (uint32_t)_i, 1.0f, 0.25f), out = pair_f32(NULL, out_n);
    cpu->ops->adaptive_avgpool_forward(cpu, FC(out), FC(x), &s, n);
    gpu->ops->adaptive_avgpool_forward(gpu, FG(out), FG(x), &s, n);
    char what[160];
    snprintf(what, sizeof what, "adaptive avgpool %dx%d -> %dx%d forward", s.in_h, s.in_w, s.out_h, s.out_w);
    check_same_f32(&out, what);
    pair dout = pair_normal(out_n, 100 + (uint32_t)_i, 1.0f, 0.0f);
    for (int acc = 0; acc <= 1; acc++) {
        pair din = pair_normal(in_n, 110 + (uint32_t)_i, 1.0f, 0.0f);
        cpu->ops->adaptive_avgpool_backward(cpu, FC(din), FC(dout), &s, n, acc);
        gpu->ops->adaptive_avgpool_backward(gpu, FG(din), FG(dout), &s, n, acc);
        snprintf(what, sizeof what, "adaptive avgpool %dx%d -> %dx%d backward, accumulate_din %d", s.in_h, s.in_w,
                 s.out_h, s.out_w, acc);
        check_same_f32(&din, what);
        pair_free(&din);
    }
    pair_free(&x), pair_free(&out), pair_free(&dout);
    check_gpu_ok();
}
END_TEST

/* ---- concat, dropout, batchnorm eval: bitwise ------------------------------------- */

static const struct concat_case {
    int n_inputs, channels[3], hw, n;
    int accumulate[3];
    int null_input; /* -1: none */
} concat_cases[] = {
    {3, {3, 5, 2}, 49, 4, {0, 0, 1}, 1},
    {3, {4, 1, 6}, 7, 3, {1, 1, 0}, -1},
    {2, {64, 64, 0}, 1, 5, {0, 1, 0}, 0},
};

START_TEST(test_concat)
{
    const struct concat_case *cc = &concat_cases[_i];
    const int k = cc->n_inputs, hw = cc->hw, n = cc->n;
    int total = 0;
    pair ins[3], dins[3];
    const float *ins_c[3], *ins_g[3];
    float *dins_c[3], *dins_g[3];
    for (int j = 0; j < k; j++) {
        total += cc->channels[j];
        ins[j] = pair_normal((size_t)n * cc->channels[j] * hw, 120 + (uint32_t)(_i * 4 + j), 1.0f, 0.0f);
        ins_c[j] = FC(ins[j]);
        ins_g[j] = FG(ins[j]);
    }
    const size_t out_n = (size_t)n * total * hw;
    pair out = pair_f32(NULL, out_n);
    cpu->ops->concat_forward(cpu, FC(out), ins_c, cc->channels, k, hw, n);
    gpu->ops->concat_forward(gpu, FG(out), ins_g, cc->channels, k, hw, n);
    char what[160];
    snprintf(what, sizeof what, "concat case %d forward", _i);
    check_same_f32(&out, what);

    pair dout = pair_normal(out_n, 130 + (uint32_t)_i, 1.0f, 0.0f);
    for (int j = 0; j < k; j++) {
        dins[j] = pair_normal((size_t)n * cc->channels[j] * hw, 140 + (uint32_t)(_i * 4 + j), 1.0f, 0.0f);
        dins_c[j] = j == cc->null_input ? NULL : FC(dins[j]);
        dins_g[j] = j == cc->null_input ? NULL : FG(dins[j]);
    }
    cpu->ops->concat_backward(cpu, dins_c, FC(dout), cc->channels, k, hw, n, cc->accumulate);
    gpu->ops->concat_backward(gpu, dins_g, FG(dout), cc->channels, k, hw, n, cc->accumulate);
    for (int j = 0; j < k; j++) {
        snprintf(what, sizeof what, "concat case %d backward, input %d (accumulate %d%s)", _i, j, cc->accumulate[j],
                 j == cc->null_input ? ", NULL: untouched" : "");
        check_same_f32(&dins[j], what);
        pair_free(&dins[j]);
        pair_free(&ins[j]);
    }
    pair_free(&out), pair_free(&dout);
    check_gpu_ok();
}
END_TEST

static const struct dropout_case {
    float p;
    uint64_t seed;
    uint32_t layer;
    uint64_t step;
    size_t count;
} dropout_cases[] = {
    {0.5f, 1, 0, 0, 100003},
    {0.1f, 42, 3, 1, 100003},
    {0.9f, 0xDEADBEEFCAFEF00Dull, 7, 12345, 4099},
    {0.25f, 7, 1, 999999, 1001},
    {0.3f, 99, 0xFFFFFFFFu, 65536, 77},
    {0.5f, 1, 0, 1, 100003}, /* the next step of the first case: another mask */
    {0.0f, 3, 2, 5, 1000},
    {1.0f, 3, 2, 5, 1000},
};

START_TEST(test_dropout)
{
    const struct dropout_case *dc = &dropout_cases[_i];
    const size_t n = dc->count;
    pair x = pair_normal(n, 150 + (uint32_t)_i, 1.0f, 0.0f), out = pair_f32(NULL, n), mask = pair_new(NULL, n);
    cpu->ops->dropout_forward(cpu, FC(out), mask.c, FC(x), n, dc->p, dc->seed, dc->layer, dc->step);
    gpu->ops->dropout_forward(gpu, FG(out), mask.g, FG(x), n, dc->p, dc->seed, dc->layer, dc->step);
    char what[200];
    snprintf(what, sizeof what, "dropout p %g seed %llu layer %u step %llu: mask", (double)dc->p,
             (unsigned long long)dc->seed, dc->layer, (unsigned long long)dc->step);
    check_same_ints(&mask, 1, what);
    snprintf(what, sizeof what, "dropout p %g seed %llu layer %u step %llu: output", (double)dc->p,
             (unsigned long long)dc->seed, dc->layer, (unsigned long long)dc->step);
    check_same_f32(&out, what);

    uint8_t *mask_h = host_copy(cpu, mask.c, n);
    pair m = pair_new(mask_h, n), dout = pair_normal(n, 160 + (uint32_t)_i, 1.0f, 0.0f);
    for (int acc = 0; acc <= 1; acc++) {
        pair din = pair_normal(n, 170 + (uint32_t)_i, 1.0f, 0.0f);
        cpu->ops->dropout_backward(cpu, FC(din), FC(dout), m.c, n, dc->p, acc);
        gpu->ops->dropout_backward(gpu, FG(din), FG(dout), m.g, n, dc->p, acc);
        snprintf(what, sizeof what, "dropout p %g backward, accumulate_din %d", (double)dc->p, acc);
        check_same_f32(&din, what);
        pair_free(&din);
    }
    pair_free(&x), pair_free(&out), pair_free(&mask), pair_free(&m), pair_free(&dout);
    free(mask_h);
    check_gpu_ok();
}
END_TEST

static const struct bn_case {
    int c, hw, n;
    float eps, momentum;
} bn_cases[] = {
    {8, 49, 4, 1e-5f, 0.1f},
    {3, 1, 5, 1e-3f, 0.3f},
    {16, 196, 8, 1e-5f, 0.1f},
    {4, 3136, 2, 1e-5f, 0.1f},
};

START_TEST(test_batchnorm_eval)
{
    const struct bn_case *bc = &bn_cases[_i];
    tb_bn_shape s = {.c = bc->c, .hw = bc->hw, .eps = bc->eps, .momentum = bc->momentum};
    const size_t count = (size_t)bc->n * bc->c * bc->hw;
    float *var = new_normal((size_t)bc->c, 180 + (uint32_t)_i, 0.5f, 0.0f);
    for (int c = 0; c < bc->c; c++) var[c] = var[c] * var[c] + 0.01f;
    pair x = pair_normal(count, 190 + (uint32_t)_i, 2.0f, 1.0f), out = pair_f32(NULL, count);
    pair gamma = pair_normal((size_t)bc->c, 200 + (uint32_t)_i, 0.5f, 1.0f);
    pair beta = pair_normal((size_t)bc->c, 210 + (uint32_t)_i, 0.5f, 0.0f);
    pair mean = pair_normal((size_t)bc->c, 220 + (uint32_t)_i, 1.0f, 1.0f), rv = pair_f32(var, (size_t)bc->c);
    cpu->ops->batchnorm_forward_eval(cpu, FC(out), FC(x), FC(gamma), FC(beta), FC(mean), FC(rv), &s, bc->n);
    gpu->ops->batchnorm_forward_eval(gpu, FG(out), FG(x), FG(gamma), FG(beta), FG(mean), FG(rv), &s, bc->n);
    char what[160];
    snprintf(what, sizeof what, "batchnorm eval c %d hw %d n %d", bc->c, bc->hw, bc->n);
    check_same_f32(&out, what);
    pair_free(&x), pair_free(&out), pair_free(&gamma), pair_free(&beta), pair_free(&mean), pair_free(&rv);
    free(var);
    check_gpu_ok();
}
END_TEST

/* ---- optimizers: bitwise -------------------------------------------------------- */

static tb_optim_config optim_case(int i, const char **name)
{
    tb_optim_config c;
    static const tb_optim_kind kinds[] = {TB_OPT_SGD,     TB_OPT_SGD,      TB_OPT_SGD,     TB_OPT_SGD,
                                          TB_OPT_ADAM,    TB_OPT_ADAM,     TB_OPT_ADAGRAD, TB_OPT_ADADELTA,
                                          TB_OPT_RMSPROP, TB_OPT_RMSPROP,  TB_OPT_RMSPROP, TB_OPT_ASGD};
    static const char *const names[] = {"sgd",
                                        "sgd momentum",
                                        "sgd nesterov",
                                        "sgd weight_decay momentum dampening",
                                        "adam weight_decay",
                                        "adam amsgrad weight_decay",
                                        "adagrad lr_decay initial_accumulator_value",
                                        "adadelta weight_decay",
                                        "rmsprop",
                                        "rmsprop momentum",
                                        "rmsprop centered momentum weight_decay",
                                        "asgd t0 2 weight_decay"};
    tb_optim_defaults(&c, kinds[i]);
    *name = names[i];
    switch (i) {
    case 0: c.lr = 0.01; break;
    case 1: c.momentum = 0.9; break;
    case 2: c.momentum = 0.9, c.dampening = 0, c.nesterov = 1; break;
    case 3: c.weight_decay = 0.01, c.momentum = 0.9, c.dampening = 0.1; break;
    case 4: c.weight_decay = 0.01; break;
    case 5: c.weight_decay = 0.01, c.amsgrad = 1; break;
    case 6: c.lr_decay = 0.01, c.initial_accumulator_value = 0.1, c.weight_decay = 0.001; break;
    case 7: c.weight_decay = 0.01; break;
    case 8: break;
    case 9: c.momentum = 0.9; break;
    case 10: c.centered = 1, c.momentum = 0.5, c.weight_decay = 0.01; break;
    case 11: c.t0 = 2, c.weight_decay = 0.001; break;
    }
    char msg[256];
    ck_assert_msg(tb_optim_validate(&c, msg, sizeof msg) == 0, "%s: %s", *name, msg);
    return c;
}
#define N_OPTIM_CASES 12

static void check_scalars(const tb_optim_scalars *c, const tb_optim_scalars *g, const char *what)
{
    ck_assert_msg(c->step == g->step && memcmp(&c->eta, &g->eta, sizeof c->eta) == 0 &&
                      memcmp(&c->mu, &g->mu, sizeof c->mu) == 0,
                  "%s: scalars differ: cuda step %lld eta %.17g mu %.17g, cpu step %lld eta %.17g mu %.17g", what,
                  (long long)g->step, g->eta, g->mu, (long long)c->step, c->eta, c->mu);
}

/* Five steps over a block of `total` parameters; with sub_n < total, the steps
 * cover [off, off + sub_n) with stride total, as tb_optimizer_step does around
 * frozen tensors, and everything else must stay as it was. */
static void run_optim(int ci, size_t total, size_t off, size_t sub_n)
{
    const char *name;
    tb_optim_config cfg = optim_case(ci, &name);
    const int slots = tb_optim_slots(&cfg);
    const size_t state_n = (size_t)slots * total;
    float *state_h = xmalloc((state_n + 1) * sizeof(float));
    tb_optim_scalars sc_c, sc_g;
    tb_optim_init_state(&cfg, &sc_c, state_h, total);
    tb_optim_init_state(&cfg, &sc_g, state_h, total);
    pair params = pair_normal(total, 300 + (uint32_t)ci, 0.5f, 0.0f);
    pair state = pair_f32(state_h, state_n ? state_n : 1);
    float *st_c = slots ? FC(state) + off : NULL, *st_g = slots ? FG(state) + off : NULL;
    float *grads_h = xmalloc(total * sizeof(float));
    char what[200];
    for (int step = 1; step <= 5; step++) {
        fill_normal(grads_h, total, 310 + (uint32_t)(ci * 8 + step), 1.0f, 0.0f);
        for (size_t i = 0; i < total; i += 997) grads_h[i] = 0.0f; /* some exact zeros */
        pair grads = pair_f32(grads_h, total);
        cpu->ops->optim_step(cpu, &cfg, &sc_c, FC(params) + off, FC(grads) + off, st_c, sub_n, total);
        gpu->ops->optim_step(gpu, &cfg, &sc_g, FG(params) + off, FG(grads) + off, st_g, sub_n, total);
        snprintf(what, sizeof what, "%s%s, step %d: params", name, sub_n < total ? " (strided)" : "", step);
        check_same_f32(&params, what);
        snprintf(what, sizeof what, "%s%s, step %d: state", name, sub_n < total ? " (strided)" : "", step);
        if (slots) check_same_f32(&state, what);
        check_scalars(&sc_c, &sc_g, what);
        pair_free(&grads);
    }
    ck_assert_int_eq(sc_g.step, 5);
    pair_free(&params), pair_free(&state);
    free(state_h), free(grads_h);
    check_gpu_ok();
}

START_TEST(test_optim) { run_optim(_i, 100003, 0, 100003); }
END_TEST

START_TEST(test_optim_strided) { run_optim(_i, 100003, 1001, 50001); }
END_TEST

/* ---- losses ---------------------------------------------------------------------- */

static const struct loss_shape {
    int n, classes;
} loss_shapes[] = {{64, 10}, {7, 1000}, {1, 2}, {300, 3}};

static const tb_loss_kind loss_kinds[] = {TB_LOSS_CROSS_ENTROPY, TB_LOSS_NLL, TB_LOSS_L1, TB_LOSS_MSE};

static int32_t *random_targets(int n, int classes, uint32_t sub)
{
    int32_t *t = xmalloc((size_t)n * sizeof *t);
    tb_rng r;
    tb_rng_init(&r, 20240917, TB_STREAM_SEARCH, sub);
    for (int i = 0; i < n; i++) t[i] = (int32_t)tb_rng_below(&r, (uint32_t)classes);
    return t;
}

/* _i: shape * 4 + kind */
START_TEST(test_loss)
{
    const struct loss_shape *ls = &loss_shapes[_i / 4];
    const tb_loss_kind kind = loss_kinds[_i % 4];
    const int n = ls->n, classes = ls->classes;
    const size_t count = (size_t)n * classes;
    int32_t *targets = random_targets(n, classes, 400 + (uint32_t)_i);
    pair logits = pair_normal(count, 410 + (uint32_t)_i, 3.0f, 0.0f);
    pair dl = pair_normal(count, 420 + (uint32_t)_i, 1.0f, 0.0f); /* garbage: assigned, not added */
    float lc = cpu->ops->loss(cpu, FC(dl), FC(logits), targets, n, classes, kind);
    float lg = gpu->ops->loss(gpu, FG(dl), FG(logits), targets, n, classes, kind);
    check_gpu_ok();
    const char *kn = tb_loss_name(kind);
    ck_assert_msg(isfinite(lc), "%s: the CPU's loss is %g", kn, (double)lc);
    ck_assert_msg(fabs((double)lg - (double)lc) <= LOSS_RTOL * fabs((double)lc),
                  "%s n %d classes %d: cuda loss %.9g, cpu %.9g (rtol %g)", kn, n, classes, (double)lg, (double)lc,
                  LOSS_RTOL);
    float *c = host_copy(cpu, dl.c, dl.bytes), *g = host_copy(gpu, dl.g, dl.bytes);
    TBT_ASSERT_CLOSE(g, c, count, LOSS_RTOL, LOSS_ATOL, kn);
    free(c), free(g);
    /* without dlogits: the same value */
    float lg2 = gpu->ops->loss(gpu, NULL, FG(logits), targets, n, classes, kind);
    ck_assert_msg(fabs((double)lg2 - (double)lc) <= LOSS_RTOL * fabs((double)lc),
                  "%s without dlogits: cuda loss %.9g, cpu %.9g", kn, (double)lg2, (double)lc);
    pair_free(&logits), pair_free(&dl);
    free(targets);
    check_gpu_ok();
}
END_TEST

/* A target outside [0, classes): NaN, and dlogits zeroed (loss.h). */
START_TEST(test_loss_bad_target)
{
    const tb_loss_kind kind = loss_kinds[_i];
    const int n = 16, classes = 10;
    const size_t count = (size_t)n * classes;
    pair logits = pair_normal(count, 430, 1.0f, 0.0f);
    const int32_t bad[] = {classes, -1, 1 << 30};
    for (size_t b = 0; b < TB_ARRAY_LEN(bad); b++) {
        int32_t *targets = random_targets(n, classes, 440);
        targets[b == 1 ? 0 : n - 1] = bad[b];
        pair dl = pair_normal(count, 450, 1.0f, 0.0f);
        float lg = gpu->ops->loss(gpu, FG(dl), FG(logits), targets, n, classes, kind);
        ck_assert_msg(isnan(lg), "%s with a target %d of %d classes: %g, expected NaN", tb_loss_name(kind), bad[b],
                      classes, (double)lg);
        float *g = host_copy(gpu, dl.g, dl.bytes);
        for (size_t i = 0; i < count; i++)
            ck_assert_msg(g[i] == 0.0f, "%s with a bad target: dlogits[%zu] = %g, expected 0", tb_loss_name(kind), i,
                          (double)g[i]);
        free(g);
        ck_assert(isnan(gpu->ops->loss(gpu, NULL, FG(logits), targets, n, classes, kind)));
        pair_free(&dl);
        free(targets);
    }
    pair_free(&logits);
    check_gpu_ok();
}
END_TEST

/* ---- conv2d, linear, batchnorm training: within TOL_FP32 -------------------------- */

static const struct conv_case {
    const char *name;
    int in_c, in_h, in_w, out_c, kh, kw, sh, sw, ph, pw, groups, bias, n;
} conv_cases[] = {
    {"3x13x13_k3_p1_bias", 3, 13, 13, 8, 3, 3, 1, 1, 1, 1, 1, 1, 4},
    {"8x12x12_k3_s2_p1_nobias", 8, 12, 12, 16, 3, 3, 2, 2, 1, 1, 1, 0, 3},
    {"groups2_k3", 8, 9, 9, 6, 3, 3, 1, 1, 0, 0, 2, 1, 4},
    {"depthwise_k3_p1", 8, 10, 10, 8, 3, 3, 1, 1, 1, 1, 8, 1, 2},
    {"depthwise_x2_k3_s2_nobias", 4, 11, 11, 8, 3, 3, 2, 2, 1, 1, 4, 0, 3},
    {"1x1", 16, 7, 7, 4, 1, 1, 1, 1, 0, 0, 1, 1, 5},
    {"rect_k3x5_s1x2_p1x2", 3, 9, 14, 5, 3, 5, 1, 2, 1, 2, 1, 1, 2},
    {"64ch_k5_s2_p2", 64, 16, 16, 32, 5, 5, 2, 2, 2, 2, 1, 1, 2},
};

static const char *const din_modes[] = {"accumulate_din 0", "accumulate_din 1", "din NULL"};

static tb_conv2d_shape make_conv(const struct conv_case *cc)
{
    tb_conv2d_shape s = {.in_c = cc->in_c, .in_h = cc->in_h, .in_w = cc->in_w, .out_c = cc->out_c, .kh = cc->kh,
                         .kw = cc->kw, .stride_h = cc->sh, .stride_w = cc->sw, .pad_h = cc->ph, .pad_w = cc->pw,
                         .groups = cc->groups};
    ck_assert_msg(conv2d_infer(&s) == 0, "%s: invalid conv shape", cc->name);
    return s;
}

/* ws: max(1, what the backend asks for) floats */
static float *conv_ws(tb_backend *be, const tb_conv2d_shape *s, int n)
{
    size_t need = be->ops->conv2d_workspace_floats(be, s, n);
    return dev_alloc(be, sizeof(float) * (need ? need : 1));
}

/* _i: case * 3 + din mode */
START_TEST(test_conv2d)
{
    const struct conv_case *cc = &conv_cases[_i / 3];
    const int mode = _i % 3;
    tb_conv2d_shape s = make_conv(cc);
    const int n = cc->n;
    const size_t in_n = (size_t)n * s.in_c * s.in_h * s.in_w, out_n = (size_t)n * s.out_c * s.out_h * s.out_w;
    const size_t fan_in = (size_t)(s.in_c / s.groups) * s.kh * s.kw, w_n = (size_t)s.out_c * fan_in;
    const float wscale = 1.0f / sqrtf((float)fan_in);
    pair x = pair_normal(in_n, 500 + (uint32_t)_i, 1.0f, 0.0f), w = pair_normal(w_n, 510 + (uint32_t)_i, wscale, 0.0f);
    pair b = pair_normal((size_t)s.out_c, 520 + (uint32_t)_i, wscale, 0.0f), out = pair_f32(NULL, out_n);
    float *ws_c = conv_ws(cpu, &s, n), *ws_g = conv_ws(gpu, &s, n);
    cpu->ops->conv2d_forward(cpu, FC(out), FC(x), FC(w), cc->bias ? FC(b) : NULL, &s, n, ws_c);
    gpu->ops->conv2d_forward(gpu, FG(out), FG(x), FG(w), cc->bias ? FG(b) : NULL, &s, n, ws_g);
    char what[200];
    snprintf(what, sizeof what, "conv2d %s forward", cc->name);
    check_close(&out, TOL_FP32, what);

    /* gradients: dweight and dbias accumulate onto what is there; din per mode */
    pair dout = pair_normal(out_n, 530 + (uint32_t)_i, 1.0f, 0.0f);
    pair din = pair_normal(in_n, 540 + (uint32_t)_i, 1.0f, 0.0f);
    pair dw = pair_normal(w_n, 550 + (uint32_t)_i, 0.5f, 0.0f), db = pair_normal((size_t)s.out_c, 560, 0.5f, 0.0f);
    cpu->ops->conv2d_backward(cpu, mode == 2 ? NULL : FC(din), FC(dw), cc->bias ? FC(db) : NULL, FC(dout), FC(x),
                              FC(w), &s, n, mode == 1, ws_c);
    gpu->ops->conv2d_backward(gpu, mode == 2 ? NULL : FG(din), FG(dw), cc->bias ? FG(db) : NULL, FG(dout), FG(x),
                              FG(w), &s, n, mode == 1, ws_g);
    snprintf(what, sizeof what, "conv2d %s backward (%s): din", cc->name, din_modes[mode]);
    if (mode == 2) check_same_f32(&din, what); /* untouched */
    else check_close(&din, TOL_FP32, what);
    snprintf(what, sizeof what, "conv2d %s backward (%s): dweight", cc->name, din_modes[mode]);
    check_close(&dw, TOL_FP32, what);
    snprintf(what, sizeof what, "conv2d %s backward (%s): dbias", cc->name, din_modes[mode]);
    if (cc->bias) check_close(&db, TOL_FP32, what);
    else check_same_f32(&db, what); /* untouched */
    pair_free(&x), pair_free(&w), pair_free(&b), pair_free(&out), pair_free(&dout), pair_free(&din), pair_free(&dw),
        pair_free(&db);
    cpu->ops->free(cpu, ws_c);
    gpu->ops->free(gpu, ws_g);
    check_gpu_ok();
}
END_TEST

static const struct linear_case {
    int in_f, out_f, bias, n;
} linear_cases[] = {{37, 10, 1, 5}, {256, 128, 0, 16}, {1000, 3, 1, 2}, {1, 7, 1, 9}};

/* _i: case * 3 + din mode */
START_TEST(test_linear)
{
    const struct linear_case *lc = &linear_cases[_i / 3];
    const int mode = _i % 3, n = lc->n;
    tb_linear_shape s = {.in_features = lc->in_f, .out_features = lc->out_f};
    const size_t in_n = (size_t)n * lc->in_f, out_n = (size_t)n * lc->out_f, w_n = (size_t)lc->in_f * lc->out_f;
    const float wscale = 1.0f / sqrtf((float)lc->in_f);
    pair x = pair_normal(in_n, 600 + (uint32_t)_i, 1.0f, 0.0f), w = pair_normal(w_n, 610 + (uint32_t)_i, wscale, 0.0f);
    pair b = pair_normal((size_t)lc->out_f, 620 + (uint32_t)_i, wscale, 0.0f), out = pair_f32(NULL, out_n);
    cpu->ops->linear_forward(cpu, FC(out), FC(x), FC(w), lc->bias ? FC(b) : NULL, &s, n);
    gpu->ops->linear_forward(gpu, FG(out), FG(x), FG(w), lc->bias ? FG(b) : NULL, &s, n);
    char what[200];
    snprintf(what, sizeof what, "linear %d->%d n %d forward", lc->in_f, lc->out_f, n);
    check_close(&out, TOL_FP32, what);

    pair dout = pair_normal(out_n, 630 + (uint32_t)_i, 1.0f, 0.0f), din = pair_normal(in_n, 640 + (uint32_t)_i, 1.0f, 0.0f);
    pair dw = pair_normal(w_n, 650 + (uint32_t)_i, 0.5f, 0.0f), db = pair_normal((size_t)lc->out_f, 660, 0.5f, 0.0f);
    cpu->ops->linear_backward(cpu, mode == 2 ? NULL : FC(din), FC(dw), lc->bias ? FC(db) : NULL, FC(dout), FC(x),
                              FC(w), &s, n, mode == 1);
    gpu->ops->linear_backward(gpu, mode == 2 ? NULL : FG(din), FG(dw), lc->bias ? FG(db) : NULL, FG(dout), FG(x),
                              FG(w), &s, n, mode == 1);
    snprintf(what, sizeof what, "linear %d->%d backward (%s): din", lc->in_f, lc->out_f, din_modes[mode]);
    if (mode == 2) check_same_f32(&din, what);
    else check_close(&din, TOL_FP32, what);
    snprintf(what, sizeof what, "linear %d->%d backward (%s): dweight", lc->in_f, lc->out_f, din_modes[mode]);
    check_close(&dw, TOL_FP32, what);
    snprintf(what, sizeof what, "linear %d->%d backward (%s): dbias", lc->in_f, lc->out_f, din_modes[mode]);
    if (lc->bias) check_close(&db, TOL_FP32, what);
    else check_same_f32(&db, what);
    pair_free(&x), pair_free(&w), pair_free(&b), pair_free(&out), pair_free(&dout), pair_free(&din), pair_free(&dw),
        pair_free(&db);
    check_gpu_ok();
}
END_TEST

START_TEST(test_batchnorm_train)
{
    const struct bn_case *bc = &bn_cases[_i];
    tb_bn_shape s = {.c = bc->c, .hw = bc->hw, .eps = bc->eps, .momentum = bc->momentum};
    const size_t count = (size_t)bc->n * bc->c * bc->hw, C = (size_t)bc->c;
    float *var = new_normal(C, 700 + (uint32_t)_i, 0.5f, 0.0f);
    for (size_t c = 0; c < C; c++) var[c] = var[c] * var[c] + 0.5f;
    /* an offset mean, as activations have, so the variance is not the mean square */
    pair x = pair_normal(count, 710 + (uint32_t)_i, 2.0f, 3.0f), out = pair_f32(NULL, count);
    pair gamma = pair_normal(C, 720 + (uint32_t)_i, 0.5f, 1.0f), beta = pair_normal(C, 730 + (uint32_t)_i, 0.5f, 0.0f);
    pair rm = pair_normal(C, 740 + (uint32_t)_i, 1.0f, 0.0f), rv = pair_f32(var, C);
    pair sm = pair_f32(NULL, C), si = pair_f32(NULL, C);
    cpu->ops->batchnorm_forward_train(cpu, FC(out), FC(sm), FC(si), FC(rm), FC(rv), FC(x), FC(gamma), FC(beta), &s,
                                      bc->n);
    gpu->ops->batchnorm_forward_train(gpu, FG(out), FG(sm), FG(si), FG(rm), FG(rv), FG(x), FG(gamma), FG(beta), &s,
                                      bc->n);
    const pair *bufs[] = {&out, &sm, &si, &rm, &rv};
    const char *names[] = {"out", "save_mean", "save_invstd", "running_mean", "running_var"};
    char what[200];
    for (size_t k = 0; k < TB_ARRAY_LEN(bufs); k++) {
        snprintf(what, sizeof what, "batchnorm train c %d hw %d n %d: %s", bc->c, bc->hw, bc->n, names[k]);
        check_close(bufs[k], TOL_FP32, what);
    }
    pair_free(&x), pair_free(&out), pair_free(&gamma), pair_free(&beta), pair_free(&rm), pair_free(&rv),
        pair_free(&sm), pair_free(&si);
    free(var);
    check_gpu_ok();
}
END_TEST

/* _i: case * 3 + din mode; both backends get the CPU's saved statistics */
START_TEST(test_batchnorm_backward)
{
    const struct bn_case *bc = &bn_cases[_i / 3];
    const int mode = _i % 3;
    tb_bn_shape s = {.c = bc->c, .hw = bc->hw, .eps = bc->eps, .momentum = bc->momentum};
    const size_t count = (size_t)bc->n * bc->c * bc->hw, C = (size_t)bc->c;
    float *x_h = new_normal(count, 750 + (uint32_t)_i, 2.0f, 3.0f), *gamma_h = new_normal(C, 760, 0.5f, 1.0f);
    float *beta_h = new_normal(C, 761, 0.5f, 0.0f), *out_h = xmalloc(count * sizeof(float));
    float *sm_h = xmalloc(C * sizeof(float)), *si_h = xmalloc(C * sizeof(float));
    float *rm_h = calloc(C, sizeof(float)), *rv_h = xmalloc(C * sizeof(float));
    ck_assert(rm_h != NULL);
    for (size_t c = 0; c < C; c++) rv_h[c] = 1.0f;
    batchnorm_forward_train(out_h, sm_h, si_h, rm_h, rv_h, x_h, gamma_h, beta_h, &s, bc->n);
    pair x = pair_f32(x_h, count), gamma = pair_f32(gamma_h, C), sm = pair_f32(sm_h, C), si = pair_f32(si_h, C);
    pair dout = pair_normal(count, 770 + (uint32_t)_i, 1.0f, 0.0f), din = pair_normal(count, 780 + (uint32_t)_i, 1.0f, 0.0f);
    pair dg = pair_normal(C, 790 + (uint32_t)_i, 0.5f, 0.0f), db = pair_normal(C, 800 + (uint32_t)_i, 0.5f, 0.0f);
    cpu->ops->batchnorm_backward(cpu, mode == 2 ? NULL : FC(din), FC(dg), FC(db), FC(dout), FC(x), FC(gamma), FC(sm),
                                 FC(si), &s, bc->n, mode == 1);
    gpu->ops->batchnorm_backward(gpu, mode == 2 ? NULL : FG(din), FG(dg), FG(db), FG(dout), FG(x), FG(gamma), FG(sm),
                                 FG(si), &s, bc->n, mode == 1);
    char what[200];
    snprintf(what, sizeof what, "batchnorm backward c %d hw %d n %d (%s): din", bc->c, bc->hw, bc->n, din_modes[mode]);
    if (mode == 2) check_same_f32(&din, what);
    else check_close(&din, TOL_FP32, what);
    snprintf(what, sizeof what, "batchnorm backward c %d hw %d n %d (%s): dgamma", bc->c, bc->hw, bc->n, din_modes[mode]);
    check_close(&dg, TOL_FP32, what);
    snprintf(what, sizeof what, "batchnorm backward c %d hw %d n %d (%s): dbeta", bc->c, bc->hw, bc->n, din_modes[mode]);
    check_close(&db, TOL_FP32, what);
    pair_free(&x), pair_free(&gamma), pair_free(&sm), pair_free(&si), pair_free(&dout), pair_free(&din),
        pair_free(&dg), pair_free(&db);
    free(x_h), free(gamma_h), free(beta_h), free(out_h), free(sm_h), free(si_h), free(rm_h), free(rv_h);
    check_gpu_ok();
}
END_TEST

/* ---- memory, upload, failed, describe ---------------------------------------------- */

START_TEST(test_memory_ops)
{
    const size_t bytes = ((size_t)1 << 20) + 3;
    unsigned char *d = gpu->ops->alloc(gpu, bytes);
    ck_assert_ptr_nonnull(d);
    unsigned char *h = host_copy(gpu, d, bytes);
    for (size_t i = 0; i < bytes; i++) ck_assert_msg(h[i] == 0, "alloc is not zeroed at byte %zu", i);
    for (size_t i = 0; i < bytes; i++) h[i] = (unsigned char)(i * 7 + 1);
    gpu->ops->to_device(gpu, d, h, bytes);
    gpu->ops->zero(gpu, d + 1000, 4097);
    unsigned char *back = host_copy(gpu, d, bytes);
    for (size_t i = 0; i < bytes; i++) {
        unsigned char want = i >= 1000 && i < 1000 + 4097 ? 0 : (unsigned char)(i * 7 + 1);
        ck_assert_msg(back[i] == want, "byte %zu is %d after zero(1000, 4097), expected %d", i, back[i], want);
    }
    /* a copy out of the middle */
    unsigned char part[100];
    gpu->ops->to_host(gpu, part, d + 5001, sizeof part);
    ck_assert(memcmp(part, back + 5001, sizeof part) == 0);
    gpu->ops->free(gpu, d);
    free(h), free(back);
    check_gpu_ok();
}
END_TEST

/* upload's source may be reused on return, even while the copy overlaps queued work */
START_TEST(test_upload)
{
    ck_assert(gpu->ops->struct_size == sizeof(tb_backend_ops) && gpu->ops->upload && gpu->ops->synchronize);
    const size_t n = (size_t)1 << 22;
    float *h = new_normal(n, 900, 1.0f, 0.0f), *keep = xmalloc(n * sizeof(float));
    memcpy(keep, h, n * sizeof(float));
    float *a = dev_alloc(gpu, n * sizeof(float)), *b = dev_alloc(gpu, n * sizeof(float));
    gpu->ops->to_device(gpu, a, h, n * sizeof(float));
    gpu->ops->relu_forward(gpu, a, a, n); /* queued work on a while b is uploaded */
    gpu->ops->upload(gpu, b, h, n * sizeof(float));
    memset(h, 0xff, n * sizeof(float)); /* reuse the source at once */
    gpu->ops->synchronize(gpu);
    float *back = host_copy(gpu, b, n * sizeof(float));
    ck_assert_msg(memcmp(back, keep, n * sizeof(float)) == 0, "upload did not copy what the source held at the call");
    gpu->ops->free(gpu, a);
    gpu->ops->free(gpu, b);
    free(h), free(keep), free(back);
    check_gpu_ok();
}
END_TEST

START_TEST(test_failed_is_zero_after_normal_use)
{
    ck_assert(gpu->ops->struct_size == sizeof(tb_backend_ops) && gpu->ops->failed);
    /* a little of everything */
    const int n = 4, classes = 10;
    float *x = new_normal((size_t)n * classes, 910, 1.0f, 0.0f);
    float *d = dev_alloc(gpu, sizeof(float) * n * classes), *dl = dev_alloc(gpu, sizeof(float) * n * classes);
    gpu->ops->to_device(gpu, d, x, sizeof(float) * n * classes);
    gpu->ops->relu_forward(gpu, d, d, (size_t)n * classes);
    int32_t t[4] = {0, 3, 9, 1};
    float loss = gpu->ops->loss(gpu, dl, d, t, n, classes, TB_LOSS_CROSS_ENTROPY);
    ck_assert(isfinite(loss));
    gpu->ops->synchronize(gpu);
    tb_status st = TB_EDEVICE;
    char msg[512] = "";
    ck_assert_msg(gpu->ops->failed(gpu, &st, msg, sizeof msg) == 0, "failed after normal use: status %d: %s", (int)st,
                  msg);
    gpu->ops->free(gpu, d);
    gpu->ops->free(gpu, dl);
    free(x);
}
END_TEST

START_TEST(test_describe_names_conv_algorithms)
{
    ck_assert(gpu->ops->struct_size == sizeof(tb_backend_ops) && gpu->ops->describe);
    const struct conv_case cc = {"describe", 5, 11, 11, 7, 3, 3, 1, 1, 1, 1, 1, 1, 3};
    tb_conv2d_shape s = make_conv(&cc);
    const size_t in_n = (size_t)cc.n * s.in_c * s.in_h * s.in_w, out_n = (size_t)cc.n * s.out_c * s.out_h * s.out_w;
    const size_t w_n = (size_t)s.out_c * s.in_c * s.kh * s.kw;
    float *x = dev_alloc(gpu, in_n * 4), *out = dev_alloc(gpu, out_n * 4), *w = dev_alloc(gpu, w_n * 4);
    float *b = dev_alloc(gpu, (size_t)s.out_c * 4), *din = dev_alloc(gpu, in_n * 4), *dw = dev_alloc(gpu, w_n * 4);
    float *db = dev_alloc(gpu, (size_t)s.out_c * 4), *ws = conv_ws(gpu, &s, cc.n);
    gpu->ops->conv2d_forward(gpu, out, x, w, b, &s, cc.n, ws);
    gpu->ops->conv2d_backward(gpu, din, dw, db, out, x, w, &s, cc.n, 0, ws);
    gpu->ops->synchronize(gpu);
    static char buf[1 << 16];
    buf[0] = '\0';
    gpu->ops->describe(gpu, buf, sizeof buf);
    float *bufs[] = {x, out, w, b, din, dw, db, ws};
    for (size_t i = 0; i < TB_ARRAY_LEN(bufs); i++) gpu->ops->free(gpu, bufs[i]);
    check_gpu_ok();
    ck_assert_msg(buf[0] != '\0', "describe gave nothing after a convolution");
    TBT_ASSERT_HAS(buf, "fwd=");
}
END_TEST

START_TEST(test_memory_budget)
{
    tb_backend_options opt = {.threads = 1, .gpu_memory_budget = (size_t)1 << 20};
    tb_backend *be = NULL;
    tb_err err = {{0}};
    ck_assert_msg(tb_backend_create(&(tb_device){.cuda = 1, .index = 0}, &opt, &be, &err) == TB_OK,
                  "cuda:0 with a 1 MiB budget: %s", err.msg);
    void *big = be->ops->alloc(be, (size_t)64 << 20);
    ck_assert_msg(big == NULL, "a 64 MiB alloc succeeded under a 1 MiB budget");

    /* a net that needs far more than 1 MiB (activations of 64 x 64 x 64 x 64 floats) */
    tb_net *net = tb_net_new(3, 64, 64);
    tb_init_spec init = tb_init_torch_default();
    int x = tb_net_conv2d(net, TB_NET_INPUT, "features.0", 64, 3, 1, 1, 1, 1, init);
    x = tb_net_relu(net, x);
    x = tb_net_adaptive_avgpool(net, x, 1, 1);
    x = tb_net_flatten(net, x);
    tb_net_linear(net, x, "classifier", 10, 1, init);
    memset(&err, 0, sizeof err);
    tb_status st = tb_net_build(net, be, 64, &err);
    ck_assert_msg(st == TB_ENOMEM, "building a 64+ MiB net under a 1 MiB budget: status %d (%s)", (int)st, err.msg);
    ck_assert(err.msg[0] != '\0');
    tb_net_free(net);

    /* small allocations still work, and so do the ops on them */
    const size_t n = 4096;
    float *h = new_normal(n, 920, 1.0f, 0.0f), *back = xmalloc(n * sizeof(float));
    float *a = be->ops->alloc(be, n * sizeof(float)), *b = be->ops->alloc(be, n * sizeof(float));
    ck_assert_msg(a && b, "16 KiB allocations fail under a 1 MiB budget after an out-of-memory");
    be->ops->to_device(be, a, h, n * sizeof(float));
    be->ops->relu_forward(be, b, a, n);
    be->ops->to_host(be, back, b, n * sizeof(float));
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(back[i] == (h[i] < 0 ? 0.0f : h[i]), "relu after an out-of-memory: [%zu] = %g for %g", i,
                      (double)back[i], (double)h[i]);
    be->ops->free(be, a);
    be->ops->free(be, b);
    tb_backend_destroy(be);
    free(h), free(back);
}
END_TEST

/* ---- a network trained on each backend ------------------------------------------------ */

enum { NET_BATCH = 8, NET_CLASSES = 5, NET_STEPS = 5, NET_C = 3, NET_H = 16, NET_W = 16 };

/* conv-BN-ReLU-maxpool, a fire module (a node read by two convolutions whose
 * outputs are concatenated), dropout, a depthwise conv, adaptive pooling, linear */
static tb_net *small_net(void)
{
    tb_net *net = tb_net_new(NET_C, NET_H, NET_W);
    tb_init_spec init = tb_init_torch_default();
    int x = tb_net_conv2d(net, TB_NET_INPUT, "features.0", 8, 3, 1, 1, 1, 1, init);
    x = tb_net_batchnorm(net, x, "features.1", 1e-5f, 0.1f);
    x = tb_net_relu(net, x);
    x = tb_net_maxpool(net, x, 3, 2, 1, 1);
    int sq = tb_net_relu(net, tb_net_conv2d(net, x, "features.4.squeeze", 4, 1, 1, 0, 1, 1, init));
    int e1 = tb_net_relu(net, tb_net_conv2d(net, sq, "features.4.expand1x1", 6, 1, 1, 0, 1, 1, init));
    int e3 = tb_net_relu(net, tb_net_conv2d(net, sq, "features.4.expand3x3", 6, 3, 1, 1, 1, 1, init));
    int cat[2] = {e1, e3};
    x = tb_net_concat(net, cat, 2);
    x = tb_net_dropout(net, x, 0.3f);
    x = tb_net_relu(net, tb_net_conv2d(net, x, "features.6", 12, 3, 2, 1, 12, 0, init));
    x = tb_net_adaptive_avgpool(net, x, 3, 3);
    x = tb_net_flatten(net, x);
    tb_net_linear(net, x, "classifier", NET_CLASSES, 1, init);
    return net;
}

typedef struct trained {
    float *values; /* every state_dict tensor, concatenated */
    size_t count;
    float loss[NET_STEPS];
} trained;

/* NET_STEPS SGD steps (momentum) on fixed random batches from init seed 11 */
static trained train_small(tb_backend *be)
{
    tb_net *net = small_net();
    tb_err err = {{0}};
    ck_assert_msg(tb_net_build(net, be, NET_BATCH, &err) == TB_OK, "%s: %s", be->device, err.msg);
    tb_net_init_params(net, 11);
    tb_net_set_seed(net, 5);
    tb_optim_config cfg;
    tb_optim_defaults(&cfg, TB_OPT_SGD);
    cfg.lr = 0.05, cfg.momentum = 0.9, cfg.weight_decay = 1e-4;
    tb_optimizer opt;
    ck_assert_msg(tb_optimizer_create(&opt, net, &cfg, &err) == TB_OK, "%s", err.msg);
    const size_t sample = (size_t)NET_C * NET_H * NET_W;
    float *x = dev_alloc(be, sizeof(float) * sample * NET_BATCH);
    trained t = {0};
    for (int step = 0; step < NET_STEPS; step++) {
        float *xh = new_normal(sample * NET_BATCH, 1000 + (uint32_t)step, 1.0f, 0.0f);
        int32_t *y = random_targets(NET_BATCH, NET_CLASSES, 1100 + (uint32_t)step);
        be->ops->to_device(be, x, xh, sizeof(float) * sample * NET_BATCH);
        tb_net_forward(net, x, NET_BATCH, 1, (uint64_t)opt.scalars.step);
        float *dl = tb_net_output_grad_buffer(net);
        t.loss[step] = be->ops->loss(be, dl, tb_net_output(net), y, NET_BATCH, NET_CLASSES, TB_LOSS_CROSS_ENTROPY);
        ck_assert_msg(isfinite(t.loss[step]), "%s: loss %g at step %d", be->device, (double)t.loss[step], step);
        tb_net_zero_grads(net);
        tb_net_backward(net, dl, NET_BATCH);
        tb_optimizer_step(&opt, net);
        free(xh), free(y);
    }
    for (int i = 0; i < tb_net_param_count(net); i++) t.count += tb_net_param(net, i)->count;
    t.values = xmalloc(t.count * sizeof(float));
    size_t at = 0;
    for (int i = 0; i < tb_net_param_count(net); i++) {
        tb_net_param_get(net, i, t.values + at);
        at += tb_net_param(net, i)->count;
    }
    tb_status st = TB_OK;
    char msg[512] = "";
    ck_assert_msg(be->ops->failed(be, &st, msg, sizeof msg) == 0,
                  "%s failed while training: %s", be->device, msg);
    be->ops->free(be, x);
    tb_optimizer_destroy(&opt);
    tb_net_free(net);
    return t;
}

START_TEST(test_training_is_deterministic)
{
    trained a = train_small(gpu), b = train_small(gpu);
    ck_assert_uint_eq(a.count, b.count);
    ck_assert_msg(memcmp(a.loss, b.loss, sizeof a.loss) == 0, "losses differ between two runs: %.9g vs %.9g at step 1",
                  (double)a.loss[0], (double)b.loss[0]);
    tb_net *names = small_net();
    tb_err err;
    tb_backend *tmp = tb_backend_cpu_create(1);
    ck_assert(tb_net_build(names, tmp, 1, &err) == TB_OK);
    size_t at = 0;
    for (int i = 0; i < tb_net_param_count(names); i++) {
        const tb_param *p = tb_net_param(names, i);
        size_t diffs = 0;
        for (size_t k = 0; k < p->count; k++) diffs += memcmp(&a.values[at + k], &b.values[at + k], sizeof(float)) != 0;
        ck_assert_msg(diffs == 0, "%s: %zu of %zu values differ between two identical runs on %s", p->name, diffs,
                      p->count, gpu->device);
        at += p->count;
    }
    tb_net_free(names);
    tb_backend_destroy(tmp);
    free(a.values), free(b.values);
    check_gpu_ok();
}
END_TEST

START_TEST(test_training_matches_cpu)
{
    trained g = train_small(gpu), c = train_small(cpu);
    ck_assert_uint_eq(g.count, c.count);
    for (int s = 0; s < NET_STEPS; s++)
        ck_assert_msg(fabs((double)g.loss[s] - (double)c.loss[s]) <= TOL_TRAIN * fabs((double)c.loss[s]),
                      "loss at step %d: cuda %.9g, cpu %.9g", s + 1, (double)g.loss[s], (double)c.loss[s]);
    tb_net *names = small_net();
    tb_err err;
    tb_backend *tmp = tb_backend_cpu_create(1);
    ck_assert(tb_net_build(names, tmp, 1, &err) == TB_OK);
    size_t at = 0;
    for (int i = 0; i < tb_net_param_count(names); i++) {
        const tb_param *p = tb_net_param(names, i);
        size_t w;
        double e = rel_max_err(g.values + at, c.values + at, p->count, &w);
        ck_assert_msg(e <= TOL_TRAIN, "%s after %d steps: max|cuda-cpu|/max|cpu| = %.3g > %g; worst [%zu]: cuda %.9g, cpu %.9g",
                      p->name, NET_STEPS, e, TOL_TRAIN, w, (double)g.values[at + w], (double)c.values[at + w]);
        at += p->count;
    }
    tb_net_free(names);
    tb_backend_destroy(tmp);
    free(g.values), free(c.values);
    check_gpu_ok();
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("cuda");
    TCase *t = tcase_create("bitwise");
    tcase_add_test(t, test_relu);
    tcase_add_loop_test(t, test_activation, 0, (int)TB_ARRAY_LEN(act_names));
    tcase_add_test(t, test_copy_or_add);
    tcase_add_test(t, test_all_finite);
    tcase_add_loop_test(t, test_maxpool, 0, (int)TB_ARRAY_LEN(pool_cases));
    tcase_add_loop_test(t, test_avgpool, 0, 2 * (int)TB_ARRAY_LEN(pool_cases));
    tcase_add_loop_test(t, test_adaptive_avgpool, 0, (int)TB_ARRAY_LEN(adaptive_cases));
    tcase_add_loop_test(t, test_concat, 0, (int)TB_ARRAY_LEN(concat_cases));
    tcase_add_loop_test(t, test_dropout, 0, (int)TB_ARRAY_LEN(dropout_cases));
    tcase_add_loop_test(t, test_batchnorm_eval, 0, (int)TB_ARRAY_LEN(bn_cases));
    tcase_add_loop_test(t, test_optim, 0, N_OPTIM_CASES);
    tcase_add_loop_test(t, test_optim_strided, 0, N_OPTIM_CASES);
    suite_add_tcase(s, t);

    TCase *l = tcase_create("loss");
    tcase_add_loop_test(l, test_loss, 0, 4 * (int)TB_ARRAY_LEN(loss_shapes));
    tcase_add_loop_test(l, test_loss_bad_target, 0, 4);
    suite_add_tcase(s, l);

    TCase *f = tcase_create("fp32");
    tcase_add_loop_test(f, test_conv2d, 0, 3 * (int)TB_ARRAY_LEN(conv_cases));
    tcase_add_loop_test(f, test_linear, 0, 3 * (int)TB_ARRAY_LEN(linear_cases));
    tcase_add_loop_test(f, test_batchnorm_train, 0, (int)TB_ARRAY_LEN(bn_cases));
    tcase_add_loop_test(f, test_batchnorm_backward, 0, 3 * (int)TB_ARRAY_LEN(bn_cases));
    suite_add_tcase(s, f);

    TCase *m = tcase_create("backend");
    tcase_add_test(m, test_memory_ops);
    tcase_add_test(m, test_upload);
    tcase_add_test(m, test_failed_is_zero_after_normal_use);
    tcase_add_test(m, test_describe_names_conv_algorithms);
    tcase_add_test(m, test_memory_budget);
    suite_add_tcase(s, m);

    TCase *n = tcase_create("training");
    tcase_add_test(n, test_training_is_deterministic);
    tcase_add_test(n, test_training_matches_cpu);
    suite_add_tcase(s, n);
    return s;
}

int main(void)
{
    char why[512] = "";
    if (tb_cuda_device_count(why, sizeof why) == 0) {
        for (char *p = why; *p; p++)
            if (*p == '\n' || *p == '\r') *p = ' ';
        printf("test_cuda: SKIP: no CUDA device: %s\n", why[0] ? why : "(no reason given)");
        return 77;
    }
    tb_backend_options opt = {.threads = 1};
    tb_err err = {{0}};
    if (tb_backend_create(&(tb_device){.cuda = 1, .index = 0}, &opt, &gpu, &err) != TB_OK) {
        fprintf(stderr, "test_cuda: cannot create a backend on cuda:0: %s\n", err.msg);
        return 1;
    }
    cpu = tb_backend_cpu_create(1);
    if (!cpu) {
        fprintf(stderr, "test_cuda: cannot create the CPU backend\n");
        return 1;
    }
    printf("test_cuda: %s against %s\n", gpu->name, cpu->name);
    fflush(stdout);
    SRunner *sr = srunner_create(suite());
    srunner_set_fork_status(sr, CK_NOFORK); /* see the top of this file */
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    tb_backend_destroy(gpu);
    tb_backend_destroy(cpu);
    return failed != 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
