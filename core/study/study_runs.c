/* study_runs.c: the study's live changes that involve jobs: queueing a
 * participant's submission and its final evaluations on the executor, the
 * executor's callbacks (journalled as run_start / run_end / final_end, with
 * the credits the fairness policy gives), ending a participant's tuning, and
 * the monitor thread (heartbeats, budgets, periodic tables). Each change is
 * journalled and applied through study_commit; giving jobs to the executor,
 * cancelling them and waking waiters happen here, after it. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "run/run.h"
#include "study_internal.h"

#define HEARTBEAT_S 2.0
#define MONITOR_TICK_MS 200

tb_status study_job_config(const tb_study *s, const tb_hp_values *v, const char *const *extra, int n_extra,
                           char **ini, tb_config **cfg, tb_err *err)
{
    *ini = NULL;
    *cfg = NULL;
    tb_config *c;
    tb_status st = tb_config_load_text(&c, s->job_base_ini, "study configuration", err);
    if (st != TB_OK) return st;
    st = tb_space_apply(v, c, err);
    for (int i = 0; i < n_extra && st == TB_OK; i++) st = tb_config_set_assignment(c, extra[i], err);
    if (st == TB_OK && !(*ini = tb_config_to_ini(c))) st = tb_fail(err, TB_ENOMEM, "out of memory");
    if (st != TB_OK) {
        tb_config_free(c);
        return st;
    }
    *cfg = c;
    return TB_OK;
}

tb_status study_pause(tb_study *s, int pi, const char *reason, double t, tb_err *err)
{
    rec_buf b = {0};
    rec_str(&b, "participant", s->p[pi].id);
    rec_str(&b, "reason", reason);
    tb_status st = study_commit(s, REC_PAUSE, &b, t, 1, err);
    if (st == TB_OK) study_touch(s, NULL);
    return st;
}

tb_status study_credit(tb_study *s, int pi, const char *run_id, double seconds, const char *reason, double t,
                       tb_err *err)
{
    rec_buf c = {0};
    rec_str(&c, "participant", s->p[pi].id);
    rec_str(&c, "run", run_id);
    rec_f64(&c, "seconds", seconds);
    rec_str(&c, "reason", reason);
    return study_commit(s, REC_CREDIT, &c, t, 1, err);
}

/* ---- jobs --------------------------------------------------------------------------------- */

/* A job begun in the archive (so it has a run id to journal) and not yet
 * given to the executor. */
typedef struct pending_job {
    tb_job_callbacks cb; /* the archive recorder's, wrapping the study's */
    tb_job *job;
    char run_id[TB_ARCHIVE_ID_MAX + 1];
} pending_job;

/* Ends a pending job that will never run: its archive run ends interrupted
 * through its finished callback (which also tells the study, if it knew it). */
static void job_abandon(pending_job *pj, const char *why)
{
    pj->cb.finished(pj->cb.user, pj->job, TB_RUN_INTERRUPTED, NAN, NAN, why);
    tb_job_free(pj->job);
    pj->job = NULL;
}

/* cfg and conf: ini parsed and typed already (study_job_config,
 * tb_run_config_parse), carried into the job so that it is not parsed again;
 * cfg is taken (freed also on failure). cfg NULL: the job parses ini when it
 * runs. */
static tb_status job_prepare(tb_study *s, const char *kind, const participant *p, const char *ini, tb_config *cfg,
                             const tb_run_config *conf, int priority, const tb_job_callbacks *inner, pending_job *pj,
                             tb_err *err)
{
    memset(pj, 0, sizeof *pj);
    tb_status st = tb_job_record(s->archive, kind, p->id, ini, inner, &pj->cb, pj->run_id, NULL, err);
    if (st != TB_OK) {
        tb_config_free(cfg);
        return st;
    }
    pj->job = cfg ? tb_job_new_parsed(pj->run_id, ini, cfg, conf, priority, &pj->cb)
                  : tb_job_new(pj->run_id, ini, priority, &pj->cb);
    if (!pj->job) st = tb_fail(err, TB_ENOMEM, "out of memory");
    else if (tb_job_run_file(s->archive, pj->run_id, pj->job->run_path, sizeof pj->job->run_path) != 0)
        st = tb_fail(err, TB_EINVAL, "archive %s: run file path for %s is too long", tb_archive_dir(s->archive),
                     pj->run_id);
    else tb_copy_str(pj->job->cache_dir, sizeof pj->job->cache_dir, s->st.task_cache);
    if (st != TB_OK) job_abandon(pj, err->msg);
    return st;
}

