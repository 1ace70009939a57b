/* loss_rules.h: the per-sample arithmetic of the four losses (loss.h), shared
 * by the CPU (loss.c) and the GPU (cuda/kernels.cu, one thread per sample).
 * Each returns the sample's summed loss in double and, when d is non-NULL,
 * writes the sample's gradient row already divided by `denominator` (n for
 * cross_entropy and nll, n * classes for l1 and mse). The caller sums the
 * per-sample values in sample order and divides by the same denominator. */
#ifndef TB_LOSS_RULES_H
#define TB_LOSS_RULES_H

#include <math.h>
#include <stdint.h>

#ifdef __CUDACC__
#define TB_LOSS_HD static __host__ __device__ __forceinline__
#else
#define TB_LOSS_HD static inline
#endif

/* F.cross_entropy: logsumexp(x) - x[t], computed stably as m + log(sum exp(x - m))
 * with m = max(x); d = (softmax(x) - onehot(t)) / denominator. */
TB_LOSS_HD double tb_ce_sample(float *d, const float *x, int classes, int t, double denominator)
{
    double m = x[0];
    for (int c = 1; c < classes; c++)
        if (x[c] > m) m = x[c];
    double s = 0;
    for (int c = 0; c < classes; c++) s += exp((double)x[c] - m);
    const double lse = m + log(s);
    if (d)
        for (int c = 0; c < classes; c++) d[c] = (float)((exp((double)x[c] - lse) - (c == t ? 1.0 : 0.0)) / denominator);
    return lse - (double)x[t];
}

/* F.nll_loss on the raw outputs: -x[t]; d = -1/denominator at t, 0 elsewhere. */
TB_LOSS_HD double tb_nll_sample(float *d, const float *x, int classes, int t, double denominator)
{
    if (d)
        for (int c = 0; c < classes; c++) d[c] = c == t ? (float)(-1.0 / denominator) : 0.0f;
    return -(double)x[t];
}

/* F.l1_loss / F.mse_loss against onehot(t), summed over the classes.
 * l1: d = sign(x - onehot) / denominator, sign(0) = 0 as torch's abs backward;
 * mse: d = 2 (x - onehot) / denominator. */
TB_LOSS_HD double tb_l1_mse_sample(float *d, const float *x, int classes, int t, double denominator, int mse)
{
    double total = 0;
    for (int c = 0; c < classes; c++) {
        const double diff = (double)x[c] - (c == t ? 1.0 : 0.0);
        double g;
        if (mse) {
            total += diff * diff;
            g = 2.0 * diff;
        } else {
            total += fabs(diff);
            g = diff > 0 ? 1.0 : diff < 0 ? -1.0 : diff; /* diff itself keeps a NaN */
        }
        if (d) d[c] = (float)(g / denominator);
    }
    return total;
}

#endif
