/* test_task_plugins.c: the task plugins cifar10, hdf5 and fashion_mnist,
 * loaded through the plugin loader (tb_plugin_load_file, options from a
 * tb_config, tb_plugin_open_task) on files written here: a small CIFAR-10
 * binary release (50 records per training file, 30 in the test file) and
 * HDF5 files with x/y/split/class_names (uint8 and float32 images, index
 * datasets, fixed-length names), plus damaged variants whose messages are
 * checked. The real Fashion-MNIST is read when Debian's dataset-fashion-mnist
 * is installed (else the test says why it skips). */
#include <errno.h>
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/common.h"
#include "base/config.h"
#include "host/plugin.h"
#include "run/run.h"
#include "data/task.h"
#include "tb_fmnist.h"
#include "tb_test.h"

/* ---- temporary files ---------------------------------------------------------- */

static char g_tmp[512];

static void make_tmp(void)
{
    const char *base = getenv("TMPDIR");
    if (!base || !*base) base = "/tmp";
    snprintf(g_tmp, sizeof g_tmp, "%s/tb_test_task_plugins_XXXXXX", base);
    ck_assert_msg(mkdtemp(g_tmp) != NULL, "cannot create a temporary directory under %s", base);
}

static const char *tmp_path(const char *name)
{
    static char path[4][1024];
    static int slot;
    slot = (slot + 1) % 4;
    snprintf(path[slot], sizeof path[slot], "%s/%s", g_tmp, name);
    return path[slot];
}

/* rm -r of what this test writes (two levels deep at most) */
static void remove_tree(const char *dir)
{
    char cmd[1200];
    /* plain C, no shell: walk with a fixed list of names this test uses */
    static const char *const names[] = {"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin",
                                        "data_batch_4.bin", "data_batch_5.bin", "test_batch.bin",
                                        "batches.meta.txt"};
    for (size_t i = 0; i < TB_ARRAY_LEN(names); i++) {
        snprintf(cmd, sizeof cmd, "%s/cifar-10-batches-bin/%s", dir, names[i]);
        unlink(cmd);
        snprintf(cmd, sizeof cmd, "%s/flat/%s", dir, names[i]);
        unlink(cmd);
    }
    snprintf(cmd, sizeof cmd, "%s/cifar-10-batches-bin", dir);
    rmdir(cmd);
    snprintf(cmd, sizeof cmd, "%s/flat", dir);
    rmdir(cmd);
    static const char *const files[] = {"u8.h5", "f32.h5", "idx.h5", "fixed.h5", "bad_type.h5", "bad_rank.h5",
                                        "bad_y.h5", "bad_split.h5", "not_hdf5.h5", "empty_fmnist", "small.h5"};
    for (size_t i = 0; i < TB_ARRAY_LEN(files); i++) {
        unlink(tmp_path(files[i]));
        rmdir(tmp_path(files[i]));
    }
    rmdir(dir);
}

/* ---- opening a task through the loader ---------------------------------------------- */

/* Loads <plugin>.so, sets "<plugin>.<key>=<value>" for each of settings
 * (NULL-terminated "key=value"), resolves the options and opens the task. */
static tb_status open_task(const char *name, const char *const *settings, tb_task_data *out, tb_err *err)
{
    tb_plugin_registry reg;
    memset(&reg, 0, sizeof reg);
    char file[1024];
    snprintf(file, sizeof file, "%s/%s.so", TB_PLUGIN_BUILD_DIR, name);
    tb_status st = tb_plugin_load_file(&reg, file, err);
    ck_assert_msg(st == TB_OK, "loading %s: %s", file, err->msg);
    const tb_plugin *plugin = NULL;
    st = tb_plugin_find(&reg, TB_PLUGIN_TASK, name, &plugin, err);
    ck_assert_msg(st == TB_OK, "finding %s: %s", name, err->msg);
    tb_config *cfg = tb_config_new();
    ck_assert_ptr_nonnull(cfg);
    for (int i = 0; settings && settings[i]; i++) {
        char key[256];
        const char *eq = strchr(settings[i], '=');
        ck_assert_ptr_nonnull(eq);
        snprintf(key, sizeof key, "%s.%.*s", name, (int)(eq - settings[i]), settings[i]);
        ck_assert_msg(tb_config_set(cfg, key, eq + 1, err) == TB_OK, "%s", err->msg);
    }
    tb_plugin_args *args = NULL;
    st = tb_plugin_args_resolve(plugin, cfg, name, &args, err);
    ck_assert_msg(st == TB_OK, "resolving options of %s: %s", name, err->msg);
    memset(out, 0, sizeof *out);
    st = tb_plugin_open_task(plugin, args, out, err);
    tb_plugin_args_free(args);
    tb_config_free(cfg);
    tb_plugins_free(&reg);
    return st;
}

static void open_ok(const char *name, const char *const *settings, tb_task_data *out)
{
    tb_err err = {{0}};
    tb_status st = open_task(name, settings, out, &err);
    ck_assert_msg(st == TB_OK, "%s: open_task failed (%s): %s", name, tb_status_name(st), err.msg);
}

