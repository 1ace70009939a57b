/* sweep.h: many runs of one configuration with something varied, run
 * through an executor into an archive, with a results table per sweep.
 *
 *   random  N configurations drawn from the config's space (hparam_space.h:
 *           [space] and [train] presets; tb_space_sample's distributions)
 *   grid    the cartesian product of values of arbitrary config keys
 *           ("train.optimizer=adam,sgd", "model.freeze=none,base")
 *   repeat  one configuration with train.seed = S .. S+K-1
 *   folds   one configuration over k folds (`tunebench train --folds K`)
 * and random, grid and repeat with k folds each (task.folds = K, task.fold = i).
 *
 * Every configuration is checked with tb_run_configure before anything runs;
 * a grid names each bad key and value. Runs are recorded in the archive
 * (kind "sweep", tb_job_record) and the table DIR/sweeps/<id>.h5 is rewritten
 * (a temporary file renamed into place) at most every 2 seconds while runs
 * end and once when the last has ended, so it is always complete (a run shown
 * queued may have ended in the last 2 s). Layout and a pandas example:
 * docs/sweeps.md. */
#ifndef TB_SWEEP_H
#define TB_SWEEP_H

#include <stdatomic.h>
#include <stdint.h>

#include "store/archive.h"
#include "base/config.h"
#include "exec/executor.h"

#define TB_SWEEP_FORMAT "tunebench-sweep"
#define TB_SWEEP_SCHEMA_VERSION 1
#define TB_SWEEP_PRIORITY 20 /* after participants' runs (0) and final evaluations (10) */
#define TB_SWEEP_MAX_RUNS 100000

typedef enum tb_sweep_kind {
    TB_SWEEP_RANDOM = 0,
    TB_SWEEP_GRID,
    TB_SWEEP_REPEAT,
    TB_SWEEP_FOLDS,
} tb_sweep_kind;

/* "random", "grid", "repeat", "folds" */
const char *tb_sweep_kind_name(tb_sweep_kind k);

typedef struct tb_sweep_run {
    int config;            /* configuration index, 0-based */
    int fold;              /* 0-based; -1 without folds */
    int64_t seed;          /* train.seed */
    char **values;         /* the varied keys' values, sweep->n_keys of them */
    char *ini;             /* the run's configuration (output.run is set when it is recorded) */
    tb_config *cfg;        /* ini's configuration, parsed once when planned (owned): tb_sweep_execute gives it
                            * to the run's job (NULL after), which then does not parse ini again */
    /* the outcome, filled in as the run ends */
    char run_id[TB_ARCHIVE_ID_MAX + 1]; /* "" until recorded in the archive */
    tb_run_status status;  /* queued until it ends */
    double val_accuracy, val_loss, test_accuracy; /* fractions / loss of the last epoch; NaN when none */
    double seconds;        /* from start to end; 0 when it never started */
    char message[256];
} tb_sweep_run;

typedef struct tb_sweep {
    tb_sweep_kind kind;
    char id[40];           /* "s0001-random": set by tb_sweep_execute */
    char *command_line;    /* for the record; may be NULL */
    uint64_t search_seed;  /* random search */
    int folds;             /* 0: none */
    int seeds;             /* repeat: runs per configuration with train.seed = first_seed + i; else 1 */
    int64_t first_seed;    /* repeat: --first-seed; else the configuration's train.seed */
    int n_configs;
    int n_keys;
    char **keys;           /* the varied config keys ("train.lr"): one results column each */
    char *base_ini;        /* the run sections of the configuration the sweep started from */
    int n_runs;
    tb_sweep_run *runs;    /* configuration-major, then seed, then fold */
    double created_s;      /* UTC */
    char task_cache[1024]; /* the task cache folder every run's job gets (tb_job cache_dir); "": none.
                            * Set by the caller (tunebench sweep: ARCHIVE/cache unless --task-cache) */
} tb_sweep;

/* The sections of cfg a run reads, as INI text (*out malloc'd): a study
 * configuration ([study] or [space]) keeps only [model], [task], [train],
 * [output], [plugins] and the model's and task's own sections; any other is
 * kept whole, so that a misspelt section is still reported when the run is
 * configured. output.run and output.checkpoint are left out: each run's file
 * is set per run (concurrent runs would overwrite one file). Shared by sweeps
 * and studies. */
