/* relu.c: torch.nn.ReLU (arithmetic: activation_rules.h). */
#include "activation_rules.h"
#include "layers.h"

void relu_forward(float *out, const float *in, size_t count)
{
#pragma omp parallel for simd schedule(static) if (count > 65536)
    for (size_t i = 0; i < count; i++) out[i] = tb_relu_value(in[i]);
}

void relu_backward(float *din, const float *dout, const float *out, size_t count, int accumulate_din)
{
    if (accumulate_din) {
#pragma omp parallel for simd schedule(static) if (count > 65536)
        for (size_t i = 0; i < count; i++) din[i] += tb_relu_grad(dout[i], out[i]);
    } else {
#pragma omp parallel for simd schedule(static) if (count > 65536)
        for (size_t i = 0; i < count; i++) din[i] = tb_relu_grad(dout[i], out[i]);
    }
}

void tb_copy_or_add(float *dst, const float *src, size_t count, int accumulate)
{
    if (accumulate) {
#pragma omp parallel for simd schedule(static) if (count > 65536)
        for (size_t i = 0; i < count; i++) dst[i] += src[i];
    } else {
#pragma omp parallel for simd schedule(static) if (count > 65536)
        for (size_t i = 0; i < count; i++) dst[i] = src[i];
    }
}
