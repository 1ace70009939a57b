/* test_task.c: the task pipeline (core/data/task.c) on synthetic raw data:
 * resizing, the stratified validation split, k-fold splits, normalisation,
 * deterministic augmentation and its semantics on tiny known images, and the
 * errors for impossible options. */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/common.h"
#include "data/image.h"
#include "data/task.h"
#include "tb_test.h"

/* ---- synthetic raw data ------------------------------------------------------- */

static uint32_t mix(uint32_t x)
{
    x ^= x >> 16;
    x *= 0x7feb352du;
    x ^= x >> 15;
    x *= 0x846ca68bu;
    x ^= x >> 16;
    return x;
}

/* count samples of [c, h, w], pseudo-random pixels; labels[i] (NULL: i mod
 * classes) and splits[i] (NULL: all train). */
static tb_task_data make_raw(int count, int c, int h, int w, int classes, const int32_t *labels,
                             const uint8_t *splits)
{
    tb_task_data d;
    memset(&d, 0, sizeof d);
    d.count = count;
    d.channels = c;
    d.height = h;
    d.width = w;
    d.classes = classes;
    const size_t sample = (size_t)c * h * w;
    d.pixels = malloc(sample * (size_t)count);
    d.labels = malloc(sizeof(int32_t) * (size_t)count);
    d.splits = malloc((size_t)count);
    ck_assert(d.pixels && d.labels && d.splits);
    for (size_t i = 0; i < sample * (size_t)count; i++) d.pixels[i] = (uint8_t)(mix((uint32_t)i * 2654435761u + 17u) & 255);
    for (int i = 0; i < count; i++) {
        d.labels[i] = labels ? labels[i] : i % classes;
        d.splits[i] = splits ? splits[i] : TB_SPLIT_TRAIN;
    }
    return d;
}

static void fill_labels(int32_t *labels, const int *per_class, int classes)
{
    int k = 0;
    /* interleaved so classes are not contiguous */
    int left[16];
    int total = 0;
    for (int c = 0; c < classes; c++) left[c] = per_class[c], total += per_class[c];
    while (k < total)
        for (int c = 0; c < classes; c++)
            if (left[c] > 0) labels[k++] = c, left[c]--;
}

static tb_task_options no_norm_opts(void)
{
    tb_task_options o;
    memset(&o, 0, sizeof o);
    o.has_norm = 1;
    for (int c = 0; c < 4; c++) o.mean[c] = 0.0f, o.std[c] = 1.0f;
    return o;
}

static float *load_all(const tb_dataset *ds, int32_t *y)
{
    const size_t sample = (size_t)ds->channels * ds->height * ds->width;
    float *x = malloc(sizeof(float) * sample * (size_t)ds->count);
    int32_t *idx = malloc(sizeof(int32_t) * (size_t)ds->count);
    ck_assert(x && idx);
    for (int i = 0; i < ds->count; i++) idx[i] = i;
    tb_err err = {{0}};
    ck_assert_msg(ds->load(ds->ctx, idx, ds->count, x, y, &err) == TB_OK, "%s", err.msg);
    free(idx);
    return x;
}

/* ---- resizing ------------------------------------------------------------------- */

START_TEST(test_resize_to_resolution)
{
    tb_task_data raw = make_raw(20, 1, 28, 28, 10, NULL, NULL);
    uint8_t *orig = malloc(20 * 28 * 28);
    ck_assert(orig);
    memcpy(orig, raw.pixels, 20 * 28 * 28);
    tb_task_options o = no_norm_opts();
    o.resolution = 64;
    tb_task t;
    tb_err err = {{0}};
    ck_assert_msg(tb_task_prepare(&t, &raw, &o, &err) == TB_OK, "%s", err.msg);
    ck_assert_int_eq(t.raw.height, 64);
    ck_assert_int_eq(t.raw.width, 64);
    ck_assert_int_eq(t.train.height, 64);
    ck_assert_int_eq(t.train.width, 64);
    ck_assert_int_eq(t.train.channels, 1);
    uint8_t expect[64 * 64];
    for (int i = 0; i < 20; i++) {
        tb_resize_u8(expect, 64, 64, orig + (size_t)i * 28 * 28, 28, 28, 1);
        ck_assert_msg(memcmp(expect, t.raw.pixels + (size_t)i * 64 * 64, sizeof expect) == 0,
                      "image %d differs from tb_resize_u8", i);
    }
    /* the dataset reads the resized pixels: x = p / 255 with mean 0, std 1 */
    int32_t y[20];
    float *x = load_all(&t.train, y);
    for (int i = 0; i < 64 * 64; i++) ck_assert_float_eq(x[i], (float)t.raw.pixels[i] / 255.0f);
    free(x);
    tb_task_free(&t);

    /* shrinking a 3-channel task, and resolution 0 keeping the size */
    raw = make_raw(6, 3, 40, 30, 2, NULL, NULL);
    o.resolution = 16;
    ck_assert_msg(tb_task_prepare(&t, &raw, &o, &err) == TB_OK, "%s", err.msg);
    ck_assert_int_eq(t.train.channels, 3);
    ck_assert_int_eq(t.train.height, 16);
    ck_assert_int_eq(t.train.width, 16);
    tb_task_free(&t);
    raw = make_raw(6, 3, 40, 30, 2, NULL, NULL);
    o.resolution = 0;
    ck_assert_msg(tb_task_prepare(&t, &raw, &o, &err) == TB_OK, "%s", err.msg);
    ck_assert_int_eq(t.train.height, 40);
    ck_assert_int_eq(t.train.width, 30);
    tb_task_free(&t);
    free(orig);
}
END_TEST

