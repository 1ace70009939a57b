#include "tb_test.h"

#include "base/config.h"

#include <hdf5.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>


const char *tbt_fixture(const char *name)
{
    static char path[1024];
    snprintf(path, sizeof path, "%s/%s", TB_FIXTURES_DIR, name);
    return path;
}

static hid_t open_dataset(const char *file, const char *path, hid_t *fid)
{
    *fid = H5Fopen(file, H5F_ACC_RDONLY, H5P_DEFAULT);
    ck_assert_msg(*fid >= 0, "cannot open fixture %s", file);
    hid_t d = H5Dopen2(*fid, path, H5P_DEFAULT);
    ck_assert_msg(d >= 0, "fixture %s has no dataset %s", file, path);
    return d;
}

static void *read_any(const char *file, const char *path, hid_t memtype, size_t elem, size_t *count,
                      int64_t shape[4], int *ndim)
{
    hid_t fid;
    hid_t d = open_dataset(file, path, &fid);
    hid_t sp = H5Dget_space(d);
    hsize_t dims[8] = {0};
    int rank = H5Sget_simple_extent_dims(sp, dims, NULL);
    size_t n = 1;
    for (int i = 0; i < rank; i++) n *= dims[i];
    void *buf = malloc(n * elem + 1);
    ck_assert(buf != NULL);
    ck_assert(H5Dread(d, memtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) >= 0);
    if (count) *count = n;
    if (ndim) *ndim = rank;
    if (shape)
        for (int i = 0; i < 4; i++) shape[i] = i < rank ? (int64_t)dims[i] : 1;
    H5Sclose(sp);
    H5Dclose(d);
    H5Fclose(fid);
    return buf;
}

float *tbt_read_f32(const char *file, const char *path, size_t *count, int64_t shape[4], int *ndim)
{
    return read_any(file, path, H5T_NATIVE_FLOAT, sizeof(float), count, shape, ndim);
}

int32_t *tbt_read_i32(const char *file, const char *path, size_t *count)
{
    return read_any(file, path, H5T_NATIVE_INT32, sizeof(int32_t), count, NULL, NULL);
}

double tbt_read_attr(const char *file, const char *path, const char *attr)
{
    hid_t fid = H5Fopen(file, H5F_ACC_RDONLY, H5P_DEFAULT);
    ck_assert_msg(fid >= 0, "cannot open fixture %s", file);
    hid_t a = H5Aopen_by_name(fid, path, attr, H5P_DEFAULT, H5P_DEFAULT);
    ck_assert_msg(a >= 0, "fixture %s: %s has no attribute %s", file, path, attr);
    double v = 0;
    ck_assert(H5Aread(a, H5T_NATIVE_DOUBLE, &v) >= 0);
    H5Aclose(a);
    H5Fclose(fid);
    return v;
}

char *tbt_read_str_attr(const char *file, const char *path, const char *attr)
{
    hid_t fid = H5Fopen(file, H5F_ACC_RDONLY, H5P_DEFAULT);
    ck_assert_msg(fid >= 0, "cannot open fixture %s", file);
    hid_t a = H5Aopen_by_name(fid, path, attr, H5P_DEFAULT, H5P_DEFAULT);
    ck_assert_msg(a >= 0, "fixture %s: %s has no attribute %s", file, path, attr);
    hid_t t = H5Aget_type(a);
    ck_assert_msg(H5Tget_class(t) == H5T_STRING && !H5Tis_variable_str(t), "fixture %s: %s's %s is not a "
                  "fixed-length string", file, path, attr);
    size_t len = H5Tget_size(t);
    char *v = calloc(len + 1, 1);
    ck_assert(v != NULL);
    ck_assert(H5Aread(a, t, v) >= 0);
    H5Tclose(t);
    H5Aclose(a);
    H5Fclose(fid);
    return v;
}

