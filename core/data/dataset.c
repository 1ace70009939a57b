/* dataset.c: the in-memory dataset and subsets (see dataset.h). */
#include "dataset.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


void tb_dataset_free(tb_dataset *ds)
{
    if (!ds) return;
    if (ds->destroy) ds->destroy(ds->ctx);
    memset(ds, 0, sizeof *ds);
}

/* ---- in-memory dataset --------------------------------------------------- */

typedef struct memory_ctx {
    uint8_t *pixels;
    int32_t *labels;
    int count;
    int c;
    size_t plane;  /* h * w */
    size_t sample; /* c * h * w */
    float *lut;    /* [c][256]: the normalised value of every pixel value */
} memory_ctx;

static void memory_destroy(void *p)
{
    memory_ctx *m = p;
    if (!m) return;
    free(m->pixels);
    free(m->labels);
    free(m->lut);
    free(m);
}

static tb_status memory_load(void *p, const int32_t *idx, int n, float *x, int32_t *y, tb_err *err)
{
    const memory_ctx *m = p;
    for (int i = 0; i < n; i++) {
        int32_t s = idx[i];
        if (s < 0 || s >= m->count)
            return tb_fail(err, TB_EINVAL, "dataset: sample index %d (batch position %d) is outside [0, %d)",
                           (int)s, i, m->count);
        const uint8_t *src = m->pixels + (size_t)s * m->sample;
        float *dst = x + (size_t)i * m->sample;
        for (int c = 0; c < m->c; c++) {
            const float *lut = m->lut + (size_t)c * 256;
            const uint8_t *sp = src + (size_t)c * m->plane;
            float *dp = dst + (size_t)c * m->plane;
            for (size_t j = 0; j < m->plane; j++) dp[j] = lut[sp[j]];
        }
        if (y) y[i] = m->labels[s];
    }
    return TB_OK;
}

/* Takes ownership of pixels and labels whatever the outcome: they are freed
 * on failure too, so a caller never has to clean up after this call. */
tb_status tb_dataset_memory(tb_dataset *out, uint8_t *pixels, int32_t *labels, int count, int c, int h, int w,
                            int classes, const float *mean, const float *std, tb_err *err)
{
    tb_status st = TB_OK;
    memory_ctx *m = NULL;
    memset(out, 0, sizeof *out);
    if (!pixels || !labels) {
        st = tb_fail(err, TB_EINVAL, "dataset: %s is NULL", !pixels ? "pixels" : "labels");
        goto fail;
    }
    if (count <= 0) {
        st = tb_fail(err, TB_EINVAL, "dataset: sample count %d must be at least 1", count);
        goto fail;
    }
    if (c <= 0 || h <= 0 || w <= 0) {
        st = tb_fail(err, TB_EINVAL, "dataset: sample shape [%d, %d, %d] must have every dimension >= 1", c, h, w);
        goto fail;
    }
    if ((size_t)c * (size_t)h * (size_t)w > (SIZE_MAX / 4) / (size_t)count) {
        st = tb_fail(err, TB_EINVAL, "dataset: %d samples of [%d, %d, %d] are too large to address", count, c, h,
                     w);
        goto fail;
    }
    if (classes <= 0) {
        st = tb_fail(err, TB_EINVAL, "dataset: class count %d must be at least 1", classes);
        goto fail;
    }
    for (int ch = 0; ch < c; ch++) {
        float mu = mean ? mean[ch] : 0.0f, sd = std ? std[ch] : 1.0f;
        if (!isfinite(mu)) {
            st = tb_fail(err, TB_EINVAL, "dataset: mean[%d] = %g must be finite", ch, (double)mu);
            goto fail;
        }
        if (!(sd > 0.0f) || !isfinite(sd)) {
            st = tb_fail(err, TB_EINVAL, "dataset: std[%d] = %g must be finite and > 0", ch, (double)sd);
            goto fail;
        }
    }
    for (int i = 0; i < count; i++) {
        if (labels[i] < 0 || labels[i] >= classes) {
            st = tb_fail(err, TB_EINVAL, "dataset: label %d of sample %d is outside [0, %d)", (int)labels[i], i,
                         classes);
            goto fail;
        }
    }
    m = calloc(1, sizeof *m);
    if (!m) goto nomem;
    m->lut = malloc((size_t)c * 256 * sizeof *m->lut);
    if (!m->lut) goto nomem;
    /* torchvision: ToTensor (p / 255 in float32), then Normalize ((x - mean) / std in float32) */
    for (int ch = 0; ch < c; ch++) {
        float mu = mean ? mean[ch] : 0.0f, sd = std ? std[ch] : 1.0f;
        for (int v = 0; v < 256; v++) {
            float x = (float)v / 255.0f;
            m->lut[(size_t)ch * 256 + (size_t)v] = (x - mu) / sd;
        }
    }
    m->pixels = pixels;
    m->labels = labels;
    m->count = count;
    m->c = c;
    m->plane = (size_t)h * (size_t)w;
    m->sample = (size_t)c * m->plane;

    out->count = count;
    out->channels = c;
    out->height = h;
    out->width = w;
    out->classes = classes;
    out->class_names = NULL;
    out->ctx = m;
    out->load = memory_load;
    out->destroy = memory_destroy;
    return TB_OK;

nomem:
    st = tb_fail(err, TB_ENOMEM, "dataset: out of memory for %d samples", count);
fail:
    if (m) free(m->lut);
    free(m);
    free(pixels);
    free(labels);
    return st;
}

