/* h5util.h: small HDF5 helpers for files analysts read with h5py/pandas:
 * string attributes are variable-length UTF-8, columns are 1-D datasets. */
#ifndef TB_H5UTIL_H
#define TB_H5UTIL_H

#include <hdf5.h>
#include <stddef.h>
#include <stdint.h>

#include "base/common.h" /* tb_status, tb_err */

/* ---- failures: no HDF5 traces, no second close -------------------------------------
 *
 * HDF5 1.10.8 cannot close a file whose flush failed (a full disk, EIO, a file
 * size limit): its metadata cache is left inconsistent ("slist already
 * enabled?"), the failed H5Fclose frees the file but keeps its id, and
 * H5_term_library closes that id again at exit: SIGSEGV. So:
 *  - tb_h5_process_init (first thing in main) turns off HDF5's atexit
 *    cleanup, so a file abandoned below is never closed again at exit;
 *  - tb_h5_close_file flushes first and closes only when the flush worked;
 *    a file whose flush failed is abandoned (left open, never closed);
 *  - tb_h5_quiet turns HDF5's automatic error printing off: writers report
 *    the first failure themselves (tb_h5_writer). HDF5 keeps that setting
 *    per thread, so every entry point that touches HDF5 calls it. */

/* H5dont_atexit (before any other HDF5 call) and tb_h5_quiet for the main thread. */
void tb_h5_process_init(void);
/* HDF5's automatic error stack printing off for the calling thread (cheap after the first call). */
void tb_h5_quiet(void);
/* Flushes f, then closes it: 0, or -1 with errno set (ENOSPC, EIO, EFBIG, or
 * 0 when HDF5 gave no system reason). When the flush fails, f is abandoned;
 * with discard (a temporary file the caller unlinks) it is also truncated to
 * 0 bytes so the space comes back at once, not at exit. f < 0 is ignored. */
int tb_h5_close_file(hid_t f, int discard);

/* H5Fcreate(path, H5F_ACC_TRUNC, fcpl, fapl) for a temporary file the caller
 * owns: on failure the partly created file is removed and -1 returned with
 * errno set (0 when HDF5 gave no system reason). */
hid_t tb_h5_create(const char *path, hid_t fcpl, hid_t fapl);
/* ": <strerror(e)>", or "" for e == 0: for messages after a failed create or close */
const char *tb_h5_errno_suffix(int e, char buf[128]);

/* A new variable-length UTF-8 string type (H5Tclose it), or -1: the file and
 * memory type of every string these helpers write. */
hid_t tb_h5_utf8_type(void);

/* Each returns 0, or -1 on an HDF5 failure. */
int tb_h5_attr_str(hid_t obj, const char *name, const char *value);
int tb_h5_attr_i64(hid_t obj, const char *name, int64_t value);
int tb_h5_attr_f64(hid_t obj, const char *name, double value);
/* 1-D columns of n values (n may be 0) */
int tb_h5_column_f64(hid_t loc, const char *name, const double *values, size_t n);
int tb_h5_column_i64(hid_t loc, const char *name, const int64_t *values, size_t n);
/* n strings as a 1-D variable-length UTF-8 string dataset */
int tb_h5_column_str(hid_t loc, const char *name, const char *const *values, size_t n);
/* a rows x cols int64 matrix */
int tb_h5_matrix_i64(hid_t loc, const char *name, const int64_t *values, size_t rows, size_t cols);
/* a dataset of rank dims (rank 0: a scalar) written from values (skipped when it has no elements) */
int tb_h5_dataset(hid_t loc, const char *name, hid_t ftype, hid_t mtype, int rank, const hsize_t *dims,
                  const void *values);
/* Reads the string attribute name of obj (variable or fixed length, its own
 * character set; fixed-length space padding dropped) into out, always
 * terminated. Returns 1 when read, 0 when absent, -1 when it is not one
 * readable string, -2 when it is longer than cap - 1 bytes (a variable-length
 * one is left cut in out). why (may be NULL) receives a phrase for a message:
 * "is absent", "is not a string", "is too long", ... ("" when read). */
