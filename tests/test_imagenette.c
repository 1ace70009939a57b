/* test_imagenette.c: the "imagenette" task plugin, loaded through the plugin
 * loader, on JPEG trees in Imagenette's published layout written here with
 * libjpeg:
 *
 *   ROOT/train/<wnid>/<name>.JPEG, ROOT/val/<wnid>/<name>.JPEG
 *
 * Every image is one class colour (a grey level for greyscale JPEGs) with dark
 * bands along the ends of its longer side that the centre crop must remove,
 * so each sample's label and crop can be checked from its pixels.
 *
 * libjpeg is reached through dlopen (the test executables link only tbcore),
 * from the same libjpeg62 the plugin links. XDG_CACHE_HOME points into the
 * temporary directory, which is removed at the end. */
#include <check.h>
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jpeglib.h>

#include "base/common.h"
#include "base/config.h"
#include "host/plugin.h"
#include "tb_test.h"

static const char *const wnids[10] = {"n01440764", "n02102040", "n02979186", "n03000684", "n03028079",
                                      "n03394916", "n03417042", "n03425413", "n03445777", "n03888605"};
static const uint8_t colours[10][3] = {{220, 40, 40},  {40, 200, 40},  {40, 60, 220},  {220, 220, 40}, {220, 40, 220},
                                       {40, 210, 210}, {240, 140, 30}, {130, 40, 230}, {30, 230, 130}, {140, 90, 40}};
static int grey_of(int c)
{
    return 30 + 20 * c;
}

static char g_tmp[512];  /* temporary directory of this run */
static char g_tree[600]; /* the shared tree: 10 classes x (8 train + 4 val) */

/* ---- libjpeg through dlopen --------------------------------------------------- */

static struct {
    struct jpeg_error_mgr *(*std_error)(struct jpeg_error_mgr *);
    void (*create)(j_compress_ptr, int, size_t);
    void (*stdio_dest)(j_compress_ptr, FILE *);
    void (*set_defaults)(j_compress_ptr);
    void (*set_colorspace)(j_compress_ptr, J_COLOR_SPACE);
    void (*set_quality)(j_compress_ptr, int, boolean);
    void (*start)(j_compress_ptr, boolean);
    JDIMENSION (*write_scanlines)(j_compress_ptr, JSAMPARRAY, JDIMENSION);
    void (*finish)(j_compress_ptr);
    void (*destroy)(j_compress_ptr);
} jpg;

static char g_jpeg_error[4096];

static void *jsym(void *h, const char *name)
{
    void *p = dlsym(h, name);
    if (!p)
        snprintf(g_jpeg_error, sizeof g_jpeg_error, "libjpeg symbol %s: %s", name, dlerror());
    return p;
}

#define JSYM(member, name)                                                                                             \
    do {                                                                                                               \
        void *sym_ = jsym(h, name);                                                                                    \
        if (!sym_)                                                                                                     \
            return -1;                                                                                                 \
        memcpy(&jpg.member, &sym_, sizeof sym_);                                                                       \
    } while (0)

/* The helpers that build trees return 0, or -1 with a message in g_jpeg_error,
 * since main() calls them too (outside any test, where ck_assert cannot run). */
static int jpeg_load(void)
{
    if (jpg.std_error)
        return 0;
    void *h = dlopen("libjpeg.so.62", RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        snprintf(g_jpeg_error, sizeof g_jpeg_error, "cannot load libjpeg.so.62 (libjpeg62-turbo): %s", dlerror());
        return -1;
    }
    JSYM(std_error, "jpeg_std_error");
    JSYM(create, "jpeg_CreateCompress");
    JSYM(stdio_dest, "jpeg_stdio_dest");
    JSYM(set_defaults, "jpeg_set_defaults");
    JSYM(set_colorspace, "jpeg_set_colorspace");
    JSYM(set_quality, "jpeg_set_quality");
    JSYM(start, "jpeg_start_compress");
    JSYM(write_scanlines, "jpeg_write_scanlines");
    JSYM(finish, "jpeg_finish_compress");
    JSYM(destroy, "jpeg_destroy_compress");
    return 0;
}

