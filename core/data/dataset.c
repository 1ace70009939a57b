/* dataset.c: the in-memory dataset, subsets and the Fashion-MNIST loader. */
#include "dataset.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

const char *const tb_fmnist_class_names[10] = {
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
};

#define FMNIST_DEFAULT_DIR "/usr/share/datasets/fashion-mnist"
#define FMNIST_MEAN 0.2860f
#define FMNIST_STD 0.3530f

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

/* ---- Fashion-MNIST (IDX files) ------------------------------------------- */

#define IDX_MAGIC_IMAGES 2051 /* 0x00000803: unsigned byte, 3 dimensions */
#define IDX_MAGIC_LABELS 2049 /* 0x00000801: unsigned byte, 1 dimension */
#define FMNIST_SIDE 28
#define IDX_MAX_COUNT 100000000 /* sanity limit against a damaged header */

static uint32_t be32(const unsigned char *b)
{
    return ((uint32_t)b[0] << 24) | ((uint32_t)b[1] << 16) | ((uint32_t)b[2] << 8) | (uint32_t)b[3];
}

static int file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* Finds <dir>/<base>.gz, else <dir>/<base> (uncompressed). */
static tb_status idx_path(char *out, size_t len, const char *dir, const char *base, tb_err *err)
{
    char plain[1024];
    int k = snprintf(out, len, "%s/%s.gz", dir, base);
    if (k < 0 || (size_t)k >= len) return tb_fail(err, TB_EINVAL, "fashion-mnist: directory name %s is too long", dir);
    if (file_exists(out)) return TB_OK;
    k = snprintf(plain, sizeof plain, "%s/%s", dir, base);
    if (k < 0 || (size_t)k >= sizeof plain || (size_t)k >= len)
        return tb_fail(err, TB_EINVAL, "fashion-mnist: directory name %s is too long", dir);
    if (file_exists(plain)) {
        memcpy(out, plain, (size_t)k + 1);
        return TB_OK;
    }
    return tb_fail(err, TB_EIO,
                   "fashion-mnist: %s not found (nor uncompressed %s); Debian's package dataset-fashion-mnist "
                   "provides them in " FMNIST_DEFAULT_DIR,
                   out, plain);
}

/* Reads exactly len bytes; returns TB_OK, or an error naming path and what. */
static tb_status gz_read_exact(gzFile f, void *buf, size_t len, const char *path, const char *what, tb_err *err)
{
    unsigned char *p = buf;
    size_t done = 0;
    while (done < len) {
        size_t want = len - done;
        if (want > (1u << 30)) want = 1u << 30;
        int got = gzread(f, p + done, (unsigned)want);
        if (got < 0) {
            int zerr = 0;
            const char *msg = gzerror(f, &zerr);
            return tb_fail(err, TB_EFORMAT, "%s: cannot read %s: %s", path, what,
                           zerr == Z_ERRNO ? strerror(errno) : msg);
        }
        if (got == 0) break;
        done += (size_t)got;
    }
    if (done < len)
        return tb_fail(err, TB_EFORMAT, "%s is truncated: %s needs %zu bytes, the file has only %zu", path, what,
                       len, done);
    return TB_OK;
}

static tb_status gz_expect_end(gzFile f, const char *path, size_t expected, tb_err *err)
{
    unsigned char extra[64];
    int got = gzread(f, extra, sizeof extra);
    if (got < 0) {
        int zerr = 0;
        const char *msg = gzerror(f, &zerr);
        return tb_fail(err, TB_EFORMAT, "%s: cannot read: %s", path, zerr == Z_ERRNO ? strerror(errno) : msg);
    }
    if (got > 0)
        return tb_fail(err, TB_EFORMAT, "%s has data after the %zu bytes its header announces", path, expected);
    return TB_OK;
}

static gzFile gz_open(const char *path, tb_err *err, tb_status *st)
{
    errno = 0;
    gzFile f = gzopen(path, "rb");
    if (!f) {
        *st = tb_fail(err, TB_EIO, "%s: cannot open: %s", path, errno ? strerror(errno) : "out of memory");
        return NULL;
    }
    gzbuffer(f, 1u << 17);
    *st = TB_OK;
    return f;
}

static tb_status read_idx_images(const char *path, uint8_t **pixels, int *count, tb_err *err)
{
    tb_status st;
    *pixels = NULL;
    gzFile f = gz_open(path, err, &st);
    if (!f) return st;
    unsigned char h[16];
    st = gz_read_exact(f, h, sizeof h, path, "the 16-byte IDX image header", err);
    if (st != TB_OK) goto done;
    uint32_t magic = be32(h), n = be32(h + 4), rows = be32(h + 8), cols = be32(h + 12);
    if (magic != IDX_MAGIC_IMAGES) {
        st = tb_fail(err, TB_EFORMAT, "%s: magic number %u (0x%08x) is not %d, an IDX file of uint8 images", path,
                     (unsigned)magic, (unsigned)magic, IDX_MAGIC_IMAGES);
        goto done;
    }
    if (rows != FMNIST_SIDE || cols != FMNIST_SIDE) {
        st = tb_fail(err, TB_EFORMAT, "%s: images are %ux%u, Fashion-MNIST's are %dx%d", path, (unsigned)rows,
                     (unsigned)cols, FMNIST_SIDE, FMNIST_SIDE);
        goto done;
    }
    if (n == 0 || n > IDX_MAX_COUNT) {
        st = tb_fail(err, TB_EFORMAT, "%s: image count %u is outside [1, %d]", path, (unsigned)n, IDX_MAX_COUNT);
        goto done;
    }
    size_t bytes = (size_t)n * FMNIST_SIDE * FMNIST_SIDE;
    *pixels = malloc(bytes);
    if (!*pixels) {
        st = tb_fail(err, TB_ENOMEM, "%s: out of memory for %u images", path, (unsigned)n);
        goto done;
    }
    char what[64];
    int k = snprintf(what, sizeof what, "%u images of 28x28", (unsigned)n);
    if (k < 0 || (size_t)k >= sizeof what) {
        st = tb_fail(err, TB_EINVAL, "%s: internal error formatting the image count", path);
        goto done;
    }
    st = gz_read_exact(f, *pixels, bytes, path, what, err);
    if (st == TB_OK) st = gz_expect_end(f, path, 16 + bytes, err);
    if (st == TB_OK) *count = (int)n;
done:
    gzclose(f);
    if (st != TB_OK) {
        free(*pixels);
        *pixels = NULL;
    }
    return st;
}

