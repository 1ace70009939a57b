/* test_archive_crash.c: kill -9 at random moments, with real processes.
 *
 * Each trial forks a child that opens one archive (shared by all trials) and
 * runs 3 concurrent runs in threads, each appending batches and epochs and
 * finishing after a random number of epochs, then beginning another. The child
 * reports every acknowledged step (begin, epoch, finish) through a pipe; the
 * parent kills it with SIGKILL after a random delay (seeded: TB_CRASH_SEED,
 * default 20240501; TB_CRASH_TRIALS, default 40), reopens the archive and
 * checks that every acknowledged epoch is in the run file with equal values,
 * that the index lists every acknowledged run, that nothing is left
 * unfinished (acknowledged finishes are "finished", the rest "interrupted" or
 * "finished"), and that the archive accepts a new run. */
#include <errno.h>
#include <hdf5.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "store/archive.h"
#include "base/rng.h"
#include "tb_test.h"

enum { ACK_BEGIN = 1, ACK_EPOCH = 2, ACK_FINISH = 3, ACK_ERROR = 4 };

typedef struct ack {
    int32_t kind;
    char id[TB_ARCHIVE_ID_MAX + 1];
    int64_t epoch;
    double v[4]; /* train_loss, val_loss, val_accuracy, seconds */
    char msg[200];
} ack;
_Static_assert(sizeof(ack) <= 512, "acks must be written atomically to a pipe");

/* ---- the child --------------------------------------------------------------------- */

typedef struct worker {
    tb_archive *a;
    int fd;
    unsigned seed;
    int thread;
} worker;

static void send_ack(int fd, const ack *m)
{
    ssize_t w = write(fd, m, sizeof *m);
    (void)w;
}

static void send_error(int fd, const char *what, const tb_err *err)
{
    ack m = {.kind = ACK_ERROR};
    snprintf(m.msg, sizeof m.msg, "%s: %.140s", what, err->msg);
    send_ack(fd, &m);
}

static void *worker_main(void *p)
{
    worker *w = p;
    tb_err err;
    for (int n = 0;; n++) {
        tb_archive_run *r;
        char participant[32];
        snprintf(participant, sizeof participant, "t%d", w->thread);
        if (tb_archive_begin_run(w->a, NULL, "crash", participant, "[train]\nlr = 0.1\n", &r, &err) != TB_OK) {
            send_error(w->fd, "begin", &err);
            return NULL;
        }
        ack m = {.kind = ACK_BEGIN};
        snprintf(m.id, sizeof m.id, "%s", tb_archive_run_id(r));
        send_ack(w->fd, &m);
        if (tb_archive_run_status(r, TB_RUN_TRAINING, "", &err) != TB_OK) {
            send_error(w->fd, "status", &err);
            return NULL;
        }
        int epochs = 2 + (int)(rand_r(&w->seed) % 10);
        for (int e = 1; e <= epochs; e++) {
            int64_t step[4];
            double loss[4];
            for (int b = 0; b < 4; b++) {
                step[b] = (e - 1) * 4 + b + 1;
                loss[b] = rand_r(&w->seed) / (double)RAND_MAX;
            }
            if (tb_archive_run_batches(r, 2, step, loss, &err) != TB_OK ||
                tb_archive_run_batches(r, 2, step + 2, loss + 2, &err) != TB_OK) {
                send_error(w->fd, "batches", &err);
                return NULL;
            }
            ack ep = {.kind = ACK_EPOCH, .epoch = e};
            snprintf(ep.id, sizeof ep.id, "%s", m.id);
            for (int k = 0; k < 4; k++) ep.v[k] = rand_r(&w->seed) / (double)RAND_MAX + 1e-17 * k;
            if (tb_archive_run_epoch(r, e, ep.v[0], ep.v[1], ep.v[2], ep.v[3], &err) != TB_OK) {
                send_error(w->fd, "epoch", &err);
                return NULL;
            }
            send_ack(w->fd, &ep); /* only now may anyone learn of the epoch */
        }
        if (tb_archive_run_finish(r, TB_RUN_FINISHED, 0.5, "", &err) != TB_OK) {
            send_error(w->fd, "finish", &err);
            return NULL;
        }
        ack f = {.kind = ACK_FINISH};
        snprintf(f.id, sizeof f.id, "%s", m.id);
        send_ack(w->fd, &f);
    }
}

