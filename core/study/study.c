/* study.c: the study service (see study.h and docs/study.md).
 *
 * State lives in memory under one mutex and is rebuilt from DIR/study.journal
 * on open. Every change is first appended to the journal (fsync'ed when it is
 * acknowledged to a caller), then applied. Runs are recorded in the archive
 * by tb_job_record; the study hears about them through the recorder's inner
 * callbacks (so a front end sees an epoch only once it is durable).
 *
 * The mutex is recursive because launch() ends a run it could not queue by
 * calling the run's finished callback itself, with the mutex held. Jobs are
 * cancelled with the mutex held, so a job's finished callback (which clears
 * our pointer to it) cannot complete, and the executor cannot free it, while
 * we use it. Validation and configuration parsing happen before the mutex is
 * taken: the space, the base configuration and the training-set size never
 * change after open. */
#include "study.h"

#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "store/h5util.h"
#include "store/journal.h"
#include "host/plugin.h"
#include "run/run.h"
#include "sweep.h"

#ifndef TB_VERSION
#define TB_VERSION "unknown"
#endif

#define HEARTBEAT_S 2.0
#define MONITOR_TICK_MS 200
#define LOBBY_STALE_S 10.0 /* a lobby place is kept this long without enter() (front ends poll every ~1 s) */
#define PATH_CAP 1200

/* journal record types (append only: archives depend on them) */
enum {
    REC_OPEN = 1,      /* the study process (re)started; first one carries the configuration */
    REC_REGISTER = 2,
    REC_CONSENT = 3,
    REC_LOBBY = 4,
    REC_ADMIT = 5,
    REC_PAUSE = 6,     /* the clock stops: paused, crash, closed */
    REC_SUBMIT = 7,
    REC_RUN_START = 8,
    REC_RUN_END = 9,
    REC_CREDIT = 10,
    REC_FINAL_CHOICE = 11,
    REC_FINAL_QUEUED = 12,
    REC_FINAL_END = 13,
    REC_HEARTBEAT = 14,
    REC_CLOSE = 15,    /* a clean close */
};
static const char *const rec_names[] = {"",           "open",         "register",     "consent",
                                        "lobby",      "admit",        "pause",        "submit",
                                        "run_start",  "run_end",      "credit",       "final_choice",
                                        "final_queued", "final_end",  "heartbeat",    "close"};

typedef enum pstate { P_REGISTERED = 0, P_CONSENTED, P_LOBBY, P_ACTIVE, P_DONE } pstate;

typedef struct submission {
    struct tb_study *study;          /* for the run's callbacks, whose user pointer is the submission */
    int participant;                 /* index */
    int number;                      /* 1-based within the participant */
    char run_id[TB_ARCHIVE_ID_MAX + 1];
    double submitted, started, ended; /* UTC; NaN until reached */
    tb_hp_values values;
    char comments[TB_HP_COUNT][256];
    int given[TB_HP_COUNT];          /* 1: the participant gave it; 0: the preset */
    tb_run_status status;
    char message[256];
    int epochs;                      /* asked for */
    int epoch, batch, batches_per_epoch;
    double batch_loss, epoch_loss, val_loss, val_accuracy, test_accuracy;
    double train_seconds;
    uint64_t seq;
    tb_job *job;                     /* while queued or training */
} submission;

typedef struct final_eval {
    int participant;
    int64_t seed;
    char run_id[TB_ARCHIVE_ID_MAX + 1];
    tb_run_status status;
    double test_accuracy, started, ended;
    tb_job *job;
} final_eval;

typedef struct participant {
    char id[64];
    char education[32];
    double dl_months, programming_months, ml_months;
    int self_level;
    double registered, consented;
    pstate state;
    double active_since;             /* UTC, while active */
    double lobby_since;              /* UTC, while in the lobby */
    double lobby_polled;             /* UTC of the last enter() while in the lobby (not journalled) */
    double used_closed;              /* seconds of closed active intervals */
    double credited;                 /* seconds given back */
    int live;                        /* index of the live submission, or -1 */
    int n_submissions;
    char final_run[TB_ARCHIVE_ID_MAX + 1];
    char final_reason[16];
    double final_at;
} participant;

typedef struct event_row {
    double t;
    int type;
    char participant[64];
    char run_id[TB_ARCHIVE_ID_MAX + 1];
    char detail[160];
} event_row;

struct tb_study {
    pthread_mutex_t mu;
    pthread_cond_t changed;   /* any run or participant changed: wakes wait() */
    pthread_cond_t stop;      /* the monitor's own wake-up: closing (batch events must not wake it) */
    tb_study_settings st;
    tb_space space;
    char *config_ini;     /* the study configuration as given */
    char *job_base_ini;   /* the sections a run reads (no [study], [space], front ends) */
    tb_archive *archive;
    tb_journal *journal;
    tb_executor *exec;
    participant *p;
    int np, cap_p;
    submission **subs;
    int ns, cap_s;
    final_eval *finals;
    int nf, cap_f;
    event_row *events;
    int ne, cap_e;
    double created, last_record;
    int dirty;            /* study.h5 needs rewriting */
    int closing;          /* set under the mutex by tb_study_close: no more calls */
    char environment[512];
    char *space_ini;      /* the space as INI text, for /study */
    pthread_t monitor;
    int monitor_started;
    volatile sig_atomic_t interrupts;
    int interrupts_taken;
    char hp_allowed[TB_HP_COUNT][160];
    tb_study_api api;
    tb_err bg_err;        /* the last background failure (journal, tables) */
};

/* ---- small helpers ------------------------------------------------------------------------- */

static int grow(void **p, int *cap, int need, size_t elem)
{
    if (need <= *cap) return 0;
    int c = *cap ? *cap * 2 : 16;
    while (c < need) c *= 2;
    void *q = realloc(*p, (size_t)c * elem);
    if (!q) return -1;
    *p = q;
    *cap = c;
    return 0;
}

/* Copies a tb_err message into a plugin-style buffer and returns st. */
static tb_status out_err(char *err, size_t errlen, tb_status st, const tb_err *e)
{
    if (err && errlen) snprintf(err, errlen, "%s", e->msg);
    return st;
}

static tb_status fail_buf(char *err, size_t errlen, tb_status st, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static tb_status fail_buf(char *err, size_t errlen, tb_status st, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return st;
}

/* ---- journal payloads: "key=value\n" lines, values with \\ and \n escaped ----------------- */

typedef struct kv {
    char *p;
    size_t n, cap;
    int oom;
} kv;

static void kv_raw(kv *b, const char *s, size_t n)
{
    if (b->oom) return;
    if (b->n + n + 1 > b->cap) {
        size_t c = b->cap ? b->cap * 2 : 256;
        while (c < b->n + n + 1) c *= 2;
        char *q = realloc(b->p, c);
        if (!q) {
            b->oom = 1;
            return;
        }
        b->p = q;
        b->cap = c;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
}

static void kv_str(kv *b, const char *key, const char *v)
{
    kv_raw(b, key, strlen(key));
    kv_raw(b, "=", 1);
    for (const char *c = v ? v : ""; *c; c++) {
        if (*c == '\\') kv_raw(b, "\\\\", 2);
        else if (*c == '\n') kv_raw(b, "\\n", 2);
        else kv_raw(b, c, 1);
    }
    kv_raw(b, "\n", 1);
}

static void kv_f64(kv *b, const char *key, double v)
{
    char t[40];
    snprintf(t, sizeof t, "%.17g", v);
    kv_str(b, key, t);
}

static void kv_i64(kv *b, const char *key, int64_t v)
{
    char t[32];
    snprintf(t, sizeof t, "%lld", (long long)v);
    kv_str(b, key, t);
}

/* Finds key in a payload and unescapes its value into out; 0 found, -1 not. */
static int kv_get(const char *data, size_t len, const char *key, char *out, size_t cap)
{
    size_t kl = strlen(key);
    const char *p = data, *end = data + len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl) nl = end;
        if ((size_t)(nl - p) > kl && memcmp(p, key, kl) == 0 && p[kl] == '=') {
            size_t o = 0;
            for (const char *c = p + kl + 1; c < nl; c++) {
                char ch = *c;
                if (ch == '\\' && c + 1 < nl) {
                    c++;
                    ch = *c == 'n' ? '\n' : *c;
                }
                if (o + 1 < cap) out[o++] = ch;
            }
            if (cap) out[o < cap ? o : cap - 1] = '\0';
            return 0;
        }
        p = nl + 1;
    }
    if (cap) out[0] = '\0';
    return -1;
}

static double kv_get_f64(const char *data, size_t len, const char *key, double def)
{
    char t[64];
    if (kv_get(data, len, key, t, sizeof t) != 0) return def;
    return strtod(t, NULL);
}

/* Appends a record (durable: fsync'ed) and remembers it for /events. Called with the mutex held. */
static tb_status record(tb_study *s, int type, kv *b, double t, const char *pid, const char *run_id,
                        const char *detail, int durable, tb_err *err)
{
    kv_f64(b, "t", t);
    if (b->oom) {
        free(b->p);
        return tb_fail(err, TB_ENOMEM, "study journal: out of memory");
    }
    tb_status st = tb_journal_append(s->journal, (uint32_t)type, b->p, b->n, durable, err);
    free(b->p);
    b->p = NULL;
    if (st != TB_OK) return st;
    if (t > s->last_record) s->last_record = t;
    if (type != REC_HEARTBEAT && grow((void **)&s->events, &s->cap_e, s->ne + 1, sizeof *s->events) == 0) {
        event_row *e = &s->events[s->ne++];
        e->t = t;
        e->type = type;
        tb_copy_str(e->participant, sizeof e->participant, pid ? pid : "");
        tb_copy_str(e->run_id, sizeof e->run_id, run_id ? run_id : "");
        tb_copy_str(e->detail, sizeof e->detail, detail ? detail : "");
    }
    if (type != REC_HEARTBEAT) s->dirty = 1;
    return TB_OK;
}

/* ---- lookups ------------------------------------------------------------------------------ */

static int find_participant(const tb_study *s, const char *id)
{
    if (!id) return -1;
    for (int i = 0; i < s->np; i++)
        if (strcmp(s->p[i].id, id) == 0) return i;
    return -1;
}

static submission *find_submission(const tb_study *s, const char *run_id)
{
    if (!run_id || !*run_id) return NULL;
    for (int i = 0; i < s->ns; i++)
        if (strcmp(s->subs[i]->run_id, run_id) == 0) return s->subs[i];
    return NULL;
}

static final_eval *find_final(tb_study *s, const char *run_id)
{
    for (int i = 0; i < s->nf; i++)
        if (strcmp(s->finals[i].run_id, run_id) == 0) return &s->finals[i];
    return NULL;
}

/* Budget used: closed intervals, the open one, minus credits; a run still
 * queued does not count (its wait is credited when it starts or ends). */
static double used_seconds(const tb_study *s, const participant *p, double now)
{
    double used = p->used_closed - p->credited;
    if (p->state == P_ACTIVE) used += now - p->active_since;
    if (p->live >= 0 && s->subs[p->live]->status == TB_RUN_QUEUED) used -= now - s->subs[p->live]->submitted;
    return used > 0 ? used : 0;
}

static int active_count(const tb_study *s)
{
    int n = 0;
    for (int i = 0; i < s->np; i++) n += s->p[i].state == P_ACTIVE;
    return n;
}

static int max_active(const tb_study *s) { return s->st.max_active > 0 ? s->st.max_active : s->st.slots; }