/* ---- validation split ------------------------------------------------------------ */

static void prepare_carved(tb_task *t, uint64_t seed, double frac)
{
    /* 180 train samples (100, 50, 30 per class) + 20 test */
    const int per_class[3] = {100, 50, 30};
    int32_t labels[200];
    uint8_t splits[200];
    fill_labels(labels, per_class, 3);
    for (int i = 180; i < 200; i++) labels[i] = i % 3;
    for (int i = 0; i < 200; i++) splits[i] = i < 180 ? TB_SPLIT_TRAIN : TB_SPLIT_TEST;
    tb_task_data raw = make_raw(200, 1, 4, 4, 3, labels, splits);
    tb_task_options o = no_norm_opts();
    o.val_fraction = frac;
    o.split_seed = seed;
    tb_err err = {{0}};
    ck_assert_msg(tb_task_prepare(t, &raw, &o, &err) == TB_OK, "%s", err.msg);
}

START_TEST(test_carve_val_stratified_reproducible)
{
    tb_task a, b, c;
    prepare_carved(&a, 42, 0.2);
    prepare_carved(&b, 42, 0.2);
    prepare_carved(&c, 43, 0.2);
    ck_assert_int_eq(a.n_val, 36);
    ck_assert_int_eq(a.n_train, 144);
    ck_assert_int_eq(a.n_test, 20);
    ck_assert_int_eq(a.val.count, 36);
    ck_assert_int_eq(a.train.count, 144);
    ck_assert_int_eq(a.test.count, 20);
    /* stratified: 20, 10, 6 of the classes */
    int per[3] = {0, 0, 0};
    for (int i = 0; i < a.n_val; i++) per[a.raw.labels[a.val_idx[i]]]++;
    ck_assert_int_eq(per[0], 20);
    ck_assert_int_eq(per[1], 10);
    ck_assert_int_eq(per[2], 6);
    /* a partition of the original training samples, each list ascending */
    uint8_t seen[200] = {0};
    for (int i = 0; i < a.n_train; i++) seen[a.train_idx[i]]++;
    for (int i = 0; i < a.n_val; i++) seen[a.val_idx[i]]++;
    for (int i = 0; i < 200; i++) ck_assert_int_eq(seen[i], i < 180 ? 1 : 0);
    for (int i = 1; i < a.n_val; i++) ck_assert_int_lt(a.val_idx[i - 1], a.val_idx[i]);
    for (int i = 1; i < a.n_train; i++) ck_assert_int_lt(a.train_idx[i - 1], a.train_idx[i]);
    /* the same seed gives the same split, another seed another */
    ck_assert_int_eq(b.n_val, 36);
    ck_assert(memcmp(a.val_idx, b.val_idx, sizeof(int32_t) * 36) == 0);
    ck_assert_int_eq(c.n_val, 36);
    ck_assert(memcmp(a.val_idx, c.val_idx, sizeof(int32_t) * 36) != 0);
    /* the val dataset reads exactly those samples */
    int32_t y[36];
    float *x = load_all(&a.val, y);
    for (int i = 0; i < 36; i++) {
        ck_assert_int_eq(y[i], a.raw.labels[a.val_idx[i]]);
        ck_assert_float_eq(x[(size_t)i * 16 + 5], (float)a.raw.pixels[(size_t)a.val_idx[i] * 16 + 5] / 255.0f);
    }
    free(x);
    tb_task_free(&a);
    tb_task_free(&b);
    tb_task_free(&c);
}
END_TEST

START_TEST(test_task_val_kept)
{
    /* a task with its own validation split: val_fraction does not carve */
    uint8_t splits[30];
    for (int i = 0; i < 30; i++) splits[i] = i < 20 ? TB_SPLIT_TRAIN : i < 25 ? TB_SPLIT_VAL : TB_SPLIT_TEST;
    tb_task_data raw = make_raw(30, 1, 3, 3, 2, NULL, splits);
    tb_task_options o = no_norm_opts();
    o.val_fraction = 0.5;
    tb_task t;
    tb_err err = {{0}};
    ck_assert_msg(tb_task_prepare(&t, &raw, &o, &err) == TB_OK, "%s", err.msg);
    ck_assert_int_eq(t.n_train, 20);
    ck_assert_int_eq(t.n_val, 5);
    ck_assert_int_eq(t.n_test, 5);
    for (int i = 0; i < 5; i++) ck_assert_int_eq(t.val_idx[i], 20 + i);
    tb_task_free(&t);

    /* no validation at all: an empty val dataset */
    raw = make_raw(10, 1, 3, 3, 2, NULL, NULL);
    o.val_fraction = 0.0;
    ck_assert_msg(tb_task_prepare(&t, &raw, &o, &err) == TB_OK, "%s", err.msg);
    ck_assert_int_eq(t.n_val, 0);
    ck_assert_int_eq(t.val.count, 0);
    ck_assert_int_eq(t.test.count, 0);
    ck_assert_int_eq(t.train.count, 10);
    tb_task_free(&t);
}
END_TEST

