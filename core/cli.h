/* cli.h: subcommands of the tunebench executable that live outside main.c. */
#ifndef TB_CLI_H
#define TB_CLI_H

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
