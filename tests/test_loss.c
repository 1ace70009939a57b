/* test_loss.c: core/engine/loss.c against PyTorch (tests/fixtures/optim_loss.h5, written
 * by tests/reference/gen_optim_loss.py) and against finite differences. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/loss.h"
#include "tb_test.h"

#define FIXTURE "optim_loss.h5"

static const tb_loss_kind kinds[] = {TB_LOSS_CROSS_ENTROPY, TB_LOSS_NLL, TB_LOSS_L1, TB_LOSS_MSE};
static const char *const cases[] = {"random", "large", "ties"};

#define N_KINDS ((int)(sizeof kinds / sizeof kinds[0]))
#define N_CASES ((int)(sizeof cases / sizeof cases[0]))

/* Tolerances against torch: rtol 1e-5 as the engine's contract. The atol 1e-7
 * covers values that torch computes with cancellation in float32, e.g. the
 * cross-entropy gradient at a target whose probability is ~1, which torch forms
 * as -1/n + p/n (absolute error ~ ulp(1/n) = 1.5e-8 for n = 5) while we round the
 * exact (p - 1)/n; gradients are O(1/n), so 1e-7 is still ~1e-6 relative to them. */
#define RTOL 1e-5
#define ATOL 1e-7

typedef struct loss_case {
    float *logits, *grad, *loss;
    int32_t *targets;
    int n, classes;
} loss_case;

static loss_case read_case(tb_loss_kind kind, const char *name)
{
    char path[128];
    loss_case c;
    const char *file = tbt_fixture(FIXTURE);
    snprintf(path, sizeof path, "/loss/%s/%s", tb_loss_name(kind), name);
    c.n = (int)tbt_read_attr(file, path, "n");
    c.classes = (int)tbt_read_attr(file, path, "classes");
    char ds[160];
    snprintf(ds, sizeof ds, "%s/logits", path);
    c.logits = tbt_read_f32(file, ds, NULL, NULL, NULL);
    snprintf(ds, sizeof ds, "%s/grad", path);
    c.grad = tbt_read_f32(file, ds, NULL, NULL, NULL);
    snprintf(ds, sizeof ds, "%s/loss", path);
    c.loss = tbt_read_f32(file, ds, NULL, NULL, NULL);
    snprintf(ds, sizeof ds, "%s/targets", path);
    c.targets = tbt_read_i32(file, ds, NULL);
    return c;
}

static void free_case(loss_case *c)
{
    free(c->logits);
    free(c->grad);
    free(c->loss);
    free(c->targets);
}

/* Every loss and case: value and gradient as torch's. */
START_TEST(test_against_torch)
{
    tb_loss_kind kind = kinds[_i / N_CASES];
    const char *name = cases[_i % N_CASES];
    loss_case c = read_case(kind, name);
    size_t count = (size_t)c.n * (size_t)c.classes;
    float *d = malloc(count * sizeof *d);
    ck_assert(d != NULL);
    memset(d, 0xff, count * sizeof *d); /* NaN: every element must be assigned */
    float v = tb_loss(d, c.logits, c.targets, c.n, c.classes, kind);
    char what[96];
    snprintf(what, sizeof what, "%s/%s loss", tb_loss_name(kind), name);
    TBT_ASSERT_CLOSE(&v, c.loss, 1, RTOL, ATOL, what);
    snprintf(what, sizeof what, "%s/%s grad", tb_loss_name(kind), name);
    TBT_ASSERT_CLOSE(d, c.grad, count, RTOL, ATOL, what);
    /* Without dlogits the value is the same. */
    float v2 = tb_loss(NULL, c.logits, c.targets, c.n, c.classes, kind);
    ck_assert_msg(v2 == v, "%s: value %.9g without dlogits, %.9g with", what, (double)v2, (double)v);
    free(d);
    free_case(&c);
}
END_TEST

/* ---- finite differences against a double-precision reference ------------- */

