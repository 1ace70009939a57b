/* test_dataset.c: the in-memory dataset, subsets, the IDX reader on small
 * files written here (gzip and plain, well-formed and damaged), and the real
 * Fashion-MNIST files when Debian's dataset-fashion-mnist is installed. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "data/dataset.h"
#include "tb_fmnist.h"
#include "tb_test.h"

#define FM_MEAN 0.2860f
#define FM_STD 0.3530f
#define SIDE 28
#define PIX (SIDE * SIDE)

/* ---- a temporary directory with IDX files ---------------------------------- */

static char tmpdir[512];

static const char *const idx_names[] = {
    "train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte",
};

static void make_tmpdir(void)
{
    const char *base = getenv("TMPDIR");
    if (!base || !*base) base = "/tmp";
    int k = snprintf(tmpdir, sizeof tmpdir, "%s/tb_test_dataset_XXXXXX", base);
    ck_assert(k > 0 && (size_t)k < sizeof tmpdir);
    ck_assert_msg(mkdtemp(tmpdir) != NULL, "cannot create a temporary directory under %s", base);
}

static const char *tmp_path(const char *name, int gz)
{
    static char path[1024];
    int k = snprintf(path, sizeof path, "%s/%s%s", tmpdir, name, gz ? ".gz" : "");
    ck_assert(k > 0 && (size_t)k < sizeof path);
    return path;
}

static void remove_tmpdir(void)
{
    for (size_t i = 0; i < TB_ARRAY_LEN(idx_names); i++) {
        unlink(tmp_path(idx_names[i], 1));
        unlink(tmp_path(idx_names[i], 0));
    }
    rmdir(tmpdir);
}

static void put_be32(unsigned char *b, uint32_t v)
{
    b[0] = (unsigned char)(v >> 24);
    b[1] = (unsigned char)(v >> 16);
    b[2] = (unsigned char)(v >> 8);
    b[3] = (unsigned char)v;
}

/* Writes an IDX file: magic, dims[0..ndims), then `len` bytes of data. */
static void write_idx(const char *name, int gz, uint32_t magic, const uint32_t *dims, int ndims,
                      const uint8_t *data, size_t len)
{
    unsigned char hdr[16];
    put_be32(hdr, magic);
    for (int i = 0; i < ndims; i++) put_be32(hdr + 4 + 4 * i, dims[i]);
    size_t hlen = 4 + 4 * (size_t)ndims;
    const char *path = tmp_path(name, gz);
    if (gz) {
        gzFile f = gzopen(path, "wb");
        ck_assert_msg(f != NULL, "cannot write %s", path);
        ck_assert(gzwrite(f, hdr, (unsigned)hlen) == (int)hlen);
        if (len) ck_assert(gzwrite(f, data, (unsigned)len) == (int)len);
        ck_assert(gzclose(f) == Z_OK);
    } else {
        FILE *f = fopen(path, "wb");
        ck_assert_msg(f != NULL, "cannot write %s", path);
        ck_assert(fwrite(hdr, 1, hlen, f) == hlen);
        if (len) ck_assert(fwrite(data, 1, len, f) == len);
        ck_assert(fclose(f) == 0);
    }
}

static uint8_t pixel_of(int sample, int j) { return (uint8_t)((sample * 37 + j * 7) % 256); }

/* n images and n labels (label i % 10) under prefix ("train" or "t10k"). */
static void write_split(const char *prefix, int gz, int n_img, int n_lbl)
{
    uint8_t *px = malloc((size_t)n_img * PIX + 1);
    uint8_t *lb = malloc((size_t)n_lbl + 1);
    ck_assert(px && lb);
    for (int i = 0; i < n_img; i++)
        for (int j = 0; j < PIX; j++) px[(size_t)i * PIX + (size_t)j] = pixel_of(i, j);
    for (int i = 0; i < n_lbl; i++) lb[i] = (uint8_t)(i % 10);
    char name[64];
    uint32_t idims[3] = {(uint32_t)n_img, SIDE, SIDE}, ldims[1] = {(uint32_t)n_lbl};
    int k = snprintf(name, sizeof name, "%s-images-idx3-ubyte", prefix);
    ck_assert(k > 0 && (size_t)k < sizeof name);
    write_idx(name, gz, 2051, idims, 3, px, (size_t)n_img * PIX);
    k = snprintf(name, sizeof name, "%s-labels-idx1-ubyte", prefix);
    ck_assert(k > 0 && (size_t)k < sizeof name);
    write_idx(name, gz, 2049, ldims, 1, lb, (size_t)n_lbl);
    free(px);
    free(lb);
}

