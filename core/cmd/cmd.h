/* cmd.h: the tunebench executable's commands (one file each, cmd_<name>.c;
 * main.c dispatches) and what they share (cmd_common.c). */
#ifndef TB_CMD_H
#define TB_CMD_H

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>

#include "base/config.h"
#include "data/task.h"
#include "engine/metrics.h"

/* ---- shared by the commands (cmd_common.c) ---------------------------------- */

/* The executable's exit codes, for every command. */
enum {
    TB_EXIT_OK = 0,
    TB_EXIT_FAILED = 1,      /* the run or the command failed (I/O, memory, missing data) */
    TB_EXIT_USAGE = 2,       /* bad usage or configuration */
    TB_EXIT_DIVERGED = 3,    /* training diverged (NaN/Inf) */
    TB_EXIT_INTERRUPTED = 4, /* interrupted (Ctrl-C, a signal) or the time limit */
};

/* "tunebench CMD: " (cmd NULL: "tunebench: ") starts every message below. */

/* text as an integer in [lo, hi] into *out: 0, or -1 after printing
 * "tunebench CMD: FLAG = 'TEXT' is not an integer in [LO, HI]". */
int tb_cmd_parse_int(const char *cmd, const char *flag, const char *text, long long lo, long long hi, long long *out);
/* The value after argv[*i] (advancing *i), or NULL after printing "FLAG needs a value". */
const char *tb_cmd_need_value(const char *cmd, int argc, char **argv, int *i);
/* The arguments every command that runs a configuration takes: --help / -h
 * (prints usage to stdout), --quiet / -q (sets *quiet) and the one positional
 * CONFIG (sets *config). Returns 1 after --help, 0 when arg was one of the
 * others, 2 when it is none of them, or -1 after "tunebench CMD: one
 * configuration file only" (cmd NULL: "tunebench: ..."). */
int tb_cmd_common_arg(const char *cmd, const char *arg, int *quiet, const char **config, void (*usage)(FILE *));
/* Loads the configuration file path, applies --set assignments (n_sets of
 * them), output.run = run_out and plugins.path = plugin_path (each NULL: kept);
 * NULL after printing what failed. */
tb_config *tb_cmd_load_config(const char *cmd, const char *path, int n_sets, char *const *sets, const char *run_out,
                              const char *plugin_path);

/* The signals that stop a command, one setup for every command: SIGINT
 * (Ctrl-C), SIGTERM (Slurm, docker stop, systemd) and SIGHUP (a closed
 * terminal). Until tb_cmd_signals_restore each of them sets *flag (may be
 * NULL), calls note(user, sig) in the handler (may be NULL; async-signal-safe
 * work only), writes "tunebench: SIGNAME: message" to stderr (message may be
 * NULL: nothing written), and calls act(user, sig) from a thread of its own,
 * where any work is allowed (locks, I/O; may be NULL). once: only the first
 * signal is caught, so a second one is fatal as usual. The handler does not
 * restart interrupted reads (EINTR). One installation at a time. */
typedef struct tb_cmd_signal_opts {
    atomic_int *flag;
    void (*note)(void *user, int sig);
    void (*act)(void *user, int sig);
    void *user;
    const char *message;
    int once;
} tb_cmd_signal_opts;
typedef struct tb_cmd_signals {
    struct sigaction old[3];
    int pipe[2];      /* handler -> act's thread; -1 without act */
    pthread_t thread;
} tb_cmd_signals;
void tb_cmd_signals_catch(tb_cmd_signals *saved, const tb_cmd_signal_opts *opts);
void tb_cmd_signals_restore(tb_cmd_signals *saved);
/* The last signal caught since tb_cmd_signals_catch (0: none), and a signal's name ("SIGTERM"). */
int tb_cmd_signals_last(void);
const char *tb_cmd_signal_name(int sig);

/* A tb_status as the executable's exit code (TB_EINVAL is bad usage, a
 * divergence 3, a cancel or time limit 4, everything else a failed run). */
int tb_cmd_exit_code(tb_status st);

