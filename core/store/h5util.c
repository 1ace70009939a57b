/* h5util.c: small HDF5 helpers (h5util.h). */
#include "h5util.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

void tb_h5_process_init(void)
{
    H5dont_atexit();
    tb_h5_quiet();
}

void tb_h5_quiet(void)
{
    static _Thread_local int quiet;
    if (quiet) return;
    if (H5Eset_auto2(H5E_DEFAULT, NULL, NULL) >= 0) quiet = 1;
}

hid_t tb_h5_create(const char *path, hid_t fcpl, hid_t fapl)
{
    tb_h5_quiet();
    errno = 0;
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, fcpl, fapl);
    if (f >= 0) return f;
    int e = errno;
    unlink(path);
    errno = e;
    return -1;
}

const char *tb_h5_errno_suffix(int e, char buf[128])
{
    if (!e) buf[0] = '\0';
    else snprintf(buf, 128, ": %s", strerror(e));
    return buf;
}

int tb_h5_close_file(hid_t f, int discard)
{
    if (f < 0) return 0;
    errno = 0;
    if (H5Fflush(f, H5F_SCOPE_LOCAL) >= 0) return H5Fclose(f) < 0 ? -1 : 0;
    int e = errno;
    /* abandoned, never closed (see h5util.h); with discard its bytes go now */
    void *handle = NULL;
    if (discard && H5Fget_vfd_handle(f, H5P_DEFAULT, &handle) >= 0 && handle && ftruncate(*(int *)handle, 0) != 0) {
        /* nothing more to do: the caller unlinks the file, its space returns at exit */
    }
    errno = e;
    return -1;
}

hid_t tb_h5_utf8_type(void)
{
    hid_t t = H5Tcopy(H5T_C_S1);
    if (t < 0) return -1;
    if (H5Tset_size(t, H5T_VARIABLE) < 0 || H5Tset_cset(t, H5T_CSET_UTF8) < 0) {
        H5Tclose(t);
        return -1;
    }
    return t;
}

static int write_attr(hid_t obj, const char *name, hid_t ftype, hid_t mtype, const void *value)
{
    if (H5Aexists(obj, name) > 0 && H5Adelete(obj, name) < 0) return -1;
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t a = sp >= 0 ? H5Acreate2(obj, name, ftype, sp, H5P_DEFAULT, H5P_DEFAULT) : -1;
    int rc = a >= 0 && H5Awrite(a, mtype, value) >= 0 ? 0 : -1;
    if (a >= 0) H5Aclose(a);
    if (sp >= 0) H5Sclose(sp);
    return rc;
}

int tb_h5_attr_str(hid_t obj, const char *name, const char *value)
{
    hid_t t = tb_h5_utf8_type();
    if (t < 0) return -1;
    int rc = write_attr(obj, name, t, t, &value);
    H5Tclose(t);
    return rc;
}

int tb_h5_attr_i64(hid_t obj, const char *name, int64_t value)
{
    return write_attr(obj, name, H5T_STD_I64LE, H5T_NATIVE_INT64, &value);
}

int tb_h5_attr_f64(hid_t obj, const char *name, double value)
{
    return write_attr(obj, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &value);
}

int tb_h5_dataset(hid_t loc, const char *name, hid_t ftype, hid_t mtype, int rank, const hsize_t *dims,
                  const void *values)
{
    hid_t sp = rank == 0 ? H5Screate(H5S_SCALAR) : H5Screate_simple(rank, dims, NULL);
    hid_t d = sp >= 0 ? H5Dcreate2(loc, name, ftype, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT) : -1;
    hsize_t total = 1;
    for (int i = 0; i < rank; i++) total *= dims[i];
    int rc = d >= 0 && (total == 0 || H5Dwrite(d, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, values) >= 0) ? 0 : -1;
    if (d >= 0 && H5Dclose(d) < 0) rc = -1;
    if (sp >= 0) H5Sclose(sp);
    return rc;
}

hid_t tb_h5_open_readonly(const char *path)
{
    hid_t f;
    H5E_BEGIN_TRY
    {
        f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
        if (f < 0) f = H5Fopen(path, H5F_ACC_RDONLY | H5F_ACC_SWMR_READ, H5P_DEFAULT);
    }
    H5E_END_TRY;
    return f;
}