static void child_main(const char *dir, int fd, unsigned seed)
{
    tb_archive *a = NULL;
    tb_err err;
    if (tb_archive_open(dir, 1, &a, NULL, &err) != TB_OK) {
        send_error(fd, "open", &err);
        _exit(1);
    }
    pthread_t th[3];
    worker w[3];
    for (int i = 0; i < 3; i++) {
        w[i] = (worker){a, fd, seed * 3u + (unsigned)i, i};
        pthread_create(&th[i], NULL, worker_main, &w[i]);
    }
    for (int i = 0; i < 3; i++) pthread_join(th[i], NULL); /* only returns on an error */
    _exit(1);
}

/* ---- the parent ------------------------------------------------------------------------ */

typedef struct acks {
    ack *v;
    size_t n, cap;
} acks;

static void push(acks *l, const ack *m)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 1024;
        l->v = realloc(l->v, l->cap * sizeof *l->v);
        ck_assert(l->v);
    }
    l->v[l->n++] = *m;
}

/* reads whole acks from fd into l until the deadline (or EOF when deadline < 0) */
static void drain(int fd, acks *l, double deadline, char *partial, size_t *have)
{
    for (;;) {
        int timeout = -1;
        if (deadline >= 0) {
            double left = deadline - tb_now();
            if (left <= 0) return;
            timeout = (int)(left * 1000) + 1;
        }
        struct pollfd p = {fd, POLLIN, 0};
        int k = poll(&p, 1, timeout);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) return;
        ssize_t r = read(fd, partial + *have, sizeof(ack) - *have);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return; /* EOF: every writer is gone */
        *have += (size_t)r;
        if (*have == sizeof(ack)) {
            push(l, (const ack *)partial);
            *have = 0;
        }
    }
}

static int index_has(hid_t f, char **ids, hsize_t n, const char *id)
{
    (void)f;
    for (hsize_t i = 0; i < n; i++)
        if (ids[i] && strcmp(ids[i], id) == 0) return 1;
    return 0;
}

typedef struct totals {
    long epochs_checked, runs_checked, lost, interrupted, rebuilt, damaged, cut;
} totals;

