/* simulate.c: a simulated study through the real study core, and a large
 * synthetic archive through the real archive writer (simulate.h). */
#include <dirent.h>
#include <errno.h>
#include <hdf5.h>
#include <math.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "simulate.h"
#include "base/config.h"
#include "base/rng.h"
#include "exec/executor.h"
#include "study/hparam_space.h"
#include "study/study.h"
#include "study/sweep.h"

const char *const tb_simulate_group_names[3] = {"novice", "medium", "expert"};

/* Table 3's predefined comments (study.h's TB_STUDY_COMMENTS), by name. */
static const char *const C_GUESS = "It is just a guess.";
static const char *const C_DEFAULT = "It is the suggested default value.";
static const char *const C_PAST = "It is the value that has worked well for me in the past.";
static const char *const C_LEARNT = "It is the value I learnt from previous submissions.";

/* The task's shape: small enough that a 2-epoch run takes well under a second. */
#define TASK_SIZE 12
#define TASK_CLASSES 6
#define TASK_TRAIN 480
#define TASK_VAL 120
#define TASK_TEST 120
#define SPACE_BATCH_MAX 256 /* the space's batch_size range: novices guess past it */

void tb_simulate_defaults(tb_simulate_options *o)
{
    memset(o, 0, sizeof *o);
    o->participants = 12;
    o->seed = 0;
    o->minutes = 30;
    o->slots = 2;
    o->final_seeds = 3;
    o->synthetic_epochs = 100;
    o->synthetic_batches = 1000;
}

