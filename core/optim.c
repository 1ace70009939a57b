/* optim.c: torch.optim (1.13) single-tensor update rules, float32 bit for bit.
 *
 * Each rule transcribes its `_single_tensor_*` function in
 * torch/optim/<name>.py, keeping torch's order of float32 operations:
 *   - a Python-float hyperparameter is combined in double where the Python code
 *     does arithmetic on floats (1 - beta1, lr / bias_correction1, ...) and is
 *     then cast to float when it meets a tensor (torch wraps the scalar and casts
 *     it to the tensor's dtype);
 *   - torch's CPU kernels (AVX2, as shipped) evaluate
 *       a.add(b, alpha=s)         as fmaf(s, b, a)
 *       a.addcmul(b, c, value=s)  as fmaf(s * b, c, a)
 *       a.addcdiv(b, c, value=s)  as a + (s * b) / c
 *     which was checked bit for bit against torch (tests/reference/gen_optim_loss.py
 *     writes the fixture that tests/test_optim.c compares against).
 * This file is compiled without floating-point contraction (ISO C mode), so
 * every other operation is rounded exactly as written. */
#include "optim.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static const char *const optim_names[] = {"sgd", "adam", "adagrad", "adadelta", "rmsprop", "asgd"};

#define N_OPTIM ((int)(sizeof optim_names / sizeof optim_names[0]))

int tb_optim_parse(const char *name, tb_optim_kind *out)
{
    if (!name) return -1;
    for (int i = 0; i < N_OPTIM; i++) {
        if (strcmp(name, optim_names[i]) == 0) {
            *out = (tb_optim_kind)i;
            return 0;
        }
    }
    return -1;
}

const char *tb_optim_name(tb_optim_kind kind)
{
    if ((int)kind < 0 || (int)kind >= N_OPTIM) return "unknown";
    return optim_names[kind];
}

const char *tb_optim_names(void) { return "sgd, adam, adagrad, adadelta, rmsprop, asgd"; }

void tb_optim_defaults(tb_optim_config *cfg, tb_optim_kind kind)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->kind = kind;
    switch (kind) {
    case TB_OPT_SGD: cfg->lr = 0.01; break; /* torch has no default lr for SGD */
    case TB_OPT_ADAM:
        cfg->lr = 1e-3;
        cfg->beta1 = 0.9;
        cfg->beta2 = 0.999;
        cfg->eps = 1e-8;
        break;
    case TB_OPT_ADAGRAD:
        cfg->lr = 1e-2;
        cfg->eps = 1e-10;
        break;
    case TB_OPT_ADADELTA:
        cfg->lr = 1.0;
        cfg->rho = 0.9;
        cfg->eps = 1e-6;
        break;
    case TB_OPT_RMSPROP:
        cfg->lr = 1e-2;
        cfg->alpha = 0.99;
        cfg->eps = 1e-8;
        break;
    case TB_OPT_ASGD:
        cfg->lr = 1e-2;
        cfg->lambd = 1e-4;
        cfg->alpha = 0.75;
        cfg->t0 = 1e6;
        break;
    }
}

/* ---- validation --------------------------------------------------------- */

/* Range of one hyperparameter: lo <= v (or lo < v), v <= hi (or v < hi). */
typedef struct range {
    const char *name;
    double value;
    double lo, hi;
    int hi_open; /* v < hi instead of v <= hi */
} range;

static int check_range(const char *opt, const range *r, char *msg, size_t msglen)
{
    if (!isfinite(r->value)) {
        snprintf(msg, msglen, "%s: %s = %g is not finite", opt, r->name, r->value);
        return -1;
    }
    int ok = r->value >= r->lo && (r->hi_open ? r->value < r->hi : r->value <= r->hi);
    if (ok) return 0;
    if (isinf(r->hi))
        snprintf(msg, msglen, "%s: %s = %g is outside [%g, inf)", opt, r->name, r->value, r->lo);
    else
        snprintf(msg, msglen, "%s: %s = %g is outside [%g, %g%c", opt, r->name, r->value, r->lo, r->hi,
                 r->hi_open ? ')' : ']');
    return -1;
}

