/* optim_rules.h: the arithmetic of one optimizer step, shared by the CPU loops
 * (optim.c) and the GPU's fused kernel (cuda/kernels.cu), so both backends
 * round every float32 operation the same way.
 *
 * A step is split in two: tb_optim_coeffs_next() runs once on the host,
 * turning the hyperparameters and scalar state (step, eta, mu) into float32
 * coefficients exactly as torch 1.13 does, and advances the scalars; then an
 * element rule (tb_<name>_elem) updates each parameter and its state slots.
 * The element rules use fmaf where torch's kernels fuse (see optim.c's header)
 * and must be compiled without floating-point contraction (gcc: ISO C mode;
 * nvcc: -fmad=false), so every other operation rounds as written. */
#ifndef TB_OPTIM_RULES_H
#define TB_OPTIM_RULES_H

#include <math.h>

#include "optim.h"

#ifdef __CUDACC__
#define TB_OPT_HD static __host__ __device__ __forceinline__
#else
#define TB_OPT_HD static inline
#endif

typedef struct tb_optim_coeffs {
    int kind;                  /* tb_optim_kind */
    int use_wd, use_mom, nesterov, first, amsgrad, centered, average;
    float wd, neg_lr, mom, one_minus_damp; /* sgd, rmsprop, adadelta */
    float b1, b2, omb1, omb2, eps, bc2_sqrt, neg_step_size; /* adam (eps shared) */
    float neg_clr;             /* adagrad */
    float rho, omr;            /* adadelta */
    float alpha, oma;          /* rmsprop */
    float decay, neg_eta, mu;  /* asgd */
} tb_optim_coeffs;

/* Rounds x to float32, as torch storing a Python float into a float32 tensor.
 * Out of line and through a volatile on purpose: GCC 12 at -O2/-O3
 * SLP-vectorises two adjacent stores of (double)(float)x and then folds the
 * float round trip away (observed on Debian's gcc 12.2), which silently keeps
 * ASGD's eta/mu in double. */
__attribute__((noinline, unused)) static double tb_round_f32(double x)
{
    volatile float f = (float)x;
    return f;
}

/* This step's coefficients from cfg and the scalars before it; advances sc to
 * the scalars after it (step + 1; ASGD's new eta and mu). Host code. */
static inline void tb_optim_coeffs_next(const tb_optim_config *cfg, tb_optim_scalars *sc, tb_optim_coeffs *k)
{
    k->kind = (int)cfg->kind;
    k->use_wd = cfg->weight_decay != 0;
    k->wd = (float)cfg->weight_decay;
    k->use_mom = k->nesterov = k->first = k->amsgrad = k->centered = k->average = 0;
    switch (cfg->kind) {
    case TB_OPT_SGD:
        k->use_mom = cfg->momentum != 0;
        k->nesterov = cfg->nesterov;
        k->first = sc->step == 0; /* torch clones d_p into the absent momentum buffer */
        k->mom = (float)cfg->momentum;
        k->one_minus_damp = (float)(1.0 - cfg->dampening);
        k->neg_lr = (float)(-cfg->lr);
        sc->step++;
        break;
    case TB_OPT_ADAM: {
        sc->step++;
        const double step = (double)sc->step;
        const double bc1 = 1.0 - pow(cfg->beta1, step), bc2 = 1.0 - pow(cfg->beta2, step);
        k->amsgrad = cfg->amsgrad;
        k->neg_step_size = (float)(-(cfg->lr / bc1));
        k->bc2_sqrt = (float)sqrt(bc2);
        k->b1 = (float)cfg->beta1;
        k->b2 = (float)cfg->beta2;
        k->omb1 = (float)(1.0 - cfg->beta1);
        k->omb2 = (float)(1.0 - cfg->beta2);
        k->eps = (float)cfg->eps;
        break;
    }
    case TB_OPT_ADAGRAD: {
        sc->step++;
        const double clr = cfg->lr / (1.0 + ((double)sc->step - 1.0) * cfg->lr_decay);
        k->neg_clr = (float)(-clr);
        k->eps = (float)cfg->eps;
        break;
    }
    case TB_OPT_ADADELTA:
        k->rho = (float)cfg->rho;
        k->omr = (float)(1.0 - cfg->rho);
        k->eps = (float)cfg->eps;
        k->neg_lr = (float)(-cfg->lr);
        sc->step++;
        break;
    case TB_OPT_RMSPROP:
        k->use_mom = cfg->momentum > 0;
        k->centered = cfg->centered;
        k->alpha = (float)cfg->alpha;
        k->oma = (float)(1.0 - cfg->alpha);
        k->eps = (float)cfg->eps;
        k->mom = (float)cfg->momentum;
        k->neg_lr = (float)(-cfg->lr);
        sc->step++;
        break;
    case TB_OPT_ASGD: {
        /* the step uses eta and mu from before it */
        sc->step++;
        k->average = sc->mu != 1.0;
        k->decay = (float)(1.0 - cfg->lambd * sc->eta);
        k->neg_eta = (float)(-sc->eta);
        k->mu = (float)sc->mu;
        const double step = (double)sc->step;
        sc->eta = tb_round_f32(cfg->lr / pow(1.0 + cfg->lambd * cfg->lr * step, cfg->alpha));
        sc->mu = tb_round_f32(1.0 / fmax(1.0, step - cfg->t0));
        break;
    }
    }
}