/* 1-based position in the lobby (by the time they entered it), 0 when not
 * there. Someone who stopped asking (no enter() for LOBBY_STALE_S) does not
 * hold the others up. */
static int lobby_position(const tb_study *s, int pi, double now)
{
    if (s->p[pi].state != P_LOBBY) return 0;
    int pos = 1;
    for (int i = 0; i < s->np; i++) {
        const participant *q = &s->p[i];
        if (i == pi || q->state != P_LOBBY || now - q->lobby_polled > LOBBY_STALE_S) continue;
        if (q->lobby_since < s->p[pi].lobby_since || (q->lobby_since == s->p[pi].lobby_since && i < pi)) pos++;
    }
    return pos;
}

static void touch(tb_study *s, submission *sub)
{
    if (sub) sub->seq++;
    pthread_cond_broadcast(&s->changed);
}

/* ---- settings ------------------------------------------------------------------------------ */

static const char *const study_keys[] = {"title",  "briefing", "archive",         "budget_minutes", "final_seeds",
                                         "slots", "threads_per_run", "max_active", "gpus", "runs_per_gpu",
                                         "gpu_memory_mib"};

tb_status tb_study_settings_load(tb_study_settings *st, tb_space *space, const tb_config *cfg, tb_err *err)
{
    memset(st, 0, sizeof *st);
    tb_status r;
    if (!tb_config_has_section(cfg, "study"))
        return tb_fail(err, TB_EINVAL, "%s has no [study] section: a study needs at least [study] archive "
                       "(see docs/study.md)", tb_config_path(cfg)[0] ? tb_config_path(cfg) : "the configuration");
    if ((r = tb_config_check_section(cfg, "study", study_keys, (int)TB_ARRAY_LEN(study_keys), err))) return r;
    const char *v;
    if ((r = tb_config_string(cfg, "study", "title", "A hyperparameter tuning study", &v, err))) return r;
    tb_copy_str(st->title, sizeof st->title, v);
    if ((r = tb_config_string(cfg, "study", "briefing",
                              "Find the hyperparameters that maximise the classification accuracy on the test set. "
                              "Each submission is trained from the same initial weights; watch the loss, cancel "
                              "runs that do not look promising, and choose your final configuration before the "
                              "time runs out.",
                              &v, err)))
        return r;
    tb_copy_str(st->briefing, sizeof st->briefing, v);
    if ((r = tb_config_string(cfg, "study", "archive", NULL, &v, err))) return r;
    if (!v || !*v) return tb_fail(err, TB_EINVAL, "study.archive is missing: name the archive directory");
    if (strlen(v) >= sizeof st->archive)
        return tb_fail(err, TB_EINVAL, "study.archive is longer than %zu characters", sizeof st->archive - 1);
    tb_copy_str(st->archive, sizeof st->archive, v);
    double minutes;
    if ((r = tb_config_double(cfg, "study", "budget_minutes", 120, 0.01, 100000, &minutes, err))) return r;
    st->budget_s = minutes * 60.0;
    if ((r = tb_config_int_list(cfg, "study", "final_seeds", "0,1,2,3,4,5,6,7,8,9", 0, INT64_MAX, st->final_seeds,
                                TB_STUDY_MAX_SEEDS, &st->n_final_seeds, err)))
        return r;
    for (int i = 0; i < st->n_final_seeds; i++)
        for (int j = 0; j < i; j++)
            if (st->final_seeds[i] == st->final_seeds[j])
                return tb_fail(err, TB_EINVAL, "study.final_seeds: seed %lld appears twice; each must be distinct",
                               (long long)st->final_seeds[i]);
    int64_t x;
    if ((r = tb_config_int(cfg, "study", "slots", 1, 1, 256, &x, err))) return r;
    st->slots = (int)x;
    if ((r = tb_config_int(cfg, "study", "threads_per_run", 0, 0, 1024, &x, err))) return r;
    st->threads_per_run = (int)x;
    if ((r = tb_config_int(cfg, "study", "max_active", 0, 0, 10000, &x, err))) return r;
    st->max_active = (int)x;
    /* GPUs: gpus * runs_per_gpu slots replace `slots` */
    if ((r = tb_config_int(cfg, "study", "gpus", 0, 0, 64, &x, err))) return r;
    st->gpus = (int)x;
    if ((r = tb_config_int(cfg, "study", "runs_per_gpu", 1, 1, 64, &x, err))) return r;
    st->runs_per_gpu = (int)x;
    if ((r = tb_config_int(cfg, "study", "gpu_memory_mib", 0, 0, 16 << 20, &x, err))) return r;
    st->gpu_memory_mib = (int)x;
    if (st->gpus > 0) {
        if (tb_config_get(cfg, "study", "slots"))
            return tb_fail(err, TB_EINVAL, "study.slots = %d and study.gpus = %d: with GPUs the slots are gpus x "
                           "runs_per_gpu; remove study.slots", st->slots, st->gpus);
        st->slots = st->gpus * st->runs_per_gpu;
    }
    return tb_space_load(space, cfg, err);
}

/* A run's configuration: the base with the values (and extra key=value pairs) applied. */
static tb_status job_config(const tb_study *s, const tb_hp_values *v, const char *const *extra, int n_extra,
                            char **out, tb_err *err)
{
    tb_config *c;
    tb_status st = tb_config_load_text(&c, s->job_base_ini, "study configuration", err);
    if (st != TB_OK) return st;
    st = tb_space_apply(v, c, err);
    for (int i = 0; i < n_extra && st == TB_OK; i++) st = tb_config_set_assignment(c, extra[i], err);
    if (st == TB_OK && !(*out = tb_config_to_ini(c))) st = tb_fail(err, TB_ENOMEM, "out of memory");
    tb_config_free(c);
    return st;
}

/* Loads the task once: it must load before participants arrive, and the
 * training-set size bounds batch_size. */
static tb_status probe_task(tb_study *s, tb_err *err)
{
    tb_config *c;
    tb_status st = tb_config_load_text(&c, s->job_base_ini, "study configuration", err);
    if (st != TB_OK) return st;
    /* a placeholder optimizer when [train] has none: only the task matters here */
    if (!tb_config_get(c, "train", "optimizer")) tb_config_set(c, "train.optimizer", "sgd", NULL);
    tb_run run;
    if ((st = tb_run_configure(&run, c, err)) == TB_OK) {
        tb_task_data raw;
        memset(&raw, 0, sizeof raw);
        if ((st = tb_plugin_open_task(run.task_plugin, run.task_args, &raw, err)) == TB_OK &&
            (st = tb_task_prepare(&run.task, &raw, &run.task_opt, err)) == TB_OK) {
            run.task_loaded = 1;
            s->st.train_count = run.task.train.count;
        }
    }
    tb_run_free(&run);
    tb_config_free(c);
    return st;
}

/* ---- replay ------------------------------------------------------------------------------- */

static participant *add_participant(tb_study *s)
{
    if (grow((void **)&s->p, &s->cap_p, s->np + 1, sizeof *s->p) != 0) return NULL;
    participant *p = &s->p[s->np++];
    memset(p, 0, sizeof *p);
    p->live = -1;
    p->registered = p->consented = p->active_since = p->lobby_since = p->lobby_polled = p->final_at = NAN;
    p->programming_months = p->ml_months = NAN;
    return p;
}

static submission *add_submission(tb_study *s)
{
    if (grow((void **)&s->subs, &s->cap_s, s->ns + 1, sizeof *s->subs) != 0) return NULL;
    submission *u = calloc(1, sizeof *u);
    if (!u) return NULL;
    u->study = s;
    u->submitted = u->started = u->ended = NAN;
    u->batch_loss = u->epoch_loss = u->val_loss = u->val_accuracy = u->test_accuracy = NAN;
    s->subs[s->ns++] = u;
    return u;
}

static final_eval *add_final(tb_study *s)
{
    if (grow((void **)&s->finals, &s->cap_f, s->nf + 1, sizeof *s->finals) != 0) return NULL;
    final_eval *f = &s->finals[s->nf++];
    memset(f, 0, sizeof *f);
    f->test_accuracy = f->started = f->ended = NAN;
    f->status = TB_RUN_QUEUED;
    return f;
}

static void close_interval(participant *p, double t)
{
    if (p->state == P_ACTIVE && isfinite(p->active_since) && t > p->active_since) p->used_closed += t - p->active_since;
    p->active_since = NAN;
}

typedef struct replay_ctx {
    tb_study *s;
    int bad;
    char why[200];
} replay_ctx;

