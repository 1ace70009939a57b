/* stats.c: the tests of the paper's analysis, transcribed from SciPy 1.10
 * (scipy/stats/_stats_py.py and _morestats.py) so that each statistic is
 * computed the way SciPy computes it; GSL supplies the distributions, the
 * sorting and the medians. */
#include "stats.h"

#include "base/rng.h"

#include <gsl/gsl_cdf.h>
#include <gsl/gsl_sort.h>
#include <gsl/gsl_statistics_double.h>

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- checks shared by the tests ---------------------------------------------------------- */

/* The index of the first NaN in x, or -1. */
static int first_nan(const double *x, int n)
{
    for (int i = 0; i < n; i++)
        if (isnan(x[i])) return i;
    return -1;
}

static tb_status refuse_nan(const char *test, const char *what, const double *x, int n, tb_err *err)
{
    int i = first_nan(x, n);
    if (i < 0) return TB_OK;
    return tb_fail(err, TB_EINVAL, "%s: %s[%d] is NaN; drop missing values before the test", test, what, i);
}

/* k >= 2 groups, each non-NULL with at least min_size values and no NaN. */
static tb_status check_groups(const char *test, const double *const *groups, const int *sizes, int k,
                              int min_size, tb_err *err)
{
    if (k < 2) return tb_fail(err, TB_EINVAL, "%s: k = %d groups; the test needs at least 2", test, k);
    if (!groups || !sizes) return tb_fail(err, TB_EINVAL, "%s: groups or sizes is NULL", test);
    for (int g = 0; g < k; g++) {
        if (sizes[g] < min_size)
            return tb_fail(err, TB_EINVAL, "%s: group %d of %d has %d value%s; each group needs at least %d", test,
                           g + 1, k, sizes[g], sizes[g] == 1 ? "" : "s", min_size);
        if (!groups[g]) return tb_fail(err, TB_EINVAL, "%s: group %d of %d is NULL", test, g + 1, k);
        int i = first_nan(groups[g], sizes[g]);
        if (i >= 0)
            return tb_fail(err, TB_EINVAL, "%s: group %d of %d has NaN at index %d; drop missing values before the test",
                           test, g + 1, k, i);
    }
    return TB_OK;
}

static int total_size(const int *sizes, int k)
{
    long total = 0;
    for (int g = 0; g < k; g++) total += sizes[g];
    return total > INT_MAX ? -1 : (int)total;
}

static tb_test_result empty_result(void)
{
    return (tb_test_result){.statistic = NAN, .p_value = NAN, .df1 = NAN, .df2 = NAN, .n = 0};
}

/* ---- ranks (scipy.stats.rankdata, method='average') --------------------------------------- */

/* rank[i] = the 1-based rank of x[i], tied values sharing the mean of their
 * ranks; *tie_term (if non-NULL) = sum over runs of ties of t^3 - t, for
 * the tie corrections. Returns -1 when out of memory. */
static int average_ranks(const double *x, int n, double *rank, double *tie_term)
{
    size_t *order = malloc((size_t)n * sizeof *order);
    if (!order) return -1;
    gsl_sort_index(order, x, 1, (size_t)n);
    double ties = 0.0;
    for (int start = 0; start < n;) {
        int end = start + 1;
        while (end < n && x[order[end]] == x[order[start]]) end++;
        /* positions start..end-1 hold ranks start+1..end: their mean */
        double shared = 0.5 * (double)(start + 1 + end);
        for (int i = start; i < end; i++) rank[order[i]] = shared;
        double t = (double)(end - start);
        ties += t * t * t - t;
        start = end;
    }
    free(order);
    if (tie_term) *tie_term = ties;
    return 0;
}

/* ---- Spearman ----------------------------------------------------------------------------- */

/* Pearson's r of two samples (numpy.corrcoef, clipped to [-1, 1]); NaN when
 * either is constant. */
