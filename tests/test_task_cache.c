/* test_task_cache.c: the on-disk cache of prepared task data (store/task_cache.h,
 * run/task_load.c): a file written and read back whole; another key, a cut or
 * damaged file not used; a second run reading what the first prepared; every
 * change that alters the prepared data (a task option, a preparation setting,
 * the data file touched or rewritten) a miss, augmentation a hit; a full disk
 * while writing only a warning; runs that miss at once (threads, and
 * `tunebench run-job --task-cache` processes) prepare once. */
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/config.h"
#include "run/run.h"
#include "store/task_cache.h"
#include "study/study.h"
#include "tb_test.h"

static char dir[1024], data[1200], cache[1200];

static void setup(void)
{
    tbt_mkdtemp(dir, sizeof dir, "task_cache");
    snprintf(data, sizeof data, "%s/toy.h5", dir);
    snprintf(cache, sizeof cache, "%s/cache", dir);
    tbt_make_toy_task(data, 96, 32, 32, 4, 12, 5);
}

static void teardown(void) { tbt_rm_rf(dir); }

/* Files in folder whose names end with suffix (or contain it, when contains). */
static int count_files(const char *folder, const char *part, int contains)
{
    DIR *d = opendir(folder);
    if (!d) return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t len = strlen(e->d_name), k = strlen(part);
        if (contains ? strstr(e->d_name, part) != NULL : len >= k && strcmp(e->d_name + len - k, part) == 0) n++;
    }
    closedir(d);
    return n;
}

static int entries(void) { return count_files(cache, ".tbcache", 0); }

/* A run configured from the toy configuration with the overrides in sets
 * ("section.key=value;..."; may be NULL), with the task cache set (NULL: none). */
static void configure(tb_run *run, tb_config **cfg, const char *sets, const char *cache_dir)
{
    tb_err err;
    ck_assert_msg(tb_config_load_text(cfg, tbt_toy_config(data, NULL), "toy.ini", &err) == TB_OK, "%s", err.msg);
    char buf[512];
    snprintf(buf, sizeof buf, "%s", sets ? sets : "");
    for (char *save = NULL, *kv = strtok_r(buf, ";", &save); kv; kv = strtok_r(NULL, ";", &save)) {
        char *eq = strchr(kv, '=');
        ck_assert(eq != NULL);
        *eq = '\0';
        ck_assert_msg(tb_config_set(*cfg, kv, eq + 1, &err) == TB_OK, "%s", err.msg);
    }
    ck_assert_msg(tb_run_configure(run, *cfg, &err) == TB_OK, "%s", err.msg);
    ck_assert_msg(tb_run_set_task_cache(run, cache_dir, &err) == TB_OK, "%s", err.msg);
}

static void load(tb_run *run, tb_config **cfg, const char *sets)
{
    tb_err err;
    configure(run, cfg, sets, cache);
    ck_assert_msg(tb_run_load_task(run, &err) == TB_OK, "%s", err.msg);
    ck_assert(run->task_loaded);
}

static void unload(tb_run *run, tb_config *cfg)
{
    tb_run_free(run);
    tb_config_free(cfg);
}

static size_t pixel_bytes(const tb_task_data *d) { return (size_t)d->count * d->channels * d->height * d->width; }

/* Two prepared tasks hold the same data: pixels, labels, splits, indices, normalisation, names. */
static void assert_same_task(const tb_task *a, const tb_task *b)
{
    const tb_task_data *x = &a->raw, *y = &b->raw;
    ck_assert(x->count == y->count && x->channels == y->channels && x->height == y->height && x->width == y->width);
    ck_assert(x->classes == y->classes && x->classes_guessed == y->classes_guessed);
    ck_assert(!x->pixels_f32 == !y->pixels_f32);
    if (x->pixels_f32) ck_assert(memcmp(x->pixels_f32, y->pixels_f32, pixel_bytes(x) * sizeof(float)) == 0);
    else ck_assert(memcmp(x->pixels, y->pixels, pixel_bytes(x)) == 0);
    ck_assert(memcmp(x->labels, y->labels, (size_t)x->count * sizeof *x->labels) == 0);
    ck_assert(memcmp(x->splits, y->splits, (size_t)x->count) == 0);
    ck_assert(a->n_train == b->n_train && a->n_val == b->n_val && a->n_test == b->n_test);
    ck_assert(memcmp(a->train_idx, b->train_idx, (size_t)a->n_train * sizeof(int32_t)) == 0);
    ck_assert(memcmp(a->val_idx, b->val_idx, (size_t)a->n_val * sizeof(int32_t)) == 0);
    ck_assert(memcmp(a->test_idx, b->test_idx, (size_t)a->n_test * sizeof(int32_t)) == 0);
    ck_assert(memcmp(a->mean, b->mean, sizeof a->mean) == 0 && memcmp(a->std, b->std, sizeof a->std) == 0);
    ck_assert_str_eq(x->source, y->source);
    ck_assert(!x->class_names == !y->class_names);
    for (int c = 0; x->class_names && c < x->classes; c++) ck_assert_str_eq(x->class_names[c], y->class_names[c]);
    ck_assert(a->train.count == b->train.count && a->val.count == b->val.count && a->test.count == b->test.count);
}

