#include "rng.h"

#include "philox.h"

#include <math.h>

void tb_philox4x32(const uint32_t key[2], const uint32_t ctr[4], uint32_t out[4])
{
    tb_philox_block(key[0], key[1], ctr[0], ctr[1], ctr[2], ctr[3], out);
}

static void set_key(uint32_t key[2], uint64_t seed)
{
    key[0] = (uint32_t)seed;
    key[1] = (uint32_t)(seed >> 32);
}

void tb_rng_init(tb_rng *r, uint64_t seed, tb_stream stream, uint32_t sub)
{
    set_key(r->key, seed);
    r->ctr[0] = 0;
    r->ctr[1] = 0;
    r->ctr[2] = sub;
    r->ctr[3] = (uint32_t)stream;
    r->used = 4;
}

void tb_rng_seek(tb_rng *r, uint64_t block)
{
    r->ctr[0] = (uint32_t)block;
    r->ctr[1] = (uint32_t)(block >> 32);
    r->used = 4;
}

uint32_t tb_rng_u32(tb_rng *r)
{
    if (r->used == 4) {
        tb_philox4x32(r->key, r->ctr, r->buf);
        if (++r->ctr[0] == 0) r->ctr[1]++;
        r->used = 0;
    }
    return r->buf[r->used++];
}

float tb_rng_uniform(tb_rng *r) { return (float)(tb_rng_u32(r) >> 8) * (1.0f / 16777216.0f); }

float tb_rng_uniform_range(tb_rng *r, float lo, float hi) { return lo + (hi - lo) * tb_rng_uniform(r); }

float tb_rng_normal(tb_rng *r)
{
    /* u1 in (0, 1] so the log is finite. */
    double u1 = ((double)(tb_rng_u32(r) >> 8) + 1.0) / 16777216.0;
    double u2 = (double)(tb_rng_u32(r) >> 8) / 16777216.0;
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

uint32_t tb_rng_below(tb_rng *r, uint32_t n)
{
    /* Lemire's method without the division in the common case. */
    uint64_t m = (uint64_t)tb_rng_u32(r) * n;
    uint32_t low = (uint32_t)m;
    if (low < n) {
        uint32_t threshold = (uint32_t)(-n) % n;
        while (low < threshold) {
            m = (uint64_t)tb_rng_u32(r) * n;
            low = (uint32_t)m;
        }
    }
    return (uint32_t)(m >> 32);
}

float tb_rng_uniform_at(uint64_t seed, tb_stream stream, uint32_t sub, uint64_t index)
{
    uint32_t key[2], out[4];
    set_key(key, seed);
    uint64_t block = index >> 2;
    uint32_t ctr[4] = {(uint32_t)block, (uint32_t)(block >> 32), sub, (uint32_t)stream};
    tb_philox4x32(key, ctr, out);
    return tb_philox_unit(out[index & 3]);
}

void tb_rng_permutation(int32_t *perm, int32_t n, uint64_t seed, tb_stream stream, uint32_t sub)
{
    tb_rng r;
    tb_rng_init(&r, seed, stream, sub);
    for (int32_t i = 0; i < n; i++) perm[i] = i;
    for (int32_t i = n - 1; i > 0; i--) {
        int32_t j = (int32_t)tb_rng_below(&r, (uint32_t)i + 1);
        int32_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
}