static int replay_fn(void *vctx, uint32_t type, const void *vdata, size_t len)
{
    replay_ctx *ctx = vctx;
    tb_study *s = ctx->s;
    const char *d = vdata;
    char id[64], run[TB_ARCHIVE_ID_MAX + 1], text[512];
    double t = kv_get_f64(d, len, "t", NAN);
    kv_get(d, len, "participant", id, sizeof id);
    kv_get(d, len, "run", run, sizeof run);
    int pi = find_participant(s, id);
    participant *p = pi >= 0 ? &s->p[pi] : NULL;
    char detail[160] = "";
    if (isfinite(t) && t > s->last_record) s->last_record = t;
    switch (type) {
    case REC_OPEN:
        if (!isfinite(s->created)) s->created = t;
        snprintf(detail, sizeof detail, "pid %d", (int)kv_get_f64(d, len, "pid", 0));
        break;
    case REC_REGISTER:
        if (p || !(p = add_participant(s))) {
            snprintf(ctx->why, sizeof ctx->why, "participant %s registered twice", id);
            return -1;
        }
        tb_copy_str(p->id, sizeof p->id, id);
        kv_get(d, len, "education", p->education, sizeof p->education);
        p->dl_months = kv_get_f64(d, len, "dl_months", NAN);
        p->programming_months = kv_get_f64(d, len, "programming_months", NAN);
        p->ml_months = kv_get_f64(d, len, "ml_months", NAN);
        p->self_level = (int)kv_get_f64(d, len, "self_level", 0);
        p->registered = t;
        p->state = P_REGISTERED;
        break;
    case REC_CONSENT:
        if (!p) goto unknown;
        p->consented = t;
        p->state = P_CONSENTED;
        break;
    case REC_LOBBY:
        if (!p) goto unknown;
        p->state = P_LOBBY;
        p->lobby_since = t;
        break;
    case REC_ADMIT:
        if (!p) goto unknown;
        p->state = P_ACTIVE;
        p->active_since = t;
        break;
    case REC_PAUSE:
        if (!p) goto unknown;
        close_interval(p, t);
        if (p->state != P_DONE) p->state = P_CONSENTED;
        kv_get(d, len, "reason", detail, sizeof detail);
        break;
    case REC_SUBMIT: {
        if (!p) goto unknown;
        submission *u = add_submission(s);
        if (!u) return -1;
        u->participant = pi;
        u->number = ++p->n_submissions;
        tb_copy_str(u->run_id, sizeof u->run_id, run);
        u->submitted = t;
        kv_get(d, len, "status", text, sizeof text);
        u->status = TB_RUN_QUEUED;
        if (tb_run_status_parse(text, &u->status) != 0) u->status = TB_RUN_QUEUED;
        kv_get(d, len, "message", u->message, sizeof u->message);
        for (int h = 0; h < TB_HP_COUNT; h++) {
            char key[64];
            snprintf(key, sizeof key, "v.%s", tb_hp_names[h]);
            kv_get(d, len, key, u->values.text[h], sizeof u->values.text[h]);
            snprintf(key, sizeof key, "c.%s", tb_hp_names[h]);
            kv_get(d, len, key, u->comments[h], sizeof u->comments[h]);
            snprintf(key, sizeof key, "g.%s", tb_hp_names[h]);
            u->given[h] = (int)kv_get_f64(d, len, key, 0);
        }
        u->epochs = atoi(u->values.text[TB_HP_EPOCHS]);
        if (u->status != TB_RUN_REJECTED) p->live = s->ns - 1;
        tb_copy_str(detail, sizeof detail, tb_run_status_name(u->status));
        break;
    }
    case REC_RUN_START: {
        submission *u = find_submission(s, run);
        if (u) {
            u->started = t;
            u->status = TB_RUN_TRAINING;
        }
        break;
    }
    case REC_RUN_END: {
        submission *u = find_submission(s, run);
        if (!u) break;
        kv_get(d, len, "status", text, sizeof text);
        if (tb_run_status_parse(text, &u->status) != 0) u->status = TB_RUN_INTERRUPTED;
        u->ended = t;
        u->val_accuracy = kv_get_f64(d, len, "val_accuracy", NAN);
        u->test_accuracy = kv_get_f64(d, len, "test_accuracy", NAN);
        u->epoch = (int)kv_get_f64(d, len, "epoch", 0);
        kv_get(d, len, "message", u->message, sizeof u->message);
        if (u->started == u->started) u->train_seconds = t - u->started;
        if (s->p[u->participant].live >= 0 && s->subs[s->p[u->participant].live] == u) s->p[u->participant].live = -1;
        tb_copy_str(detail, sizeof detail, text);
        break;
    }
    case REC_CREDIT:
        if (!p) goto unknown;
        p->credited += kv_get_f64(d, len, "seconds", 0);
        kv_get(d, len, "reason", text, sizeof text);
        snprintf(detail, sizeof detail, "%.3f s: %.120s", kv_get_f64(d, len, "seconds", 0), text);
        break;
    case REC_FINAL_CHOICE:
        if (!p) goto unknown;
        close_interval(p, t);
        p->state = P_DONE;
        tb_copy_str(p->final_run, sizeof p->final_run, run);
        kv_get(d, len, "reason", p->final_reason, sizeof p->final_reason);
        p->final_at = t;
        tb_copy_str(detail, sizeof detail, p->final_reason);
        break;
    case REC_FINAL_QUEUED: {
        if (!p) goto unknown;
        final_eval *f = add_final(s);
        if (!f) return -1;
        f->participant = pi;
        f->seed = (int64_t)kv_get_f64(d, len, "seed", 0);
        tb_copy_str(f->run_id, sizeof f->run_id, run);
        snprintf(detail, sizeof detail, "seed %lld", (long long)f->seed);
        break;
    }
    case REC_FINAL_END: {
        final_eval *f = find_final(s, run);
        if (!f) break;
        kv_get(d, len, "status", text, sizeof text);
        if (tb_run_status_parse(text, &f->status) != 0) f->status = TB_RUN_INTERRUPTED;
        f->test_accuracy = kv_get_f64(d, len, "test_accuracy", NAN);
        f->started = kv_get_f64(d, len, "started", NAN);
        f->ended = t;
        tb_copy_str(detail, sizeof detail, text);
        break;
    }
    case REC_HEARTBEAT:
        return 0;
    case REC_CLOSE:
        break;
    default:
        break; /* a newer record type: skip it */
    }
    if (type < TB_ARRAY_LEN(rec_names) && type != REC_HEARTBEAT &&
        grow((void **)&s->events, &s->cap_e, s->ne + 1, sizeof *s->events) == 0) {
        event_row *e = &s->events[s->ne++];
        e->t = t;
        e->type = (int)type;
        tb_copy_str(e->participant, sizeof e->participant, id);
        tb_copy_str(e->run_id, sizeof e->run_id, run);
        tb_copy_str(e->detail, sizeof e->detail, detail);
    }
    return 0;
unknown:
    snprintf(ctx->why, sizeof ctx->why, "record %s names unknown participant %s", rec_names[type], id);
    return -1;
}

/* ---- derived views of a participant ------------------------------------------------------- */

static const char *state_name(const participant *p)
{
    static const char *const names[] = {"registered", "consented", "lobby", "active", "done"};
    return p->state == P_CONSENTED && p->used_closed > 0 ? "paused" : names[p->state];
}

typedef struct final_stats {
    int total, done, finished; /* runs counted (replaced interrupted ones are not), ended, finished */
    double mean, sd;           /* test accuracy over the finished ones once none is pending; NaN before
                                * (sd: NaN with fewer than two) */
} final_stats;

static final_stats finals_of(const tb_study *s, int pi)
{
    final_stats r = {0, 0, 0, NAN, NAN};
    double sum = 0, sq = 0;
    for (int f = 0; f < s->nf; f++) {
        const final_eval *fe = &s->finals[f];
        if (fe->participant != pi || (fe->status == TB_RUN_INTERRUPTED && !fe->job)) continue;
        r.total++;
        if (!tb_run_status_is_final(fe->status)) continue;
        r.done++;
        if (fe->status == TB_RUN_FINISHED && isfinite(fe->test_accuracy)) {
            sum += fe->test_accuracy;
            sq += fe->test_accuracy * fe->test_accuracy;
            r.finished++;
        }
    }
    if (r.finished && r.done == r.total) {
        r.mean = sum / r.finished;
        if (r.finished > 1) r.sd = sqrt(fmax(0, (sq - sum * sum / r.finished) / (r.finished - 1)));
    }
    return r;
}

/* ---- study.h5 ----------------------------------------------------------------------------- */

static void environment(char *out, size_t cap)
{
    struct utsname u;
    char host[256] = "";
    gethostname(host, sizeof host - 1);
    if (uname(&u) != 0) memset(&u, 0, sizeof u);
    snprintf(out, cap, "tunebench %s; host %s; %s %s %s; %ld CPUs; HDF5 %d.%d.%d", TB_VERSION, host, u.sysname,
             u.release, u.machine, sysconf(_SC_NPROCESSORS_ONLN), H5_VERS_MAJOR, H5_VERS_MINOR, H5_VERS_RELEASE);
}

static int write_participants(tb_study *s, hid_t g, double now)
{
    int n = s->np, rc = 0;
    size_t N = (size_t)n;
    const char **id = calloc(N + 1, sizeof *id), **edu = calloc(N + 1, sizeof *edu),
               **state = calloc(N + 1, sizeof *state), **fr = calloc(N + 1, sizeof *fr),
               **reason = calloc(N + 1, sizeof *reason);
    double *col[12];
    int64_t *i64[3];
    int oom = !id || !edu || !state || !fr || !reason;
    for (int k = 0; k < 12; k++) oom |= !(col[k] = calloc(N + 1, sizeof(double)));
    for (int k = 0; k < 3; k++) oom |= !(i64[k] = calloc(N + 1, sizeof(int64_t)));
    if (!oom) {
        for (int i = 0; i < n; i++) {
            participant *p = &s->p[i];
            id[i] = p->id, edu[i] = p->education, fr[i] = p->final_run, reason[i] = p->final_reason;
            state[i] = state_name(p);
            col[0][i] = p->dl_months, col[1][i] = p->programming_months, col[2][i] = p->ml_months;
            col[3][i] = p->registered, col[4][i] = p->consented;
            col[5][i] = used_seconds(s, p, now), col[6][i] = p->credited, col[7][i] = p->final_at;
            i64[0][i] = p->self_level, i64[1][i] = p->n_submissions;
            final_stats fs = finals_of(s, i);
            i64[2][i] = fs.finished;
            col[8][i] = fs.mean;
            col[9][i] = fs.sd;
            col[10][i] = s->st.budget_s;
            col[11][i] = s->st.budget_s - col[5][i];
        }
        rc |= tb_h5_column_str(g, "id", id, N);
        rc |= tb_h5_column_str(g, "education", edu, N);
        rc |= tb_h5_column_f64(g, "dl_months", col[0], N);
        rc |= tb_h5_column_f64(g, "programming_months", col[1], N);
        rc |= tb_h5_column_f64(g, "ml_months", col[2], N);
        rc |= tb_h5_column_i64(g, "self_level", i64[0], N);
        rc |= tb_h5_column_f64(g, "registered_s", col[3], N);
        rc |= tb_h5_column_f64(g, "consented_s", col[4], N);
        rc |= tb_h5_column_str(g, "state", state, N);
        rc |= tb_h5_column_f64(g, "budget_s", col[10], N);
        rc |= tb_h5_column_f64(g, "used_s", col[5], N);
        rc |= tb_h5_column_f64(g, "left_s", col[11], N);
        rc |= tb_h5_column_f64(g, "credited_s", col[6], N);
        rc |= tb_h5_column_i64(g, "submissions", i64[1], N);
        rc |= tb_h5_column_str(g, "final_run", fr, N);
        rc |= tb_h5_column_str(g, "final_reason", reason, N);
        rc |= tb_h5_column_f64(g, "final_at_s", col[7], N);
        rc |= tb_h5_column_i64(g, "finals_finished", i64[2], N);
        rc |= tb_h5_column_f64(g, "final_test_accuracy_mean", col[8], N);
        rc |= tb_h5_column_f64(g, "final_test_accuracy_sd", col[9], N);
    }
    free(id), free(edu), free(state), free(fr), free(reason);
    for (int k = 0; k < 12; k++) free(col[k]);
    for (int k = 0; k < 3; k++) free(i64[k]);
    return oom ? -1 : rc;
}

static int write_submissions(tb_study *s, hid_t g)
{
    size_t N = (size_t)s->ns;
    int rc = 0;
    const char **pid = calloc(N + 1, sizeof *pid), **run = calloc(N + 1, sizeof *run),
               **status = calloc(N + 1, sizeof *status), **msg = calloc(N + 1, sizeof *msg),
               **str = calloc(N + 1, sizeof *str);
    double *col = calloc(N + 1, sizeof *col);
    int64_t *i64 = calloc(N + 1, sizeof *i64);
    if (!pid || !run || !status || !msg || !str || !col || !i64) rc = -1;
    if (!rc) {
        for (size_t i = 0; i < N; i++) {
            submission *u = s->subs[i];
            pid[i] = s->p[u->participant].id, run[i] = u->run_id, status[i] = tb_run_status_name(u->status);
            msg[i] = u->message;
        }
        rc |= tb_h5_column_str(g, "participant", pid, N);
        for (size_t i = 0; i < N; i++) i64[i] = s->subs[i]->number;
        rc |= tb_h5_column_i64(g, "number", i64, N);
        rc |= tb_h5_column_str(g, "run_id", run, N);
        rc |= tb_h5_column_str(g, "status", status, N);
        rc |= tb_h5_column_str(g, "message", msg, N);
#define F64COL(name, expr)                                                                                         \
    do {                                                                                                           \
        for (size_t i = 0; i < N; i++) {                                                                           \
            submission *u = s->subs[i];                                                                            \
            col[i] = (expr);                                                                                       \
        }                                                                                                          \
        rc |= tb_h5_column_f64(g, name, col, N);                                                                   \
    } while (0)
        F64COL("submitted_s", u->submitted);
        F64COL("started_s", u->started);
        F64COL("ended_s", u->ended);
        F64COL("queued_s", isfinite(u->started) ? u->started - u->submitted : NAN);
        F64COL("training_s", isfinite(u->started) && isfinite(u->ended) ? u->ended - u->started : NAN);
        F64COL("val_accuracy", u->val_accuracy);
        F64COL("val_loss", u->val_loss);
        F64COL("test_accuracy", u->test_accuracy);
#undef F64COL
        for (size_t i = 0; i < N; i++) i64[i] = s->subs[i]->epoch;
        rc |= tb_h5_column_i64(g, "epochs_done", i64, N);
        int64_t given_count;
        for (int h = 0; h < TB_HP_COUNT; h++) {
            const tb_hp_spec *sp = &s->space.hp[h];
            char name[96];
            if (sp->type == TB_HP_CHOICE) {
                for (size_t i = 0; i < N; i++) str[i] = s->subs[i]->values.text[h];
                rc |= tb_h5_column_str(g, tb_hp_names[h], str, N);
            } else {
                /* numbers; NaN where a rejected submission gave something unreadable */
                for (size_t i = 0; i < N; i++) {
                    char *end;
                    const char *t = s->subs[i]->values.text[h];
                    col[i] = strtod(t, &end);
                    if (end == t || *end) col[i] = NAN;
                }
                rc |= tb_h5_column_f64(g, tb_hp_names[h], col, N);
            }
            snprintf(name, sizeof name, "given_%s", tb_hp_names[h]);
            for (size_t i = 0; i < N; i++) i64[i] = s->subs[i]->given[h];
            rc |= tb_h5_column_i64(g, name, i64, N);
            snprintf(name, sizeof name, "comment_%s", tb_hp_names[h]);
            for (size_t i = 0; i < N; i++) str[i] = s->subs[i]->comments[h];
            rc |= tb_h5_column_str(g, name, str, N);
        }
        for (size_t i = 0; i < N; i++) {
            given_count = 0;
            for (int h = 0; h < TB_HP_COUNT; h++) given_count += !s->space.hp[h].mandatory && !s->subs[i]->given[h];
            i64[i] = given_count;
        }
        rc |= tb_h5_column_i64(g, "presets_kept", i64, N);
    }
    free(pid), free(run), free(status), free(msg), free(str), free(col), free(i64);
    return rc;
}

