/* test_init.c: core/engine/weight_init.c's schemes have torch.nn.init's distributions.
 *
 * tunebench draws from its own Philox streams, so values cannot match torch's;
 * instead large fills are checked against each scheme's formula: bounds, mean,
 * standard deviation and the fraction within one standard deviation (which
 * tells a normal, 68.3%, from a uniform, 57.7%). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/weight_init.h"
#include "tb_test.h"

#define COUNT 400000
#define SEED 20240613u

typedef struct stats {
    double mean, std, min, max, within1; /* within1: fraction with |x - mean| <= std */
} stats;

static stats summarize(const float *w, size_t n)
{
    stats s = {0, 0, INFINITY, -INFINITY, 0};
    for (size_t i = 0; i < n; i++) {
        s.mean += w[i];
        s.min = fmin(s.min, w[i]);
        s.max = fmax(s.max, w[i]);
    }
    s.mean /= (double)n;
    for (size_t i = 0; i < n; i++) s.std += ((double)w[i] - s.mean) * ((double)w[i] - s.mean);
    s.std = sqrt(s.std / (double)(n - 1));
    for (size_t i = 0; i < n; i++) s.within1 += fabs((double)w[i] - s.mean) <= s.std;
    s.within1 /= (double)n;
    return s;
}

static float *fill(tb_init_kind kind, float arg, int fan_in, int fan_out, int is_bias, uint64_t seed, uint32_t sub)
{
    float *w = malloc(COUNT * sizeof *w);
    ck_assert(w != NULL);
    tb_rng r;
    tb_rng_init(&r, seed, TB_STREAM_INIT, sub);
    tb_init_fill(w, COUNT, kind, arg, fan_in, fan_out, is_bias, &r);
    return w;
}

/* Statistical tolerances for COUNT = 4e5 draws: the sample mean has standard
 * error std/sqrt(COUNT) = 1.6e-3 std, checked at 6 standard errors (1e-2 std);
 * the sample std has relative standard error sqrt((kurtosis - 1) / (4 COUNT)),
 * 7e-4 (uniform) or 1.1e-3 (normal), checked at 5e-3 (> 4.5 standard errors);
 * the within-one-std fraction has standard error sqrt(p(1-p)/COUNT) = 8e-4,
 * checked at 5e-3. The seed is fixed, so the test is deterministic; the
 * margins only guard against a seed that happens to be unlucky. */
#define MEAN_TOL 1e-2
#define STD_RTOL 5e-3
#define FRAC_TOL 5e-3

static void expect_uniform(const float *w, double bound, const char *what)
{
    stats s = summarize(w, COUNT);
    double fb = (float)bound; /* the bound as the float that bounds the draws */
    ck_assert_msg(s.min >= -fb && s.max <= fb, "%s: range [%g, %g] outside [-%g, %g]", what, s.min, s.max, fb, fb);
    ck_assert_msg(s.min < -0.999 * bound && s.max > 0.999 * bound, "%s: range [%g, %g] does not fill +-%g", what,
                  s.min, s.max, bound);
    double std = bound / sqrt(3.0); /* U(-b, b) */
    ck_assert_msg(fabs(s.mean) <= MEAN_TOL * std, "%s: mean %g, expected 0 (std %g)", what, s.mean, std);
    ck_assert_msg(fabs(s.std / std - 1) <= STD_RTOL, "%s: std %g, expected %g", what, s.std, std);
    ck_assert_msg(fabs(s.within1 - 1 / sqrt(3.0)) <= FRAC_TOL, "%s: %g within one std, uniform has %g", what,
                  s.within1, 1 / sqrt(3.0));
}