static float norm_fm(uint8_t p) { return ((float)p / 255.0f - FM_MEAN) / FM_STD; }

#define ASSERT_MSG_HAS(err, needle)                                                                            \
    ck_assert_msg(strstr((err).msg, (needle)) != NULL, "error message \"%s\" does not mention \"%s\"", (err).msg, \
                  (needle))

/* ---- IDX reader -------------------------------------------------------------- */

static void check_small_split(const char *split, int n)
{
    tb_dataset ds;
    tb_err err = {{0}};
    tb_status st = tb_fmnist_load(&ds, tmpdir, split, &err);
    ck_assert_msg(st == TB_OK, "load %s: %s", split, err.msg);
    ck_assert_int_eq(ds.count, n);
    ck_assert_int_eq(ds.channels, 1);
    ck_assert_int_eq(ds.height, SIDE);
    ck_assert_int_eq(ds.width, SIDE);
    ck_assert_int_eq(ds.classes, 10);
    ck_assert_ptr_eq(ds.class_names, tb_fmnist_class_names);
    const int32_t idx[3] = {n - 1, 0, 2};
    float *x = malloc(3 * PIX * sizeof *x);
    int32_t y[3] = {-1, -1, -1};
    ck_assert(x);
    st = ds.load(ds.ctx, idx, 3, x, y, &err);
    ck_assert_msg(st == TB_OK, "%s", err.msg);
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(y[i], idx[i] % 10);
        for (int j = 0; j < PIX; j++) {
            float want = norm_fm(pixel_of(idx[i], j));
            ck_assert_msg(x[i * PIX + j] == want, "sample %d pixel %d: %.9g, expected %.9g", idx[i], j,
                          (double)x[i * PIX + j], (double)want);
        }
    }
    /* an index out of range is an error, not a read past the end */
    const int32_t bad = n;
    st = ds.load(ds.ctx, &bad, 1, x, y, &err);
    ck_assert_int_eq(st, TB_EINVAL);
    free(x);
    tb_dataset_free(&ds);
    ck_assert_ptr_null(ds.load);
}

START_TEST(test_idx_gzip_roundtrip)
{
    make_tmpdir();
    write_split("train", 1, 12, 12);
    check_small_split("train", 12);
    remove_tmpdir();
}
END_TEST

START_TEST(test_idx_plain_roundtrip)
{
    make_tmpdir();
    write_split("t10k", 0, 7, 7);
    check_small_split("test", 7);
    remove_tmpdir();
}
END_TEST

static tb_status load_expect_fail(const char *split, tb_err *err)
{
    tb_dataset ds;
    tb_status st = tb_fmnist_load(&ds, tmpdir, split, err);
    ck_assert_msg(st != TB_OK, "loading %s succeeded, expected an error", split);
    ck_assert_ptr_null(ds.load);
    return st;
}