static void open_fails(const char *name, const char *const *settings, tb_status code, const char *needle1,
                       const char *needle2)
{
    tb_err err = {{0}};
    tb_task_data d;
    tb_status st = open_task(name, settings, &d, &err);
    ck_assert_msg(st == code, "%s: status %s, expected %s (%s)", name, tb_status_name(st), tb_status_name(code),
                  err.msg);
    ck_assert_msg(strstr(err.msg, needle1) != NULL, "message '%s' lacks '%s'", err.msg, needle1);
    if (needle2) ck_assert_msg(strstr(err.msg, needle2) != NULL, "message '%s' lacks '%s'", err.msg, needle2);
    ck_assert(d.pixels == NULL && d.labels == NULL);
}

/* ---- CIFAR-10 ------------------------------------------------------------------------- */

#define CIFAR_TRAIN_PER_FILE 50
#define CIFAR_TEST 30
#define CIFAR_TOTAL (5 * CIFAR_TRAIN_PER_FILE + CIFAR_TEST)

static const char *const cifar_files[6] = {"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin",
                                           "data_batch_4.bin", "data_batch_5.bin", "test_batch.bin"};

static int cifar_label(int file, int rec) { return (file * 7 + rec * 3) % 10; }
static uint8_t cifar_pixel(int file, int rec, int j) { return (uint8_t)((file * 31 + rec * 17 + j * 13 + (j >> 10) * 5) & 255); }

/* Writes the release into dir (created); bad: 0 fine, 1 truncate file 2, 2 label 10 in test_batch */
static void write_cifar(const char *dir, int bad)
{
    mkdir(dir, 0700);
    unsigned char rec[3073];
    for (int f = 0; f < 6; f++) {
        char path[1200];
        snprintf(path, sizeof path, "%s/%s", dir, cifar_files[f]);
        FILE *fp = fopen(path, "wb");
        ck_assert_msg(fp != NULL, "cannot write %s: %s", path, strerror(errno));
        int n = f < 5 ? CIFAR_TRAIN_PER_FILE : CIFAR_TEST;
        for (int r = 0; r < n; r++) {
            rec[0] = (unsigned char)cifar_label(f, r);
            if (bad == 2 && f == 5 && r == 7) rec[0] = 10;
            for (int j = 0; j < 3072; j++) rec[1 + j] = cifar_pixel(f, r, j);
            size_t len = bad == 1 && f == 1 && r == n - 1 ? 3000 : sizeof rec;
            ck_assert(fwrite(rec, 1, len, fp) == len);
        }
        ck_assert(fclose(fp) == 0);
    }
}

START_TEST(test_cifar10)
{
    make_tmp();
    write_cifar(tmp_path("cifar-10-batches-bin"), 0);
    /* path = the parent: the plugin finds cifar-10-batches-bin/ */
    const char *settings[] = {NULL, NULL};
    char set[1100];
    snprintf(set, sizeof set, "path=%s", g_tmp);
    settings[0] = set;
    tb_task_data d;
    open_ok("cifar10", settings, &d);
    ck_assert_int_eq(d.count, CIFAR_TOTAL);
    ck_assert_int_eq(d.channels, 3);
    ck_assert_int_eq(d.height, 32);
    ck_assert_int_eq(d.width, 32);
    ck_assert_int_eq(d.classes, 10);
    for (int f = 0, i = 0; f < 6; f++) {
        int n = f < 5 ? CIFAR_TRAIN_PER_FILE : CIFAR_TEST;
        for (int r = 0; r < n; r++, i++) {
            ck_assert_int_eq(d.labels[i], cifar_label(f, r));
            ck_assert_int_eq(d.splits[i], f < 5 ? TB_SPLIT_TRAIN : TB_SPLIT_TEST);
            for (int j = 0; j < 3072; j += 97)
                ck_assert_msg(d.pixels[(size_t)i * 3072 + j] == cifar_pixel(f, r, j), "file %d record %d byte %d", f,
                              r, j);
        }
    }
    ck_assert_ptr_nonnull(d.class_names);
    ck_assert_str_eq(d.class_names[0], "airplane");
    ck_assert_str_eq(d.class_names[9], "truck");
    ck_assert_int_eq(d.has_norm, 1);
    ck_assert(fabsf(d.mean[0] - 0.4914f) < 1e-6f && fabsf(d.std[2] - 0.2616f) < 1e-6f);
    ck_assert(strstr(d.source, "cifar-10-batches-bin") != NULL);

    /* through the pipeline: carved validation, the task's normalisation */
    tb_task t;
    tb_task_options o;
    memset(&o, 0, sizeof o);
    o.val_fraction = 0.2;
    o.split_seed = 3;
    o.crop_padding = 4;
    o.hflip = 1;
    tb_err err = {{0}};
    ck_assert_msg(tb_task_prepare(&t, &d, &o, &err) == TB_OK, "%s", err.msg);
    ck_assert_int_eq(t.n_train, 200);
    ck_assert_int_eq(t.n_val, 50);
    ck_assert_int_eq(t.n_test, 30);
    ck_assert(fabsf(t.mean[1] - 0.4822f) < 1e-6f);
    ck_assert_str_eq(t.test.class_names[3], "cat");
    tb_task_free(&t);

    /* class names from batches.meta.txt (blank lines skipped), path = the folder itself */
    FILE *fp = fopen(tmp_path("cifar-10-batches-bin/batches.meta.txt"), "w");
    ck_assert(fp != NULL);
    fputs("plane\ncar\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n\n", fp);
    ck_assert(fclose(fp) == 0);
    snprintf(set, sizeof set, "path=%s", tmp_path("cifar-10-batches-bin"));
    open_ok("cifar10", settings, &d);
    ck_assert_int_eq(d.count, CIFAR_TOTAL);
    ck_assert_str_eq(d.class_names[0], "plane");
    ck_assert_str_eq(d.class_names[1], "car");
    ck_assert_str_eq(d.class_names[9], "truck");
    tb_task_data_free(&d);

    /* a meta file with too few names */
    fp = fopen(tmp_path("cifar-10-batches-bin/batches.meta.txt"), "w");
    ck_assert(fp != NULL);
    fputs("plane\ncar\n", fp);
    ck_assert(fclose(fp) == 0);
    open_fails("cifar10", settings, TB_EFORMAT, "batches.meta.txt has 2 class names", NULL);
    remove_tree(g_tmp);
}
END_TEST

