/* test_study_crash.c: kill -9 of a study process at random moments, with
 * real processes, then a restart that must find everything acknowledged and
 * carry on.
 *
 * Each trial forks a "study" child that opens one study (shared by all
 * trials; two slots) and drives two participants from two threads, each
 * submitting runs of 1 to 3 epochs one after another and acknowledging,
 * through a pipe, what the front-end API showed it: a submission, each
 * completed epoch (shown only once durable) and each end. The parent kills
 * the child with SIGKILL after a random delay, counted from the start or
 * (two trials in three) from the first epoch (seeded: TB_CRASH_SEED, default
 * 20240611; TB_CRASH_TRIALS trials, default 12), then forks a "restart" child
 * that reopens the study and checks: every acknowledged submission is in the
 * history; every acknowledged epoch is there with the same validation
 * accuracy; every acknowledged end has the same status; nothing is left
 * queued or training; nobody's clock runs; study.h5 opens. It then lets a
 * participant submit and finish one more run. The first trial also checks
 * that a second process cannot open the study while the first has it. */
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

#include "base/rng.h"
#include "study/study.h"
#include "tb_test.h"

enum { ACK_SUBMIT = 1, ACK_EPOCH = 2, ACK_END = 3, ACK_ERROR = 4 };

typedef struct ack {
    int32_t kind;
    char participant[16];
    char run[32];
    int32_t epoch;
    double val_accuracy;
    char status[16];
    char msg[300];
} ack;
_Static_assert(sizeof(ack) <= 512, "acks must be written atomically to a pipe");

static char tmpdir[512], task_path[1024];
static tb_config *cfg;

static void send_ack(int fd, const ack *m)
{
    ssize_t w = write(fd, m, sizeof *m);
    (void)w;
}

static void send_error(int fd, const char *what, const char *detail)
{
    ack m = {.kind = ACK_ERROR};
    snprintf(m.msg, sizeof m.msg, "%.40s%s%.250s", what, *what ? ": " : "", detail);
    send_ack(fd, &m);
}

/* ---- the study child ------------------------------------------------------------------------ */

typedef struct worker {
    const tb_study_api *api;
    const char *id;
    int fd;
    unsigned seed;
} worker;

static void *participant_main(void *arg)
{
    worker *w = arg;
    const tb_study_api *api = w->api;
    char err[512];
    int admitted = 0;
    while (!admitted) {
        if (api->enter(api->study, w->id, &admitted, err, sizeof err) != TB_OK) {
            send_error(w->fd, "enter", err);
            return NULL;
        }
        if (!admitted) {
            struct timespec ts = {0, 20000000};
            nanosleep(&ts, NULL);
        }
    }
    tb_rng rng;
    tb_rng_init(&rng, w->seed, TB_STREAM_SEARCH, 0);
    for (;;) {
        const char *v[TB_STUDY_HP_COUNT] = {0};
        char epochs[8];
        snprintf(epochs, sizeof epochs, "%u", 1 + tb_rng_below(&rng, 3));
        v[0] = epochs;
        v[1] = "16";
        v[2] = "cross_entropy";
        v[3] = tb_rng_below(&rng, 2) ? "adam" : "sgd";
        v[4] = "0.01";
        char run[32];
        int bad;
        if (api->submit(api->study, w->id, v, NULL, run, &bad, err, sizeof err) != TB_OK) {
            send_error(w->fd, "submit", err);
            return NULL;
        }
        ack m = {.kind = ACK_SUBMIT};
        snprintf(m.participant, sizeof m.participant, "%s", w->id);
        snprintf(m.run, sizeof m.run, "%s", run);
        send_ack(w->fd, &m);
        int shown = 0;
        tb_fe_run r;
        for (;;) {
            if (api->run_state(api->study, run, &r, err, sizeof err) != TB_OK) {
                send_error(w->fd, "run_state", err);
                return NULL;
            }
            while (shown < r.epoch) { /* what a front end shows: durable epochs only */
                shown++;
                ack e = {.kind = ACK_EPOCH, .epoch = shown, .val_accuracy = shown == r.epoch ? r.val_accuracy : NAN};
                snprintf(e.participant, sizeof e.participant, "%s", w->id);
                snprintf(e.run, sizeof e.run, "%s", run);
                send_ack(w->fd, &e);
            }
            if (strcmp(r.status, "queued") && strcmp(r.status, "training")) break;
            api->wait(api->study, run, r.seq, 500);
        }
        ack e = {.kind = ACK_END, .epoch = r.epoch, .val_accuracy = r.val_accuracy};
        snprintf(e.participant, sizeof e.participant, "%s", w->id);
        snprintf(e.run, sizeof e.run, "%s", run);
        snprintf(e.status, sizeof e.status, "%s", r.status);
        send_ack(w->fd, &e);
    }
    return NULL;
}