/* ---- k-fold -------------------------------------------------------------------------- */

START_TEST(test_kfold)
{
    /* 97 train + 23 val (4 unbalanced classes) + 10 test */
    const int per_class[4] = {50, 35, 25, 10};
    int32_t labels[130];
    uint8_t splits[130];
    fill_labels(labels, per_class, 4);
    for (int i = 120; i < 130; i++) labels[i] = i % 4;
    for (int i = 0; i < 130; i++) splits[i] = i < 97 ? TB_SPLIT_TRAIN : i < 120 ? TB_SPLIT_VAL : TB_SPLIT_TEST;
    const int K = 5;
    int owner[130];
    for (int i = 0; i < 130; i++) owner[i] = -1;
    int fold_size[5];
    for (int k = 0; k < K; k++) {
        tb_task_data raw = make_raw(130, 1, 2, 2, 4, labels, splits);
        tb_task_options o = no_norm_opts();
        o.folds = K;
        o.fold = k;
        o.split_seed = 7;
        o.val_fraction = 0.3; /* unused with folds */
        tb_task t;
        tb_err err = {{0}};
        ck_assert_msg(tb_task_prepare(&t, &raw, &o, &err) == TB_OK, "%s", err.msg);
        ck_assert_int_eq(t.n_train + t.n_val, 120);
        ck_assert_int_eq(t.n_test, 10);
        for (int i = 0; i < 10; i++) ck_assert_int_eq(t.test_idx[i], 120 + i);
        fold_size[k] = t.n_val;
        /* fold k validates on its own part: every pooled sample in exactly one fold's val */
        int per[4] = {0, 0, 0, 0};
        for (int i = 0; i < t.n_val; i++) {
            int s = t.val_idx[i];
            ck_assert_int_lt(s, 120);
            ck_assert_msg(owner[s] == -1, "sample %d validates in folds %d and %d", s, owner[s], k);
            owner[s] = k;
            per[labels[s]]++;
        }
        /* the training part is the rest of train+val */
        uint8_t in_train[130] = {0};
        for (int i = 0; i < t.n_train; i++) in_train[t.train_idx[i]] = 1;
        for (int i = 0; i < t.n_val; i++) ck_assert(!in_train[t.val_idx[i]]);
        /* stratified: every class within one sample of n_c / K */
        for (int c = 0; c < 4; c++) {
            int n_c = per_class[c];
            ck_assert_msg(per[c] == n_c / K || per[c] == (n_c + K - 1) / K, "fold %d has %d of class %d (%d / %d)",
                          k, per[c], c, n_c, K);
        }
        /* the same as tb_stratified_folds over the pool */
        int32_t pool[120];
        int fold_of[120];
        for (int i = 0; i < 120; i++) pool[i] = i;
        ck_assert(tb_stratified_folds(pool, 120, t.raw.labels, 4, K, 7, fold_of, NULL) == TB_OK);
        int n = 0;
        for (int i = 0; i < 120; i++)
            if (fold_of[i] == k) ck_assert_int_eq(t.val_idx[n++], i);
        ck_assert_int_eq(n, t.n_val);
        tb_task_free(&t);
    }
    for (int i = 0; i < 120; i++) ck_assert_msg(owner[i] >= 0, "sample %d is in no fold", i);
    for (int k = 0; k < K; k++) ck_assert(fold_size[k] == 24);
}
END_TEST

START_TEST(test_stratified_folds_direct)
{
    /* idx into a larger label array; deterministic; seeds differ */
    int32_t labels[300];
    for (int i = 0; i < 300; i++) labels[i] = (int32_t)(mix((uint32_t)i) % 3);
    int32_t idx[100];
    for (int i = 0; i < 100; i++) idx[i] = 299 - 3 * i + (i % 2);
    int a[100], b[100], c[100];
    tb_err err;
    ck_assert(tb_stratified_folds(idx, 100, labels, 3, 4, 11, a, &err) == TB_OK);
    ck_assert(tb_stratified_folds(idx, 100, labels, 3, 4, 11, b, &err) == TB_OK);
    ck_assert(tb_stratified_folds(idx, 100, labels, 3, 4, 12, c, &err) == TB_OK);
    ck_assert(memcmp(a, b, sizeof a) == 0);
    ck_assert(memcmp(a, c, sizeof a) != 0);
    int n_c[3] = {0, 0, 0}, per[4][3], size[4] = {0, 0, 0, 0};
    memset(per, 0, sizeof per);
    for (int i = 0; i < 100; i++) {
        ck_assert(a[i] >= 0 && a[i] < 4);
        n_c[labels[idx[i]]]++;
        per[a[i]][labels[idx[i]]]++;
        size[a[i]]++;
    }
    for (int f = 0; f < 4; f++) {
        ck_assert_int_eq(size[f], 25);
        for (int k = 0; k < 3; k++) ck_assert(per[f][k] == n_c[k] / 4 || per[f][k] == (n_c[k] + 3) / 4);
    }
    /* idx NULL: labels indexed by position */
    ck_assert(tb_stratified_folds(NULL, 100, labels, 3, 10, 5, a, &err) == TB_OK);
    for (int i = 0; i < 100; i++) ck_assert(a[i] >= 0 && a[i] < 10);
    /* no fallback assignment: a bad request fails and leaves fold_of alone */
    memcpy(b, a, sizeof a);
    const int32_t kept = labels[idx[7]];
    labels[idx[7]] = 3; /* outside [0, 3) */
    ck_assert(tb_stratified_folds(idx, 100, labels, 3, 4, 11, b, &err) == TB_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "label 3 of sample 7"));
    ck_assert(memcmp(a, b, sizeof a) == 0);
    labels[idx[7]] = kept;
    ck_assert(tb_stratified_folds(idx, 100, labels, 3, 0, 11, b, &err) == TB_EINVAL);
    ck_assert(tb_stratified_folds(idx, -1, labels, 3, 4, 11, b, NULL) == TB_EINVAL);
    ck_assert(memcmp(a, b, sizeof a) == 0);
    ck_assert(tb_stratified_folds(idx, 0, labels, 3, 4, 11, b, &err) == TB_OK); /* nothing to assign */
    ck_assert(memcmp(a, b, sizeof a) == 0);
}
END_TEST