static tb_status read_idx_labels(const char *path, int32_t **labels, int *count, int classes, tb_err *err)
{
    tb_status st;
    uint8_t *raw = NULL;
    *labels = NULL;
    gzFile f = gz_open(path, err, &st);
    if (!f) return st;
    unsigned char h[8];
    st = gz_read_exact(f, h, sizeof h, path, "the 8-byte IDX label header", err);
    if (st != TB_OK) goto done;
    uint32_t magic = be32(h), n = be32(h + 4);
    if (magic != IDX_MAGIC_LABELS) {
        st = tb_fail(err, TB_EFORMAT, "%s: magic number %u (0x%08x) is not %d, an IDX file of uint8 labels", path,
                     (unsigned)magic, (unsigned)magic, IDX_MAGIC_LABELS);
        goto done;
    }
    if (n == 0 || n > IDX_MAX_COUNT) {
        st = tb_fail(err, TB_EFORMAT, "%s: label count %u is outside [1, %d]", path, (unsigned)n, IDX_MAX_COUNT);
        goto done;
    }
    raw = malloc(n);
    *labels = malloc((size_t)n * sizeof **labels);
    if (!raw || !*labels) {
        st = tb_fail(err, TB_ENOMEM, "%s: out of memory for %u labels", path, (unsigned)n);
        goto done;
    }
    char what[64];
    int k = snprintf(what, sizeof what, "%u labels", (unsigned)n);
    if (k < 0 || (size_t)k >= sizeof what) {
        st = tb_fail(err, TB_EINVAL, "%s: internal error formatting the label count", path);
        goto done;
    }
    st = gz_read_exact(f, raw, n, path, what, err);
    if (st == TB_OK) st = gz_expect_end(f, path, 8 + (size_t)n, err);
    if (st != TB_OK) goto done;
    for (uint32_t i = 0; i < n; i++) {
        if (raw[i] >= classes) {
            st = tb_fail(err, TB_EFORMAT, "%s: label %u of sample %u is outside [0, %d)", path, (unsigned)raw[i],
                         (unsigned)i, classes);
            goto done;
        }
        (*labels)[i] = raw[i];
    }
    *count = (int)n;
done:
    gzclose(f);
    free(raw);
    if (st != TB_OK) {
        free(*labels);
        *labels = NULL;
    }
    return st;
}

tb_status tb_fmnist_load(tb_dataset *out, const char *dir, const char *split, tb_err *err)
{
    memset(out, 0, sizeof *out);
    if (!dir || !*dir) dir = FMNIST_DEFAULT_DIR;
    const char *prefix;
    if (split && strcmp(split, "train") == 0)
        prefix = "train";
    else if (split && strcmp(split, "test") == 0)
        prefix = "t10k";
    else
        return tb_fail(err, TB_EINVAL, "fashion-mnist: split '%s' is not one of train, test", split ? split : "(null)");

    char img_base[64], lbl_base[64], img_path[1024], lbl_path[1024];
    tb_status st;
    int k1 = snprintf(img_base, sizeof img_base, "%s-images-idx3-ubyte", prefix);
    int k2 = snprintf(lbl_base, sizeof lbl_base, "%s-labels-idx1-ubyte", prefix);
    if (k1 < 0 || (size_t)k1 >= sizeof img_base || k2 < 0 || (size_t)k2 >= sizeof lbl_base)
        return tb_fail(err, TB_EINVAL, "fashion-mnist: internal error formatting file names");
    if ((st = idx_path(img_path, sizeof img_path, dir, img_base, err)) != TB_OK) return st;
    if ((st = idx_path(lbl_path, sizeof lbl_path, dir, lbl_base, err)) != TB_OK) return st;

    uint8_t *pixels = NULL;
    int32_t *labels = NULL;
    int n_img = 0, n_lbl = 0;
    if ((st = read_idx_images(img_path, &pixels, &n_img, err)) != TB_OK) return st;
    if ((st = read_idx_labels(lbl_path, &labels, &n_lbl, 10, err)) != TB_OK) {
        free(pixels);
        return st;
    }
    if (n_img != n_lbl) {
        free(pixels);
        free(labels);
        return tb_fail(err, TB_EFORMAT, "fashion-mnist: %s holds %d images but %s holds %d labels", img_path, n_img,
                       lbl_path, n_lbl);
    }
    const float mean = FMNIST_MEAN, std = FMNIST_STD;
    st = tb_dataset_memory(out, pixels, labels, n_img, 1, FMNIST_SIDE, FMNIST_SIDE, 10, &mean, &std, err);
    if (st != TB_OK) return st;
    out->class_names = tb_fmnist_class_names;
    return TB_OK;
}
