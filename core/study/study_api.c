/* study_api.c: the tb_study_api table front ends call (register, consent,
 * enter, pause, submit, cancel, finish, and the read-only views). Each
 * change is validated here without touching the state, then journalled and
 * applied through study_commit (study_state.c); the job-related ones go
 * through study_runs.c. */
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "run/run.h"
#include "study_internal.h"

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

static tb_status register_checked(tb_study *s, const tb_fe_participant *in, const char *edu, const char *strategy,
                                  char id_out[64], char *err, size_t errlen);

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
    return register_checked(s, in, edu, NULL, id_out, err, errlen);
}

/* Registers a participant whose fields were checked (edu: the canonical
 * education; strategy: a machine participant's, NULL for a person, whose id
 * is then in->id or the next "p%03d"). */
static tb_status register_checked(tb_study *s, const tb_fe_participant *in, const char *edu, const char *strategy,
                                  char id_out[64], char *err, size_t errlen)
{
    pthread_mutex_lock(&s->mu);
    if (s->closing || !s->admitting) {
        pthread_mutex_unlock(&s->mu);
        return fail_buf(err, errlen, TB_EINVAL, s->closing ? "the study is closing"
                        : "the study is not admitting new participants (the organiser stopped admission)");
    }
    char id[64];
    if (strategy) {
        for (int k = 1;; k++) { /* "tuner-": how analyses tell machines apart (core/analysis/study_data.c) */
            snprintf(id, sizeof id, "tuner-%s-%d", strategy, k);
            if (study_find_participant(s, id) < 0) break;
        }
    } else if (in->id && *in->id) {
        if (!tb_archive_valid_name(in->id, 63)) {
            pthread_mutex_unlock(&s->mu);
            return fail_buf(err, errlen, TB_EINVAL,
                            "id = \"%s\" is not allowed; allowed: 1 to 63 of A-Z a-z 0-9 . _ - (not starting with '.')",
                            in->id);
        }
        if (study_find_participant(s, in->id) >= 0) {
            pthread_mutex_unlock(&s->mu);
            return fail_buf(err, errlen, TB_EINVAL, "id = \"%s\" is taken: participant %s is already registered "
                            "(use enter to resume)", in->id, in->id);
        }
        tb_copy_str(id, sizeof id, in->id);
    } else {
        for (int k = s->np + 1;; k++) {
            snprintf(id, sizeof id, "p%03d", k);
            if (study_find_participant(s, id) < 0) break;
        }
    }
    tb_err e;
    tb_status st = study_reserve(s, &e);
    if (st == TB_OK) {
        rec_buf b = {0};
        rec_str(&b, "participant", id);
        rec_str(&b, "education", edu);
        rec_f64(&b, "dl_months", in->dl_months);
        rec_f64(&b, "programming_months", in->programming_months);
        rec_f64(&b, "ml_months", in->ml_months);
        rec_i64(&b, "self_level", in->self_level);
        if (strategy) rec_str(&b, "strategy", strategy);
        st = study_commit(s, REC_REGISTER, &b, tb_utc_now(), 1, &e);
    }
    if (st != TB_OK) {
        pthread_mutex_unlock(&s->mu);
        return out_err(err, errlen, st, &e);
    }
    if (id_out) tb_copy_str(id_out, 64, id);
    study_touch(s, NULL);
    pthread_mutex_unlock(&s->mu);
    return TB_OK;
}

/* Locks and finds a participant; on failure unlocks and fills err. */
static int lock_participant(tb_study *s, const char *id, char *err, size_t errlen)
{
    pthread_mutex_lock(&s->mu);
    const int closing = s->closing;
    int pi = closing ? -1 : study_find_participant(s, id);
    if (pi < 0) {
        pthread_mutex_unlock(&s->mu);
        if (closing) fail_buf(err, errlen, TB_EINVAL, "the study is closing");
        else fail_buf(err, errlen, TB_EINVAL, "participant \"%s\" is not registered", id ? id : "");
    }
    return pi;
}

static tb_status api_consent(tb_study *s, const char *id, char *err, size_t errlen);