/* A prepared task from synthetic data: 60 samples 1x6x6 of 3 named classes
 * (uint8, or float32 when f32), a validation split carved. */
static void synthetic_task(tb_task *t, int f32)
{
    tb_task_data raw;
    memset(&raw, 0, sizeof raw);
    raw.count = 60, raw.channels = 1, raw.height = raw.width = 6, raw.classes = 3;
    if (f32) {
        raw.pixels_f32 = malloc(60 * 36 * sizeof(float));
        ck_assert(raw.pixels_f32 != NULL);
        for (int i = 0; i < 60 * 36; i++) raw.pixels_f32[i] = (float)i * 0.25f - 3.0f;
    }
    raw.pixels = f32 ? NULL : malloc(60 * 36);
    raw.labels = malloc(60 * sizeof(int32_t));
    raw.splits = malloc(60);
    raw.class_names = calloc(3, sizeof(char *));
    ck_assert((raw.pixels || f32) && raw.labels && raw.splits && raw.class_names);
    for (int i = 0; !f32 && i < 60 * 36; i++) raw.pixels[i] = (uint8_t)(i * 7);
    for (int i = 0; i < 60; i++) raw.labels[i] = i % 3, raw.splits[i] = i < 50 ? TB_SPLIT_TRAIN : TB_SPLIT_TEST;
    for (int c = 0; c < 3; c++) raw.class_names[c] = strdup(c == 0 ? "zero" : c == 1 ? "one" : "a longer name");
    snprintf(raw.source, sizeof raw.source, "synthetic");
    tb_task_options opt = {.val_fraction = 0.2, .split_seed = 3};
    tb_err err;
    ck_assert_msg(tb_task_prepare(t, &raw, &opt, &err) == TB_OK, "%s", err.msg);
}

