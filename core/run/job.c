/* job.c: jobs, running one in the calling thread, and the event-line protocol
 * of `tunebench run-job` (see job.h). */
#include "job.h"

#include <errno.h>
#include <math.h>
#include <omp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/config.h"
#include "engine/device.h"
#include "run.h"

/* cancel_message is written by whoever cancels (any thread) and read when the
 * job ends; one lock for all jobs is enough, it is held for a copy. */
static pthread_mutex_t message_mu = PTHREAD_MUTEX_INITIALIZER;

/* ---- jobs ------------------------------------------------------------------------------ */

tb_job *tb_job_new(const char *id, const char *config_ini, int priority, const tb_job_callbacks *cb)
{
    tb_job *job = calloc(1, sizeof *job);
    if (!job) return NULL;
    job->config_ini = strdup(config_ini ? config_ini : "");
    if (!job->config_ini) {
        free(job);
        return NULL;
    }
    snprintf(job->id, sizeof job->id, "%s", id ? id : "");
    job->priority = priority;
    if (cb) job->cb = *cb;
    atomic_init(&job->cancel, 0);
    atomic_init(&job->interrupted, 0);
    return job;
}

tb_job *tb_job_new_parsed(const char *id, const char *config_ini, tb_config *cfg, const tb_run_config *conf,
                          int priority, const tb_job_callbacks *cb)
{
    tb_job *job = tb_job_new(id, config_ini, priority, cb);
    if (!job) {
        tb_config_free(cfg);
        return NULL;
    }
    /* named as a job parsed from its text is (tb_job_create, tb_job_execute):
     * the run file's /config source */
    tb_config_set_path(cfg, job->id[0] ? job->id : "job");
    job->cfg = cfg;
    job->conf = *conf;
    job->conf.cfg = cfg;
    return job;
}

tb_status tb_job_create(tb_job **out, const char *id, const char *config_ini, int priority,
                        const tb_job_callbacks *cb, tb_err *err)
{
    *out = NULL;
    tb_config *cfg = NULL;
    tb_run_config conf;
    tb_status st = tb_config_load_text(&cfg, config_ini ? config_ini : "", id && id[0] ? id : "job", err);
    if (st == TB_OK && (st = tb_run_config_parse(&conf, cfg, err)) == TB_OK &&
        !(*out = tb_job_new_parsed(id, config_ini, cfg, &conf, priority, cb)))
        return tb_fail(err, TB_ENOMEM, "out of memory");
    if (st != TB_OK) tb_config_free(cfg);
    return st;
}

void tb_job_free(tb_job *job)
{
    if (!job) return;
    tb_config_free(job->cfg);
    free(job->config_ini);
    free(job);
}

void tb_job_cancel(tb_job *job, const char *message, int interrupted)
{
    pthread_mutex_lock(&message_mu);
    if (!job->cancel_message[0] && message && *message)
        snprintf(job->cancel_message, sizeof job->cancel_message, "%s", message);
    /* before the cancel flag: a job that sees it cancelled must see why */
    if (interrupted) atomic_store(&job->interrupted, 1);
    atomic_store(&job->cancel, 1);
    pthread_mutex_unlock(&message_mu);
}

static void copy_cancel_message(tb_job *job, char *out, size_t cap, const char *fallback)
{
    pthread_mutex_lock(&message_mu);
    snprintf(out, cap, "%s", job->cancel_message[0] ? job->cancel_message : fallback);
    pthread_mutex_unlock(&message_mu);
}

/* The status a job ends with when the run returned st. One rule for every
 * path. training: tb_train had begun; before it, an input that cannot be read
 * (the data, model.init_from) is the configuration's problem, after it an I/O
 * error (the run file) is not the run's. */