tb_status tb_run_sections_ini(const tb_config *cfg, char **out, tb_err *err);

/* Plans fill *sw (tb_sweep_free it, also after a failure). cfg is read, not
 * kept. A study configuration's [study], [space] and other non-run sections
 * are left out of the runs. folds: 0 none, else >= 2. Every configuration is
 * checked with tb_run_configure; when some are bad the plan fails with
 * TB_EINVAL, err names the first and *problems (malloc'd, may be NULL to
 * skip) lists them all, one line each. */
tb_status tb_sweep_plan_random(tb_sweep *sw, const tb_config *cfg, int n, uint64_t search_seed, int folds,
                               char **problems, tb_err *err);
/* axes: "section.key=v1,v2,..." each (values comma-separated; blanks around
 * them ignored). A value that is bad on its own is reported as
 * "--grid train.lr: value 'abc': <why>"; a combination that is bad although
 * each value is fine as "grid point train.a=x, model.b=y: <why>". */
tb_status tb_sweep_plan_grid(tb_sweep *sw, const tb_config *cfg, int n_axes, const char *const *axes, int folds,
                             char **problems, tb_err *err);
/* seeds runs with train.seed = first_seed + i (init follows the seed unless
 * the configuration sets train.init_seed). */
tb_status tb_sweep_plan_repeat(tb_sweep *sw, const tb_config *cfg, int seeds, int64_t first_seed, int folds,
                               char **problems, tb_err *err);
/* One configuration over folds (>= 2) folds. */
tb_status tb_sweep_plan_folds(tb_sweep *sw, const tb_config *cfg, int folds, char **problems, tb_err *err);
void tb_sweep_free(tb_sweep *sw);
/* seeds x folds: configuration c's runs are runs[c * this ...] */
int tb_sweep_runs_per_config(const tb_sweep *sw);

/* Called on the executing thread after each submitted run ends (index into
 * sw->runs, whose outcome is filled in), in the order they end; `ended`
 * numbers them 1, 2, ... Runs never submitted (an interrupt came first) are
 * not reported. The results file may lag by up to 2 s. */
typedef void (*tb_sweep_progress_fn)(void *user, const tb_sweep *sw, int index, int ended);

/* Runs every planned run through ex, recorded in a (kind "sweep"), and keeps
 * tb_archive_dir(a)/sweeps/<sw->id>.h5 up to date. Blocks until all have
 * ended; sw->runs is written by this call alone (the executor's threads
 * never touch it) and is complete when it returns. When *interrupt becomes non-zero (a signal handler may set it), the
 * runs not yet ended are cancelled and end "interrupted" (those never
 * submitted too, without a run id); the call returns TB_ECANCELLED after the
 * table is written. TB_EIO when the results file cannot be written (the
 * runs still go on to the end). */
tb_status tb_sweep_execute(tb_sweep *sw, tb_archive *a, tb_executor *ex, const atomic_int *interrupt,
                           tb_sweep_progress_fn progress, void *user, tb_err *err);

/* Writes the results table to path (into path.tmp, renamed over path). */
tb_status tb_sweep_write(const tb_sweep *sw, const char *path, tb_err *err);

/* Mean, sample standard deviation and standard error (sd / sqrt(n)) of the
 * finite values among n; NaN when there are none (sd, se: fewer than two). */
typedef struct tb_sweep_stat {
    int n;
    double mean, sd, se;
} tb_sweep_stat;
void tb_sweep_stat_of(const double *v, int n, tb_sweep_stat *out);

/* Over the runs of configuration `config` (-1: of the whole sweep): counts by
 * status, statistics over the finished ones. O(runs of that configuration). */
typedef struct tb_sweep_summary {
    int runs, finished, cancelled, diverged, interrupted, rejected, queued;
    tb_sweep_stat val_accuracy, val_loss, test_accuracy;
} tb_sweep_summary;
void tb_sweep_summarize(const tb_sweep *sw, int config, tb_sweep_summary *out);

#endif
