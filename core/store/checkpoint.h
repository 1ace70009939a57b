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

/* Transfer learning: loads parameters and buffers by name like
 * tb_checkpoint_load (no optimizer state), except that tensors under
 * head_prefixes (e.g. "classifier.") that are missing from the file or shaped
 * differently (another class count) keep the net's current, freshly
 * initialised values; their keys are listed in kept (", "-separated). */
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