static double pearson(const double *a, const double *b, int n)
{
    double mean_a = gsl_stats_mean(a, 1, (size_t)n), mean_b = gsl_stats_mean(b, 1, (size_t)n);
    double sab = 0.0, saa = 0.0, sbb = 0.0;
    for (int i = 0; i < n; i++) {
        double da = a[i] - mean_a, db = b[i] - mean_b;
        sab += da * db;
        saa += da * da;
        sbb += db * db;
    }
    if (saa == 0.0 || sbb == 0.0) return NAN;
    double r = sab / sqrt(saa * sbb);
    return r > 1.0 ? 1.0 : r < -1.0 ? -1.0 : r;
}

/* SciPy's two-sided p of a correlation r on dof degrees of freedom:
 * t = r sqrt(dof / ((1 + r)(1 - r))), p = 2 Q_t(|t|); |r| = 1 gives p = 0. */
static double correlation_p_value(double r, double dof)
{
    if (isnan(r)) return NAN;
    double denominator = (r + 1.0) * (1.0 - r);
    if (denominator <= 0.0) return 0.0;
    double t = r * sqrt(dof / denominator);
    return 2.0 * gsl_cdf_tdist_Q(fabs(t), dof);
}

tb_status tb_spearman(const double *x, const double *y, int n, tb_test_result *out, tb_err *err)
{
    if (!out) return tb_fail(err, TB_EINVAL, "spearman: out is NULL");
    *out = empty_result();
    if (n < 3) return tb_fail(err, TB_EINVAL, "spearman: n = %d pairs; the test needs at least 3", n);
    if (!x || !y) return tb_fail(err, TB_EINVAL, "spearman: x or y is NULL");
    tb_status st = refuse_nan("spearman", "x", x, n, err);
    if (st == TB_OK) st = refuse_nan("spearman", "y", y, n, err);
    if (st != TB_OK) return st;

    double *ranks = malloc(2 * (size_t)n * sizeof *ranks);
    if (!ranks) return tb_fail(err, TB_ENOMEM, "spearman: out of memory for %d ranks", 2 * n);
    double *rank_x = ranks, *rank_y = ranks + n;
    if (average_ranks(x, n, rank_x, NULL) != 0 || average_ranks(y, n, rank_y, NULL) != 0) {
        free(ranks);
        return tb_fail(err, TB_ENOMEM, "spearman: out of memory ranking %d values", n);
    }
    double r = pearson(rank_x, rank_y, n);
    free(ranks);

    out->statistic = r; /* NaN for a constant sample, as SciPy */
    out->df1 = (double)(n - 2);
    out->p_value = correlation_p_value(r, out->df1);
    out->n = n;
    return TB_OK;
}

/* ---- Levene / Brown-Forsythe --------------------------------------------------------------- */

/* The group's center: its mean, or its median (sorted in a copy). */
static int group_center(const double *x, int n, int center_median, double *center)
{
    if (!center_median) {
        *center = gsl_stats_mean(x, 1, (size_t)n);
        return 0;
    }
    double *sorted = malloc((size_t)n * sizeof *sorted);
    if (!sorted) return -1;
    memcpy(sorted, x, (size_t)n * sizeof *sorted);
    gsl_sort(sorted, 1, (size_t)n);
    *center = gsl_stats_median_from_sorted_data(sorted, 1, (size_t)n);
    free(sorted);
    return 0;
}

/* F's upper tail at w, with the limits SciPy's f.sf gives (inf -> 0, NaN -> NaN). */
static double f_upper_tail(double w, double df1, double df2)
{
    if (isnan(w)) return NAN;
    if (isinf(w)) return 0.0;
    return gsl_cdf_fdist_Q(w, df1, df2);
}