/* kind: 3 RGB, 1 greyscale, 4 Adobe CMYK (stored inverted, K = 0). */
static int write_jpeg(const char *path, int w, int h, int kind, int cls)
{
    if (jpeg_load() != 0)
        return -1;
    int ncomp = kind;
    uint8_t *row = malloc((size_t)w * (size_t)ncomp);
    FILE *f = fopen(path, "wb");
    if (!row || !f) {
        snprintf(g_jpeg_error, sizeof g_jpeg_error, "cannot write %s: %s", path, strerror(errno));
        free(row);
        if (f)
            fclose(f);
        return -1;
    }
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr e;
    c.err = jpg.std_error(&e);
    jpg.create(&c, JPEG_LIB_VERSION, sizeof c);
    jpg.stdio_dest(&c, f);
    c.image_width = (JDIMENSION)w;
    c.image_height = (JDIMENSION)h;
    c.input_components = ncomp;
    c.in_color_space = kind == 1 ? JCS_GRAYSCALE : kind == 4 ? JCS_CMYK : JCS_RGB;
    jpg.set_defaults(&c);
    if (kind == 4)
        jpg.set_colorspace(&c, JCS_CMYK);
    jpg.set_quality(&c, 95, TRUE);
    jpg.start(&c, TRUE);
    int band = (w > h ? w : h) / 12; /* dark bands along the longer side; square images have none */
    for (int y = 0; y < h; y++) {
        for (int x = 0; x < w; x++) {
            int along = w > h ? x : y, len = w > h ? w : h;
            int dark = w != h && (along < band || along >= len - band);
            uint8_t *p = row + (size_t)x * (size_t)ncomp;
            if (kind == 1) {
                p[0] = dark ? 0 : (uint8_t)grey_of(cls);
            } else {
                for (int k = 0; k < 3; k++)
                    p[k] = dark ? 0 : colours[cls][k];
                if (kind == 4)
                    p[3] = 255; /* inverted K: no black */
            }
        }
        JSAMPROW rows[1] = {row};
        jpg.write_scanlines(&c, rows, 1);
    }
    jpg.finish(&c);
    jpg.destroy(&c);
    free(row);
    if (fclose(f) != 0) {
        snprintf(g_jpeg_error, sizeof g_jpeg_error, "cannot write %s: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

/* ---- files ---------------------------------------------------------------------- */

static int mkdir_p(const char *path)
{
    char p[1024];
    snprintf(p, sizeof p, "%s", path);
    for (char *s = p + 1; *s; s++) {
        if (*s == '/') {
            *s = 0;
            mkdir(p, 0755);
            *s = '/';
        }
    }
    if (mkdir(p, 0755) != 0 && errno != EEXIST) {
        snprintf(g_jpeg_error, sizeof g_jpeg_error, "mkdir %s: %s", p, strerror(errno));
        return -1;
    }
    return 0;
}

static void rm_rf(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return;
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        if (d) {
            struct dirent *de;
            while ((de = readdir(d)) != NULL) {
                if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
                    continue;
                char p[2048];
                snprintf(p, sizeof p, "%s/%s", path, de->d_name);
                rm_rf(p);
            }
            closedir(d);
        }
        rmdir(path);
    } else {
        unlink(path);
    }
}

/* Sizes cycle through landscape, portrait, square and a larger portrait. */
static const int sizes[4][2] = {{240, 160}, {160, 240}, {200, 200}, {320, 480}};

/* A tree of `classes` classes with n_train + n_val images each; one greyscale
 * image (class 3, train) and one CMYK image (class 5, val) when those exist. */
static int make_tree(const char *root, int classes, int n_train, int n_val, int scale)
{
    static const char *const splits[2] = {"train", "val"};
    int serial = 0;
    for (int c = 0; c < classes; c++) {
        for (int s = 0; s < 2; s++) {
            char dir[1024];
            snprintf(dir, sizeof dir, "%s/%s/%s", root, splits[s], wnids[c]);
            if (mkdir_p(dir) != 0)
                return -1;
            int n = s == 0 ? n_train : n_val;
            for (int i = 0; i < n; i++, serial++) {
                char p[1200];
                snprintf(p, sizeof p, "%s/%s_%d.JPEG", dir, wnids[c], 1000 + i);
                int kind = (c == 3 && s == 0 && i == 1) ? 1 : (c == 5 && s == 1 && i == 0) ? 4 : 3;
                const int *sz = sizes[serial % 4];
                if (write_jpeg(p, sz[0] * scale, sz[1] * scale, kind, c) != 0)
                    return -1;
            }
        }
    }
    return 0;
}

static void copy_file(const char *from, const char *to)
{
    FILE *a = fopen(from, "rb"), *b = fopen(to, "wb");
    ck_assert(a && b);
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, a)) > 0)
        ck_assert(fwrite(buf, 1, n, b) == n);
    fclose(a);
    fclose(b);
}

