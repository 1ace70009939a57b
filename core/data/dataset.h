/* dataset.h: what the training loop reads samples from.
 *
 * A dataset hands out normalised float images by index; task plugins (a later
 * issue) implement it. tb_dataset_memory is the in-memory implementation most
 * tasks use: uint8 images normalised per channel on the fly. */
#ifndef TB_DATASET_H
#define TB_DATASET_H

#include <stdint.h>

#include "base/common.h"

typedef struct tb_dataset {
    int count;
    int channels, height, width;
    int classes;
    const char *const *class_names; /* [classes] or NULL */
    void *ctx;
    /* Writes samples idx[0..n) as x [n, channels, height, width] and labels y [n]. */
    tb_status (*load)(void *ctx, const int32_t *idx, int n, float *x, int32_t *y, tb_err *err);
    void (*destroy)(void *ctx);
    /* Optional (NULL): called by the training loop before each epoch, so
     * augmentation can draw from (seed, TB_STREAM_AUGMENT, epoch, sample)
     * and stay independent of the batch size and order. */
    void (*begin_epoch)(void *ctx, uint64_t seed, int epoch);
} tb_dataset;

void tb_dataset_free(tb_dataset *ds);

/* In-memory dataset over uint8 pixels [count, c, h, w] and labels [count];
 * takes ownership of both (malloc'd). x = (pixel/255 - mean[c]) / std[c]. */
tb_status tb_dataset_memory(tb_dataset *out, uint8_t *pixels, int32_t *labels, int count, int c, int h, int w,
                            int classes, const float *mean, const float *std, tb_err *err);

/* A view of base restricted to idx[0..n) (copied); base must outlive it. */
tb_status tb_dataset_subset(tb_dataset *out, const tb_dataset *base, const int32_t *idx, int n, tb_err *err);

#endif
