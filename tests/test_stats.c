/* test_stats.c: core/analysis/stats.c against SciPy 1.10 (the cases of
 * tests/fixtures/stats_reference.txt, written by
 * tests/reference/stats_reference.py), the summary on data worked by hand,
 * the bootstrap's reproducibility, and every refusal with its message. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analysis/stats.h"
#include "base/common.h"
#include "base/rng.h"
#include "tb_test.h"

/* SciPy agreement: p-values absolutely, statistics relatively or absolutely. */
#define P_TOL 1e-6
#define STAT_TOL 1e-6

/* ---- the fixture file --------------------------------------------------------------------- */

#define MAX_GROUPS 8

typedef struct reference_case {
    char name[64], test[32];
    int k;                      /* rows read: x and y for spearman, else groups */
    double *rows[MAX_GROUPS];
    int sizes[MAX_GROUPS];
    double statistic, p_value;
} reference_case;

/* The numbers after a row's label ("x 1 2 3"): malloc'd, count in *n. */
static double *parse_row(const char *text, int *n)
{
    size_t cap = 16;
    double *v = malloc(cap * sizeof *v);
    ck_assert_ptr_nonnull(v);
    *n = 0;
    char *end;
    for (double d = strtod(text, &end); end != text; d = strtod(text, &end)) {
        if ((size_t)*n == cap) {
            cap *= 2;
            v = realloc(v, cap * sizeof *v);
            ck_assert_ptr_nonnull(v);
        }
        v[(*n)++] = d;
        text = end;
    }
    return v;
}

static void free_case(reference_case *c)
{
    for (int i = 0; i < c->k; i++) free(c->rows[i]);
    memset(c, 0, sizeof *c);
}

/* Reads the next case; 0 at the end of the file. */
static int read_case(FILE *f, reference_case *c)
{
    memset(c, 0, sizeof *c);
    char *line = NULL;
    size_t cap = 0;
    int in_case = 0, done = 0;
    while (!done && getline(&line, &cap, f) > 0) {
        line[strcspn(line, "\n")] = '\0';
        if (line[0] == '#' || line[0] == '\0') continue;
        char *space = strchr(line, ' ');
        const char *value = space ? space + 1 : "";
        if (space) *space = '\0';
        if (!strcmp(line, "case")) {
            tb_copy_str(c->name, sizeof c->name, value);
            in_case = 1;
        } else if (!strcmp(line, "test")) {
            tb_copy_str(c->test, sizeof c->test, value);
        } else if (!strcmp(line, "x") || !strcmp(line, "y") || !strcmp(line, "group")) {
            ck_assert_msg(c->k < MAX_GROUPS, "%s: more than %d rows", c->name, MAX_GROUPS);
            c->rows[c->k] = parse_row(value, &c->sizes[c->k]);
            c->k++;
        } else if (!strcmp(line, "statistic")) {
            c->statistic = strtod(value, NULL);
        } else if (!strcmp(line, "pvalue")) {
            c->p_value = strtod(value, NULL);
        } else if (!strcmp(line, "end")) {
            done = 1;
        } else {
            ck_abort_msg("stats_reference.txt: unknown line \"%s\" in case %s", line, c->name);
        }
    }
    free(line);
    ck_assert_msg(!in_case || done, "case %s has no end line", c->name);
    return done;
}

/* ---- comparing with SciPy ----------------------------------------------------------------- */

/* |got - want| measured as the tolerance reads it; NaN and inf must match exactly. */
static double deviation(double got, double want, int relative)
{
    if (isnan(want)) return isnan(got) ? 0.0 : INFINITY;
    if (isinf(want)) return got == want ? 0.0 : INFINITY;
    double scale = relative && fabs(want) > 1.0 ? fabs(want) : 1.0;
    return fabs(got - want) / scale;
}

static tb_test_result run_case(const reference_case *c)
{
    tb_test_result r;
    tb_err err = {{0}};
    tb_status st;
    const double *const *groups = (const double *const *)c->rows;
    if (!strcmp(c->test, "spearman")) {
        ck_assert_int_eq(c->k, 2);
        ck_assert_int_eq(c->sizes[0], c->sizes[1]);
        st = tb_spearman(c->rows[0], c->rows[1], c->sizes[0], &r, &err);
    } else if (!strcmp(c->test, "levene_mean")) {
        st = tb_levene(groups, c->sizes, c->k, 0, &r, &err);
    } else if (!strcmp(c->test, "levene_median")) {
        st = tb_levene(groups, c->sizes, c->k, 1, &r, &err);
    } else if (!strcmp(c->test, "kruskal")) {
        st = tb_kruskal(groups, c->sizes, c->k, &r, &err);
    } else {
        ck_abort_msg("%s: unknown test \"%s\"", c->name, c->test);
    }
    ck_assert_msg(st == TB_OK, "%s: %s", c->name, err.msg);
    return r;
}

