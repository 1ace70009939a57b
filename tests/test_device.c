/* test_device.c: device names (tb_device_parse/format), the devices report,
 * backend creation for cpu and cuda, and the executable's `devices` command
 * and train.device key. Runs on every machine: where a test's expectation
 * depends on whether a GPU is usable, it branches on tb_cuda_device_count
 * (without a GPU the CUDA paths must fail cleanly, naming the reason). */
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "engine/backend.h"
#include "base/common.h"
#include "base/config.h"
#include "engine/device.h"
#include "exec/executor.h"
#include "study/hparam_space.h"
#include "study/study.h"
#include "tb_test.h"

/* ---- tb_device_parse / tb_device_format -------------------------------------- */

START_TEST(test_parse_accepts)
{
    static const struct {
        const char *text;
        int cuda, index;
        const char *formatted;
    } cases[] = {
        {"cpu", 0, 0, "cpu"},         {"cuda", 1, 0, "cuda:0"},     {"cuda:0", 1, 0, "cuda:0"},
        {"cuda:7", 1, 7, "cuda:7"},   {"cuda:63", 1, 63, "cuda:63"},
    };
    for (size_t i = 0; i < TB_ARRAY_LEN(cases); i++) {
        tb_device d = {.cuda = -1, .index = -1};
        tb_err err = {{0}};
        tb_status st = tb_device_parse(cases[i].text, "train.device", &d, &err);
        ck_assert_msg(st == TB_OK, "\"%s\" rejected: %s", cases[i].text, err.msg);
        ck_assert_msg(d.cuda == cases[i].cuda && d.index == cases[i].index, "\"%s\" parsed as cuda %d index %d",
                      cases[i].text, d.cuda, d.index);
        char buf[32];
        tb_device_format(&d, buf, sizeof buf);
        ck_assert_str_eq(buf, cases[i].formatted);
    }
}
END_TEST

START_TEST(test_parse_rejects)
{
    static const char *const bad[] = {"gpu", "cuda:", "cuda:-1", "cuda:64", "cuda:1x", "CUDA", "cuda: 1", "",
                                      "cuda:+1", "cpu:0", " cpu", "cuda:99999999999999999999"};
    static const char *const fields[] = {"train.device", "bench.device"};
    for (size_t i = 0; i < TB_ARRAY_LEN(bad); i++) {
        const char *field = fields[i % TB_ARRAY_LEN(fields)];
        tb_device d;
        tb_err err = {{0}};
        tb_status st = tb_device_parse(bad[i], field, &d, &err);
        ck_assert_msg(st == TB_EINVAL, "\"%s\" gave status %d, expected TB_EINVAL", bad[i], (int)st);
        ck_assert_msg(strstr(err.msg, field) && strstr(err.msg, "allowed"),
                      "\"%s\": the message should name %s and what is allowed: %s", bad[i], field, err.msg);
    }
}
END_TEST

/* format then parse gives the device back, for every index */
START_TEST(test_format_round_trips)
{
    for (int i = -1; i <= 63; i++) {
        tb_device d = {.cuda = i >= 0, .index = i >= 0 ? i : 0}, back;
        char buf[32];
        tb_device_format(&d, buf, sizeof buf);
        tb_err err = {{0}};
        ck_assert_msg(tb_device_parse(buf, "device", &back, &err) == TB_OK, "\"%s\": %s", buf, err.msg);
        ck_assert_msg(back.cuda == d.cuda && back.index == d.index, "\"%s\" came back as cuda %d index %d", buf,
                      back.cuda, back.index);
    }
}
END_TEST

/* ---- the report and backend creation -------------------------------------------- */

/* 1 when some line of text starts with prefix */
static int has_line_starting(const char *text, const char *prefix)
{
    const size_t n = strlen(prefix);
    for (const char *line = text; line && *line;) {
        if (strncmp(line, prefix, n) == 0) return 1;
        line = strchr(line, '\n');
        if (line) line++;
    }
    return 0;
}

START_TEST(test_devices_report)
{
    char why[512] = "";
    int count = tb_cuda_device_count(why, sizeof why);
    ck_assert_int_ge(count, 0);
    static char buf[8192];
    tb_devices_report(buf, sizeof buf);
    ck_assert_msg(strncmp(buf, "cpu", 3) == 0, "the report should start with the cpu:\n%s", buf);
    ck_assert_msg(has_line_starting(buf, "cuda"), "the report has no cuda line:\n%s", buf);
    if (count == 0) {
        ck_assert_msg(why[0] != '\0', "tb_cuda_device_count gave 0 without a reason");
        TBT_ASSERT_HAS(buf, "\ncuda     unavailable: ");
        TBT_ASSERT_HAS(buf, why);
    } else {
        ck_assert_msg(has_line_starting(buf, "cuda:0 "), "a GPU is usable, but the report has no cuda:0 line:\n%s",
                      buf);
        char line[32];
        snprintf(line, sizeof line, "cuda:%d ", count - 1);
        ck_assert_msg(has_line_starting(buf, line), "%d GPUs, but no line starting \"%s\":\n%s", count, line, buf);
        TBT_ASSERT_LACKS(buf, "unavailable");
    }
}
END_TEST