/* ---- normalisation --------------------------------------------------------------------- */

START_TEST(test_computed_normalisation)
{
    /* three channels with different distributions; test samples very different */
    const int N = 200, C = 3, H = 6, W = 5;
    uint8_t splits[200];
    for (int i = 0; i < N; i++) splits[i] = i < 150 ? TB_SPLIT_TRAIN : TB_SPLIT_TEST;
    tb_task_data raw = make_raw(N, C, H, W, 2, NULL, splits);
    for (int i = 0; i < N; i++)
        for (int c = 0; c < C; c++)
            for (int j = 0; j < H * W; j++) {
                uint8_t *p = &raw.pixels[((size_t)i * C + c) * H * W + j];
                if (i >= 150)
                    *p = 255;
                else if (c == 1)
                    *p = (uint8_t)(*p / 4 + 100);
                else if (c == 2)
                    *p = (uint8_t)(*p & 0x0f);
            }
    tb_task_options o;
    memset(&o, 0, sizeof o);
    tb_task t;
    tb_err err = {{0}};
    ck_assert_msg(tb_task_prepare(&t, &raw, &o, &err) == TB_OK, "%s", err.msg);
    float *x = load_all(&t.train, NULL);
    for (int c = 0; c < C; c++) {
        double s1 = 0, s2 = 0;
        for (int i = 0; i < 150; i++)
            for (int j = 0; j < H * W; j++) {
                double v = x[((size_t)i * C + c) * H * W + j];
                s1 += v;
                s2 += v * v;
            }
        double n = 150.0 * H * W, m = s1 / n, sd = sqrt(s2 / n - m * m);
        ck_assert_msg(fabs(m) < 1e-5, "channel %d: mean %g after normalisation", c, m);
        ck_assert_msg(fabs(sd - 1.0) < 1e-5, "channel %d: std %g after normalisation", c, sd);
    }
    ck_assert(t.mean[1] > t.mean[2]);
    free(x);
    tb_task_free(&t);

    /* priority: given > the task's > computed */
    raw = make_raw(10, 1, 2, 2, 2, NULL, NULL);
    raw.has_norm = 1;
    raw.mean[0] = 0.25f;
    raw.std[0] = 0.5f;
    ck_assert_msg(tb_task_prepare(&t, &raw, &o, &err) == TB_OK, "%s", err.msg);
    ck_assert_float_eq(t.mean[0], 0.25f);
    ck_assert_float_eq(t.std[0], 0.5f);
    x = load_all(&t.train, NULL);
    ck_assert_float_eq(x[0], ((float)t.raw.pixels[0] / 255.0f - 0.25f) / 0.5f);
    free(x);
    tb_task_free(&t);
    raw = make_raw(10, 1, 2, 2, 2, NULL, NULL);
    raw.has_norm = 1;
    raw.mean[0] = 0.25f;
    raw.std[0] = 0.5f;
    o.has_norm = 1;
    o.mean[0] = 0.5f;
    o.std[0] = 2.0f;
    ck_assert_msg(tb_task_prepare(&t, &raw, &o, &err) == TB_OK, "%s", err.msg);
    ck_assert_float_eq(t.mean[0], 0.5f);
    ck_assert_float_eq(t.std[0], 2.0f);
    tb_task_free(&t);
}
END_TEST

/* ---- augmentation ------------------------------------------------------------------------ */

static tb_task prepare_augmented(int crop_padding, int hflip, int rrc)
{
    uint8_t splits[40];
    for (int i = 0; i < 40; i++) splits[i] = i < 30 ? TB_SPLIT_TRAIN : i < 35 ? TB_SPLIT_VAL : TB_SPLIT_TEST;
    tb_task_data raw = make_raw(40, 3, 12, 12, 4, NULL, splits);
    tb_task_options o = no_norm_opts();
    o.mean[0] = 0.5f; /* so zero padding is distinguishable from a pixel value 0 */
    o.crop_padding = crop_padding;
    o.hflip = hflip;
    o.random_resized_crop = rrc;
    tb_task t;
    tb_err err = {{0}};
    ck_assert_msg(tb_task_prepare(&t, &raw, &o, &err) == TB_OK, "%s", err.msg);
    return t;
}

