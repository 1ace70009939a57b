/* test_outputs.c: where results go and how a run stops, through the executable
 * (issue 11, items 3 to 5). An output path that would replace an input, a
 * directory, a FIFO, a socket, a device, or that cannot be written is refused
 * with exit 2 before any data loads, and what is at the path is untouched; a
 * run file is replaced, a file tunebench did not write only with --force.
 * SIGTERM and SIGHUP stop `train` after the current batch with exit 4 and a
 * run file; `study` closes cleanly with no run left "training". */
#define _GNU_SOURCE
#include <errno.h>
#include <hdf5.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/common.h"
#include "tb_test.h"

static char dir[] = "/tmp/tb_outputs_XXXXXX";
static char data_path[256], config_path[256], long_config_path[256];

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    ck_assert_msg(f != NULL, "cannot write %s", path);
    fputs(text, f);
    fclose(f);
}

/* The toy configuration with its "epochs = 2" replaced by epochs (10 characters). */
static void write_config(const char *path, const char *epochs, const char *extra)
{
    char text[4096];
    snprintf(text, sizeof text, "%s", tbt_toy_config(data_path, extra));
    char *e = strstr(text, "epochs = 2");
    ck_assert(e != NULL && strlen(epochs) == 10);
    memcpy(e, epochs, 10);
    write_file(path, text);
}

static void setup(void)
{
    ck_assert(mkdtemp(dir) != NULL);
    snprintf(data_path, sizeof data_path, "%s/data.h5", dir);
    snprintf(config_path, sizeof config_path, "%s/run.ini", dir);
    snprintf(long_config_path, sizeof long_config_path, "%s/long.ini", dir);
    tbt_make_toy_task(data_path, 320, 64, 64, 2, 8, 7);
    char extra[512];
    snprintf(extra, sizeof extra, "threads = 1\n[output]\nrun = %s/runs/run.h5\n", dir);
    write_config(config_path, "epochs = 1", extra);
    /* long enough to be stopped by a signal well before the end */
    snprintf(extra, sizeof extra, "threads = 1\n[output]\nrun = %s/runs/long.h5\n", dir);
    write_config(long_config_path, "epochs=999", extra);
}

static void teardown(void)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "chmod -R u+w '%s'; rm -rf '%s'", dir, dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
}

/* What is at a path: its kind, inode and (for a regular file) content. */
typedef struct snapshot {
    int exists;
    struct stat st;
    char content[256];
} snapshot;

static snapshot snap(const char *path)
{
    snapshot s;
    memset(&s, 0, sizeof s);
    s.exists = lstat(path, &s.st) == 0;
    if (s.exists && S_ISREG(s.st.st_mode)) {
        FILE *f = fopen(path, "rb");
        ck_assert(f != NULL);
        size_t n = fread(s.content, 1, sizeof s.content - 1, f);
        (void)n;
        fclose(f);
    }
    return s;
}