static int check_all(const char *opt, const range *rs, int count, char *msg, size_t msglen)
{
    for (int i = 0; i < count; i++)
        if (check_range(opt, &rs[i], msg, msglen) != 0) return -1;
    return 0;
}

#define NONNEG(field) {#field, cfg->field, 0.0, INFINITY, 0}
#define ANY(field) {#field, cfg->field, -INFINITY, INFINITY, 0}

/* What torch's constructors check, plus finiteness of every value the rule reads. */
static int validate_kind(const tb_optim_config *cfg, const char *opt, char *msg, size_t msglen)
{
    switch (cfg->kind) {
    case TB_OPT_SGD: {
        range rs[] = {NONNEG(lr), NONNEG(momentum), ANY(dampening), NONNEG(weight_decay)};
        if (check_all(opt, rs, (int)(sizeof rs / sizeof rs[0]), msg, msglen)) return -1;
        if (cfg->nesterov && (cfg->momentum <= 0 || cfg->dampening != 0)) {
            snprintf(msg, msglen,
                     "%s: nesterov requires momentum > 0 and dampening = 0 (momentum = %g, dampening = %g)", opt,
                     cfg->momentum, cfg->dampening);
            return -1;
        }
        return 0;
    }
    case TB_OPT_ADAM: {
        range rs[] = {NONNEG(lr), NONNEG(eps), {"beta1", cfg->beta1, 0.0, 1.0, 1},
                      {"beta2", cfg->beta2, 0.0, 1.0, 1}, NONNEG(weight_decay)};
        return check_all(opt, rs, (int)(sizeof rs / sizeof rs[0]), msg, msglen);
    }
    case TB_OPT_ADAGRAD: {
        range rs[] = {NONNEG(lr), NONNEG(lr_decay), NONNEG(weight_decay), NONNEG(initial_accumulator_value),
                      NONNEG(eps)};
        return check_all(opt, rs, (int)(sizeof rs / sizeof rs[0]), msg, msglen);
    }
    case TB_OPT_ADADELTA: {
        range rs[] = {NONNEG(lr), {"rho", cfg->rho, 0.0, 1.0, 0}, NONNEG(eps), NONNEG(weight_decay)};
        return check_all(opt, rs, (int)(sizeof rs / sizeof rs[0]), msg, msglen);
    }
    case TB_OPT_RMSPROP: {
        range rs[] = {NONNEG(lr), NONNEG(eps), NONNEG(momentum), NONNEG(weight_decay), NONNEG(alpha)};
        return check_all(opt, rs, (int)(sizeof rs / sizeof rs[0]), msg, msglen);
    }
    case TB_OPT_ASGD: {
        /* torch checks only lr and weight_decay; lambd, alpha, t0 only need to be finite. */
        range rs[] = {NONNEG(lr), ANY(lambd), ANY(alpha), ANY(t0), NONNEG(weight_decay)};
        return check_all(opt, rs, (int)(sizeof rs / sizeof rs[0]), msg, msglen);
    }
    }
    return 0;
}

#undef NONNEG
#undef ANY

int tb_optim_validate(const tb_optim_config *cfg, char *msg, size_t msglen)
{
    char scratch[8];
    if (!msg || msglen == 0) {
        msg = scratch;
        msglen = sizeof scratch;
    }
    msg[0] = '\0';
    if ((int)cfg->kind < 0 || (int)cfg->kind >= N_OPTIM) {
        snprintf(msg, msglen, "unknown optimizer kind %d (expected one of %s)", (int)cfg->kind, tb_optim_names());
        return -1;
    }
    return validate_kind(cfg, optim_names[cfg->kind], msg, msglen);
}

/* Rounds x to float32, as torch storing a Python float into a float32 tensor.
 * Out of line on purpose: GCC 12 at -O2/-O3 SLP-vectorises two adjacent
 * stores of (double)(float)x and then folds the float round trip away
 * (observed on Debian's gcc 12.2), which silently keeps ASGD's eta/mu in double. */
__attribute__((noinline)) static double round_f32(double x)
{
    volatile float f = (float)x;
    return f;
}

/* ---- state slots -------------------------------------------------------- */

