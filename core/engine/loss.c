/* loss.c: the four losses of loss.h, mean reduction, as torch.nn.functional.
 *
 * Sums are accumulated in double and the result rounded to float once; the
 * gradients are computed per element in double and rounded, so they are the
 * correctly rounded values of the exact formulas below. */
#include "loss.h"
#include "loss_rules.h"

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

/* Sums the per-sample losses of loss_rules.h in sample order; mean over
 * `denominator` (n, or n * classes for l1 and mse). */
static double mean_loss(float *dlogits, const float *logits, const int32_t *targets, int n, int classes,
                        tb_loss_kind kind)
{
    const double denominator = kind == TB_LOSS_L1 || kind == TB_LOSS_MSE ? (double)n * (double)classes : (double)n;
    double total = 0;
    for (int i = 0; i < n; i++) {
        const float *x = logits + (size_t)i * classes;
        float *d = dlogits ? dlogits + (size_t)i * classes : NULL;
        switch (kind) {
        case TB_LOSS_CROSS_ENTROPY: total += tb_ce_sample(d, x, classes, targets[i], denominator); break;
        case TB_LOSS_NLL: total += tb_nll_sample(d, x, classes, targets[i], denominator); break;
        case TB_LOSS_L1: total += tb_l1_mse_sample(d, x, classes, targets[i], denominator, 0); break;
        case TB_LOSS_MSE: total += tb_l1_mse_sample(d, x, classes, targets[i], denominator, 1); break;
        }
    }
    return total / denominator;
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
    if ((int)kind < 0 || (int)kind > TB_LOSS_MSE) return NAN;
    return (float)mean_loss(dlogits, logits, targets, n, classes, kind);
}
