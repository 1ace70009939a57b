/* test_frontend_cli.c: the CLI front-end plugin (plugins/frontends/cli.c),
 * loaded from the build through the host's loader and driven against a FAKE
 * study service: an in-memory tb_study_api whose participants and runs live
 * in this file. A run "trains" one epoch per wait() call, every second call
 * timing out instead (a slow moment, for the timed redraw); the fake validates
 * submissions against a Table-1 space, records rejections, cancels, diverges
 * (lr > 1), runs out of budget (a fixed cost per epoch), keeps a lobby, and
 * can inject a Ctrl-C (take_interrupt) at a chosen wait() call. Each test
 * checks the calls the fake received (its log) and key lines of the plugin's
 * output file. Interactive mode is driven by redirecting stdin (dup2) from a
 * file; Check runs every test in its own process. */
#define _XOPEN_SOURCE 700 /* posix_openpt */
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "base/config.h"
#include "host/plugin.h"
#include "tb_test.h"

/* ---- the fake study ------------------------------------------------------------------------- */

#define FK_PARTS 8
#define FK_RUNS 64
#define FK_FINALS 3

typedef struct fk_part {
    char id[64];
    char state[16];
    char education[32];
    double dl, prog, ml;
    int level;
    int lobby_left; /* enter() calls still spent in the lobby */
    double used_s;
    char live[32];
    char final_run[32], final_reason[16];
    int finals_done, finals_total;
    int subs[FK_RUNS], nsub; /* indexes into runs */
} fk_part;

typedef struct fk_run {
    tb_fe_run r;
    char owner[64];
    int cancel;
    char comments[TB_STUDY_HP_COUNT][256];
    int given[TB_STUDY_HP_COUNT]; /* a value was given (not the preset) */
} fk_run;

struct tb_study {
    fk_part p[FK_PARTS];
    int np;
    fk_run runs[FK_RUNS];
    int nr, next_run;
    double budget_s, epoch_s;
    char lobby_id[64];     /* this participant spends lobby_enters enter() calls in the lobby */
    int lobby_enters;
    int enters, interrupt_at_enter; /* Ctrl-C "pressed" during this enter() call (0: never) */
    int waits;             /* wait() calls so far */
    int interrupt_at_wait; /* Ctrl-C "pressed" during this wait() call (0: never) */
    int interrupt_pending;
    int timeouts;          /* every second wait() call times out (fake_reset sets it) */
    int timed_out;         /* wait() calls that timed out */
    char log[16384];
};

static tb_study fake;

static const tb_fe_hp fk_hp[TB_STUDY_HP_COUNT] = {
    {"epochs", 1, 1, 1, 20, NULL, "", "integer in [1, 20]"},
    {"batch_size", 1, 1, 1, 1024, NULL, "", "integer in [1, 1024] (log scale)"},
    {"loss", 3, 1, 0, 0, "cross_entropy|nll|l1|mse", "", "one of cross_entropy, nll, l1, mse"},
    {"optimizer", 3, 1, 0, 0, "adam|adadelta|adagrad|asgd|rmsprop|sgd", "",
     "one of adam, adadelta, adagrad, asgd, rmsprop, sgd"},
    {"lr", 2, 0, 1e-6, 10, NULL, "0.001", "float in [1e-06, 10] (log scale)"},
    {"weight_decay", 2, 0, 0, 1, NULL, "0", "float in [0, 1]"},
    {"momentum", 2, 0, 0, 1, NULL, "0", "float in [0, 1]"},
    {"rho", 2, 0, 0, 1, NULL, "0.9", "float in [0, 1]"},
    {"lambd", 2, 0, 0, 1000, NULL, "0.0001", "float in [0, 1000]"},
    {"alpha", 2, 0, 0, 1000, NULL, "0.99", "float in [0, 1000]"},
    {"eps", 2, 0, 0, 1, NULL, "1e-08", "float in [0, 1]"},
    {"lr_decay", 2, 0, 0, 1000, NULL, "0", "float in [0, 1000]"},
    {"initial_accumulator_value", 2, 0, 0, 1000, NULL, "0", "float in [0, 1000]"},
    {"beta1", 2, 0, 0, 0.999999, NULL, "0.9", "float in [0, 0.999999]"},
    {"beta2", 2, 0, 0, 0.999999, NULL, "0.999", "float in [0, 0.999999]"},
};

#define FK_COMMENTS                                                                                                \
    "It is just a guess.|It is the suggested default value.|It is the value that has worked well for me in the "  \
    "past.|It is the value I learnt from previous submissions."
#define FK_EDUCATION "high_school|bachelor|master_enrolled|master|doctorate"

static void fk_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void fk_log(const char *fmt, ...)
{
    size_t used = strlen(fake.log);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(fake.log + used, sizeof fake.log - used, fmt, ap);
    va_end(ap);
    used = strlen(fake.log);
    if (used + 1 < sizeof fake.log) strcat(fake.log, "\n");
}

static tb_status fk_fail(char *err, size_t len, tb_status s, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static tb_status fk_fail(char *err, size_t len, tb_status s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, len, fmt, ap);
    va_end(ap);
    return s;
}

static fk_part *fk_find(tb_study *s, const char *id)
{
    for (int i = 0; id && i < s->np; i++)
        if (strcmp(s->p[i].id, id) == 0) return &s->p[i];
    return NULL;
}

static fk_run *fk_find_run(tb_study *s, const char *run_id)
{
    for (int i = 0; run_id && *run_id && i < s->nr; i++)
        if (strcmp(s->runs[i].r.run_id, run_id) == 0) return &s->runs[i];
    return NULL;
}

static const char *fk_title(tb_study *s) { (void)s; return "Fake study"; }
static const char *fk_briefing(tb_study *s) { (void)s; return "Tune the network; the best validation accuracy wins."; }
static double fk_budget(tb_study *s) { return s->budget_s; }
static const char *fk_education(tb_study *s) { (void)s; return FK_EDUCATION; }
static const char *fk_comments(tb_study *s) { (void)s; return FK_COMMENTS; }

static int fk_hp_info(tb_study *s, int i, tb_fe_hp *out)
{
    (void)s;
    if (i < 0 || i >= TB_STUDY_HP_COUNT) return -1;
    *out = fk_hp[i];
    return 0;
}

static tb_status fk_register(tb_study *s, const tb_fe_participant *p, char id_out[64], char *err, size_t len)
{
    fk_log("register %s %s %g %g %g %d", p->id && *p->id ? p->id : "-", p->education, p->dl_months,
           p->programming_months, p->ml_months, p->self_level);
    if (s->np == FK_PARTS) return fk_fail(err, len, TB_ENOMEM, "too many participants");
    if (!p->education || !strstr(FK_EDUCATION, p->education))
        return fk_fail(err, len, TB_EINVAL, "education \"%s\" is not one of %s", p->education ? p->education : "",
                       FK_EDUCATION);
    if (!(p->dl_months >= 0)) return fk_fail(err, len, TB_EINVAL, "dl_months = %g must be >= 0", p->dl_months);
    if (p->id && *p->id && fk_find(s, p->id))
        return fk_fail(err, len, TB_EINVAL, "participant %s already exists", p->id);
    fk_part *q = &s->p[s->np];
    memset(q, 0, sizeof *q);
    if (p->id && *p->id) snprintf(q->id, sizeof q->id, "%s", p->id);
    else snprintf(q->id, sizeof q->id, "p%03d", s->np + 1);
    s->np++;
    snprintf(q->state, sizeof q->state, "registered");
    snprintf(q->education, sizeof q->education, "%s", p->education);
    q->dl = p->dl_months, q->prog = p->programming_months, q->ml = p->ml_months, q->level = p->self_level;
    q->lobby_left = strcmp(q->id, s->lobby_id) == 0 ? s->lobby_enters : 0;
    snprintf(id_out, 64, "%s", q->id);
    return TB_OK;
}

static tb_status fk_consent(tb_study *s, const char *id, char *err, size_t len)
{
    fk_log("consent %s", id);
    fk_part *p = fk_find(s, id);
    if (!p) return fk_fail(err, len, TB_EINVAL, "unknown participant %s", id);
    if (strcmp(p->state, "registered") != 0) return fk_fail(err, len, TB_EINVAL, "%s has already consented", id);
    snprintf(p->state, sizeof p->state, "consented");
    return TB_OK;
}

static tb_status fk_enter(tb_study *s, const char *id, int *admitted, char *err, size_t len)
{
    fk_part *p = fk_find(s, id);
    *admitted = 0;
    if (++s->enters == s->interrupt_at_enter) s->interrupt_pending = 1;
    if (!p) return fk_fail(err, len, TB_EINVAL, "unknown participant %s", id);
    if (!strcmp(p->state, "registered")) return fk_fail(err, len, TB_EINVAL, "%s has not consented", id);
    if (!strcmp(p->state, "done")) return fk_fail(err, len, TB_EINVAL, "%s has finished", id);
    if (p->lobby_left > 0) {
        p->lobby_left--;
        snprintf(p->state, sizeof p->state, "lobby");
    } else {
        snprintf(p->state, sizeof p->state, "active");
        *admitted = 1;
    }
    fk_log("enter %s %d", id, *admitted);
    return TB_OK;
}

