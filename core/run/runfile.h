/* runfile.h: the HDF5 file one training run leaves behind (docs/run-files.md).
 *
 *   /                attributes: format "tunebench-run", format_version, tunebench_version,
 *                    git_commit, created (UTC, ISO 8601), status, message
 *   /config          attributes: ini (the resolved configuration), source (its file)
 *   /seeds           attributes: seed, init_seed, split_seed
 *   /environment     attributes: hostname, os, cpu, threads, backend, blas, hdf5, compiler
 *   /model           attributes: plugin, plugin_version, plugin_file, options, trainable_parameters,
 *                    total_parameters, freeze, init_from, head_reinitialised
 *   /model/parameters        columns name, count, trainable (one row per state_dict tensor)
 *   /task            attributes: plugin, plugin_version, options, source, channels, height, width,
 *                    classes, n_train, n_val, n_test; columns class_names, mean, std
 *   /train           attributes: every hyperparameter by torch's name, epochs_done, steps, seconds,
 *                    final_train_loss, final_val_loss, final_val_accuracy
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

#include "run.h"

#define TB_RUNFILE_FORMAT "tunebench-run"
#define TB_RUNFILE_VERSION 1

/* Training curves collected from events. */
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

/* Writes the run file (atomically: a temporary file renamed into place;
 * missing parent directories are created). train_status/train_message say how
 * training ended. */
tb_status tb_runfile_write(const char *path, const tb_run *run, const tb_optimizer *opt, const tb_curves *curves,
                           tb_status train_status, const char *train_message, tb_err *err);

#endif