/* Fills names with the config's slot names in order; returns the count (<= 3). */
static int slot_names(const tb_optim_config *cfg, const char *names[3])
{
    int k = 0;
    switch (cfg->kind) {
    case TB_OPT_SGD:
        if (cfg->momentum != 0) names[k++] = "momentum_buffer";
        break;
    case TB_OPT_ADAM:
        names[k++] = "exp_avg";
        names[k++] = "exp_avg_sq";
        if (cfg->amsgrad) names[k++] = "max_exp_avg_sq";
        break;
    case TB_OPT_ADAGRAD: names[k++] = "sum"; break;
    case TB_OPT_ADADELTA:
        names[k++] = "square_avg";
        names[k++] = "acc_delta";
        break;
    case TB_OPT_RMSPROP:
        names[k++] = "square_avg";
        if (cfg->momentum > 0) names[k++] = "momentum_buffer";
        if (cfg->centered) names[k++] = "grad_avg";
        break;
    case TB_OPT_ASGD: names[k++] = "ax"; break;
    }
    return k;
}

int tb_optim_slots(const tb_optim_config *cfg)
{
    const char *names[3];
    return slot_names(cfg, names);
}

const char *tb_optim_slot_name(const tb_optim_config *cfg, int slot)
{
    const char *names[3];
    int k = slot_names(cfg, names);
    return slot >= 0 && slot < k ? names[slot] : NULL;
}

/* Start of the slot called name in state, or NULL when the config has none. */
static float *slot_ptr(const tb_optim_config *cfg, float *state, size_t n, const char *name)
{
    const char *names[3];
    int k = slot_names(cfg, names);
    for (int s = 0; s < k; s++)
        if (strcmp(names[s], name) == 0) return state + (size_t)s * n;
    return NULL;
}

void tb_optim_init_state(const tb_optim_config *cfg, tb_optim_scalars *sc, float *state, size_t n)
{
    size_t total = (size_t)tb_optim_slots(cfg) * n;
    if (total) memset(state, 0, total * sizeof *state);
    if (cfg->kind == TB_OPT_ADAGRAD) {
        float v = (float)cfg->initial_accumulator_value; /* torch.full_like(p, initial_accumulator_value) */
        for (size_t i = 0; i < n; i++) state[i] = v;
    }
    sc->step = 0;
    sc->eta = round_f32(cfg->lr); /* torch.tensor(lr): a float32 tensor */
    sc->mu = 1.0;
}

float *tb_optim_averaged(const tb_optim_config *cfg, float *state, size_t n)
{
    return cfg->kind == TB_OPT_ASGD ? slot_ptr(cfg, state, n, "ax") : NULL;
}

/* ---- update rules ------------------------------------------------------- */

/* Below this many elements the loops run on one thread (the result is the same). */
#define PAR_MIN 65536

/* grad.add(param, alpha=weight_decay) when weight_decay != 0. */
static inline float decayed(float g, float p, float wd, int use_wd) { return use_wd ? fmaf(wd, p, g) : g; }

/* _single_tensor_sgd. The first step clones d_p into the (absent) buffer. */
static void step_sgd(const tb_optim_config *cfg, const tb_optim_scalars *sc, float *restrict p,
                     const float *restrict g, float *restrict buf, size_t n)
{
    const int use_wd = cfg->weight_decay != 0, use_mom = cfg->momentum != 0, nesterov = cfg->nesterov;
    const int first = sc->step == 0;
    const float wd = (float)cfg->weight_decay, mom = (float)cfg->momentum;
    const float one_minus_damp = (float)(1.0 - cfg->dampening), neg_lr = (float)(-cfg->lr);
#pragma omp parallel for simd schedule(static) if (n >= PAR_MIN)
    for (size_t i = 0; i < n; i++) {
        float d = decayed(g[i], p[i], wd, use_wd);
        if (use_mom) {
            float b = first ? d : fmaf(one_minus_damp, d, buf[i] * mom);
            buf[i] = b;
            d = nesterov ? fmaf(mom, b, d) : b;
        }
        p[i] = fmaf(neg_lr, d, p[i]);
    }
}

/* torch.maximum: NaN when either operand is NaN. */
static inline float nan_max(float a, float b) { return (a > b || a != a) ? a : b; }

/* _single_tensor_adam (capturable=False): bias corrections in double, then
 * denom = exp_avg_sq.sqrt() / bias_correction2_sqrt + eps and
 * param.addcdiv_(exp_avg, denom, value=-step_size). */