START_TEST(test_backend_create_cuda)
{
    char why[512] = "";
    int count = tb_cuda_device_count(why, sizeof why);
    tb_backend_options opt = {.threads = 1};
    static tb_backend sentinel;
    tb_backend *be = &sentinel; /* must be set to NULL on failure */
    tb_err err = {{0}};
    tb_status st = tb_backend_create(&(tb_device){.cuda = 1, .index = 0}, &opt, &be, &err);
    if (count == 0) {
        ck_assert_msg(st == TB_EINVAL, "cuda:0 without a GPU: status %d (%s), expected TB_EINVAL", (int)st, err.msg);
        ck_assert_ptr_null(be);
        TBT_ASSERT_HAS(err.msg, "cuda:0");
        TBT_ASSERT_HAS(err.msg, why); /* the reason tb_cuda_device_count gives */
        return;
    }
    ck_assert_msg(st == TB_OK, "cuda:0 with %d GPU(s): %s", count, err.msg);
    ck_assert_ptr_nonnull(be);
    ck_assert_str_eq(be->device, "cuda:0");
    ck_assert(be->ops->struct_size == sizeof(tb_backend_ops) && be->ops->failed && be->ops->describe &&
              be->ops->upload && be->ops->destroy);
    char msg[256] = "";
    tb_status fst = TB_OK;
    ck_assert_msg(be->ops->failed(be, &fst, msg, sizeof msg) == 0, "a fresh backend has failed: %s", msg);
    tb_backend_destroy(be);
    /* an index past the last GPU is refused, naming it and what exists */
    if (count <= 63) {
        be = NULL;
        memset(&err, 0, sizeof err);
        st = tb_backend_create(&(tb_device){.cuda = 1, .index = 63}, &opt, &be, &err);
        ck_assert_msg(st == TB_EINVAL, "cuda:63 with %d GPU(s): status %d (%s)", count, (int)st, err.msg);
        ck_assert_ptr_null(be);
        TBT_ASSERT_HAS(err.msg, "cuda:63");
        TBT_ASSERT_HAS(err.msg, "allowed");
    }
}
END_TEST

START_TEST(test_backend_create_cpu)
{
    tb_backend_options opt = {.threads = 1};
    tb_backend *be = NULL;
    tb_err err = {{0}};
    ck_assert_msg(tb_backend_create(&(tb_device){.cuda = 0}, &opt, &be, &err) == TB_OK, "%s", err.msg);
    ck_assert_ptr_nonnull(be);
    ck_assert_str_eq(be->device, "cpu");
    ck_assert_int_eq(be->threads, 1);
    ck_assert(be->ops->struct_size == sizeof(tb_backend_ops) && be->ops->failed && be->ops->describe &&
              be->ops->upload && be->ops->destroy);
    tb_status st = TB_EDEVICE;
    char msg[64] = "junk";
    ck_assert_int_eq(be->ops->failed(be, &st, msg, sizeof msg), 0);
    ck_assert_int_eq(st, TB_OK);
    ck_assert_str_eq(msg, "");
    char desc[256] = "junk";
    be->ops->describe(be, desc, sizeof desc);
    ck_assert_str_eq(desc, "");
    /* upload is a plain copy that may reuse the source at once */
    float src[5] = {1, -2, 3.5f, 0, 7}, *dev = be->ops->alloc(be, sizeof src), back[5];
    ck_assert_ptr_nonnull(dev);
    be->ops->upload(be, dev, src, sizeof src);
    memset(src, 0, sizeof src);
    be->ops->synchronize(be);
    be->ops->to_host(be, back, dev, sizeof back);
    ck_assert(back[0] == 1 && back[1] == -2 && back[2] == 3.5f && back[3] == 0 && back[4] == 7);
    be->ops->free(be, dev);
    tb_backend_destroy(be);
    /* no options: the defaults */
    be = NULL;
    ck_assert_msg(tb_backend_create(&(tb_device){.cuda = 0}, NULL, &be, &err) == TB_OK, "%s", err.msg);
    ck_assert_ptr_nonnull(be);
    ck_assert_str_eq(be->device, "cpu");
    tb_backend_destroy(be);
}
END_TEST

/* ---- the executable ---------------------------------------------------------------- */

/* GPU executor slots: refused with the reason where there are fewer GPUs;
 * the ranges of their arguments are checked first. */
