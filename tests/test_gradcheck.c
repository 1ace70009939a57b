/* test_gradcheck.c: finite-difference checks of every layer's backward kernel.
 *
 * For each layer, a scalar objective L = sum(out * R) with a fixed random R
 * (so dL/dout = R). The backward kernel, given dout = R, must return dL/dx
 * for every input and parameter; it is compared with the central difference
 *     (L(x + h e_j) - L(x - h e_j)) / (x_j+h - (x_j-h))
 * where the step in the denominator is the one actually taken in float32.
 *
 * Tolerance. The kernels compute in float32: one output element carries a
 * rounding error of a few ulp (~1e-7 relative); the difference of two
 * objectives divided by 2h = 0.02 magnifies it ~50x, to ~1e-5 of the
 * gradient's scale when a handful of outputs move (conv, pooling) and ~1e-4 for
 * batchnorm, where every output moves through the batch statistics. The
 * truncation error of a central difference is O(h^2 f''') ~ 1e-4 for
 * batchnorm and zero for the linear layers. Hence
 *     |analytic - fd| <= FD_RTOL * max(|analytic|, |fd|) + FD_ATOL * max|analytic|
 * with FD_RTOL 1e-2 and FD_ATOL 1e-3: two orders above the expected error, and
 * still far below what a wrong formula gives (errors of order the gradient
 * itself); measured on the CPU kernels, the worst case uses ~2% of it
 * (batchnorm's din). A finite difference only checks that backward is the
 * derivative of forward: a bug both share (a wrong avg-pool divisor) is
 * caught by test_layers' comparison with torch instead. The objective is accumulated in double so that it adds no
 * rounding of its own. For relu and max-pool the inputs stay more than 2h away
 * from the kink (|x| >= 0.05) or from any other value of the same window
 * (values spaced by 0.05), so the finite difference never crosses a kink. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/common.h"
#include "engine/layers/layers.h"
#include "base/rng.h"
#include "tb_test.h"

#define FD_H 1e-2f
#define FD_RTOL 1e-2
#define FD_ATOL 1e-3

/* ------------------------------------------------------------------ helpers */

static float *alloc_f(size_t n)
{
    float *p = calloc(n + 1, sizeof(float));
    ck_assert(p != NULL);
    return p;
}

static float *randn(size_t n, uint32_t sub, float scale, float offset)
{
    float *p = alloc_f(n);
    tb_rng r;
    tb_rng_init(&r, 20240611, TB_STREAM_INIT, sub);
    for (size_t i = 0; i < n; i++) p[i] = offset + scale * tb_rng_normal(&r);
    return p;
}

/* Values spaced by 0.05, in a random order: no ties, no kinks within 2h. */
static float *spaced(size_t n, uint32_t sub)
{
    float *p = alloc_f(n);
    int32_t *perm = malloc(n * sizeof(int32_t));
    ck_assert(perm != NULL);
    tb_rng_permutation(perm, (int32_t)n, 77, TB_STREAM_SHUFFLE, sub);
    for (size_t i = 0; i < n; i++) p[i] = 0.05f * ((float)perm[i] - (float)(n / 2) + 0.5f);
    free(perm);
    return p;
}

typedef void (*forward_fn)(const void *ctx, float *out);

typedef struct problem {
    forward_fn forward;
    const void *ctx;
    size_t nout;
    const float *R; /* dL/dout */
    float *out;     /* scratch */
} problem;

static double objective(const problem *p)
{
    p->forward(p->ctx, p->out);
    double L = 0;
    for (size_t i = 0; i < p->nout; i++) L += (double)p->out[i] * (double)p->R[i];
    return L;
}