static long file_size(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 ? (long)st.st_size : -1;
}

/* A fresh, empty cache directory for the calling test (each test runs in its own process). */
static void private_cache(const char *name)
{
    char p[1024];
    snprintf(p, sizeof p, "%s/cache-%s", g_tmp, name);
    ck_assert_msg(mkdir_p(p) == 0, "%s", g_jpeg_error);
    setenv("XDG_CACHE_HOME", p, 1);
}

/* ---- opening the task through the loader ---------------------------------------- */

/* Opens the task with "key=value" settings (NULL-terminated) of section [task]. */
static tb_status open_task(const char *const *settings, tb_task_data *out, tb_err *err)
{
    tb_plugin_registry reg;
    memset(&reg, 0, sizeof reg);
    tb_status st = tb_plugin_load_file(&reg, TB_PLUGIN_BUILD_DIR "/imagenette.so", err);
    ck_assert_msg(st == TB_OK, "loading imagenette.so: %s", err->msg);
    const tb_plugin *plugin = NULL;
    st = tb_plugin_find(&reg, TB_PLUGIN_TASK, "imagenette", &plugin, err);
    ck_assert_msg(st == TB_OK, "finding imagenette: %s", err->msg);
    tb_config *cfg = tb_config_new();
    ck_assert_ptr_nonnull(cfg);
    for (int i = 0; settings[i]; i++) {
        char key[256];
        const char *eq = strchr(settings[i], '=');
        ck_assert_ptr_nonnull(eq);
        snprintf(key, sizeof key, "task.%.*s", (int)(eq - settings[i]), settings[i]);
        ck_assert_msg(tb_config_set(cfg, key, eq + 1, err) == TB_OK, "%s", err->msg);
    }
    tb_plugin_args *args = NULL;
    st = tb_plugin_args_resolve(plugin, cfg, "task", &args, err);
    ck_assert_msg(st == TB_OK, "resolving options: %s", err->msg);
    memset(out, 0, sizeof *out);
    st = tb_plugin_open_task(plugin, args, out, err);
    tb_plugin_args_free(args);
    tb_config_free(cfg);
    tb_plugins_free(&reg);
    return st;
}

static void open_ok(const char *const *settings, tb_task_data *out)
{
    tb_err err = {{0}};
    tb_status st = open_task(settings, out, &err);
    ck_assert_msg(st == TB_OK, "open_task failed (%s): %s", tb_status_name(st), err.msg);
}

/* Opens a task expected to fail and checks that the message holds each of the needles. */
static void open_fails(const char *const *settings, const char *n1, const char *n2)
{
    tb_task_data d;
    tb_err err = {{0}};
    tb_status st = open_task(settings, &d, &err);
    ck_assert_msg(st != TB_OK, "open_task succeeded; expected an error mentioning '%s'", n1);
    ck_assert_msg(strstr(err.msg, n1) != NULL, "error '%s' does not mention '%s'", err.msg, n1);
    if (n2)
        ck_assert_msg(strstr(err.msg, n2) != NULL, "error '%s' does not mention '%s'", err.msg, n2);
}

/* Every sample: right size, colour (or grey level) of its label everywhere
 * (so no dark band survived the crop). */
static void check_pixels(const tb_task_data *d, int res)
{
    ck_assert_int_eq(d->channels, 3);
    ck_assert_int_eq(d->height, res);
    ck_assert_int_eq(d->width, res);
    size_t plane = (size_t)res * res;
    int greys = 0;
    for (int i = 0; i < d->count; i++) {
        const uint8_t *p = d->pixels + (size_t)i * 3 * plane;
        int label = d->labels[i];
        ck_assert(label >= 0 && label < d->classes);
        int grey = memcmp(p, p + plane, plane) == 0 && memcmp(p, p + 2 * plane, plane) == 0;
        double mean[3] = {0, 0, 0};
        int worst = 0;
        for (int c = 0; c < 3; c++) {
            int want = grey ? grey_of(label) : colours[label][c];
            for (size_t k = 0; k < plane; k++) {
                mean[c] += p[c * plane + k];
                int dv = abs((int)p[c * plane + k] - want);
                if (dv > worst)
                    worst = dv;
            }
            mean[c] /= (double)plane;
        }
        greys += grey;
        /* the label is the nearest class colour */
        if (!grey) {
            int best = -1;
            double bd = 1e30;
            for (int c = 0; c < 10; c++) {
                double dd = 0;
                for (int k = 0; k < 3; k++)
                    dd += (mean[k] - colours[c][k]) * (mean[k] - colours[c][k]);
                if (dd < bd)
                    bd = dd, best = c;
            }
            ck_assert_msg(best == label, "sample %d: label %d but its colour (%.0f,%.0f,%.0f) is class %d's", i, label,
                          mean[0], mean[1], mean[2], best);
        } else {
            ck_assert_msg(fabs(mean[0] - grey_of(label)) < 6, "sample %d: greyscale level %.1f, label %d wants %d", i,
                          mean[0], label, grey_of(label));
        }
        ck_assert_msg(worst <= 40,
                      "sample %d (label %d): a pixel is %d levels off its class colour (band not "
                      "cropped?)",
                      i, label, worst);
    }
    (void)greys;
}

