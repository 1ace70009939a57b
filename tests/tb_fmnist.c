/* tb_fmnist.c: a Fashion-MNIST reader for the tests (the IDX files of
 * Debian's dataset-fashion-mnist), independent of the fashion_mnist task
 * plugin, so tests can hold the plugin and the task pipeline against it. */
#include "tb_fmnist.h"

#include <errno.h>
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
