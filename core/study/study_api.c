/* study_api.c: the tb_study_api table front ends call (register, consent,
 * enter, pause, submit, cancel, finish, and the read-only views). Each
 * change is validated here without touching the state, then journalled and
 * applied through study_commit (study_state.c); the job-related ones go
 * through study_runs.c. */
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
    tb_copy_str(o->state, sizeof o->state, study_state_name(p));
    o->lobby_position = study_lobby_position(s, pi, tb_utc_now());
    o->budget_s = s->st.budget_s;
    o->used_s = study_used_seconds(s, p, tb_utc_now());
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
    pthread_mutex_unlock(&s->mu);
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
        submission *u = study_find_submission(s, run_id);
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
            u = study_find_submission(s, run_id);
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
    int pi = study_find_participant(s, id), n = pi >= 0 ? s->p[pi].n_submissions : -1;
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
}
