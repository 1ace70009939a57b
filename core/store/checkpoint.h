/* checkpoint.h: checkpoints in HDF5, laid out so h5py can move them into
 * torchvision by state_dict key:
 *
 *   /params/<state_dict key>      float32 (int64 for num_batches_tracked), PyTorch's shape
 *   /optimizer                    group, attributes: kind, step, hyperparameters by torch name, eta, mu
 *   /optimizer/<slot>/<key>       float32 per parameter tensor (exp_avg, momentum_buffer, ...)
 *   attributes on /: format "tunebench-checkpoint", format_version, tunebench_version, git_commit
 *
 * Keys contain dots, which HDF5 allows in names; they are not nested groups. */
#ifndef TB_CHECKPOINT_H
#define TB_CHECKPOINT_H

#include <hdf5.h>

#include "base/common.h"
#include "store/h5util.h"
#include "engine/net.h"
#include "engine/optimizer.h"

#define TB_CHECKPOINT_FORMAT "tunebench-checkpoint"
#define TB_CHECKPOINT_VERSION 1

/* Writes net (and opt, if non-NULL) into a new file at path (replaced atomically via a temporary file). */
tb_status tb_checkpoint_save(const char *path, const tb_net *net, const tb_optimizer *opt, tb_err *err);
/* Reads parameters and buffers by name into net (from a checkpoint file, or
 * from the /checkpoint group of a run file); every tensor of the net must
 * be present with the same shape. If opt is non-NULL and the file has optimizer
 * state of the same kind, it is restored too. */
tb_status tb_checkpoint_load(const char *path, tb_net *net, tb_optimizer *opt, tb_err *err);

/* What model.init_from did beyond copying tensors. */
typedef struct tb_checkpoint_load_report {
    char reinitialised[512]; /* keys kept at their fresh values (another class count), ", "-separated */
    char defaulted[512];     /* num_batches_tracked keys absent from the file, loaded as 0 */
    int n_defaulted;
    char converted[256];     /* "float64 (first: params/fc.weight)" when tensors were converted, else "" */
    int n_converted;         /* tensors stored as another type than the network's */
} tb_checkpoint_load_report;

/* Transfer learning (model.init_from): loads parameters and buffers by name
 * like tb_checkpoint_load (no optimizer state), except:
 *   - the tensors of the final layer (the layer of the net's last trainable
 *     tensor, e.g. "classifier.2.") under head_prefixes whose shape in the
 *     file differs only in the first dimension (another class count) keep
 *     the net's fresh values (rep->reinitialised); any other missing or
 *     misshapen key, under the head prefixes or not, is TB_EFORMAT naming it;
 *   - a missing num_batches_tracked loads as 0 (rep->defaulted);
 *   - a non-finite value in any float tensor is TB_EFORMAT naming the tensor;
 *   - tensors of another stored type (int32, float64) are converted and
 *     counted (rep->n_converted, rep->converted names the first). */
tb_status tb_checkpoint_load_init(const char *path, tb_net *net, const char *head_prefixes,
                                  tb_checkpoint_load_report *rep, tb_err *err);
/* tb_checkpoint_load_init with only the re-initialised keys (", "-separated) in kept. */
tb_status tb_checkpoint_load_transfer(const char *path, tb_net *net, const char *head_prefixes, char *kept,
                                      size_t kept_len, tb_err *err);

/* The same, inside an open HDF5 group (run files embed a checkpoint group). */
tb_status tb_checkpoint_write_group(hid_t group, const tb_net *net, const tb_optimizer *opt, tb_err *err);
/* The same into a group of a file the caller writes with w (a run file's
 * /checkpoint): HDF5 failures are recorded in w with the object's path and
 * returned as TB_EIO with err untouched; other failures are returned in err. */
tb_status tb_checkpoint_write_into(tb_h5_writer *w, hid_t group, const tb_net *net, const tb_optimizer *opt,
                                   tb_err *err);
tb_status tb_checkpoint_read_group(hid_t group, tb_net *net, tb_optimizer *opt, tb_err *err);

#endif