/* grad.add(param, alpha=weight_decay) when weight_decay != 0. */
TB_OPT_HD float tb_decayed(const tb_optim_coeffs *k, float g, float p) { return k->use_wd ? fmaf(k->wd, p, g) : g; }

/* torch.maximum: NaN when either operand is NaN. */
TB_OPT_HD float tb_nan_max(float a, float b) { return (a > b || a != a) ? a : b; }

/* _single_tensor_sgd; *buf is momentum_buffer (untouched without momentum). Returns the new parameter. */
TB_OPT_HD float tb_sgd_elem(const tb_optim_coeffs *k, float p, float g, float *buf)
{
    float d = tb_decayed(k, g, p);
    if (k->use_mom) {
        const float b = k->first ? d : fmaf(k->one_minus_damp, d, *buf * k->mom);
        *buf = b;
        d = k->nesterov ? fmaf(k->mom, b, d) : b;
    }
    return fmaf(k->neg_lr, d, p);
}

/* _single_tensor_adam (capturable=False): exp_avg, exp_avg_sq [, max_exp_avg_sq]. */
TB_OPT_HD float tb_adam_elem(const tb_optim_coeffs *k, float p, float g, float *m, float *v, float *vmax)
{
    const float d = tb_decayed(k, g, p);
    const float mi = fmaf(k->omb1, d, *m * k->b1);     /* exp_avg.mul_(beta1).add_(grad, alpha=1-beta1) */
    float vi = fmaf(k->omb2 * d, d, *v * k->b2);       /* exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1-beta2) */
    *m = mi;
    *v = vi;
    if (k->amsgrad) {
        vi = tb_nan_max(*vmax, vi);
        *vmax = vi;
    }
    const float denom = sqrtf(vi) / k->bc2_sqrt + k->eps;
    return p + (k->neg_step_size * mi) / denom;
}

/* _single_tensor_adagrad: sum. */
TB_OPT_HD float tb_adagrad_elem(const tb_optim_coeffs *k, float p, float g, float *sum)
{
    const float d = tb_decayed(k, g, p);
    const float s = fmaf(d, d, *sum); /* state_sum.addcmul_(grad, grad, value=1) */
    *sum = s;
    const float std = sqrtf(s) + k->eps;
    return p + (k->neg_clr * d) / std;
}

/* _single_tensor_adadelta: square_avg, acc_delta. */
TB_OPT_HD float tb_adadelta_elem(const tb_optim_coeffs *k, float p, float g, float *sq, float *acc)
{
    const float d = tb_decayed(k, g, p);
    const float s = fmaf(k->omr * d, d, *sq * k->rho); /* square_avg.mul_(rho).addcmul_(grad, grad, value=1-rho) */
    *sq = s;
    const float std = sqrtf(s + k->eps);
    const float delta = sqrtf(*acc + k->eps) / std * d;
    *acc = fmaf(k->omr * delta, delta, *acc * k->rho);
    return fmaf(k->neg_lr, delta, p);
}

/* _single_tensor_rmsprop: square_avg [, momentum_buffer] [, grad_avg]. */
TB_OPT_HD float tb_rmsprop_elem(const tb_optim_coeffs *k, float p, float g, float *sq, float *buf, float *gavg)
{
    const float d = tb_decayed(k, g, p);
    const float s = fmaf(k->oma * d, d, *sq * k->alpha);
    *sq = s;
    float avg;
    if (k->centered) {
        const float ga = fmaf(k->oma, d, *gavg * k->alpha);
        *gavg = ga;
        avg = sqrtf(fmaf(-ga, ga, s)); /* square_avg.addcmul(grad_avg, grad_avg, value=-1).sqrt_() */
    } else {
        avg = sqrtf(s);
    }
    avg = avg + k->eps;
    if (k->use_mom) {
        const float b = *buf * k->mom + d / avg; /* buf.mul_(momentum).addcdiv_(grad, avg) */
        *buf = b;
        return fmaf(k->neg_lr, b, p);
    }
    return p + (k->neg_lr * d) / avg;
}

/* _single_tensor_asgd: ax. */
TB_OPT_HD float tb_asgd_elem(const tb_optim_coeffs *k, float p, float g, float *ax)
{
    const float d = tb_decayed(k, g, p);
    float pi = p * k->decay;        /* param.mul_(1 - lambd * eta) */
    pi = fmaf(k->neg_eta, d, pi);   /* param.add_(grad, alpha=-eta) */
    *ax = k->average ? *ax + (pi - *ax) * k->mu : pi;
    return pi;
}

#endif