int tb_h5_read_attr_str(hid_t obj, const char *name, char *out, size_t cap, const char **why)
{
    const char *w = NULL;
    int rc = -1;
    hid_t a = -1, ft = -1, mt = -1, sp = -1;
    if (cap) out[0] = '\0';
    htri_t ex = H5Aexists(obj, name);
    if (ex == 0) {
        if (why) *why = "is absent";
        return 0;
    }
    if (ex < 0 || (a = H5Aopen(obj, name, H5P_DEFAULT)) < 0) {
        w = "cannot be opened";
        goto out;
    }
    sp = H5Aget_space(a);
    hssize_t np = sp >= 0 ? H5Sget_simple_extent_npoints(sp) : -1;
    if (np != 1) {
        w = "does not hold exactly one value";
        goto out;
    }
    ft = H5Aget_type(a);
    htri_t vl = ft >= 0 && H5Tget_class(ft) == H5T_STRING ? H5Tis_variable_str(ft) : -1;
    mt = vl >= 0 ? H5Tcopy(H5T_C_S1) : -1;
    if (vl < 0 || mt < 0 || H5Tset_cset(mt, H5Tget_cset(ft)) < 0) {
        w = "is not a string";
        goto out;
    }
    if (vl) {
        char *v = NULL;
        if (H5Tset_size(mt, H5T_VARIABLE) < 0 || H5Aread(a, mt, &v) < 0) {
            w = "cannot be read";
            goto out;
        }
        int k = snprintf(out, cap, "%s", v ? v : "");
        if (v) H5free_memory(v);
        rc = k >= 0 && (size_t)k < cap ? 1 : -2;
    } else {
        size_t size = H5Tget_size(ft);
        if (size == 0 || size >= cap) {
            rc = -2;
            goto out;
        }
        if (H5Tset_size(mt, size + 1) < 0 || H5Tset_strpad(mt, H5T_STR_NULLTERM) < 0 || H5Aread(a, mt, out) < 0) {
            out[0] = '\0';
            w = "cannot be read";
            goto out;
        }
        out[size] = '\0';
        for (size_t k = strlen(out); k > 0 && out[k - 1] == ' '; k--) out[k - 1] = '\0'; /* space padding */
        rc = 1;
    }
out:
    if (rc == -2) w = "is too long";
    if (why) *why = rc == 1 ? "" : w;
    if (mt >= 0) H5Tclose(mt);
    if (ft >= 0) H5Tclose(ft);
    if (sp >= 0) H5Sclose(sp);
    if (a >= 0) H5Aclose(a);
    return rc;
}

int tb_h5_column_f64(hid_t loc, const char *name, const double *values, size_t n)
{
    hsize_t dims[1] = {n};
    return tb_h5_dataset(loc, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 1, dims, values);
}

int tb_h5_column_i64(hid_t loc, const char *name, const int64_t *values, size_t n)
{
    hsize_t dims[1] = {n};
    return tb_h5_dataset(loc, name, H5T_STD_I64LE, H5T_NATIVE_INT64, 1, dims, values);
}

int tb_h5_column_str(hid_t loc, const char *name, const char *const *values, size_t n)
{
    hid_t t = tb_h5_utf8_type();
    if (t < 0) return -1;
    hsize_t dims[1] = {n};
    int rc = tb_h5_dataset(loc, name, t, t, 1, dims, values);
    H5Tclose(t);
    return rc;
}

int tb_h5_matrix_i64(hid_t loc, const char *name, const int64_t *values, size_t rows, size_t cols)
{
    hsize_t dims[2] = {rows, cols};
    return tb_h5_dataset(loc, name, H5T_STD_I64LE, H5T_NATIVE_INT64, 2, dims, values);
}

hid_t tb_h5_group(hid_t loc, const char *name)
{
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    if (lcpl < 0) return -1;
    H5Pset_create_intermediate_group(lcpl, 1);
    hid_t g = H5Gcreate2(loc, name, lcpl, H5P_DEFAULT, H5P_DEFAULT);
    H5Pclose(lcpl);
    return g;
}

/* ---- one error style for writers ------------------------------------------------------ */

void tb_h5w_init(tb_h5_writer *w, const char *file)
{
    tb_h5_quiet();
    w->file = file;
    w->failed = 0;
    w->failure[0] = w->reason[0] = '\0';
}

int tb_h5w_ok(const tb_h5_writer *w) { return !w->failed; }

/* The innermost HDF5 error's description ("file write failed: ...", the one
 * that says why); read before any other call clears the error stack. */
static herr_t innermost_error(unsigned n, const H5E_error2_t *e, void *data)
{
    char *out = data;
    if (n == 0 && e->desc) snprintf(out, 200, "%s", e->desc);
    return 0;
}

/* Why the last call failed: the system's reason when the call set errno (the
 * wrappers clear it first: a write past a full disk or a file size limit),
 * else HDF5's own (its stack is gone once an h5util helper closed its ids). */
static void failure_reason(int err, char out[200])
{
    out[0] = '\0';
    if (err) snprintf(out, 200, "%s", strerror(err));
    else H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, innermost_error, out);
}

/* Records the first failure: "<action> <path>/<name>", or for an attribute
 * "<action> <name> of <path>", with the reason when there is one. */
static void record(tb_h5_writer *w, hid_t obj, const char *action, const char *name, int is_attr, const char *reason)
{
    if (w->failed) return;
    char where[384] = "";
    if (obj >= 0) {
        H5E_BEGIN_TRY { H5Iget_name(obj, where, sizeof where); }
        H5E_END_TRY;
    }
    size_t len = strlen(where);
    char object[512] = ""; /* empty for the file as a whole (obj < 0, no name) */
    if (!name) snprintf(object, sizeof object, "%s", where);
    else if (is_attr) snprintf(object, sizeof object, "%s of %s", name, where);
    else snprintf(object, sizeof object, "%s%s%s", where, len && where[len - 1] == '/' ? "" : "/", name);
    snprintf(w->failure, sizeof w->failure, "%s%s%s", action, object[0] ? " " : "", object);
    snprintf(w->reason, sizeof w->reason, "%s", reason ? reason : "");
    w->failed = 1;
}