static int write_finals(tb_study *s, hid_t g)
{
    size_t N = (size_t)s->nf;
    int rc = 0;
    const char **pid = calloc(N + 1, sizeof *pid), **run = calloc(N + 1, sizeof *run),
               **status = calloc(N + 1, sizeof *status);
    double *col = calloc(N + 1, sizeof *col);
    int64_t *seed = calloc(N + 1, sizeof *seed);
    if (!pid || !run || !status || !col || !seed) rc = -1;
    if (!rc) {
        for (size_t i = 0; i < N; i++) {
            final_eval *f = &s->finals[i];
            pid[i] = s->p[f->participant].id, run[i] = f->run_id, status[i] = tb_run_status_name(f->status);
            seed[i] = f->seed;
        }
        rc |= tb_h5_column_str(g, "participant", pid, N);
        rc |= tb_h5_column_i64(g, "seed", seed, N);
        rc |= tb_h5_column_str(g, "run_id", run, N);
        rc |= tb_h5_column_str(g, "status", status, N);
        for (size_t i = 0; i < N; i++) col[i] = s->finals[i].test_accuracy;
        rc |= tb_h5_column_f64(g, "test_accuracy", col, N);
        for (size_t i = 0; i < N; i++) col[i] = s->finals[i].started;
        rc |= tb_h5_column_f64(g, "started_s", col, N);
        for (size_t i = 0; i < N; i++) col[i] = s->finals[i].ended;
        rc |= tb_h5_column_f64(g, "ended_s", col, N);
    }
    free(pid), free(run), free(status), free(col), free(seed);
    return rc;
}

static int write_events(tb_study *s, hid_t g)
{
    size_t N = (size_t)s->ne;
    int rc = 0;
    const char **type = calloc(N + 1, sizeof *type), **pid = calloc(N + 1, sizeof *pid),
               **run = calloc(N + 1, sizeof *run), **detail = calloc(N + 1, sizeof *detail);
    double *t = calloc(N + 1, sizeof *t);
    if (!type || !pid || !run || !detail || !t) rc = -1;
    if (!rc) {
        for (size_t i = 0; i < N; i++) {
            event_row *e = &s->events[i];
            t[i] = e->t;
            type[i] = e->type > 0 && e->type < (int)TB_ARRAY_LEN(rec_names) ? rec_names[e->type] : "unknown";
            pid[i] = e->participant, run[i] = e->run_id, detail[i] = e->detail;
        }
        rc |= tb_h5_column_f64(g, "t_s", t, N);
        rc |= tb_h5_column_str(g, "type", type, N);
        rc |= tb_h5_column_str(g, "participant", pid, N);
        rc |= tb_h5_column_str(g, "run_id", run, N);
        rc |= tb_h5_column_str(g, "detail", detail, N);
    }
    free(type), free(pid), free(run), free(detail), free(t);
    return rc;
}

/* Rewrites DIR/study.h5 through a temporary file and a rename. Mutex held.
 * The periodic rewrites skip the fsyncs (the journal is the truth and open
 * rebuilds the tables from it); open and close make them durable. */
static tb_status write_tables(tb_study *s, int durable, tb_err *err)
{
    char path[PATH_CAP], tmp[PATH_CAP];
    snprintf(path, sizeof path, "%s/study.h5", tb_archive_dir(s->archive));
    snprintf(tmp, sizeof tmp, "%s/study.h5.tmp", tb_archive_dir(s->archive));
    double now = tb_utc_now();
    hid_t f = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (f < 0) return tb_fail(err, TB_EIO, "study tables %s: cannot create it", tmp);
    int rc = 0;
    char iso[32];
    rc |= tb_h5_attr_str(f, "format", "tunebench-study");
    rc |= tb_h5_attr_i64(f, "schema_version", TB_STUDY_SCHEMA_VERSION);
    tb_iso_utc(now, iso);
    rc |= tb_h5_attr_str(f, "updated", iso);
    rc |= tb_h5_attr_f64(f, "updated_s", now);
    hid_t g = tb_h5_group(f, "study");
    if (g < 0) rc = -1;
    else {
        tb_iso_utc(s->created, iso);
        rc |= tb_h5_attr_str(g, "title", s->st.title);
        rc |= tb_h5_attr_str(g, "briefing", s->st.briefing);
        rc |= tb_h5_attr_str(g, "created", iso);
        rc |= tb_h5_attr_f64(g, "created_s", s->created);
        rc |= tb_h5_attr_str(g, "config", s->config_ini);
        rc |= tb_h5_attr_str(g, "space", s->space_ini ? s->space_ini : "");
        rc |= tb_h5_attr_str(g, "environment", s->environment);
        rc |= tb_h5_attr_f64(g, "budget_s", s->st.budget_s);
        rc |= tb_h5_attr_i64(g, "slots", s->st.slots);
        rc |= tb_h5_attr_i64(g, "max_active", max_active(s));
        rc |= tb_h5_attr_i64(g, "train_count", s->st.train_count);
        rc |= tb_h5_attr_str(g, "budget_policy",
                             "clock runs only while admitted; at most max_active participants admitted, one live "
                             "run each; queue waits and crash-interrupted training credited back; lobby time not "
                             "counted");
        rc |= tb_h5_column_i64(g, "final_seeds", s->st.final_seeds, (size_t)s->st.n_final_seeds);
        H5Gclose(g);
    }
    const struct {
        const char *name;
        int (*fn)(tb_study *, hid_t);
    } tables[] = {{"submissions", write_submissions}, {"finals", write_finals}, {"events", write_events}};
    if ((g = tb_h5_group(f, "participants")) < 0) rc = -1;
    else {
        rc |= write_participants(s, g, now);
        H5Gclose(g);
    }
    for (size_t k = 0; k < TB_ARRAY_LEN(tables); k++) {
        if ((g = tb_h5_group(f, tables[k].name)) < 0) {
            rc = -1;
            continue;
        }
        rc |= tables[k].fn(s, g);
        H5Gclose(g);
    }
    if (H5Fclose(f) < 0) rc = -1;
    if (rc) {
        unlink(tmp);
        return tb_fail(err, TB_EIO, "study tables %s: cannot write them", tmp);
    }
    if ((durable ? tb_rename_durable(tmp, path) : rename(tmp, path)) != 0) {
        unlink(tmp);
        return tb_fail(err, TB_EIO, "study tables %s: cannot put it in place: %s", path, strerror(errno));
    }
    s->dirty = 0;
    return TB_OK;
}

/* ---- runs ---------------------------------------------------------------------------------- */

/* Gives seconds back to a participant's budget (journalled first). Mutex held. */
static tb_status credit(tb_study *s, participant *p, const char *run_id, double seconds, const char *reason,
                        double t, tb_err *err)
{
    kv c = {0};
    kv_str(&c, "participant", p->id);
    kv_str(&c, "run", run_id);
    kv_f64(&c, "seconds", seconds);
    kv_str(&c, "reason", reason);
    char detail[64];
    snprintf(detail, sizeof detail, "%.3f s: %.30s", seconds, reason);
    tb_status st = record(s, REC_CREDIT, &c, t, p->id, run_id, detail, 1, err);
    if (st == TB_OK) p->credited += seconds;
    return st;
}

/* Journals how a submission's run ended (its fields already set). Mutex held. */
static tb_status record_run_end(tb_study *s, const submission *u, tb_err *err)
{
    const participant *p = &s->p[u->participant];
    kv b = {0};
    kv_str(&b, "run", u->run_id);
    kv_str(&b, "participant", p->id);
    kv_str(&b, "status", tb_run_status_name(u->status));
    kv_f64(&b, "val_accuracy", u->val_accuracy);
    kv_f64(&b, "test_accuracy", u->test_accuracy);
    kv_i64(&b, "epoch", u->epoch);
    kv_str(&b, "message", u->message);
    return record(s, REC_RUN_END, &b, u->ended, p->id, u->run_id, tb_run_status_name(u->status), 1, err);
}

/* A submission's run callbacks get the submission itself (it never moves:
 * submissions are separate allocations), so no lookup on every batch. */
static void sub_started(void *user, tb_job *job)
{
    (void)job;
    submission *u = user;
    tb_study *s = u->study;
    pthread_mutex_lock(&s->mu);
    u->started = tb_utc_now();
    u->status = TB_RUN_TRAINING;
    kv b = {0};
    kv_str(&b, "run", u->run_id);
    kv_str(&b, "participant", s->p[u->participant].id);
    tb_err e;
    if (record(s, REC_RUN_START, &b, u->started, s->p[u->participant].id, u->run_id, "", 1, &e) != TB_OK)
        s->bg_err = e;
    /* time spent queued is not the participant's */
    double wait = u->started - u->submitted;
    if (wait > 0 && credit(s, &s->p[u->participant], u->run_id, wait, "queued", u->started, &e) != TB_OK)
        s->bg_err = e;
    touch(s, u);
    pthread_mutex_unlock(&s->mu);
}

static int sub_event(void *user, tb_job *job, const tb_train_event *ev)
{
    (void)job;
    submission *u = user;
    tb_study *s = u->study;
    pthread_mutex_lock(&s->mu);
    u->batches_per_epoch = ev->batches_per_epoch;
    if (ev->kind == TB_EVENT_BATCH) {
        u->batch = ev->batch;
        u->batch_loss = ev->batch_loss;
    } else if (ev->kind == TB_EVENT_EPOCH) {
        u->epoch = ev->epoch;
        u->epoch_loss = ev->epoch_loss;
        u->val_loss = ev->val_loss;
        u->val_accuracy = ev->val_accuracy;
    }
    u->train_seconds = ev->elapsed_s;
    touch(s, u);
    pthread_mutex_unlock(&s->mu);
    return 0;
}