static void step_adam(const tb_optim_config *cfg, const tb_optim_scalars *sc, float *restrict p,
                      const float *restrict g, float *restrict state, size_t n, size_t stride)
{
    float *restrict m = state, *restrict v = state + stride, *restrict vmax = state + 2 * stride;
    const int use_wd = cfg->weight_decay != 0, amsgrad = cfg->amsgrad;
    const double step = (double)sc->step; /* already incremented */
    const double bc1 = 1.0 - pow(cfg->beta1, step), bc2 = 1.0 - pow(cfg->beta2, step);
    const float neg_step_size = (float)(-(cfg->lr / bc1)), bc2_sqrt = (float)sqrt(bc2);
    const float wd = (float)cfg->weight_decay, b1 = (float)cfg->beta1, b2 = (float)cfg->beta2;
    const float omb1 = (float)(1.0 - cfg->beta1), omb2 = (float)(1.0 - cfg->beta2), eps = (float)cfg->eps;
#pragma omp parallel for simd schedule(static) if (n >= PAR_MIN)
    for (size_t i = 0; i < n; i++) {
        float d = decayed(g[i], p[i], wd, use_wd);
        float mi = fmaf(omb1, d, m[i] * b1);       /* exp_avg.mul_(beta1).add_(grad, alpha=1-beta1) */
        float vi = fmaf(omb2 * d, d, v[i] * b2);   /* exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1-beta2) */
        m[i] = mi;
        v[i] = vi;
        if (amsgrad) {
            vi = nan_max(vmax[i], vi);
            vmax[i] = vi;
        }
        float denom = sqrtf(vi) / bc2_sqrt + eps;
        p[i] = p[i] + (neg_step_size * mi) / denom;
    }
}

/* _single_tensor_adagrad: clr = lr / (1 + (step - 1) * lr_decay). */
static void step_adagrad(const tb_optim_config *cfg, const tb_optim_scalars *sc, float *restrict p,
                         const float *restrict g, float *restrict sum, size_t n)
{
    const int use_wd = cfg->weight_decay != 0;
    const double clr = cfg->lr / (1.0 + ((double)sc->step - 1.0) * cfg->lr_decay);
    const float wd = (float)cfg->weight_decay, neg_clr = (float)(-clr), eps = (float)cfg->eps;
#pragma omp parallel for simd schedule(static) if (n >= PAR_MIN)
    for (size_t i = 0; i < n; i++) {
        float d = decayed(g[i], p[i], wd, use_wd);
        float s = fmaf(d, d, sum[i]); /* state_sum.addcmul_(grad, grad, value=1) */
        sum[i] = s;
        float std = sqrtf(s) + eps;
        p[i] = p[i] + (neg_clr * d) / std;
    }
}

/* _single_tensor_adadelta. */
static void step_adadelta(const tb_optim_config *cfg, float *restrict p, const float *restrict g,
                          float *restrict state, size_t n, size_t stride)
{
    float *restrict sq = state, *restrict acc = state + stride;
    const int use_wd = cfg->weight_decay != 0;
    const float wd = (float)cfg->weight_decay, rho = (float)cfg->rho, omr = (float)(1.0 - cfg->rho);
    const float eps = (float)cfg->eps, neg_lr = (float)(-cfg->lr);
#pragma omp parallel for simd schedule(static) if (n >= PAR_MIN)
    for (size_t i = 0; i < n; i++) {
        float d = decayed(g[i], p[i], wd, use_wd);
        float s = fmaf(omr * d, d, sq[i] * rho); /* square_avg.mul_(rho).addcmul_(grad, grad, value=1-rho) */
        sq[i] = s;
        float std = sqrtf(s + eps);
        float delta = sqrtf(acc[i] + eps) / std * d;
        acc[i] = fmaf(omr * delta, delta, acc[i] * rho);
        p[i] = fmaf(neg_lr, delta, p[i]);
    }
}

