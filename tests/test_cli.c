/* test_cli.c: `tunebench train` and `tunebench eval` end to end as a user runs
 * them: a configuration, a small generated dataset (the hdf5 task), the run
 * file read back with the HDF5 C API, exit codes and messages for bad input. */
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/common.h"
#include "tb_test.h"

static char dir[] = "/tmp/tb_cli_XXXXXX";
static char data_path[256], config_path[256], run_path[256];

/* Two separable classes of 8x8 images: bright top half vs bright bottom half. */
static void write_dataset(void)
{
    enum { N = 240, C = 1, H = 8, W = 8 };
    static uint8_t x[N * C * H * W];
    int64_t y[N];
    uint8_t split[N];
    uint32_t state = 12345;
    for (int i = 0; i < N; i++) {
        y[i] = i % 2;
        split[i] = i < 160 ? 0 : i < 200 ? 1 : 2;
        for (int p = 0; p < H * W; p++) {
            state = state * 1664525u + 1013904223u;
            int top = p < H * W / 2;
            int base = (top == (y[i] == 0)) ? 170 : 40;
            x[i * H * W + p] = (uint8_t)(base + (state >> 27));
        }
    }
    hid_t f = H5Fcreate(data_path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    ck_assert(f >= 0);
    hsize_t dx[4] = {N, C, H, W}, dy[1] = {N};
    hid_t s = H5Screate_simple(4, dx, NULL);
    hid_t d = H5Dcreate2(f, "x", H5T_STD_U8LE, s, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    ck_assert(H5Dwrite(d, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, x) >= 0);
    H5Dclose(d), H5Sclose(s);
    s = H5Screate_simple(1, dy, NULL);
    d = H5Dcreate2(f, "y", H5T_STD_I64LE, s, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    ck_assert(H5Dwrite(d, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, y) >= 0);
    H5Dclose(d);
    d = H5Dcreate2(f, "split", H5T_STD_U8LE, s, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    ck_assert(H5Dwrite(d, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, split) >= 0);
    H5Dclose(d), H5Sclose(s), H5Fclose(f);
}

static void setup(void)
{
    ck_assert(mkdtemp(dir) != NULL);
    snprintf(data_path, sizeof data_path, "%s/data.h5", dir);
    snprintf(config_path, sizeof config_path, "%s/run.ini", dir);
    snprintf(run_path, sizeof run_path, "%s/runs/first.h5", dir);
    write_dataset();
    FILE *f = fopen(config_path, "w");
    ck_assert(f != NULL);
    fprintf(f,
            "; a small end-to-end configuration\n"
            "[model]\nname = cnn\n\n"
            "[cnn]\nfilters = 8\nunits = 16\n\n"
            "[task]\nname = hdf5\n\n"
            "[hdf5]\npath = %s\n\n"
            "[train]\nepochs = 3\nbatch_size = 16\nloss = cross_entropy\noptimizer = adam\nlr = 0.01\nseed = 3\n"
            "threads = 1\n\n"
            "[output]\nrun = %s\n",
            data_path, run_path);
    fclose(f);
}

static void teardown(void)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
}

static double attr_f64(hid_t f, const char *obj, const char *name)
{
    double v = NAN;
    hid_t a = H5Aopen_by_name(f, obj, name, H5P_DEFAULT, H5P_DEFAULT);
    ck_assert_msg(a >= 0, "run file lacks %s attribute %s", obj, name);
    H5Aread(a, H5T_NATIVE_DOUBLE, &v);
    H5Aclose(a);
    return v;
}

static void attr_str(hid_t f, const char *obj, const char *name, char *buf, size_t len)
{
    hid_t a = H5Aopen_by_name(f, obj, name, H5P_DEFAULT, H5P_DEFAULT);
    ck_assert_msg(a >= 0, "run file lacks %s attribute %s", obj, name);
    hid_t t = H5Aget_type(a);
    char *s = NULL;
    ck_assert(H5Aread(a, t, &s) >= 0);
    snprintf(buf, len, "%s", s ? s : "");
    H5free_memory(s);
    H5Tclose(t);
    H5Aclose(a);
}

static hsize_t length(hid_t f, const char *path)
{
    hid_t d = H5Dopen2(f, path, H5P_DEFAULT);
    ck_assert_msg(d >= 0, "run file lacks %s", path);
    hid_t s = H5Dget_space(d);
    hsize_t n = (hsize_t)H5Sget_simple_extent_npoints(s);
    H5Sclose(s);
    H5Dclose(d);
    return n;
}

START_TEST(test_train_writes_a_complete_run_file)
{
    static char out[1 << 16];
    int rc = tbt_tunebench(config_path, "2>&1", out, sizeof out); /* "train" is added below */
    ck_assert_int_eq(rc, 2); /* no command: usage */
    char args[1024];
    snprintf(args, sizeof args, "train %s", config_path);
    rc = tbt_tunebench(args, "2>&1", out, sizeof out);
    ck_assert_msg(rc == 0, "exit %d:\n%s", rc, out);
    ck_assert_msg(strstr(out, "test: loss"), "%s", out);

    hid_t f = H5Fopen(run_path, H5F_ACC_RDONLY, H5P_DEFAULT);
    ck_assert_msg(f >= 0, "no run file at %s", run_path);
    char s[4096];
    attr_str(f, "/", "format", s, sizeof s);
    ck_assert_str_eq(s, "tunebench-run");
    attr_str(f, "/", "status", s, sizeof s);
    ck_assert_str_eq(s, "finished");
    attr_str(f, "/config", "ini", s, sizeof s);
    ck_assert_msg(strstr(s, "[train]") && strstr(s, "optimizer = adam"), "%s", s);
    attr_str(f, "/model", "plugin", s, sizeof s);
    ck_assert_str_eq(s, "cnn");
    ck_assert(attr_f64(f, "/model", "trainable_parameters") > 0);
    ck_assert(attr_f64(f, "/train", "lr") == 0.01);
    ck_assert(attr_f64(f, "/train", "epochs_done") == 3);
    ck_assert(attr_f64(f, "/seeds", "seed") == 3);
    ck_assert(attr_f64(f, "/task", "n_train") == 160 && attr_f64(f, "/task", "n_val") == 40 &&
              attr_f64(f, "/task", "n_test") == 40);
    ck_assert_int_eq(length(f, "/curves/epoch/val_accuracy"), 3);
    ck_assert_int_eq(length(f, "/curves/batch/loss"), 3 * 10);
    ck_assert_int_eq(length(f, "/test/confusion"), 4);
    double acc = attr_f64(f, "/test", "accuracy");
    ck_assert_msg(acc >= 0.9, "two separable classes reached only %.3f", acc);
    ck_assert_int_eq(length(f, "/checkpoint/params/features.0.weight"), 8 * 9);
    attr_str(f, "/environment", "blas", s, sizeof s);
    ck_assert(strstr(s, "OpenBLAS") != NULL);
    H5Fclose(f);

    /* eval scores the run file's weights on the test split: the same accuracy */
    snprintf(args, sizeof args, "eval %s --checkpoint %s --split test", config_path, run_path);
    rc = tbt_tunebench(args, "2>&1", out, sizeof out);
    ck_assert_msg(rc == 0, "exit %d:\n%s", rc, out);
    char expect[64];
    snprintf(expect, sizeof expect, "accuracy %.2f%%", 100.0 * acc);
    ck_assert_msg(strstr(out, expect), "eval should report %s:\n%s", expect, out);

    /* eval needs only what scoring needs: no train.optimizer (a study's configuration has none), and an
     * optimizer hyperparameter it does not read is not checked; unknown keys are still refused */
    char score_path[300];
    snprintf(score_path, sizeof score_path, "%s/score.ini", dir);
    FILE *sc = fopen(score_path, "w");
    ck_assert_ptr_nonnull(sc);
    fprintf(sc, "[model]\nname = cnn\n[cnn]\nfilters = 8\nunits = 16\n[task]\nname = hdf5\n[hdf5]\npath = %s\n"
                "[train]\nlr = -1\nthreads = 1\n", data_path);
    fclose(sc);
    snprintf(args, sizeof args, "eval %s --checkpoint %s --split test", score_path, run_path);
    rc = tbt_tunebench(args, "2>&1", out, sizeof out);
    ck_assert_msg(rc == 0, "exit %d:\n%s", rc, out);
    ck_assert_msg(strstr(out, expect), "eval without an optimizer should report %s:\n%s", expect, out);
    TBT_ASSERT_LACKS(out, "optimizer");
    snprintf(args, sizeof args, "eval %s --checkpoint %s --split test --set train.lrr=1", score_path, run_path);
    rc = tbt_tunebench(args, "2>&1", out, sizeof out);
    ck_assert_msg(rc != 0, "an unknown key passed:\n%s", out);
    TBT_ASSERT_HAS(out, "unknown key train.lrr");
    /* train still demands it */
    snprintf(args, sizeof args, "train %s --quiet --out %s/runs/none.h5", score_path, dir);
    rc = tbt_tunebench(args, "2>&1", out, sizeof out);
    ck_assert_msg(rc != 0, "trained without an optimizer:\n%s", out);
    TBT_ASSERT_HAS(out, "train.optimizer is missing");

    /* a run file is also a starting point: fine-tune its head with the base frozen */
    snprintf(args, sizeof args, "train %s --quiet --set model.init_from=%s --set model.freeze=base --out %s/runs/ft.h5",
             config_path, run_path, dir);
    rc = tbt_tunebench(args, "2>&1", out, sizeof out);
    ck_assert_msg(rc == 0, "exit %d:\n%s", rc, out);
    char ft[300];
    snprintf(ft, sizeof ft, "%s/runs/ft.h5", dir);
    const char *conv = "/checkpoint/params/features.0.weight";
    size_t nc1, nc2;
    float *c1 = tbt_read_f32(run_path, conv, &nc1, NULL, NULL), *c2 = tbt_read_f32(ft, conv, &nc2, NULL, NULL);
    ck_assert_msg(nc1 == nc2 && memcmp(c1, c2, nc1 * sizeof *c1) == 0, "the frozen base changed");
    free(c1), free(c2);

    /* the same seed trains the same weights: a second run file has identical parameters */
    snprintf(args, sizeof args, "train %s --quiet --out %s/runs/second.h5", config_path, dir);
    ck_assert_int_eq(tbt_tunebench(args, "2>&1", out, sizeof out), 0);
    char second[300];
    snprintf(second, sizeof second, "%s/runs/second.h5", dir);
    const char *key = "/checkpoint/params/classifier.2.weight"; /* linear(16) at 0, ReLU at 1 */
    size_t n1, n2;
    float *a = tbt_read_f32(run_path, key, &n1, NULL, NULL), *b = tbt_read_f32(second, key, &n2, NULL, NULL);
    ck_assert(n1 == n2 && memcmp(a, b, n1 * sizeof *a) == 0);
    free(a), free(b);
}
END_TEST

START_TEST(test_bad_input_is_named)
{
    /* each: --set override, then two strings the message must contain; nothing runs, exit code 2 */
    static const struct {
        const char *set, *expect1, *expect2;
    } cases[] = {
        {"train.learning_rate=0.1", "learning_rate", "did you mean lr"}, /* misspelt key: the nearest valid one named */
        {"train.batch_size=0", "batch_size = 0", "[1, "},    /* out of range: key, value and range */
        {"train.batch_size=1000", "batch_size = 1000", "160"}, /* larger than the training set */
        {"train.lr=fast", "train.lr", "fast"},               /* malformed number */
        {"train.optimizer=adamw", "adamw", "rmsprop"},       /* unknown choice: the allowed ones named */
        {"model.name=resnet", "resnet", "not found"},        /* a model plugin that does not exist */
    };
    static char out[1 << 16];
    char args[1024];
    for (size_t i = 0; i < TB_ARRAY_LEN(cases); i++) {
        snprintf(args, sizeof args, "train %s --set %s", config_path, cases[i].set);
        ck_assert_msg(tbt_tunebench(args, "2>&1", out, sizeof out) == 2, "--set %s: expected exit 2:\n%s", cases[i].set, out);
        ck_assert_msg(strstr(out, cases[i].expect1) && strstr(out, cases[i].expect2), "--set %s:\n%s",
                      cases[i].set, out);
    }
    /* an unknown option and a missing file */
    ck_assert_int_eq(tbt_tunebench("train --frobnicate x.ini", "2>&1", out, sizeof out), 2);
    ck_assert_msg(strstr(out, "unknown option"), "%s", out);
    ck_assert_int_eq(tbt_tunebench("train /nonexistent/config.ini", "2>&1", out, sizeof out), 2);
    ck_assert_msg(strstr(out, "/nonexistent/config.ini"), "%s", out);
}
END_TEST

/* An absurd learning rate diverges: exit code 3, and a run file that says so. */
START_TEST(test_divergence_exit_code_and_run_file)
{
    static char out[1 << 16];
    char args[1024], path[300];
    snprintf(path, sizeof path, "%s/runs/diverged.h5", dir);
    snprintf(args, sizeof args, "train %s --set train.optimizer=sgd --set train.loss=mse --set train.lr=1000 --out %s", config_path,
             path);
    int rc = tbt_tunebench(args, "2>&1", out, sizeof out);
    ck_assert_msg(rc == 3, "exit %d:\n%s", rc, out);
    ck_assert_msg(strstr(out, "diverged"), "%s", out);
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    ck_assert(f >= 0);
    char s[512];
    attr_str(f, "/", "status", s, sizeof s);
    ck_assert_str_eq(s, "diverged");
    attr_str(f, "/", "message", s, sizeof s);
    ck_assert_msg(strstr(s, "NaN") || strstr(s, "Inf"), "%s", s);
    ck_assert(H5Lexists(f, "test", H5P_DEFAULT) == 0);
    H5Fclose(f);
}
END_TEST

/* A model that does not fit the task's images is refused before any data
 * loads (the hdf5 task declares 1x8x8 from the file's metadata), naming the
 * model plugin, the task plugin, the layer by its state_dict key and the
 * sizes; nothing is written. A sweep over such a point runs nothing and
 * leaves no archive. */
START_TEST(test_model_mismatch_before_data_loads)
{
    static char out[1 << 16];
    char args[1024], path[300], arch[300];
    snprintf(path, sizeof path, "%s/runs/mismatch.h5", dir);
    snprintf(args, sizeof args, "train %s --set cnn.kernel_size=11 --set cnn.padding=0 --out %s", config_path, path);
    int rc = tbt_tunebench(args, "2>&1", out, sizeof out);
    ck_assert_msg(rc == 2, "exit %d:\n%s", rc, out);
    TBT_ASSERT_HAS(out, "model plugin \"cnn\" does not fit the input 1x8x8 declared by task plugin \"hdf5\" (its class "
                        "count is known only once its data have loaded): layer features.0 (block 1 of 1): its 11x11 "
                        "convolution (padding 0) gets a 8x8 feature map");
    TBT_ASSERT_LACKS(out, "samples ("); /* the hdf5 task's line when it has loaded */
    ck_assert_msg(access(path, F_OK) != 0, "%s was written", path);

    snprintf(arch, sizeof arch, "%s/mismatch_archive", dir);
    snprintf(args, sizeof args, "sweep %s --grid cnn.kernel_size=3,11 --set cnn.padding=0 --archive %s", config_path,
             arch);
    rc = tbt_tunebench(args, "2>&1", out, sizeof out);
    ck_assert_msg(rc == 2, "exit %d:\n%s", rc, out);
    TBT_ASSERT_HAS(out, "nothing was run");
    TBT_ASSERT_HAS(out, "grid point cnn.kernel_size=11: model plugin \"cnn\" does not fit the input 1x8x8");
    TBT_ASSERT_LACKS(out, "kernel_size=3:");
    ck_assert_msg(access(arch, F_OK) != 0, "%s was made", arch);
}
END_TEST

/* A configuration scoring needs, without train.optimizer (a study's), is enough for eval. */
START_TEST(test_eval_without_optimizer)
{
    static char out[1 << 16];
    char args[1024], weights[300], study[300];
    snprintf(weights, sizeof weights, "%s/runs/for_eval.h5", dir);
    snprintf(args, sizeof args, "train %s --set train.epochs=1 --out %s --quiet", config_path, weights);
    ck_assert_msg(tbt_tunebench(args, "2>&1", out, sizeof out) == 0, "%s", out);
    snprintf(study, sizeof study, "%s/no_optimizer.ini", dir);
    FILE *f = fopen(study, "w");
    ck_assert(f != NULL);
    fprintf(f, "[model]\nname = cnn\n[cnn]\nfilters = 8\nunits = 16\n[task]\nname = hdf5\n[hdf5]\npath = %s\n"
               "[train]\nbatch_size = 16\n[study]\narchive = %s/never\n[space]\nlr = float 1e-6 10 log\n",
            data_path, dir);
    fclose(f);
    snprintf(args, sizeof args, "eval %s --checkpoint %s", study, weights);
    int rc = tbt_tunebench(args, "2>&1", out, sizeof out);
    ck_assert_msg(rc == 0, "exit %d:\n%s", rc, out);
    TBT_ASSERT_HAS(out, "test: loss ");
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("cli");
    TCase *tc = tcase_create("cli");
    tcase_add_unchecked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_train_writes_a_complete_run_file);
    tcase_add_test(tc, test_bad_input_is_named);
    tcase_add_test(tc, test_divergence_exit_code_and_run_file);
    tcase_add_test(tc, test_model_mismatch_before_data_loads);
    tcase_add_test(tc, test_eval_without_optimizer);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tbt_run(suite()); }