/* Gives a prepared job, already journalled, to the executor; abandons it on failure. */
static tb_status job_submit(tb_study *s, pending_job *pj, tb_err *err)
{
    tb_status st = tb_executor_submit(s->exec, pj->job, err);
    if (st != TB_OK) job_abandon(pj, err->msg);
    return st;
}

/* ---- a participant's runs ----------------------------------------------------------------- */

/* A submission's run callbacks get the submission itself (it never moves:
 * submissions are separate allocations), so no lookup on every batch. A
 * submission whose record was never applied (number 0: the journal failed
 * before it) is unknown to the study; only its archive run is ended. */
static void sub_started(void *user, tb_job *job)
{
    (void)job;
    submission *u = user;
    tb_study *s = u->study;
    pthread_mutex_lock(&s->mu);
    rec_buf b = {0};
    rec_str(&b, "run", u->run_id);
    rec_str(&b, "participant", s->p[u->participant].id);
    tb_err e;
    double now = tb_utc_now();
    if (study_commit(s, REC_RUN_START, &b, now, 1, &e) != TB_OK) s->bg_err = e;
    /* time spent queued is not the participant's */
    double wait = now - u->submitted;
    if (wait > 0 && study_credit(s, u->participant, u->run_id, wait, "queued", now, &e) != TB_OK) s->bg_err = e;
    study_touch(s, u);
    pthread_mutex_unlock(&s->mu);
}

/* Where a run's job went (a Slurm job id): journalled, so that a study
 * restarted after a crash follows the job again instead of losing it. */
static void journal_placed(tb_study *s, int pi, const char *run_id, const char *placement)
{
    rec_buf b = {0};
    rec_str(&b, "participant", s->p[pi].id);
    rec_str(&b, "run", run_id);
    rec_str(&b, "placement", placement);
    tb_err e;
    if (study_commit(s, REC_RUN_PLACED, &b, tb_utc_now(), 1, &e) != TB_OK) s->bg_err = e;
}

static void sub_placed(void *user, tb_job *job)
{
    submission *u = user;
    tb_study *s = u->study;
    pthread_mutex_lock(&s->mu);
    if (u->number > 0) journal_placed(s, u->participant, u->run_id, job->placement);
    pthread_mutex_unlock(&s->mu);
}

/* Progress is shown, not journalled (the archive keeps the epochs). */
static int sub_event(void *user, tb_job *job, const tb_train_event *ev)
{
    (void)job;
    submission *u = user;
    tb_study *s = u->study;
    pthread_mutex_lock(&s->mu);
    u->batches_per_epoch = ev->batches_per_epoch;
    /* the curves a front end redraws: the points the archive records */
    int kept = u->curves_from == CURVES_LIVE;
    if (ev->kind == TB_EVENT_BATCH) {
        u->batch = ev->batch;
        u->batch_loss = ev->batch_loss;
        kept = kept && study_curve_add(u, TB_FE_CURVE_BATCH_LOSS, (double)ev->step, ev->batch_loss) == 0;
    } else if (ev->kind == TB_EVENT_EPOCH) {
        u->epoch = ev->epoch;
        u->epoch_loss = ev->epoch_loss;
        u->val_loss = ev->val_loss;
        u->val_accuracy = ev->val_accuracy;
        kept = kept && study_curve_add(u, TB_FE_CURVE_EPOCH_LOSS, ev->epoch, ev->epoch_loss) == 0 &&
               study_curve_add(u, TB_FE_CURVE_VAL_LOSS, ev->epoch, ev->val_loss) == 0 &&
               study_curve_add(u, TB_FE_CURVE_VAL_ACCURACY, ev->epoch, ev->val_accuracy) == 0;
    }
    if (u->curves_from == CURVES_LIVE && !kept) { /* out of memory: the archive has them; read them from there */
        study_curves_free(u);
        u->curves_from = CURVES_NONE;
    }
    u->train_seconds = ev->elapsed_s;
    study_touch(s, u);
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
    if (u->number == 0) {
        pthread_mutex_unlock(&s->mu);
        return;
    }
    u->job = NULL;
    char msg[sizeof u->message];
    tb_copy_str(msg, sizeof msg, message ? message : "");
    double now = tb_utc_now();
    rec_buf b = {0};
    int pi = u->participant;
    rec_run_end(&b, s->p[pi].id, u->run_id, status, isfinite(val_accuracy) ? val_accuracy : u->val_accuracy,
                test_accuracy, u->epoch, msg);
    rec_i64(&b, "batches_per_epoch", u->batches_per_epoch); /* for front ends after a reopen (0: never started) */
    tb_err e;
    if (study_commit(s, REC_RUN_END, &b, now, 1, &e) != TB_OK) s->bg_err = e;
    /* a run that never started waited all along; work lost to a shutdown
     * was the participant's time: give both back */
    if (!isfinite(u->started) && s->p[pi].state != P_DONE &&
        study_credit(s, pi, u->run_id, now - u->submitted, "queued", now, &e) != TB_OK)
        s->bg_err = e;
    if (status == TB_RUN_INTERRUPTED && isfinite(u->started) && s->p[pi].state != P_DONE &&
        study_credit(s, pi, u->run_id, now - u->started, "interrupted", now, &e) != TB_OK)
        s->bg_err = e;
    study_touch(s, u);
    pthread_mutex_unlock(&s->mu);
}

