/* loss.c: the four losses of loss.h, mean reduction, as torch.nn.functional.
 *
 * Sums are accumulated in double and the result rounded to float once; the
 * gradients are computed per element in double and rounded, so they are the
 * correctly rounded values of the exact formulas below. */
#include "loss.h"

#include <math.h>
#include <stddef.h>
#include <string.h>

static const char *const loss_names[] = {"cross_entropy", "nll", "l1", "mse"};

int tb_loss_parse(const char *name, tb_loss_kind *out)
{
    if (!name) return -1;
    for (int i = 0; i < (int)(sizeof loss_names / sizeof loss_names[0]); i++) {
        if (strcmp(name, loss_names[i]) == 0) {
            *out = (tb_loss_kind)i;
            return 0;
        }
    }
    return -1;
}

const char *tb_loss_name(tb_loss_kind kind)
{
    if ((int)kind < 0 || (int)kind >= (int)(sizeof loss_names / sizeof loss_names[0])) return "unknown";
    return loss_names[kind];
}

const char *tb_loss_names(void) { return "cross_entropy, nll, l1, mse"; }

/* F.cross_entropy: loss_i = logsumexp(x_i) - x_i[y_i], computed stably as
 * m + log(sum exp(x - m)) with m = max(x_i). d/dx = (softmax(x_i) - onehot) / n. */
static double cross_entropy(float *dlogits, const float *logits, const int32_t *targets, int n, int classes)
{
    double total = 0;
    for (int i = 0; i < n; i++) {
        const float *x = logits + (size_t)i * classes;
        double m = x[0];
        for (int c = 1; c < classes; c++)
            if (x[c] > m) m = x[c];
        double s = 0;
        for (int c = 0; c < classes; c++) s += exp((double)x[c] - m);
        double lse = m + log(s);
        total += lse - (double)x[targets[i]];
        if (dlogits) {
            float *d = dlogits + (size_t)i * classes;
            for (int c = 0; c < classes; c++) {
                double p = exp((double)x[c] - lse);
                d[c] = (float)((p - (c == targets[i] ? 1.0 : 0.0)) / n);
            }
        }
    }
    return total / n;
}

/* F.nll_loss on the raw outputs: loss = -mean_i x_i[y_i]; d/dx = -1/n at the target, 0 elsewhere. */
static double nll(float *dlogits, const float *logits, const int32_t *targets, int n, int classes)
{
    double total = 0;
    for (int i = 0; i < n; i++) total -= (double)logits[(size_t)i * classes + targets[i]];
    if (dlogits) {
        memset(dlogits, 0, (size_t)n * (size_t)classes * sizeof *dlogits);
        for (int i = 0; i < n; i++) dlogits[(size_t)i * classes + targets[i]] = (float)(-1.0 / n);
    }
    return total / n;
}

/* F.l1_loss / F.mse_loss against one_hot(targets), mean over n*classes.
 * l1:  d/dx = sign(x - t) / (n*classes), sign(0) = 0 as torch's abs backward.
 * mse: d/dx = 2 (x - t) / (n*classes). */
static double l1_or_mse(float *dlogits, const float *logits, const int32_t *targets, int n, int classes, int mse)
{
    double count = (double)n * (double)classes;
    double total = 0;
    for (int i = 0; i < n; i++) {
        for (int c = 0; c < classes; c++) {
            size_t k = (size_t)i * classes + c;
            double diff = (double)logits[k] - (c == targets[i] ? 1.0 : 0.0);
            double g;
            if (mse) {
                total += diff * diff;
                g = 2.0 * diff;
            } else {
                total += fabs(diff);
                g = diff > 0 ? 1.0 : diff < 0 ? -1.0 : diff; /* diff itself keeps a NaN */
            }
            if (dlogits) dlogits[k] = (float)(g / count);
        }
    }
    return total / count;
}

float tb_loss(float *dlogits, const float *logits, const int32_t *targets, int n, int classes,
              tb_loss_kind kind)
{
    /* torch's mean over an empty batch is NaN; out-of-range targets are a
     * precondition violation, reported the same way rather than read out of bounds. */
    if (n <= 0 || classes <= 0) return NAN;
    for (int i = 0; i < n; i++) {
        if (targets[i] < 0 || targets[i] >= classes) {
            if (dlogits) memset(dlogits, 0, (size_t)n * (size_t)classes * sizeof *dlogits);
            return NAN;
        }
    }
    switch (kind) {
    case TB_LOSS_CROSS_ENTROPY: return (float)cross_entropy(dlogits, logits, targets, n, classes);
    case TB_LOSS_NLL: return (float)nll(dlogits, logits, targets, n, classes);
    case TB_LOSS_L1: return (float)l1_or_mse(dlogits, logits, targets, n, classes, 0);
    case TB_LOSS_MSE: return (float)l1_or_mse(dlogits, logits, targets, n, classes, 1);
    }
    return NAN;
}