/* A machine participant: education "machine", no experience figures, the
 * strategy in its registration record; consented at once (nobody reads a
 * briefing). */
static tb_status api_register_machine(tb_study *s, const char *strategy, char id_out[64], char *err, size_t errlen)
{
    if (!strategy || !*strategy || strlen(strategy) > 24 || !tb_archive_valid_name(strategy, 24) ||
        strchr(strategy, '.'))
        return fail_buf(err, errlen, TB_EINVAL, "strategy = \"%s\" is not allowed; allowed: 1 to 24 of A-Z a-z 0-9 _ -",
                        strategy ? strategy : "");
    tb_fe_participant p = {.education = "machine", .dl_months = NAN, .programming_months = NAN, .ml_months = NAN};
    char id[64];
    tb_status st = register_checked(s, &p, "machine", strategy, id, err, errlen);
    if (st == TB_OK) st = api_consent(s, id, err, errlen);
    if (st == TB_OK && id_out) tb_copy_str(id_out, 64, id);
    return st;
}

static tb_status api_consent(tb_study *s, const char *id, char *err, size_t errlen)
{
    int pi = lock_participant(s, id, err, errlen);
    if (pi < 0) return TB_EINVAL;
    participant *p = &s->p[pi];
    tb_status st = TB_OK;
    if (p->state == P_REGISTERED) {
        rec_buf b = {0};
        rec_str(&b, "participant", p->id);
        tb_err e;
        if ((st = study_commit(s, REC_CONSENT, &b, tb_utc_now(), 1, &e)) != TB_OK) out_err(err, errlen, st, &e);
        else study_touch(s, NULL);
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
    } else if (study_used_seconds(s, p, now) >= s->st.budget_s) {
        /* came back with nothing left (e.g. after a restart) */
        st = study_conclude(s, pi, study_best_run(s, pi), "budget", &e);
        if (st != TB_OK) out_err(err, errlen, st, &e);
        else st = fail_buf(err, errlen, TB_EINVAL, "participant %s has no budget left; the tuning has ended", p->id);
    } else {
        if (p->state == P_CONSENTED) {
            rec_buf b = {0};
            rec_str(&b, "participant", p->id);
            if ((st = study_commit(s, REC_LOBBY, &b, now, 1, &e)) != TB_OK) out_err(err, errlen, st, &e);
        }
        p->lobby_polled = now; /* not journalled: only who is still asking now matters */
        /* as many of the lobby's head as there are free places */
        if (st == TB_OK && study_lobby_position(s, pi, now) <= study_max_active(s) - study_active_count(s)) {
            rec_buf b = {0};
            rec_str(&b, "participant", p->id);
            if ((st = study_commit(s, REC_ADMIT, &b, now, 1, &e)) != TB_OK) out_err(err, errlen, st, &e);
            else if (admitted) *admitted = 1;
        }
        study_touch(s, NULL);
    }
    pthread_mutex_unlock(&s->mu);
    return st;
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
        if ((st = study_pause(s, pi, "paused", tb_utc_now(), &e)) != TB_OK) out_err(err, errlen, st, &e);
    }
    pthread_mutex_unlock(&s->mu);
    return st;
}

/* 1-based among the participants' runs waiting for a slot (they start
 * before finals and sweeps, in submission order), 0 when not queued. */
static int queue_position(const tb_study *s, const submission *u)
{
    if (u->status != TB_RUN_QUEUED || !u->job) return 0;
    int pos = 1;
    for (int k = 0; k < s->ns && s->subs[k] != u; k++) pos += s->subs[k]->status == TB_RUN_QUEUED && s->subs[k]->job;
    return pos;
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
    /* version 3 */
    o->status_code = (int)u->status;
    tb_copy_str(o->participant, sizeof o->participant, s->p[u->participant].id);
    o->queue_position = queue_position(s, u);
    o->started_s = u->started;
    o->ended_s = u->ended;
    for (int h = 0; h < TB_HP_COUNT; h++) {
        o->given[h] = u->given[h];
        tb_copy_str(o->comments[h], sizeof o->comments[h], u->comments[h]);
    }
}