static void count_splits(const tb_task_data *d, int per_class[3][10], int total[3])
{
    memset(per_class, 0, 3 * 10 * sizeof(int));
    memset(total, 0, 3 * sizeof(int));
    for (int i = 0; i < d->count; i++) {
        ck_assert(d->splits[i] <= TB_SPLIT_TEST);
        per_class[d->splits[i]][d->labels[i]]++;
        total[d->splits[i]]++;
    }
}

/* ---- tests ------------------------------------------------------------------------ */

START_TEST(test_study_split)
{
    private_cache("study");
    const char *s[] = {"path=", "resolution=32", "val_count=10", "test_count=10", "threads=2", NULL};
    char pathkv[700];
    snprintf(pathkv, sizeof pathkv, "path=%s", g_tree);
    s[0] = pathkv;
    tb_task_data d;
    open_ok(s, &d);
    ck_assert_int_eq(d.count, 120);
    ck_assert_int_eq(d.classes, 10);
    ck_assert_ptr_nonnull(d.class_names);
    ck_assert_str_eq(d.class_names[0], "tench");
    ck_assert_str_eq(d.class_names[1], "English springer");
    ck_assert_str_eq(d.class_names[9], "parachute");
    ck_assert_int_eq(d.has_norm, 1);
    ck_assert(fabsf(d.mean[0] - 0.485f) < 1e-6f && fabsf(d.std[2] - 0.225f) < 1e-6f);
    int pc[3][10], tot[3];
    count_splits(&d, pc, tot);
    ck_assert_int_eq(tot[TB_SPLIT_TRAIN], 100);
    ck_assert_int_eq(tot[TB_SPLIT_VAL], 10);
    ck_assert_int_eq(tot[TB_SPLIT_TEST], 10);
    for (int c = 0; c < 10; c++) {
        ck_assert_int_eq(pc[TB_SPLIT_VAL][c], 1);
        ck_assert_int_eq(pc[TB_SPLIT_TEST][c], 1);
        ck_assert_int_eq(pc[TB_SPLIT_TRAIN][c], 10);
    }
    check_pixels(&d, 32);
    /* one greyscale image among them, decoded as 3 equal channels */
    int greys = 0;
    for (int i = 0; i < d.count; i++) {
        const uint8_t *p = d.pixels + (size_t)i * 3 * 32 * 32;
        greys += memcmp(p, p + 1024, 1024) == 0 && memcmp(p, p + 2048, 1024) == 0;
    }
    ck_assert_int_eq(greys, 1);
    tb_task_data_free(&d);
}
END_TEST

/* The pool (120) is smaller than the counts: validation and test first. */
START_TEST(test_study_small_pool)
{
    private_cache("small");
    char pathkv[700];
    snprintf(pathkv, sizeof pathkv, "path=%s", g_tree);
    const char *s[] = {pathkv, "resolution=16", "val_count=50", "test_count=50", NULL};
    tb_task_data d;
    open_ok(s, &d);
    int pc[3][10], tot[3];
    count_splits(&d, pc, tot);
    ck_assert_int_eq(d.count, 120);
    ck_assert_int_eq(tot[TB_SPLIT_VAL], 50);
    ck_assert_int_eq(tot[TB_SPLIT_TEST], 50);
    ck_assert_int_eq(tot[TB_SPLIT_TRAIN], 20);
    for (int c = 0; c < 10; c++) {
        ck_assert_int_eq(pc[TB_SPLIT_VAL][c], 5);
        ck_assert_int_eq(pc[TB_SPLIT_TEST][c], 5);
        ck_assert_int_eq(pc[TB_SPLIT_TRAIN][c], 2);
    }
    tb_task_data_free(&d);

    /* fewer training images than available: a stratified subset, cache or not */
    for (int cache = 0; cache < 2; cache++) {
        const char *s2[] = {pathkv,
                            "resolution=16",
                            "train_count=30",
                            "val_count=10",
                            "test_count=10",
                            cache ? "cache=true" : "cache=false",
                            NULL};
        open_ok(s2, &d);
        count_splits(&d, pc, tot);
        ck_assert_int_eq(d.count, 50);
        ck_assert_int_eq(tot[TB_SPLIT_TRAIN], 30);
        for (int c = 0; c < 10; c++)
            ck_assert_int_eq(pc[TB_SPLIT_TRAIN][c], 3);
        check_pixels(&d, 16);
        tb_task_data_free(&d);
    }
}
END_TEST