static void expect_normal(const float *w, double std, const char *what)
{
    stats s = summarize(w, COUNT);
    ck_assert_msg(fabs(s.mean) <= MEAN_TOL * std, "%s: mean %g, expected 0 (std %g)", what, s.mean, std);
    ck_assert_msg(fabs(s.std / std - 1) <= STD_RTOL, "%s: std %g, expected %g", what, s.std, std);
    double p = erf(1 / sqrt(2.0)); /* 0.6827 */
    ck_assert_msg(fabs(s.within1 - p) <= FRAC_TOL, "%s: %g within one std, normal has %g", what, s.within1, p);
    /* 4e5 normal draws reach beyond 4 std (expected ~25 of them) but not 7. */
    ck_assert_msg(fmax(-s.min, s.max) > 4 * std && fmax(-s.min, s.max) < 7 * std, "%s: extremes [%g, %g] for std %g",
                  what, s.min, s.max, std);
}

static void expect_constant(const float *w, float v, const char *what)
{
    for (size_t i = 0; i < COUNT; i++)
        ck_assert_msg(w[i] == v, "%s: element %zu is %g, expected %g", what, i, (double)w[i], (double)v);
}

/* Unequal fans, so that xavier's fan_in + fan_out differs from 2 * fan_in. */
enum { FAN_IN = 288, FAN_OUT = 64 };

START_TEST(test_weight_schemes)
{
    float *w = fill(TB_INIT_DEFAULT, 0, FAN_IN, FAN_OUT, 0, SEED, 0);
    expect_uniform(w, 1 / sqrt((double)FAN_IN), "default weight (kaiming_uniform a=sqrt(5))");
    free(w);
    w = fill(TB_INIT_KAIMING_UNIFORM, 0, FAN_IN, FAN_OUT, 0, SEED, 1);
    expect_uniform(w, sqrt(6.0 / FAN_IN), "kaiming_uniform");
    free(w);
    w = fill(TB_INIT_KAIMING_NORMAL, 0, FAN_IN, FAN_OUT, 0, SEED, 2);
    expect_normal(w, sqrt(2.0 / FAN_IN), "kaiming_normal");
    free(w);
    w = fill(TB_INIT_XAVIER_UNIFORM, 0, FAN_IN, FAN_OUT, 0, SEED, 3);
    expect_uniform(w, sqrt(6.0 / (FAN_IN + FAN_OUT)), "xavier_uniform");
    free(w);
    w = fill(TB_INIT_XAVIER_NORMAL, 0, FAN_IN, FAN_OUT, 0, SEED, 4);
    expect_normal(w, sqrt(2.0 / (FAN_IN + FAN_OUT)), "xavier_normal");
    free(w);
    w = fill(TB_INIT_NORMAL, 0.02f, FAN_IN, FAN_OUT, 0, SEED, 5);
    expect_normal(w, 0.02, "normal(std=0.02)");
    free(w);
    w = fill(TB_INIT_CONSTANT, 0.375f, FAN_IN, FAN_OUT, 0, SEED, 6);
    expect_constant(w, 0.375f, "constant weight");
    free(w);
}
END_TEST

START_TEST(test_bias_schemes)
{
    float *w = fill(TB_INIT_DEFAULT, 0, FAN_IN, FAN_OUT, 1, SEED, 7);
    expect_uniform(w, 1 / sqrt((double)FAN_IN), "default bias");
    free(w);
    w = fill(TB_INIT_CONSTANT, -0.5f, FAN_IN, FAN_OUT, 1, SEED, 7);
    expect_constant(w, -0.5f, "constant bias");
    free(w);
    /* torch's reset_parameters: bound 0 when fan_in == 0. */
    w = fill(TB_INIT_DEFAULT, 0, 0, FAN_OUT, 1, SEED, 7);
    expect_constant(w, 0.0f, "default bias, fan_in 0");
    free(w);
    /* Other kinds are not bias rules: the bias is 0. */
    w = fill(TB_INIT_KAIMING_NORMAL, 0, FAN_IN, FAN_OUT, 1, SEED, 7);
    expect_constant(w, 0.0f, "kaiming_normal bias");
    free(w);
}
END_TEST