static void sub_finished(void *user, tb_job *job, tb_run_status status, double val_accuracy, double test_accuracy,
                         const char *message)
{
    (void)job;
    submission *u = user;
    tb_study *s = u->study;
    pthread_mutex_lock(&s->mu);
    u->status = status;
    u->ended = tb_utc_now();
    if (isfinite(val_accuracy)) u->val_accuracy = val_accuracy;
    u->test_accuracy = test_accuracy;
    tb_copy_str(u->message, sizeof u->message, message ? message : "");
    u->job = NULL;
    participant *p = &s->p[u->participant];
    if (p->live >= 0 && s->subs[p->live] == u) p->live = -1;
    tb_err e;
    if (record_run_end(s, u, &e) != TB_OK) s->bg_err = e;
    /* a run that never started waited all along; work lost to a shutdown
     * was the participant's time: give both back */
    if (!isfinite(u->started) && p->state != P_DONE &&
        credit(s, p, u->run_id, u->ended - u->submitted, "queued", u->ended, &e) != TB_OK)
        s->bg_err = e;
    if (status == TB_RUN_INTERRUPTED && isfinite(u->started) && p->state != P_DONE &&
        credit(s, p, u->run_id, u->ended - u->started, "interrupted", u->ended, &e) != TB_OK)
        s->bg_err = e;
    touch(s, u);
    pthread_mutex_unlock(&s->mu);
}

static void final_started(void *user, tb_job *job)
{
    tb_study *s = user;
    pthread_mutex_lock(&s->mu);
    final_eval *f = find_final(s, job->id);
    if (f) {
        f->started = tb_utc_now();
        f->status = TB_RUN_TRAINING;
        touch(s, NULL);
    }
    pthread_mutex_unlock(&s->mu);
}

static void final_finished(void *user, tb_job *job, tb_run_status status, double val_accuracy, double test_accuracy,
                           const char *message)
{
    (void)val_accuracy;
    tb_study *s = user;
    pthread_mutex_lock(&s->mu);
    final_eval *f = job ? find_final(s, job->id) : NULL;
    if (f) {
        f->status = status;
        f->test_accuracy = test_accuracy;
        f->ended = tb_utc_now();
        f->job = NULL;
        kv b = {0};
        kv_str(&b, "run", f->run_id);
        kv_str(&b, "participant", s->p[f->participant].id);
        kv_str(&b, "status", tb_run_status_name(status));
        kv_f64(&b, "test_accuracy", test_accuracy);
        kv_f64(&b, "started", f->started);
        kv_str(&b, "message", message ? message : "");
        tb_err e;
        if (record(s, REC_FINAL_END, &b, f->ended, s->p[f->participant].id, f->run_id, tb_run_status_name(status), 1,
                   &e) != TB_OK)
            s->bg_err = e;
        touch(s, NULL);
    }
    pthread_mutex_unlock(&s->mu);
}

/* Creates the archive run, calls journal(ctx, run_id) to record what is
 * queued, then submits the job, so the journal always names a run before
 * its start or end. Mutex held (the job cannot call back before it is
 * released). On failure nothing runs: a run begun in the archive is ended
 * there as interrupted through its finished callback. */
static tb_status launch(tb_study *s, const char *kind, const participant *p, const char *ini, int priority,
                        const tb_job_callbacks *inner, tb_status (*journal)(tb_study *, void *, const char *, tb_err *),
                        void *ctx, char run_id[TB_ARCHIVE_ID_MAX + 1], tb_job **job_out, tb_err *err)
{
    tb_job_callbacks cb;
    *job_out = NULL;
    tb_status st = tb_job_record(s->archive, kind, p->id, ini, inner, &cb, run_id, NULL, err);
    if (st != TB_OK) return st;
    tb_job *job = tb_job_new(run_id, ini, priority, &cb);
    if (!job) st = tb_fail(err, TB_ENOMEM, "out of memory");
    else if (tb_job_run_file(s->archive, run_id, job->run_path, sizeof job->run_path) != 0)
        st = tb_fail(err, TB_EINVAL, "archive %s: run file path for %s is too long", tb_archive_dir(s->archive), run_id);
    else if ((st = journal(s, ctx, run_id, err)) == TB_OK && (st = tb_executor_submit(s->exec, job, err)) == TB_OK) {
        *job_out = job;
        return TB_OK;
    }
    cb.finished(cb.user, job, TB_RUN_INTERRUPTED, NAN, NAN, err->msg);
    tb_job_free(job);
    return st;
}

/* launch's journal hook for final evaluation fi (ctx): its row gets the run id. */
static tb_status journal_final(tb_study *s, void *ctx, const char *run_id, tb_err *err)
{
    final_eval *f = &s->finals[(intptr_t)ctx];
    tb_copy_str(f->run_id, sizeof f->run_id, run_id);
    const participant *p = &s->p[f->participant];
    kv b = {0};
    kv_str(&b, "participant", p->id);
    kv_str(&b, "run", run_id);
    kv_i64(&b, "seed", f->seed);
    char detail[64];
    snprintf(detail, sizeof detail, "seed %lld", (long long)f->seed);
    return record(s, REC_FINAL_QUEUED, &b, tb_utc_now(), p->id, run_id, detail, 1, err);
}

/* Queues the final evaluations of participant pi (one per final seed). Mutex held. */
static tb_status queue_finals(tb_study *s, int pi, tb_err *err)
{
    participant *p = &s->p[pi];
    submission *chosen = find_submission(s, p->final_run);
    if (!chosen) return TB_OK;
    for (int k = 0; k < s->st.n_final_seeds; k++) {
        int64_t seed = s->st.final_seeds[k];
        int done = 0;
        for (int f = 0; f < s->nf; f++)
            if (s->finals[f].participant == pi && s->finals[f].seed == seed &&
                (s->finals[f].status != TB_RUN_INTERRUPTED || s->finals[f].job))
                done = 1;
        if (done) continue;
        char seed_kv[64], *ini = NULL;
        snprintf(seed_kv, sizeof seed_kv, "train.seed=%lld", (long long)seed);
        const char *extra[] = {seed_kv, "task.merge_val=true"};
        tb_status st = job_config(s, &chosen->values, extra, 2, &ini, err);
        if (st != TB_OK) return st;
        tb_job_callbacks inner = {.user = s, .started = final_started, .finished = final_finished};
        final_eval *f = add_final(s);
        if (!f) {
            free(ini);
            return tb_fail(err, TB_ENOMEM, "out of memory");
        }
        int fi = s->nf - 1;
        f->participant = pi;
        f->seed = seed;
        tb_job *job = NULL;
        char run_id[TB_ARCHIVE_ID_MAX + 1];
        st = launch(s, "final", p, ini, 10, &inner, journal_final, (void *)(intptr_t)fi, run_id, &job, err);
        free(ini);
        if (st != TB_OK) {
            s->nf--;
            return st;
        }
        s->finals[fi].job = job;
    }
    touch(s, NULL);
    return TB_OK;
}

/* The best finished submission by validation accuracy (ties: the earlier), or NULL. */
static submission *best_run(tb_study *s, int pi)
{
    submission *best = NULL;
    for (int i = 0; i < s->ns; i++) {
        submission *u = s->subs[i];
        if (u->participant != pi || u->status != TB_RUN_FINISHED || !isfinite(u->val_accuracy)) continue;
        if (!best || u->val_accuracy > best->val_accuracy) best = u;
    }
    return best;
}

/* Ends participant pi's tuning with run u (NULL: none) for reason. Mutex held. */
static tb_status conclude(tb_study *s, int pi, submission *u, const char *reason, tb_err *err)
{
    participant *p = &s->p[pi];
    double now = tb_utc_now();
    if (p->live >= 0) {
        submission *l = s->subs[p->live];
        if (l->job) {
            tb_executor_cancel(s->exec, l->job,
                               strcmp(reason, "budget") == 0 ? "budget exhausted" : "the participant finished");
        }
    }
    kv b = {0};
    kv_str(&b, "participant", p->id);
    kv_str(&b, "run", u ? u->run_id : "");
    kv_str(&b, "reason", u ? reason : "none");
    tb_status st = record(s, REC_FINAL_CHOICE, &b, now, p->id, u ? u->run_id : "", u ? reason : "none", 1, err);
    if (st != TB_OK) return st;
    close_interval(p, now);
    p->state = P_DONE;
    p->final_at = now;
    tb_copy_str(p->final_run, sizeof p->final_run, u ? u->run_id : "");
    tb_copy_str(p->final_reason, sizeof p->final_reason, u ? reason : "none");
    touch(s, NULL);
    return u ? queue_finals(s, pi, err) : TB_OK;
}

/* ---- the monitor thread: heartbeats, budgets, tables ---------------------------------------- */

static void *monitor_main(void *arg)
{
    tb_study *s = arg;
    double last_beat = 0, last_write = 0;
    pthread_mutex_lock(&s->mu);
    while (!s->closing) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += MONITOR_TICK_MS * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&s->stop, &s->mu, &ts);
        if (s->closing) break;
        double now = tb_utc_now();
        tb_err e;
        for (int i = 0; i < s->np; i++) {
            participant *p = &s->p[i];
            if (p->state == P_ACTIVE && used_seconds(s, p, now) >= s->st.budget_s) {
                if (conclude(s, i, best_run(s, i), "budget", &e) != TB_OK) s->bg_err = e;
            }
        }
        if (now - last_beat >= HEARTBEAT_S) {
            kv b = {0};
            /* not fsync'ed: a heartbeat must survive the process, not the machine */
            if (record(s, REC_HEARTBEAT, &b, now, NULL, NULL, NULL, 0, &e) != TB_OK) s->bg_err = e;
            last_beat = now;
        }
        if (s->dirty && now - last_write >= HEARTBEAT_S) {
            if (write_tables(s, 0, &e) != TB_OK) s->bg_err = e;
            last_write = now;
        }
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* ---- the API ------------------------------------------------------------------------------- */

static const char *api_title(tb_study *s) { return s->st.title; }
static const char *api_briefing(tb_study *s) { return s->st.briefing; }
static double api_budget(tb_study *s) { return s->st.budget_s; }
static const char *api_education(tb_study *s)
{
    (void)s;
    return TB_STUDY_EDUCATION;
}
static const char *api_comments(tb_study *s)
{
    (void)s;
    return TB_STUDY_COMMENTS;
}

static int api_hp_info(tb_study *s, int i, tb_fe_hp *out)
{
    if (i < 0 || i >= TB_HP_COUNT || !out) return -1;
    const tb_hp_spec *h = &s->space.hp[i];
    out->name = tb_hp_names[i];
    out->type = (int)h->type;
    out->mandatory = h->mandatory;
    out->lo = h->lo;
    out->hi = h->hi;
    out->choices = h->choices;
    out->preset = h->def;
    out->allowed = s->hp_allowed[i];
    return 0;
}

/* The canonical spelling of an education level (one of TB_STUDY_EDUCATION,
 * any case) into out; -1 when it is none of them. */
static int education_level(const char *name, char out[32])
{
    const char *p = TB_STUDY_EDUCATION;
    size_t n = name ? strlen(name) : 0;
    while (n && *p) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        if (len == n && len < 32 && strncasecmp(p, name, n) == 0) {
            memcpy(out, p, len);
            out[len] = '\0';
            return 0;
        }
        if (!bar) break;
        p = bar + 1;
    }
    return -1;
}