START_TEST(test_split_seed)
{
    private_cache("seed");
    char pathkv[700];
    snprintf(pathkv, sizeof pathkv, "path=%s", g_tree);
    const char *a[] = {pathkv, "resolution=16", "val_count=10", "test_count=10", NULL};
    const char *b[] = {pathkv, "resolution=16", "val_count=10", "test_count=10", "split_seed=7", NULL};
    tb_task_data d0, d1, d2;
    open_ok(a, &d0);
    open_ok(a, &d1);
    open_ok(b, &d2);
    ck_assert_int_eq(d0.count, d2.count);
    ck_assert(memcmp(d0.splits, d1.splits, (size_t)d0.count) == 0);
    ck_assert(memcmp(d0.labels, d2.labels, (size_t)d0.count * sizeof(int32_t)) == 0);
    ck_assert_msg(memcmp(d0.splits, d2.splits, (size_t)d0.count) != 0, "split_seed 7 drew the same split as 0");
    int pc[3][10], tot[3];
    count_splits(&d2, pc, tot);
    ck_assert_int_eq(tot[TB_SPLIT_VAL], 10);
    ck_assert_int_eq(tot[TB_SPLIT_TEST], 10);
    tb_task_data_free(&d0);
    tb_task_data_free(&d1);
    tb_task_data_free(&d2);
}
END_TEST

START_TEST(test_folders_split)
{
    private_cache("folders");
    char pathkv[700];
    snprintf(pathkv, sizeof pathkv, "path=%s", g_tree);
    const char *s[] = {pathkv, "resolution=24", "split=folders", NULL};
    tb_task_data d;
    open_ok(s, &d);
    int pc[3][10], tot[3];
    count_splits(&d, pc, tot);
    ck_assert_int_eq(d.count, 120);
    ck_assert_int_eq(tot[TB_SPLIT_TRAIN], 80);
    ck_assert_int_eq(tot[TB_SPLIT_VAL], 20);
    ck_assert_int_eq(tot[TB_SPLIT_TEST], 20);
    for (int c = 0; c < 10; c++) {
        ck_assert_int_eq(pc[TB_SPLIT_TRAIN][c], 8);
        ck_assert_int_eq(pc[TB_SPLIT_VAL][c], 2);
        ck_assert_int_eq(pc[TB_SPLIT_TEST][c], 2);
    }
    check_pixels(&d, 24);
    tb_task_data_free(&d);
}
END_TEST

START_TEST(test_threads_deterministic)
{
    private_cache("threads");
    char pathkv[700];
    snprintf(pathkv, sizeof pathkv, "path=%s", g_tree);
    const char *s1[] = {pathkv, "resolution=40", "cache=false", "threads=1", NULL};
    const char *s4[] = {pathkv, "resolution=40", "cache=false", "threads=4", NULL};
    const char *s4full[] = {pathkv, "resolution=40", "cache=false", "threads=4", "dct_scaling=false", NULL};
    tb_task_data a, b, c;
    open_ok(s1, &a);
    open_ok(s4, &b);
    open_ok(s4full, &c);
    ck_assert_int_eq(a.count, b.count);
    ck_assert(memcmp(a.labels, b.labels, (size_t)a.count * sizeof(int32_t)) == 0);
    ck_assert(memcmp(a.splits, b.splits, (size_t)a.count) == 0);
    ck_assert_msg(memcmp(a.pixels, b.pixels, (size_t)a.count * 3 * 40 * 40) == 0,
                  "1 and 4 decoding threads gave different pixels");
    /* decoding at full size instead of a DCT scale: the same images within a few levels */
    check_pixels(&c, 40);
    tb_task_data_free(&a);
    tb_task_data_free(&b);
    tb_task_data_free(&c);
}
END_TEST

