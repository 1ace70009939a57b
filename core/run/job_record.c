/* job_record.c: recording a job's events in an archive (see job.h). */
#include "job.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/config.h"

/* ---- recording a job in an archive ------------------------------------------------------ */

#define FLUSH_EVERY_S 1.0

typedef struct recorder {
    tb_archive_run *run;
    tb_job_callbacks inner;
    int64_t *step;
    double *loss;
    size_t n, cap;
    double last_flush;
    int failed;          /* the archive could not record: the job was stopped (interrupted) */
    char failure[700];
} recorder;

/* The archive failed: the job stops, and says why. Interrupted, not
 * cancelled: the failure is the system's (a full disk), not the owner's
 * choice, so a participant gets the time back. */
static void rec_fail(recorder *r, tb_job *job, const char *what, const tb_err *e)
{
    if (!r->failed) snprintf(r->failure, sizeof r->failure, "archive: %s: %s", what, e->msg);
    r->failed = 1;
    if (job) tb_job_cancel(job, r->failure, 1);
}

static void rec_flush(recorder *r, tb_job *job)
{
    if (r->n == 0 || r->failed) {
        r->n = 0;
        return;
    }
    tb_err e;
    if (tb_archive_run_batches(r->run, r->n, r->step, r->loss, &e) != TB_OK) rec_fail(r, job, "batch losses", &e);
    r->n = 0;
    r->last_flush = tb_now();
}

static void rec_started(void *user, tb_job *job)
{
    recorder *r = user;
    tb_err e;
    r->last_flush = tb_now();
    if (tb_archive_run_status(r->run, TB_RUN_TRAINING, NULL, &e) != TB_OK) rec_fail(r, job, "status", &e);
    if (r->inner.started) r->inner.started(r->inner.user, job);
}

static int rec_event(void *user, tb_job *job, const tb_train_event *ev)
{
    recorder *r = user;
    if (ev->kind == TB_EVENT_BATCH) {
        if (r->n == r->cap) {
            size_t cap = r->cap ? 2 * r->cap : 256;
            int64_t *s = realloc(r->step, cap * sizeof *s);
            if (s) r->step = s;
            double *l = s ? realloc(r->loss, cap * sizeof *l) : NULL;
            if (l) r->loss = l;
            if (!s || !l) {
                tb_err e;
                tb_fail(&e, TB_ENOMEM, "out of memory");
                rec_fail(r, job, "batch losses", &e);
                return 1;
            }
            r->cap = cap;
        }
        r->step[r->n] = ev->step;
        r->loss[r->n] = ev->batch_loss;
        r->n++;
        if (tb_now() - r->last_flush >= FLUSH_EVERY_S) rec_flush(r, job);
        if (r->failed) return 1;
        return r->inner.event ? r->inner.event(r->inner.user, job, ev) : 0;
    }
    if (ev->kind != TB_EVENT_EPOCH) return 0;
    rec_flush(r, job);
    if (r->failed) return 1;
    tb_err e;
    if (tb_archive_run_epoch(r->run, ev->epoch, ev->epoch_loss, ev->val_loss, ev->val_accuracy, ev->epoch_s, &e) !=
        TB_OK) {
        rec_fail(r, job, "epoch", &e);
        return 1; /* inner never sees an epoch that is not durable */
    }
    return r->inner.event ? r->inner.event(r->inner.user, job, ev) : 0;
}

static void rec_placed(void *user, tb_job *job)
{
    recorder *r = user;
    if (r->inner.placed) r->inner.placed(r->inner.user, job);
}

