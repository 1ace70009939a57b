/* executor.h: where jobs (run/job.h) execute. Executors are a function table
 * (tb_executor_ops), like backends:
 *   - local: N slots, each a worker thread running the job in this process
 *     (tb_job_execute), with the CPU cores divided among the slots so
 *     concurrent runs do not oversubscribe OpenMP (which collapses ~15x);
 *   - process and cluster (Slurm) executors run `tunebench run-job JOB.ini`
 *     and parse its event lines back into the same callbacks (tb_job_line_parse).
 * Ordering: jobs start in order of priority (lower first), then submission.
 * The local executor never calls back from inside tb_executor_cancel or
 * submit: a job cancelled while queued is handed to its own finisher thread,
 * so the caller may hold locks its callbacks take. */
#ifndef TB_EXECUTOR_H
#define TB_EXECUTOR_H

#include "base/common.h"
#include "run/job.h"

typedef struct tb_executor tb_executor;

typedef struct tb_executor_ops {
    const char *name;
    /* queues job; the executor owns it until finished has been called, then frees it */
    tb_status (*submit)(tb_executor *ex, tb_job *job, tb_err *err);
    /* asks the job to stop (message: its finished message; NULL for a default):
     * a running job stops before its next batch; a queued job leaves the queue
     * at once and ends cancelled (interrupted when `interrupted` is non-zero),
     * its finished callback run from another of the executor's threads. A job
     * the executor no longer knows is left alone (not dereferenced). */
    void (*cancel)(tb_executor *ex, tb_job *job, const char *message, int interrupted);
    /* jobs queued or running */
    int (*pending)(tb_executor *ex);
    /* blocks until no job is queued or running */
    void (*drain)(tb_executor *ex);
    /* stops: running jobs are cancelled and end "interrupted", queued ones too;
     * waits for the workers and frees ex */
    void (*destroy)(tb_executor *ex);
} tb_executor_ops;

struct tb_executor {
    const tb_executor_ops *ops;
    int slots;   /* runs at once */
};

/* The local executor: `slots` worker threads (>= 1); each run gets
 * threads_per_run CPU threads (0: the machine's cores divided by slots, at
 * least 1). cancel and destroy take a job still pending (finished not yet
 * called); a job no longer known is ignored without being dereferenced. */
tb_status tb_executor_local_create(int slots, int threads_per_run, tb_executor **out, tb_err *err);

/* GPU slots: runs_per_gpu slots on each of GPUs 0..gpus-1 (a starting run
 * takes the least busy GPU), so one run per GPU by default, or several small ones
 * (SqueezeNet) sharing a GPU, each within gpu_memory_mib (0: no budget; a
 * run that needs more ends out-of-memory, the others go on). A job whose
 * train.device names a GPU runs on its slot's; a CPU job stays on the CPU.
 * threads_per_run: CPU threads for each run's data loading (0: the cores
 * divided by the slots). */
tb_status tb_executor_local_create_gpus(int gpus, int runs_per_gpu, int gpu_memory_mib, int threads_per_run,
                                        tb_executor **out, tb_err *err);

static inline tb_status tb_executor_submit(tb_executor *ex, tb_job *job, tb_err *err)
{
    return ex->ops->submit(ex, job, err);
}
/* The job ends "cancelled" (the owner withdrew it) ... */
static inline void tb_executor_cancel(tb_executor *ex, tb_job *job, const char *message)
{
    ex->ops->cancel(ex, job, message, 0);
}
/* ... or "interrupted" (stopped through no fault of its own: a shutdown, a signal). */
static inline void tb_executor_interrupt(tb_executor *ex, tb_job *job, const char *message)
{
    ex->ops->cancel(ex, job, message, 1);
}
static inline int tb_executor_pending(tb_executor *ex) { return ex->ops->pending(ex); }
static inline void tb_executor_drain(tb_executor *ex) { ex->ops->drain(ex); }
static inline void tb_executor_destroy(tb_executor *ex)
{
    if (ex) ex->ops->destroy(ex);
}

#endif
