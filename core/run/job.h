/* job.h: a job is one training run given as a complete configuration (INI
 * text) plus callbacks; an executor (exec/executor.h) runs it, in this process
 * (tb_job_execute) or in another (`tunebench run-job JOB.ini`, which prints
 * the events as lines that tb_job_line_parse reads back). The job's owner
 * records its events (tb_job_record: the archive) and shows them (a front
 * end) from the callbacks.
 *
 * Callbacks run on the executor's threads; they must be quick and
 * thread-safe. For one job they are called in order: started, then
 * batch/epoch events, then finished exactly once (also for a job cancelled
 * while still queued, and for jobs still queued or running at shutdown, with
 * status interrupted). started is not called for a job that never trains: a
 * configuration that fails tb_run_configure, or a job cancelled before it
 * left the queue. */
#ifndef TB_JOB_H
#define TB_JOB_H
#include <stdatomic.h>
#include <stdint.h>

#include "store/archive.h"
#include "base/common.h"
#include "engine/train.h"
#include "run/run.h"

typedef struct tb_job tb_job;

#define TB_JOB_PATH_MAX 1024 /* tb_job.run_path, as tb_run's run_path */

typedef struct tb_job_callbacks {
    void *user;
    /* the job left the queue, its configuration is valid and its data are about
     * to load (job->threads: what it was given; job->started_s: now) */
    void (*started)(void *user, tb_job *job);
    /* every batch and epoch event of tb_train (TB_EVENT_BATCH, TB_EVENT_EPOCH).
     * An epoch callback may return non-zero to cancel the job (e.g. the
     * archive could not make the epoch durable). */
    int (*event)(void *user, tb_job *job, const tb_train_event *ev);
    /* the end: status (finished, cancelled, diverged, interrupted, or rejected
     * when the configuration or data failed), the last validation accuracy
     * (NaN when none), the test accuracy (NaN when not tested) and a one-line
     * message ("" when finished normally). */
    void (*finished)(void *user, tb_job *job, tb_run_status status, double val_accuracy, double test_accuracy,
                     const char *message);
    /* optional: the executor placed the job outside this process, where it can
     * be found again after a crash (job->placement, e.g. "slurm:1234"; see
     * tb_executor_adopt). Called before started, from the executor's thread. */
    void (*placed)(void *user, tb_job *job);
} tb_job_callbacks;

struct tb_job {
    char id[TB_ARCHIVE_ID_MAX + 1]; /* the owner's name for it (e.g. the archive run id) */
    char *config_ini;               /* the complete configuration as given (the archived record); owned */
    tb_config *cfg;                 /* config_ini parsed, owned; NULL until tb_job_execute parses it */
    tb_run_config conf;             /* cfg typed (tb_run_config_parse); valid when cfg is set */
    int priority;                   /* lower starts first: 0 participants' runs, 10 finals, 20 sweeps */
    tb_job_callbacks cb;
    atomic_int cancel;              /* set by tb_executor_cancel / tb_job_cancel; read between batches */
    char cancel_message[160];       /* why it was cancelled (the finished message); set through tb_job_cancel */
    atomic_int interrupted;         /* ends "interrupted" rather than "cancelled" (the executor's shutdown,
                                     * a signal): set by tb_job_cancel(.., 1) / tb_executor_interrupt */
    /* placement, applied as typed overrides by tb_job_execute (tb_run_placement), never written into the text */
    char run_path[TB_JOB_PATH_MAX]; /* "": the run file goes where config_ini's output.run says; else here */
    char cache_dir[TB_JOB_PATH_MAX]; /* the task cache folder shared by the runs of a study or sweep
                                      * (tb_run_set_task_cache; `run-job --task-cache DIR`); "": none */
    /* filled in by the executor */
    double queued_s, started_s, ended_s; /* tb_now() times; 0 until reached */
    int threads;
    char device[16];                /* a GPU slot's device ("cuda:1"), "" for a CPU slot: replaces the
                                     * config's train.device when that names a GPU */
    int gpu_memory_mib;             /* a GPU slot's memory budget per run (0: none) */
    char placement[64];             /* where a process or cluster executor put it ("slurm:1234"); "" in this
                                     * process. Set before adopting a job (tb_executor_adopt). */
    int skip_started;               /* an adopted job: its start was recorded already (no started callback) */
    int skip_epochs;                /* ... epoch events up to this one too */
    int64_t skip_steps;             /* ... and batch events up to this step */
    tb_job *next;                   /* the executor's queue */
};