tb_status tb_levene(const double *const *groups, const int *sizes, int k, int center_median, tb_test_result *out,
                    tb_err *err)
{
    const char *test = center_median ? "levene (median)" : "levene (mean)";
    if (!out) return tb_fail(err, TB_EINVAL, "%s: out is NULL", test);
    *out = empty_result();
    tb_status st = check_groups(test, groups, sizes, k, 2, err);
    if (st != TB_OK) return st;
    int total = total_size(sizes, k);
    if (total < 0) return tb_fail(err, TB_EINVAL, "%s: more than %d values in all", test, INT_MAX);

    /* z_ij = |x_ij - center_i|: the test is a one-way ANOVA on the z's */
    double *z = malloc((size_t)total * sizeof *z), *z_mean = malloc((size_t)k * sizeof *z_mean);
    if (!z || !z_mean) {
        free(z);
        free(z_mean);
        return tb_fail(err, TB_ENOMEM, "%s: out of memory for %d values", test, total);
    }
    double grand_mean = 0.0;
    for (int g = 0, at = 0; g < k; at += sizes[g], g++) {
        double center;
        if (group_center(groups[g], sizes[g], center_median, &center) != 0) {
            free(z);
            free(z_mean);
            return tb_fail(err, TB_ENOMEM, "%s: out of memory sorting group %d", test, g + 1);
        }
        for (int i = 0; i < sizes[g]; i++) z[at + i] = fabs(groups[g][i] - center);
        z_mean[g] = gsl_stats_mean(z + at, 1, (size_t)sizes[g]);
        grand_mean += z_mean[g] * sizes[g];
    }
    grand_mean /= total;

    double between = 0.0, within = 0.0;
    for (int g = 0, at = 0; g < k; at += sizes[g], g++) {
        double d = z_mean[g] - grand_mean;
        between += sizes[g] * d * d;
        for (int i = 0; i < sizes[g]; i++) within += (z[at + i] - z_mean[g]) * (z[at + i] - z_mean[g]);
    }
    free(z);
    free(z_mean);

    /* IEEE division as numpy: 0/0 (every group constant) is NaN, x/0 is inf */
    out->df1 = (double)(k - 1);
    out->df2 = (double)(total - k);
    out->statistic = (out->df2 * between) / (out->df1 * within);
    out->p_value = f_upper_tail(out->statistic, out->df1, out->df2);
    out->n = total;
    return TB_OK;
}

/* ---- Kruskal-Wallis ------------------------------------------------------------------------ */

tb_status tb_kruskal(const double *const *groups, const int *sizes, int k, tb_test_result *out, tb_err *err)
{
    if (!out) return tb_fail(err, TB_EINVAL, "kruskal: out is NULL");
    *out = empty_result();
    tb_status st = check_groups("kruskal", groups, sizes, k, 1, err);
    if (st != TB_OK) return st;
    int total = total_size(sizes, k);
    if (total < 0) return tb_fail(err, TB_EINVAL, "kruskal: more than %d values in all", INT_MAX);

    /* rank all values together, then sum the ranks group by group */
    double *all = malloc(2 * (size_t)total * sizeof *all);
    if (!all) return tb_fail(err, TB_ENOMEM, "kruskal: out of memory for %d values", total);
    double *rank = all + total;
    for (int g = 0, at = 0; g < k; at += sizes[g], g++) memcpy(all + at, groups[g], (size_t)sizes[g] * sizeof *all);
    double tie_term;
    if (average_ranks(all, total, rank, &tie_term) != 0) {
        free(all);
        return tb_fail(err, TB_ENOMEM, "kruskal: out of memory ranking %d values", total);
    }
    double n = (double)total;
    double tie_correction = 1.0 - tie_term / (n * n * n - n);
    if (tie_correction == 0.0) {
        double value = all[0];
        free(all);
        /* SciPy raises here too: every rank is tied, H is 0/0 */
        return tb_fail(err, TB_EINVAL, "kruskal: all %d values are identical (%g); the test needs two distinct values",
                       total, value);
    }
    double between = 0.0;
    for (int g = 0, at = 0; g < k; at += sizes[g], g++) {
        double rank_sum = 0.0;
        for (int i = 0; i < sizes[g]; i++) rank_sum += rank[at + i];
        between += rank_sum * rank_sum / sizes[g];
    }
    free(all);

    double h = 12.0 / (n * (n + 1.0)) * between - 3.0 * (n + 1.0);
    h /= tie_correction;
    out->statistic = h;
    out->df1 = (double)(k - 1);
    /* rounding can leave H a hair below 0 when the groups' ranks are equal */
    out->p_value = gsl_cdf_chisq_Q(h > 0.0 ? h : 0.0, out->df1);
    out->n = total;
    return TB_OK;
}

