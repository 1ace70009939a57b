/* metrics.c: confusion matrix, accuracy and sklearn-style macro averages. */
#include "metrics.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int tb_metrics_init(tb_metrics *m, int classes)
{
    memset(m, 0, sizeof *m);
    if (classes <= 0) return -1;
    m->confusion = calloc((size_t)classes * (size_t)classes, sizeof *m->confusion);
    if (!m->confusion) return -1;
    m->classes = classes;
    tb_metrics_reset(m);
    return 0;
}

void tb_metrics_free(tb_metrics *m)
{
    if (!m) return;
    free(m->confusion);
    memset(m, 0, sizeof *m);
}

void tb_metrics_reset(tb_metrics *m)
{
    m->count = 0;
    m->loss_sum = 0;
    if (m->confusion) memset(m->confusion, 0, (size_t)m->classes * (size_t)m->classes * sizeof *m->confusion);
    m->loss = m->accuracy = NAN;
    m->macro_precision = m->macro_recall = m->macro_f1 = NAN;
}

/* torch.argmax: the first maximum; a NaN counts as larger than any number, so
 * the first NaN of the row wins. */
static int argmax_row(const float *row, int classes)
{
    int best = 0;
    float bv = row[0];
    if (isnan(bv)) return 0;
    for (int j = 1; j < classes; j++) {
        float v = row[j];
        if (isnan(v)) return j;
        if (v > bv) {
            bv = v;
            best = j;
        }
    }
    return best;
}

void tb_metrics_add(tb_metrics *m, const float *logits, const int32_t *targets, int n, double batch_mean_loss)
{
    if (n <= 0 || !m->confusion) return;
    const int k = m->classes;
    for (int i = 0; i < n; i++) {
        int pred = argmax_row(logits + (size_t)i * (size_t)k, k);
        int32_t t = targets[i];
        /* Targets are validated by the datasets; an out-of-range one still
         * counts as a sample (and so as a miss) but has no row to go in. */
        if (t >= 0 && t < k) m->confusion[(size_t)t * (size_t)k + (size_t)pred]++;
    }
    m->count += n;
    m->loss_sum += batch_mean_loss * (double)n;
}

void tb_metrics_finish(tb_metrics *m)
{
    if (m->count <= 0 || !m->confusion) {
        m->loss = m->accuracy = NAN;
        m->macro_precision = m->macro_recall = m->macro_f1 = NAN;
        return;
    }
    const int k = m->classes;
    int64_t correct = 0;
    double p_sum = 0, r_sum = 0, f_sum = 0;
    int present = 0; /* sklearn averages over the labels seen in y_true or y_pred */
    for (int c = 0; c < k; c++) {
        int64_t tp = m->confusion[(size_t)c * (size_t)k + (size_t)c];
        int64_t row = 0, col = 0; /* row: true c (tp + fn); col: predicted c (tp + fp) */
        for (int j = 0; j < k; j++) {
            row += m->confusion[(size_t)c * (size_t)k + (size_t)j];
            col += m->confusion[(size_t)j * (size_t)k + (size_t)c];
        }
        correct += tp;
        if (row + col == 0) continue;
        present++;
        /* sklearn, zero_division=0: 0 whenever the denominator is 0 */
        if (col > 0) p_sum += (double)tp / (double)col;
        if (row > 0) r_sum += (double)tp / (double)row;
        /* F1 = 2tp / (2tp + fp + fn) = 2PR/(P+R), as sklearn computes it */
        if (row + col > 0) f_sum += 2.0 * (double)tp / (double)(row + col);
    }
    m->loss = m->loss_sum / (double)m->count;
    m->accuracy = (double)correct / (double)m->count;
    m->macro_precision = p_sum / present;
    m->macro_recall = r_sum / present;
    m->macro_f1 = f_sum / present;
}