static tb_status fk_pause(tb_study *s, const char *id, char *err, size_t len)
{
    fk_log("pause %s", id);
    fk_part *p = fk_find(s, id);
    if (!p) return fk_fail(err, len, TB_EINVAL, "unknown participant %s", id);
    if (p->live[0]) return fk_fail(err, len, TB_EINVAL, "run %s is live: cancel it or wait", p->live);
    if (!strcmp(p->state, "active") || !strcmp(p->state, "lobby")) snprintf(p->state, sizeof p->state, "consented");
    return TB_OK;
}

/* The final evaluation advances one seed per state() call. */
static tb_status fk_state(tb_study *s, const char *id, tb_fe_state *out, char *err, size_t len)
{
    fk_part *p = fk_find(s, id);
    if (!p) return fk_fail(err, len, TB_EINVAL, "unknown participant %s", id ? id : "(null)");
    if (p->finals_total > 0 && p->finals_done < p->finals_total) p->finals_done++;
    memset(out, 0, sizeof *out);
    snprintf(out->id, sizeof out->id, "%s", p->id);
    snprintf(out->state, sizeof out->state, "%s", p->state);
    out->lobby_position = !strcmp(p->state, "lobby") ? 1 : 0;
    out->budget_s = s->budget_s;
    out->used_s = p->used_s;
    out->left_s = s->budget_s - p->used_s;
    out->submissions = p->nsub;
    snprintf(out->live_run, sizeof out->live_run, "%s", p->live);
    snprintf(out->final_run, sizeof out->final_run, "%s", p->final_run);
    snprintf(out->final_reason, sizeof out->final_reason, "%s", p->final_reason);
    out->finals_done = p->finals_done;
    out->finals_total = p->finals_total;
    int all = p->finals_total > 0 && p->finals_done == p->finals_total;
    out->final_mean = all ? 0.8123 : NAN;
    out->final_sd = all ? 0.0123 : NAN;
    return TB_OK;
}

static int fk_check(int i, const char *v, char *err, size_t len)
{
    const tb_fe_hp *h = &fk_hp[i];
    char *end;
    if (h->type == 3) {
        size_t n = strlen(v);
        for (const char *c = h->choices; *c;) {
            size_t k = strcspn(c, "|");
            if (k == n && strncasecmp(c, v, n) == 0) return 0;
            c += k + (c[k] == '|');
        }
        snprintf(err, len, "%s = %s is not allowed; allowed: %s", h->name, v, h->allowed);
        return -1;
    }
    double x = strtod(v, &end);
    if (end == v || *end || !isfinite(x)) {
        snprintf(err, len, "%s = %s is not a number; allowed: %s", h->name, v, h->allowed);
        return -1;
    }
    if (h->type == 1 && x != floor(x)) {
        snprintf(err, len, "%s = %s is not an integer; allowed: %s", h->name, v, h->allowed);
        return -1;
    }
    if (x < h->lo || x > h->hi) {
        snprintf(err, len, "%s = %s is outside the allowed range [%g, %g]", h->name, v, h->lo, h->hi);
        return -1;
    }
    return 0;
}

static tb_status fk_submit(tb_study *s, const char *id, const char *const *values, const char *const *comments,
                           char run_id[32], int *bad_hp, char *err, size_t len)
{
    fk_part *p = fk_find(s, id);
    *bad_hp = -1;
    run_id[0] = '\0';
    if (!p) return fk_fail(err, len, TB_EINVAL, "unknown participant %s", id);
    if (strcmp(p->state, "active") != 0) {
        fk_log("submit %s refused", id);
        return fk_fail(err, len, TB_EINVAL, "%s is not admitted (state %s)", id, p->state);
    }
    if (p->live[0]) {
        fk_log("submit %s refused", id);
        return fk_fail(err, len, TB_EINVAL, "run %s is still live", p->live);
    }
    ck_assert_int_lt(s->nr, FK_RUNS);
    fk_run *r = &s->runs[s->nr];
    memset(r, 0, sizeof *r);
    snprintf(r->owner, sizeof r->owner, "%s", id);
    tb_status st = TB_OK;
    for (int i = 0; i < TB_STUDY_HP_COUNT; i++) {
        const char *v = values[i] && *values[i] ? values[i] : NULL;
        r->given[i] = v != NULL;
        snprintf(r->comments[i], sizeof r->comments[i], "%s", comments[i] ? comments[i] : "");
        snprintf(r->r.values[i], sizeof r->r.values[i], "%s", v ? v : fk_hp[i].preset);
        if (st != TB_OK) continue;
        if (!v && fk_hp[i].mandatory) {
            snprintf(err, len, "%s is mandatory; allowed: %s", fk_hp[i].name, fk_hp[i].allowed);
            *bad_hp = i;
            st = TB_EINVAL;
        } else if (v && fk_check(i, v, err, len) != 0) {
            *bad_hp = i;
            st = TB_EINVAL;
        }
    }
    s->nr++;
    p->subs[p->nsub++] = s->nr - 1;
    r->r.number = p->nsub;
    r->r.epochs = atoi(r->r.values[0]);
    r->r.batches_per_epoch = 10;
    r->r.batch_loss = r->r.epoch_loss = r->r.val_loss = r->r.val_accuracy = NAN;
    r->r.seq = 1;
    if (st != TB_OK) {
        snprintf(r->r.status, sizeof r->r.status, "rejected");
        snprintf(r->r.message, sizeof r->r.message, "%s", err);
        fk_log("submit %s rejected %s", id, fk_hp[*bad_hp].name);
        return st;
    }
    snprintf(r->r.run_id, sizeof r->r.run_id, "r%d", ++s->next_run);
    snprintf(r->r.status, sizeof r->r.status, "queued");
    snprintf(p->live, sizeof p->live, "%s", r->r.run_id);
    snprintf(run_id, 32, "%s", r->r.run_id);
    fk_log("submit %s %s", id, run_id);
    return TB_OK;
}

static tb_status fk_cancel(tb_study *s, const char *id, const char *run_id, char *err, size_t len)
{
    fk_log("cancel %s %s", id, run_id);
    fk_run *r = fk_find_run(s, run_id);
    if (!r || strcmp(r->owner, id) != 0) return fk_fail(err, len, TB_EINVAL, "%s has no run %s", id, run_id);
    if (strcmp(r->r.status, "queued") != 0 && strcmp(r->r.status, "training") != 0)
        return fk_fail(err, len, TB_EINVAL, "run %s has already ended (%s)", run_id, r->r.status);
    r->cancel = 1;
    return TB_OK;
}

static tb_status fk_run_state(tb_study *s, const char *run_id, tb_fe_run *out, char *err, size_t len)
{
    fk_run *r = fk_find_run(s, run_id);
    if (!r) return fk_fail(err, len, TB_EINVAL, "unknown run %s", run_id);
    *out = r->r;
    return TB_OK;
}

static int fk_best(tb_study *s, fk_part *p)
{
    int best = -1;
    for (int i = 0; i < p->nsub; i++) {
        fk_run *r = &s->runs[p->subs[i]];
        if (!strcmp(r->r.status, "finished") && (best < 0 || r->r.val_accuracy > s->runs[best].r.val_accuracy))
            best = p->subs[i];
    }
    return best;
}

static void fk_end(tb_study *s, fk_run *r, const char *status, const char *message)
{
    snprintf(r->r.status, sizeof r->r.status, "%s", status);
    snprintf(r->r.message, sizeof r->r.message, "%s", message);
    fk_part *p = fk_find(s, r->owner);
    if (p) p->live[0] = '\0';
}

/* One step of training per call: queued -> training -> one epoch per call.
 * With timeouts, every second call (the 2nd, 4th, ...) is a slow moment
 * instead: nothing changes and the call returns 0 after timeout_ms (and a
 * millisecond), as the study's wait does, so the front end's timed redraw
 * and its handling of a Ctrl-C during a timed-out wait are exercised. */