/* A progress line to o->progress (none without it). */
static void say(const tb_simulate_options *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(const tb_simulate_options *o, const char *fmt, ...)
{
    if (!o->progress) return;
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    o->progress(o->user, line);
}

int tb_simulate_group(double dl_months) { return dl_months <= 0 ? 0 : dl_months < 9 ? 1 : 2; }

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ---- the archive's folder ------------------------------------------------------------------ */

/* Removes path and everything under it (no symlinks followed). 0 or -1 (errno). */
static int remove_tree(const char *path)
{
    struct stat sb;
    if (lstat(path, &sb) != 0) return errno == ENOENT ? 0 : -1;
    if (!S_ISDIR(sb.st_mode)) return unlink(path);
    DIR *d = opendir(path);
    if (!d) return -1;
    struct dirent *e;
    int rc = 0;
    while (rc == 0 && (e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char sub[4096];
        if (snprintf(sub, sizeof sub, "%s/%s", path, e->d_name) >= (int)sizeof sub) {
            errno = ENAMETOOLONG;
            rc = -1;
        } else {
            rc = remove_tree(sub);
        }
    }
    closedir(d);
    return rc == 0 ? rmdir(path) : rc;
}

static int exists_in(const char *dir, const char *name)
{
    char p[2048];
    struct stat sb;
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return lstat(p, &sb) == 0;
}

tb_status tb_simulate_prepare_dir(const char *dir, int force, const char *option, tb_err *err)
{
    if (!dir || !*dir) return tb_fail(err, TB_EINVAL, "no archive folder given");
    if (strlen(dir) > 900)
        return tb_fail(err, TB_EINVAL, "archive folder '%.60s...' is too long (at most 900 bytes)", dir);
    struct stat sb;
    if (stat(dir, &sb) != 0) {
        if (errno != ENOENT) return tb_fail(err, TB_EIO, "archive folder %s: %s", dir, strerror(errno));
        if (tb_make_dirs(dir) != 0)
            return tb_fail(err, TB_EIO, "cannot create archive folder %s: %s", dir, strerror(errno));
        return TB_OK;
    }
    if (!S_ISDIR(sb.st_mode))
        return tb_fail(err, TB_EINVAL, "%s exists and is not a folder: give a new folder for the archive", dir);
    DIR *d = opendir(dir);
    if (!d) return tb_fail(err, TB_EIO, "cannot list %s: %s", dir, strerror(errno));
    int entries = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) entries++;
    closedir(d);
    if (entries == 0) return TB_OK;
    static const char *const marks[] = {"index.h5", "study.journal", "study.h5",
                                        "simulate.ini", "sweeps", "study.lock"};
    const char *mark = NULL;
    for (size_t i = 0; i < TB_ARRAY_LEN(marks) && !mark; i++)
        if (exists_in(dir, marks[i])) mark = marks[i];
    if (!mark)
        return tb_fail(err, TB_EINVAL, "%s is not empty and holds no tunebench archive: not overwritten (%s does not "
                       "apply); give a new or empty folder", dir, option);
    if (!force)
        return tb_fail(err, TB_EINVAL,
                       "%s already holds an archive (it has %s): not overwritten; give %s to replace it, "
                       "or a new folder", dir, mark, option);
    /* the archive's lock: refuse an archive another process has open */
    if (exists_in(dir, "index.h5") || exists_in(dir, "study.lock")) {
        tb_archive *a = NULL;
        tb_err e2 = {{0}};
        if (tb_archive_open(dir, 0, &a, NULL, &e2) != TB_OK) {
            if (strstr(e2.msg, "in use")) return tb_fail(err, TB_EIO, "%s: not replaced", e2.msg);
        } else {
            tb_archive_close(a, &e2);
        }
    }
    if (remove_tree(dir) != 0)
        return tb_fail(err, TB_EIO, "cannot remove the old archive %s: %s", dir, strerror(errno));
    if (tb_make_dirs(dir) != 0)
        return tb_fail(err, TB_EIO, "cannot create archive folder %s: %s", dir, strerror(errno));
    return TB_OK;
}

/* ---- the task ---------------------------------------------------------------------------------- */

/* A 3x3 bright square whose place is the class, on noise: learnable in an epoch or two. */
static tb_status write_task(const char *path, tb_err *err)
{
    const int n = TASK_TRAIN + TASK_VAL + TASK_TEST, size = TASK_SIZE;
    uint8_t *x = malloc((size_t)n * size * size);
    int32_t *y = malloc((size_t)n * sizeof *y);
    uint8_t *split = malloc((size_t)n);
    if (!x || !y || !split) {
        free(x), free(y), free(split);
        return tb_fail(err, TB_ENOMEM, "out of memory for the simulated task");
    }
    uint32_t state = 2654435761u;
    for (int i = 0; i < n; i++) {
        int k = i % TASK_CLASSES;
        y[i] = k;
        split[i] = (uint8_t)(i < TASK_TRAIN ? 0 : i < TASK_TRAIN + TASK_VAL ? 1 : 2);
        int cx = (k * 3) % (size - 3), cy = (k * 5 / 2) % (size - 3);
        for (int r = 0; r < size; r++)
            for (int c = 0; c < size; c++) {
                state = state * 1664525u + 1013904223u;
                int v = (int)(state >> 25); /* noise 0..127 */
                if (r >= cy && r < cy + 3 && c >= cx && c < cx + 3) v += 110;
                x[((size_t)i * size + r) * size + c] = (uint8_t)v;
            }
    }
    tb_status st = TB_OK;
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (f < 0) {
        st = tb_fail(err, TB_EIO, "cannot create the simulated task %s", path);
    } else {
        hsize_t xd[4] = {(hsize_t)n, 1, (hsize_t)size, (hsize_t)size}, nd[1] = {(hsize_t)n};
        const struct {
            const char *name;
            int rank;
            hsize_t *dims;
            hid_t type;
            const void *data;
        } ds[3] = {{"x", 4, xd, H5T_NATIVE_UINT8, x}, {"y", 1, nd, H5T_NATIVE_INT32, y},
                   {"split", 1, nd, H5T_NATIVE_UINT8, split}};
        for (int i = 0; i < 3 && st == TB_OK; i++) {
            hid_t sp = H5Screate_simple(ds[i].rank, ds[i].dims, NULL);
            hid_t d = sp < 0 ? -1 : H5Dcreate2(f, ds[i].name, ds[i].type, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
            if (d < 0 || H5Dwrite(d, ds[i].type, H5S_ALL, H5S_ALL, H5P_DEFAULT, ds[i].data) < 0)
                st = tb_fail(err, TB_EIO, "cannot write dataset %s of the simulated task %s", ds[i].name, path);
            if (d >= 0) H5Dclose(d);
            if (sp >= 0) H5Sclose(sp);
        }
        if (H5Fclose(f) < 0 && st == TB_OK) st = tb_fail(err, TB_EIO, "cannot close the simulated task %s", path);
    }
    free(x), free(y), free(split);
    return st;
}

/* The study configuration (also written to DIR/simulate.ini). */
static char *study_ini(const char *dir, const char *task, const tb_simulate_options *o)
{
    size_t cap = 8192;
    char *s = malloc(cap);
    if (!s) return NULL;
    size_t k = 0;
    char seeds[512] = "";
    size_t sk = 0;
    for (int i = 0; i < o->final_seeds; i++) tb_appendf(seeds, sizeof seeds, &sk, "%s%d", i ? "," : "", i);
    tb_appendf(s, cap, &k,
               "; written by tunebench simulate (seed %llu, %d participants): a simulated study on a tiny task\n"
               "[study]\n"
               "title = Simulated study (seed %llu)\n"
               "briefing = Tune a small CNN on a synthetic 12 x 12 image task with %d classes (a bright square "
               "whose place is the class). Participants are scripted: experience shapes their choices.\n"
               "archive = %s\n"
               "budget_minutes = %g\n"
               "final_seeds = %s\n"
               "slots = %d\n"
               "threads_per_run = 1\n"
               "\n[space]\n"
               "epochs = int 1 2\n"
               "batch_size = int 1 %d log\n"
               "\n[model]\nname = cnn\n\n[cnn]\nfilters = 4\nunits = 16\n"
               "\n[task]\nname = hdf5\n\n[hdf5]\npath = %s\nclasses = %d\n"
               "\n[train]\nepochs = 2\nbatch_size = 32\nloss = cross_entropy\noptimizer = adam\nlr = 0.001\nseed = 1\n",
               (unsigned long long)o->seed, o->participants, (unsigned long long)o->seed, TASK_CLASSES, dir,
               o->minutes, seeds, o->slots, SPACE_BATCH_MAX, task, TASK_CLASSES);
    if (o->plugin_path && *o->plugin_path) tb_appendf(s, cap, &k, "\n[plugins]\npath = %s\n", o->plugin_path);
    return s;
}

/* ---- participants ------------------------------------------------------------------------------ */

typedef struct person {
    int index, group;
    char id[16];
    const char *education;
    double dl_months, programming_months, ml_months;
    int self_level;
    int tries;
    tb_rng rng;
} person;

static double unif(tb_rng *r) { return (double)tb_rng_uniform(r); }
static int below(tb_rng *r, int n) { return (int)tb_rng_below(r, (uint32_t)n); }
static double log_unif(tb_rng *r, double lo_exp10, double hi_exp10)
{
    return pow(10.0, lo_exp10 + unif(r) * (hi_exp10 - lo_exp10));
}

/* The participant's background, from the seed: groups take turns so any N >= 3 has all three. */
static void make_person(person *p, int index, uint64_t seed)
{
    memset(p, 0, sizeof *p);
    p->index = index;
    snprintf(p->id, sizeof p->id, "sim%03d", index + 1);
    tb_rng_init(&p->rng, seed, TB_STREAM_SIMULATE, (uint32_t)index);
    tb_rng *r = &p->rng;
    p->group = (int)((index + seed % 3) % 3);
    static const char *const edu_novice[] = {"high_school", "bachelor", "bachelor", "master_enrolled"};
    static const char *const edu_medium[] = {"bachelor", "master_enrolled", "master_enrolled", "master"};
    static const char *const edu_expert[] = {"master", "master", "doctorate", "doctorate"};
    switch (p->group) {
    case 0:
        p->education = edu_novice[below(r, 4)];
        p->dl_months = 0;
        p->programming_months = 3 * below(r, 9);
        p->ml_months = below(r, 4);
        p->self_level = 1 + below(r, 2);
        p->tries = 4 + below(r, 3);
        break;
    case 1:
        p->education = edu_medium[below(r, 4)];
        p->dl_months = 1 + below(r, 8);
        p->programming_months = 12 + 6 * below(r, 9);
        p->ml_months = below(r, 13);
        p->self_level = 2 + below(r, 2);
        p->tries = 3 + below(r, 3);
        break;
    default:
        p->education = edu_expert[below(r, 4)];
        p->dl_months = 9 + below(r, 52);
        p->programming_months = 36 + 12 * below(r, 13);
        p->ml_months = 6 + below(r, 43);
        p->self_level = 4 + below(r, 2);
        p->tries = 3 + below(r, 2);
        break;
    }
}

/* One try: values and comments by Table 1's index ("" not given). */
typedef struct a_try {
    char v[TB_HP_COUNT][TB_HP_TEXT];
    char c[TB_HP_COUNT][256];
    int cancel; /* cancel the run once it trains */
} a_try;

static void give(a_try *t, tb_hp hp, const char *comment, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void give(a_try *t, tb_hp hp, const char *comment, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->v[hp], sizeof t->v[hp], fmt, ap);
    va_end(ap);
    tb_copy_str(t->c[hp], sizeof t->c[hp], comment);
}

static const char *const optimizers[6] = {"adam", "adadelta", "adagrad", "asgd", "rmsprop", "sgd"};
static const char *const losses[4] = {"cross_entropy", "nll", "l1", "mse"};

/* Everything a novice gives is a guess, some beyond the allowed range. */
static void novice_try(a_try *t, tb_rng *r, int number)
{
    const char *why = C_GUESS;
    give(t, TB_HP_OPTIMIZER, why, "%s", optimizers[below(r, 6)]);
    give(t, TB_HP_LOSS, why, "%s", unif(r) < 0.65 ? "cross_entropy" : losses[below(r, 4)]);
    if (unif(r) < 0.1) give(t, TB_HP_EPOCHS, why, "%d", 5 + below(r, 46)); /* past the space's 2: rejected */
    else give(t, TB_HP_EPOCHS, why, "%d", 1 + below(r, 2));
    if (unif(r) < 0.5) give(t, TB_HP_BATCH_SIZE, why, "%d", 1 << (1 + below(r, 9))); /* 512 is rejected */
    else give(t, TB_HP_BATCH_SIZE, why, "%d", (int)log_unif(r, 0.3, 2.5));
    if (unif(r) < 0.08) give(t, TB_HP_LR, why, "%d", 20 + 10 * below(r, 9)); /* past 10: rejected */
    else give(t, TB_HP_LR, why, "%.3g", log_unif(r, -5, 1));
    if (unif(r) < 0.3) give(t, TB_HP_MOMENTUM, why, "%.2g", unif(r));
    if (unif(r) < 0.15) give(t, TB_HP_WEIGHT_DECAY, why, "%.2g", log_unif(r, -4, 0));
    if (number > 1 && unif(r) < 0.2) tb_copy_str(t->c[TB_HP_LR], sizeof t->c[TB_HP_LR], C_LEARNT);
    t->cancel = unif(r) < 0.25;
}

/* Experts choose what has worked for them: adam near 1e-3, or sgd with momentum. */
static void expert_try(a_try *t, tb_rng *r, int number)
{
    const char *why = C_PAST;
    static const int batches[3] = {16, 32, 64};
    int adam = unif(r) < 0.6;
    give(t, TB_HP_OPTIMIZER, why, "%s", adam ? "adam" : "sgd");
    give(t, TB_HP_LOSS, why, "cross_entropy");
    give(t, TB_HP_EPOCHS, why, "2");
    give(t, TB_HP_BATCH_SIZE, why, "%d", batches[below(r, 3)]);
    const char *lr_why = number > 1 && unif(r) < 0.5 ? C_LEARNT : why;
    if (adam) give(t, TB_HP_LR, lr_why, "%.2g", log_unif(r, -3.5, -2.3));
    else {
        give(t, TB_HP_LR, lr_why, "%.2g", log_unif(r, -2, -0.7));
        give(t, TB_HP_MOMENTUM, why, "0.9");
    }
    if (unif(r) < 0.25) give(t, TB_HP_WEIGHT_DECAY, why, "%s", unif(r) < 0.5 ? "0.0001" : "0.0005");
    t->cancel = unif(r) < 0.05;
}

/* Medium experience: half the time like an expert (less sure), else a narrower guess. */
static void medium_try(a_try *t, tb_rng *r, int number)
{
    if (unif(r) < 0.5) {
        expert_try(t, r, number);
        for (int h = 0; h < TB_HP_COUNT; h++)
            if (t->v[h][0] && unif(r) < 0.4)
                tb_copy_str(t->c[h], sizeof t->c[h], number > 1 && unif(r) < 0.5 ? C_LEARNT : C_GUESS);
        t->cancel = unif(r) < 0.1;
        return;
    }
    static const char *const opts[4] = {"adam", "sgd", "rmsprop", "adagrad"};
    const char *why[3] = {C_GUESS, C_DEFAULT, number > 1 ? C_LEARNT : C_GUESS};
    give(t, TB_HP_OPTIMIZER, why[below(r, 3)], "%s", opts[below(r, 4)]);
    give(t, TB_HP_LOSS, C_DEFAULT, "cross_entropy");
    give(t, TB_HP_EPOCHS, why[below(r, 3)], "%d", 1 + below(r, 2));
    give(t, TB_HP_BATCH_SIZE, why[below(r, 3)], "%d", 8 << below(r, 5));
    give(t, TB_HP_LR, why[below(r, 3)], "%.2g", log_unif(r, -4, 0));
    if (unif(r) < 0.2) give(t, TB_HP_MOMENTUM, "Momentum usually helps.", "0.9");
    t->cancel = unif(r) < 0.1;
}

/* All presets: the mandatory four at [train]'s values, nothing else given. */
static void presets_try(a_try *t)
{
    give(t, TB_HP_EPOCHS, C_DEFAULT, "2");
    give(t, TB_HP_BATCH_SIZE, C_DEFAULT, "32");
    give(t, TB_HP_LOSS, C_DEFAULT, "cross_entropy");
    give(t, TB_HP_OPTIMIZER, C_DEFAULT, "adam");
}

/* Try `number` (1-based) of p: drawn in a fixed order from p's stream, whatever happened before. */
static void make_try(person *p, int number, a_try *t)
{
    memset(t, 0, sizeof *t);
    tb_rng *r = &p->rng;
    static const double presets_first[3] = {0.5, 0.35, 0.25};
    double u = unif(r);
    if (number == 1 && u < presets_first[p->group]) {
        presets_try(t);
        return;
    }
    if (p->group == 0) novice_try(t, r, number);
    else if (p->group == 1) medium_try(t, r, number);
    else expert_try(t, r, number);
}

/* ---- driving them ------------------------------------------------------------------------------ */

typedef struct sim_ctx {
    const tb_study_api *api;
    const tb_simulate_options *o;
    atomic_int next;
    atomic_int failed;
    pthread_mutex_t mu;
    tb_simulate_result *res;
    tb_err err; /* the first failure */
} sim_ctx;

static void sim_fail(sim_ctx *c, const char *who, const char *what, const char *msg)
{
    pthread_mutex_lock(&c->mu);
    if (!atomic_exchange(&c->failed, 1))
        snprintf(c->err.msg, sizeof c->err.msg, "simulated participant %s: %s: %s", who, what, msg);
    pthread_mutex_unlock(&c->mu);
}

/* Waits until run has ended (or, until_training, until it trains); the last snapshot in *out. */
static int wait_run(sim_ctx *c, const char *run, int until_training, tb_fe_run *out)
{
    const tb_study_api *api = c->api;
    char err[512];
    double t0 = tb_now();
    for (;;) {
        if (api->run_info(api->study, run, out, sizeof *out, err, sizeof err) != TB_OK) return -1;
        if (out->status_code >= TB_FE_RUN_FINISHED) return 0;
        if (until_training && out->status_code == TB_FE_RUN_TRAINING) return 0;
        if (tb_now() - t0 > 600 || atomic_load(&c->failed)) {
            snprintf(out->message, sizeof out->message, "still %s after %.0f s", out->status, tb_now() - t0);
            return -1;
        }
        api->wait(api->study, run, out->seq, 200);
    }
}

static int submit_try(sim_ctx *c, const person *p, const a_try *t, char run[32], int *rejected, char *err,
                      size_t errlen)
{
    const char *values[TB_HP_COUNT], *comments[TB_HP_COUNT];
    for (int h = 0; h < TB_HP_COUNT; h++) values[h] = t->v[h], comments[h] = t->c[h];
    int bad = -1;
    *rejected = 0;
    tb_status st = c->api->submit(c->api->study, p->id, values, comments, run, &bad, err, errlen);
    if (st == TB_EINVAL && bad >= 0) *rejected = 1;
    return st == TB_OK || *rejected ? 0 : -1;
}

static void drive(sim_ctx *c, person *p)
{
    const tb_study_api *api = c->api;
    tb_study *s = api->study;
    char err[512] = "", id[64];
    tb_fe_participant fp = {.id = p->id, .education = p->education, .dl_months = p->dl_months,
                            .programming_months = p->programming_months, .ml_months = p->ml_months,
                            .self_level = p->self_level};
    if (api->register_participant(s, &fp, id, err, sizeof err) != TB_OK) return sim_fail(c, p->id, "register", err);
    if (api->consent(s, id, err, sizeof err) != TB_OK) return sim_fail(c, p->id, "consent", err);
    for (int admitted = 0; !admitted;) {
        if (api->enter(s, id, &admitted, err, sizeof err) != TB_OK) return sim_fail(c, p->id, "enter", err);
        if (atomic_load(&c->failed)) return;
        if (!admitted) sleep_ms(100); /* the lobby: keep asking */
    }
    int submitted = 0, rejected = 0, cancelled = 0, finished = 0, diverged = 0;
    char last_ran[32] = "", last_finished[32] = "";
    for (int n = 1; n <= p->tries && !atomic_load(&c->failed); n++) {
        a_try t;
        make_try(p, n, &t);
        char run[32] = "";
        int rej = 0;
        if (submit_try(c, p, &t, run, &rej, err, sizeof err) != 0) {
            /* the budget ran out (during the last run, or now): the study ended their tuning */
            tb_fe_state now;
            char e2[256];
            if (strstr(err, "no budget left") ||
                (api->participant_info(s, id, &now, sizeof now, e2, sizeof e2) == TB_OK &&
                 now.state_code == TB_FE_DONE))
                break;
            return sim_fail(c, p->id, "submit", err);
        }
        submitted++;
        if (rej) {
            rejected++;
            continue;
        }
        tb_fe_run r;
        if (t.cancel) {
            if (wait_run(c, run, 1, &r) != 0) return sim_fail(c, p->id, "waiting for a run", r.message);
            /* refused when it has just ended: then it simply finished */
            if (r.status_code == TB_FE_RUN_TRAINING) api->cancel(s, id, run, err, sizeof err);
        }
        if (wait_run(c, run, 0, &r) != 0) return sim_fail(c, p->id, "waiting for a run", r.message);
        tb_copy_str(last_ran, sizeof last_ran, run);
        cancelled += r.status_code == TB_FE_RUN_CANCELLED;
        diverged += r.status_code == TB_FE_RUN_DIVERGED;
        if (r.status_code == TB_FE_RUN_FINISHED) {
            finished++;
            tb_copy_str(last_finished, sizeof last_finished, run);
        }
    }
    if (atomic_load(&c->failed)) return;
    /* the final choice: novices take their last finished run, the others the best (NULL) */
    tb_fe_state st;
    if (api->participant_info(s, id, &st, sizeof st, err, sizeof err) != TB_OK)
        return sim_fail(c, p->id, "state", err);
    if (st.state_code != TB_FE_DONE) {
        const char *choice = p->group == 0 && last_finished[0] ? last_finished : NULL;
        if (!finished) choice = last_ran[0] ? last_ran : NULL;
        if (!choice && !finished) {
            /* nothing ran: one run at the presets, so there is something to choose */
            a_try t;
            memset(&t, 0, sizeof t);
            presets_try(&t);
            char run[32] = "";
            int rej = 0;
            tb_fe_run r;
            if (submit_try(c, p, &t, run, &rej, err, sizeof err) != 0 || rej)
                return sim_fail(c, p->id, "submit", err);
            submitted++;
            if (wait_run(c, run, 0, &r) != 0) return sim_fail(c, p->id, "waiting for a run", r.message);
            finished += r.status_code == TB_FE_RUN_FINISHED;
            choice = run;
        }
        if (api->finish(s, id, choice, err, sizeof err) != TB_OK) return sim_fail(c, p->id, "finish", err);
    }
    pthread_mutex_lock(&c->mu);
    tb_simulate_result *res = c->res;
    res->participants++;
    res->by_group[p->group]++;
    res->submissions += submitted, res->rejected += rejected, res->cancelled += cancelled;
    res->finished += finished, res->diverged += diverged;
    say(c->o, "  %s  %-6s  %2.0f months  %-15s  %d tries: %d rejected, %d cancelled, %d finished", p->id,
        tb_simulate_group_names[p->group], p->dl_months, p->education, submitted, rejected, cancelled, finished);
    pthread_mutex_unlock(&c->mu);
}

static void *driver_main(void *arg)
{
    sim_ctx *c = arg;
    for (;;) {
        int i = atomic_fetch_add(&c->next, 1);
        if (i >= c->o->participants || atomic_load(&c->failed)) break;
        person p;
        make_person(&p, i, c->o->seed);
        drive(c, &p);
    }
    return NULL;
}

static tb_status check_options(const tb_simulate_options *o, tb_err *err)
{
    if (o->participants < 1 || o->participants > TB_SIMULATE_MAX_PARTICIPANTS)
        return tb_fail(err, TB_EINVAL, "--participants = %d is outside [1, %d]", o->participants,
                       TB_SIMULATE_MAX_PARTICIPANTS);
    if (!(o->minutes >= 0.01) || o->minutes > 100000) /* [study] budget_minutes' range */
        return tb_fail(err, TB_EINVAL, "--minutes = %g is outside [0.01, 100000]", o->minutes);
    if (o->slots < 1 || o->slots > 64) return tb_fail(err, TB_EINVAL, "slots = %d is outside [1, 64]", o->slots);
    if (o->final_seeds < 1 || o->final_seeds > 10)
        return tb_fail(err, TB_EINVAL, "final seeds = %d is outside [1, 10]", o->final_seeds);
    if (o->random_search < 0 || o->random_search > TB_SWEEP_MAX_RUNS)
        return tb_fail(err, TB_EINVAL, "--random-search = %d is outside [0, %d]", o->random_search, TB_SWEEP_MAX_RUNS);
    return TB_OK;
}

static tb_status write_text(const char *path, const char *text, tb_err *err)
{
    FILE *f = fopen(path, "w");
    if (!f) return tb_fail(err, TB_EIO, "cannot create %s: %s", path, strerror(errno));
    int bad = fputs(text, f) < 0;
    bad |= fclose(f) != 0;
    return bad ? tb_fail(err, TB_EIO, "cannot write %s", path) : TB_OK;
}

tb_status tb_simulate_study(const char *dir, const tb_simulate_options *o, tb_simulate_result *res, tb_err *err)
{
    memset(res, 0, sizeof *res);
    tb_status st = check_options(o, err);
    if (st != TB_OK) return st;
    const double t0 = tb_now();
    char abs_dir[4096], task[4096 + 16], ini_path[4096 + 16];
    /* absolute, so the configuration works from any folder */
    char cwd[2048] = "";
    if (dir[0] != '/' && !getcwd(cwd, sizeof cwd))
        return tb_fail(err, TB_EIO, "cannot tell the current folder: %s", strerror(errno));
    if (snprintf(abs_dir, sizeof abs_dir, "%s%s%s", cwd, cwd[0] ? "/" : "", dir) >= (int)sizeof abs_dir)
        return tb_fail(err, TB_EINVAL, "archive folder %s: the path is too long", dir);
    snprintf(task, sizeof task, "%s/task.h5", abs_dir);
    snprintf(ini_path, sizeof ini_path, "%s/simulate.ini", abs_dir);
    if ((st = write_task(task, err)) != TB_OK) return st;
    char *ini = study_ini(abs_dir, task, o);
    if (!ini) return tb_fail(err, TB_ENOMEM, "out of memory");
    st = write_text(ini_path, ini, err);
    free(ini);
    if (st != TB_OK) return st;
    tb_config *cfg = NULL;
    if ((st = tb_config_load(&cfg, ini_path, err)) != TB_OK) return st;

    tb_study *s = NULL;
    tb_study_recovery rec;
    if ((st = tb_study_open(cfg, NULL, &s, &rec, err)) != TB_OK) {
        tb_config_free(cfg);
        return st;
    }
    const tb_study_api *api = tb_study_api_get(s);
    sim_ctx c = {.api = api, .o = o, .res = res};
    pthread_mutex_init(&c.mu, NULL);
    atomic_init(&c.next, 0);
    atomic_init(&c.failed, 0);
    int n_threads = o->slots < o->participants ? o->slots : o->participants;
    pthread_t th[64];
    int started = 0;
    for (; started < n_threads; started++)
        if (pthread_create(&th[started], NULL, driver_main, &c) != 0) break;
    if (started == 0) driver_main(&c);
    for (int i = 0; i < started; i++) pthread_join(th[i], NULL);
    if (atomic_load(&c.failed)) {
        *err = c.err;
        st = TB_EIO;
    }

    /* the final evaluations, then the machines' turn */
    for (double w0 = tb_now(); st == TB_OK && tb_study_finals_pending(s) > 0; sleep_ms(100))
        if (tb_now() - w0 > 1800) st = tb_fail(err, TB_EIO, "final evaluations still pending after 30 minutes");
    if (st == TB_OK && o->random_search > 0) {
        tb_sweep sw;
        memset(&sw, 0, sizeof sw);
        char *problems = NULL;
        tb_executor *ex = NULL;
        say(o, "random search: %d configurations", o->random_search);
        st = tb_sweep_plan_random(&sw, cfg, o->random_search, o->seed, 0, &problems, err);
        if (st == TB_OK) {
            char cl[128];
            snprintf(cl, sizeof cl, "tunebench simulate --random-search %d --seed %llu", o->random_search,
                     (unsigned long long)o->seed);
            sw.command_line = strdup(cl);
            st = tb_executor_local_create(o->slots, 1, &ex, err);
        }
        if (st == TB_OK) {
            atomic_int never = 0;
            st = tb_sweep_execute(&sw, tb_study_archive(s), ex, &never, NULL, NULL, err);
        }
        tb_executor_destroy(ex);
        if (sw.id[0]) {
            tb_copy_str(res->sweep_id, sizeof res->sweep_id, sw.id);
            res->sweep_runs = sw.n_runs;
        }
        free(problems);
        tb_sweep_free(&sw);
    }
    for (int i = 0; i < api->participant_count(api->study); i++) {
        tb_fe_state ps;
        char e2[256];
        if (api->participant_at(api->study, i, &ps, sizeof ps, e2, sizeof e2) != TB_OK) continue;
        res->finals += ps.finals_total;
        res->finals_finished += ps.finals_done;
    }
    tb_err cerr = {{0}};
    tb_status cst = tb_study_close(s, 1, &cerr);
    if (st == TB_OK && cst != TB_OK) {
        *err = cerr;
        st = cst;
    }
    pthread_mutex_destroy(&c.mu);
    tb_config_free(cfg);
    res->seconds = tb_now() - t0;
    return st;
}

/* ---- the large synthetic archive --------------------------------------------------------------- */

static uint64_t tree_bytes(const char *path)
{
    struct stat sb;
    if (lstat(path, &sb) != 0) return 0;
    if (!S_ISDIR(sb.st_mode)) return (uint64_t)sb.st_blocks * 512u;
    uint64_t n = 0;
    DIR *d = opendir(path);
    if (!d) return 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char sub[4096];
        if (snprintf(sub, sizeof sub, "%s/%s", path, e->d_name) < (int)sizeof sub) n += tree_bytes(sub);
    }
    closedir(d);
    return n;
}

tb_status tb_simulate_synthetic(const char *dir, const tb_simulate_options *o, tb_simulate_result *res, tb_err *err)
{
    memset(res, 0, sizeof *res);
    const int runs = o->synthetic_runs, epochs = o->synthetic_epochs, batches = o->synthetic_batches;
    if (runs < 1 || runs > TB_SWEEP_MAX_RUNS)
        return tb_fail(err, TB_EINVAL, "--synthetic-runs = %d is outside [1, %d]", runs, TB_SWEEP_MAX_RUNS);
    if (epochs < 1 || epochs > 10000) return tb_fail(err, TB_EINVAL, "--epochs = %d is outside [1, 10000]", epochs);
    if (batches < 1 || batches > 100000)
        return tb_fail(err, TB_EINVAL, "--batches = %d is outside [1, 100000]", batches);
    const double t0 = tb_now();
    tb_space space;
    tb_space_default(&space);
    tb_sweep sw;
    memset(&sw, 0, sizeof sw);
    sw.kind = TB_SWEEP_RANDOM;
    sw.search_seed = o->seed;
    sw.seeds = 1;
    sw.first_seed = 1;
    sw.n_configs = runs;
    sw.n_runs = runs;
    sw.n_keys = TB_HP_COUNT;
    sw.created_s = tb_utc_now();
    char cl[160];
    snprintf(cl, sizeof cl, "tunebench simulate --synthetic-runs %d --epochs %d --batches %d --seed %llu", runs, epochs,
             batches, (unsigned long long)o->seed);
    sw.command_line = strdup(cl);
    sw.base_ini = strdup("; synthetic: no training (tunebench simulate --synthetic-runs)\n[train]\nseed = 1\n");
    sw.keys = calloc(TB_HP_COUNT, sizeof *sw.keys);
    sw.runs = calloc((size_t)runs, sizeof *sw.runs);
    int64_t *step = malloc((size_t)batches * sizeof *step);
    double *loss = malloc((size_t)batches * sizeof *loss);
    tb_archive *a = NULL;
    tb_status st = TB_OK;
    if (!sw.command_line || !sw.base_ini || !sw.keys || !sw.runs || !step || !loss) {
        st = tb_fail(err, TB_ENOMEM, "out of memory");
        goto out;
    }
    for (int k = 0; k < TB_HP_COUNT; k++) {
        char key[80];
        snprintf(key, sizeof key, "train.%s", tb_hp_names[k]);
        if (!(sw.keys[k] = strdup(key))) {
            st = tb_fail(err, TB_ENOMEM, "out of memory");
            goto out;
        }
    }
    if ((st = tb_archive_open(dir, 1, &a, NULL, err)) != TB_OK) goto out;
    for (int i = 0; i < runs && st == TB_OK; i++) {
        tb_sweep_run *sr = &sw.runs[i];
        sr->config = i, sr->fold = -1, sr->seed = 1;
        tb_hp_values v;
        tb_space_sample(&space, o->seed, (uint64_t)i, &v);
        sr->values = calloc(TB_HP_COUNT, sizeof *sr->values);
        char ini[4096];
        size_t k = 0;
        tb_appendf(ini, sizeof ini, &k, "; synthetic run: no training\n[train]\nseed = 1\n");
        for (int h = 0; sr->values && h < TB_HP_COUNT; h++) {
            sr->values[h] = strdup(v.text[h]);
            tb_appendf(ini, sizeof ini, &k, "%s = %s\n", tb_hp_names[h], v.text[h]);
        }
        if (!sr->values || !(sr->ini = strdup(ini))) {
            st = tb_fail(err, TB_ENOMEM, "out of memory");
            break;
        }
        /* a curve that levels off at a quality drawn for the run */
        tb_rng r;
        tb_rng_init(&r, o->seed, TB_STREAM_SIMULATE, 0x80000000u | (uint32_t)i);
        const double quality = 0.1 + 0.85 * unif(&r) * unif(&r) + 0.1 * unif(&r);
        const double ceiling = quality > 0.99 ? 0.99 : quality, rate = 3.0 / epochs;
        tb_archive_run *ar = NULL;
        if ((st = tb_archive_begin_run(a, NULL, "sweep", NULL, ini, &ar, err)) != TB_OK) break;
        tb_copy_str(sr->run_id, sizeof sr->run_id, tb_archive_run_id(ar));
        if ((st = tb_archive_run_status(ar, TB_RUN_TRAINING, NULL, err)) != TB_OK) {
            tb_archive_run_finish(ar, TB_RUN_INTERRUPTED, NAN, "synthetic archive: failed", NULL);
            break;
        }
        double acc = 0, vloss = 0;
        for (int e = 1; e <= epochs && st == TB_OK; e++) {
            double sum = 0;
            for (int b = 0; b < batches; b++) {
                double x = (e - 1) + (double)b / batches;
                step[b] = (int64_t)(e - 1) * batches + b + 1;
                loss[b] = 2.3 * (1 - ceiling * (1 - exp(-rate * x))) * (0.9 + 0.2 * unif(&r));
                sum += loss[b];
            }
            acc = ceiling * (1 - exp(-rate * e)) + 0.02 * (unif(&r) - 0.5);
            acc = acc < 0 ? 0 : acc > 1 ? 1 : acc;
            vloss = sum / batches * (1.05 + 0.1 * unif(&r));
            if ((st = tb_archive_run_batches(ar, (size_t)batches, step, loss, err)) == TB_OK)
                st = tb_archive_run_epoch(ar, e, sum / batches, vloss, acc, 0.01 * e, err);
        }
        double test = acc + 0.02 * (unif(&r) - 0.5);
        test = test < 0 ? 0 : test > 1 ? 1 : test;
        tb_err ferr;
        tb_status fst = tb_archive_run_finish(ar, st == TB_OK ? TB_RUN_FINISHED : TB_RUN_INTERRUPTED,
                                              st == TB_OK ? test : NAN, st == TB_OK ? "" : "synthetic archive: failed",
                                              &ferr);
        if (st == TB_OK && fst != TB_OK) {
            *err = ferr;
            st = fst;
        }
        sr->status = TB_RUN_FINISHED, sr->val_accuracy = acc, sr->val_loss = vloss, sr->test_accuracy = test;
        sr->seconds = 0.01 * epochs;
        if (st == TB_OK && (i + 1) % 50 == 0) say(o, "  %d of %d runs written (%.0f s)", i + 1, runs, tb_now() - t0);
    }
    if (st == TB_OK) {
        char sdir[1100], path[1200];
        snprintf(sdir, sizeof sdir, "%s/sweeps", dir);
        snprintf(sw.id, sizeof sw.id, "s0001-random");
        snprintf(path, sizeof path, "%s/%s.h5", sdir, sw.id);
        if (mkdir(sdir, 0777) != 0 && errno != EEXIST)
            st = tb_fail(err, TB_EIO, "cannot create %s: %s", sdir, strerror(errno));
        else st = tb_sweep_write(&sw, path, err);
        tb_copy_str(res->sweep_id, sizeof res->sweep_id, sw.id);
        res->sweep_runs = runs;
    }
out:
    if (a) {
        tb_err cerr;
        if (tb_archive_close(a, &cerr) != TB_OK && st == TB_OK) {
            *err = cerr;
            st = TB_EIO;
        }
    }
    free(step), free(loss);
    tb_sweep_free(&sw);
    res->seconds = tb_now() - t0;
    res->bytes = tree_bytes(dir);
    return st;
}
