/* task.c: from a task plugin's raw uint8 data to the datasets training reads
 * (see task.h).
 *
 * Order of work in tb_task_prepare:
 *   1. resize every image to resolution x resolution (once, into a new buffer,
 *      in parallel; Pillow's bilinear filter, see image.c);
 *   2. split indices from raw.splits; when the task has no validation samples
 *      and val_fraction > 0, a stratified validation split is carved out of
 *      train (TB_STREAM_SPLIT, sub-stream 0 of split_seed);
 *   3. folds > 1: train+val are pooled, split into `folds` stratified folds
 *      (tb_stratified_folds, sub-stream 1) and fold `fold` validates
 *      (val_fraction is then unused);
 *   3b. merge_val: the validation samples join the training split (final
 *      evaluations retrain on train + validation);
 *   4. normalisation: the options' mean/std, else the task's, else computed
 *      on the training split (per channel, pixel/255, in double, exactly from
 *      integer sums so the thread count cannot change it);
 *   5. three datasets over the shared uint8 buffer that normalise on the fly
 *      through a 256-entry table per channel and allocate nothing per batch.
 *
 * Augmentation (training dataset only), in torchvision's usual order:
 * RandomResizedCrop(size, scale=(0.08, 1), ratio=(3/4, 4/3)) with the bilinear
 * resize back to the size, then RandomCrop(size, padding=crop_padding) with
 * zero fill, then RandomHorizontalFlip(0.5), then ToTensor and Normalize. The
 * random numbers of a sample come from Philox(seed, TB_STREAM_AUGMENT,
 * sub-stream = epoch) at the position block (raw sample index << 32), so they
 * depend only on (seed, epoch, sample) and never on the batch size, order or
 * thread count. Draws per sample, in this order: RandomResizedCrop (two
 * doubles per attempt, up to 10 attempts, then two integers for the offset),
 * the crop offsets (top, then left), the flip (one float, flip when < 0.5).
 *
 * Float samples (raw.pixels_f32, ABI minor 3) take the same steps without
 * ever becoming uint8: the resize is Pillow's float filter (tb_resize_f32),
 * the statistics are of the values themselves (in double, summed per sample
 * in order, so the thread count cannot change them), the datasets compute
 * (v - mean) / std in float32 (torchvision's Normalize on a float tensor), and
 * augmentation pads with 0.0 as it pads uint8 with 0.
 *
 * Memory of raw (pixels or pixels_f32, labels, splits, class_names) is
 * released with tb_task_data_free (below): the host's alloc is malloc. */
#include "task.h"

#include <math.h>
#include <omp.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "image.h"
#include "base/rng.h"

#define SPLIT_SUB_VAL 0u   /* TB_STREAM_SPLIT sub-stream: carving the validation split */
#define SPLIT_SUB_FOLDS 1u /* TB_STREAM_SPLIT sub-stream: k-fold assignment */
#define MAX_RESOLUTION 8192
#define MAX_CROP_PADDING 4096
#define PARALLEL_MIN_BYTES (1 << 16) /* below this much output per batch, load on one thread */

/* ---- raw data ------------------------------------------------------------- */

static tb_status raw_validate(const tb_task_data *d, tb_err *err)
{
    if (d->count <= 0) return tb_fail(err, TB_EFORMAT, "task: the task returned %d samples; it needs at least 1", d->count);
    if (d->channels < 1 || d->channels > 4)
        return tb_fail(err, TB_EFORMAT, "task: images have %d channels; 1 to 4 are supported", d->channels);
    if (d->height < 1 || d->width < 1)
        return tb_fail(err, TB_EFORMAT, "task: image size %dx%d must be at least 1x1", d->height, d->width);
    if ((size_t)d->channels * (size_t)d->height * (size_t)d->width > (SIZE_MAX / 8) / (size_t)d->count)
        return tb_fail(err, TB_EFORMAT, "task: %d images of %dx%dx%d are too large to address", d->count, d->channels,
                       d->height, d->width);
    if (d->classes < 1) return tb_fail(err, TB_EFORMAT, "task: class count %d must be at least 1", d->classes);
    if ((!d->pixels && !d->pixels_f32) || !d->labels || !d->splits)
        return tb_fail(err, TB_EFORMAT, "task: the task returned no %s",
                       !d->pixels && !d->pixels_f32 ? "pixels" : !d->labels ? "labels" : "splits");
    if (d->pixels && d->pixels_f32)
        return tb_fail(err, TB_EFORMAT, "task: the task returned both uint8 pixels and pixels_f32; set one");
    if (d->pixels_f32) {
        const size_t sample = (size_t)d->channels * (size_t)d->height * (size_t)d->width;
        const size_t total = sample * (size_t)d->count;
        for (size_t j = 0; j < total; j++)
            if (!isfinite(d->pixels_f32[j]))
                return tb_fail(err, TB_EFORMAT, "task: float value %g at sample %zu (value %zu of the sample) is not "
                               "finite", (double)d->pixels_f32[j], j / sample, j % sample);
    }
    for (int i = 0; i < d->count; i++) {
        if (d->labels[i] < 0 || d->labels[i] >= d->classes)
            return tb_fail(err, TB_EFORMAT, "task: label %d of sample %d is outside [0, %d)", (int)d->labels[i], i,
                           d->classes);
        if (d->splits[i] > TB_SPLIT_TEST)
            return tb_fail(err, TB_EFORMAT, "task: split %u of sample %d is not 0 (train), 1 (val) or 2 (test)",
                           (unsigned)d->splits[i], i);
    }
    return TB_OK;
}