START_TEST(test_augment_deterministic)
{
    const int configs[3][3] = {{2, 1, 0}, {0, 0, 1}, {3, 1, 1}};
    for (int cfg = 0; cfg < 3; cfg++) {
        tb_task t = prepare_augmented(configs[cfg][0], configs[cfg][1], configs[cfg][2]);
        const tb_dataset *tr = &t.train;
        const size_t sample = 3 * 12 * 12;
        ck_assert(tr->begin_epoch != NULL);
        tr->begin_epoch(tr->ctx, 1234, 3);
        float *ref = load_all(tr, NULL);
        /* other batch compositions and orders: reversed, batches of 7, one at a time */
        float *x = malloc(sizeof(float) * sample * 30);
        ck_assert(x);
        int32_t idx[30];
        tb_err err = {{0}};
        for (int i = 0; i < 30; i++) idx[i] = 29 - i;
        ck_assert(tr->load(tr->ctx, idx, 30, x, NULL, &err) == TB_OK);
        for (int i = 0; i < 30; i++)
            ck_assert_msg(memcmp(x + (size_t)i * sample, ref + (size_t)(29 - i) * sample, sizeof(float) * sample) == 0,
                          "config %d: sample %d differs when the batch is reversed", cfg, 29 - i);
        for (int start = 0; start < 30; start += 7) {
            int n = 30 - start < 7 ? 30 - start : 7;
            for (int i = 0; i < n; i++) idx[i] = (start + 3 * i) % 30;
            ck_assert(tr->load(tr->ctx, idx, n, x, NULL, &err) == TB_OK);
            for (int i = 0; i < n; i++)
                ck_assert_msg(memcmp(x + (size_t)i * sample, ref + (size_t)idx[i] * sample, sizeof(float) * sample) == 0,
                              "config %d: sample %d differs in a batch of %d", cfg, idx[i], n);
        }
        /* the same epoch again: the same; another epoch: different crops for most samples */
        float *again = load_all(tr, NULL);
        ck_assert(memcmp(again, ref, sizeof(float) * sample * 30) == 0);
        free(again);
        tr->begin_epoch(tr->ctx, 1234, 4);
        float *other = load_all(tr, NULL);
        int differ = 0;
        for (int i = 0; i < 30; i++)
            differ += memcmp(other + (size_t)i * sample, ref + (size_t)i * sample, sizeof(float) * sample) != 0;
        ck_assert_msg(differ >= 20, "config %d: only %d of 30 samples change with the epoch", cfg, differ);
        free(other);
        tr->begin_epoch(tr->ctx, 99, 3); /* another run seed */
        other = load_all(tr, NULL);
        differ = 0;
        for (int i = 0; i < 30; i++)
            differ += memcmp(other + (size_t)i * sample, ref + (size_t)i * sample, sizeof(float) * sample) != 0;
        ck_assert_msg(differ >= 20, "config %d: only %d of 30 samples change with the seed", cfg, differ);
        free(other);

        /* validation and test never augment */
        ck_assert(t.val.begin_epoch == NULL);
        ck_assert(t.test.begin_epoch == NULL);
        const tb_dataset *sets[2] = {&t.val, &t.test};
        const int32_t *sidx[2] = {t.val_idx, t.test_idx};
        for (int s = 0; s < 2; s++) {
            float *v = load_all(sets[s], NULL);
            for (int i = 0; i < sets[s]->count; i++)
                for (size_t j = 0; j < sample; j++) {
                    float p = (float)t.raw.pixels[(size_t)sidx[s][i] * sample + j] / 255.0f;
                    float e = j < 144 ? p - 0.5f : p;
                    ck_assert_float_eq(v[(size_t)i * sample + j], e);
                }
            free(v);
        }
        free(ref);
        free(x);
        tb_task_free(&t);
    }
}
END_TEST

/* a 1x4x5 image with pixels 1..20 (row-major), normalisation mean 0, std 1 */
static tb_task prepare_tiny(int crop_padding, int hflip, int rrc, uint8_t value_or_0)
{
    tb_task_data raw = make_raw(1, 1, 4, 5, 1, NULL, NULL);
    for (int i = 0; i < 20; i++) raw.pixels[i] = value_or_0 ? value_or_0 : (uint8_t)(i + 1);
    tb_task_options o = no_norm_opts();
    o.crop_padding = crop_padding;
    o.hflip = hflip;
    o.random_resized_crop = rrc;
    tb_task t;
    tb_err err = {{0}};
    ck_assert_msg(tb_task_prepare(&t, &raw, &o, &err) == TB_OK, "%s", err.msg);
    return t;
}

static void load_one(const tb_task *t, int epoch, float *x)
{
    int32_t idx = 0;
    tb_err err = {{0}};
    t->train.begin_epoch(t->train.ctx, 5, epoch);
    ck_assert_msg(t->train.load(t->train.ctx, &idx, 1, x, NULL, &err) == TB_OK, "%s", err.msg);
}

