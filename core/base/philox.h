/* philox.h: one Philox4x32-10 block as an inline function that both the host
 * compiler and nvcc compile, so the CPU (rng.c, layers/dropout.c) and the GPU
 * (cuda/kernels.cu) draw the very same numbers from the same counters.
 * Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11. */
#ifndef TB_PHILOX_H
#define TB_PHILOX_H

#include <stdint.h>

#ifdef __CUDACC__
#define TB_HD static __host__ __device__ __forceinline__
#else
#define TB_HD static inline
#endif

#define TB_PHILOX_M0 0xD2511F53u
#define TB_PHILOX_M1 0xCD9E8D57u
#define TB_PHILOX_W0 0x9E3779B9u
#define TB_PHILOX_W1 0xBB67AE85u

/* out = Philox4x32-10(key (k0, k1), counter (c0, c1, c2, c3)). */
TB_HD void tb_philox_block(uint32_t k0, uint32_t k1, uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3,
                           uint32_t out[4])
{
    for (int round = 0; round < 10; round++) {
        const uint64_t p0 = (uint64_t)TB_PHILOX_M0 * c0;
        const uint64_t p1 = (uint64_t)TB_PHILOX_M1 * c2;
        const uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0;
        const uint32_t n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1;
        c1 = (uint32_t)p1;
        c3 = (uint32_t)p0;
        c0 = n0;
        c2 = n2;
        k0 += TB_PHILOX_W0;
        k1 += TB_PHILOX_W1;
    }
    out[0] = c0;
    out[1] = c1;
    out[2] = c2;
    out[3] = c3;
}

/* A 32-bit draw as a float in [0, 1) with 24 random bits. */
TB_HD float tb_philox_unit(uint32_t r) { return (float)(r >> 8) * (1.0f / 16777216.0f); }

#endif