/* Compares grad (analytic dL/dx) with central differences over every element of x. */
static void gradcheck(const problem *p, float *x, const float *grad, size_t n, const char *what)
{
    double scale = 0;
    for (size_t j = 0; j < n; j++) scale = fmax(scale, fabs((double)grad[j]));
    double worst = 0, worst_fd = 0;
    size_t wj = 0;
    for (size_t j = 0; j < n; j++) {
        const float v = x[j];
        x[j] = v + FD_H;
        const double vp = x[j], Lp = objective(p);
        x[j] = v - FD_H;
        const double vm = x[j], Lm = objective(p);
        x[j] = v;
        const double fd = (Lp - Lm) / (vp - vm);
        const double g = grad[j];
        const double tol = FD_RTOL * fmax(fabs(g), fabs(fd)) + FD_ATOL * scale + 1e-12;
        const double ratio = fabs(g - fd) / tol;
        if (!(ratio <= worst)) {
            worst = ratio;
            wj = j;
            worst_fd = fd;
        }
    }
    printf("gradcheck %-40s n=%-5zu max|grad|=%-10.4g worst err/tol=%.3g\n", what, n, scale, worst);
    ck_assert_msg(worst <= 1.0, "%s: element %zu: analytic %.7g, finite difference %.7g (err/tol %.3g)", what, wj,
                  (double)grad[wj], worst_fd, worst);
}

static problem make_problem(forward_fn f, const void *ctx, size_t nout, uint32_t sub)
{
    problem p = {.forward = f, .ctx = ctx, .nout = nout, .R = randn(nout, 1000 + sub, 1.0f, 0.0f),
                 .out = alloc_f(nout)};
    return p;
}

static void free_problem(problem *p)
{
    free((void *)p->R);
    free(p->out);
}

/* ------------------------------------------------------------------- conv2d */

typedef struct conv_ctx {
    tb_conv2d_shape s;
    int n;
    float *in, *w, *b, *ws;
} conv_ctx;

static void conv_fwd(const void *c, float *out)
{
    const conv_ctx *k = c;
    conv2d_forward(out, k->in, k->w, k->b, &k->s, k->n, k->ws);
}

typedef struct conv_case {
    const char *name;
    int n, in_c, in_h, in_w, out_c, k, stride, pad, groups, bias;
} conv_case;

static const conv_case gc_conv[] = {
    {"conv2d 3x3 s1 p1", 2, 3, 5, 5, 2, 3, 1, 1, 1, 1},
    {"conv2d groups=2 3x3 s2 p1 7x6", 2, 4, 7, 6, 6, 3, 2, 1, 2, 1},
    {"conv2d 5x5 s2 p2 9x8 no bias", 2, 2, 9, 8, 3, 5, 2, 2, 1, 0},
    {"conv2d 1x1", 3, 3, 4, 3, 2, 1, 1, 0, 1, 1},
    {"conv2d 7x7 s2 in_c=1", 1, 1, 11, 12, 2, 7, 2, 0, 1, 1},
};

START_TEST(test_gradcheck_conv2d)
{
    const conv_case *cc = &gc_conv[_i];
    conv_ctx k;
    memset(&k, 0, sizeof k);
    k.n = cc->n;
    k.s = (tb_conv2d_shape){.in_c = cc->in_c, .in_h = cc->in_h, .in_w = cc->in_w, .out_c = cc->out_c,
                            .kh = cc->k, .kw = cc->k, .stride_h = cc->stride, .stride_w = cc->stride,
                            .pad_h = cc->pad, .pad_w = cc->pad, .groups = cc->groups};
    ck_assert_int_eq(conv2d_infer(&k.s), 0);
    size_t nin = (size_t)k.n * k.s.in_c * k.s.in_h * k.s.in_w;
    size_t nout = (size_t)k.n * k.s.out_c * k.s.out_h * k.s.out_w;
    size_t nw = (size_t)k.s.out_c * (k.s.in_c / k.s.groups) * k.s.kh * k.s.kw, nb = (size_t)k.s.out_c;
    uint32_t sub = 10 * (uint32_t)_i;
    k.in = randn(nin, sub + 1, 1.0f, 0.0f);
    k.w = randn(nw, sub + 2, 0.4f, 0.0f);
    k.b = cc->bias ? randn(nb, sub + 3, 0.5f, 0.0f) : NULL;
    k.ws = alloc_f(conv2d_workspace_floats(&k.s, k.n));
    problem p = make_problem(conv_fwd, &k, nout, sub);

    float *din = alloc_f(nin), *dw = alloc_f(nw), *db = alloc_f(nb);
    conv2d_backward(din, dw, cc->bias ? db : NULL, p.R, k.in, k.w, &k.s, k.n, 0, k.ws);
    char what[128];
    snprintf(what, sizeof what, "%s: din", cc->name);
    gradcheck(&p, k.in, din, nin, what);
    snprintf(what, sizeof what, "%s: dweight", cc->name);
    gradcheck(&p, k.w, dw, nw, what);
    if (cc->bias) {
        snprintf(what, sizeof what, "%s: dbias", cc->name);
        gradcheck(&p, k.b, db, nb, what);
    }
    free_problem(&p);
    free(k.in), free(k.w), free(k.b), free(k.ws), free(din), free(dw), free(db);
}
END_TEST