static void assert_unchanged(const char *path, const snapshot *before)
{
    snapshot now = snap(path);
    ck_assert_msg(now.exists == before->exists, "%s appeared or vanished", path);
    if (!now.exists) return;
    ck_assert_msg(now.st.st_ino == before->st.st_ino && now.st.st_dev == before->st.st_dev, "%s was replaced", path);
    ck_assert_msg((now.st.st_mode & S_IFMT) == (before->st.st_mode & S_IFMT), "%s changed kind", path);
    ck_assert_msg(now.st.st_size == before->st.st_size && memcmp(now.content, before->content, sizeof now.content) == 0,
                  "%s changed", path);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* `train CONFIG extra` must be refused with exit 2 before any data loads,
 * its message holding each of expect (NULL-terminated), target untouched. */
static void assert_refused(const char *extra, const char *target, const char *const *expect)
{
    static char out[1 << 16];
    char args[2048];
    snapshot before = snap(target);
    snprintf(args, sizeof args, "train '%s' %s", config_path, extra);
    double t0 = now_s();
    int rc = tbt_tunebench(args, "2>&1", out, sizeof out);
    double took = now_s() - t0;
    ck_assert_msg(rc == 2, "%s: expected exit 2, got %d:\n%s", extra, rc, out);
    for (int i = 0; expect[i]; i++) ck_assert_msg(strstr(out, expect[i]), "%s: lacks \"%s\" in:\n%s", extra, expect[i], out);
    /* nothing trained, no data loaded: no epoch, no "data:" summary */
    ck_assert_msg(!strstr(out, "epoch ") && !strstr(out, "data: "), "%s: refused too late:\n%s", extra, out);
    ck_assert_msg(took < 30, "%s: took %.1f s", extra, took);
    assert_unchanged(target, &before);
}

/* The string attribute name of an HDF5 file's root group (which must exist). */
static void root_attr(const char *path, const char *name, char *out, size_t cap)
{
    out[0] = '\0';
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    ck_assert_msg(f >= 0, "cannot open %s", path);
    hid_t a = H5Aopen(f, name, H5P_DEFAULT);
    ck_assert_msg(a >= 0, "%s has no attribute %s", path, name);
    hid_t t = H5Aget_type(a);
    char *s = NULL;
    ck_assert(H5Aread(a, t, &s) >= 0);
    snprintf(out, cap, "%s", s ? s : "");
    H5free_memory(s);
    H5Tclose(t);
    H5Aclose(a);
    H5Fclose(f);
}

START_TEST(test_inputs_are_never_outputs)
{
    char extra[1024];
    snprintf(extra, sizeof extra, "--out '%s'", config_path);
    assert_refused(extra, config_path, (const char *[]){"--out", config_path, "the configuration file", NULL});
    snprintf(extra, sizeof extra, "--out '%s' --force", data_path);
    assert_refused(extra, data_path, (const char *[]){"--out", data_path, "hdf5.path", NULL});
    snprintf(extra, sizeof extra, "--set 'output.checkpoint=%s'", data_path);
    assert_refused(extra, data_path, (const char *[]){"output.checkpoint", data_path, "hdf5.path", NULL});
    /* model.init_from: a run file of this task, which is also an allowed output otherwise */
    char run[300], args[1024];
    static char out[1 << 16];
    snprintf(run, sizeof run, "%s/runs/init.h5", dir);
    snprintf(args, sizeof args, "train '%s' --quiet --out '%s'", config_path, run);
    ck_assert_msg(tbt_tunebench(args, "2>&1", out, sizeof out) == 0, "%s", out);
    snprintf(extra, sizeof extra, "--set 'model.init_from=%s' --out '%s'", run, run);
    assert_refused(extra, run, (const char *[]){"--out", "model.init_from", NULL});
}
END_TEST

START_TEST(test_special_files_are_never_replaced)
{
    char path[300], extra[1024];
    /* a FIFO */
    snprintf(path, sizeof path, "%s/fifo", dir);
    ck_assert(mkfifo(path, 0600) == 0);
    snprintf(extra, sizeof extra, "--out '%s' --force", path);
    assert_refused(extra, path, (const char *[]){"--out", path, "a FIFO", "never", NULL});
    /* a directory */
    snprintf(path, sizeof path, "%s/adir", dir);
    ck_assert(mkdir(path, 0755) == 0);
    snprintf(extra, sizeof extra, "--out '%s' --force", path);
    assert_refused(extra, path, (const char *[]){"--out", path, "a directory", NULL});
    /* a socket */
    snprintf(path, sizeof path, "%s/sock", dir);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    ck_assert(strlen(path) < sizeof sa.sun_path);
    memcpy(sa.sun_path, path, strlen(path) + 1);
    ck_assert(fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0);
    snprintf(extra, sizeof extra, "--out '%s'", path);
    assert_refused(extra, path, (const char *[]){"--out", "a socket", NULL});
    close(fd);
    /* a device: /dev/null itself (refused before anything is written, as root too) */
    assert_refused("--out /dev/null --force", "/dev/null", (const char *[]){"--out", "/dev/null", "device", NULL});
    struct stat st;
    ck_assert(stat("/dev/null", &st) == 0 && S_ISCHR(st.st_mode));
    /* the same for output.checkpoint */
    assert_refused("--set output.checkpoint=/dev/null", "/dev/null",
                   (const char *[]){"output.checkpoint", "/dev/null", "device", NULL});
}
END_TEST

START_TEST(test_unwritable_paths_are_found_before_training)
{
    char path[600], extra[1024], file[300];
    /* a path under a regular file: no directory can be made there (root too) */
    snprintf(file, sizeof file, "%s/plain.txt", dir);
    write_file(file, "not a directory\n");
    snprintf(path, sizeof path, "%s/out.h5", file);
    snprintf(extra, sizeof extra, "--out '%s'", path);
    assert_refused(extra, file, (const char *[]){"--out", path, "not a directory", NULL});
    snprintf(path, sizeof path, "%s/deeper/out.h5", file);
    snprintf(extra, sizeof extra, "--out '%s'", path);
    assert_refused(extra, file, (const char *[]){"--out", "not a directory", NULL});
    /* a read-only directory (permissions do not bind root) */
    if (geteuid() != 0) {
        char ro[300];
        snprintf(ro, sizeof ro, "%s/ro", dir);
        ck_assert(mkdir(ro, 0555) == 0);
        snprintf(path, sizeof path, "%s/sub/out.h5", ro);
        snprintf(extra, sizeof extra, "--out '%s'", path);
        assert_refused(extra, ro, (const char *[]){"--out", "not writable", NULL});
    }
    /* a 300-character name */
    char name[301];
    memset(name, 'n', 300);
    name[300] = '\0';
    snprintf(path, sizeof path, "%s/%s", dir, name);
    snprintf(extra, sizeof extra, "--out '%s'", path);
    assert_refused(extra, path, (const char *[]){"--out", "300 characters", "at most", NULL});
    /* an empty name */
    assert_refused("--out ''", dir, (const char *[]){"--out = \"\"", "empty", NULL});
    assert_refused("--set output.run=", dir, (const char *[]){"output.run = \"\"", "empty", NULL});
}
END_TEST

START_TEST(test_what_may_be_replaced)
{
    static char out[1 << 16];
    char path[300], args[1024], fmt[64];
    /* a run file is replaced by the next run */
    snprintf(path, sizeof path, "%s/runs/again.h5", dir);
    snprintf(args, sizeof args, "train '%s' --quiet --out '%s'", config_path, path);
    ck_assert_msg(tbt_tunebench(args, "2>&1", out, sizeof out) == 0, "%s", out);
    struct stat first, second;
    ck_assert(stat(path, &first) == 0);
    ck_assert_msg(tbt_tunebench(args, "2>&1", out, sizeof out) == 0, "a run file was not replaced:\n%s", out);
    ck_assert(stat(path, &second) == 0);
    ck_assert_msg(first.st_ino != second.st_ino, "the run file was not written anew");
    root_attr(path, "format", fmt, sizeof fmt);
    ck_assert_str_eq(fmt, "tunebench-run");
    /* a checkpoint is replaced too */
    char ckpt[300];
    snprintf(ckpt, sizeof ckpt, "%s/ckpt.h5", dir);
    snprintf(args, sizeof args, "train '%s' --quiet --set 'output.checkpoint=%s'", config_path, ckpt);
    ck_assert_msg(tbt_tunebench(args, "2>&1", out, sizeof out) == 0, "%s", out);
    ck_assert_msg(tbt_tunebench(args, "2>&1", out, sizeof out) == 0, "a checkpoint was not replaced:\n%s", out);
    root_attr(ckpt, "format", fmt, sizeof fmt);
    ck_assert_str_eq(fmt, "tunebench-checkpoint");
    /* a file tunebench did not write: refused, then replaced with --force */
    snprintf(path, sizeof path, "%s/notes.h5", dir);
    write_file(path, "my notes, not a run file\n");
    snprintf(args, sizeof args, "--out '%s'", path);
    assert_refused(args, path, (const char *[]){"--out", path, "did not write", "--force", NULL});
    snprintf(args, sizeof args, "--set 'output.checkpoint=%s'", path);
    assert_refused(args, path, (const char *[]){"output.checkpoint", "did not write", NULL});
    snprintf(args, sizeof args, "train '%s' --quiet --force --out '%s'", config_path, path);
    ck_assert_msg(tbt_tunebench(args, "2>&1", out, sizeof out) == 0, "--force:\n%s", out);
    root_attr(path, "format", fmt, sizeof fmt);
    ck_assert_str_eq(fmt, "tunebench-run");
}
END_TEST

START_TEST(test_study_archive_checked_before_data)
{
    char cfg_path[300], file[300], extra[1024], args[1024];
    static char out[1 << 16];
    snprintf(cfg_path, sizeof cfg_path, "%s/bad_archive.ini", dir);
    snprintf(file, sizeof file, "%s/plain_archive.txt", dir);
    write_file(file, "not a directory\n");
    snprintf(extra, sizeof extra,
             "threads = 1\n[study]\narchive = %s/arch\nfinal_seeds = 5\n[space]\nepochs = int 1 3\n", file);
    write_file(cfg_path, tbt_toy_config(data_path, extra));
    snprintf(args, sizeof args, "study '%s' --script /dev/null", cfg_path);
    int rc = tbt_tunebench(args, "2>&1", out, sizeof out);
    ck_assert_msg(rc == 2, "exit %d:\n%s", rc, out);
    TBT_ASSERT_HAS(out, "study.archive");
    TBT_ASSERT_HAS(out, "not a directory");
    TBT_ASSERT_LACKS(out, "[hdf5]"); /* the task's data was never opened */
}
END_TEST

/* ---- signals ----------------------------------------------------------------------------- */

/* Starts TB_TUNEBENCH_EXE with argv (NULL-terminated), stdout into a pipe
 * (*out_fd), stderr into err_path. */
static pid_t spawn(char *const argv[], int *out_fd, const char *err_path)
{
    int p[2];
    ck_assert(pipe(p) == 0);
    pid_t pid = fork();
    ck_assert(pid >= 0);
    if (pid == 0) {
        dup2(p[1], STDOUT_FILENO);
        close(p[0]), close(p[1]);
        FILE *e = freopen(err_path, "w", stderr);
        (void)e;
        execv(tbt_exe(), argv);
        _exit(127);
    }
    close(p[1]);
    *out_fd = p[0];
    return pid;
}

/* Reads the child's stdout into buf until it holds want (1) or timeout (0). */
static int read_until(int fd, char *buf, size_t cap, size_t *used, const char *want, double timeout_s)
{
    double end = now_s() + timeout_s;
    while (!strstr(buf, want)) {
        double left = end - now_s();
        if (left <= 0) return 0;
        struct pollfd pf = {fd, POLLIN, 0};
        if (poll(&pf, 1, (int)(left * 1000) + 1) <= 0) continue;
        if (*used + 1 >= cap) return 0;
        ssize_t n = read(fd, buf + *used, cap - 1 - *used);
        if (n <= 0) return 0;
        *used += (size_t)n;
        buf[*used] = '\0';
    }
    return 1;
}

/* 1 when text shows "epoch N/of" with N >= min (a front end may skip epochs
 * that arrived together, so no particular N is promised). */
static int shows_epoch(const char *text, int min, int of)
{
    char tail[32];
    snprintf(tail, sizeof tail, "/%d,", of);
    for (const char *p = text; (p = strstr(p, "epoch ")); p++) {
        char *end;
        long n = strtol(p + 6, &end, 10);
        if (end != p + 6 && n >= min && strncmp(end, tail, strlen(tail)) == 0) return 1;
    }
    return 0;
}

/* read_until for shows_epoch(buf, min, of). */
static int read_until_epoch(int fd, char *buf, size_t cap, size_t *used, int min, int of, double timeout_s)
{
    double end = now_s() + timeout_s;
    while (!shows_epoch(buf, min, of)) {
        double left = end - now_s();
        if (left <= 0) return 0;
        struct pollfd pf = {fd, POLLIN, 0};
        if (poll(&pf, 1, (int)(left * 1000) + 1) <= 0) continue;
        if (*used + 1 >= cap) { /* keep the last half: what is looked for is new */
            size_t keep = cap / 2;
            memmove(buf, buf + *used - keep, keep);
            *used = keep;
            buf[*used] = '\0';
        }
        ssize_t n = read(fd, buf + *used, cap - 1 - *used);
        if (n <= 0) return 0;
        *used += (size_t)n;
        buf[*used] = '\0';
    }
    return 1;
}

/* The exit status of pid within timeout_s, or -1 (then it is killed). */
static int wait_exit(pid_t pid, int fd, double timeout_s)
{
    double end = now_s() + timeout_s;
    char sink[4096];
    for (;;) {
        int status;
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid) return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        if (now_s() > end) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            return -1;
        }
        struct pollfd pf = {fd, POLLIN, 0};
        if (poll(&pf, 1, 50) > 0 && read(fd, sink, sizeof sink) <= 0) {
            struct timespec ts = {0, 20 * 1000000L};
            nanosleep(&ts, NULL);
        }
    }
}