static tb_status options_validate(const tb_task_options *o, int channels, tb_err *err)
{
    if (o->resolution < 0 || o->resolution > MAX_RESOLUTION)
        return tb_fail(err, TB_EINVAL, "task: resolution = %d is outside [0, %d] (0 keeps the task's size)",
                       o->resolution, MAX_RESOLUTION);
    if (!(o->val_fraction >= 0.0 && o->val_fraction < 1.0))
        return tb_fail(err, TB_EINVAL, "task: val_fraction = %g is outside [0, 1)", o->val_fraction);
    if (o->folds < 0) return tb_fail(err, TB_EINVAL, "task: folds = %d must be >= 0 (0 or 1: no k-fold)", o->folds);
    if (o->merge_val && o->folds > 1)
        return tb_fail(err, TB_EINVAL, "task: merge_val = true and folds = %d exclude each other (a fold validates)",
                       o->folds);
    if (o->folds > 1 && (o->fold < 0 || o->fold >= o->folds))
        return tb_fail(err, TB_EINVAL, "task: fold = %d is outside [0, %d) for folds = %d", o->fold, o->folds,
                       o->folds);
    if (o->crop_padding < 0 || o->crop_padding > MAX_CROP_PADDING)
        return tb_fail(err, TB_EINVAL, "task: crop_padding = %d is outside [0, %d]", o->crop_padding,
                       MAX_CROP_PADDING);
    if (o->has_norm) {
        for (int c = 0; c < channels; c++) {
            if (!isfinite(o->mean[c]))
                return tb_fail(err, TB_EINVAL, "task: mean[%d] = %g must be finite", c, (double)o->mean[c]);
            if (!isfinite(o->std[c]) || !(o->std[c] > 0.0f))
                return tb_fail(err, TB_EINVAL, "task: std[%d] = %g must be finite and > 0", c, (double)o->std[c]);
        }
    }
    return TB_OK;
}

/* Step 1: every image to res x res, into a new buffer. */
static tb_status resize_all(tb_task_data *d, int res, tb_err *err)
{
    if (res == 0 || (d->height == res && d->width == res)) return TB_OK;
    const size_t src_sample = (size_t)d->channels * (size_t)d->height * (size_t)d->width;
    const size_t dst_sample = (size_t)d->channels * (size_t)res * (size_t)res;
    if (dst_sample > (SIZE_MAX / 8) / (size_t)d->count)
        return tb_fail(err, TB_EINVAL, "task: %d images of %dx%dx%d are too large to address", d->count, d->channels,
                       res, res);
    const int count = d->count, c = d->channels, sh = d->height, sw = d->width;
    if (d->pixels_f32) {
        float *fdst = malloc(dst_sample * (size_t)count * sizeof *fdst);
        if (!fdst)
            return tb_fail(err, TB_ENOMEM, "task: out of memory resizing %d images to %dx%d (%zu MiB)", count, res,
                           res, dst_sample * (size_t)count * sizeof *fdst >> 20);
        const float *fsrc = d->pixels_f32;
        int failed = 0;
#pragma omp parallel for schedule(dynamic, 16) reduction(| : failed)
        for (int i = 0; i < count; i++)
            failed |= tb_resize_f32(fdst + (size_t)i * dst_sample, res, res, fsrc + (size_t)i * src_sample, sh, sw,
                                    c) != 0;
        if (failed) {
            free(fdst);
            return tb_fail(err, TB_ENOMEM, "task: out of memory resizing float images to %dx%d", res, res);
        }
        free(d->pixels_f32);
        d->pixels_f32 = fdst;
        d->height = res;
        d->width = res;
        return TB_OK;
    }
    uint8_t *dst = malloc(dst_sample * (size_t)count);
    if (!dst)
        return tb_fail(err, TB_ENOMEM, "task: out of memory resizing %d images to %dx%d (%zu MiB)", count, res, res,
                       dst_sample * (size_t)count >> 20);
    const uint8_t *src = d->pixels;
#pragma omp parallel for schedule(dynamic, 16)
    for (int i = 0; i < count; i++)
        tb_resize_u8(dst + (size_t)i * dst_sample, res, res, src + (size_t)i * src_sample, sh, sw, c);
    free(d->pixels);
    d->pixels = dst;
    d->height = res;
    d->width = res;
    return TB_OK;
}

/* ---- splits ------------------------------------------------------------------ */

/* Stratified validation split of train[0..n) (raw indices, ascending): n_val =
 * round(n * frac) (at least 1), per class floor(n_c * n_val / n) plus one for
 * the classes with the largest remainders (ties: lower class first), the
 * samples taken in the order of a permutation from (seed, TB_STREAM_SPLIT, 0).
 * Both outputs stay in ascending raw order. */
