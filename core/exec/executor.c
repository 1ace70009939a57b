/* executor.c: the slot queue every executor shares (see executor.h): worker
 * threads, one per slot, each running its job through the executor's runner
 * (in this thread, or a child process, or a Slurm job: exec_internal.h). */
#include "executor.h"

#include <errno.h>
#include <limits.h>
#include <omp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/device.h"
#include "exec_internal.h"

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
    tb_job_runner runner;  /* how a slot runs its job; run NULL: tb_job_execute here */
    tb_executor_ops ops;   /* the shared ops, named after the runner */
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

        if (ex->runner.run) ex->runner.run(ex->runner.ctx, job, ex->threads_per_run);
        else tb_job_execute(job, ex->threads_per_run);

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
        tb_job_end_unstarted(job);
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
    if (ex->runner.free) ex->runner.free(ex->runner.ctx);
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

static tb_status local_adopt(tb_executor *base, tb_job *job, const char *where, tb_err *err)
{
    local_executor *ex = (local_executor *)base;
    if (!ex->runner.can_adopt || !ex->runner.can_adopt(ex->runner.ctx, where))
        return tb_fail(err, TB_EIO, "the %s executor cannot take over %s", base->ops->name, where);
    tb_copy_str(job->placement, sizeof job->placement, where);
    /* a job already running elsewhere goes before everything queued */
    job->priority = INT_MIN;
    return local_submit(base, job, err);
}

static const tb_executor_ops local_ops = {
    .name = "local",
    .submit = local_submit,
    .cancel = local_cancel,
    .pending = local_pending,
    .drain = local_drain,
    .destroy = local_destroy,
    .adopt = local_adopt,
};

tb_status tb_executor_local_create_gpus(int gpus, int runs_per_gpu, int gpu_memory_mib, int threads_per_run,
                                        tb_executor **out, tb_err *err)
{
    return tb_executor_create_gpus_with_runner(gpus, runs_per_gpu, gpu_memory_mib, threads_per_run, NULL, out, err);
}

tb_status tb_executor_create_gpus_with_runner(int gpus, int runs_per_gpu, int gpu_memory_mib, int threads_per_run,
                                              const tb_job_runner *runner, tb_executor **out, tb_err *err)
{
    *out = NULL;
    tb_status bad = TB_OK;
    char why[512];
    int have = 0;
    if (gpus < 1 || gpus > 64) bad = tb_fail(err, TB_EINVAL, "executor gpus = %d is outside [1, 64]", gpus);
    else if (runs_per_gpu < 1 || runs_per_gpu > 64)
        bad = tb_fail(err, TB_EINVAL, "executor runs_per_gpu = %d is outside [1, 64]", runs_per_gpu);
    else if (gpu_memory_mib < 0)
        bad = tb_fail(err, TB_EINVAL, "executor gpu_memory_mib = %d must be >= 0 (0: no budget)", gpu_memory_mib);
    else if ((have = tb_cuda_device_count(why, sizeof why)) < gpus)
        bad = tb_fail(err, TB_EINVAL, "executor gpus = %d, but %s", gpus,
                      have ? "this machine has fewer GPUs (see tunebench devices)" : why);
    if (bad != TB_OK) {
        if (runner && runner->free) runner->free(runner->ctx);
        return bad;
    }
    tb_status st = tb_executor_create_with_runner(gpus * runs_per_gpu, threads_per_run, runner, out, err);
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
    return tb_executor_create_with_runner(slots, threads_per_run, NULL, out, err);
}

tb_status tb_executor_create_with_runner(int slots, int threads_per_run, const tb_job_runner *runner,
                                         tb_executor **out, tb_err *err)
{
    *out = NULL;
    if (slots < 1 || slots > 1024 || threads_per_run < 0 || threads_per_run > 1024) {
        if (runner && runner->free) runner->free(runner->ctx);
        if (slots < 1 || slots > 1024)
            return tb_fail(err, TB_EINVAL, "executor slots = %d is outside [1, 1024]", slots);
        return tb_fail(err, TB_EINVAL, "executor threads_per_run = %d is outside [0, 1024]", threads_per_run);
    }
    if (threads_per_run == 0) {
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        threads_per_run = cores > slots ? (int)(cores / slots) : 1;
    }
    local_executor *ex = calloc(1, sizeof *ex);
    if (!ex) {
        if (runner && runner->free) runner->free(runner->ctx);
        return tb_fail(err, TB_ENOMEM, "executor: out of memory");
    }
    ex->ops = local_ops;
    if (runner) {
        ex->runner = *runner;
        ex->ops.name = runner->name;
    }
    ex->base.ops = &ex->ops;
    ex->base.slots = slots;
    ex->threads_per_run = threads_per_run;
    ex->running = calloc((size_t)slots, sizeof *ex->running);
    ex->workers = calloc((size_t)slots, sizeof *ex->workers);
    pthread_mutex_init(&ex->mu, NULL);
    pthread_cond_init(&ex->work, NULL);
    pthread_cond_init(&ex->idle, NULL);
    pthread_cond_init(&ex->ended, NULL);
    if (!ex->running || !ex->workers) {
        local_free(ex); /* frees the runner's context too: it is the executor's from here */
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


/* ---- choosing an executor ------------------------------------------------------------------ */

const char *const tb_executor_kind_names[TB_EXECUTOR_KINDS] = {"threads", "process", "slurm"};

int tb_executor_kind_parse(const char *name)
{
    for (int k = 0; k < TB_EXECUTOR_KINDS; k++)
        if (name && strcmp(name, tb_executor_kind_names[k]) == 0) return k;
    return -1;
}

static char kind_choices[64];
static void make_kind_choices(void)
{
    size_t n = 0;
    for (int k = 0; k < TB_EXECUTOR_KINDS; k++)
        n += (size_t)snprintf(kind_choices + n, sizeof kind_choices - n, "%s%s", k ? "|" : "", tb_executor_kind_names[k]);
}

const char *tb_executor_kind_choices(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, make_kind_choices);
    return kind_choices;
}

tb_status tb_executor_create(const tb_executor_opts *o, tb_executor **out, tb_err *err)
{
    *out = NULL;
    switch (o->kind) {
    case TB_EXECUTOR_THREADS:
        return o->gpus > 0 ? tb_executor_local_create_gpus(o->gpus, o->runs_per_gpu, o->gpu_memory_mib,
                                                           o->threads_per_run, out, err)
                           : tb_executor_local_create(o->slots, o->threads_per_run, out, err);
    case TB_EXECUTOR_PROCESS: return tb_executor_process_create(o, out, err);
    case TB_EXECUTOR_SLURM: return tb_executor_slurm_create(o, out, err);
    default: return tb_fail(err, TB_EINVAL, "executor kind %d is not one of %s", (int)o->kind, tb_executor_kind_choices());
    }
}