int tb_h5_read_attr_str(hid_t obj, const char *name, char *out, size_t cap, const char **why);
/* Opens an HDF5 file read-only without printing HDF5's error stack: a closed
 * file plainly, a live one (an SWMR writer marked its superblock) as an SWMR
 * reader. -1 when it cannot be opened either way. */
hid_t tb_h5_open_readonly(const char *path);
/* creates a group (intermediate groups too); returns its id or -1 */
hid_t tb_h5_group(hid_t loc, const char *name);

/* ---- one error style for writers -----------------------------------------------------
 *
 * A file is written as a list of calls on one tb_h5_writer: the first call
 * that fails records what it did and the object's path in the file, every
 * later call is skipped, and tb_h5w_finish turns that into one message:
 *
 *     tb_h5_writer w;
 *     tb_h5w_init(&w, path);
 *     tb_h5w_attr_str(&w, f, "format", "tunebench-run");
 *     hid_t g = tb_h5w_group(&w, f, "curves/epoch");
 *     tb_h5w_column_f64(&w, g, "val_accuracy", acc, n);
 *     tb_h5w_close_group(&w, g);
 *     tb_h5w_close_file(&w, f);
 *     return tb_h5w_finish(&w, err);
 *         -> "cannot write dataset /curves/epoch/val_accuracy in runs/x.h5 (reason)"
 *
 * So a writer needs no "rc |=" chains, and the message says which write failed. */

typedef struct tb_h5_writer {
    const char *file;    /* named in the message (the caller's path; not copied) */
    int failed;
    char failure[512];   /* "write dataset /curves/epoch/val_accuracy" */
    char reason[200];    /* "No space left on device", HDF5's description, or "" */
} tb_h5_writer;

void tb_h5w_init(tb_h5_writer *w, const char *file);
/* 1 while nothing has failed: a writer may skip preparing data it could not write */
int tb_h5w_ok(const tb_h5_writer *w);
/* Records a failure of something else the writer did (out of memory, a nested
 * writer): "<action> <obj's path>/<name>"; name may be NULL, and with obj < 0
 * too the action alone ("start SWMR writing") concerns the whole file. */
void tb_h5w_fail(tb_h5_writer *w, hid_t obj, const char *action, const char *name);
/* rc < 0 (an HDF5 or h5util result) records "<action> <obj's path>/<name>" with
 * HDF5's reason; returns rc. */
int tb_h5w_check(tb_h5_writer *w, int rc, hid_t obj, const char *action, const char *name);

/* The h5util writers above, each skipped once the writer has failed. */
void tb_h5w_attr_str(tb_h5_writer *w, hid_t obj, const char *name, const char *value);
void tb_h5w_attr_i64(tb_h5_writer *w, hid_t obj, const char *name, int64_t value);
void tb_h5w_attr_f64(tb_h5_writer *w, hid_t obj, const char *name, double value);
void tb_h5w_column_f64(tb_h5_writer *w, hid_t loc, const char *name, const double *values, size_t n);
void tb_h5w_column_i64(tb_h5_writer *w, hid_t loc, const char *name, const int64_t *values, size_t n);
void tb_h5w_column_str(tb_h5_writer *w, hid_t loc, const char *name, const char *const *values, size_t n);
void tb_h5w_matrix_i64(tb_h5_writer *w, hid_t loc, const char *name, const int64_t *values, size_t rows,
                       size_t cols);
void tb_h5w_dataset(tb_h5_writer *w, hid_t loc, const char *name, hid_t ftype, hid_t mtype, int rank,
                    const hsize_t *dims, const void *values);
/* a group (intermediate groups too), or -1 when it failed or an earlier call did */
hid_t tb_h5w_group(tb_h5_writer *w, hid_t loc, const char *name);
/* Close a group / the file (negative ids are ignored, closing is never
 * skipped); a failed close is recorded like any other failure. The file is
 * closed with tb_h5_close_file; once the writer has failed, or the flush
 * fails, the file is a temporary the caller unlinks: it is discarded. */
void tb_h5w_close_group(tb_h5_writer *w, hid_t g);
void tb_h5w_close_file(tb_h5_writer *w, hid_t f);
/* TB_OK, or TB_EIO with "cannot <failure> in <file> (<reason>)" in err. */
tb_status tb_h5w_finish(const tb_h5_writer *w, tb_err *err);

#endif