static tb_status api_register(tb_study *s, const tb_fe_participant *in, char id_out[64], char *err, size_t errlen)
{
    if (!in) return fail_buf(err, errlen, TB_EINVAL, "no participant given");
    char edu[32];
    if (education_level(in->education, edu) != 0)
        return fail_buf(err, errlen, TB_EINVAL, "education = \"%s\" is not allowed; allowed: %s",
                        in->education ? in->education : "", TB_STUDY_EDUCATION);
    if (!isfinite(in->dl_months) || in->dl_months < 0 || in->dl_months > 1200)
        return fail_buf(err, errlen, TB_EINVAL, "dl_months = %g is outside the allowed range [0, 1200] (months)",
                        in->dl_months);
    if (!isnan(in->programming_months) && !(in->programming_months >= 0 && in->programming_months <= 1200))
        return fail_buf(err, errlen, TB_EINVAL,
                        "programming_months = %g is outside the allowed range [0, 1200] (months; leave it out if "
                        "unknown)", in->programming_months);
    if (!isnan(in->ml_months) && !(in->ml_months >= 0 && in->ml_months <= 1200))
        return fail_buf(err, errlen, TB_EINVAL,
                        "ml_months = %g is outside the allowed range [0, 1200] (months; leave it out if unknown)",
                        in->ml_months);
    if (in->self_level < 0 || in->self_level > 5)
        return fail_buf(err, errlen, TB_EINVAL, "self_level = %d is outside the allowed range [1, 5] (0: not given)",
                        in->self_level);
    pthread_mutex_lock(&s->mu);
    if (s->closing) {
        pthread_mutex_unlock(&s->mu);
        return fail_buf(err, errlen, TB_EINVAL, "the study is closing");
    }
    char id[64];
    if (in->id && *in->id) {
        if (!tb_archive_valid_name(in->id, 63)) {
            pthread_mutex_unlock(&s->mu);
            return fail_buf(err, errlen, TB_EINVAL,
                            "id = \"%s\" is not allowed; allowed: 1 to 63 of A-Z a-z 0-9 . _ - (not starting with '.')",
                            in->id);
        }
        if (find_participant(s, in->id) >= 0) {
            pthread_mutex_unlock(&s->mu);
            return fail_buf(err, errlen, TB_EINVAL, "id = \"%s\" is taken: participant %s is already registered "
                            "(use enter to resume)", in->id, in->id);
        }
        tb_copy_str(id, sizeof id, in->id);
    } else {
        for (int k = s->np + 1;; k++) {
            snprintf(id, sizeof id, "p%03d", k);
            if (find_participant(s, id) < 0) break;
        }
    }
    participant *p = add_participant(s);
    if (!p) {
        pthread_mutex_unlock(&s->mu);
        return fail_buf(err, errlen, TB_ENOMEM, "out of memory");
    }
    double now = tb_utc_now();
    kv b = {0};
    kv_str(&b, "participant", id);
    kv_str(&b, "education", edu);
    kv_f64(&b, "dl_months", in->dl_months);
    kv_f64(&b, "programming_months", in->programming_months);
    kv_f64(&b, "ml_months", in->ml_months);
    kv_i64(&b, "self_level", in->self_level);
    tb_err e;
    tb_status st = record(s, REC_REGISTER, &b, now, id, NULL, edu, 1, &e);
    if (st != TB_OK) {
        s->np--;
        pthread_mutex_unlock(&s->mu);
        return out_err(err, errlen, st, &e);
    }
    tb_copy_str(p->id, sizeof p->id, id);
    tb_copy_str(p->education, sizeof p->education, edu);
    p->dl_months = in->dl_months;
    p->programming_months = in->programming_months;
    p->ml_months = in->ml_months;
    p->self_level = in->self_level;
    p->registered = now;
    if (id_out) tb_copy_str(id_out, 64, id);
    touch(s, NULL);
    pthread_mutex_unlock(&s->mu);
    return TB_OK;
}

/* Locks and finds a participant; on failure unlocks and fills err. */
static int lock_participant(tb_study *s, const char *id, char *err, size_t errlen)
{
    pthread_mutex_lock(&s->mu);
    const int closing = s->closing;
    int pi = closing ? -1 : find_participant(s, id);
    if (pi < 0) {
        pthread_mutex_unlock(&s->mu);
        if (closing) fail_buf(err, errlen, TB_EINVAL, "the study is closing");
        else fail_buf(err, errlen, TB_EINVAL, "participant \"%s\" is not registered", id ? id : "");
    }
    return pi;
}

static tb_status api_consent(tb_study *s, const char *id, char *err, size_t errlen)
{
    int pi = lock_participant(s, id, err, errlen);
    if (pi < 0) return TB_EINVAL;
    participant *p = &s->p[pi];
    tb_status st = TB_OK;
    if (p->state == P_REGISTERED) {
        double now = tb_utc_now();
        kv b = {0};
        kv_str(&b, "participant", p->id);
        tb_err e;
        if ((st = record(s, REC_CONSENT, &b, now, p->id, NULL, NULL, 1, &e)) != TB_OK) out_err(err, errlen, st, &e);
        else {
            p->consented = now;
            p->state = P_CONSENTED;
            touch(s, NULL);
        }
    }
    pthread_mutex_unlock(&s->mu);
    return st;
}

static tb_status api_enter(tb_study *s, const char *id, int *admitted, char *err, size_t errlen)
{
    int pi = lock_participant(s, id, err, errlen);
    if (pi < 0) return TB_EINVAL;
    participant *p = &s->p[pi];
    tb_status st = TB_OK;
    tb_err e;
    double now = tb_utc_now();
    if (admitted) *admitted = 0;
    if (p->state == P_REGISTERED) {
        st = fail_buf(err, errlen, TB_EINVAL, "participant %s has not consented yet", p->id);
    } else if (p->state == P_DONE) {
        st = fail_buf(err, errlen, TB_EINVAL, "participant %s has finished (final run %s)", p->id,
                      p->final_run[0] ? p->final_run : "none");
    } else if (p->state == P_ACTIVE) {
        if (admitted) *admitted = 1;
    } else if (used_seconds(s, p, now) >= s->st.budget_s) {
        /* came back with nothing left (e.g. after a restart) */
        st = conclude(s, pi, best_run(s, pi), "budget", &e);
        if (st != TB_OK) out_err(err, errlen, st, &e);
        else st = fail_buf(err, errlen, TB_EINVAL, "participant %s has no budget left; the tuning has ended", p->id);
    } else {
        if (p->state == P_CONSENTED) {
            kv b = {0};
            kv_str(&b, "participant", p->id);
            if ((st = record(s, REC_LOBBY, &b, now, p->id, NULL, NULL, 1, &e)) != TB_OK) out_err(err, errlen, st, &e);
            else {
                p->state = P_LOBBY;
                p->lobby_since = now;
            }
        }
        p->lobby_polled = now;
        /* as many of the lobby's head as there are free places */
        if (st == TB_OK && lobby_position(s, pi, now) <= max_active(s) - active_count(s)) {
            kv b = {0};
            kv_str(&b, "participant", p->id);
            if ((st = record(s, REC_ADMIT, &b, now, p->id, NULL, NULL, 1, &e)) != TB_OK)
                out_err(err, errlen, st, &e);
            else {
                p->state = P_ACTIVE;
                p->active_since = now;
                if (admitted) *admitted = 1;
            }
        }
        touch(s, NULL);
    }
    pthread_mutex_unlock(&s->mu);
    return st;
}

static tb_status pause_locked(tb_study *s, int pi, const char *reason, double t, tb_err *e)
{
    participant *p = &s->p[pi];
    kv b = {0};
    kv_str(&b, "participant", p->id);
    kv_str(&b, "reason", reason);
    tb_status st = record(s, REC_PAUSE, &b, t, p->id, NULL, reason, 1, e);
    if (st != TB_OK) return st;
    close_interval(p, t);
    p->state = P_CONSENTED;
    touch(s, NULL);
    return TB_OK;
}

static tb_status api_pause(tb_study *s, const char *id, char *err, size_t errlen)
{
    int pi = lock_participant(s, id, err, errlen);
    if (pi < 0) return TB_EINVAL;
    participant *p = &s->p[pi];
    tb_status st = TB_OK;
    if (p->live >= 0) {
        st = fail_buf(err, errlen, TB_EINVAL, "participant %s has run %s live; cancel it or wait for it first", p->id,
                      s->subs[p->live]->run_id);
    } else if (p->state == P_ACTIVE || p->state == P_LOBBY) {
        tb_err e;
        if ((st = pause_locked(s, pi, "paused", tb_utc_now(), &e)) != TB_OK) out_err(err, errlen, st, &e);
    }
    pthread_mutex_unlock(&s->mu);
    return st;
}

static void fill_run(const tb_study *s, const submission *u, tb_fe_run *o)
{
    memset(o, 0, sizeof *o);
    tb_copy_str(o->run_id, sizeof o->run_id, u->run_id);
    o->number = u->number;
    tb_copy_str(o->status, sizeof o->status, tb_run_status_name(u->status));
    o->epoch = u->epoch;
    o->epochs = u->epochs;
    o->batch = u->batch;
    o->batches_per_epoch = u->batches_per_epoch;
    o->batch_loss = u->batch_loss;
    o->epoch_loss = u->epoch_loss;
    o->val_loss = u->val_loss;
    o->val_accuracy = u->val_accuracy;
    o->submitted_s = u->submitted;
    o->seconds = u->train_seconds;
    tb_copy_str(o->message, sizeof o->message, u->message);
    for (int h = 0; h < TB_HP_COUNT; h++) tb_copy_str(o->values[h], sizeof o->values[h], u->values.text[h]);
    o->seq = u->seq;
    (void)s;
}

static tb_status api_state(tb_study *s, const char *id, tb_fe_state *o, char *err, size_t errlen)
{
    int pi = lock_participant(s, id, err, errlen);
    if (pi < 0) return TB_EINVAL;
    participant *p = &s->p[pi];
    memset(o, 0, sizeof *o);
    tb_copy_str(o->id, sizeof o->id, p->id);
    tb_copy_str(o->state, sizeof o->state, state_name(p));
    o->lobby_position = lobby_position(s, pi, tb_utc_now());
    o->budget_s = s->st.budget_s;
    o->used_s = used_seconds(s, p, tb_utc_now());
    o->left_s = s->st.budget_s - o->used_s;
    if (o->left_s < 0) o->left_s = 0;
    o->submissions = p->n_submissions;
    if (p->live >= 0) tb_copy_str(o->live_run, sizeof o->live_run, s->subs[p->live]->run_id);
    tb_copy_str(o->final_run, sizeof o->final_run, p->final_run);
    tb_copy_str(o->final_reason, sizeof o->final_reason, p->final_reason);
    final_stats fs = finals_of(s, pi);
    o->finals_total = fs.total;
    o->finals_done = fs.done;
    o->final_mean = fs.mean;
    o->final_sd = fs.sd;
    pthread_mutex_unlock(&s->mu);
    return TB_OK;
}

