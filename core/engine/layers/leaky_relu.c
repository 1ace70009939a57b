/* leaky_relu.c: torch.nn.LeakyReLU(negative_slope) (arithmetic: activation_rules.h). */
#include "activation_rules.h"
#include "layers.h"

void leaky_relu_forward(float *out, const float *in, size_t count, float negative_slope)
{
#pragma omp parallel for schedule(static) if (count > 65536)
    for (size_t i = 0; i < count; i++) out[i] = tb_leaky_relu_value(in[i], negative_slope);
}

void leaky_relu_backward(float *din, const float *dout, const float *in, size_t count, float negative_slope,
                         int accumulate_din)
{
#pragma omp parallel for schedule(static) if (count > 65536)
    for (size_t i = 0; i < count; i++) {
        const float g = tb_leaky_relu_grad(dout[i], in[i], negative_slope);
        din[i] = accumulate_din ? din[i] + g : g;
    }
}