static void slurp(const char *path, char *out, size_t cap)
{
    out[0] = '\0';
    FILE *f = fopen(path, "r");
    if (!f) return;
    size_t n = fread(out, 1, cap - 1, f);
    out[n] = '\0';
    fclose(f);
}

static void train_stopped_by(int sig, const char *name)
{
    char run[300], err_path[300];
    snprintf(run, sizeof run, "%s/runs/%s.h5", dir, name);
    snprintf(err_path, sizeof err_path, "%s/%s.err", dir, name);
    char *argv[] = {"tunebench", "train", long_config_path, "--out", run, NULL};
    int fd;
    pid_t pid = spawn(argv, &fd, err_path);
    static char buf[1 << 16];
    buf[0] = '\0';
    size_t used = 0;
    int seen = read_until(fd, buf, sizeof buf, &used, "epoch 1/999:", 120);
    if (!seen) kill(pid, SIGKILL);
    ck_assert_msg(seen, "%s: no first epoch:\n%s", name, buf);
    ck_assert(kill(pid, sig) == 0);
    int rc = wait_exit(pid, fd, 60);
    close(fd);
    static char err[1 << 14];
    slurp(err_path, err, sizeof err);
    ck_assert_msg(rc == 4, "%s: exit %d, expected 4 (interrupted); stderr:\n%s", name, rc, err);
    TBT_ASSERT_HAS(err, name);
    char status[64];
    root_attr(run, "status", status, sizeof status);
    /* docs/run-files.md: a run file's status is finished, diverged, cancelled
     * or time-limit; a signal ends the run "cancelled" */
    ck_assert_msg(!strcmp(status, "cancelled"), "%s: status %s, expected cancelled", name, status);
}

