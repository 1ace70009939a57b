/* weight_init.c: torch.nn.init's schemes, drawing from tunebench's Philox streams.
 *
 * The formulas are torch's (torch/nn/init.py and the reset_parameters() of
 * nn.Conv2d / nn.Linear); the random numbers are tunebench's own, so the
 * distributions match torch, not the individual values. */
#include "weight_init.h"

#include <math.h>
#include <string.h>

static const char *const init_names[] = {"default",       "kaiming_uniform", "kaiming_normal", "xavier_uniform",
                                         "xavier_normal", "normal",          "constant"};

#define N_INIT ((int)(sizeof init_names / sizeof init_names[0]))

int tb_init_parse(const char *name, tb_init_kind *out)
{
    if (!name) return -1;
    for (int i = 0; i < N_INIT; i++) {
        if (strcmp(name, init_names[i]) == 0) {
            *out = (tb_init_kind)i;
            return 0;
        }
    }
    return -1;
}

const char *tb_init_name(tb_init_kind kind)
{
    if ((int)kind < 0 || (int)kind >= N_INIT) return "unknown";
    return init_names[kind];
}

const char *tb_init_names(void)
{
    return "default, kaiming_uniform, kaiming_normal, xavier_uniform, xavier_normal, normal, constant";
}

/* sqrt(num / den), or 0 when den <= 0 (torch would divide by zero on an empty fan). */
static double safe_sqrt_ratio(double num, double den) { return den > 0 ? sqrt(num / den) : 0.0; }

static void fill_uniform(float *w, size_t count, double bound, tb_rng *r)
{
    float lo = (float)-bound, hi = (float)bound;
    for (size_t i = 0; i < count; i++) w[i] = tb_rng_uniform_range(r, lo, hi);
}

static void fill_normal(float *w, size_t count, double std, tb_rng *r)
{
    float s = (float)std;
    for (size_t i = 0; i < count; i++) w[i] = s * tb_rng_normal(r);
}

static void fill_constant(float *w, size_t count, float v)
{
    for (size_t i = 0; i < count; i++) w[i] = v;
}

/* Bias: DEFAULT is U(+-1/sqrt(fan_in)) (0 when fan_in == 0, as torch's
 * reset_parameters), CONSTANT is arg; any other kind fills 0. */
static void fill_bias(float *w, size_t count, tb_init_kind kind, float arg, int fan_in, tb_rng *r)
{
    if (kind == TB_INIT_DEFAULT)
        fill_uniform(w, count, safe_sqrt_ratio(1.0, fan_in), r);
    else if (kind == TB_INIT_CONSTANT)
        fill_constant(w, count, arg);
    else
        fill_constant(w, count, 0.0f);
}

void tb_init_fill(float *w, size_t count, tb_init_kind kind, float arg, int fan_in, int fan_out, int is_bias,
                  tb_rng *r)
{
    if (is_bias) {
        fill_bias(w, count, kind, arg, fan_in, r);
        return;
    }
    const double fan_sum = (double)fan_in + (double)fan_out;
    switch (kind) {
    case TB_INIT_DEFAULT:
        /* kaiming_uniform_(a=sqrt(5)): gain = sqrt(2/(1+5)), bound = gain*sqrt(3/fan_in) = 1/sqrt(fan_in). */
        fill_uniform(w, count, safe_sqrt_ratio(1.0, fan_in), r);
        return;
    case TB_INIT_KAIMING_UNIFORM: /* gain sqrt(2): bound = sqrt(2)*sqrt(3/fan_in) */
        fill_uniform(w, count, safe_sqrt_ratio(6.0, fan_in), r);
        return;
    case TB_INIT_KAIMING_NORMAL: /* std = sqrt(2)/sqrt(fan_in) */
        fill_normal(w, count, safe_sqrt_ratio(2.0, fan_in), r);
        return;
    case TB_INIT_XAVIER_UNIFORM: /* gain 1: bound = sqrt(3)*sqrt(2/(fan_in+fan_out)) */
        fill_uniform(w, count, safe_sqrt_ratio(6.0, fan_sum), r);
        return;
    case TB_INIT_XAVIER_NORMAL:
        fill_normal(w, count, safe_sqrt_ratio(2.0, fan_sum), r);
        return;
    case TB_INIT_NORMAL: fill_normal(w, count, arg, r); return;
    case TB_INIT_CONSTANT: fill_constant(w, count, arg); return;
    }
    fill_constant(w, count, 0.0f); /* unknown kind */
}