START_TEST(test_idx_bad_magic)
{
    for (int gz = 0; gz <= 1; gz++) {
        make_tmpdir();
        write_split("train", gz, 3, 3);
        uint8_t px[PIX] = {0};
        uint32_t dims[3] = {1, SIDE, SIDE};
        write_idx("train-images-idx3-ubyte", gz, 2049, dims, 3, px, PIX); /* labels' magic on images */
        tb_err err = {{0}};
        ck_assert_int_eq(load_expect_fail("train", &err), TB_EFORMAT);
        ASSERT_MSG_HAS(err, tmp_path("train-images-idx3-ubyte", gz));
        ASSERT_MSG_HAS(err, "magic number 2049");
        ASSERT_MSG_HAS(err, "2051");

        write_split("train", gz, 3, 3);
        uint8_t lb[3] = {0, 1, 2};
        uint32_t ldims[1] = {3};
        write_idx("train-labels-idx1-ubyte", gz, 2051, ldims, 1, lb, 3);
        ck_assert_int_eq(load_expect_fail("train", &err), TB_EFORMAT);
        ASSERT_MSG_HAS(err, tmp_path("train-labels-idx1-ubyte", gz));
        ASSERT_MSG_HAS(err, "magic number 2051");
        remove_tmpdir();
    }
}
END_TEST

START_TEST(test_idx_count_mismatch)
{
    make_tmpdir();
    write_split("train", 1, 5, 4);
    tb_err err = {{0}};
    ck_assert_int_eq(load_expect_fail("train", &err), TB_EFORMAT);
    ASSERT_MSG_HAS(err, tmp_path("train-images-idx3-ubyte", 1));
    ASSERT_MSG_HAS(err, tmp_path("train-labels-idx1-ubyte", 1));
    ASSERT_MSG_HAS(err, "5 images");
    ASSERT_MSG_HAS(err, "4 labels");
    remove_tmpdir();
}
END_TEST

START_TEST(test_idx_truncated)
{
    for (int gz = 0; gz <= 1; gz++) {
        make_tmpdir();
        write_split("train", gz, 5, 5);
        /* header promises 5 images, the file holds 3 and a half */
        uint8_t *px = calloc(5, PIX);
        ck_assert(px);
        uint32_t dims[3] = {5, SIDE, SIDE};
        write_idx("train-images-idx3-ubyte", gz, 2051, dims, 3, px, 3 * PIX + PIX / 2);
        tb_err err = {{0}};
        ck_assert_int_eq(load_expect_fail("train", &err), TB_EFORMAT);
        ASSERT_MSG_HAS(err, tmp_path("train-images-idx3-ubyte", gz));
        ASSERT_MSG_HAS(err, "truncated");

        /* labels cut inside the header */
        write_split("train", gz, 5, 5);
        uint32_t ldims[1] = {5};
        write_idx("train-labels-idx1-ubyte", gz, 2049, ldims, 0, px, 2);
        ck_assert_int_eq(load_expect_fail("train", &err), TB_EFORMAT);
        ASSERT_MSG_HAS(err, tmp_path("train-labels-idx1-ubyte", gz));
        ASSERT_MSG_HAS(err, "truncated");

        /* trailing bytes past what the header announces */
        write_split("train", gz, 5, 5);
        write_idx("train-images-idx3-ubyte", gz, 2051, dims, 3, px, 5 * PIX);
        write_idx("train-labels-idx1-ubyte", gz, 2049, ldims, 1, px, 6);
        ck_assert_int_eq(load_expect_fail("train", &err), TB_EFORMAT);
        ASSERT_MSG_HAS(err, tmp_path("train-labels-idx1-ubyte", gz));
        free(px);
        remove_tmpdir();
    }
}
END_TEST

START_TEST(test_idx_bad_shape_and_label)
{
    make_tmpdir();
    write_split("train", 1, 2, 2);
    uint8_t px[2 * 27 * SIDE] = {0};
    uint32_t dims[3] = {2, 27, SIDE};
    write_idx("train-images-idx3-ubyte", 1, 2051, dims, 3, px, sizeof px);
    tb_err err = {{0}};
    ck_assert_int_eq(load_expect_fail("train", &err), TB_EFORMAT);
    ASSERT_MSG_HAS(err, tmp_path("train-images-idx3-ubyte", 1));
    ASSERT_MSG_HAS(err, "27x28");

    write_split("train", 1, 3, 3);
    uint8_t lb[3] = {1, 10, 2};
    uint32_t ldims[1] = {3};
    write_idx("train-labels-idx1-ubyte", 1, 2049, ldims, 1, lb, 3);
    ck_assert_int_eq(load_expect_fail("train", &err), TB_EFORMAT);
    ASSERT_MSG_HAS(err, tmp_path("train-labels-idx1-ubyte", 1));
    ASSERT_MSG_HAS(err, "label 10 of sample 1");
    remove_tmpdir();
}
END_TEST