static void study_child(int fd, unsigned seed)
{
    tb_study *s = NULL;
    tb_err err = {{0}};
    if (tb_study_open(cfg, NULL, &s, NULL, &err) != TB_OK) {
        send_error(fd, "open", err.msg);
        _exit(1);
    }
    const tb_study_api *api = tb_study_api_get(s);
    static const char *const ids[2] = {"ann", "bob"};
    for (int i = 0; i < 2; i++) {
        tb_fe_participant p = {.id = ids[i], .education = "master", .dl_months = 10.0 * i,
                               .programming_months = NAN, .ml_months = NAN};
        char e[512], id[64];
        if (api->history_count(api->study, ids[i]) < 0 &&
            api->register_participant(api->study, &p, id, e, sizeof e) != TB_OK) {
            send_error(fd, "register", e);
            _exit(1);
        }
        if (api->consent(api->study, ids[i], e, sizeof e) != TB_OK) {
            send_error(fd, "consent", e);
            _exit(1);
        }
    }
    worker w[2];
    pthread_t t[2];
    for (int i = 0; i < 2; i++) {
        w[i] = (worker){api, ids[i], fd, seed * 2 + (unsigned)i};
        pthread_create(&t[i], NULL, participant_main, &w[i]);
    }
    for (int i = 0; i < 2; i++) pthread_join(t[i], NULL); /* only on errors: the parent kills us */
    _exit(2);
}

/* ---- the restart child ------------------------------------------------------------------------ */

static int n_acks;
static ack *acks;