static tb_run_status status_of(tb_status st, tb_job *job, int training)
{
    switch (st) {
    case TB_OK: return TB_RUN_FINISHED;
    case TB_EINVAL:
    case TB_EFORMAT: return TB_RUN_REJECTED;
    case TB_EIO: return training ? TB_RUN_INTERRUPTED : TB_RUN_REJECTED;
    case TB_ECANCELLED: return atomic_load(&job->interrupted) ? TB_RUN_INTERRUPTED : TB_RUN_CANCELLED;
    case TB_ETIMEOUT: return TB_RUN_CANCELLED;
    case TB_EDIVERGED: return TB_RUN_DIVERGED;
    default: return TB_RUN_INTERRUPTED; /* out of memory, or anything else of the run's own */
    }
}

/* Ends a job that never started training (cancelled in the queue, or at
 * shutdown); returns the status it ended with. */
tb_run_status tb_job_end_unstarted(tb_job *job)
{
    char msg[sizeof job->cancel_message];
    tb_run_status status = status_of(TB_ECANCELLED, job, 0);
    copy_cancel_message(job, msg, sizeof msg,
                        status == TB_RUN_INTERRUPTED ? "interrupted before it started" : "cancelled");
    job->ended_s = tb_now();
    if (job->cb.finished) job->cb.finished(job->cb.user, job, status, NAN, NAN, msg);
    return status;
}

/* tb_train's listener: forwards batch and epoch events; a non-zero answer cancels. */
static void forward_event(void *user, const tb_train_event *ev)
{
    tb_job *job = user;
    if ((ev->kind != TB_EVENT_BATCH && ev->kind != TB_EVENT_EPOCH) || !job->cb.event) return;
    if (job->cb.event(job->cb.user, job, ev) != 0) {
        char msg[96];
        snprintf(msg, sizeof msg, "cancelled by the job's owner at epoch %d", ev->epoch);
        tb_job_cancel(job, msg, 0);
    }
}

