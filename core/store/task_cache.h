/* task_cache.h: prepared task data on disk, shared by the runs of a study or
 * a sweep (each run may be a process of its own: `tunebench run-job`).
 *
 * An entry is what training consumes after the task's preparation
 * (data/task.h): the images as resized (uint8 or float32), labels, splits,
 * class names, the train/validation/test indices after the validation carve,
 * folds and merge_val, and the normalisation in use. The datasets (views
 * that normalise and augment on the fly) are made from it by tb_task_adopt.
 *
 * One file per key, DIR/task-<32 hex digits>.tbcache, the digits a hash of the
 * key text (what changes the prepared data; the run wing makes it,
 * tb_run_task_cache_key). The whole key text is stored in the file and
 * compared on reading, so a hash collision is a miss, never wrong data.
 *
 * Layout (native byte order, marked by a byte-order word): a fixed header
 * (magic "TBTASKC", format version, sizes), the key text, zeros up to a
 * multiple of 64 bytes, the payload (pixels, labels, splits, the three index
 * arrays, class names) and a 64-bit checksum of everything before it.
 * Readers map the file (private, pre-faulted) and check magic, version, byte
 * order, the key, every size against the file's size and the checksum;
 * anything else is "not usable" (a miss with a reason), never a failed run.
 * The pixels are used where they are mapped (tb_task.mapped), the small
 * arrays copied out.
 *
 * Writing: a temporary file in the same directory (name.tmp-PID-N), written
 * in full, fsync'ed, renamed over the name, the directory fsync'ed; on any
 * error (a full disk: ENOSPC, EFBIG) the temporary file is removed and the
 * error returned. Concurrent writers of one key each rename a complete file,
 * so readers see a whole entry or none. tb_task_cache_lock serialises the
 * runs that miss at the same time (flock on name.lock): the first prepares
 * and writes, the others wait and then read. */
#ifndef TB_TASK_CACHE_H
#define TB_TASK_CACHE_H

#include <stddef.h>

#include "base/common.h"
#include "data/task.h"

#define TB_TASK_CACHE_FORMAT 1
#define TB_TASK_CACHE_NAME_MAX 64

/* The entry's file name for key (no directory): "task-<32 hex>.tbcache". */
void tb_task_cache_name(const char *key, char name[TB_TASK_CACHE_NAME_MAX]);

/* Reads the entry at path for key into out (raw, indices, counts, mean/std;
 * no datasets yet: tb_task_adopt makes them). Returns 1 (a hit), 0 (no file)
 * or -1 (a file that cannot be used: another key, another format, damaged,
 * unreadable, out of memory; why in err). out is zeroed unless it is a hit. */
int tb_task_cache_read(const char *path, const char *key, tb_task *out, tb_err *err);

/* Writes t (prepared: raw, indices, mean/std) as the entry for key at path,
 * atomically (above). TB_EIO naming the file and the reason (e.g. "No space
 * left on device"), nothing left behind; TB_ENOMEM. */
tb_status tb_task_cache_write(const char *path, const char *key, const tb_task *t, tb_err *err);

/* Takes the entry's lock (path + ".lock", flock): waits while another run
 * (thread or process) holds it, up to wait_s seconds. Returns the lock's
 * descriptor (>= 0), or -1 (err says why: cannot create the lock file, or
 * still held after wait_s). A process that dies releases its locks (its lock
 * file stays, empty, and is reused). tb_task_cache_unlock removes the lock
 * file and releases it; a waiter that then holds a lock on the removed file
 * takes the lock again on a new one, so one run at a time holds it. */
int tb_task_cache_lock(const char *path, double wait_s, tb_err *err);
void tb_task_cache_unlock(const char *path, int fd);

#endif