START_TEST(test_executor_gpu_slots)
{
    tb_err err = {{0}};
    tb_executor *ex = NULL;
    char why[512];
    const int have = tb_cuda_device_count(why, sizeof why);
    ck_assert_int_eq(tb_executor_local_create_gpus(0, 1, 0, 1, &ex, &err), TB_EINVAL);
    TBT_ASSERT_HAS(err.msg, "gpus = 0");
    ck_assert_int_eq(tb_executor_local_create_gpus(1, 0, 0, 1, &ex, &err), TB_EINVAL);
    TBT_ASSERT_HAS(err.msg, "runs_per_gpu = 0");
    ck_assert_int_eq(tb_executor_local_create_gpus(1, 1, -1, 1, &ex, &err), TB_EINVAL);
    TBT_ASSERT_HAS(err.msg, "gpu_memory_mib");
    tb_status st = tb_executor_local_create_gpus(have + 1, 2, 0, 1, &ex, &err);
    ck_assert_int_eq(st, TB_EINVAL);
    ck_assert_ptr_null(ex);
    TBT_ASSERT_HAS(err.msg, "gpus = ");
    if (have == 0) TBT_ASSERT_HAS(err.msg, why);
    if (have > 0) {
        ck_assert_int_eq(tb_executor_local_create_gpus(have, 2, 0, 1, &ex, &err), TB_OK);
        ck_assert_int_eq(ex->slots, 2 * have);
        tb_executor_destroy(ex);
    }
}
END_TEST

/* [study] gpus: gpus x runs_per_gpu slots, and a clear error next to slots. */
START_TEST(test_study_gpu_settings)
{
    static const char base[] = "[study]\narchive = /tmp/unused\n%s\n[model]\nname = cnn\n[task]\nname = fashion_mnist\n"
                               "[train]\nepochs = 1\nbatch_size = 64\nloss = cross_entropy\noptimizer = sgd\n";
    char text[1024];
    tb_err err = {{0}};
    tb_config *cfg = NULL;
    tb_study_settings st;
    tb_space space;
    snprintf(text, sizeof text, base, "gpus = 2\nruns_per_gpu = 3\ngpu_memory_mib = 4096");
    ck_assert_int_eq(tb_config_load_text(&cfg, text, "t", &err), TB_OK);
    ck_assert_msg(tb_study_settings_load(&st, &space, cfg, &err) == TB_OK, "%s", err.msg);
    ck_assert_int_eq(st.gpus, 2);
    ck_assert_int_eq(st.runs_per_gpu, 3);
    ck_assert_int_eq(st.slots, 6);
    ck_assert_int_eq(st.gpu_memory_mib, 4096);
    tb_config_free(cfg);
    snprintf(text, sizeof text, base, "gpus = 1\nslots = 4");
    ck_assert_int_eq(tb_config_load_text(&cfg, text, "t", &err), TB_OK);
    ck_assert_int_eq(tb_study_settings_load(&st, &space, cfg, &err), TB_EINVAL);
    TBT_ASSERT_HAS(err.msg, "study.slots");
    TBT_ASSERT_HAS(err.msg, "study.gpus");
    tb_config_free(cfg);
    snprintf(text, sizeof text, base, "runs_per_gpu = 0");
    ck_assert_int_eq(tb_config_load_text(&cfg, text, "t", &err), TB_OK);
    ck_assert_int_eq(tb_study_settings_load(&st, &space, cfg, &err), TB_EINVAL);
    TBT_ASSERT_HAS(err.msg, "runs_per_gpu");
    tb_config_free(cfg);
}
END_TEST

static char dir[] = "/tmp/tb_device_XXXXXX";

static void setup(void) { ck_assert(mkdtemp(dir) != NULL); }

static void teardown(void)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
}

/* Runs tunebench with args, its stdout and stderr redirected as redirect says
 * ("2>&1": both; "2>/dev/null": stdout only; "2>&1 1>/dev/null": stderr only);
 * returns its exit code and what was captured in out. */
/* The run file's status attribute, or "" when there is no such file. */
static void run_status(const char *path, char *buf, size_t len)
{
    buf[0] = '\0';
    struct stat st;
    if (stat(path, &st) != 0) return;
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) {
        snprintf(buf, len, "(unreadable)");
        return;
    }
    hid_t a = H5Aopen_by_name(f, "/", "status", H5P_DEFAULT, H5P_DEFAULT);
    if (a >= 0) {
        hid_t t = H5Aget_type(a);
        char *s = NULL;
        if (H5Aread(a, t, &s) >= 0) snprintf(buf, len, "%s", s ? s : "");
        H5free_memory(s);
        H5Tclose(t);
        H5Aclose(a);
    }
    H5Fclose(f);
}

