/* init.h: weight initialisers, as torch.nn.init. */
#ifndef TB_INIT_H
#define TB_INIT_H

#include <stddef.h>

#include "rng.h"

typedef enum tb_init_kind {
    TB_INIT_DEFAULT = 0,    /* torch's reset_parameters(): weight kaiming_uniform(a=sqrt(5)),
                               bias uniform(+-1/sqrt(fan_in)) */
    TB_INIT_KAIMING_UNIFORM,/* kaiming_uniform_(mode=fan_in, nonlinearity=relu): U(+-sqrt(6/fan_in)) */
    TB_INIT_KAIMING_NORMAL, /* kaiming_normal_(mode=fan_in, nonlinearity=relu): N(0, 2/fan_in) */
    TB_INIT_XAVIER_UNIFORM, /* U(+-sqrt(6/(fan_in+fan_out))) */
    TB_INIT_XAVIER_NORMAL,  /* N(0, 2/(fan_in+fan_out)) */
    TB_INIT_NORMAL,         /* N(0, arg^2) */
    TB_INIT_CONSTANT,       /* arg */
} tb_init_kind;

/* How one layer's weight and bias are initialised. */
typedef struct tb_init_spec {
    tb_init_kind weight;
    float weight_arg; /* std for NORMAL, value for CONSTANT */
    tb_init_kind bias; /* DEFAULT: uniform(+-1/sqrt(fan_in)); CONSTANT: bias_arg */
    float bias_arg;
} tb_init_spec;

/* PyTorch's defaults for conv/linear. */
static inline tb_init_spec tb_init_torch_default(void) { return (tb_init_spec){TB_INIT_DEFAULT, 0, TB_INIT_DEFAULT, 0}; }

int tb_init_parse(const char *name, tb_init_kind *out);
const char *tb_init_name(tb_init_kind kind);
const char *tb_init_names(void);

/* Fills w [count] drawing from r. is_bias selects the bias rule of DEFAULT.
 * For a bias only DEFAULT and CONSTANT are meaningful; any other kind fills 0.
 * A fan that is 0 gives bound/std 0 (torch's bias rule; torch would divide by
 * zero for the weight schemes). */
void tb_init_fill(float *w, size_t count, tb_init_kind kind, float arg, int fan_in, int fan_out, int is_bias,
                  tb_rng *r);

#endif