tb_status study_submit(tb_study *s, int pi, const submission *draft, const char *ini, tb_config *cfg,
                       const tb_run_config *conf, submission **u_out, tb_err *err)
{
    *u_out = NULL;
    tb_status st = study_reserve(s, err);
    if (st != TB_OK) {
        tb_config_free(cfg);
        return st;
    }
    const participant *p = &s->p[pi];
    rec_buf b = {0};
    if (!ini) { /* rejected: journalled, never run */
        tb_config_free(cfg);
        rec_submission(&b, p->id, draft);
        if ((st = study_commit(s, REC_SUBMIT, &b, draft->submitted, 1, err)) == TB_OK) *u_out = s->subs[s->ns - 1];
        return st;
    }
    /* study_apply adopts the spare, so the run's callbacks can be given its
     * address before the record that creates it is written */
    submission *u = s->spare_sub;
    tb_job_callbacks inner = {.user = u, .started = sub_started, .event = sub_event, .finished = sub_finished,
                              .placed = sub_placed};
    pending_job pj;
    if ((st = job_prepare(s, "submission", p, ini, cfg, conf, 0, &inner, &pj, err)) != TB_OK) return st;
    submission rec = *draft;
    tb_copy_str(rec.run_id, sizeof rec.run_id, pj.run_id);
    rec.status = TB_RUN_QUEUED;
    /* durable before the participant hears "submitted", and before the job can start */
    rec_submission(&b, p->id, &rec);
    if ((st = study_commit(s, REC_SUBMIT, &b, draft->submitted, 1, err)) != TB_OK) {
        job_abandon(&pj, err->msg);
        return st;
    }
    *u_out = u;
    u->curves_from = CURVES_LIVE; /* every event of its run passes sub_event */
    if ((st = job_submit(s, &pj, err)) != TB_OK) return st;
    u->job = pj.job;
    return TB_OK;
}

/* ---- final evaluations -------------------------------------------------------------------- */

/* Not journalled: final_end carries when it started. */
static void final_started(void *user, tb_job *job)
{
    tb_study *s = user;
    pthread_mutex_lock(&s->mu);
    final_eval *f = study_find_final(s, job->id);
    if (f) {
        f->started = tb_utc_now();
        f->status = TB_RUN_TRAINING;
        study_touch(s, NULL);
    }
    pthread_mutex_unlock(&s->mu);
}

static void final_placed(void *user, tb_job *job)
{
    tb_study *s = user;
    pthread_mutex_lock(&s->mu);
    final_eval *f = study_find_final(s, job->id);
    if (f) journal_placed(s, f->participant, f->run_id, job->placement);
    pthread_mutex_unlock(&s->mu);
}