/* ---- subset --------------------------------------------------------------- */

typedef struct subset_ctx {
    const tb_dataset *base;
    int32_t *idx;
    int n;
} subset_ctx;

static void subset_destroy(void *p)
{
    subset_ctx *s = p;
    if (!s) return;
    free(s->idx);
    free(s);
}

#define SUBSET_CHUNK 256

static tb_status subset_load(void *p, const int32_t *idx, int n, float *x, int32_t *y, tb_err *err)
{
    const subset_ctx *s = p;
    const tb_dataset *b = s->base;
    const size_t sample = (size_t)b->channels * (size_t)b->height * (size_t)b->width;
    int32_t mapped[SUBSET_CHUNK];
    for (int done = 0; done < n; done += SUBSET_CHUNK) {
        int k = n - done < SUBSET_CHUNK ? n - done : SUBSET_CHUNK;
        for (int i = 0; i < k; i++) {
            int32_t j = idx[done + i];
            if (j < 0 || j >= s->n)
                return tb_fail(err, TB_EINVAL, "dataset subset: sample index %d (batch position %d) is outside [0, %d)",
                               (int)j, done + i, s->n);
            mapped[i] = s->idx[j];
        }
        tb_status st = b->load(b->ctx, mapped, k, x + (size_t)done * sample, y ? y + done : NULL, err);
        if (st != TB_OK) return st;
    }
    return TB_OK;
}

static void subset_begin_epoch(void *p, uint64_t seed, int epoch)
{
    const subset_ctx *s = p;
    s->base->begin_epoch(s->base->ctx, seed, epoch);
}

tb_status tb_dataset_subset(tb_dataset *out, const tb_dataset *base, const int32_t *idx, int n, tb_err *err)
{
    memset(out, 0, sizeof *out);
    if (!base || !base->load) return tb_fail(err, TB_EINVAL, "dataset subset: the base dataset is not loaded");
    if (n <= 0) return tb_fail(err, TB_EINVAL, "dataset subset: sample count %d must be at least 1", n);
    if (!idx) return tb_fail(err, TB_EINVAL, "dataset subset: index list is NULL");
    for (int i = 0; i < n; i++)
        if (idx[i] < 0 || idx[i] >= base->count)
            return tb_fail(err, TB_EINVAL, "dataset subset: index %d at position %d is outside [0, %d)",
                           (int)idx[i], i, base->count);
    subset_ctx *s = calloc(1, sizeof *s);
    if (!s) return tb_fail(err, TB_ENOMEM, "dataset subset: out of memory");
    s->idx = malloc((size_t)n * sizeof *s->idx);
    if (!s->idx) {
        free(s);
        return tb_fail(err, TB_ENOMEM, "dataset subset: out of memory for %d indices", n);
    }
    memcpy(s->idx, idx, (size_t)n * sizeof *s->idx);
    s->base = base;
    s->n = n;

    out->count = n;
    out->channels = base->channels;
    out->height = base->height;
    out->width = base->width;
    out->classes = base->classes;
    out->class_names = base->class_names;
    out->ctx = s;
    out->load = subset_load;
    out->destroy = subset_destroy;
    out->begin_epoch = base->begin_epoch ? subset_begin_epoch : NULL;
    return TB_OK;
}