/* ------------------------------------------------------------------- linear */

typedef struct linear_ctx {
    tb_linear_shape s;
    int n;
    float *in, *w, *b;
} linear_ctx;

static void linear_fwd(const void *c, float *out)
{
    const linear_ctx *k = c;
    linear_forward(out, k->in, k->w, k->b, &k->s, k->n);
}

START_TEST(test_gradcheck_linear)
{
    linear_ctx k = {.s = {.in_features = 6, .out_features = 4}, .n = 3};
    size_t nin = 18, nout = 12, nw = 24, nb = 4;
    k.in = randn(nin, 101, 1.0f, 0.0f);
    k.w = randn(nw, 102, 0.5f, 0.0f);
    k.b = randn(nb, 103, 0.5f, 0.0f);
    problem p = make_problem(linear_fwd, &k, nout, 100);
    float *din = alloc_f(nin), *dw = alloc_f(nw), *db = alloc_f(nb);
    linear_backward(din, dw, db, p.R, k.in, k.w, &k.s, k.n, 0);
    gradcheck(&p, k.in, din, nin, "linear: din");
    gradcheck(&p, k.w, dw, nw, "linear: dweight");
    gradcheck(&p, k.b, db, nb, "linear: dbias");
    free_problem(&p);
    free(k.in), free(k.w), free(k.b), free(din), free(dw), free(db);
}
END_TEST

/* --------------------------------------------------------------------- relu */

typedef struct relu_ctx {
    float *in;
    size_t n;
} relu_ctx;

static void relu_fwd(const void *c, float *out)
{
    const relu_ctx *k = c;
    relu_forward(out, k->in, k->n);
}

START_TEST(test_gradcheck_relu)
{
    relu_ctx k = {.n = 60};
    k.in = randn(k.n, 201, 1.0f, 0.0f);
    for (size_t i = 0; i < k.n; i++) /* |x| >= 0.05 > 2h: away from the kink */
        k.in[i] = copysignf(0.05f + fabsf(k.in[i]), k.in[i]);
    problem p = make_problem(relu_fwd, &k, k.n, 200);
    float *out = alloc_f(k.n), *din = alloc_f(k.n);
    relu_forward(out, k.in, k.n);
    relu_backward(din, p.R, out, k.n, 0);
    gradcheck(&p, k.in, din, k.n, "relu: din");
    free_problem(&p);
    free(k.in), free(out), free(din);
}
END_TEST

/* --------------------------------------- tanh, sigmoid, leaky ReLU, GELU
 * Smooth but for leaky ReLU's kink at 0, which the inputs keep 0.05 > 2h
 * away from, as relu's. Inputs in about [-3, 3]: tanh and sigmoid do not
 * saturate there, so the derivative is well above the float noise. */

typedef struct act_ctx {
    int kind; /* 0 tanh, 1 sigmoid, 2 leaky, 3 gelu, 4 gelu tanh */
    float slope;
    size_t n;
    float *in;
} act_ctx;

static void act_fwd(const void *c, float *out)
{
    const act_ctx *k = c;
    switch (k->kind) {
    case 0: tanh_forward(out, k->in, k->n); break;
    case 1: sigmoid_forward(out, k->in, k->n); break;
    case 2: leaky_relu_forward(out, k->in, k->n, k->slope); break;
    default: gelu_forward(out, k->in, k->n, k->kind == 4); break;
    }
}

static const char *const gc_act[] = {"tanh: din", "sigmoid: din", "leaky_relu(0.2): din", "gelu: din",
                                     "gelu(tanh): din"};