static void final_finished(void *user, tb_job *job, tb_run_status status, double val_accuracy, double test_accuracy,
                           const char *message)
{
    (void)val_accuracy;
    tb_study *s = user;
    pthread_mutex_lock(&s->mu);
    final_eval *f = job ? study_find_final(s, job->id) : NULL;
    if (f) {
        f->job = NULL;
        rec_buf b = {0};
        rec_final_end(&b, s->p[f->participant].id, f->run_id, status, test_accuracy, f->started,
                      message ? message : "");
        tb_err e;
        if (study_commit(s, REC_FINAL_END, &b, tb_utc_now(), 1, &e) != TB_OK) s->bg_err = e;
        study_touch(s, NULL);
    }
    pthread_mutex_unlock(&s->mu);
}

/* One final evaluation: the chosen run's values retrained on train +
 * validation with the seed. */
static tb_status queue_final(tb_study *s, int pi, const submission *chosen, int64_t seed, tb_err *err)
{
    char seed_kv[64], *ini = NULL;
    snprintf(seed_kv, sizeof seed_kv, "train.seed=%lld", (long long)seed);
    const char *extra[] = {seed_kv, "task.merge_val=true"};
    tb_config *cfg = NULL;
    tb_run_config conf;
    tb_status st = study_job_config(s, &chosen->values, extra, 2, &ini, &cfg, err);
    /* typed here, once, for the job; a configuration that fails this is
     * rejected by the job as before (it parses the text itself and says why) */
    tb_err ignored;
    if (st == TB_OK && tb_run_config_parse(&conf, cfg, &ignored) != TB_OK) {
        tb_config_free(cfg);
        cfg = NULL;
    }
    if (st == TB_OK) st = study_reserve(s, err);
    tb_job_callbacks inner = {.user = s, .started = final_started, .finished = final_finished,
                              .placed = final_placed};
    pending_job pj;
    if (st == TB_OK) {
        st = job_prepare(s, "final", &s->p[pi], ini, cfg, &conf, 10, &inner, &pj, err);
        cfg = NULL; /* taken */
    }
    tb_config_free(cfg);
    free(ini);
    if (st != TB_OK) return st;
    rec_buf b = {0};
    rec_str(&b, "participant", s->p[pi].id);
    rec_str(&b, "run", pj.run_id);
    rec_i64(&b, "seed", seed);
    if ((st = study_commit(s, REC_FINAL_QUEUED, &b, tb_utc_now(), 1, err)) != TB_OK) {
        job_abandon(&pj, err->msg);
        return st;
    }
    if ((st = job_submit(s, &pj, err)) != TB_OK) return st;
    study_find_final(s, pj.run_id)->job = pj.job;
    return TB_OK;
}

tb_status study_queue_finals(tb_study *s, int pi, tb_err *err)
{
    submission *chosen = study_find_submission(s, s->p[pi].final_run);
    if (!chosen) return TB_OK;
    for (int k = 0; k < s->st.n_final_seeds; k++) {
        int64_t seed = s->st.final_seeds[k];
        int done = 0;
        for (int f = 0; f < s->nf; f++)
            if (s->finals[f].participant == pi && s->finals[f].seed == seed &&
                (s->finals[f].status != TB_RUN_INTERRUPTED || s->finals[f].job))
                done = 1;
        if (done) continue;
        tb_status st = queue_final(s, pi, chosen, seed, err);
        if (st != TB_OK) return st;
    }
    study_touch(s, NULL);
    return TB_OK;
}

tb_status study_conclude(tb_study *s, int pi, submission *u, const char *reason, tb_err *err)
{
    participant *p = &s->p[pi];
    rec_buf b = {0};
    rec_str(&b, "participant", p->id);
    rec_str(&b, "run", u ? u->run_id : "");
    rec_str(&b, "reason", u ? reason : "none");
    tb_status st = study_commit(s, REC_FINAL_CHOICE, &b, tb_utc_now(), 1, err);
    if (st != TB_OK) return st;
    /* the live run (if any) ends through its finished callback, journalled there */
    if (p->live >= 0 && s->subs[p->live]->job)
        tb_executor_cancel(s->exec, s->subs[p->live]->job,
                           strcmp(reason, "budget") == 0 ? "budget exhausted" : "the participant finished");
    study_touch(s, NULL);
    return u ? study_queue_finals(s, pi, err) : TB_OK;
}