/* The losses of loss.h, written independently in double. */
static double ref_loss(tb_loss_kind kind, const double *x, const int32_t *t, int n, int classes)
{
    double total = 0;
    for (int i = 0; i < n; i++) {
        const double *row = x + (size_t)i * classes;
        if (kind == TB_LOSS_CROSS_ENTROPY) {
            double m = row[0], s = 0;
            for (int c = 1; c < classes; c++) m = fmax(m, row[c]);
            for (int c = 0; c < classes; c++) s += exp(row[c] - m);
            total += m + log(s) - row[t[i]];
        } else if (kind == TB_LOSS_NLL) {
            total -= row[t[i]];
        } else {
            for (int c = 0; c < classes; c++) {
                double diff = row[c] - (c == t[i] ? 1.0 : 0.0);
                total += kind == TB_LOSS_L1 ? fabs(diff) : diff * diff;
            }
        }
    }
    return (kind == TB_LOSS_L1 || kind == TB_LOSS_MSE) ? total / ((double)n * classes) : total / n;
}

/* Central differences of ref_loss, step h, at every element. At an L1 kink
 * (x == target) the symmetric difference is 0, which is torch's sign(0). */
static void fd_grad(double *g, tb_loss_kind kind, const float *logits, const int32_t *t, int n, int classes,
                    double h)
{
    size_t count = (size_t)n * classes;
    double *x = malloc(count * sizeof *x);
    ck_assert(x != NULL);
    for (size_t k = 0; k < count; k++) x[k] = logits[k];
    for (size_t k = 0; k < count; k++) {
        double x0 = x[k];
        x[k] = x0 + h;
        double up = ref_loss(kind, x, t, n, classes);
        x[k] = x0 - h;
        double down = ref_loss(kind, x, t, n, classes);
        x[k] = x0;
        g[k] = (up - down) / (2 * h);
    }
    free(x);
}

/* The analytic gradient is the derivative of the value: tb_loss's value equals
 * the double reference (so the reference is the same function), and its
 * gradient equals the reference's central differences. h = 1e-4 in double:
 * truncation error h^2 |f'''| / 6 <= ~1e-9 (cross entropy; nll, l1 and mse are
 * piecewise polynomials of degree <= 2, exact unless a kink lies within h,
 * which the fixtures avoid except for exact ties, where the symmetric
 * difference gives sign(0) = 0); rounding 2e-16 |loss| / h <= 1e-7 for the
 * "large" case (|loss| up to ~4e4 for mse), inside atol 1e-6. rtol 1e-5 leaves
 * room for the float32 rounding of the analytic gradient (~6e-8 relative). */
START_TEST(test_finite_differences)
{
    tb_loss_kind kind = kinds[_i / N_CASES];
    const char *name = cases[_i % N_CASES];
    loss_case c = read_case(kind, name);
    size_t count = (size_t)c.n * (size_t)c.classes;
    float *d = malloc(count * sizeof *d);
    double *x = malloc(count * sizeof *x), *g = malloc(count * sizeof *g);
    float *gf = malloc(count * sizeof *gf);
    ck_assert(d && x && g && gf);
    for (size_t k = 0; k < count; k++) x[k] = c.logits[k];

    float v = tb_loss(d, c.logits, c.targets, c.n, c.classes, kind);
    float ref = (float)ref_loss(kind, x, c.targets, c.n, c.classes);
    char what[96];
    snprintf(what, sizeof what, "%s/%s value vs double reference", tb_loss_name(kind), name);
    TBT_ASSERT_CLOSE(&v, &ref, 1, 1e-6, 1e-9, what);

    fd_grad(g, kind, c.logits, c.targets, c.n, c.classes, 1e-4);
    for (size_t k = 0; k < count; k++) gf[k] = (float)g[k];
    snprintf(what, sizeof what, "%s/%s gradient vs finite differences", tb_loss_name(kind), name);
    TBT_ASSERT_CLOSE(d, gf, count, 1e-5, 1e-6, what);
    free(d);
    free(x);
    free(g);
    free(gf);
    free_case(&c);
}
END_TEST

/* A perturbation of the float inputs themselves moves tb_loss's float value by
 * grad . (xp - xm) to first order: checks tb_loss end to end (value and
 * gradient of the same function) without the double reference. The step
 * 1e-2 on values of magnitude ~1 leaves float rounding (~1e-7) far below the
 * change (~1e-3); the tolerance 2e-3 relative covers the third-order term of
 * the central difference. The inputs stay >= 0.05 away from L1's kinks. */
