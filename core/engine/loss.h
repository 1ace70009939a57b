/* loss.h: losses with mean reduction, exactly as torch.nn.
 *
 * logits [n, classes] are the raw network outputs, targets [n] class indices.
 *   cross_entropy: F.cross_entropy(logits, targets)
 *   nll:           F.nll_loss(logits, targets) on the raw outputs (no log-softmax),
 *                  as a PyTorch user who picks NLLLoss without LogSoftmax gets
 *   l1:            F.l1_loss(logits, one_hot(targets)), mean over n*classes
 *   mse:           F.mse_loss(logits, one_hot(targets)), mean over n*classes */
#ifndef TB_LOSS_H
#define TB_LOSS_H

#include <stdint.h>

typedef enum tb_loss_kind {
    TB_LOSS_CROSS_ENTROPY = 0,
    TB_LOSS_NLL = 1,
    TB_LOSS_L1 = 2,
    TB_LOSS_MSE = 3,
} tb_loss_kind;

/* "cross_entropy" | "nll" | "l1" | "mse"; returns 0 or -1 for an unknown name. */
int tb_loss_parse(const char *name, tb_loss_kind *out);
const char *tb_loss_name(tb_loss_kind kind);
/* The accepted names, comma-separated, for error messages. */
const char *tb_loss_names(void);

/* Returns the mean loss. If dlogits is non-NULL it receives d(loss)/d(logits),
 * assigned, [n, classes]. Targets must lie in [0, classes): for n <= 0 or a
 * target outside it the result is NaN (and dlogits is zeroed). */
float tb_loss(float *dlogits, const float *logits, const int32_t *targets, int n, int classes,
              tb_loss_kind kind);

#endif