void tb_h5w_fail(tb_h5_writer *w, hid_t obj, const char *action, const char *name)
{
    record(w, obj, action, name, 0, NULL);
}

int tb_h5w_check(tb_h5_writer *w, int rc, hid_t obj, const char *action, const char *name)
{
    if (rc < 0 && !w->failed) {
        char reason[200];
        failure_reason(0, reason); /* errno may be stale here: HDF5's reason only */
        record(w, obj, action, name, 0, reason);
    }
    return rc;
}

/* Runs one h5util call of a wrapper below with errno cleared, recording a failure. */
#define WRITE_CHECKED(w, call, obj, action, name, is_attr)                                                         \
    do {                                                                                                           \
        if ((w)->failed) break;                                                                                    \
        errno = 0;                                                                                                 \
        int rc_ = (call);                                                                                          \
        int errno_ = errno;                                                                                        \
        if (rc_ < 0) {                                                                                             \
            char reason_[200];                                                                                     \
            failure_reason(errno_, reason_);                                                                       \
            record((w), (obj), (action), (name), (is_attr), reason_);                                              \
        }                                                                                                          \
    } while (0)

void tb_h5w_attr_str(tb_h5_writer *w, hid_t obj, const char *name, const char *value)
{
    WRITE_CHECKED(w, tb_h5_attr_str(obj, name, value), obj, "write attribute", name, 1);
}

void tb_h5w_attr_i64(tb_h5_writer *w, hid_t obj, const char *name, int64_t value)
{
    WRITE_CHECKED(w, tb_h5_attr_i64(obj, name, value), obj, "write attribute", name, 1);
}

void tb_h5w_attr_f64(tb_h5_writer *w, hid_t obj, const char *name, double value)
{
    WRITE_CHECKED(w, tb_h5_attr_f64(obj, name, value), obj, "write attribute", name, 1);
}

void tb_h5w_column_f64(tb_h5_writer *w, hid_t loc, const char *name, const double *values, size_t n)
{
    WRITE_CHECKED(w, tb_h5_column_f64(loc, name, values, n), loc, "write dataset", name, 0);
}

void tb_h5w_column_i64(tb_h5_writer *w, hid_t loc, const char *name, const int64_t *values, size_t n)
{
    WRITE_CHECKED(w, tb_h5_column_i64(loc, name, values, n), loc, "write dataset", name, 0);
}

void tb_h5w_column_str(tb_h5_writer *w, hid_t loc, const char *name, const char *const *values, size_t n)
{
    WRITE_CHECKED(w, tb_h5_column_str(loc, name, values, n), loc, "write dataset", name, 0);
}

void tb_h5w_matrix_i64(tb_h5_writer *w, hid_t loc, const char *name, const int64_t *values, size_t rows,
                       size_t cols)
{
    WRITE_CHECKED(w, tb_h5_matrix_i64(loc, name, values, rows, cols), loc, "write dataset", name, 0);
}

void tb_h5w_dataset(tb_h5_writer *w, hid_t loc, const char *name, hid_t ftype, hid_t mtype, int rank,
                    const hsize_t *dims, const void *values)
{
    WRITE_CHECKED(w, tb_h5_dataset(loc, name, ftype, mtype, rank, dims, values), loc, "write dataset", name, 0);
}

hid_t tb_h5w_group(tb_h5_writer *w, hid_t loc, const char *name)
{
    hid_t g = -1;
    WRITE_CHECKED(w, (g = tb_h5_group(loc, name)) < 0 ? -1 : 0, loc, "create group", name, 0);
    return g;
}

void tb_h5w_close_group(tb_h5_writer *w, hid_t g)
{
    if (g < 0) return;
    char where[384] = "?";
    H5E_BEGIN_TRY { H5Iget_name(g, where, sizeof where); }
    H5E_END_TRY;
    if (H5Gclose(g) < 0 && !w->failed) {
        snprintf(w->failure, sizeof w->failure, "close group %s", where);
        w->reason[0] = '\0';
        w->failed = 1;
    }
}

void tb_h5w_close_file(tb_h5_writer *w, hid_t f)
{
    /* closing flushes: a full disk often shows here first */
    if (f < 0) return;
    int rc = tb_h5_close_file(f, w->failed), err = errno;
    if (rc < 0 && !w->failed) {
        char reason[200];
        failure_reason(err, reason);
        record(w, -1, "close (flush) the file", NULL, 0, reason);
    }
}

tb_status tb_h5w_finish(const tb_h5_writer *w, tb_err *err)
{
    if (!w->failed) return TB_OK;
    return tb_fail(err, TB_EIO, "cannot %s in %s%s%s%s", w->failure, w->file ? w->file : "?", w->reason[0] ? " (" : "",
                   w->reason, w->reason[0] ? ")" : "");
}