/* A new job (config_ini is copied); NULL when out of memory. The text is
 * parsed when the job runs; a caller that has parsed it already gives the
 * parse to tb_job_new_parsed instead. */
tb_job *tb_job_new(const char *id, const char *config_ini, int priority, const tb_job_callbacks *cb);
/* A new job from a configuration parsed once by its caller: cfg (config_ini
 * parsed, or the configuration config_ini was written from; the job takes
 * it, freed with the job, also when this fails; renamed to the job's id, as
 * a job parsed from its text names it) and conf (tb_run_config_parse of cfg,
 * copied). config_ini is copied as the archived record. NULL when out of
 * memory. */
tb_job *tb_job_new_parsed(const char *id, const char *config_ini, tb_config *cfg, const tb_run_config *conf,
                          int priority, const tb_job_callbacks *cb);
/* Parses config_ini once (tb_config_load_text, tb_run_config_parse) into a
 * new job: TB_EINVAL with the configuration's error, TB_ENOMEM. */
tb_status tb_job_create(tb_job **out, const char *id, const char *config_ini, int priority,
                        const tb_job_callbacks *cb, tb_err *err);
/* Frees a job the executor is done with (after its finished callback returned). */
void tb_job_free(tb_job *job);

/* Runs a job in the calling thread: configures, prepares and executes the run
 * (run/run.h) from job->conf (parsed from job->config_ini here, once, when the
 * job was made from text alone) placed by typed overrides (tb_run_placement):
 * `threads` CPU threads (0: the config's train.threads, else all cores;
 * OpenMP's count of the calling thread is set to it, data preparation
 * included), job->device and job->gpu_memory_mib for a GPU run; and calls
 * the job's callbacks. Prepared task data come from (and go to) the task
 * cache job->cache_dir when set. The run file goes to job->run_path, else where the
 * config's output.run says; its /config ini is config_ini as given. Returns the final status, by what failed (the same rule
 * before and during training):
 *   finished     training and the test evaluation completed (message "")
 *   cancelled    job->cancel was set (message: job->cancel_message), or the
 *                time limit train.time_limit was reached ("time limit reached")
 *   interrupted  as cancelled, with job->interrupted set; or the run failed on
 *                an error of its own (out of memory; I/O once training began,
 *                e.g. the run file could not be written), with that error
 *   diverged     NaN/Inf loss or parameter
 *   rejected     the configuration is invalid (TB_EINVAL: configure, prepare or
 *                tb_train's own checks) or its inputs cannot be read before
 *                training (TB_EIO, TB_EFORMAT: the data, model.init_from), with the error
 * An event callback returning non-zero cancels the job (batch or epoch). */
tb_run_status tb_job_execute(tb_job *job, int threads);

/* Ends a job that never left the queue (cancelled there, or at an executor's
 * shutdown): its finished callback with cancelled or interrupted and the
 * cancel message. For executors; returns the status it ended with. */
tb_run_status tb_job_end_unstarted(tb_job *job);

/* One batch or epoch event (the kinds a job's event callback sees) as one
 * line, for `tunebench run-job` (no newline):
 *   "event batch epoch=1 batch=3/860 step=3 loss=2.302585 elapsed=0.41"
 *   "event epoch epoch=1 loss=0.61 val_loss=0.48 val_accuracy=0.8312 seconds=12.3 step=860 batches=860
 *    elapsed=12.3 images_per_s=4471" (one line)
 *   "event finished status=finished val_accuracy=0.8312 test_accuracy=0.8201 message=..."
 * seconds is the epoch's duration, elapsed the time since training began.
 * Returns the length written (truncated to cap - 1). */
int tb_job_event_format(char *out, size_t cap, const tb_train_event *ev);
/* The other two lines run-job prints, "event started threads=2" and the
 * "event finished ..." above (the message last, to the end of the line,
 * newlines turned into blanks). Numbers are written in the shortest text that
 * reads back to the same double, so a parsed line carries the exact values. */
int tb_job_started_format(char *out, size_t cap, int threads);
int tb_job_finished_format(char *out, size_t cap, tb_run_status status, double val_accuracy, double test_accuracy,
                           const char *message);