/* The only regular file in the private cache directory. */
static void find_cache_file(char *out, size_t n)
{
    const char *dir = tb_host_api_get()->cache_dir("imagenette");
    ck_assert_ptr_nonnull(dir);
    DIR *d = opendir(dir);
    ck_assert_msg(d != NULL, "cache dir %s", dir);
    struct dirent *de;
    int found = 0;
    while ((de = readdir(d)) != NULL) {
        if (strstr(de->d_name, ".cache")) {
            snprintf(out, n, "%s/%s", dir, de->d_name);
            found++;
        }
    }
    closedir(d);
    ck_assert_msg(found == 1, "%d cache files in %s, expected 1", found, dir);
}

static void flip_byte(const char *file, long at)
{
    FILE *f = fopen(file, "r+b");
    ck_assert_ptr_nonnull(f);
    ck_assert(fseek(f, at, SEEK_SET) == 0);
    int c = fgetc(f);
    ck_assert(c != EOF);
    ck_assert(fseek(f, at, SEEK_SET) == 0);
    fputc(c ^ 0x5a, f);
    fclose(f);
}

static int files_equal(const char *a, const char *b)
{
    FILE *fa = fopen(a, "rb"), *fb = fopen(b, "rb");
    int eq = fa && fb;
    while (eq) {
        int x = fgetc(fa), y = fgetc(fb);
        if (x != y)
            eq = 0;
        if (x == EOF || y == EOF)
            break;
    }
    if (fa)
        fclose(fa);
    if (fb)
        fclose(fb);
    return eq;
}

START_TEST(test_cache)
{
    private_cache("cache");
    /* larger JPEGs, decoded at full size, so decoding clearly costs more than reading the cache */
    char root[700];
    snprintf(root, sizeof root, "%s/cachetree", g_tmp);
    ck_assert_msg(make_tree(root, 10, 3, 1, 3) == 0, "%s", g_jpeg_error);
    char pathkv[800];
    snprintf(pathkv, sizeof pathkv, "path=%s", root);
    const char *s[] = {pathkv, "resolution=48", "val_count=10", "test_count=10", "dct_scaling=false", "threads=1",
                       NULL};
    tb_task_data a, b;
    double t0 = tb_now();
    open_ok(s, &a);
    double t_decode = tb_now() - t0;
    ck_assert_int_eq(a.count, 40);
    check_pixels(&a, 48);
    char cfile[1200], saved[1300];
    find_cache_file(cfile, sizeof cfile);
    snprintf(saved, sizeof saved, "%s/saved.cache", g_tmp);
    copy_file(cfile, saved);

    t0 = tb_now();
    open_ok(s, &b);
    double t_cached = tb_now() - t0;
    size_t bytes = (size_t)a.count * 3 * 48 * 48;
    ck_assert_int_eq(b.count, a.count);
    ck_assert(memcmp(a.pixels, b.pixels, bytes) == 0);
    ck_assert(memcmp(a.labels, b.labels, (size_t)a.count * sizeof(int32_t)) == 0);
    ck_assert(memcmp(a.splits, b.splits, (size_t)a.count) == 0);
    ck_assert_msg(t_cached * 4 < t_decode, "second open took %.4f s, decoding %.4f s: cache not used?", t_cached,
                  t_decode);
    tb_task_data_free(&b);

    /* damaged pixels, header, truncation: detected, decoded again, cache rewritten */
    long size = file_size(cfile);
    for (int kind = 0; kind < 3; kind++) {
        if (kind == 0)
            flip_byte(cfile, size - 100);
        else if (kind == 1)
            flip_byte(cfile, 20);
        else
            ck_assert(truncate(cfile, size / 2) == 0);
        open_ok(s, &b);
        ck_assert_int_eq(b.count, a.count);
        ck_assert_msg(memcmp(a.pixels, b.pixels, bytes) == 0, "damage %d: pixels differ", kind);
        ck_assert_msg(files_equal(cfile, saved), "damage %d: the cache was not rewritten", kind);
        tb_task_data_free(&b);
    }

    /* stale: a new image makes the file list differ */
    char extra[1000];
    snprintf(extra, sizeof extra, "%s/train/%s/extra.JPEG", root, wnids[2]);
    ck_assert_msg(write_jpeg(extra, 200, 200, 3, 2) == 0, "%s", g_jpeg_error);
    open_ok(s, &b);
    ck_assert_int_eq(b.count, 41);
    check_pixels(&b, 48);
    ck_assert(!files_equal(cfile, saved));
    tb_task_data_free(&b);

    /* cache=false leaves the result the same */
    unlink(extra);
    const char *nc[] = {pathkv, "resolution=48", "val_count=10", "test_count=10", "dct_scaling=false", "cache=false",
                        NULL};
    open_ok(nc, &b);
    ck_assert(memcmp(a.pixels, b.pixels, bytes) == 0);
    tb_task_data_free(&b);
    tb_task_data_free(&a);
    rm_rf(root);
}
END_TEST