START_TEST(test_file_round_trip_and_damage)
{
    tb_task t, back;
    tb_err err;
    char path[1300];
    /* float32 samples are kept as float32 */
    snprintf(path, sizeof path, "%s/f32.tbcache", dir);
    synthetic_task(&t, 1);
    ck_assert_msg(tb_task_cache_write(path, "float key", &t, &err) == TB_OK, "%s", err.msg);
    ck_assert_msg(tb_task_cache_read(path, "float key", &back, &err) == 1, "%s", err.msg);
    ck_assert_msg(tb_task_adopt(&back, NULL, &err) == TB_OK, "%s", err.msg);
    assert_same_task(&t, &back);
    ck_assert(back.raw.pixels == NULL);
    tb_task_free(&back);
    tb_task_free(&t);

    synthetic_task(&t, 0);
    snprintf(path, sizeof path, "%s/entry.tbcache", dir);
    ck_assert_int_eq(tb_task_cache_read(path, "key one", &back, &err), 0); /* no file: a plain miss */
    ck_assert_msg(tb_task_cache_write(path, "key one", &t, &err) == TB_OK, "%s", err.msg);
    ck_assert_int_eq(count_files(dir, ".tmp-", 1), 0);
    ck_assert_msg(tb_task_cache_read(path, "key one", &back, &err) == 1, "%s", err.msg);
    ck_assert_msg(tb_task_adopt(&back, NULL, &err) == TB_OK, "%s", err.msg);
    assert_same_task(&t, &back);
    tb_task_free(&back);

    /* another key with the same file: not used */
    ck_assert_int_eq(tb_task_cache_read(path, "key two", &back, &err), -1);
    TBT_ASSERT_HAS(err.msg, "made for another key");
    ck_assert_int_eq(tb_task_cache_read(path, "key onf", &back, &err), -1);

    /* one byte of pixels changed: the checksum says so */
    struct stat st;
    ck_assert(stat(path, &st) == 0);
    int fd = open(path, O_RDWR);
    ck_assert(fd >= 0);
    off_t at = st.st_size / 2; /* inside the pixels (2160 of the file's ~3000 bytes) */
    unsigned char b;
    ck_assert(pread(fd, &b, 1, at) == 1);
    b ^= 0x40;
    ck_assert(pwrite(fd, &b, 1, at) == 1);
    ck_assert_int_eq(tb_task_cache_read(path, "key one", &back, &err), -1);
    TBT_ASSERT_HAS(err.msg, "checksum");
    /* cut short */
    ck_assert(ftruncate(fd, st.st_size - 1) == 0);
    close(fd);
    ck_assert_int_eq(tb_task_cache_read(path, "key one", &back, &err), -1);
    TBT_ASSERT_HAS(err.msg, "its header announces");
    /* not a cache at all */
    FILE *f = fopen(path, "w");
    ck_assert(f != NULL);
    for (int i = 0; i < 100; i++) fputs("something else entirely, longer than a header\n", f);
    fclose(f);
    ck_assert_int_eq(tb_task_cache_read(path, "key one", &back, &err), -1);
    TBT_ASSERT_HAS(err.msg, "not a tunebench task cache");
    tb_task_free(&t);
}
END_TEST

/* utimensat's mtime of path moved by delta seconds. */
static void shift_mtime(const char *path, int delta)
{
    struct stat st;
    ck_assert(stat(path, &st) == 0);
    struct timespec ts[2] = {st.st_atim, st.st_mtim};
    ts[1].tv_sec += delta;
    ck_assert(utimensat(AT_FDCWD, path, ts, 0) == 0);
}

START_TEST(test_hit_and_invalidation)
{
    tb_run a, b;
    tb_config *ca, *cb;
    tb_err err;

    /* the first run prepares and writes; the entry is what it prepared */
    load(&a, &ca, NULL);
    ck_assert_int_eq(entries(), 1);
    ck_assert_int_eq(count_files(cache, ".tmp-", 1), 0);
    ck_assert_int_eq(count_files(cache, ".lock", 0), 0);

    /* the second reads it: proven by planting a marked entry under the same key */
    char why[256], name[TB_TASK_CACHE_NAME_MAX], path[1400];
    char *key = tb_run_task_cache_key(&a, why, sizeof why);
    ck_assert_msg(key != NULL, "%s", why);
    tb_task_cache_name(key, name);
    snprintf(path, sizeof path, "%s/%s", cache, name);
    tb_task marked;
    ck_assert_msg(tb_task_cache_read(path, key, &marked, &err) == 1, "%s", err.msg);
    ck_assert_msg(tb_task_adopt(&marked, NULL, &err) == TB_OK, "%s", err.msg);
    assert_same_task(&a.task, &marked);
    marked.raw.pixels[0] ^= 0xff;
    ck_assert_msg(tb_task_cache_write(path, key, &marked, &err) == TB_OK, "%s", err.msg);
    load(&b, &cb, NULL);
    ck_assert_int_eq(entries(), 1);
    ck_assert_int_eq(b.task.raw.pixels[0], marked.raw.pixels[0]);
    ck_assert_int_ne(b.task.raw.pixels[0], a.task.raw.pixels[0]);
    marked.raw.pixels[0] ^= 0xff; /* back: the rest must be a's data */
    memcpy(b.task.raw.pixels, marked.raw.pixels, 1);
    assert_same_task(&a.task, &b.task);
    tb_task_free(&marked);
    free(key);
    unload(&b, cb);

    /* augmentation is applied as samples are read: the same entry */
    load(&b, &cb, "task.hflip=true;task.crop_padding=2");
    ck_assert_int_eq(entries(), 1);
    ck_assert(b.task.train.begin_epoch != NULL); /* the views do augment */
    unload(&b, cb);

    /* a task option changes: a miss */
    load(&b, &cb, "hdf5.classes=4");
    ck_assert_int_eq(entries(), 2);
    ck_assert_int_eq(b.task.raw.classes_guessed, 0);
    unload(&b, cb);
    /* preparation settings change: a miss each */
    load(&b, &cb, "task.resolution=8");
    ck_assert_int_eq(entries(), 3);
    ck_assert_int_eq(b.task.raw.height, 8);
    unload(&b, cb);
    load(&b, &cb, "task.folds=3;task.fold=1");
    ck_assert_int_eq(entries(), 4);
    unload(&b, cb);
    load(&b, &cb, "task.folds=3;task.fold=2");
    ck_assert_int_eq(entries(), 5);
    unload(&b, cb);
    load(&b, &cb, "task.merge_val=true");
    ck_assert_int_eq(entries(), 6);
    ck_assert_int_eq(b.task.n_val, 0);
    unload(&b, cb);
    load(&b, &cb, "task.mean=0.5;task.std=0.25");
    ck_assert_int_eq(entries(), 7);
    ck_assert(b.task.mean[0] == 0.5f);
    unload(&b, cb);
    /* the unchanged configuration still hits */
    load(&b, &cb, NULL);
    ck_assert_int_eq(entries(), 7);
    unload(&b, cb);

    /* the data file touched: a miss */
    shift_mtime(data, 10);
    load(&b, &cb, NULL);
    ck_assert_int_eq(entries(), 8);
    unload(&b, cb);
    /* rewritten with other samples, its mtime put back: still a miss (ctime, inode, size) */
    shift_mtime(data, 0);
    struct stat before;
    ck_assert(stat(data, &before) == 0);
    tbt_make_toy_task(data, 96, 32, 32, 4, 12, 6);
    struct timespec ts[2] = {before.st_atim, before.st_mtim};
    ck_assert(utimensat(AT_FDCWD, data, ts, 0) == 0);
    load(&b, &cb, NULL);
    ck_assert_int_eq(entries(), 9);
    ck_assert(memcmp(a.task.raw.pixels, b.task.raw.pixels, pixel_bytes(&a.task.raw)) != 0);
    unload(&b, cb);
    unload(&a, ca);
}
END_TEST

