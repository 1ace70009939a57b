/* metrics.h: classification metrics accumulated over batches. */
#ifndef TB_METRICS_H
#define TB_METRICS_H

#include <stdint.h>

typedef struct tb_metrics {
    int classes;
    int64_t count;
    double loss_sum;    /* sum of per-batch mean loss * batch size */
    int64_t *confusion; /* [classes, classes]: row = true class, column = predicted */
    /* filled by tb_metrics_finish */
    double loss, accuracy, macro_precision, macro_recall, macro_f1;
} tb_metrics;

int tb_metrics_init(tb_metrics *m, int classes); /* 0 or -1 (out of memory) */
void tb_metrics_free(tb_metrics *m);
void tb_metrics_reset(tb_metrics *m);
/* logits [n, classes] on the host; the prediction is the first maximum (torch.argmax). */
void tb_metrics_add(tb_metrics *m, const float *logits, const int32_t *targets, int n, double batch_mean_loss);
/* Macro averages as sklearn's precision/recall/f1_score(average="macro",
 * zero_division=0): over the classes that occur among the targets or the
 * predictions; such a class with no predictions (no samples) has precision
 * (recall) 0; F1 is the mean of per-class F1 scores. */
void tb_metrics_finish(tb_metrics *m);

#endif