/* ---- the monitor thread: heartbeats, budgets, tables ---------------------------------------- */

void *study_monitor_main(void *arg)
{
    tb_study *s = arg;
    double last_beat = 0, last_write = 0;
    pthread_mutex_lock(&s->mu);
    while (!s->closing) {
        struct timespec ts = study_deadline(MONITOR_TICK_MS);
        pthread_cond_timedwait(&s->stop, &s->mu, &ts);
        if (s->closing) break;
        double now = tb_utc_now();
        tb_err e;
        for (int i = 0; i < s->np; i++) {
            participant *p = &s->p[i];
            if (p->state == P_ACTIVE && study_used_seconds(s, p, now) >= s->st.budget_s) {
                if (study_conclude(s, i, study_best_run(s, i), "budget", &e) != TB_OK) s->bg_err = e;
            }
        }
        if (now - last_beat >= HEARTBEAT_S) {
            rec_buf b = {0};
            /* not fsync'ed: a heartbeat must survive the process, not the machine */
            if (study_commit(s, REC_HEARTBEAT, &b, now, 0, &e) != TB_OK) s->bg_err = e;
            last_beat = now;
        }
        if (s->dirty && now - last_write >= HEARTBEAT_S) {
            if (study_write_tables(s, 0, &e) != TB_OK) s->bg_err = e;
            last_write = now;
        }
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* ---- runs a crashed process left on the cluster ---------------------------------------------- */

/* A job following run_id's placement again, recorded into its archive run
 * from where the archive's record stops. */
static tb_status adopt_job(tb_study *s, const char *run_id, const char *placement, const tb_job_callbacks *inner,
                           int priority, int started, tb_job **out, int64_t *last_epoch, tb_err *err)
{
    *out = NULL;
    if (s->st.executor != TB_EXECUTOR_SLURM || strncmp(placement, "slurm:", 6) != 0)
        return tb_fail(err, TB_EIO, "run %s was placed at %s, which the %s executor cannot follow", run_id, placement,
                       tb_executor_kind_names[s->st.executor]);
    tb_job *job = tb_job_new(run_id, "", priority, NULL);
    if (!job) return tb_fail(err, TB_ENOMEM, "out of memory");
    char why[160];
    snprintf(why, sizeof why, "resumed: the restarted study follows %s again", placement);
    int64_t last_step;
    tb_status st = tb_job_record_resume(s->archive, run_id, why, inner, &job->cb, last_epoch, &last_step, err);
    if (st != TB_OK) {
        tb_job_free(job);
        return st;
    }
    job->skip_started = started;
    job->skip_epochs = (int)*last_epoch;
    job->skip_steps = last_step;
    tb_job_run_file(s->archive, run_id, job->run_path, sizeof job->run_path);
    /* the executor is the slurm one (checked above) and not stopping: this does not fail; if it
     * did, the archive run stays open and ends interrupted when the archive closes */
    if ((st = tb_executor_adopt(s->exec, job, placement, err)) != TB_OK) {
        tb_job_free(job);
        return st;
    }
    *out = job;
    return TB_OK;
}

tb_status study_adopt_submission(tb_study *s, submission *u, tb_err *err)
{
    tb_job_callbacks inner = {.user = u, .started = sub_started, .event = sub_event, .finished = sub_finished,
                              .placed = sub_placed};
    tb_job *job;
    int64_t last_epoch;
    tb_status st = adopt_job(s, u->run_id, u->placement, &inner, 0, isfinite(u->started), &job, &last_epoch, err);
    if (st != TB_OK) return st;
    u->job = job;
    u->epoch = (int)last_epoch; /* the journal does not count epochs; the archive does */
    u->curves_from = CURVES_NONE; /* the earlier process saw the first events: read them from the archive */
    return TB_OK;
}

tb_status study_adopt_final(tb_study *s, final_eval *f, tb_err *err)
{
    tb_job_callbacks inner = {.user = s, .started = final_started, .finished = final_finished,
                              .placed = final_placed};
    tb_job *job;
    int64_t last_epoch;
    tb_status st = adopt_job(s, f->run_id, f->placement, &inner, 10, isfinite(f->started), &job, &last_epoch, err);
    if (st != TB_OK) return st;
    f->job = job;
    return TB_OK;
}