/* A full disk (a file size limit: EFBIG) while writing the entry: a warning,
 * the data prepared all the same, nothing left in the cache. */
START_TEST(test_full_disk_is_a_warning)
{
    char log[1300];
    snprintf(log, sizeof log, "%s/stderr.txt", dir);
    pid_t pid = fork();
    ck_assert(pid >= 0);
    if (pid == 0) {
        signal(SIGXFSZ, SIG_IGN);
        if (!freopen(log, "w", stderr)) _exit(3);
        struct rlimit lim = {16 * 1024, 16 * 1024}; /* the entry is ~60 KiB */
        if (setrlimit(RLIMIT_FSIZE, &lim) != 0) _exit(4);
        tb_run run;
        tb_config *cfg;
        tb_err err;
        if (tb_config_load_text(&cfg, tbt_toy_config(data, NULL), "toy.ini", &err) != TB_OK ||
            tb_run_configure(&run, cfg, &err) != TB_OK || tb_run_set_task_cache(&run, cache, &err) != TB_OK)
            _exit(5);
        tb_status st = tb_run_load_task(&run, &err);
        fflush(stderr);
        _exit(st == TB_OK && run.task_loaded && run.task.train.count == 96 ? 0 : 6);
    }
    int status = 0;
    ck_assert(waitpid(pid, &status, 0) == pid);
    char *text = tbt_slurp(log, NULL);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %d:\n%s", status, text);
    TBT_ASSERT_HAS(text, "cannot write: File too large; training without caching");
    ck_assert_int_eq(entries(), 0);
    ck_assert_int_eq(count_files(cache, ".tmp-", 1), 0);
    free(text);
}
END_TEST

/* Four runs that miss at once (threads of one process, as a study's slots):
 * one prepares and writes, the others wait for it and read; all equal. */
static void *load_thread(void *arg)
{
    tb_run *run = arg;
    tb_err err;
    tb_status st = tb_run_load_task(run, &err);
    if (st != TB_OK) fprintf(stderr, "load_thread: %s\n", err.msg);
    return st == TB_OK ? run : NULL;
}

