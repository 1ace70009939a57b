/* tanh.c: torch.nn.Tanh (arithmetic: activation_rules.h). */
#include "activation_rules.h"
#include "layers.h"

void tanh_forward(float *out, const float *in, size_t count)
{
#pragma omp parallel for schedule(static) if (count > 65536)
    for (size_t i = 0; i < count; i++) out[i] = tb_tanh_value(in[i]);
}

void tanh_backward(float *din, const float *dout, const float *out, size_t count, int accumulate_din)
{
#pragma omp parallel for schedule(static) if (count > 65536)
    for (size_t i = 0; i < count; i++) {
        const float g = tb_tanh_grad(dout[i], out[i]);
        din[i] = accumulate_din ? din[i] + g : g;
    }
}