static void rec_finished(void *user, tb_job *job, tb_run_status status, double val_accuracy, double test_accuracy,
                         const char *message)
{
    recorder *r = user;
    rec_flush(r, job);
    char msg[800];
    snprintf(msg, sizeof msg, "%s", message ? message : "");
    if (r->failed) {
        /* a run whose epochs the archive could not keep did not finish as far as anyone can tell */
        if (status == TB_RUN_FINISHED || status == TB_RUN_CANCELLED) status = TB_RUN_INTERRUPTED;
        if (!strstr(msg, r->failure)) snprintf(msg, sizeof msg, "%s", r->failure);
    }
    tb_err e;
    if (tb_archive_run_finish(r->run, status, test_accuracy, msg, &e) != TB_OK) {
        size_t n = strlen(msg);
        snprintf(msg + n, sizeof msg - n, "%s(archive: the end was not recorded: %s)", n ? " " : "", e.msg);
    }
    tb_job_callbacks inner = r->inner;
    free(r->step);
    free(r->loss);
    free(r);
    if (inner.finished) inner.finished(inner.user, job, status, val_accuracy, test_accuracy, msg);
}

int tb_job_run_file(const tb_archive *a, const char *run_id, char *out, size_t cap)
{
    return tb_archive_run_path(out, cap, tb_archive_dir(a), run_id, ".run.h5");
}

tb_status tb_job_record(tb_archive *a, const char *kind, const char *participant, const char *config_ini,
                        const tb_job_callbacks *inner, tb_job_callbacks *out, char run_id[TB_ARCHIVE_ID_MAX + 1],
                        char **job_ini, tb_err *err)
{
    if (job_ini) *job_ini = NULL;
    memset(out, 0, sizeof *out);
    run_id[0] = '\0';
    tb_config *cfg = NULL;
    tb_status st;
    /* the text is checked before the archive hears of it only when it is rewritten */
    if (job_ini && (st = tb_config_load_text(&cfg, config_ini ? config_ini : "", "job", err)) != TB_OK) return st;
    recorder *r = calloc(1, sizeof *r);
    if (!r) {
        tb_config_free(cfg);
        return tb_fail(err, TB_ENOMEM, "out of memory");
    }
    if (inner) r->inner = *inner;
    if ((st = tb_archive_begin_run(a, NULL, kind, participant, config_ini, &r->run, err)) != TB_OK) {
        tb_config_free(cfg);
        free(r);
        return st;
    }
    const char *id = tb_archive_run_id(r->run);
    tb_copy_str(run_id, TB_ARCHIVE_ID_MAX + 1, id);
    char path[TB_JOB_PATH_MAX];
    char *text = NULL;
    if (tb_job_run_file(a, id, path, sizeof path) != 0)
        st = tb_fail(err, TB_EINVAL, "archive %s: the run file path of run %s is longer than %d characters",
                     tb_archive_dir(a), id, TB_JOB_PATH_MAX - 1);
    if (st == TB_OK && cfg && (st = tb_config_set(cfg, "output.run", path, err)) == TB_OK &&
        !(text = tb_config_to_ini(cfg)))
        st = tb_fail(err, TB_ENOMEM, "out of memory");
    tb_config_free(cfg);
    if (st != TB_OK) {
        tb_err e2;
        tb_archive_run_finish(r->run, TB_RUN_REJECTED, NAN, "the configuration could not be prepared for the executor",
                              &e2);
        free(r);
        run_id[0] = '\0';
        return st;
    }
    if (job_ini) *job_ini = text;
    out->user = r;
    out->started = rec_started;
    out->event = rec_event;
    out->finished = rec_finished;
    out->placed = rec_placed;
    return TB_OK;
}


tb_status tb_job_record_resume(tb_archive *a, const char *run_id, const char *why, const tb_job_callbacks *inner,
                               tb_job_callbacks *out, int64_t *last_epoch, int64_t *last_step, tb_err *err)
{
    memset(out, 0, sizeof *out);
    recorder *r = calloc(1, sizeof *r);
    if (!r) return tb_fail(err, TB_ENOMEM, "out of memory");
    if (inner) r->inner = *inner;
    tb_status st = tb_archive_resume_run(a, run_id, why, &r->run, last_epoch, last_step, err);
    if (!r->run) {
        free(r);
        return st;
    }
    out->user = r;
    out->started = rec_started;
    out->event = rec_event;
    out->finished = rec_finished;
    out->placed = rec_placed;
    return TB_OK; /* the run is open even when the index could not be rewritten (the journal has it) */
}
