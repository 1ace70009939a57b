/* stats.h: the statistics of the paper's analysis (Anand et al., BMVC 2020,
 * section 3), with SciPy's definitions: tunebench analyze computes them,
 * tests/reference/stats_reference.py checks them against SciPy. The
 * distributions come from GSL; nothing here is hand-written special
 * functions. NaN inputs are the caller's to drop (these functions refuse them). */
#ifndef TB_ANALYSIS_STATS_H
#define TB_ANALYSIS_STATS_H

#include <stdint.h>

#include "base/common.h"

/* A test's statistic and two-sided p-value (NaN when undefined, e.g. a
 * constant sample), with its degrees of freedom where it has them (else NaN). */
typedef struct tb_test_result {
    double statistic, p_value;
    double df1, df2;
    int n; /* observations used */
} tb_test_result;

/* Spearman's rank correlation, as scipy.stats.spearmanr (average ranks for
 * ties; p from Student's t with n - 2 degrees of freedom). n >= 3. */
tb_status tb_spearman(const double *x, const double *y, int n, tb_test_result *out, tb_err *err);

/* Levene's test for equal variances across k >= 2 groups, as
 * scipy.stats.levene: center_median 0 is center='mean' (Levene), 1 is
 * center='median' (Brown-Forsythe). F with k - 1 and N - k degrees of freedom. */
tb_status tb_levene(const double *const *groups, const int *sizes, int k, int center_median, tb_test_result *out,
                    tb_err *err);

/* The Kruskal-Wallis H test across k >= 2 groups, as scipy.stats.kruskal
 * (tie-corrected; p from chi-square with k - 1 degrees of freedom). */
tb_status tb_kruskal(const double *const *groups, const int *sizes, int k, tb_test_result *out, tb_err *err);

/* Mean, sample standard deviation (n - 1), standard error, median; NaN where
 * undefined (sd and se for n = 1; everything for n = 0 or a NaN among x). */
typedef struct tb_summary {
    int n;
    double mean, sd, se, median, min, max;
} tb_summary;
tb_summary tb_summarize(const double *x, int n);

/* Percentile bootstrap confidence interval of the mean: `resamples`
 * resamples drawn with the core's seeded RNG (reproducible for a seed),
 * interval at `level` (e.g. 0.95). Resample b is drawn from stream
 * TB_STREAM_BOOTSTRAP, sub-stream b, so it depends on (seed, b) alone; the
 * interval's ends are the (1 - level)/2 and (1 + level)/2 quantiles of the
 * resampled means, interpolated linearly (numpy.percentile's default).
 * n >= 2, resamples >= 1, 0 < level < 1. */
tb_status tb_bootstrap_mean_ci(const double *x, int n, int resamples, double level, uint64_t seed, double *lo,
                               double *hi, tb_err *err);

#endif