/* The degrees of freedom and count each test reports. */
static void check_degrees_of_freedom(const reference_case *c, const tb_test_result *r)
{
    int total = 0;
    for (int i = 0; i < c->k; i++) total += c->sizes[i];
    if (!strcmp(c->test, "spearman")) {
        ck_assert_int_eq(r->n, c->sizes[0]);
        ck_assert_double_eq(r->df1, c->sizes[0] - 2);
        ck_assert(isnan(r->df2));
        return;
    }
    ck_assert_int_eq(r->n, total);
    ck_assert_double_eq(r->df1, c->k - 1);
    if (!strcmp(c->test, "kruskal")) ck_assert(isnan(r->df2));
    else ck_assert_double_eq(r->df2, total - c->k);
}

START_TEST(test_agrees_with_scipy)
{
    FILE *f = fopen(tbt_fixture("stats_reference.txt"), "r");
    ck_assert_msg(f != NULL, "cannot open %s", tbt_fixture("stats_reference.txt"));
    int cases = 0;
    double worst_stat = 0.0, worst_p = 0.0;
    char worst_stat_case[64] = "", worst_p_case[64] = "";
    reference_case c;
    while (read_case(f, &c)) {
        tb_test_result r = run_case(&c);
        double d_stat = deviation(r.statistic, c.statistic, 1), d_p = deviation(r.p_value, c.p_value, 0);
        ck_assert_msg(d_stat <= STAT_TOL, "%s: statistic %.17g, SciPy %.17g", c.name, r.statistic, c.statistic);
        ck_assert_msg(d_p <= P_TOL, "%s: p-value %.17g, SciPy %.17g", c.name, r.p_value, c.p_value);
        check_degrees_of_freedom(&c, &r);
        if (d_stat >= worst_stat) {
            worst_stat = d_stat;
            tb_copy_str(worst_stat_case, sizeof worst_stat_case, c.name);
        }
        if (d_p >= worst_p) {
            worst_p = d_p;
            tb_copy_str(worst_p_case, sizeof worst_p_case, c.name);
        }
        cases++;
        free_case(&c);
    }
    fclose(f);
    ck_assert_msg(cases >= 12, "only %d cases in stats_reference.txt", cases);
    printf("test_stats: %d SciPy cases; worst statistic deviation %.3g (%s), worst p-value deviation %.3g (%s)\n",
           cases, worst_stat, worst_stat_case, worst_p, worst_p_case);
}
END_TEST

/* ---- summaries ---------------------------------------------------------------------------- */

START_TEST(test_summarize_known_data)
{
    /* sum 40, squared deviations 9+1+1+1+0+0+4+16 = 32: sd = sqrt(32/7) */
    const double x[8] = {9, 4, 2, 5, 4, 7, 4, 5};
    tb_summary s = tb_summarize(x, 8);
    ck_assert_int_eq(s.n, 8);
    ck_assert_double_eq_tol(s.mean, 5.0, 1e-15);
    ck_assert_double_eq_tol(s.sd, sqrt(32.0 / 7.0), 1e-15);
    ck_assert_double_eq_tol(s.se, sqrt(32.0 / 7.0) / sqrt(8.0), 1e-15);
    ck_assert_double_eq(s.median, 4.5); /* 4 and 5 in the middle */
    ck_assert_double_eq(s.min, 2.0);
    ck_assert_double_eq(s.max, 9.0);

    const double odd[3] = {3, -1, 2};
    s = tb_summarize(odd, 3);
    ck_assert_double_eq(s.median, 2.0);
    ck_assert_double_eq_tol(s.mean, 4.0 / 3.0, 1e-15);
    ck_assert_double_eq(s.min, -1.0);
}
END_TEST

START_TEST(test_summarize_undefined_parts)
{
    const double one = 7.5;
    tb_summary s = tb_summarize(&one, 1);
    ck_assert_int_eq(s.n, 1);
    ck_assert_double_eq(s.mean, 7.5);
    ck_assert_double_eq(s.median, 7.5);
    ck_assert(isnan(s.sd) && isnan(s.se));

    s = tb_summarize(NULL, 0);
    ck_assert_int_eq(s.n, 0);
    ck_assert(isnan(s.mean) && isnan(s.sd) && isnan(s.median) && isnan(s.min) && isnan(s.max));

    const double with_nan[3] = {1.0, NAN, 3.0};
    s = tb_summarize(with_nan, 3);
    ck_assert_int_eq(s.n, 3);
    ck_assert(isnan(s.mean) && isnan(s.median));
}
END_TEST

/* ---- the bootstrap ------------------------------------------------------------------------ */