START_TEST(test_gradcheck_activation)
{
    act_ctx k = {.kind = _i, .slope = 0.2f, .n = 60};
    k.in = randn(k.n, 300 + (uint32_t)_i, 1.5f, 0.0f);
    for (size_t i = 0; i < k.n; i++) k.in[i] = copysignf(0.05f + fabsf(k.in[i]), k.in[i]);
    problem p = make_problem(act_fwd, &k, k.n, 300 + (uint32_t)_i);
    float *out = alloc_f(k.n), *din = alloc_f(k.n);
    act_fwd(&k, out);
    switch (k.kind) {
    case 0: tanh_backward(din, p.R, out, k.n, 0); break;
    case 1: sigmoid_backward(din, p.R, out, k.n, 0); break;
    case 2: leaky_relu_backward(din, p.R, k.in, k.n, k.slope, 0); break;
    default: gelu_backward(din, p.R, k.in, k.n, k.kind == 4, 0); break;
    }
    gradcheck(&p, k.in, din, k.n, gc_act[_i]);
    free_problem(&p);
    free(k.in), free(out), free(din);
}
END_TEST

/* ------------------------------------------------------------------ pooling */

typedef struct pool_ctx {
    tb_pool_shape s;
    int n, kind; /* 0 max, 1 avg, 2 adaptive */
    float *in;
    int32_t *arg;
} pool_ctx;

static void pool_fwd(const void *c, float *out)
{
    const pool_ctx *k = c;
    if (k->kind == 0)
        maxpool_forward(out, k->arg, k->in, &k->s, k->n);
    else if (k->kind == 1)
        avgpool_forward(out, k->in, &k->s, k->n);
    else
        adaptive_avgpool_forward(out, k->in, &k->s, k->n);
}

typedef struct pool_case {
    const char *name;
    int kind, n, c, in_h, in_w, k, stride, pad, ceil, cip, out_h, out_w;
} pool_case;

static const pool_case gc_pool[] = {
    {"maxpool k3 s2 ceil 8x8", 0, 2, 2, 8, 8, 3, 2, 0, 1, 1, 0, 0},
    {"maxpool k3 s2 p1 7x9", 0, 2, 2, 7, 9, 3, 2, 1, 0, 1, 0, 0},
    {"maxpool k2 s2 p1 ceil 5x5", 0, 2, 2, 5, 5, 2, 2, 1, 1, 1, 0, 0},
    {"avgpool k2 s2 6x8", 1, 2, 2, 6, 8, 2, 2, 0, 0, 1, 0, 0},
    {"avgpool k3 s2 p1 ceil cip 8x8", 1, 2, 2, 8, 8, 3, 2, 1, 1, 1, 0, 0},
    {"avgpool k3 s2 p1 ceil no-cip 8x7", 1, 2, 2, 8, 7, 3, 2, 1, 1, 0, 0, 0},
    {"adaptive_avgpool 5x7 -> 3x2", 2, 2, 3, 5, 7, 0, 0, 0, 0, 0, 3, 2},
    {"adaptive_avgpool 6x5 -> 1x1", 2, 2, 3, 6, 5, 0, 0, 0, 0, 0, 1, 1},
    {"adaptive_avgpool 3x3 -> 5x4", 2, 2, 2, 3, 3, 0, 0, 0, 0, 0, 5, 4},
};