/* Journals a submission (queued with its run id, or rejected). Mutex held. */
static tb_status journal_submission(tb_study *s, void *ctx, const char *run_id, tb_err *err)
{
    submission *u = ctx;
    const participant *p = &s->p[u->participant];
    tb_copy_str(u->run_id, sizeof u->run_id, run_id);
    kv b = {0};
    kv_str(&b, "participant", p->id);
    kv_str(&b, "run", u->run_id);
    kv_str(&b, "status", tb_run_status_name(u->status));
    kv_str(&b, "message", u->message);
    for (int h = 0; h < TB_HP_COUNT; h++) {
        char key[64];
        snprintf(key, sizeof key, "v.%s", tb_hp_names[h]);
        kv_str(&b, key, u->values.text[h]);
        snprintf(key, sizeof key, "c.%s", tb_hp_names[h]);
        kv_str(&b, key, u->comments[h]);
        snprintf(key, sizeof key, "g.%s", tb_hp_names[h]);
        kv_i64(&b, key, u->given[h]);
    }
    /* durable before the participant hears "submitted" (or "rejected") */
    return record(s, REC_SUBMIT, &b, u->submitted, p->id, u->run_id, tb_run_status_name(u->status), 1, err);
}

/* Checks a submission against the space and the run's own checks; on
 * success *ini is the run's configuration. Touches nothing mutable (the
 * space, the base configuration and the training-set size are fixed at
 * open), so it runs without the mutex. */
static tb_status validate_submission(const tb_study *s, const char *const *given, tb_hp_values *resolved, int *bad,
                                     char **ini, tb_err *err)
{
    *ini = NULL;
    tb_status st = tb_space_resolve(&s->space, given, s->st.train_count, resolved, bad, err);
    if (st == TB_OK) st = job_config(s, resolved, NULL, 0, ini, err);
    if (st != TB_OK) return st;
    /* a configuration the space accepts can still fail the run's own checks */
    tb_config *c = NULL;
    tb_run probe;
    if ((st = tb_config_load_text(&c, *ini, "submission", err)) == TB_OK) {
        st = tb_run_configure(&probe, c, err);
        tb_run_free(&probe);
    }
    tb_config_free(c);
    if (st != TB_OK) {
        free(*ini);
        *ini = NULL;
    }
    return st;
}

static tb_status api_submit(tb_study *s, const char *id, const char *const *values, const char *const *comments,
                            char run_id[32], int *bad_hp, char *err, size_t errlen)
{
    if (bad_hp) *bad_hp = -1;
    if (run_id) run_id[0] = '\0';
    const char *given[TB_HP_COUNT];
    for (int h = 0; h < TB_HP_COUNT; h++) given[h] = values ? values[h] : NULL;
    tb_hp_values resolved;
    int bad = -1;
    char *ini = NULL;
    tb_err e = {{0}};
    tb_status vst = validate_submission(s, given, &resolved, &bad, &ini, &e);

    int pi = lock_participant(s, id, err, errlen);
    if (pi < 0) {
        free(ini);
        return TB_EINVAL;
    }
    participant *p = &s->p[pi];
    double now = tb_utc_now();
    tb_status st = TB_OK;
    if (p->state != P_ACTIVE) {
        st = fail_buf(err, errlen, TB_EINVAL, "participant %s is not admitted (state %s): call enter first", p->id,
                      p->state == P_DONE ? "done" : p->state == P_LOBBY ? "lobby" : "not started");
        goto out;
    }
    if (p->live >= 0) {
        st = fail_buf(err, errlen, TB_EINVAL, "participant %s already has run %s %s; cancel it or wait for it",
                      p->id, s->subs[p->live]->run_id, tb_run_status_name(s->subs[p->live]->status));
        goto out;
    }
    if (used_seconds(s, p, now) >= s->st.budget_s) {
        st = fail_buf(err, errlen, TB_EINVAL, "participant %s has no budget left", p->id);
        goto out;
    }
    submission *u = add_submission(s);
    if (!u) {
        st = fail_buf(err, errlen, TB_ENOMEM, "out of memory");
        goto out;
    }
    u->participant = pi;
    u->number = p->n_submissions + 1;
    u->submitted = now;
    for (int h = 0; h < TB_HP_COUNT; h++) {
        const char *g = given[h];
        while (g && (*g == ' ' || *g == '\t')) g++;
        u->given[h] = g && *g;
        tb_copy_str(u->comments[h], sizeof u->comments[h], comments && comments[h] ? comments[h] : "");
        tb_copy_str(u->values.text[h], sizeof u->values.text[h], vst == TB_OK ? resolved.text[h] : g);
    }
    u->epochs = atoi(u->values.text[TB_HP_EPOCHS]);
    if (vst != TB_OK) {
        u->status = TB_RUN_REJECTED;
        tb_copy_str(u->message, sizeof u->message, e.msg);
        st = journal_submission(s, u, "", &e);
    } else {
        tb_job_callbacks inner = {.user = u, .started = sub_started, .event = sub_event, .finished = sub_finished};
        u->status = TB_RUN_QUEUED;
        st = launch(s, "submission", p, ini, 0, &inner, journal_submission, u, u->run_id, &u->job, &e);
    }
    if (st != TB_OK) {
        if (u->run_id[0]) {
            p->n_submissions++; /* its archive run exists and launch ended it interrupted */
        } else {
            /* nothing was recorded (the journal or the archive failed) */
            s->ns--;
            free(u);
        }
        out_err(err, errlen, st, &e);
        goto out;
    }
    p->n_submissions++;
    if (u->status == TB_RUN_REJECTED) {
        st = fail_buf(err, errlen, TB_EINVAL, "%s", u->message);
        if (bad_hp) *bad_hp = bad;
    } else {
        p->live = s->ns - 1;
        if (run_id) tb_copy_str(run_id, 32, u->run_id);
    }
    touch(s, u);
out:
    pthread_mutex_unlock(&s->mu);
    free(ini);
    return st;
}

static tb_status api_cancel(tb_study *s, const char *id, const char *run_id, char *err, size_t errlen)
{
    int pi = lock_participant(s, id, err, errlen);
    if (pi < 0) return TB_EINVAL;
    submission *u = run_id && *run_id ? find_submission(s, run_id) : (s->p[pi].live >= 0 ? s->subs[s->p[pi].live] : NULL);
    tb_status st = TB_OK;
    if (!u || u->participant != pi)
        st = fail_buf(err, errlen, TB_EINVAL, "participant %s has no run %s", s->p[pi].id,
                      run_id && *run_id ? run_id : "live");
    else if (u->job)
        tb_executor_cancel(s->exec, u->job, "cancelled by the participant");
    /* a run that already ended: nothing to do */
    pthread_mutex_unlock(&s->mu);
    return st;
}

static tb_status api_run_state(tb_study *s, const char *run_id, tb_fe_run *out, char *err, size_t errlen)
{
    pthread_mutex_lock(&s->mu);
    submission *u = find_submission(s, run_id);
    tb_status st = TB_OK;
    if (!u) st = fail_buf(err, errlen, TB_EINVAL, "no submission has run id \"%s\"", run_id ? run_id : "");
    else fill_run(s, u, out);
    pthread_mutex_unlock(&s->mu);
    return st;
}

static int api_wait(tb_study *s, const char *run_id, uint64_t seq, int timeout_ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    long long ns = ts.tv_nsec + (long long)(timeout_ms > 0 ? timeout_ms : 0) * 1000000LL;
    ts.tv_sec += (time_t)(ns / 1000000000LL);
    ts.tv_nsec = (long)(ns % 1000000000LL);
    pthread_mutex_lock(&s->mu);
    int r;
    for (;;) {
        submission *u = find_submission(s, run_id);
        if (!u) {
            r = -1;
            break;
        }
        if (u->seq != seq) {
            r = 1;
            break;
        }
        if (s->interrupts != s->interrupts_taken) { /* let the front end see Ctrl-C at once */
            r = 0;
            break;
        }
        if (pthread_cond_timedwait(&s->changed, &s->mu, &ts) != 0) {
            u = find_submission(s, run_id);
            r = u && u->seq != seq ? 1 : 0;
            break;
        }
    }
    pthread_mutex_unlock(&s->mu);
    return r;
}

static int api_history_count(tb_study *s, const char *id)
{
    pthread_mutex_lock(&s->mu);
    int pi = find_participant(s, id), n = pi >= 0 ? s->p[pi].n_submissions : -1;
    pthread_mutex_unlock(&s->mu);
    return n;
}

static tb_status api_history_at(tb_study *s, const char *id, int i, tb_fe_run *out, char *err, size_t errlen)
{
    int pi = lock_participant(s, id, err, errlen);
    if (pi < 0) return TB_EINVAL;
    tb_status st = fail_buf(err, errlen, TB_EINVAL, "participant %s has no submission %d (has %d)", s->p[pi].id, i,
                            s->p[pi].n_submissions);
    for (int k = 0, seen = 0; k < s->ns; k++) {
        if (s->subs[k]->participant != pi) continue;
        if (seen++ == i) {
            fill_run(s, s->subs[k], out);
            st = TB_OK;
            break;
        }
    }
    pthread_mutex_unlock(&s->mu);
    return st;
}

static tb_status api_finish(tb_study *s, const char *id, const char *run_id, char *err, size_t errlen)
{
    int pi = lock_participant(s, id, err, errlen);
    if (pi < 0) return TB_EINVAL;
    participant *p = &s->p[pi];
    tb_status st = TB_OK;
    tb_err e;
    submission *u = NULL;
    if (p->state == P_DONE) {
        st = fail_buf(err, errlen, TB_EINVAL, "participant %s has already finished (final run %s)", p->id,
                      p->final_run[0] ? p->final_run : "none");
    } else if (p->state == P_REGISTERED) {
        st = fail_buf(err, errlen, TB_EINVAL, "participant %s has not consented yet", p->id);
    } else if (run_id && *run_id) {
        u = find_submission(s, run_id);
        if (!u || u->participant != pi)
            st = fail_buf(err, errlen, TB_EINVAL, "run = \"%s\" is not one of participant %s's submissions", run_id,
                          p->id);
        else if (u->status == TB_RUN_REJECTED)
            st = fail_buf(err, errlen, TB_EINVAL, "run = \"%s\" was rejected; choose a submission that ran", run_id);
    } else if (!(u = best_run(s, pi))) {
        st = fail_buf(err, errlen, TB_EINVAL,
                      "participant %s has no finished run to choose; name a run, or keep tuning", p->id);
    }
    if (st == TB_OK && (st = conclude(s, pi, u, "chosen", &e)) != TB_OK) out_err(err, errlen, st, &e);
    pthread_mutex_unlock(&s->mu);
    return st;
}

static int api_take_interrupt(tb_study *s)
{
    pthread_mutex_lock(&s->mu);
    int n = s->interrupts;
    int r = n != s->interrupts_taken;
    s->interrupts_taken = n;
    pthread_mutex_unlock(&s->mu);
    return r;
}

void tb_study_note_interrupt(tb_study *s)
{
    if (s) s->interrupts++;
}

/* ---- open / close --------------------------------------------------------------------------- */

