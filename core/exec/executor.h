/* executor.h: where jobs (run/job.h) execute. Executors are a function table
 * (tb_executor_ops), like backends. Every kind keeps the same queue: N slots,
 * jobs start in order of priority (lower first), then submission; what
 * differs is how a slot runs its job (a runner, exec_internal.h):
 *   - threads: the job in a worker thread of this process (tb_job_execute),
 *     with the CPU cores divided among the slots so concurrent runs do not
 *     oversubscribe OpenMP (which collapses ~15x);
 *   - process: `tunebench run-job JOB.ini` in a child process per run, its
 *     event lines read back over a pipe (tb_job_line_parse) into the same
 *     callbacks; a child that dies ends its run interrupted and the others go
 *     on; a GPU fault dies with its process (exec_process.c);
 *   - slurm: the same command as a Slurm batch job, its event lines followed in
 *     a file of the spool directory on the shared file system (exec_slurm.c).
 * The executor never calls back from inside tb_executor_cancel or submit: a
 * job cancelled while queued is handed to its own finisher thread, so the
 * caller may hold locks its callbacks take. */
#ifndef TB_EXECUTOR_H
#define TB_EXECUTOR_H

#include "base/common.h"
#include "base/config.h"
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
    /* takes over a job that an earlier process placed and lost (a study
     * restarted after a crash): where is what the job's placed callback was
     * told ("slurm:1234"). The job then runs as if submitted here, from the
     * event it had reached (the owner skips what it recorded already). NULL
     * when the executor has no such jobs; TB_EIO when the placement is gone
     * (the job ended and was forgotten), and the job is not taken. */
    tb_status (*adopt)(tb_executor *ex, tb_job *job, const char *where, tb_err *err);
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

/* ---- choosing an executor ------------------------------------------------------------- */

typedef enum tb_executor_kind {
    TB_EXECUTOR_THREADS = 0,
    TB_EXECUTOR_PROCESS,
    TB_EXECUTOR_SLURM,
    TB_EXECUTOR_KINDS
} tb_executor_kind;

/* "threads", "process", "slurm": the names configurations and flags use */
extern const char *const tb_executor_kind_names[TB_EXECUTOR_KINDS];
/* the kind called name, or -1 */
int tb_executor_kind_parse(const char *name);
/* "threads|process|slurm", for messages */
const char *tb_executor_kind_choices(void);

/* The [slurm] section (docs/cluster.md): what every job asks of the cluster. */
typedef struct tb_slurm_settings {
    char partition[64];   /* --partition ("": the cluster's default) */
    char account[64];     /* --account ("": none) */
    char qos[64];         /* --qos ("": none) */
    int gpus_per_run;     /* --gres=gpu:N (0: none) */
    int cpus_per_run;     /* --cpus-per-task (0: the executor's threads per run) */
    int mem_mib;          /* --mem in MiB (0: the partition's default) */
    int time_limit_min;   /* --time in minutes (0: the partition's default) */
    char setup[1024];     /* shell lines run in the job before tunebench (module load ..., a container) */
    char program[1024];   /* the tunebench the nodes run ("": the one the study runs) */
    double poll_s;        /* how often squeue is asked (default 1 s) */
    double pending_limit_s; /* a job pending on a reason that cannot clear (PartitionConfig, ...) this long is given up */
} tb_slurm_settings;

/* Fills st with the defaults, then reads the [slurm] section of cfg (absent: the defaults). */
tb_status tb_slurm_settings_load(tb_slurm_settings *st, const tb_config *cfg, tb_err *err);

typedef struct tb_executor_opts {
    tb_executor_kind kind;
    int slots;           /* runs at once (slurm: jobs submitted at once) */
    int threads_per_run; /* CPU threads of each run (0: the cores divided by the slots) */
    int gpus, runs_per_gpu, gpu_memory_mib; /* gpus > 0: GPU slots (tb_executor_local_create_gpus) */
    /* process, slurm: */
    const char *program;    /* the tunebench executable (NULL: $TUNEBENCH_EXE, else this executable when it is
                             * tunebench) */
    const char *spool_dir;  /* job files, event files and logs (made with its parents) */
    const char *task_cache; /* given to run-job as --task-cache (NULL: none) */
    const tb_slurm_settings *slurm; /* slurm: the [slurm] settings */
} tb_executor_opts;

/* Any kind of executor from opts; TB_EINVAL naming the setting that is wrong. */
tb_status tb_executor_create(const tb_executor_opts *opts, tb_executor **out, tb_err *err);

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
static inline tb_status tb_executor_adopt(tb_executor *ex, tb_job *job, const char *where, tb_err *err)
{
    if (!ex->ops->adopt) return tb_fail(err, TB_EIO, "the %s executor cannot take over %s", ex->ops->name, where);
    return ex->ops->adopt(ex, job, where, err);
}
static inline void tb_executor_destroy(tb_executor *ex)
{
    if (ex) ex->ops->destroy(ex);
}

#endif
