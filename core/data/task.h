/* task.h: from a task plugin's raw uint8 (or float32) data to the datasets training reads.
 *
 * The same for every task: resize to the configured resolution, a validation
 * split carved from the training split when the task has none (stratified,
 * from the split seed), k-fold cross-validation folds, per-channel
 * normalisation (given, from the task, or computed on the training split),
 * and optional augmentation of the training set (random crop with padding,
 * horizontal flip, random resized crop) drawn from (run seed, epoch, sample). */
#ifndef TB_TASK_H
#define TB_TASK_H

#include "base/common.h"
#include "dataset.h"
#include "tunebench/tunebench_plugin.h"

typedef struct tb_task_options {
    int resolution;          /* 0: keep the task's size; else resize to resolution x resolution */
    double val_fraction;     /* used when the task has no validation samples; 0 keeps none */
    uint64_t split_seed;     /* carving the validation split and folds */
    int folds, fold;         /* folds > 1: train on all but fold `fold` (0-based) of train+val, validate on it */
    int merge_val;           /* 1: train on train + validation, validate on nothing (final evaluations) */
    int has_norm;            /* 1: use mean/std below; 0: the task's, else computed on the training split */
    float mean[4], std[4];
    /* augmentation of the training split */
    int crop_padding;        /* random crop of the original size after zero padding by this many pixels; 0 off */
    int hflip;               /* random horizontal flip with probability 0.5 */
    int random_resized_crop; /* torchvision RandomResizedCrop(scale=(0.08, 1), ratio=(3/4, 4/3)) to the size */
} tb_task_options;

typedef struct tb_task {
    tb_task_data raw;        /* after resizing */
    tb_dataset train, val, test; /* count 0 when a split is empty */
    float mean[4], std[4];   /* normalisation in use */
    int32_t *train_idx, *val_idx, *test_idx; /* sample indices of each split into raw */
    int n_train, n_val, n_test;
    /* set when raw's pixels (or pixels_f32) point into a file mapping (a task
     * cache entry read back, store/task_cache.h) rather than malloc'd memory:
     * tb_task_free unmaps it */
    void *mapped;
    size_t mapped_bytes;
} tb_task;

/* Takes ownership of raw (also on failure). */
tb_status tb_task_prepare(tb_task *out, tb_task_data *raw, const tb_task_options *opt, tb_err *err);
void tb_task_free(tb_task *task);
/* The datasets of a task whose preparation was done before (read back from a
 * cache, store/task_cache.h): raw (as resized), the split indices and their
 * counts and mean/std are set; makes train/val/test over them, the training
 * split augmented as opt says (only its augmentation members are read: the
 * rest shaped what t holds). Takes t over: freed on failure. */
tb_status tb_task_adopt(tb_task *t, const tb_task_options *opt, tb_err *err);

/* Stratified split of idx[0..n) (labels from labels[]) into k folds from seed:
 * fold_of[i] in [0, k) for each i, class proportions kept to within one sample.
 * TB_EINVAL (n < 0, k < 1, classes < 1, a label outside [0, classes)) or
 * TB_ENOMEM leave fold_of untouched: there is no fallback assignment, so given
 * inputs always give the same folds. err may be NULL. */
tb_status tb_stratified_folds(const int32_t *idx, int n, const int32_t *labels, int classes, int k, uint64_t seed,
                              int *fold_of, tb_err *err);

/* Frees task data allocated with the host's alloc (what plugins get as
 * host->task_data_free) and zeroes it; NULL is fine. */
void tb_task_data_free(tb_task_data *data);

/* What plugins get as host->task_data_release (version 4): frees the members
 * that a tb_task_data of `size` bytes has (pixels_f32 from ABI minor 3 on) and
 * zeroes those bytes. tb_task_data_free_v2 is host->task_data_free: the
 * members up to `source` only, for plugins built before ABI minor 3 whose
 * struct ends there. */
void tb_task_data_release(tb_task_data *data, size_t size);
void tb_task_data_free_v2(tb_task_data *data);

#endif