START_TEST(test_augment_semantics)
{
    float x[20];
    /* flip only: identity or the mirror image, each about half the time */
    tb_task t = prepare_tiny(0, 1, 0, 0);
    int flips = 0;
    for (int e = 1; e <= 200; e++) {
        load_one(&t, e, x);
        int same = 1, mirror = 1;
        for (int y = 0; y < 4; y++)
            for (int c = 0; c < 5; c++) {
                float v = x[y * 5 + c] * 255.0f;
                same &= fabsf(v - (float)(y * 5 + c + 1)) < 1e-3f;
                mirror &= fabsf(v - (float)(y * 5 + (4 - c) + 1)) < 1e-3f;
            }
        ck_assert_msg(same || mirror, "epoch %d: neither the image nor its mirror", e);
        flips += mirror;
    }
    ck_assert_msg(flips > 70 && flips < 130, "%d flips in 200 epochs", flips);
    tb_task_free(&t);

    /* crop with padding 1: the image shifted by (dy, dx) in [-1, 1]^2, zeros outside; all 9 shifts occur */
    t = prepare_tiny(1, 0, 0, 0);
    int seen[3][3] = {{0}};
    for (int e = 1; e <= 200; e++) {
        load_one(&t, e, x);
        int found = 0;
        for (int dy = -1; dy <= 1 && !found; dy++)
            for (int dx = -1; dx <= 1 && !found; dx++) {
                int ok = 1;
                for (int y = 0; y < 4; y++)
                    for (int c = 0; c < 5; c++) {
                        int sy = y + dy, sx = c + dx;
                        float e_ = sy >= 0 && sy < 4 && sx >= 0 && sx < 5 ? (float)(sy * 5 + sx + 1) : 0.0f;
                        ok &= fabsf(x[y * 5 + c] * 255.0f - e_) < 1e-3f;
                    }
                if (ok) {
                    found = 1;
                    seen[dy + 1][dx + 1]++;
                }
            }
        ck_assert_msg(found, "epoch %d: not a shifted copy of the padded image", e);
    }
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++) ck_assert_msg(seen[i][j] > 0, "shift (%d, %d) never drawn", i - 1, j - 1);
    tb_task_free(&t);

    /* random resized crop of a constant image: constant */
    t = prepare_tiny(0, 0, 1, 77);
    for (int e = 1; e <= 20; e++) {
        load_one(&t, e, x);
        for (int i = 0; i < 20; i++) ck_assert_float_eq(x[i], 77.0f / 255.0f);
    }
    tb_task_free(&t);
}
END_TEST

START_TEST(test_random_resized_crop_gradient)
{
    /* 1x16x16, pixel = 10 * column: a crop resized back keeps identical rows,
     * non-decreasing along x (non-increasing when flipped) and values within
     * the source range; crops vary between epochs */
    tb_task_data raw = make_raw(1, 1, 16, 16, 1, NULL, NULL);
    for (int y = 0; y < 16; y++)
        for (int c = 0; c < 16; c++) raw.pixels[y * 16 + c] = (uint8_t)(10 * c);
    tb_task_options o = no_norm_opts();
    o.random_resized_crop = 1;
    o.hflip = 1;
    tb_task t;
    tb_err err = {{0}};
    ck_assert_msg(tb_task_prepare(&t, &raw, &o, &err) == TB_OK, "%s", err.msg);
    float x[256], first[256];
    int distinct = 0;
    for (int e = 1; e <= 30; e++) {
        load_one(&t, e, x);
        if (e == 1) memcpy(first, x, sizeof x);
        else distinct += memcmp(first, x, sizeof x) != 0;
        for (int y = 1; y < 16; y++)
            for (int c = 0; c < 16; c++) ck_assert_float_eq(x[y * 16 + c], x[c]);
        int up = 1, down = 1;
        for (int c = 1; c < 16; c++) {
            up &= x[c] >= x[c - 1];
            down &= x[c] <= x[c - 1];
        }
        ck_assert_msg(up || down, "epoch %d: row is not monotone", e);
        for (int c = 0; c < 16; c++) ck_assert(x[c] >= 0.0f && x[c] <= 150.0f / 255.0f + 1e-6f);
    }
    ck_assert_int_ge(distinct, 25);
    tb_task_free(&t);
}
END_TEST

/* ---- float samples (issue 11) -------------------------------------------------------- */

/* make_raw's data as float32: pixels_f32 = pixel / 255 (the exact float ToTensor gives). */
static tb_task_data to_f32(tb_task_data d)
{
    const size_t total = (size_t)d.count * (size_t)d.channels * (size_t)d.height * (size_t)d.width;
    d.pixels_f32 = malloc(total * sizeof(float));
    ck_assert_ptr_nonnull(d.pixels_f32);
    for (size_t i = 0; i < total; i++) d.pixels_f32[i] = (float)d.pixels[i] / 255.0f;
    free(d.pixels);
    d.pixels = NULL;
    return d;
}

/* A float task holding v/255 trains exactly as the uint8 task (same normalisation,
 * crop with padding and flip), batch for batch: the uint8 path is unchanged. */