/* _single_tensor_rmsprop: slots square_avg [, momentum_buffer] [, grad_avg]. */
static void step_rmsprop(const tb_optim_config *cfg, float *restrict p, const float *restrict g,
                         float *restrict state, size_t n, size_t stride)
{
    float *restrict sq = state;
    const int use_mom = cfg->momentum > 0, centered = cfg->centered;
    float *restrict buf = use_mom ? state + stride : NULL;
    float *restrict gavg = centered ? state + (size_t)(1 + use_mom) * stride : NULL;
    const int use_wd = cfg->weight_decay != 0;
    const float wd = (float)cfg->weight_decay, a = (float)cfg->alpha, oma = (float)(1.0 - cfg->alpha);
    const float eps = (float)cfg->eps, mom = (float)cfg->momentum, neg_lr = (float)(-cfg->lr);
#pragma omp parallel for simd schedule(static) if (n >= PAR_MIN)
    for (size_t i = 0; i < n; i++) {
        float d = decayed(g[i], p[i], wd, use_wd);
        float s = fmaf(oma * d, d, sq[i] * a);
        sq[i] = s;
        float avg;
        if (centered) {
            float ga = fmaf(oma, d, gavg[i] * a);
            gavg[i] = ga;
            avg = sqrtf(fmaf(-ga, ga, s)); /* square_avg.addcmul(grad_avg, grad_avg, value=-1).sqrt_() */
        } else {
            avg = sqrtf(s);
        }
        avg = avg + eps;
        if (use_mom) {
            float b = buf[i] * mom + d / avg; /* buf.mul_(momentum).addcdiv_(grad, avg) */
            buf[i] = b;
            p[i] = fmaf(neg_lr, b, p[i]);
        } else {
            p[i] = p[i] + (neg_lr * d) / avg;
        }
    }
}

/* _single_tensor_asgd: the step uses eta and mu from before it; then
 * eta = lr / (1 + lambd*lr*step)^alpha and mu = 1 / max(1, step - t0), both
 * stored as float32 tensors by torch (hence the rounding through float). */
static void step_asgd(const tb_optim_config *cfg, tb_optim_scalars *sc, float *restrict p,
                      const float *restrict g, float *restrict ax, size_t n)
{
    const int use_wd = cfg->weight_decay != 0, average = sc->mu != 1.0;
    const float wd = (float)cfg->weight_decay, decay = (float)(1.0 - cfg->lambd * sc->eta);
    const float neg_eta = (float)(-sc->eta), mu = (float)sc->mu;
#pragma omp parallel for simd schedule(static) if (n >= PAR_MIN)
    for (size_t i = 0; i < n; i++) {
        float d = decayed(g[i], p[i], wd, use_wd);
        float pi = p[i] * decay;    /* param.mul_(1 - lambd * eta) */
        pi = fmaf(neg_eta, d, pi);  /* param.add_(grad, alpha=-eta) */
        p[i] = pi;
        ax[i] = average ? ax[i] + (pi - ax[i]) * mu : pi;
    }
    const double step = (double)sc->step;
    sc->eta = round_f32(cfg->lr / pow(1.0 + cfg->lambd * cfg->lr * step, cfg->alpha));
    sc->mu = round_f32(1.0 / fmax(1.0, step - cfg->t0));
}

void tb_optim_step(const tb_optim_config *cfg, tb_optim_scalars *sc, float *params, const float *grads,
                   float *state, size_t n)
{
    tb_optim_step_strided(cfg, sc, params, grads, state, n, n);
}

void tb_optim_step_strided(const tb_optim_config *cfg, tb_optim_scalars *sc, float *params, const float *grads,
                           float *state, size_t n, size_t stride)
{
    switch (cfg->kind) {
    case TB_OPT_SGD:
        step_sgd(cfg, sc, params, grads, state, n);
        sc->step++;
        break;
    case TB_OPT_ADAM:
        sc->step++;
        step_adam(cfg, sc, params, grads, state, n, stride);
        break;
    case TB_OPT_ADAGRAD:
        sc->step++;
        step_adagrad(cfg, sc, params, grads, state, n);
        break;
    case TB_OPT_ADADELTA:
        step_adadelta(cfg, params, grads, state, n, stride);
        sc->step++;
        break;
    case TB_OPT_RMSPROP:
        step_rmsprop(cfg, params, grads, state, n, stride);
        sc->step++;
        break;
    case TB_OPT_ASGD:
        sc->step++;
        step_asgd(cfg, sc, params, grads, state, n);
        break;
    }
}