/* After replay: what a crash left behind is settled (see study.h). Mutex held. */
static tb_status settle(tb_study *s, double crash_t, tb_study_recovery *rec, tb_err *err)
{
    tb_status st;
    /* clocks that were running stop at the last sign of life */
    for (int i = 0; i < s->np; i++) {
        participant *p = &s->p[i];
        if (p->state == P_ACTIVE || p->state == P_LOBBY)
            if ((st = pause_locked(s, i, "restart", crash_t, err)) != TB_OK) return st;
    }
    /* submissions whose end the journal did not see: the archive knows */
    for (int i = 0; i < s->ns; i++) {
        submission *u = s->subs[i];
        if (u->status == TB_RUN_REJECTED || tb_run_status_is_final(u->status)) continue;
        tb_archive_run_info info;
        tb_run_status end = TB_RUN_INTERRUPTED;
        double val = NAN, test = NAN;
        int64_t epoch = u->epoch;
        char msg[256] = "the study process stopped while the run was live";
        if (tb_archive_run_info_by_id(s->archive, u->run_id, &info, NULL) == TB_OK) {
            if (tb_run_status_is_final(info.status)) end = info.status;
            val = info.val_accuracy;
            test = info.test_accuracy;
            epoch = info.last_epoch;
            if (info.message[0]) tb_copy_str(msg, sizeof msg, info.message);
            if (!isfinite(u->started) && isfinite(info.started_s)) u->started = info.started_s;
        }
        u->status = end;
        u->val_accuracy = val;
        u->test_accuracy = test;
        u->epoch = (int)epoch;
        tb_copy_str(u->message, sizeof u->message, end == TB_RUN_FINISHED ? "" : msg);
        u->ended = crash_t;
        participant *p = &s->p[u->participant];
        if (p->live == i) p->live = -1;
        if ((st = record_run_end(s, u, err)) != TB_OK) return st;
        if (end == TB_RUN_INTERRUPTED) {
            /* the work the crash destroyed was the participant's time: give it back */
            double from = isfinite(u->started) ? u->started : u->submitted;
            double lost = crash_t - from;
            if (lost > 0 && p->state != P_DONE) {
                if ((st = credit(s, p, u->run_id, lost, "interrupted", crash_t, err)) != TB_OK) return st;
                if (rec) rec->credited_s += lost;
            }
            if (rec) rec->interrupted_runs++;
        }
    }
    /* final evaluations that did not end: the archive may know they finished; else queue again */
    for (int i = 0; i < s->nf; i++) {
        final_eval *f = &s->finals[i];
        if (tb_run_status_is_final(f->status)) continue;
        tb_archive_run_info info;
        tb_run_status end = TB_RUN_INTERRUPTED;
        double test = NAN;
        if (tb_archive_run_info_by_id(s->archive, f->run_id, &info, NULL) == TB_OK &&
            tb_run_status_is_final(info.status) && info.status != TB_RUN_INTERRUPTED) {
            end = info.status;
            test = info.test_accuracy;
        }
        f->status = end;
        f->test_accuracy = test;
        f->ended = crash_t;
        kv b = {0};
        kv_str(&b, "run", f->run_id);
        kv_str(&b, "participant", s->p[f->participant].id);
        kv_str(&b, "status", tb_run_status_name(end));
        kv_f64(&b, "test_accuracy", test);
        kv_f64(&b, "started", f->started);
        if ((st = record(s, REC_FINAL_END, &b, crash_t, s->p[f->participant].id, f->run_id, tb_run_status_name(end),
                         1, err)) != TB_OK)
            return st;
    }
    for (int i = 0; i < s->np; i++) {
        if (s->p[i].state != P_DONE || !s->p[i].final_run[0]) continue;
        int before = s->nf;
        if ((st = queue_finals(s, i, err)) != TB_OK) return st;
        if (rec) rec->finals_requeued += s->nf - before;
    }
    return TB_OK;
}

static void study_free(tb_study *s)
{
    if (!s) return;
    for (int i = 0; i < s->ns; i++) free(s->subs[i]);
    free(s->subs);
    free(s->p);
    free(s->finals);
    free(s->events);
    free(s->config_ini);
    free(s->job_base_ini);
    free(s->space_ini);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->changed);
    pthread_cond_destroy(&s->stop);
    free(s);
}

static void fill_api(tb_study *s)
{
    tb_study_api *a = &s->api;
    a->version = TB_STUDY_API_VERSION;
    a->size = sizeof *a;
    a->study = s;
    a->title = api_title;
    a->briefing = api_briefing;
    a->budget_s = api_budget;
    a->hp_info = api_hp_info;
    a->education_levels = api_education;
    a->comments = api_comments;
    a->register_participant = api_register;
    a->consent = api_consent;
    a->enter = api_enter;
    a->pause = api_pause;
    a->state = api_state;
    a->submit = api_submit;
    a->cancel = api_cancel;
    a->run_state = api_run_state;
    a->wait = api_wait;
    a->history_count = api_history_count;
    a->history_at = api_history_at;
    a->finish = api_finish;
    a->take_interrupt = api_take_interrupt;
}

tb_status tb_study_open(const tb_config *cfg, const char *archive_dir, tb_study **out, tb_study_recovery *rec,
                        tb_err *err)
{
    *out = NULL;
    if (rec) memset(rec, 0, sizeof *rec);
    tb_study *s = calloc(1, sizeof *s);
    if (!s) return tb_fail(err, TB_ENOMEM, "out of memory");
    pthread_mutexattr_t ma;
    pthread_mutexattr_init(&ma);
    pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_RECURSIVE);
    pthread_mutex_init(&s->mu, &ma);
    pthread_mutexattr_destroy(&ma);
    pthread_cond_init(&s->changed, NULL);
    pthread_cond_init(&s->stop, NULL);
    s->created = NAN;
    s->last_record = NAN;
    tb_status st;
    if ((st = tb_study_settings_load(&s->st, &s->space, cfg, err)) != TB_OK) goto fail;
    if (archive_dir && *archive_dir) tb_copy_str(s->st.archive, sizeof s->st.archive, archive_dir);
    for (int h = 0; h < TB_HP_COUNT; h++) tb_space_describe(&s->space, (tb_hp)h, s->hp_allowed[h], sizeof s->hp_allowed[h]);
    environment(s->environment, sizeof s->environment);
    s->space_ini = tb_space_to_ini(&s->space);
    if (!(s->config_ini = tb_config_to_ini(cfg))) {
        st = tb_fail(err, TB_ENOMEM, "out of memory");
        goto fail;
    }
    if ((st = tb_run_sections_ini(cfg, &s->job_base_ini, err)) != TB_OK) goto fail;
    /* the runs' configuration must be valid and the data load before anyone is invited */
    if ((st = probe_task(s, err)) != TB_OK) goto fail;
    if ((st = tb_archive_open(s->st.archive, 1, &s->archive, rec ? &rec->archive : NULL, err)) != TB_OK) goto fail;

    char jpath[PATH_CAP];
    snprintf(jpath, sizeof jpath, "%s/study.journal", s->st.archive);
    uint64_t dropped = 0;
    struct stat sb;
    if (stat(jpath, &sb) == 0) {
        if ((st = tb_journal_truncate_to_valid(jpath, &dropped, err)) != TB_OK) goto fail;
        replay_ctx ctx = {.s = s};
        if ((st = tb_journal_read(jpath, replay_fn, &ctx, NULL, NULL, err)) != TB_OK) {
            if (ctx.why[0]) tb_fail(err, TB_EFORMAT, "study journal %s: %s", jpath, ctx.why);
            goto fail;
        }
    }
    if ((st = tb_journal_open(jpath, &s->journal, err)) != TB_OK) goto fail;
    if ((st = s->st.gpus > 0 ? tb_executor_local_create_gpus(s->st.gpus, s->st.runs_per_gpu, s->st.gpu_memory_mib,
                                                               s->st.threads_per_run, &s->exec, err)
                             : tb_executor_local_create(s->st.slots, s->st.threads_per_run, &s->exec, err)) != TB_OK)
        goto fail;

    pthread_mutex_lock(&s->mu);
    double now = tb_utc_now();
    /* the last sign of life of the previous process (before this open's own record) */
    double crash_t = isfinite(s->last_record) ? s->last_record : now;
    int first = !isfinite(s->created);
    if (first) s->created = now;
    kv b = {0};
    kv_i64(&b, "pid", (int64_t)getpid());
    kv_i64(&b, "schema_version", TB_STUDY_SCHEMA_VERSION);
    if (first) kv_str(&b, "config", s->config_ini);
    st = record(s, REC_OPEN, &b, now, NULL, NULL, first ? "created" : "reopened", 1, err);
    if (st == TB_OK) st = settle(s, crash_t, rec, err);
    if (st == TB_OK) st = write_tables(s, 1, err);
    if (rec) rec->participants = s->np;
    pthread_mutex_unlock(&s->mu);
    if (st != TB_OK) goto fail;
    fill_api(s);
    if (pthread_create(&s->monitor, NULL, monitor_main, s) != 0) {
        st = tb_fail(err, TB_ENOMEM, "cannot start the study's monitor thread");
        goto fail;
    }
    s->monitor_started = 1;
    *out = s;
    return TB_OK;
fail:
    tb_executor_destroy(s->exec);
    s->exec = NULL;
    tb_journal_close(s->journal);
    if (s->archive) tb_archive_close(s->archive, NULL);
    study_free(s);
    return st;
}

tb_status tb_study_close(tb_study *s, int wait_finals, tb_err *err)
{
    if (!s) return TB_OK;
    tb_status st = TB_OK;
    tb_err e;
    pthread_mutex_lock(&s->mu);
    s->closing = 1; /* front ends get refused from here on */
    pthread_cond_broadcast(&s->stop);
    /* nobody's clock runs while the study is closed */
    double now = tb_utc_now();
    for (int i = 0; i < s->np; i++) {
        participant *p = &s->p[i];
        if (p->live >= 0 && s->subs[p->live]->job) {
            tb_executor_interrupt(s->exec, s->subs[p->live]->job, "the study was closed while the run was live");
        }
        if (p->state == P_ACTIVE || p->state == P_LOBBY)
            if (pause_locked(s, i, "closed", now, &e) != TB_OK && st == TB_OK) st = tb_fail(err, TB_EIO, "%s", e.msg);
    }
    pthread_mutex_unlock(&s->mu);
    if (s->monitor_started) pthread_join(s->monitor, NULL);
    if (wait_finals) tb_executor_drain(s->exec);
    /* interrupts what is still queued or running; their callbacks record it */
    tb_executor_destroy(s->exec);
    s->exec = NULL;
    pthread_mutex_lock(&s->mu);
    kv b = {0};
    if (record(s, REC_CLOSE, &b, tb_utc_now(), NULL, NULL, NULL, 1, &e) != TB_OK && st == TB_OK)
        st = tb_fail(err, TB_EIO, "%s", e.msg);
    if (write_tables(s, 1, &e) != TB_OK && st == TB_OK) st = tb_fail(err, TB_EIO, "%s", e.msg);
    /* a failure in a callback or the monitor (journal, tables) had nobody to tell until now */
    if (s->bg_err.msg[0] && st == TB_OK) st = tb_fail(err, TB_EIO, "%s", s->bg_err.msg);
    pthread_mutex_unlock(&s->mu);
    tb_journal_sync(s->journal, NULL);
    tb_journal_close(s->journal);
    if (tb_archive_close(s->archive, &e) != TB_OK && st == TB_OK) st = tb_fail(err, TB_EIO, "%s", e.msg);
    study_free(s);
    return st;
}

const tb_study_api *tb_study_api_get(tb_study *s) { return &s->api; }
const tb_study_settings *tb_study_get_settings(const tb_study *s) { return &s->st; }
const tb_space *tb_study_get_space(const tb_study *s) { return &s->space; }
tb_archive *tb_study_archive(tb_study *s) { return s->archive; }

int tb_study_finals_pending(tb_study *s)
{
    pthread_mutex_lock(&s->mu);
    int n = 0;
    for (int i = 0; i < s->nf; i++) n += !tb_run_status_is_final(s->finals[i].status);
    pthread_mutex_unlock(&s->mu);
    return n;
}