/* Verifies acks[from..] against the reopened archive; returns how many acknowledged epochs were lost. */
static long verify(const char *dir, tb_archive *a, const acks *l, size_t from, totals *t)
{
    long lost = 0;
    char path[1200];
    snprintf(path, sizeof path, "%s/index.h5", dir);
    hid_t idx = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    ck_assert_msg(idx >= 0, "%s does not open", path);
    hid_t d = H5Dopen2(idx, "index/id", H5P_DEFAULT);
    hid_t sp = H5Dget_space(d);
    hsize_t n = 0;
    H5Sget_simple_extent_dims(sp, &n, NULL);
    char **ids = calloc(n ? n : 1, sizeof *ids);
    hid_t st = H5Tcopy(H5T_C_S1);
    H5Tset_size(st, H5T_VARIABLE);
    H5Tset_cset(st, H5T_CSET_UTF8);
    ck_assert(n == 0 || H5Dread(d, st, H5S_ALL, H5S_ALL, H5P_DEFAULT, ids) >= 0);
    ck_assert_int_eq((long)n, (long)tb_archive_run_count(a));

    /* no run is left live or unfinished */
    for (size_t i = 0; i < tb_archive_run_count(a); i++) {
        tb_archive_run_info info;
        tb_err err;
        ck_assert(tb_archive_run_info_at(a, i, &info, &err) == TB_OK);
        ck_assert_msg(tb_run_status_is_final(info.status), "run %s is %s after recovery", info.id,
                      tb_run_status_name(info.status));
    }
    for (size_t i = from; i < l->n; i++) {
        const ack *m = &l->v[i];
        ck_assert_msg(m->kind != ACK_ERROR, "the child failed: %s", m->msg);
        tb_archive_run_info info;
        tb_err err;
        ck_assert_msg(tb_archive_run_info_by_id(a, m->id, &info, &err) == TB_OK, "%s", err.msg);
        ck_assert_msg(index_has(idx, ids, n, m->id), "index.h5 lacks acknowledged run %s", m->id);
        if (m->kind == ACK_BEGIN) {
            t->runs_checked++;
            ck_assert_msg(info.status == TB_RUN_INTERRUPTED || info.status == TB_RUN_FINISHED, "run %s is %s", m->id,
                          tb_run_status_name(info.status));
        } else if (m->kind == ACK_FINISH) {
            ck_assert_msg(info.status == TB_RUN_FINISHED, "run %s was acknowledged finished but is %s", m->id,
                          tb_run_status_name(info.status));
        } else if (m->kind == ACK_EPOCH) {
            t->epochs_checked++;
            snprintf(path, sizeof path, "%s/runs/%s.h5", dir, m->id);
            hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT); /* plain open: recovery left it closed */
            ck_assert_msg(f >= 0, "%s does not open", path);
            static const char *const cols[5] = {"epoch", "train_loss", "val_loss", "val_accuracy", "seconds"};
            int ok = info.epochs >= m->epoch;
            for (int c = 0; c < 5 && ok; c++) {
                char name[64];
                snprintf(name, sizeof name, "curves/epoch/%s", cols[c]);
                hid_t ds = H5Dopen2(f, name, H5P_DEFAULT);
                hid_t fs = H5Dget_space(ds);
                hsize_t len = 0;
                H5Sget_simple_extent_dims(fs, &len, NULL);
                double v = NAN;
                if (len >= (hsize_t)m->epoch) {
                    hsize_t off = (hsize_t)m->epoch - 1, cnt = 1;
                    hid_t ms = H5Screate_simple(1, &cnt, NULL);
                    H5Sselect_hyperslab(fs, H5S_SELECT_SET, &off, NULL, &cnt, NULL);
                    H5Dread(ds, H5T_NATIVE_DOUBLE, ms, fs, H5P_DEFAULT, &v);
                    H5Sclose(ms);
                }
                double want = c == 0 ? (double)m->epoch : m->v[c - 1];
                if (!(v == want)) ok = 0;
                H5Sclose(fs);
                H5Dclose(ds);
            }
            H5Fclose(f);
            if (!ok) {
                fprintf(stderr, "LOST: run %s epoch %lld\n", m->id, (long long)m->epoch);
                lost++;
            }
        }
    }
    H5Dvlen_reclaim(st, sp, H5P_DEFAULT, ids);
    free(ids);
    H5Tclose(st);
    H5Sclose(sp);
    H5Dclose(d);
    H5Fclose(idx);
    return lost;
}