/* Everything about participant pi a front end may show (mutex held). */
static void fill_state(const tb_study *s, int pi, tb_fe_state *o)
{
    const participant *p = &s->p[pi];
    const double now = tb_utc_now();
    memset(o, 0, sizeof *o);
    tb_copy_str(o->id, sizeof o->id, p->id);
    tb_copy_str(o->state, sizeof o->state, study_state_name(p));
    o->lobby_position = study_lobby_position(s, pi, now);
    o->budget_s = s->st.budget_s;
    o->used_s = study_used_seconds(s, p, now);
    o->left_s = s->st.budget_s - o->used_s;
    if (o->left_s < 0) o->left_s = 0;
    o->submissions = p->n_submissions;
    if (p->live >= 0) tb_copy_str(o->live_run, sizeof o->live_run, s->subs[p->live]->run_id);
    tb_copy_str(o->final_run, sizeof o->final_run, p->final_run);
    tb_copy_str(o->final_reason, sizeof o->final_reason, p->final_reason);
    final_stats fs = study_finals_of(s, pi);
    o->finals_total = fs.total;
    o->finals_done = fs.done;
    o->final_mean = fs.mean;
    o->final_sd = fs.sd;
    /* version 3 */
    o->state_code = (int)p->state;
    tb_copy_str(o->education, sizeof o->education, p->education);
    o->dl_months = p->dl_months;
    o->programming_months = p->programming_months;
    o->ml_months = p->ml_months;
    o->self_level = p->self_level;
    o->registered_s = p->registered;
    o->best_val_accuracy = NAN;
    const submission *best = study_best_run((tb_study *)s, pi);
    if (best) {
        tb_copy_str(o->best_run, sizeof o->best_run, best->run_id);
        o->best_val_accuracy = best->val_accuracy;
    }
    for (int k = 0; k < s->ns; k++) o->finished_runs += s->subs[k]->participant == pi && s->subs[k]->status == TB_RUN_FINISHED;
}

/* Writes min(out_size, full_size) bytes of full to out: a caller built
 * against an older, shorter struct gets the fields it knows. */
static void copy_sized(void *out, size_t out_size, const void *full, size_t full_size)
{
    memcpy(out, full, out_size < full_size ? out_size : full_size);
}

static tb_status api_state(tb_study *s, const char *id, tb_fe_state *o, char *err, size_t errlen)
{
    int pi = lock_participant(s, id, err, errlen);
    if (pi < 0) return TB_EINVAL;
    tb_fe_state full;
    fill_state(s, pi, &full);
    pthread_mutex_unlock(&s->mu);
    copy_sized(o, TB_FE_STATE_V2_SIZE, &full, sizeof full);
    return TB_OK;
}

/* Checks a submission against the space and the run's own checks; on
 * success *ini is the run's configuration, *cfg its parse and *conf that
 * typed (the job runs from these: nothing is parsed again). Touches nothing
 * mutable (the space, the base configuration and the training-set size are
 * fixed at open), so it runs without the mutex. */