START_TEST(test_float_matches_uint8)
{
    tb_task_options o = no_norm_opts();
    o.mean[0] = 0.4f, o.mean[1] = 0.5f, o.std[0] = 0.25f, o.std[1] = 0.3f;
    o.crop_padding = 2;
    o.hflip = 1;
    tb_task a, b;
    tb_err err = {{0}};
    tb_task_data ru = make_raw(24, 2, 6, 5, 3, NULL, NULL), rf = to_f32(make_raw(24, 2, 6, 5, 3, NULL, NULL));
    ck_assert_msg(tb_task_prepare(&a, &ru, &o, &err) == TB_OK, "%s", err.msg);
    ck_assert_msg(tb_task_prepare(&b, &rf, &o, &err) == TB_OK, "%s", err.msg);
    ck_assert_ptr_nonnull(b.raw.pixels_f32);
    for (int epoch = 0; epoch < 3; epoch++) {
        a.train.begin_epoch(a.train.ctx, 7, epoch);
        b.train.begin_epoch(b.train.ctx, 7, epoch);
        int32_t ya[24], yb[24];
        float *xa = load_all(&a.train, ya), *xb = load_all(&b.train, yb);
        const size_t total = (size_t)a.train.count * 2 * 6 * 5;
        ck_assert(memcmp(ya, yb, sizeof ya) == 0);
        ck_assert_msg(memcmp(xa, xb, total * sizeof *xa) == 0, "epoch %d: float and uint8 batches differ", epoch);
        free(xa), free(xb);
    }
    tb_task_free(&a);
    tb_task_free(&b);
}
END_TEST

/* Float values are not rounded: statistics, resize and datasets see the values themselves. */
START_TEST(test_float_not_rounded)
{
    tb_task_data d = to_f32(make_raw(8, 1, 4, 4, 2, NULL, NULL));
    for (size_t i = 0; i < 8 * 16; i++) d.pixels_f32[i] = -3.0f + 0.001f * (float)i; /* not multiples of 1/255 */
    tb_task_options o;
    memset(&o, 0, sizeof o); /* statistics computed on the training split */
    tb_task t;
    tb_err err = {{0}};
    ck_assert_msg(tb_task_prepare(&t, &d, &o, &err) == TB_OK, "%s", err.msg);
    double m = 0.0, v = 0.0;
    for (size_t i = 0; i < 128; i++) m += -3.0 + 0.001 * (double)i;
    m /= 128.0;
    for (size_t i = 0; i < 128; i++) {
        double x = (double)(-3.0f + 0.001f * (float)i) - m;
        v += x * x;
    }
    ck_assert_double_eq_tol(t.mean[0], m, 1e-6);
    ck_assert_double_eq_tol(t.std[0], sqrt(v / 128.0), 1e-6);
    int32_t y[8];
    float *x = load_all(&t.train, y);
    for (size_t i = 0; i < 128; i++) {
        float e = ((-3.0f + 0.001f * (float)i) - t.mean[0]) / t.std[0];
        ck_assert_msg(memcmp(&x[i], &e, sizeof e) == 0, "value %zu: %.9g, expected %.9g", i, (double)x[i], (double)e);
    }
    free(x);
    tb_task_free(&t);

    /* resize keeps float precision: a constant 0.3001 image stays 0.3001 (uint8 would give 77/255) */
    d = to_f32(make_raw(2, 1, 4, 4, 1, NULL, NULL));
    for (size_t i = 0; i < 32; i++) d.pixels_f32[i] = 0.3001f;
    o = no_norm_opts();
    o.resolution = 3;
    ck_assert_msg(tb_task_prepare(&t, &d, &o, &err) == TB_OK, "%s", err.msg);
    ck_assert_int_eq(t.train.height, 3);
    x = load_all(&t.train, y);
    for (size_t i = 0; i < 18; i++) ck_assert_float_eq_tol(x[i], 0.3001f, 1e-6f);
    free(x);
    tb_task_free(&t);

    /* random resized crop on floats runs and stays within the value range */
    d = to_f32(make_raw(4, 1, 8, 8, 2, NULL, NULL));
    o = no_norm_opts();
    o.random_resized_crop = 1;
    ck_assert_msg(tb_task_prepare(&t, &d, &o, &err) == TB_OK, "%s", err.msg);
    t.train.begin_epoch(t.train.ctx, 3, 0);
    x = load_all(&t.train, y);
    for (size_t i = 0; i < 4 * 64; i++) ck_assert(x[i] >= -1e-6f && x[i] <= 1.0f + 1e-6f);
    free(x);
    tb_task_free(&t);

    /* non-finite values are refused by sample; pixels and pixels_f32 together too */
    d = to_f32(make_raw(4, 1, 2, 2, 2, NULL, NULL));
    d.pixels_f32[9] = INFINITY;
    tb_task_options n = no_norm_opts();
    tb_status st = tb_task_prepare(&t, &d, &n, &err);
    ck_assert_int_eq(st, TB_EFORMAT);
    ck_assert_msg(strstr(err.msg, "float value inf at sample 2 (value 1 of the sample) is not finite"), "%s", err.msg);
    d = to_f32(make_raw(4, 1, 2, 2, 2, NULL, NULL));
    d.pixels = malloc(16);
    st = tb_task_prepare(&t, &d, &n, &err);
    ck_assert_int_eq(st, TB_EFORMAT);
    ck_assert_msg(strstr(err.msg, "both uint8 pixels and pixels_f32"), "%s", err.msg);
}
END_TEST