static tb_status carve_val(const int32_t *train, int n, const int32_t *labels, int classes, double frac,
                           uint64_t seed, int32_t *train_out, int *n_train_out, int32_t *val_out, int *n_val_out,
                           tb_err *err)
{
    long long nv = llround((double)n * frac);
    if (nv < 1) nv = 1;
    if (nv >= n)
        return tb_fail(err, TB_EINVAL,
                       "task: val_fraction = %g of the %d training samples leaves no training sample; use a "
                       "smaller val_fraction",
                       frac, n);
    tb_status st = TB_OK;
    int64_t *count = calloc((size_t)classes, sizeof *count);
    int64_t *quota = calloc((size_t)classes, sizeof *quota);
    int32_t *perm = malloc((size_t)n * sizeof *perm);
    uint8_t *is_val = calloc((size_t)n, 1);
    if (!count || !quota || !perm || !is_val) {
        st = tb_fail(err, TB_ENOMEM, "task: out of memory carving a validation split from %d samples", n);
        goto done;
    }
    for (int i = 0; i < n; i++) count[labels[train[i]]]++;
    long long given = 0;
    for (int c = 0; c < classes; c++) {
        quota[c] = count[c] * nv / n;
        given += quota[c];
    }
    /* the remaining samples go to the largest remainders count * nv mod n */
    for (long long r = given; r < nv; r++) {
        int best = -1;
        int64_t best_rem = -1;
        for (int c = 0; c < classes; c++) {
            if (quota[c] >= count[c]) continue;
            int64_t rem = (count[c] * nv) % n;
            if (quota[c] > count[c] * nv / n) rem = -1; /* already rounded up */
            if (rem > best_rem) {
                best_rem = rem;
                best = c;
            }
        }
        if (best < 0) break; /* cannot happen: nv < n */
        quota[best]++;
    }
    tb_rng_permutation(perm, n, seed, TB_STREAM_SPLIT, SPLIT_SUB_VAL);
    for (int t = 0; t < n; t++) {
        int p = perm[t];
        int c = labels[train[p]];
        if (quota[c] > 0) {
            quota[c]--;
            is_val[p] = 1;
        }
    }
    int a = 0, b = 0;
    for (int i = 0; i < n; i++) {
        if (is_val[i])
            val_out[b++] = train[i];
        else
            train_out[a++] = train[i];
    }
    *n_train_out = a;
    *n_val_out = b;
done:
    free(count);
    free(quota);
    free(perm);
    free(is_val);
    return st;
}