START_TEST(test_concurrent_misses_prepare_once)
{
    enum { N = 4 };
    tb_run runs[N];
    tb_config *cfgs[N];
    for (int i = 0; i < N; i++) configure(&runs[i], &cfgs[i], NULL, cache);
    char log[1300];
    snprintf(log, sizeof log, "%s/threads.txt", dir);
    fflush(stderr);
    int saved = dup(2), fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ck_assert(saved >= 0 && fd >= 0 && dup2(fd, 2) == 2);
    close(fd);
    pthread_t th[N];
    for (int i = 0; i < N; i++) ck_assert(pthread_create(&th[i], NULL, load_thread, &runs[i]) == 0);
    void *ok[N];
    for (int i = 0; i < N; i++) pthread_join(th[i], &ok[i]);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    char *text = tbt_slurp(log, NULL);
    for (int i = 0; i < N; i++) ck_assert_msg(ok[i] != NULL, "run %d failed:\n%s", i, text);
    int cached = 0, read_back = 0;
    for (const char *p = text; (p = strstr(p, "prepared data cached in")); p++) cached++;
    for (const char *p = text; (p = strstr(p, "prepared data from the cache")); p++) read_back++;
    ck_assert_msg(cached == 1 && read_back == N - 1, "%d writes, %d reads:\n%s", cached, read_back, text);
    ck_assert_int_eq(entries(), 1);
    ck_assert_int_eq(count_files(cache, ".tmp-", 1), 0);
    ck_assert_int_eq(count_files(cache, ".lock", 0), 0);
    for (int i = 1; i < N; i++) assert_same_task(&runs[0].task, &runs[i].task);
    for (int i = 0; i < N; i++) unload(&runs[i], cfgs[i]);
    free(text);
}
END_TEST

/* `tunebench run-job JOB.ini --task-cache DIR` in three processes at once:
 * one entry, written once, all three finished with the same accuracy; then
 * `tunebench train --task-cache DIR` reads it too. */
START_TEST(test_run_job_processes_share_the_cache)
{
    char cmd[8192];
    int k = snprintf(cmd, sizeof cmd, "cd '%s' && (", dir);
    for (int i = 0; i < 3; i++) {
        char ini[1300], run[1300];
        snprintf(ini, sizeof ini, "%s/job%d.ini", dir, i);
        snprintf(run, sizeof run, "%s/job%d.run.h5", dir, i);
        FILE *f = fopen(ini, "w");
        ck_assert(f != NULL);
        fprintf(f, "%s[output]\nrun = %s\n", tbt_toy_config(data, "threads = 1\n"), run);
        fclose(f);
        k += snprintf(cmd + k, sizeof cmd - (size_t)k, "'%s' run-job job%d.ini --task-cache cache > out%d.txt 2>&1 & ",
                      tbt_exe(), i, i);
    }
    snprintf(cmd + k, sizeof cmd - (size_t)k, "wait) && cat out0.txt out1.txt out2.txt");
    static char out[1 << 16];
    ck_assert_msg(tbt_capture(cmd, out, sizeof out) == 0, "%s", out);
    int cached = 0, read_back = 0, finished = 0;
    for (const char *p = out; (p = strstr(p, "prepared data cached in")); p++) cached++;
    for (const char *p = out; (p = strstr(p, "prepared data from the cache")); p++) read_back++;
    for (const char *p = out; (p = strstr(p, "event finished status=finished")); p++) finished++;
    ck_assert_msg(cached == 1 && read_back == 2 && finished == 3, "%s", out);
    ck_assert_int_eq(entries(), 1);

    char args[4096];
    snprintf(args, sizeof args, "train %s/job0.ini --out %s/train.h5 --task-cache %s --quiet", dir, dir, cache);
    ck_assert_msg(tbt_tunebench(args, "2>&1", out, sizeof out) == 0, "%s", out);
    TBT_ASSERT_HAS(out, "prepared data from the cache");
    snprintf(args, sizeof args, "train %s/job0.ini --out %s/train2.h5 --task-cache off --quiet", dir, dir);
    ck_assert_msg(tbt_tunebench(args, "2>&1", out, sizeof out) == 0, "%s", out);
    TBT_ASSERT_LACKS(out, "prepared data");
}
END_TEST

/* Sweeps give their runs ARCHIVE/cache unless --task-cache says otherwise
 * (a folder, or off); the first run writes, the second reads. */
