/* gelu.c: torch.nn.GELU, approximate='none' (the exact erf form, torch's
 * default) or 'tanh' (arithmetic: activation_rules.h). */
#include "activation_rules.h"
#include "layers.h"

void gelu_forward(float *out, const float *in, size_t count, int tanh_approx)
{
#pragma omp parallel for schedule(static) if (count > 65536)
    for (size_t i = 0; i < count; i++) out[i] = tb_gelu_value(in[i], tanh_approx);
}

void gelu_backward(float *din, const float *dout, const float *in, size_t count, int tanh_approx,
                   int accumulate_din)
{
#pragma omp parallel for schedule(static) if (count > 65536)
    for (size_t i = 0; i < count; i++) {
        const float g = tb_gelu_grad(dout[i], in[i], tanh_approx);
        din[i] = accumulate_din ? din[i] + g : g;
    }
}