static tb_status validate_submission(const tb_study *s, const char *const *given, tb_hp_values *resolved, int *bad,
                                     char **ini, tb_config **cfg, tb_run_config *conf, tb_err *err)
{
    *ini = NULL;
    *cfg = NULL;
    tb_status st = tb_space_resolve(&s->space, given, s->st.train_count, resolved, bad, err);
    if (st == TB_OK) st = study_job_config(s, resolved, NULL, 0, ini, cfg, err);
    if (st != TB_OK) return st;
    /* a configuration the space accepts can still fail the run's own checks:
     * keys and values (typed once, for the job too), then what tb_run_configure
     * adds (the device, the plugins and their options, unknown sections) */
    if ((st = tb_run_config_parse(conf, *cfg, err)) == TB_OK) st = tb_run_config_check(conf, err);
    if (st != TB_OK) {
        tb_config_free(*cfg);
        *cfg = NULL;
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
    tb_config *cfg = NULL;
    tb_run_config conf;
    tb_err e = {{0}};
    tb_status vst = validate_submission(s, given, &resolved, &bad, &ini, &cfg, &conf, &e);

    int pi = lock_participant(s, id, err, errlen);
    if (pi < 0) {
        tb_config_free(cfg);
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
    if (study_used_seconds(s, p, now) >= s->st.budget_s) {
        st = fail_buf(err, errlen, TB_EINVAL, "participant %s has no budget left", p->id);
        goto out;
    }
    /* what the record says; study_apply makes the submission from it */
    submission *draft = calloc(1, sizeof *draft);
    if (!draft) {
        st = fail_buf(err, errlen, TB_ENOMEM, "out of memory");
        goto out;
    }
    draft->submitted = now;
    for (int h = 0; h < TB_HP_COUNT; h++) {
        const char *g = given[h];
        while (g && (*g == ' ' || *g == '\t')) g++;
        draft->given[h] = g && *g;
        tb_copy_str(draft->comments[h], sizeof draft->comments[h], comments && comments[h] ? comments[h] : "");
        tb_copy_str(draft->values.text[h], sizeof draft->values.text[h], vst == TB_OK ? resolved.text[h] : g);
    }
    if (vst != TB_OK) {
        draft->status = TB_RUN_REJECTED;
        tb_copy_str(draft->message, sizeof draft->message, e.msg);
    }
    submission *u = NULL;
    st = study_submit(s, pi, draft, vst == TB_OK ? ini : NULL, cfg, &conf, &u, &e);
    cfg = NULL; /* taken */
    free(draft);
    if (st != TB_OK) {
        out_err(err, errlen, st, &e);
        goto out;
    }
    if (u->status == TB_RUN_REJECTED) {
        st = fail_buf(err, errlen, TB_EINVAL, "%s", u->message);
        if (bad_hp) *bad_hp = bad;
    } else if (run_id) {
        tb_copy_str(run_id, 32, u->run_id);
    }
    study_touch(s, u);
out:
    pthread_mutex_unlock(&s->mu);
    tb_config_free(cfg);
    free(ini);
    return st;
}

static tb_status api_cancel(tb_study *s, const char *id, const char *run_id, char *err, size_t errlen)
{
    int pi = lock_participant(s, id, err, errlen);
    if (pi < 0) return TB_EINVAL;
    submission *u = run_id && *run_id ? study_find_submission(s, run_id) : (s->p[pi].live >= 0 ? s->subs[s->p[pi].live] : NULL);
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
    submission *u = study_find_submission(s, run_id);
    tb_status st = TB_OK;
    tb_fe_run full;
    if (!u) st = fail_buf(err, errlen, TB_EINVAL, "no submission has run id \"%s\"", run_id ? run_id : "");
    else fill_run(s, u, &full);
    pthread_mutex_unlock(&s->mu);
    if (st == TB_OK) copy_sized(out, TB_FE_RUN_V2_SIZE, &full, sizeof full);
    return st;
}

/* The one way a front end waits: on s->changed until decide(s, ctx) answers
 * (anything but WAIT_MORE) or timeout_ms passes; at the deadline decide has
 * the last word, and WAIT_MORE then means 0. */
#define WAIT_MORE INT_MIN
static int wait_for(tb_study *s, int timeout_ms, int (*decide)(const tb_study *s, const void *ctx), const void *ctx)
{
    struct timespec ts = study_deadline(timeout_ms);
    pthread_mutex_lock(&s->mu);
    int r;
    while ((r = decide(s, ctx)) == WAIT_MORE)
        if (pthread_cond_timedwait(&s->changed, &s->mu, &ts) != 0) {
            r = decide(s, ctx);
            break;
        }
    pthread_mutex_unlock(&s->mu);
    return r == WAIT_MORE ? 0 : r;
}

/* A pending Ctrl-C ends every wait that honours it, so the front end sees it at once. */
static int interrupt_pending(const tb_study *s) { return s->interrupts != s->interrupts_taken; }

typedef struct run_wait {
    const char *run_id;
    uint64_t seq;
} run_wait;

static int run_changed(const tb_study *s, const void *ctx)
{
    const run_wait *w = ctx;
    const submission *u = study_find_submission(s, w->run_id);
    if (!u) return -1;
    if (u->seq != w->seq) return 1;
    return interrupt_pending(s) ? 0 : WAIT_MORE;
}

static int api_wait(tb_study *s, const char *run_id, uint64_t seq, int timeout_ms)
{
    run_wait w = {run_id, seq};
    return wait_for(s, timeout_ms, run_changed, &w);
}

static int api_history_count(tb_study *s, const char *id)
{
    pthread_mutex_lock(&s->mu);
    int pi = study_find_participant(s, id), n = pi >= 0 ? s->p[pi].n_submissions : -1;
    pthread_mutex_unlock(&s->mu);
    return n;
}

static tb_status history_copy(tb_study *s, const char *id, int i, tb_fe_run *out, size_t out_size, char *err,
                              size_t errlen)
{
    int pi = lock_participant(s, id, err, errlen);
    if (pi < 0) return TB_EINVAL;
    tb_status st = fail_buf(err, errlen, TB_EINVAL, "participant %s has no submission %d (has %d)", s->p[pi].id, i,
                            s->p[pi].n_submissions);
    tb_fe_run full;
    for (int k = 0, seen = 0; k < s->ns; k++) {
        if (s->subs[k]->participant != pi) continue;
        if (seen++ == i) {
            fill_run(s, s->subs[k], &full);
            st = TB_OK;
            break;
        }
    }
    pthread_mutex_unlock(&s->mu);
    if (st == TB_OK) copy_sized(out, out_size, &full, sizeof full);
    return st;
}

static tb_status api_history_at(tb_study *s, const char *id, int i, tb_fe_run *out, char *err, size_t errlen)
{
    return history_copy(s, id, i, out, TB_FE_RUN_V2_SIZE, err, errlen);
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
        u = study_find_submission(s, run_id);
        if (!u || u->participant != pi)
            st = fail_buf(err, errlen, TB_EINVAL, "run = \"%s\" is not one of participant %s's submissions", run_id,
                          p->id);
        else if (u->status == TB_RUN_REJECTED)
            st = fail_buf(err, errlen, TB_EINVAL, "run = \"%s\" was rejected; choose a submission that ran", run_id);
    } else if (!(u = study_best_run(s, pi))) {
        st = fail_buf(err, errlen, TB_EINVAL,
                      "participant %s has no finished run to choose; name a run, or keep tuning", p->id);
    }
    if (st == TB_OK && (st = study_conclude(s, pi, u, "chosen", &e)) != TB_OK) out_err(err, errlen, st, &e);
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

/* The values a participant set (not the preset) that the chosen optimizer
 * does not read: accepted, ignored, and worth saying. */
static int api_submission_note(tb_study *s, const char *run_id, char *out, size_t cap)
{
    if (!out || cap == 0) return 0;
    out[0] = '\0';
    char list[384] = "";
    size_t used = 0;
    int n = 0;
    char optimizer[TB_HP_TEXT] = "";
    pthread_mutex_lock(&s->mu);
    const submission *u = study_find_submission(s, run_id);
    if (u) {
        tb_copy_str(optimizer, sizeof optimizer, u->values.text[TB_HP_OPTIMIZER]);
        for (int h = 0; h < TB_HP_COUNT; h++) {
            if (!u->given[h] || tb_hp_used_by((tb_hp)h, optimizer) ||
                strcmp(u->values.text[h], s->space.hp[h].def) == 0)
                continue;
            tb_appendf(list, sizeof list, &used, "%s%s = %s", n ? ", " : "", tb_hp_names[h], u->values.text[h]);
            n++;
        }
    }
    pthread_mutex_unlock(&s->mu);
    if (!n) return 0;
    size_t o = 0;
    tb_appendf(out, cap, &o, "optimizer %s does not read %s: %s ignored", optimizer, list, n > 1 ? "they are" : "it is");
    return 1;
}

/* ---- version 3 ------------------------------------------------------------------------------ */

_Static_assert(TB_FE_HP_INT == (int)TB_HP_INT && TB_FE_HP_FLOAT == (int)TB_HP_FLOAT && TB_FE_HP_CHOICE == (int)TB_HP_CHOICE,
               "the ABI's hyperparameter types are the space's");
_Static_assert(TB_FE_RUN_QUEUED == (int)TB_RUN_QUEUED && TB_FE_RUN_TRAINING == (int)TB_RUN_TRAINING &&
                   TB_FE_RUN_FINISHED == (int)TB_RUN_FINISHED && TB_FE_RUN_CANCELLED == (int)TB_RUN_CANCELLED &&
                   TB_FE_RUN_DIVERGED == (int)TB_RUN_DIVERGED && TB_FE_RUN_INTERRUPTED == (int)TB_RUN_INTERRUPTED &&
                   TB_FE_RUN_REJECTED == (int)TB_RUN_REJECTED,
               "the ABI's run statuses are the archive's");
_Static_assert(TB_FE_REGISTERED == (int)P_REGISTERED && TB_FE_CONSENTED == (int)P_CONSENTED &&
                   TB_FE_LOBBY == (int)P_LOBBY && TB_FE_ACTIVE == (int)P_ACTIVE && TB_FE_DONE == (int)P_DONE,
               "the ABI's participant states are the study's");

void study_hp_readers(tb_study *s)
{
    const char *choices = s->space.hp[TB_HP_OPTIMIZER].choices;
    for (int h = 0; h < TB_HP_COUNT; h++) {
        char *out = s->hp_readers[h];
        size_t used = 0;
        int all = 1;
        out[0] = '\0';
        for (const char *p = choices; p && *p;) {
            const char *bar = strchr(p, '|');
            size_t len = bar ? (size_t)(bar - p) : strlen(p);
            char name[32];
            tb_copy_str(name, len + 1 < sizeof name ? len + 1 : sizeof name, p);
            if (tb_hp_used_by((tb_hp)h, name)) tb_appendf(out, sizeof s->hp_readers[h], &used, "%s%s", used ? "|" : "", name);
            else all = 0;
            p = bar ? bar + 1 : p + len;
        }
        if (all) out[0] = '\0';
    }
}

static tb_status api_participant_info(tb_study *s, const char *id, tb_fe_state *out, size_t out_size, char *err,
                                      size_t errlen)
{
    int pi = lock_participant(s, id, err, errlen);
    if (pi < 0) return TB_EINVAL;
    tb_fe_state full;
    fill_state(s, pi, &full);
    pthread_mutex_unlock(&s->mu);
    copy_sized(out, out_size, &full, sizeof full);
    return TB_OK;
}

static tb_status api_run_info(tb_study *s, const char *run_id, tb_fe_run *out, size_t out_size, char *err,
                              size_t errlen)
{
    pthread_mutex_lock(&s->mu);
    submission *u = study_find_submission(s, run_id);
    tb_fe_run full;
    if (u) fill_run(s, u, &full);
    pthread_mutex_unlock(&s->mu);
    if (!u) return fail_buf(err, errlen, TB_EINVAL, "no submission has run id \"%s\"", run_id ? run_id : "");
    copy_sized(out, out_size, &full, sizeof full);
    return TB_OK;
}

static tb_status api_history_info(tb_study *s, const char *id, int i, tb_fe_run *out, size_t out_size, char *err,
                                  size_t errlen)
{
    return history_copy(s, id, i, out, out_size, err, errlen);
}

static const char *api_hp_readers(tb_study *s, int i)
{
    return i >= 0 && i < TB_HP_COUNT ? s->hp_readers[i] : NULL;
}

static int api_show_result(tb_study *s) { return s->st.show_result; }

/* Fills c[] (tb_fe_curve_kind) from the archive's copy of run_id's curves. */
static tb_status curves_from_archive(tb_study *s, const char *run_id, curve_points c[4], tb_err *e)
{
    tb_archive_curves ac;
    tb_status st = tb_archive_run_curves(s->archive, run_id, &ac, e);
    if (st != TB_OK) return st;
    submission tmp = {0};
    int ok = 1;
    for (size_t i = 0; ok && i < ac.n_batch; i++)
        ok = study_curve_add(&tmp, TB_FE_CURVE_BATCH_LOSS, (double)ac.step[i], ac.loss[i]) == 0;
    for (size_t i = 0; ok && i < ac.n_epoch; i++)
        ok = study_curve_add(&tmp, TB_FE_CURVE_EPOCH_LOSS, (double)ac.epoch[i], ac.train_loss[i]) == 0 &&
             study_curve_add(&tmp, TB_FE_CURVE_VAL_LOSS, (double)ac.epoch[i], ac.val_loss[i]) == 0 &&
             study_curve_add(&tmp, TB_FE_CURVE_VAL_ACCURACY, (double)ac.epoch[i], ac.val_accuracy[i]) == 0;
    tb_archive_curves_free(&ac);
    if (!ok) {
        study_curves_free(&tmp);
        return tb_fail(e, TB_ENOMEM, "out of memory reading the curves of run %s", run_id);
    }
    memcpy(c, tmp.curve, sizeof tmp.curve);
    return TB_OK;
}

static int copy_points(const curve_points *c, int from, double *x, double *y, int cap)
{
    for (int i = 0; from >= 0 && i < cap && from + i < c->n; i++) {
        if (x) x[i] = c->x[from + i];
        if (y) y[i] = c->y[from + i];
    }
    return c->n;
}

/* Submissions seen live in this process answer from memory; a finished run
 * of an earlier session is read from the archive once and kept; anything
 * else (a final evaluation, a run whose points memory could not keep) is
 * read from the archive each time. */
static int api_curve(tb_study *s, const char *run_id, int kind, int from, double *x, double *y, int cap)
{
    if (kind < TB_FE_CURVE_BATCH_LOSS || kind > TB_FE_CURVE_VAL_ACCURACY || !run_id || !*run_id) return -1;
    if (from < 0) from = 0;
    pthread_mutex_lock(&s->mu);
    int n = -1;
    submission *u = study_find_submission(s, run_id);
    if (u && u->curves_from != CURVES_NONE) {
        n = copy_points(&u->curve[kind], from, x, y, cap);
    } else if (u || study_find_final(s, run_id)) {
        curve_points c[4];
        tb_err e;
        if (curves_from_archive(s, run_id, c, &e) == TB_OK) {
            n = copy_points(&c[kind], from, x, y, cap);
            if (u && tb_run_status_is_final(u->status)) {
                memcpy(u->curve, c, sizeof c); /* it no longer changes: keep it */
                u->curves_from = CURVES_LOADED;
            } else {
                submission tmp = {0};
                memcpy(tmp.curve, c, sizeof c);
                study_curves_free(&tmp);
            }
        }
    }
    pthread_mutex_unlock(&s->mu);
    return n;
}

static uint64_t api_change_seq(tb_study *s)
{
    pthread_mutex_lock(&s->mu);
    uint64_t v = s->change_seq;
    pthread_mutex_unlock(&s->mu);
    return v;
}

static int study_changed(const tb_study *s, const void *ctx)
{
    return s->change_seq != *(const uint64_t *)ctx || s->closing ? 1 : WAIT_MORE;
}

static int api_wait_change(tb_study *s, uint64_t seq, int timeout_ms)
{
    return wait_for(s, timeout_ms, study_changed, &seq);
}

static int study_closing(const tb_study *s, const void *ctx)
{
    (void)ctx;
    if (s->closing) return 1;
    return interrupt_pending(s) ? 0 : WAIT_MORE; /* a Ctrl-C for the caller to take */
}

static int api_wait_close(tb_study *s, int timeout_ms)
{
    return wait_for(s, timeout_ms, study_closing, NULL);
}

static int api_participant_count(tb_study *s)
{
    pthread_mutex_lock(&s->mu);
    int n = s->np;
    pthread_mutex_unlock(&s->mu);
    return n;
}

static tb_status api_participant_at(tb_study *s, int i, tb_fe_state *out, size_t out_size, char *err, size_t errlen)
{
    pthread_mutex_lock(&s->mu);
    tb_fe_state full;
    const int n = s->np;
    if (i >= 0 && i < n) fill_state(s, i, &full);
    pthread_mutex_unlock(&s->mu);
    if (i < 0 || i >= n) return fail_buf(err, errlen, TB_EINVAL, "participant %d does not exist (there are %d)", i, n);
    copy_sized(out, out_size, &full, sizeof full);
    return TB_OK;
}

static int api_live_runs(tb_study *s, char (*run_ids)[32], int cap)
{
    pthread_mutex_lock(&s->mu);
    int n = 0;
    for (int pass = 0; pass < 2; pass++) { /* training first, then the queue in order */
        const tb_run_status want = pass == 0 ? TB_RUN_TRAINING : TB_RUN_QUEUED;
        for (int k = 0; k < s->ns; k++) {
            const submission *u = s->subs[k];
            if (u->status != want || !u->job) continue;
            if (run_ids && n < cap) tb_copy_str(run_ids[n], 32, u->run_id);
            n++;
        }
    }
    pthread_mutex_unlock(&s->mu);
    return n;
}

static void api_counts(tb_study *s, tb_fe_counts *out, size_t out_size)
{
    tb_fe_counts c;
    memset(&c, 0, sizeof c);
    pthread_mutex_lock(&s->mu);
    c.participants = s->np;
    for (int i = 0; i < s->np; i++) c.by_state[s->p[i].state]++;
    c.runs = s->ns;
    for (int k = 0; k < s->ns; k++) c.runs_by_status[s->subs[k]->status]++;
    for (int f = 0; f < s->nf; f++) {
        const final_eval *fe = &s->finals[f];
        if (fe->status == TB_RUN_INTERRUPTED && !fe->job) continue; /* replaced by a new one */
        c.finals_total++;
        if (tb_run_status_is_final(fe->status)) c.finals_done++;
        else c.finals_pending++;
    }
    c.slots = s->st.gpus > 0 ? s->st.gpus * s->st.runs_per_gpu : s->st.slots;
    c.max_active = study_max_active(s);
    c.admitting = s->admitting;
    c.closing = s->closing;
    c.created_s = s->created;
    pthread_mutex_unlock(&s->mu);
    copy_sized(out, out_size, &c, sizeof c);
}

static tb_status api_set_admitting(tb_study *s, int admitting, char *err, size_t errlen)
{
    admitting = admitting != 0;
    pthread_mutex_lock(&s->mu);
    tb_status st = TB_OK;
    tb_err e;
    if (s->closing) {
        st = fail_buf(err, errlen, TB_EINVAL, "the study is closing");
    } else if (s->admitting != admitting) {
        rec_buf b = {0};
        rec_i64(&b, "admitting", admitting);
        if ((st = study_reserve(s, &e)) == TB_OK) st = study_commit(s, REC_ADMISSION, &b, tb_utc_now(), 1, &e);
        else free(b.p);
        if (st != TB_OK) out_err(err, errlen, st, &e);
        else study_touch(s, NULL);
    }
    pthread_mutex_unlock(&s->mu);
    return st;
}

static tb_status api_close_study(tb_study *s, const char *why, char *err, size_t errlen)
{
    (void)err, (void)errlen;
    tb_study_stop(s, why && *why ? why : "the organiser closed the study");
    return TB_OK;
}

static const char *api_archive_path(tb_study *s) { return s->st.archive; }

static tb_status api_export_archive(tb_study *s, const char *out_path, char *err, size_t errlen)
{
    if (!out_path || !*out_path) return fail_buf(err, errlen, TB_EINVAL, "no output path given for the export");
    tb_err e;
    tb_status st = tb_archive_export(tb_archive_dir(s->archive), out_path, &e);
    return st == TB_OK ? TB_OK : out_err(err, errlen, st, &e);
}

void study_fill_api(tb_study *s)
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
    a->register_machine = api_register_machine;
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
    a->submission_note = api_submission_note;
    a->participant_info = api_participant_info;
    a->run_info = api_run_info;
    a->history_info = api_history_info;
    a->hp_readers = api_hp_readers;
    a->show_result = api_show_result;
    a->curve = api_curve;
    a->change_seq = api_change_seq;
    a->wait_change = api_wait_change;
    a->wait_close = api_wait_close;
    a->participant_count = api_participant_count;
    a->participant_at = api_participant_at;
    a->live_runs = api_live_runs;
    a->counts = api_counts;
    a->set_admitting = api_set_admitting;
    a->close_study = api_close_study;
    a->archive_path = api_archive_path;
    a->export_archive = api_export_archive;
}
