/* optimizer.h: an optimizer bound to a net (the state torch.optim keeps per
 * parameter, on the net's backend); the update rules are optim.h's. */
#ifndef TB_OPTIMIZER_H
#define TB_OPTIMIZER_H

#include "base/common.h"
#include "net.h"
#include "optim.h"

/* Optimizer state for a net: one block of slots * params floats on the net's backend. */
typedef struct tb_optimizer {
    tb_optim_config cfg;
    tb_optim_scalars scalars;
    float *state;
    size_t n;
    tb_backend *be;
} tb_optimizer;

tb_status tb_optimizer_create(tb_optimizer *opt, tb_net *net, const tb_optim_config *cfg, tb_err *err);
void tb_optimizer_destroy(tb_optimizer *opt);
void tb_optimizer_step(tb_optimizer *opt, tb_net *net);
/* ASGD: exchanges the net's parameters with the averaged ones (torch's state
 * "ax"), so evaluating between two calls scores the averaged model. Uses the
 * gradient block as scratch. Returns TB_EINVAL for other optimizers. */
tb_status tb_optimizer_swap_averaged(tb_optimizer *opt, tb_net *net, tb_err *err);

#endif
