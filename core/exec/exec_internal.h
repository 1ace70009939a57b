/* exec_internal.h: what the executors share inside exec/. Every executor is
 * the slot queue of executor.c with a runner: the function a slot's worker
 * thread calls to run its job to the end. */
#ifndef TB_EXEC_INTERNAL_H
#define TB_EXEC_INTERNAL_H

#include "executor.h"

typedef struct tb_job_runner {
    const char *name; /* the executor's name (its ops' name) */
    /* Runs job to its end in the calling worker thread: the job's started
     * (only if it trains), event and finished callbacks exactly as
     * tb_job_execute calls them; it polls job->cancel (set by
     * tb_executor_cancel) at least every 100 ms. threads: the slot's CPU
     * threads (0: the job's own setting). */
    tb_run_status (*run)(void *ctx, tb_job *job, int threads);
    /* whether a job placed at `where` ("slurm:1234") by an earlier process
     * can be followed by this runner (tb_executor_adopt); NULL: never */
    int (*can_adopt)(void *ctx, const char *where);
    void (*free)(void *ctx);
    void *ctx;
} tb_job_runner;

/* The slot queue with runner (NULL: tb_job_execute in the worker). The
 * executor owns runner->ctx from here, also when this fails. */
tb_status tb_executor_create_with_runner(int slots, int threads_per_run, const tb_job_runner *runner,
                                         tb_executor **out, tb_err *err);
tb_status tb_executor_create_gpus_with_runner(int gpus, int runs_per_gpu, int gpu_memory_mib, int threads_per_run,
                                              const tb_job_runner *runner, tb_executor **out, tb_err *err);

/* ---- running `tunebench run-job` elsewhere and reading its lines (exec_child.c) ------------ */

/* The tunebench executable for child runs: given, else $TUNEBENCH_EXE, else
 * this process's own executable when its name is tunebench. */
tb_status tb_exec_find_program(const char *given, char *out, size_t cap, tb_err *err);

/* The run-job command line of a job (argv[0] = program, NULL-terminated,
 * strings inside buf): JOB.ini, then the placement as flags (--run, --threads,
 * --device, --gpu-memory, --task-cache: job->cache_dir, else task_cache).
 * 0, or -1 when it does not fit. */
int tb_exec_job_argv(const char *program, const char *job_file, const tb_job *job, int threads,
                     const char *task_cache, char *buf, size_t cap, char **argv, int max_args);

/* Writes job->config_ini to spool/<id>.job.ini (through a temporary and a
 * rename, so a reader never sees half a file); path receives its name.
 * durable: fsync'ed before the rename (another machine reads it: Slurm). */
tb_status tb_exec_write_job_file(const char *spool, const tb_job *job, int durable, char *path, size_t cap,
                                 tb_err *err);

/* How a run-job's lines become the job's callbacks: fed text as it arrives
 * (any split), it calls started/event, skips what the job says was recorded
 * already (skip_epochs, skip_steps), and keeps the finished line for the end. */
typedef struct tb_exec_reader {
    tb_job *job;
    char partial[8192]; /* a line not yet ended */
    size_t n_partial;
    int started;        /* the started line was seen (and the callback called) */
    int finished;       /* the finished line was seen: */
    tb_run_status status;
    double val_accuracy, test_accuracy;
    char message[512];
    int cancel_asked;   /* an event callback answered non-zero */
} tb_exec_reader;

void tb_exec_reader_init(tb_exec_reader *r, tb_job *job);
void tb_exec_reader_feed(tb_exec_reader *r, const char *data, size_t n);

/* The last non-empty line of a log file (a child's stderr), for messages; "" when none. */
void tb_exec_log_tail(const char *path, char *out, size_t cap);

/* The job's end from what the reader saw and how the child (or Slurm job)
 * ended; `death` says how when no finished line arrived or the executor
 * stopped it ("" when it simply exited). Calls the finished callback. */
tb_run_status tb_exec_finish(tb_exec_reader *r, int we_stopped_it, const char *death);

/* Makes the spool directory (with its parents). */
tb_status tb_exec_spool_dir(const char *spool, tb_err *err);

/* The kinds' constructors (tb_executor_create picks one). */
tb_status tb_executor_process_create(const tb_executor_opts *o, tb_executor **out, tb_err *err);
tb_status tb_executor_slurm_create(const tb_executor_opts *o, tb_executor **out, tb_err *err);

#endif
