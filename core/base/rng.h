/* rng.h: Philox4x32-10, a counter-based RNG (Salmon et al., SC'11).
 *
 * Every random number in tunebench is philox(key, counter): the key comes from
 * the run seed and a stream id, the counter from what is being drawn (which
 * tensor, which element, which epoch, which step). Nothing depends on how many
 * numbers were drawn before, so changing the batch size, optimizer or loss
 * cannot shift the initial weights or the sample order, and a GPU kernel can
 * compute element i's number directly. */
#ifndef TB_RNG_H
#define TB_RNG_H

#include <stdint.h>

/* Independent streams derived from one run seed. Append only: the numbers are
 * part of the reproducibility contract of archived runs. */
typedef enum tb_stream {
    TB_STREAM_INIT = 1,      /* weight initialisation; sub = FNV-1a hash of the state_dict key */
    TB_STREAM_SHUFFLE = 2,   /* epoch order; sub = epoch */
    TB_STREAM_DROPOUT = 3,   /* dropout masks; sub = layer index, counter = step */
    TB_STREAM_AUGMENT = 4,   /* data augmentation; sub = epoch */
    TB_STREAM_SPLIT = 5,     /* dataset splits */
    TB_STREAM_SEARCH = 6,    /* random search (study/hparam_space.c); sub = low 32 bits of the index, high bits = block */
    TB_STREAM_SIMULATE = 7,  /* simulated participants (analysis/simulate.c); sub = participant index */
    TB_STREAM_BOOTSTRAP = 8, /* bootstrap resampling (analysis/stats.c); sub = resample index */
} tb_stream;

typedef struct tb_rng {
    uint32_t key[2];
    uint32_t ctr[4];  /* ctr[0..1]: position, ctr[2]: sub-stream, ctr[3]: stream id */
    uint32_t buf[4];
    int used;         /* how many of buf have been handed out (4 = empty) */
} tb_rng;

/* One block: out = Philox4x32-10(key, ctr). */
void tb_philox4x32(const uint32_t key[2], const uint32_t ctr[4], uint32_t out[4]);

/* A sequential generator over stream (seed, stream, sub). */
void tb_rng_init(tb_rng *r, uint64_t seed, tb_stream stream, uint32_t sub);
/* Moves a generator to block `block` of its stream (4 numbers per block), so
 * independent draws (e.g. one per sample) get disjoint ranges of counters. */
void tb_rng_seek(tb_rng *r, uint64_t block);
uint32_t tb_rng_u32(tb_rng *r);
/* Uniform in [0, 1) with 24 random bits (exactly representable in float). */
float tb_rng_uniform(tb_rng *r);
/* Uniform in [lo, hi). */
float tb_rng_uniform_range(tb_rng *r, float lo, float hi);
/* Standard normal via Box-Muller in double precision. */
float tb_rng_normal(tb_rng *r);
/* Uniform integer in [0, n) without modulo bias. */
uint32_t tb_rng_below(tb_rng *r, uint32_t n);

/* Stateless draw for element `index` of (seed, stream, sub): what a GPU thread
 * computes. Returns a uniform float in [0, 1). tb_rng_uniform on a fresh
 * generator yields the same sequence for index = 0, 1, 2, ... */
float tb_rng_uniform_at(uint64_t seed, tb_stream stream, uint32_t sub, uint64_t index);

/* Fisher-Yates permutation of 0..n-1 from (seed, stream, sub). */
void tb_rng_permutation(int32_t *perm, int32_t n, uint64_t seed, tb_stream stream, uint32_t sub);

#endif