/* n values from N(mean, sd) drawn with the core's RNG. */
static void normal_sample(double *x, int n, double mean, double sd, uint64_t seed)
{
    tb_rng rng;
    tb_rng_init(&rng, seed, TB_STREAM_SPLIT, 99);
    for (int i = 0; i < n; i++) x[i] = mean + sd * tb_rng_normal(&rng);
}

START_TEST(test_bootstrap_reproducible)
{
    double x[40];
    normal_sample(x, 40, 70.0, 8.0, 3);
    tb_err err = {{0}};
    double lo1, hi1, lo2, hi2, lo3, hi3;
    ck_assert_int_eq(tb_bootstrap_mean_ci(x, 40, 1000, 0.95, 42, &lo1, &hi1, &err), TB_OK);
    ck_assert_int_eq(tb_bootstrap_mean_ci(x, 40, 1000, 0.95, 42, &lo2, &hi2, &err), TB_OK);
    ck_assert_int_eq(tb_bootstrap_mean_ci(x, 40, 1000, 0.95, 43, &lo3, &hi3, &err), TB_OK);
    /* the same seed gives the same interval, to the last bit */
    ck_assert(lo1 == lo2 && hi1 == hi2);
    ck_assert_msg(lo1 != lo3 || hi1 != hi3, "seeds 42 and 43 gave the same interval [%.17g, %.17g]", lo1, hi1);
    ck_assert(lo1 < hi1);
}
END_TEST

START_TEST(test_bootstrap_covers_mean)
{
    enum { N = 60 };
    double x[N];
    normal_sample(x, N, 50.0, 10.0, 11);
    tb_summary s = tb_summarize(x, N);
    tb_err err = {{0}};
    double lo, hi;
    ck_assert_int_eq(tb_bootstrap_mean_ci(x, N, 4000, 0.95, 7, &lo, &hi, &err), TB_OK);
    ck_assert_msg(lo < s.mean && s.mean < hi, "[%g, %g] lacks the mean %g", lo, hi, s.mean);
    /* for a normal sample the percentile interval is close to mean +- 1.96 se
     * (the bootstrap's se is the plug-in one, sqrt((n - 1)/n) of it) */
    double expected_width = 2.0 * 1.959964 * s.se * sqrt((N - 1.0) / N);
    ck_assert_msg(fabs((hi - lo) / expected_width - 1.0) < 0.15, "width %g, expected about %g", hi - lo,
                  expected_width);
    /* a wider level gives a wider interval from the same resamples */
    double lo99, hi99;
    ck_assert_int_eq(tb_bootstrap_mean_ci(x, N, 4000, 0.99, 7, &lo99, &hi99, &err), TB_OK);
    ck_assert(lo99 < lo && hi < hi99);
}
END_TEST

/* ---- refusals ----------------------------------------------------------------------------- */