START_TEST(test_idx_missing_and_bad_split)
{
    make_tmpdir();
    tb_err err = {{0}};
    ck_assert_int_eq(load_expect_fail("train", &err), TB_EIO);
    ASSERT_MSG_HAS(err, tmp_path("train-images-idx3-ubyte", 1));
    ASSERT_MSG_HAS(err, "dataset-fashion-mnist");
    ASSERT_MSG_HAS(err, "/usr/share/datasets/fashion-mnist");

    write_split("train", 1, 2, 2);
    unlink(tmp_path("train-labels-idx1-ubyte", 1));
    ck_assert_int_eq(load_expect_fail("train", &err), TB_EIO);
    ASSERT_MSG_HAS(err, tmp_path("train-labels-idx1-ubyte", 1));

    ck_assert_int_eq(load_expect_fail("validation", &err), TB_EINVAL);
    ASSERT_MSG_HAS(err, "validation");
    remove_tmpdir();
}
END_TEST

/* ---- memory dataset and subsets ---------------------------------------------- */

static uint8_t *pattern_pixels(int count, int c, int h, int w)
{
    size_t n = (size_t)count * (size_t)c * (size_t)h * (size_t)w;
    uint8_t *p = malloc(n);
    ck_assert(p);
    for (size_t i = 0; i < n; i++) p[i] = (uint8_t)((i * 31 + 5) % 256);
    return p;
}

static int32_t *pattern_labels(int count, int classes)
{
    int32_t *l = malloc((size_t)count * sizeof *l);
    ck_assert(l);
    for (int i = 0; i < count; i++) l[i] = (i * 3) % classes;
    return l;
}

START_TEST(test_memory_normalisation)
{
    const int count = 4, c = 3, h = 2, w = 5;
    const float mean[3] = {0.485f, 0.456f, 0.406f}, std[3] = {0.229f, 0.224f, 0.225f};
    uint8_t *px = pattern_pixels(count, c, h, w);
    uint8_t *copy = malloc((size_t)count * c * h * w);
    ck_assert(copy);
    memcpy(copy, px, (size_t)count * c * h * w);
    tb_dataset ds;
    tb_err err = {{0}};
    tb_status st = tb_dataset_memory(&ds, px, pattern_labels(count, 7), count, c, h, w, 7, mean, std, &err);
    ck_assert_msg(st == TB_OK, "%s", err.msg);
    ck_assert_int_eq(ds.count, count);
    ck_assert_int_eq(ds.channels, c);
    ck_assert_int_eq(ds.height, h);
    ck_assert_int_eq(ds.width, w);
    ck_assert_int_eq(ds.classes, 7);
    const int32_t idx[2] = {3, 1};
    float x[2 * 3 * 2 * 5];
    int32_t y[2];
    ck_assert_int_eq(ds.load(ds.ctx, idx, 2, x, y, &err), TB_OK);
    for (int i = 0; i < 2; i++) {
        ck_assert_int_eq(y[i], (idx[i] * 3) % 7);
        for (int ch = 0; ch < c; ch++)
            for (int j = 0; j < h * w; j++) {
                uint8_t p = copy[((size_t)idx[i] * c + ch) * h * w + j];
                /* torchvision: ToTensor then Normalize, both float32 */
                float want = ((float)p / 255.0f - mean[ch]) / std[ch];
                float got = x[(i * c + ch) * h * w + j];
                ck_assert_msg(got == want, "sample %d channel %d pixel %d: %.9g, expected %.9g", idx[i], ch, j,
                              (double)got, (double)want);
            }
    }
    /* y may be NULL */
    ck_assert_int_eq(ds.load(ds.ctx, idx, 1, x, NULL, &err), TB_OK);
    /* NULL mean/std: plain p/255 */
    tb_dataset_free(&ds);
    st = tb_dataset_memory(&ds, pattern_pixels(1, 1, 1, 3), pattern_labels(1, 2), 1, 1, 1, 3, 2, NULL, NULL, &err);
    ck_assert_msg(st == TB_OK, "%s", err.msg);
    const int32_t zero = 0;
    ck_assert_int_eq(ds.load(ds.ctx, &zero, 1, x, y, &err), TB_OK);
    ck_assert(x[0] == 5.0f / 255.0f && x[1] == 36.0f / 255.0f && x[2] == 67.0f / 255.0f);
    tb_dataset_free(&ds);
    tb_dataset_free(&ds); /* freeing twice is harmless */
    free(copy);
}
END_TEST