/* ---- summaries and the bootstrap ------------------------------------------------------------ */

tb_summary tb_summarize(const double *x, int n)
{
    tb_summary s = {.n = n > 0 ? n : 0, .mean = NAN, .sd = NAN, .se = NAN, .median = NAN, .min = NAN, .max = NAN};
    if (n <= 0 || !x) return s;
    for (int i = 0; i < n; i++)
        if (isnan(x[i])) return s; /* a NaN has no place in the order a median needs */
    double *sorted = malloc((size_t)n * sizeof *sorted);
    if (!sorted) return s;
    memcpy(sorted, x, (size_t)n * sizeof *sorted);
    gsl_sort(sorted, 1, (size_t)n);
    s.mean = gsl_stats_mean(x, 1, (size_t)n);
    s.median = gsl_stats_median_from_sorted_data(sorted, 1, (size_t)n);
    s.min = sorted[0];
    s.max = sorted[n - 1];
    if (n >= 2) {
        s.sd = gsl_stats_sd_m(x, 1, (size_t)n, s.mean); /* divides by n - 1 */
        s.se = s.sd / sqrt((double)n);
    }
    free(sorted);
    return s;
}

/* The mean of resample `index`: n draws with replacement from x, from its own
 * sub-stream of TB_STREAM_BOOTSTRAP, so each resample depends only on (seed, index). */
static double resample_mean(const double *x, int n, uint64_t seed, uint32_t index)
{
    tb_rng rng;
    tb_rng_init(&rng, seed, TB_STREAM_BOOTSTRAP, index);
    double sum = 0.0;
    for (int i = 0; i < n; i++) sum += x[tb_rng_below(&rng, (uint32_t)n)];
    return sum / n;
}

tb_status tb_bootstrap_mean_ci(const double *x, int n, int resamples, double level, uint64_t seed, double *lo,
                               double *hi, tb_err *err)
{
    if (!lo || !hi) return tb_fail(err, TB_EINVAL, "bootstrap: lo or hi is NULL");
    *lo = *hi = NAN;
    if (n < 2) return tb_fail(err, TB_EINVAL, "bootstrap: n = %d values; the interval needs at least 2", n);
    if (!x) return tb_fail(err, TB_EINVAL, "bootstrap: x is NULL");
    if (resamples < 1)
        return tb_fail(err, TB_EINVAL, "bootstrap: resamples = %d; it needs at least 1 (1000 or more is usual)",
                       resamples);
    if (!(level > 0.0 && level < 1.0))
        return tb_fail(err, TB_EINVAL, "bootstrap: level = %g; it must lie strictly between 0 and 1 (e.g. 0.95)",
                       level);
    tb_status st = refuse_nan("bootstrap", "x", x, n, err);
    if (st != TB_OK) return st;

    double *means = malloc((size_t)resamples * sizeof *means);
    if (!means) return tb_fail(err, TB_ENOMEM, "bootstrap: out of memory for %d resamples", resamples);
    for (int b = 0; b < resamples; b++) means[b] = resample_mean(x, n, seed, (uint32_t)b);
    gsl_sort(means, 1, (size_t)resamples);
    /* the percentile interval, interpolated linearly as numpy.percentile */
    double tail = 0.5 * (1.0 - level);
    *lo = gsl_stats_quantile_from_sorted_data(means, 1, (size_t)resamples, tail);
    *hi = gsl_stats_quantile_from_sorted_data(means, 1, (size_t)resamples, 1.0 - tail);
    free(means);
    return TB_OK;
}