/* The default weight bound does not depend on fan_out, kaiming's does not
 * either, xavier's does. */
START_TEST(test_fans)
{
    float *a = fill(TB_INIT_KAIMING_UNIFORM, 0, 50, 10, 0, SEED, 8);
    float *b = fill(TB_INIT_KAIMING_UNIFORM, 0, 50, 999, 0, SEED, 8);
    ck_assert(memcmp(a, b, COUNT * sizeof *a) == 0);
    free(a);
    free(b);
    a = fill(TB_INIT_XAVIER_UNIFORM, 0, 50, 10, 0, SEED, 8);
    expect_uniform(a, sqrt(6.0 / 60), "xavier_uniform 50/10");
    free(a);
    a = fill(TB_INIT_DEFAULT, 0, 3, 7, 0, SEED, 9);
    expect_uniform(a, 1 / sqrt(3.0), "default weight fan_in 3");
    free(a);
}
END_TEST

START_TEST(test_reproducible)
{
    static const tb_init_kind kinds[] = {TB_INIT_DEFAULT, TB_INIT_KAIMING_UNIFORM, TB_INIT_KAIMING_NORMAL,
                                         TB_INIT_XAVIER_UNIFORM, TB_INIT_XAVIER_NORMAL, TB_INIT_NORMAL};
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        float *a = fill(kinds[k], 0.1f, 100, 20, 0, SEED, 3);
        float *b = fill(kinds[k], 0.1f, 100, 20, 0, SEED, 3);
        float *c = fill(kinds[k], 0.1f, 100, 20, 0, SEED + 1, 3);
        float *d = fill(kinds[k], 0.1f, 100, 20, 0, SEED, 4);
        ck_assert_msg(memcmp(a, b, COUNT * sizeof *a) == 0, "%s: same seed, different values",
                      tb_init_name(kinds[k]));
        size_t same_c = 0, same_d = 0;
        for (size_t i = 0; i < COUNT; i++) {
            same_c += a[i] == c[i];
            same_d += a[i] == d[i];
        }
        /* Independent draws coincide only by chance (24-bit uniforms: ~COUNT/2^24). */
        ck_assert_msg(same_c < COUNT / 1000, "%s: another seed repeats %zu values", tb_init_name(kinds[k]), same_c);
        ck_assert_msg(same_d < COUNT / 1000, "%s: another tensor repeats %zu values", tb_init_name(kinds[k]),
                      same_d);
        free(a);
        free(b);
        free(c);
        free(d);
    }
}
END_TEST

START_TEST(test_names)
{
    const char *names[] = {"default",       "kaiming_uniform", "kaiming_normal", "xavier_uniform",
                           "xavier_normal", "normal",          "constant"};
    for (int i = 0; i < (int)(sizeof names / sizeof names[0]); i++) {
        tb_init_kind k;
        ck_assert_int_eq(tb_init_parse(names[i], &k), 0);
        ck_assert_int_eq(k, (tb_init_kind)i);
        ck_assert_str_eq(tb_init_name(k), names[i]);
        ck_assert_ptr_nonnull(strstr(tb_init_names(), names[i]));
    }
    tb_init_kind k;
    ck_assert_int_eq(tb_init_parse("orthogonal", &k), -1);
    ck_assert_int_eq(tb_init_parse("Default", &k), -1);
    tb_init_spec s = tb_init_torch_default();
    ck_assert_int_eq(s.weight, TB_INIT_DEFAULT);
    ck_assert_int_eq(s.bias, TB_INIT_DEFAULT);
}
END_TEST

static Suite *init_suite(void)
{
    Suite *s = suite_create("init");
    TCase *tc = tcase_create("init");
    tcase_add_test(tc, test_weight_schemes);
    tcase_add_test(tc, test_bias_schemes);
    tcase_add_test(tc, test_fans);
    tcase_add_test(tc, test_reproducible);
    tcase_add_test(tc, test_names);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tbt_run(init_suite()); }
