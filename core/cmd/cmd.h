/* cli.h: subcommands of the tunebench executable that live outside main.c. */
#ifndef TB_CLI_H
#define TB_CLI_H

#include <signal.h>
#include <stdatomic.h>

#include "base/config.h"

/* ---- shared by the subcommands (cli_common.c) ---------------------------------- */

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
int tb_cli_parse_int(const char *cmd, const char *flag, const char *text, long long lo, long long hi, long long *out);
/* The value after argv[*i] (advancing *i), or NULL after printing "FLAG needs a value". */
const char *tb_cli_need_value(const char *cmd, int argc, char **argv, int *i);
/* Loads the configuration file path, applies --set assignments (n_sets of
 * them), output.run = run_out and plugins.path = plugin_path (each NULL: kept);
 * NULL after printing what failed. */
tb_config *tb_cli_load_config(const char *cmd, const char *path, int n_sets, char *const *sets, const char *run_out,
                              const char *plugin_path);

/* Ctrl-C handling shared by the commands. Until tb_cli_signals_restore, SIGINT
 * (and SIGTERM with TB_CLI_SIGTERM) sets *flag (may be NULL), calls note(user)
 * (may be NULL; async-signal-safe work only) and writes message (may be NULL)
 * to stderr. TB_CLI_ONCE: only the first signal is caught, so a second one is
 * fatal as usual. One installation at a time. */
enum { TB_CLI_SIGTERM = 1, TB_CLI_ONCE = 2 };
typedef struct tb_cli_signals {
    struct sigaction old_int, old_term;
    int how;
} tb_cli_signals;
void tb_cli_signals_catch(tb_cli_signals *saved, atomic_int *flag, void (*note)(void *user), void *user,
                          const char *message, int how);
void tb_cli_signals_restore(const tb_cli_signals *saved);

/* ---- subcommands ---------------------------------------------------------------------- */

/* `tunebench plugins [--plugin-path P] [--help]`: lists every plugin found
 * (kind, name, version, licence, file, description, options) and the
 * problems met while scanning. argv holds the arguments after "plugins".
 * Returns the exit code: 0 listed, 1 an explicit plugin path failed, 2 bad usage. */
int tb_cli_plugins(int argc, char **argv);

/* `tunebench run-job JOB.ini [--threads N]`: one job in this process, its
 * events printed as lines (tb_job_event_format) for a process or Slurm
 * executor. Exit code: 0 finished, 1 failed, 2 rejected, 3 diverged,
 * 4 cancelled or interrupted by a signal. */
int tb_cli_run_job(int argc, char **argv);

/* `tunebench sweep CONFIG --random N | --grid k=v1,v2 ...`, `tunebench repeat
 * CONFIG --seeds K` and `tunebench train CONFIG --folds K` (argv: the
 * arguments after the command): runs through the local executor into an
 * archive with a results table (core/sweep.h). Exit code: 0 done, 1 failed,
 * 2 bad usage or configuration, 4 interrupted. */
int tb_cli_sweep(int argc, char **argv);
int tb_cli_repeat(int argc, char **argv);
int tb_cli_train_folds(int argc, char **argv);

/* `tunebench study CONFIG [--frontend NAME] [--script FILE] ...` (cli_study.c):
 * opens the study, runs the front-end plugin, waits for final evaluations.
 * Returns the exit code: 0 done, 1 front end or archive failed, 2 bad usage or configuration. */
int tb_cli_study(int argc, char **argv);
/* `tunebench export ARCHIVE --single-file OUT.h5` (cli_study.c). */
int tb_cli_export(int argc, char **argv);

#endif