START_TEST(test_sigterm_stops_train)
{
    train_stopped_by(SIGTERM, "SIGTERM");
}
END_TEST

START_TEST(test_sighup_stops_train)
{
    train_stopped_by(SIGHUP, "SIGHUP");
}
END_TEST

/* Every string of a column of index.h5. */
static int index_statuses(const char *path, char out[][32], int max)
{
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    ck_assert_msg(f >= 0, "cannot open %s", path);
    hid_t d = H5Dopen2(f, "/index/status", H5P_DEFAULT);
    ck_assert(d >= 0);
    hid_t s = H5Dget_space(d);
    int n = (int)H5Sget_simple_extent_npoints(s);
    ck_assert(n <= max);
    hid_t t = H5Dget_type(d);
    char **v = calloc((size_t)(n ? n : 1), sizeof *v);
    if (H5Tis_variable_str(t) > 0) {
        ck_assert(H5Dread(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) >= 0);
        for (int i = 0; i < n; i++) snprintf(out[i], 32, "%s", v[i] ? v[i] : "");
        H5Dvlen_reclaim(t, s, H5P_DEFAULT, v);
    } else {
        size_t sz = H5Tget_size(t);
        char *raw = calloc((size_t)n + 1, sz + 1);
        ck_assert(H5Dread(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, raw) >= 0);
        for (int i = 0; i < n; i++) snprintf(out[i], 32, "%.*s", (int)sz, raw + (size_t)i * sz);
        free(raw);
    }
    free(v);
    H5Tclose(t), H5Sclose(s), H5Dclose(d), H5Fclose(f);
    return n;
}