static int cmp_i32(const void *a, const void *b)
{
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

/* labels are indexed by sample: sample i is idx[i] (or i when idx is NULL)
 * and its label labels[idx[i]]. Fold f gets either floor or ceil of n_c / k of
 * every class c. There is no fallback: the folds depend on (labels, k, seed)
 * alone, or the call fails and fold_of is left as it was. */
tb_status tb_stratified_folds(const int32_t *idx, int n, const int32_t *labels, int classes, int k, uint64_t seed,
                              int *fold_of, tb_err *err)
{
    if (n < 0 || k < 1 || classes < 1 || (n > 0 && (!labels || !fold_of)))
        return tb_fail(err, TB_EINVAL, "folds: %d samples, %d classes into %d folds is not a valid request", n,
                       classes, k);
    for (int i = 0; i < n; i++) {
        int32_t l = labels[idx ? idx[i] : i];
        if (l < 0 || l >= classes)
            return tb_fail(err, TB_EINVAL, "folds: label %d of sample %d is outside [0, %d)", (int)l, i, classes);
    }
    if (n == 0) return TB_OK;
    int32_t *perm = malloc((size_t)n * sizeof *perm);
    int32_t *start = calloc((size_t)classes + 1, sizeof *start);
    int32_t *order = malloc((size_t)n * sizeof *order);
    if (!perm || !start || !order) {
        free(perm);
        free(start);
        free(order);
        return tb_fail(err, TB_ENOMEM, "folds: out of memory assigning %d samples to %d folds", n, k);
    }
    /* positions grouped by class (counting sort), each class in permutation order */
    tb_rng_permutation(perm, n, seed, TB_STREAM_SPLIT, SPLIT_SUB_FOLDS);
    for (int i = 0; i < n; i++) start[labels[idx ? idx[i] : i] + 1]++;
    for (int c = 0; c < classes; c++) start[c + 1] += start[c];
    for (int t = 0; t < n; t++) {
        int p = perm[t];
        order[start[labels[idx ? idx[p] : p]]++] = p;
    }
    /* one round robin over the classes in turn: every class and every fold within one sample of even */
    for (int t = 0; t < n; t++) fold_of[order[t]] = t % k;
    free(perm);
    free(start);
    free(order);
    return TB_OK;
}

/* ---- normalisation ------------------------------------------------------------ */

/* Float samples: mean and (population) standard deviation of the values per
 * channel, each sample summed in double into its own slot, then the slots
 * added in index order (the same result for any thread count). */
static tb_status compute_norm_f32(const tb_task_data *d, const int32_t *idx, int n, float *mean, float *std,
                                  tb_err *err)
{
    const int C = d->channels;
    const size_t plane = (size_t)d->height * (size_t)d->width, sample = (size_t)C * plane;
    double *part = malloc((size_t)n * sizeof *part); /* per-sample sums, reused by both passes */
    if (!part) return tb_fail(err, TB_ENOMEM, "task: out of memory computing the normalisation");
    for (int c = 0; c < C; c++) {
        const float *px = d->pixels_f32;
#pragma omp parallel for schedule(static)
        for (int i = 0; i < n; i++) {
            const float *p = px + (size_t)idx[i] * sample + (size_t)c * plane;
            double a = 0.0;
            for (size_t j = 0; j < plane; j++) a += (double)p[j];
            part[i] = a;
        }
        double s1 = 0.0;
        for (int i = 0; i < n; i++) s1 += part[i];
        const double N = (double)n * (double)plane, m = s1 / N;
#pragma omp parallel for schedule(static)
        for (int i = 0; i < n; i++) {
            const float *p = px + (size_t)idx[i] * sample + (size_t)c * plane;
            double b = 0.0;
            for (size_t j = 0; j < plane; j++) b += ((double)p[j] - m) * ((double)p[j] - m);
            part[i] = b;
        }
        double s2 = 0.0;
        for (int i = 0; i < n; i++) s2 += part[i];
        const double sd = sqrt(s2 / N);
        if (!(sd > 0.0) || !isfinite(sd) || !isfinite(m)) {
            free(part);
            return tb_fail(err, TB_EFORMAT,
                           "task: channel %d is constant (%g) over the %d training images, so its standard deviation "
                           "is 0; give mean and std in the config",
                           c, m, n);
        }
        mean[c] = (float)m;
        std[c] = (float)sd;
    }
    free(part);
    return TB_OK;
}

/* Mean and (population) standard deviation of pixel/255 per channel over
 * idx[0..n), from exact integer sums. */
static tb_status compute_norm(const tb_task_data *d, const int32_t *idx, int n, float *mean, float *std,
                              tb_err *err)
{
    if (d->pixels_f32) return compute_norm_f32(d, idx, n, mean, std, err);
    const int C = d->channels;
    const size_t plane = (size_t)d->height * (size_t)d->width, sample = (size_t)C * plane;
    for (int c = 0; c < C; c++) {
        uint64_t s1 = 0, s2 = 0;
        const uint8_t *px = d->pixels;
#pragma omp parallel for schedule(static) reduction(+ : s1, s2)
        for (int i = 0; i < n; i++) {
            const uint8_t *p = px + (size_t)idx[i] * sample + (size_t)c * plane;
            uint64_t a = 0, b = 0;
            for (size_t j = 0; j < plane; j++) {
                a += p[j];
                b += (uint64_t)p[j] * p[j];
            }
            s1 += a;
            s2 += b;
        }
        const double N = (double)n * (double)plane;
        double m = (double)s1 / N / 255.0;
        double var = (double)s2 / N / (255.0 * 255.0) - m * m;
        if (var < 0.0) var = 0.0;
        double sd = sqrt(var);
        if (!(sd > 0.0))
            return tb_fail(err, TB_EFORMAT,
                           "task: channel %d is constant (%g) over the %d training images, so its standard deviation "
                           "is 0; give mean and std in the config",
                           c, m * 255.0, n);
        mean[c] = (float)m;
        std[c] = (float)sd;
    }
    return TB_OK;
}

/* ---- datasets over the shared buffer --------------------------------------------- */

typedef struct view_ctx {
    const uint8_t *pixels;  /* the task's buffer (uint8 tasks) */
    const float *pixels_f32; /* or the task's float buffer */
    float mean[4], std[4];  /* float tasks: (v - mean) / std */
    const int32_t *labels;  /* the task's labels */
    const int32_t *idx;     /* dataset index -> raw sample (the task's array) */
    int count;
    int c, h, w;
    size_t plane, sample;
    float lut[4][256];      /* normalised value of every pixel value per channel */
    /* augmentation (training only) */
    int augment, crop_padding, hflip, rrc;
    uint64_t seed;
    int epoch;
    int n_scratch;          /* per-thread scratch buffers of 2 * sample values (bytes or floats) */
    uint8_t *scratch;
} view_ctx;

static void view_destroy(void *p)
{
    view_ctx *m = p;
    if (!m) return;
    free(m->scratch);
    free(m);
}

static void view_begin_epoch(void *p, uint64_t seed, int epoch)
{
    view_ctx *m = p;
    m->seed = seed;
    m->epoch = epoch;
}

/* A double in [0, 1) with 53 random bits. */
static double rng_double(tb_rng *r)
{
    uint64_t hi = tb_rng_u32(r) >> 5, lo = tb_rng_u32(r) >> 6;
    return ((double)hi * 67108864.0 + (double)lo) * (1.0 / 9007199254740992.0);
}

/* torchvision RandomResizedCrop.get_params(img, scale=(0.08, 1), ratio=(3/4, 4/3)):
 * top i, left j, height ch, width cw. Python's round() is round-half-even: rint. */
static void rrc_params(tb_rng *r, int h, int w, int *i, int *j, int *ch, int *cw)
{
    const double area = (double)h * (double)w;
    const double lr0 = log(3.0 / 4.0), lr1 = log(4.0 / 3.0);
    for (int attempt = 0; attempt < 10; attempt++) {
        double target = area * (0.08 + (1.0 - 0.08) * rng_double(r));
        double ar = exp(lr0 + (lr1 - lr0) * rng_double(r));
        double fw = rint(sqrt(target * ar)), fh = rint(sqrt(target / ar));
        if (fw > 0.0 && fw <= (double)w && fh > 0.0 && fh <= (double)h) {
            *cw = (int)fw;
            *ch = (int)fh;
            *i = (int)tb_rng_below(r, (uint32_t)(h - *ch + 1));
            *j = (int)tb_rng_below(r, (uint32_t)(w - *cw + 1));
            return;
        }
    }
    /* fallback: central crop */
    double in_ratio = (double)w / (double)h;
    if (in_ratio < 3.0 / 4.0) {
        *cw = w;
        *ch = (int)rint((double)w / (3.0 / 4.0));
    } else if (in_ratio > 4.0 / 3.0) {
        *ch = h;
        *cw = (int)rint((double)h * (4.0 / 3.0));
    } else {
        *cw = w;
        *ch = h;
    }
    if (*ch > h) *ch = h;
    if (*cw > w) *cw = w;
    *i = (h - *ch) / 2;
    *j = (w - *cw) / 2;
}

/* The random numbers of training sample r in this epoch, drawn in the
 * documented order (the file's comment) and nowhere else, so uint8 and
 * float samples are augmented alike. */
typedef struct augment_draw {
    int crop;           /* RandomResizedCrop cut rows i.. i+ch, columns j.. j+cw (not the whole image) */
    int i, j, ch, cw;
    int oy, ox;         /* crop_padding's offset */
    int flip;
} augment_draw;

static augment_draw draw_augment(const view_ctx *m, int32_t r)
{
    augment_draw a = {0};
    tb_rng g;
    tb_rng_init(&g, m->seed, TB_STREAM_AUGMENT, (uint32_t)m->epoch);
    tb_rng_seek(&g, (uint64_t)(uint32_t)r << 32); /* the sample's own range of 2^32 blocks */
    if (m->rrc) {
        rrc_params(&g, m->h, m->w, &a.i, &a.j, &a.ch, &a.cw);
        a.crop = a.ch != m->h || a.cw != m->w;
    }
    if (m->crop_padding > 0) {
        const uint32_t span = 2u * (uint32_t)m->crop_padding + 1u;
        a.oy = (int)tb_rng_below(&g, span) - m->crop_padding;
        a.ox = (int)tb_rng_below(&g, span) - m->crop_padding;
    }
    a.flip = m->hflip && tb_rng_uniform(&g) < 0.5f;
    return a;
}

/* One training sample, augmented and normalised into dst [c, h, w]. */
static void augment_one(const view_ctx *m, int32_t r, float *dst, uint8_t *scratch)
{
    const int C = m->c, h = m->h, w = m->w;
    const augment_draw a = draw_augment(m, r);
    const uint8_t *img = m->pixels + (size_t)r * m->sample;
    if (a.crop) {
        uint8_t *crop = scratch, *out = scratch + m->sample;
        for (int c = 0; c < C; c++)
            for (int y = 0; y < a.ch; y++)
                memcpy(crop + ((size_t)c * a.ch + (size_t)y) * (size_t)a.cw,
                       img + (size_t)c * m->plane + (size_t)(a.i + y) * (size_t)w + (size_t)a.j, (size_t)a.cw);
        tb_resize_u8(out, h, w, crop, a.ch, a.cw, C);
        img = out;
    }
    for (int c = 0; c < C; c++) {
        const float *lut = m->lut[c];
        const uint8_t *p = img + (size_t)c * m->plane;
        float *d = dst + (size_t)c * m->plane;
        for (int y = 0; y < h; y++) {
            const int sy = y + a.oy;
            float *drow = d + (size_t)y * (size_t)w;
            if (sy < 0 || sy >= h) {
                for (int x = 0; x < w; x++) drow[x] = lut[0];
                continue;
            }
            const uint8_t *row = p + (size_t)sy * (size_t)w;
            for (int x = 0; x < w; x++) {
                const int sx = (a.flip ? w - 1 - x : x) + a.ox;
                drow[x] = sx >= 0 && sx < w ? lut[row[sx]] : lut[0];
            }
        }
    }
}

/* augment_one for float samples: the same draws, Pillow's float resize for
 * RandomResizedCrop, 0.0 for the padding, then (v - mean) / std in float32. */
static int augment_one_f32(const view_ctx *m, int32_t r, float *dst, float *scratch)
{
    const int C = m->c, h = m->h, w = m->w;
    const augment_draw a = draw_augment(m, r);
    const float *img = m->pixels_f32 + (size_t)r * m->sample;
    if (a.crop) {
        float *crop = scratch, *out = scratch + m->sample;
        for (int c = 0; c < C; c++)
            for (int y = 0; y < a.ch; y++)
                memcpy(crop + ((size_t)c * a.ch + (size_t)y) * (size_t)a.cw,
                       img + (size_t)c * m->plane + (size_t)(a.i + y) * (size_t)w + (size_t)a.j,
                       (size_t)a.cw * sizeof *crop);
        if (tb_resize_f32(out, h, w, crop, a.ch, a.cw, C) != 0) return -1; /* out of memory: never train uncropped */
        img = out;
    }
    for (int c = 0; c < C; c++) {
        const float mean = m->mean[c], sd = m->std[c], pad = (0.0f - mean) / sd;
        const float *p = img + (size_t)c * m->plane;
        float *d = dst + (size_t)c * m->plane;
        for (int y = 0; y < h; y++) {
            const int sy = y + a.oy;
            float *drow = d + (size_t)y * (size_t)w;
            if (sy < 0 || sy >= h) {
                for (int x = 0; x < w; x++) drow[x] = pad;
                continue;
            }
            const float *row = p + (size_t)sy * (size_t)w;
            for (int x = 0; x < w; x++) {
                const int sx = (a.flip ? w - 1 - x : x) + a.ox;
                drow[x] = sx >= 0 && sx < w ? (row[sx] - mean) / sd : pad;
            }
        }
    }
    return 0;
}

static void plain_one(const view_ctx *m, int32_t r, float *dst)
{
    if (m->pixels_f32) {
        const float *src = m->pixels_f32 + (size_t)r * m->sample;
        for (int c = 0; c < m->c; c++) {
            const float mean = m->mean[c], sd = m->std[c];
            const float *p = src + (size_t)c * m->plane;
            float *d = dst + (size_t)c * m->plane;
            for (size_t j = 0; j < m->plane; j++) d[j] = (p[j] - mean) / sd;
        }
        return;
    }
    const uint8_t *src = m->pixels + (size_t)r * m->sample;
    for (int c = 0; c < m->c; c++) {
        const float *lut = m->lut[c];
        const uint8_t *p = src + (size_t)c * m->plane;
        float *d = dst + (size_t)c * m->plane;
        for (size_t j = 0; j < m->plane; j++) d[j] = lut[p[j]];
    }
}

static tb_status view_load(void *p, const int32_t *idx, int n, float *x, int32_t *y, tb_err *err)
{
    const view_ctx *m = p;
    for (int i = 0; i < n; i++) {
        if (idx[i] < 0 || idx[i] >= m->count)
            return tb_fail(err, TB_EINVAL, "dataset: sample index %d (batch position %d) is outside [0, %d)",
                           (int)idx[i], i, m->count);
        if (y) y[i] = m->labels[m->idx[idx[i]]];
    }
    const int parallel = (size_t)n * m->sample * sizeof(float) >= PARALLEL_MIN_BYTES;
    if (!m->augment) {
#pragma omp parallel for schedule(static) if (parallel)
        for (int i = 0; i < n; i++) plain_one(m, m->idx[idx[i]], x + (size_t)i * m->sample);
        return TB_OK;
    }
    int threads = omp_get_max_threads();
    if (threads > m->n_scratch) threads = m->n_scratch;
    int failed = 0;
#pragma omp parallel num_threads(threads) if (parallel && threads > 1)
    {
        const size_t unit = m->pixels_f32 ? sizeof(float) : 1;
        uint8_t *scratch = m->scratch ? m->scratch + (size_t)omp_get_thread_num() * 2 * m->sample * unit : NULL;
#pragma omp for schedule(dynamic, 4)
        for (int i = 0; i < n; i++) {
            if (!m->pixels_f32)
                augment_one(m, m->idx[idx[i]], x + (size_t)i * m->sample, scratch);
            else if (augment_one_f32(m, m->idx[idx[i]], x + (size_t)i * m->sample, (float *)(void *)scratch) != 0) {
#pragma omp atomic write
                failed = 1;
            }
        }
    }
    if (failed) return tb_fail(err, TB_ENOMEM, "out of memory resizing a training sample (random_resized_crop)");
    return TB_OK;
}

static tb_status make_view(tb_dataset *out, const tb_task *t, const int32_t *idx, int n, const float *mean,
                           const float *std, const tb_task_options *aug, tb_err *err)
{
    memset(out, 0, sizeof *out);
    if (n == 0) return TB_OK;
    const tb_task_data *d = &t->raw;
    view_ctx *m = calloc(1, sizeof *m);
    if (!m) return tb_fail(err, TB_ENOMEM, "task: out of memory");
    m->pixels = d->pixels;
    m->pixels_f32 = d->pixels_f32;
    for (int c = 0; c < 4; c++) {
        m->mean[c] = mean[c];
        m->std[c] = std[c];
    }
    m->labels = d->labels;
    m->idx = idx;
    m->count = n;
    m->c = d->channels;
    m->h = d->height;
    m->w = d->width;
    m->plane = (size_t)d->height * (size_t)d->width;
    m->sample = (size_t)d->channels * m->plane;
    /* torchvision: ToTensor (p / 255 in float32), then Normalize ((x - mean) / std in float32) */
    for (int c = 0; c < m->c; c++)
        for (int v = 0; v < 256; v++) m->lut[c][v] = ((float)v / 255.0f - mean[c]) / std[c];
    if (aug && (aug->crop_padding > 0 || aug->hflip || aug->random_resized_crop)) {
        m->augment = 1;
        m->crop_padding = aug->crop_padding;
        m->hflip = aug->hflip != 0;
        m->rrc = aug->random_resized_crop != 0;
        m->n_scratch = omp_get_max_threads();
        if (m->n_scratch < 1) m->n_scratch = 1;
        if (m->rrc) {
            m->scratch = malloc((size_t)m->n_scratch * 2 * m->sample * (d->pixels_f32 ? sizeof(float) : 1));
            if (!m->scratch) {
                free(m);
                return tb_fail(err, TB_ENOMEM, "task: out of memory for augmentation buffers");
            }
        }
    }
    out->count = n;
    out->channels = d->channels;
    out->height = d->height;
    out->width = d->width;
    out->classes = d->classes;
    out->class_names = (const char *const *)d->class_names;
    out->ctx = m;
    out->load = view_load;
    out->destroy = view_destroy;
    out->begin_epoch = m->augment ? view_begin_epoch : NULL;
    return TB_OK;
}

/* ---- the task ------------------------------------------------------------------- */

void tb_task_free(tb_task *task)
{
    if (!task) return;
    tb_dataset_free(&task->train);
    tb_dataset_free(&task->val);
    tb_dataset_free(&task->test);
    free(task->train_idx);
    free(task->val_idx);
    free(task->test_idx);
    if (task->mapped) { /* the pixels are the mapping's, not malloc's */
        task->raw.pixels = NULL;
        task->raw.pixels_f32 = NULL;
        munmap(task->mapped, task->mapped_bytes);
    }
    tb_task_data_free(&task->raw);
    memset(task, 0, sizeof *task);
}

/* The three datasets over t's raw data, indices and normalisation (augmentation of the training split from opt). */
static tb_status make_views(tb_task *t, const tb_task_options *opt, tb_err *err)
{
    tb_status st;
    if ((st = make_view(&t->train, t, t->train_idx, t->n_train, t->mean, t->std, opt, err)) ||
        (st = make_view(&t->val, t, t->val_idx, t->n_val, t->mean, t->std, NULL, err)) ||
        (st = make_view(&t->test, t, t->test_idx, t->n_test, t->mean, t->std, NULL, err)))
        return st;
    return TB_OK;
}

tb_status tb_task_adopt(tb_task *t, const tb_task_options *opt, tb_err *err)
{
    static const tb_task_options defaults;
    tb_status st = TB_OK;
    if (t->n_train < 1) st = tb_fail(err, TB_EFORMAT, "task: the prepared data have no training samples");
    else st = make_views(t, opt ? opt : &defaults, err);
    if (st != TB_OK) tb_task_free(t);
    return st;
}

tb_status tb_task_prepare(tb_task *out, tb_task_data *raw, const tb_task_options *opt, tb_err *err)
{
    static const tb_task_options defaults;
    tb_status st = TB_OK;
    int *fold_of = NULL;
    int32_t *pool = NULL;
    if (!out) {
        if (raw) tb_task_data_free(raw);
        return tb_fail(err, TB_EINVAL, "task: no output given");
    }
    memset(out, 0, sizeof *out);
    if (!raw) return tb_fail(err, TB_EINVAL, "task: no data given");
    out->raw = *raw;
    memset(raw, 0, sizeof *raw);
    if (!opt) opt = &defaults;
    tb_task_data *d = &out->raw;
    if ((st = raw_validate(d, err)) || (st = options_validate(opt, d->channels, err))) goto fail;
    if ((st = resize_all(d, opt->resolution, err))) goto fail;

    const int n = d->count;
    out->train_idx = malloc((size_t)n * sizeof(int32_t));
    out->val_idx = malloc((size_t)n * sizeof(int32_t));
    out->test_idx = malloc((size_t)n * sizeof(int32_t));
    if (!out->train_idx || !out->val_idx || !out->test_idx) {
        st = tb_fail(err, TB_ENOMEM, "task: out of memory for split indices");
        goto fail;
    }
    for (int i = 0; i < n; i++) {
        switch (d->splits[i]) {
        case TB_SPLIT_TRAIN: out->train_idx[out->n_train++] = i; break;
        case TB_SPLIT_VAL: out->val_idx[out->n_val++] = i; break;
        default: out->test_idx[out->n_test++] = i; break;
        }
    }
    if (out->n_train == 0) {
        st = tb_fail(err, TB_EFORMAT, "task: the task has no training samples (%d validation, %d test)", out->n_val,
                     out->n_test);
        goto fail;
    }

    if (opt->folds > 1) {
        /* pool train and val (ascending raw order), fold `fold` validates */
        const int np = out->n_train + out->n_val;
        if (opt->folds > np) {
            st = tb_fail(err, TB_EINVAL, "task: folds = %d exceeds the %d samples of train+val", opt->folds, np);
            goto fail;
        }
        pool = malloc((size_t)np * sizeof *pool);
        fold_of = malloc((size_t)np * sizeof *fold_of);
        if (!pool || !fold_of) {
            st = tb_fail(err, TB_ENOMEM, "task: out of memory for %d folds", opt->folds);
            goto fail;
        }
        int k = 0;
        for (int i = 0; i < n; i++)
            if (d->splits[i] != TB_SPLIT_TEST) pool[k++] = i;
        st = tb_stratified_folds(pool, np, d->labels, d->classes, opt->folds, opt->split_seed, fold_of, err);
        if (st != TB_OK) goto fail;
        out->n_train = out->n_val = 0;
        for (int i = 0; i < np; i++) {
            if (fold_of[i] == opt->fold)
                out->val_idx[out->n_val++] = pool[i];
            else
                out->train_idx[out->n_train++] = pool[i];
        }
        if (out->n_train == 0) {
            st = tb_fail(err, TB_EINVAL, "task: fold %d of %d leaves no training sample", opt->fold, opt->folds);
            goto fail;
        }
    } else if (out->n_val == 0 && opt->val_fraction > 0.0) {
        int32_t *tr = malloc((size_t)out->n_train * sizeof *tr);
        if (!tr) {
            st = tb_fail(err, TB_ENOMEM, "task: out of memory carving a validation split");
            goto fail;
        }
        int nt = 0, nv = 0;
        st = carve_val(out->train_idx, out->n_train, d->labels, d->classes, opt->val_fraction, opt->split_seed, tr,
                       &nt, out->val_idx, &nv, err);
        if (st == TB_OK) {
            memcpy(out->train_idx, tr, (size_t)nt * sizeof *tr);
            out->n_train = nt;
            out->n_val = nv;
        }
        free(tr);
        if (st) goto fail;
    }

    if (opt->merge_val && out->n_val > 0) {
        /* final evaluations train on train + validation (ascending raw order, as if one split) */
        memcpy(out->train_idx + out->n_train, out->val_idx, (size_t)out->n_val * sizeof *out->val_idx);
        out->n_train += out->n_val;
        out->n_val = 0;
        qsort(out->train_idx, (size_t)out->n_train, sizeof *out->train_idx, cmp_i32);
    }

    /* normalisation: given > the task's > computed on the training split */
    if (opt->has_norm) {
        memcpy(out->mean, opt->mean, sizeof out->mean);
        memcpy(out->std, opt->std, sizeof out->std);
    } else if (d->has_norm) {
        for (int c = 0; c < d->channels; c++) {
            if (!isfinite(d->mean[c]) || !isfinite(d->std[c]) || !(d->std[c] > 0.0f)) {
                st = tb_fail(err, TB_EFORMAT, "task: the task's normalisation mean[%d] = %g, std[%d] = %g is invalid",
                             c, (double)d->mean[c], c, (double)d->std[c]);
                goto fail;
            }
        }
        memcpy(out->mean, d->mean, sizeof out->mean);
        memcpy(out->std, d->std, sizeof out->std);
    } else if ((st = compute_norm(d, out->train_idx, out->n_train, out->mean, out->std, err))) {
        goto fail;
    }
    for (int c = d->channels; c < 4; c++) {
        out->mean[c] = 0.0f;
        out->std[c] = 1.0f;
    }

    if ((st = make_views(out, opt, err))) goto fail;
    free(pool);
    free(fold_of);
    return TB_OK;

fail:
    free(pool);
    free(fold_of);
    tb_task_free(out);
    return st;
}

void tb_task_data_free(tb_task_data *data)
{
    if (!data) return;
    if (data->class_names) {
        /* a count outside the range validation allows may not match the array: leak rather than overrun */
        if (data->classes <= 1000000)
            for (int i = 0; i < data->classes; i++) free(data->class_names[i]);
        free(data->class_names);
    }
    free(data->pixels);
    free(data->labels);
    free(data->splits);
    free(data->pixels_f32);
    memset(data, 0, sizeof *data);
}

void tb_task_data_release(tb_task_data *data, size_t size)
{
    if (!data) return;
    const size_t v3 = offsetof(tb_task_data, pixels_f32) + sizeof data->pixels_f32;
    if (size > sizeof *data) size = sizeof *data;
    float *f32 = size >= v3 ? data->pixels_f32 : NULL;
    if (size >= v3) data->pixels_f32 = NULL;
    /* the members up to source, as task_data_free (version 2) */
    tb_task_data head;
    const size_t old = offsetof(tb_task_data, source) + sizeof data->source;
    memset(&head, 0, sizeof head);
    memcpy(&head, data, size < old ? size : old);
    tb_task_data_free(&head);
    free(f32);
    memset(data, 0, size);
}

void tb_task_data_free_v2(tb_task_data *data)
{
    tb_task_data_release(data, offsetof(tb_task_data, source) + sizeof data->source);
}