START_TEST(test_gradcheck_pool)
{
    const pool_case *pc = &gc_pool[_i];
    pool_ctx k;
    memset(&k, 0, sizeof k);
    k.kind = pc->kind;
    k.n = pc->n;
    k.s = (tb_pool_shape){.c = pc->c, .in_h = pc->in_h, .in_w = pc->in_w, .kh = pc->k, .kw = pc->k,
                          .stride_h = pc->stride, .stride_w = pc->stride, .pad_h = pc->pad, .pad_w = pc->pad,
                          .ceil_mode = pc->ceil, .count_include_pad = pc->cip};
    if (k.kind == 2) {
        k.s.out_h = pc->out_h;
        k.s.out_w = pc->out_w;
    } else {
        ck_assert_int_eq(pool_infer(&k.s), 0);
    }
    size_t nin = (size_t)k.n * k.s.c * k.s.in_h * k.s.in_w, nout = (size_t)k.n * k.s.c * k.s.out_h * k.s.out_w;
    uint32_t sub = 300 + 10 * (uint32_t)_i;
    k.in = k.kind == 0 ? spaced(nin, sub + 1) : randn(nin, sub + 1, 1.0f, 0.0f);
    k.arg = malloc((nout + 1) * sizeof(int32_t));
    ck_assert(k.arg != NULL);
    problem p = make_problem(pool_fwd, &k, nout, sub);
    float *din = alloc_f(nin);
    pool_fwd(&k, p.out);
    if (k.kind == 0)
        maxpool_backward(din, p.R, k.arg, &k.s, k.n, 0);
    else if (k.kind == 1)
        avgpool_backward(din, p.R, &k.s, k.n, 0);
    else
        adaptive_avgpool_backward(din, p.R, &k.s, k.n, 0);
    char what[128];
    snprintf(what, sizeof what, "%s: din", pc->name);
    gradcheck(&p, k.in, din, nin, what);
    free_problem(&p);
    free(k.in), free(k.arg), free(din);
}
END_TEST

/* ------------------------------------------------------------------- concat */

typedef struct concat_ctx {
    float *ins[3];
    int chans[3], k, hw, n;
} concat_ctx;

static void concat_fwd(const void *c, float *out)
{
    const concat_ctx *k = c;
    const float *ins[3] = {k->ins[0], k->ins[1], k->ins[2]};
    concat_forward(out, ins, k->chans, k->k, k->hw, k->n);
}

START_TEST(test_gradcheck_concat)
{
    concat_ctx k = {.chans = {2, 1, 3}, .k = 3, .hw = 5, .n = 2};
    float *dins[3];
    int acc[3] = {0, 0, 0};
    for (int i = 0; i < 3; i++) {
        size_t cnt = (size_t)k.n * k.chans[i] * k.hw;
        k.ins[i] = randn(cnt, 401 + (uint32_t)i, 1.0f, 0.0f);
        dins[i] = alloc_f(cnt);
    }
    size_t nout = (size_t)k.n * 6 * k.hw;
    problem p = make_problem(concat_fwd, &k, nout, 400);
    concat_backward(dins, p.R, k.chans, k.k, k.hw, k.n, acc);
    for (int i = 0; i < 3; i++) {
        char what[64];
        snprintf(what, sizeof what, "concat: din%d", i);
        gradcheck(&p, k.ins[i], dins[i], (size_t)k.n * k.chans[i] * k.hw, what);
    }
    for (int i = 0; i < 3; i++) free(k.ins[i]), free(dins[i]);
    free_problem(&p);
}
END_TEST

/* ------------------------------------------------------------------ dropout */

typedef struct dropout_ctx {
    float *in;
    uint8_t *mask;
    size_t n;
    float p;
} dropout_ctx;

static void dropout_fwd(const void *c, float *out)
{
    const dropout_ctx *k = c;
    /* fixed (seed, layer, step): the same mask at every evaluation */
    dropout_forward(out, k->mask, k->in, k->n, k->p, 31337, 2, 11);
}

START_TEST(test_gradcheck_dropout)
{
    dropout_ctx k = {.n = 80, .p = 0.4f};
    k.in = randn(k.n, 501, 1.0f, 0.0f);
    k.mask = malloc(k.n);
    ck_assert(k.mask != NULL);
    problem p = make_problem(dropout_fwd, &k, k.n, 500);
    dropout_fwd(&k, p.out);
    size_t kept = 0;
    for (size_t i = 0; i < k.n; i++) kept += k.mask[i] != 0;
    ck_assert(kept > 0 && kept < k.n); /* both branches exercised */
    float *din = alloc_f(k.n);
    dropout_backward(din, p.R, k.mask, k.n, k.p, 0);
    gradcheck(&p, k.in, din, k.n, "dropout p=0.4: din");
    free_problem(&p);
    free(k.in), free(k.mask), free(din);
}
END_TEST

/* ---------------------------------------------------------------- batchnorm */