tb_run_status tb_job_execute(tb_job *job, int threads)
{
    tb_err err = {{0}};
    tb_config *cfg = NULL;
    tb_run run;
    memset(&run, 0, sizeof run);
    int configured = 0, training = 0;
    char message[512] = "";
    double val = NAN, test = NAN;

    if (atomic_load(&job->cancel)) return tb_job_end_unstarted(job); /* cancelled between the queue and here */
    tb_status st = TB_OK;
    if (!job->cfg) { /* a job made from text alone (tb_job_new): parsed here, once */
        st = tb_config_load_text(&cfg, job->config_ini, job->id[0] ? job->id : "job", &err);
        if (st == TB_OK && (st = tb_run_config_parse(&job->conf, cfg, &err)) == TB_OK) {
            job->cfg = cfg;
            cfg = NULL;
        }
    }
    if (st == TB_OK) {
        tb_run_placement where = {.threads = threads, .device = job->device, .gpu_memory_mib = job->gpu_memory_mib,
                                  .run_path = job->run_path, .cache_dir = job->cache_dir};
        st = tb_run_configure_parsed(&run, &job->conf, &where, &err);
        configured = 1; /* tb_run_free is due even when configure failed half-way */
        if (st == TB_OK) st = tb_run_check_outputs(&run, NULL, 0, &err); /* before the data loads */
    }
    if (st != TB_OK) goto done;
    /* Started before the data loads: preparing is the job's work, not queueing. */
    job->threads = run.threads > 0 ? run.threads : (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (job->threads < 1) job->threads = 1;
    /* OpenMP's thread count is per thread: the data preparation's loops in
     * this worker use the run's share of the cores too, not the default (all) */
    omp_set_num_threads(job->threads);
    job->started_s = tb_now();
    if (job->cb.started) job->cb.started(job->cb.user, job);
    if ((st = tb_run_prepare(&run, &err)) != TB_OK) goto done;
    job->threads = run.be->threads;

    tb_train_hooks hooks = {0};
    tb_train_hooks_add(&hooks, forward_event, job);
    hooks.cancel = &job->cancel;
    training = 1;
    st = tb_run_execute(&run, &hooks, &err);
    val = run.result.final_val_accuracy;
    test = run.tested ? run.test.accuracy : NAN;
done:;
    tb_run_status status = status_of(st, job, training);
    if (st == TB_ECANCELLED) copy_cancel_message(job, message, sizeof message, err.msg);
    else if (st == TB_ETIMEOUT) snprintf(message, sizeof message, "time limit reached");
    else if (st != TB_OK) snprintf(message, sizeof message, "%s", err.msg);
    if (configured) tb_run_free(&run);
    tb_config_free(cfg);
    job->ended_s = tb_now();
    if (job->cb.finished) job->cb.finished(job->cb.user, job, status, val, test, message);
    return status;
}

/* ---- event lines --------------------------------------------------------------------- */

/* The shortest %g text that reads back to v exactly ("nan", "inf" as printf writes them). */
static void fmt_num(char out[32], double v)
{
    if (!isfinite(v)) {
        snprintf(out, 32, "%s", isnan(v) ? "nan" : v > 0 ? "inf" : "-inf");
        return;
    }
    for (int prec = 6; prec <= 17; prec++) {
        snprintf(out, 32, "%.*g", prec, v);
        if (strtod(out, NULL) == v) return;
    }
}

/* snprintf's length clamped to what was written. */
static int clamp_len(int n, size_t cap)
{
    if (n < 0) return 0;
    if (cap == 0) return 0;
    return (size_t)n >= cap ? (int)cap - 1 : n;
}

int tb_job_event_format(char *out, size_t cap, const tb_train_event *ev)
{
    char a[32], b[32], c[32], d[32], e[32], f[32];
    int n;
    if (ev->kind == TB_EVENT_BATCH) {
        fmt_num(a, ev->batch_loss);
        fmt_num(b, ev->elapsed_s);
        n = snprintf(out, cap, "event batch epoch=%d batch=%d/%d step=%lld loss=%s elapsed=%s", ev->epoch, ev->batch,
                     ev->batches_per_epoch, (long long)ev->step, a, b);
    } else { /* TB_EVENT_EPOCH */
        fmt_num(a, ev->epoch_loss);
        fmt_num(b, ev->val_loss);
        fmt_num(c, ev->val_accuracy);
        fmt_num(d, ev->epoch_s);
        fmt_num(e, ev->elapsed_s);
        fmt_num(f, ev->images_per_s);
        n = snprintf(out, cap,
                     "event epoch epoch=%d loss=%s val_loss=%s val_accuracy=%s seconds=%s step=%lld batches=%d "
                     "elapsed=%s images_per_s=%s",
                     ev->epoch, a, b, c, d, (long long)ev->step, ev->batches_per_epoch, e, f);
    }
    return clamp_len(n, cap);
}

int tb_job_started_format(char *out, size_t cap, int threads)
{
    return clamp_len(snprintf(out, cap, "event started threads=%d", threads), cap);
}

int tb_job_finished_format(char *out, size_t cap, tb_run_status status, double val_accuracy, double test_accuracy,
                           const char *message)
{
    char a[32], b[32];
    fmt_num(a, val_accuracy);
    fmt_num(b, test_accuracy);
    int n = snprintf(out, cap, "event finished status=%s val_accuracy=%s test_accuracy=%s message=%s",
                     tb_run_status_name(status), a, b, message ? message : "");
    n = clamp_len(n, cap);
    for (int i = 0; i < n; i++)
        if (out[i] == '\n' || out[i] == '\r') out[i] = ' ';
    return n;
}

/* The value of "name=" in a line of blank-separated fields, copied into val. */
static int field(const char *line, const char *name, char *val, size_t cap)
{
    size_t len = strlen(name);
    for (const char *p = line; (p = strstr(p, name)) != NULL; p += len) {
        if ((p != line && p[-1] != ' ') || p[len] != '=') continue;
        const char *v = p + len + 1, *end = strchr(v, ' ');
        size_t n = end ? (size_t)(end - v) : strlen(v);
        if (n == 0 || n >= cap) return -1;
        memcpy(val, v, n);
        val[n] = '\0';
        return 0;
    }
    return -1;
}

static int field_num(const char *line, const char *name, double *out)
{
    char v[64], *end;
    if (field(line, name, v, sizeof v) != 0) return -1;
    errno = 0;
    *out = strtod(v, &end);
    return (end == v || *end) ? -1 : 0;
}

static int field_int(const char *line, const char *name, long long lo, long long hi, long long *out)
{
    char v[64], *end;
    if (field(line, name, v, sizeof v) != 0) return -1;
    errno = 0;
    *out = strtoll(v, &end, 10);
    return (errno || end == v || *end || *out < lo || *out > hi) ? -1 : 0;
}

/* No caller here yet: for the process and Slurm executors (executor.h). */
int tb_job_line_parse(const char *line, tb_job_line *out)
{
    memset(out, 0, sizeof *out);
    out->ev.batch_loss = out->ev.epoch_loss = out->ev.val_loss = out->ev.val_accuracy = NAN;
    out->val_accuracy = out->test_accuracy = NAN;
    char kind[16];
    int k = 0;
    if (sscanf(line, "event %15s%n", kind, &k) != 1) return -1;
    const char *rest = line + k;
    long long i1, i2;
    if (!strcmp(kind, "started")) {
        out->kind = TB_JOB_LINE_STARTED;
        if (field_int(rest, "threads", 0, 1 << 20, &i1)) return -1;
        out->threads = (int)i1;
        return 0;
    }
    if (!strcmp(kind, "batch")) {
        out->kind = TB_JOB_LINE_BATCH;
        out->ev.kind = TB_EVENT_BATCH;
        char v[64];
        int b, n, used = 0;
        if (field_int(rest, "epoch", 1, INT32_MAX, &i1) || field(rest, "batch", v, sizeof v) ||
            sscanf(v, "%d/%d%n", &b, &n, &used) != 2 || v[used] || b < 1 || n < b ||
            field_int(rest, "step", 0, INT64_MAX, &i2) || field_num(rest, "loss", &out->ev.batch_loss))
            return -1;
        out->ev.epoch = (int)i1;
        out->ev.batch = b;
        out->ev.batches_per_epoch = n;
        out->ev.step = i2;
        field_num(rest, "elapsed", &out->ev.elapsed_s); /* optional */
        return 0;
    }
    if (!strcmp(kind, "epoch")) {
        out->kind = TB_JOB_LINE_EPOCH;
        out->ev.kind = TB_EVENT_EPOCH;
        if (field_int(rest, "epoch", 1, INT32_MAX, &i1) || field_num(rest, "loss", &out->ev.epoch_loss) ||
            field_num(rest, "val_loss", &out->ev.val_loss) || field_num(rest, "val_accuracy", &out->ev.val_accuracy) ||
            field_num(rest, "seconds", &out->ev.epoch_s))
            return -1;
        out->ev.epoch = (int)i1;
        if (field_int(rest, "step", 0, INT64_MAX, &i2) == 0) out->ev.step = i2;
        if (field_int(rest, "batches", 0, INT32_MAX, &i2) == 0) out->ev.batch = out->ev.batches_per_epoch = (int)i2;
        field_num(rest, "elapsed", &out->ev.elapsed_s);
        field_num(rest, "images_per_s", &out->ev.images_per_s);
        return 0;
    }
    if (!strcmp(kind, "finished")) {
        out->kind = TB_JOB_LINE_FINISHED;
        char v[32];
        const char *m = strstr(rest, " message=");
        if (field(rest, "status", v, sizeof v) || tb_run_status_parse(v, &out->status) ||
            !tb_run_status_is_final(out->status) || field_num(rest, "val_accuracy", &out->val_accuracy) ||
            field_num(rest, "test_accuracy", &out->test_accuracy) || !m)
            return -1;
        snprintf(out->message, sizeof out->message, "%s", m + 9);
        size_t n = strlen(out->message);
        while (n && (out->message[n - 1] == '\n' || out->message[n - 1] == '\r')) out->message[--n] = '\0';
        return 0;
    }
    return -1;
}