START_TEST(test_memory_validation)
{
    tb_dataset ds;
    tb_err err = {{0}};
    const float one = 1.0f, zero = 0.0f;
    int32_t *lb = pattern_labels(5, 4);
    lb[3] = 4;
    ck_assert_int_eq(tb_dataset_memory(&ds, pattern_pixels(5, 1, 2, 2), lb, 5, 1, 2, 2, 4, NULL, NULL, &err),
                     TB_EINVAL);
    ASSERT_MSG_HAS(err, "label 4 of sample 3");
    ASSERT_MSG_HAS(err, "[0, 4)");
    lb = pattern_labels(5, 4);
    lb[0] = -2;
    ck_assert_int_eq(tb_dataset_memory(&ds, pattern_pixels(5, 1, 2, 2), lb, 5, 1, 2, 2, 4, NULL, NULL, &err),
                     TB_EINVAL);
    ASSERT_MSG_HAS(err, "label -2 of sample 0");
    ck_assert_int_eq(tb_dataset_memory(&ds, pattern_pixels(1, 1, 2, 2), pattern_labels(1, 4), 0, 1, 2, 2, 4, NULL,
                                       NULL, &err),
                     TB_EINVAL);
    ASSERT_MSG_HAS(err, "count 0");
    ck_assert_int_eq(tb_dataset_memory(&ds, pattern_pixels(1, 1, 2, 2), pattern_labels(1, 4), 1, 1, 0, 2, 4, NULL,
                                       NULL, &err),
                     TB_EINVAL);
    ASSERT_MSG_HAS(err, "[1, 0, 2]");
    ck_assert_int_eq(tb_dataset_memory(&ds, pattern_pixels(1, 1, 2, 2), pattern_labels(1, 4), 1, 1, 2, 2, 0, NULL,
                                       NULL, &err),
                     TB_EINVAL);
    ASSERT_MSG_HAS(err, "class count 0");
    ck_assert_int_eq(tb_dataset_memory(&ds, pattern_pixels(1, 1, 2, 2), pattern_labels(1, 4), 1, 1, 2, 2, 4, &one,
                                       &zero, &err),
                     TB_EINVAL);
    ASSERT_MSG_HAS(err, "std[0] = 0");
    ck_assert_ptr_null(ds.load);
}
END_TEST