static int restart_child(int fd)
{
    tb_study *s = NULL;
    tb_err err = {{0}};
    tb_study_recovery rec;
    if (tb_study_open(cfg, NULL, &s, &rec, &err) != TB_OK) {
        send_error(fd, "reopen", err.msg);
        return 1;
    }
    const tb_study_api *api = tb_study_api_get(s);
    char e[512], msg[300];
    int bad = 0;
    for (int i = 0; i < n_acks && !bad; i++) {
        const ack *a = &acks[i];
        tb_fe_run r;
        if (api->run_state(api->study, a->run, &r, e, sizeof e) != TB_OK) {
            snprintf(msg, sizeof msg, "acknowledged run %s of %s is missing: %.200s", a->run, a->participant, e);
            bad = 1;
        } else if (!strcmp(r.status, "queued") || !strcmp(r.status, "training")) {
            snprintf(msg, sizeof msg, "run %s is still %s after the restart", a->run, r.status);
            bad = 1;
        } else if (a->kind == ACK_EPOCH && r.epoch < a->epoch) {
            snprintf(msg, sizeof msg, "run %s: epoch %d was acknowledged, the restart has %d", a->run, a->epoch,
                     r.epoch);
            bad = 1;
        } else if (a->kind == ACK_EPOCH && r.epoch == a->epoch && !isnan(a->val_accuracy) &&
                   r.val_accuracy != a->val_accuracy) {
            snprintf(msg, sizeof msg, "run %s epoch %d: validation accuracy %.6f acknowledged, %.6f now", a->run,
                     a->epoch, a->val_accuracy, r.val_accuracy);
            bad = 1;
        } else if (a->kind == ACK_END && strcmp(r.status, a->status) != 0) {
            snprintf(msg, sizeof msg, "run %s ended %s, the restart says %s", a->run, a->status, r.status);
            bad = 1;
        }
    }
    static const char *const ids[2] = {"ann", "bob"};
    for (int i = 0; i < 2 && !bad; i++) {
        tb_fe_state st;
        if (api->history_count(api->study, ids[i]) < 0) continue; /* killed before registering */
        if (api->state(api->study, ids[i], &st, e, sizeof e) != TB_OK || !strcmp(st.state, "active") ||
            st.live_run[0]) {
            snprintf(msg, sizeof msg, "%s is %s with live run '%s' after the restart", ids[i], st.state, st.live_run);
            bad = 1;
        }
    }
    if (!bad) {
        char path[1200];
        snprintf(path, sizeof path, "%s/arch/study.h5", tmpdir);
        hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
        if (f < 0) {
            snprintf(msg, sizeof msg, "%.200s does not open after the restart", path);
            bad = 1;
        } else {
            H5Fclose(f);
        }
    }
    /* the study carries on */
    if (!bad && api->history_count(api->study, "ann") >= 0) {
        int admitted = 0;
        const char *v[TB_STUDY_HP_COUNT] = {"1", "64", "cross_entropy", "adam", "0.01"};
        char run[32];
        int badhp;
        if (api->consent(api->study, "ann", e, sizeof e) != TB_OK ||
            api->enter(api->study, "ann", &admitted, e, sizeof e) != TB_OK || !admitted ||
            api->submit(api->study, "ann", v, NULL, run, &badhp, e, sizeof e) != TB_OK) {
            snprintf(msg, sizeof msg, "ann cannot carry on after the restart: %.200s", e);
            bad = 1;
        } else {
            tb_fe_run r;
            do {
                api->run_state(api->study, run, &r, e, sizeof e);
                api->wait(api->study, run, r.seq, 500);
            } while (!strcmp(r.status, "queued") || !strcmp(r.status, "training"));
            if (strcmp(r.status, "finished") != 0) {
                snprintf(msg, sizeof msg, "ann's run after the restart ended %s: %.200s", r.status, r.message);
                bad = 1;
            } else if (api->pause(api->study, "ann", e, sizeof e) != TB_OK) {
                snprintf(msg, sizeof msg, "pause: %.250s", e);
                bad = 1;
            }
        }
    }
    tb_err cerr = {{0}};
    if (tb_study_close(s, 0, &cerr) != TB_OK && !bad) {
        snprintf(msg, sizeof msg, "close: %.250s", cerr.msg);
        bad = 1;
    }
    if (bad) send_error(fd, "", msg);
    return bad;
}

/* ---- the parent -------------------------------------------------------------------------------- */

static void read_acks(int fd, double seconds)
{
    double t0 = tb_now();
    for (;;) {
        double left = seconds - (tb_now() - t0);
        if (left <= 0) return;
        struct pollfd p = {fd, POLLIN, 0};
        int r = poll(&p, 1, (int)(left * 1000) + 1);
        if (r <= 0) continue;
        ack m;
        ssize_t k = read(fd, &m, sizeof m);
        if (k <= 0) return;
        ck_assert_int_eq((int)k, (int)sizeof m);
        ck_assert_msg(m.kind != ACK_ERROR, "study child: %s", m.msg);
        acks = realloc(acks, sizeof *acks * (size_t)(n_acks + 1));
        acks[n_acks++] = m;
    }
}

static int count_epochs(void)
{
    int n = 0;
    for (int i = 0; i < n_acks; i++) n += acks[i].kind == ACK_EPOCH;
    return n;
}

