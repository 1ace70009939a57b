/* dropout.c: torch.nn.Dropout in training mode, with masks from the
 * counter-based stream so any backend draws the same mask. */
#include <string.h>

#include "../rng.h"
#include "layers.h"

void dropout_forward(float *out, uint8_t *mask, const float *in, size_t count, float p, uint64_t seed,
                     uint32_t layer, uint64_t step)
{
    if (p >= 1.0f) {
        memset(out, 0, sizeof(float) * count);
        memset(mask, 0, count);
        return;
    }
    const float keep = 1.0f - p, scale = 1.0f / keep;
    const uint64_t base = step << 32;
    uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
    /* four elements per Philox block, as tb_rng_uniform_at(base | i) */
#pragma omp parallel for schedule(static) if (count > 65536)
    for (size_t b = 0; b < (count + 3) / 4; b++) {
        uint64_t block = (base >> 2) + b;
        uint32_t ctr[4] = {(uint32_t)block, (uint32_t)(block >> 32), layer, (uint32_t)TB_STREAM_DROPOUT};
        uint32_t r[4];
        tb_philox4x32(key, ctr, r);
        for (size_t k = 0; k < 4 && 4 * b + k < count; k++) {
            size_t i = 4 * b + k;
            float u = (float)(r[k] >> 8) * (1.0f / 16777216.0f);
            mask[i] = u < keep;
            out[i] = mask[i] ? in[i] * scale : 0.0f;
        }
    }
}

void dropout_backward(float *din, const float *dout, const uint8_t *mask, size_t count, float p,
                      int accumulate_din)
{
    const float scale = p >= 1.0f ? 0.0f : 1.0f / (1.0f - p);
#pragma omp parallel for simd schedule(static) if (count > 65536)
    for (size_t i = 0; i < count; i++) {
        float g = mask[i] ? dout[i] * scale : 0.0f;
        din[i] = accumulate_din ? din[i] + g : g;
    }
}
