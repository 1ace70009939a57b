/* dropout.c: torch.nn.Dropout in training mode, with masks from the
 * counter-based stream so any backend draws the same mask. */
#include <string.h>

#include "../rng.h"
#include "layers.h"

/* Philox4x32-10 as tb_philox4x32 (core/rng.c), for DROP_BLOCKS consecutive
 * blocks at once so the compiler vectorises across blocks; r[4 * j + k] is
 * word k of block block0 + j. */
#define DROP_BLOCKS 64
#define DROP_M0 0xD2511F53u
#define DROP_M1 0xCD9E8D57u
#define DROP_W0 0x9E3779B9u
#define DROP_W1 0xBB67AE85u
#define DROP_ROUND(k0, k1)                                          \
    do {                                                            \
        const uint64_t p0 = (uint64_t)DROP_M0 * c0;                 \
        const uint64_t p1 = (uint64_t)DROP_M1 * c2;                 \
        const uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ (k0);       \
        const uint32_t n2 = (uint32_t)(p0 >> 32) ^ c3 ^ (k1);       \
        c1 = (uint32_t)p1;                                          \
        c3 = (uint32_t)p0;                                          \
        c0 = n0;                                                    \
        c2 = n2;                                                    \
    } while (0)

static void drop_philox(uint32_t *restrict r, const uint32_t key[2], uint64_t block0, int nb, uint32_t sub,
                        uint32_t stream)
{
    const uint32_t k0 = key[0], k1 = key[1];
#pragma omp simd
    for (int j = 0; j < nb; j++) {
        const uint64_t block = block0 + (uint64_t)j;
        uint32_t c0 = (uint32_t)block, c1 = (uint32_t)(block >> 32), c2 = sub, c3 = stream;
        DROP_ROUND(k0, k1);
        DROP_ROUND(k0 + 1 * DROP_W0, k1 + 1 * DROP_W1);
        DROP_ROUND(k0 + 2 * DROP_W0, k1 + 2 * DROP_W1);
        DROP_ROUND(k0 + 3 * DROP_W0, k1 + 3 * DROP_W1);
        DROP_ROUND(k0 + 4 * DROP_W0, k1 + 4 * DROP_W1);
        DROP_ROUND(k0 + 5 * DROP_W0, k1 + 5 * DROP_W1);
        DROP_ROUND(k0 + 6 * DROP_W0, k1 + 6 * DROP_W1);
        DROP_ROUND(k0 + 7 * DROP_W0, k1 + 7 * DROP_W1);
        DROP_ROUND(k0 + 8 * DROP_W0, k1 + 8 * DROP_W1);
        DROP_ROUND(k0 + 9 * DROP_W0, k1 + 9 * DROP_W1);
        r[4 * j] = c0;
        r[4 * j + 1] = c1;
        r[4 * j + 2] = c2;
        r[4 * j + 3] = c3;
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
            const float u = (float)(r[e] >> 8) * (1.0f / 16777216.0f);
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