double tbt_close_ratio(const float *a, const float *b, size_t n, double rtol, double atol, size_t *worst)
{
    double max_ratio = 0;
    *worst = 0;
    for (size_t i = 0; i < n; i++) {
        double diff = fabs((double)a[i] - (double)b[i]);
        double ratio = diff / (atol + rtol * fabs((double)b[i]));
        if (isnan(a[i]) != isnan(b[i])) ratio = INFINITY;
        if (ratio > max_ratio || isnan(ratio)) {
            max_ratio = isnan(ratio) ? INFINITY : ratio;
            *worst = i;
        }
    }
    return max_ratio;
}

void tbt_assert_in_order(const char *text, ...)
{
    va_list ap;
    va_start(ap, text);
    const char *at = text;
    for (const char *part = va_arg(ap, const char *); part; part = va_arg(ap, const char *)) {
        const char *hit = strstr(at, part);
        ck_assert_msg(hit != NULL, "\"%s\" missing (or out of order) in:\n%s", part, text);
        at = hit + strlen(part);
    }
    va_end(ap);
}

int tbt_capture(const char *cmd, char *out, size_t cap)
{
    FILE *p = popen(cmd, "r");
    ck_assert_msg(p != NULL, "cannot run %s", cmd);
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = '\0';
    int status = pclose(p);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

const char *tbt_exe(void)
{
    const char *e = getenv("TBT_TUNEBENCH");
    return e && *e ? e : TB_TUNEBENCH_EXE;
}

/* Studies and sweeps opened inside a test binary run their jobs with the
 * process executor as `tunebench run-job`: tell it which tunebench (this
 * binary is not one). Before main, so every suite gets it. */
__attribute__((constructor)) static void tbt_set_tunebench_exe(void) { setenv("TUNEBENCH_EXE", tbt_exe(), 0); }

int tbt_tunebench(const char *args, const char *redirect, char *out, size_t cap)
{
    char cmd[4096];
    int k = snprintf(cmd, sizeof cmd, "'%s' %s %s", tbt_exe(), args, redirect);
    ck_assert_msg(k > 0 && (size_t)k < sizeof cmd, "command too long: %s", args);
    return tbt_capture(cmd, out, cap);
}

int tbt_run(Suite *s)
{
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

/* A learnable toy task: class k's images are noise around a pattern of its
 * own (a bright square at a class-specific place), so a small CNN reaches
 * high accuracy in an epoch or two. Deterministic from seed (LCG). */
void tbt_mkdtemp(char *dir, size_t cap, const char *tag)
{
    const char *base = getenv("TMPDIR");
    if (!base || !*base) base = "/tmp";
    int k = snprintf(dir, cap, "%s/tb_test_%s_XXXXXX", base, tag);
    ck_assert_msg(k > 0 && (size_t)k < cap, "temporary directory name too long under %s", base);
    ck_assert_msg(mkdtemp(dir) != NULL, "cannot create a temporary directory under %s", base);
}

int tbt_rm_rf(const char *dir)
{
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    int rc = system(cmd);
    if (rc != 0) fprintf(stderr, "could not remove %s\n", dir);
    return rc;
}

void tbt_make_toy_task(const char *path, int n_train, int n_val, int n_test, int classes, int size, unsigned seed)
{
    const int n = n_train + n_val + n_test;
    uint8_t *x = malloc((size_t)n * size * size);
    int32_t *y = malloc((size_t)n * sizeof *y);
    uint8_t *split = malloc((size_t)n);
    ck_assert(x && y && split);
    uint32_t state = seed * 2654435761u + 12345u;
    for (int i = 0; i < n; i++) {
        int k = i % classes;
        y[i] = k;
        split[i] = (uint8_t)(i < n_train ? 0 : i < n_train + n_val ? 1 : 2);
        int cx = (k * 3) % (size - 3), cy = (k * 5 / 2) % (size - 3);
        for (int r = 0; r < size; r++)
            for (int c = 0; c < size; c++) {
                state = state * 1664525u + 1013904223u;
                int v = (int)(state >> 26); /* noise 0..63 */
                if (r >= cy && r < cy + 3 && c >= cx && c < cx + 3) v += 160;
                x[((size_t)i * size + r) * size + c] = (uint8_t)v;
            }
    }
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    ck_assert_msg(f >= 0, "cannot create %s", path);
    hsize_t xd[4] = {(hsize_t)n, 1, (hsize_t)size, (hsize_t)size}, nd[1] = {(hsize_t)n};
    hid_t s4 = H5Screate_simple(4, xd, NULL), s1 = H5Screate_simple(1, nd, NULL);
    hid_t d = H5Dcreate2(f, "x", H5T_NATIVE_UINT8, s4, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    ck_assert(H5Dwrite(d, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, x) >= 0);
    H5Dclose(d);
    d = H5Dcreate2(f, "y", H5T_NATIVE_INT32, s1, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    ck_assert(H5Dwrite(d, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, y) >= 0);
    H5Dclose(d);
    d = H5Dcreate2(f, "split", H5T_NATIVE_UINT8, s1, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    ck_assert(H5Dwrite(d, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, split) >= 0);
    H5Dclose(d);
    H5Sclose(s4);
    H5Sclose(s1);
    H5Fclose(f);
    free(x);
    free(y);
    free(split);
}

const char *tbt_toy_config(const char *task_path, const char *extra)
{
    static _Thread_local char buf[4096];
    snprintf(buf, sizeof buf,
             "[model]\nname = cnn\n[cnn]\nfilters = 4\nunits = 16\n"
             "[task]\nname = hdf5\n[hdf5]\npath = %s\n"
             "[plugins]\npath = %s\n"
             "[train]\nepochs = 2\nbatch_size = 16\nloss = cross_entropy\noptimizer = adam\nlr = 0.01\nseed = 1\n%s",
             task_path, TB_PLUGIN_BUILD_DIR, extra ? extra : "");
    return buf;
}

char *tbt_slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    ck_assert_msg(n >= 0, "cannot size %s", path);
    char *text = malloc((size_t)n + 1);
    ck_assert(text && fread(text, 1, (size_t)n, f) == (size_t)n);
    text[n] = '\0';
    fclose(f);
    if (len) *len = (size_t)n;
    return text;
}

static double monotonic_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

tb_fe_run tbt_wait_run_end(const tb_study_api *api, const char *run, double timeout_s)
{
    tb_fe_run r;
    char err[512];
    double t0 = monotonic_s();
    for (;;) {
        ck_assert_msg(api->run_state(api->study, run, &r, err, sizeof err) == TB_OK, "%s", err);
        if (strcmp(r.status, "queued") && strcmp(r.status, "training")) return r;
        ck_assert_msg(monotonic_s() - t0 < timeout_s, "run %s still %s after %.0f s", run, r.status, timeout_s);
        api->wait(api->study, run, r.seq, 200);
    }
}

void tbt_wait_finals(const tb_study_api *api, const char *id, double timeout_s)
{
    double t0 = monotonic_s();
    for (;;) {
        tb_fe_state st;
        char err[512];
        ck_assert_msg(api->state(api->study, id, &st, err, sizeof err) == TB_OK, "%s", err);
        if (st.finals_total > 0 && st.finals_done == st.finals_total) return;
        ck_assert_msg(monotonic_s() - t0 < timeout_s, "finals of %s: %d/%d after %.0f s", id, st.finals_done,
                      st.finals_total, timeout_s);
        nanosleep(&(struct timespec){0, 50000000L}, NULL);
    }
}

char *tbt_toy_job_ini(const char *task_path, const char *dir, const char *name, const char *const *sets)
{
    tb_config *cfg = NULL;
    tb_err err;
    ck_assert_msg(tb_config_load_text(&cfg, tbt_toy_config(task_path, NULL), "toy", &err) == TB_OK, "%s", err.msg);
    char run[2048];
    snprintf(run, sizeof run, "%s/%s.h5", dir, name);
    ck_assert(tb_config_set(cfg, "output.run", run, &err) == TB_OK);
    for (int i = 0; sets && sets[i]; i++)
        ck_assert_msg(tb_config_set_assignment(cfg, sets[i], &err) == TB_OK, "%s: %s", sets[i], err.msg);
    char *text = tb_config_to_ini(cfg);
    ck_assert(text);
    tb_config_free(cfg);
    return text;
}