/* A subset of the pool on a cache miss: the whole pool is decoded for the
 * cache into the output buffer and compacted in place; the selected images
 * must be those of a cache hit and of decoding without a cache, bit for bit. */
START_TEST(test_cache_subset)
{
    private_cache("subset");
    char pathkv[700];
    snprintf(pathkv, sizeof pathkv, "path=%s", g_tree);
    const char *s[] = {pathkv, "resolution=24", "train_count=30", "val_count=10", "test_count=10", NULL};
    const char *nc[] = {pathkv, "resolution=24", "train_count=30", "val_count=10", "test_count=10", "cache=false",
                        NULL};
    tb_task_data miss, hit, none;
    open_ok(s, &miss); /* a fresh cache directory: decoded and written */
    char cfile[1200];
    find_cache_file(cfile, sizeof cfile);
    open_ok(s, &hit);
    open_ok(nc, &none);
    ck_assert_int_eq(miss.count, 50); /* of the 120 images of the tree */
    ck_assert_int_eq(hit.count, miss.count);
    ck_assert_int_eq(none.count, miss.count);
    size_t bytes = (size_t)miss.count * 3 * 24 * 24;
    ck_assert_msg(memcmp(miss.pixels, none.pixels, bytes) == 0, "cache miss and no cache give different pixels");
    ck_assert_msg(memcmp(hit.pixels, none.pixels, bytes) == 0, "cache hit and no cache give different pixels");
    ck_assert(memcmp(miss.labels, none.labels, (size_t)miss.count * sizeof(int32_t)) == 0);
    ck_assert(memcmp(hit.splits, none.splits, (size_t)miss.count) == 0);
    check_pixels(&miss, 24);
    tb_task_data_free(&miss);
    tb_task_data_free(&hit);
    tb_task_data_free(&none);
}
END_TEST

START_TEST(test_errors)
{
    private_cache("errors");
    char root[700], p[1200], pathkv[800];
    snprintf(root, sizeof root, "%s/errtree", g_tmp);
    snprintf(pathkv, sizeof pathkv, "path=%s", root);
    const char *s[] = {pathkv, "resolution=16", "val_count=2", "test_count=2", NULL};

    /* no train/ */
    snprintf(p, sizeof p, "%s/val/%s", root, wnids[0]);
    ck_assert_msg(mkdir_p(p) == 0, "%s", g_jpeg_error);
    open_fails(s, "missing folder", "/train");
    open_fails(s, "cannot be downloaded", NULL);
    rm_rf(root);

    /* path is the train/ folder itself */
    ck_assert_msg(make_tree(root, 2, 2, 2, 1) == 0, "%s", g_jpeg_error);
    char trainkv[800];
    snprintf(trainkv, sizeof trainkv, "path=%s/train", root);
    const char *st[] = {trainkv, "resolution=16", NULL};
    open_fails(st, "missing folder", "parent");

    /* a class folder only in train/ */
    snprintf(p, sizeof p, "%s/train/%s", root, wnids[4]);
    ck_assert_msg(mkdir_p(p) == 0, "%s", g_jpeg_error);
    open_fails(s, wnids[4], "same class folders");
    /* an empty class folder in both */
    snprintf(p, sizeof p, "%s/val/%s", root, wnids[4]);
    ck_assert_msg(mkdir_p(p) == 0, "%s", g_jpeg_error);
    open_fails(s, wnids[4], "no JPEG");
    rm_rf(root);

    /* a corrupt JPEG, named with libjpeg's message */
    ck_assert_msg(make_tree(root, 2, 2, 2, 1) == 0, "%s", g_jpeg_error);
    snprintf(p, sizeof p, "%s/train/%s/broken_7.JPEG", root, wnids[1]);
    FILE *f = fopen(p, "wb");
    ck_assert_ptr_nonnull(f);
    fputs("this is not a JPEG file at all", f);
    fclose(f);
    open_fails(s, "broken_7.JPEG", "Not a JPEG file");
    /* with cache=false and several threads: the same error */
    const char *s4[] = {pathkv, "resolution=16", "val_count=2", "test_count=2", "cache=false", "threads=4", NULL};
    open_fails(s4, "broken_7.JPEG", "Not a JPEG file");

    /* a truncated JPEG decodes (libjpeg pads it) with a warning, like Pillow with LOAD_TRUNCATED_IMAGES */
    char good[1200];
    snprintf(good, sizeof good, "%s/train/%s/%s_1000.JPEG", root, wnids[1], wnids[1]);
    copy_file(good, p);
    ck_assert(truncate(p, file_size(good) - 200) == 0);
    tb_task_data d;
    open_ok(s, &d);
    ck_assert_int_eq(d.count, 9);
    tb_task_data_free(&d);
    rm_rf(root);

    /* not a folder */
    snprintf(pathkv, sizeof pathkv, "path=%s/does-not-exist", g_tmp);
    open_fails(s, "does-not-exist", NULL);
    /* a file, not a folder */
    snprintf(pathkv, sizeof pathkv, "path=%s/plain-file", g_tmp);
    f = fopen(pathkv + 5, "wb");
    ck_assert_ptr_nonnull(f);
    fputs("x", f);
    fclose(f);
    open_fails(s, "plain-file", "is not a folder");
    tb_err err;
    ck_assert(open_task(s, &d, &err) == TB_EINVAL);
    unlink(pathkv + 5);
}
END_TEST

