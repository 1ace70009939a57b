/* run.h: one training run described by a configuration, end to end: plugins
 * found and validated, data loaded and split, model built (optionally from a
 * checkpoint, part of it frozen), trained, scored on the test split, and
 * recorded in one HDF5 run file (docs/run-files.md). Front ends, sweeps and
 * executors drive runs through this.
 *
 * Configuration sections (every key checked; unknown keys name the nearest):
 *   [model]   name (a model plugin), init_from (checkpoint or run file),
 *             freeze (none | base | comma-separated state_dict prefixes)
 *   [<model name>]  the model plugin's options
 *   [task]    name (a task plugin), resolution, val_fraction, split_seed,
 *             folds, fold, mean, std, crop_padding, hflip, random_resized_crop
 *   [<task name>]   the task plugin's options
 *   [train]   the study's 15 hyperparameters by PyTorch's names (epochs,
 *             batch_size, loss, optimizer, lr, weight_decay, momentum, rho,
 *             lambd, alpha, eps, lr_decay, initial_accumulator_value, beta1,
 *             beta2), the other torch options (dampening, nesterov, amsgrad,
 *             centered, t0), seed, init_seed, time_limit, threads, device
 *             (cpu | cuda | cuda:N), gpu_memory_mib (a GPU run's memory budget, 0: none),
 *             tf32 (allow TF32 tensor-core math on the GPU; default false)
 *   [output]  run (the run file path), checkpoint (an extra checkpoint file)
 *   [plugins] path (an extra plugin file or directory searched first) */
#ifndef TB_RUN_H
#define TB_RUN_H

#include "base/config.h"
#include "engine/device.h"
#include "host/plugin.h"
#include "data/task.h"
#include "engine/train.h"

/* A run's configuration, typed: every fixed section read and checked once
 * (tb_run_config_parse). Strings point into cfg, which must outlive it; the
 * plugins' own sections stay in cfg until a run resolves its plugins. */
typedef struct tb_run_config {
    const tb_config *cfg;           /* the parsed INI, not owned */
    const char *model, *task;       /* model.name, task.name */
    const char *plugin_path;        /* plugins.path, or NULL */
    tb_train_config train;
    uint64_t init_seed;
    char init_from[1024], freeze[512];
    char ignored[256];              /* [train] hyperparameters the optimizer does not read, ", "-separated */
    tb_task_options task_opt;
    char run_path[1024], checkpoint_path[1024];
    tb_device dev;                  /* train.device, not yet checked against the machine (placement may replace it) */
    int gpu_memory_mib, tf32;       /* train.gpu_memory_mib, train.tf32 */
    int threads;                    /* train.threads (0: all cores) */
} tb_run_config;

/* Where an executor puts a run: typed overrides of the configuration,
 * applied by tb_run_configure_parsed. Zero/empty fields change nothing. */
typedef struct tb_run_placement {
    int threads;                    /* > 0: replaces train.threads */
    const char *device;             /* a GPU slot's device ("cuda:1"): replaces train.device when that names a GPU */
    int gpu_memory_mib;             /* a GPU slot's budget: caps a GPU run's train.gpu_memory_mib (0 there: none) */
    const char *run_path;           /* replaces output.run */
    const char *cache_dir;          /* the task cache folder (store/task_cache.h); NULL, "" or "off": none */
} tb_run_placement;

/* Reads and checks every key of the fixed sections ([model], [task],
 * [train], [output], [plugins]) into rc: values and ranges, unknown keys
 * (naming the nearest). Neither plugins nor devices are looked at. */
tb_status tb_run_config_parse(tb_run_config *rc, const tb_config *cfg, tb_err *err);

typedef struct tb_run {
    const tb_config *cfg;           /* not owned */
    tb_plugin_registry plugins;
    const tb_plugin *model_plugin, *task_plugin;
    tb_plugin_args *model_args, *task_args;
    tb_task_options task_opt;
    tb_task_shape declared;         /* what the task plugin declared before loading (0: unknown) */
    tb_task task;
    int task_loaded;
    tb_backend *be;
    tb_net *net;
    tb_train_config train;
    uint64_t init_seed;
    char init_from[1024], freeze[512], kept_head[512];
    char init_notes[1024];          /* model.init_from: defaulted num_batches_tracked, converted types */
    char ignored[256];              /* [train] hyperparameters the optimizer does not read (warned) */
    char run_path[1024], checkpoint_path[1024];
    char cache_dir[1024];           /* the task cache folder, "" for none (tb_run_set_task_cache) */
    tb_device dev;                  /* train.device */
    char device[32];                /* "cpu", "cuda:0" */
    int gpu_memory_mib, tf32;       /* train.gpu_memory_mib, train.tf32 */
    int threads;
    /* results */
    tb_train_result result;
    tb_metrics test;
    int tested;
} tb_run;

