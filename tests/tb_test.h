/* tb_test.h: helpers shared by the Check suites: reading reference fixtures
 * written by tests/reference/gen_*.py (HDF5), comparing with a tolerance,
 * checking texts (messages, outputs). */
#ifndef TB_TEST_H
#define TB_TEST_H

#include <check.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "tunebench/tunebench_plugin.h"

/* Reads a float32 dataset (any rank <= 4) from an HDF5 fixture; malloc'd.
 * Fails the current test when absent. count and shape may be NULL. */
float *tbt_read_f32(const char *file, const char *path, size_t *count, int64_t shape[4], int *ndim);
int32_t *tbt_read_i32(const char *file, const char *path, size_t *count);
/* Reads a scalar attribute (double) of an object in a fixture. */
double tbt_read_attr(const char *file, const char *path, const char *attr);
/* Reads a fixed-length string attribute (numpy's np.string_); malloc'd, NUL-terminated. */
char *tbt_read_str_attr(const char *file, const char *path, const char *attr);
/* Full path of a fixture file under tests/fixtures. */
const char *tbt_fixture(const char *name);

/* Largest |a-b| / (atol + rtol*|b|) over n elements; <= 1 means within tolerance.
 * *worst receives the index of the worst element. */
double tbt_close_ratio(const float *a, const float *b, size_t n, double rtol, double atol, size_t *worst);

/* Fails with the worst element, its values and the tolerance when a and ref differ. */
#define TBT_ASSERT_CLOSE(a, ref, n, rtol, atol, what)                                                           \
    do {                                                                                                         \
        size_t tbt_w_ = 0;                                                                                       \
        double tbt_r_ = tbt_close_ratio((a), (ref), (n), (rtol), (atol), &tbt_w_);                               \
        ck_assert_msg(tbt_r_ <= 1.0, "%s: element %zu is %.9g, expected %.9g (rtol %g, atol %g)", (what),      \
                      tbt_w_, (double)(a)[tbt_w_], (double)(ref)[tbt_w_], (double)(rtol), (double)(atol));    \
    } while (0)

/* Creates a fresh directory $TMPDIR/tb_test_<tag>_XXXXXX (/tmp when TMPDIR
 * is unset or empty) into dir; fails the current test when it cannot. */
void tbt_mkdtemp(char *dir, size_t cap, const char *tag);
/* Removes dir and everything under it; 0 when it did, else non-zero (and says so on stderr). */
int tbt_rm_rf(const char *dir);

/* Writes a small learnable task for the hdf5 task plugin: n_* samples of
 * 1 x size x size uint8 images (x), labels (y) and splits (split), classes
 * interleaved; a cnn learns it to high accuracy in an epoch or two. */
void tbt_make_toy_task(const char *path, int n_train, int n_val, int n_test, int classes, int size, unsigned seed);
/* INI text of a tiny run on that task (cnn with 4 filters and 16 units,
 * adam 0.01, 2 epochs, batch 16, seed 1, plugins from the build) followed
 * by extra (more sections or [train] keys; may be NULL). Thread-local buffer. */
const char *tbt_toy_config(const char *task_path, const char *extra);
/* A job's text: the toy configuration with "section.key=value" overrides
 * (NULL-terminated), its run file at dir/<name>.h5; malloc'd. */
char *tbt_toy_job_ini(const char *task_path, const char *dir, const char *name, const char *const *sets);

/* Text checks with the whole text in the failure message. */
#define TBT_ASSERT_HAS(text, part)                                                                              \
    ck_assert_msg(strstr((text), (part)) != NULL, "lacks \"%s\" in:\n%s", (part), (text))
#define TBT_ASSERT_LACKS(text, part)                                                                            \
    ck_assert_msg(strstr((text), (part)) == NULL, "has \"%s\" in:\n%s", (part), (text))
/* Each of the parts (a NULL-terminated list) appears in text, in this order. */
void tbt_assert_in_order(const char *text, ...) __attribute__((sentinel));

/* Runs cmd through sh; its stdout (cut to cap - 1 bytes) into out. Returns
 * the exit status, or -1 when it did not exit (a signal). */
int tbt_capture(const char *cmd, char *out, size_t cap);
/* The same for the tunebench executable (TB_TUNEBENCH_EXE) with args and a
 * shell redirection such as "2>&1" (stdout and stderr) or "2>&1 1>/dev/null" (stderr). */
int tbt_tunebench(const char *args, const char *redirect, char *out, size_t cap);
/* The executable those run: $TBT_TUNEBENCH when set (e.g. an older build, to
 * see a new test fail there), else the build's TB_TUNEBENCH_EXE. */
const char *tbt_exe(void);

/* Runs a suite and returns the process exit status (0 when every test passed). */
int tbt_run(Suite *s);

/* A whole file, NUL-terminated (malloc'd); *len (may be NULL) its size.
 * Fails the test when it cannot be read. */
char *tbt_slurp(const char *path, size_t *len);

/* Studies through the front ends' table (tb_study_api). Waits until run has
 * ended (not queued, not training) and returns its final snapshot; fails the
 * test after timeout_s. */
tb_fe_run tbt_wait_run_end(const tb_study_api *api, const char *run, double timeout_s);
/* Waits until participant id's final evaluations are all done. */
void tbt_wait_finals(const tb_study_api *api, const char *id, double timeout_s);

#endif