START_TEST(test_sigterm_closes_a_study)
{
    char cfg_path[300], script[300], err_path[300], extra[2048];
    snprintf(cfg_path, sizeof cfg_path, "%s/study.ini", dir);
    snprintf(script, sizeof script, "%s/session.txt", dir);
    snprintf(err_path, sizeof err_path, "%s/study.err", dir);
    snprintf(extra, sizeof extra,
             "threads = 1\n[study]\narchive = %s/study\nfinal_seeds = 5\nslots = 1\n"
             "[space]\nepochs = int 1 1000\nlr = float 1e-6 1000 log\n",
             dir);
    write_file(cfg_path, tbt_toy_config(data_path, extra));
    write_file(script, "register id=ann education=bachelor dl_months=0\nconsent\nenter\n"
                       "submit epochs=900 batch_size=16 loss=cross_entropy optimizer=adam lr=0.01\n"
                       "wait\nsubmit epochs=900 batch_size=16 loss=cross_entropy optimizer=adam lr=0.01\nwait\n");
    char *argv[] = {"tunebench", "study", cfg_path, "--script", script, NULL};
    int fd;
    pid_t pid = spawn(argv, &fd, err_path);
    static char buf[1 << 16];
    buf[0] = '\0';
    size_t used = 0;
    int seen = read_until_epoch(fd, buf, sizeof buf, &used, 2, 900, 120);
    if (!seen) {
        kill(pid, SIGKILL);
        static char why[1 << 12];
        slurp(err_path, why, sizeof why);
        /* the ends only: Check cannot carry a long message */
        ck_abort_msg("no epoch shown in 120 s; output ends:\n%s\nstderr ends:\n%s",
                     used > 1500 ? buf + used - 1500 : buf, strlen(why) > 1500 ? why + strlen(why) - 1500 : why);
    }
    ck_assert(kill(pid, SIGTERM) == 0);
    int rc = wait_exit(pid, fd, 60);
    close(fd);
    static char err[1 << 14];
    slurp(err_path, err, sizeof err);
    ck_assert_msg(rc == 4, "study: exit %d, expected 4; stderr:\n%s", rc, err);
    TBT_ASSERT_HAS(err, "SIGTERM");
    char idx[400], st[16][32];
    snprintf(idx, sizeof idx, "%s/study/index.h5", dir);
    int n = index_statuses(idx, st, 16);
    ck_assert_int_eq(n, 1); /* the second submission was never made */
    ck_assert_msg(!strcmp(st[0], "interrupted"), "run 1 is %s", st[0]);
    /* the study opens again without a recovery */
    write_file(script, "as ann\nhistory\n");
    static char out[1 << 16];
    char args[1024];
    snprintf(args, sizeof args, "study '%s' --script '%s' --no-wait", cfg_path, script);
    ck_assert_msg(tbt_tunebench(args, "2>&1", out, sizeof out) == 0, "%s", out);
    TBT_ASSERT_LACKS(out, "recovered the archive");
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("outputs");
    TCase *tc = tcase_create("outputs");
    tcase_add_unchecked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_inputs_are_never_outputs);
    tcase_add_test(tc, test_special_files_are_never_replaced);
    tcase_add_test(tc, test_unwritable_paths_are_found_before_training);
    tcase_add_test(tc, test_what_may_be_replaced);
    tcase_add_test(tc, test_study_archive_checked_before_data);
    tcase_add_test(tc, test_sigterm_stops_train);
    tcase_add_test(tc, test_sighup_stops_train);
    tcase_add_test(tc, test_sigterm_closes_a_study);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tbt_run(suite()); }