typedef struct bn_ctx {
    tb_bn_shape s;
    int n;
    float *in, *gamma, *beta;
    float *rm, *rv, *mean, *invstd; /* scratch: running stats are not part of L */
} bn_ctx;

static void bn_fwd(const void *c, float *out)
{
    const bn_ctx *k = c;
    batchnorm_forward_train(out, k->mean, k->invstd, k->rm, k->rv, k->in, k->gamma, k->beta, &k->s, k->n);
}

typedef struct bn_case {
    const char *name;
    int n, c, hw;
} bn_case;

static const bn_case gc_bn[] = {
    {"batchnorm train n=3 c=3 hw=16", 3, 3, 16},
    {"batchnorm train n=4 c=2 hw=1", 4, 2, 1},
    {"batchnorm1d train n=6 c=3 ([n, c]: hw=1)", 6, 3, 1},
    {"batchnorm train n=1 c=2 hw=9", 1, 2, 9},
};

START_TEST(test_gradcheck_batchnorm_train)
{
    const bn_case *bc = &gc_bn[_i];
    bn_ctx k = {.s = {.c = bc->c, .hw = bc->hw, .eps = 1e-5f, .momentum = 0.1f}, .n = bc->n};
    size_t cnt = (size_t)k.n * k.s.c * k.s.hw, nc = (size_t)k.s.c;
    uint32_t sub = 600 + 10 * (uint32_t)_i;
    /* per-sample values of magnitude ~1 around a non-zero mean; the batch std
     * stays ~1 so that h = 1e-2 is small against it */
    k.in = randn(cnt, sub + 1, 1.0f, 0.7f);
    k.gamma = randn(nc, sub + 2, 0.3f, 1.0f);
    k.beta = randn(nc, sub + 3, 0.3f, 0.0f);
    k.rm = alloc_f(nc);
    k.rv = alloc_f(nc);
    k.mean = alloc_f(nc);
    k.invstd = alloc_f(nc);
    problem p = make_problem(bn_fwd, &k, cnt, sub);
    bn_fwd(&k, p.out);
    float *mean = alloc_f(nc), *invstd = alloc_f(nc);
    memcpy(mean, k.mean, nc * sizeof(float));
    memcpy(invstd, k.invstd, nc * sizeof(float));
    float *din = alloc_f(cnt), *dg = alloc_f(nc), *db = alloc_f(nc);
    batchnorm_backward(din, dg, db, p.R, k.in, k.gamma, mean, invstd, &k.s, k.n, 0);
    char what[128];
    snprintf(what, sizeof what, "%s: din", bc->name);
    gradcheck(&p, k.in, din, cnt, what);
    snprintf(what, sizeof what, "%s: dgamma", bc->name);
    gradcheck(&p, k.gamma, dg, nc, what);
    snprintf(what, sizeof what, "%s: dbeta", bc->name);
    gradcheck(&p, k.beta, db, nc, what);
    free_problem(&p);
    free(k.in), free(k.gamma), free(k.beta), free(k.rm), free(k.rv), free(k.mean), free(k.invstd);
    free(mean), free(invstd), free(din), free(dg), free(db);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("gradcheck");
    TCase *t = tcase_create("finite_differences");
    tcase_add_loop_test(t, test_gradcheck_conv2d, 0, (int)TB_ARRAY_LEN(gc_conv));
    tcase_add_test(t, test_gradcheck_linear);
    tcase_add_test(t, test_gradcheck_relu);
    tcase_add_loop_test(t, test_gradcheck_activation, 0, (int)TB_ARRAY_LEN(gc_act));
    tcase_add_loop_test(t, test_gradcheck_pool, 0, (int)TB_ARRAY_LEN(gc_pool));
    tcase_add_test(t, test_gradcheck_concat);
    tcase_add_test(t, test_gradcheck_dropout);
    tcase_add_loop_test(t, test_gradcheck_batchnorm_train, 0, (int)TB_ARRAY_LEN(gc_bn));
    /* hundreds of forward calls per case; slow when OpenMP/OpenBLAS threads
     * outnumber free cores, beyond Check's 4 s default */
    tcase_set_timeout(t, 300);
    suite_add_tcase(s, t);
    return s;
}

int main(void) { return tbt_run(suite()); }