/* One event line parsed back (what a process or Slurm executor reads from
 * run-job's output and turns into the job's callbacks). */
typedef enum tb_job_line_kind {
    TB_JOB_LINE_STARTED = 0,
    TB_JOB_LINE_BATCH,
    TB_JOB_LINE_EPOCH,
    TB_JOB_LINE_FINISHED,
} tb_job_line_kind;

typedef struct tb_job_line {
    tb_job_line_kind kind;
    int threads;          /* started */
    tb_train_event ev;    /* batch, epoch: the fields the line carries, the others 0 (NaN for losses) */
    tb_run_status status; /* finished */
    double val_accuracy, test_accuracy;
    char message[512];
} tb_job_line;

/* 0 and *out filled, or -1 when line is not a well-formed event line (run-job
 * prints nothing else on stdout, but a reader should skip such lines).
 * Nothing in this process reads run-job's lines yet: this is for the process
 * and Slurm executors (and the tests keep the format honest meanwhile). */
int tb_job_line_parse(const char *line, tb_job_line *out);

/* Asks a running job to stop before its next batch, with the message its
 * finished callback will carry (the first message given wins); interrupted
 * non-zero makes it end "interrupted" rather than "cancelled" (set before the
 * cancel flag, which the job reads first; it stays set). Thread-safe; what
 * tb_executor_cancel does for a running job, and what an event callback or a
 * signal-watching thread may call itself. */
void tb_job_cancel(tb_job *job, const char *message, int interrupted);

/* ---- recording a job in an archive ------------------------------------------------
 *
 * Begins an archive run (status queued; kind e.g. "submission", "final",
 * "sweep"; participant may be NULL; config_ini as given as the run's "ini")
 * and fills *out with callbacks that record the job there before passing
 * each event on to inner (may be NULL):
 *   started  -> run status "training", then inner->started;
 *   batch    -> buffered, appended with tb_archive_run_batches at each epoch
 *               and at least every second, then inner->event;
 *   epoch    -> tb_archive_run_epoch (durable) and only then inner->event;
 *               when the archive fails, the job is stopped as interrupted
 *               (message names the failure: the system's fault, not the
 *               owner's) and inner does not see the epoch;
 *   finished -> tb_archive_run_finish with the job's status, then inner->finished.
 * The recorder frees itself after finished. run_id receives the run's id.
 * A job whose epochs the archive could not keep ends "interrupted" there and
 * for inner, even when training went on to the end. finished may be called
 * with job NULL (a job never created). Every callback must have run (the
 * executor destroyed or drained) before the archive is closed.
 * The job's run file (weights, curves, metrics: docs/run-files.md) goes to
 * DIR/runs/<id>.run.h5 (tb_job_run_file): *job_ini (malloc'd) is config_ini
 * with output.run set to that path, the text to give tb_job_new (or to write
 * into a job file for run-job). job_ini NULL: no text is made (config_ini is
 * not even parsed); give tb_job_new config_ini and set the job's run_path
 * with tb_job_run_file instead, which is cheaper for a job run in this
 * process. If the job is never submitted, call out->finished yourself (e.g.
 * status rejected) so the run is ended. */
tb_status tb_job_record(tb_archive *a, const char *kind, const char *participant, const char *config_ini,
                        const tb_job_callbacks *inner, tb_job_callbacks *out, char run_id[TB_ARCHIVE_ID_MAX + 1],
                        char **job_ini, tb_err *err);
/* tb_job_record for a run this process takes up again after a crash (a
 * Slurm job a restarted study follows: tb_archive_resume_run, why is the
 * message recorded). *last_epoch and *last_step: what the archive holds
 * already; give them to the job as skip_epochs and skip_steps so that the
 * events read again are not recorded twice. */
tb_status tb_job_record_resume(tb_archive *a, const char *run_id, const char *why, const tb_job_callbacks *inner,
                               tb_job_callbacks *out, int64_t *last_epoch, int64_t *last_step, tb_err *err);
/* The run file of archive run run_id, DIR/runs/<id>.run.h5, into out (e.g. a
 * job's run_path); 0, or -1 when it does not fit in cap. */
int tb_job_run_file(const tb_archive *a, const char *run_id, char *out, size_t cap);

#endif
