/* optimizer.c: an optimizer bound to a net: its state block on the net's
 * backend and the step over trainable tensors (see optimizer.h). */
#include "optimizer.h"

#include <stdlib.h>
#include <string.h>

tb_status tb_optimizer_create(tb_optimizer *opt, tb_net *net, const tb_optim_config *cfg, tb_err *err)
{
    char msg[256];
    memset(opt, 0, sizeof *opt);
    if (tb_optim_validate(cfg, msg, sizeof msg) != 0) return tb_fail(err, TB_EINVAL, "%s", msg);
    opt->cfg = *cfg;
    opt->be = tb_net_backend(net);
    opt->n = tb_net_params_size(net);
    int slots = tb_optim_slots(cfg);
    size_t floats = (size_t)slots * opt->n;
    float *host = NULL;
    if (floats) {
        opt->state = opt->be->ops->alloc(opt->be, sizeof(float) * floats);
        host = malloc(sizeof(float) * floats);
        if (!opt->state || !host) {
            free(host);
            tb_optimizer_destroy(opt);
            tb_status st = tb_backend_check(tb_net_backend(net), err);
            return st ? st : tb_fail(err, TB_ENOMEM, "out of memory for %s state (%zu floats)",
                                     tb_optim_name(cfg->kind), floats);
        }
    }
    tb_optim_init_state(cfg, &opt->scalars, host, opt->n);
    if (floats) opt->be->ops->to_device(opt->be, opt->state, host, sizeof(float) * floats);
    free(host);
    return TB_OK;
}

void tb_optimizer_destroy(tb_optimizer *opt)
{
    if (opt->state) opt->be->ops->free(opt->be, opt->state);
    opt->state = NULL;
}

/* Steps every maximal run of trainable tensors (frozen ones keep their values
 * and state). Each run starts from the same scalars, which then advance once. */
void tb_optimizer_step(tb_optimizer *opt, tb_net *net)
{
    tb_backend *be = opt->be;
    float *params = tb_net_params(net), *grads = tb_net_grads(net);
    tb_optim_scalars next = opt->scalars;
    size_t start = 0, len = 0;
    int runs = 0;
    for (int i = 0; i <= tb_net_param_count(net); i++) {
        const tb_param *p = i < tb_net_param_count(net) ? tb_net_param(net, i) : NULL;
        if (p && p->is_buffer) continue;
        if (p && p->trainable && (len == 0 || p->offset == start + len)) {
            if (len == 0) start = p->offset;
            len += p->count;
            continue;
        }
        if (len) {
            tb_optim_scalars sc = opt->scalars;
            be->ops->optim_step(be, &opt->cfg, &sc, params + start, grads + start, opt->state ? opt->state + start : NULL, len,
                                opt->n);
            next = sc;
            runs++;
            len = 0;
        }
        if (p && p->trainable) { /* a trainable tensor after a gap starts the next run */
            start = p->offset;
            len = p->count;
        }
    }
    if (!runs) { /* everything frozen: the step count still advances */
        be->ops->optim_step(be, &opt->cfg, &next, params, grads, opt->state, 0, opt->n);
    }
    opt->scalars = next;
}

tb_status tb_optimizer_swap_averaged(tb_optimizer *opt, tb_net *net, tb_err *err)
{
    float *ax = tb_optim_averaged(&opt->cfg, opt->state, opt->n);
    if (!ax)
        return tb_fail(err, TB_EINVAL, "optimizer %s keeps no averaged parameters (only asgd does)",
                       tb_optim_name(opt->cfg.kind));
    /* only trained tensors have an average; frozen ones keep their values */
    tb_backend *be = opt->be;
    float *params = tb_net_params(net), *scratch = tb_net_grads(net);
    for (int i = 0; i < tb_net_param_count(net); i++) {
        const tb_param *p = tb_net_param(net, i);
        if (p->is_buffer || !p->trainable) continue;
        be->ops->copy_or_add(be, scratch + p->offset, params + p->offset, p->count, 0);
        be->ops->copy_or_add(be, params + p->offset, ax + p->offset, p->count, 0);
        be->ops->copy_or_add(be, ax + p->offset, scratch + p->offset, p->count, 0);
    }
    return TB_OK;
}

