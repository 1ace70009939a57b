/* common.h: status codes, error messages and small helpers shared by the core.
 *
 * Convention: a function that can fail returns a tb_status and, on failure,
 * writes one line into a tb_err the caller owns. The core never prints errors
 * and never calls exit(); the executable decides what to show. */
#ifndef TB_COMMON_H
#define TB_COMMON_H

#include <stddef.h>
#include <stdint.h>

/* tb_status: the public status codes, shared with plugins. */
#include "tunebench/tunebench_status.h"

typedef struct tb_err {
    char msg[512];
} tb_err;

/* Formats a message into err (if non-NULL) and returns code. */
tb_status tb_fail(tb_err *err, tb_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

const char *tb_status_name(tb_status s);

/* Wall clock in seconds (monotonic). */
double tb_now(void);

/* Wall clock (UTC seconds since 1970) for timestamps people read. */
double tb_utc_now(void);
/* "2024-05-01T12:00:00.123Z", or "" for NaN and times outside the years 0 to 9999. */
void tb_iso_utc(double s, char out[32]);
/* Copies src (NULL: "") into dst, truncated to cap - 1 bytes; always terminated. */
void tb_copy_str(char *dst, size_t cap, const char *src);
/* Appends printf-formatted text to buf[cap] at *used, which it advances; text
 * that does not fit is cut (buf stays terminated, *used stops at cap - 1).
 * Returns 0, or -1 when something was cut. */
int tb_appendf(char *buf, size_t cap, size_t *used, const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Files. Each returns 0, or -1 with errno set.
 * tb_fsync_path: fsync()s a file (directory = 0) or a directory.
 * tb_fsync_parent: fsync()s the directory holding path ("." when it has none),
 *   so a new name in it survives power loss.
 * tb_rename_into_place: renames tmp to path, but only over nothing or a regular
 *   file (or a symbolic link, which is replaced, not followed): a directory
 *   (EISDIR), FIFO, socket or device node (EEXIST) at path is never replaced,
 *   even when it appeared after the caller's checks (looked at right before;
 *   when nothing is there the file is linked in, which cannot replace anything).
 * tb_rename_durable: fsync()s tmp, tb_rename_into_place, fsync()s path's directory:
 *   the "write a temporary file, then move it into place" ending.
 * tb_make_dirs: mkdir -p of path (an existing directory is fine). */
int tb_fsync_path(const char *path, int directory);
int tb_fsync_parent(const char *path);
int tb_rename_into_place(const char *tmp, const char *path);
int tb_rename_durable(const char *tmp, const char *path);
int tb_make_dirs(const char *path);

/* Aligned allocation for host buffers (64-byte alignment for AVX-512). */
void *tb_aligned_alloc(size_t bytes);
void tb_aligned_free(void *p);

#define TB_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

#endif