static int fk_wait(tb_study *s, const char *run_id, uint64_t seq, int timeout_ms)
{
    s->waits++;
    if (s->waits == s->interrupt_at_wait) s->interrupt_pending = 1;
    fk_run *r = fk_find_run(s, run_id);
    if (!r) return -1;
    if (r->r.seq != seq) return 1;
    tb_fe_run *x = &r->r;
    if (strcmp(x->status, "queued") != 0 && strcmp(x->status, "training") != 0) return 0;
    if (s->timeouts && s->waits % 2 == 0) {
        s->timed_out++;
        struct timespec ts = {0, (long)(timeout_ms + 1) * 1000000L};
        while (nanosleep(&ts, &ts) != 0) {
        }
        return 0;
    }
    fk_part *p = fk_find(s, r->owner);
    x->seq++;
    if (r->cancel) {
        fk_end(s, r, "cancelled", "cancelled by the participant");
        return 1;
    }
    if (!strcmp(x->status, "queued")) {
        snprintf(x->status, sizeof x->status, "training");
        return 1;
    }
    if (atof(x->values[4]) > 1) {
        x->batch = 3;
        fk_end(s, r, "diverged", "NaN loss in epoch 1, batch 3");
        return 1;
    }
    x->epoch++;
    x->batch = x->batches_per_epoch;
    x->epoch_loss = 1.0 / (x->epoch + 1);
    x->batch_loss = 1.1 * x->epoch_loss;
    x->val_loss = 1.2 * x->epoch_loss;
    x->val_accuracy = fmin(0.95, 0.6 + 0.1 * x->epoch);
    x->seconds += s->epoch_s;
    p->used_s += s->epoch_s;
    if (x->epoch >= x->epochs) fk_end(s, r, "finished", "");
    if (p->used_s >= s->budget_s) {
        if (!strcmp(x->status, "training")) fk_end(s, r, "cancelled", "the time budget ran out");
        snprintf(p->state, sizeof p->state, "done");
        int best = fk_best(s, p);
        snprintf(p->final_reason, sizeof p->final_reason, "%s", best >= 0 ? "budget" : "none");
        if (best >= 0) {
            snprintf(p->final_run, sizeof p->final_run, "%s", s->runs[best].r.run_id);
            p->finals_total = FK_FINALS;
        }
    }
    return 1;
}

static int fk_history_count(tb_study *s, const char *id)
{
    fk_part *p = fk_find(s, id);
    return p ? p->nsub : -1;
}

static tb_status fk_history_at(tb_study *s, const char *id, int i, tb_fe_run *out, char *err, size_t len)
{
    fk_part *p = fk_find(s, id);
    if (!p || i < 0 || i >= p->nsub) return fk_fail(err, len, TB_EINVAL, "no submission %d of %s", i + 1, id);
    *out = s->runs[p->subs[i]].r;
    return TB_OK;
}

static tb_status fk_finish(tb_study *s, const char *id, const char *run_id, char *err, size_t len)
{
    fk_log("finish %s %s", id, run_id ? run_id : "best");
    fk_part *p = fk_find(s, id);
    if (!p) return fk_fail(err, len, TB_EINVAL, "unknown participant %s", id);
    if (strcmp(p->state, "active") != 0) return fk_fail(err, len, TB_EINVAL, "%s is not admitted", id);
    if (p->live[0]) return fk_fail(err, len, TB_EINVAL, "run %s is live", p->live);
    int k = -1;
    if (run_id) {
        fk_run *r = fk_find_run(s, run_id);
        if (!r || strcmp(r->owner, id) != 0 || strcmp(r->r.status, "finished") != 0)
            return fk_fail(err, len, TB_EINVAL, "run %s is not a finished run of %s", run_id, id);
        k = (int)(r - s->runs);
    } else if ((k = fk_best(s, p)) < 0) return fk_fail(err, len, TB_EINVAL, "%s has no finished run", id);
    snprintf(p->state, sizeof p->state, "done");
    snprintf(p->final_run, sizeof p->final_run, "%s", s->runs[k].r.run_id);
    snprintf(p->final_reason, sizeof p->final_reason, "chosen");
    p->finals_total = FK_FINALS;
    return TB_OK;
}

static int fk_take_interrupt(tb_study *s)
{
    int r = s->interrupt_pending;
    s->interrupt_pending = 0;
    return r;
}

static tb_study_api api = {
    .version = TB_STUDY_API_VERSION,
    .size = sizeof(tb_study_api),
    .study = &fake,
    .title = fk_title,
    .briefing = fk_briefing,
    .budget_s = fk_budget,
    .hp_info = fk_hp_info,
    .education_levels = fk_education,
    .comments = fk_comments,
    .register_participant = fk_register,
    .consent = fk_consent,
    .enter = fk_enter,
    .pause = fk_pause,
    .state = fk_state,
    .submit = fk_submit,
    .cancel = fk_cancel,
    .run_state = fk_run_state,
    .wait = fk_wait,
    .history_count = fk_history_count,
    .history_at = fk_history_at,
    .finish = fk_finish,
    .take_interrupt = fk_take_interrupt,
};

static void fake_reset(void)
{
    memset(&fake, 0, sizeof fake);
    fake.budget_s = 7200;
    fake.epoch_s = 60;
    fake.timeouts = 1;
}

static fk_run *fk_run_of(const char *run_id)
{
    fk_run *r = fk_find_run(&fake, run_id);
    ck_assert_msg(r != NULL, "the fake has no run %s", run_id);
    return r;
}

/* ---- running the plugin (TBT_CLI_DUMP=1 prints each output to stderr) ---------------------- */

static char dir[64], script_path[128], output_path[128];
static char out[1 << 17];

