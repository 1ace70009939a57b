/* weight_init.h: weight initialisers, as torch.nn.init. */
#ifndef TB_INIT_H
#define TB_INIT_H

#include <stddef.h>

#include "base/rng.h"

/* tb_init_kind and tb_init_spec are defined in the public plugin header. */
#include "tunebench/tunebench_plugin.h"

/* PyTorch's defaults for conv/linear. */
static inline tb_init_spec tb_init_torch_default(void) { return TB_INIT_TORCH_DEFAULT; }

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