START_TEST(test_subset)
{
    const int count = 700;
    tb_dataset base, sub;
    tb_err err = {{0}};
    ck_assert_int_eq(tb_dataset_memory(&base, pattern_pixels(count, 1, 1, 2), pattern_labels(count, 10), count, 1,
                                       1, 2, 10, NULL, NULL, &err),
                     TB_OK);
    base.class_names = tb_fmnist_class_names;
    /* reversed order, more than one 256-index chunk */
    const int n = 600;
    int32_t *idx = malloc((size_t)n * sizeof *idx);
    ck_assert(idx);
    for (int i = 0; i < n; i++) idx[i] = count - 1 - i;
    ck_assert_msg(tb_dataset_subset(&sub, &base, idx, n, &err) == TB_OK, "%s", err.msg);
    for (int i = 0; i < n; i++) idx[i] = -7; /* the subset keeps its own copy */
    ck_assert_int_eq(sub.count, n);
    ck_assert_int_eq(sub.classes, 10);
    ck_assert_int_eq(sub.height, 1);
    ck_assert_int_eq(sub.width, 2);
    ck_assert_ptr_eq(sub.class_names, tb_fmnist_class_names);

    int32_t *all = malloc((size_t)n * sizeof *all);
    float *xs = malloc((size_t)n * 2 * sizeof *xs), *xb = malloc(2 * sizeof *xb);
    int32_t *ys = malloc((size_t)n * sizeof *ys), yb;
    ck_assert(all && xs && xb && ys);
    for (int i = 0; i < n; i++) all[i] = (i * 17) % n;
    ck_assert_msg(sub.load(sub.ctx, all, n, xs, ys, &err) == TB_OK, "%s", err.msg);
    for (int i = 0; i < n; i++) {
        int32_t b = count - 1 - all[i];
        ck_assert_int_eq(base.load(base.ctx, &b, 1, xb, &yb, &err), TB_OK);
        ck_assert_int_eq(ys[i], yb);
        ck_assert(xs[2 * i] == xb[0] && xs[2 * i + 1] == xb[1]);
    }
    const int32_t bad = n;
    ck_assert_int_eq(sub.load(sub.ctx, &bad, 1, xs, ys, &err), TB_EINVAL);
    ASSERT_MSG_HAS(err, "600");

    /* a subset of a subset */
    tb_dataset sub2;
    const int32_t two[2] = {0, 599};
    ck_assert_int_eq(tb_dataset_subset(&sub2, &sub, two, 2, &err), TB_OK);
    const int32_t first_two[2] = {0, 1};
    ck_assert_int_eq(sub2.count, 2);
    ck_assert_int_eq(sub2.load(sub2.ctx, first_two, 2, xs, ys, &err), TB_OK);
    ck_assert_int_eq(ys[0], ((count - 1) * 3) % 10);
    ck_assert_int_eq(ys[1], ((count - 600) * 3) % 10);
    tb_dataset_free(&sub2);

    /* invalid subsets */
    const int32_t out_of_range[3] = {0, 700, 1};
    ck_assert_int_eq(tb_dataset_subset(&sub2, &base, out_of_range, 3, &err), TB_EINVAL);
    ASSERT_MSG_HAS(err, "index 700 at position 1");
    ck_assert_int_eq(tb_dataset_subset(&sub2, &base, two, 0, &err), TB_EINVAL);
    ck_assert_ptr_null(sub2.load);

    tb_dataset_free(&sub);
    tb_dataset_free(&base);
    free(idx);
    free(all);
    free(xs);
    free(xb);
    free(ys);
}
END_TEST

/* ---- the real Fashion-MNIST ---------------------------------------------------- */

/* The data is a dependency scripts/deps.sh installs: its absence is a broken
 * install, which must fail rather than pass. */
static void require_fmnist(void)
{
    struct stat st;
    ck_assert_msg(stat(TB_FMNIST_DIR, &st) == 0 && S_ISDIR(st.st_mode),
                  "%s is absent: install Debian's dataset-fashion-mnist (scripts/deps.sh does)", TB_FMNIST_DIR);
}