START_TEST(kill_nine_at_random_moments)
{
    const char *base = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/tb_test_study_crash_XXXXXX", base && *base ? base : "/tmp");
    ck_assert(mkdtemp(tmpdir) != NULL);
    snprintf(task_path, sizeof task_path, "%s/toy.h5", tmpdir);
    tbt_make_toy_task(task_path, 1200, 200, 200, 4, 12, 3);
    char extra[2048];
    snprintf(extra, sizeof extra,
             "[study]\narchive = %s/arch\nfinal_seeds = 1\nslots = 2\nthreads_per_run = 1\n"
             "[space]\nepochs = int 1 3\n",
             tmpdir);
    tb_err err = {{0}};
    ck_assert_msg(tb_config_load_text(&cfg, tbt_toy_config(task_path, extra), "crash.ini", &err) == TB_OK, "%s",
                  err.msg);
    const char *e = getenv("TB_CRASH_SEED");
    unsigned seed = e ? (unsigned)strtoul(e, NULL, 10) : 20240611u;
    e = getenv("TB_CRASH_TRIALS");
    int trials = e ? atoi(e) : 12;
    tb_rng rng;
    tb_rng_init(&rng, seed, TB_STREAM_SEARCH, 99);
    int total_epochs = 0, total_ends = 0;
    for (int trial = 0; trial < trials; trial++) {
        int p[2];
        ck_assert(pipe(p) == 0);
        pid_t child = fork();
        ck_assert(child >= 0);
        if (child == 0) {
            close(p[0]);
            study_child(p[1], seed + (unsigned)trial);
        }
        close(p[1]);
        double delay = 0.15 + 1.6 * tb_rng_uniform(&rng);
        if (trial == 0) {
            /* a second writer is refused while the first holds the study */
            read_acks(p[0], 0.5);
            int q[2];
            ck_assert(pipe(q) == 0);
            pid_t other = fork();
            if (other == 0) {
                close(q[0]);
                tb_study *s2 = NULL;
                tb_err e2 = {{0}};
                tb_status st = tb_study_open(cfg, NULL, &s2, NULL, &e2);
                ssize_t w = write(q[1], e2.msg, strlen(e2.msg) + 1);
                (void)w;
                _exit(st == TB_OK ? 1 : 0);
            }
            close(q[1]);
            char msg[512] = "";
            ssize_t k = read(q[0], msg, sizeof msg - 1);
            (void)k;
            close(q[0]);
            int status;
            waitpid(other, &status, 0);
            ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0 && strstr(msg, "in use"),
                          "a second process opened the study (or failed oddly: %s)", msg);
        }
        /* two trials in three start the random delay at the first durable
         * epoch, so they kill during training however slow the machine
         * (sanitizers, parallel tests); the third kills from the start, which
         * also hits opening and recovery */
        if (trial % 3 != 0) {
            int before = count_epochs();
            double t0 = tb_now();
            while (count_epochs() == before && tb_now() - t0 < 120) read_acks(p[0], 0.05);
        }
        read_acks(p[0], delay);
        kill(child, SIGKILL);
        int status;
        waitpid(child, &status, 0);
        read_acks(p[0], 0.05); /* what was in flight */
        close(p[0]);

        ck_assert(pipe(p) == 0);
        pid_t r = fork();
        if (r == 0) {
            close(p[0]);
            _exit(restart_child(p[1]));
        }
        close(p[1]);
        char buf[sizeof(ack)];
        ack m = {0};
        ssize_t k = read(p[0], buf, sizeof buf);
        if (k == (ssize_t)sizeof m) memcpy(&m, buf, sizeof m);
        close(p[0]);
        waitpid(r, &status, 0);
        ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "trial %d (killed after %.2f s, %d acks): %s",
                      trial, delay, n_acks, m.kind == ACK_ERROR ? m.msg : "the restart child died");
    }
    /* every restart checks everything acknowledged so far; these are the distinct acknowledgements */
    for (int i = 0; i < n_acks; i++) {
        total_epochs += acks[i].kind == ACK_EPOCH;
        total_ends += acks[i].kind == ACK_END;
    }
    fprintf(stderr, "study crash test: %d trials, %d acknowledged epochs and %d run ends, none lost at any restart\n",
            trials, total_epochs, total_ends);
    ck_assert_msg(total_epochs > trials, "too few epochs were acknowledged (%d) for the test to mean much",
                  total_epochs);
    free(acks);
    tb_config_free(cfg);
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    ck_assert(system(cmd) == 0);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("study_crash");
    TCase *tc = tcase_create("crash");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, kill_nine_at_random_moments);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tbt_run(suite()); }