START_TEST(test_cli_devices)
{
    static char out[1 << 14];
    int rc = tbt_tunebench("devices", "2>/dev/null", out, sizeof out);
    ck_assert_msg(rc == 0, "tunebench devices: exit %d:\n%s", rc, out);
    ck_assert_msg(has_line_starting(out, "cpu"), "no line starting with cpu:\n%s", out);
    ck_assert_msg(has_line_starting(out, "cuda"), "no line starting with cuda:\n%s", out);
    char why[512] = "";
    if (tb_cuda_device_count(why, sizeof why) > 0)
        ck_assert_msg(has_line_starting(out, "cuda:0 "), "a GPU is usable, but no cuda:0 line:\n%s", out);
    else
        TBT_ASSERT_HAS(out, "unavailable");
}
END_TEST

#define QUICKSTART TB_SOURCE_DIR "/configs/quickstart.ini"

/* "gpu" is not a device: a usage error naming the key and the allowed values, nothing trained */
START_TEST(test_cli_bad_device_is_named)
{
    static char out[1 << 14];
    char args[1024], run[300], status[64];
    snprintf(run, sizeof run, "%s/gpu.h5", dir);
    snprintf(args, sizeof args, "train '%s' --quiet --set train.device=gpu --set train.epochs=1 --out '%s'",
             QUICKSTART, run);
    int rc = tbt_tunebench(args, "2>&1 1>/dev/null", out, sizeof out); /* stderr */
    ck_assert_msg(rc == 2, "train.device=gpu: exit %d, expected 2 (usage):\n%s", rc, out);
    TBT_ASSERT_HAS(out, "train.device");
    TBT_ASSERT_HAS(out, "allowed");
    TBT_ASSERT_HAS(out, "gpu");
    run_status(run, status, sizeof status);
    ck_assert_msg(strcmp(status, "finished") != 0, "a run file claims success after a bad device");
}
END_TEST

/* Without a GPU, device = cuda fails before training and says why; with one, a
 * tiny run on it finishes. */
START_TEST(test_cli_cuda_device)
{
    static char out[1 << 16];
    char args[2048], run[300], status[64], why[512] = "";
    snprintf(run, sizeof run, "%s/cuda.h5", dir);
    if (tb_cuda_device_count(why, sizeof why) == 0) {
        snprintf(args, sizeof args, "train '%s' --set train.device=cuda --set train.epochs=1 --out '%s'", QUICKSTART,
                 run);
        int rc = tbt_tunebench(args, "2>&1", out, sizeof out);
        ck_assert_msg(rc != 0, "train.device=cuda without a GPU succeeded:\n%s", out);
        ck_assert_msg(rc != -1, "tunebench crashed:\n%s", out);
        TBT_ASSERT_HAS(out, "cuda");
        TBT_ASSERT_LACKS(out, "epoch 1/"); /* nothing trained */
        run_status(run, status, sizeof status);
        ck_assert_msg(strcmp(status, "finished") != 0, "a run file claims success on a missing GPU:\n%s", out);
        return;
    }
    char task[300], config[300];
    snprintf(task, sizeof task, "%s/toy.h5", dir);
    snprintf(config, sizeof config, "%s/toy.ini", dir);
    tbt_make_toy_task(task, 64, 16, 16, 2, 8, 5);
    FILE *f = fopen(config, "w");
    ck_assert(f != NULL);
    fputs(tbt_toy_config(task, "device = cuda\n"), f);
    fclose(f);
    snprintf(args, sizeof args, "train '%s' --quiet --set train.epochs=1 --out '%s'", config, run);
    int rc = tbt_tunebench(args, "2>&1", out, sizeof out);
    ck_assert_msg(rc == 0, "train.device=cuda with a GPU: exit %d:\n%s", rc, out);
    run_status(run, status, sizeof status);
    ck_assert_str_eq(status, "finished");
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("device");
    TCase *t = tcase_create("device");
    tcase_add_test(t, test_parse_accepts);
    tcase_add_test(t, test_parse_rejects);
    tcase_add_test(t, test_format_round_trips);
    tcase_add_test(t, test_devices_report);
    tcase_add_test(t, test_backend_create_cuda);
    tcase_add_test(t, test_backend_create_cpu);
    tcase_add_test(t, test_executor_gpu_slots);
    tcase_add_test(t, test_study_gpu_settings);
    suite_add_tcase(s, t);
    TCase *c = tcase_create("cli");
    tcase_add_unchecked_fixture(c, setup, teardown);
    tcase_set_timeout(c, 120);
    tcase_add_test(c, test_cli_devices);
    tcase_add_test(c, test_cli_bad_device_is_named);
    tcase_add_test(c, test_cli_cuda_device);
    suite_add_tcase(s, c);
    return s;
}

int main(void) { return tbt_run(suite()); }