START_TEST(test_kill9_trials)
{
    const char *base = getenv("TMPDIR");
    if (!base || !*base) base = "/tmp";
    char tmp[512], dir[600];
    snprintf(tmp, sizeof tmp, "%s/tb_test_crash_XXXXXX", base);
    ck_assert(mkdtemp(tmp));
    snprintf(dir, sizeof dir, "%s/study", tmp);
    unsigned seed = getenv("TB_CRASH_SEED") ? (unsigned)strtoul(getenv("TB_CRASH_SEED"), NULL, 10) : 20240501u;
    int trials = getenv("TB_CRASH_TRIALS") ? atoi(getenv("TB_CRASH_TRIALS")) : 40;
    tb_rng rng;
    tb_rng_init(&rng, seed, TB_STREAM_AUGMENT, 0);
    acks l = {0};
    totals t = {0};
    double t0 = tb_now();
    for (int trial = 0; trial < trials; trial++) {
        int fds[2];
        ck_assert(pipe(fds) == 0);
        pid_t pid = fork();
        ck_assert(pid >= 0);
        if (pid == 0) {
            close(fds[0]);
            child_main(dir, fds[1], seed + (unsigned)trial * 7919u);
        }
        close(fds[1]);
        size_t from = l.n;
        char partial[sizeof(ack)];
        size_t have = 0;
        double delay;
        if (trial % 8 == 0) {
            /* early: during open and recovery */
            delay = tb_rng_below(&rng, 20) / 1000.0;
        } else {
            /* anywhere up to ~0.8 s into the runs, counted from the first acknowledged epoch so that
             * a slow build (sanitizers) still kills during training, not before it */
            delay = tb_rng_below(&rng, 800) / 1000.0;
            const double give_up = tb_now() + 30.0;
            while (l.n == from && tb_now() < give_up) drain(fds[0], &l, tb_now() + 0.05, partial, &have);
        }
        drain(fds[0], &l, tb_now() + delay, partial, &have);
        ck_assert(kill(pid, SIGKILL) == 0);
        int status;
        ck_assert(waitpid(pid, &status, 0) == pid);
        drain(fds[0], &l, -1, partial, &have); /* a torn ack was never complete: not acknowledged */
        close(fds[0]);
        ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "trial %d: the child exited early (%d)",
                      trial, WIFEXITED(status) ? WEXITSTATUS(status) : -1);

        tb_archive *a = NULL;
        tb_archive_recovery rec;
        tb_err err;
        ck_assert_msg(tb_archive_open(dir, 1, &a, &rec, &err) == TB_OK, "trial %d: reopen: %s", trial, err.msg);
        t.interrupted += rec.interrupted, t.rebuilt += rec.rebuilt, t.damaged += rec.damaged;
        t.cut += rec.journals_cut;
        t.lost += verify(dir, a, &l, from, &t);
        /* the archive goes on taking runs */
        tb_archive_run *r;
        ck_assert_msg(tb_archive_begin_run(a, NULL, "after-crash", "", NULL, &r, &err) == TB_OK, "%s", err.msg);
        ck_assert(tb_archive_run_status(r, TB_RUN_TRAINING, "", &err) == TB_OK);
        ck_assert_msg(tb_archive_run_epoch(r, 1, 1.0, 1.0, 0.5, 0.1, &err) == TB_OK, "%s", err.msg);
        ck_assert(tb_archive_run_finish(r, TB_RUN_FINISHED, 0.5, "", &err) == TB_OK);
        ck_assert_msg(tb_archive_close(a, &err) == TB_OK, "%s", err.msg);
    }
    /* a last reopen checks every acknowledgement of every trial again */
    tb_archive *a = NULL;
    tb_archive_recovery rec;
    tb_err err;
    ck_assert_msg(tb_archive_open(dir, 0, &a, &rec, &err) == TB_OK, "%s", err.msg);
    ck_assert_int_eq(rec.interrupted + rec.rebuilt + rec.damaged, 0);
    totals all = {0};
    long lost_all = verify(dir, a, &l, 0, &all);
    size_t runs = tb_archive_run_count(a);
    ck_assert(tb_archive_close(a, &err) == TB_OK);
    printf("crash: %d kill -9 trials in %.1f s (seed %u): %ld acknowledged epochs of %ld acknowledged runs "
           "checked, %ld lost (final pass %ld); %zu runs in the archive, %ld interrupted, %ld run files rebuilt, "
           "%ld damaged, %ld torn journal tails cut\n",
           trials, tb_now() - t0, seed, all.epochs_checked, all.runs_checked, t.lost, lost_all, runs, t.interrupted,
           t.rebuilt, t.damaged, t.cut);
    fflush(stdout);
    ck_assert_int_eq(t.lost, 0);
    ck_assert_int_eq(lost_all, 0);
    ck_assert(trials < 30 || all.epochs_checked > 0);
    free(l.v);
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    ck_assert(system(cmd) == 0);
}
END_TEST

static Suite *crash_suite(void)
{
    Suite *s = suite_create("archive_crash");
    TCase *tc = tcase_create("kill9");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_kill9_trials);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tbt_run(crash_suite()); }