START_TEST(test_directional_derivative)
{
    tb_loss_kind kind = kinds[_i];
    enum { N = 4, C = 6 };
    float x[N * C], xp[N * C], xm[N * C], d[N * C];
    const int32_t t[N] = {0, 5, 2, 3};
    const float h = 1e-2f;
    for (int k = 0; k < N * C; k++) {
        x[k] = (float)sin(1.7 * k + 0.3) * 1.5f;
        float target = (k % C == t[k / C]) ? 1.0f : 0.0f;
        if (fabsf(x[k] - target) < 0.05f) x[k] = target + 0.1f;
        float dir = (float)cos(2.3 * k + 0.1);
        xp[k] = x[k] + h * dir;
        xm[k] = x[k] - h * dir;
    }
    tb_loss(d, x, t, N, C, kind);
    double analytic = 0;
    for (int k = 0; k < N * C; k++) analytic += (double)d[k] * ((double)xp[k] - (double)xm[k]);
    double fd = (double)tb_loss(NULL, xp, t, N, C, kind) - (double)tb_loss(NULL, xm, t, N, C, kind);
    ck_assert_msg(fabs(fd - analytic) <= 2e-3 * fabs(analytic) + 1e-6, "%s: loss change %.9g, gradient predicts %.9g",
                  tb_loss_name(kind), fd, analytic);
}
END_TEST

START_TEST(test_names)
{
    for (int i = 0; i < N_KINDS; i++) {
        tb_loss_kind k;
        ck_assert_int_eq(tb_loss_parse(tb_loss_name(kinds[i]), &k), 0);
        ck_assert_int_eq(k, kinds[i]);
        ck_assert_ptr_nonnull(strstr(tb_loss_names(), tb_loss_name(kinds[i])));
    }
    tb_loss_kind k;
    ck_assert_int_eq(tb_loss_parse("hinge", &k), -1);
    ck_assert_int_eq(tb_loss_parse("", &k), -1);
    ck_assert_str_eq(tb_loss_name(TB_LOSS_MSE), "mse");
    ck_assert_str_eq(tb_loss_name(TB_LOSS_NLL), "nll");
}
END_TEST

/* Hand-checked values: uniform logits give cross entropy log(classes); a
 * perfect one-hot output gives zero l1/mse and a zero gradient (sign(0) = 0). */
START_TEST(test_known_values)
{
    float x[6] = {0.5f, 0.5f, 0.5f, 0, 1, 0};
    int32_t t[2] = {1, 1};
    float d[6];
    float ce = tb_loss(d, x, t, 1, 3, TB_LOSS_CROSS_ENTROPY);
    ck_assert_float_eq_tol(ce, (float)log(3.0), 1e-7f);
    ck_assert_float_eq_tol(d[1], (float)(1.0 / 3 - 1), 1e-7f);
    float l1 = tb_loss(d, x + 3, t, 1, 3, TB_LOSS_L1);
    ck_assert_float_eq(l1, 0.0f);
    for (int k = 0; k < 3; k++) ck_assert_float_eq(d[k], 0.0f);
    float mse = tb_loss(d, x + 3, t, 1, 3, TB_LOSS_MSE);
    ck_assert_float_eq(mse, 0.0f);
    float nll = tb_loss(d, x, t, 2, 3, TB_LOSS_NLL);
    ck_assert_float_eq_tol(nll, -(0.5f + 1.0f) / 2, 1e-7f);
    ck_assert_float_eq(d[1], -0.5f);
    ck_assert_float_eq(d[0], 0.0f);
    ck_assert_float_eq(d[4], -0.5f);
}
END_TEST

/* A target outside [0, classes) is not read out of bounds: the loss is NaN. */
START_TEST(test_bad_target)
{
    float x[3] = {1, 2, 3}, d[3];
    int32_t t = 3;
    ck_assert(isnan(tb_loss(d, x, &t, 1, 3, TB_LOSS_CROSS_ENTROPY)));
    t = -1;
    ck_assert(isnan(tb_loss(NULL, x, &t, 1, 3, TB_LOSS_NLL)));
}
END_TEST

static Suite *loss_suite(void)
{
    Suite *s = suite_create("loss");
    TCase *tc = tcase_create("loss");
    tcase_add_loop_test(tc, test_against_torch, 0, N_KINDS * N_CASES);
    tcase_add_loop_test(tc, test_finite_differences, 0, N_KINDS * N_CASES);
    tcase_add_loop_test(tc, test_directional_derivative, 0, N_KINDS);
    tcase_add_test(tc, test_names);
    tcase_add_test(tc, test_known_values);
    tcase_add_test(tc, test_bad_target);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tbt_run(loss_suite()); }
