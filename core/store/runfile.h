/* runfile.h: the HDF5 file one training run leaves behind (docs/run-files.md).
 *
 *   /                attributes: format "tunebench-run", format_version, tunebench_version,
 *                    git_commit, created (UTC, ISO 8601), status, message
 *   /config          attributes: ini (the resolved configuration), source (its file)
 *   /seeds           attributes: seed, init_seed, split_seed
 *   /environment     attributes: hostname, os, cpu, threads, backend, device, backend_details, blas,
 *                    hdf5, compiler
 *   /model           attributes: plugin, plugin_version, plugin_file, options, trainable_parameters,
 *                    total_parameters, freeze, init_from, head_reinitialised, init_notes
 *   /model/parameters        columns name, count, trainable (one row per state_dict tensor)
 *   /task            attributes: plugin, plugin_version, options, source, channels, height, width,
 *                    classes, classes_guessed, pixel_type, n_train, n_val, n_test; columns class_names,
 *                    mean, std
 *   /train           attributes: every hyperparameter by torch's name, epochs_done, steps, seconds,
 *                    final_train_loss, final_val_loss, final_val_accuracy, ignored
 *   /curves/batch    columns epoch, batch, step, loss, elapsed_s
 *   /curves/epoch    columns epoch, train_loss, val_loss, val_accuracy, seconds, images_per_s, elapsed_s
 *   /test            attributes loss, accuracy, macro_precision, macro_recall, macro_f1, count;
 *                    dataset confusion [classes, classes] (row: true class, column: predicted)
 *   /checkpoint      the final weights, laid out as a checkpoint file (docs/checkpoints.md)
 */
#ifndef TB_RUNFILE_H
#define TB_RUNFILE_H

#include <stddef.h>
#include <stdint.h>

#include "base/common.h"
#include "data/task.h"
#include "engine/metrics.h"
#include "engine/net.h"
#include "engine/optimizer.h"
#include "engine/train.h"

#define TB_RUNFILE_FORMAT "tunebench-run"
#define TB_RUNFILE_VERSION 1

/* Training curves collected from events: the run file's /curves columns. */
typedef struct tb_curves {
    size_t n_batch, cap_batch, n_epoch, cap_epoch;
    int64_t *b_epoch, *b_batch, *b_step;
    double *b_loss, *b_elapsed;
    int64_t *e_epoch;
    double *e_train_loss, *e_val_loss, *e_val_acc, *e_seconds, *e_ips, *e_elapsed;
    int out_of_memory; /* a point could not be stored */
} tb_curves;

void tb_curves_init(tb_curves *c);
void tb_curves_add(tb_curves *c, const tb_train_event *ev);
void tb_curves_free(tb_curves *c);

/* A plugin as the run file describes it (/model, /task). */
typedef struct tb_runfile_plugin {
    const char *name, *version, *file;
    const char *options; /* resolved, "name = value" lines */
} tb_runfile_plugin;

/* What one run file holds, group by group; the caller (core/run/run.c) owns
 * every piece. The writer adds the facts of the process writing it (host,
 * OS, CPU, BLAS, HDF5, compiler) and the time. */
typedef struct tb_runfile_contents {
    /* / : how training ended */
    tb_status status;
    const char *message;
    /* /config */
    const char *config_ini, *config_source;
    /* /seeds */
    uint64_t seed, init_seed, split_seed;
    /* /environment: the device it trained on */
    int threads;
    const char *backend;         /* "cpu", "cuda"; "none" without a backend */
    const char *device;          /* "cpu", "cuda:0" */
    const char *backend_details; /* a GPU's versions, math mode and cuDNN algorithm ids; "" on the CPU */
    /* /model (and /model/parameters from net) */
    tb_runfile_plugin model_plugin;
    const tb_net *net;
    const char *freeze, *init_from, *head_reinitialised;
    const char *init_notes;      /* what init_from defaulted or converted; NULL or "" none */
    const char *ignored_hparams; /* /train ignored: hyperparameters the optimizer does not read; NULL or "" none */
    /* /task */
    tb_runfile_plugin task_plugin;
    const tb_task *task;
    /* /train */
    const tb_train_config *train;
    const tb_train_result *result;
    /* /curves */
    const tb_curves *curves;
    /* /test: NULL when the run was not tested */
    const tb_metrics *test;
    /* /checkpoint: net's weights and this optimizer's state (may be NULL) */
    const tb_optimizer *optimizer;
} tb_runfile_contents;

/* Writes the run file (atomically: a temporary file renamed into place;
 * missing parent directories are created). */
tb_status tb_runfile_write(const char *path, const tb_runfile_contents *c, tb_err *err);

#endif