#define ASSERT_REFUSED(call, expected_message)                                                                   \
    do {                                                                                                         \
        tb_err err_ = {{0}};                                                                                     \
        tb_err *err = &err_;                                                                                     \
        tb_status st_ = (call);                                                                                  \
        ck_assert_msg(st_ == TB_EINVAL, "%s: status %d, expected TB_EINVAL", #call, (int)st_);                   \
        ck_assert_str_eq(err_.msg, (expected_message));                                                          \
    } while (0)

START_TEST(test_spearman_refusals)
{
    const double x[4] = {1, 2, 3, 4}, y[4] = {2, NAN, 1, 3};
    tb_test_result r;
    ASSERT_REFUSED(tb_spearman(x, x, 2, &r, err), "spearman: n = 2 pairs; the test needs at least 3");
    ck_assert(isnan(r.statistic) && isnan(r.p_value));
    ASSERT_REFUSED(tb_spearman(x, y, 4, &r, err), "spearman: y[1] is NaN; drop missing values before the test");
    ASSERT_REFUSED(tb_spearman(y, x, 4, &r, err), "spearman: x[1] is NaN; drop missing values before the test");
    ASSERT_REFUSED(tb_spearman(NULL, x, 4, &r, err), "spearman: x or y is NULL");
    ASSERT_REFUSED(tb_spearman(x, x, 4, NULL, err), "spearman: out is NULL");
}
END_TEST

START_TEST(test_levene_refusals)
{
    const double a[3] = {1, 2, 4}, b[1] = {5}, c[3] = {1, NAN, 2};
    const double *one_short[2] = {a, b}, *with_nan[3] = {a, a, c};
    const int sizes_short[2] = {3, 1}, sizes3[3] = {3, 3, 3};
    tb_test_result r;
    ASSERT_REFUSED(tb_levene(one_short, sizes3, 1, 0, &r, err), "levene (mean): k = 1 groups; the test needs at least 2");
    ASSERT_REFUSED(tb_levene(one_short, sizes_short, 2, 0, &r, err),
                   "levene (mean): group 2 of 2 has 1 value; each group needs at least 2");
    ck_assert(isnan(r.statistic) && isnan(r.p_value));
    ASSERT_REFUSED(tb_levene(one_short, sizes_short, 2, 1, &r, err),
                   "levene (median): group 2 of 2 has 1 value; each group needs at least 2");
    ASSERT_REFUSED(tb_levene(with_nan, sizes3, 3, 1, &r, err),
                   "levene (median): group 3 of 3 has NaN at index 1; drop missing values before the test");
    ASSERT_REFUSED(tb_levene(NULL, sizes3, 3, 0, &r, err), "levene (mean): groups or sizes is NULL");

    /* every group constant: 0/0, NaN as SciPy (not a refusal) */
    const double same1[2] = {1, 1}, same5[2] = {5, 5};
    const double *constant[2] = {same1, same5};
    const int sizes2[2] = {2, 2};
    tb_err err = {{0}};
    ck_assert_int_eq(tb_levene(constant, sizes2, 2, 0, &r, &err), TB_OK);
    ck_assert(isnan(r.statistic) && isnan(r.p_value));
}
END_TEST

START_TEST(test_kruskal_refusals)
{
    const double a[3] = {1, 2, 4}, c[2] = {NAN, 2}, same[3] = {3, 3, 3};
    const double *two[2] = {a, a}, *with_nan[2] = {a, c}, *identical[2] = {same, same};
    const int sizes_empty[2] = {3, 0}, sizes_nan[2] = {3, 2}, sizes3[2] = {3, 3};
    tb_test_result r;
    ASSERT_REFUSED(tb_kruskal(two, sizes3, 1, &r, err), "kruskal: k = 1 groups; the test needs at least 2");
    ASSERT_REFUSED(tb_kruskal(two, sizes_empty, 2, &r, err),
                   "kruskal: group 2 of 2 has 0 values; each group needs at least 1");
    ASSERT_REFUSED(tb_kruskal(with_nan, sizes_nan, 2, &r, err),
                   "kruskal: group 2 of 2 has NaN at index 0; drop missing values before the test");
    /* SciPy raises "All numbers are identical in kruskal" */
    ASSERT_REFUSED(tb_kruskal(identical, sizes3, 2, &r, err),
                   "kruskal: all 6 values are identical (3); the test needs two distinct values");
    ck_assert(isnan(r.statistic) && isnan(r.p_value));
}
END_TEST

START_TEST(test_bootstrap_refusals)
{
    const double x[3] = {1, 2, 3}, y[3] = {1, NAN, 3};
    double lo, hi;
    ASSERT_REFUSED(tb_bootstrap_mean_ci(x, 1, 100, 0.95, 1, &lo, &hi, err),
                   "bootstrap: n = 1 values; the interval needs at least 2");
    ck_assert(isnan(lo) && isnan(hi));
    ASSERT_REFUSED(tb_bootstrap_mean_ci(x, 3, 0, 0.95, 1, &lo, &hi, err),
                   "bootstrap: resamples = 0; it needs at least 1 (1000 or more is usual)");
    ASSERT_REFUSED(tb_bootstrap_mean_ci(x, 3, 100, 1.0, 1, &lo, &hi, err),
                   "bootstrap: level = 1; it must lie strictly between 0 and 1 (e.g. 0.95)");
    ASSERT_REFUSED(tb_bootstrap_mean_ci(x, 3, 100, NAN, 1, &lo, &hi, err),
                   "bootstrap: level = nan; it must lie strictly between 0 and 1 (e.g. 0.95)");
    ASSERT_REFUSED(tb_bootstrap_mean_ci(y, 3, 100, 0.95, 1, &lo, &hi, err),
                   "bootstrap: x[1] is NaN; drop missing values before the test");
    ASSERT_REFUSED(tb_bootstrap_mean_ci(x, 3, 100, 0.95, 1, NULL, &hi, err), "bootstrap: lo or hi is NULL");
}
END_TEST

static Suite *stats_suite(void)
{
    Suite *s = suite_create("stats");
    TCase *tc = tcase_create("stats");
    tcase_add_test(tc, test_agrees_with_scipy);
    tcase_add_test(tc, test_summarize_known_data);
    tcase_add_test(tc, test_summarize_undefined_parts);
    tcase_add_test(tc, test_bootstrap_reproducible);
    tcase_add_test(tc, test_bootstrap_covers_mean);
    tcase_add_test(tc, test_spearman_refusals);
    tcase_add_test(tc, test_levene_refusals);
    tcase_add_test(tc, test_kruskal_refusals);
    tcase_add_test(tc, test_bootstrap_refusals);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tbt_run(stats_suite()); }
