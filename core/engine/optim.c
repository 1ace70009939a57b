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
#include "optim_rules.h"

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
    if ((int)kind < 0 || (int)kind >= N_OPTIM) return;
#define SET_DEFAULT(name, type, lo, hi, read_by, check, check_by, defaults)                                       \
    {                                                                                                              \
        static const double by_kind[N_OPTIM] = {TB_HPARAM_LIST defaults};                                          \
        cfg->name = (TB_HPARAM_CTYPE_##type)by_kind[kind];                                                         \
    }
    TB_OPTIM_HPARAMS(SET_DEFAULT)
#undef SET_DEFAULT
}

/* ---- validation --------------------------------------------------------- */

/* torch's checks (hparams.h's torch_check column): lo <= v, v <= hi (or v < hi). */
typedef struct torch_range {
    double lo, hi;
    int hi_open;
} torch_range;

static const torch_range range_NONNEG = {0.0, INFINITY, 0}, range_UNIT = {0.0, 1.0, 0},
                         range_UNIT_OPEN = {0.0, 1.0, 1}, range_FINITE = {-INFINITY, INFINITY, 0};

static int check_range(const char *opt, const char *name, double value, const torch_range *r, char *msg,
                       size_t msglen)
{
    if (!isfinite(value)) {
        snprintf(msg, msglen, "%s: %s = %g is not finite", opt, name, value);
        return -1;
    }
    int ok = value >= r->lo && (r->hi_open ? value < r->hi : value <= r->hi);
    if (ok) return 0;
    if (isinf(r->hi))
        snprintf(msg, msglen, "%s: %s = %g is outside [%g, inf)", opt, name, value, r->lo);
    else
        snprintf(msg, msglen, "%s: %s = %g is outside [%g, %g%c", opt, name, value, r->lo, r->hi,
                 r->hi_open ? ')' : ']');
    return -1;
}

/* What torch's constructors check, plus finiteness of every real value the rule reads. */
static int validate_kind(const tb_optim_config *cfg, const char *opt, char *msg, size_t msglen)
{
    const unsigned kind_bit = 1u << cfg->kind;
#define CHECK_FLOAT(name, check, check_by)                                                                         \
    if (check_range(opt, #name, cfg->name, (check_by) & kind_bit ? &range_##check : &range_FINITE, msg, msglen))   \
        return -1;
#define CHECK_BOOL(name, check, check_by) /* 0 or 1 by construction */
#define CHECK(name, type, lo, hi, read_by, check, check_by, defaults)                                              \
    if ((read_by) & kind_bit) {                                                                                    \
        CHECK_##type(name, check, check_by)                                                                        \
    }
    TB_OPTIM_HPARAMS(CHECK)
#undef CHECK
#undef CHECK_FLOAT
#undef CHECK_BOOL
    if (cfg->kind == TB_OPT_SGD && cfg->nesterov && (cfg->momentum <= 0 || cfg->dampening != 0)) {
        snprintf(msg, msglen, "%s: nesterov requires momentum > 0 and dampening = 0 (momentum = %g, dampening = %g)",
                 opt, cfg->momentum, cfg->dampening);
        return -1;
    }
    return 0;
}

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
    sc->eta = tb_round_f32(cfg->lr); /* torch.tensor(lr): a float32 tensor */
    sc->mu = 1.0;
}

float *tb_optim_averaged(const tb_optim_config *cfg, float *state, size_t n)
{
    return cfg->kind == TB_OPT_ASGD ? slot_ptr(cfg, state, n, "ax") : NULL;
}

/* ---- update rules ------------------------------------------------------- */

/* Below this many elements the loops run on one thread (the result is the same). */
#define PAR_MIN 65536

/* One loop per optimizer over the element rules of optim_rules.h; slots
 * absent from the config are never read (their pointers may be NULL). */
static void apply_rule(const tb_optim_coeffs *k, float *restrict p, const float *restrict g, float *restrict state,
                       size_t n, size_t stride)
{
    float *restrict s0 = state, *restrict s1 = state ? state + stride : NULL;
    float *restrict s2 = state ? state + 2 * stride : NULL;
    switch ((tb_optim_kind)k->kind) {
    case TB_OPT_SGD:
#pragma omp parallel for simd schedule(static) if (n >= PAR_MIN)
        for (size_t i = 0; i < n; i++) {
            float b = k->use_mom ? s0[i] : 0.0f;
            p[i] = tb_sgd_elem(k, p[i], g[i], &b);
            if (k->use_mom) s0[i] = b;
        }
        break;
    case TB_OPT_ADAM:
#pragma omp parallel for simd schedule(static) if (n >= PAR_MIN)
        for (size_t i = 0; i < n; i++) {
            float m = s0[i], v = s1[i], vmax = k->amsgrad ? s2[i] : 0.0f;
            p[i] = tb_adam_elem(k, p[i], g[i], &m, &v, &vmax);
            s0[i] = m;
            s1[i] = v;
            if (k->amsgrad) s2[i] = vmax;
        }
        break;
    case TB_OPT_ADAGRAD:
#pragma omp parallel for simd schedule(static) if (n >= PAR_MIN)
        for (size_t i = 0; i < n; i++) p[i] = tb_adagrad_elem(k, p[i], g[i], &s0[i]);
        break;
    case TB_OPT_ADADELTA:
#pragma omp parallel for simd schedule(static) if (n >= PAR_MIN)
        for (size_t i = 0; i < n; i++) p[i] = tb_adadelta_elem(k, p[i], g[i], &s0[i], &s1[i]);
        break;
    case TB_OPT_RMSPROP: {
        /* slots: square_avg [, momentum_buffer] [, grad_avg] */
        float *restrict buf = k->use_mom ? s1 : NULL;
        float *restrict gavg = k->centered ? (k->use_mom ? s2 : s1) : NULL;
#pragma omp parallel for simd schedule(static) if (n >= PAR_MIN)
        for (size_t i = 0; i < n; i++) {
            float b = buf ? buf[i] : 0.0f, ga = gavg ? gavg[i] : 0.0f;
            p[i] = tb_rmsprop_elem(k, p[i], g[i], &s0[i], &b, &ga);
            if (buf) buf[i] = b;
            if (gavg) gavg[i] = ga;
        }
        break;
    }
    case TB_OPT_ASGD:
#pragma omp parallel for simd schedule(static) if (n >= PAR_MIN)
        for (size_t i = 0; i < n; i++) p[i] = tb_asgd_elem(k, p[i], g[i], &s0[i]);
        break;
    }
}

void tb_optim_step(const tb_optim_config *cfg, tb_optim_scalars *sc, float *params, const float *grads,
                   float *state, size_t n)
{
    tb_optim_step_strided(cfg, sc, params, grads, state, n, n);
}

void tb_optim_step_strided(const tb_optim_config *cfg, tb_optim_scalars *sc, float *params, const float *grads,
                           float *state, size_t n, size_t stride)
{
    tb_optim_coeffs k;
    tb_optim_coeffs_next(cfg, sc, &k);
    if (n) apply_rule(&k, params, grads, state, n, stride);
}