/* Reads every sample; returns class counts, the pixel sum of the first 10 and their labels. */
static void scan_split(const char *split, int expect_count, int64_t counts[10], int64_t *first10_sum,
                       int32_t first10[10], double *mean, double *sd)
{
    tb_dataset ds;
    tb_err err = {{0}};
    tb_status st = tb_fmnist_load(&ds, TB_FMNIST_DIR, split, &err);
    ck_assert_msg(st == TB_OK, "%s", err.msg);
    ck_assert_int_eq(ds.count, expect_count);
    ck_assert_int_eq(ds.channels, 1);
    ck_assert_int_eq(ds.height, 28);
    ck_assert_int_eq(ds.width, 28);
    ck_assert_int_eq(ds.classes, 10);
    ck_assert_str_eq(ds.class_names[0], "T-shirt/top");
    ck_assert_str_eq(ds.class_names[9], "Ankle boot");
    enum { B = 500 };
    int32_t idx[B], y[B];
    float *x = malloc((size_t)B * PIX * sizeof *x);
    ck_assert(x);
    double s = 0, s2 = 0;
    memset(counts, 0, 10 * sizeof *counts);
    *first10_sum = 0;
    for (int start = 0; start < ds.count; start += B) {
        int n = ds.count - start < B ? ds.count - start : B;
        for (int i = 0; i < n; i++) idx[i] = start + i;
        ck_assert_msg(ds.load(ds.ctx, idx, n, x, y, &err) == TB_OK, "%s", err.msg);
        for (int i = 0; i < n; i++) {
            ck_assert(y[i] >= 0 && y[i] < 10);
            counts[y[i]]++;
            if (start + i < 10) first10[start + i] = y[i];
            for (int j = 0; j < PIX; j++) {
                double v = x[(size_t)i * PIX + (size_t)j];
                s += v;
                s2 += v * v;
                if (start + i < 10) *first10_sum += lround((v * FM_STD + FM_MEAN) * 255.0);
            }
        }
    }
    double total = (double)ds.count * PIX;
    *mean = s / total;
    *sd = sqrt(s2 / total - *mean * *mean);
    free(x);
    tb_dataset_free(&ds);
}

START_TEST(test_fmnist_real)
{
    require_fmnist();
    int64_t counts[10], sum10;
    int32_t first10[10];
    double mean, sd;

    scan_split("train", 60000, counts, &sum10, first10, &mean, &sd);
    for (int c = 0; c < 10; c++) ck_assert_msg(counts[c] == 6000, "train class %d has %lld samples", c, (long long)counts[c]);
    /* first ten labels and pixel sum, as torchvision's FashionMNIST reads them; the sums from
     * numpy: np.frombuffer(gzip.open(f"{dir}/train-images-idx3-ubyte.gz").read()[16:], np.uint8)
     *        .reshape(-1, 784)[:10].sum()  (589804; t10k: 445876) */
    static const int32_t train10[10] = {9, 0, 0, 3, 0, 2, 7, 2, 5, 5};
    for (int i = 0; i < 10; i++) ck_assert_int_eq(first10[i], train10[i]);
    ck_assert_int_eq(sum10, 589804);
    /* normalised with the training set's own statistics: mean ~0, std ~1 */
    ck_assert_msg(fabs(mean) < 2e-3 && fabs(sd - 1.0) < 2e-3, "train mean %g std %g", mean, sd);

    scan_split("test", 10000, counts, &sum10, first10, &mean, &sd);
    for (int c = 0; c < 10; c++) ck_assert_msg(counts[c] == 1000, "test class %d has %lld samples", c, (long long)counts[c]);
    static const int32_t test10[10] = {9, 2, 1, 1, 6, 1, 4, 6, 5, 7};
    for (int i = 0; i < 10; i++) ck_assert_int_eq(first10[i], test10[i]);
    ck_assert_int_eq(sum10, 445876);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("dataset");
    TCase *idx = tcase_create("idx");
    tcase_add_test(idx, test_idx_gzip_roundtrip);
    tcase_add_test(idx, test_idx_plain_roundtrip);
    tcase_add_test(idx, test_idx_bad_magic);
    tcase_add_test(idx, test_idx_count_mismatch);
    tcase_add_test(idx, test_idx_truncated);
    tcase_add_test(idx, test_idx_bad_shape_and_label);
    tcase_add_test(idx, test_idx_missing_and_bad_split);
    suite_add_tcase(s, idx);
    TCase *mem = tcase_create("memory");
    tcase_add_test(mem, test_memory_normalisation);
    tcase_add_test(mem, test_memory_validation);
    tcase_add_test(mem, test_subset);
    suite_add_tcase(s, mem);
    TCase *real = tcase_create("fashion-mnist");
    tcase_set_timeout(real, 300);
    tcase_add_test(real, test_fmnist_real);
    suite_add_tcase(s, real);
    return s;
}

int main(void) { return tbt_run(suite()); }