/* host->task_data_free (version 2) on the struct of a plugin built before ABI
 * minor 3 touches nothing past `source` (ASan: no overflow);
 * task_data_release frees pixels_f32. */
START_TEST(test_task_data_free_old_size)
{
    const size_t old = offsetof(tb_task_data, source) + sizeof(((tb_task_data *)0)->source);
    tb_task_data pre;
    memset(&pre, 0, sizeof pre);
    pre.pixels = malloc(4);
    pre.labels = malloc(4);
    unsigned char *buf = malloc(old); /* exactly an old plugin's struct: ASan sees any access past it */
    memcpy(buf, &pre, old);
    tb_task_data_free_v2((tb_task_data *)(void *)buf);
    memcpy(&pre, buf, old);
    ck_assert_ptr_null(pre.pixels);
    ck_assert_ptr_null(pre.labels);
    free(buf);
    tb_task_data full;
    memset(&full, 0, sizeof full);
    full.pixels_f32 = malloc(16);
    full.labels = malloc(4);
    full.classes_guessed = 1;
    tb_task_data_release(&full, sizeof full);
    ck_assert_ptr_null(full.pixels_f32);
    ck_assert_int_eq(full.classes_guessed, 0);
}
END_TEST

/* ---- errors ----------------------------------------------------------------------------- */

static void expect_error(tb_task_data raw, tb_task_options o, tb_status code, const char *needle)
{
    tb_task t;
    tb_err err = {{0}};
    tb_status st = tb_task_prepare(&t, &raw, &o, &err);
    ck_assert_msg(st == code, "status %d, expected %d (%s)", (int)st, (int)code, err.msg);
    ck_assert_msg(strstr(err.msg, needle) != NULL, "message '%s' lacks '%s'", err.msg, needle);
}

START_TEST(test_errors)
{
    tb_task_options o = no_norm_opts();
    o.val_fraction = 0.99;
    expect_error(make_raw(10, 1, 2, 2, 2, NULL, NULL), o, TB_EINVAL, "leaves no training sample");
    o.val_fraction = 1.0;
    expect_error(make_raw(10, 1, 2, 2, 2, NULL, NULL), o, TB_EINVAL, "val_fraction");
    o.val_fraction = 0.0;
    o.folds = 5;
    o.fold = 5;
    expect_error(make_raw(10, 1, 2, 2, 2, NULL, NULL), o, TB_EINVAL, "fold = 5 is outside [0, 5)");
    o.fold = 0;
    o.folds = 11;
    expect_error(make_raw(10, 1, 2, 2, 2, NULL, NULL), o, TB_EINVAL, "folds = 11 exceeds the 10 samples");
    o.folds = 0;
    tb_task_data raw = make_raw(10, 1, 2, 2, 2, NULL, NULL);
    raw.labels[3] = 2;
    expect_error(raw, o, TB_EFORMAT, "label 2 of sample 3"); /* issue 11: bad data is a failed run (exit 1) */
    uint8_t splits[4] = {TB_SPLIT_TEST, TB_SPLIT_TEST, TB_SPLIT_VAL, TB_SPLIT_TEST};
    expect_error(make_raw(4, 1, 2, 2, 2, NULL, splits), o, TB_EFORMAT, "no training samples");
    o.crop_padding = -1;
    expect_error(make_raw(4, 1, 2, 2, 2, NULL, NULL), o, TB_EINVAL, "crop_padding");
    o.crop_padding = 0;
    o.std[0] = 0.0f;
    expect_error(make_raw(4, 1, 2, 2, 2, NULL, NULL), o, TB_EINVAL, "std[0]");
    /* a constant channel cannot be normalised by its own statistics */
    memset(&o, 0, sizeof o);
    raw = make_raw(4, 1, 2, 2, 2, NULL, NULL);
    memset(raw.pixels, 9, 16);
    expect_error(raw, o, TB_EFORMAT, "constant");
}
END_TEST

static Suite *task_suite(void)
{
    Suite *s = suite_create("task");
    TCase *tc = tcase_create("pipeline");
    tcase_add_test(tc, test_resize_to_resolution);
    tcase_add_test(tc, test_carve_val_stratified_reproducible);
    tcase_add_test(tc, test_task_val_kept);
    tcase_add_test(tc, test_kfold);
    tcase_add_test(tc, test_stratified_folds_direct);
    tcase_add_test(tc, test_computed_normalisation);
    tcase_add_test(tc, test_augment_deterministic);
    tcase_add_test(tc, test_augment_semantics);
    tcase_add_test(tc, test_random_resized_crop_gradient);
    tcase_add_test(tc, test_errors);
    tcase_add_test(tc, test_float_matches_uint8);
    tcase_add_test(tc, test_float_not_rounded);
    tcase_add_test(tc, test_task_data_free_old_size);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tbt_run(task_suite()); }