/* The options train and eval share: CONFIG, --set k=v..., --out and --force
 * (train), --checkpoint and --split (eval), --plugin-path, --quiet. */
typedef struct tb_cmd_run_args {
    const char *config, *out, *plugin_path, *checkpoint, *split;
    const char *task_cache; /* --task-cache DIR|off: the task cache folder (run/run.h tb_run_set_task_cache) */
    char **sets; /* malloc'd; free it */
    int n_sets, quiet, force;
} tb_cmd_run_args;
/* Returns 0, 1 when --help was printed (by usage), or -1 after an error message. */
int tb_cmd_parse_run_args(int argc, char **argv, tb_cmd_run_args *a, int allow_checkpoint, void (*usage)(FILE *));

/* "test: loss ..., accuracy ..." and, for up to 20 classes, the confusion matrix with raw's class names. */
void tb_cmd_print_metrics(const char *what, const tb_metrics *m, const tb_task_data *raw);

/* ---- the commands: argv holds the arguments after the command's name; each returns the exit code ---- */

int tb_cmd_train(int argc, char **argv);   /* cmd_train.c; `train --folds K` is tb_cmd_train_folds */
int tb_cmd_eval(int argc, char **argv);    /* cmd_eval.c */
int tb_cmd_bench(int argc, char **argv);   /* cmd_bench.c */
int tb_cmd_devices(int argc, char **argv); /* cmd_devices.c */
int tb_cmd_version(int argc, char **argv); /* main.c */

/* `tunebench plugins [--plugin-path P] [--help]`: lists every plugin found
 * (kind, name, version, licence, file, description, options) and the
 * problems met while scanning. argv holds the arguments after "plugins".
 * Returns the exit code: 0 listed, 1 an explicit plugin path failed, 2 bad usage. */
int tb_cmd_plugins(int argc, char **argv);

/* `tunebench run-job JOB.ini [--threads N]`: one job in this process, its
 * events printed as lines (tb_job_event_format) for a process or Slurm
 * executor. Exit code: 0 finished, 1 failed, 2 rejected, 3 diverged,
 * 4 cancelled or interrupted by a signal. */
int tb_cmd_run_job(int argc, char **argv);

/* `tunebench sweep CONFIG --random N | --grid k=v1,v2 ...`, `tunebench repeat
 * CONFIG --seeds K` and `tunebench train CONFIG --folds K` (argv: the
 * arguments after the command): runs through the local executor into an
 * archive with a results table (study/sweep.h). Exit code: 0 done, 1 failed,
 * 2 bad usage or configuration, 4 interrupted (SIGINT, SIGTERM, SIGHUP). */
int tb_cmd_sweep(int argc, char **argv);
int tb_cmd_repeat(int argc, char **argv);
int tb_cmd_train_folds(int argc, char **argv);

/* `tunebench study CONFIG [--frontend NAME] [--script FILE] ...` (cmd_study.c):
 * opens the study, runs the front-end plugin, waits for final evaluations.
 * Returns the exit code: 0 done, 1 front end or archive failed, 2 bad usage or configuration,
 * 4 stopped by SIGTERM or SIGHUP (closed cleanly). */
int tb_cmd_study(int argc, char **argv);
/* `tunebench export ARCHIVE --single-file OUT.h5` (cmd_export.c). */
int tb_cmd_export(int argc, char **argv);
/* `tunebench analyze ARCHIVE --out DIR [...]` (cmd_analyze.c): report.html,
 * figures and tables. Exit code: 0 written, 1 unreadable archive or unwritable
 * output, 2 bad usage. */
int tb_cmd_analyze(int argc, char **argv);
/* `tunebench simulate ARCHIVE [--participants N] [--seed S] ...` (cmd_simulate.c): a simulated
 * study, or a large synthetic archive (--synthetic-runs), via analysis/simulate.h.
 * Exit code: 0 done, 1 failed, 2 bad usage (an archive there and no --force included). */
int tb_cmd_simulate(int argc, char **argv);

#endif