/* Other class folders (e.g. Imagewoof's) keep their folder name as class name;
 * stray non-JPEG files are skipped. */
START_TEST(test_other_classes)
{
    private_cache("other");
    char root[700], p[1200], pathkv[800];
    snprintf(root, sizeof root, "%s/othertree", g_tmp);
    snprintf(pathkv, sizeof pathkv, "path=%s", root);
    static const char *const names[2] = {"zebra", "n02086240"};
    for (int c = 0; c < 2; c++) {
        for (int s = 0; s < 2; s++) {
            snprintf(p, sizeof p, "%s/%s/%s", root, s ? "val" : "train", names[c]);
            ck_assert_msg(mkdir_p(p) == 0, "%s", g_jpeg_error);
            for (int i = 0; i < 3; i++) {
                char f[1300];
                snprintf(f, sizeof f, "%s/img%d.jpg", p, i);
                /* n02086240 sorts first: label 0, coloured as class 0 */
                ck_assert_msg(write_jpeg(f, 64, 48, 3, c == 0 ? 1 : 0) == 0, "%s", g_jpeg_error);
            }
        }
    }
    snprintf(p, sizeof p, "%s/train/zebra/notes.txt", root);
    FILE *f = fopen(p, "w");
    ck_assert_ptr_nonnull(f);
    fputs("x", f);
    fclose(f);
    const char *s[] = {pathkv, "resolution=16", "split=folders", NULL};
    tb_task_data d;
    open_ok(s, &d);
    ck_assert_int_eq(d.count, 12);
    ck_assert_int_eq(d.classes, 2);
    ck_assert_str_eq(d.class_names[0], "n02086240");
    ck_assert_str_eq(d.class_names[1], "zebra");
    check_pixels(&d, 16);
    tb_task_data_free(&d);
    rm_rf(root);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("imagenette");
    TCase *tc = tcase_create("imagenette");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_study_split);
    tcase_add_test(tc, test_study_small_pool);
    tcase_add_test(tc, test_split_seed);
    tcase_add_test(tc, test_folders_split);
    tcase_add_test(tc, test_threads_deterministic);
    tcase_add_test(tc, test_cache);
    tcase_add_test(tc, test_cache_subset);
    tcase_add_test(tc, test_errors);
    tcase_add_test(tc, test_other_classes);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    snprintf(g_tmp, sizeof g_tmp, "%s/tb_imagenette_XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(g_tmp)) {
        perror("mkdtemp");
        return EXIT_FAILURE;
    }
    char cache[600];
    snprintf(cache, sizeof cache, "%s/cache", g_tmp);
    mkdir(cache, 0755);
    setenv("XDG_CACHE_HOME", cache, 1); /* never ~/.cache; tests switch to their own folder */
    snprintf(g_tree, sizeof g_tree, "%s/imagenette2", g_tmp);
    if (make_tree(g_tree, 10, 8, 4, 1) != 0) {
        fprintf(stderr, "test_imagenette: cannot write the JPEG tree: %s\n", g_jpeg_error);
        rm_rf(g_tmp);
        return EXIT_FAILURE;
    }
    int rc = tbt_run(suite());
    rm_rf(g_tmp);
    return rc;
}
