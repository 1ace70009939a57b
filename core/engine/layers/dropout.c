/* dropout.c: torch.nn.Dropout in training mode, with masks from the
 * counter-based stream so any backend draws the same mask. */
#include <string.h>

#include "base/philox.h"
#include "base/rng.h"
#include "layers.h"

/* DROP_BLOCKS consecutive Philox blocks at once (philox.h, inlined) so the
 * compiler vectorises across blocks; r[4 * j + k] is word k of block block0 + j. */
#define DROP_BLOCKS 64

static void drop_philox(uint32_t *restrict r, const uint32_t key[2], uint64_t block0, int nb, uint32_t sub,
                        uint32_t stream)
{
    const uint32_t k0 = key[0], k1 = key[1];
#pragma omp simd
    for (int j = 0; j < nb; j++) {
        const uint64_t block = block0 + (uint64_t)j;
        tb_philox_block(k0, k1, (uint32_t)block, (uint32_t)(block >> 32), sub, stream, r + 4 * j);
    }
}

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
    const uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
    const size_t blocks = (count + 3) / 4, chunks = (blocks + DROP_BLOCKS - 1) / DROP_BLOCKS;
    /* four elements per Philox block, as tb_rng_uniform_at(base | i) */
#pragma omp parallel for schedule(static) if (count > 65536)
    for (size_t ch = 0; ch < chunks; ch++) {
        uint32_t r[4 * DROP_BLOCKS];
        const size_t b0 = ch * DROP_BLOCKS, i0 = 4 * b0;
        const int nb = (int)(blocks - b0 < DROP_BLOCKS ? blocks - b0 : DROP_BLOCKS);
        drop_philox(r, key, (base >> 2) + b0, nb, layer, (uint32_t)TB_STREAM_DROPOUT);
        const size_t ne = count - i0 < (size_t)(4 * nb) ? count - i0 : (size_t)(4 * nb);
#pragma omp simd
        for (size_t e = 0; e < ne; e++) {
            const float u = tb_philox_unit(r[e]);
            const uint8_t m = u < keep;
            mask[i0 + e] = m;
            out[i0 + e] = m ? in[i0 + e] * scale : 0.0f;
        }
    }
}

void dropout_backward(float *din, const float *dout, const uint8_t *mask, size_t count, float p,
                      int accumulate_din)
{
    const float scale = p >= 1.0f ? 0.0f : 1.0f / (1.0f - p);
    if (accumulate_din) {
#pragma omp parallel for simd schedule(static) if (count > 65536)
        for (size_t i = 0; i < count; i++) din[i] += mask[i] ? dout[i] * scale : 0.0f;
    } else {
#pragma omp parallel for simd schedule(static) if (count > 65536)
        for (size_t i = 0; i < count; i++) din[i] = mask[i] ? dout[i] * scale : 0.0f;
    }
}