START_TEST(test_cifar10_errors)
{
    make_tmp();
    char set[1100];
    const char *settings[] = {set, NULL};
    snprintf(set, sizeof set, "path=%s", tmp_path("flat"));

    write_cifar(tmp_path("flat"), 1);
    open_fails("cifar10", settings, TB_EFORMAT, "data_batch_2.bin: size", "not a positive multiple of 3073");

    write_cifar(tmp_path("flat"), 2);
    open_fails("cifar10", settings, TB_EFORMAT, "test_batch.bin: record 7 has label 10", NULL);

    write_cifar(tmp_path("flat"), 0);
    unlink(tmp_path("flat/data_batch_3.bin"));
    open_fails("cifar10", settings, TB_EIO, "data_batch_3.bin", "No such file");

    snprintf(set, sizeof set, "path=%s", tmp_path("nowhere"));
    open_fails("cifar10", settings, TB_EIO, "nowhere", "binary release");

    /* path is required */
    tb_plugin_registry reg;
    memset(&reg, 0, sizeof reg);
    tb_err err = {{0}};
    ck_assert(tb_plugin_load_file(&reg, TB_PLUGIN_BUILD_DIR "/cifar10.so", &err) == TB_OK);
    tb_config *cfg = tb_config_new();
    tb_plugin_args *args = NULL;
    ck_assert(tb_plugin_args_resolve(&reg.plugins[0], cfg, "cifar10", &args, &err) != TB_OK);
    ck_assert_msg(strstr(err.msg, "path") != NULL, "%s", err.msg);
    tb_plugin_args_free(args);
    tb_config_free(cfg);
    tb_plugins_free(&reg);
    remove_tree(g_tmp);
}
END_TEST

/* ---- HDF5 ---------------------------------------------------------------------------------- */

#define H_N 40
#define H_C 3
#define H_H 8
#define H_W 6
#define H_SAMPLE (H_C * H_H * H_W)

static uint8_t h_pixel(int i, int j) { return (uint8_t)((i * 29 + j * 7 + (i ^ j)) & 255); }
static int h_label(int i) { return (i * 3) % 4; }
static int h_split(int i) { return i % 5 == 3 ? 1 : i % 5 == 4 ? 2 : 0; }
static const char *const h_names[4] = {"cat", "dog", "bird", "fish"};