static void setup(void)
{
    fake_reset();
    snprintf(dir, sizeof dir, "/tmp/tbcli-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(script_path, sizeof script_path, "%s/script.txt", dir);
    snprintf(output_path, sizeof output_path, "%s/out.txt", dir);
}

static void teardown(void)
{
    unlink(script_path);
    unlink(output_path);
    rmdir(dir);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    ck_assert_int_eq(fclose(f), 0);
}

static void read_output(void)
{
    out[0] = '\0';
    FILE *f = fopen(output_path, "r");
    if (!f) return;
    size_t n = fread(out, 1, sizeof out - 1, f);
    out[n] = '\0';
    fclose(f);
}

static tb_plugin_registry reg;

/* The build's cli.so alone (no discovery: nothing else is needed). */
static const tb_plugin *load_cli(void)
{
    memset(&reg, 0, sizeof reg);
    tb_err err;
    ck_assert_msg(tb_plugin_load_file(&reg, TB_PLUGIN_BUILD_DIR "/cli.so", &err) == TB_OK, "%s", err.msg);
    ck_assert_int_eq(reg.count, 1);
    const tb_plugin *p = NULL;
    ck_assert_msg(tb_plugin_find(&reg, TB_PLUGIN_FRONTEND, "cli", &p, &err) == TB_OK, "%s", err.msg);
    return p;
}

#define CLI_PREFIX "frontend plugin \"cli\": "

/* Runs the plugin through the host (tb_plugin_run_frontend) with args (NULL:
 * its defaults); a failure's message must be one line starting with
 * CLI_PREFIX, which is cut: err receives the plugin's own words. */
static tb_status run_frontend(const tb_plugin *p, const tb_study_api *with, const tb_plugin_args *args, char *err,
                              size_t errlen)
{
    tb_err e;
    memset(&e, 0, sizeof e);
    tb_status s = tb_plugin_run_frontend(p, with, args, &e);
    err[0] = '\0';
    if (s == TB_OK) return s;
    ck_assert_msg(strncmp(e.msg, CLI_PREFIX, strlen(CLI_PREFIX)) == 0, "no \"%s\" before: %s", CLI_PREFIX, e.msg);
    ck_assert_msg(strchr(e.msg, '\n') == NULL && strchr(e.msg, '\r') == NULL, "error is not one line: %s", e.msg);
    snprintf(err, errlen, "%s", e.msg + strlen(CLI_PREFIX));
    return s;
}

/* Runs the plugin with cli.script = script (NULL: "" interactive), cli.output
 * = the test's output file, refresh 0.05; the output is read into `out`. */
static tb_status run_cli(const char *script, char *err, size_t errlen)
{
    unlink(output_path); /* the plugin appends: start each run afresh */
    const tb_plugin *p = load_cli();
    ck_assert_ptr_nonnull(p->desc.frontend);
    tb_config *cfg = tb_config_new();
    tb_err e;
    ck_assert(tb_config_set(cfg, "cli.script", script ? script : "", &e) == TB_OK);
    ck_assert(tb_config_set(cfg, "cli.output", output_path, &e) == TB_OK);
    ck_assert(tb_config_set(cfg, "cli.refresh", "0.05", &e) == TB_OK);
    tb_plugin_args *args = NULL;
    ck_assert_msg(tb_plugin_args_resolve(p, cfg, "cli", &args, &e) == TB_OK, "%s", e.msg);
    tb_status s = run_frontend(p, &api, args, err, errlen);
    tb_plugin_args_free(args);
    tb_config_free(cfg);
    tb_plugins_free(&reg);
    read_output();
    if (getenv("TBT_CLI_DUMP"))
        fprintf(stderr, "---- output (%s) ----\n%s---- err: %s\n", script ? script : "interactive", out, err);
    return s;
}

static tb_status run_script(const char *text, char *err, size_t errlen)
{
    write_file(script_path, text);
    return run_cli(script_path, err, errlen);
}

/* stdin from a file holding text (returns the saved descriptor), and back.
 * Whatever the plugin left unread in stdin's buffer is dropped (fflush on a
 * seekable input stream), so tests stay apart even with CK_FORK=no. */
static int stdin_from(const char *text)
{
    char in_path[160];
    snprintf(in_path, sizeof in_path, "%s/stdin.txt", dir);
    write_file(in_path, text);
    int fd = open(in_path, O_RDONLY);
    ck_assert_int_ge(fd, 0);
    int saved = dup(0);
    ck_assert_int_ge(saved, 0);
    ck_assert_int_eq(dup2(fd, 0), 0);
    close(fd);
    unlink(in_path);
    clearerr(stdin);
    return saved;
}

static void stdin_restore(int saved)
{
    fflush(stdin);
    dup2(saved, 0);
    close(saved);
    clearerr(stdin);
}

/* Interactive: stdin from a file holding `input`. */
static tb_status run_interactive(const char *input, char *err, size_t errlen)
{
    int saved = stdin_from(input);
    tb_status s = run_cli(NULL, err, errlen);
    stdin_restore(saved);
    return s;
}

/* ---- tests --------------------------------------------------------------------------------- */

/* The descriptor as the loader sees it: kind frontend with a tb_frontend_api
 * of the host's size, the three options (resolved, defaults, range-checked
 * by the host from the section named after it), refused where another kind
 * is asked for. (This test used to have a near copy in test_plugin_loader.) */
START_TEST(test_descriptor)
{
    const tb_plugin *p = load_cli();
    ck_assert_int_eq(p->desc.kind, TB_PLUGIN_FRONTEND);
    ck_assert_str_eq(p->desc.name, "cli");
    ck_assert_ptr_nonnull(p->desc.frontend);
    ck_assert_uint_eq(p->desc.frontend->size, sizeof(tb_frontend_api));
    ck_assert_uint_ge(p->desc.frontend->size, offsetof(tb_frontend_api, run) + sizeof p->desc.frontend->run);
    ck_assert_ptr_nonnull(p->desc.frontend->run);
    ck_assert_ptr_null(p->desc.build_model);
    ck_assert_ptr_null(p->desc.open_task);
    const char *names[] = {"script", "output", "refresh"};
    ck_assert_int_eq(p->desc.n_options, 3);
    for (int i = 0; i < 3; i++) ck_assert_str_eq(p->desc.options[i].name, names[i]);
    /* its options resolve from the section named after it */
    tb_config *cfg = tb_config_new();
    tb_err e;
    ck_assert(tb_config_set(cfg, "cli.script", "-", &e) == TB_OK);
    tb_plugin_args *args = NULL;
    ck_assert_msg(tb_plugin_args_resolve(p, cfg, "cli", &args, &e) == TB_OK, "%s", e.msg);
    const tb_host_api *h = tb_host_api_get();
    ck_assert_str_eq(h->arg_string(args, "script"), "-");
    ck_assert_str_eq(h->arg_string(args, "output"), "");
    ck_assert(fabs(h->arg_float(args, "refresh") - 0.5) < 1e-12);
    tb_plugin_args_free(args);
    /* refresh is range-checked by the host */
    ck_assert(tb_config_set(cfg, "cli.refresh", "0.01", &e) == TB_OK);
    args = NULL;
    ck_assert(tb_plugin_args_resolve(p, cfg, "cli", &args, &e) != TB_OK);
    TBT_ASSERT_HAS(e.msg, "cli.refresh");
    ck_assert_ptr_null(args);
    tb_config_free(cfg);
    /* asked for as a model, it says what it is */
    const tb_plugin *q = NULL;
    ck_assert(tb_plugin_find(&reg, TB_PLUGIN_MODEL, "cli", &q, &e) != TB_OK);
    TBT_ASSERT_HAS(e.msg, "plugin \"cli\"");
    TBT_ASSERT_HAS(e.msg, "is a frontend plugin, not a model plugin");
    ck_assert(tb_plugin_find(&reg, TB_PLUGIN_FRONTEND, "web", &q, &e) != TB_OK);
    TBT_ASSERT_HAS(e.msg, "frontend plugin \"web\" not found");
    TBT_ASSERT_HAS(e.msg, "available frontends: cli");
    /* the calls of other kinds refuse it */
    tb_net *net = NULL;
    tb_model_input in = {1, 4, 4, 2};
    ck_assert(tb_plugin_build_model(p, NULL, &in, &net, &e) != TB_OK);
    TBT_ASSERT_HAS(e.msg, "is a frontend plugin, not a model plugin");
    ck_assert_ptr_null(net);
    tb_plugins_free(&reg);
}
END_TEST

START_TEST(test_full_session)
{
    const char *script =
        "# one participant, start to end\n"
        "register id=alice education=master dl_months=12 programming_months=48 self_level=3\n"
        "consent\n"
        "enter\n"
        "\n"
        "submit epochs=3 batch_size=64 loss=cross_entropy optimizer=adam lr=20 comment.lr=\"way too high?\"\n"
        "expect submission rejected\n"
        "submit epochs=3 batch_size=64 loss=cross_entropy optimizer=adam lr=0.01 comment.lr=1 "
        "comment.epochs=\"short, to \\\"save\\\" budget\"   # a trailing comment\n"
        "wait\n"
        "expect status finished\n"
        "expect val_accuracy >=85\n"
        "submit epochs=10 batch_size=32 loss=nll optimizer=sgd lr=0.1 momentum=0.9\n"
        "wait epoch=2\n"
        "expect epoch 2\n"
        "cancel\n"
        "wait\n"
        "expect status cancelled\n"
        "history\n"
        "budget\n"
        "finish best\n"
        "expect state done\n"
        "expect final_reason chosen\n"
        "wait-finals\n"
        "expect finals_done 3\n";
    char err[512];
    tb_status s = run_script(script, err, sizeof err);
    ck_assert_msg(s == TB_OK, "%s\n%s", err, out);

    /* the calls the fake received, in order */
    tbt_assert_in_order(fake.log, "register alice master 12 48 nan 3\n", "consent alice\n", "enter alice 1\n",
                        "submit alice rejected lr\n", "submit alice r1\n", "submit alice r2\n", "cancel alice r2\n",
                        "finish alice best\n", NULL);
    TBT_ASSERT_LACKS(fake.log, "pause alice"); /* done, not active: nothing to pause at the end */
    ck_assert_int_eq(fake.nr, 3);
    /* the rejected submission carries what was given, and its comment */
    ck_assert_str_eq(fake.runs[0].r.status, "rejected");
    ck_assert_str_eq(fake.runs[0].r.values[4], "20");
    ck_assert_str_eq(fake.runs[0].comments[4], "way too high?");
    /* the good one: values as given, presets untouched, comments by number and free text */
    fk_run *r1 = fk_run_of("r1");
    ck_assert_str_eq(r1->r.values[0], "3");
    ck_assert_str_eq(r1->r.values[3], "adam");
    ck_assert_str_eq(r1->r.values[4], "0.01");
    ck_assert(!r1->given[5] && !r1->given[14]);
    ck_assert_str_eq(r1->comments[4], "It is just a guess.");
    ck_assert_str_eq(r1->comments[0], "short, to \"save\" budget");
    ck_assert_str_eq(r1->comments[1], "");
    ck_assert_str_eq(r1->r.status, "finished");
    fk_run *r2 = fk_run_of("r2");
    ck_assert_str_eq(r2->r.status, "cancelled");
    ck_assert_str_eq(r2->r.values[6], "0.9");
    ck_assert_int_eq(r2->r.epoch, 2);

    /* key lines of the output */
    tbt_assert_in_order(out, "registered alice\n", "alice consented\n", "alice admitted\n",
                        "rejected: lr = 20 is outside the allowed range [1e-06, 10]\n", "submitted r1\n",
                        "run r1: epoch 1/3, batch 10/10, batch loss 0.5500, epoch loss 0.5000, val accuracy 70.00%, "
                        "budget left 119:00\n",
                        "run r1 finished: val accuracy 90.00% after 3/3 epochs\n", "submitted r2\n",
                        "run r2 reached epoch 2/10\n", "cancel requested for run r2\n",
                        "run r2 cancelled after 2/10 epochs (val accuracy 80.00%): cancelled by the participant\n",
                        "history of alice (3 submissions):\n", NULL);
    /* the history table: one row per submission */
    tbt_assert_in_order(out, "    1  -              rejected", "20", "lr = 20 is outside", "\n", "    2  r1",
                        "finished", "3/3", "90.00%", "adam", "0.01", "64", "cross_entropy", "\n", "    3  r2",
                        "cancelled", "2/10", "80.00%", "sgd", "0.1", "32", "nll", NULL);
    tbt_assert_in_order(out, "budget of alice: used 5:00 of 120:00 min, 115:00 min left; 3 submissions; state active\n",
                        "alice finished tuning\n", "final configuration: run r1 (chosen)\n",
                        "final evaluation: test accuracy 81.23 ± 1.23 % over 3 seeds\n", "ok: finals_done 3\n", NULL);
}
END_TEST

START_TEST(test_script_errors_name_file_and_line)
{
    char err[512];
    struct {
        const char *script;
        int line;
        const char *part;
    } cases[] = {
        {"register education=master dl_months=1\nconsent\nfrobnicate now\n", 3,
         "unknown command \"frobnicate\""},
        {"register education=master dl_months=1\nsubmt epochs=1\n", 2, "did you mean submit?"},
        {"consent\n", 1, "consent: no current participant"},
        {"register education=master dl_months=1\n\n# c\nsubmit comment.lr=\"open\n", 4, "unterminated quote"},
        {"register education=master dl_months=1\nconsent\nenter\nsubmit epochs=1 lrr=3\n", 4,
         "unknown hyperparameter lrr (did you mean lr?)"},
        {"register education=master dl_months=1\nconsent\nenter\nsubmit epochs=1 epochs=2\n", 4, "given twice"},
        {"register education=master dl_months=1\nconsent\nenter\nsubmit epochs=1 comment.epochs=5\n", 4,
         "the study has 4 predefined comments"},
        {"register education=master dl_months=1\nwait\n", 2, "has no run yet"},
        {"register education=master dl_months=lots\n", 1, "dl_months = \"lots\" is not a number"},
        {"register education=master\n", 1, "dl_months=... is required"},
        {"register education=master dl_months=1 self_level=9\n", 1, "self_level = \"9\" is not an integer in [1, 5]"},
        {"register education=master dl_months=1 educaton=x\n", 1, "unknown key educaton (did you mean education?)"},
        {"register education=wizard dl_months=1\n", 1, "register: education \"wizard\" is not one of"},
        {"as nobody\n", 1, "as nobody: unknown participant nobody"},
        {"register education=master dl_months=1\nenter\n", 2, "enter: p001 has not consented"},
        {"register education=master dl_months=1\nconsent\nconsent\n", 3, "consent: p001 has already consented"},
        {"register education=master dl_months=1\nconsent\nenter\nfinish\n", 4, "finish: p001 has no finished run"},
        {"register education=master dl_months=1\nconsent\nenter\nwait-finals\n", 4, "no final evaluation queued"},
        {"sleep forever\n", 1, "sleep: usage"},
        {"register education=master dl_months=1\nexpect colour blue\n", 2, "expect: unknown field colour"},
        {"register education=master dl_months=1\nexpect-rejected history\n", 2, "history cannot be rejected"},
        /* the messages built from the command and field tables */
        {"register education=master dl_months=1\nfrobnicate\n", 2,
         "(commands: register, as, consent, enter, submit, wait, cancel, history, budget, pause, finish, "
         "wait-finals, participants, admission, sleep, expect, expect-rejected, quit)"},
        {"register education=master dl_months=1\nexpect-rejected wait\n", 2,
         "expect-rejected: wait cannot be rejected (use register, consent, enter, submit, cancel, pause, finish or admission)"},
        {"register education=master dl_months=1\nhistory now\n", 2, "history takes no arguments"},
        {"quit now\n", 1, "quit takes no arguments"},
        {"budget\n", 1, "budget: no current participant"},
        {"register education=master dl_months=1\nexpect stauts finished\n", 2,
         "expect: unknown field stauts (did you mean status?); fields of the last run: status, epoch, epochs, "
         "val_accuracy, message, run; of the last submission: submission; of the participant's state: state, "
         "final_reason, final_run, submissions, finals_done, finals_total, lobby_position, left_s, final_mean"},
        {"register education=master dl_months=1\nexpect submission rejected\n", 2,
         "expected submission rejected, got no submission"},
        {"register education=master dl_months=1\nexpect status finished\n", 2, "expected status finished, got no run"},
        /* "did you mean" by the core's rule: a 3+ character prefix or initials count as close */
        {"register educ=master dl_months=1\n", 1, "unknown key educ (did you mean education?)"}, /* a prefix */
        {"register education=master dl_months=1\nconsent\nenter\nsubmit epochs=1 wd=0.1\n", 4,
         "unknown hyperparameter wd (did you mean weight_decay?)"},
        /* submissions by number */
        {"register education=master dl_months=1\nwait #1\n", 2, "wait: #1 is not a submission of p001 (1 to 0)"},
        {"register education=master dl_months=1\nconsent\nenter\nsubmit epochs=0\ncancel #1\n", 5,
         "cancel: submission #1 was rejected and has no run"},
        {"register education=master dl_months=1\nconsent\nenter\nsubmit epochs=0\nfinish #9 # not there\n", 5,
         "finish: #9 is not a submission of p001 (1 to 1)"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        fake_reset();
        tb_status s = run_script(cases[i].script, err, sizeof err);
        ck_assert_msg(s != TB_OK, "case %zu passed:\n%s", i, cases[i].script);
        char where[160];
        snprintf(where, sizeof where, "%s:%d: ", script_path, cases[i].line);
        ck_assert_msg(strncmp(err, where, strlen(where)) == 0, "case %zu: \"%s\" does not start with \"%s\"", i, err,
                      where);
        ck_assert_msg(strstr(err, cases[i].part) != NULL, "case %zu: \"%s\" lacks \"%s\"", i, err, cases[i].part);
    }
    /* a script that cannot be opened */
    ck_assert_int_eq(run_cli("/nonexistent/tb-script.txt", err, sizeof err), TB_EIO);
    TBT_ASSERT_HAS(err, "cli.script /nonexistent/tb-script.txt: No such file or directory");
}
END_TEST

/* RUN arguments by submission number, "#N" (a '#' before a digit is no comment). */
START_TEST(test_submission_numbers)
{
    char err[512];
    const char *script = "register id=num education=master dl_months=3\nconsent\nenter\n"
                         "submit epochs=0 batch_size=8 loss=nll optimizer=adam   # #1: rejected\n"
                         "submit epochs=2 batch_size=8 loss=nll optimizer=adam\nwait #2\n"
                         "submit epochs=9 batch_size=8 loss=nll optimizer=sgd\nwait #3 epoch=1\n"
                         "cancel #3\nwait #3\nexpect status cancelled\n"
                         "wait #2\n"
                         "finish #2   # that is r1\n"
                         "expect final_run r1\n";
    tb_status s = run_script(script, err, sizeof err);
    ck_assert_msg(s == TB_OK, "%s\n%s", err, out);
    tbt_assert_in_order(fake.log, "submit num rejected epochs\n", "submit num r1\n", "submit num r2\n",
                        "cancel num r2\n", "finish num r1\n", NULL);
    tbt_assert_in_order(out, "rejected: epochs = 0", "submitted r1\n", "run r1 finished", "submitted r2\n",
                        "run r2 reached epoch 1/9\n", "cancel requested for run r2\n", "run r2 cancelled after 1/9",
                        "ok: status cancelled\n", "run r1 finished: val accuracy 80.00% after 2/2 epochs\n",
                        "num finished tuning\n", "final configuration: run r1 (chosen)\n", "ok: final_run r1\n",
                        NULL);
}
END_TEST

START_TEST(test_refused_submit_stops_the_script)
{
    /* submitting while a run is live is refused, not recorded: an error, unlike a rejection */
    char err[512];
    tb_status s = run_script("register id=bo education=bachelor dl_months=0\nconsent\nenter\n"
                             "submit epochs=2 batch_size=8 loss=mse optimizer=sgd\n"
                             "submit epochs=2 batch_size=8 loss=mse optimizer=sgd\n",
                             err, sizeof err);
    ck_assert_int_eq(s, TB_EINVAL);
    char want[200];
    snprintf(want, sizeof want, "%s:5: submit: run r1 is still live", script_path);
    ck_assert_str_eq(err, want);
    ck_assert_int_eq(fake.nr, 1);
}
END_TEST

START_TEST(test_expect_mismatch_fails)
{
    char err[512];
    const char *script = "register id=dee education=doctorate dl_months=30\n"
                         "consent\n"
                         "enter\n"
                         "# a learning rate the fake lets diverge\n"
                         "submit epochs=4 batch_size=16 loss=cross_entropy optimizer=sgd lr=5\n"
                         "wait\n"
                         "expect message ~NaN\n"
                         "expect status finished\n"
                         "history\n";
    tb_status s = run_script(script, err, sizeof err);
    ck_assert_int_eq(s, TB_EINVAL);
    char want[256];
    snprintf(want, sizeof want, "%s:8: expected status finished, got diverged", script_path);
    ck_assert_str_eq(err, want);
    TBT_ASSERT_HAS(out, "run r1 diverged: NaN thrown in epoch 1/4: NaN loss in epoch 1, batch 3\n");
    TBT_ASSERT_HAS(out, "ok: message ~NaN\n");
    TBT_ASSERT_HAS(out, "run r1: training started (4 epochs of 10 batches), budget left 120:00\n");
    TBT_ASSERT_LACKS(out, "history of dee"); /* the script stopped at line 8 */
    /* the participant was paused when the script stopped */
    TBT_ASSERT_HAS(fake.log, "pause dee\n");

    /* expect-rejected that is accepted fails too */
    fake_reset();
    s = run_script("register id=eve education=master dl_months=2\nconsent\nenter\n"
                   "expect-rejected submit epochs=1 batch_size=4 loss=l1 optimizer=adam\n",
                   err, sizeof err);
    ck_assert_int_eq(s, TB_EINVAL);
    snprintf(want, sizeof want, "%s:4: expected submit to be rejected, but it was accepted", script_path);
    ck_assert_str_eq(err, want);
    /* and numeric comparisons */
    fake_reset();
    s = run_script("register id=fay education=master dl_months=2\nconsent\nenter\n"
                   "submit epochs=1 batch_size=4 loss=l1 optimizer=adam\nwait\n"
                   "expect val_accuracy 70\nexpect val_accuracy >69.5\nexpect epochs <=1\nexpect val_accuracy <70\n",
                   err, sizeof err);
    ck_assert_int_eq(s, TB_EINVAL);
    snprintf(want, sizeof want, "%s:9: expected val_accuracy <70, got ", script_path);
    ck_assert_msg(strncmp(err, want, strlen(want)) == 0, "%s", err);
}
END_TEST

START_TEST(test_expect_rejected)
{
    char err[512];
    const char *script = "register id=gus education=high_school dl_months=0\n"
                         "expect-rejected register id=gus education=master dl_months=1\n"
                         "consent\n"
                         "enter\n"
                         "expect-rejected submit epochs=0 batch_size=4 loss=l1 optimizer=adam\n"
                         "expect-rejected submit epochs=2 loss=l1 optimizer=adam\n"
                         "expect-rejected submit epochs=2 batch_size=4 loss=hinge optimizer=adam\n"
                         "expect submission rejected\n"
                         "expect submissions 3\n"
                         "expect-rejected finish best\n";
    tb_status s = run_script(script, err, sizeof err);
    ck_assert_msg(s == TB_OK, "%s\n%s", err, out);
    tbt_assert_in_order(out, "rejected as expected: participant gus already exists\n",
                        "rejected: epochs = 0 is outside the allowed range [1, 20]\n",
                        "rejected: batch_size is mandatory; allowed: integer in [1, 1024] (log scale)\n",
                        "rejected: loss = hinge is not allowed; allowed: one of cross_entropy, nll, l1, mse\n",
                        "ok: submission rejected\n", "ok: submissions 3\n",
                        "rejected as expected: gus has no finished run\n",
                        "gus paused (end of session)\n", NULL);
    ck_assert_int_eq(fake.nr, 3);
}
END_TEST

START_TEST(test_interleaved_participants)
{
    snprintf(fake.lobby_id, sizeof fake.lobby_id, "p002"); /* the second participant waits once in the lobby */
    fake.lobby_enters = 1;
    char err[512];
    const char *script = "register id=ann education=master dl_months=24\n"
                         "consent\n"
                         "register education=bachelor dl_months=0 ml_months=3\n"
                         "consent\n"
                         "as ann\n"
                         "enter\n"
                         "submit epochs=2 batch_size=128 loss=cross_entropy optimizer=adam\n"
                         "as p002\n"
                         "enter\n"
                         "submit epochs=4 batch_size=16 loss=mse optimizer=sgd lr=0.5 comment.optimizer=2\n"
                         "as ann\n"
                         "wait\n"
                         "expect status finished\n"
                         "expect run r1\n"
                         "as p002\n"
                         "wait r2 epoch=1\n"
                         "expect status training\n"
                         "cancel r2\n"
                         "wait #1\n"
                         "expect status cancelled\n"
                         "as ann\n"
                         "expect status finished\n"
                         "finish r1\n"
                         "quit\n"
                         "history\n";
    tb_status s = run_script(script, err, sizeof err);
    ck_assert_msg(s == TB_OK, "%s\n%s", err, out);
    /* ann entered once (admitted); p002 twice (lobby, then admitted; polled a second apart) */
    tbt_assert_in_order(fake.log, "register ann master 24 nan nan 0\n", "consent ann\n",
                        "register - bachelor 0 nan 3 0\n", "consent p002\n", "enter ann 1\n", "submit ann r1\n",
                        "enter p002 0\n", "enter p002 1\n", "submit p002 r2\n", "cancel p002 r2\n", "finish ann r1\n",
                        "pause p002\n", NULL);
    ck_assert_str_eq(fk_run_of("r1")->owner, "ann");
    ck_assert_str_eq(fk_run_of("r2")->owner, "p002");
    ck_assert_str_eq(fk_run_of("r2")->comments[3], "It is the suggested default value.");
    ck_assert_str_eq(fk_run_of("r2")->r.status, "cancelled");
    tbt_assert_in_order(out, "registered p002\n", "as ann (consented)\n", "p002 is waiting in the lobby, position 1\n",
                        "p002 admitted\n", "as ann (active)\n", "run r1 finished", "as p002 (active)\n",
                        "run r2 reached epoch 1/4\n", "run r2 cancelled", "final configuration: run r1 (chosen)\n",
                        "p002 paused (end of session)\n", NULL);
    TBT_ASSERT_LACKS(out, "history of"); /* nothing runs after quit */
}
END_TEST

START_TEST(test_ctrl_c_cancels_the_run_not_the_session)
{
    fake.interrupt_at_wait = 3; /* wait() calls: queued -> training, timeout, epoch 1 and Ctrl-C */
    char err[512];
    const char *script = "register id=hal education=master dl_months=5\nconsent\nenter\n"
                         "submit epochs=10 batch_size=64 loss=cross_entropy optimizer=adam\n"
                         "wait\n"
                         "expect status cancelled\n"
                         "submit epochs=1 batch_size=64 loss=cross_entropy optimizer=adam\n"
                         "wait\n"
                         "expect status finished\n"
                         "budget\n";
    tb_status s = run_script(script, err, sizeof err);
    ck_assert_msg(s == TB_OK, "%s\n%s", err, out);
    tbt_assert_in_order(fake.log, "submit hal r1\n", "cancel hal r1\n", "submit hal r2\n", "pause hal\n", NULL);
    tbt_assert_in_order(out, "Ctrl-C: cancelling run r1 (the session goes on)\n", "run r1 cancelled after",
                        "ok: status cancelled\n", "submitted r2\n", "run r2 finished", "budget of hal", NULL);
    ck_assert_int_lt(fk_run_of("r1")->r.epoch, 10);
}
END_TEST

START_TEST(test_budget_runs_out)
{
    fake.budget_s = 300; /* 5 epochs of 60 s */
    char err[512];
    const char *script = "register id=ivy education=master_enrolled dl_months=7\nconsent\nenter\n"
                         "submit epochs=2 batch_size=64 loss=cross_entropy optimizer=adam\nwait\n"
                         "submit epochs=10 batch_size=64 loss=cross_entropy optimizer=rmsprop\nwait\n"
                         "expect status cancelled\n"
                         "expect message \"the time budget ran out\"\n"
                         "expect state done\n"
                         "expect final_reason budget\n"
                         "expect final_run r1\n"
                         "expect-rejected submit epochs=1 batch_size=64 loss=cross_entropy optimizer=adam\n"
                         "wait-finals\n";
    tb_status s = run_script(script, err, sizeof err);
    ck_assert_msg(s == TB_OK, "%s\n%s", err, out);
    tbt_assert_in_order(
        out, "run r1 finished", "run r2 cancelled after 3/10 epochs",
        "participant ivy: the time budget is used up; tuning is over\n",
        "final configuration: run r1 (the budget ran out: the best finished run by validation accuracy)\n",
        "ok: final_reason budget\n", "rejected as expected: ivy is not admitted (state done)\n",
        "final evaluation: test accuracy 81.23 ± 1.23 % over 3 seeds\n", NULL);
    TBT_ASSERT_LACKS(fake.log, "pause ivy");
}
END_TEST

START_TEST(test_script_from_stdin)
{
    int saved = stdin_from("register id=jo education=master dl_months=1\nconsent\nbudget\nfoo\n");
    char err[512];
    tb_status s = run_cli("-", err, sizeof err);
    stdin_restore(saved);
    ck_assert_int_eq(s, TB_EINVAL);
    TBT_ASSERT_HAS(err, "stdin:4: unknown command \"foo\"");
    TBT_ASSERT_HAS(out, "budget of jo: used 0:00 of 120:00 min, 120:00 min left; 0 submissions; state consented\n");
}
END_TEST

/* Interactive: registration (with a bad answer re-asked), consent, a
 * submission whose lr is rejected and re-prompted alone, progress, history,
 * then [p] to pause and quit. */
START_TEST(test_interactive_register_submit_reprompt_quit)
{
    char input[4096];
    int n = snprintf(input, sizeof input,
                     "carol\n"   /* pseudonym */
                     "9\n"       /* education: out of the list, asked again */
                     "4\n"       /* master */
                     "-3\n"      /* dl months: refused */
                     "6\n"
                     "\n"        /* programming: skipped */
                     "18\n"      /* ml months */
                     "\n"        /* self level: skipped */
                     "y\n"       /* consent */
                     "s\n"
                     "\n"        /* epochs: mandatory, Enter asks again */
                     "2\n1\n"    /* epochs 2, comment 1 */
                     "64\n\n"    /* batch size, no comment */
                     "1\n\n"     /* loss by its number: cross_entropy */
                     "adam\n\n"
                     "50\nmy guess\n" /* lr 50: rejected after the form */
    );
    for (int i = 5; i < TB_STUDY_HP_COUNT; i++) n += snprintf(input + n, sizeof input - (size_t)n, "\n\n");
    snprintf(input + n, sizeof input - (size_t)n, "0.01\n" /* lr again */ "h\n" "b\n" "p\n" "s\n");
    char err[512];
    tb_status s = run_interactive(input, err, sizeof err);
    ck_assert_msg(s == TB_OK, "%s\n%s", err, out);

    tbt_assert_in_order(fake.log, "register carol master 6 nan 18 0\n", "consent carol\n", "enter carol 1\n",
                        "submit carol rejected lr\n", "submit carol r1\n", "pause carol\n", NULL);
    ck_assert_int_eq(fake.nr, 2);
    fk_run *r = fk_run_of("r1");
    ck_assert_str_eq(r->r.values[0], "2");
    ck_assert_str_eq(r->r.values[1], "64");
    ck_assert_str_eq(r->r.values[2], "cross_entropy");
    ck_assert_str_eq(r->r.values[3], "adam");
    ck_assert_str_eq(r->r.values[4], "0.01");
    for (int i = 5; i < TB_STUDY_HP_COUNT; i++) ck_assert_msg(!r->given[i], "%s was given", fk_hp[i].name);
    ck_assert_str_eq(r->comments[0], "It is just a guess.");
    ck_assert_str_eq(r->comments[1], "");
    ck_assert_str_eq(r->comments[4], "my guess"); /* the comment survives the re-prompt */
    ck_assert_str_eq(r->r.status, "finished");

    tbt_assert_in_order(out, "=== Fake study ===\n", "Your time budget: 120 minutes of tuning", "Tune the network",
                        "Pseudonym", "  5) doctorate\n", "please choose a number from the list",
                        "Months of deep-learning experience (required, >= 0): ", "please give a number of months",
                        "Do you consent", "You are admitted", "[budget left 120:00 min] [s]ubmit",
                        "[1/15] epochs (mandatory, integer in [1, 20]): ", "epochs is mandatory: please give a value",
                        "[5/15] lr (optional, float in [1e-06, 10] (log scale); Enter keeps 0.001): ",
                        "[15/15] beta2", "  error: lr = 50 is outside the allowed range [1e-06, 10]\n",
                        "[5/15] lr (optional", "Submitted as run r1. Ctrl-C cancels this run (not the session).\n",
                        "run r1: epoch 1/2", "run r1 finished: val accuracy 80.00% after 2/2 epochs\n",
                        "history of carol (2 submissions):\n", "budget of carol: used 2:00 of 120:00 min",
                        "Paused: your clock is stopped. \"resume carol\" brings you back.\n", NULL);
    /* after [p] nothing more is read: the trailing "s" is never a submission */
    ck_assert_int_eq(fake.nr, 2);
}
END_TEST

/* Interactive: a returning participant resumes, finishes with the best run,
 * waits for the final evaluation; then end of input on a fresh session is a quit. */
START_TEST(test_interactive_resume_finish)
{
    char err[512];
    ck_assert_int_eq(run_script("register id=dan education=doctorate dl_months=40\nconsent\nenter\n"
                                "submit epochs=3 batch_size=32 loss=nll optimizer=adagrad\nwait\npause\n",
                                err, sizeof err),
                     TB_OK);
    tb_status s = run_interactive("resume nobody\nresume dan\nf\n7\nbest\ny\ny\n", err, sizeof err);
    ck_assert_msg(s == TB_OK, "%s\n%s", err, out);
    tbt_assert_in_order(out, "cannot resume: unknown participant nobody\n", "Welcome back, dan.\n", "You are admitted",
                        "history of dan (1 submissions):\n", "Final configuration: a submission number",
                        "please give a number from the history", "Finish with the best finished run? ",
                        "Thank you: your tuning is over.\n", "final configuration: run r1 (chosen)\n",
                        "Wait here for the result? [y/N]: ",
                        "final evaluation: test accuracy 81.23 ± 1.23 % over 3 seeds\n", NULL);
    tbt_assert_in_order(fake.log, "enter dan 1\n", "finish dan best\n", NULL);

    /* end of input at the menu pauses the participant */
    fake_reset();
    ck_assert_int_eq(run_script("register id=ed education=bachelor dl_months=1\nconsent\n", err, sizeof err), TB_OK);
    s = run_interactive("resume ed\n", err, sizeof err);
    ck_assert_msg(s == TB_OK, "%s", err);
    tbt_assert_in_order(fake.log, "enter ed 1\n", "pause ed\n", NULL);
    TBT_ASSERT_HAS(out, "Paused: your clock is stopped.");
    /* and declining consent ends the session without entering */
    fake_reset();
    s = run_interactive("\n1\n0\n\n\n\nn\n", err, sizeof err);
    ck_assert_msg(s == TB_OK, "%s", err);
    TBT_ASSERT_HAS(out, "You are registered as p001.");
    TBT_ASSERT_HAS(out, "Without consent you cannot take part.");
    TBT_ASSERT_LACKS(fake.log, "consent p001");
    TBT_ASSERT_LACKS(fake.log, "enter p001");
}
END_TEST

START_TEST(test_interactive_ctrl_c_and_divergence)
{
    fake.interrupt_at_wait = 2;
    char input[4096];
    int n = snprintf(input, sizeof input, "fin\n2\n0\n\n\n1\ny\ns\n20\n\n8\n\nmse\n\nsgd\n\n");
    for (int i = 4; i < TB_STUDY_HP_COUNT; i++) n += snprintf(input + n, sizeof input - (size_t)n, "\n\n");
    n += snprintf(input + n, sizeof input - (size_t)n, "s\n3\n\n8\n\nmse\n\nsgd\n\n7\n\n");
    for (int i = 5; i < TB_STUDY_HP_COUNT; i++) n += snprintf(input + n, sizeof input - (size_t)n, "\n\n");
    char err[512];
    tb_status s = run_interactive(input, err, sizeof err);
    ck_assert_msg(s == TB_OK, "%s\n%s", err, out);
    tbt_assert_in_order(fake.log, "submit fin r1\n", "cancel fin r1\n", "submit fin r2\n", "pause fin\n", NULL);
    tbt_assert_in_order(out, "Ctrl-C: cancelling run r1 (the session goes on)\n", "run r1 cancelled",
                        "[budget left", "run r2 diverged: NaN thrown", "Paused", NULL);
    /* Enter keeps the presets: momentum (and every optional one after lr) exactly, not given */
    fk_run *r2 = fk_run_of("r2");
    ck_assert_str_eq(r2->r.values[6], "0");
    ck_assert(!r2->given[6]);
    for (int i = 5; i < TB_STUDY_HP_COUNT; i++) {
        ck_assert_msg(!r2->given[i], "%s was given", fk_hp[i].name);
        ck_assert_str_eq(r2->r.values[i], fk_hp[i].preset);
    }
    ck_assert(r2->given[4]);
    ck_assert_str_eq(r2->r.values[4], "7");
    /* the Ctrl-C came during a wait() that timed out, before epoch 1 */
    ck_assert_int_eq(fk_run_of("r1")->r.epoch, 0);
    ck_assert_int_gt(fake.timed_out, 0);
}
END_TEST

/* On a terminal the progress line is redrawn in place (\r), one line for the
 * whole run: output = a pseudo-terminal's slave, read back from the master. */
START_TEST(test_interactive_progress_redrawn_on_a_terminal)
{
    char err[512];
    /* a run left live by a script: resuming attaches to its progress */
    ck_assert_int_eq(run_script("register id=tty education=master dl_months=3\nconsent\nenter\n"
                                "submit epochs=3 batch_size=32 loss=nll optimizer=adam\n",
                                err, sizeof err),
                     TB_OK);
    int master = posix_openpt(O_RDWR | O_NOCTTY);
    ck_assert_int_ge(master, 0);
    ck_assert_int_eq(grantpt(master), 0);
    ck_assert_int_eq(unlockpt(master), 0);
    char slave[128];
    snprintf(slave, sizeof slave, "%s", ptsname(master));
    char saved_output[128];
    snprintf(saved_output, sizeof saved_output, "%s", output_path);
    snprintf(output_path, sizeof output_path, "%s", slave);
    int keep = open(slave, O_RDWR | O_NOCTTY); /* keeps the slave open so the master reads after the plugin closes it */
    ck_assert_int_ge(keep, 0);
    int saved = stdin_from("resume tty\n");
    /* run_cli unlinks output_path: not for a device */
    const tb_plugin *p = load_cli();
    tb_config *cfg = tb_config_new();
    tb_err e;
    ck_assert(tb_config_set(cfg, "cli.output", slave, &e) == TB_OK);
    ck_assert(tb_config_set(cfg, "cli.refresh", "0.05", &e) == TB_OK);
    tb_plugin_args *args = NULL;
    ck_assert_msg(tb_plugin_args_resolve(p, cfg, "cli", &args, &e) == TB_OK, "%s", e.msg);
    tb_status s = run_frontend(p, &api, args, err, sizeof err);
    tb_plugin_args_free(args);
    tb_config_free(cfg);
    tb_plugins_free(&reg);
    stdin_restore(saved);
    snprintf(output_path, sizeof output_path, "%s", saved_output);
    ck_assert_msg(s == TB_OK, "%s", err);
    /* everything written is waiting on the master (a few hundred bytes) */
    static char tty[1 << 14];
    size_t n = 0;
    ck_assert_int_eq(fcntl(master, F_SETFL, O_NONBLOCK), 0);
    for (ssize_t k; n + 1 < sizeof tty && (k = read(master, tty + n, sizeof tty - 1 - n)) > 0;) n += (size_t)k;
    tty[n] = '\0';
    close(keep);
    close(master);
    const char *first = strstr(tty, "\rrun r1: ");
    const char *done = strstr(tty, "run r1 finished: val accuracy 90.00% after 3/3 epochs");
    ck_assert_msg(first && done && first < done, "no redrawn progress in:\n%s", tty);
    TBT_ASSERT_HAS(tty, "\rrun r1: epoch 1/3, batch 10/10");
    TBT_ASSERT_HAS(tty, "\rrun r1: epoch 2/3, batch 10/10");
    /* one line: no newline between the first redraw and the outcome's own line */
    const char *nl = strchr(first, '\n');
    ck_assert_msg(nl != NULL && nl + 1 >= done - 1 && nl < done, "progress spans several lines:\n%s", tty);
    /* the timed redraw: after a wait() that timed out (refresh seconds, nothing
     * new) the same state is drawn again; one step follows each timeout */
    int drawn = 0;
    for (const char *q = tty; (q = strstr(q, "\rrun r1: epoch 1/3, batch 10/10")) != NULL; q++) drawn++;
    ck_assert_msg(drawn == 2, "epoch 1 drawn %d times:\n%s", drawn, tty);
    ck_assert_int_eq(fake.timed_out, 3); /* before epoch 1, 2 and 3 */
    tbt_assert_in_order(fake.log, "submit tty r1\n", "enter tty 1\n", "pause tty\n", NULL);
}
END_TEST

/* Ctrl-C in the lobby: interactive leaves it (paused); a script stops with FILE:LINE. */
START_TEST(test_ctrl_c_in_the_lobby)
{
    snprintf(fake.lobby_id, sizeof fake.lobby_id, "lou");
    fake.lobby_enters = 100;
    fake.interrupt_at_enter = 1;
    char err[512];
    tb_status s = run_interactive("lou\n1\n0\n\n\n\ny\n", err, sizeof err);
    ck_assert_msg(s == TB_OK, "%s", err);
    tbt_assert_in_order(fake.log, "consent lou\n", "enter lou 0\n", "pause lou\n", NULL);
    tbt_assert_in_order(out, "you are number 1 in the lobby", "You left the lobby. \"resume lou\" brings you back.\n",
                        NULL);
    TBT_ASSERT_LACKS(out, "You are admitted");

    fake_reset();
    snprintf(fake.lobby_id, sizeof fake.lobby_id, "lou");
    fake.lobby_enters = 100;
    fake.interrupt_at_enter = 1;
    s = run_script("register id=lou education=master dl_months=1\nconsent\nenter\nbudget\n", err, sizeof err);
    ck_assert_int_eq(s, TB_ECANCELLED);
    char want[200];
    snprintf(want, sizeof want, "%s:3: enter: interrupted (Ctrl-C) in the lobby", script_path);
    ck_assert_str_eq(err, want);
    tbt_assert_in_order(out, "lou is waiting in the lobby, position 1\n", "lou paused (end of session)\n", NULL);
    tbt_assert_in_order(fake.log, "enter lou 0\n", "pause lou\n", NULL);
}
END_TEST

/* Ctrl-C while a script read from stdin waits for its next line stops the
 * script, as during sleep, enter or wait-finals. stdin is a pipe left open
 * after two lines; SIGALRM (no SA_RESTART, like the host's SIGINT handler)
 * interrupts the read and "presses" Ctrl-C; it repeats until the plugin
 * returns, so it cannot come too early. */
static void on_alarm(int sig)
{
    (void)sig;
    fake.interrupt_pending = 1;
}

START_TEST(test_ctrl_c_while_reading_a_script)
{
    int fds[2];
    ck_assert_int_eq(pipe(fds), 0);
    const char *text = "register id=ivo education=master dl_months=1\nconsent\n";
    ck_assert_int_eq(write(fds[1], text, strlen(text)), (ssize_t)strlen(text));
    int saved = dup(0);
    ck_assert_int_ge(saved, 0);
    ck_assert_int_eq(dup2(fds[0], 0), 0);
    close(fds[0]);
    clearerr(stdin);
    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm;
    sigemptyset(&sa.sa_mask);
    ck_assert_int_eq(sigaction(SIGALRM, &sa, &old), 0);
    struct itimerval every = {{0, 100000}, {0, 200000}}, off = {{0, 0}, {0, 0}};
    ck_assert_int_eq(setitimer(ITIMER_REAL, &every, NULL), 0);
    char err[512];
    tb_status s = run_cli("-", err, sizeof err);
    setitimer(ITIMER_REAL, &off, NULL);
    sigaction(SIGALRM, &old, NULL);
    close(fds[1]);
    dup2(saved, 0);
    close(saved);
    clearerr(stdin);
    ck_assert_msg(s == TB_ECANCELLED, "%s: %s\n%s", tb_status_name(s), err, out);
    ck_assert_str_eq(err, "stdin:3: interrupted (Ctrl-C) while reading the script");
    tbt_assert_in_order(out, "registered ivo\n", "ivo consented\n", NULL);
    TBT_ASSERT_LACKS(out, "Ctrl-C cancels a running training only"); /* the interactive note */
    tbt_assert_in_order(fake.log, "register ivo master 1 nan nan 0\n", "consent ivo\n", NULL);
}
END_TEST

/* Interactive [f]inish by submission number: a rejected one has no run and
 * is asked again; declining to wait leaves the final evaluation to the host. */
START_TEST(test_interactive_finish_by_number)
{
    char err[512];
    ck_assert_int_eq(run_script("register id=flo education=master dl_months=2\nconsent\nenter\n"
                                "submit epochs=0 batch_size=8 loss=nll optimizer=adam\n"
                                "submit epochs=2 batch_size=8 loss=nll optimizer=adam\nwait\npause\n",
                                err, sizeof err),
                     TB_OK);
    tb_status s = run_interactive("resume flo\nf\n1\n3\n#2\ny\nn\n", err, sizeof err);
    ck_assert_msg(s == TB_OK, "%s\n%s", err, out);
    tbt_assert_in_order(out, "history of flo (2 submissions):\n",
                        "  submission 1 was rejected and has no run; please give a number from the history, or "
                        "\"best\"\n",
                        "  3 is not a submission of flo (1 to 2); please give a number from the history",
                        "Finish with submission #2 (run r1)? This ends your tuning. [y/n]: ",
                        "Thank you: your tuning is over.\n", "final configuration: run r1 (chosen)\n",
                        "final evaluation: 1/3 seeds done\n", "Wait here for the result? [y/N]: ", NULL);
    TBT_ASSERT_LACKS(out, "over 3 seeds");
    tbt_assert_in_order(fake.log, "enter flo 1\n", "finish flo r1\n", NULL);
    TBT_ASSERT_LACKS(strstr(fake.log, "finish flo r1\n"), "pause flo\n"); /* done: nothing to pause */
}
END_TEST

START_TEST(test_api_too_old)
{
    tb_study_api old = api;
    old.size = (uint32_t)offsetof(tb_study_api, take_interrupt);
    const tb_plugin *p = load_cli();
    char err[256] = "";
    tb_status s = run_frontend(p, &old, NULL, err, sizeof err);
    ck_assert_int_eq(s, TB_EINVAL);
    TBT_ASSERT_HAS(err, "is too old for the cli front end");
    tb_plugins_free(&reg);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("frontend_cli");
    TCase *tc = tcase_create("cli");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_descriptor);
    tcase_add_test(tc, test_full_session);
    tcase_add_test(tc, test_script_errors_name_file_and_line);
    tcase_add_test(tc, test_submission_numbers);
    tcase_add_test(tc, test_refused_submit_stops_the_script);
    tcase_add_test(tc, test_expect_mismatch_fails);
    tcase_add_test(tc, test_expect_rejected);
    tcase_add_test(tc, test_interleaved_participants);
    tcase_add_test(tc, test_ctrl_c_cancels_the_run_not_the_session);
    tcase_add_test(tc, test_budget_runs_out);
    tcase_add_test(tc, test_script_from_stdin);
    tcase_add_test(tc, test_interactive_register_submit_reprompt_quit);
    tcase_add_test(tc, test_interactive_resume_finish);
    tcase_add_test(tc, test_interactive_ctrl_c_and_divergence);
    tcase_add_test(tc, test_interactive_progress_redrawn_on_a_terminal);
    tcase_add_test(tc, test_ctrl_c_in_the_lobby);
    tcase_add_test(tc, test_ctrl_c_while_reading_a_script);
    tcase_add_test(tc, test_interactive_finish_by_number);
    tcase_add_test(tc, test_api_too_old);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tbt_run(suite()); }
