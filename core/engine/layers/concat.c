/* concat.c: torch.cat along the channel dimension. */
#include <string.h>

#include "layers.h"

void concat_forward(float *out, const float *const *ins, const int *channels, int n_inputs, int hw, int n)
{
    int total = 0;
    for (int j = 0; j < n_inputs; j++) total += channels[j];
#pragma omp parallel for schedule(static)
    for (int i = 0; i < n; i++) {
        float *dst = out + (size_t)i * total * hw;
        for (int j = 0; j < n_inputs; j++) {
            size_t len = (size_t)channels[j] * hw;
            memcpy(dst, ins[j] + (size_t)i * len, sizeof(float) * len);
            dst += len;
        }
    }
}

void concat_backward(float *const *dins, const float *dout, const int *channels, int n_inputs, int hw, int n,
                     const int *accumulate)
{
    int total = 0;
    for (int j = 0; j < n_inputs; j++) total += channels[j];
#pragma omp parallel for schedule(static)
    for (int i = 0; i < n; i++) {
        const float *src = dout + (size_t)i * total * hw;
        for (int j = 0; j < n_inputs; j++) {
            size_t len = (size_t)channels[j] * hw;
            if (dins[j]) {
                float *dst = dins[j] + (size_t)i * len;
                if (accumulate[j])
                    for (size_t k = 0; k < len; k++) dst[k] += src[k];
                else
                    memcpy(dst, src, sizeof(float) * len);
            }
            src += len;
        }
    }
}