START_TEST(test_sweep_task_cache_option)
{
    char ini[1300], args[4096], path[1400];
    snprintf(ini, sizeof ini, "%s/sweep.ini", dir);
    FILE *f = fopen(ini, "w");
    ck_assert(f != NULL);
    fputs(tbt_toy_config(data, "threads = 1\n"), f);
    fclose(f);
    static char out[1 << 16];
    /* the runs train in their own processes (the process executor): their notes are in the spool's logs */
    char logs[1600];
    snprintf(args, sizeof args, "sweep %s --grid train.lr=0.01,0.02 --archive %s/a --quiet", ini, dir);
    snprintf(logs, sizeof logs, "2>&1 && { cat %s/a/spool/*.log 2>/dev/null; true; }", dir);
    ck_assert_msg(tbt_tunebench(args, logs, out, sizeof out) == 0, "%s", out);
    TBT_ASSERT_HAS(out, "prepared data cached in");
    TBT_ASSERT_HAS(out, "prepared data from the cache");
    snprintf(path, sizeof path, "%s/a/cache", dir);
    ck_assert_int_eq(count_files(path, ".tbcache", 0), 1);

    snprintf(args, sizeof args, "sweep %s --grid train.lr=0.01,0.02 --archive %s/b --task-cache off --quiet", ini, dir);
    snprintf(logs, sizeof logs, "2>&1 && { cat %s/b/spool/*.log 2>/dev/null; true; }", dir);
    ck_assert_msg(tbt_tunebench(args, logs, out, sizeof out) == 0, "%s", out);
    TBT_ASSERT_LACKS(out, "prepared data");
    snprintf(path, sizeof path, "%s/b/cache", dir);
    ck_assert_msg(access(path, F_OK) != 0, "%s was made", path);

    snprintf(args, sizeof args, "sweep %s --grid train.lr=0.01,0.02 --archive %s/c --task-cache %s/elsewhere --quiet",
             ini, dir, dir);
    ck_assert_msg(tbt_tunebench(args, "2>&1", out, sizeof out) == 0, "%s", out);
    snprintf(path, sizeof path, "%s/elsewhere", dir);
    ck_assert_int_eq(count_files(path, ".tbcache", 0), 1);
}
END_TEST

/* [study] task_cache: absent (ARCHIVE/cache when the study opens), a folder, off; "" refused. */
START_TEST(test_study_task_cache_setting)
{
    static const struct {
        const char *value;
        tb_status st;
        const char *cache;
        int by_default;
    } cases[] = {
        {NULL, TB_OK, "", 1},
        {"/data/cache", TB_OK, "/data/cache", 0},
        {"off", TB_OK, "", 0},
        {"", TB_EINVAL, NULL, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tb_config *cfg = NULL;
        tb_err err;
        char text[2048];
        snprintf(text, sizeof text, "[study]\narchive = %s/s\n%s%s%s", dir, cases[i].value ? "task_cache = \"" : "",
                 cases[i].value ? cases[i].value : "", cases[i].value ? "\"\n" : "");
        ck_assert_msg(tb_config_load_text(&cfg, text, "study.ini", &err) == TB_OK, "%s", err.msg);
        tb_study_settings st;
        tb_space space;
        tb_status got = tb_study_settings_load(&st, &space, cfg, &err);
        ck_assert_msg(got == cases[i].st, "task_cache = %s: %s", cases[i].value, err.msg);
        if (got == TB_OK) {
            ck_assert_str_eq(st.task_cache, cases[i].cache);
            ck_assert_int_eq(st.task_cache_default, cases[i].by_default);
        } else {
            TBT_ASSERT_HAS(err.msg, "study.task_cache = \"\" is empty; allowed: a folder path, or off");
        }
        tb_config_free(cfg);
    }
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("task_cache");
    TCase *tc = tcase_create("task_cache");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_file_round_trip_and_damage);
    tcase_add_test(tc, test_hit_and_invalidation);
    tcase_add_test(tc, test_full_disk_is_a_warning);
    tcase_add_test(tc, test_concurrent_misses_prepare_once);
    tcase_add_test(tc, test_run_job_processes_share_the_cache);
    tcase_add_test(tc, test_sweep_task_cache_option);
    tcase_add_test(tc, test_study_task_cache_setting);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tbt_run(suite()); }