/* Everything checkable without data: sections and keys, values and ranges,
 * plugins found and their options: tb_run_config_parse, then
 * tb_run_configure_parsed without a placement. */
tb_status tb_run_configure(tb_run *run, tb_config *cfg, tb_err *err);
/* The same for scoring weights (`tunebench eval`): the optimizer and its
 * hyperparameters ([train] optimizer, lr, momentum, ...) are neither required
 * nor read (run->train.optim stays zeroed); unknown keys are still errors. */
tb_status tb_run_configure_scoring(tb_run *run, tb_config *cfg, tb_err *err);
/* A run from a parsed configuration (rc->cfg must outlive the run), placed
 * (place may be NULL): the device checked against the machine, plugins
 * found, plugin sections checked and their options resolved. */
tb_status tb_run_configure_parsed(tb_run *run, const tb_run_config *rc, const tb_run_placement *place, tb_err *err);
/* tb_run_configure_parsed's checks alone (a submission's probe): the run is freed. */
tb_status tb_run_config_check(const tb_run_config *rc, tb_err *err);
/* The output paths (output.run and output.checkpoint), checked before any
 * data loads: the parent directory exists or can be created and is
 * writable; the name fits (a component at most TB_RUN_NAME_MAX bytes, so its
 * temporary ".tmp-PID" sibling fits too); the target is absent, or a regular
 * file tunebench wrote (a run file or a checkpoint, by its root attribute
 * format), or, with force, any regular file; never a directory, FIFO,
 * socket or device node, and never one of the run's inputs (the
 * configuration file, the plugins' PATH options such as the task's data,
 * model.init_from; compared by device and inode). run_field names output.run
 * in messages (NULL: "output.run"; e.g. "--out"). TB_EINVAL with a message
 * naming the field, the value and what is allowed. */
#define TB_RUN_NAME_MAX 240
/* A directory results go to (a study's archive): an existing writable
 * directory, or one that can be created (its nearest existing ancestor a
 * writable directory). TB_EINVAL naming field and path otherwise. */
tb_status tb_run_check_dir(const char *field, const char *path, tb_err *err);
tb_status tb_run_check_outputs(const tb_run *run, const char *run_field, int force, tb_err *err);
/* The task cache (store/task_cache.h) the run reads prepared data from and
 * writes them to: a folder (created when first used), or NULL, "" or "off"
 * for none (the default). TB_EINVAL for a path too long. Never written into
 * the configuration: a placement, like the run file's path. */
tb_status tb_run_set_task_cache(tb_run *run, const char *dir, tb_err *err);
/* The task's prepared data into run->task: read from the task cache when the
 * run has one and an entry for its key is there; else opened with the plugin
 * (checked against what it declared) and prepared, then written to the cache
 * (a write that fails, e.g. on a full disk, is a warning: the run goes on).
 * Runs that miss at once wait for the first to write. tb_run_prepare calls it. */
tb_status tb_run_load_task(tb_run *run, tb_err *err);
/* The key of the run's prepared data (task_load.c lists what it holds),
 * malloc'd; NULL with the reason in why when none can be made (e.g. an input
 * folder too large to tell a change). */
char *tb_run_task_cache_key(const tb_run *run, char *why, size_t why_cap);
/* Loads the task, builds and initialises the model (init_from, freeze). */
tb_status tb_run_prepare(tb_run *run, tb_err *err);
/* Trains, evaluates on the test split and writes the run file. hooks may be
 * NULL. The run file is written also when training ends early (diverged,
 * cancelled, time limit), with that status. */
tb_status tb_run_execute(tb_run *run, const tb_train_hooks *hooks, tb_err *err);
void tb_run_free(tb_run *run);

/* The valid keys of the fixed sections, for error messages and docs. */
extern const char *const tb_run_train_keys[];
extern const int tb_run_train_key_count;

#endif
