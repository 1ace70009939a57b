/* executor.c: jobs, the local executor (worker threads) and the archive
 * recorder (see executor.h). */
#include "executor.h"

#include <errno.h>
#include <math.h>
#include <omp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "device.h"
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

void tb_job_free(tb_job *job)
{
    if (!job) return;
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
static tb_run_status end_unstarted(tb_job *job)
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

/* A GPU slot: a job that asks for a GPU gets the slot's, and the slot's
 * memory budget unless the job sets a smaller one. */
static tb_status place_on_gpu(tb_config *cfg, const tb_job *job, tb_err *err)
{
    const char *text;
    tb_device d;
    tb_status st = tb_config_string(cfg, "train", "device", "cpu", &text, err);
    if (st == TB_OK) st = tb_device_parse(text, "train.device", &d, err);
    if (st != TB_OK || !d.cuda) return st;
    if ((st = tb_config_set(cfg, "train.device", job->device, err))) return st;
    int64_t own = 0;
    if ((st = tb_config_int(cfg, "train", "gpu_memory_mib", 0, 0, INT64_MAX, &own, err))) return st;
    if (job->gpu_memory_mib > 0 && (own == 0 || own > job->gpu_memory_mib)) {
        char v[32];
        snprintf(v, sizeof v, "%d", job->gpu_memory_mib);
        st = tb_config_set(cfg, "train.gpu_memory_mib", v, err);
    }
    return st;
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

    if (atomic_load(&job->cancel)) return end_unstarted(job); /* cancelled between the queue and here */
    tb_status st = tb_config_load_text(&cfg, job->config_ini, job->id[0] ? job->id : "job", &err);
    if (st == TB_OK && threads > 0) {
        char v[16];
        snprintf(v, sizeof v, "%d", threads);
        st = tb_config_set(cfg, "train.threads", v, &err);
    }
    if (st == TB_OK && job->run_path[0]) st = tb_config_set(cfg, "output.run", job->run_path, &err);
    if (st == TB_OK && job->device[0]) st = place_on_gpu(cfg, job, &err);
    if (st == TB_OK) {
        st = tb_run_configure(&run, cfg, &err);
        configured = 1; /* tb_run_free is due even when configure failed half-way */
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

/* ---- the local executor ---------------------------------------------------------------- */

typedef struct local_executor {
    tb_executor base;
    pthread_mutex_t mu;
    pthread_cond_t work;  /* a job was queued, or stopping */
    pthread_cond_t idle;  /* a job ended */
    pthread_cond_t ended; /* a job was handed to the finisher */
    tb_job *queue;        /* sorted: priority, then submission */
    tb_job *to_end;       /* jobs cancelled while queued, for the finisher thread */
    tb_job **running;     /* slots entries, NULL when free */
    int pending;          /* queued + running + to_end */
    int stopping, workers_done;
    int threads_per_run;
    int gpus, runs_per_gpu, gpu_memory_mib; /* GPU slots (gpus 0: CPU slots) */
    int *gpu_running;                        /* runs on each GPU now */
    pthread_t *workers;
    int n_workers;
    pthread_t finisher;
    int has_finisher;
} local_executor;

/* Each worker owns one entry of running[]. */
typedef struct worker_arg {
    local_executor *ex;
    int slot;
} worker_arg;

static void *worker_main(void *arg)
{
    worker_arg *wa = arg;
    local_executor *ex = wa->ex;
    const int slot = wa->slot;
    free(wa);
    pthread_mutex_lock(&ex->mu);
    for (;;) {
        while (!ex->queue && !ex->stopping) pthread_cond_wait(&ex->work, &ex->mu);
        if (ex->stopping) break;
        tb_job *job = ex->queue;
        ex->queue = job->next;
        job->next = NULL;
        ex->running[slot] = job;
        int gpu = -1;
        if (ex->gpus > 0) { /* the least busy GPU (never more than runs_per_gpu on one: slots = gpus x that) */
            gpu = 0;
            for (int g = 1; g < ex->gpus; g++)
                if (ex->gpu_running[g] < ex->gpu_running[gpu]) gpu = g;
            ex->gpu_running[gpu]++;
            snprintf(job->device, sizeof job->device, "cuda:%d", gpu);
            job->gpu_memory_mib = ex->gpu_memory_mib;
        }
        pthread_mutex_unlock(&ex->mu);

        tb_job_execute(job, ex->threads_per_run);

        pthread_mutex_lock(&ex->mu);
        if (gpu >= 0) ex->gpu_running[gpu]--;
        ex->running[slot] = NULL;
        ex->pending--;
        pthread_cond_broadcast(&ex->idle);
        pthread_mutex_unlock(&ex->mu);
        tb_job_free(job); /* outside the lock: nothing else can reach it any more */
        pthread_mutex_lock(&ex->mu);
    }
    pthread_mutex_unlock(&ex->mu);
    return NULL;
}

/* Runs the finished callbacks of jobs that ended without starting, so that
 * tb_executor_cancel never calls back into its caller (who may hold the
 * locks its callbacks take). */
static void *finisher_main(void *arg)
{
    local_executor *ex = arg;
    pthread_mutex_lock(&ex->mu);
    for (;;) {
        while (!ex->to_end && !ex->workers_done) pthread_cond_wait(&ex->ended, &ex->mu);
        if (!ex->to_end) break; /* workers done and nothing left */
        tb_job *job = ex->to_end;
        ex->to_end = job->next;
        job->next = NULL;
        pthread_mutex_unlock(&ex->mu);
        end_unstarted(job);
        tb_job_free(job);
        pthread_mutex_lock(&ex->mu);
        ex->pending--;
        pthread_cond_broadcast(&ex->idle);
    }
    pthread_mutex_unlock(&ex->mu);
    return NULL;
}

/* Appends job to the finisher's list; mutex held. */
static void hand_to_finisher(local_executor *ex, tb_job *job)
{
    job->next = NULL;
    tb_job **p = &ex->to_end;
    while (*p) p = &(*p)->next;
    *p = job;
    pthread_cond_signal(&ex->ended);
}

static tb_status local_submit(tb_executor *base, tb_job *job, tb_err *err)
{
    local_executor *ex = (local_executor *)base;
    if (!job) return tb_fail(err, TB_EINVAL, "executor: no job to submit");
    pthread_mutex_lock(&ex->mu);
    if (ex->stopping) {
        pthread_mutex_unlock(&ex->mu);
        return tb_fail(err, TB_EINVAL, "executor: job %s submitted while the executor is stopping", job->id);
    }
    job->queued_s = tb_now();
    job->started_s = job->ended_s = 0;
    /* after every job of the same or a lower priority: FIFO within a priority */
    tb_job **p = &ex->queue;
    while (*p && (*p)->priority <= job->priority) p = &(*p)->next;
    job->next = *p;
    *p = job;
    ex->pending++;
    pthread_cond_signal(&ex->work);
    pthread_mutex_unlock(&ex->mu);
    return TB_OK;
}

static void local_cancel(tb_executor *base, tb_job *job, const char *message, int interrupted)
{
    local_executor *ex = (local_executor *)base;
    const int given = message && *message;
    pthread_mutex_lock(&ex->mu);
    for (tb_job **p = &ex->queue; *p; p = &(*p)->next) {
        if (*p != job) continue;
        *p = job->next;
        tb_job_cancel(job, given ? message : "cancelled while queued", interrupted);
        hand_to_finisher(ex, job);
        pthread_mutex_unlock(&ex->mu);
        return;
    }
    for (int i = 0; i < ex->base.slots; i++)
        if (ex->running[i] == job) tb_job_cancel(job, given ? message : "cancelled", interrupted);
    /* not found: it has ended already (or is ending); nothing to do */
    pthread_mutex_unlock(&ex->mu);
}

static int local_pending(tb_executor *base)
{
    local_executor *ex = (local_executor *)base;
    pthread_mutex_lock(&ex->mu);
    int n = ex->pending;
    pthread_mutex_unlock(&ex->mu);
    return n;
}

static void local_drain(tb_executor *base)
{
    local_executor *ex = (local_executor *)base;
    pthread_mutex_lock(&ex->mu);
    while (ex->pending > 0) pthread_cond_wait(&ex->idle, &ex->mu);
    pthread_mutex_unlock(&ex->mu);
}

static void local_free(local_executor *ex)
{
    pthread_cond_destroy(&ex->work);
    pthread_cond_destroy(&ex->idle);
    pthread_cond_destroy(&ex->ended);
    pthread_mutex_destroy(&ex->mu);
    free(ex->running);
    free(ex->gpu_running);
    free(ex->workers);
    free(ex);
}

static void local_destroy(tb_executor *base)
{
    local_executor *ex = (local_executor *)base;
    pthread_mutex_lock(&ex->mu);
    ex->stopping = 1;
    while (ex->queue) {
        tb_job *job = ex->queue;
        ex->queue = job->next;
        tb_job_cancel(job, "interrupted: the executor stopped before the job started", 1);
        hand_to_finisher(ex, job);
    }
    for (int i = 0; i < ex->base.slots; i++) {
        if (!ex->running[i]) continue;
        tb_job_cancel(ex->running[i], "interrupted: the executor stopped while the job was running", 1);
    }
    pthread_cond_broadcast(&ex->work);
    pthread_mutex_unlock(&ex->mu);
    for (int i = 0; i < ex->n_workers; i++) pthread_join(ex->workers[i], NULL);
    pthread_mutex_lock(&ex->mu);
    ex->workers_done = 1;
    pthread_cond_broadcast(&ex->ended);
    pthread_mutex_unlock(&ex->mu);
    if (ex->has_finisher) pthread_join(ex->finisher, NULL);
    local_free(ex);
}

static const tb_executor_ops local_ops = {
    .name = "local",
    .submit = local_submit,
    .cancel = local_cancel,
    .pending = local_pending,
    .drain = local_drain,
    .destroy = local_destroy,
};

tb_status tb_executor_local_create_gpus(int gpus, int runs_per_gpu, int gpu_memory_mib, int threads_per_run,
                                        tb_executor **out, tb_err *err)
{
    *out = NULL;
    if (gpus < 1 || gpus > 64) return tb_fail(err, TB_EINVAL, "executor gpus = %d is outside [1, 64]", gpus);
    if (runs_per_gpu < 1 || runs_per_gpu > 64)
        return tb_fail(err, TB_EINVAL, "executor runs_per_gpu = %d is outside [1, 64]", runs_per_gpu);
    if (gpu_memory_mib < 0)
        return tb_fail(err, TB_EINVAL, "executor gpu_memory_mib = %d must be >= 0 (0: no budget)", gpu_memory_mib);
    char why[512];
    int have = tb_cuda_device_count(why, sizeof why);
    if (have < gpus)
        return tb_fail(err, TB_EINVAL, "executor gpus = %d, but %s", gpus,
                       have ? "this machine has fewer GPUs (see tunebench devices)" : why);
    tb_status st = tb_executor_local_create(gpus * runs_per_gpu, threads_per_run, out, err);
    if (st != TB_OK) return st;
    local_executor *ex = (local_executor *)*out;
    int *load = calloc((size_t)gpus, sizeof *load);
    if (!load) {
        local_destroy(*out);
        *out = NULL;
        return tb_fail(err, TB_ENOMEM, "executor: out of memory");
    }
    pthread_mutex_lock(&ex->mu);
    ex->gpu_running = load;
    ex->gpus = gpus;
    ex->runs_per_gpu = runs_per_gpu;
    ex->gpu_memory_mib = gpu_memory_mib;
    pthread_mutex_unlock(&ex->mu);
    return TB_OK;
}

tb_status tb_executor_local_create(int slots, int threads_per_run, tb_executor **out, tb_err *err)
{
    *out = NULL;
    if (slots < 1 || slots > 1024)
        return tb_fail(err, TB_EINVAL, "executor slots = %d is outside [1, 1024]", slots);
    if (threads_per_run < 0 || threads_per_run > 1024)
        return tb_fail(err, TB_EINVAL, "executor threads_per_run = %d is outside [0, 1024]", threads_per_run);
    if (threads_per_run == 0) {
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        threads_per_run = cores > slots ? (int)(cores / slots) : 1;
    }
    local_executor *ex = calloc(1, sizeof *ex);
    if (!ex) return tb_fail(err, TB_ENOMEM, "executor: out of memory");
    ex->base.ops = &local_ops;
    ex->base.slots = slots;
    ex->threads_per_run = threads_per_run;
    ex->running = calloc((size_t)slots, sizeof *ex->running);
    ex->workers = calloc((size_t)slots, sizeof *ex->workers);
    pthread_mutex_init(&ex->mu, NULL);
    pthread_cond_init(&ex->work, NULL);
    pthread_cond_init(&ex->idle, NULL);
    pthread_cond_init(&ex->ended, NULL);
    if (!ex->running || !ex->workers) {
        local_free(ex);
        return tb_fail(err, TB_ENOMEM, "executor: out of memory");
    }
    int rc = pthread_create(&ex->finisher, NULL, finisher_main, ex);
    ex->has_finisher = rc == 0;
    for (int i = 0; rc == 0 && i < slots; i++) {
        worker_arg *wa = malloc(sizeof *wa);
        if (!wa) {
            rc = ENOMEM;
            break;
        }
        wa->ex = ex;
        wa->slot = i;
        if ((rc = pthread_create(&ex->workers[i], NULL, worker_main, wa)) != 0) {
            free(wa);
            break;
        }
        ex->n_workers++;
    }
    if (rc != 0) {
        local_destroy(&ex->base);
        return tb_fail(err, TB_EIO, "executor: cannot start a worker thread: %s", strerror(rc));
    }
    *out = &ex->base;
    return TB_OK;
}

/* ---- recording a job in an archive ------------------------------------------------------ */

#define FLUSH_EVERY_S 1.0

typedef struct recorder {
    tb_archive_run *run;
    tb_job_callbacks inner;
    int64_t *step;
    double *loss;
    size_t n, cap;
    double last_flush;
    int failed;          /* the archive could not record: the job was cancelled */
    char failure[700];
} recorder;

/* The archive failed: the job stops, and says why. */
static void rec_fail(recorder *r, tb_job *job, const char *what, const tb_err *e)
{
    if (!r->failed) snprintf(r->failure, sizeof r->failure, "archive: %s: %s", what, e->msg);
    r->failed = 1;
    if (job) tb_job_cancel(job, r->failure, 0);
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

static void rec_finished(void *user, tb_job *job, tb_run_status status, double val_accuracy, double test_accuracy,
                         const char *message)
{
    recorder *r = user;
    rec_flush(r, job);
    char msg[800];
    snprintf(msg, sizeof msg, "%s", message ? message : "");
    if (r->failed) {
        /* a run whose epochs the archive could not keep did not finish as far as anyone can tell */
        if (status == TB_RUN_FINISHED) status = TB_RUN_CANCELLED;
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
    int n = snprintf(out, cap, "%s/runs/%s.run.h5", tb_archive_dir(a), run_id);
    return n < 0 || (size_t)n >= cap ? -1 : 0;
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
    return TB_OK;
}