static void h5_write(hid_t f, const char *name, hid_t type, int rank, const hsize_t *dims, const void *data)
{
    hid_t sp = H5Screate_simple(rank, dims, NULL);
    ck_assert(sp >= 0);
    hid_t d = H5Dcreate2(f, name, type, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    ck_assert_msg(d >= 0, "cannot create dataset %s", name);
    ck_assert(H5Dwrite(d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0);
    H5Dclose(d);
    H5Sclose(sp);
}

enum { X_U8, X_F32, X_I16, X_RANK3 };

/* x, y (int16), and optionally split (uint8) and class_names (variable-length UTF-8, or fixed length) */
static void write_h5(const char *path, int xkind, int with_split, int names_kind, int y_len)
{
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    ck_assert_msg(f >= 0, "cannot create %s", path);
    hsize_t dims[4] = {H_N, H_C, H_H, H_W};
    if (xkind == X_U8 || xkind == X_RANK3) {
        uint8_t *x = malloc(H_N * H_SAMPLE);
        for (int i = 0; i < H_N; i++)
            for (int j = 0; j < H_SAMPLE; j++) x[i * H_SAMPLE + j] = h_pixel(i, j);
        if (xkind == X_RANK3) {
            hsize_t d3[3] = {H_N, H_C * H_H, H_W};
            h5_write(f, "x", H5T_NATIVE_UINT8, 3, d3, x);
        } else {
            h5_write(f, "x", H5T_NATIVE_UINT8, 4, dims, x);
        }
        free(x);
    } else if (xkind == X_F32) {
        float *x = malloc(sizeof(float) * H_N * H_SAMPLE);
        for (int i = 0; i < H_N; i++)
            for (int j = 0; j < H_SAMPLE; j++) x[i * H_SAMPLE + j] = (float)h_pixel(i, j) / 255.0f;
        x[0] = -0.25f; /* kept as given (issue 11: float32 trains as float32, no clipping) */
        x[1] = 1.5f;
        h5_write(f, "x", H5T_NATIVE_FLOAT, 4, dims, x);
        free(x);
    } else {
        int16_t *x = calloc(H_N * H_SAMPLE, sizeof *x);
        h5_write(f, "x", H5T_NATIVE_INT16, 4, dims, x);
        free(x);
    }
    int16_t y[H_N];
    for (int i = 0; i < H_N; i++) y[i] = (int16_t)h_label(i);
    hsize_t ny = (hsize_t)y_len;
    h5_write(f, "y", H5T_NATIVE_INT16, 1, &ny, y);
    if (with_split) {
        uint8_t s[H_N];
        for (int i = 0; i < H_N; i++) s[i] = (uint8_t)h_split(i);
        if (with_split == 2) s[11] = 3;
        hsize_t n = H_N;
        h5_write(f, "split", H5T_NATIVE_UINT8, 1, &n, s);
    }
    hsize_t nn = 4;
    if (names_kind == 1) {
        hid_t t = H5Tcopy(H5T_C_S1);
        H5Tset_size(t, H5T_VARIABLE);
        H5Tset_cset(t, H5T_CSET_UTF8);
        h5_write(f, "class_names", t, 1, &nn, h_names);
        H5Tclose(t);
    } else if (names_kind == 2) {
        char fixed[4][8];
        memset(fixed, 0, sizeof fixed);
        for (int i = 0; i < 4; i++) memcpy(fixed[i], h_names[i], strlen(h_names[i]));
        hid_t t = H5Tcopy(H5T_C_S1);
        H5Tset_size(t, 8);
        H5Tset_strpad(t, H5T_STR_NULLPAD);
        h5_write(f, "class_names", t, 1, &nn, fixed);
        H5Tclose(t);
    }
    H5Fclose(f);
}

static void check_h5_task(const tb_task_data *d, int with_split, int f32)
{
    ck_assert_int_eq(d->count, H_N);
    ck_assert_int_eq(d->channels, H_C);
    ck_assert_int_eq(d->height, H_H);
    ck_assert_int_eq(d->width, H_W);
    ck_assert_int_eq(d->classes, 4);
    ck_assert_int_eq(d->has_norm, 0);
    for (int i = 0; i < H_N; i++) {
        ck_assert_int_eq(d->labels[i], h_label(i));
        ck_assert_int_eq(d->splits[i], with_split ? h_split(i) : TB_SPLIT_TRAIN);
        for (int j = 0; j < H_SAMPLE; j++) {
            if (f32) { /* issue 11: the float32 values as stored, bit for bit (was round(v * 255), clipped) */
                float e = (float)h_pixel(i, j) / 255.0f;
                if (i == 0 && j == 0) e = -0.25f;
                if (i == 0 && j == 1) e = 1.5f;
                ck_assert_ptr_null(d->pixels);
                ck_assert_msg(memcmp(&d->pixels_f32[i * H_SAMPLE + j], &e, sizeof e) == 0,
                              "sample %d value %d: %.9g, expected %.9g", i, j, (double)d->pixels_f32[i * H_SAMPLE + j],
                              (double)e);
                continue;
            }
            int e = h_pixel(i, j);
            ck_assert_msg(d->pixels[i * H_SAMPLE + j] == e, "sample %d byte %d: %u, expected %d", i, j,
                          (unsigned)d->pixels[i * H_SAMPLE + j], e);
        }
    }
}

START_TEST(test_hdf5)
{
    make_tmp();
    char set[1100];
    const char *settings[] = {set, NULL, NULL};

    /* uint8 images, split, variable-length names */
    write_h5(tmp_path("u8.h5"), X_U8, 1, 1, H_N);
    snprintf(set, sizeof set, "path=%s", tmp_path("u8.h5"));
    tb_task_data d;
    open_ok("hdf5", settings, &d);
    check_h5_task(&d, 1, 0);
    ck_assert_ptr_nonnull(d.class_names);
    for (int c = 0; c < 4; c++) ck_assert_str_eq(d.class_names[c], h_names[c]);
    ck_assert_str_eq(d.source, tmp_path("u8.h5"));
    tb_task t;
    tb_task_options o;
    memset(&o, 0, sizeof o);
    tb_err err = {{0}};
    ck_assert_msg(tb_task_prepare(&t, &d, &o, &err) == TB_OK, "%s", err.msg);
    ck_assert_int_eq(t.n_train, 24);
    ck_assert_int_eq(t.n_val, 8);
    ck_assert_int_eq(t.n_test, 8);
    tb_task_free(&t);

    /* float32 images (two outside [0, 1], kept), no split, fixed-length names, classes given */
    write_h5(tmp_path("f32.h5"), X_F32, 0, 2, H_N);
    snprintf(set, sizeof set, "path=%s", tmp_path("f32.h5"));
    settings[1] = "classes=4";
    open_ok("hdf5", settings, &d);
    check_h5_task(&d, 0, 1);
    ck_assert_str_eq(d.class_names[2], "bird");
    tb_task_data_free(&d);
    settings[1] = "classes=7";
    open_fails("hdf5", settings, TB_EFORMAT, "has 4 names, but classes = 7", NULL);
    settings[1] = NULL;

    /* no class names: classes = max label + 1, names NULL */
    write_h5(tmp_path("idx.h5"), X_U8, 0, 0, H_N);
    snprintf(set, sizeof set, "path=%s", tmp_path("idx.h5"));
    open_ok("hdf5", settings, &d);
    ck_assert_int_eq(d.classes, 4);
    ck_assert_ptr_null(d.class_names);
    tb_task_data_free(&d);
    settings[1] = "classes=9";
    open_ok("hdf5", settings, &d);
    ck_assert_int_eq(d.classes, 9);
    tb_task_data_free(&d);
    settings[1] = NULL;

    /* index datasets: train 0..19, test 30..39 as int64, val as uint16; 20..24 and 29 left out */
    hid_t f = H5Fopen(tmp_path("idx.h5"), H5F_ACC_RDWR, H5P_DEFAULT);
    ck_assert(f >= 0);
    int64_t tr[20], te[10];
    uint16_t va[4] = {28, 27, 26, 25};
    for (int i = 0; i < 20; i++) tr[i] = i;
    for (int i = 0; i < 10; i++) te[i] = 39 - i;
    hsize_t n20 = 20, n10 = 10, n4 = 4;
    h5_write(f, "train_idx", H5T_NATIVE_INT64, 1, &n20, tr);
    h5_write(f, "test_idx", H5T_NATIVE_INT64, 1, &n10, te);
    h5_write(f, "val_idx", H5T_NATIVE_UINT16, 1, &n4, va);
    H5Fclose(f);
    open_ok("hdf5", settings, &d);
    ck_assert_int_eq(d.count, 34);
    int counts[3] = {0, 0, 0};
    for (int i = 0; i < d.count; i++) counts[d.splits[i]]++;
    ck_assert_int_eq(counts[0], 20);
    ck_assert_int_eq(counts[1], 4);
    ck_assert_int_eq(counts[2], 10);
    /* kept in file order: sample 20 of the result is file sample 25 (val) */
    ck_assert_int_eq(d.splits[20], TB_SPLIT_VAL);
    ck_assert_int_eq(d.labels[20], h_label(25));
    ck_assert_int_eq(d.pixels[20 * H_SAMPLE + 5], h_pixel(25, 5));
    ck_assert_int_eq(d.labels[33], h_label(39));
    tb_task_data_free(&d);

    /* dataset names as options */
    settings[1] = "split=nope";
    open_fails("hdf5", settings, TB_EFORMAT, "no dataset 'nope' (option split)", NULL);
    settings[1] = "x=images";
    open_fails("hdf5", settings, TB_EFORMAT, "no dataset 'images' (option x", NULL);
    settings[1] = NULL;
    remove_tree(g_tmp);
}
END_TEST

START_TEST(test_hdf5_errors)
{
    make_tmp();
    char set[1100];
    const char *settings[] = {set, NULL};

    write_h5(tmp_path("bad_type.h5"), X_I16, 1, 0, H_N);
    snprintf(set, sizeof set, "path=%s", tmp_path("bad_type.h5"));
    open_fails("hdf5", settings, TB_EFORMAT, "'x' (int16, 40 x 3 x 8 x 6)", "accepted: uint8 or float32");

    write_h5(tmp_path("bad_rank.h5"), X_RANK3, 1, 0, H_N);
    snprintf(set, sizeof set, "path=%s", tmp_path("bad_rank.h5"));
    open_fails("hdf5", settings, TB_EFORMAT, "'x' (uint8, 40 x 24 x 6) has rank 3", "N x C x H x W");

    write_h5(tmp_path("bad_y.h5"), X_U8, 1, 0, H_N - 1);
    snprintf(set, sizeof set, "path=%s", tmp_path("bad_y.h5"));
    open_fails("hdf5", settings, TB_EFORMAT, "'y' (int16, 39) has 39 entries, x has 40 samples", NULL);

    write_h5(tmp_path("bad_split.h5"), X_U8, 2, 0, H_N);
    snprintf(set, sizeof set, "path=%s", tmp_path("bad_split.h5"));
    open_fails("hdf5", settings, TB_EFORMAT, "has 3 at sample 11", "0 train, 1 validation, 2 test");

    FILE *fp = fopen(tmp_path("not_hdf5.h5"), "w");
    ck_assert(fp != NULL);
    fputs("plain text\n", fp);
    ck_assert(fclose(fp) == 0);
    snprintf(set, sizeof set, "path=%s", tmp_path("not_hdf5.h5"));
    open_fails("hdf5", settings, TB_EFORMAT, "not_hdf5.h5: cannot open as an HDF5 file", NULL);

    snprintf(set, sizeof set, "path=%s", tmp_path("missing.h5"));
    open_fails("hdf5", settings, TB_EIO, "missing.h5", "No such file");
    remove_tree(g_tmp);
}
END_TEST

/* ---- issue 11: data the hdf5 task must refuse, and float32 kept as float32 ------------------ */

/* A file with float32 x [n, 1, 2, 2] = xs (NULL: v = 0.3 + i/100) and y, as given. */
static void write_small(const char *path, int n, const float *xs, hid_t ytype, const void *y)
{
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    ck_assert(f >= 0);
    float *x = malloc(sizeof(float) * (size_t)n * 4);
    for (int i = 0; i < n * 4; i++) x[i] = xs ? xs[i] : 0.3f + (float)i / 100.0f;
    hsize_t dims[4] = {(hsize_t)n, 1, 2, 2}, ny = (hsize_t)n;
    h5_write(f, "x", H5T_NATIVE_FLOAT, 4, dims, x);
    h5_write(f, "y", ytype, 1, &ny, y);
    free(x);
    H5Fclose(f);
}

START_TEST(test_hdf5_refusals)
{
    make_tmp();
    char set[1100];
    const char *settings[] = {set, NULL, NULL};
    snprintf(set, sizeof set, "path=%s", tmp_path("small.h5"));
    int32_t y[6] = {0, 1, 0, 1, 0, 1};
    float x[24];
    for (int i = 0; i < 24; i++) x[i] = 0.5f;

    /* non-finite and out-of-range float32 values: the first one, by sample and position */
    x[9] = INFINITY;
    write_small(tmp_path("small.h5"), 6, x, H5T_NATIVE_INT32, y);
    open_fails("hdf5", settings, TB_EFORMAT, "has Inf (inf) at sample 2, value 1 of the sample", "finite");
    x[9] = 1e30f;
    x[21] = NAN;
    write_small(tmp_path("small.h5"), 6, x, H5T_NATIVE_INT32, y);
    open_fails("hdf5", settings, TB_EFORMAT, "outside [-1e6, 1e6] (1e+30) at sample 2, value 1", NULL);
    x[9] = -INFINITY;
    write_small(tmp_path("small.h5"), 6, x, H5T_NATIVE_INT32, y);
    open_fails("hdf5", settings, TB_EFORMAT, "has -Inf (-inf) at sample 2", NULL);
    x[9] = 0.5f;
    write_small(tmp_path("small.h5"), 6, x, H5T_NATIVE_INT32, y);
    open_fails("hdf5", settings, TB_EFORMAT, "has NaN (nan) at sample 5, value 1", NULL);
    x[21] = 0.5f;

    /* one stray label with classes unset: an error naming it and its sample, not a 1,000,000-class model */
    y[4] = 999999;
    write_small(tmp_path("small.h5"), 6, x, H5T_NATIVE_INT32, y);
    open_fails("hdf5", settings, TB_EFORMAT, "label 999999 at sample 4", "above the limit of 65536");
    /* with classes given: the first label out of range and its sample */
    settings[1] = "classes=2";
    open_fails("hdf5", settings, TB_EFORMAT, "label 999999 at sample 4, but classes = 2", NULL);
    settings[1] = NULL;
    y[4] = 0;

    /* the largest int64 label: the guess it would give is printed, not overflowed (found by fuzz_hdf5_task) */
    int64_t y64[6] = {0, 1, INT64_MAX, 1, 0, 1};
    write_small(tmp_path("small.h5"), 6, x, H5T_NATIVE_INT64, y64);
    open_fails("hdf5", settings, TB_EFORMAT, "label 9223372036854775807 at sample 2",
               "guessed as 9223372036854775808 (the largest label + 1)");

    /* a label of 2^64 - 1 is named as it is, not as INT64_MAX */
    uint64_t yu[6] = {0, 1, 0, UINT64_MAX, 0, 1};
    write_small(tmp_path("small.h5"), 6, x, H5T_NATIVE_UINT64, yu);
    open_fails("hdf5", settings, TB_EFORMAT, "18446744073709551615 at position 3", NULL);

    /* a duplicate inside train_idx names the dataset once, with both positions */
    write_small(tmp_path("small.h5"), 6, x, H5T_NATIVE_INT32, y);
    hid_t f = H5Fopen(tmp_path("small.h5"), H5F_ACC_RDWR, H5P_DEFAULT);
    int32_t tr[4] = {0, 1, 2, 1};
    hsize_t n4 = 4;
    h5_write(f, "train_idx", H5T_NATIVE_INT32, 1, &n4, tr);
    H5Fclose(f);
    open_fails("hdf5", settings, TB_EFORMAT, "sample 1 is listed twice in dataset 'train_idx'", "positions 1 and 3");
    remove_tree(g_tmp);
}
END_TEST

START_TEST(test_hdf5_float_kept)
{
    make_tmp();
    char set[1100];
    const char *settings[] = {set, NULL, NULL};
    snprintf(set, sizeof set, "path=%s", tmp_path("small.h5"));
    /* values whose uint8 rounding differs from them: 0.3 * 255 = 76.5 -> 76 (0.298...) */
    int32_t y[6] = {0, 1, 0, 1, 0, 2};
    write_small(tmp_path("small.h5"), 6, NULL, H5T_NATIVE_INT32, y);
    tb_task_data d;
    open_ok("hdf5", settings, &d);
    ck_assert_ptr_null(d.pixels);
    ck_assert_ptr_nonnull(d.pixels_f32);
    ck_assert_int_eq(d.classes, 3);
    ck_assert_int_eq(d.classes_guessed, 1); /* max label + 1 */
    for (int i = 0; i < 24; i++) ck_assert_float_eq(d.pixels_f32[i], 0.3f + (float)i / 100.0f);

    /* the core trains the values as given: with mean 0.1, std 2, x = (v - 0.1) / 2 in float32 */
    tb_task t;
    tb_task_options o;
    memset(&o, 0, sizeof o);
    o.has_norm = 1;
    o.mean[0] = 0.1f;
    o.std[0] = 2.0f;
    tb_err err = {{0}};
    ck_assert_msg(tb_task_prepare(&t, &d, &o, &err) == TB_OK, "%s", err.msg);
    ck_assert_int_eq(t.train.count, 6);
    float xb[24];
    int32_t idx[6] = {0, 1, 2, 3, 4, 5}, yb[6];
    ck_assert(t.train.load(t.train.ctx, idx, 6, xb, yb, &err) == TB_OK);
    for (int i = 0; i < 24; i++) {
        const float v = 0.3f + (float)i / 100.0f, e = (v - 0.1f) / 2.0f;
        const float u8 = ((float)rintf(v * 255.0f) / 255.0f - 0.1f) / 2.0f; /* what the uint8 rounding gave */
        ck_assert_msg(memcmp(&xb[i], &e, sizeof e) == 0, "value %d: %.9g, expected %.9g", i, (double)xb[i],
                      (double)e);
        if (i == 0) ck_assert_float_ne(xb[i], u8);
    }
    tb_task_free(&t);

    /* classes given: not guessed */
    settings[1] = "classes=3";
    open_ok("hdf5", settings, &d);
    ck_assert_int_eq(d.classes_guessed, 0);
    tb_task_data_free(&d);
    remove_tree(g_tmp);
}
END_TEST

/* A string attribute of the run file (malloc'd). */
static char *attr_string(const char *file, const char *group, const char *name)
{
    hid_t f = H5Fopen(file, H5F_ACC_RDONLY, H5P_DEFAULT);
    ck_assert_msg(f >= 0, "%s", file);
    hid_t a = H5Aopen_by_name(f, group, name, H5P_DEFAULT, H5P_DEFAULT);
    ck_assert_msg(a >= 0, "%s %s", group, name);
    hid_t t = H5Aget_type(a), m = H5Tcopy(H5T_C_S1);
    H5Tset_cset(m, H5Tget_cset(t));
    char *out = NULL;
    if (H5Tis_variable_str(t) > 0) {
        H5Tset_size(m, H5T_VARIABLE);
        char *v = NULL;
        ck_assert(H5Aread(a, m, &v) >= 0);
        out = strdup(v ? v : "");
        H5free_memory(v);
    } else {
        size_t n = H5Tget_size(t);
        H5Tset_size(m, n + 1);
        out = calloc(n + 2, 1);
        ck_assert(H5Aread(a, m, out) >= 0);
    }
    H5Tclose(m), H5Tclose(t), H5Aclose(a), H5Fclose(f);
    return out;
}

/* A run on the toy task: a hyperparameter adam does not read is a warning and
 * a note in the run file, not an error; the guessed class count is recorded. */
START_TEST(test_run_notes)
{
    make_tmp();
    tbt_make_toy_task(tmp_path("small.h5"), 48, 16, 0, 4, 8, 3);
    char extra[1300];
    snprintf(extra, sizeof extra, "momentum = 0.9\nalpha = 0.5\n[output]\nrun = %s\n",
             tmp_path("run.h5"));
    tb_config *cfg = NULL;
    tb_err err = {{0}};
    ck_assert_msg(tb_config_load_text(&cfg, tbt_toy_config(tmp_path("small.h5"), extra), "toy", &err) == TB_OK, "%s",
                  err.msg);
    tb_run run;
    ck_assert_msg(tb_run_configure(&run, cfg, &err) == TB_OK, "%s", err.msg);
    ck_assert_str_eq(run.ignored, "momentum, alpha");
    ck_assert_msg(tb_run_prepare(&run, &err) == TB_OK, "%s", err.msg);
    ck_assert_msg(tb_run_execute(&run, NULL, &err) == TB_OK, "%s", err.msg);
    tb_run_free(&run);
    tb_config_free(cfg);
    char *ign = attr_string(tmp_path("run.h5"), "/train", "ignored");
    ck_assert_str_eq(ign, "momentum, alpha");
    free(ign);
    char *pt = attr_string(tmp_path("run.h5"), "/task", "pixel_type");
    ck_assert_str_eq(pt, "uint8");
    free(pt);
    ck_assert_double_eq(tbt_read_attr(tmp_path("run.h5"), "/task", "classes_guessed"), 1.0);
    unlink(tmp_path("run.h5"));
    remove_tree(g_tmp);
}
END_TEST

/* ---- Fashion-MNIST ------------------------------------------------------------------------ */

START_TEST(test_fashion_mnist_real)
{
    /* a dependency scripts/deps.sh installs: absent means a broken install, which must fail */
    struct stat st;
    ck_assert_msg(stat(TB_FMNIST_DIR, &st) == 0,
                  "%s is absent: install Debian's dataset-fashion-mnist (scripts/deps.sh does)", TB_FMNIST_DIR);
    tb_task_data d;
    open_ok("fashion_mnist", NULL, &d); /* the default path */
    ck_assert_int_eq(d.count, 70000);
    ck_assert_int_eq(d.channels, 1);
    ck_assert_int_eq(d.height, 28);
    ck_assert_int_eq(d.width, 28);
    ck_assert_int_eq(d.classes, 10);
    int per[2][10];
    memset(per, 0, sizeof per);
    for (int i = 0; i < d.count; i++) {
        ck_assert_int_eq(d.splits[i], i < 60000 ? TB_SPLIT_TRAIN : TB_SPLIT_TEST);
        per[i < 60000 ? 0 : 1][d.labels[i]]++;
    }
    for (int c = 0; c < 10; c++) {
        ck_assert_int_eq(per[0][c], 6000);
        ck_assert_int_eq(per[1][c], 1000);
    }
    ck_assert_str_eq(d.class_names[0], "T-shirt/top");
    ck_assert_str_eq(d.class_names[9], "Ankle boot");
    ck_assert_int_eq(d.has_norm, 1);
    ck_assert(fabsf(d.mean[0] - 0.2860f) < 1e-6f && fabsf(d.std[0] - 0.3530f) < 1e-6f);

    /* the same pixels as the core's reader (training image 0 and test image 9999) */
    const struct {
        const char *split;
        int32_t index;  /* in the split */
        size_t sample;  /* in the plugin's data: train first, then test */
    } probes[] = {{"train", 0, 0}, {"test", 9999, 69999}};
    for (size_t k = 0; k < sizeof probes / sizeof probes[0]; k++) {
        tb_dataset ref;
        tb_err err = {{0}};
        ck_assert_msg(tb_fmnist_load(&ref, TB_FMNIST_DIR, probes[k].split, &err) == TB_OK, "%s", err.msg);
        float x[784];
        int32_t y;
        ck_assert(ref.load(ref.ctx, &probes[k].index, 1, x, &y, &err) == TB_OK);
        ck_assert_int_eq(y, d.labels[probes[k].sample]);
        for (int j = 0; j < 784; j++) {
            float e = ((float)d.pixels[probes[k].sample * 784 + j] / 255.0f - 0.2860f) / 0.3530f;
            ck_assert_float_eq(x[j], e);
        }
        tb_dataset_free(&ref);
    }
    tb_task_data_free(&d);
}
END_TEST

START_TEST(test_fashion_mnist_missing)
{
    make_tmp();
    mkdir(tmp_path("empty_fmnist"), 0700);
    char set[1100];
    const char *settings[] = {set, NULL};
    snprintf(set, sizeof set, "path=%s", tmp_path("empty_fmnist"));
    open_fails("fashion_mnist", settings, TB_EIO, "train-images-idx3-ubyte.gz not found", "dataset-fashion-mnist");
    remove_tree(g_tmp);
}
END_TEST

static Suite *task_plugins_suite(void)
{
    Suite *s = suite_create("task_plugins");
    TCase *tc = tcase_create("tasks");
    tcase_add_test(tc, test_cifar10);
    tcase_add_test(tc, test_cifar10_errors);
    tcase_add_test(tc, test_hdf5);
    tcase_add_test(tc, test_hdf5_errors);
    tcase_add_test(tc, test_hdf5_refusals);
    tcase_add_test(tc, test_hdf5_float_kept);
    tcase_add_test(tc, test_run_notes);
    tcase_add_test(tc, test_fashion_mnist_real);
    tcase_add_test(tc, test_fashion_mnist_missing);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tbt_run(task_plugins_suite()); }
